//! Names in `proxy_urls` resolved to every address they have, so that each address is
//! an endpoint of its own (health, connections) — how a Kubernetes headless Service's
//! replicas are followed. The system resolver by default (`getaddrinfo`: `/etc/hosts`,
//! `resolv.conf`; no TTL is known, so names are re-resolved every `dns_refresh`), or
//! given servers through `hickory-resolver` (`plugins.proxy.dns_servers`), whose
//! answers' TTL shortens the wait when it is shorter.

use std::net::SocketAddr;
use std::time::Duration;

use framex_actors::upstream::{Host, UpstreamUrl};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// Addresses of one name taken at most (a name answering thousands would otherwise
/// make as many endpoints, each with its connections).
pub const MAX_ADDRESSES: usize = 256;

/// How names are resolved.
pub enum Resolver {
    /// The operating system's resolver.
    System,
    /// The given DNS servers.
    Servers(Box<TokioResolver>),
}

/// One resolution: the addresses, sorted, and how long they may be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Every address of the name, with the URL's port, sorted.
    pub addresses: Vec<SocketAddr>,
    /// The answer's TTL, when the resolver gives one.
    pub ttl: Option<Duration>,
}

impl Resolver {
    /// A resolver asking `servers` (`IP:PORT`, over UDP), or the system's when empty.
    pub fn new(servers: &[SocketAddr]) -> Self {
        if servers.is_empty() {
            return Resolver::System;
        }
        let mut config = ResolverConfig::new();
        for server in servers {
            config.add_name_server(NameServerConfig::new(*server, Protocol::Udp));
        }
        let resolver = TokioResolver::builder_with_config(config, TokioConnectionProvider::default()).build();
        Resolver::Servers(Box::new(resolver))
    }

    /// Every address of `host`, with `port`.
    ///
    /// # Errors
    /// What the resolver said, in words (no such name, no answer).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Resolution, String> {
        let (mut addresses, ttl) = match self {
            Resolver::System => {
                let found = tokio::net::lookup_host((host, port)).await.map_err(|e| e.to_string())?;
                (found.collect::<Vec<_>>(), None)
            }
            Resolver::Servers(resolver) => {
                // A fully qualified name: the search list of resolv.conf does not apply.
                let fqdn = if host.ends_with('.') { host.to_owned() } else { format!("{host}.") };
                let lookup = resolver.lookup_ip(fqdn).await.map_err(|e| e.to_string())?;
                let ttl = lookup
                    .valid_until()
                    .checked_duration_since(std::time::Instant::now());
                (lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect(), ttl)
            }
        };
        addresses.sort();
        addresses.dedup();
        if addresses.len() > MAX_ADDRESSES {
            log::warn!("{} has {} addresses; the first {MAX_ADDRESSES} are used", crate::actors::Escaped(host), addresses.len());
            addresses.truncate(MAX_ADDRESSES);
        }
        if addresses.is_empty() {
            return Err(format!("{host} has no address"));
        }
        Ok(Resolution { addresses, ttl })
    }
}

/// The host and port of a base URL when its host is a name to resolve (not an IP
/// literal).
pub fn named_host(url: &UpstreamUrl) -> Option<(String, u16)> {
    match url.host() {
        Host::Name(name) => Some((name.clone(), url.port())),
        Host::Ipv4(_) | Host::Ipv6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_are_resolved() {
        let named = |url: &str| named_host(&url.parse().unwrap());
        assert_eq!(named("http://api.internal:8000"), Some(("api.internal".into(), 8000)));
        assert_eq!(named("https://api.internal/prefix"), Some(("api.internal".into(), 443)));
        assert_eq!(named("http://localhost"), Some(("localhost".into(), 80)));
        assert_eq!(named("http://127.0.0.1:8000"), None);
        assert_eq!(named("http://[::1]:8000"), None);
    }

    #[actix_rt::test]
    async fn the_system_resolver_reads_localhost() {
        let found = Resolver::System.resolve("localhost", 9).await.unwrap();
        assert!(found.addresses.iter().all(|a| a.ip().is_loopback() && a.port() == 9), "{found:?}");
    }
}
