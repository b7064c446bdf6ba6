//! Built-in plugins, loadable by name from `load_builtin_plugins`.

pub mod echo;

use std::sync::Arc;

use framex_actors::PluginSpec;

pub use crate::builtin_plugins::NAMES as BUILTIN;

/// The built-in plugin called `name`, if it is one with routes of its own.
pub fn builtin(name: &str) -> Option<Arc<PluginSpec>> {
    match name {
        "echo" => Some(echo::plugin()),
        _ => None,
    }
}
