//! The Telegram channel end to end: the real `hearth gateway run` binary against the local Bot
//! API server (`hearth_testkit::telegram::BotApi`, which follows the documented shapes; not
//! Telegram itself) and a scripted reasoning model. A stranger gets only a pairing code until
//! `hearth pairing approve telegram` (the CLI, while the gateway runs); replies carry final text
//! only; a reply whose first sends fail (500, then 429 with `retry_after`) is posted exactly
//! once; a group is answered only when the bot is mentioned. See: #17
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::telegram::{BotApi, Fault, Message, Sent, User};
use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};

const TOKEN: &str = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz";

fn hearth(config: &Path, state: &Path) -> Command {
    hearth_testkit::gateway::hearth_command(env!("CARGO_BIN_EXE_hearth"), config, state)
}

struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    api: BotApi,
    upstream: FakeUpstream,
    gateway: GatewayProcess,
}

async fn setup() -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let api = BotApi::start(TOKEN, "hearth_bot").await.unwrap();
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let text = format!(
        r#"{{
  models: {{ mode: "replace", providers: {{
    up: {{ baseUrl: "{}/v1", api: "openai-completions", models: [{{ id: "m", reasoning: true }}] }},
  }} }},
  agents: {{ defaults: {{ model: {{ primary: "up/m" }} }} }},
  channels: {{ telegram: {{
    botToken: "{TOKEN}",
    apiRoot: "{}",
    groupPolicy: "open",
    groups: {{ "*": {{ requireMention: true }} }},
  }} }},
  session: {{ dmScope: "per-channel-peer" }},
}}"#,
        upstream.origin(),
        api.api_root()
    );
    let config = dir.path().join("hearth.json5");
    std::fs::write(&config, text).unwrap();
    let state = dir.path().join("state");
    let gateway =
        GatewayProcess::spawn(hearth(&config, &state).args(["gateway", "run", "--port", "0"]))
            .unwrap();
    gateway.wait_channels_connected(Duration::from_secs(20)).await.unwrap();
    Setup { _dir: dir, config, state, api, upstream, gateway }
}

impl Setup {
    /// Waits until the bot sent at least `n` messages.
    async fn wait_sent(&self, n: usize) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let sent = self.api.sent();
            if sent.len() >= n {
                return sent;
            }
            assert!(
                Instant::now() < deadline,
                "the bot sent {} messages, expected {n}: {sent:?}\n{}",
                sent.len(),
                self.gateway.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_final_text_and_retries_through_the_gateway() {
    let s = setup().await;
    let alice = User::new(4242, "Alice").username("alice");

    // A stranger: only the pairing code goes out; the model is not asked.
    s.api.push(Message::private(alice.clone()).text("hi there"));
    let sent = s.wait_sent(1).await;
    assert_eq!(sent[0].chat_id, 4242);
    assert!(sent[0].text.contains("hearth pairing approve telegram"), "{sent:?}");
    let at = sent[0].text.find("pairing code: ").unwrap() + "pairing code: ".len();
    let code: String = sent[0].text[at..].chars().take(8).collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(s.api.sent().len(), 1, "nothing but the code");
    assert!(
        !s.upstream.requests().iter().any(|r| r.path.ends_with("/chat/completions")),
        "a stranger's message never reaches the model"
    );

    let approved = hearth(&s.config, &s.state)
        .args(["pairing", "approve", "telegram", &code])
        .output()
        .unwrap();
    assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));

    // Approved: final text only; while the model takes its time (4.5 s here) the typing
    // indicator is renewed (Telegram's lasts about 5 s).
    s.upstream.push(
        Reply::chat_with_reasoning("Hello Alice.").headers_after(Duration::from_millis(4500)),
    );
    s.api.push(Message::private(alice.clone()).text("hello again"));
    let sent = s.wait_sent(2).await;
    assert_eq!(sent[1].text, "Hello Alice.", "{sent:?}");
    let typing = s.api.actions().iter().filter(|(chat, a)| *chat == 4242 && a == "typing").count();
    assert!(typing >= 2, "typing shown and renewed during a slow turn: {typing}");

    // The next reply's first two sends fail (500, then 429 retry_after 1): posted once.
    s.api.fail_next("sendMessage", 1, Fault::Internal);
    s.api.fail_next("sendMessage", 1, Fault::TooManyRequests { retry_after: 1 });
    s.upstream.push(Reply::chat_with_reasoning("Retried answer."));
    s.api.push(Message::private(alice.clone()).text("third"));
    let sent = s.wait_sent(3).await;
    assert_eq!(sent[2].text, "Retried answer.");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = s.api.sent();
    assert_eq!(sent.len(), 3, "no duplicate: {sent:?}");

    // A group: not mentioned, no answer; mentioned, one answer.
    s.api.push(Message::group(-100_777, "Kitchen", alice.clone()).text("anyone?"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.api.sent().len(), 3, "not mentioned: no reply");
    s.upstream.push(Reply::chat_with_reasoning("Group answer."));
    s.api
        .push(Message::group(-100_777, "Kitchen", alice.clone()).mention("hearth_bot").text(" hi"));
    let sent = s.wait_sent(4).await;
    assert_eq!(sent[3].chat_id, -100_777);
    assert_eq!(sent[3].text, "Group answer.");
    for m in s.api.sent() {
        assert!(!m.text.contains("SECRET") && !m.text.contains("<tool_call>"), "{m:?}");
    }
    let asked: Vec<String> = s
        .upstream
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| r.json()["messages"].as_array().unwrap().last().unwrap()["content"].to_string())
        .collect();
    assert_eq!(asked.len(), 3, "each approved message answered once: {asked:#?}");
    assert!(!s.gateway.stderr().contains(TOKEN), "the token never reaches the log");
}
