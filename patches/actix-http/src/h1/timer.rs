use std::{fmt, future::Future, pin::Pin, task::Context};

use tokio::time::{sleep_until, Instant, Sleep};
use tracing::trace;

#[derive(Debug)]
pub(super) enum TimerState {
    Disabled,
    // framex-rs patch: an inactive timer keeps the `Sleep` it had, to be reset by the
    // next `set` instead of a new one allocated and registered: a connection's
    // keep-alive timer is set after every response and cleared by every request. The
    // kept `Sleep` stays registered for its old deadline; if that passes first, the
    // connection is woken once for nothing.
    Inactive { spare: Option<Pin<Box<Sleep>>> },
    // framex-rs patch: `at`, the deadline the timer stands for; the `Sleep` goes off no
    // later than it (see `set`).
    Active { timer: Pin<Box<Sleep>>, at: Instant },
}

impl TimerState {
    pub(super) fn new(enabled: bool) -> Self {
        if enabled {
            Self::Inactive { spare: None }
        } else {
            Self::Disabled
        }
    }

    pub(super) fn is_enabled(&self) -> bool {
        matches!(self, Self::Active { .. } | Self::Inactive { .. })
    }

    // framex-rs patch: whether it runs (set and not cleared).
    pub(super) fn is_active(&self) -> bool {
        matches!(self, Self::Active { .. })
    }

    // framex-rs patch: takes the deadline (was a `Sleep`), reusing the timer's own.
    pub(super) fn set(&mut self, deadline: Instant, line: u32) {
        if matches!(self, Self::Disabled) {
            trace!("setting disabled timer from line {}", line);
        }

        let timer = match std::mem::replace(self, Self::Disabled) {
            Self::Active { mut timer, .. } | Self::Inactive { spare: Some(mut timer) } => {
                // framex-rs patch: a later deadline than the kept timer's is only noted;
                // the timer, going off at the earlier one, is moved then (`poll_expired`).
                // Moving a registered tokio timer costs about 80 instructions and three
                // atomic operations, and the keep-alive timer is set after every answer.
                if deadline < timer.deadline() {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            Self::Inactive { spare: None } | Self::Disabled => Box::pin(sleep_until(deadline)),
        };
        *self = Self::Active { timer, at: deadline };
    }

    pub(super) fn set_and_init(&mut self, cx: &mut Context<'_>, deadline: Instant, line: u32) {
        self.set(deadline, line);
        self.init(cx);
    }

    pub(super) fn clear(&mut self, line: u32) {
        if matches!(self, Self::Disabled) {
            trace!("trying to clear a disabled timer from line {}", line);
        }

        if matches!(self, Self::Inactive { .. }) {
            trace!("trying to clear an inactive timer from line {}", line);
        }

        *self = match std::mem::replace(self, Self::Disabled) {
            Self::Active { timer, .. } => Self::Inactive { spare: Some(timer) },
            Self::Inactive { spare } => Self::Inactive { spare },
            Self::Disabled => Self::Inactive { spare: None },
        };
    }

    pub(super) fn init(&mut self, cx: &mut Context<'_>) {
        // framex-rs patch: through `poll_expired`, so that a kept timer that went off at
        // an earlier deadline is moved to this one and waited on.
        let _ = self.poll_expired(cx);
    }

    // framex-rs patch: whether an active timer's deadline has passed. The `Sleep` may go
    // off at an earlier deadline it kept (see `set`): it is then moved to this one.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Self::Active { timer, at } = self else {
            return false;
        };
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            debug_assert!(timer.deadline() <= *at, "the timer goes off no later than its deadline");
            if timer.deadline() == *at {
                return true;
            }
            timer.as_mut().reset(*at);
        }
    }
}

impl fmt::Display for TimerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerState::Disabled => f.write_str("timer is disabled"),
            TimerState::Inactive { .. } => f.write_str("timer is inactive"),
            TimerState::Active { at, .. } => {
                let deadline = *at;
                let now = Instant::now();

                if deadline < now {
                    f.write_str("timer is active and has reached deadline")
                } else {
                    write!(
                        f,
                        "timer is active and due to expire in {} milliseconds",
                        ((deadline - now).as_secs_f32() * 1000.0)
                    )
                }
            }
        }
    }
}
