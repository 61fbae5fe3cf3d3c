//! The webhook channel end to end: the real `hearth gateway run` binary, a scripted upstream,
//! and a small HTTP receiver standing in for the bridge that gets the replies. Strangers get a
//! pairing code and nothing else; `hearth pairing approve` (the CLI binary, while the gateway
//! runs) lets them in; replies carry no reasoning or tool-call residue; unsigned, badly signed,
//! stale, replayed, oversized and non-UTF-8 requests are refused and the channel keeps
//! answering; a failing receiver gets retries with one stable key; groups answer only when
//! mentioned. See: #17
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_channels::webhook::{HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign, verify};
use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "webhook-secret-0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    status: u16,
}

impl Delivery {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn text(&self) -> String {
        self.json()["text"].as_str().unwrap().to_owned()
    }
}

/// The bridge's side: records every POST and answers with the scripted statuses (then 200).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    origin: String,
}

impl Receiver {
    async fn start(statuses: &[u16]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver {
            got: Arc::default(),
            statuses: Arc::new(Mutex::new(statuses.iter().rev().copied().collect())),
            origin,
        };
        let shared = receiver.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let head_end = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(k, _)| k == "content-length")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < length {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let status = shared.statuses.lock().unwrap().pop().unwrap_or(200);
                    shared.got.lock().unwrap().push(Delivery { headers, body, status });
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        receiver
    }

    fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the receiver got {} requests, expected {n}: {:#?}", self.got().len(), self.got());
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    upstream: FakeUpstream,
    receiver: Receiver,
    gateway: GatewayProcess,
    http: reqwest::Client,
}

fn hearth(config: &Path, state: &Path) -> Command {
    hearth_testkit::gateway::hearth_command(env!("CARGO_BIN_EXE_hearth"), config, state)
}

/// A gateway with one webhook account (`webhook` holds its extra keys), an upstream answering
/// `answers` messy replies, and a receiver answering `statuses` first.
async fn setup(webhook: &str, answers: usize, statuses: &[u16]) -> Setup {
    let replies =
        (0..answers).map(|i| Reply::chat_with_reasoning(&format!("Visible answer {i}."))).collect();
    setup_with(webhook, replies, statuses).await
}

async fn setup_with(webhook: &str, replies: Vec<Reply>, statuses: &[u16]) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for reply in replies {
        upstream.push(reply);
    }
    let receiver = Receiver::start(statuses).await;
    let text = r#"{
  models: { mode: "replace", providers: {
    up: { baseUrl: "ORIGIN/v1", api: "openai-completions", apiKey: "sk-local",
          models: [{ id: "m", maxTokens: 64, contextWindow: 8192 }] },
  } },
  agents: { defaults: { model: { primary: "up/m" } } },
  channels: { webhook: { secret: "SECRET", outboundUrl: "RECEIVER/replies", WEBHOOK } },
  session: { dmScope: "per-channel-peer" },
}"#
    .replace("ORIGIN", &upstream.origin())
    .replace("SECRET", SECRET)
    .replace("RECEIVER", &receiver.origin)
    .replace("WEBHOOK", webhook);
    let config = dir.path().join("hearth.json5");
    std::fs::write(&config, text).unwrap();
    let state = dir.path().join("state");
    let gateway =
        GatewayProcess::spawn(hearth(&config, &state).args(["gateway", "run", "--port", "0"]))
            .unwrap();
    assert!(
        gateway.wait_for_stderr(
            "channel:   webhook/default POST /channels/webhook/default",
            Duration::from_secs(10)
        ),
        "{}",
        gateway.stderr()
    );
    let http = reqwest::Client::new();
    wait_connected(&gateway).await;
    Setup { _dir: dir, config, state, upstream, receiver, gateway, http }
}

/// The channel connects just after the gateway listens.
async fn wait_connected(gateway: &GatewayProcess) {
    gateway.wait_channels_connected(Duration::from_secs(10)).await.unwrap();
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Setup {
    fn url(&self) -> String {
        format!("{}/channels/webhook/default", self.gateway.origin())
    }

    /// POSTs `body` signed with `secret` at `timestamp`; the status and the JSON answer.
    async fn post_raw(
        &self,
        body: Vec<u8>,
        timestamp: Option<u64>,
        secret: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.post(self.url()).header("content-type", "application/json");
        if let Some(ts) = timestamp {
            request = request.header(HEADER_TIMESTAMP, ts.to_string());
            if let Some(secret) = secret {
                request = request.header(HEADER_SIGNATURE, sign(secret, &ts.to_string(), &body));
            }
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn post(&self, message: Value) -> (u16, Value) {
        self.post_raw(message.to_string().into_bytes(), Some(now_secs()), Some(SECRET)).await
    }

    fn model_calls(&self) -> usize {
        self.upstream.requests().iter().filter(|r| r.method == "POST").count()
    }

    /// Lets the gateway work on what it was sent, then checks nothing more went out.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
}

fn dm(id: &str, sender: &str, text: &str) -> Value {
    json!({"id": id, "sender": sender, "text": text})
}

/// Every outbound request is signed over its timestamp and body, and names its key.
fn check_signed(delivery: &Delivery) {
    let ts = delivery.header(HEADER_TIMESTAMP).unwrap();
    let sig = delivery.header(HEADER_SIGNATURE).unwrap();
    verify(SECRET, Some(ts), Some(sig), &delivery.body, SystemTime::now(), 60).unwrap();
    assert_eq!(delivery.header(HEADER_DELIVERY), delivery.json()["key"].as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_pairs_through_the_cli_then_gets_clean_answers() {
    let s = setup(r#"groups: { "room-1": {} }"#, 4, &[]).await;

    // A stranger: a pairing code goes out, the model is never called.
    let (status, answer) = s.post(dm("m1", "alice", "hello, who are you?")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["id"], "m1");
    let got = s.receiver.wait_for(1).await;
    let pairing = got[0].json();
    check_signed(&got[0]);
    assert_eq!(pairing["conversation"], "alice");
    assert_eq!(pairing["key"], "m1:pairing");
    let text = pairing["text"].as_str().unwrap();
    let code: String = text.split("pairing code: ").nth(1).unwrap().chars().take(8).collect();
    assert_eq!(code.len(), 8, "{text}");
    assert!(
        code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && !code.contains(['0', 'O', '1', 'I']),
        "{code}"
    );
    assert!(text.contains(&format!("hearth pairing approve webhook {code}")), "{text}");
    // Asking again within the hour: no second code, still no model call.
    assert_eq!(s.post(dm("m2", "alice", "hello?")).await.0, 202);
    s.settle().await;
    assert_eq!(s.receiver.got().len(), 1);
    assert_eq!(s.model_calls(), 0, "a stranger's message is never processed");

    // `hearth pairing list` shows the request; a wrong code is exit 1; the right one exit 0.
    let list = hearth(&s.config, &s.state)
        .args(["pairing", "list", "webhook", "--json"])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed["requests"][0]["id"], "alice");
    assert_eq!(listed["requests"][0]["code"], code.as_str());
    let wrong = hearth(&s.config, &s.state)
        .args(["pairing", "approve", "webhook", "ZZZZ2222"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("no pending request has the code ZZZZ2222")
    );
    let approve = hearth(&s.config, &s.state)
        .args(["pairing", "approve", "webhook", &code.to_ascii_lowercase()])
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", String::from_utf8_lossy(&approve.stderr));
    assert!(String::from_utf8_lossy(&approve.stdout).contains("Approved alice"));
    assert!(s.state.join("credentials/webhook-allowFrom.json").exists());

    // Now alice is answered: one model call, the text clean of reasoning and tool-call residue.
    assert_eq!(s.post(dm("m3", "alice", "what is 2+2?")).await.0, 202);
    let got = s.receiver.wait_for(2).await;
    let reply = &got[1];
    check_signed(reply);
    assert_eq!(reply.json()["inReplyTo"], "m3");
    assert_eq!(reply.json()["key"], "m3:0");
    let text = reply.text();
    assert!(text.contains("Visible answer 0."), "{text}");
    for residue in ["SECRET-REASONING", "SECRET-THINK", "<think>", "</think>", "tool_call", "rm\""]
    {
        assert!(!text.contains(residue), "{residue} leaked into {text:?}");
    }
    assert_eq!(s.model_calls(), 1);
    // The model saw alice's message fenced as external content.
    let call = s.upstream.requests().into_iter().find(|r| r.method == "POST").unwrap();
    let sent = String::from_utf8_lossy(&call.body);
    assert!(sent.contains("EXTERNAL_UNTRUSTED_CONTENT") && sent.contains("what is 2+2?"), "{sent}");

    // A replayed id is refused and never processed twice.
    let (status, answer) = s.post(dm("m3", "alice", "what is 2+2?")).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "duplicate");
    s.settle().await;
    assert_eq!(s.model_calls(), 1);
    assert_eq!(s.receiver.got().len(), 2);

    // A group: without a mention nothing happens; with one it is answered in the group.
    let group = |id: &str, mentioned: bool| json!({"id": id, "sender": "carol", "conversation": "room-1", "kind": "group", "text": "hey bot", "mentioned": mentioned});
    assert_eq!(s.post(group("g1", false)).await.0, 202);
    s.settle().await;
    assert_eq!(s.model_calls(), 1, "an unmentioned group message is not answered");
    assert_eq!(s.post(group("g2", true)).await.0, 202);
    let got = s.receiver.wait_for(3).await;
    assert_eq!(got[2].json()["conversation"], "room-1");
    assert_eq!(got[2].json()["key"], "g2:0");
    assert!(got[2].text().contains("Visible answer 1."));
    // A group not listed under `groups` is dropped even with a mention.
    let other = json!({"id": "g3", "sender": "carol", "conversation": "room-2", "kind": "group", "text": "hi", "mentioned": true});
    assert_eq!(s.post(other).await.0, 202);
    s.settle().await;
    assert_eq!(s.model_calls(), 2);
    assert_eq!(s.receiver.got().len(), 3);
    assert!(!s.gateway.stderr().contains(SECRET), "the secret never reaches the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_are_refused_and_the_channel_keeps_answering() {
    let s = setup(r#"dmPolicy: "allowlist", allowFrom: ["bob"]"#, 2, &[]).await;
    let good = dm("ok-1", "bob", "hi").to_string().into_bytes();
    let now = now_secs();
    let refused = |(status, answer): (u16, Value), want: u16, code: &str| {
        assert_eq!(status, want, "{answer}");
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
    };
    refused(s.post_raw(good.clone(), None, None).await, 401, "missing_timestamp");
    refused(s.post_raw(good.clone(), Some(now), None).await, 401, "missing_signature");
    refused(
        s.post_raw(good.clone(), Some(now), Some("another-secret-entirely")).await,
        401,
        "bad_signature",
    );
    refused(s.post_raw(good.clone(), Some(now - 3600), Some(SECRET)).await, 401, "stale_timestamp");
    refused(s.post_raw(good.clone(), Some(now + 3600), Some(SECRET)).await, 401, "stale_timestamp");
    // A signed body that is not UTF-8, or not the webhook's JSON.
    refused(
        s.post_raw(b"\xff\xfe\x00{\"id\":1}".to_vec(), Some(now), Some(SECRET)).await,
        400,
        "not_utf8",
    );
    refused(s.post_raw(b"{\"id\": 1}".to_vec(), Some(now), Some(SECRET)).await, 400, "bad_body");
    // 2 MiB: refused before it is read further.
    let mut huge = br#"{"id":"big","sender":"bob","text":""#.to_vec();
    huge.resize(2 * 1024 * 1024, b'a');
    huge.extend_from_slice(b"\"}");
    let (status, _) = s.post_raw(huge, Some(now), Some(SECRET)).await;
    assert_eq!(status, 413);
    // An account that does not exist.
    let response = s
        .http
        .post(format!("{}/channels/webhook/nope", s.gateway.origin()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    s.settle().await;
    assert_eq!(s.model_calls(), 0);
    assert!(s.receiver.got().is_empty());

    // A stranger under `allowlist` is dropped silently.
    assert_eq!(s.post(dm("x-1", "mallory", "let me in")).await.0, 202);
    s.settle().await;
    assert!(s.receiver.got().is_empty());
    assert_eq!(s.model_calls(), 0);

    // The channel still answers the next good message.
    let (status, answer) = s.post_raw(good, Some(now_secs()), Some(SECRET)).await;
    assert_eq!(status, 202, "{answer}");
    let got = s.receiver.wait_for(1).await;
    assert!(got[0].text().contains("Visible answer 0."));
    assert_eq!(got[0].json()["conversation"], "bob");

    // Text over 64 KiB from an allowed sender: a short notice, no turn.
    assert_eq!(s.post(dm("ok-2", "bob", &"x".repeat(100 * 1024))).await.0, 202);
    let got = s.receiver.wait_for(2).await;
    assert!(got[1].text().contains("larger than 64 KiB"), "{}", got[1].text());
    assert_eq!(got[1].json()["key"], "ok-2:notice");
    assert_eq!(s.model_calls(), 1);

    // Health: /ready's detail and /metrics. A delivery is counted once the receiver's answer
    // is read, a moment after the receiver recorded it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ready = loop {
        let ready = s.gateway.ready().await.unwrap();
        if ready["channels"][0]["outboundTotal"] == 2 || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let row = &ready["channels"][0];
    assert_eq!(
        (row["channel"].as_str(), row["account"].as_str(), row["connected"].as_bool()),
        (Some("webhook"), Some("default"), Some(true)),
        "{ready}"
    );
    assert_eq!(row["inboundTotal"], 3, "{ready}");
    assert_eq!(row["outboundTotal"], 2, "{ready}");
    let metrics = s
        .http
        .get(format!("{}/metrics", s.gateway.origin()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hearth_channel_connected{channel=\"webhook\",account=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "hearth_channel_inbound_messages_total{channel=\"webhook\",account=\"default\"} 3"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "hearth_channel_outbound_messages_total{channel=\"webhook\",account=\"default\"} 2"
        ),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    // `hearth channels status` asks the running gateway.
    let out = hearth(&s.config, &s.state).args(["channels", "status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["channels"][0]["connected"], true);
    assert_eq!(status["channels"][0]["dmPolicy"], "allowlist");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_gets_retries_with_one_key_and_one_delivery() {
    let s = setup(r#"allowFrom: ["dana"]"#, 1, &[500, 500]).await;
    assert_eq!(s.post(dm("r-1", "dana", "are you there?")).await.0, 202);
    let got = s.receiver.wait_for(3).await;
    s.settle().await;
    let got_now = s.receiver.got();
    assert_eq!(got_now.len(), 3, "no more sends after the delivery: {got_now:#?}");
    assert_eq!(got.iter().map(|d| d.status).collect::<Vec<_>>(), [500, 500, 200]);
    for d in &got {
        check_signed(d);
        assert_eq!(d.header(HEADER_DELIVERY), Some("r-1:0"));
        assert!(d.text().contains("Visible answer 0."));
    }
    assert_eq!(s.model_calls(), 1, "a retried send never reruns the turn");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_reply_goes_out_in_pieces_within_the_limit_each_with_its_key() {
    let paragraphs: Vec<String> = (0..6)
        .map(|i| format!("Paragraph {i} says a few words about the matter at hand."))
        .collect();
    let answer = format!("{}\n\n```rust\nfn main() {{}}\n```", paragraphs.join("\n\n"));
    let s = setup_with(
        r#"allowFrom: ["erin"], textChunkLimit: 120"#,
        vec![Reply::chat_with_reasoning(&answer)],
        &[],
    )
    .await;
    assert_eq!(s.post(dm("long-1", "erin", "tell me a lot")).await.0, 202);
    let first = s.receiver.wait_for(1).await;
    assert!(first[0].text().starts_with("Paragraph 0"), "{}", first[0].text());
    // Pieces go one after another: wait until the fenced code arrived.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.receiver.got().iter().any(|d| d.text().contains("fn main")) {
        assert!(Instant::now() < deadline, "{:#?}", s.receiver.got());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.settle().await;
    let got = s.receiver.got();
    assert!(got.len() >= 3, "{got:#?}");
    for (idx, d) in got.iter().enumerate() {
        check_signed(d);
        assert_eq!(d.json()["key"], format!("long-1:{idx}"));
        assert!(d.text().chars().count() <= 120, "{}", d.text());
    }
    let joined: Vec<String> = got.iter().map(Delivery::text).collect();
    for p in &paragraphs {
        assert!(joined.iter().any(|t| t.contains(p.as_str())), "{p} lost: {joined:#?}");
    }
    assert!(joined.iter().any(|t| t.contains("```rust\nfn main() {}\n```")), "{joined:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_replayed_after_a_gateway_crash_is_not_answered_again() {
    let mut s = setup(r#"allowFrom: ["frank"]"#, 2, &[]).await;
    assert_eq!(s.post(dm("once-1", "frank", "hi")).await.0, 202);
    s.receiver.wait_for(1).await;
    // kill -9, and a new gateway on the same state directory.
    s.gateway.child.kill().unwrap();
    s.gateway.child.wait().unwrap();
    s.gateway =
        GatewayProcess::spawn(hearth(&s.config, &s.state).args(["gateway", "run", "--port", "0"]))
            .unwrap();
    wait_connected(&s.gateway).await;
    // The new process has no memory of the id, its journal does: accepted, never processed.
    let (status, answer) = s.post(dm("once-1", "frank", "hi")).await;
    assert_eq!(status, 202, "{answer}");
    s.settle().await;
    assert_eq!(s.model_calls(), 1);
    assert_eq!(s.receiver.got().len(), 1);
    // A new id is answered as usual.
    assert_eq!(s.post(dm("once-2", "frank", "again")).await.0, 202);
    let got = s.receiver.wait_for(2).await;
    assert!(got[1].text().contains("Visible answer 1."));
}

#[test]
fn config_get_masks_channel_secrets_and_open_is_announced_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.json5");
    std::fs::write(
        &config,
        r#"{ channels: {
            webhook: { secret: "hook-secret-value-123", dmPolicy: "open", allowFrom: ["*"] },
            telegram: { botToken: "123456:telegram-token-abc" },
            matrix: { homeserver: "http://127.0.0.1:8008", accessToken: "syt_matrix_token_xyz" } } }"#,
    )
    .unwrap();
    let state = dir.path().join("state");
    let out = hearth(&config, &state).args(["config", "get", "channels"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    for secret in ["hook-secret-value-123", "telegram-token-abc", "syt_matrix_token_xyz"] {
        assert!(!shown.contains(secret), "{secret} shown by config get: {shown}");
    }
    assert!(
        shown.contains("\"secret\": \"***\"") && shown.contains("\"botToken\": \"***\""),
        "{shown}"
    );
    let gateway =
        GatewayProcess::spawn(hearth(&config, &state).args(["gateway", "run", "--port", "0"]))
            .unwrap();
    assert!(
        gateway.wait_for_stderr(
            "WARNING:   webhook/default has dmPolicy \"open\"",
            Duration::from_secs(10)
        ),
        "{}",
        gateway.stderr()
    );
    // Telegram starts and tries the real Bot API, which this machine cannot reach: its
    // errors are logged, never its token.
    assert!(
        gateway.wait_for_stderr("channel:   telegram/default starting", Duration::from_secs(5)),
        "{}",
        gateway.stderr()
    );
    std::thread::sleep(Duration::from_secs(1));
    for secret in ["hook-secret-value-123", "telegram-token-abc", "syt_matrix_token_xyz"] {
        assert!(!gateway.stderr().contains(secret), "{secret} in the gateway log");
    }
}
