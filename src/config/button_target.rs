//! Where a `[[docs.action_buttons]]` request goes, parsed by the one function that both
//! the config check and the send path call ([`ActionButton::target`]): a config that
//! loads is a config whose buttons can be sent, and one the send path would refuse is
//! refused at load, naming the button.
//!
//! The URL is read as a browser reads it (`url`: `http://127.1` is `127.0.0.1`, an
//! IDN becomes punycode), then its origin must be a usable upstream base URL
//! ([`UpstreamUrl`], as every request framex-rs sends) and its path and query a URI
//! the HTTP client takes. Headers must be valid names and values, and none of those
//! the client sets itself: `Host` (from the URL), `Content-Length` (from the body) and
//! the hop-by-hop ones (`Connection`, `Transfer-Encoding`, `Upgrade`, …), which would
//! otherwise be replaced, or break the request's framing, on every press.

use framex_actors::upstream::wire::{self, uri::InvalidUri, HeaderMap, HeaderName, HeaderValue, Method};
use framex_actors::upstream::{is_hop_by_hop, UpstreamUrl, UrlError};

use super::ActionButton;

/// A (non-`LINK`) button's request, before the user's inputs are merged in.
///
/// Not `Debug`: its headers may hold secrets.
#[derive(Clone)]
pub struct ButtonTarget {
    /// The URL's origin (`scheme://host[:port]`).
    pub base: UpstreamUrl,
    /// The URL's path, percent-encoded as sent.
    pub path: String,
    /// The URL's own query (without `?`), sent when the button adds none.
    pub query: Option<String>,
    /// The method.
    pub method: Method,
    /// The configured headers.
    pub headers: HeaderMap,
}

/// Why a button's request cannot be sent: a phrase to read after the key it is about
/// ([`ButtonError::key`]). Never holds the URL or a header's value (either may hold a
/// secret): the caller names the button.
#[derive(Debug, thiserror::Error)]
pub enum ButtonError {
    /// Not a URL at all.
    #[error("is not a URL")]
    NotUrl(#[source] url::ParseError),
    /// Neither `http://` nor `https://`.
    #[error("must be an http:// or https:// URL")]
    Scheme,
    /// An origin framex-rs cannot send to (credentials, an invalid host or port, …).
    #[error("{0}")]
    Origin(#[source] UrlError),
    /// A path or query the HTTP client refuses (too long, say).
    #[error("has a path or query that cannot be sent")]
    Path(#[source] InvalidUri),
    /// A method the HTTP client refuses.
    #[error("cannot be sent")]
    Method,
    /// A header whose name or value is not valid HTTP.
    #[error("'{0}' cannot be sent (not a valid header name and value)")]
    Header(String),
    /// A header the HTTP client sets itself.
    #[error("'{0}' is set by framex-rs (Host from the url, Content-Length from the body, hop-by-hop headers per connection)")]
    Reserved(String),
    /// A header given twice, in two spellings (names are case-insensitive: one value
    /// would silently replace the other).
    #[error("'{0}' is given twice (header names are case-insensitive)")]
    Duplicate(String),
}

impl ButtonError {
    /// The button's key it is about: `url`, `method` or `headers`.
    pub fn key(&self) -> &'static str {
        match self {
            ButtonError::NotUrl(_) | ButtonError::Scheme | ButtonError::Origin(_) | ButtonError::Path(_) => "url",
            ButtonError::Method => "method",
            ButtonError::Header(_) | ButtonError::Reserved(_) | ButtonError::Duplicate(_) => "headers",
        }
    }
}

impl ActionButton {
    /// Where the button's request goes and what it carries, as the send path sends
    /// it (see the module's documentation).
    ///
    /// # Errors
    /// The first reason the request cannot be sent.
    pub fn target(&self) -> Result<ButtonTarget, ButtonError> {
        let url = url::Url::parse(&self.url).map_err(ButtonError::NotUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ButtonError::Scheme);
        }
        let base = UpstreamUrl::parse(&url[..url::Position::BeforePath]).map_err(ButtonError::Origin)?;
        let path_and_query = &url[url::Position::BeforePath..url::Position::AfterQuery];
        // As the client builds the request's URI (the origin has no path prefix here).
        wire::Uri::try_from(path_and_query).map_err(ButtonError::Path)?;
        let method = Method::from_bytes(self.method.as_bytes()).map_err(|_| ButtonError::Method)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let named = || name.escape_default().to_string();
            let (Ok(header), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) else {
                return Err(ButtonError::Header(named()));
            };
            let reserved = matches!(header, wire::header::HOST | wire::header::CONTENT_LENGTH);
            if reserved || is_hop_by_hop(header.as_str(), &[]) {
                return Err(ButtonError::Reserved(named()));
            }
            if headers.insert(header, value).is_some() {
                return Err(ButtonError::Duplicate(named()));
            }
        }
        Ok(ButtonTarget {
            base,
            path: url.path().to_owned(),
            query: url.query().map(str::to_owned),
            method,
            headers,
        })
    }
}
