//! The forwarding headers a request carries upstream: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded` and `X-Real-IP`.
//!
//! From a client they are claims anyone can forge (a spoofed client address, a
//! pretended `https`), so unless the peer is one of `server.trusted_proxies` they are
//! dropped and replaced by what we saw: the peer's address, the listener's scheme
//! (`https` when `server.tls_cert` is set, else `http`) and the `Host` header. From a trusted proxy they are kept, every
//! `X-Forwarded-For` line in order, joined into one and extended with the peer.

use std::io::Write as _;
use std::net::IpAddr;

use actix_web::http::header;
use actix_web::HttpRequest;
use framex_actors::upstream::wire::{HeaderName as WireName, HeaderValue as WireValue};
use framex_actors::upstream::AddedFields;

use crate::config::TrustedProxies;

const X_FORWARDED_FOR: WireName = WireName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: WireName = WireName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: WireName = WireName::from_static("x-forwarded-host");
const X_REAL_IP: WireName = WireName::from_static("x-real-ip");
const FORWARDED: WireName = WireName::from_static("forwarded");

/// Whether `name` (lower case) is one of the forwarding headers this module sets;
/// the caller leaves them out of its copy of the request's headers.
pub fn is_forwarding(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "forwarded" | "x-real-ip"
    )
}

/// Whether `name` (lower case) claims something about the client or the way it came
/// in, so that only a trusted proxy may send it: any `X-Forwarded-*`
/// (`-Port`, `-Prefix`, `-Ssl`, … beside the ones set here), `Forwarded` and
/// `X-Real-IP`, also spelled with `_` for `-` (which CGI-style servers read as the
/// same header).
pub fn is_claim(name: &str) -> bool {
    let dashed = |want: &str| {
        name.len() >= want.len()
            && name
                .bytes()
                .zip(want.bytes())
                .all(|(n, w)| n == w || (n == b'_' && w == b'-'))
    };
    dashed("x-forwarded-") || (name.len() == 9 && dashed("x-real-ip")) || name == "forwarded"
}

/// Whether the peer of `req` is one of `trusted`.
pub fn from_trusted(req: &HttpRequest, trusted: &TrustedProxies) -> bool {
    req.peer_addr().is_some_and(|a| trusted.contains(a.ip()))
}

/// The forwarding headers a request carries upstream: ours from an untrusted peer,
/// the request's extended by ours from a trusted proxy (`from_trusted`, see the module
/// doc).
pub fn fields(req: &HttpRequest, from_trusted: bool) -> AddedFields {
    let mut out = AddedFields::with_capacity(4);
    let incoming = req.headers();
    let peer = req.peer_addr().and_then(|a| peer_value(a.ip()));
    if from_trusted {
        let earlier: Vec<&[u8]> = incoming
            .get_all(header::X_FORWARDED_FOR)
            .map(|v| v.as_bytes())
            .collect();
        let chain = if earlier.is_empty() {
            peer.clone()
        } else {
            let size = earlier.iter().map(|v| v.len() + 2).sum::<usize>() + 45;
            let mut joined = Vec::with_capacity(size);
            for (i, line) in earlier.iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(line);
            }
            if let Some(ip) = &peer {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(ip.as_bytes());
            }
            WireValue::from_bytes(&joined).ok()
        };
        if let Some(chain) = chain {
            out.push((X_FORWARDED_FOR, chain));
        }
        let kept = |name: header::HeaderName, wire: WireName, out: &mut AddedFields| {
            let before = out.len();
            out.extend(incoming.get_all(name).map(|value| (wire.clone(), value.clone())));
            out.len() > before
        };
        kept(header::FORWARDED, FORWARDED, &mut out);
        if !kept(header::X_FORWARDED_PROTO, X_FORWARDED_PROTO, &mut out) {
            out.push((X_FORWARDED_PROTO, scheme(req)));
        }
        if !kept(header::X_FORWARDED_HOST, X_FORWARDED_HOST, &mut out) {
            push_host(&mut out, req);
        }
        if !kept(header::HeaderName::from_static("x-real-ip"), X_REAL_IP, &mut out) {
            if let Some(ip) = peer {
                out.push((X_REAL_IP, ip));
            }
        }
        return out;
    }

    if let Some(ip) = peer {
        out.push((X_FORWARDED_FOR, ip.clone()));
        out.push((X_REAL_IP, ip));
    }
    // What this listener speaks; a TLS terminator in front is a trusted proxy and
    // says so itself.
    out.push((X_FORWARDED_PROTO, scheme(req)));
    push_host(&mut out, req);
    out
}

/// How many peer addresses a thread keeps as field values ([`peer_value`]).
const PEER_SLOTS: usize = 64;

thread_local! {
    /// The last peer addresses seen on this thread, as field values: a table with a
    /// slot per address hash, the newest address in a slot replacing the one before.
    static PEER_VALUES: std::cell::RefCell<[Option<(IpAddr, WireValue)>; PEER_SLOTS]> =
        const { std::cell::RefCell::new([const { None }; PEER_SLOTS]) };
}

/// `ip` as a field value, made once for as long as it stays in this thread's table.
/// Formatted and copied per request it cost two allocations; kept with each connection
/// (its connection data), the lookup missed the CPU's cache on every request when many
/// connections took turns. Clients behind a balancer share a handful of addresses.
fn peer_value(ip: IpAddr) -> Option<WireValue> {
    let folded = match ip {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            (bits as u64) ^ ((bits >> 64) as u64)
        }
    };
    // Fibonacci hashing: the top bits of the product, spread over every address bit.
    let slot = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - PEER_SLOTS.trailing_zeros())) as usize;
    PEER_VALUES.with_borrow_mut(|table| match &table[slot] {
        Some((kept, value)) if *kept == ip => Some(value.clone()),
        _ => {
            let value = value_of(ip)?;
            table[slot] = Some((ip, value.clone()));
            Some(value)
        }
    })
}

/// `ip` as a field value.
fn value_of(ip: IpAddr) -> Option<WireValue> {
    WireValue::from_bytes(ip_bytes(ip, &mut [0u8; 45])).ok()
}

/// `https` on a TLS listener (`server.tls_cert`), else `http`.
fn scheme(req: &HttpRequest) -> WireValue {
    if req.app_config().secure() {
        WireValue::from_static("https")
    } else {
        WireValue::from_static("http")
    }
}

/// `X-Forwarded-Host`: the `Host` the client asked for, or over HTTP/2, where a
/// client names it as `:authority` (in the request's URI) and seldom sends `Host`, that.
fn push_host(out: &mut AddedFields, req: &HttpRequest) {
    if let Some(host) = req.headers().get(header::HOST).cloned() {
        out.push((X_FORWARDED_HOST, host));
    } else if let Some(authority) = req.uri().authority() {
        if let Ok(host) = WireValue::from_str(authority.as_str()) {
            out.push((X_FORWARDED_HOST, host));
        }
    }
}

/// An IP address as text in `buf`, without allocating (and without the formatting
/// machinery for the common IPv4 case).
fn ip_bytes(ip: IpAddr, buf: &mut [u8; 45]) -> &[u8] {
    match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(v6) => {
            // 45 bytes hold the longest form (an IPv4-mapped address written out).
            let mut rest: &mut [u8] = &mut buf[..];
            let written = match write!(rest, "{v6}") {
                Ok(()) => 45 - rest.len(),
                Err(_) => 0,
            };
            &buf[..written]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_recognised_in_any_spelling() {
        for name in ["x-forwarded-for", "x-forwarded-port", "x-forwarded-prefix", "x_forwarded_proto", "x-real-ip", "x_real_ip", "forwarded"] {
            assert!(is_claim(name), "{name}");
        }
        for name in ["x-forwarded", "x-real-ipx", "content-type", "x-request-id", "forwarded-for"] {
            assert!(!is_claim(name), "{name}");
        }
    }

    #[test]
    fn each_peer_gets_its_own_address_however_the_table_is_shared() {
        // More addresses than slots, v4 and v6, each asked for twice in turn: a slot
        // taken over by another address must never answer with it.
        let ips: Vec<IpAddr> = (0..3 * PEER_SLOTS as u32)
            .flat_map(|n| [IpAddr::from([10, 0, (n >> 8) as u8, n as u8]), IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, n as u16])])
            .collect();
        for _ in 0..2 {
            for ip in &ips {
                assert_eq!(peer_value(*ip).unwrap().as_bytes(), ip.to_string().as_bytes());
            }
        }
    }

    #[test]
    fn ip_bytes_match_display() {
        for ip in [
            "127.0.0.1",
            "10.200.3.45",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut buf = [0u8; 45];
            assert_eq!(ip_bytes(ip, &mut buf), ip.to_string().as_bytes());
        }
    }
}
