//! Header names between the two `http` crates: actix-web's (0.2) and the upstream
//! client's (hyper, 1.x). Converting a name by its text (`HeaderName::from_bytes`)
//! lower-cases, validates and looks it up again — about 115 instructions for a
//! standard name, and an allocation for any other. The names most requests and replies
//! carry are paired here once: one is found by comparing standard names (a byte
//! each), and the rest fall back to the text.

use actix_web::http::header::{self, HeaderName};
use framex_actors::upstream::wire::header as wire;
use framex_actors::upstream::wire::HeaderName as WireName;

/// The pairs, the most frequent first (a miss compares them all: a few instructions
/// each). Both crates know every one of them as a standard name.
static COMMON: [(WireName, HeaderName); 24] = [
    (wire::CONTENT_TYPE, header::CONTENT_TYPE),
    (wire::CONTENT_LENGTH, header::CONTENT_LENGTH),
    (wire::DATE, header::DATE),
    (wire::SERVER, header::SERVER),
    (wire::ACCEPT, header::ACCEPT),
    (wire::ACCEPT_ENCODING, header::ACCEPT_ENCODING),
    (wire::USER_AGENT, header::USER_AGENT),
    (wire::CONTENT_ENCODING, header::CONTENT_ENCODING),
    (wire::CACHE_CONTROL, header::CACHE_CONTROL),
    (wire::ETAG, header::ETAG),
    (wire::LAST_MODIFIED, header::LAST_MODIFIED),
    (wire::ACCEPT_RANGES, header::ACCEPT_RANGES),
    (wire::VARY, header::VARY),
    (wire::EXPIRES, header::EXPIRES),
    (wire::LOCATION, header::LOCATION),
    (wire::SET_COOKIE, header::SET_COOKIE),
    (wire::COOKIE, header::COOKIE),
    (wire::ACCEPT_LANGUAGE, header::ACCEPT_LANGUAGE),
    (wire::AUTHORIZATION, header::AUTHORIZATION),
    (wire::REFERER, header::REFERER),
    (wire::ORIGIN, header::ORIGIN),
    (wire::IF_NONE_MATCH, header::IF_NONE_MATCH),
    (wire::IF_MODIFIED_SINCE, header::IF_MODIFIED_SINCE),
    (wire::ACCESS_CONTROL_ALLOW_ORIGIN, header::ACCESS_CONTROL_ALLOW_ORIGIN),
];

/// `name` (from a client's request) as the upstream client spells it; `None` only if
/// the 1.x crate refused a name the 0.2 one took (they check names alike).
pub(super) fn to_wire(name: &HeaderName) -> Option<WireName> {
    match COMMON.iter().find(|(_, ours)| ours == name) {
        Some((theirs, _)) => Some(theirs.clone()),
        None => WireName::from_bytes(name.as_str().as_bytes()).ok(),
    }
}

/// `name` (from an upstream's reply) as actix-web spells it (see [`to_wire`]).
pub(super) fn from_wire(name: &WireName) -> Option<HeaderName> {
    match COMMON.iter().find(|(theirs, _)| theirs == name) {
        Some((_, ours)) => Some(ours.clone()),
        None => HeaderName::from_bytes(name.as_str().as_bytes()).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair names the same header, and any name, paired or not, crosses both
    /// ways unchanged.
    #[test]
    fn names_cross_unchanged_both_ways() {
        for (theirs, ours) in &COMMON {
            assert_eq!(theirs.as_str(), ours.as_str());
        }
        for text in ["content-type", "etag", "x-request-id", "traceparent", "x-custom-thing", "te"] {
            let ours = HeaderName::from_bytes(text.as_bytes()).unwrap();
            let theirs = to_wire(&ours).unwrap();
            assert_eq!(theirs.as_str(), text);
            assert_eq!(from_wire(&theirs).unwrap(), ours);
        }
    }
}
