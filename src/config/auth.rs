//! `[auth]` (and `[plugins.proxy.auth]`): which keys go with which paths.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::rules::{self, PathPattern, PatternError, RuleSet};

/// `[auth]` and `[plugins.proxy.auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Path pattern → keys. Patterns: an exact path, `*` or `/*` for every path,
    /// `prefix/*` for every path under `prefix/`, or a route template
    /// (`/items/{id}`); the most specific wins. Default: no rules.
    pub rules: AuthRules,
    /// FrameX-kit's OAuth login in front of the docs (`None`: no login; the docs
    /// follow the rules alone).
    pub oauth: Option<super::oauth::OauthConfig>,
}

/// A FrameX-kit key that framex-rs accepts (so FrameX configs load unchanged) but
/// does not use; `framex check` lists the ones present.
pub type Unused = Option<toml::Value>;

/// Auth rules: which keys go with which paths, parsed at load (see [`rules`]).
/// Never printed with their keys.
#[derive(Clone, Default, Deserialize)]
#[serde(try_from = "BTreeMap<String, Vec<String>>")]
pub struct AuthRules(RuleSet<Vec<String>>);

impl TryFrom<BTreeMap<String, Vec<String>>> for AuthRules {
    type Error = String;

    /// Parses the rules; the error names the key (`auth.rules`, within
    /// `[plugins.proxy]` for the upstream rules).
    fn try_from(map: BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        rules::parse_auth(map).map(AuthRules).map_err(|e| format!("auth.rules: {e}"))
    }
}

/// Same patterns with the same keys.
impl PartialEq for AuthRules {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

impl Eq for AuthRules {}

impl fmt::Debug for AuthRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, format!("<{} keys>", v.len()))))
            .finish()
    }
}

/// Whether a rule's pattern covers `path` (see [`PathPattern`]); a pattern that does
/// not parse covers only itself.
pub fn rule_matches(pattern: &str, path: &str) -> bool {
    PathPattern::parse(pattern).map_or(pattern == path, |p| p.matches(path))
}

impl AuthRules {
    /// Rules from `(pattern, keys)` pairs.
    ///
    /// # Errors
    /// An invalid pattern.
    pub fn new<I, K>(rules: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = (K, Vec<String>)>,
        K: Into<String>,
    {
        RuleSet::new(rules.into_iter().map(|(k, v)| (k.into(), v))).map(AuthRules)
    }

    /// The keys of the most specific rule covering the canonical `path`: an exact
    /// rule, then a template, then the longest prefix, then `*`.
    pub fn keys_for(&self, path: &str) -> Option<&[String]> {
        self.0.lookup(path).map(Vec::as_slice)
    }

    /// The key sent upstream for `path`: the first key of its rule.
    pub fn first_key_for(&self, path: &str) -> Option<&str> {
        self.keys_for(path)?.first().map(String::as_str)
    }

    /// The key an upstream URL whose own rules are `self` is sent for `path`: the
    /// first key of its own most specific rule covering `path`, else of `global`'s.
    pub fn key_or<'a>(&'a self, global: &'a AuthRules, path: &str) -> Option<&'a str> {
        self.first_key_for(path).or_else(|| global.first_key_for(path))
    }

    /// The pattern of the most specific rule covering `path`.
    pub fn pattern_for(&self, path: &str) -> Option<&str> {
        self.0.lookup_rule(path).map(|(pattern, _)| pattern)
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The patterns with their keys (for validation; never print the keys).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(p, k)| (p, k.as_slice()))
    }

    /// The patterns, with how many keys each has (for summaries; never the keys).
    pub fn patterns(&self) -> impl Iterator<Item = (&str, usize)> {
        self.0.iter().map(|(p, k)| (p, k.len()))
    }
}
