//! Helpers for the engine's tests and examples (dropshot's `test_util`): a real
//! HTTP/1.1 upstream on 127.0.0.1, so that pools and routers are tried against real
//! connections rather than mocks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts, on the current arbiter, an HTTP/1.1 server on an ephemeral port of
/// 127.0.0.1 that answers every request (keep-alive, no request bodies) with FrameX's
/// envelope around `data`, counting the requests in `hits`; returns its base URL.
///
/// # Errors
/// When no port can be bound.
pub async fn envelope_server(data: serde_json::Value, hits: Arc<AtomicUsize>) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let body = serde_json::json!({"status": 200, "message": "", "data": data}).to_string();
    let reply: Arc<[u8]> = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into();
    actix_rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (hits, reply) = (hits.clone(), reply.clone());
            actix_rt::spawn(async move {
                let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = socket.read(&mut chunk).await {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        hits.fetch_add(1, Ordering::SeqCst);
                        if socket.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok(url)
}
