//! FrameX-kit's `[docs]`: the action buttons of the docs page and the files a
//! plugin's config view may show.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[docs]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocsConfig {
    /// Patterns (Python `fnmatch`, relative to the config file's directory) of the
    /// `.yaml`/`.yml`/`.toml` files a plugin's config view (`/docs/plugin-config`,
    /// behind `[auth.oauth]`) may show when the plugin's table names them. Default:
    /// none.
    pub embedded_config_file_whitelist: Vec<String>,
    /// Buttons in the docs page's header, in this order. Default: none.
    pub action_buttons: Vec<ActionButton>,
}

/// One `[[docs.action_buttons]]`, with FrameX-kit's keys and defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionButton {
    /// The button's text.
    pub title: String,
    /// Its colour: `default`, `primary`, `success`, `warning`, `danger`.
    #[serde(default)]
    pub variant: ButtonVariant,
    /// Ask before acting. Default: `false`.
    #[serde(default)]
    pub requires_confirmation: bool,
    /// The question asked (default: "Run <title>?").
    #[serde(default)]
    pub confirmation_message: String,
    /// Where the request goes (for `LINK`: the page opened; `http(s)://` only).
    pub url: String,
    /// `GET`, `POST` (default), `PUT`, `PATCH`, `DELETE`, or `LINK` (opens `url`).
    #[serde(default = "default_method")]
    pub method: String,
    /// Seconds the request may take. Default: 30.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Headers sent with the request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters sent with the request.
    #[serde(default)]
    pub query: BTreeMap<String, toml::Value>,
    /// `json` (default) or `form`.
    #[serde(default = "default_body_type")]
    pub body_type: String,
    /// Body fields sent with the request.
    #[serde(default)]
    pub body: BTreeMap<String, toml::Value>,
    /// Fields the user fills in before the request goes.
    #[serde(default)]
    pub inputs: Vec<ButtonInput>,
    /// Who may press it: `{ type = "none" }` (default), `{ type = "password", password
    /// = "…" }` or `{ type = "oauth", allowed_usernames = […] }`.
    #[serde(default)]
    pub auth: ButtonAuth,
    /// A dotted path in the JSON answer holding a URL to open. Default: none.
    #[serde(default)]
    pub response_open_url: String,
}

/// `variant` of an action button.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ButtonVariant {
    /// Grey.
    #[default]
    Default,
    /// Blue.
    Primary,
    /// Green.
    Success,
    /// Orange.
    Warning,
    /// Red.
    Danger,
}

/// One field of an action button's form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonInput {
    /// The field's name in the query or body.
    pub name: String,
    /// Its label.
    pub label: String,
    /// Its placeholder.
    #[serde(default)]
    pub placeholder: String,
    /// Its initial value.
    #[serde(default)]
    pub default: String,
    /// Whether it must be filled in.
    #[serde(default)]
    pub required: bool,
    /// `body` (default) or `query`.
    #[serde(default = "default_target")]
    pub target: String,
}

/// `auth` of an action button.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ButtonAuth {
    /// Anyone who sees the page.
    #[default]
    None,
    /// A password asked for on click.
    Password {
        /// The password.
        password: String,
    },
    /// The OAuth user of the docs login, if listed (`*` = any).
    Oauth {
        /// Users allowed (default `["*"]`).
        #[serde(default = "everyone")]
        allowed_usernames: Vec<String>,
    },
}

impl ButtonAuth {
    /// FrameX-kit's name of the kind (`none`, `password`, `oauth`).
    pub fn kind(&self) -> &'static str {
        match self {
            ButtonAuth::None => "none",
            ButtonAuth::Password { .. } => "password",
            ButtonAuth::Oauth { .. } => "oauth",
        }
    }
}

fn default_method() -> String {
    "POST".to_owned()
}
fn default_timeout() -> f64 {
    30.0
}
fn default_body_type() -> String {
    "json".to_owned()
}
fn default_target() -> String {
    "body".to_owned()
}
fn everyone() -> Vec<String> {
    vec!["*".to_owned()]
}

/// What FrameX-kit's schema refuses: unknown methods, body types and targets, a
/// `LINK` that is not an http(s) URL, a timeout that is not positive; and what
/// framex-rs could not send: another button whose request the send path would
/// refuse ([`ActionButton::target`], the send path's own parse), named by its place
/// and title.
pub(super) fn check(config: &DocsConfig) -> Result<(), String> {
    for (i, b) in config.action_buttons.iter().enumerate() {
        let key = |k: &str| format!("docs.action_buttons[{i}].{k}");
        if !["GET", "POST", "PUT", "PATCH", "DELETE", "LINK"].contains(&b.method.as_str()) {
            return Err(format!("{} must be one of GET, POST, PUT, PATCH, DELETE, LINK", key("method")));
        }
        if b.method == "LINK" && !(b.url.starts_with("http://") || b.url.starts_with("https://")) {
            return Err(format!("{}: a LINK button's url must start with http:// or https://", key("url")));
        }
        // framex-rs sends the request itself: what it cannot send is refused now. The
        // error names neither the URL nor a header's value (either may be a secret).
        if b.method != "LINK" {
            if let Err(e) = b.target() {
                return Err(format!("{} (button '{}'): {e}", key(e.key()), b.title.escape_default()));
            }
        }
        if !(b.timeout > 0.0 && b.timeout.is_finite()) {
            return Err(format!("{} must be a positive number of seconds", key("timeout")));
        }
        if !["json", "form"].contains(&b.body_type.as_str()) {
            return Err(format!("{} must be json or form", key("body_type")));
        }
        if let Some(input) = b.inputs.iter().find(|input| !["body", "query"].contains(&input.target.as_str())) {
            return Err(format!("{}: input '{}' target must be body or query", key("inputs"), input.name.escape_default()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_parse as parse;

    /// FrameX-kit's shape, defaults included; its refusals, naming the key.
    #[test]
    fn action_buttons_parse_as_in_framex_kit() {
        let c = parse(
            r#"
[[docs.action_buttons]]
title = "Deploy"
variant = "danger"
url = "http://127.0.0.1:1/deploy"
auth = { type = "password", password = "p" }
inputs = [{ name = "tag", label = "Tag", required = true }]
[[docs.action_buttons]]
title = "Wiki"
method = "LINK"
url = "https://example.org/wiki"
"#,
        )
        .unwrap();
        let [deploy, wiki] = &c.docs.action_buttons[..] else { panic!("two buttons") };
        assert_eq!((deploy.method.as_str(), deploy.variant, deploy.timeout), ("POST", ButtonVariant::Danger, 30.0));
        assert_eq!(deploy.auth.kind(), "password");
        assert_eq!(deploy.inputs[0].target, "body");
        assert_eq!((wiki.method.as_str(), wiki.auth.kind()), ("LINK", "none"));
        let err = parse("[[docs.action_buttons]]\ntitle = \"x\"\nmethod = \"LINK\"\nurl = \"/local\"").unwrap_err();
        assert!(err.contains("docs.action_buttons[0].url"), "{err}");
        let err = parse("[[docs.action_buttons]]\ntitle = \"x\"\nurl = \"http://a\"\nmethod = \"TRACE\"").unwrap_err();
        assert!(err.contains("docs.action_buttons[0].method"), "{err}");
        let err = parse("[[docs.action_buttons]]\ntitle = \"x\"\nurl = \"/relative\"").unwrap_err();
        assert!(err.contains("docs.action_buttons[0].url"), "{err}");
        let err = parse("[[docs.action_buttons]]\ntitle = \"x\"\nurl = \"http://a\"\nheaders = { \"Bad Name\" = \"s3cret\" }").unwrap_err();
        assert!(err.contains("Bad Name") && !err.contains("s3cret"), "{err}");
        let err = parse("[[docs.action_buttons]]\ntitle = \"x\"\nurl = \"http://a\"\nauth = { type = \"key\" }").unwrap_err();
        assert!(err.contains("none") && err.contains("password") && err.contains("oauth"), "{err}");
    }

    /// A button whose request the send path would refuse (it answered 502 on every
    /// press) does not load: credentials in its URL, a host name no upstream URL may
    /// have, a path too long for a URI, a header framex-rs sets itself, a header given
    /// twice in two spellings (one would replace the other unseen). The error
    /// names the button, never the URL's password or a header's value.
    #[test]
    fn what_cannot_be_sent_does_not_load() {
        let long = format!("url = \"http://127.0.0.1:9/{}\"", "x".repeat(70_000));
        for (lines, says) in [
            ("url = \"http://deployer:url-secret-1@127.0.0.1:9/x\"", "url (button 'Deploy'): must not hold credentials"),
            ("url = \"http://build!box/x\"", "url (button 'Deploy'): has an invalid host name"),
            (long.as_str(), "url (button 'Deploy'): has a path or query that cannot be sent"),
            ("url = \"http://127.0.0.1:9/x\"\nheaders = { \"Content-Length\" = \"3\" }", "headers (button 'Deploy'): 'Content-Length' is set by framex-rs"),
            ("url = \"http://127.0.0.1:9/x\"\nheaders = { \"Transfer-Encoding\" = \"gzip\" }", "headers (button 'Deploy'): 'Transfer-Encoding' is set by framex-rs"),
            ("url = \"http://127.0.0.1:9/x\"\nheaders = { Host = \"other.example\" }", "headers (button 'Deploy'): 'Host' is set by framex-rs"),
            ("url = \"http://127.0.0.1:9/x\"\nheaders = { \"X-Key\" = \"value-secret-2\\u007f\" }", "headers (button 'Deploy'): 'X-Key' cannot be sent"),
            ("url = \"http://127.0.0.1:9/x\"\nheaders = { \"X-Key\" = \"secret-3\", \"x-key\" = \"secret-4\" }", "headers (button 'Deploy'): 'x-key' is given twice"),
        ] {
            let err = parse(&format!("[[docs.action_buttons]]\ntitle = \"Deploy\"\n{lines}")).unwrap_err();
            assert!(err.contains(&format!("docs.action_buttons[0].{says}")), "{says}: {err}");
            assert!(!err.contains("secret") && err.len() < 400, "{err}");
        }
        // What a browser reads as another spelling of a good URL loads (and is sent
        // as it reads it).
        for good in ["http://127.1:9/x", "https://Bücher.example/x", "http://127.0.0.1:9/a b?q=1 2#frag"] {
            parse(&format!("[[docs.action_buttons]]\ntitle = \"Deploy\"\nurl = \"{good}\"")).unwrap();
        }
    }
}
