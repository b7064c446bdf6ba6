//! `[plugins.proxy.migrate]`: per route template, how calls move from the upstream a
//! local plugin replaces to that plugin (`upstream`, `shadow`, `canary`, `local`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[plugins.proxy.migrate]`: route template (as the upstream's OpenAPI document
/// writes it, e.g. `/api/v1/items/{item_id}`) → its migration. Default: empty (every
/// route a local plugin serves is `local`).
pub type MigrateConfig = BTreeMap<String, MigrateRoute>;

/// Who answers a route that both a local plugin and an upstream serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrateMode {
    /// The upstream answers (pinned), though a local plugin serves the route.
    Upstream,
    /// The upstream answers; the local plugin gets the same call off the client's
    /// path and the answers are compared.
    Shadow,
    /// `percent` of calls go to the local plugin, the rest to the upstream.
    Canary,
    /// The local plugin answers (the default).
    #[default]
    Local,
}

impl MigrateMode {
    /// The mode as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrateMode::Upstream => "upstream",
            MigrateMode::Shadow => "shadow",
            MigrateMode::Canary => "canary",
            MigrateMode::Local => "local",
        }
    }
}

/// One route's entry in `[plugins.proxy.migrate]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrateRoute {
    /// `mode`: see [`MigrateMode`]. Default `"local"`.
    pub mode: MigrateMode,
    /// `percent`: with `canary`, the share of calls sent to the local plugin, 0–100.
    /// Default 0.
    pub percent: f64,
    /// `unsafe`: with `shadow`, also duplicate methods other than GET/HEAD/OPTIONS to
    /// the local plugin (side effects happen twice). Default false.
    #[serde(rename = "unsafe")]
    pub unsafe_methods: bool,
    /// `rollback_error_ratio`: with `canary`, the share of failed local answers (5xx,
    /// timeouts), over at least 20 local calls, above which the route falls back to
    /// the upstream by itself. Default 0.05.
    pub rollback_error_ratio: f64,
    /// `ignore`: JSON pointers (`/timestamp`, `/data/updated_at`) left out when
    /// answers are compared. Default: none.
    pub ignore: Vec<String>,
}

impl Default for MigrateRoute {
    fn default() -> Self {
        MigrateRoute {
            mode: MigrateMode::Local,
            percent: 0.0,
            unsafe_methods: false,
            rollback_error_ratio: 0.05,
            ignore: Vec::new(),
        }
    }
}

impl MigrateRoute {
    /// The entry as `framex check` prints it: the mode and who answers
    /// (`canary: 25 % to the local plugin, the rest to the upstream; rollback above 5 %
    /// errors`).
    pub fn describe(&self) -> String {
        let mode = self.mode.as_str();
        match self.mode {
            MigrateMode::Canary => format!(
                "{mode}: {} % to the local plugin, the rest to the upstream; rollback above {} % errors",
                self.percent,
                self.rollback_error_ratio * 100.0
            ),
            MigrateMode::Shadow if self.unsafe_methods => {
                format!("{mode}: the upstream answers; every method also goes to the local plugin, compared (unsafe)")
            }
            MigrateMode::Shadow => format!(
                "{mode}: the upstream answers; GET, HEAD, OPTIONS also go to the local plugin, compared"
            ),
            MigrateMode::Upstream => format!("{mode}: pinned, the upstream answers"),
            MigrateMode::Local => format!("{mode}: the local plugin answers"),
        }
    }

    /// Who answers a route that `local` (a plugin) and `upstream` (a pool) both serve,
    /// as the route listing and the start-up log name it.
    pub fn who_answers(&self, local: &str, upstream: &str) -> String {
        let mode = self.mode.as_str();
        match self.mode {
            MigrateMode::Upstream => format!("{upstream} (migrate {mode}; {local} waits)"),
            MigrateMode::Shadow => format!("{upstream} (migrate {mode}; {local} compared)"),
            MigrateMode::Canary => format!("{local} {} %, {upstream} the rest (migrate {mode})", self.percent),
            MigrateMode::Local => local.to_owned(),
        }
    }
}

/// Why a `[plugins.proxy.migrate]` entry is refused (the key is named by the caller).
pub(super) fn check(template: &str, route: &MigrateRoute) -> Result<(), String> {
    let key = format!("plugins.proxy.migrate.\"{template}\"");
    if !template.starts_with('/') {
        return Err(format!("{key}: a route template starts with '/'"));
    }
    if !(0.0..=100.0).contains(&route.percent) {
        return Err(format!("{key}.percent must be between 0 and 100, not {}", route.percent));
    }
    if !(0.0..=1.0).contains(&route.rollback_error_ratio) {
        return Err(format!(
            "{key}.rollback_error_ratio must be between 0 and 1, not {}",
            route.rollback_error_ratio
        ));
    }
    if let Some(bad) = route.ignore.iter().find(|p| !p.is_empty() && !p.starts_with('/')) {
        return Err(format!("{key}.ignore: {bad:?} is not a JSON pointer (it starts with '/')"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_parse as parse;

    /// Entries read with their defaults; bad values are refused naming the key.
    #[test]
    fn entries_are_read_and_bad_values_name_the_key() {
        let c = parse(
            "[plugins.proxy.migrate]\n\"/a/{id}\" = { mode = \"canary\", percent = 10 }\n\"/b\" = { mode = \"shadow\", unsafe = true, ignore = [\"/t\"] }",
        )
        .unwrap();
        let a = &c.plugins.proxy.migrate["/a/{id}"];
        assert_eq!((a.mode, a.percent, a.rollback_error_ratio), (MigrateMode::Canary, 10.0, 0.05));
        let b = &c.plugins.proxy.migrate["/b"];
        assert!(b.unsafe_methods && b.ignore == ["/t"] && b.mode == MigrateMode::Shadow);
        for (text, named) in [
            ("\"/a\" = { mode = \"canary\", percent = 150 }", "plugins.proxy.migrate.\"/a\".percent"),
            ("\"/a\" = { mode = \"canary\", rollback_error_ratio = 2 }", "rollback_error_ratio"),
            ("\"/a\" = { mode = \"shadow\", ignore = [\"t\"] }", "ignore"),
            ("\"a\" = { mode = \"shadow\" }", "plugins.proxy.migrate.\"a\""),
            ("\"/a\" = { mode = \"mirror\" }", "mirror"),
            ("\"/a\" = { mode = \"shadow\", percentage = 1 }", "percentage"),
        ] {
            let err = parse(&format!("[plugins.proxy.migrate]\n{text}")).unwrap_err();
            assert!(err.contains(named), "{text}: {err}");
        }
    }
}
