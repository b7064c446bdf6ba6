//! The header of the `/docs` page: FrameX-kit's (runtime version, start time, plugins
//! loaded and failed, plugin cards with author, version and repository, `[docs]`
//! action buttons) plus what FrameX-kit cannot show — each upstream's health and each
//! migrating route's mode.
//!
//! The server writes the figures as a JSON island in the page (`<`, `>` and `&`
//! written as `\u003c`…, so no text can close the script element); the page's own
//! script (`assets/framex-docs/header.js`, served by the binary) builds the header
//! from it with `textContent` only. Upstream URLs and plugin texts are data, never
//! markup.

use std::sync::Arc;

use std::time::Duration;

use framex_actors::PluginMeta;
use serde::Serialize;
use serde_json::json;

use crate::config::{ActionButton, Config};
use crate::lookup_cache::LookupCache;
use crate::repository::Repo;

use super::Worker;

/// What the header shows that does not change between requests.
#[derive(Debug, Clone)]
pub struct DocsPage {
    /// The version shown (`v<server.reversion or version>`).
    runtime: String,
    /// When the server started (UTC).
    started_at: String,
    /// The plugins loaded.
    cards: Arc<[Card]>,
    /// `[docs] action_buttons`.
    buttons: Vec<ButtonView>,
    /// What the docs tools use and never show (see [`DocsTools`]).
    pub(super) tools: Arc<DocsTools>,
}

/// What the docs' own endpoints (action buttons, plugin config and release, see
/// `docs_tools`) work with, kept on the server: the buttons whole (targets,
/// headers, passwords), `[repository]`, the plugins' tables, the whitelist, the
/// workspace and the config's secret values.
#[derive(Default)]
pub(super) struct DocsTools {
    /// `[docs] action_buttons`, whole.
    pub buttons: Vec<ActionButton>,
    /// `[repository]`.
    pub repository: crate::config::RepositoryConfig,
    /// Each plugin's `[plugins.<name>]` table.
    pub tables: std::collections::BTreeMap<String, toml::Table>,
    /// `docs.embedded_config_file_whitelist`.
    pub whitelist: Vec<String>,
    /// The config file's directory (else the working directory), canonical; `None`
    /// when it cannot be resolved (no file is then shown).
    pub workspace: Option<std::path::PathBuf>,
    /// [`Config::secret_values`].
    pub secrets: Vec<String>,
    /// Latest releases asked of repositories lately, by repository URL (see
    /// [`DocsTools::release`]).
    releases: LookupCache<ReleaseLookup>,
    /// Whether repositories are public, asked lately, by repository URL (see
    /// [`DocsTools::is_public`]).
    public: LookupCache<Option<bool>>,
}

/// How long a repository's latest release is taken as known: the docs page asks for
/// every plugin card on every view, and each ask spends the repository token's rate.
const RELEASE_TTL: Duration = Duration::from_secs(600);
/// How long a repository known to be public is taken as such: every view of a
/// plugin's config asks, and each ask spends the provider's anonymous rate. A
/// repository made private is shown to every logged-in user for at most this long.
const PUBLIC_TTL: Duration = Duration::from_secs(300);
/// How long a failed lookup (rate limited, provider down) stands before it is tried
/// again; a repository not (or not known to be) public is asked again as soon.
const FAILED_TTL: Duration = Duration::from_secs(60);

/// What a repository said of its latest release (see [`crate::repository::Repo::latest_release`]).
pub type ReleaseLookup = Result<Option<crate::repository::Release>, crate::repository::LookupError>;

/// Never prints what it keeps (buttons' passwords and headers, tokens, secrets).
impl std::fmt::Debug for DocsTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocsTools")
            .field("buttons", &self.buttons.len())
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .field("whitelist", &self.whitelist)
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

impl DocsTools {
    /// The latest release of the repository at `url`, asked of it at most once per
    /// [`RELEASE_TTL`] (after a failure, [`FAILED_TTL`]), one ask at a time (views at
    /// once share it); the cache holds only the configured plugins' URLs. A failure is
    /// logged (a warning, once per lookup).
    pub async fn release(&self, url: &str) -> ReleaseLookup {
        let keep = |release: &ReleaseLookup| if release.is_ok() { RELEASE_TTL } else { FAILED_TTL };
        let lookup = || async {
            let release = match Repo::parse(url, &self.repository) {
                Some(repo) => repo.latest_release(&self.repository).await,
                None => Ok(None),
            };
            if let Err(e) = &release {
                log::warn!("docs: the latest release of {} is unknown: {e}", framex_actors::Escaped(url));
            }
            release
        };
        self.releases.get(url, keep, lookup).await
    }

    /// Whether `repo` (at the configured `url`) is public ([`Repo::is_public`]), asked
    /// of its provider at most once per [`PUBLIC_TTL`] (any other answer: per
    /// [`FAILED_TTL`]), one ask at a time.
    pub async fn is_public(&self, url: &str, repo: &Repo) -> Option<bool> {
        let keep = |public: &Option<bool>| if *public == Some(true) { PUBLIC_TTL } else { FAILED_TTL };
        self.public.get(url, keep, || repo.is_public()).await
    }

    fn new(config: &Config) -> Self {
        let dir = config.source.as_deref().and_then(std::path::Path::parent).filter(|d| !d.as_os_str().is_empty());
        let workspace = match dir {
            Some(dir) => dir.canonicalize().ok(),
            None => std::env::current_dir().and_then(|d| d.canonicalize()).ok(),
        };
        DocsTools {
            buttons: config.docs.action_buttons.clone(),
            repository: config.repository.clone(),
            tables: config.plugins.other.clone(),
            whitelist: config.docs.embedded_config_file_whitelist.clone(),
            workspace,
            secrets: config.secret_values(),
            releases: LookupCache::default(),
            public: LookupCache::default(),
        }
    }
}

/// A plugin's card.
#[derive(Debug, Clone, Serialize)]
struct Card {
    name: String,
    version: String,
    author: String,
    description: String,
    url: String,
}

/// What the page knows of an action button (never its headers, body or password).
#[derive(Debug, Clone, Serialize)]
struct ButtonView {
    index: usize,
    title: String,
    variant: crate::config::ButtonVariant,
    method: String,
    /// The fields asked for before the request goes (none for a `LINK`). The URL is
    /// never shown, a `LINK`'s included: the server opens it after the button's auth.
    inputs: Vec<crate::config::ButtonInput>,
    auth_type: &'static str,
    /// Whether its answer may name a URL to open (`response_open_url`): the page
    /// opens a window in the click, before the answer comes (popup blockers).
    opens_url: bool,
    requires_confirmation: bool,
    confirmation_message: String,
}

impl DocsPage {
    /// The header of a server started now with `plugins` under `config`.
    pub fn new<'a>(config: &Config, plugins: impl IntoIterator<Item = &'a PluginMeta>) -> Self {
        let release = config.server.release();
        DocsPage {
            runtime: if release.starts_with('v') { release.to_owned() } else { format!("v{release}") },
            started_at: chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            cards: plugins
                .into_iter()
                .map(|meta| Card {
                    name: meta.name.clone(),
                    version: meta.version.clone(),
                    author: meta.author.clone(),
                    description: meta.description.clone(),
                    url: meta.url.clone(),
                })
                .collect(),
            buttons: buttons(&config.docs.action_buttons),
            tools: Arc::new(DocsTools::new(config)),
        }
    }

    /// The plugin `name`'s card: its version and repository URL.
    pub(super) fn plugin(&self, name: &str) -> Option<(&str, &str)> {
        self.cards.iter().find(|c| c.name == name).map(|c| (c.version.as_str(), c.url.as_str()))
    }

    /// The same header under a reloaded `config` (new buttons and version; the start
    /// time and the plugins stay).
    pub fn reconfigured(&self, config: &Config) -> Self {
        let fresh = DocsPage::new(config, []);
        DocsPage {
            runtime: fresh.runtime,
            started_at: self.started_at.clone(),
            cards: self.cards.clone(),
            buttons: fresh.buttons,
            tools: fresh.tools,
        }
    }
}

fn buttons(config: &[ActionButton]) -> Vec<ButtonView> {
    config
        .iter()
        .enumerate()
        .map(|(index, b)| ButtonView {
            index,
            title: b.title.clone(),
            variant: b.variant,
            method: b.method.clone(),
            inputs: if b.method == "LINK" { Vec::new() } else { b.inputs.clone() },
            auth_type: b.auth.kind(),
            opens_url: b.method != "LINK" && !b.response_open_url.is_empty(),
            requires_confirmation: b.requires_confirmation,
            confirmation_message: b.confirmation_message.clone(),
        })
        .collect()
}

/// The figures the header shows now, as the JSON island's text.
pub(super) async fn overview(worker: &Worker<'_>) -> String {
    let shared = &worker.shared;
    let page = &shared.docs;
    let upstreams: Vec<serde_json::Value> = match &shared.proxy {
        Some(proxy) => proxy
            .report()
            .await
            .upstreams
            .iter()
            .map(|u| {
                json!({
                    "url": u.endpoint.url,
                    "discovered": u.discovered,
                    "healthy": u.endpoint.healthy,
                    "operations": u.operations,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let table = shared.engine.table();
    let active = |template: &str| {
        table
            .shadowed_keys()
            .any(|key| matches!(key, framex_actors::ApiKey::Http { path, .. } if path == template))
    };
    let migration: Vec<serde_json::Value> = shared
        .migration
        .report(active)
        .into_iter()
        .map(|r| json!({ "route": r.route, "mode": r.mode, "active": r.active }))
        .collect();
    let overview = json!({
        "runtime": page.runtime,
        "started_at": page.started_at,
        // framex-rs refuses to start when a plugin cannot load: none is ever failed.
        "plugins": { "loaded": page.cards.len(), "failed": 0 },
        "cards": &*page.cards,
        "buttons": page.buttons,
        // Plugin cards link to their config view when the docs login is on.
        "config_view": shared.docs_login.is_some(),
        "upstreams": upstreams,
        "migration": migration,
    });
    script_safe(&overview.to_string())
}

/// JSON text that cannot end the `<script>` element holding it: `<`, `>` and `&`
/// (which JSON allows only inside strings) written as `\u` escapes, which
/// `JSON.parse` reads back unchanged.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text from a plugin or an upstream cannot close the data island's script, and
    /// reads back the same.
    #[test]
    fn the_island_cannot_be_closed_from_inside() {
        let text = json!({ "d": "</script><script>alert(1)</script> & <!--" }).to_string();
        let safe = script_safe(&text);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["d"], "</script><script>alert(1)</script> & <!--");
    }

    /// A button's secrets (password, headers, body) and a non-LINK target stay out of
    /// the page.
    #[test]
    fn buttons_show_no_secrets() {
        let config = Config::from_toml_str(
            r#"
[[docs.action_buttons]]
title = "Deploy"
url = "http://127.0.0.1:1/deploy-secret-path"
headers = { Authorization = "hdr-secret" }
body = { token = "body-secret" }
auth = { type = "password", password = "pw-secret" }
"#,
            "test",
        )
        .unwrap();
        let page = DocsPage::new(&config, []);
        let debug = format!("{page:?}");
        assert!(!debug.contains("pw-secret") && !debug.contains("hdr-secret"), "{debug}");
        let shown = serde_json::to_string(&page.buttons).unwrap();
        assert!(shown.contains("Deploy") && shown.contains("\"auth_type\":\"password\""), "{shown}");
        for secret in ["hdr-secret", "body-secret", "pw-secret", "deploy-secret-path"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
