//! FrameX's environment overrides: `SECTION__KEY=value`, nested by `__`.

use super::TOP_LEVEL;

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
