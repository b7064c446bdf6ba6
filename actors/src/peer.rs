//! Who an upstream failure is about: one endpoint of a pool, or the whole pool.
//!
//! A pool builds the [`Peer`] of each of its endpoints, and its own, once when it is
//! created; an error names its peer by cloning one (a reference count), so nothing
//! is formatted or allocated until the error is shown.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::upstream_url::UpstreamUrl;

/// What an upstream error names: the endpoint that failed, or the pool when no
/// endpoint was involved (every one of them busy).
///
/// Its `Display` is how logs, status pages and traces name it: an endpoint by its URL,
/// with the address it was resolved to when it was (`http://api:8000 (10.0.0.7:8000)`);
/// a pool by its name (its endpoints so named, joined by commas). Callers are never
/// shown a peer (see [`Error::external_message`](crate::Error::external_message)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// One endpoint of a pool.
    Endpoint(Arc<EndpointPeer>),
    /// A pool as a whole, by its name.
    Pool(Arc<str>),
}

impl Peer {
    /// The endpoint at `url`, connected to at `address` when its host was resolved
    /// ahead.
    pub fn endpoint(url: UpstreamUrl, address: Option<SocketAddr>) -> Peer {
        Peer::Endpoint(Arc::new(EndpointPeer::new(url, address)))
    }

    /// The pool named `name`.
    pub fn pool(name: impl Into<Arc<str>>) -> Peer {
        Peer::Pool(name.into())
    }

    /// How logs name the peer (as its `Display`, without formatting).
    pub fn as_str(&self) -> &str {
        match self {
            Peer::Endpoint(endpoint) => endpoint.as_str(),
            Peer::Pool(name) => name,
        }
    }

    /// The endpoint, when the peer is one.
    pub fn as_endpoint(&self) -> Option<&EndpointPeer> {
        match self {
            Peer::Endpoint(endpoint) => Some(endpoint),
            Peer::Pool(_) => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint as errors name it: its URL, with the address it was resolved to when
/// it was, written once when its pool is made.
#[derive(Debug, PartialEq, Eq)]
pub struct EndpointPeer {
    /// `url` or `url (address)`.
    name: String,
}

impl EndpointPeer {
    /// The endpoint at `url`, connected to at `address` when resolved ahead.
    pub fn new(url: UpstreamUrl, address: Option<SocketAddr>) -> EndpointPeer {
        let name = match address {
            Some(address) => format!("{url} ({address})"),
            None => url.to_string(),
        };
        EndpointPeer { name }
    }

    /// `url`, or `url (address)` when resolved.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for EndpointPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_named_by_its_url_and_resolved_address() {
        let url: UpstreamUrl = "HTTP://api:8000/v1/".parse().unwrap();
        let plain = Peer::endpoint(url.clone(), None);
        assert_eq!(plain.to_string(), "http://api:8000/v1");
        let resolved = Peer::endpoint(url, Some("10.0.0.7:8000".parse().unwrap()));
        assert_eq!(resolved.to_string(), "http://api:8000/v1 (10.0.0.7:8000)");
        let endpoint = resolved.as_endpoint().expect("an endpoint");
        assert_eq!(endpoint.as_str(), "http://api:8000/v1 (10.0.0.7:8000)", "as its peer names it");
        let v6 = Peer::endpoint("http://[::1]:9".parse().unwrap(), None);
        assert_eq!(v6.to_string(), "http://[::1]:9");
    }

    #[test]
    fn a_pool_is_named_by_its_name() {
        let pool = Peer::pool("http://a:1,http://b:2 (10.0.0.2:2)");
        assert_eq!(pool.to_string(), "http://a:1,http://b:2 (10.0.0.2:2)");
        assert!(pool.as_endpoint().is_none());
    }
}
