//! One request's exchange with a pool, as small steps: `plan` fixes what is sent,
//! `run` makes one `attempt` after another (pick an endpoint, send); an answer is
//! relayed or, for a 502–504, retried (`answered`), and a body that broke off while
//! read whole may be retried (`relayed`); a failure is classified once into a
//! [`Failure`] that says what may follow ([`Retry`]), and `failed` decides. Each step
//! says whether the exchange ends (`ControlFlow::Break`) or where the next attempt
//! goes.
//!
//! The rules, all here:
//! - a request that never reached an endpoint (no connection) goes to another one,
//!   whatever its method;
//! - a request an idle keep-alive connection refused before writing it, or an
//!   idempotent one lost on such a connection, goes once more to the same endpoint on a
//!   fresh connection — the endpoint did nothing wrong, so it is not counted against it;
//! - an idempotent request also goes to another endpoint after a 502, 503 or 504 or a
//!   connection lost before the answer;
//! - only bodies held whole are replayed; every attempt shares the call's deadline;
//! - a request that never reached an endpoint, or an idempotent one whose connection
//!   closed before any answer (the endpoint died: the failure ejects it), goes to an
//!   untried healthy one without drawing on the pool's retry budget (it adds no load
//!   to a failing endpoint); other retries (timeouts, 5xx, broken replies), and these
//!   when no healthy endpoint is left, stay within it;
//! - the first failure that ejects an endpoint moves every request still opening a
//!   connection to it (or about to open a fresh one) to a healthy endpoint: they have
//!   not reached it, so they draw on no budget either.

use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;

use http::header::HeaderMap;
use http::Method;
use tokio::time::Instant;

use super::client::{Lease, SendError};
use super::out_body::OutBody;
use super::h1::{Answer, Outbound};
use super::replica::PoolReplica;
use crate::wire_error::WireError;
use super::relay::{relay, InFlight};
use super::{
    Body, ForwardRequest, ForwardResponse, PoolShared, RetryPermit, UpstreamTarget,
};
use crate::error::{BrokenReply, ConnectFailure, Error};
use crate::peer::Peer;
use crate::request_id::RequestId;
use crate::metrics::FailureKind;
use super::attempt::AttemptSpan;

/// What a failed attempt allows next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Nothing: the error goes to the caller.
    No,
    /// The same endpoint once more, on a fresh connection (not the endpoint's fault).
    FreshConnection,
    /// Another endpoint, if attempts, endpoints and the retry budget allow it.
    OtherEndpoint,
}

/// A failed attempt, classified once.
struct Failure {
    /// What to tell the caller if nothing follows.
    error: Error,
    /// What may follow.
    retry: Retry,
    /// Whether the endpoint is to blame (its counters and health record it).
    blame: bool,
    /// How it failed, for the endpoint's failure counters.
    kind: FailureKind,
    /// The request's body, when the request came back unsent (it goes again).
    unsent: Option<OutBody>,
    /// Whether the retry would draw on the budget: the request may have reached the
    /// endpoint and been acted on (not so: never sent, or idempotent and lost before
    /// any answer). Retries without it draw on the budget only when no healthy
    /// endpoint is left.
    reached: bool,
}

impl Failure {
    /// No answer within the call's deadline: the endpoint is blamed, nothing follows
    /// (the deadline is the call's, shared by every attempt).
    #[cold]
    fn timed_out(endpoint: &Peer, timeout: std::time::Duration) -> Self {
        Failure {
            error: Error::UpstreamTimeout {
                upstream: endpoint.clone(),
                seconds: timeout.as_secs_f64(),
            },
            retry: Retry::No,
            blame: true,
            kind: FailureKind::Timeout,
            unsent: None,
            reached: true,
        }
    }
}

/// One attempt under way: the endpoint it went to and its in-flight count.
struct Attempt<'a> {
    /// The endpoint's index in the pool.
    index: usize,
    /// The endpoint, as errors and logs name it.
    endpoint: &'a Peer,
    /// Which attempt of the exchange this is (1 for the first).
    number: u32,
    /// The endpoint's in-flight count, held until the attempt (or its body) ends.
    guard: InFlight,
}

/// A reply as the caller gets it: with the endpoint that answered and the attempts
/// made (for the access log).
fn answered_by(reply: Result<ForwardResponse, Error>, index: usize, attempts: u32) -> Result<ForwardResponse, Error> {
    reply.map(|mut response| {
        response.endpoint = index;
        response.attempts = attempts;
        response
    })
}

/// What one exchange knows about its request, fixed before the first attempt.
pub(super) struct Plan {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    added: super::AddedFields,
    /// The body, for the next attempt (a stream can be sent once).
    body: Body,
    deadline: Instant,
    /// When the plan was made: the first attempt's start (it follows at once), so
    /// that it reads no clock of its own.
    made: Instant,
    idempotent: bool,
    /// Whether the body can be sent again (held whole, or none).
    replayable: bool,
    /// The hop count the upstream is told (ours plus one).
    hops: u32,
    /// The request id, if it can go as a header value (visible ASCII).
    request_id: Option<RequestId>,
    /// The caller's span: each attempt is a child of it.
    trace: crate::trace::TraceContext,
}

impl Plan {
    fn new(request: ForwardRequest, timeout: std::time::Duration) -> Self {
        let ForwardRequest {
            method,
            path_and_query,
            headers,
            added,
            body,
            ctx,
        } = request;
        // The call's deadline, or `timeout` from now if that is sooner (one clock read;
        // a timeout past a century is a century, which the clock can add).
        let made = Instant::now();
        let until = made + timeout.min(std::time::Duration::from_secs(100 * 365 * 86_400));
        let deadline = ctx.deadline.map_or(until, |d| Instant::from_std(d).min(until));
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        Plan {
            replayable: !matches!(body, Body::Stream(_)),
            method,
            path_and_query,
            headers,
            added,
            body,
            deadline,
            made,
            idempotent,
            hops: ctx.hops + 1,
            request_id: Some(ctx.request_id).filter(RequestId::is_header_safe),
            trace: ctx.trace,
        }
    }

    /// The body of the next attempt: a copy of a whole body, or the stream itself.
    fn take_body(&mut self) -> Body {
        match &self.body {
            Body::Empty => Body::Empty,
            Body::Full(bytes) => Body::Full(bytes.clone()),
            Body::Stream(_) => std::mem::replace(&mut self.body, Body::Empty),
        }
    }
}

/// A path and query as the request line carries it: as it is when plainly visible
/// ASCII without a fragment (nearly always); else it must pass as a URI's path and
/// query and goes as that — a fragment dropped, as hyper did, so that nothing after a
/// `#` (a line break, say) reaches the request line.
fn request_target(path_and_query: String) -> Result<String, http::Error> {
    if path_and_query.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Ok(path_and_query);
    }
    Ok(http::uri::PathAndQuery::try_from(path_and_query.as_str())?.as_str().to_owned())
}

/// What an attempt came to: an answer to relay (or judge), or the next step.
enum Sent<'a> {
    /// The endpoint answered.
    Answered(Attempt<'a>, Answer, Lease),
    /// It failed: the exchange ends, or the next attempt goes where this says.
    Failed(ControlFlow<Result<ForwardResponse, Error>, Next>),
}

/// What an answer calls for.
enum Judged {
    /// Relay it; a body that breaks off may go again elsewhere when `retry_broken`.
    Relay { retry_broken: bool },
    /// Another endpoint (a 502–504 to an idempotent request, within the budget).
    Retry,
}

/// Where the next attempt goes.
enum Next {
    /// An endpoint the policy picks, not tried yet.
    Pick,
    /// Endpoint `index` again, on a fresh connection.
    Fresh(usize),
}

/// Endpoints tried, in order: inline up to four (a pool retries once by default), so that
/// an exchange allocates nothing to note them.
pub type Tried = smallvec::SmallVec<[usize; 4]>;

/// Where one exchange went, for the access log: the endpoints it tried, in order
/// (indexes into the pool's `endpoints`), and the attempts it made (a retry on a fresh
/// connection to the same endpoint is an attempt of its own).
#[derive(Debug, Default)]
pub struct Attempts {
    /// Endpoints tried, in order; the last one answered or failed last.
    pub endpoints: Tried,
    /// Attempts made.
    pub count: u32,
}

/// One request/response exchange with a pool, made on the current arbiter: the
/// replica's parts borrowed, for as long as the exchange runs (its future owns the
/// replica).
pub(super) struct Exchange<'p> {
    /// The pool's state, this arbiter's connections and series.
    replica: &'p Rc<PoolReplica>,
    /// Endpoints tried so far, in order.
    tried: Tried,
    /// Leave to retry, once taken (held for the rest of the exchange).
    permit: Option<RetryPermit>,
    /// Whether the one fresh-connection retry was used.
    fresh_used: bool,
    /// Attempts made so far (fresh-connection ones included).
    attempts: u32,
}

impl<'p> Exchange<'p> {
    pub(super) fn new(replica: &'p Rc<PoolReplica>) -> Self {
        Exchange {
            replica,
            tried: Tried::new(),
            permit: None,
            fresh_used: false,
            attempts: 0,
        }
    }

    /// The pool's state, lent for as long as the replica is.
    fn shared(&self) -> &'p Arc<PoolShared> {
        &self.replica.shared
    }

    /// Where the exchange went: the endpoints tried and the attempts made.
    pub(super) fn into_attempts(self) -> Attempts {
        Attempts {
            endpoints: self.tried,
            count: self.attempts,
        }
    }

    /// What the exchange will send: `request` with its target checked (a path and
    /// query that cannot go on a request line is refused before any connection) and
    /// its deadline fixed.
    ///
    /// Made before the exchange's future, which then holds the request once, as the
    /// plan: an `async fn` keeps its arguments for its whole life, and again where it
    /// moves them, so the request taken by value would be held three times.
    pub(super) fn plan(shared: &PoolShared, mut request: ForwardRequest) -> Result<Plan, Error> {
        request.path_and_query = request_target(std::mem::take(&mut request.path_and_query)).map_err(|e| {
            Error::UpstreamConnect { upstream: shared.peer().clone(), cause: ConnectFailure::Request(Arc::new(e)) }
        })?;
        Ok(Plan::new(request, shared.config.timeout))
    }

    /// Sends the planned request to an endpoint of the pool and returns the response
    /// head with its body (whole when small, else streaming), trying again as the
    /// module doc says: one [`attempt`](Self::attempt) after another until one ends
    /// the exchange.
    pub(super) async fn run(&mut self, target: &UpstreamTarget, plan: &mut Plan) -> Result<ForwardResponse, Error> {
        // Held apart from `self`, which the steps borrow mutably.
        let shared = self.shared();
        let mut next = Next::Pick;
        loop {
            // The answer is awaited here, not in the attempt, so that the send's state
            // and the relay's are not both held (the future is the larger of the two).
            let step = match self.attempt(shared, target, plan, next).await {
                Sent::Answered(attempt, response, lease) => {
                    let Attempt { index, endpoint, number, guard } = attempt;
                    match self.answered(plan, &guard, endpoint, response.status()) {
                        Judged::Retry => ControlFlow::Continue(Next::Pick),
                        Judged::Relay { retry_broken } => {
                            let reply = relay(response, lease, &plan.method, endpoint, guard, shared.config.timeout).await;
                            self.relayed(plan, reply, retry_broken, index, number)
                        }
                    }
                }
                Sent::Failed(step) => step,
            };
            match step {
                ControlFlow::Break(reply) => return reply,
                ControlFlow::Continue(then) => next = then,
            }
        }
    }

    /// One attempt: an endpoint (picked, or the same one again), the request built (or
    /// the one handed back), sent within the call's deadline; then the answer (for
    /// [`answered`](Self::answered)), or the failure, which says whether the exchange
    /// ends (`Break`) or where the next attempt goes.
    async fn attempt<'s>(
        &mut self,
        shared: &'s Arc<PoolShared>,
        target: &UpstreamTarget,
        plan: &mut Plan,
        next: Next,
    ) -> Sent<'s> {
        self.attempts += 1;
        let (index, fresh) = match next {
            Next::Pick => match self.pick() {
                Ok(index) => (index, false),
                Err(error) => return Sent::Failed(ControlFlow::Break(Err(error))),
            },
            Next::Fresh(index) => (index, true),
        };
        let attempt = Attempt {
            index,
            // Errors name the endpoint that failed, not the whole pool.
            endpoint: shared.endpoint_peer(index),
            number: self.attempts,
            guard: InFlight::start(self.replica, index),
        };
        self.replica.metrics.request(index);
        // Each attempt is a span of its own, the parent of what the upstream does.
        let trace = plan.trace.child();
        let span = AttemptSpan::start(&trace, attempt.number);
        let body = OutBody::from(plan.take_body());
        let endpoint = self.replica.client.endpoint(index);
        // The prefix was checked with the URL, the path once for the exchange.
        let path = match endpoint.prefix.as_str() {
            "" => std::borrow::Cow::Borrowed(plan.path_and_query.as_str()),
            prefix => std::borrow::Cow::Owned(format!("{prefix}{}", plan.path_and_query)),
        };
        let request = Outbound {
            method: &plan.method,
            path: &path,
            headers: &plan.headers,
            added: &plan.added,
            host: &endpoint.host,
            authorization: target.auth.for_endpoint(index),
            hops: plan.hops,
            request_id: plan.request_id.as_deref(),
            traceparent: trace.traceparent(),
            tracestate: trace.state.as_deref(),
        };
        let started = if attempt.number == 1 { plan.made } else { Instant::now() };
        let health = &shared.stats[index].health;
        let sent = self.replica.client.send(index, &request, body, fresh, plan.deadline, health).await;
        let failure = match sent {
            Ok((response, lease)) => {
                self.replica.metrics.answered_in(index, started.elapsed().as_secs_f64());
                span.end(&plan.method, attempt.endpoint.as_str(), Some(response.status().as_u16()), None);
                return Sent::Answered(attempt, response, lease);
            }
            Err(error) => self.classify(error, attempt.endpoint, plan),
        };
        span.end(&plan.method, attempt.endpoint.as_str(), None, Some(failure.kind.as_str()));
        Sent::Failed(self.failed(plan, attempt, failure))
    }

    /// The endpoint answered with `status`: the answer is relayed, unless it is a
    /// 502–504 and an idempotent request may go to another endpoint.
    fn answered(&mut self, plan: &Plan, guard: &InFlight, endpoint: &Peer, status: http::StatusCode) -> Judged {
        if !status.is_server_error() {
            guard.succeeded();
            return Judged::Relay { retry_broken: plan.idempotent };
        }
        guard.failed(FailureKind::Status5xx);
        let gateway = matches!(status.as_u16(), 502..=504);
        if plan.idempotent && gateway && self.may_retry(plan.replayable, true) {
            log::debug!("retrying {} on another endpoint after {status} from {endpoint}", plan.method);
            guard.metrics().retries.inc();
            return Judged::Retry;
        }
        // A 5xx relayed is the answer, whatever becomes of its body.
        Judged::Relay { retry_broken: false }
    }

    /// The relayed answer ends the exchange, unless its body, read whole, broke off
    /// (the upstream died mid-reply; nothing has reached the client yet) and the
    /// request may go to another endpoint (`retry_broken`, and the retry budget).
    fn relayed(
        &mut self,
        plan: &Plan,
        reply: Result<ForwardResponse, Error>,
        retry_broken: bool,
        index: usize,
        number: u32,
    ) -> ControlFlow<Result<ForwardResponse, Error>, Next> {
        if let Err(error @ Error::UpstreamReply { .. }) = &reply {
            if retry_broken && self.may_retry(plan.replayable, true) {
                log::debug!("retrying {} on another endpoint after: {}", plan.method, crate::Escaped(error));
                self.shared().metrics[index].retries.inc();
                return ControlFlow::Continue(Next::Pick);
            }
        }
        ControlFlow::Break(answered_by(reply, index, number))
    }

    /// The attempt failed (`failure`, classified): the endpoint blamed or not, then the
    /// same endpoint on a fresh connection, another endpoint, or the error to the caller.
    #[cold]
    fn failed(
        &mut self,
        plan: &mut Plan,
        attempt: Attempt<'_>,
        failure: Failure,
    ) -> ControlFlow<Result<ForwardResponse, Error>, Next> {
        let Attempt { index, endpoint, guard, .. } = attempt;
        let Failure {
            error,
            retry,
            blame,
            kind,
            unsent,
            reached,
        } = failure;
        if blame {
            guard.failed(kind);
        }
        match retry {
            // Another request's failure ejected the endpoint meanwhile: a healthy
            // one rather than a fresh connection to it.
            Retry::FreshConnection
                if !self.shared().stats[index].health.is_available()
                    && self.shared().healthy_untried(&self.tried)
                    && self.may_retry(plan.replayable || unsent.is_some(), false) =>
            {
                log::debug!("{} to {endpoint}: the endpoint was ejected; retrying on another", plan.method);
                guard.metrics().retries.inc();
                if let Some(body) = unsent {
                    plan.body = Body::from(body);
                }
                ControlFlow::Continue(Next::Pick)
            }
            Retry::FreshConnection => {
                self.fresh_used = true;
                guard.metrics().retries.inc();
                log::debug!("{} to {endpoint} lost on a reused connection ({}); again on a fresh one", plan.method, crate::Escaped(&error));
                if let Some(body) = unsent {
                    plan.body = Body::from(body);
                }
                ControlFlow::Continue(Next::Fresh(index))
            }
            Retry::OtherEndpoint if self.may_retry(plan.replayable || unsent.is_some(), reached) => {
                log::debug!("retrying {} on another endpoint after: {}", plan.method, crate::Escaped(&error));
                guard.metrics().retries.inc();
                if let Some(body) = unsent {
                    // The body was never consumed.
                    plan.body = Body::from(body);
                }
                ControlFlow::Continue(Next::Pick)
            }
            _ => ControlFlow::Break(Err(error)),
        }
    }

    /// Classifies a failed send: which error, who is to blame, what may follow.
    #[cold]
    fn classify(&self, error: SendError, endpoint: &Peer, plan: &Plan) -> Failure {
        let upstream = endpoint.clone();
        match error {
            // Given up while connecting, the endpoint ejected by another request's
            // failure: not this request's evidence against it.
            SendError::Connect(ConnectFailure::Ejected) => Failure {
                error: Error::UpstreamConnect { upstream, cause: ConnectFailure::Ejected },
                retry: Retry::OtherEndpoint,
                blame: false,
                kind: FailureKind::Connect,
                unsent: None,
                reached: false,
            },
            SendError::Connect(cause) => Failure {
                error: Error::UpstreamConnect { upstream, cause },
                retry: Retry::OtherEndpoint,
                blame: true,
                kind: FailureKind::Connect,
                unsent: None,
                reached: false,
            },
            SendError::Unsent { body, reused: true, cause } if !self.fresh_used => Failure {
                error: Error::UpstreamConnect { upstream, cause },
                retry: Retry::FreshConnection,
                blame: false,
                kind: FailureKind::Reset,
                unsent: Some(body),
                reached: false,
            },
            SendError::Unsent { body, cause, .. } => Failure {
                error: Error::UpstreamConnect { upstream, cause },
                retry: Retry::OtherEndpoint,
                blame: true,
                kind: FailureKind::Connect,
                unsent: Some(body),
                reached: false,
            },
            SendError::Exchange { error, reused } => self.lost(error, reused, upstream, plan),
            // Our side's body failed: not the endpoint's fault, nothing to retry.
            SendError::Body(error) => Failure {
                error,
                retry: Retry::No,
                blame: false,
                kind: FailureKind::BrokenBody,
                unsent: None,
                reached: true,
            },
            SendError::TimedOut => Failure::timed_out(&upstream, self.shared().config.timeout),
        }
    }

    /// Classifies a connection lost once hyper had the request (`reused`: a kept-alive
    /// one): whether it goes again, fresh or elsewhere, and whether it reached the
    /// endpoint.
    #[cold]
    fn lost(&self, error: WireError, reused: bool, upstream: Peer, plan: &Plan) -> Failure {
        let lost = Lost::of(&error);
        let error = Error::UpstreamReply {
            upstream,
            reason: lost.reason(error),
        };
        // The upstream closed a connection we reused (a graceful shutdown, an idle
        // timeout): an idempotent request goes once more on a fresh one.
        if reused && lost != Lost::Other && plan.idempotent && plan.replayable && !self.fresh_used {
            return Failure {
                error,
                retry: Retry::FreshConnection,
                blame: false,
                kind: FailureKind::Reset,
                unsent: None,
                reached: lost != Lost::OnWrite,
            };
        }
        Failure {
            error,
            // It may have acted on the request: only idempotent ones go again (hyper
            // kept the request back if none of it was written).
            retry: if plan.idempotent { Retry::OtherEndpoint } else { Retry::No },
            blame: true,
            kind: FailureKind::Reset,
            unsent: None,
            // A write the upstream reset: it had closed the connection before reading
            // the whole request, so it cannot have answered it. An idempotent request
            // on a connection closed before any answer (the upstream died with it)
            // goes to a healthy endpoint outside the budget too: the failure ejected
            // this one, and going again is safe.
            reached: !(plan.idempotent && lost != Lost::Other),
        }
    }

    /// The next endpoint per the pool's policy, not tried yet.
    fn pick(&mut self) -> Result<usize, Error> {
        let Some(index) = self.shared().pick(&self.tried, self.replica.client.next_turn()) else {
            self.shared().pool_metrics.saturated.inc();
            return Err(Error::Overloaded {
                upstream: self.shared().peer().clone(),
                retry_after: 1,
            });
        };
        self.tried.push(index);
        Ok(index)
    }

    /// Whether another endpoint may be tried: the body can go again (`replayable`),
    /// attempts and endpoints are left, and either the request never `reached` the
    /// endpoint and a healthy one is left untried (no budget drawn), or the pool's
    /// retry budget has room.
    fn may_retry(&mut self, replayable: bool, reached: bool) -> bool {
        let config = &self.shared().config;
        let allowed = replayable
            && self.tried.len() <= config.retries as usize
            && self.tried.len() < config.endpoints.len();
        if !allowed {
            return false;
        }
        if !reached && self.shared().healthy_untried(&self.tried) {
            self.shared().pool_metrics.retries_not_sent.inc();
            return true;
        }
        if self.permit.is_none() {
            self.permit = self.shared().retry_permit();
            if self.permit.is_none() {
                self.shared().pool_metrics.budget_exhausted.inc();
                log::warn!("upstream {}: retry budget spent, not retrying", self.shared().name());
            }
        }
        self.permit.is_some()
    }
}

/// How a connection was lost once the request was on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lost {
    /// Writing the request failed: the upstream had reset or closed the connection.
    OnWrite,
    /// The upstream closed (or reset) the connection before a complete answer (no
    /// reply at all, or a cut-off head).
    BeforeAnswer,
    /// Anything else (a broken reply, a reset while reading it).
    Other,
}

impl Lost {
    fn of(error: &WireError) -> Lost {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match error {
            WireError::ClosedBeforeHead => Lost::BeforeAnswer,
            WireError::Write(e) if matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) => Lost::OnWrite,
            // A reset while waiting for the head: the upstream closed the connection
            // without answering (a graceful shutdown closing what it took for idle).
            WireError::Read(e) if e.kind() == ConnectionReset => Lost::BeforeAnswer,
            _ => Lost::Other,
        }
    }

    fn reason(self, error: WireError) -> BrokenReply {
        match self {
            Lost::OnWrite => BrokenReply::ResetOnWrite(error),
            Lost::BeforeAnswer => BrokenReply::ClosedBeforeAnswer(error),
            Lost::Other => BrokenReply::of_exchange(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallContext;

    fn plan(method: Method, body: Body) -> Plan {
        Plan::new(
            ForwardRequest {
                method,
                path_and_query: "/x".to_owned(),
                headers: HeaderMap::new(),
                added: Vec::new(),
                body,
                ctx: CallContext::new(),
            },
            std::time::Duration::from_secs(1),
        )
    }

    #[test]
    fn only_idempotent_methods_and_whole_bodies_are_replayed() {
        assert!(plan(Method::GET, Body::Empty).idempotent);
        assert!(plan(Method::PUT, Body::Empty).idempotent);
        assert!(!plan(Method::POST, Body::Empty).idempotent);
        assert!(!plan(Method::PATCH, Body::Empty).idempotent);
        let (_, stream) = crate::stream::bridge();
        let mut streamed = plan(Method::PUT, Body::Stream(stream));
        assert!(!streamed.replayable);
        assert!(matches!(streamed.take_body(), Body::Stream(_)));
        let mut whole = plan(Method::PUT, Body::Full(bytes::Bytes::from_static(b"ab")));
        assert!(matches!(whole.take_body(), Body::Full(b) if &b[..] == b"ab"));
        assert!(whole.replayable, "a whole body stays for the next attempt");
    }

    /// An exchange on a one-endpoint pool (nothing listens: `classify` sends nothing).
    fn exchange() -> Exchange<'static> {
        let shared = PoolShared::new(super::super::PoolConfig::single("http://127.0.0.1:9".parse().unwrap()));
        // Leaked: a test's exchange borrows its replica for the rest of the test.
        Exchange::new(Box::leak(Box::new(Rc::new(PoolReplica::new(&shared)))))
    }

    fn refused() -> ConnectFailure {
        ConnectFailure::Tcp(Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)))
    }

    fn unsent(reused: bool) -> SendError {
        SendError::Unsent { body: OutBody::Empty, reused, cause: refused() }
    }

    /// No connection: the endpoint is blamed, another may be tried, nothing was sent.
    #[actix_rt::test]
    async fn a_failed_connect_blames_the_endpoint_and_moves_on() {
        let plan = plan(Method::POST, Body::Empty);
        let exchange = exchange();
        let endpoint = exchange.shared().endpoint_peer(0).clone();
        let failure = exchange.classify(SendError::Connect(refused()), &endpoint, &plan);
        assert_eq!(failure.retry, Retry::OtherEndpoint, "nothing was sent: even a POST may go elsewhere");
        assert!(failure.blame && !failure.reached && failure.unsent.is_none());
        assert!(matches!(failure.kind, FailureKind::Connect));
        assert!(matches!(&failure.error, Error::UpstreamConnect { upstream: Peer::Endpoint(e), .. } if e.as_str() == "http://127.0.0.1:9"));
    }

    /// A reused connection the upstream had closed: the request comes back whole and
    /// goes once on a fresh connection, the endpoint not blamed; a second time it is.
    #[actix_rt::test]
    async fn an_unsent_request_on_a_reused_connection_goes_once_more_fresh() {
        let plan = plan(Method::POST, Body::Empty);
        let mut exchange = exchange();
        let e = exchange.shared().endpoint_peer(0).clone();
        let first = exchange.classify(unsent(true), &e, &plan);
        assert_eq!(first.retry, Retry::FreshConnection);
        assert!(!first.blame && !first.reached && first.unsent.is_some(), "handed back, unblamed");
        exchange.fresh_used = true;
        let second = exchange.classify(unsent(true), &e, &plan);
        assert_eq!(second.retry, Retry::OtherEndpoint, "the one fresh retry is spent");
        assert!(second.blame && second.unsent.is_some());
        let fresh = exchange.classify(unsent(false), &e, &plan);
        assert_eq!(fresh.retry, Retry::OtherEndpoint, "a fresh connection refusing is the endpoint's doing");
        assert!(fresh.blame);
    }

    /// Our own request body failing is nobody's fault upstream and is not retried.
    #[actix_rt::test]
    async fn our_body_failing_is_not_retried_or_blamed() {
        let plan = plan(Method::GET, Body::Empty);
        let exchange = exchange();
        let e = exchange.shared().endpoint_peer(0).clone();
        let failure = exchange.classify(SendError::Body(Error::PayloadTooLarge { limit: 1 }), &e, &plan);
        assert_eq!(failure.retry, Retry::No);
        assert!(!failure.blame && failure.reached);
        assert!(matches!(failure.kind, FailureKind::BrokenBody));
        assert!(matches!(failure.error, Error::PayloadTooLarge { limit: 1 }));
    }
}
