//! The docs' own endpoints (issue 22): `[docs]` action buttons run by the server, the
//! same requests against FrameX-kit 0.4.2 and framex-rs; who may press them (the docs'
//! gate, JSON only); the plugin-config view behind the OAuth login with
//! `docs.embedded_config_file_whitelist`, tried as an attacker would (files outside,
//! traversal, links, secrets); and `/docs/plugin-release` against a stand-in GitLab
//! with `[repository.auth]`'s token.

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::python::{free_port, venv, Child};
use crate::common::{config, get, raw_http, request, spawn_upstream, start, Reply};
use crate::docs_login::{log_in, provider, TOKEN};

/// The requests a stand-in target received: method, query, body, two headers.
type Seen = Arc<Mutex<Vec<Value>>>;

/// A button's target: records each request, answers 201 with a URL to open.
fn target(seen: Seen) -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(move |cfg| {
        let seen = seen.clone();
        cfg.default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let seen = seen.clone();
            async move {
                let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                seen.lock().unwrap().push(json!({
                    "method": req.method().as_str(),
                    "path": req.path(),
                    "query": req.query_string(),
                    "body": String::from_utf8_lossy(&body),
                    "authorization": header("authorization"),
                    "content_type": header("content-type"),
                }));
                HttpResponse::Created().json(json!({"result": {"web_url": "https://ci.example/run/7"}}))
            }
        }));
    })
}

/// The buttons both servers get; `{target}` is the stand-in.
const BUTTONS: &str = r#"
[[docs.action_buttons]]
title = "Deploy"
variant = "danger"
url = "{target}/deploy?x=1"
headers = { Authorization = "Bearer button-header-secret" }
query = { source = "docs" }
body = { job = "deploy" }
response_open_url = "result.web_url"
inputs = [{ name = "env", label = "Env", required = true, target = "query" }, { name = "tag", label = "Tag" }]

[[docs.action_buttons]]
title = "Purge"
method = "DELETE"
url = "{target}/purge"
auth = { type = "password", password = "button-password-7" }

[[docs.action_buttons]]
title = "Wiki"
method = "LINK"
url = "https://wiki.example/ops"
"#;

/// `POST {url}/docs/action-buttons/{path}` with a JSON body.
async fn press(url: &str, path: &str, body: &Value) -> Reply {
    let headers = [("content-type", "application/json")];
    request("POST", &format!("{url}/docs/action-buttons/{path}"), &headers, body.to_string().into_bytes()).await
}

/// What a user of the buttons notices: the answer's status, and its JSON without
/// what differs by design (FrameX-kit's error flag, our timestamp).
fn seen_by_user(reply: &Reply) -> (u16, Value) {
    let mut body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    if let Some(map) = body.as_object_mut() {
        map.remove("is_middleware_error");
        map.remove("timestamp");
    }
    (reply.status, body)
}

/// FrameX-kit 0.4.2 and framex-rs, in a project each, with the buttons.
async fn both(toml: &str) -> Vec<(Child, tempfile::TempDir, String)> {
    let mut out = Vec::new();
    for program in [venv().join("bin/framex"), Path::new(env!("CARGO_BIN_EXE_framex")).to_owned()] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(dir.path().join("config.toml"), format!("load_builtin_plugins = [\"echo\"]\n[server]\nport = {port}\n{toml}")).unwrap();
        let child = Child::spawn(&program, &["run"], dir.path(), &[], port, "/health").await;
        out.push((child, dir, format!("http://127.0.0.1:{port}")));
    }
    out
}

/// Each button pressed on FrameX-kit and on framex-rs: the same answers (the target's
/// status and body, the URL to open, the refusals), and the same request reaching
/// the target (method, inputs merged into the query and body, the configured header).
#[actix_rt::test]
async fn action_buttons_run_as_in_framex_kit() {
    let seen: Seen = Arc::default();
    let (target_url, _handle) = target(seen.clone());
    let servers = both(&BUTTONS.replace("{target}", &target_url)).await;
    let mut answers = Vec::new();
    let mut requests = Vec::new();
    for (_child, _dir, url) in &servers {
        seen.lock().unwrap().clear();
        let inputs = json!({"inputs": {"env": "prod", "tag": "v1"}, "auth": {}});
        let run = press(url, "0/invoke", &inputs).await;
        assert_eq!(run.status, 200, "{url}: {}", run.text());
        let mut user = vec![
            seen_by_user(&run),
            seen_by_user(&press(url, "0/invoke", &json!({"inputs": {"tag": "v1"}})).await),
            seen_by_user(&press(url, "1/invoke", &json!({"auth": {"password": "wrong"}})).await),
            seen_by_user(&press(url, "1/invoke", &json!({"auth": {"password": "button-password-7"}})).await),
            seen_by_user(&press(url, "2/open", &json!({})).await),
            seen_by_user(&press(url, "2/invoke", &json!({})).await),
            seen_by_user(&press(url, "0/open", &json!({})).await),
            seen_by_user(&press(url, "9/invoke", &json!({})).await),
        ];
        let window = crate::docs_login::get(&format!("{url}/docs/action-buttons/2/open"), "", &[]).await;
        user.push((window.status, json!(window.headers.get("location").and_then(|v| v.to_str().ok()))));
        answers.push(user);
        // Bodies compared as JSON (FrameX-kit's client may space it differently).
        let mut got = seen.lock().unwrap().clone();
        for r in &mut got {
            if let Ok(body) = serde_json::from_str::<Value>(r["body"].as_str().unwrap_or("")) {
                r["body"] = body;
            }
        }
        requests.push(got);
    }
    assert_eq!(answers[0], answers[1], "FrameX-kit (left) and framex-rs (right) answer the same");
    assert_eq!(requests[0], requests[1], "the target sees the same requests");
    let rs = &answers[1];
    assert_eq!(rs[0].1["status_code"], 201);
    assert_eq!(rs[0].1["open_url"], "https://ci.example/run/7");
    assert_eq!((rs[1].0, rs[1].1["message"].as_str()), (422, Some("Missing required inputs: Env")));
    assert_eq!((rs[2].0, rs[2].1["message"].as_str()), (401, Some("Invalid action password")));
    assert_eq!(rs[4].1, json!({"open_url": "https://wiki.example/ops"}));
    assert_eq!((rs[7].0, rs[8].0), (404, 302));
    let deploy = &requests[1][0];
    assert_eq!((deploy["method"].as_str(), deploy["query"].as_str()), (Some("POST"), Some("source=docs&env=prod")));
    assert_eq!(deploy["body"], json!({"job": "deploy", "tag": "v1"}));
    assert_eq!(deploy["authorization"], "Bearer button-header-secret");
    assert_eq!((requests[1][1]["method"].as_str(), requests[1][1]["path"].as_str()), (Some("DELETE"), Some("/purge")));
    assert_eq!(requests[1].len(), 2, "refused presses never reach the target");
    let page = get(&format!("{}/docs", servers[1].2)).await.text();
    for secret in ["button-header-secret", "button-password-7", &target_url, "wiki.example"] {
        assert!(!page.contains(secret), "the page shows {secret}");
    }
}

/// Only who may see `/docs` presses a button (and passes a rule for the buttons' own
/// paths); a form posted from another site (not `application/json`) never reaches the
/// target; `[limits]` count presses.
#[actix_rt::test]
async fn buttons_answer_only_who_may_see_the_docs() {
    let seen: Seen = Arc::default();
    let (target_url, _handle) = target(seen.clone());
    let toml = format!("{}\n[auth]\nrules = {{ \"/docs\" = [\"docs-key\"] }}\n", BUTTONS.replace("{target}", &target_url));
    let server = start(config(&toml), vec![]).await;
    let url = server.url("");
    let body = json!({"inputs": {"env": "prod"}}).to_string().into_bytes();
    let json_type = ("content-type", "application/json");
    let no_key = request("POST", &format!("{url}/docs/action-buttons/0/invoke"), &[json_type], body.clone()).await;
    assert_eq!(no_key.status, 401, "{}", no_key.text());
    let wrong = request("POST", &format!("{url}/docs/action-buttons/0/invoke"), &[json_type, ("authorization", "nope")], body.clone()).await;
    assert_eq!(wrong.status, 401);
    let form = [("content-type", "application/x-www-form-urlencoded"), ("authorization", "docs-key")];
    let csrf = request("POST", &format!("{url}/docs/action-buttons/0/invoke"), &form, b"inputs=x".to_vec()).await;
    assert_eq!(csrf.status, 415, "{}", csrf.text());
    let huge = request("POST", &format!("{url}/docs/action-buttons/0/invoke"), &[json_type, ("authorization", "docs-key")], vec![b' '; 1 << 20]).await;
    assert_eq!(huge.status, 413, "{}", huge.text());
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the target");
    let ok = request("POST", &format!("{url}/docs/action-buttons/0/invoke"), &[json_type, ("authorization", "docs-key")], body).await;
    assert_eq!((ok.status, ok.json()["status_code"].as_i64()), (200, Some(201)), "{}", ok.text());
    assert_eq!(seen.lock().unwrap().len(), 1);
    server.stop(false).await;

    // A rule written for the tools' own paths holds too, and `[limits]` count them.
    let toml = format!(
        "{}\n[auth]\nrules = {{ \"/docs/*\" = [\"tools-key\"] }}\n[limits.rules]\n\"/docs/action-buttons/*\" = {{ rate = 0.01, burst = 1, per = \"route\" }}\n",
        BUTTONS.replace("{target}", &target_url)
    );
    let server = start(config(&toml), vec![]).await;
    let invoke = server.url("/docs/action-buttons/0/invoke");
    let body = json!({"inputs": {"env": "prod"}}).to_string().into_bytes();
    let no_key = request("POST", &invoke, &[json_type], body.clone()).await;
    assert_eq!(no_key.status, 401, "the /docs/* rule guards the buttons: {}", no_key.text());
    let form = request("POST", &invoke, &[("content-type", "application/x-www-form-urlencoded")], b"inputs=x".to_vec()).await;
    assert_eq!(form.status, 415, "a form from another site is refused before any login starts: {}", form.text());
    assert!(form.headers.get("set-cookie").is_none());
    let keyed = [json_type, ("authorization", "tools-key")];
    assert_eq!(request("POST", &invoke, &keyed, body.clone()).await.status, 200);
    let again = request("POST", &invoke, &keyed, body).await;
    assert_eq!(again.status, 429, "the limit counts presses: {}", again.text());
    assert_eq!(seen.lock().unwrap().len(), 2, "the refused presses never reached the target");
    server.stop(false).await;
}

/// A stand-in GitLab: `grp/public` is public; `grp/private` is private and readable
/// with the OAuth provider's token; `grp/closed` is private and readable by nobody.
/// Its latest release is `v2.0.0`; the `PRIVATE-TOKEN` headers it got are kept.
fn gitlab(tokens: Arc<Mutex<Vec<String>>>) -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(move |cfg| {
        let tokens = tokens.clone();
        cfg.default_service(web::to(move |req: HttpRequest| {
            let tokens = tokens.clone();
            async move {
                let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"));
                if let Some(t) = req.headers().get("private-token").and_then(|v| v.to_str().ok()) {
                    tokens.lock().unwrap().push(t.to_owned());
                }
                match req.uri().path() {
                    "/grp/public" => HttpResponse::Ok().body("a public project"),
                    "/grp/private" | "/grp/closed" => HttpResponse::Found().insert_header(("location", "/users/sign_in")).finish(),
                    "/api/v4/projects/grp%2Fprivate" if bearer => HttpResponse::Ok().json(json!({"id": 2})),
                    "/api/v4/projects/grp%2Fpublic/releases/permalink/latest" => {
                        HttpResponse::Ok().json(json!({"tag_name": "v2.0.0", "released_at": "2026-01-02T03:04:05Z"}))
                    }
                    _ => HttpResponse::NotFound().json(json!({"message": "404 Project Not Found"})),
                }
            }
        }));
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
struct NoArgs {}

async fn hello(_: NoArgs, _cx: Ctx) -> framex::Result<String> {
    Ok("hello".to_owned())
}

fn plugin(name: &str, version: &str, url: &str) -> Arc<framex::actors::PluginSpec> {
    PluginBuilder::new(name).version(version).url(url).get(&format!("/{name}"), hello).build().unwrap()
}

/// The project on disk: `config.toml` (the workspace is its directory), files the
/// plugin's table names, a file outside, and a link leading out.
fn project(outside: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("configs")).unwrap();
    std::fs::write(root.join("configs/app.yaml"), "name: shown-name\npassword: yaml-password-1\ndb:\n  url: postgres://app:db-password-2@db/app\n").unwrap();
    std::fs::write(root.join("configs/notlisted.toml"), "token = \"unlisted-secret-3\"\n").unwrap();
    std::os::unix::fs::symlink(outside, root.join("configs/link.yaml")).unwrap();
    dir
}

/// framex-rs with `[auth.oauth]` against the stand-in provider, `[repository]`
/// naming the stand-in GitLab, three plugins whose repositories are public, private
/// and closed, and `demo`'s table naming files in, out of and around the whitelist.
async fn config_view_server(dir: &Path, gitlab_url: &str, outside: &Path) -> (framex::Running, actix_web::dev::ServerHandle) {
    let (provider_url, provider_handle) = spawn_upstream(provider);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    let gitlab_host = gitlab_url.trim_start_matches("http://");
    let table = format!(
        r#"
load_plugins = ["demo", "secretive", "closed"]
[auth]
rules = {{ "/api/v1/demo" = ["server-auth-key-4"] }}
[docs]
embedded_config_file_whitelist = ["configs/*.yaml"]
[repository.auth.gitlab]
token = "repo-token-5"
[[repository.auth.gitlab.endpoints]]
host = "{gitlab_host}"
token = "repo-token-5"
[plugins.demo]
file = "configs/app.yaml"
again = "./configs/../configs/app.yaml"
unlisted = "configs/notlisted.toml"
outside = "{outside}"
traversal = "configs/../../{outside_name}/outside.yaml"
link = "configs/link.yaml"
itself = "config.toml"
api_token = "table-token-6"
note = "a copy of server-auth-key-4"
[plugins.secretive]
mode = "private but readable"
[plugins.closed]
mode = "closed"
[[docs.action_buttons]]
title = "Ops"
method = "LINK"
url = "https://ops.example/board"
auth = {{ type = "oauth", allowed_usernames = ["ada"] }}
[[docs.action_buttons]]
title = "Admin"
method = "LINK"
url = "https://ops.example/admin"
auth = {{ type = "oauth", allowed_usernames = ["bob"] }}
{oauth}"#,
        outside = outside.display(),
        outside_name = outside.parent().unwrap().file_name().unwrap().to_str().unwrap(),
        oauth = crate::docs_login::oauth_toml(&app, &provider_url, ""),
    );
    std::fs::write(dir.join("config.toml"), &table).unwrap();
    let mut config = config(&table);
    config.source = Some(dir.join("config.toml"));
    let plugins = vec![
        plugin("demo", "1.0.0", &format!("{gitlab_url}/grp/public")),
        plugin("secretive", "1.0.0", &format!("{gitlab_url}/grp/private")),
        plugin("closed", "1.0.0", &format!("{gitlab_url}/grp/closed.git")),
    ];
    let mut framex = framex::Framex::new(config);
    for p in plugins {
        framex = framex.plugin(p);
    }
    (framex.start(listener).await.expect("framex starts"), provider_handle)
}

/// The config view, as an attacker tries it: not logged in, sent to log in; with the
/// `[auth]` key but no login, refused; logged in, the whitelisted file is shown and
/// nothing else is — not a file off the list, outside the project, reached by `..`
/// or through a link, not the config itself — and no secret (the table's, the file's,
/// a URL's password, the server's key); a private repository the user can read is
/// shown, one the user cannot is refused, an unknown plugin is refused. `oauth`
/// action buttons on the same server: FrameX-kit's 401 with the login URL, then the
/// allowed user only.
#[actix_rt::test]
async fn plugin_config_view_shows_only_whitelisted_files_and_no_secret() {
    let outside_dir = tempfile::tempdir().unwrap();
    let outside = outside_dir.path().join("outside.yaml");
    std::fs::write(&outside, "outside: outside-secret-8\n").unwrap();
    let dir = project(&outside);
    let tokens = Arc::default();
    let (gitlab_url, _gitlab) = gitlab(tokens);
    let (server, _provider) = config_view_server(dir.path(), &gitlab_url, &outside).await;
    let url = server.url("");
    let view = |plugin: &str| format!("{url}/docs/plugin-config?plugin={plugin}");
    let anonymous = crate::docs_login::get(&view("demo"), "", &[]).await;
    assert_eq!(anonymous.status, 302, "{}", anonymous.text());
    let keyed = crate::docs_login::get(&view("demo"), "", &[("authorization", "server-auth-key-4")]).await;
    assert_eq!(keyed.status, 302, "the /docs rule has no key here: a login is needed");
    let session = log_in(&format!("{url}/docs")).await.session;
    let cookie = format!("framex_token={session}");
    let page = crate::docs_login::get(&view("demo"), &cookie, &[]).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("Referenced Config: configs/app.yaml") && html.contains("shown-name"), "{html}");
    assert_eq!(html.matches("Referenced Config:").count(), 1, "one file, once: {html}");
    assert_eq!(html.matches("[restricted config path]").count(), 5, "unlisted, outside, traversal, link, itself: {html}");
    for secret in [
        "yaml-password-1", "db-password-2", "unlisted-secret-3", "server-auth-key-4", "table-token-6", "outside-secret-8",
        "a jwt secret", "provider-client-secret", &outside.display().to_string(),
    ] {
        assert!(!html.contains(secret), "{secret} shown: {html}");
    }
    assert_eq!(page.headers.get("content-security-policy").unwrap(), "default-src 'none'; style-src 'unsafe-inline'");
    // `HEAD` as `GET`: the same status behind the same login, no body.
    let head = request("HEAD", &view("demo"), &[("cookie", cookie.as_str())], vec![]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    let private = crate::docs_login::get(&view("secretive"), &cookie, &[]).await;
    assert_eq!(private.status, 200, "the user's token reads it: {}", private.text());
    let closed = crate::docs_login::get(&view("closed"), &cookie, &[]).await;
    assert_eq!((closed.status, closed.json()["message"].as_str()), (403, Some("Repository access denied: closed")));
    for plugin in ["nope", "..%2F..%2Fetc%2Fpasswd", "echo"] {
        assert_eq!(crate::docs_login::get(&view(plugin), &cookie, &[]).await.status, 403, "{plugin}");
    }
    // `oauth` buttons: no session, FrameX-kit's 401 naming where to log in; the
    // logged-in user (ada) opens hers, not bob's.
    let json_type = ("content-type", "application/json");
    let anonymous = request("POST", &format!("{url}/docs/action-buttons/0/open"), &[json_type], b"{}".to_vec()).await;
    assert_eq!(anonymous.status, 401);
    let login = anonymous.headers.get("x-framex-oauth-redirect").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(login.contains("/oauth/authorize?client_id=docs-client"), "{login}");
    let with_session = [json_type, ("cookie", cookie.as_str())];
    let hers = request("POST", &format!("{url}/docs/action-buttons/0/open"), &with_session, b"{}".to_vec()).await;
    assert_eq!(hers.json(), json!({"open_url": "https://ops.example/board"}));
    let his = request("POST", &format!("{url}/docs/action-buttons/1/open"), &with_session, b"{}".to_vec()).await;
    assert_eq!((his.status, his.json()["message"].as_str()), (403, Some("User is not allowed")));
    server.stop(false).await;
}

/// `/docs/plugin-release`: the stand-in GitLab's latest release against each
/// plugin's version, asked with `[repository.auth.gitlab]`'s token, as FrameX-kit
/// answers it; an unknown plugin is a 404; asked again and again, the repository is
/// asked once per 10 minutes.
#[actix_rt::test]
async fn plugin_release_says_whether_a_newer_release_exists() {
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let (gitlab_url, _gitlab) = gitlab(tokens.clone());
    let toml = format!(
        "load_plugins = [\"old\", \"new\"]\n[repository.auth.gitlab]\ntoken = \"repo-token-5\"\n\
         [[repository.auth.gitlab.endpoints]]\nhost = \"{}\"\ntoken = \"endpoint-token-9\"\n",
        gitlab_url.trim_start_matches("http://")
    );
    let repo = format!("{gitlab_url}/grp/public");
    let server = start(config(&toml), vec![plugin("old", "1.2.0", &repo), plugin("new", "v2.0.0", &repo)]).await;
    let url = server.url("");
    let old = get(&format!("{url}/docs/plugin-release?plugin=old")).await;
    assert_eq!(
        old.json(),
        json!({"has_update": true, "current_version": "v1.2.0", "latest_version": "v2.0.0", "released_at": "2026-01-02T03:04:05Z", "repo_url": repo})
    );
    let new = get(&format!("{url}/docs/plugin-release?plugin=new")).await;
    assert_eq!(new.json()["has_update"], false);
    let asked = tokens.lock().unwrap().len();
    for _ in 0..5 {
        assert_eq!(get(&format!("{url}/docs/plugin-release?plugin=old")).await.json()["latest_version"], "v2.0.0");
    }
    assert_eq!(tokens.lock().unwrap().len(), asked, "a release known lately is not asked again (the token's rate is spared)");
    assert_eq!(get(&format!("{url}/docs/plugin-release?plugin=nope")).await.status, 404);
    assert!(tokens.lock().unwrap().iter().all(|t| t == "endpoint-token-9") && !tokens.lock().unwrap().is_empty());
    server.stop(false).await;
}

/// A `[limits]` rule for one button's path holds against every other spelling of that
/// path a client can send (`00`, `+0`, `%30`, doubled or dot segments, a trailing `/`,
/// a query): each is the same press, refused 429, or no press at all (400, 404, 405);
/// the target sees the one press the burst allows.
#[actix_rt::test]
async fn a_limit_on_a_button_holds_against_other_spellings_of_its_path() {
    let seen: Seen = Arc::default();
    let (target_url, _handle) = target(seen.clone());
    let toml = format!(
        "{}\n[limits.rules]\n\"/docs/action-buttons/0/invoke\" = {{ rate = 0.001, burst = 1, per = \"route\" }}\n",
        BUTTONS.replace("{target}", &target_url)
    );
    let server = start(config(&toml), vec![]).await;
    let body = json!({"inputs": {"env": "prod"}}).to_string();
    let send = |path: &str| {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let addr = server.local_addr();
        async move { raw_http(addr, &raw).await }
    };
    let first = send("/docs/action-buttons/0/invoke").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    for path in [
        "/docs/action-buttons/0/invoke",
        "/docs/action-buttons/00/invoke",
        "/docs/action-buttons/+0/invoke",
        "/docs/action-buttons/%30/invoke",
        "/docs/action-buttons/0%2Finvoke",
        "/docs/action-buttons//0/invoke",
        "//docs/action-buttons/0/invoke",
        "/docs/action-buttons/./0/invoke",
        "/docs/action-buttons/1/../0/invoke",
        "/docs/action-buttons/0/invoke/",
        "/docs/action-buttons/0/invoke?x=1",
        "/docs/action-buttons/0/%69nvoke",
        "/DOCS/action-buttons/0/invoke",
        "/docs/action-buttons/0x0/invoke",
        "/docs/action-buttons/18446744073709551616/invoke",
    ] {
        let answer = send(path).await;
        let status = answer.get(9..12).unwrap_or_default();
        assert!(["400", "404", "405", "429"].contains(&status), "{path}: {}", answer.lines().next().unwrap_or_default());
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "one press reached the target");
    server.stop(false).await;
}
