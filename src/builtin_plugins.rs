//! The names of the built-in plugins (a leaf module: the config checks
//! `load_builtin_plugins` against them, [`crate::plugins`] builds them).

/// Names of the built-in plugins (`proxy` is the system proxy, configured under
/// `[plugins.proxy]`).
pub const NAMES: &[&str] = &["echo", "proxy"];
