//! The upstream's reply on its way back: the head (its hop-by-hop fields stayed with the
//! connection, `h1::answer`), the body read whole when small or pumped through the
//! bridge with an idle timeout and prompt cancellation, and the endpoint's in-flight
//! count held until the body ends.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, StatusCode};

use super::client::{read_to_end, Lease};
use super::h1::{Answer, WireBody};
use super::replica::PoolReplica;
use super::{Body, ForwardResponse, PoolShared};
use crate::error::{BrokenReply, Error};
use crate::metrics::FailureKind;
use crate::peer::Peer;
use crate::stream::{bridge, ChunkSender};

/// Replies up to this size (with a known length) are read whole instead of streamed.
pub const FULL_BODY_LIMIT: usize = 256 * 1024;

/// An endpoint's in-flight count, held by one attempt: taken when the attempt starts,
/// given back when it ends (even when the body is still streaming after the response
/// head was handed back). It also records the attempt's outcome in the endpoint's
/// counters and health.
///
/// It keeps the pool by this arbiter's replica: a count of the thread's own, where
/// the pool's `Arc` is shared by every worker (its count's line would move between
/// the cores at every request).
pub(super) struct InFlight {
    replica: Rc<PoolReplica>,
    index: usize,
}

impl InFlight {
    /// Counts a request to endpoint `index` of `replica`'s pool.
    pub(super) fn start(replica: &Rc<PoolReplica>, index: usize) -> Self {
        let stats = &replica.shared.stats[index];
        stats.in_flight.add(1);
        stats.requests.add(1);
        InFlight {
            replica: replica.clone(),
            index,
        }
    }

    /// The pool's state.
    fn pool(&self) -> &PoolShared {
        &self.replica.shared
    }

    /// The endpoint failed this attempt, in the way `kind` says.
    pub(super) fn failed(&self, kind: FailureKind) {
        let stats = &self.pool().stats[self.index];
        stats.failures.fetch_add(1, Ordering::Relaxed);
        let metrics = &self.pool().metrics[self.index];
        metrics.failed(kind);
        // Only the first failure ejects: requests that were already under way to it
        // when it failed do not lengthen the ejection (backoff grows with failures
        // after an ejection ends, not with the burst that caused it).
        if stats.health.is_available() {
            metrics.ejections.inc();
            stats.health.record_failure();
        }
    }

    /// The endpoint's metric handles.
    pub(super) fn metrics(&self) -> &crate::metrics::EndpointMetrics {
        &self.pool().metrics[self.index]
    }

    /// The endpoint answered this attempt.
    pub(super) fn succeeded(&self) {
        self.pool().stats[self.index].health.record_success();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.pool().stats[self.index]
            .in_flight
            .sub(1);
    }
}

/// Takes the response head and its body: read whole when small and of known length,
/// else streamed through the bridge. The connection is handed back for reuse once the
/// body has been read to its end. `timeout` bounds reading a whole body and each idle
/// gap of a streamed one.
pub(super) async fn relay(
    response: Answer,
    lease: Lease,
    method: &Method,
    upstream: &Peer,
    guard: InFlight,
    timeout: Duration,
) -> Result<ForwardResponse, Error> {
    // The endpoint is named (a copy of its shared name taken) only when it fails or
    // streams: a count every worker's requests changed would move between the cores.
    let Answer { status, headers, content_length, event_stream, body: mut incoming } = response;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // We never ask for an upgrade: a switch nobody asked for is a broken reply,
        // and the connection is no longer HTTP (dropping the lease closes it).
        guard.failed(FailureKind::BrokenBody);
        return Err(Error::UpstreamReply {
            upstream: upstream.clone(),
            reason: BrokenReply::UnsolicitedSwitch,
        });
    }
    // The connection kept the hop-by-hop fields to itself (`h1::answer`).
    let length = content_length.and_then(|n| usize::try_from(n).ok());

    let body = if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || length == Some(0)
    {
        lease.release(incoming);
        Body::Empty
    } else if let Some(bytes) = length
        .filter(|&n| n <= FULL_BODY_LIMIT && !event_stream)
        .and_then(|_| incoming.take_if_buffered())
    {
        // All of it came with the head: no read to wait for, no timer.
        lease.release(incoming);
        Body::Full(bytes)
    } else if let Some(len) = length.filter(|&n| n <= FULL_BODY_LIMIT && !event_stream) {
        match tokio::time::timeout(timeout, read_to_end(&mut incoming, len)).await {
            Ok(Ok(bytes)) => {
                lease.release(incoming);
                Body::Full(bytes)
            }
            Ok(Err(e)) => {
                guard.failed(FailureKind::BrokenBody);
                return Err(Error::UpstreamReply {
                    upstream: upstream.clone(),
                    reason: BrokenReply::Body(e),
                });
            }
            Err(_) => {
                guard.failed(FailureKind::Timeout);
                return Err(Error::UpstreamTimeout {
                    upstream: upstream.clone(),
                    seconds: timeout.as_secs_f64(),
                });
            }
        }
    } else {
        let (sender, stream) = bridge();
        // Pushed by the pool's actor, from its own context (see `pumps`).
        lease.pumps().run(Box::pin(pump(incoming, lease, sender, timeout, upstream.clone(), guard)));
        Body::Stream(stream)
    };
    Ok(ForwardResponse {
        status,
        headers,
        content_length,
        event_stream,
        body,
        endpoint: 0,
        attempts: 1,
    })
}

/// Copies an upstream body into the bridge until it ends, fails, idles past `idle`,
/// or the consumer goes away; dropping `incoming` then closes the upstream connection.
/// A body cut off before its end (shorter than its `Content-Length`, or chunked
/// without the last chunk) is a failure, reported to the consumer.
async fn pump(
    mut incoming: WireBody,
    lease: Lease,
    sender: ChunkSender,
    idle: Duration,
    upstream: Peer,
    guard: InFlight,
) {
    let open = guard.metrics().open_streams.clone();
    open.inc();
    let _open = scopeguard(move || open.dec());
    loop {
        let next = tokio::select! {
            biased;
            _ = sender.closed() => return,
            next = tokio::time::timeout(idle, incoming.frame()) => next,
        };
        match next {
            Ok(None) => {
                lease.release(incoming);
                return;
            }
            Ok(Some(Ok(chunk))) => {
                if sender.send(chunk).await.is_err() {
                    return;
                }
            }
            Ok(Some(Err(e))) => {
                guard.failed(FailureKind::BrokenBody);
                let reason = BrokenReply::StreamCut(e);
                sender.fail(Error::UpstreamReply { upstream, reason }).await;
                return;
            }
            Err(_) => {
                guard.failed(FailureKind::Timeout);
                sender
                    .fail(Error::UpstreamTimeout {
                        upstream,
                        seconds: idle.as_secs_f64(),
                    })
                    .await;
                return;
            }
        }
    }
}

/// Runs `f` when dropped (however the pump ends).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
