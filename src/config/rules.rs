//! Path patterns as FrameX writes them, shared by `[auth] rules`,
//! `[plugins.proxy.auth] rules`, the `enable` / `disable` filters and `white_list`.
//!
//! A pattern is one of:
//! - `*` or `/*`: every path;
//! - `prefix/*`: every path under `prefix/` (not `prefix` itself);
//! - a route template such as `/api/v1/items/{item_id}`: every concrete path of the
//!   template (a `{name}` segment is one non-empty segment);
//! - an exact path.
//!
//! Patterns are parsed once, at config load; their literal parts are put in the
//! canonical form of [`crate::canonical_path`], the form requests are matched in, so
//! `/api/v1/files/intern%61l` in a rule is `/api/v1/files/internal`. When several
//! patterns cover a path, the most specific wins: an exact path, then a template (more
//! literal segments first), then the longest prefix, then `*`.
//!
//! (The file is long for its unit tests; the code is under 400 lines.)

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::canonical_path::canonicalize;

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path pattern '{pattern}': {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One segment of a route template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Must be equal (canonical form).
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param,
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `*` or `/*`.
    All,
    /// `prefix/*`, holding the canonical `prefix` (without the `/*`).
    Prefix(String),
    /// A route template, by segment.
    Template(Vec<Segment>),
    /// An exact canonical path.
    Exact(String),
}

/// The segments of a template path (`/a/{b}` → `Literal(a)`, `Param`), as the text
/// of an upstream document writes it (a `{...}` segment is a parameter).
fn template_segments(path: &str) -> impl Iterator<Item = Segment> + '_ {
    path.strip_prefix('/').unwrap_or(path).split('/').map(|s| {
        if s.len() >= 2 && s.starts_with('{') && s.ends_with('}') {
            Segment::Param
        } else {
            Segment::Literal(s.to_owned())
        }
    })
}

impl PathPattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// A pattern that does not start with `/`, holds `*` other than a trailing `/*`,
    /// braces other than whole `{name}` segments, or a path the canonical form refuses
    /// (dot segments, encoded `/`, …).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let fail = |reason: &str| PatternError {
            pattern: text.to_owned(),
            reason: reason.to_owned(),
        };
        let canonical = |path: &str| {
            canonicalize(path)
                .map(|c| c.into_owned())
                .map_err(|e| fail(&e.to_string()))
        };
        if text == "*" || text == "/*" {
            return Ok(PathPattern::All);
        }
        if !text.starts_with('/') {
            return Err(fail("a pattern starts with '/' (or is '*')"));
        }
        let (body, prefix) = match text.strip_suffix("/*") {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(fail("'*' is only allowed as a whole last segment ('prefix/*')"));
        }
        if body.contains(['{', '}']) {
            if prefix {
                return Err(fail("a prefix pattern cannot hold a template parameter"));
            }
            let mut segments = Vec::new();
            for segment in body[1..].split('/') {
                let inner = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
                match inner {
                    Some(name) if !name.is_empty() && !name.contains(['{', '}']) => segments.push(Segment::Param),
                    Some(_) => return Err(fail("a template parameter is a whole segment '{name}'")),
                    None if segment.contains(['{', '}']) => {
                        return Err(fail("a template parameter is a whole segment '{name}'"))
                    }
                    None => {
                        let literal = canonical(&format!("/{segment}"))?;
                        if literal.len() < 2 || literal[1..].contains('/') {
                            return Err(fail("a template has no empty segments"));
                        }
                        segments.push(Segment::Literal(literal[1..].to_owned()));
                    }
                }
            }
            return Ok(PathPattern::Template(segments));
        }
        let path = canonical(body)?;
        Ok(if prefix {
            PathPattern::Prefix(path.trim_end_matches('/').to_owned())
        } else {
            PathPattern::Exact(path)
        })
    }

    /// Whether this pattern covers the canonical concrete `path`.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::All => true,
            PathPattern::Exact(exact) => exact == path,
            PathPattern::Prefix(prefix) => {
                path.starts_with(prefix.as_str()) && path[prefix.len()..].starts_with('/')
            }
            PathPattern::Template(segments) => {
                let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
                segments.iter().all(|segment| match (segment, parts.next()) {
                    (Segment::Literal(l), Some(p)) => l == p,
                    (Segment::Param, Some(p)) => !p.is_empty(),
                    (_, None) => false,
                }) && parts.next().is_none()
            }
        }
    }

    /// Whether this pattern covers every concrete path of the route `template`
    /// (discovery: a disabled template is left out).
    pub fn covers_template(&self, template: &str) -> bool {
        match self {
            PathPattern::All => true,
            PathPattern::Exact(exact) => exact == template,
            PathPattern::Prefix(_) => {
                // Literal segments before the prefix's end must be equal; a parameter
                // there could be anything.
                self.matches_segments(template, false)
            }
            PathPattern::Template(segments) => {
                let parts: Vec<Segment> = template_segments(template).collect();
                parts.len() == segments.len()
                    && segments.iter().zip(&parts).all(|(s, p)| match (s, p) {
                        (Segment::Param, _) => true,
                        (Segment::Literal(l), Segment::Literal(q)) => l == q,
                        (Segment::Literal(_), Segment::Param) => false,
                    })
            }
        }
    }

    /// Whether this pattern covers some concrete path of the route `template`
    /// (discovery: a template is kept when some of its paths are enabled; each
    /// request is then checked on its concrete path).
    pub fn overlaps_template(&self, template: &str) -> bool {
        match self {
            PathPattern::All => true,
            PathPattern::Prefix(_) => self.matches_segments(template, true),
            PathPattern::Exact(exact) => {
                let parts: Vec<Segment> = template_segments(template).collect();
                let mut wanted = exact[1..].split('/');
                parts.iter().all(|p| match (p, wanted.next()) {
                    (Segment::Literal(q), Some(w)) => q == w,
                    (Segment::Param, Some(w)) => !w.is_empty(),
                    (_, None) => false,
                }) && wanted.next().is_none()
            }
            PathPattern::Template(segments) => {
                let parts: Vec<Segment> = template_segments(template).collect();
                parts.len() == segments.len()
                    && segments.iter().zip(&parts).all(|(s, p)| match (s, p) {
                        (Segment::Literal(l), Segment::Literal(q)) => l == q,
                        _ => true,
                    })
            }
        }
    }

    /// For a prefix pattern: whether the template's first segments fit the prefix's
    /// (a template parameter fits any segment when `param_fits`) and the template
    /// goes on below it.
    fn matches_segments(&self, template: &str, param_fits: bool) -> bool {
        let PathPattern::Prefix(prefix) = self else { return false };
        let mut parts = template_segments(template);
        let fits = prefix
            .strip_prefix('/')
            .unwrap_or(prefix)
            .split('/')
            .filter(|s| !s.is_empty())
            .all(|want| match parts.next() {
                Some(Segment::Literal(q)) => q == want,
                Some(Segment::Param) => param_fits,
                None => false,
            });
        fits && parts.next().is_some()
    }

    /// How specific the pattern is: greater wins.
    fn specificity(&self) -> (u8, usize) {
        match self {
            PathPattern::All => (0, 0),
            PathPattern::Prefix(p) => (1, p.len()),
            PathPattern::Template(segments) => (
                2,
                segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count(),
            ),
            PathPattern::Exact(p) => (3, p.len()),
        }
    }
}

/// A pattern with what it grants, most specific first in a [`RuleSet`].
#[derive(Clone)]
struct Rule<T> {
    text: String,
    pattern: PathPattern,
    value: T,
}

/// Patterns mapped to values (auth keys), searched most specific first.
#[derive(Clone)]
pub struct RuleSet<T> {
    rules: Vec<Rule<T>>,
}

impl<T> Default for RuleSet<T> {
    fn default() -> Self {
        RuleSet { rules: Vec::new() }
    }
}

impl<T> RuleSet<T> {
    /// Parses every pattern and orders the rules most specific first (ties: in the
    /// order of the pattern text, so the choice does not depend on map order).
    ///
    /// # Errors
    /// The first invalid pattern.
    pub fn new(rules: impl IntoIterator<Item = (String, T)>) -> Result<Self, PatternError> {
        let mut parsed = rules
            .into_iter()
            .map(|(text, value)| {
                Ok(Rule {
                    pattern: PathPattern::parse(&text)?,
                    text,
                    value,
                })
            })
            .collect::<Result<Vec<_>, PatternError>>()?;
        parsed.sort_by(|a, b| match b.pattern.specificity().cmp(&a.pattern.specificity()) {
            Ordering::Equal => a.text.cmp(&b.text),
            other => other,
        });
        Ok(RuleSet { rules: parsed })
    }

    /// The value of the most specific rule covering the canonical `path`.
    pub fn lookup(&self, path: &str) -> Option<&T> {
        self.lookup_rule(path).map(|(_, value)| value)
    }

    /// The most specific rule covering the canonical `path`: its pattern as written,
    /// and its value.
    pub fn lookup_rule(&self, path: &str) -> Option<(&str, &T)> {
        self.rules
            .iter()
            .find(|r| r.pattern.matches(path))
            .map(|r| (r.text.as_str(), &r.value))
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The patterns as written, with their values, most specific first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.rules.iter().map(|r| (r.text.as_str(), &r.value))
    }
}

impl<T> fmt::Debug for RuleSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.rules.iter().map(|r| &r.text)).finish()
    }
}

/// An upstream's `enable` / `disable` (or `white_list`) filters, parsed.
///
/// Discovery keeps a route template when no `disable` pattern covers all of it and
/// some `enable` pattern covers part of it; each request is then checked on its
/// concrete canonical path, so a disabled concrete path is refused whatever template
/// it falls under.
#[derive(Debug, Clone)]
pub struct PathFilter {
    enable: Vec<(String, PathPattern)>,
    disable: Vec<(String, PathPattern)>,
}

impl PathFilter {
    /// Parses the filters.
    ///
    /// # Errors
    /// The first invalid pattern.
    pub fn new(enable: &[String], disable: &[String]) -> Result<Self, PatternError> {
        let parse = |list: &[String]| {
            list.iter()
                .map(|t| Ok((t.clone(), PathPattern::parse(t)?)))
                .collect::<Result<Vec<_>, PatternError>>()
        };
        Ok(PathFilter {
            enable: parse(enable)?,
            disable: parse(disable)?,
        })
    }

    /// A filter that lets nothing through (fail closed).
    pub fn closed() -> Self {
        PathFilter {
            enable: Vec::new(),
            disable: Vec::new(),
        }
    }

    /// Whether every path passes (nothing to check per request).
    pub fn is_open(&self) -> bool {
        self.disable.is_empty() && self.enable.iter().any(|(_, p)| *p == PathPattern::All)
    }

    /// Whether the route `template` of an upstream document is proxied; the error
    /// names the rule that excludes it.
    ///
    /// # Errors
    /// The reason it is left out.
    pub fn allows_template(&self, template: &str) -> Result<(), String> {
        if let Some((rule, _)) = self.disable.iter().find(|(_, p)| p.covers_template(template)) {
            return Err(format!("disabled by rule '{rule}'"));
        }
        if self.enable.iter().any(|(_, p)| p.overlaps_template(template)) {
            Ok(())
        } else {
            Err("not enabled by any rule".to_owned())
        }
    }

    /// Whether the canonical concrete `path` of a request is proxied.
    pub fn allows_path(&self, path: &str) -> bool {
        !self.disable.iter().any(|(_, p)| p.matches(path)) && self.enable.iter().any(|(_, p)| p.matches(path))
    }
}


/// Parses `pattern → keys` rules (for [`super::AuthRules`]).
///
/// # Errors
/// The first invalid pattern.
pub(super) fn parse_auth(map: BTreeMap<String, Vec<String>>) -> Result<RuleSet<Vec<String>>, PatternError> {
    RuleSet::new(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap()
    }

    #[test]
    fn patterns_parse_in_canonical_form() {
        assert_eq!(p("*"), PathPattern::All);
        assert_eq!(p("/*"), PathPattern::All);
        assert_eq!(p("/api/v1/*"), PathPattern::Prefix("/api/v1".into()));
        assert_eq!(p("/api/v1/files/intern%61l"), PathPattern::Exact("/api/v1/files/internal".into()));
        assert_eq!(
            p("/api/v1/items/{item_id}"),
            PathPattern::Template(vec![
                Segment::Literal("api".into()),
                Segment::Literal("v1".into()),
                Segment::Literal("items".into()),
                Segment::Param
            ])
        );
        for bad in ["api", "/a*", "/a/*/b", "/a/{x}/*", "/a/b{x}", "/a/{}", "/a/../b", "/a%2Fb", "/a/{x}//b", ""] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn concrete_paths_match() {
        assert!(p("*").matches("/x"));
        assert!(p("/a/*").matches("/a/b") && p("/a/*").matches("/a/") && !p("/a/*").matches("/a"));
        assert!(!p("/a/*").matches("/ab/c"));
        let t = p("/api/v1/items/{item_id}");
        assert!(t.matches("/api/v1/items/7") && t.matches("/api/v1/items/%20"));
        assert!(!t.matches("/api/v1/items/") && !t.matches("/api/v1/items/7/x") && !t.matches("/api/v1/items"));
        assert!(p("/a").matches("/a") && !p("/a").matches("/a/"));
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = RuleSet::new([
            ("*".to_owned(), "all"),
            ("/api/*".to_owned(), "short prefix"),
            ("/api/v1/*".to_owned(), "long prefix"),
            ("/api/v1/items/{id}".to_owned(), "template"),
            ("/api/{v}/items/{id}".to_owned(), "looser template"),
            ("/api/v1/items/7".to_owned(), "exact"),
        ])
        .unwrap();
        assert_eq!(rules.lookup("/api/v1/items/7"), Some(&"exact"));
        assert_eq!(rules.lookup("/api/v1/items/8"), Some(&"template"));
        assert_eq!(rules.lookup("/api/v2/items/8"), Some(&"looser template"));
        assert_eq!(rules.lookup("/api/v1/other"), Some(&"long prefix"));
        assert_eq!(rules.lookup("/api/x"), Some(&"short prefix"));
        assert_eq!(rules.lookup("/health"), Some(&"all"));
    }

    #[test]
    fn filters_are_template_aware() {
        let f = PathFilter::new(&["*".into()], &["/api/v1/files/internal".into()]).unwrap();
        // The template stays (other files are served) ...
        assert_eq!(f.allows_template("/api/v1/files/{name}"), Ok(()));
        // ... but the disabled concrete path is refused at request time.
        assert!(!f.allows_path("/api/v1/files/internal"));
        assert!(f.allows_path("/api/v1/files/public"));
        assert!(!f.is_open());

        let f = PathFilter::new(&["*".into()], &["/api/v1/files/{x}".into(), "/admin/*".into()]).unwrap();
        assert_eq!(
            f.allows_template("/api/v1/files/{name}"),
            Err("disabled by rule '/api/v1/files/{x}'".to_owned())
        );
        assert!(f.allows_template("/admin/{id}/panel").is_err());
        assert!(f.allows_template("/{area}/x").is_ok(), "a parameter may or may not be 'admin'");
        assert!(!f.allows_path("/admin/x/panel"));

        let f = PathFilter::new(&["/api/v1/files/public".into(), "/api/v1/x/*".into()], &[]).unwrap();
        assert!(f.allows_template("/api/v1/files/{name}").is_ok());
        assert!(f.allows_template("/api/{v}/x/{y}").is_ok());
        assert!(f.allows_template("/api/v1/x").is_err());
        assert!(f.allows_template("/api/v1/other/{name}").is_err());
        assert!(f.allows_path("/api/v1/files/public") && !f.allows_path("/api/v1/files/secret"));
        assert!(PathFilter::new(&["*".into()], &[]).unwrap().is_open());
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::Config;

    /// A template rule is valid config; an invalid pattern is an error naming its
    /// key and the pattern.
    #[test]
    fn patterns_are_checked_at_load() {
        let c = Config::from_toml_str("[auth]\nrules = { \"/api/v1/items/{item_id}\" = [\"k\"] }", "t").unwrap();
        assert_eq!(c.auth.rules.first_key_for("/api/v1/items/7"), Some("k"));
        let err = Config::from_toml_str("[auth]\nrules = { \"/api/v1/*/x\" = [\"k\"] }", "t").unwrap_err();
        assert!(err.to_string().contains("/api/v1/*/x"), "{err}");
        assert!(err.to_string().contains("rules"), "{err}");
        let err = Config::from_toml_str(
            "[plugins.proxy.proxy_urls.\"http://a:1\"]\ndisable = [\"/a/../b\"]",
            "t",
        )
        .unwrap_err();
        assert!(err.to_string().contains("plugins.proxy.proxy_urls.\"http://a:1\""), "{err}");
        let err = Config::from_toml_str("[plugins.proxy]\nproxy_urls = [\"http://a:1\"]\nwhite_list = [\"x\"]", "t")
            .unwrap_err();
        assert!(err.to_string().contains("plugins.proxy.white_list"), "{err}");
    }
}
