//! FrameX-kit's `[sentry]`: errors and a transaction per request sent to Sentry, and
//! framex-rs's own `traces_sample_rate`.

use serde::Deserialize;

/// `[sentry]`, with FrameX-kit's keys and defaults. Sentry is on when `enable` is true
/// and both `dsn` and `env` are set, as in FrameX-kit (which is silently off
/// otherwise; framex-rs says so once at start).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentryConfig {
    /// Whether to report to Sentry. Default: `false`.
    pub enable: bool,
    /// The project's DSN (`https://<public key>@<host>/<project id>`). Default: empty.
    pub dsn: String,
    /// The deployment (`local`, `dev`, `prod`…): the events' environment is
    /// `<env>_noray`, as FrameX-kit 0.4.2 names it when it runs without Ray. Default: empty.
    pub env: String,
    /// The client logs what it sends (at debug level). Default: `false`.
    pub debug: bool,
    /// Error types never reported (FrameX-kit's exception type names; here the kind
    /// of failure: `UpstreamConnect`, `UpstreamTimeout`, `PluginPanic`…, see the
    /// README). Default: none.
    pub ignore_errors: Vec<String>,
    /// FrameX-kit's profiler lifecycle (`manual` by default, or `trace`). Accepted and
    /// unused: framex-rs does no profiling (`check` and `run` say so when `trace`).
    pub lifecycle: SentryLifecycle,
    /// framex-rs only (FrameX-kit's model refuses the key): the share of requests sent
    /// as transactions, 0.0–1.0, decided by the trace id so every hop of a trace
    /// agrees. Default: 1.0, FrameX-kit's fixed rate.
    pub traces_sample_rate: f64,
    /// Log records at `info` and above (those `RUST_LOG` lets through) go to Sentry
    /// as Sentry logs too, config secrets scrubbed (`framex run`). Default: `false`.
    pub enable_logs: bool,
}

impl Default for SentryConfig {
    fn default() -> Self {
        SentryConfig {
            enable: false,
            dsn: String::new(),
            env: String::new(),
            debug: false,
            ignore_errors: Vec::new(),
            lifecycle: SentryLifecycle::Manual,
            traces_sample_rate: 1.0,
            enable_logs: false,
        }
    }
}

/// `sentry.lifecycle`: FrameX-kit's `profile_lifecycle` (when its profiler runs). It
/// does not choose whether transactions are sent: FrameX-kit sends one per request
/// either way, and so does framex-rs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SentryLifecycle {
    /// The profiler is started by hand (FrameX-kit's default).
    #[default]
    Manual,
    /// The profiler runs while a transaction does.
    Trace,
}

impl SentryConfig {
    /// Whether Sentry is on: `enable`, and both `dsn` and `env` set.
    pub fn active(&self) -> bool {
        self.enable && !self.dsn.trim().is_empty() && !self.env.trim().is_empty()
    }

    /// Why `enable = true` leaves Sentry off (an empty `dsn` or `env`), if it does.
    pub fn inactive_reason(&self) -> Option<&'static str> {
        match (self.enable, self.dsn.trim().is_empty(), self.env.trim().is_empty()) {
            (true, true, _) => Some("sentry.enable is true but sentry.dsn is empty: Sentry is off"),
            (true, false, true) => Some("sentry.enable is true but sentry.env is empty: Sentry is off"),
            _ => None,
        }
    }
}

/// Refuses a DSN that cannot be used, naming the key but never the DSN (it holds the
/// project's key).
pub(super) fn check(config: &SentryConfig) -> Result<(), String> {
    if config.active() && config.dsn.trim().parse::<sentry::types::Dsn>().is_err() {
        return Err(
            "sentry.dsn is not a Sentry DSN (expected <scheme>://<public key>@<host>/<project id>)".to_owned(),
        );
    }
    if !(0.0..=1.0).contains(&config.traces_sample_rate) {
        return Err(format!(
            "sentry.traces_sample_rate must be between 0.0 and 1.0 (the share of requests sent as transactions), not {}",
            config.traces_sample_rate
        ));
    }
    if config.env.chars().any(char::is_control) {
        return Err("sentry.env must not contain control characters".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_parse as parse;

    /// FrameX-kit's keys and defaults; on only with enable, dsn and env.
    #[test]
    fn framex_kit_keys_parse() {
        let c = parse("[sentry]\nenable = true\ndsn = \"http://k@127.0.0.1:9/42\"\nenv = \"prod\"\nignore_errors = [\"UpstreamConnect\"]\nlifecycle = \"trace\"\nenable_logs = true\ndebug = true").unwrap();
        assert!(c.sentry.active());
        assert_eq!(c.sentry.lifecycle, SentryLifecycle::Trace);
        assert_eq!(c.sentry.ignore_errors, vec!["UpstreamConnect"]);
        let off = parse("[sentry]\nenable = true\ndsn = \"http://k@127.0.0.1:9/42\"").unwrap();
        assert!(!off.sentry.active());
        assert!(off.sentry.inactive_reason().unwrap().contains("sentry.env"));
        assert!(!parse("").unwrap().sentry.active());
        assert_eq!(parse("").unwrap().sentry.traces_sample_rate, 1.0, "FrameX-kit's rate by default");
    }

    /// `traces_sample_rate` takes 0.0–1.0 (an integer too) and refuses anything else.
    #[test]
    fn sample_rate_is_a_share() {
        assert_eq!(parse("[sentry]\ntraces_sample_rate = 0.25").unwrap().sentry.traces_sample_rate, 0.25);
        assert_eq!(parse("[sentry]\ntraces_sample_rate = 0").unwrap().sentry.traces_sample_rate, 0.0);
        for bad in ["1.5", "-0.1", "nan", "inf"] {
            let err = parse(&format!("[sentry]\ntraces_sample_rate = {bad}")).unwrap_err();
            assert!(err.contains("sentry.traces_sample_rate must be between 0.0 and 1.0"), "{bad}: {err}");
        }
    }

    /// A bad DSN is refused naming the key, without echoing the DSN.
    #[test]
    fn bad_dsn_is_refused_without_echo() {
        let err = parse("[sentry]\nenable = true\ndsn = \"not-a-dsn-secret\"\nenv = \"prod\"").unwrap_err();
        assert!(err.contains("sentry.dsn") && !err.contains("not-a-dsn-secret"), "{err}");
        let err = parse("[sentry]\nlifecycle = \"always\"").unwrap_err();
        assert!(err.contains("manual") && err.contains("trace"), "{err}");
        let err = parse("[sentry]\nenabled = true").unwrap_err();
        assert!(err.contains("enabled") && err.contains("enable"), "{err}");
    }
}
