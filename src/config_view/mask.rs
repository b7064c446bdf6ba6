//! What a shown config hides: every value under a key that sounds secret (FrameX-kit's
//! words plus a few: `dsn`, `auth`, `key`, `pwd`, `private`), every key list of an
//! `auth` rule, the password of a URL, and any secret value of the server's own config
//! wherever it appears. A hidden value is `********` whole (FrameX-kit shows its
//! first and last two characters; we show none, nor its length).

use crate::config::secrets::scrub;

/// What replaces a hidden value.
pub const MASK: &str = "********";

/// Words that make a key secret (matched inside the key, case-insensitive, `-` read
/// as `_`).
const SECRET_WORDS: [&str; 20] = [
    "token", "secret", "password", "passwd", "pwd", "authorization", "auth", "api_key", "apikey", "access_key",
    "private", "client_secret", "cookie", "session", "credential", "mysql", "dsn", "key", "cert", "signature",
];

/// Whether a key sounds secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase().replace('-', "_");
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

/// `table` with its secrets hidden (see the module's doc). `secrets` are the
/// server's own secret values.
pub fn table(table: &toml::Table, secrets: &[String]) -> toml::Table {
    mask_table(table, &mut Vec::new(), secrets)
}

fn mask_table(table: &toml::Table, path: &mut Vec<String>, secrets: &[String]) -> toml::Table {
    table
        .iter()
        .map(|(key, value)| {
            path.push(key.clone());
            let masked = mask_value(value, path, secrets);
            path.pop();
            (scrub(key, secrets), masked)
        })
        .collect()
}

fn mask_value(value: &toml::Value, path: &mut Vec<String>, secrets: &[String]) -> toml::Value {
    let secret_path = path.iter().any(|k| is_secret_key(k))
        || (path.len() >= 2 && path[path.len() - 2] == "rules" && path.iter().any(|k| k == "auth"));
    match value {
        toml::Value::Table(t) => toml::Value::Table(mask_table(t, path, secrets)),
        toml::Value::Array(items) => toml::Value::Array(items.iter().map(|v| mask_value(v, path, secrets)).collect()),
        toml::Value::Boolean(_) => value.clone(),
        _ if secret_path => toml::Value::String(MASK.to_owned()),
        toml::Value::String(s) => toml::Value::String(string(s, secrets)),
        _ => value.clone(),
    }
}

/// A shown string: the password of a URL hidden, the server's secrets scrubbed.
pub fn string(text: &str, secrets: &[String]) -> String {
    scrub(&url_password(text), secrets)
}

/// `text` with the password of every `scheme://user:password@host` URL in it hidden
/// (or the user itself when it has no password: then it is the credential). A URL's
/// authority ends at its path, query or fragment, at white space, or at a character
/// no URL holds unescaped (a quote, a bracket of a flow list around it).
fn url_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (head, tail) = rest.split_at(scheme_end + 3);
        out.push_str(head);
        let ends = |c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '<' | '>' | '[' | ']' | '{' | '}' | '\\');
        let authority = &tail[..tail.find(ends).unwrap_or(tail.len())];
        let Some(at) = authority.rfind('@') else {
            // No credentials here; the authority may run into a next URL of a list
            // (`http://h1,http://u:p@h2`): go on looking inside it.
            rest = tail;
            continue;
        };
        // A user without a password is a token as often as not (`ghp_…@github.com`,
        // `x-access-token@…`): hidden whole.
        if let Some(colon) = authority[..at].find(':') {
            out.push_str(&authority[..=colon]);
        }
        out.push_str(MASK);
        rest = &tail[at..];
    }
    out.push_str(rest);
    out
}

/// A YAML file's text with its secrets hidden, line by line (no YAML parser here):
/// the value of a secret key; everything indented under a secret key (a nested
/// table, a list, a block scalar `|`/`>`, a quoted string that goes on); a flow
/// value (`{…}`, `[…]`) naming a secret word; a comment naming one; URL passwords
/// and the server's secrets anywhere.
pub fn yaml(text: &str, secrets: &[String]) -> String {
    let mut out = Vec::new();
    // The secret value being hidden over the lines that follow its key.
    let mut hiding: Option<Hiding> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let content = line.trim_start();
        let masked = || if content.is_empty() { String::new() } else { format!("{}{MASK}", &line[..indent]) };
        match &mut hiding {
            // A list under the key may stand at the key's own indent (`tokens:` then
            // `- value`): still the key's block.
            Some(Hiding::Block(level))
                if content.is_empty() || indent > *level || (indent == *level && (content == "-" || content.starts_with("- "))) =>
            {
                out.push(masked());
                continue;
            }
            // Inside a flow collection or a quoted scalar, YAML does not look at the
            // indent: hidden until it closes, at whatever indent.
            Some(Hiding::Flow(depth)) => {
                out.push(masked());
                *depth += flow_depth(content);
                if *depth <= 0 {
                    hiding = None;
                }
                continue;
            }
            Some(Hiding::Quoted(quote)) => {
                out.push(masked());
                if quote_end(content, *quote).is_some() {
                    hiding = None;
                }
                continue;
            }
            _ => hiding = None,
        }
        if content.starts_with('#') {
            out.push(if is_secret_key(content) { format!("{}# {MASK}", &line[..indent]) } else { string(line, secrets) });
            continue;
        }
        let (shown, hides_under) = yaml_line(line, indent, secrets);
        hiding = hides_under;
        out.push(shown);
    }
    out.join("\n")
}

/// A secret YAML value going on below its key's line, hidden until it ends.
enum Hiding {
    /// Lines indented deeper than this column (the key's, `- ` included): a block, or
    /// a plain scalar over several lines.
    Block(usize),
    /// A flow collection (`[…]`, `{…}`) opened this many levels deep and not closed.
    Flow(i32),
    /// A quoted scalar not closed yet, by this quote.
    Quoted(char),
}

/// How many flow collections `text` opens (less those it closes), outside quotes.
fn flow_depth(text: &str) -> i32 {
    let mut depth = 0;
    let mut rest = text;
    while let Some(at) = rest.find(['[', '{', ']', '}', '"', '\'']) {
        let c = rest[at..].chars().next().unwrap_or_default();
        rest = &rest[at + 1..];
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth -= 1,
            // A quoted scalar: skipped to its end (one that does not end on this line
            // holds the rest of it).
            quote => match quote_end(rest, quote) {
                Some(end) => rest = &rest[end + 1..],
                None => break,
            },
        }
    }
    depth
}

/// Where in `text` a scalar quoted by `quote` (and opened before `text`) ends: the
/// first `quote` not escaped (`''` inside single quotes, `\"` inside double ones).
fn quote_end(text: &str, quote: char) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' if quote == '"' => {
                chars.next();
            }
            '\'' if quote == '\'' && chars.peek().is_some_and(|&(_, next)| next == '\'') => {
                chars.next();
            }
            c if c == quote => return Some(at),
            _ => {}
        }
    }
    None
}

/// One YAML line that is not a comment: the line as shown, and, for a secret key, how
/// its value goes on below it (a block, a flow collection or a quoted or plain scalar
/// over several lines), hidden too.
fn yaml_line(line: &str, indent: usize, secrets: &[String]) -> (String, Option<Hiding>) {
    let content = &line[indent..];
    let item = content.strip_prefix("- ").map_or(0, |_| 2);
    let body = &content[item..];
    let Some(colon) = key_end(body) else {
        // A flow map or list of its own (`- {name: bob, password: x}`, JSON in YAML).
        if body.starts_with(['{', '[']) && is_secret_key(body) {
            return (format!("{}{MASK}", &line[..indent + item]), None);
        }
        return (string(line, secrets), None);
    };
    let key = body[..colon].trim().trim_matches(['"', '\'']);
    let after = &body[colon + 1..];
    let (value, comment) = split_comment(after);
    let value_text = value.trim();
    let prefix = &line[..indent + item + colon + 1];
    let comment_shown = if comment.is_empty() || !is_secret_key(comment) { string(comment, secrets) } else { format!(" # {MASK}") };
    if is_secret_key(key) {
        let shown = if value_text.is_empty() || value_text.starts_with(['|', '>']) {
            format!("{prefix}{value}{comment_shown}")
        } else {
            format!("{prefix} {MASK}{comment_shown}")
        };
        let open_quote = value_text.chars().next().filter(|&q| (q == '"' || q == '\'') && quote_end(&value_text[1..], q).is_none());
        let goes_on = match (flow_depth(value_text), open_quote) {
            (depth, _) if depth > 0 && value_text.starts_with(['[', '{']) => Hiding::Flow(depth),
            (_, Some(quote)) => Hiding::Quoted(quote),
            _ => Hiding::Block(indent + item),
        };
        return (shown, Some(goes_on));
    }
    if value_text.starts_with(['{', '[']) && is_secret_key(value_text) {
        return (format!("{prefix} {MASK}{comment_shown}"), None);
    }
    (format!("{}{}{comment_shown}", string(prefix, secrets), string(value, secrets)), None)
}

/// Where a `key:` ends (the `:` followed by a space or the end), when the text starts
/// with a plain or quoted key.
fn key_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let first = *bytes.first()?;
    if first == b'{' || first == b'[' || first == b'#' {
        return None;
    }
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if (b == b'"' || b == b'\'') && i == 0 => quote = Some(b),
            None if b == b':' && bytes.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') => return Some(i),
            None => {}
        }
    }
    None
}

/// A value and its trailing comment (` #…`), outside quotes.
fn split_comment(value: &str) -> (&str, &str) {
    let mut quote = None;
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') => {
                return (&value[..i], &value[i..]);
            }
            None => {}
        }
    }
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secret keys, auth rule key lists and URL passwords are hidden whole; numbers
    /// under a secret key too; the rest is shown; the server's secrets are scrubbed.
    #[test]
    fn tables_hide_secrets() {
        let table: toml::Table = toml::from_str(
            r#"
name = "demo"
api_token = "tok-123456"
db_password = 123456
url = "mysql://app:hunter2@db:3306/x"
note = "uses server-key-9"
enabled = true
[auth]
rules = { "/x" = ["rule-key"] }
[nested.credentials]
user = "bob"
"#,
        )
        .unwrap();
        let shown = toml::to_string(&super::table(&table, &["server-key-9".to_owned()])).unwrap();
        for hidden in ["tok-123456", "123456", "hunter2", "rule-key", "server-key-9", "bob"] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
        assert!(shown.contains("name = \"demo\"") && shown.contains("mysql://app:********@db:3306/x"), "{shown}");
        assert!(shown.contains("enabled = true") && shown.contains("uses [redacted]"), "{shown}");
    }

    /// YAML: values of secret keys, blocks under them (nested, lists, block scalars,
    /// quoted strings that go on), flow values and comments naming a secret word.
    #[test]
    fn yaml_hides_secrets() {
        let text = "\
name: demo
password: p-1
'api_key': \"p-2\"   # the key
- token: p-3
credentials:
  user: p-4
  list:
    - p-5
private_key: |
  p-6
  p-7
session: \"p-8
  p-9\"
inline: {secret: p-10}
# old token: p-11
url: redis://:p-12@cache:6379/0
tokens:
- p-13
-  p-14
other: fine # keep
users:
  - {name: bob, password: p-15}
{\"db\": {\"password\": \"p-16\"}}
git: https://ghp_p-17@github.com/o/r.git
mirrors: [https://a:u-1@x.org/r, https://u-2@y.org]
note: primary https://u:u-3@a.org then \"git://u-4@b.org\"
keys: [
  u-5,
  u-6
]
- api_key: u-7
   u-8
- name: sibling
session_secret: u-9
   continued w-9
after: shown";
        let shown = yaml(text, &[]);
        for n in 1..=17 {
            assert!(!shown.contains(&format!("p-{n}")), "p-{n} in\n{shown}");
        }
        // Every URL of a line, not only its first (u-1 to u-4); a secret key's value
        // going on below it, as a flow list or a plain scalar (u-5 to u-9, w-9).
        for n in 1..=9 {
            assert!(!shown.contains(&format!("u-{n}")), "u-{n} in\n{shown}");
        }
        assert!(!shown.contains("w-9"), "w-9 in\n{shown}");
        for kept in ["name: demo", "- name: sibling", "]", "other: fine # keep", "after: shown", "credentials:", "private_key: |", "password: ********"] {
            assert!(shown.contains(kept), "{kept} missing in\n{shown}");
        }
    }

    /// A secret value that goes on below its key inside a flow collection or a quoted
    /// scalar is hidden until it closes, at whatever indent (YAML does not look at the
    /// indent there), escaped quotes (`''`, `\"`) and brackets inside quotes not closing
    /// it; what follows it is shown.
    #[test]
    fn yaml_flow_and_quoted_secrets_are_hidden_until_they_close() {
        let text = "\
tokens: [
t-01, t-02,
  [t-03]
]
shown-1: a
password: {
user: t-04,
pw: \"t-05 ] }\"
}
shown-2: b
secret: 'first t-06
t-07'
shown-3: c
secret: 'it''s t-08
it''s t-09
t-10'
shown-4: d
secret: \"a \\\" t-11
t-12 \\\" t-13
t-14\"
shown-5: e
tokens: [\"x\\\"]\", t-15,
t-16]
shown-6: f";
        let shown = yaml(text, &[]);
        for n in 1..=16 {
            assert!(!shown.contains(&format!("t-{n:02}")), "t-{n:02} in\n{shown}");
        }
        for kept in ["shown-1: a", "shown-2: b", "shown-3: c", "shown-4: d", "shown-5: e", "shown-6: f"] {
            assert!(shown.contains(kept), "{kept} missing in\n{shown}");
        }
    }

    /// Several URLs in one value, joined by `,`, `;` or `|` (broker and sentinel
    /// lists): the password of each is hidden, the first having none or not.
    #[test]
    fn every_url_of_a_list_has_its_password_hidden() {
        for text in ["http://h1,http://u:s-1@h2", "redis://h1;redis://u:s-1@h2/0", "amqp://h1|amqp://s-1@h2", "http://a@b,http://u:s-1@h2"] {
            let shown = url_password(text);
            assert!(!shown.contains("s-1"), "{text} -> {shown}");
            assert!(shown.contains(MASK) && shown.contains("h2"), "{text} -> {shown}");
        }
        assert_eq!(url_password("see http://h1/x and http://h2"), "see http://h1/x and http://h2");
    }

    #[test]
    fn secret_keys() {
        for key in ["jwt_secret", "Client-Secret", "DSN", "auth", "access_token", "private_key", "ssl_cert", "redis_pwd"] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["name", "url", "timeout", "enabled", "tags"] {
            assert!(!is_secret_key(key), "{key}");
        }
    }
}
