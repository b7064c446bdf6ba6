//! Which files a plugin's config may show (FrameX-kit's embedded config files): a
//! string value of the plugin's table that names a `.yaml`, `.yml` or `.toml` file
//! inside the workspace (the config file's directory) whose path, relative to it,
//! matches a pattern of `docs.embedded_config_file_whitelist`.
//!
//! The path is resolved as the file system resolves it (`..` and symbolic links
//! followed) before any check: a name that leads out of the workspace, by `..`, by
//! an absolute path or through a link, is refused, as is anything not a regular
//! file, with another extension, larger than [`MAX_FILE_BYTES`], or not UTF-8.

use std::path::{Path, PathBuf};

/// The extensions shown (FrameX-kit's).
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "toml"];

/// The largest file shown; a larger one is left out.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// What a string value of a plugin's table names, as the view shows it.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    /// No existing config file (shown as it is).
    Nothing,
    /// A config file that may not be shown (shown as `[restricted config path]`).
    Restricted,
    /// A config file that may be shown: its path relative to the workspace
    /// (`/`-separated), and its resolved path.
    Shown(String, PathBuf),
}

/// What `value` names: a config file the whitelist lets out, another config file, or
/// nothing; the path is resolved once. `workspace` must be canonical.
pub fn named(value: &str, workspace: &Path, whitelist: &[String]) -> Named {
    let Some(resolved) = config_file(value, workspace) else { return Named::Nothing };
    let relative = resolved
        .strip_prefix(workspace)
        .ok()
        .and_then(Path::to_str)
        .map(|relative| relative.replace(std::path::MAIN_SEPARATOR, "/"));
    let Some(relative) = relative else { return Named::Restricted };
    let listed = whitelist
        .iter()
        .map(|p| p.trim().trim_start_matches('/'))
        .any(|p| !p.is_empty() && fnmatch(p, &relative));
    if listed {
        Named::Shown(relative, resolved)
    } else {
        Named::Restricted
    }
}

/// `value` resolved against `workspace`, when it is an existing regular file with a
/// config extension.
fn config_file(value: &str, workspace: &Path) -> Option<PathBuf> {
    if value.is_empty() || value.len() > 4096 || value.contains('\0') || value.contains('\n') {
        return None;
    }
    let expanded = match value.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME")?).join(rest),
        None => PathBuf::from(value),
    };
    let candidate = if expanded.is_absolute() { expanded } else { workspace.join(expanded) };
    let resolved = candidate.canonicalize().ok()?;
    let extension = resolved.extension()?.to_str()?.to_ascii_lowercase();
    if !EXTENSIONS.contains(&extension.as_str()) || !resolved.is_file() {
        return None;
    }
    Some(resolved)
}

/// Reads the file at `resolved` (inside `workspace`, see [`named`]): `None` when
/// it is larger than [`MAX_FILE_BYTES`], not UTF-8, or cannot be read.
pub fn read(resolved: &Path, workspace: &Path) -> Option<String> {
    if !resolved.starts_with(workspace) {
        return None;
    }
    // One open file for the checks and the read, never following a link at the last
    // step: a file swapped for a link, or grown, after it was resolved is not read.
    let file = open_no_follow(resolved)?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
    std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_FILE_BYTES + 1), &mut bytes).ok()?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// `path` opened for reading, refusing a symbolic link at its last step.
fn open_no_follow(path: &Path) -> Option<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).ok()
}

/// Python's `fnmatch` on POSIX: `*` any run of characters (`/` included), `?` one
/// character, `[abc]`, `[a-z]`, `[!abc]` one of (or none of) a set; case-sensitive.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Backtracking over the last `*`: linear in practice, bounded by |p|·|t|.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
            continue;
        }
        if pi < p.len() {
            if let Some((matched, next)) = one(&p, pi, t[ti]) {
                if matched {
                    pi = next;
                    ti += 1;
                    continue;
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether the pattern item at `p[i]` (not `*`) matches `c`, and where the next
/// item starts; `None` when it cannot match anything.
fn one(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    match p[i] {
        '?' => Some((true, i + 1)),
        '[' => {
            let mut j = i + 1;
            let negated = j < p.len() && p[j] == '!';
            if negated {
                j += 1;
            }
            let start = j;
            let mut hit = false;
            while j < p.len() && (p[j] != ']' || j == start) {
                if j + 2 < p.len() && p[j + 1] == '-' && p[j + 2] != ']' {
                    hit |= p[j] <= c && c <= p[j + 2];
                    j += 3;
                } else {
                    hit |= p[j] == c;
                    j += 1;
                }
            }
            if j >= p.len() {
                // No closing `]`: a literal `[`, as in Python.
                return Some((c == '[', i + 1));
            }
            Some((hit != negated, j + 1))
        }
        literal => Some((literal == c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fnmatch as Python's: `*` crosses `/`, sets and ranges, literals.
    #[test]
    fn fnmatch_as_python() {
        assert!(fnmatch("configs/*.yaml", "configs/a.yaml"));
        assert!(fnmatch("configs/*.yaml", "configs/sub/a.yaml"));
        assert!(!fnmatch("configs/*.yaml", "configs/a.yml"));
        assert!(!fnmatch("configs/*.yaml", "other/configs/a.yaml"));
        assert!(fnmatch("*", "anything/at/all.toml"));
        assert!(fnmatch("a?.toml", "ab.toml") && !fnmatch("a?.toml", "a.toml"));
        assert!(fnmatch("[ab]*.toml", "b1.toml") && !fnmatch("[!ab]*.toml", "b1.toml"));
        assert!(fnmatch("v[0-9].yml", "v7.yml") && !fnmatch("v[0-9].yml", "vx.yml"));
        assert!(fnmatch("[x", "[x") && !fnmatch("[x", "x"));
        assert!(fnmatch("**", "") && !fnmatch("a", ""));
    }

    /// Only whitelisted config files inside the workspace: not by `..`, an absolute
    /// path or a symbolic link out; not another extension; not a directory.
    #[test]
    fn only_whitelisted_files_inside() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.toml"), "token = 'x'").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("configs")).unwrap();
        std::fs::write(root.join("configs/app.yaml"), "a: 1").unwrap();
        std::fs::write(root.join("configs/app.txt"), "a: 1").unwrap();
        std::fs::create_dir(root.join("configs/dir.toml")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.toml"), root.join("configs/link.toml")).unwrap();
        let list = vec!["configs/*".to_owned()];
        let shown = |value: &str, list: &[String]| match named(value, &root, list) {
            Named::Shown(relative, _) => Some(relative),
            _ => None,
        };
        assert_eq!(shown("configs/app.yaml", &list).unwrap(), "configs/app.yaml");
        assert_eq!(shown(root.join("configs/app.yaml").to_str().unwrap(), &list).unwrap(), "configs/app.yaml");
        assert_eq!(shown("configs/../configs/app.yaml", &list).unwrap(), "configs/app.yaml");
        assert!(shown("configs/app.yaml", &["/configs/*.yaml".to_owned()]).is_some(), "a leading / is ignored");
        assert_eq!(named("configs/app.yaml", &root, &["other/*".to_owned()]), Named::Restricted);
        assert_eq!(named("configs/app.yaml", &root, &[]), Named::Restricted);
        assert_eq!(named("configs/app.txt", &root, &list), Named::Nothing);
        assert_eq!(named("configs/dir.toml", &root, &list), Named::Nothing);
        assert_eq!(named("configs/link.toml", &root, &list), Named::Restricted, "a link out");
        let out = outside.path().join("secret.toml");
        assert_eq!(named(out.to_str().unwrap(), &root, &["*".to_owned()]), Named::Restricted);
        let up = format!("configs/../../{}/secret.toml", outside.path().file_name().unwrap().to_str().unwrap());
        assert_eq!(named(&up, &root, &["*".to_owned()]), Named::Restricted);
        assert_eq!(named("not a path", &root, &["*".to_owned()]), Named::Nothing);
    }
}
