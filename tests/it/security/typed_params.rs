//! Typed path parameters spelled otherwise (issue 18, finding 3): FastAPI reads
//! `/users/00`, `/+0`, `/0%20`, `/1.0` as the same integer as `/users/0`, while rules
//! compare bytes. Against a real FastAPI app: every other spelling of a protected or
//! disabled value is an unknown route (404) and never reaches the upstream; the
//! canonical spelling is protected as before.

use serde_json::Value;

use crate::common::python::typed_app;
use crate::common::{config, get, get_with, start};

const UUID: &str = "12345678-9abc-def0-1234-56789abcdef0";
const UUID_PATH: &str = "/api/v1/ids/12345678-9abc-def0-1234-56789abcdef0";

/// Canonical paths the `[auth]` rules of [`typed_config`] protect.
const PROTECTED: [&str; 6] = [
    "/api/v1/users/0",
    "/api/v1/flags/true",
    UUID_PATH,
    "/api/v1/days/2024-02-29",
    "/api/v1/colors/red",
    "/api/v1/levels/1",
];

/// Canonical paths no rule or filter covers.
const OPEN: [&str; 4] = ["/api/v1/users/2", "/api/v1/users/-3", "/api/v1/colors/blue", "/api/v1/days/2024-03-01"];

fn typed_config(upstream: &str) -> String {
    format!(
        r#"
load_builtin_plugins = ["proxy"]
[server]
enable_proxy = true
[auth]
rules = {{ "/api/v1/users/0" = ["k"], "/api/v1/flags/true" = ["k"], "/api/v1/ids/{UUID}" = ["k"], "/api/v1/days/2024-02-29" = ["k"], "/api/v1/colors/red" = ["k"], "/api/v1/levels/1" = ["k"] }}
[plugins.proxy]
discovery_interval = 0
[plugins.proxy.proxy_urls."{upstream}"]
enable = ["*"]
disable = ["/api/v1/users/1", "/api/v1/flags/false", "/api/v1/levels/2"]
"#
    )
}

/// Spellings FastAPI reads as the protected (or disabled) value, by canonical path.
fn bypasses() -> Vec<(&'static str, Vec<String>)> {
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        ("/api/v1/users/0", owned(&["00", "+0", "0%20", "%200", "-0", "0.0", "0_0", "000"])),
        ("/api/v1/users/1", owned(&["01", "+1", "1.0", "0_1", "1%20", "1.00"])),
        ("/api/v1/flags/true", owned(&["True", "TRUE", "1", "yes", "on", "t", "true%20"])),
        ("/api/v1/flags/false", owned(&["False", "0", "no", "off", "f"])),
        (
            UUID_PATH,
            vec![UUID.to_uppercase(), UUID.replace('-', ""), format!("%7B{UUID}%7D")],
        ),
        ("/api/v1/days/2024-02-29", owned(&["2024-02-29T00:00:00", "1709164800"])),
        ("/api/v1/levels/1", owned(&["01", "+1", "1.0"])),
        ("/api/v1/levels/2", owned(&["02", "2.0", "+2"])),
    ]
}

#[actix_rt::test]
async fn other_spellings_of_typed_values_never_reach_the_upstream() {
    let app = typed_app().await;
    let server = start(config(&typed_config(&app.url)), vec![]).await;
    for (canonical, spellings) in bypasses() {
        let prefix = &canonical[..canonical.rfind('/').unwrap() + 1];
        for spelling in spellings {
            let path = format!("{prefix}{spelling}");
            for key in [None, Some("k")] {
                let headers: Vec<(&str, &str)> = key.map(|k| ("Authorization", k)).into_iter().collect();
                let r = get_with(&server.url(&path), &headers).await;
                assert_eq!(r.status, 404, "{path} (key: {key:?}): {}", r.text());
                assert_eq!(r.json()["message"], "Not Found", "{path}");
            }
        }
    }
    // The canonical spellings: protected ones want the key, disabled ones are unknown.
    for protected in PROTECTED {
        assert_eq!(get(&server.url(protected)).await.status, 401, "{protected}");
        let r = get_with(&server.url(protected), &[("Authorization", "k")]).await;
        assert_eq!(r.status, 200, "{protected}: {}", r.text());
    }
    for disabled in ["/api/v1/users/1", "/api/v1/flags/false", "/api/v1/levels/2"] {
        assert_eq!(get(&server.url(disabled)).await.status, 404, "{disabled}");
    }
    for open in OPEN {
        let r = get(&server.url(open)).await;
        assert_eq!(r.status, 200, "{open}: {}", r.text());
    }
    // A string enum takes its values only: other text is FastAPI's 422, not a bypass.
    assert_eq!(get(&server.url("/api/v1/colors/Red")).await.status, 404);

    // The upstream saw the canonical calls only.
    let seen: Value = get(&format!("{}/seen", app.url)).await.json();
    let expected: Vec<&str> = PROTECTED.iter().chain(OPEN.iter()).copied().collect();
    assert_eq!(seen, serde_json::json!(expected), "what reached the upstream");
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct User {
    uid: i64,
}

async fn user(args: User, _: framex::plugin::Ctx) -> Result<i64, framex::actors::Error> {
    Ok(args.uid)
}

/// A local plugin's typed path parameter (from its argument struct) goes through the
/// same check: other spellings of a protected value are unknown, as for upstreams.
#[actix_rt::test]
async fn local_routes_take_canonical_spellings_only() {
    let plugin = framex::plugin::PluginBuilder::new("users")
        .get("/api/v1/local/users/{uid}", user)
        .build()
        .expect("plugin declarations are valid");
    let toml = r#"
[auth]
rules = { "/api/v1/local/users/0" = ["k"] }
"#;
    let server = start(config(toml), vec![plugin]).await;
    for spelling in ["00", "+0", "0%20", "-0", "0.0", "0_0"] {
        let path = format!("/api/v1/local/users/{spelling}");
        let r = get(&server.url(&path)).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    assert_eq!(get(&server.url("/api/v1/local/users/0")).await.status, 401);
    let r = get_with(&server.url("/api/v1/local/users/0"), &[("Authorization", "k")]).await;
    assert_eq!((r.status, r.json()["data"].clone()), (200, Value::from(0)), "{}", r.text());
    assert_eq!(get(&server.url("/api/v1/local/users/12")).await.json()["data"], 12);
    server.stop(true).await;
}

/// `framex check` says when a prefix rule leaves the route it is named after open.
#[test]
fn check_warns_about_a_prefix_that_leaves_its_route_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "load_builtin_plugins = [\"echo\"]\n[auth]\nrules = { \"/api/v1/echo/*\" = [\"k\"], \"/api/v1/echo_stream/*\" = [\"k\"], \"/api/v1/echo_stream\" = [\"k\"] }\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["check", "-c", file.to_str().unwrap()])
        .output()
        .expect("run framex check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        vec!["warning: [auth] rules: \"/api/v1/echo/*\" does not cover \"/api/v1/echo\"; add \"/api/v1/echo\" too"],
        "{stdout}"
    );
}

/// At discovery, an exact rule under an upstream's typed template is logged once per
/// rule and upstream (not again at each re-discovery).
#[actix_rt::test]
async fn discovery_warns_once_about_exact_rules_under_typed_templates() {
    let app = typed_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let port = crate::common::python::free_port();
    let toml = typed_config(&app.url)
        .replace("discovery_interval = 0", "discovery_interval = 1")
        .replace("enable_proxy = true", &format!("enable_proxy = true\nport = {port}"));
    std::fs::write(&file, toml).unwrap();
    let framex = crate::common::FramexProcess::spawn(&file, "info").await;
    let warning = "[auth] rules: \"/api/v1/users/0\" is an exact path under the typed route \"/api/v1/users/{uid}\" (uid: integer)";
    framex.until(warning).await;
    framex.until("disable of").await;
    // Re-discovery runs every second; the warnings stay one each.
    actix_rt::time::sleep(std::time::Duration::from_millis(2500)).await;
    let log = framex.log();
    assert_eq!(log.matches(warning).count(), 1, "{log}");
    assert_eq!(log.matches("\"/api/v1/users/1\" is an exact path").count(), 1, "{log}");
}
