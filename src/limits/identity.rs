//! Who a request is counted as: its key identity (never the key), the docs login's
//! user of a session the server opened (never its cookie or token), its client
//! address (through `server.trusted_proxies`), or its route.

use std::fmt::Write as _;
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::HttpRequest;
use framex_actors::Escaped;

use crate::config::{LimitPer, TrustedProxies};

/// What a request may be counted by.
pub struct Identity<'a> {
    /// The `[auth]` rule the request passed and the index of the key it presented.
    pub auth: Option<(&'a str, usize)>,
    /// Its `Authorization` header, when it passed no `[auth]` rule.
    pub authorization: Option<&'a [u8]>,
    /// For the docs tools: the docs login's user (`[auth.oauth] provider`, username)
    /// of a session the server opened and verified. A client cannot name one: only
    /// a signed session cookie whose session the server holds yields it.
    pub user: Option<(&'a str, &'a str)>,
    /// The client's address.
    pub address: Option<IpAddr>,
    /// The route template (or canonical path) it goes to.
    pub route: &'a str,
    /// The local plugin making the call, for a `CallRemote`.
    pub plugin: Option<&'a str>,
}

impl<'a> Identity<'a> {
    /// A `CallRemote` of the plugin `caller` (`None`: the embedder's own) to `route`.
    pub fn of_plugin(caller: Option<&'a str>, route: &'a str) -> Self {
        Identity {
            auth: None,
            authorization: None,
            user: None,
            address: None,
            route,
            plugin: Some(caller.unwrap_or("")),
        }
    }

    /// The key of `per`: for a `CallRemote`, `plugin:<name>` (under `key` and
    /// `address`: the calling plugin is the client) or `route:<template>`; otherwise,
    /// under `key`, the first of `key:user <provider>/<username>` (a docs login's
    /// user, escaped), `key:auth <pattern> #<index>`, `key:sha1 <hash>` (the first 16
    /// hex digits of the SHA-1 of the `Authorization` value) and `key:none`; under
    /// `address`, `address:<ip>`; under `route`, `route:<template>`. The namespaces
    /// differ, so no value a client sends can name another namespace's key.
    pub fn key(&self, per: LimitPer) -> String {
        let mut key = String::with_capacity(48);
        if let (LimitPer::Key | LimitPer::Address, Some(plugin)) = (per, self.plugin) {
            let _ = write!(key, "plugin:{plugin}");
            return key;
        }
        match per {
            LimitPer::Key => match (self.user, self.auth, self.authorization) {
                (Some((provider, name)), _, _) => {
                    let _ = write!(key, "key:user {}/{}", Escaped(provider), Escaped(name));
                }
                (None, Some((pattern, index)), _) => {
                    let _ = write!(key, "key:auth {pattern} #{index}");
                }
                (None, None, Some(value)) => {
                    let digest = sha1_smol::Sha1::from(value).digest().to_string();
                    let _ = write!(key, "key:sha1 {}", &digest[..16]);
                }
                (None, None, None) => key.push_str("key:none"),
            },
            LimitPer::Address => match self.address {
                Some(ip) => {
                    let _ = write!(key, "address:{ip}");
                }
                None => key.push_str("address:unknown"),
            },
            LimitPer::Route => {
                let _ = write!(key, "route:{}", self.route);
            }
        }
        key
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` (read from the right) that is not a trusted
/// proxy. An entry that is not an address stops the walk at the hop that sent it.
pub fn client_ip(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let lines: Vec<&[u8]> = req.headers().get_all(header::X_FORWARDED_FOR).map(|v| v.as_bytes()).collect();
    for entry in lines.iter().rev().flat_map(|line| line.rsplit(|b| *b == b',')) {
        let Some(ip) = std::str::from_utf8(entry).ok().and_then(|s| s.trim().parse::<IpAddr>().ok()) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity<'a>(user: Option<(&'a str, &'a str)>, auth: Option<(&'a str, usize)>, authorization: Option<&'a [u8]>) -> Identity<'a> {
        Identity { auth, authorization, user, address: None, route: "/r", plugin: None }
    }

    /// A docs login's user is counted by provider and username (escaped: one line),
    /// before any key or header the request also sends; never by a raw value.
    #[test]
    fn users_keys_and_headers_have_their_own_namespaces() {
        let ada = identity(Some(("gitlab", "ada")), Some(("/docs", 0)), Some(b"ada-token"));
        assert_eq!(ada.key(LimitPer::Key), "key:user gitlab/ada");
        let odd = identity(Some(("gitlab", "a\nkey:none")), None, None);
        assert_eq!(odd.key(LimitPer::Key), "key:user gitlab/a\\nkey:none");
        assert_eq!(identity(None, Some(("/docs", 1)), Some(b"k")).key(LimitPer::Key), "key:auth /docs #1");
        let hashed = identity(None, None, Some(b"key:user gitlab/ada")).key(LimitPer::Key);
        assert!(hashed.starts_with("key:sha1 ") && !hashed.contains("ada"), "{hashed}");
        assert_eq!(identity(None, None, None).key(LimitPer::Key), "key:none");
        assert_eq!(ada.key(LimitPer::Route), "route:/r", "a user changes no other `per`");
    }
}
