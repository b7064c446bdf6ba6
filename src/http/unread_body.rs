//! Keeping a request's body alive until its response goes out, so actix-web closes
//! the connection after answering a request whose body was not read to its end.
//!
//! actix-http decides at the response head what to do with a body nobody read: if
//! the handler still holds it, the connection is closed (after a short linger, the
//! server's `client_disconnect_timeout`); if the handler dropped it and the body is
//! chunked, the connection stays open and the rest is *drained*, with no time limit.
//! A client trickling a chunked body to any route that answers without reading it
//! (401, 404, a built-in, a body cut by `client_body_timeout` or `min_body_rate`)
//! would hold the connection for ever. Here the real body is shared between the
//! handler and the response, so it outlives the handler's copy.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::Stream;

/// The request body, held for the response (see the module docs).
pub struct BodyKeeper {
    /// Only held: its last reference going away is what actix-http watches.
    _body: Rc<RefCell<dev::Payload>>,
}

/// Shares `payload` between the handler (the `web::Payload` returned) and the
/// response (the [`BodyKeeper`]); `None` for requests that announce no body (and those
/// that came `bodiless`, with no payload).
pub async fn share(req: &HttpRequest, payload: web::Payload, bodiless: bool) -> (web::Payload, Option<BodyKeeper>) {
    let headers = req.headers();
    let has_body = || {
        headers.contains_key(header::TRANSFER_ENCODING)
            // A length of 0 however written (`00` too): over HTTP/2, where the `h2`
            // crate reads it as 0 (actix-http's HTTP/1 decoder takes a zero length away,
            // and refuses a length spelled otherwise than in digits).
            || headers
                .get(header::CONTENT_LENGTH)
                .is_some_and(|v| !v.as_bytes().iter().all(|&b| b == b'0'))
    };
    // (actix-http's HTTP/1 decoder gives no payload exactly when a request declares
    // no body: neither `Transfer-Encoding` nor a `Content-Length` but 0.)
    debug_assert!(!bodiless || !has_body(), "a request with no payload declares a body");
    if bodiless || !has_body() {
        return (payload, None);
    }
    let shared = Rc::new(RefCell::new(dev::Payload::None));
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(SharedPayload(shared.clone()));
    let mut handle = dev::Payload::Stream { payload: stream };
    match web::Payload::from_request(req, &mut handle).await {
        Ok(handle) => {
            *shared.borrow_mut() = payload.into_inner();
            (handle, Some(BodyKeeper { _body: shared }))
        }
        // Extracting `web::Payload` does not fail; were it to, the body stays as it was.
        Err(_) => (payload, None),
    }
}

impl BodyKeeper {
    /// Makes `response` hold the body until the response is sent.
    pub fn attach(self, response: HttpResponse) -> HttpResponse {
        response
            .map_body(|_, body| WithBody { body, _kept: self })
            .map_into_boxed_body()
    }
}

/// The handler's view of the shared body.
struct SharedPayload(Rc<RefCell<dev::Payload>>);

impl Stream for SharedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut payload = self.0.borrow_mut();
        Pin::new(&mut *payload).poll_next(cx)
    }
}

/// A response body that keeps the request body alive beside it.
struct WithBody {
    body: BoxBody,
    _kept: BodyKeeper,
}

impl MessageBody for WithBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
