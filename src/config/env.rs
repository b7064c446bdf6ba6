//! FrameX's environment overrides: `SECTION__KEY=value`, nested by `__`.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, TOP_LEVEL};

/// FrameX-kit's dotenv files, read in this order (a later one wins).
const DOTENV_FILES: [&str; 2] = [".env", ".env.prod"];

/// The variables of `.env` and `.env.prod` in `dir` (when present), overridden by
/// `env`: names compare case-insensitively, as FrameX-kit's do. Values are never
/// shown in errors (they are often secrets).
///
/// # Errors
/// A dotenv file that cannot be read or parsed, naming the file and the line.
pub(super) fn with_dotenv(
    dir: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut merged: HashMap<String, (String, String)> = HashMap::new();
    for file in DOTENV_FILES {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let invalid = |message: String| ConfigError::Invalid { origin: path.display().to_string(), message };
        let iter = dotenvy::from_path_iter(&path).map_err(|e| invalid(dotenv_problem(&e)))?;
        for item in iter {
            let (name, value) = item.map_err(|e| invalid(dotenv_problem(&e)))?;
            merged.insert(name.to_lowercase(), (name, value));
        }
    }
    for (name, value) in env {
        merged.insert(name.to_lowercase(), (name, value));
    }
    Ok(merged.into_values().collect())
}

/// What is wrong with a dotenv file, without the line's text (it may hold a secret).
fn dotenv_problem(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => format!("cannot parse the line at byte {index}"),
        dotenvy::Error::Io(io) => format!("cannot read: {io}"),
        dotenvy::Error::EnvVar(_) => "a variable is not valid unicode".to_owned(),
        _ => "cannot parse".to_owned(),
    }
}

/// Applies `SECTION__KEY=value` overrides (case-insensitive, nested by `__`) for the
/// known top-level keys; values parse as TOML when they can, else are strings.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), String> {
    let mut overrides: Vec<(Vec<String>, String)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let path: Vec<String> = name.split("__").map(str::to_lowercase).collect();
            TOP_LEVEL.contains(&path[0].as_str()).then_some((path, value))
        })
        .filter(|(path, _)| path.len() > 1 || path[0].starts_with("load_"))
        .collect();
    overrides.sort();
    for (path, raw) in overrides {
        let value = parse_env_value(&raw);
        let (last, parents) = path.split_last().expect("at least one segment");
        let mut current = &mut *table;
        for segment in parents {
            let entry = current
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            current = entry.as_table_mut().ok_or_else(|| {
                format!("env {}: '{segment}' is not a table", path.join("__").to_uppercase())
            })?;
        }
        current.insert(last.clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|j| toml::Value::try_from(j).ok())
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
    }
}
