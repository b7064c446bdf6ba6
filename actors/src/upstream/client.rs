//! The HTTP/1.1 client of one pool replica: keep-alive connections per endpoint
//! (`h1`, driven by the requests' own tasks), opened under a connect timeout, reused
//! only once their previous exchange is over, and a clear answer to "was this request
//! ever written?".
//!
//! Everything lives on the replica's arbiter thread: the idle lists are plain
//! `RefCell`s.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls::ClientConfig;

use super::deadline::Deadline;
use super::endpoint::Endpoint;
use super::h1::{Answer, Conn, Failed, Outbound, WireBody};
use super::out_body::OutBody;
use super::pumps::Pumps;
use crate::error::{BodyError, ConnectFailure, Error, Fault};
use crate::wire_error::WireError;

/// Idle connections kept per endpoint; more are closed when released.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
/// An idle connection unused this long is closed (hyper's pool: 90 s; uvicorn closes
/// its own after 5 s).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the pool's actor looks at its idle connections.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// [`IDLE_TIMEOUT`] in sweeps: a connection put back after sweep `n` is closed by
/// sweep `n + IDLE_SWEEPS`, idle for `IDLE_TIMEOUT` less at most one `SWEEP_EVERY`.
pub(super) const IDLE_SWEEPS: u64 = (IDLE_TIMEOUT.as_millis() / SWEEP_EVERY.as_millis()) as u64;

/// A connection waiting in its endpoint's list, its [`Deadline`] timer, and the number
/// of sweeps made before it was put back: its age is counted in sweeps, so that putting
/// a connection back reads no clock (a clock read costs about 20 ns here, on every
/// proxied request).
struct Idle {
    conn: Conn,
    deadline: Deadline,
    since_sweep: u64,
}

/// Why a request got no response head. The exchange decides what each allows.
pub(super) enum SendError {
    /// No connection could be made (refused, unreachable, timed out): nothing was sent.
    Connect(ConnectFailure),
    /// The connection refused the request before writing any of it (the upstream had
    /// closed it): its body comes back untouched, to go again.
    Unsent {
        /// The body, untouched.
        body: OutBody,
        /// Whether the connection had carried earlier requests (an idle keep-alive
        /// connection the upstream closed as we reused it).
        reused: bool,
        /// What the connection said.
        cause: ConnectFailure,
    },
    /// The connection failed after the request was (at least partly) written, or the
    /// reply could not be parsed: the upstream may have acted on it.
    Exchange {
        /// What failed.
        error: WireError,
        /// Whether the connection had carried earlier requests.
        reused: bool,
    },
    /// Our own request body failed (over the size limit, or the client broke off).
    Body(Error),
    /// No answer head (no connection, or no answer on it) before the deadline.
    TimedOut,
}

/// The client of one pool replica.
pub(super) struct Client {
    endpoints: Vec<Endpoint>,
    idle: RefCell<Vec<Vec<Idle>>>,
    /// Sweeps made so far (see [`Idle`]).
    sweeps: std::cell::Cell<u64>,
    connect_timeout: Duration,
    tls: Arc<ClientConfig>,
    /// Where streamed bodies are pumped: the replica's actor (see `pumps`).
    pumps: Pumps,
    /// Where this arbiter's round robin starts next: each arbiter turns on its own
    /// (one counter for all would move its cache line between the cores on every
    /// request), and together they still spread the requests evenly.
    turn: std::cell::Cell<usize>,
}

impl Client {
    /// Starts this arbiter's round robin at `turn` (replicas of a pool start at
    /// different turns, so that workers taking connections in turn do not all send
    /// their first requests to the same endpoint).
    pub(super) fn start_turn_at(&self, turn: usize) {
        self.turn.set(turn);
    }

    /// Where the next pick starts (this arbiter's round robin).
    pub(super) fn next_turn(&self) -> usize {
        let turn = self.turn.get();
        self.turn.set(turn.wrapping_add(1));
        turn
    }

    /// A client for the endpoints of `pool`, none connected yet.
    pub(super) fn new(pool: &super::PoolConfig, connect_timeout: Duration, tls: Arc<ClientConfig>) -> Rc<Client> {
        let urls = &pool.endpoints;
        Rc::new(Client {
            endpoints: urls.iter().enumerate().map(|(i, u)| Endpoint::new(u, pool.address(i))).collect(),
            idle: RefCell::new(urls.iter().map(|_| Vec::new()).collect()),
            sweeps: std::cell::Cell::new(0),
            connect_timeout,
            tls,
            pumps: Pumps::default(),
            turn: std::cell::Cell::new(0),
        })
    }

    /// The way to the replica's actor, for pumping streamed bodies.
    pub(super) fn pumps(&self) -> &Pumps {
        &self.pumps
    }

    /// The endpoint at `index`.
    pub(super) fn endpoint(&self, index: usize) -> &Endpoint {
        &self.endpoints[index]
    }

    /// Sends `request` with `body` to endpoint `index` on an idle connection (unless `fresh`), or a
    /// new one, and waits for the response head until `deadline`. A new connection is given up on
    /// ([`ConnectFailure::Ejected`]) if `health` ejects the endpoint while it opens.
    /// Whether and how a failure is tried again is the exchange's decision, made in
    /// one place.
    pub(super) async fn send(
        self: &Rc<Self>,
        index: usize,
        request: &Outbound<'_>,
        body: OutBody,
        fresh: bool,
        deadline: tokio::time::Instant,
        health: &super::health::Health,
    ) -> Result<(Answer, Lease), SendError> {
        let (conn, mut timer, reused) = match self.take_idle(index, fresh) {
            Some(Idle { conn, deadline: mut timer, .. }) => {
                timer.set(deadline);
                (conn, timer, true)
            }
            None => {
                let mut timer = Deadline::new(deadline);
                // Boxed: opening a connection (TLS included) is the rare path, and its
                // future, inline, would more than double every request's.
                match before(Box::pin(self.open(index, health)).as_mut(), &mut timer).await {
                    Some(opened) => (opened?, timer, false),
                    None => return Err(SendError::TimedOut),
                }
            }
        };
        let exchanged = std::pin::pin!(conn.exchange(request, body));
        match before(exchanged, &mut timer).await {
            Some(Ok(answer)) => Ok((answer, Lease { client: self.clone(), index, deadline: timer })),
            Some(Err(failed)) => Err(send_error(failed, reused)),
            None => Err(SendError::TimedOut),
        }
    }

    /// An idle connection to endpoint `index` that is ready for a request, unless
    /// `fresh` is asked for (those found closed are dropped on the way).
    fn take_idle(&self, index: usize, fresh: bool) -> Option<Idle> {
        if fresh {
            return None;
        }
        loop {
            let mut idle = self.idle.borrow_mut()[index].pop()?;
            if idle.conn.is_usable() {
                return Some(idle);
            }
        }
    }

    /// A new connection to endpoint `index`, unless `health` ejects the endpoint while
    /// it opens.
    async fn open(&self, index: usize, health: &super::health::Health) -> Result<Conn, SendError> {
        let endpoint = self.endpoint(index);
        let opening = async {
            match tokio::time::timeout(self.connect_timeout, Conn::open(endpoint, &self.tls)).await {
                Ok(result) => result,
                Err(_) => Err(ConnectFailure::Timeout {
                    seconds: self.connect_timeout.as_secs_f64(),
                }),
            }
        };
        // Nothing is written before the connection is made: giving up is safe.
        let conn = tokio::select! {
            biased;
            made = opening => made,
            () = health.ejected() => Err(ConnectFailure::Ejected),
        };
        conn.map_err(SendError::Connect)
    }

    fn release(&self, index: usize, conn: Conn, deadline: Deadline) {
        let mut idle = self.idle.borrow_mut();
        if idle[index].len() < MAX_IDLE_PER_ENDPOINT {
            idle[index].push(Idle { conn, deadline, since_sweep: self.sweeps.get() });
        }
    }

    /// Closes the idle connections the upstreams closed (their sockets readable: an
    /// end, or bytes nobody asked for) or that waited longer than [`IDLE_TIMEOUT`].
    /// Run by the pool's actor every [`SWEEP_EVERY`]: nothing else runs for an idle
    /// connection, and a closed one would hold its socket until taken again.
    pub(super) fn sweep(&self) {
        let now = self.sweeps.get() + 1;
        self.sweeps.set(now);
        for list in self.idle.borrow_mut().iter_mut() {
            list.retain_mut(|idle| now - idle.since_sweep < IDLE_SWEEPS && idle.conn.is_usable());
        }
    }

    /// How many idle connections endpoint `index` has.
    #[cfg(test)]
    pub(super) fn idle_count(&self, index: usize) -> usize {
        self.idle.borrow()[index].len()
    }
}

/// What `work` comes to, unless `deadline` passes first (`None`). As with
/// `tokio::time::timeout`, `work` is polled first (what is there when the deadline is
/// too still counts), and a `work` that used up the task's budget (tokio's cap on the
/// ready I/O a task takes per turn) does not keep the timer from being looked at:
/// an upstream that never stops sending, a flood of `100 Continue` heads say, would
/// otherwise hold the request past its deadline for as long as it keeps sending.
async fn before<F: Future>(mut work: Pin<&mut F>, deadline: &mut Deadline) -> Option<F::Output> {
    use tokio::task::coop;
    std::future::poll_fn(|cx| {
        let had_budget = coop::has_budget_remaining();
        if let Poll::Ready(done) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(done));
        }
        let passed = if had_budget && !coop::has_budget_remaining() {
            std::pin::pin!(coop::unconstrained(std::future::poll_fn(|cx| deadline.poll_passed(cx)))).poll(cx)
        } else {
            deadline.poll_passed(cx)
        };
        passed.map(|()| None)
    })
    .await
}

/// Why an exchange on a connection (`reused`, or new) gave no answer head, as the
/// exchange is told.
fn send_error(failed: Failed, reused: bool) -> SendError {
    match failed {
        Failed::Unsent { body, cause } => SendError::Unsent {
            body,
            reused,
            cause: ConnectFailure::Closed(Arc::new(cause)),
        },
        Failed::Exchange(error) => SendError::Exchange { error, reused },
        Failed::Body(error) => SendError::Body(body_error(error)),
    }
}

/// Our request body's own error as the exchange reports it: a limit or the client's
/// doing as itself, anything else ours as an internal fault.
fn body_error(error: Error) -> Error {
    match error {
        Error::PayloadTooLarge { .. } | Error::ClientAbort { .. } | Error::BodyTimeout { .. } => error,
        // Ours, but of no kind the caller is told about.
        other => Error::Internal(Fault::RequestBody(Box::new(other))),
    }
}

/// The connection an exchange is using; handed back for reuse with
/// [`Lease::release`] once the response body has been read to its end. Dropped
/// without that, the connection is not reused.
pub(super) struct Lease {
    client: Rc<Client>,
    index: usize,
    /// The connection's deadline timer, which goes back with it.
    deadline: Deadline,
}

impl Lease {
    /// Where a streamed body read on this connection is pumped.
    pub(super) fn pumps(&self) -> Pumps {
        self.client.pumps.clone()
    }

    /// The exchange is over: the connection under `body` may carry the next request,
    /// if the body was read to its end.
    pub(super) fn release(self, body: WireBody) {
        if let Some(conn) = body.into_idle() {
            self.client.release(self.index, conn, self.deadline);
        }
    }
}

/// Reads a body to its end, refusing more than `limit` bytes. A body that comes in
/// one piece (most small replies) is kept as it came, without a copy.
///
/// # Errors
/// The connection broke (a body cut off before its declared end included), or the
/// body is over `limit`.
pub(super) async fn read_to_end(body: &mut WireBody, limit: usize) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0usize;
    while let Some(piece) = body.frame().await {
        let data = piece.map_err(BodyError::Broken)?;
        len += data.len();
        if len > limit {
            return Err(BodyError::TooLarge { limit });
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(earlier) => {
                buf.reserve(len);
                buf.extend_from_slice(&earlier);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}
