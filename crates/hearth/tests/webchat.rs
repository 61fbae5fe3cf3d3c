//! The chat page in a real browser: Debian's headless Chromium, driven over the DevTools
//! protocol, against `hearth gateway run` (its own binary: a browser start takes a second or
//! two). The page authenticates with the gateway token, streams a reply from a scripted
//! reasoning upstream token by token, keeps reasoning under its toggle and out of the reply,
//! and shows markup in model output as text. Screenshots at desktop and phone width go to
//! `target/webchat/`. See: #16
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use hearth_testkit::{End, FakeUpstream, GatewayProcess, Reply, Step};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "page-token-0123456789";

/// A llama-server-shaped stream with reasoning first, then the answer in pieces `pause` apart.
fn reasoning_stream(answer: &[&str], pause: Duration) -> Reply {
    let chunk = |delta: Value| {
        let c = json!({"id": "chatcmpl-w", "object": "chat.completion.chunk", "created": 1,
            "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
        format!("data: {c}\n\n").into_bytes()
    };
    let mut steps = vec![
        Step::Bytes(chunk(json!({"role": "assistant", "content": null}))),
        Step::Bytes(chunk(json!({"reasoning_content": "the user greets me; SECRET-THOUGHT"}))),
    ];
    for piece in answer {
        steps.push(Step::Bytes(chunk(json!({"content": piece}))));
        steps.push(Step::Pause(pause));
    }
    let done = json!({"id": "chatcmpl-w", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}});
    steps.push(Step::Bytes(format!("data: {done}\n\ndata: [DONE]\n\n").into_bytes()));
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        steps,
        end: End::Complete,
    }
}

/// Headless Chromium with a fresh profile; killed when dropped.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Browser {
    fn start() -> Browser {
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| panic!("Debian's chromium is required (apt-get install chromium)"));
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port");
            std::thread::sleep(Duration::from_millis(50));
        };
        Browser { child, _profile: profile, port }
    }

    /// The first page's DevTools session.
    async fn page(&self) -> Page {
        let list: Value = reqwest::get(format!("http://127.0.0.1:{}/json/list", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap()
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Page { ws, next: 0 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
}

impl Page {
    /// One DevTools command; its `result`.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let frame = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(frame.to_string())).await.unwrap();
        loop {
            let Message::Text(text) = self.ws.next().await.unwrap().unwrap() else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expression` is true (an expression that throws, as while the page loads,
    /// is not yet true).
    async fn until(&mut self, expression: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let guarded =
            format!("(() => {{ try {{ return !!({expression}); }} catch {{ return false; }} }})()");
        while self.eval(&guarded).await != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn screenshot(&mut self, width: u32, height: u32, path: &Path) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        )
        .await;
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// `hearth gateway run` on `config`, any free port, state under `dir`, none of the caller's
/// token, log filter or keys.
fn spawn_gateway(config: &Path, dir: &Path) -> GatewayProcess {
    GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(config)
            .args(["gateway", "run", "--port", "0"])
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env_remove("RUST_LOG")
            .env_remove("HOSTED_KEY")
            .env("HEARTH_STATE_DIR", dir.join("state")),
    )
    .unwrap()
}

fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/webchat");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_chats_streams_folds_reasoning_and_shows_markup_as_text() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let up = FakeUpstream::start_calls_only().await.unwrap();
    up.push(reasoning_stream(&["Hello", " there,", " friend", "!"], Duration::from_millis(300)));
    up.push(reasoning_stream(
        &["<img src=x onerror=\"window.pwned=1\">", "<script>window.pwned=2</script>"],
        Duration::from_millis(10),
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{gateway: {{auth: {{mode: "token", token: "{TOKEN}"}}}},
              models: {{mode: "replace", providers: {{
                local: {{baseUrl: "{}/v1", api: "openai-completions",
                  models: [{{id: "m", reasoning: true, cost: {{input: 1000, output: 1000}}}}]}}}}}},
              agents: {{defaults: {{model: "local/m"}}}}}}"#,
            up.origin()
        ),
    )
    .unwrap();
    let gateway = spawn_gateway(&config, dir.path());
    let browser = Browser::start();
    let mut page = browser.page().await;
    page.call("Page.enable", json!({})).await;
    page.call("Page.navigate", json!({"url": format!("{}/", gateway.origin())})).await;

    // The token form first: the API refuses the page without it.
    page.until(
        "!!document.getElementById('auth') && !document.getElementById('auth').hidden",
        "the token form",
    )
    .await;
    page.eval(&format!(
        "document.getElementById('token').value = '{TOKEN}'; document.getElementById('auth').requestSubmit(); true"
    ))
    .await;
    page.until("document.getElementById('model').options.length > 0", "the model list").await;
    let shown = page
        .eval("[getComputedStyle(document.getElementById('auth')).display, getComputedStyle(document.getElementById('composer')).display]")
        .await;
    assert_eq!(
        shown,
        json!(["none", "flex"]),
        "connected: the token form goes, the composer shows"
    );
    let models = page.eval("[...document.getElementById('model').options].map(o => o.value)").await;
    assert!(models.as_array().unwrap().iter().any(|m| m == "local/m"), "{models}");
    page.eval("document.getElementById('model').value = 'local/m'; true").await;

    // Enter sends; the reply grows in the DOM while it streams.
    page.eval(
        "const i = document.getElementById('input'); i.value = 'hi';
         i.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true})); true",
    )
    .await;
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = page
            .eval("(document.querySelector('.turn.assistant .reply') || {}).textContent || ''")
            .await;
        let text = text.as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&text) {
            seen.push(text.clone());
        }
        if text == "Hello there, friend!" || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.last().map(String::as_str), Some("Hello there, friend!"), "{seen:?}");
    assert!(
        seen.iter().any(|t| !t.is_empty() && t.len() < "Hello there, friend!".len()),
        "the reply was seen growing: {seen:?}"
    );
    // Reasoning: under the toggle, closed, never in the reply.
    let reasoning = page
        .eval(
            "(() => { const d = document.querySelector('.turn.assistant details.reasoning');
               return {open: d.open, hidden: d.hidden, text: d.textContent}; })()",
        )
        .await;
    assert_eq!(reasoning["open"], false, "{reasoning}");
    assert_eq!(reasoning["hidden"], false, "{reasoning}");
    assert!(reasoning["text"].as_str().unwrap().contains("SECRET-THOUGHT"), "{reasoning}");
    let reply = page.eval("document.querySelector('.turn.assistant .reply').textContent").await;
    assert!(!reply.as_str().unwrap().contains("SECRET-THOUGHT"));
    page.until(
        "document.querySelector('.turn.assistant .meta').textContent.includes('answered by local/m')",
        "who answered",
    )
    .await;
    // Its cost: 9 + 4 tokens at the catalog's $1000 per million each.
    let meta = page.eval("document.querySelector('.turn.assistant .meta').textContent").await;
    assert!(meta.as_str().unwrap().contains("$0.0130"), "{meta}");
    let shots = shots_dir();
    page.screenshot(1280, 800, &shots.join("chat-desktop.png")).await;
    page.screenshot(390, 844, &shots.join("chat-phone.png")).await;

    // Markup in a reply is text: no element made, no script run.
    page.eval(
        "document.getElementById('input').value = 'show me markup';
         document.getElementById('composer').requestSubmit(); true",
    )
    .await;
    page.until("document.querySelectorAll('.turn.assistant').length === 2 && document.querySelectorAll('.turn.assistant')[1].querySelector('.meta').textContent.length > 0", "the second reply").await;
    let injected = page
        .eval(
            "(() => { const r = document.querySelectorAll('.turn.assistant')[1].querySelector('.reply');
               return {imgs: document.querySelectorAll('main img, main script').length,
                       pwned: window.pwned === undefined ? null : window.pwned, text: r.textContent}; })()",
        )
        .await;
    assert_eq!(injected["imgs"], 0, "{injected}");
    assert_eq!(injected["pwned"], Value::Null, "{injected}");
    assert!(injected["text"].as_str().unwrap().contains("<img src=x onerror="), "{injected}");

    // What went up: the whole conversation, with the token the user gave the page.
    let posts: Vec<_> = up.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2);
    let second = posts[1].json();
    assert_eq!(second["messages"].as_array().unwrap().len(), 3, "{second}");
    assert_eq!(second["messages"][1]["content"], "Hello there, friend!");

    // The default agent: its turn lands in a session, which the list shows after a reload and
    // which opens with its history.
    up.push(reasoning_stream(
        &["**Remembered.**", " See `lighthouse`."],
        Duration::from_millis(10),
    ));
    page.eval(
        "document.getElementById('new').click();
         document.getElementById('model').value = 'hearth';
         document.getElementById('input').value = 'remember the lighthouse';
         document.getElementById('composer').requestSubmit(); true",
    )
    .await;
    page.until(
        "[...document.querySelectorAll('.turn.assistant .reply')].some(r => r.textContent === 'Remembered. See lighthouse.')",
        "the agent's reply",
    )
    .await;
    // Markdown rendered as elements the page makes: bold and code, no markup from the model.
    let md = page
        .eval(
            "(() => { const r = [...document.querySelectorAll('.turn.assistant .reply')].pop();
               return [r.querySelector('strong')?.textContent, r.querySelector('code')?.textContent]; })()",
        )
        .await;
    assert_eq!(md, json!(["Remembered.", "lighthouse"]));
    // The turn's cost (9 + 4 tokens at $1000 per million each), from the session's totals.
    page.until(
        "[...document.querySelectorAll('.turn.assistant .meta')].pop().textContent.includes('$0.0130')",
        "the turn's cost",
    )
    .await;
    page.until(
        "document.querySelectorAll('#session-list button[data-key]').length === 1",
        "the session in the list",
    )
    .await;
    page.call("Page.reload", json!({})).await;
    page.until(
        "document.querySelectorAll('#session-list button[data-key]').length === 1",
        "the list after a reload",
    )
    .await;
    let key =
        page.eval("document.querySelector('#session-list button[data-key]').dataset.key").await;
    assert!(key.as_str().unwrap().starts_with("agent:main:web-"), "{key}");
    assert_eq!(page.eval("document.querySelectorAll('.turn').length").await, 0, "a fresh page");
    page.eval("document.querySelector('#session-list button[data-key]').click(); true").await;
    page.until(
        "[...document.querySelectorAll('.turn.user .text')].some(t => t.textContent === 'remember the lighthouse')",
        "the session's history",
    )
    .await;
    assert_eq!(page.eval("document.getElementById('model').value").await, "hearth/main");
    page.screenshot(1280, 800, &shots.join("sessions-desktop.png")).await;
    // Going on in it: the agent sends the session's history up with the new message.
    up.push(reasoning_stream(&["The lighthouse."], Duration::from_millis(10)));
    page.eval(
        "document.getElementById('input').value = 'what did I ask?';
         document.getElementById('composer').requestSubmit(); true",
    )
    .await;
    page.until(
        "[...document.querySelectorAll('.turn.assistant .reply')].some(r => r.textContent === 'The lighthouse.')",
        "the reply in the reopened session",
    )
    .await;
    let last = up.requests().into_iter().rfind(|r| r.method == "POST").unwrap().json();
    let sent = last["messages"].to_string();
    assert!(sent.contains("remember the lighthouse") && sent.contains("what did I ask?"), "{sent}");
    assert_eq!(
        page.eval("document.querySelectorAll('#session-list button[data-key]').length").await,
        1
    );

    // Compact from the list: the older turn is summarized (one summary call upstream).
    up.push(Reply::json(
        200,
        r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"The user asked to remember a lighthouse."},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39}}"#,
    ));
    page.eval("document.querySelector('#session-list button[data-action=compact]').click(); true")
        .await;
    page.until(
        "document.getElementById('status').textContent.includes('messages summarized')",
        "the compaction",
    )
    .await;
    // Reset from the list: a new generation under the same key, its history empty.
    page.eval("document.querySelector('#session-list button[data-action=reset]').click(); true")
        .await;
    page.until("document.getElementById('status').textContent.endsWith(': reset')", "the reset")
        .await;
    page.until("document.querySelectorAll('.turn').length === 0", "the emptied session").await;
}

/// The page is served with a policy that lets no inline or foreign script run, and can be
/// moved (`gateway.controlUi.basePath`) or turned off (`enabled: false`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_where_configured_and_only_there() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let run = |ui: &str| {
        let config = dir.path().join(format!("hearth-{}.json5", ui.len()));
        std::fs::write(
            &config,
            format!(r#"{{gateway: {{auth: {{mode: "none"}}, controlUi: {ui}}}, models: {{mode: "replace", providers: {{}}}}}}"#),
        )
        .unwrap();
        spawn_gateway(&config, dir.path())
    };
    let get = async |url: String| {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let csp = r
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, csp, r.text().await.unwrap())
    };
    let on = run("{}");
    let (status, csp, body) = get(format!("{}/", on.origin())).await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>hearth</title>"));
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(get(format!("{}/app.js", on.origin())).await.0, 200);
    drop(on);
    let moved = run(r#"{basePath: "/chat"}"#);
    assert_eq!(get(format!("{}/", moved.origin())).await.0, 404);
    assert_eq!(get(format!("{}/chat", moved.origin())).await.0, 308);
    assert_eq!(get(format!("{}/chat/", moved.origin())).await.0, 200);
    assert_eq!(get(format!("{}/chat/app.css", moved.origin())).await.0, 200);
    drop(moved);
    let off = run("{enabled: false}");
    assert_eq!(get(format!("{}/", off.origin())).await.0, 404);
}

/// The status view and model switching against the real llama-server of the test bed beside a
/// scripted upstream: the page chats with the real model, switches to the other, and the status
/// view shows the llama-server reachable with its served window, then not reachable (with how
/// to start it) once the server is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_view_sees_a_real_server_go_away() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let llama = hearth_testkit::LlamaServer::start(1024)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let up = FakeUpstream::start_calls_only().await.unwrap();
    up.push(reasoning_stream(&["from the scripted one"], Duration::from_millis(10)));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{gateway: {{auth: {{mode: "none"}}}},
              models: {{mode: "replace", providers: {{
                llamacpp: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "tiny", maxTokens: 8, contextWindow: 1024}}]}},
                local: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m", reasoning: true}}]}}}}}},
              agents: {{defaults: {{model: {{primary: "llamacpp/tiny", fallbacks: ["local/m"]}}}}}}}}"#,
            llama.origin(),
            up.origin()
        ),
    )
    .unwrap();
    let gateway = spawn_gateway(&config, dir.path());
    let browser = Browser::start();
    let mut page = browser.page().await;
    page.call("Page.navigate", json!({"url": format!("{}/", gateway.origin())})).await;
    page.until("document.getElementById('model').options.length > 0", "the model list").await;

    // The real model answers; then the other one, picked in the list.
    page.eval(
        "document.getElementById('model').value = 'llamacpp/tiny';
         document.getElementById('input').value = 'hello';
         document.getElementById('composer').requestSubmit(); true",
    )
    .await;
    page.until(
        "(document.querySelector('.turn.assistant .meta') || {}).textContent?.includes('answered by llamacpp/tiny')",
        "the real server's answer",
    )
    .await;
    page.eval(
        "document.getElementById('model').value = 'local/m';
         document.getElementById('input').value = 'and you?';
         document.getElementById('composer').requestSubmit(); true",
    )
    .await;
    page.until(
        "[...document.querySelectorAll('.turn.assistant .reply')].some(r => r.textContent === 'from the scripted one')",
        "the switched model's answer",
    )
    .await;

    // Status: reachable with its window, then gone.
    page.eval("document.getElementById('status-toggle').click(); true").await;
    let card = "document.querySelector('.provider[data-provider=\"llamacpp\"]')";
    page.until(
        &format!("!!{card} && {card}.querySelector('.reach').textContent === 'reachable'"),
        "llama-server reachable",
    )
    .await;
    let row = page.eval(&format!("{card}.querySelector('table').textContent")).await;
    assert!(row.as_str().unwrap().contains("1024"), "the served window: {row}");
    page.screenshot(1280, 800, &shots_dir().join("status-desktop.png")).await;
    page.screenshot(390, 844, &shots_dir().join("status-phone.png")).await;
    drop(llama);
    page.until(
        &format!("{card}.querySelector('.reach').textContent === 'not reachable'"),
        "llama-server not reachable after it stopped",
    )
    .await;
    let hint = page.eval(&format!("{card}.querySelector('.notice').textContent")).await;
    assert!(hint.as_str().unwrap().contains("start llama.cpp"), "{hint}");
}

/// `GET /hearth/status`, the status view's source: authenticated like the API; a local server
/// that does not answer carries its start hint, a `localService` not started yet says so, and a
/// hosted provider is not contacted (its key state only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_endpoint_reports_without_contacting_hosted_providers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{gateway: {{auth: {{mode: "token", token: "{TOKEN}"}}}},
              models: {{mode: "replace", providers: {{
                llamacpp: {{baseUrl: "http://127.0.0.1:9/v1", api: "openai-completions", models: [{{id: "tiny"}}],
                  localService: {{command: "/bin/sleep", args: ["60"], healthUrl: "http://127.0.0.1:9/health"}}}},
                hosted: {{baseUrl: "https://api.example.invalid/v1", api: "openai-completions", apiKey: "${{HOSTED_KEY}}",
                  models: [{{id: "big"}}]}}}}}},
              agents: {{defaults: {{model: {{primary: "llamacpp/tiny", fallbacks: ["hosted/big"]}}}}}}}}"#
        ),
    )
    .unwrap();
    let gateway = spawn_gateway(&config, dir.path());
    let client = reqwest::Client::new();
    let url = format!("{}/hearth/status?refresh=1", gateway.origin());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let status: Value =
        client.get(&url).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["chain"], json!(["llamacpp/tiny", "hosted/big"]), "{status}");
    let provider = |id: &str| {
        status["providers"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap().clone()
    };
    let local = provider("llamacpp");
    assert_eq!(local["reachable"], false, "{local}");
    assert!(local["hint"].as_str().unwrap().contains("start llama.cpp"), "{local}");
    assert_eq!(local["localService"]["running"], false, "{local}");
    let hosted = provider("hosted");
    assert!(hosted.get("reachable").is_none(), "a hosted provider is not probed: {hosted}");
    assert_eq!(hosted["key"]["state"], "missing");
    assert!(hosted["key"]["problem"].as_str().unwrap().contains("HOSTED_KEY"), "{hosted}");
}
