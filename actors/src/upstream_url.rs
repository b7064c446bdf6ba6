//! An upstream's base URL, parsed once (when the config is loaded) into what a
//! connection needs: scheme, host (a name, an IPv4 address or a bracketed IPv6
//! address), port (the scheme's when not written), path prefix, and the `Host`
//! header and TLS name derived from them. Everything after the parse is infallible,
//! so a URL that cannot be used never reaches request time.
//!
//! Refused, each with its own [`UrlError`]: whitespace and control characters (they
//! would change what is sent, or forge log lines), schemes other than `http` and
//! `https`, credentials (`user:password@`), a query, a fragment, a missing host, an
//! invalid host or port, and a path that is not a valid URI path.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use http::uri::{InvalidUri, PathAndQuery};
use http::HeaderValue;
use rustls::pki_types::{InvalidDnsNameError, ServerName};

/// How an upstream is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http://`: plain TCP; port 80 unless written.
    Http,
    /// `https://`: TLS (rustls); port 443 unless written.
    Https,
}

impl Scheme {
    /// The port used when the URL writes none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where an upstream is, as its URL names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A name to resolve (letters, digits, `-`, `.`, `_`, `~`), as written.
    Name(String),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// The address, when the host is an IP literal rather than a name.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
        }
    }
}

impl fmt::Display for Host {
    /// As in a URL: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ipv4(ip) => write!(f, "{ip}"),
            Host::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

/// Why a string is not a usable upstream base URL. Each `Display` is a phrase to read
/// after the URL (`'ftp://a' must start with http:// or https://`): the caller names
/// the URL, escaped, and the key it comes from.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Whitespace or a control character anywhere (CR/LF would forge headers or log
    /// lines).
    #[error("holds whitespace or a control character")]
    Whitespace,
    /// Not `http://` nor `https://` (in any case).
    #[error("must start with http:// or https://")]
    Scheme,
    /// `user:password@` before the host: keys belong in auth rules, never in URLs
    /// (which are logged and shown).
    #[error("must not hold credentials")]
    Credentials,
    /// Nothing between `://` and the port or path.
    #[error("has no host")]
    NoHost,
    /// A `#fragment`: never sent, so surely a mistake.
    #[error("must not hold a fragment")]
    Fragment,
    /// A `?query`: it would be glued before every request's own path.
    #[error("must not hold a query")]
    Query,
    /// A port that is empty, not a number, 0 or over 65535.
    #[error("has an invalid port (1 to 65535)")]
    Port,
    /// A host name with characters no host name has, or an IPv4-like host that
    /// is neither a name nor an address.
    #[error(
        "has an invalid host name (letters, digits, '-', '.', '_' and '~' only; IPv6 in brackets)"
    )]
    HostName,
    /// `[...]` that does not hold an IPv6 address, or is not closed.
    #[error("has an invalid IPv6 address (write it in brackets: http://[::1]:8080)")]
    Ipv6,
    /// An `https://` host that cannot be a certificate's name.
    #[error("has a host that cannot be a TLS certificate name")]
    TlsName(#[source] InvalidDnsNameError),
    /// A path prefix with characters a URI path cannot hold.
    #[error("has an invalid path")]
    Path(#[source] InvalidUri),
}

/// An upstream's base URL, parsed: `http://host:port/prefix` or `https://…`.
///
/// Compared, ordered and hashed by its text ([`UpstreamUrl::as_str`]): the URL as
/// written, its scheme lowercased and its trailing slashes dropped, which is also
/// how logs, metrics and status pages name it.
#[derive(Debug, Clone)]
pub struct UpstreamUrl {
    /// `scheme://authority/prefix`: scheme lowercased, no trailing slash.
    text: String,
    scheme: Scheme,
    host: Host,
    port: u16,
    /// Where the authority ends in `text` (it starts after `scheme://`).
    authority_end: usize,
    /// The `Host` header: the authority as written.
    host_header: HeaderValue,
    /// For `https://`: the name (or address) the certificate must carry.
    tls_name: Option<ServerName<'static>>,
}

impl UpstreamUrl {
    /// Parses a base URL (see the module's documentation for what is refused).
    ///
    /// # Errors
    /// The first reason the URL cannot be used.
    pub fn parse(raw: &str) -> Result<UpstreamUrl, UrlError> {
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::Whitespace);
        }
        let scheme = if has_prefix(raw, "http://") {
            Scheme::Http
        } else if has_prefix(raw, "https://") {
            Scheme::Https
        } else {
            return Err(UrlError::Scheme);
        };
        let rest = &raw[scheme.as_str().len() + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        if authority.is_empty() {
            return Err(UrlError::NoHost);
        }
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        if rest.contains('?') {
            return Err(UrlError::Query);
        }
        let (host, port) = host_and_port(authority)?;
        let prefix = rest[authority.len()..].trim_end_matches('/');
        if !prefix.is_empty() {
            PathAndQuery::from_str(prefix).map_err(UrlError::Path)?;
        }
        let tls_name = match (scheme, host.ip()) {
            (Scheme::Http, _) => None,
            (Scheme::Https, Some(ip)) => Some(ServerName::from(ip)),
            (Scheme::Https, None) => {
                Some(ServerName::try_from(host.to_string()).map_err(UrlError::TlsName)?)
            }
        };
        Ok(UpstreamUrl {
            text: format!("{}://{authority}{prefix}", scheme.as_str()),
            authority_end: scheme.as_str().len() + 3 + authority.len(),
            host_header: HeaderValue::from_str(authority).map_err(|_| UrlError::HostName)?,
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
            tls_name,
        })
    }

    /// The URL as written, its scheme lowercased and without trailing slashes.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host: a name, or an IP address.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port: as written, else the scheme's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host[:port]` as written (the `Host` header's value).
    pub fn authority(&self) -> &str {
        &self.text[self.scheme.as_str().len() + 3..self.authority_end]
    }

    /// The path every request's path is appended to: empty, or `/prefix` without a
    /// trailing slash.
    pub fn path_prefix(&self) -> &str {
        &self.text[self.authority_end..]
    }

    /// The `Host` header sent to this upstream (its authority as written).
    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    /// For `https://`, the name (or address) the upstream's certificate must carry.
    pub fn tls_name(&self) -> Option<&ServerName<'static>> {
        self.tls_name.as_ref()
    }

    /// `host:port` to connect to (IPv6 in brackets), the port always written.
    pub fn connect_address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Whether `raw` starts with `prefix`, ignoring ASCII case (schemes are
/// case-insensitive: `HTTP://a` is `http://a`).
fn has_prefix(raw: &str, prefix: &str) -> bool {
    raw.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The host and the port (when written) of an authority without userinfo.
fn host_and_port(authority: &str) -> Result<(Host, Option<u16>), UrlError> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (inside, after) = bracketed.split_once(']').ok_or(UrlError::Ipv6)?;
            let ip = inside.parse::<Ipv6Addr>().map_err(|_| UrlError::Ipv6)?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(UrlError::Port)?),
            };
            (Host::Ipv6(ip), port)
        }
        None => {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            (named_host(name)?, port)
        }
    };
    let port = match port {
        None => None,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            match text.parse::<u16>() {
                Ok(port @ 1..) => Some(port),
                _ => return Err(UrlError::Port),
            }
        }
        Some(_) => return Err(UrlError::Port),
    };
    Ok((host, port))
}

/// An IPv4 address, or a host name of unreserved characters.
fn named_host(name: &str) -> Result<Host, UrlError> {
    if name.is_empty() {
        return Err(UrlError::NoHost);
    }
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Ok(Host::Ipv4(ip));
    }
    // A name whose last label is a number (`127.1`, `0x7f.1`, `010.0.0.1`,
    // `1.2.3.999`) is no DNS name: the system resolver reads it as an IPv4 address
    // in its own way (`127.1` is 127.0.0.1, `010` octal) and hickory refuses it, so
    // the URL would reach different addresses depending on `dns_servers`.
    let last = name.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let numeric = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
        || last.len() > 2 && last[..2].eq_ignore_ascii_case("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if numeric {
        return Err(UrlError::HostName);
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if name.bytes().all(allowed) {
        Ok(Host::Name(name.to_owned()))
    } else {
        Err(UrlError::HostName)
    }
}

impl FromStr for UpstreamUrl {
    type Err = UrlError;

    fn from_str(raw: &str) -> Result<Self, UrlError> {
        UpstreamUrl::parse(raw)
    }
}

impl TryFrom<&str> for UpstreamUrl {
    type Error = UrlError;

    fn try_from(raw: &str) -> Result<Self, UrlError> {
        UpstreamUrl::parse(raw)
    }
}

impl fmt::Display for UpstreamUrl {
    /// Its text ([`UpstreamUrl::as_str`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for UpstreamUrl {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for UpstreamUrl {}

impl std::hash::Hash for UpstreamUrl {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for UpstreamUrl {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UpstreamUrl {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialEq<str> for UpstreamUrl {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for UpstreamUrl {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> UpstreamUrl {
        UpstreamUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn ipv6_in_brackets_with_a_port() {
        let u = url("http://[::1]:8080");
        assert_eq!(u.host(), &Host::Ipv6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            (u.port(), u.authority(), u.path_prefix()),
            (8080, "[::1]:8080", "")
        );
        assert_eq!(u.connect_address(), "[::1]:8080");
        assert_eq!(u.host_header(), "[::1]:8080");
        assert_eq!(url("https://[fe80::1]").connect_address(), "[fe80::1]:443");
        assert_eq!(
            url("https://[::1]").tls_name(),
            Some(&ServerName::IpAddress(
                IpAddr::V6(Ipv6Addr::LOCALHOST).into()
            ))
        );
    }

    #[test]
    fn ports_default_per_scheme() {
        let plain = url("http://api.internal");
        assert_eq!((plain.scheme(), plain.port()), (Scheme::Http, 80));
        assert_eq!(plain.connect_address(), "api.internal:80");
        assert_eq!(
            plain.host_header(),
            "api.internal",
            "Host is the authority as written"
        );
        assert!(plain.tls_name().is_none());
        let secure = url("https://api.internal");
        assert_eq!((secure.scheme(), secure.port()), (Scheme::Https, 443));
        assert_eq!(secure.connect_address(), "api.internal:443");
        let written = url("http://10.0.0.7:80");
        assert_eq!(
            (written.host(), written.port()),
            (&Host::Ipv4(Ipv4Addr::new(10, 0, 0, 7)), 80)
        );
        assert_eq!(written.host_header(), "10.0.0.7:80");
        assert_eq!(url("http://a:65535").port(), 65535);
    }

    #[test]
    fn path_prefixes_lose_their_trailing_slashes() {
        let u = url("https://a.example:8443/base/v1/");
        assert_eq!(
            (u.path_prefix(), u.authority()),
            ("/base/v1", "a.example:8443")
        );
        assert_eq!(u.as_str(), "https://a.example:8443/base/v1");
        assert_eq!(url("http://a/").path_prefix(), "");
        assert_eq!(url("http://a//").as_str(), "http://a");
        assert_eq!(url("http://a/%7Euser").path_prefix(), "/%7Euser");
    }

    #[test]
    fn https_carries_its_certificate_name() {
        let u = url("https://api.example.com/x");
        assert_eq!(
            u.tls_name(),
            Some(&ServerName::try_from("api.example.com").unwrap())
        );
        assert_eq!(u.scheme().as_str(), "https");
    }

    #[test]
    fn schemes_are_case_insensitive() {
        let u = url("HTTPS://Api.Example:9/p");
        assert_eq!(u.scheme(), Scheme::Https);
        assert_eq!(
            u.as_str(),
            "https://Api.Example:9/p",
            "the scheme is lowercased, the rest kept"
        );
        assert_eq!(url("Http://a"), url("http://a/"));
    }

    #[test]
    fn each_refusal_has_its_reason() {
        for (raw, why) in [
            ("http://a\r\nX-Injected: 1", "Whitespace"),
            (" http://a", "Whitespace"),
            ("http://a b", "Whitespace"),
            ("http://a\t", "Whitespace"),
            ("ftp://a", "Scheme"),
            ("a:80", "Scheme"),
            ("http:/a", "Scheme"),
            ("", "Scheme"),
            ("http://u:p@a", "Credentials"),
            ("http://@a", "Credentials"),
            ("http://", "NoHost"),
            ("http:///x", "NoHost"),
            ("http://:80", "NoHost"),
            ("http://a/#f", "Fragment"),
            ("http://a#", "Fragment"),
            ("http://a/?x=1", "Query"),
            ("http://a?", "Query"),
            ("http://a:", "Port"),
            ("http://a:0", "Port"),
            ("http://a:70000", "Port"),
            ("http://a:+80", "Port"),
            ("http://a:8o", "Port"),
            ("http://a:1:2", "Port"),
            ("http://[::1]8080", "Port"),
            ("http://[::1]:", "Port"),
            ("http://a!b", "HostName"),
            ("http://127.1", "HostName"),
            ("http://0x7f.1", "HostName"),
            ("http://010.0.0.1", "HostName"),
            ("http://1.2.3.999:8080", "HostName"),
            ("http://host.0X1F", "HostName"),
            ("http://a\"b", "HostName"),
            ("http://::1:8080", "NoHost"),
            ("http://[::1", "Ipv6"),
            ("http://[nope]:80", "Ipv6"),
            ("http://[127.0.0.1]", "Ipv6"),
            ("http://a/b<c", "Path"),
        ] {
            let err = UpstreamUrl::parse(raw).expect_err(&raw[..raw.len().min(40)]);
            assert!(
                format!("{err:?}").starts_with(why),
                "{raw}: {err:?}, not {why}"
            );
        }
        let err = UpstreamUrl::parse("https://-bad-.example").unwrap_err();
        assert!(matches!(err, UrlError::TlsName(_)), "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the TLS library's reason is kept"
        );
    }

    #[test]
    fn what_was_accepted_before_still_is() {
        for ok in [
            "http://a:1",
            "https://a.example/base",
            "http://[::1]:8080",
            "http://127.0.0.1",
            "http://my_service:8000",
            "http://localhost:08080",
            "http://api.internal./v1",
        ] {
            url(ok);
        }
        assert_eq!(url("http://localhost:08080").port(), 8080);
    }
}
