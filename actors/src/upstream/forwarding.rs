//! How a pool's replica forwards: a matched HTTP request as it is
//! ([`PoolReplica::forward`]), or a `call_remote_api` call mapped onto its signature
//! ([`PoolReplica::call`]). Each is one [`Exchange`] on the replica's connections.

use std::future::Future;
use std::rc::Rc;

use futures::FutureExt as _;

use super::exchange::{Attempts, Exchange};
use super::replica::PoolReplica;
use super::{reply, request, ForwardRequest, ForwardResponse, UpstreamTarget};
use crate::api::{ApiSpec, Args, BodySpec};
use crate::call::{CallContext, Reply};
use crate::error::Error;

impl PoolReplica {
    /// Forwards `request` as it is (faithful forwarding of a matched HTTP route). The
    /// call's deadline runs from this call (see [`PoolReplica::forward_noted`]).
    ///
    /// # Errors
    /// Unreachable endpoints, broken replies, deadlines, saturation (503) and our own
    /// request body failing (413, 400, 408) as [`Error`]s.
    pub fn forward(
        self: Rc<Self>,
        target: &UpstreamTarget,
        request: ForwardRequest,
    ) -> impl Future<Output = Result<ForwardResponse, Error>> + '_ {
        // Mapped, not awaited in an `async` block, which would hold the exchange's
        // future twice (captured, then moved to be awaited).
        self.forward_noted(target, request).map(|(result, _)| result)
    }

    /// As [`PoolReplica::forward`], and says where the request went, failed or not
    /// (for the access log).
    ///
    /// Not an `async fn`: the future holds the request once, as the exchange's plan
    /// (an `async fn` would also hold the request it was given, for its whole life).
    /// So the call's deadline, and the first attempt's measured time, run from this
    /// call, not from the future's first poll: await it at once.
    ///
    /// The future owns the replica (an exchange still running when the pool's actor
    /// retires it keeps it), and the exchange borrows the replica's parts and the
    /// target: no reference count shared between threads is taken.
    pub fn forward_noted(
        self: Rc<Self>,
        target: &UpstreamTarget,
        request: ForwardRequest,
    ) -> impl Future<Output = (Result<ForwardResponse, Error>, Attempts)> + '_ {
        let mut plan = Exchange::plan(&self.shared, request);
        async move {
            let mut exchange = Exchange::new(&self);
            // The plan is used where the future holds it (`ref mut`), not moved again.
            let result = match plan {
                Ok(ref mut plan) => exchange.run(target, plan).await,
                Err(error) => Err(error),
            };
            (result, exchange.into_attempts())
        }
    }

    /// Calls an upstream API with `args` mapped onto its signature (`call_remote_api`),
    /// and reads the reply as FrameX does (envelope unwrapped, streams as streams).
    ///
    /// # Errors
    /// Arguments that do not fit the signature (before any I/O), then as
    /// [`PoolReplica::forward`], then envelope statuses outside `legal_proxy_code`.
    pub async fn call(
        self: Rc<Self>,
        target: &UpstreamTarget,
        spec: &ApiSpec,
        args: &Args,
        ctx: CallContext,
    ) -> Result<Reply, Error> {
        spec.check_args(args)?;
        let request = request::build(spec, args, ctx)?;
        let response = Rc::clone(&self).forward(target, request).await?;
        let kwargs = matches!(spec.body, BodySpec::Kwargs);
        let config = self.shared.config();
        // The endpoint that answered is the one the reply's faults are about.
        let peer = self.shared.endpoint_peer(response.endpoint);
        reply::interpret(peer, response, spec.streaming, kwargs, &config.legal_codes).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::header::HeaderMap;
    use http::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::peer::Peer;
    use crate::upstream::{Body, PoolConfig, PoolShared};
    use crate::BrokenReply;

    /// An upstream on 127.0.0.1 that answers every connection with `answer`, then
    /// closes it.
    async fn raw_upstream(answer: &'static [u8]) -> crate::upstream::UpstreamUrl {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        actix_rt::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = [0u8; 1024];
                let _ = socket.read(&mut head).await;
                let _ = socket.write_all(answer).await;
            }
        });
        url
    }

    fn get() -> ForwardRequest {
        ForwardRequest {
            method: Method::GET,
            path_and_query: "/x".to_owned(),
            headers: HeaderMap::new(),
            added: Vec::new(),
            body: Body::Empty,
            ctx: CallContext::new(),
        }
    }

    fn replica(config: PoolConfig) -> (Rc<PoolReplica>, Arc<UpstreamTarget>) {
        let pool = PoolShared::new(config);
        let target = UpstreamTarget { pool: pool.clone(), auth: Default::default(), filter: None };
        (Rc::new(PoolReplica::new(&pool)), Arc::new(target))
    }

    /// The error of a GET to one upstream that answers `answer`, with no retry; and
    /// that upstream's URL.
    async fn error_of_one_answer(answer: &'static [u8]) -> (crate::upstream::UpstreamUrl, Error) {
        let url = raw_upstream(answer).await;
        let mut config = PoolConfig::single(url.clone());
        config.retries = 0;
        let (replica, target) = replica(config);
        (url, replica.forward(&target, get()).await.expect_err("a broken reply"))
    }

    /// A status line that cannot be parsed: the error names the endpoint by its URL,
    /// says the head was broken, and holds the parser's error.
    #[actix_rt::test]
    async fn a_broken_head_names_its_endpoint() {
        let (url, error) = error_of_one_answer(b"HTTP/1.1 2x0 OK\r\n\r\n").await;
        let Error::UpstreamReply { upstream: Peer::Endpoint(endpoint), reason: BrokenReply::Head(cause) } = &error else {
            panic!("not a broken head from an endpoint: {error:?}");
        };
        assert_eq!(endpoint.as_str(), url.as_str(), "named by its URL alone: not resolved ahead");
        assert!(cause.is_head(), "{cause}");
        assert!(error.to_string().starts_with(&format!("upstream {url} sent a broken reply: ")), "{error}");
    }

    /// A `101` nobody asked for is a broken reply of that endpoint.
    #[actix_rt::test]
    async fn an_unsolicited_switch_is_a_broken_reply() {
        let (url, error) = error_of_one_answer(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\nconnection: upgrade\r\n\r\n").await;
        assert!(
            matches!(&error, Error::UpstreamReply { upstream, reason: BrokenReply::UnsolicitedSwitch } if upstream.as_str() == url.as_str()),
            "{error:?}"
        );
    }

    /// Every endpoint at its in-flight limit: the pool is named, not an endpoint.
    #[actix_rt::test]
    async fn saturation_names_the_pool() {
        let mut config = PoolConfig::single("http://127.0.0.1:9".parse().unwrap());
        config.max_in_flight = 1;
        let (replica, target) = replica(config);
        target.pool.stats()[0].in_flight.set(1);
        let error = replica.clone().forward(&target, get()).await.expect_err("no endpoint free");
        assert!(
            matches!(&error, Error::Overloaded { upstream: Peer::Pool(name), .. } if &**name == "http://127.0.0.1:9"),
            "{error:?}"
        );
    }

    /// An upstream on 127.0.0.1 that answers one connection's requests `204`, keeping
    /// it open 200 ms after the last, and sends back each request head it read.
    async fn recording_upstream() -> (crate::upstream::UpstreamUrl, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap()).parse().unwrap();
        let (seen, heads) = tokio::sync::mpsc::unbounded_channel();
        actix_rt::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            while let Ok(Ok(n @ 1..)) = tokio::time::timeout(std::time::Duration::from_millis(200), socket.read(&mut head)).await {
                let _ = seen.send(String::from_utf8_lossy(&head[..n]).into_owned());
                let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
            }
        });
        (url, heads)
    }

    /// A path that hides a line break behind a fragment goes without the fragment (as
    /// hyper sent it): nothing is injected into the request head.
    #[actix_rt::test]
    async fn a_fragment_cannot_smuggle_a_line_into_the_request_head() {
        let (url, mut heads) = recording_upstream().await;
        let (replica, target) = replica(PoolConfig::single(url));
        let mut request = get();
        request.path_and_query = "/a#\r\nx-injected: 1\r\nfoo: bar".to_owned();
        let answer = replica.clone().forward(&target, request).await.expect("answered");
        assert_eq!(answer.status, http::StatusCode::NO_CONTENT);
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /a HTTP/1.1\r\n"), "{head:?}");
        assert!(!head.contains("x-injected"), "{head:?}");
    }

    /// A body read whole that breaks off (the upstream died mid-reply; nothing has
    /// reached the client yet): a GET goes to the other endpoint, and the endpoint
    /// that broke it counts the retry, as every other retry is counted.
    #[actix_rt::test]
    async fn a_body_that_breaks_off_goes_to_another_endpoint_and_counts_a_retry() {
        let broken = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort").await;
        let whole = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        let mut config = PoolConfig::single(broken);
        config.endpoints.push(whole);
        let (replica, target) = replica(config);
        // Round robin: one of the two requests starts at the broken endpoint.
        for _ in 0..2 {
            let answer = replica.clone().forward(&target, get()).await.expect("answered by the other endpoint");
            assert!(matches!(&answer.body, Body::Full(bytes) if &bytes[..] == b"ok"));
            assert_eq!(answer.endpoint, 1);
        }
        assert_eq!(replica.shared.metrics[0].retries.get(), 1, "the broken body's retry is counted");
        assert_eq!(replica.shared.metrics[1].retries.get(), 0);
    }

    /// An idle connection the upstream closed is closed by the sweep (it would hold
    /// its socket until taken again).
    #[actix_rt::test]
    async fn the_sweep_closes_idle_connections_their_upstream_closed() {
        let (url, _heads) = recording_upstream().await;
        let (replica, target) = replica(PoolConfig::single(url));
        replica.clone().forward(&target, get()).await.expect("answered");
        assert_eq!(replica.client.idle_count(0), 1);
        replica.sweep();
        assert_eq!(replica.client.idle_count(0), 1, "still open: kept");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        replica.sweep();
        assert_eq!(replica.client.idle_count(0), 0, "closed by the upstream: swept");
    }

    /// An idle connection is closed once it has waited `IDLE_TIMEOUT` (counted in
    /// sweeps), not before.
    #[actix_rt::test]
    async fn the_sweep_closes_connections_idle_for_the_idle_timeout() {
        let (url, _heads) = recording_upstream().await;
        let (replica, target) = replica(PoolConfig::single(url));
        replica.clone().forward(&target, get()).await.expect("answered");
        for _ in 1..super::super::client::IDLE_SWEEPS {
            replica.sweep();
        }
        assert_eq!(replica.client.idle_count(0), 1, "idle for less than the timeout: kept");
        replica.sweep();
        assert_eq!(replica.client.idle_count(0), 0, "idle for the timeout: closed");
    }
}
