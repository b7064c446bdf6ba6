//! Where a streamed upstream body is pumped: in its [`UpstreamPool`] actor's context.
//!
//! A body too large (or too open-ended) to read whole is copied into the chunk bridge
//! by a *pump* future (`relay::pump`). The exchange that meets the body may run on the
//! pool's actor (a `CallRemote`) or on the HTTP worker's fast path; either way the pump
//! is handed to the pool's actor through [`Pumps`], and the actor runs it in its own
//! context (`ctx.spawn`), so the chunks are pushed by the actor that owns the
//! connection, and a retired pool stops only once its last stream has ended.
//!
//! A replica with no actor (a request that matched a table since replaced, or the
//! moments after its actor stopped) runs the pump as a task of its own on the same
//! arbiter: the one exception, and no stream is refused for it.
//!
//! [`UpstreamPool`]: super::UpstreamPool

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::future::LocalBoxFuture;

/// A future copying one upstream body into its bridge.
pub(super) type Pump = LocalBoxFuture<'static, ()>;

/// The way from a replica's exchanges to its actor's context. Cloning gives another
/// handle to the same way (not `Send`: it lives on one arbiter).
#[derive(Clone, Default)]
pub(super) struct Pumps(Rc<RefCell<Option<mpsc::UnboundedSender<Pump>>>>);

impl Pumps {
    /// Opens the way and returns its far end, for the actor's `ctx.add_stream`. A way
    /// opened before is replaced (its actor's stream ends).
    pub(super) fn attach(&self) -> mpsc::UnboundedReceiver<Pump> {
        let (tx, rx) = mpsc::unbounded();
        *self.0.borrow_mut() = Some(tx);
        rx
    }

    /// Closes the way: the actor's stream of pumps ends once the ones sent are taken.
    pub(super) fn close(&self) {
        if let Some(tx) = self.0.borrow_mut().take() {
            tx.close_channel();
        }
    }

    /// Runs `pump` in the actor's context, or as a task of its own when the replica
    /// has no actor (see the module doc).
    pub(super) fn run(&self, pump: Pump) {
        let pump = match self.0.borrow().as_ref() {
            // Unbounded on purpose: one item per streamed response, not per chunk (the
            // chunks themselves go through the bounded bridge).
            Some(tx) => match tx.unbounded_send(pump) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => pump,
        };
        actix_rt::spawn(pump);
    }
}
