//! The Matrix channel end to end (issue 17's "Done when"): the real `hearth gateway run` binary
//! against a real Synapse (`scripts/testbed/synapse-env.sh`) and the real llama-server test bed.
//! A stranger who DMs the bot gets a pairing code and nothing else; after `hearth pairing
//! approve` (the CLI binary, while the gateway runs) their message is answered by the local
//! model with final text only; a group room is answered only when the bot is mentioned; a
//! scripted reasoning model proves reasoning never reaches the room; and Synapse killed and
//! restarted mid-conversation loses no inbound message and posts no reply twice. See: #17
#![expect(clippy::unwrap_used, clippy::panic, clippy::print_stderr, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::synapse::{Synapse, User};
use hearth_testkit::{FakeUpstream, GatewayProcess, LlamaServer, Reply};

const BOT: &str = "hearthbot";
const BOT_PASSWORD: &str = "hearthbot-password-1";

/// Synapse, or why the test is skipped (only when the test bed was not set up).
async fn synapse() -> Option<Synapse> {
    match Synapse::start().await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("skipping the Matrix gateway tests: {e}");
            None
        }
    }
}

fn hearth(config: &Path, state: &Path) -> Command {
    hearth_testkit::gateway::hearth_command(env!("CARGO_BIN_EXE_hearth"), config, state)
}

struct Gateway {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
    process: GatewayProcess,
}

/// A gateway whose default agent answers with `provider` (a JSON5 provider entry named `up`
/// with one model `m`), with one Matrix account logged in as the bot.
async fn gateway(synapse: &Synapse, provider: &str, matrix_extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{{
  models: {{ mode: "replace", providers: {{ up: {provider} }} }},
  agents: {{ defaults: {{ model: {{ primary: "up/m" }} }} }},
  channels: {{ matrix: {{
    homeserver: "{homeserver}",
    userId: "@{BOT}:hearth.test",
    password: "{BOT_PASSWORD}",
    autoJoin: "always",
    network: {{ dangerouslyAllowPrivateNetwork: true }},
    groups: {{ "*": {{ requireMention: true }} }},
    groupPolicy: "open",
    {matrix_extra}
  }} }},
  session: {{ dmScope: "per-channel-peer" }},
}}"#,
        homeserver = synapse.origin(),
    );
    let config = dir.path().join("hearth.json5");
    std::fs::write(&config, text).unwrap();
    let state = dir.path().join("state");
    let process =
        GatewayProcess::spawn(hearth(&config, &state).args(["gateway", "run", "--port", "0"]))
            .unwrap();
    process.wait_channels_connected(Duration::from_secs(30)).await.unwrap();
    Gateway { _dir: dir, config, state, process }
}

/// The text messages the bot posted in `room`, oldest first, as `user` reads them.
async fn bot_messages(synapse: &Synapse, user: &User, room: &str) -> Vec<String> {
    let bot = format!("@{BOT}:hearth.test");
    let out: Vec<String> = synapse
        .messages(user, room)
        .await
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == bot.as_str())
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect();
    out
}

/// Waits until the bot posted at least `n` messages in `room`.
async fn wait_bot_messages(
    synapse: &Synapse,
    user: &User,
    room: &str,
    n: usize,
    gateway: &Gateway,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = bot_messages(synapse, user, room).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "the bot posted {} messages in {room}, expected {n}: {got:?}\n{}",
            got.len(),
            gateway.process.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The bot has joined `room` (auto-join of the invite).
async fn wait_joined(synapse: &Synapse, user: &User, room: &str) {
    let bot = format!("@{BOT}:hearth.test");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !synapse.joined_members(user, room).await.unwrap().contains(&bot) {
        assert!(Instant::now() < deadline, "the bot never joined {room}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pairing_code(text: &str) -> String {
    let at = text.find("pairing code: ").unwrap_or_else(|| panic!("no code in {text:?}"));
    text[at + "pairing code: ".len()..].chars().take(8).collect()
}

/// A DM room alice opened with the bot, the bot in it.
async fn dm_with_bot(synapse: &Synapse, alice: &User) -> String {
    let room = synapse.create_dm(alice, &format!("@{BOT}:hearth.test")).await.unwrap();
    wait_joined(synapse, alice, &room).await;
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_pairs_then_the_local_model_answers_and_groups_need_a_mention() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(synapse) = synapse().await else { return };
    let llama = LlamaServer::start(1024)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let alice = synapse.user("alice").await.unwrap();
    let provider = format!(
        r#"{{ baseUrl: "{}/v1", api: "openai-completions", models: [{{ id: "m", maxTokens: 8, contextWindow: 1024 }}] }}"#,
        llama.origin()
    );
    let gw = gateway(&synapse, &provider, "").await;

    // A stranger's DM: only a pairing code comes back, the model is not asked.
    let room = dm_with_bot(&synapse, &alice).await;
    synapse.send_text(&alice, &room, "hello, who are you?", &[]).await.unwrap();
    let got = wait_bot_messages(&synapse, &alice, &room, 1, &gw).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("hearth pairing approve matrix"), "{got:?}");
    let code = pairing_code(&got[0]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bot_messages(&synapse, &alice, &room).await.len(), 1, "nothing but the code");

    // The owner approves from the CLI while the gateway runs.
    let approved = hearth(&gw.config, &gw.state)
        .args(["pairing", "approve", "matrix", &code, "--json"])
        .output()
        .unwrap();
    assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));

    // Now the local model (the real llama-server) answers, with final text only.
    synapse.send_text(&alice, &room, "Say hello.", &[]).await.unwrap();
    let got = wait_bot_messages(&synapse, &alice, &room, 2, &gw).await;
    let reply = &got[1];
    assert!(!reply.trim().is_empty(), "{got:?}");
    for residue in ["<think>", "</think>", "<tool_call>", "<|", "pairing code"] {
        assert!(!reply.contains(residue), "{residue} in {reply:?}");
    }

    // A group room (three people; a two-member room counts as a direct chat): answered only
    // when the bot is mentioned.
    let bob = synapse.user("bob").await.unwrap();
    let group = synapse
        .create_group(&alice, "kitchen", &[&format!("@{BOT}:hearth.test"), &bob.user_id])
        .await
        .unwrap();
    synapse.join(&bob, &group).await.unwrap();
    wait_joined(&synapse, &alice, &group).await;
    synapse.send_text(&alice, &group, "anyone seen the salt?", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bot_messages(&synapse, &alice, &group).await.is_empty(), "not mentioned: no reply");
    let bot = format!("@{BOT}:hearth.test");
    synapse.send_text(&alice, &group, &format!("{BOT}: say hello"), &[&bot]).await.unwrap();
    let got = wait_bot_messages(&synapse, &alice, &group, 1, &gw).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!got[0].contains("pairing code"), "an approved person in a group: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_never_reaches_the_room_and_a_synapse_restart_loses_and_repeats_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(mut synapse) = synapse().await else { return };
    synapse.register(BOT, BOT_PASSWORD, false).await.unwrap();
    let alice = synapse.user("alice").await.unwrap();
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let provider = format!(
        r#"{{ baseUrl: "{}/v1", api: "openai-completions", models: [{{ id: "m", reasoning: true }}] }}"#,
        upstream.origin()
    );
    // alice is let in by config: this test is about what reaches the room.
    let gw =
        gateway(&synapse, &provider, &format!(r#"dm: {{ allowFrom: ["{}"] }},"#, alice.user_id))
            .await;
    let room = dm_with_bot(&synapse, &alice).await;

    // 1. Reasoning never arrives in the room.
    upstream.push(Reply::chat_with_reasoning("First answer."));
    synapse.send_text(&alice, &room, "one", &[]).await.unwrap();
    let got = wait_bot_messages(&synapse, &alice, &room, 1, &gw).await;
    assert_eq!(got, ["First answer."], "final text only");

    // 2. Synapse dies while the model is writing the second answer: the reply is posted once
    //    Synapse is back, exactly once; a message sent after the restart is answered once; no
    //    inbound message is lost or answered twice.
    upstream
        .push(Reply::chat_with_reasoning("Second answer.").headers_after(Duration::from_secs(2)));
    upstream.push(Reply::chat_with_reasoning("Third answer."));
    synapse.send_text(&alice, &room, "two", &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let calls = |u: &FakeUpstream| {
        u.requests().iter().filter(|r| r.path.ends_with("/chat/completions")).count()
    };
    while calls(&upstream) < 2 {
        assert!(Instant::now() < deadline, "the second message never reached the model");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    synapse.kill().await;
    tokio::time::sleep(Duration::from_secs(4)).await; // the answer is ready; the send fails
    synapse.restart().await.unwrap();
    let got = wait_bot_messages(&synapse, &alice, &room, 2, &gw).await;
    assert_eq!(got, ["First answer.", "Second answer."], "posted once, after the restart");
    synapse.send_text(&alice, &room, "three", &[]).await.unwrap();
    let got = wait_bot_messages(&synapse, &alice, &room, 3, &gw).await;
    assert_eq!(got, ["First answer.", "Second answer.", "Third answer."]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bot_messages(&synapse, &alice, &room).await.len(), 3, "no duplicate reply");
    assert_eq!(calls(&upstream), 3, "every inbound message answered exactly once");
    for message in bot_messages(&synapse, &alice, &room).await {
        assert!(!message.contains("SECRET"), "{message:?}");
    }
}
