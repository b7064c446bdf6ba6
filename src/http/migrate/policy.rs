//! `CallRemote`s from plugins follow the same migration modes as HTTP calls: the
//! engine asks [`Migration`] (installed with `Engine::set_call_policy`) where a call
//! to a migrating route goes — answered by `decide`, the decision the HTTP edge makes
//! too — and reports the answers back for counting and comparing.

use framex_actors::{ApiKey, CallContext, CallPolicy, Error, Pick, Reply, Route};
use serde_json::Value;

use super::compare::{compare, Answer};
use super::decide::decide;
use super::state::{Mismatch, Outcome, RouteMigration};
use super::Migration;
use crate::http::error::status_of;

impl Migration {
    /// The migration of a local route, by its template.
    fn of(&self, route: &Route) -> Option<&std::sync::Arc<RouteMigration>> {
        match &route.spec.key {
            ApiKey::Http { path, .. } => self.route(path),
            ApiKey::Function(_) => None,
        }
    }
}

impl CallPolicy for Migration {
    fn pick(&self, route: &Route) -> Option<Pick> {
        let migration = self.of(route)?;
        let ApiKey::Http { method, .. } = &route.spec.key else { return None };
        decide(migration, method.as_str()).into()
    }

    fn local_answered(&self, route: &Route, answer: &Result<Reply, Error>) {
        if let Some(migration) = self.of(route) {
            migration.canary_answered(answer.as_ref().is_err_and(|e| status_of(e).is_server_error()));
        }
    }

    fn compare(&self, route: &Route, ctx: &CallContext, upstream: Option<&Value>, local: Result<Reply, Error>) {
        let Some(migration) = self.of(route) else { return };
        let Some(upstream) = upstream else {
            return migration.record(Outcome::UpstreamError, None);
        };
        let (status, body) = match local {
            Ok(Reply::Value(value)) => (200, value.to_string()),
            Ok(Reply::Stream(_)) => return migration.record(Outcome::NotCompared, None),
            Err(e) if status_of(&e).is_server_error() => return migration.record(Outcome::LocalError, None),
            Err(e) => (status_of(&e).as_u16(), e.external_message()),
        };
        let upstream_body = upstream.to_string();
        let upstream = Answer { status: 200, body: upstream_body.as_bytes() };
        let local = Answer { status, body: body.as_bytes() };
        match compare(upstream, local, &migration.config.ignore) {
            None => migration.record(Outcome::Match, None),
            Some(difference) => {
                let (method, path) = match &route.spec.key {
                    ApiKey::Http { method, path } => (method.to_string(), path.clone()),
                    ApiKey::Function(name) => ("CALL".to_owned(), name.clone()),
                };
                let mismatch = Mismatch {
                    request_id: ctx.request_id.to_string(),
                    method,
                    path,
                    pointer: difference.pointer,
                    upstream: difference.upstream,
                    local: difference.local,
                };
                migration.record(Outcome::Mismatch, Some(mismatch));
            }
        }
    }
}
