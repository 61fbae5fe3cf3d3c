//! The real OpenAI Codex CLI (npm `@openai/codex`, installed once by `scripts/codex-env.sh`
//! under `~/.cache/hearth-codex/<version>`) against a real `hearth gateway run` process, with
//! its default tools and `wire_api = "responses"`: one turn that calls Codex's shell tool,
//! which Codex runs locally, and answers after Codex sends the tool output back. The upstream is
//! scripted (`FakeUpstream`), so what Codex sent is on record. Where npm cannot install the
//! package, the test says so and passes as skipped.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests; the skip message goes to stderr"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};
use serde_json::{Value, json};

type Gateway = GatewayProcess;

/// `hearth gateway run` on a free port with `config`, sessions in `dir/state`.
fn spawn(dir: &Path, config: &str) -> Gateway {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, config).unwrap();
    GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env_remove("HEARTH_GATEWAY_PASSWORD")
            .arg("--config")
            .arg(&path)
            .args(["gateway", "run", "--port", "0"])
            .env("HEARTH_STATE_DIR", dir.join("state")),
    )
    .unwrap()
}

/// The `codex` binary, or `None` (with the reason printed) when npm cannot install it.
fn codex() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/codex-env.sh");
    let output = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().unwrap();
    match output.status.code() {
        Some(0) => {
            let stdout = String::from_utf8(output.stdout).unwrap();
            Some(PathBuf::from(stdout.lines().last().unwrap().trim()))
        }
        Some(3) => {
            eprintln!(
                "skipped: npm could not install @openai/codex (see scripts/codex-env.sh above); \
                 this test needs the real Codex CLI"
            );
            None
        }
        other => panic!("scripts/codex-env.sh failed ({other:?})"),
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

const USAGE: &str = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":900,"completion_tokens":12,"total_tokens":912}}"#;

/// What the shell tool prints, so the tool output Codex sends back can be recognised.
const MARKER: &str = "hearth-codex-marker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_completes_a_turn_with_a_tool_call_through_hearth() {
    let Some(codex) = codex() else { return };
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    // First answer: call Codex's shell tool; second: the final answer.
    let args = json!({"cmd": format!("echo {MARKER}")}).to_string();
    let first = [
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_codex_1", "type": "function", "function": {"name": "exec_command", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": args}}]}),
            Some("tool_calls"),
        ),
        USAGE.to_owned(),
        "[DONE]".to_owned(),
    ];
    let second = [
        chunk(json!({"role": "assistant", "content": "The command printed the marker."}), None),
        chunk(json!({}), Some("stop")),
        USAGE.to_owned(),
        "[DONE]".to_owned(),
    ];
    upstream.push(Reply::sse(&first.iter().map(String::as_str).collect::<Vec<_>>()));
    upstream.push(Reply::sse(&second.iter().map(String::as_str).collect::<Vec<_>>()));

    let dir = tempfile::tempdir().unwrap();
    let token = "codex-gateway-token-1";
    let gw = spawn(
        dir.path(),
        &format!(
            r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions",
                models: [{{id: "m", contextWindow: 200000, maxTokens: 4096}}]}}}}}},
              agents: {{defaults: {{model: {{primary: "fake/m"}}}}}},
              gateway: {{auth: {{mode: "token", token: "{token}"}}}}}}"#,
            upstream.origin()
        ),
    );
    let home = dir.path().join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model = \"fake/m\"\nmodel_provider = \"hearth\"\n\n[model_providers.hearth]\nname = \"hearth\"\n\
             base_url = \"http://{}/v1\"\nwire_api = \"responses\"\nenv_key = \"HEARTH_KEY\"\n",
            gw.addr
        ),
    )
    .unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run = tokio::process::Command::new(&codex)
        .args(["exec", "--skip-git-repo-check", "run the marker command"])
        .current_dir(&work)
        .env("HEARTH_KEY", token)
        .env("CODEX_HOME", &home)
        .env("HOME", dir.path())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("codex exec ran for more than 180 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let gateway_log = gw.stderr();
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}\ngateway:\n{gateway_log}");
    assert!(output.status.success(), "codex exec failed\n{context}");
    assert!(stdout.contains("The command printed the marker."), "no final answer\n{context}");

    let requests = upstream.requests();
    let calls: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    assert_eq!(calls.len(), 2, "one turn: the tool call, then the answer\n{context}");
    // The first request carried Codex's default tools: the namespace tool flattened, the hosted
    // web_search dropped (not a 400).
    let names: Vec<&str> = calls[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(names.contains(&"exec_command"), "{names:?}");
    assert!(names.iter().any(|n| n.contains("__")), "a namespaced tool, flattened: {names:?}");
    assert!(calls[0]["tools"].as_array().unwrap().iter().all(|t| t["type"] == "function"));
    assert_eq!(calls[0]["stream"], true);
    // The second carried the call and Codex's tool output, which ran the command.
    let messages = calls[1]["messages"].as_array().unwrap();
    let call = messages
        .iter()
        .find_map(|m| m["tool_calls"].as_array().and_then(|c| c.first()).cloned())
        .unwrap_or_else(|| panic!("the call is replayed: {messages:?}"));
    assert_eq!(call["id"], "call_codex_1");
    assert_eq!(call["function"]["name"], "exec_command");
    let result = messages
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "call_codex_1")
        .unwrap_or_else(|| panic!("Codex's tool output is sent back: {messages:?}"));
    assert!(
        result["content"].as_str().unwrap().contains(MARKER),
        "Codex ran the command and sent its output: {result}"
    );
}
