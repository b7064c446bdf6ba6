//! `/docs/plugin-release` against a stand-in GitHub API on loopback, named by the
//! standard `GITHUB_API_URL` variable (GitHub Actions', GitHub Enterprise's): a latest
//! release found, none (404), a rate limit (403) and a failing API (502) each get a
//! clear answer, and `[repository.auth.github]`'s token goes to that API only.

use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};
use framex::plugin::{Ctx, PluginBuilder};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::common::{get, spawn_upstream, start};

/// The token `[repository.auth.github]` holds.
const GITHUB_TOKEN: &str = "gh-token-7";

/// Requests a stand-in got: `(path, every header value)`.
type Seen = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// A stand-in provider answering `answer(path)`, keeping what it was sent.
fn provider(seen: Seen, answer: fn(&str) -> HttpResponse) -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(move |cfg| {
        let seen = seen.clone();
        cfg.default_service(web::to(move |req: HttpRequest| {
            let seen = seen.clone();
            async move {
                let values = req.headers().iter().filter_map(|(_, v)| v.to_str().ok()).map(str::to_owned).collect();
                seen.lock().unwrap().push((req.uri().path().to_owned(), values));
                answer(req.uri().path())
            }
        }));
    })
}

/// GitHub's API: `acme/fresh` has `v2.1.0`, `acme/none` no release, `acme/limited` is
/// over the rate limit, `acme/broken` fails.
fn github(path: &str) -> HttpResponse {
    match path {
        "/repos/acme/fresh/releases/latest" => {
            HttpResponse::Ok().json(json!({"tag_name": "v2.1.0", "published_at": "2026-02-03T04:05:06Z"}))
        }
        "/repos/acme/limited/releases/latest" => HttpResponse::Forbidden()
            .insert_header(("x-ratelimit-remaining", "0"))
            .json(json!({"message": "API rate limit exceeded"})),
        "/repos/acme/broken/releases/latest" => HttpResponse::BadGateway().body("upstream down"),
        _ => HttpResponse::NotFound().json(json!({"message": "Not Found"})),
    }
}

/// A GitLab with no release anywhere.
fn gitlab(_: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"message": "404 Project Not Found"}))
}

#[derive(Debug, Deserialize, JsonSchema)]
struct NoArgs {}

async fn hello(_: NoArgs, _cx: Ctx) -> framex::Result<String> {
    Ok("hello".to_owned())
}

fn plugin(name: &str, url: &str) -> Arc<framex::actors::PluginSpec> {
    PluginBuilder::new(name).version("1.0.0").url(url).get(&format!("/{name}"), hello).build().unwrap()
}

#[actix_rt::test]
async fn plugin_release_asks_the_github_api_that_github_api_url_names() {
    let (github_seen, gitlab_seen) = (Seen::default(), Seen::default());
    let (github_url, _github) = provider(github_seen.clone(), github);
    let (gitlab_url, _gitlab) = provider(gitlab_seen.clone(), gitlab);
    let gitlab_host = gitlab_url.trim_start_matches("http://");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let toml = format!(
        "load_plugins = [\"fresh\", \"none\", \"limited\", \"broken\", \"lab\"]\n\
         [repository.auth.github]\ntoken = \"{GITHUB_TOKEN}\"\n\
         [[repository.auth.gitlab.endpoints]]\nhost = \"{gitlab_host}\"\ntoken = \"gl-token-3\"\n"
    );
    std::fs::write(&path, toml).unwrap();
    let env = [("GITHUB_API_URL".to_owned(), format!("{github_url}/"))];
    let mut config = framex::config::Config::load_with_env(Some(&path), env).unwrap();
    config.server.workers = Some(1);
    let plugins = ["fresh", "none", "limited", "broken"].map(|name| plugin(name, &format!("https://github.com/acme/{name}")));
    let mut plugins = plugins.to_vec();
    plugins.push(plugin("lab", &format!("{gitlab_url}/grp/p")));
    let server = start(config, plugins).await;
    let ask = |name: &str| {
        let url = server.url(&format!("/docs/plugin-release?plugin={name}"));
        async move {
            let reply = get(&url).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.json()
        }
    };

    let fresh = ask("fresh").await;
    assert_eq!(
        fresh,
        json!({"has_update": true, "current_version": "v1.0.0", "latest_version": "v2.1.0",
               "released_at": "2026-02-03T04:05:06Z", "repo_url": "https://github.com/acme/fresh"}),
        "FrameX-kit's answer, field for field"
    );
    let none = ask("none").await;
    assert_eq!((&none["has_update"], &none["latest_version"], none.get("error")), (&json!(false), &Value::Null, None), "{none}");
    for (name, says) in [("limited", "github answered 403 (rate limited"), ("broken", "github answered 502 (the provider failed)")] {
        let failed = ask(name).await;
        assert_eq!((&failed["has_update"], &failed["latest_version"]), (&json!(false), &Value::Null), "{failed}");
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(says), "{name}: {failed}");
        assert!(!error.contains("rate limit exceeded") && !error.contains("upstream down"), "not the API's body: {error}");
    }
    assert_eq!(ask("lab").await["latest_version"], Value::Null);

    let github_seen = github_seen.lock().unwrap().clone();
    let paths: Vec<&str> = github_seen.iter().map(|(path, _)| path.as_str()).collect();
    for name in ["fresh", "none", "limited", "broken"] {
        assert!(paths.contains(&format!("/repos/acme/{name}/releases/latest").as_str()), "{paths:?}");
    }
    let bearer = format!("Bearer {GITHUB_TOKEN}");
    assert!(github_seen.iter().all(|(_, values)| values.contains(&bearer)), "the token went with every GitHub call");
    let gitlab_seen = gitlab_seen.lock().unwrap().clone();
    assert!(!gitlab_seen.is_empty(), "the GitLab plugin was asked there");
    assert!(gitlab_seen.iter().all(|(_, values)| !values.iter().any(|v| v.contains(GITHUB_TOKEN))), "the GitHub token stays with GitHub's API");
    server.stop(false).await;
}

/// A GitHub API that takes `delay` to answer, counting what it is asked: `acme/slow`
/// is public, with the latest release `v2.1.0`.
fn slow_github(seen: Seen, delay: std::time::Duration) -> (String, actix_web::dev::ServerHandle) {
    spawn_upstream(move |cfg| {
        let seen = seen.clone();
        cfg.default_service(web::to(move |req: HttpRequest| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((req.uri().path().to_owned(), Vec::new()));
                actix_rt::time::sleep(delay).await;
                match req.uri().path() {
                    "/repos/acme/slow" => HttpResponse::Ok().json(json!({"private": false})),
                    path => github(&path.replace("/slow/", "/fresh/")),
                }
            }
        }));
    })
}

/// Views of the docs page at once ask the repository provider once: eight
/// `/docs/plugin-release` and eight `/docs/plugin-config` views of one plugin, sent
/// together to two workers while the stand-in GitHub takes 300 ms to answer, make one
/// release lookup and one "is it public?" lookup; views within the time an answer is
/// kept make none.
#[actix_rt::test]
async fn views_at_once_ask_the_provider_once() {
    use crate::docs_login::{get as get_with_cookie, log_in, oauth_toml, provider as oauth_provider};
    let seen = Seen::default();
    let (github_url, _github) = slow_github(seen.clone(), std::time::Duration::from_millis(300));
    let (provider_url, _provider) = spawn_upstream(oauth_provider);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let toml = format!("load_plugins = [\"slow\"]\n[plugins.slow]\nmode = \"shown\"\n{}", oauth_toml(&app, &provider_url, ""));
    std::fs::write(&path, toml).unwrap();
    let env = [("GITHUB_API_URL".to_owned(), github_url)];
    let mut config = framex::config::Config::load_with_env(Some(&path), env).unwrap();
    config.server.workers = Some(2);
    let server = framex::Framex::new(config)
        .plugin(plugin("slow", "https://github.com/acme/slow"))
        .start(listener)
        .await
        .expect("framex starts");
    let cookie = format!("framex_token={}", log_in(&format!("{app}/docs")).await.session);
    let asked = |path: &str| seen.lock().unwrap().iter().filter(|(p, _)| p == path).count();
    let views = |what: &'static str, n: usize| {
        let (url, cookie) = (format!("{app}/docs/plugin-{what}?plugin=slow"), cookie.clone());
        futures::future::join_all((0..n).map(move |_| {
            let (url, cookie) = (url.clone(), cookie.clone());
            async move { get_with_cookie(&url, &cookie, &[]).await }
        }))
    };

    for reply in views("release", 8).await {
        assert_eq!((reply.status, reply.json()["latest_version"].as_str()), (200, Some("v2.1.0")), "{}", reply.text());
    }
    assert_eq!(asked("/repos/acme/slow/releases/latest"), 1, "eight views at once, one lookup");
    for reply in views("config", 8).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(reply.text().contains("shown"), "{}", reply.text());
    }
    assert_eq!(asked("/repos/acme/slow"), 1, "eight views at once, one lookup");
    for what in ["release", "config"] {
        for _ in 0..3 {
            assert!(views(what, 2).await.iter().all(|r| r.status == 200));
        }
    }
    assert_eq!((asked("/repos/acme/slow/releases/latest"), asked("/repos/acme/slow")), (1, 1), "kept answers ask nothing");
    server.stop(false).await;
}

/// Clients that ask for a release and leave before the (slow) provider answers do not
/// make the lookup run again for each of them: five that leave after 50 ms, then one
/// that waits, cost the provider one lookup.
#[actix_rt::test]
async fn clients_that_leave_mid_lookup_cost_one_lookup() {
    use tokio::io::AsyncWriteExt;
    let seen = Seen::default();
    let (github_url, _github) = slow_github(seen.clone(), std::time::Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "load_plugins = [\"slow\"]\n").unwrap();
    let env = [("GITHUB_API_URL".to_owned(), github_url)];
    let mut config = framex::config::Config::load_with_env(Some(&path), env).unwrap();
    config.server.workers = Some(1);
    let server = start(config, vec![plugin("slow", "https://github.com/acme/slow")]).await;
    for _ in 0..5 {
        let mut stream = actix_rt::net::TcpStream::connect(server.local_addr()).await.unwrap();
        stream.write_all(b"GET /docs/plugin-release?plugin=slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(stream);
    }
    let reply = get(&server.url("/docs/plugin-release?plugin=slow")).await;
    assert_eq!(reply.json()["latest_version"], "v2.1.0", "{}", reply.text());
    let asked = seen.lock().unwrap().iter().filter(|(p, _)| p == "/repos/acme/slow/releases/latest").count();
    assert_eq!(asked, 1, "one lookup for six clients");
    server.stop(false).await;
}
