//! The Matrix channel against a real Synapse (`hearth_testkit::synapse`), driven through the
//! `Channel` trait with a real `Inbox`: DMs and groups, mentions, sends deduplicated by key,
//! a Synapse crash and restart, a hearth restart, encrypted rooms, the private-network key.
//!
//! Each test starts its own Synapse; without the venv (`scripts/testbed/synapse-env.sh`) they
//! say so and return.
#![expect(
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
        let channel = Arc::new(Matrix::new(settings).expect("valid settings"));
        let (tx, inbox) = inbox(16);
        let health = Health::default();
        let (stop, stop_rx) = watch::channel(false);
        let task = {
            let (channel, health) = (channel.clone(), health.clone());
            tokio::spawn(async move { channel.run(tx, health, stop_rx).await })
        };
        let running = Running { channel, health, stop, task, inbox };
        running.wait_connected().await;
        running
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
    let deadline = Instant::now() + WITHIN;
    while t.bot.health.snapshot().connected {
        assert!(Instant::now() < deadline, "health still says connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = t.bot.health.snapshot().last_error.expect("a last error");
    assert!(!error.contains(BOT_PASSWORD) && !error.contains("syt_"), "{error}");

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

    let texts: Vec<String> =
        t.bot.until("after the restart").await.into_iter().map(|m| m.text).collect();
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
    drop(again.channel.clone());
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
