//! Where one endpoint is, as a connection needs it.

use http::HeaderValue;
use rustls::pki_types::ServerName;

use crate::upstream_url::UpstreamUrl;

/// Where one endpoint is, as a connection needs it, computed once per client from
/// the endpoint's parsed URL: the address to connect to, the TLS name, the `Host`
/// header and the path prefix (nothing is parsed or built per request).
#[derive(Debug)]
pub(super) struct Endpoint {
    /// `host:port`, or the address the host was resolved to.
    pub(super) address: String,
    /// For `https://`: the name the certificate must carry.
    pub(super) tls: Option<ServerName<'static>>,
    /// The `Host` header value (the URL's authority).
    pub(super) host: HeaderValue,
    /// The URL's path prefix (empty or `/prefix`, no trailing slash).
    pub(super) prefix: String,
}

impl Endpoint {
    /// The endpoint at `url`; `resolved`, when given, is where to connect instead of
    /// the URL's host (which stays the `Host` and the TLS name).
    pub(super) fn new(url: &UpstreamUrl, resolved: Option<std::net::SocketAddr>) -> Endpoint {
        Endpoint {
            address: resolved.map_or_else(|| url.connect_address(), |addr| addr.to_string()),
            tls: url.tls_name().cloned(),
            host: url.host_header().clone(),
            prefix: url.path_prefix().to_owned(),
        }
    }
}

