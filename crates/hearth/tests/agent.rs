//! `hearth agent` and `hearth sessions` with the real llama-server, and multi-turn sessions
//! through the gateway's `/v1/chat/completions` with a `user` field.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::path::Path;

use assert_cmd::Command;
use hearth_testkit::LlamaServer;

fn write_config(dir: &Path, origin: &str) -> std::path::PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(
        &path,
        format!(
            r#"{{
  agents: {{ defaults: {{ model: "tiny/tiny", systemPrompt: "You are terse." }} }},
  models: {{ mode: "replace", providers: {{
    tiny: {{ baseUrl: "{origin}/v1", models: [{{ id: "tiny", contextWindow: 8192, maxTokens: 16 }}] }},
  }} }},
}}"#
        ),
    )
    .unwrap();
    path
}

fn hearth(state: &Path, config: &Path) -> Command {
    let mut cmd = Command::cargo_bin("hearth").unwrap();
    cmd.env("HEARTH_STATE_DIR", state).env("NO_COLOR", "1").arg("--config").arg(config);
    cmd
}

/// `hearth gateway run` on a free port; returns the child and its origin once it listens.
fn spawn_gateway(state: &Path, config: &Path) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hearth"))
        .env("HEARTH_STATE_DIR", state)
        .arg("--config")
        .arg(config)
        .args(["gateway", "run", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let origin = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the gateway exited");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, origin)
}

fn json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn agent_turns_are_remembered_and_sessions_can_be_managed() {
    let server = LlamaServer::start(8192)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = write_config(dir.path(), &server.origin());
    for message in ["my name is Ada", "what is my name?"] {
        let v = json(hearth(&state, &config).args([
            "agent",
            "--message",
            message,
            "--session",
            "s1",
            "--json",
        ]));
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["session"], "agent:main:s1");
        assert_eq!(v["model"], "tiny/tiny");
    }
    let v = json(hearth(&state, &config).args(["sessions", "show", "s1", "--json"]));
    let kinds: Vec<&str> =
        v["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user", "assistant", "user", "assistant"]);
    assert_eq!(v["entries"][2]["text"], "what is my name?");
    let list = json(hearth(&state, &config).args(["sessions", "list", "--json"]));
    assert_eq!(list[0]["key"], "agent:main:s1");
    assert_eq!(list[0]["entries"], 4);
    // Plain output: the answer on stdout.
    let out = hearth(&state, &config)
        .args(["agent", "--message", "and now?", "--session", "s1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    // Compaction by hand, then the session view starts with the summary.
    let v = json(hearth(&state, &config).args(["sessions", "compact", "s1", "--json"]));
    assert!(v["summarizedMessages"].as_u64().unwrap() >= 4, "{v}");
    let v = json(hearth(&state, &config).args(["sessions", "show", "s1", "--json"]));
    assert_eq!(v["entries"][0]["kind"], "compaction");
    let v = json(hearth(&state, &config).args(["sessions", "reset", "s1", "--json"]));
    assert_eq!(v["ok"], true);
    let v = json(hearth(&state, &config).args(["sessions", "show", "s1", "--json"]));
    assert!(v["entries"].as_array().unwrap().is_empty());
    let out = hearth(&state, &config).args(["agent", "--message", "   "]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_gateway_keeps_a_session_per_user() {
    let server = LlamaServer::start(8192).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = write_config(dir.path(), &server.origin());
    let (mut child, origin) = spawn_gateway(&state, &config);
    for content in ["my name is Ada", "what is my name?"] {
        let body = serde_json::json!({"model": "hearth", "user": "ada", "messages": [{"role": "user", "content": content}]});
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("{origin}/v1/chat/completions"),
                "-H",
                "content-type: application/json",
                "-d",
            ])
            .arg(body.to_string())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)));
        assert_eq!(v["object"], "chat.completion", "{v}");
    }
    // Responses: previous_response_id continues the session it came from.
    let post = |body: serde_json::Value| -> serde_json::Value {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("{origin}/v1/responses"),
                "-H",
                "content-type: application/json",
                "-d",
            ])
            .arg(body.to_string())
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stdout)))
    };
    let first = post(serde_json::json!({"model": "hearth", "input": "remember the word apple"}));
    let first_id = first["id"].as_str().unwrap().to_owned();
    let second = post(
        serde_json::json!({"model": "hearth", "input": "which word?", "previous_response_id": first_id}),
    );
    assert_eq!(second["object"], "response", "{second}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    let v = json(hearth(&state, &config).args(["sessions", "show", "user:ada", "--json"]));
    let texts: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "user")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["my name is Ada", "what is my name?"], "{v}");
    let v = json(hearth(&state, &config).args([
        "sessions",
        "show",
        &format!("resp:{first_id}"),
        "--json",
    ]));
    let texts: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "user")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["remember the word apple", "which word?"], "{v}");
}

#[test]
fn kill_9_of_the_gateway_mid_burst_loses_no_acknowledged_turn() {
    use std::sync::{Arc, Mutex};
    let server = LlamaServer::start(8192).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = write_config(dir.path(), &server.origin());
    let (mut child, origin) = spawn_gateway(&state, &config);
    let acknowledged: Arc<Mutex<Vec<usize>>> = Arc::default();
    let sender = {
        let acknowledged = Arc::clone(&acknowledged);
        std::thread::spawn(move || {
            for i in 0..200 {
                let body = serde_json::json!({"model": "hearth", "user": "burst", "messages": [{"role": "user", "content": format!("turn {i}")}]});
                let Ok(out) = std::process::Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "10",
                        "-X",
                        "POST",
                        &format!("{origin}/v1/chat/completions"),
                        "-H",
                        "content-type: application/json",
                        "-d",
                    ])
                    .arg(body.to_string())
                    .output()
                else {
                    return;
                };
                match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    Ok(v) if v["object"] == "chat.completion" => {
                        acknowledged.lock().unwrap().push(i)
                    }
                    _ => return,
                }
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 6 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SIGKILL while the burst goes on.
    std::process::Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    sender.join().unwrap();
    let acked = acknowledged.lock().unwrap().clone();
    assert!(acked.len() >= 6);
    let v =
        json(hearth(&state, &config).args(["sessions", "show", "user:burst", "--all", "--json"]));
    let entries = v["entries"].as_array().unwrap();
    for i in acked {
        let text = format!("turn {i}");
        let pos = entries.iter().position(|e| e["kind"] == "user" && e["text"] == text.as_str());
        let pos = pos.unwrap_or_else(|| panic!("acknowledged {text} is missing"));
        assert_eq!(entries[pos + 1]["kind"], "assistant", "the answer to {text} is missing");
    }
}
