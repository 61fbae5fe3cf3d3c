//! Provider secrets never reach what hearth shows or stores, whatever form an upstream echoes
//! them in (Invariant 5, `docs/security.md` "Secrets"). A real `hearth gateway run` and the real
//! CLI against a [`FakeUpstream`] that echoes the secret it was sent:
//!
//! 1. 401 JSON `Incorrect API key provided: KEY`,
//! 2. 500 `text/plain` with the key,
//! 3. a 200 SSE stream with text, then an in-band error event with the key (a 200 JSON error
//!    body for the non-streaming `hearth agent`),
//! 4. a Groq-style `gsk_…` key (the `${ENV}` key below), a shape the pattern mask does not know.
//!
//! For each source of the secret (a literal `apiKey`, an `${ENV}` `apiKey`, an `${ENV}` header
//! value), every door is checked: HTTP error bodies (chat, Responses, Messages), SSE error
//! frames, a WebSocket `agent` run's frames, the gateway's stderr, every file of the state dir
//! (SQLite and its `-wal`) after agent runs, and `hearth infer model run --json`, `hearth agent
//! --json`, `hearth models status --probe --json`. Each check first proves the upstream got the
//! secret and echoed it (the reply holds it), then that hearth shows `***` and never the secret.
//! None of the secrets matches a key pattern (`sk-…`, `Bearer …`, `api key: …`), so only
//! masking by value can hide them.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hearth_testkit::upstream::Step;
use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const LITERAL_KEY: &str = "lit-7Qm2Xv9Rk4Tz8Lp3Wn6Y";
const GROQ_KEY: &str = "gsk_Vb3Nq8Zr2Kx7Mw4Jt9Hc5Fd1";
const HEADER_VALUE: &str = "hdr-Pz6Ls1Qy8Ue3Ro5Ia2Gb";

/// A frame or answer that does not come within this long fails the test instead of hanging it.
const HANG_GUARD: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Source {
    /// `apiKey: "lit-…"` in the config.
    Literal,
    /// `apiKey: "${HEARTH_SECRETS_TEST_KEY}"`, a `gsk_…` key.
    Env,
    /// `headers: {"x-custom-auth": "${MY_HDR}"}`.
    Header,
}

impl Source {
    fn secret(self) -> &'static str {
        match self {
            Source::Literal => LITERAL_KEY,
            Source::Env => GROQ_KEY,
            Source::Header => HEADER_VALUE,
        }
    }

    fn provider_fields(self) -> String {
        match self {
            Source::Literal => format!(r#"apiKey: "{LITERAL_KEY}""#),
            Source::Env => r#"apiKey: "${HEARTH_SECRETS_TEST_KEY}""#.to_owned(),
            Source::Header => r#"headers: { "x-custom-auth": "${MY_HDR}" }"#.to_owned(),
        }
    }

    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Source::Literal => vec![],
            Source::Env => vec![("HEARTH_SECRETS_TEST_KEY", GROQ_KEY)],
            Source::Header => vec![("MY_HDR", HEADER_VALUE)],
        }
    }

    /// Whether the upstream was sent the secret: hearth resolved it.
    fn was_sent(self, upstream: &FakeUpstream) -> bool {
        upstream.requests().iter().any(|r| match self {
            Source::Literal | Source::Env => {
                r.header("authorization") == Some(format!("Bearer {}", self.secret()).as_str())
            }
            Source::Header => r.header("x-custom-auth") == Some(self.secret()),
        })
    }
}

// === the echoes ===

fn body_of(reply: &Reply) -> String {
    let bytes: Vec<u8> = reply
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Bytes(b) => Some(b.clone()),
            Step::Pause(_) | Step::HeadPause(_) => None,
        })
        .flatten()
        .collect();
    String::from_utf8(bytes).unwrap()
}

/// (1) OpenAI's 401.
fn incorrect_key(secret: &str) -> Reply {
    let body = json!({"error": {
        "message": format!("Incorrect API key provided: {secret}. You can find your API key at https://example.invalid/keys."),
        "type": "invalid_request_error", "param": null, "code": "invalid_api_key",
    }});
    Reply::json(401, &body.to_string())
}

/// (2) A proxy's 500 in plain text.
fn plain_500(secret: &str) -> Reply {
    let mut reply =
        Reply::json(500, &format!("internal error while checking credential {secret}\n"));
    reply.headers = vec![("content-type".into(), "text/plain".into())];
    reply
}

/// (3) A 200 stream that starts answering, then fails in-band.
fn inband_error(secret: &str) -> Reply {
    let error = json!({"error": {
        "message": format!("upstream failure while serving credential {secret}"),
        "type": "server_error", "code": 500,
    }});
    Reply::sse(&[
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}"#,
        &error.to_string(),
    ])
}

/// (3) for a non-streaming call: a 200 whose JSON body is an error.
fn inband_json_error(secret: &str) -> Reply {
    let error = json!({"error": {
        "message": format!("upstream failure while serving credential {secret}"),
        "type": "server_error", "code": 500,
    }});
    Reply::json(200, &error.to_string())
}

// === processes ===

type Gateway = GatewayProcess;

fn hearth(config: &Path, state: &Path, source: Source) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("NO_COLOR", "1")
        // Sessions go to a folder of the test's own, never the developer's ~/.hearth.
        .env("HEARTH_STATE_DIR", state)
        .envs(source.env())
        .arg("--config")
        .arg(config);
    cmd
}

/// `hearth … gateway run` from `cmd` (see [`hearth`]), once it listens.
fn spawn_gateway(cmd: &mut Command) -> Gateway {
    GatewayProcess::spawn(cmd.args(["gateway", "run", "--port", "0"])).unwrap()
}

/// One provider `up` at `origin`, the default agent's model.
fn write_config(dir: &Path, source: Source, origin: &str) -> PathBuf {
    let text = r#"{
  models: { mode: "replace", providers: {
    up: { baseUrl: "ORIGIN/v1", api: "openai-completions", FIELDS,
          models: [{ id: "m", maxTokens: 64, contextWindow: 4096 }] },
  } },
  agents: { defaults: { model: { primary: "up/m" } } },
}"#
    .replace("ORIGIN", origin)
    .replace("FIELDS", &source.provider_fields());
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

/// A fresh upstream scripted with `replies` (and, so that a retry cannot run out, copies of the
/// last one), and a config pointing at it. The upstream must be kept alive by the caller.
async fn scripted(
    dir: &Path,
    source: Source,
    calls_only: bool,
    replies: &[Reply],
) -> (FakeUpstream, PathBuf) {
    let upstream = if calls_only {
        FakeUpstream::start_calls_only().await.unwrap()
    } else {
        FakeUpstream::start().await.unwrap()
    };
    for reply in replies {
        assert!(body_of(reply).contains(source.secret()), "the echo must hold the secret");
        upstream.push(reply.clone());
    }
    if let Some(last) = replies.last() {
        for _ in 0..8 {
            upstream.push(last.clone());
        }
    }
    let config = write_config(dir, source, &upstream.origin());
    (upstream, config)
}

// === assertions ===

/// `shown` is what hearth showed after the upstream was sent `source`'s secret and echoed it:
/// the secret must not be in it, not even in part, and `***` must be. Failures are collected, so
/// one run names every door that leaks.
fn check_masked(
    failures: &mut Vec<String>,
    what: &str,
    source: Source,
    upstream: &FakeUpstream,
    shown: &str,
) {
    let secret = source.secret();
    // A cut message or a half-masked key must not leave part of it either.
    let middle = &secret[4..secret.len() - 4];
    let problem = if !source.was_sent(upstream) {
        "the upstream never received the secret"
    } else if shown.contains(secret) {
        "the secret leaked"
    } else if shown.contains(middle) {
        "part of the secret leaked"
    } else if !shown.contains("***") {
        "no `***` where the echo was"
    } else {
        return;
    };
    failures.push(format!("{source:?}: {what}: {problem}:\n{shown}"));
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// No file of the state dir holds the secret, and the stored failures are there (masked).
fn check_state_dir(failures: &mut Vec<String>, source: Source, state: &Path) {
    let all = files(state);
    assert!(
        all.iter()
            .any(|p| p.extension().is_some_and(|e| e == "db")
                || p.to_string_lossy().contains("sqlite")),
        "no database in {}: {all:?}",
        state.display()
    );
    let mut masked_somewhere = false;
    for path in &all {
        let bytes = std::fs::read(path).unwrap();
        if contains_bytes(&bytes, source.secret().as_bytes()) {
            failures.push(format!("{source:?}: the secret is stored in {}", path.display()));
        }
        masked_somewhere |= contains_bytes(&bytes, b"credential ***");
    }
    if !masked_somewhere {
        failures.push(format!("{source:?}: the in-band failure was not stored masked: {all:?}"));
    }
}

// === the doors ===

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(HANG_GUARD).build().unwrap()
}

/// One request through a fresh gateway whose upstream answers `reply`; returns status and body.
async fn through_gateway(
    source: Source,
    state: &Path,
    reply: Reply,
    path: &str,
    body: Value,
) -> (FakeUpstream, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, config) = scripted(dir.path(), source, true, &[reply]).await;
    let gateway = spawn_gateway(&mut hearth(&config, state, source));
    let mut request = http().post(format!("{}{path}", gateway.origin())).json(&body);
    if path == "/v1/messages" {
        request = request.header("anthropic-version", "2023-06-01");
    }
    let response = request.send().await.unwrap();
    let shown = format!("HTTP {}\n{}", response.status(), response.text().await.unwrap());
    let stderr = gateway.stderr();
    (upstream, shown, stderr)
}

fn chat(stream: bool) -> Value {
    json!({"model": "up/m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn responses(stream: bool) -> Value {
    json!({"model": "up/m", "stream": stream, "input": "hi"})
}

fn messages(stream: bool) -> Value {
    json!({"model": "up/m", "stream": stream, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]})
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as JSON.
async fn recv(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(HANG_GUARD, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A WebSocket `agent` run through a fresh gateway; returns every frame after the handshake.
async fn ws_agent_run(
    source: Source,
    state: &Path,
    reply: Reply,
    session: &str,
) -> (FakeUpstream, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, config) = scripted(dir.path(), source, true, &[reply]).await;
    let gateway = spawn_gateway(&mut hearth(&config, state, source));
    let url = format!("{}/", gateway.origin().replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let challenge = recv(&mut ws).await;
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let connect = json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "test", "version": "1.0.0", "platform": "linux", "mode": "operator"},
        "role": "operator", "scopes": ["operator.read", "operator.write"], "auth": {},
    }});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!((&hello["id"], &hello["ok"]), (&json!("c1"), &json!(true)), "{hello}");
    let agent = json!({"type": "req", "id": "a1", "method": "agent", "params": {
        "idempotencyKey": format!("k-{session}"), "message": "hi", "sessionKey": session,
    }});
    ws.send(Message::text(agent.to_string())).await.unwrap();
    // Frames until the final `res` of the run (the first one is the `accepted` ack).
    let mut frames = Vec::new();
    loop {
        let frame = recv(&mut ws).await;
        frames.push(frame.to_string());
        if frame["type"] == "res" && frame["id"] == "a1" && frame["payload"]["status"] != "accepted"
        {
            break;
        }
    }
    let stderr = gateway.stderr();
    (upstream, frames.join("\n"), stderr)
}

/// A CLI command against a fresh upstream answering `replies`; returns stdout and stderr.
async fn through_cli(
    source: Source,
    state: &Path,
    calls_only: bool,
    replies: &[Reply],
    args: &'static [&'static str],
) -> (FakeUpstream, String) {
    let dir = tempfile::tempdir().unwrap();
    let (upstream, config) = scripted(dir.path(), source, calls_only, replies).await;
    let state = state.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        hearth(&config, &state, source).args(args).output().unwrap()
    })
    .await
    .unwrap();
    let shown = format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (upstream, shown)
}

async fn every_door(source: Source) {
    let secret = source.secret();
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state");
    let mut gateway_logs = Vec::new();
    let mut failures = Vec::new();

    // HTTP error bodies and SSE error frames, on each API.
    let cases: [(&str, &str, Reply, Value); 7] = [
        ("chat, 401 JSON", "/v1/chat/completions", incorrect_key(secret), chat(false)),
        ("chat, 500 text/plain", "/v1/chat/completions", plain_500(secret), chat(false)),
        ("chat SSE, in-band error", "/v1/chat/completions", inband_error(secret), chat(true)),
        ("Responses, 401 JSON", "/v1/responses", incorrect_key(secret), responses(false)),
        ("Responses SSE, in-band error", "/v1/responses", inband_error(secret), responses(true)),
        ("Messages, 401 JSON", "/v1/messages", incorrect_key(secret), messages(false)),
        ("Messages SSE, in-band error", "/v1/messages", inband_error(secret), messages(true)),
    ];
    for (what, path, reply, body) in cases {
        let (upstream, shown, log) = through_gateway(source, &state, reply, path, body).await;
        check_masked(&mut failures, what, source, &upstream, &shown);
        gateway_logs.push(log);
    }

    // An agent run over HTTP with a session (stored), and over the WebSocket.
    let mut body = chat(true);
    body["model"] = json!("hearth");
    body["user"] = json!("ada");
    let (upstream, shown, log) =
        through_gateway(source, &state, inband_error(secret), "/v1/chat/completions", body).await;
    check_masked(&mut failures, "agent run over HTTP", source, &upstream, &shown);
    gateway_logs.push(log);
    for (what, reply) in [("in-band error", inband_error(secret)), ("401", incorrect_key(secret))] {
        let (upstream, shown, log) = ws_agent_run(source, &state, reply, "ws-session").await;
        check_masked(
            &mut failures,
            &format!("WebSocket agent run, {what}"),
            source,
            &upstream,
            &shown,
        );
        gateway_logs.push(log);
    }

    // The CLI.
    let (upstream, shown) = through_cli(
        source,
        &state,
        true,
        &[incorrect_key(secret)],
        &["infer", "model", "run", "--model", "up/m", "--prompt", "hi", "--json"],
    )
    .await;
    check_masked(&mut failures, "hearth infer model run --json", source, &upstream, &shown);
    let (upstream, shown) = through_cli(
        source,
        &state,
        true,
        // `hearth agent` does not stream.
        &[inband_json_error(secret)],
        &["agent", "--message", "hi", "--session", "cli-session", "--json"],
    )
    .await;
    check_masked(&mut failures, "hearth agent --json", source, &upstream, &shown);
    // Every request of the probe (model list, props, the test call) gets the echo.
    let (upstream, shown) = through_cli(
        source,
        &state,
        false,
        &[incorrect_key(secret)],
        &["models", "status", "--probe", "--json"],
    )
    .await;
    check_masked(&mut failures, "hearth models status --probe --json", source, &upstream, &shown);

    // Logs: the gateway's stderr.
    for log in &gateway_logs {
        if log.contains(secret) {
            failures.push(format!("{source:?}: the gateway printed the secret:\n{log}"));
        }
    }
    // Storage: the session database, WAL included.
    check_state_dir(&mut failures, source, &state);
    assert!(failures.is_empty(), "{} leaks:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_key_is_masked_everywhere() {
    every_door(Source::Literal).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_key_is_masked_everywhere() {
    every_door(Source::Env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_header_value_is_masked_everywhere() {
    every_door(Source::Header).await;
}

/// The gateway token is registered too (here from `HEARTH_GATEWAY_TOKEN`): were it ever echoed
/// into an upstream's answer, the caller would see `***`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_token_is_masked() {
    const GATEWAY_TOKEN: &str = "gwtok-Hy4Mc8Qa2Ze6Ws0Ux";
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let echo = incorrect_key(&format!("{LITERAL_KEY}, client credential {GATEWAY_TOKEN}"));
    assert!(body_of(&echo).contains(GATEWAY_TOKEN));
    let (upstream, config) = scripted(dir.path(), Source::Literal, true, &[echo]).await;
    let gateway = spawn_gateway(
        hearth(&config, &state, Source::Literal).env("HEARTH_GATEWAY_TOKEN", GATEWAY_TOKEN),
    );
    let url = format!("{}/v1/chat/completions", gateway.origin());
    // The token is in force.
    let refused = http().post(&url).json(&chat(false)).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let response =
        http().post(&url).bearer_auth(GATEWAY_TOKEN).json(&chat(false)).send().await.unwrap();
    let shown = format!("HTTP {}\n{}", response.status(), response.text().await.unwrap());
    assert!(Source::Literal.was_sent(&upstream), "the upstream was never called");
    assert!(!shown.contains(GATEWAY_TOKEN) && !shown.contains(LITERAL_KEY), "{shown}");
    assert!(shown.contains("Incorrect API key provided: ***, client credential ***"), "{shown}");
}
