//! `[auth.oauth]`: the docs behind FrameX-kit's OAuth login, against a stand-in
//! provider on loopback (authorize, token and user endpoints): the redirect with its
//! state cookie, the callback, the session cookie, logout; and an attacker's tries
//! (forged, expired, wrong-algorithm and unsigned sessions, a state that does not
//! match or is replayed, a provider answering huge or slow, a planted redirect) and
//! the `[auth]` key still opening the docs. The whole flow also runs in headless
//! Chromium.

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{spawn_upstream, Reply};

const SECRET: &str = "a jwt secret of at least 32 bytes!";
const CODE: &str = "provider-code-7f3a";
pub(crate) const TOKEN: &str = "provider-access-token-91c2";
const CLIENT_SECRET: &str = "provider-client-secret";

/// The stand-in provider: `/oauth/authorize` sends the browser straight back with a
/// code and the state; `/oauth/token` gives a token for that code (and the client
/// secret); `/api/v4/user` names the token's user: `ada`, or the user a
/// `login_as=<name>` added to the authorize URL chose (as a person picks an account
/// at the provider). `/huge`, `/slow` and `/nouser` are token endpoints that
/// misbehave.
pub(crate) fn provider(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/oauth/authorize",
        web::get().to(|q: web::Query<HashMap<String, String>>| async move {
            let code = match q.get("login_as") {
                Some(name) => format!("{CODE}.{name}"),
                None => CODE.to_owned(),
            };
            let back = format!(
                "{}?code={}&state={}",
                q["redirect_uri"],
                form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>(),
                form_urlencoded::byte_serialize(q["state"].as_bytes()).collect::<String>()
            );
            HttpResponse::Found().insert_header(("location", back)).finish()
        }),
    )
    .route(
        "/oauth/token",
        web::post().to(|f: web::Form<HashMap<String, String>>| async move {
            let user = f.get("code").and_then(|code| code.strip_prefix(CODE));
            let good = user.is_some_and(|u| u.is_empty() || u.starts_with('.'))
                && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
                && f.get("grant_type").map(String::as_str) == Some("authorization_code");
            if good {
                HttpResponse::Ok().json(json!({"access_token": format!("{TOKEN}{}", user.unwrap_or_default()), "token_type": "bearer"}))
            } else {
                HttpResponse::Unauthorized().json(json!({"error": "invalid_grant"}))
            }
        }),
    )
    .route(
        "/api/v4/user",
        web::get().to(|req: HttpRequest| async move {
            let token = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| t.strip_prefix(TOKEN)) {
                Some("") => HttpResponse::Ok().json(json!({"username": "ada", "email": "ada@example.org"})),
                Some(other) if other.starts_with('.') => HttpResponse::Ok().json(json!({"username": &other[1..]})),
                _ => HttpResponse::Unauthorized().finish(),
            }
        }),
    )
    .route("/huge/token", web::post().to(|| async { HttpResponse::Ok().body(vec![b'x'; 4 << 20]) }))
    .route(
        "/slow/token",
        web::post().to(|| async {
            actix_rt::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().json(json!({"access_token": TOKEN}))
        }),
    )
    .route("/nouser/token", web::post().to(|| async { HttpResponse::Ok().json(json!({"access_token": TOKEN})) }))
    .route("/nouser/user", web::get().to(|| async { HttpResponse::Ok().json(json!({"name": "no username"})) }));
}

/// The `[auth.oauth]` table for a server at `app` and the provider at `provider`;
/// `extra` adds lines (another `token_url`, say).
pub(crate) fn oauth_toml(app: &str, provider: &str, extra: &str) -> String {
    format!(
        r#"
[auth.oauth]
provider = "gitlab"
base_url = "{provider}"
client_id = "docs-client"
client_secret = "{CLIENT_SECRET}"
redirect_uri = "/oauth/callback"
app_url = "{app}"
jwt_secret = "{SECRET}"
{extra}
"#
    )
}

/// framex-rs with `[auth.oauth]` on a port chosen first (`app_url` names it), plus
/// `rest` (other tables), and the provider; `extra` goes into `[auth.oauth]`, with
/// `{provider}` replaced by the provider's URL.
async fn server(rest: &str, extra: &str) -> (framex::Running, String, actix_web::dev::ServerHandle) {
    let (provider_url, provider_handle) = spawn_upstream(provider);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    let extra = extra.replace("{provider}", &provider_url);
    let toml = format!("{rest}\n{}", oauth_toml(&app, &provider_url, &extra));
    let mut config = framex::config::Config::from_toml_str(&toml, "test config").expect("valid config");
    config.server.workers = Some(1);
    let running = framex::Framex::new(config).start(listener).await.expect("framex starts");
    (running, provider_url, provider_handle)
}

/// A client that shows redirects rather than following them.
pub(crate) fn client() -> awc::Client {
    awc::Client::builder().disable_redirects().timeout(Duration::from_secs(60)).finish()
}

pub(crate) async fn send(req: awc::ClientRequest) -> Reply {
    let mut response = req.send().await.expect("request");
    let body = response.body().limit(1 << 24).await.expect("body");
    Reply {
        status: response.status().as_u16(),
        content_type: String::new(),
        headers: response.headers().clone(),
        body,
    }
}

/// `GET url` with the given cookies (`name=value; …`, empty: none) and headers.
pub(crate) async fn get(url: &str, cookies: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(url);
    if !cookies.is_empty() {
        req = req.insert_header(("cookie", cookies));
    }
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    send(req).await
}

pub(crate) fn location(reply: &Reply) -> String {
    reply.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The `Set-Cookie` line of cookie `name`.
pub(crate) fn set_cookie(reply: &Reply, name: &str) -> String {
    reply
        .headers
        .get_all("set-cookie")
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name}: {:?}", reply.headers))
        .to_owned()
}

/// The value in a `Set-Cookie` line.
pub(crate) fn value(line: &str) -> String {
    line.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
}

fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// What a login leaves: the callback URL and state cookie it used, and the session
/// cookie it got.
pub(crate) struct LoggedIn {
    callback: String,
    state_cookie: String,
    pub(crate) session: String,
    landed: String,
}

/// Logs in from `start` (a docs URL) through the provider, as a browser would.
pub(crate) async fn log_in(start: &str) -> LoggedIn {
    log_in_as(start, None).await
}

/// As [`log_in`], choosing the provider's user `name` (`None`: its `ada`).
pub(crate) async fn log_in_as(start: &str, name: Option<&str>) -> LoggedIn {
    let first = get(start, "", &[]).await;
    assert_eq!(first.status, 302, "{}", first.text());
    let state_cookie = value(&set_cookie(&first, "framex_oauth_state"));
    let to_provider = match name {
        Some(name) => format!("{}&login_as={name}", location(&first)),
        None => location(&first),
    };
    let at_provider = get(&to_provider, "", &[]).await;
    assert_eq!(at_provider.status, 302);
    let callback = location(&at_provider);
    let back = get(&callback, &format!("framex_oauth_state={state_cookie}"), &[]).await;
    assert_eq!(back.status, 302, "{}", back.text());
    let session = value(&set_cookie(&back, "framex_token"));
    LoggedIn { callback, state_cookie, session, landed: location(&back) }
}

/// The session cookie's claims, and one signed as we please.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn signed(claims: &Value, secret: &str, algorithm: jsonwebtoken::Algorithm) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), claims, &key).unwrap()
}

/// The whole login over HTTP: `/docs` sends the browser to the provider with
/// FrameX-kit's query (client_id, response_type=code, redirect_uri, scope, state) and
/// a state cookie (HttpOnly, SameSite=Lax, 10 minutes, not Secure on http); the
/// callback sets the session cookie (HttpOnly, SameSite=Lax), clears the state cookie
/// and returns to `/docs`, which then renders with a "Sign out" button, as do
/// `/redoc` and the document; logout ends the session on the server (the old cookie
/// no longer opens anything) and clears the cookie.
#[actix_rt::test]
async fn login_callback_session_and_logout() {
    let (server, provider_url, provider_handle) = server("", "").await;
    let app = server.url("").trim_end_matches('/').to_owned();
    let first = get(&server.url("/docs"), "", &[]).await;
    assert_eq!(first.status, 302);
    let to = location(&first);
    assert!(to.starts_with(&format!("{provider_url}/oauth/authorize?")), "{to}");
    let q = query(&to);
    assert_eq!(q["client_id"], "docs-client");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], format!("{app}/oauth/callback"));
    assert_eq!(q["scope"], "read_user read_api");
    assert!(q["state"].len() >= 43, "{q:?}");
    let state_line = set_cookie(&first, "framex_oauth_state").to_ascii_lowercase();
    for part in ["httponly", "samesite=lax", "path=/", "max-age=600"] {
        assert!(state_line.contains(part), "{state_line}");
    }
    assert!(!state_line.contains("secure"), "http app_url: {state_line}");
    // Two logins get two states.
    let again = get(&server.url("/docs"), "", &[]).await;
    assert_ne!(query(&location(&again))["state"], q["state"]);

    let logged = log_in(&server.url("/docs")).await;
    assert_eq!(logged.landed, "/docs");
    let session_claims = claims(&logged.session);
    assert_eq!(session_claims["username"], "ada");
    assert_eq!(session_claims["oauth_provider"], "gitlab");
    let cookie = format!("framex_token={}", logged.session);
    for path in ["/docs", "/redoc", "/api/v1/openapi.json"] {
        let seen = get(&server.url(path), &cookie, &[]).await;
        assert_eq!(seen.status, 200, "{path}: {}", seen.text());
    }
    let docs = get(&server.url("/docs"), &cookie, &[]).await;
    assert!(docs.text().contains("swagger-ui") && docs.text().contains("/auth/logout"), "{}", docs.text());
    assert_eq!(docs.headers.get("cache-control").unwrap(), "no-store");

    let out = send(client().post(server.url("/auth/logout")).insert_header(("cookie", cookie.as_str()))).await;
    assert_eq!(out.status, 303);
    assert_eq!(location(&out), "/auth/logout");
    let cleared = set_cookie(&out, "framex_token").to_ascii_lowercase();
    assert!(cleared.starts_with("framex_token=;") && cleared.contains("max-age=0"), "{cleared}");
    let page = get(&server.url("/auth/logout"), "", &[]).await;
    assert!(page.status == 200 && page.text().contains("Signed out"), "{}", page.text());
    // The old cookie, kept by an attacker, opens nothing any more.
    let after = get(&server.url("/docs"), &cookie, &[]).await;
    assert_eq!(after.status, 302, "a closed session still opens the docs");
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// A session cookie re-signed with another secret, with the right secret but
/// expired, with another HMAC, or unsigned (`alg: none`) is refused — each keeps
/// the real session id, so only the check under test can refuse it; the real
/// cookie, as a control, passes.
#[actix_rt::test]
async fn forged_expired_and_wrong_algorithm_sessions_are_refused() {
    let (server, _, provider_handle) = server("", "").await;
    let logged = log_in(&server.url("/docs")).await;
    let real = claims(&logged.session);
    let docs = |token: String| {
        let url = server.url("/docs");
        async move { get(&url, &format!("framex_token={token}"), &[]).await.status }
    };
    assert_eq!(docs(logged.session.clone()).await, 200, "control");
    assert_eq!(docs(signed(&real, "another secret of at least 32 bytes", jsonwebtoken::Algorithm::HS256)).await, 302, "forged");
    let mut expired = real.clone();
    expired["exp"] = json!(real["iat"].as_i64().unwrap() - 10);
    assert_eq!(docs(signed(&expired, SECRET, jsonwebtoken::Algorithm::HS256)).await, 302, "expired");
    assert_eq!(docs(signed(&real, SECRET, jsonwebtoken::Algorithm::HS512)).await, 302, "another algorithm");
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let unsigned = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&real.to_string()));
    assert_eq!(docs(unsigned).await, 302, "alg none");
    let mut other_user = real.clone();
    other_user["username"] = json!("mallory");
    let (head, rest) = logged.session.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    assert_eq!(docs(format!("{head}.{}.{signature}", b64(&other_user.to_string()))).await, 302, "tampered");
    // A session id the server never opened, signed with the right secret (a leaked
    // secret alone does not make a session).
    let mut unknown = real.clone();
    unknown["session_id"] = json!("made-up");
    assert_eq!(docs(signed(&unknown, SECRET, jsonwebtoken::Algorithm::HS256)).await, 302, "unknown session");
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// The callback refuses, with a 400 and no session: no state cookie, a state that
/// does not match its cookie, a forged state cookie, no code, and a state already
/// used (the same callback replayed).
#[actix_rt::test]
async fn bad_or_replayed_states_are_refused() {
    let (server, _, provider_handle) = server("", "").await;
    let refused = |reply: &Reply, what: &str| {
        assert_eq!(reply.status, 400, "{what}: {}", reply.text());
        assert!(reply.headers.get_all("set-cookie").all(|v| !v.to_str().unwrap().starts_with("framex_token=")), "{what}");
    };
    let first = get(&server.url("/docs"), "", &[]).await;
    let state_cookie = format!("framex_oauth_state={}", value(&set_cookie(&first, "framex_oauth_state")));
    let state = query(&location(&first))["state"].clone();
    let callback = server.url(&format!("/oauth/callback?code={CODE}&state={state}"));
    refused(&get(&callback, "", &[]).await, "no state cookie");
    let wrong = server.url(&format!("/oauth/callback?code={CODE}&state=guessed"));
    refused(&get(&wrong, &state_cookie, &[]).await, "state mismatch");
    let forged = signed(&json!({"state": "guessed", "redirect_url": "/docs", "exp": 4_000_000_000u64}), "not the secret, but 32 bytes long!", jsonwebtoken::Algorithm::HS256);
    refused(&get(&wrong, &format!("framex_oauth_state={forged}"), &[]).await, "forged state cookie");
    let no_code = server.url(&format!("/oauth/callback?state={state}&error=access_denied"));
    let reply = get(&no_code, &state_cookie, &[]).await;
    refused(&reply, "no code");
    assert!(reply.text().contains("Missing OAuth code"), "{}", reply.text());

    let logged = log_in(&server.url("/docs")).await;
    let replay = get(&logged.callback, &format!("framex_oauth_state={}", logged.state_cookie), &[]).await;
    refused(&replay, "replayed state");
    assert!(replay.text().contains("Invalid or expired OAuth state"), "{}", replay.text());
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// The key of the `[auth]` rule covering a docs path still opens it without a
/// login (as in FrameX-kit); a wrong key is sent to log in. A path the rules do not
/// cover needs the login.
#[actix_rt::test]
async fn the_auth_key_still_opens_the_docs() {
    let rules = "[auth]\nrules = { \"/docs\" = [\"k-docs\"], \"/api/v1/openapi.json\" = [\"k-docs\"] }\n";
    let (server, _, provider_handle) = server(rules, "").await;
    for path in ["/docs", "/api/v1/openapi.json"] {
        let keyed = get(&server.url(path), "", &[("authorization", "k-docs")]).await;
        assert_eq!(keyed.status, 200, "{path}: {}", keyed.text());
        let wrong = get(&server.url(path), "", &[("authorization", "k-wrong")]).await;
        assert_eq!(wrong.status, 302, "{path}");
    }
    let uncovered = get(&server.url("/redoc"), "", &[("authorization", "k-docs")]).await;
    assert_eq!(uncovered.status, 302);
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// `[limits]` with `per = "key"` on a docs tool count each signed-in user as
/// themselves: ada spending her one request leaves bob's whole, and another
/// `Authorization` of hers does not buy her more. A client without a session that
/// forges carol's (re-signed, or made up) is sent to log in and spends nothing of
/// hers. The `[auth]` key of `/docs` is counted as that key, apart from the users.
#[actix_rt::test]
async fn docs_tool_limits_count_each_signed_in_user_apart() {
    let rules = "[auth]\nrules = { \"/docs\" = [\"k-docs\"] }\n\
                 [limits.rules]\n\"/docs/plugin-release\" = { rate = 0.001, burst = 1, per = \"key\" }\n";
    let (server, _, provider_handle) = server(rules, "").await;
    let release = server.url("/docs/plugin-release?plugin=none");
    let session = |name: Option<&'static str>| {
        let docs = server.url("/docs");
        async move { log_in_as(&docs, name).await.session }
    };
    let (ada, bob, carol) = (session(None).await, session(Some("bob")).await, session(Some("carol")).await);
    assert_eq!(claims(&carol)["username"], "carol");
    let ask = |cookie: String, headers: &'static [(&'static str, &'static str)]| {
        let url = release.clone();
        async move { get(&url, &cookie, headers).await.status }
    };
    assert_eq!(ask(format!("framex_token={ada}"), &[]).await, 404, "ada's one request (no such plugin)");
    assert_eq!(ask(format!("framex_token={ada}"), &[]).await, 429, "ada's limit");
    assert_eq!(ask(format!("framex_token={ada}"), &[("authorization", "ada-2")]).await, 429, "a header of hers changes nothing");
    assert_eq!(ask(format!("framex_token={bob}"), &[]).await, 404, "bob is counted apart from ada");

    let resigned = signed(&claims(&carol), "another secret of at least 32 bytes", jsonwebtoken::Algorithm::HS256);
    let mut made_up = claims(&carol);
    made_up["session_id"] = json!("made-up");
    let made_up = signed(&made_up, SECRET, jsonwebtoken::Algorithm::HS256);
    for forged in [resigned, made_up] {
        for headers in [&[][..], &[("authorization", "carol")][..]] {
            assert_eq!(ask(format!("framex_token={forged}"), headers).await, 302, "a forged session logs in first");
        }
    }
    assert_eq!(ask(format!("framex_token={carol}"), &[]).await, 404, "carol's request was not spent by the forgers");

    assert_eq!(ask(String::new(), &[("authorization", "k-docs")]).await, 404, "the key is counted apart");
    assert_eq!(ask(String::new(), &[("authorization", "k-docs")]).await, 429);
    assert_eq!(ask(String::new(), &[("authorization", "k-wrong")]).await, 302);
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// No open redirect: a `redirect_uri` planted in the docs URL does not reach the
/// provider (ours is sent, once) and the login returns to the local path; a request
/// to another host name is first sent to `app_url`, where the cookies live.
#[actix_rt::test]
async fn planted_redirects_go_nowhere() {
    let (server, _, provider_handle) = server("", "").await;
    let app = server.url("").trim_end_matches('/').to_owned();
    let planted = server.url("/docs?redirect_uri=https://evil.example/&next=//evil.example");
    let first = get(&planted, "", &[]).await;
    let to = location(&first);
    let sent: Vec<(String, String)> = form_urlencoded::parse(to.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
    let redirect_uris: Vec<&String> = sent.iter().filter(|(k, _)| k == "redirect_uri").map(|(_, v)| v).collect();
    assert_eq!(redirect_uris, [&format!("{app}/oauth/callback")], "{to}");
    let logged = log_in(&planted).await;
    assert!(logged.landed.starts_with("/docs?"), "{}", logged.landed);

    let port = server.url("").split(':').nth(2).unwrap().trim_end_matches('/').to_owned();
    let other_host = get(&server.url("/docs?x=1"), "", &[("host", &format!("localhost:{port}"))]).await;
    assert_eq!(other_host.status, 302);
    assert_eq!(location(&other_host), format!("{app}/docs?x=1"));
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// A provider that answers a huge body, answers slowly, or names no user fails the
/// login with a 502 (within the 10 s bound for the slow one) and no session; the
/// server keeps serving.
#[actix_rt::test]
async fn misbehaving_providers_fail_the_login_cleanly() {
    for (token_url, user_url) in [("huge/token", "api/v4/user"), ("slow/token", "api/v4/user"), ("nouser/token", "nouser/user")] {
        let extra = format!("token_url = \"{{provider}}/{token_url}\"\nuser_info_url = \"{{provider}}/{user_url}\"\n");
        let (server, _, provider_handle) = server("", &extra).await;
        let first = get(&server.url("/docs"), "", &[]).await;
        let state_cookie = format!("framex_oauth_state={}", value(&set_cookie(&first, "framex_oauth_state")));
        let callback = location(&get(&location(&first), "", &[]).await);
        let started = Instant::now();
        let back = get(&callback, &state_cookie, &[]).await;
        assert_eq!(back.status, 502, "{token_url}: {}", back.text());
        assert!(started.elapsed() < Duration::from_secs(20), "{token_url}: {:?}", started.elapsed());
        assert!(!back.text().contains(TOKEN) && !back.text().contains(CODE), "{}", back.text());
        assert!(back.headers.get_all("set-cookie").all(|v| !v.to_str().unwrap().starts_with("framex_token=")));
        assert_eq!(get(&server.url("/health"), "", &[]).await.status, 200);
        server.stop(true).await;
        provider_handle.stop(false).await;
    }
}

/// With `app_url` on https, both cookies are `Secure` (the state cookie as in
/// FrameX-kit; the session cookie too, which FrameX-kit leaves out).
#[actix_rt::test]
async fn https_app_url_makes_cookies_secure() {
    let (provider_url, provider_handle) = spawn_upstream(provider);
    let toml = oauth_toml("https://docs.example", &provider_url, "");
    let config = crate::common::config(&toml);
    let server = crate::common::start(config, vec![]).await;
    // Reached under its app_url's host name (as through a TLS-terminating proxy).
    let first = get(&server.url("/docs"), "", &[("host", "docs.example")]).await;
    assert_eq!(first.status, 302);
    assert!(set_cookie(&first, "framex_oauth_state").to_ascii_lowercase().contains("secure"));
    let state_cookie = format!("framex_oauth_state={}", value(&set_cookie(&first, "framex_oauth_state")));
    let callback = location(&get(&location(&first), "", &[]).await);
    let path = callback.strip_prefix("https://docs.example").unwrap();
    let back = get(&server.url(path), &state_cookie, &[("host", "docs.example")]).await;
    assert_eq!(back.status, 302, "{}", back.text());
    assert!(set_cookie(&back, "framex_token").to_ascii_lowercase().contains("secure"));
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// The `framex` binary at debug level logs the login without the code, the access
/// token, the client secret or the session cookie.
#[actix_rt::test]
async fn the_log_holds_no_secret() {
    let (provider_url, provider_handle) = spawn_upstream(provider);
    let port = crate::common::python::free_port();
    let app = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let toml = format!("[server]\nhost = \"127.0.0.1\"\nport = {port}\nworkers = 1\naccess_log = true\n{}", oauth_toml(&app, &provider_url, ""));
    std::fs::write(&file, toml).unwrap();
    let running = crate::common::FramexProcess::spawn(&file, "debug").await;
    let logged = log_in(&format!("{app}/docs")).await;
    assert_eq!(get(&format!("{app}/docs"), &format!("framex_token={}", logged.session), &[]).await.status, 200);
    running.until("logged in").await;
    let log = running.log();
    for secret in [CODE, TOKEN, CLIENT_SECRET, SECRET, logged.session.as_str(), logged.state_cookie.as_str()] {
        assert!(!log.contains(secret), "the log holds a secret ({}…):\n{log}", &secret[..8]);
    }
    provider_handle.stop(false).await;
}

/// In headless Chromium (`tests/python/docs_login_ui.py`): `/docs` goes to the
/// provider and back, the session cookie is set (HttpOnly, SameSite=Lax) and the
/// state cookie gone, Swagger UI renders the merged document, and "Sign out" ends
/// on the signed-out page with the cookie cleared.
#[actix_rt::test]
async fn login_and_logout_in_a_browser() {
    use crate::openapi_doc::on_path;
    if !(on_path("chromium") && on_path("chromedriver")) {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (.ci/run)");
        eprintln!("skipped: chromium or chromedriver is not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let (server, _, provider_handle) = server("load_builtin_plugins = [\"echo\"]", "").await;
    let base = server.url("").trim_end_matches('/').to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/docs_login_ui.py");
    let arg = base.clone();
    // The browser works in another process; this test's runtime keeps serving.
    let out = actix_rt::task::spawn_blocking(move || {
        std::process::Command::new(crate::common::python::python()).args([script, &arg]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "docs_login_ui.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["landed"], format!("{base}/docs"), "{seen}");
    assert!(seen["title"].as_str().unwrap().contains("FrameX"), "{seen}");
    assert_eq!(seen["session"]["httpOnly"], true, "{seen}");
    assert_eq!(seen["session"]["sameSite"], "Lax", "{seen}");
    assert_eq!(seen["state_left"], false, "{seen}");
    assert_eq!(seen["signed_out"], "Signed out");
    assert_eq!(seen["after_logout"], format!("{base}/auth/logout"));
    assert_eq!(seen["session_after_logout"], false, "{seen}");
    server.stop(true).await;
    provider_handle.stop(false).await;
}

/// The same login against FrameX-kit 0.4.2 and framex-rs, same provider: `/docs`
/// redirects to the same authorize URL (the same query but the random state) with a
/// state cookie of the same attributes, and the callback returns to `/docs` with a
/// session cookie of the same name and attributes (framex-rs adds `Secure` only on
/// https, which neither is here).
#[actix_rt::test]
async fn same_redirect_and_cookies_as_framex_kit() {
    use crate::common::python::{free_port, venv, Child};
    let (provider_url, provider_handle) = spawn_upstream(provider);
    let port = free_port();
    let kit_app = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let kit_toml = format!("[server]\nport = {port}\n{}", oauth_toml(&kit_app, &provider_url, ""));
    std::fs::write(dir.path().join("config.toml"), kit_toml).unwrap();
    let kit = Child::spawn(&venv().join("bin/framex"), &["run"], dir.path(), &[], port, "/health").await;
    let (ours, _, ours_provider) = server("", "").await;

    let attributes = |line: &str| {
        let mut parts: Vec<String> = line.split(';').skip(1).map(|p| p.trim().to_ascii_lowercase()).collect();
        parts.sort();
        parts
    };
    let mut seen = Vec::new();
    for base in [kit.url.clone(), ours.url("").trim_end_matches('/').to_owned()] {
        let first = get(&format!("{base}/docs"), "", &[]).await;
        assert_eq!(first.status, 302, "{base}: {}", first.text());
        let mut q = query(&location(&first));
        assert!(q.remove("state").is_some_and(|s| s.len() >= 43));
        q.insert("redirect_uri".into(), q["redirect_uri"].replace(&base, "APP"));
        let to = location(&first);
        let state_line = set_cookie(&first, "framex_oauth_state");
        let back = get(&location(&get(&to, "", &[]).await), &format!("framex_oauth_state={}", value(&state_line)), &[]).await;
        seen.push(json!({
            "authorize": to.split('?').next().unwrap().split_once("/oauth").unwrap().1,
            "query": q,
            "state_cookie": attributes(&state_line),
            "callback_status": back.status,
            "landed": location(&back),
            "session_cookie": attributes(&set_cookie(&back, "framex_token")),
            "session_user": claims(&value(&set_cookie(&back, "framex_token")))["username"],
        }));
    }
    assert_eq!(seen[0], seen[1], "FrameX-kit (left) and framex-rs (right) differ");
    ours.stop(true).await;
    provider_handle.stop(false).await;
    ours_provider.stop(false).await;
}
