//! `hearth doctor [--json]` through the real binary: the founding page's config with LM Studio
//! absent, a chain that is served, and one with a missing key, an unlisted model and a
//! world-writable state directory.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers may unwrap")]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use hearth_testkit::{FakeUpstream, Reply};
use serde_json::Value;

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hearth-config/tests/corpus/seed-lmstudio-minimax.json5")
}

struct Run {
    code: i32,
    stdout: String,
}

fn doctor(config: &Path, state: &Path, args: &[&str]) -> Run {
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("HEARTH_STATE_DIR", state)
        .env("NO_COLOR", "1")
        .arg("doctor")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The check `kind` of `subject`.
fn check<'v>(v: &'v Value, subject: &str, kind: &str) -> &'v Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == subject && c["check"] == kind)
        .unwrap_or_else(|| panic!("no {kind} check of {subject} in {v}"))
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn lm_studio_absent_is_named_with_the_command_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The founding page's config, its LM Studio on a port where nothing listens.
    let port = dead_port();
    let text = std::fs::read_to_string(seed()).unwrap();
    assert!(text.contains("127.0.0.1:1234"));
    let config = write(dir.path(), &text.replace("127.0.0.1:1234", &format!("127.0.0.1:{port}")));

    let r = doctor(&config, &state, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let line = r.stdout.lines().find(|l| l.contains("lmstudio:") && l.starts_with("FAIL")).unwrap();
    assert_eq!(line, format!("FAIL  lmstudio: LM Studio is not running at 127.0.0.1:{port}"));
    assert!(
        r.stdout
            .contains(&format!("fix: start LM Studio's server: `lms server start --port {port}`")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 problem found"), "{}", r.stdout);
    assert!(r.stdout.contains("ok    lmstudio: key: marker(lmstudio)"), "{}", r.stdout);
    assert!(r.stdout.contains("context window 196608"), "{}", r.stdout);

    let r = doctor(&config, &state, &["--json"]);
    assert_eq!(r.code, 1);
    let v = json(&r);
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"], 1);
    let reach = check(&v, "lmstudio", "reachable");
    assert_eq!(reach["status"], "error");
    assert_eq!(reach["message"], format!("LM Studio is not running at 127.0.0.1:{port}"));
    assert!(reach["fix"].as_str().unwrap().contains("lms server start"), "{reach}");
    assert_eq!(check(&v, "config", "config")["status"], "ok");
    assert_eq!(check(&v, "state directory", "stateDir")["status"], "ok");

    // The file itself, as written, when nothing holds LM Studio's port here.
    if std::net::TcpListener::bind("127.0.0.1:1234").is_ok() {
        let r = doctor(&seed(), &state, &[]);
        assert_eq!(r.code, 1);
        assert!(r.stdout.contains("FAIL  lmstudio: LM Studio is not running at 127.0.0.1:1234\n      fix: start LM Studio's server: `lms server start` "), "{}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_served_chain_passes() {
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"me","context_length":4096}]}"#));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: "box/tiny" }} }},
  models: {{ mode: "replace", providers: {{ box: {{ baseUrl: "{}/v1", models: [{{ id: "tiny", contextWindow: 4096 }}] }} }} }} }}"#,
            up.origin()
        ),
    );
    let r =
        tokio::task::spawn_blocking(move || doctor(&config, &state, &["--json"])).await.unwrap();
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v = json(&r);
    assert_eq!(v["ok"], true);
    assert_eq!(check(&v, "box", "reachable")["status"], "ok");
    assert_eq!(check(&v, "box/tiny", "model")["status"], "ok");
    let window = check(&v, "box/tiny", "window");
    assert_eq!(window["status"], "ok");
    assert_eq!(window["message"], "context window 4096 (the server serves 4096)");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_key_unlisted_model_and_open_state_dir_are_each_named() {
    use std::os::unix::fs::PermissionsExt;
    let up = FakeUpstream::start().await.unwrap();
    up.push(Reply::json(200, r#"{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"me","context_length":2048}]}"#));
    let keyed = FakeUpstream::start().await.unwrap();
    keyed.push(Reply::json(
        200,
        r#"{"object":"list","data":[{"id":"big","object":"model","owned_by":"me"}]}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = write(
        dir.path(),
        &format!(
            r#"{{ agents: {{ defaults: {{ model: {{ primary: "box/other", fallbacks: ["keyed/big"] }} }} }},
  models: {{ mode: "replace", providers: {{
    box: {{ baseUrl: "{}/v1", models: [{{ id: "other", contextWindow: 8192 }}] }},
    keyed: {{ baseUrl: "{}/v1", apiKey: "${{HEARTH_DOCTOR_TEST_KEY}}", models: [{{ id: "big", contextWindow: 8192 }}] }},
  }} }} }}"#,
            up.origin(),
            keyed.origin()
        ),
    );
    let (c, s) = (config.clone(), state.clone());
    let r = tokio::task::spawn_blocking(move || doctor(&c, &s, &["--json"])).await.unwrap();
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = json(&r);
    assert_eq!(v["problems"], 3, "{v}");
    let key = check(&v, "keyed", "key");
    assert_eq!(key["status"], "error");
    assert_eq!(key["message"], "HEARTH_DOCTOR_TEST_KEY is not set");
    assert!(key["fix"].as_str().unwrap().starts_with("export HEARTH_DOCTOR_TEST_KEY="));
    let model = check(&v, "box/other", "model");
    assert_eq!(model["status"], "error");
    assert_eq!(model["message"], "the server does not list `other` (it lists: tiny)");
    let state_check = check(&v, "state directory", "stateDir");
    assert_eq!(state_check["status"], "error");
    assert!(state_check["message"].as_str().unwrap().contains("world-writable (mode 777)"));
    assert_eq!(state_check["fix"], format!("chmod 700 {}", state.display()));
    assert_eq!(check(&v, "keyed/big", "model")["status"], "ok");

    // The text says the same, one fix line under each problem.
    up.push(Reply::json(
        200,
        r#"{"object":"list","data":[{"id":"tiny","object":"model","owned_by":"me"}]}"#,
    ));
    keyed.push(Reply::json(
        200,
        r#"{"object":"list","data":[{"id":"big","object":"model","owned_by":"me"}]}"#,
    ));
    let r = tokio::task::spawn_blocking(move || doctor(&config, &state, &[])).await.unwrap();
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("FAIL  keyed: HEARTH_DOCTOR_TEST_KEY is not set\n      fix: export HEARTH_DOCTOR_TEST_KEY="), "{}", r.stdout);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let fails: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with("FAIL ")).collect();
    assert_eq!(fails.len(), 3, "{}", r.stdout);
    for i in fails {
        assert!(lines[i + 1].starts_with("      fix: "), "{}", r.stdout);
    }
    // The config's own warning about the unset variable comes first.
    assert!(lines[0].starts_with("warn  config:"), "{}", r.stdout);
    assert!(r.stdout.ends_with("3 problems found\n"), "{}", r.stdout);
}

#[test]
fn no_config_points_to_config_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("hearth")
        .unwrap()
        .env_clear()
        .env("HOME", dir.path())
        .env("NO_COLOR", "1")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check(&v, "config", "config")["status"], "ok");
    assert!(check(&v, "config", "config")["message"].as_str().unwrap().starts_with("no file"));
    let chain = check(&v, "default chain", "chain");
    assert_eq!(chain["status"], "error");
    assert!(chain["fix"].as_str().unwrap().contains("hearth config init"), "{chain}");
    // The state directory under HOME is created on first use, and doctor does not create it.
    assert_eq!(check(&v, "state directory", "stateDir")["status"], "ok");
    assert!(!dir.path().join(".hearth").exists());
}
