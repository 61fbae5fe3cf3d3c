//! The Telegram channel against the local Bot API server (`hearth_testkit::telegram::BotApi`),
//! through the `Channel` trait with a real `Inbox`: what a dispatcher sees.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers may unwrap and panic"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_channels::telegram::{Telegram, TelegramSettings};
use hearth_channels::{
    Channel, ChannelError, Conversation, ConversationKind, Health, Inbound, InboxReceiver, Secret,
    SendError, inbox,
};
use hearth_testkit::telegram::{BotApi, Fault, Media, Message, User};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
const USERNAME: &str = "hearth_bot";
/// Long enough for a few backoff steps on a loaded machine; only ever an upper bound.
const PATIENCE: Duration = Duration::from_secs(30);

/// A channel running as the dispatcher runs it.
struct Running {
    channel: Arc<Telegram>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ChannelError>>,
    inbox: InboxReceiver,
    health: Health,
}

fn settings(api: &BotApi, token: &str, state_dir: &Path) -> TelegramSettings {
    TelegramSettings {
        account: "default".into(),
        bot_token: Secret(token.into()),
        api_root: api.api_root(),
        username: None,
        state_dir: state_dir.to_owned(),
    }
}

impl Running {
    fn start(api: &BotApi, token: &str, state_dir: &Path) -> Self {
        let channel = Arc::new(Telegram::new(settings(api, token, state_dir)).unwrap());
        let (tx, inbox) = inbox(8);
        let (stop, stop_rx) = watch::channel(false);
        let health = Health::default();
        let task = {
            let channel = Arc::clone(&channel);
            let health = health.clone();
            tokio::spawn(async move { channel.run(tx, health, stop_rx).await })
        };
        Running { channel, stop, task, inbox, health }
    }

    /// The next inbound message, acknowledged.
    async fn next(&mut self) -> Inbound {
        let (message, ack) = self.next_unacked().await;
        ack.send(()).unwrap();
        message
    }

    async fn next_unacked(&mut self) -> (Inbound, oneshot::Sender<()>) {
        tokio::time::timeout(PATIENCE, self.inbox.recv())
            .await
            .expect("an inbound message in time")
            .expect("the channel is running")
    }

    /// Asserts nothing more arrives for `wait`.
    async fn quiet(&mut self, wait: Duration) {
        if let Ok(Some((message, _))) = tokio::time::timeout(wait, self.inbox.recv()).await {
            panic!("unexpected message {message:?}");
        }
    }

    async fn stop(self) -> Result<(), ChannelError> {
        self.stop.send(true).unwrap();
        tokio::time::timeout(PATIENCE, self.task).await.expect("run stops in time").unwrap()
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ada() -> User {
    User::new(42, "Ada").last_name("Lovelace").username("ada")
}

fn private(id: &str) -> Conversation {
    Conversation { kind: ConversationKind::Direct, id: id.into() }
}

#[tokio::test]
async fn private_message_is_delivered_as_direct_with_its_sender() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut running = Running::start(&api, TOKEN, state.path());
    let pushed = api.push(Message::private(ada()).text("hello there"));
    let inbound = running.next().await;
    assert_eq!(inbound.id, format!("42:{}", pushed.message_id));
    assert_eq!(inbound.conversation, private("42"));
    assert_eq!(inbound.sender.id, "42");
    assert_eq!(inbound.sender.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(inbound.text, "hello there");
    let health = running.health.clone();
    wait_until("the delivery is counted", || health.snapshot().inbound_total == 1).await;
    assert!(health.snapshot().connected);
    // The long poll as the brief and the Bot API want it.
    let polls: Vec<_> =
        api.requests().into_iter().filter(|c| c.method == "getUpdates").map(|c| c.params).collect();
    assert_eq!(polls[0]["timeout"], json!(30));
    assert_eq!(polls[0]["allowed_updates"], json!(["message"]));
    assert_eq!(api.calls("getMe"), 1);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn group_messages_say_whether_the_bot_was_mentioned() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut running = Running::start(&api, TOKEN, state.path());
    let group = -100_123;
    let from = || User::new(7, "Grace");
    let group_chat = Conversation { kind: ConversationKind::Group, id: group.to_string() };

    api.push(Message::supergroup(group, "Home", from()).text("just chatting"));
    api.push(
        Message::supergroup(group, "Home", from())
            .text("hey ")
            .mention(USERNAME)
            .text(" what's up"),
    );
    api.push(Message::supergroup(group, "Home", from()).text("hey ").mention("someone_else"));
    api.push(
        Message::group(-5, "Basic", from())
            .text_mention("Hearth", api.bot_id(), "Hearth")
            .text(", hi"),
    );
    let seen: Vec<(String, ConversationKind, bool)> =
        [running.next().await, running.next().await, running.next().await, running.next().await]
            .into_iter()
            .map(|m| (m.conversation.id, m.conversation.kind, m.mentioned))
            .collect();
    assert_eq!(
        seen,
        [
            (group.to_string(), ConversationKind::Group, false),
            (group.to_string(), ConversationKind::Group, true),
            (group.to_string(), ConversationKind::Group, false),
            ("-5".to_owned(), ConversationKind::Group, true),
        ]
    );

    // A reply to one of the bot's own messages is a mention.
    running.channel.send(&group_chat, "I answer when asked", "k1").await.unwrap();
    let bot_message = api.sent()[0].message_id;
    api.push(Message::supergroup(group, "Home", from()).text("and then?").reply_to(bot_message));
    let reply = running.next().await;
    assert!(reply.mentioned, "{reply:?}");

    // Photos and stickers are skipped; the text after them still comes, and they are confirmed.
    api.push(Message::supergroup(group, "Home", from()).media(Media::Photo).text("a caption"));
    api.push(Message::private(from()).media(Media::Sticker));
    api.push(Message::private(from()).text("after the sticker"));
    assert_eq!(running.next().await.text, "after the sticker");
    wait_until("every update is confirmed", || api.pending() == 0).await;
    running.quiet(Duration::from_millis(300)).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn send_posts_the_text_and_typing_sends_the_chat_action() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let channel = Telegram::new(settings(&api, TOKEN, state.path())).unwrap();
    api.push(Message::private(ada()).text("hi"));
    channel.typing(&private("42"), true).await.unwrap();
    channel.typing(&private("42"), false).await.unwrap();
    channel.send(&private("42"), "Hello, Ada.", "m1:0").await.unwrap();
    let sent = api.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].chat_id, sent[0].text.as_str()), (42, "Hello, Ada."));
    assert_eq!(api.actions(), [(42, "typing".to_owned())]);
    // A chat the bot cannot write to is a definite answer: not retried.
    match channel.send(&private("999"), "to nobody", "m2:0").await {
        Err(SendError::Fatal(message)) => assert!(message.contains("chat not found"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// Sends as the dispatcher does: again with the same key on `Retry`, never after `Fatal`.
async fn send_until_done(
    channel: &Telegram,
    to: &Conversation,
    text: &str,
) -> (Result<(), SendError>, Vec<SendError>) {
    let mut retries = Vec::new();
    for _ in 0..10 {
        match channel.send(to, text, "m:0").await {
            Err(error @ SendError::Retry { .. }) => {
                retries.push(error);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            done => return (done, retries),
        }
    }
    panic!("never done: {retries:?}");
}

#[tokio::test]
async fn two_500s_then_success_post_exactly_one_message() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let channel = Telegram::new(settings(&api, TOKEN, state.path())).unwrap();
    api.push(Message::private(ada()).text("hi"));
    api.fail_next("sendMessage", 2, Fault::Internal);
    let (done, retries) = send_until_done(&channel, &private("42"), "once only").await;
    done.unwrap();
    assert_eq!(retries.len(), 2);
    assert_eq!(api.calls("sendMessage"), 3);
    assert_eq!(api.sent().iter().filter(|s| s.text == "once only").count(), 1);
}

#[tokio::test]
async fn connect_refused_is_retried_and_a_dropped_answer_too() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let channel = Telegram::new(settings(&api, TOKEN, state.path())).unwrap();
    api.push(Message::private(ada()).text("hi"));
    api.stop().await;
    match channel.send(&private("42"), "x", "k").await {
        Err(SendError::Retry { message, .. }) => {
            assert!(message.contains("cannot connect"), "{message}");
            assert!(!message.contains(TOKEN) && !message.contains("/bot"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    api.restart().await.unwrap();
    api.fail_next("sendMessage", 1, Fault::Disconnect);
    assert!(matches!(channel.send(&private("42"), "x", "k").await, Err(SendError::Retry { .. })));
    channel.send(&private("42"), "x", "k").await.unwrap();
    assert_eq!(api.sent().len(), 1);
}

#[tokio::test]
async fn rate_limited_send_carries_retry_after() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let channel = Telegram::new(settings(&api, TOKEN, state.path())).unwrap();
    api.push(Message::private(ada()).text("hi"));
    api.fail_next("sendMessage", 1, Fault::TooManyRequests { retry_after: 3 });
    match channel.send(&private("42"), "slowly", "k").await {
        Err(SendError::Retry { after, message }) => {
            assert_eq!(after, Some(Duration::from_secs(3)), "{message}");
        }
        other => panic!("{other:?}"),
    }
    channel.send(&private("42"), "slowly", "k").await.unwrap();
    assert_eq!(api.sent().len(), 1);
}

#[tokio::test]
async fn rate_limited_poll_waits_retry_after() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    api.push(Message::private(ada()).text("patience"));
    api.fail_next("getUpdates", 1, Fault::TooManyRequests { retry_after: 2 });
    let started = Instant::now();
    let mut running = Running::start(&api, TOKEN, state.path());
    assert_eq!(running.next().await.text, "patience");
    // A lower bound only: the channel waited what the server asked before polling again.
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn server_gone_mid_poll_and_back_loses_nothing_and_repeats_nothing() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut running = Running::start(&api, TOKEN, state.path());
    api.push(Message::private(ada()).text("one"));
    assert_eq!(running.next().await.text, "one");
    // The next long poll is held by the server when it goes away.
    wait_until("a second poll is held", || api.calls("getUpdates") >= 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.stop().await;
    api.push(Message::private(ada()).text("two"));
    api.push(Message::group(-9, "G", ada()).text("three"));
    let health = running.health.clone();
    wait_until("the channel reports the outage", || !health.snapshot().connected).await;
    let last_error = health.snapshot().last_error.unwrap();
    assert!(!last_error.contains(TOKEN) && !last_error.contains("/bot"), "{last_error}");
    api.restart().await.unwrap();
    assert_eq!(running.next().await.text, "two");
    assert_eq!(running.next().await.text, "three");
    api.push(Message::private(ada()).text("four"));
    assert_eq!(running.next().await.text, "four");
    wait_until("every update is confirmed", || api.pending() == 0).await;
    running.quiet(Duration::from_millis(500)).await;
    assert!(running.health.snapshot().connected);
    assert_eq!(running.health.snapshot().inbound_total, 4);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn restart_on_the_same_state_dir_resumes_from_the_stored_offset() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    api.push(Message::private(ada()).text("one"));
    let last = api.push(Message::private(ada()).text("two"));
    let mut first = Running::start(&api, TOKEN, state.path());
    assert_eq!(first.next().await.text, "one");
    let (two, ack) = first.next_unacked().await;
    assert_eq!(two.text, "two");
    // The poll that would confirm them fails: only the stored offset knows they were handled.
    api.fail_next("getUpdates", 1000, Fault::Internal);
    ack.send(()).unwrap();
    let failed_before = api.requests().iter().filter(|c| c.status == 500).count();
    wait_until("the confirming poll failed", || {
        api.requests().iter().filter(|c| c.status == 500).count() > failed_before
    })
    .await;
    first.stop().await.unwrap();
    assert_eq!(api.pending(), 2, "the server still holds both updates");

    api.clear_faults();
    let mut second = Running::start(&api, TOKEN, state.path());
    let polls_before = api.requests().len();
    api.push(Message::private(ada()).text("three"));
    assert_eq!(second.next().await.text, "three");
    let first_poll = api.requests()[polls_before..]
        .iter()
        .find(|c| c.method == "getUpdates")
        .map(|c| c.params["offset"].clone())
        .unwrap();
    assert_eq!(first_poll, json!(last.update_id + 1));
    second.quiet(Duration::from_millis(500)).await;
    second.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_not_acknowledged_before_a_stop_comes_again_and_the_one_before_does_not() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    api.push(Message::private(ada()).text("one"));
    api.push(Message::private(ada()).text("two"));
    let mut first = Running::start(&api, TOKEN, state.path());
    assert_eq!(first.next().await.text, "one");
    // "two" is handed over but never recorded: the gateway stops first.
    let (two, _unacknowledged) = first.next_unacked().await;
    assert_eq!(two.text, "two");
    first.stop().await.unwrap();

    let mut second = Running::start(&api, TOKEN, state.path());
    let again = second.next().await;
    assert_eq!((again.text.as_str(), again.id.as_str()), ("two", two.id.as_str()));
    second.quiet(Duration::from_millis(500)).await;
    second.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_token_is_fatal_and_the_error_does_not_contain_it() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let wrong = "654321:ZYX-wrongwrongwrong-abcdef";
    let running = Running::start(&api, wrong, state.path());
    let health = running.health.clone();
    let channel = Arc::clone(&running.channel);
    let result = tokio::time::timeout(PATIENCE, running.task).await.unwrap().unwrap();
    let Err(ChannelError::Fatal(message)) = result else { panic!("{result:?}") };
    assert!(message.contains("botToken"), "{message}");
    for text in [message.clone(), health.snapshot().last_error.unwrap(), format!("{channel:?}")] {
        assert!(!text.contains(wrong) && !text.contains("wrongwrong"), "{text}");
    }
    match channel.send(&private("42"), "hi", "k").await {
        Err(SendError::Fatal(message)) => assert!(!message.contains(wrong), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_reply_over_the_limit_is_refused_by_the_server_and_fatal() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let channel = Telegram::new(settings(&api, TOKEN, state.path())).unwrap();
    assert_eq!(channel.text_limit(), 4096);
    api.push(Message::private(ada()).text("hi"));
    match channel.send(&private("42"), &"x".repeat(5000), "k").await {
        Err(SendError::Fatal(message)) => {
            assert!(message.contains("message is too long"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    channel.send(&private("42"), &"é".repeat(channel.text_limit()), "k").await.unwrap();
    assert_eq!(api.sent().len(), 1);
}

#[tokio::test]
async fn hostile_answers_and_updates_do_not_stop_the_channel() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    api.fail_next("getUpdates", 1, Fault::Raw { status: 200, body: vec![0xff, 0x00, 0xfe, b'{'] });
    api.fail_next(
        "getUpdates",
        1,
        Fault::Raw { status: 502, body: b"<html>Bad Gateway</html>".to_vec() },
    );
    api.fail_next(
        "getUpdates",
        1,
        Fault::Raw {
            status: 200,
            body: format!("{{\"ok\":true,\"result\":[\"{}\"]}}", "a".repeat(17 << 20)).into_bytes(),
        },
    );
    api.push_raw(json!({ "message": "not a message" }));
    api.push_raw(json!({ "update_id": "x" }));
    api.push_raw(json!({ "message": { "message_id": 1, "chat": { "id": 1, "type": "private" }, "text": 5 } }));
    api.push(Message::private(ada()).text(&"long ".repeat(2000)));
    let mut running = Running::start(&api, TOKEN, state.path());
    let inbound = running.next().await;
    assert_eq!(inbound.text.chars().count(), 4096);
    wait_until("every update is confirmed", || api.pending() == 0).await;
    assert!(running.health.snapshot().last_error.is_some());
    running.quiet(Duration::from_millis(300)).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_vanished_server_is_retried_until_stopped() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    api.stop().await;
    let running = Running::start(&api, TOKEN, state.path());
    let health = running.health.clone();
    wait_until("the outage is reported", || health.snapshot().last_error.is_some()).await;
    let snapshot = health.snapshot();
    assert!(!snapshot.connected);
    assert!(snapshot.last_error.unwrap().contains("cannot connect"));
    // Stopping while it backs off is prompt, and it is not an error.
    running.stop().await.unwrap();
}

// === the local server keeps to the documented shapes ===

/// One raw Bot API call: POST with a JSON body (`None`: a GET with `query`).
async fn raw_call(
    api: &BotApi,
    token: &str,
    method: &str,
    body: Option<serde_json::Value>,
    query: &str,
) -> (u16, serde_json::Value) {
    hearth_upstream::client::install_crypto();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/bot{token}/{method}{query}", api.api_root());
    let request = match body {
        Some(body) => {
            client.post(url).header("content-type", "application/json").body(body.to_string())
        }
        None => client.get(url),
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn bot_api_server_answers_in_the_documented_envelopes() {
    let api = BotApi::start(TOKEN, USERNAME).await.unwrap();
    let (status, me) = raw_call(&api, TOKEN, "getMe", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(me["ok"], json!(true));
    assert_eq!(me["result"]["id"], json!(123_456));
    assert_eq!(me["result"]["is_bot"], json!(true));
    assert_eq!(me["result"]["username"], json!(USERNAME));
    assert_eq!(
        raw_call(&api, TOKEN, "GETME", None, "").await.0,
        200,
        "method names are case-insensitive"
    );
    assert_eq!(
        raw_call(&api, "1:wrong", "getMe", None, "").await,
        (401, json!({ "ok": false, "error_code": 401, "description": "Unauthorized" }))
    );
    assert_eq!(
        raw_call(&api, TOKEN, "sendTelepathy", None, "").await,
        (404, json!({ "ok": false, "error_code": 404, "description": "Not Found" }))
    );

    let pushed = api.push(Message::private(ada()).text("hi"));
    // Query-string parameters, percent-encoded.
    let (status, sent) =
        raw_call(&api, TOKEN, "sendMessage", None, "?chat_id=42&text=hi%20there").await;
    assert_eq!(
        (status, &sent["result"]["text"], &sent["result"]["chat"]["id"]),
        (200, &json!("hi there"), &json!(42))
    );
    assert_eq!(sent["result"]["from"]["is_bot"], json!(true));
    let too_long = "x".repeat(4097);
    for (body, description) in [
        (json!({ "chat_id": 42, "text": "" }), "Bad Request: message text is empty"),
        (json!({ "chat_id": 42, "text": too_long }), "Bad Request: message is too long"),
        (json!({ "chat_id": 999, "text": "hi" }), "Bad Request: chat not found"),
        (json!({ "text": "hi" }), "Bad Request: chat_id is empty"),
        (
            json!({ "chat_id": 42, "text": "hi", "reply_parameters": { "message_id": 777 } }),
            "Bad Request: message to be replied not found",
        ),
    ] {
        let (status, answer) = raw_call(&api, TOKEN, "sendMessage", Some(body), "").await;
        assert_eq!(
            (status, answer),
            (400, json!({ "ok": false, "error_code": 400, "description": description }))
        );
    }
    let (_, reply) = raw_call(&api, TOKEN, "sendMessage", Some(json!({ "chat_id": "42", "text": "re", "reply_parameters": { "message_id": pushed.message_id } })), "").await;
    assert_eq!(reply["result"]["reply_to_message"]["text"], json!("hi"));
    let (_, reply) = raw_call(&api, TOKEN, "sendMessage", Some(json!({ "chat_id": 42, "text": "re", "reply_to_message_id": 777, "allow_sending_without_reply": true })), "").await;
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(
        raw_call(
            &api,
            TOKEN,
            "sendChatAction",
            Some(json!({ "chat_id": 42, "action": "dancing" })),
            ""
        )
        .await
        .0,
        400
    );
    assert_eq!(
        raw_call(
            &api,
            TOKEN,
            "sendChatAction",
            Some(json!({ "chat_id": 42, "action": "typing" })),
            ""
        )
        .await,
        (200, json!({ "ok": true, "result": true }))
    );
    api.fail_next("sendMessage", 1, Fault::TooManyRequests { retry_after: 9 });
    assert_eq!(
        raw_call(&api, TOKEN, "sendMessage", Some(json!({ "chat_id": 42, "text": "x" })), "").await,
        (
            429,
            json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 9", "parameters": { "retry_after": 9 } })
        )
    );
    assert_eq!(api.sent().len(), 3);
}

#[tokio::test]
async fn bot_api_server_long_polls_and_confirms_below_the_offset() {
    let api = Arc::new(BotApi::start(TOKEN, USERNAME).await.unwrap());
    let poll = |body: serde_json::Value| {
        let api = Arc::clone(&api);
        async move { raw_call(&api, TOKEN, "getUpdates", Some(body), "").await }
    };
    let ids = |answer: &serde_json::Value| -> Vec<i64> {
        answer["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["update_id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(poll(json!({})).await, (200, json!({ "ok": true, "result": [] })));
    let u: Vec<i64> = (0..3)
        .map(|i| api.push(Message::private(ada()).text(&format!("m{i}"))).update_id)
        .collect();
    assert_eq!(ids(&poll(json!({ "limit": 2 })).await.1), &u[..2]);
    assert_eq!(
        ids(&poll(json!({ "limit": 2 })).await.1),
        &u[..2],
        "nothing is confirmed without an offset"
    );
    assert_eq!(ids(&poll(json!({ "offset": u[1] + 1 })).await.1), &u[2..]);
    assert_eq!(api.pending(), 1);
    assert_eq!(ids(&poll(json!({ "offset": u[2] + 1 })).await.1), Vec::<i64>::new());
    assert_eq!(api.pending(), 0);

    // A held poll answers as soon as an update arrives.
    let started = Instant::now();
    let held = tokio::spawn(poll(json!({ "offset": u[2] + 1, "timeout": 30 })));
    wait_until("the poll is held", || api.calls("getUpdates") == 6).await;
    let next = api.push(Message::private(ada()).text("wake up"));
    let (_, answer) = held.await.unwrap();
    assert_eq!(ids(&answer), [next.update_id]);
    assert!(started.elapsed() < Duration::from_secs(25));

    // A negative offset keeps only the last updates.
    let more: Vec<i64> =
        (0..3).map(|_| api.push(Message::private(ada()).text("x")).update_id).collect();
    assert_eq!(ids(&poll(json!({ "offset": -1 })).await.1), [more[2]]);
    assert_eq!(api.pending(), 1);

    // allowed_updates is kept until changed; updates of other kinds are not created.
    poll(json!({ "offset": more[2] + 1, "allowed_updates": ["edited_message"] })).await;
    api.push(Message::private(ada()).text("filtered"));
    assert_eq!(api.pending(), 0);
    poll(json!({ "allowed_updates": [] })).await;
    api.push(Message::private(ada()).text("every kind"));
    assert_eq!(api.pending(), 1);

    // A second poll ends the held one with 409.
    let calls = api.calls("getUpdates");
    let first = tokio::spawn(poll(json!({ "offset": i64::MAX, "timeout": 30 })));
    wait_until("the first poll is held", || api.calls("getUpdates") == calls + 1).await;
    poll(json!({ "offset": i64::MAX })).await;
    let (status, answer) = first.await.unwrap();
    assert_eq!(status, 409);
    assert!(
        answer["description"]
            .as_str()
            .unwrap()
            .starts_with("Conflict: terminated by other getUpdates request")
    );
}
