//! The Matrix channel against a real Synapse (`hearth_testkit::synapse`), driven through the
//! `Channel` trait with a real `Inbox`: DMs and groups, mentions, sends deduplicated by key,
//! a Synapse crash and restart, a hearth restart, encrypted rooms, the private-network key.
//!
//! Each test starts its own Synapse; without the venv (`scripts/testbed/synapse-env.sh`) they
//! say so and return.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    reason = "tests; the skip message goes to stderr"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_channels::matrix::{AutoJoin, Matrix, MatrixSettings};
use hearth_channels::{
    Channel, ChannelError, Conversation, ConversationKind, Health, Inbound, InboxReceiver, Secret,
    SendError, inbox,
};
use hearth_testkit::synapse::{Synapse, User};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const BOT: &str = "hearthbot";
const BOT_PASSWORD: &str = "bot-password-not-in-logs";
const WITHIN: Duration = Duration::from_secs(60);

/// A Synapse, or `None` (with the reason on stderr) when the test bed lacks it.
async fn synapse() -> Option<Synapse> {
    match Synapse::start().await {
        Ok(synapse) => Some(synapse),
        Err(e) if e.contains("synapse-env.sh") => {
            eprintln!("skipping the Matrix tests: {e}");
            None
        }
        Err(e) => panic!("Synapse did not start: {e}"),
    }
}

fn settings(synapse: &Synapse, bot_id: &str, state_dir: &Path) -> MatrixSettings {
    MatrixSettings {
        account: "default".to_owned(),
        homeserver: synapse.origin(),
        access_token: None,
        user_id: Some(bot_id.to_owned()),
        password: Some(Secret(BOT_PASSWORD.to_owned())),
        auto_join: AutoJoin::Always,
        allow_private_network: true,
        state_dir: state_dir.to_path_buf(),
        auto_join_allowlist: Vec::new(),
    }
}

/// A running channel: its task, its stop switch, the dispatcher's end of its inbox.
struct Running {
    channel: Arc<Matrix>,
    health: Health,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ChannelError>>,
    inbox: InboxReceiver,
}

impl Running {
    /// Starts the channel and waits until its first sync is done (history before it is skipped).
    async fn start(settings: MatrixSettings) -> Running {
        let running = Running::spawn(settings);
        running.wait_connected().await;
        running
    }

    /// Starts the channel without waiting for its first sync.
    fn spawn(settings: MatrixSettings) -> Running {
        let channel = Arc::new(Matrix::new(settings).expect("valid settings"));
        let (tx, inbox) = inbox(16);
        let health = Health::default();
        let (stop, stop_rx) = watch::channel(false);
        let task = {
            let (channel, health) = (channel.clone(), health.clone());
            tokio::spawn(async move { channel.run(tx, health, stop_rx).await })
        };
        Running { channel, health, stop, task, inbox }
    }

    async fn wait_connected(&self) {
        let deadline = Instant::now() + WITHIN;
        while !self.health.snapshot().connected {
            assert!(!self.task.is_finished(), "the channel stopped: {:?}", self.health.snapshot());
            assert!(
                Instant::now() < deadline,
                "no sync within {WITHIN:?}: {:?}",
                self.health.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The next inbound message, acknowledged.
    async fn next(&mut self) -> Inbound {
        let (message, ack) = tokio::time::timeout(WITHIN, self.inbox.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no inbound message within {WITHIN:?}: {:?}", self.health.snapshot())
            })
            .expect("the channel is running");
        ack.send(()).expect("the channel waits for the ack");
        message
    }

    /// Inbound messages (acknowledged) until one has `text`.
    async fn until(&mut self, text: &str) -> Vec<Inbound> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            let done = message.text == text;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// Nothing more arrives within `quiet`.
    async fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(Some((message, _))) = tokio::time::timeout(quiet, self.inbox.recv()).await {
            panic!("unexpected inbound message: {message:?}");
        }
    }

    async fn shutdown(self) {
        self.stop.send(true).expect("the channel task holds the receiver");
        let result = tokio::time::timeout(WITHIN, self.task).await.expect("stops promptly");
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
        assert!(!self.health.snapshot().connected, "a stopped channel is not connected");
    }
}

/// A bot user and a person; the bot's channel running with a fresh state dir; a DM between
/// them that the bot has joined.
struct Dm {
    synapse: Synapse,
    alice: User,
    bot_id: String,
    room: String,
    bot: Running,
    state_dir: tempfile::TempDir,
}

async fn dm() -> Option<Dm> {
    let synapse = synapse().await?;
    let alice = synapse.user("alice").await.expect("register alice");
    let (bot_id, _) = synapse.register(BOT, BOT_PASSWORD, false).await.expect("register the bot");
    let state_dir = tempfile::tempdir().expect("temp dir");
    let bot = Running::start(settings(&synapse, &bot_id, state_dir.path())).await;
    let room = synapse.create_dm(&alice, &bot_id).await.expect("create the DM");
    synapse.wait_joined(&alice, &room, &bot_id, WITHIN).await.expect("the bot joins the DM invite");
    Some(Dm { synapse, alice, bot_id, room, bot, state_dir })
}

/// The bodies of the bot's messages in `room`, as `user` reads them back.
async fn bot_messages(synapse: &Synapse, user: &User, room: &str, bot_id: &str) -> Vec<String> {
    synapse
        .messages(user, room)
        .await
        .expect("read the room")
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == bot_id)
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_arrives_as_direct_and_a_key_posts_once() {
    let Some(mut t) = dm().await else { return };
    let sent = t.synapse.send_text(&t.alice, &t.room, "hello bot", &[]).await.unwrap();
    let message = t.bot.next().await;
    assert_eq!(message.id, sent);
    assert_eq!(message.text, "hello bot");
    assert_eq!(
        message.conversation,
        Conversation { kind: ConversationKind::Direct, id: t.room.clone() }
    );
    assert_eq!(message.sender.id, t.alice.user_id);
    assert_eq!(message.sender.name.as_deref(), Some("alice"));
    // The accepted DM is in the bot's `m.direct`, as a person's client records it.
    let (_, admin_token) = t.synapse.register("root", "root-password", true).await.unwrap();
    let direct_path = format!(
        "/_synapse/admin/v1/users/{}/accountdata",
        hearth_testkit::synapse::encode(&t.bot_id)
    );
    let (_, account_data) =
        t.synapse.call("GET", &direct_path, Some(&admin_token), None).await.unwrap();
    assert_eq!(
        account_data["account_data"]["global"]["m.direct"][&t.alice.user_id],
        json!([t.room.clone()]),
        "{account_data}"
    );

    let to = message.conversation.clone();
    t.bot.channel.typing(&to, true).await.expect("typing on");
    t.bot.channel.send(&to, "hi alice", "turn1-0").await.expect("send");
    t.bot.channel.send(&to, "hi alice", "turn1-0").await.expect("the same key again");
    t.bot.channel.send(&to, "second piece", "turn1-1").await.expect("another key");
    t.bot.channel.typing(&to, false).await.expect("typing off");
    assert_eq!(
        bot_messages(&t.synapse, &t.alice, &t.room, &t.bot_id).await,
        ["hi alice", "second piece"]
    );
    let health = t.bot.health.snapshot();
    assert_eq!((health.inbound_total, health.outbound_total), (1, 3));

    // The bot's own messages do not come back as inbound.
    t.bot.assert_quiet(Duration::from_secs(2)).await;

    // A room the bot is not in: refused for good, not retried.
    let private = t.synapse.create_group(&t.alice, "alone", &[]).await.unwrap();
    let outside = Conversation { kind: ConversationKind::Group, id: private };
    let refused = t.bot.channel.send(&outside, "x", "k").await;
    assert!(matches!(refused, Err(SendError::Fatal(_))), "{refused:?}");
    t.bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_messages_carry_mentions_and_skip_non_text() {
    let Some(synapse) = synapse().await else { return };
    let alice = synapse.user("alice").await.unwrap();
    let bob = synapse.user("bob").await.unwrap();
    let (bot_id, _) = synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut bot = Running::start(settings(&synapse, &bot_id, state_dir.path())).await;
    let room = synapse.create_group(&alice, "kitchen", &[&bot_id, &bob.user_id]).await.unwrap();
    synapse.join(&bob, &room).await.unwrap();
    synapse.wait_joined(&alice, &room, &bot_id, WITHIN).await.unwrap();

    let image = json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://hearth.test/cat"});
    synapse.send_event(&alice, &room, "m.room.message", &image).await.unwrap();
    let notice = json!({"msgtype": "m.notice", "body": "a bot's notice"});
    synapse.send_event(&bob, &room, "m.room.message", &notice).await.unwrap();
    let hello = synapse.send_text(&alice, &room, "hello everyone", &[]).await.unwrap();
    synapse.send_text(&bob, &room, "hearthbot: what is for dinner?", &[&bot_id]).await.unwrap();
    synapse.send_text(&alice, &room, "ask hearthbot, maybe", &[]).await.unwrap();
    let edit = json!({"msgtype": "m.text", "body": "* hello everyone!", "m.new_content":
        {"msgtype": "m.text", "body": "hello everyone!"}, "m.relates_to": {"rel_type": "m.replace", "event_id": hello}});
    synapse.send_event(&alice, &room, "m.room.message", &edit).await.unwrap();
    synapse.send_text(&bob, &room, "done", &[]).await.unwrap();

    let got = bot.until("done").await;
    let summary: Vec<(&str, &str, bool, ConversationKind)> = got
        .iter()
        .map(|m| (m.sender.id.as_str(), m.text.as_str(), m.mentioned, m.conversation.kind))
        .collect();
    assert_eq!(
        summary,
        [
            (alice.user_id.as_str(), "hello everyone", false, ConversationKind::Group),
            (bob.user_id.as_str(), "hearthbot: what is for dinner?", true, ConversationKind::Group),
            (alice.user_id.as_str(), "ask hearthbot, maybe", true, ConversationKind::Group),
            (bob.user_id.as_str(), "done", false, ConversationKind::Group),
        ]
    );
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synapse_crash_and_restart_loses_and_repeats_nothing() {
    let Some(mut t) = dm().await else { return };
    t.synapse.send_text(&t.alice, &t.room, "before", &[]).await.unwrap();
    assert_eq!(t.bot.next().await.text, "before");
    let to = Conversation { kind: ConversationKind::Direct, id: t.room.clone() };
    t.bot.channel.send(&to, "reply one", "r1").await.expect("send before the crash");

    // Sent just before the crash: stored by Synapse, maybe not yet seen by the bot.
    t.synapse.send_text(&t.alice, &t.room, "just before the crash", &[]).await.unwrap();
    t.synapse.kill().await;

    // While it is down a send fails as retryable, and the channel says it is disconnected.
    let down = t.bot.channel.send(&to, "reply two", "r2").await;
    assert!(matches!(down, Err(SendError::Retry { .. })), "{down:?}");
    // The dispatcher keeps recording what arrives (the message sent just before the crash
    // may be in the last batch the channel got).
    let mut texts: Vec<String> = Vec::new();
    let deadline = Instant::now() + WITHIN;
    while t.bot.health.snapshot().connected {
        assert!(Instant::now() < deadline, "health still says connected");
        if let Ok(Some((message, ack))) =
            tokio::time::timeout(Duration::from_millis(50), t.bot.inbox.recv()).await
        {
            ack.send(()).unwrap();
            texts.push(message.text);
        }
    }
    let error = t.bot.health.snapshot().last_error.expect("a last error");
    assert!(!error.contains(BOT_PASSWORD) && !error.contains("syt_"), "{error}");
    assert!(error.contains("cannot reach the homeserver"), "{error}");
    eprintln!("health while Synapse is down: {error}");

    t.synapse.restart().await.expect("Synapse restarts");
    // The dispatcher retries with the same keys: r1 (its ack was lost, say) and r2.
    let mut retried = false;
    let deadline = Instant::now() + WITHIN;
    while !retried {
        match t.bot.channel.send(&to, "reply two", "r2").await {
            Ok(()) => retried = true,
            Err(SendError::Retry { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("send after the restart: {e:?}"),
        }
    }
    t.bot.channel.send(&to, "reply one", "r1").await.expect("r1 again");
    t.bot.channel.send(&to, "reply two", "r2").await.expect("r2 again");
    t.synapse.send_text(&t.alice, &t.room, "after the restart", &[]).await.unwrap();

    texts.extend(t.bot.until("after the restart").await.into_iter().map(|m| m.text));
    assert_eq!(texts, ["just before the crash", "after the restart"]);
    t.bot.assert_quiet(Duration::from_secs(2)).await;
    assert_eq!(
        bot_messages(&t.synapse, &t.alice, &t.room, &t.bot_id).await,
        ["reply one", "reply two"]
    );
    t.bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hearth_restart_resumes_from_the_stored_cursor() {
    let Some(mut t) = dm().await else { return };
    t.synapse.send_text(&t.alice, &t.room, "one", &[]).await.unwrap();
    assert_eq!(t.bot.next().await.text, "one");

    // Delivered but never acknowledged (the dispatcher died before recording it): it must
    // come again after the restart.
    t.synapse.send_text(&t.alice, &t.room, "two", &[]).await.unwrap();
    let (unacked, ack) = tokio::time::timeout(WITHIN, t.bot.inbox.recv()).await.unwrap().unwrap();
    assert_eq!(unacked.text, "two");
    drop(ack);
    let ended = tokio::time::timeout(WITHIN, t.bot.task).await.expect("the channel ends");
    assert!(matches!(ended, Ok(Err(ChannelError::Closed))), "{ended:?}");
    let device = std::fs::read_to_string(t.state_dir.path().join("device.json")).unwrap();

    // While hearth is down.
    t.synapse.send_text(&t.alice, &t.room, "three", &[]).await.unwrap();

    let mut again = Running::start(settings(&t.synapse, &t.bot_id, t.state_dir.path())).await;
    let texts: Vec<String> = again.until("three").await.into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["two", "three"]);
    assert_eq!(std::fs::read_to_string(t.state_dir.path().join("device.json")).unwrap(), device);

    // A send of a key used before the restart is still deduplicated (same device).
    let to = Conversation { kind: ConversationKind::Direct, id: t.room.clone() };
    again.channel.send(&to, "answer", "k-restart").await.unwrap();
    again.shutdown().await;
    let mut third = Running::start(settings(&t.synapse, &t.bot_id, t.state_dir.path())).await;
    third.channel.send(&to, "answer", "k-restart").await.unwrap();
    assert_eq!(bot_messages(&t.synapse, &t.alice, &t.room, &t.bot_id).await, ["answer"]);
    third.assert_quiet(Duration::from_secs(2)).await;
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_skips_history() {
    let Some(synapse) = synapse().await else { return };
    let alice = synapse.user("alice").await.unwrap();
    let (bot_id, bot_token) = synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let bot_user = User { user_id: bot_id.clone(), access_token: bot_token };
    let room = synapse.create_dm(&alice, &bot_id).await.unwrap();
    synapse.join(&bot_user, &room).await.unwrap();
    synapse.send_text(&alice, &room, "old news", &[]).await.unwrap();

    let state_dir = tempfile::tempdir().unwrap();
    let mut bot = Running::start(settings(&synapse, &bot_id, state_dir.path())).await;
    synapse.send_text(&alice, &room, "new", &[]).await.unwrap();
    let message = bot.next().await;
    assert_eq!(message.text, "new");
    assert_eq!(message.conversation.kind, ConversationKind::Direct);
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_room_is_not_delivered() {
    let Some(mut t) = dm().await else { return };
    let secret_room = t.synapse.create_dm(&t.alice, &t.bot_id).await.unwrap();
    t.synapse.wait_joined(&t.alice, &secret_room, &t.bot_id, WITHIN).await.unwrap();
    t.synapse
        .set_state(
            &t.alice,
            &secret_room,
            "m.room.encryption",
            &json!({"algorithm": "m.megolm.v1.aes-sha2"}),
        )
        .await
        .unwrap();
    let ciphertext = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC",
        "device_id": "ALICEDEV", "sender_key": "c2VuZGVy", "session_id": "c2Vzc2lvbg"});
    let encrypted = t
        .synapse
        .send_event(&t.alice, &secret_room, "m.room.encrypted", &ciphertext)
        .await
        .unwrap();
    t.synapse.send_text(&t.alice, &t.room, "in the clear", &[]).await.unwrap();
    let got = t.bot.until("in the clear").await;
    assert!(got.iter().all(|m| m.id != encrypted), "{got:?}");
    assert_eq!(got.len(), 1, "{got:?}");
    t.bot.assert_quiet(Duration::from_secs(2)).await;
    t.bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_homeserver_needs_the_private_network_key() {
    // No server needed: the refusal comes before any request.
    let state_dir = tempfile::tempdir().unwrap();
    for homeserver in ["http://127.0.0.1:8008", "http://localhost:8008"] {
        let settings = MatrixSettings {
            account: "default".to_owned(),
            homeserver: homeserver.to_owned(),
            access_token: Some(Secret("syt_token".to_owned())),
            user_id: None,
            password: None,
            auto_join: AutoJoin::Off,
            allow_private_network: false,
            state_dir: state_dir.path().to_path_buf(),
            auto_join_allowlist: Vec::new(),
        };
        match Matrix::new(settings) {
            Err(ChannelError::Fatal(message)) => {
                assert!(message.contains("network.dangerouslyAllowPrivateNetwork"), "{message}");
                assert!(!message.contains("syt_token"), "{message}");
            }
            other => panic!("{homeserver} accepted: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_token_is_fatal() {
    let Some(synapse) = synapse().await else { return };
    let (bot_id, _) = synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut wrong = settings(&synapse, &bot_id, state_dir.path());
    wrong.password = Some(Secret("not-the-password".to_owned()));
    let mut revoked = settings(&synapse, &bot_id, state_dir.path());
    revoked.access_token = Some(Secret("syt_revoked_token".to_owned()));
    for settings in [wrong, revoked] {
        let channel = Matrix::new(settings).unwrap();
        let (tx, _rx) = inbox(4);
        let (_stop, stop_rx) = watch::channel(false);
        let result = tokio::time::timeout(WITHIN, channel.run(tx, Health::default(), stop_rx))
            .await
            .expect("gives up promptly");
        match result {
            Err(ChannelError::Fatal(message)) => {
                assert!(
                    !message.contains("not-the-password") && !message.contains("syt_revoked"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

/// What the hostile homeserver answers to its n-th `/sync` (after the first, which starts the
/// channel): then one valid batch with a message.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// 20 MiB of JSON-looking bytes, over the 16 MiB cap.
    Huge,
    /// `200 OK` with binary garbage.
    Garbage,
    /// The connection closes before any answer.
    Vanish,
}

/// A homeserver that misbehaves on purpose (what Synapse cannot be made to do): each sync in
/// `script` in turn, then a valid batch; sends answer 429, 500 or 403 by transaction id.
/// Returns its origin and the `/sync` request lines it saw.
async fn hostile_homeserver(script: Vec<Hostile>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut syncs = 0usize;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match socket.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            let _ = socket.read_exact(&mut body).await;
            let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
            let (status, answer): (u16, Vec<u8>) = if path.contains("/account/whoami") {
                (200, br#"{"user_id":"@bot:fake.test","device_id":"D"}"#.to_vec())
            } else if path.contains("/sync") {
                log.lock().unwrap().push(path.clone());
                syncs += 1;
                match (syncs, script.get(syncs.wrapping_sub(2))) {
                    (1, _) => (200, br#"{"next_batch":"s1"}"#.to_vec()),
                    (_, Some(Hostile::Huge)) => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20971520\r\n\r\n";
                        let _ = socket.write_all(head.as_bytes()).await;
                        let chunk = vec![b' '; 1024 * 1024];
                        for _ in 0..20 {
                            if socket.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                    (_, Some(Hostile::Garbage)) => (200, vec![0xff, 0x00, 0xfe, b'{', 0x80]),
                    (_, Some(Hostile::Vanish)) => continue,
                    (n, None) if n == script.len() + 2 => (
                        200,
                        json!({"next_batch": "s2", "rooms": {"join": {"!r:fake.test": {"timeline": {"events": [
                            {"type": "m.room.message", "sender": "@a:fake.test", "event_id": "$ok",
                             "content": {"msgtype": "m.text", "body": "still here"}}
                        ]}}}}})
                        .to_string()
                        .into_bytes(),
                    ),
                    // Later syncs: nothing new, after a short wait (a long poll).
                    _ => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        (200, br#"{"next_batch":"s2"}"#.to_vec())
                    }
                }
            } else if path.contains("/joined_members") {
                (200, br#"{"joined":{"@a:fake.test":{"display_name":"A"},"@bot:fake.test":{},"@c:fake.test":{}}}"#.to_vec())
            } else if path.contains("/send/") {
                if path.ends_with("/hearth.rate") {
                    (429, br#"{"errcode":"M_LIMIT_EXCEEDED","error":"Too Many Requests","retry_after_ms":1500}"#.to_vec())
                } else if path.ends_with("/hearth.boom") {
                    (500, b"<html>Internal Server Error</html>".to_vec())
                } else {
                    (403, br#"{"errcode":"M_FORBIDDEN","error":"User not in room"}"#.to_vec())
                }
            } else {
                (404, br#"{"errcode":"M_NOT_FOUND","error":"Not found"}"#.to_vec())
            };
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            let _ = socket.write_all(reply.as_bytes()).await;
            let _ = socket.write_all(&answer).await;
        }
    });
    (origin, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_homeserver_costs_bounded_memory_and_the_channel_keeps_running() {
    let (origin, syncs) =
        hostile_homeserver(vec![Hostile::Huge, Hostile::Garbage, Hostile::Vanish]).await;
    let state_dir = tempfile::tempdir().unwrap();
    let settings = MatrixSettings {
        account: "default".to_owned(),
        homeserver: origin,
        access_token: Some(Secret("syt_fake_secret_token".to_owned())),
        user_id: None,
        password: None,
        auto_join: AutoJoin::Off,
        allow_private_network: true,
        state_dir: state_dir.path().to_path_buf(),
        auto_join_allowlist: Vec::new(),
    };
    // Not `start`: the first failure may come before a poll sees the first sync's success.
    let mut bot = Running::spawn(settings);
    // Every error the channel reported on the way, as `hearth channels status` would show it.
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let watcher = {
        let (health, errors) = (bot.health.clone(), errors.clone());
        tokio::spawn(async move {
            loop {
                if let Some(error) = health.snapshot().last_error {
                    let mut errors = errors.lock().unwrap();
                    if errors.last() != Some(&error) {
                        errors.push(error);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let message = bot.next().await;
    watcher.abort();
    assert_eq!((message.id.as_str(), message.text.as_str()), ("$ok", "still here"));
    assert_eq!(message.conversation.kind, ConversationKind::Group);
    assert_eq!(message.sender.name.as_deref(), Some("A"));
    let errors = errors.lock().unwrap().clone();
    assert!(errors.iter().any(|e| e.contains("over 16 MiB")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("unexpected answer")), "{errors:?}");
    assert!(errors.iter().all(|e| !e.contains("syt_fake")), "{errors:?}");
    // After the huge answer the channel asked for fewer events per room.
    let syncs = syncs.lock().unwrap().clone();
    assert!(syncs[2].contains("%22limit%22%3A25"), "{syncs:?}");
    assert!(bot.health.snapshot().connected);

    let to = Conversation { kind: ConversationKind::Group, id: "!r:fake.test".to_owned() };
    match bot.channel.send(&to, "x", "rate").await {
        Err(SendError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_millis(1500))),
        other => panic!("429: {other:?}"),
    }
    let boom = bot.channel.send(&to, "x", "boom").await;
    assert!(matches!(boom, Err(SendError::Retry { after: None, .. })), "{boom:?}");
    match bot.channel.send(&to, "x", "nope").await {
        Err(SendError::Fatal(message)) => assert!(message.contains("M_FORBIDDEN"), "{message}"),
        other => panic!("403: {other:?}"),
    }
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_join_allowlist_joins_only_the_invites_it_names() {
    let Some(synapse) = synapse().await else { return };
    let alice = synapse.user("alice").await.unwrap();
    let eve = synapse.user("eve").await.unwrap();
    let (bot_id, _) = synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&synapse, &bot_id, state_dir.path());
    settings.auto_join = AutoJoin::Allowlist;
    settings.auto_join_allowlist = vec![alice.user_id.clone()];
    let mut bot = Running::start(settings).await;

    let from_eve = synapse.create_dm(&eve, &bot_id).await.unwrap();
    let from_alice = synapse.create_dm(&alice, &bot_id).await.unwrap();
    synapse.wait_joined(&alice, &from_alice, &bot_id, WITHIN).await.unwrap();
    synapse.send_text(&eve, &from_eve, "let me in", &[]).await.unwrap();
    synapse.send_text(&alice, &from_alice, "hi", &[]).await.unwrap();
    let got = bot.next().await;
    assert_eq!((got.sender.id.as_str(), got.text.as_str()), (alice.user_id.as_str(), "hi"));
    // Eve's invite was seen in the same or an earlier sync and left alone.
    assert!(!synapse.joined_members(&eve, &from_eve).await.unwrap().contains(&bot_id));
    bot.assert_quiet(Duration::from_secs(2)).await;
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_group_does_not_answer_its_history() {
    let Some(synapse) = synapse().await else { return };
    let alice = synapse.user("alice").await.unwrap();
    let (bot_id, _) = synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let mut bot = Running::start(settings(&synapse, &bot_id, state_dir.path())).await;
    let room = synapse.create_group(&alice, "old room", &[]).await.unwrap();
    let bob = synapse.user("bob").await.unwrap();
    synapse.invite(&alice, &room, &bob.user_id).await.unwrap();
    synapse.join(&bob, &room).await.unwrap();
    for i in 0..3 {
        synapse.send_text(&alice, &room, &format!("old {i}"), &[]).await.unwrap();
    }
    synapse.invite(&alice, &room, &bot_id).await.unwrap();
    synapse.wait_joined(&alice, &room, &bot_id, WITHIN).await.unwrap();
    synapse.send_text(&alice, &room, "welcome, hearthbot", &[]).await.unwrap();
    let message = bot.next().await;
    assert_eq!(message.text, "welcome, hearthbot");
    assert_eq!(message.conversation.kind, ConversationKind::Group);
    assert!(message.mentioned);
    bot.assert_quiet(Duration::from_secs(2)).await;
    bot.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_is_caught_up_message_by_message() {
    let Some(mut t) = dm().await else { return };
    t.synapse.send_text(&t.alice, &t.room, "before", &[]).await.unwrap();
    assert_eq!(t.bot.next().await.text, "before");
    t.bot.shutdown().await;
    // More than one sync carries per room (100 events).
    let sent: Vec<String> = (0..130).map(|i| format!("missed {i}")).collect();
    for text in &sent {
        t.synapse.send_text(&t.alice, &t.room, text, &[]).await.unwrap();
    }
    t.synapse.send_text(&t.alice, &t.room, "last", &[]).await.unwrap();
    let mut again = Running::start(settings(&t.synapse, &t.bot_id, t.state_dir.path())).await;
    let got: Vec<String> = again.until("last").await.into_iter().map(|m| m.text).collect();
    assert_eq!(got[..got.len() - 1], sent[..]);
    again.assert_quiet(Duration::from_secs(2)).await;
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_logs_in_again_with_the_password() {
    let Some(mut t) = dm().await else { return };
    t.synapse.send_text(&t.alice, &t.room, "one", &[]).await.unwrap();
    assert_eq!(t.bot.next().await.text, "one");
    // An admin removes the bot's device (its access token dies with it).
    let (_, admin_token) = t.synapse.register("root", "root-password", true).await.unwrap();
    let device: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.state_dir.path().join("device.json")).unwrap(),
    )
    .unwrap();
    let device_id = device["device_id"].as_str().unwrap();
    let path = format!(
        "/_synapse/admin/v2/users/{}/devices/{}",
        hearth_testkit::synapse::encode(&t.bot_id),
        hearth_testkit::synapse::encode(device_id)
    );
    t.synapse.call("DELETE", &path, Some(&admin_token), None).await.unwrap();
    t.synapse.send_text(&t.alice, &t.room, "two", &[]).await.unwrap();
    let texts: Vec<String> = t.bot.until("two").await.into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["two"]);
    let to = Conversation { kind: ConversationKind::Direct, id: t.room.clone() };
    // The first send after the revocation may meet the dead token: retryable, then fine.
    let mut sent = t.bot.channel.send(&to, "back", "after-revoke").await;
    if matches!(sent, Err(SendError::Retry { .. })) {
        sent = t.bot.channel.send(&to, "back", "after-revoke").await;
    }
    sent.unwrap();
    assert_eq!(bot_messages(&t.synapse, &t.alice, &t.room, &t.bot_id).await, ["back"]);
    // The deleted device is back (beside the one registration made): the channel logged in
    // again, as the same device.
    let list =
        format!("/_synapse/admin/v2/users/{}/devices", hearth_testkit::synapse::encode(&t.bot_id));
    let (_, devices) = t.synapse.call("GET", &list, Some(&admin_token), None).await.unwrap();
    let ids: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert!(ids.contains(&device_id), "{ids:?}");
    t.bot.shutdown().await;
}
