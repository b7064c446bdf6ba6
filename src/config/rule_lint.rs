//! Warnings about path rules that do not cover what they seem to: an exact path under
//! a typed route template (it covers one value, in one spelling), and `"/x/*"` beside
//! a route `/x` (a prefix does not cover itself).
//!
//! `framex check` runs them against the local routes; the proxy runs them against an
//! upstream's routes when it discovers them (logged once per rule and upstream).

use framex_actors::{ApiKey, ApiSpec, CanonicalForm, Escaped, ParamLocation};

use super::rules::PathPattern;
use super::Config;

/// The patterns of one config section that select paths.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    /// Where they are written (`[auth] rules`, `disable of http://…`).
    pub section: String,
    /// The patterns as written.
    pub patterns: Vec<String>,
}

/// The path rules of `config` that apply to every route: `[auth] rules` and
/// `[plugins.proxy.auth] rules`.
pub fn global_groups(config: &Config) -> Vec<RuleGroup> {
    let group = |section: &str, patterns: Vec<String>| RuleGroup {
        section: section.to_owned(),
        patterns,
    };
    vec![
        group("[auth] rules", config.auth.rules.patterns().map(|(p, _)| p.to_owned()).collect()),
        group(
            "[plugins.proxy.auth] rules",
            config.plugins.proxy.auth.rules.patterns().map(|(p, _)| p.to_owned()).collect(),
        ),
    ]
}

/// The `enable` (or `white_list`) and `disable` patterns of the upstream `url`.
pub fn upstream_groups(url: &str, enable: &[String], disable: &[String]) -> Vec<RuleGroup> {
    vec![
        RuleGroup {
            section: format!("enable (or white_list) of {url}"),
            patterns: enable.to_vec(),
        },
        RuleGroup {
            section: format!("disable of {url}"),
            patterns: disable.to_vec(),
        },
    ]
}

/// Every path rule of `config`: the global ones and each upstream's filters (when the
/// proxy is loaded).
pub fn config_groups(config: &Config) -> Vec<RuleGroup> {
    let mut groups = global_groups(config);
    if config.load_builtin_plugins.iter().any(|p| p == "proxy") {
        for u in config.plugins.proxy.upstreams() {
            groups.extend(upstream_groups(u.url.as_str(), &u.enable, &u.disable));
        }
    }
    groups
}

/// One warning per rule of `groups` that misleads about the routes `specs` (what
/// an upstream's document chose, template and parameter names, is escaped).
pub fn warnings<'a>(groups: &[RuleGroup], specs: impl IntoIterator<Item = &'a ApiSpec> + Clone) -> Vec<String> {
    let mut out = Vec::new();
    for group in groups {
        let parsed: Vec<(&str, PathPattern)> = group
            .patterns
            .iter()
            .filter_map(|text| Some((text.as_str(), PathPattern::parse(text).ok()?)))
            .collect();
        for (text, pattern) in &parsed {
            let warning = match pattern {
                PathPattern::Exact(exact) => specs.clone().into_iter().find_map(|spec| typed_exact(exact, spec)),
                PathPattern::Prefix(prefix) => {
                    let route_exists = specs
                        .clone()
                        .into_iter()
                        .any(|spec| matches!(&spec.key, ApiKey::Http { path, .. } if path == prefix));
                    let covered = parsed.iter().any(|(_, p)| p.matches(prefix));
                    (route_exists && !covered).then(|| format!("\"{text}\" does not cover \"{prefix}\"; add \"{prefix}\" too"))
                }
                PathPattern::All | PathPattern::Template(_) => None,
            };
            if let Some(warning) = warning {
                out.push(format!("{}: {warning}", group.section));
            }
        }
    }
    out
}

/// The warning for the exact path `exact` when it falls under `spec`'s template at a
/// typed path parameter.
fn typed_exact(exact: &str, spec: &ApiSpec) -> Option<String> {
    let ApiKey::Http { path: template, .. } = &spec.key else {
        return None;
    };
    let wanted: Vec<&str> = exact.split('/').collect();
    let parts: Vec<&str> = template.split('/').collect();
    if wanted.len() != parts.len() {
        return None;
    }
    let mut typed: Option<(&str, &str, &CanonicalForm)> = None;
    for (part, value) in parts.iter().zip(&wanted) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !value.is_empty() => {
                let form = spec
                    .params
                    .iter()
                    .find(|p| p.name == name && p.location == ParamLocation::Path)
                    .and_then(|p| p.canonical.as_ref());
                if let (Some(form), None) = (form, typed) {
                    typed = Some((name, value, form));
                }
            }
            Some(_) => return None,
            None if part != value => return None,
            None => {}
        }
    }
    let (name, value, form) = typed?;
    let mut warning = format!(
        "\"{exact}\" is an exact path under the typed route \"{}\" ({}: {}): it covers that one value, \
         and other spellings of it are refused (404)",
        Escaped(template),
        Escaped(name),
        form.name()
    );
    if !form.accepts(value) {
        warning.push_str(&format!(
            "; \"{value}\" is not the canonical spelling of a {}, so no request matches this rule",
            form.name()
        ));
    }
    Some(warning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framex_actors::{Method, Param, ValueKind};
    use serde_json::Value;

    fn spec(path: &str, typed: Option<CanonicalForm>) -> ApiSpec {
        let mut spec = ApiSpec::new(ApiKey::http(Method::GET, path));
        if let Some(form) = typed {
            spec.params.push(Param {
                name: "uid".to_owned(),
                location: ParamLocation::Path,
                kind: ValueKind::Integer,
                items: None,
                required: true,
                schema: Value::Null,
                canonical: Some(form),
            });
        }
        spec
    }

    fn group(patterns: &[&str]) -> Vec<RuleGroup> {
        vec![RuleGroup {
            section: "[auth] rules".to_owned(),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
        }]
    }

    #[test]
    fn exact_rules_under_typed_templates_are_warned_about_once() {
        let specs = [
            spec("/api/v1/users/{uid}", Some(CanonicalForm::Integer)),
            spec("/api/v1/users/{uid}/x", Some(CanonicalForm::Integer)),
            spec("/api/v1/names/{name}", None),
        ];
        let warned = warnings(&group(&["/api/v1/users/0", "/api/v1/users/00", "/api/v1/names/0"]), &specs);
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].contains("\"/api/v1/users/0\"") && warned[0].contains("(uid: integer)"), "{warned:?}");
        assert!(!warned[0].contains("no request matches"), "{warned:?}");
        assert!(warned[1].contains("\"00\" is not the canonical spelling"), "{warned:?}");
    }

    #[test]
    fn a_prefix_beside_its_own_route_is_warned_about_unless_covered() {
        let specs = [spec("/x", None), spec("/x/{uid}", None)];
        let warned = warnings(&group(&["/x/*"]), &specs);
        assert_eq!(warned, vec!["[auth] rules: \"/x/*\" does not cover \"/x\"; add \"/x\" too".to_owned()]);
        assert!(warnings(&group(&["/x/*", "/x"]), &specs).is_empty());
        assert!(warnings(&group(&["/x/*", "*"]), &specs).is_empty());
        assert!(warnings(&group(&["/y/*"]), &specs).is_empty());
    }
}
