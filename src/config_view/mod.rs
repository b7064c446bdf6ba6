//! FrameX-kit's plugin-config view (`/docs/plugin-config?plugin=<name>`): a plugin's
//! `[plugins.<name>]` table as TOML, secrets hidden (see [`mask`]), followed by the
//! config files it names that `docs.embedded_config_file_whitelist` lets out (see
//! [`files`]), each hidden the same way. Who may see it is the HTTP surface's
//! question; this module only renders.
//!
//! A string value naming a config file is shown as its path relative to the
//! workspace when the file may be shown, and as `[restricted config path]` when it
//! may not (as in FrameX-kit).

pub mod files;
pub mod mask;

use std::path::Path;

/// What a string naming a config file that may not be shown becomes.
const RESTRICTED: &str = "[restricted config path]";

/// What a view is rendered with: the workspace (the config file's directory,
/// canonical), the whitelist, and the server's own secret values.
pub struct ViewContext<'a> {
    /// The workspace, canonical.
    pub workspace: &'a Path,
    /// `docs.embedded_config_file_whitelist`.
    pub whitelist: &'a [String],
    /// [`crate::config::Config::secret_values`].
    pub secrets: &'a [String],
}

/// The HTML page showing `table` and the files it names.
pub fn render(table: &toml::Table, cx: &ViewContext<'_>) -> String {
    let mut embedded: Vec<(String, String)> = Vec::new();
    let displayed = display_paths(table, cx, &mut embedded);
    let masked = mask::table(&displayed, cx.secrets);
    let body = toml::to_string(&masked).unwrap_or_default();
    let mut html = String::from(HEAD);
    section(&mut html, "Plugin Config (TOML)", &body);
    for (path, text) in &embedded {
        section(&mut html, &format!("Referenced Config: {path}"), text);
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// `table` with every string naming a config file replaced by its shown path (the
/// file's masked text added to `embedded`, once) or by [`RESTRICTED`].
fn display_paths(table: &toml::Table, cx: &ViewContext<'_>, embedded: &mut Vec<(String, String)>) -> toml::Table {
    table.iter().map(|(k, v)| (k.clone(), display_value(v, cx, embedded))).collect()
}

fn display_value(value: &toml::Value, cx: &ViewContext<'_>, embedded: &mut Vec<(String, String)>) -> toml::Value {
    match value {
        toml::Value::Table(t) => toml::Value::Table(display_paths(t, cx, embedded)),
        toml::Value::Array(items) => toml::Value::Array(items.iter().map(|v| display_value(v, cx, embedded)).collect()),
        toml::Value::String(s) => match files::named(s, cx.workspace, cx.whitelist) {
            files::Named::Shown(relative, resolved) => {
                if !embedded.iter().any(|(p, _)| *p == relative) {
                    let text = files::read(&resolved, cx.workspace).map_or_else(
                        || "[not shown: larger than 256 KiB, not UTF-8, or unreadable]".to_owned(),
                        |text| masked_file(&relative, &text, cx.secrets),
                    );
                    embedded.push((relative.clone(), text));
                }
                toml::Value::String(relative)
            }
            files::Named::Restricted => toml::Value::String(RESTRICTED.to_owned()),
            files::Named::Nothing => value.clone(),
        },
        _ => value.clone(),
    }
}

/// A file's text with its secrets hidden: TOML parsed and written back; YAML line
/// by line. A `.toml` file that does not parse is not shown (its secrets could not
/// be told apart).
fn masked_file(path: &str, text: &str, secrets: &[String]) -> String {
    if path.to_ascii_lowercase().ends_with(".toml") {
        match text.parse::<toml::Table>() {
            Ok(table) => toml::to_string(&mask::table(&table, secrets)).unwrap_or_default(),
            Err(_) => "[not shown: not valid TOML]".to_owned(),
        }
    } else {
        mask::yaml(text, secrets)
    }
}

/// Appends a titled `<pre>` section, both texts escaped.
fn section(html: &mut String, title: &str, body: &str) {
    html.push_str("<section class=\"config-shell\">\n<header class=\"config-header\"><h1 class=\"config-title\">");
    html.push_str(&escape(title));
    html.push_str("</h1></header>\n<pre class=\"config-body\">");
    html.push_str(&escape(body));
    html.push_str("</pre>\n</section>\n");
}

/// Text made safe inside HTML elements and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Plugin Config</title>
<style>
body { margin: 0; padding: 24px; background: #f8fafc; color: #0f172a; font-family: ui-monospace, SFMono-Regular, Menlo, Monaco, Consolas, monospace; }
.config-shell { max-width: 960px; margin: 0 auto 16px; background: #fff; border: 1px solid #e2e8f0; border-radius: 12px; overflow: hidden; }
.config-header { padding: 16px 20px; border-bottom: 1px solid #e2e8f0; }
.config-title { margin: 0; font-size: 15px; font-weight: 700; }
.config-body { margin: 0; padding: 20px; font-size: 13px; line-height: 1.7; white-space: pre-wrap; word-break: break-word; overflow: auto; }
</style>
</head>
<body>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The page shows the masked table, the whitelisted file (masked, once) by its
    /// relative path, `[restricted config path]` for another config file, and
    /// escapes what it shows.
    #[test]
    fn renders_masked_table_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("configs")).unwrap();
        std::fs::write(root.join("configs/app.toml"), "name = \"<b>x</b>\"\npassword = \"file-pw\"\n").unwrap();
        std::fs::write(root.join("configs/bad.toml"), "password = \"unparsed-pw\" oops\n").unwrap();
        std::fs::write(root.join("private.yaml"), "a: 1").unwrap();
        let table: toml::Table = toml::from_str(
            r#"
main = "configs/app.toml"
again = "./configs/app.toml"
bad = "configs/bad.toml"
hidden = "private.yaml"
token = "t-secret"
"#,
        )
        .unwrap();
        let whitelist = vec!["configs/*.toml".to_owned()];
        let cx = ViewContext { workspace: &root, whitelist: &whitelist, secrets: &[] };
        let html = render(&table, &cx);
        assert_eq!(html.matches("Referenced Config: configs/app.toml").count(), 1, "{html}");
        assert!(html.contains("main = &quot;configs/app.toml&quot;") && html.contains("[restricted config path]"), "{html}");
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x"), "{html}");
        assert!(html.contains("[not shown: not valid TOML]"), "{html}");
        for secret in ["file-pw", "unparsed-pw", "t-secret"] {
            assert!(!html.contains(secret), "{secret} in {html}");
        }
    }
}
