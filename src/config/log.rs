//! FrameX-kit's `[log]`: which log lines are left out.

use serde::Deserialize;

/// `[log]`. FrameX-kit drops its server's log lines that contain one of
/// `ignored_contains` (by default the access lines of the health probes) and, with
/// `simple_log`, its runtime's chatter starting with one of `ignored_prefixes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Leave out the runtime's own chatter (framex-rs: actix-server's start and stop
    /// lines, when `RUST_LOG` is unset). Default: `true`.
    pub simple_log: bool,
    /// FrameX-kit's Ray log prefixes: accepted; framex-rs writes no such lines, so
    /// nothing is filtered by them. Default: FrameX-kit's list.
    pub ignored_prefixes: Vec<String>,
    /// Access-log lines whose request line (`GET /health`) contains one of these are
    /// left out. Default: `["GET /ping", "GET /health"]`.
    pub ignored_contains: Vec<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            simple_log: true,
            ignored_prefixes: [
                "Started executing request to method",
                "CALL register_route",
                "CALL /api/v1",
                "Initialized DeploymentHandle",
                "Finished initializing replica",
                "Got updated replicas for",
                "Started <ray.serve._private.router.SharedRouterLongPollClient object",
            ]
            .map(str::to_owned)
            .to_vec(),
            ignored_contains: vec!["GET /ping".to_owned(), "GET /health".to_owned()],
        }
    }
}
