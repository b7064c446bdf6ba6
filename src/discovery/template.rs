//! Route templates from upstream documents are data, never router syntax.
//!
//! The route table (matchit) reads `{*name}` as a catch-all and `{{` / `}}` as
//! escapes; a document could use them to install a route matching far more than it
//! says. A template is kept only when it is plain: literal segments in the canonical
//! path form (no `{`, `}`, `*`, `:`), parameters as whole `{name}` segments with a
//! plain name. Anything else is skipped with a reason.

use crate::canonical_path::canonicalize;

/// Checks an upstream path template.
///
/// # Errors
/// Why the template is not taken (for the skip list and the log).
pub fn check(template: &str) -> Result<(), String> {
    if !template.starts_with('/') {
        return Err("the path template does not start with '/'".to_owned());
    }
    let mut probe = String::with_capacity(template.len());
    for segment in template[1..].split('/') {
        probe.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) => {
                probe.push('p');
            }
            _ if segment.contains(['{', '}', '*', ':']) => {
                return Err(format!(
                    "the path template holds router syntax in segment {segment:?} (only whole '{{name}}' parameters are taken)"
                ));
            }
            _ => probe.push_str(segment),
        }
    }
    match canonicalize(&probe) {
        Ok(canonical) if canonical == probe => Ok(()),
        Ok(_) => Err("the path template is not in canonical form (encoded unreserved characters, empty segments or odd characters)".to_owned()),
        Err(e) => Err(format!("the path template is refused: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn plain_templates_are_taken() {
        for ok in ["/", "/api/v1/items/{item_id}", "/a/{b}/c/", "/files/{file-name.ext}"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn router_syntax_is_refused() {
        for bad in [
            "/raw/{*rest}",
            "/raw/{{x}}",
            "/a/{{",
            "/a/}}",
            "/a/x{id}",
            "/a/{id}x",
            "/a/{}",
            "/a/*",
            "/a/:id",
            "/a/{a/b}",
            "/a//b",
            "/a/../b",
            "/a/%61",
            "/a/%2F",
            "relative",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
