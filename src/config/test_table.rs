//! FrameX-kit's `[test]`: switches for a project's own test runs.

use serde::Deserialize;

/// `[test]`, with FrameX-kit's keys and defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestConfig {
    /// Read by a project's own tests (FrameX-kit's pytest-vcr fixture turns recording
    /// off with it); FrameX-kit itself never acts on it, nor does framex-rs. Default:
    /// `false`.
    pub disable_record_request: bool,
    /// Quiet failures: a plugin's panic is logged as its one error line, without the
    /// panic message and backtrace Rust prints on stderr (FrameX-kit: a plugin that
    /// fails to load is logged without its traceback). Default: `false`.
    pub silent: bool,
}

#[cfg(test)]
mod tests {
    use crate::config::test_parse as parse;

    /// FrameX-kit's two keys; another is refused, naming it.
    #[test]
    fn keys_as_in_framex_kit() {
        let c = parse("[test]\nsilent = true\ndisable_record_request = true").unwrap();
        assert!(c.test.silent && c.test.disable_record_request);
        assert!(!parse("").unwrap().test.silent);
        let err = parse("[test]\nsilen = true").unwrap_err();
        assert!(err.contains("silen") && err.contains("silent"), "{err}");
    }
}
