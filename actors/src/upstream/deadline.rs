//! The deadline timer an upstream connection keeps from one request to the next.
//!
//! A timer per request was put into the runtime's timer wheel and taken out again,
//! each under the wheel's lock (about 600 instructions of a proxied request). Kept with
//! the connection, a timer only has to be moved. Moving a tokio timer to a later
//! deadline still costs about 80 instructions and three atomic operations, so a later
//! deadline is only noted: the timer goes off at the earlier one, and is moved then,
//! once per deadline's length at most rather than once per request.
//!
//! A timer that goes off while its connection is idle wakes the task that last waited
//! on it, which finds nothing to do; until then, or until the connection's next
//! request, the timer keeps that task's waker, and so the task's own record (a quarter
//! of a KiB) once it has ended.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// A connection's deadline timer (see the module docs).
pub(super) struct Deadline {
    timer: Pin<Box<Sleep>>,
    /// The deadline of the request under way; the timer is set no later than it.
    at: Instant,
}

impl Deadline {
    /// A timer for a new connection's first request, due `at`.
    pub(super) fn new(at: Instant) -> Self {
        Deadline { timer: Box::pin(tokio::time::sleep_until(at)), at }
    }

    /// The next request's deadline: an earlier one than the timer's moves the timer,
    /// a later one is only noted.
    pub(super) fn set(&mut self, at: Instant) {
        self.at = at;
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
        debug_assert!(self.timer.deadline() <= self.at, "the timer goes off no later than the deadline");
    }

    /// Ready once the deadline has passed. A timer that goes off at an earlier
    /// request's deadline is moved to this one's and waited on again.
    pub(super) fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            std::task::ready!(self.timer.as_mut().poll(cx));
            debug_assert!(self.timer.deadline() <= self.at, "the timer goes off no later than the deadline");
            if self.timer.deadline() == self.at {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(self.at);
        }
    }
}
