//! The deployment files (`Dockerfile`, `deploy/kubernetes/`) stay true to the code:
//! the ConfigMap's config passes `framex check`, probes name paths the server
//! answers, ports, users, arguments and grace periods agree.

use std::process::Command;

use crate::common::{config, get, python::repo, start};

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value after `key` on the first line of `text` that holds it, trimmed.
fn value_after<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.split_once(key).map(|(_, v)| v.trim()))
        .unwrap_or_else(|| panic!("no '{key}' in:\n{text}"))
}

/// The `config.toml: |` block of the ConfigMap, dedented.
fn configmap_toml() -> String {
    let map = read("deploy/kubernetes/configmap.yaml");
    let block = map.split_once("config.toml: |\n").expect("a config.toml block").1;
    block
        .lines()
        .take_while(|line| line.is_empty() || line.starts_with("    "))
        .map(|line| line.strip_prefix("    ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ConfigMap's config is valid for `framex check` (the binary, as in the image),
/// and the Deployment agrees with it and with the Dockerfile: container port, probe
/// paths, arguments and mount path, user, and a grace period longer than the preStop
/// sleep plus the drain.
#[actix_rt::test]
async fn deployment_files_agree_with_the_code() {
    let toml = configmap_toml();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framex"))
        .args(["check", "-c", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed = framex::config::Config::from_toml_str(&toml, "configmap").unwrap();
    assert_eq!(parsed.server.host, "0.0.0.0", "a pod's listener faces the pod network");

    let deployment = read("deploy/kubernetes/deployment.yaml");
    let port: u16 = value_after(&deployment, "containerPort:").parse().unwrap();
    assert_eq!(port, parsed.server.port);
    assert!(deployment.contains("httpGet: {path: /health, port: http}"), "liveness on /health");
    assert!(deployment.contains("httpGet: {path: /ready, port: http}"), "readiness on /ready");
    let grace: u64 = value_after(&deployment, "terminationGracePeriodSeconds:").parse().unwrap();
    let sleep: u64 = value_after(&deployment, "command: [\"sleep\", \"")
        .trim_end_matches("\"]")
        .parse()
        .unwrap();
    assert!(grace > sleep + parsed.server.shutdown_timeout, "grace {grace} ≤ preStop {sleep} + drain");

    let dockerfile = read("Dockerfile");
    let cmd = value_after(&dockerfile, "CMD ");
    let args = value_after(&deployment, "args: ");
    assert_eq!(cmd, args, "the Deployment runs what the image runs");
    assert!(args.contains("/etc/framex/config.toml") && deployment.contains("mountPath: /etc/framex"));
    assert_eq!(value_after(&dockerfile, "USER "), value_after(&deployment, "runAsUser:"));
    assert!(dockerfile.contains(&format!("EXPOSE {port}")));

    // The probed paths exist and answer as the probes expect.
    let server = start(config("load_builtin_plugins = [\"echo\"]"), vec![]).await;
    assert_eq!(get(&server.url("/health")).await.status, 200);
    assert_eq!(get(&server.url("/ready")).await.status, 200);
    server.stop(true).await;
}
