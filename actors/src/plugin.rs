//! The actor that runs a local plugin's handlers: [`PluginActor`], and its message
//! [`Invoke`].

use std::sync::Arc;

use actix::prelude::*;
use futures::future::LocalBoxFuture;
use serde_json::Value;

use crate::api::Args;
use crate::call::{CallContext, CallRemote, Reply};
use crate::ctx::Ctx;
use crate::error::Error;
use crate::plugin_spec::{ApiHandler, LocalApi, PluginSpec};
use crate::sse::{Emitter, Event};
use crate::stream::bridge;

/// Runs one API of this actor's plugin (sent by the [`Router`](crate::Router) on the
/// same arbiter).
#[derive(Debug)]
pub struct Invoke {
    /// The API to run.
    pub api: Arc<LocalApi>,
    /// Its arguments, already bound by name.
    pub args: Args,
    /// The call's context.
    pub ctx: CallContext,
}

impl Message for Invoke {
    type Result = Result<Reply, Error>;
}

/// Hosts one plugin on one arbiter and runs its handlers.
///
/// The router replica of each worker arbiter starts its own `PluginActor` per plugin,
/// so a local call never leaves the thread that accepted the request.
pub struct PluginActor {
    declared: Arc<[String]>,
    config: Arc<Value>,
    name: Arc<str>,
    router: Arc<Recipient<CallRemote>>,
}

impl PluginActor {
    /// An actor for `plugin` whose handlers call other APIs through `router`.
    pub fn new(plugin: Arc<PluginSpec>, router: impl Into<Recipient<CallRemote>>) -> Self {
        PluginActor {
            declared: plugin.meta.required_remote_apis.clone().into(),
            config: plugin.meta.config.clone(),
            name: plugin.meta.name.as_str().into(),
            router: Arc::new(router.into()),
        }
    }
}

impl Actor for PluginActor {
    type Context = Context<Self>;
}

/// The context a plugin's start hook runs in (here, beside the actor that runs the
/// plugin's other handlers, so that `ctx` knows no plugin type).
impl Ctx {
    /// The context `plugin`'s start hook runs in: its name, declarations and config.
    pub fn starting(plugin: &PluginSpec, router: impl Into<Recipient<CallRemote>>) -> Self {
        Ctx::of_plugin(
            plugin.meta.name.as_str().into(),
            plugin.meta.required_remote_apis.clone().into(),
            plugin.meta.config.clone(),
            Arc::new(router.into()),
            CallContext::new(),
        )
    }
}

/// `handler` with a panic turned into [`Error::PluginPanic`]: the call fails as an
/// internal error and the actor (its other calls and streams) lives on. A stream
/// handler runs in the actor's own context, where an uncaught panic would end the
/// actor and every call to the plugin on that worker after it.
fn caught<T: 'static>(
    plugin: Arc<str>,
    handler: LocalBoxFuture<'static, Result<T, Error>>,
) -> impl std::future::Future<Output = Result<T, Error>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(InPlugin(handler)).catch_unwind().map(move |result| {
        result.unwrap_or_else(|payload| {
            Err(Error::PluginPanic {
                plugin: plugin.to_string(),
                message: Error::panic_message(&*payload),
            })
        })
    })
}

thread_local! {
    /// Whether this thread is running a plugin's handler now (see [`in_plugin`]).
    static IN_PLUGIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the code running on this thread is a plugin's handler: a panic hook asks
/// it to tell a plugin's panic (caught, answered as [`Error::PluginPanic`]) from ours.
pub fn in_plugin() -> bool {
    IN_PLUGIN.with(std::cell::Cell::get)
}

/// A handler's future, marked as plugin code while it is polled.
struct InPlugin<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for InPlugin<F> {
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        /// Puts the mark back as it was, even when the poll unwinds.
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                IN_PLUGIN.with(|mark| mark.set(self.0));
            }
        }
        let _restore = Restore(IN_PLUGIN.with(|mark| mark.replace(true)));
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl Handler<Invoke> for PluginActor {
    // The handler's future touches no actor state, so it runs beside other calls.
    type Result = ResponseFuture<Result<Reply, Error>>;

    fn handle(&mut self, msg: Invoke, ctx: &mut Context<Self>) -> Self::Result {
        let cx = Ctx::of_plugin(
            self.name.clone(),
            self.declared.clone(),
            self.config.clone(),
            self.router.clone(),
            msg.ctx.clone(),
        );
        let api_name = msg.api.spec.key.to_string();
        let deadline = msg.ctx.deadline;
        match &msg.api.handler {
            ApiHandler::Call(handler) => {
                let fut = caught(self.name.clone(), handler(msg.args, cx));
                Box::pin(async move {
                    let value = match deadline {
                        Some(at) => tokio::time::timeout_at(at.into(), fut)
                            .await
                            .map_err(|_| Error::Deadline { api: api_name })??,
                        None => fut.await?,
                    };
                    Ok(Reply::Value(value))
                })
            }
            ApiHandler::Stream(handler) => {
                let (sender, rx) = bridge();
                let fut = caught(self.name.clone(), handler(msg.args, cx, Emitter::new(sender.clone())));
                // Stream handlers run in this actor's context: the actor pushes the
                // chunks into the bounded bridge (and outlives its address until its
                // streams end); the stream ends with `finish` or a failure.
                let produce = async move {
                    match fut.await {
                        Ok(()) => {
                            let _ = sender.send(Event::finish().to_bytes()).await;
                        }
                        Err(Error::StreamClosed) => {}
                        Err(e) => sender.fail(e).await,
                    }
                };
                ctx.spawn(produce.into_actor(self));
                Box::pin(async move { Ok(Reply::Stream(rx.started().await?)) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt as _;

    /// A handler's code runs marked as plugin code; its panic comes back as
    /// `PluginPanic` and the mark is gone afterwards, panic or not.
    #[test]
    fn handlers_run_marked_and_panics_are_caught() {
        assert!(!in_plugin());
        let marked = futures::executor::block_on(caught(
            "p".into(),
            async { Ok::<_, Error>(in_plugin()) }.boxed_local(),
        ));
        assert!(marked.unwrap());
        assert!(!in_plugin());
        let panicked = futures::executor::block_on(caught::<()>("p".into(), async { panic!("boom") }.boxed_local()));
        assert!(matches!(panicked, Err(Error::PluginPanic { ref message, .. }) if message == "boom"), "{panicked:?}");
        assert!(!in_plugin(), "the mark is put back after a panic");
    }
}
