use actix_service::{Service, ServiceFactory};
#[expect(deprecated, reason = "preserve the public ready future type")]
use actix_utils::future::{ready, Ready};

use std::sync::Arc;

use crate::{body::BoxBody, Error, Request, Response};

/// framex-rs patch: a check a server puts in a connection's data (`on_connect`), run on
/// every request head that carries `Expect: 100-continue` before `100 Continue` is
/// written. `Some(response)` refuses the request with that response: the client is not
/// invited to send its body.
#[derive(Clone)]
pub struct ExpectCheck(pub Arc<dyn Fn(&Request) -> Option<Response<BoxBody>> + Send + Sync>);

pub struct ExpectHandler;

#[expect(deprecated, reason = "preserve the public ready future type")]
impl ServiceFactory<Request> for ExpectHandler {
    type Response = Request;
    type Error = Error;
    type Config = ();
    type Service = ExpectHandler;
    type InitError = Error;
    type Future = Ready<Result<Self::Service, Self::InitError>>;

    fn new_service(&self, _: Self::Config) -> Self::Future {
        ready(Ok(ExpectHandler))
    }
}

#[expect(deprecated, reason = "preserve the public ready future type")]
impl Service<Request> for ExpectHandler {
    type Response = Request;
    type Error = Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, req: Request) -> Self::Future {
        // framex-rs patch: the connection's check may refuse before the body is invited.
        if let Some(check) = req.conn_data::<ExpectCheck>() {
            if let Some(response) = (check.0)(&req) {
                return ready(Err(Error::refused(response)));
            }
        }
        ready(Ok(req))
    }
}
