//! `modelPolicy.localOnly` through every door (issue 13): with a hosted primary configured, the
//! CLI, the three HTTP APIs, the model-override header and a WebSocket agent run never open a
//! connection to the hosted provider, and the answer comes from the local model. The hosted
//! host is stood in for by a local listener on `HTTPS_PROXY`: every connection hearth tries to
//! `api.anthropic.com` arrives there and is counted. A control run without the policy shows that
//! the stand-in does see hosted attempts, so a zero means something.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hearth_testkit::{CountingListener, FakeUpstream, GatewayProcess, Reply};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"local hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

/// A stand-in for every hosted host: counts the connections and closes them.
fn stand_in() -> CountingListener {
    CountingListener::start().unwrap()
}

fn config(upstream: &FakeUpstream, policy: &str) -> String {
    format!(
        r#"{{models: {{mode: "merge", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
           agents: {{defaults: {{model: {{primary: "anthropic/claude-sonnet-4-5", fallbacks: ["fake/m"]}}, modelPolicy: {policy}}}}}}}"#,
        upstream.origin()
    )
}

fn hearth(dir: &Path, stand: &CountingListener) -> Command {
    let proxy = stand.url();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .arg("--config")
        .arg(dir.join("hearth.json5"))
        .env("HEARTH_STATE_DIR", dir.join("state"))
        .env("ANTHROPIC_API_KEY", "sk-ant-policy-test-0000")
        .env("HTTPS_PROXY", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env("ALL_PROXY", &proxy)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HEARTH_GATEWAY_TOKEN");
    command
}

struct Gateway {
    /// Kept for its `Drop`: the gateway stops with this value.
    _process: GatewayProcess,
    origin: String,
    startup: String,
}

fn spawn(dir: &Path, stand: &CountingListener) -> Gateway {
    let process =
        GatewayProcess::spawn(hearth(dir, stand).args(["gateway", "run", "--port", "0"])).unwrap();
    assert!(process.wait_for_stderr("sessions:", Duration::from_secs(10)), "{}", process.stderr());
    Gateway { origin: process.origin(), startup: process.stderr(), _process: process }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post(
    gw: &Gateway,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut request = client().post(format!("{}{path}", gw.origin)).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let provider = response
        .headers()
        .get("x-hearth-provider")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, provider, response.json().await.unwrap_or(Value::Null))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn recv(ws: &mut Ws) -> Value {
    loop {
        if let Message::Text(text) = ws.next().await.unwrap().unwrap() {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// One WebSocket `agent` run; the final `res`.
async fn ws_agent(gw: &Gateway) -> Value {
    let url = gw.origin.replacen("http://", "ws://", 1) + "/";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "connect.challenge");
    let connect = json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "test", "version": "1.0.0", "platform": "linux", "mode": "operator"},
        "role": "operator", "scopes": ["operator.read", "operator.write"], "auth": {}}});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    assert_eq!(recv(&mut ws).await["ok"], true);
    let run = json!({"type": "req", "id": "a1", "method": "agent", "params": {"idempotencyKey": "k1", "message": "hi"}});
    ws.send(Message::text(run.to_string())).await.unwrap();
    loop {
        let frame = recv(&mut ws).await;
        if frame["type"] == "res" && frame["id"] == "a1" && frame["payload"]["status"] != "accepted"
        {
            return frame;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r13_local_only_never_contacts_a_hosted_provider_from_any_surface() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for _ in 0..10 {
        upstream.push(Reply::json(200, ANSWER));
    }

    // The control: without the policy, the hosted primary is tried (and its stand-in counts it).
    let control = stand_in();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hearth.json5"), config(&upstream, "{}")).unwrap();
    let gw = spawn(dir.path(), &control);
    let chat = json!({"model": "anthropic/claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]});
    let (status, provider, _) = post(&gw, "/v1/chat/completions", chat.clone(), &[]).await;
    assert_eq!((status, provider.as_str()), (200, "fake"));
    drop(gw);
    assert!(control.connections() >= 1, "the stand-in saw no hosted attempt");

    // Local only: every door, and not one connection to the stand-in.
    let stand = stand_in();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hearth.json5"), config(&upstream, "{localOnly: true}"))
        .unwrap();
    let gw = spawn(dir.path(), &stand);
    assert!(gw.startup.contains("local only"), "{}", gw.startup);
    assert!(
        !gw.startup.contains("anthropic"),
        "the startup block probed a hosted provider: {}",
        gw.startup
    );
    // Chat, a direct run naming the hosted model: answered by the local fallback.
    let (status, provider, body) = post(&gw, "/v1/chat/completions", chat.clone(), &[]).await;
    assert_eq!((status, provider.as_str()), (200, "fake"), "{body}");
    // Responses and Messages, agent runs.
    let (status, provider, body) =
        post(&gw, "/v1/responses", json!({"model": "hearth", "input": "hi", "user": "ada"}), &[])
            .await;
    assert_eq!((status, provider.as_str()), (200, "fake"), "{body}");
    let (status, provider, body) = post(
        &gw,
        "/v1/messages",
        json!({"model": "hearth", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}),
        &[("anthropic-version", "2023-06-01")],
    )
    .await;
    assert_eq!((status, provider.as_str()), (200, "fake"), "{body}");
    // The strict model override names only a hosted model: refused, naming the policy.
    let (status, _, body) = post(
        &gw,
        "/v1/chat/completions",
        json!({"model": "hearth", "messages": [{"role": "user", "content": "hi"}]}),
        &[("x-hearth-model", "anthropic/claude-sonnet-4-5")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "model_not_allowed", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("local only"), "{body}");
    // The WebSocket control plane.
    let done = ws_agent(&gw).await;
    assert_eq!(done["ok"], true, "{done}");
    assert_eq!(done["payload"]["result"]["meta"]["agentMeta"]["provider"], "fake", "{done}");
    drop(gw);
    // The CLI: an agent turn of its own, and a one-off call naming the hosted model.
    let output =
        hearth(dir.path(), &stand).args(["agent", "--message", "hi", "--json"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(answer.to_string().contains("local hello"), "{answer}");
    let output = hearth(dir.path(), &stand)
        .args([
            "infer",
            "model",
            "run",
            "--model",
            "anthropic/claude-sonnet-4-5",
            "--prompt",
            "hi",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(stand.connections(), 0, "a hosted connection was attempted");
}
