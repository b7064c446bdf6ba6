//! The HTTP server's connection timeouts, set on the server by [`crate::server`]. A
//! leaf, so that anything may read them without depending on the server that runs it.

use std::time::Duration;

/// How long a client may take to send a request head (actix-web's default, set
/// deliberately): slower → 408 and the connection closed. A kept-alive connection's
/// next head has as long from its first byte (actix-http patched for it).
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle keep-alive connection stays open (actix-web's default, set
/// deliberately): an idle client holds a connection no longer than this.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How long a closing connection may take to drain (actix-web's default, set
/// deliberately), e.g. after a 408 to a body that was not read.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a TLS handshake may take. The accept loop never pauses for handshakes in
/// progress (their limit is the connection limit), so a silent client costs one
/// connection slot for this long and nothing else.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
