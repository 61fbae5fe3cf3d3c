use super::*;

const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";

fn channel() -> Telegram {
    Telegram::new(TelegramSettings {
        account: "default".into(),
        bot_token: Secret(TOKEN.into()),
        api_root: "http://127.0.0.1:9/".into(),
        username: None,
        state_dir: std::env::temp_dir(),
    })
    .unwrap()
}

fn me() -> Me {
    Me { id: 123456, username: Some("hearth_bot".into()) }
}

/// The single place that turns an update into an inbound message.
#[track_caller]
fn check(update: Value, expected: Option<(&str, ConversationKind, &str, bool)>) {
    let inbound = channel().to_inbound(&update, &me());
    match (inbound, expected) {
        (None, None) => {}
        (Some(inbound), Some((id, kind, text, mentioned))) => {
            assert_eq!(inbound.id, id);
            assert_eq!(inbound.conversation.kind, kind);
            assert_eq!(inbound.text, text);
            assert_eq!(inbound.mentioned, mentioned, "mentioned");
        }
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

fn group_message(text: &str, entities: Value) -> Value {
    json!({ "update_id": 1, "message": {
        "message_id": 7, "date": 0, "text": text, "entities": entities,
        "from": { "id": 42, "is_bot": false, "first_name": "Ada" },
        "chat": { "id": -1001, "type": "supergroup", "title": "Home" },
    }})
}

#[test]
fn private_text_is_direct_with_chat_and_message_id() {
    check(
        json!({ "update_id": 1, "message": {
            "message_id": 3, "date": 0, "text": "hi",
            "from": { "id": 42, "is_bot": false, "first_name": "Ada", "last_name": "L" },
            "chat": { "id": 42, "type": "private", "first_name": "Ada" },
        }}),
        Some(("42:3", ConversationKind::Direct, "hi", false)),
    );
}

#[test]
fn mention_entity_of_the_bot_counts_case_insensitively() {
    let entities = json!([{ "type": "mention", "offset": 3, "length": 11 }]);
    check(
        group_message("hi @Hearth_Bot", entities),
        Some(("-1001:7", ConversationKind::Group, "hi @Hearth_Bot", true)),
    );
}

#[test]
fn mention_of_someone_else_does_not_count() {
    let entities = json!([{ "type": "mention", "offset": 0, "length": 6 }]);
    check(
        group_message("@other hi", entities),
        Some(("-1001:7", ConversationKind::Group, "@other hi", false)),
    );
}

#[test]
fn mention_offsets_count_utf16_units() {
    // "🙂" is two UTF-16 units: the mention starts at unit 3, not at char 2.
    let entities = json!([{ "type": "mention", "offset": 3, "length": 11 }]);
    check(
        group_message("🙂 @hearth_bot", entities),
        Some(("-1001:7", ConversationKind::Group, "🙂 @hearth_bot", true)),
    );
}

#[test]
fn entities_outside_the_text_are_ignored() {
    let entities = json!([
        { "type": "mention", "offset": 50, "length": 11 },
        { "type": "mention", "offset": -1, "length": 3 },
        { "type": "mention", "offset": 9_223_372_036_854_775_807_i64, "length": 9_223_372_036_854_775_807_i64 },
    ]);
    check(
        group_message("hello", entities),
        Some(("-1001:7", ConversationKind::Group, "hello", false)),
    );
}

#[test]
fn text_mention_of_the_bot_counts() {
    let entities = json!([{ "type": "text_mention", "offset": 0, "length": 6, "user": { "id": 123456, "is_bot": true, "first_name": "Hearth" } }]);
    check(
        group_message("Hearth, hi", entities),
        Some(("-1001:7", ConversationKind::Group, "Hearth, hi", true)),
    );
}

#[test]
fn command_addressed_to_the_bot_counts() {
    let entities = json!([{ "type": "bot_command", "offset": 0, "length": 18 }]);
    check(
        group_message("/status@hearth_bot", entities.clone()),
        Some(("-1001:7", ConversationKind::Group, "/status@hearth_bot", true)),
    );
    let entities = json!([{ "type": "bot_command", "offset": 0, "length": 7 }]);
    check(
        group_message("/status", entities),
        Some(("-1001:7", ConversationKind::Group, "/status", false)),
    );
}

#[test]
fn reply_to_the_bot_counts() {
    let mut update = group_message("and then?", json!([]));
    update["message"]["reply_to_message"] = json!({
        "message_id": 5, "date": 0, "text": "earlier",
        "from": { "id": 123456, "is_bot": true, "first_name": "Hearth" },
        "chat": { "id": -1001, "type": "supergroup" },
    });
    check(update, Some(("-1001:7", ConversationKind::Group, "and then?", true)));
}

#[test]
fn photos_stickers_channels_and_malformed_updates_are_skipped() {
    let mut photo = group_message("", json!([]));
    photo["message"].as_object_mut().unwrap().remove("text");
    photo["message"]["photo"] = json!([{ "file_id": "x" }]);
    check(photo, None);
    let mut channel_post = group_message("news", json!([]));
    channel_post["message"]["chat"]["type"] = json!("channel");
    check(channel_post, None);
    check(json!({ "update_id": 1, "edited_message": {} }), None);
    check(json!({ "update_id": "one", "message": 3 }), None);
    check(json!([1, 2]), None);
    let mut no_sender = group_message("hi", json!([]));
    no_sender["message"].as_object_mut().unwrap().remove("from");
    check(no_sender, None);
}

#[test]
fn over_long_text_is_cut_to_the_limit() {
    let long = "é".repeat(MAX_INBOUND_CHARS + 10);
    let inbound = channel().to_inbound(&group_message(&long, json!([])), &me()).unwrap();
    assert_eq!(inbound.text.chars().count(), MAX_INBOUND_CHARS);
}

#[test]
fn numeric_conversation_ids_go_out_as_numbers() {
    assert_eq!(chat_id("-1001234"), json!(-1_001_234));
    assert_eq!(chat_id("@channel"), json!("@channel"));
}

#[test]
fn only_answerless_failures_5xx_and_429_are_retried() {
    let t = channel();
    let api = |status, retry_after| CallError::Api { status, description: "x".into(), retry_after };
    let retried = |e: SendError| matches!(e, SendError::Retry { .. });
    assert!(retried(t.send_failure(
        "sendMessage",
        CallError::Transport { message: "refused".into(), connect: true }
    )));
    assert!(retried(t.send_failure("sendMessage", api(500, None))));
    assert!(retried(t.send_failure("sendMessage", api(502, None))));
    match t.send_failure("sendMessage", api(429, Some(7))) {
        SendError::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    for status in [400, 401, 403, 404, 409] {
        assert!(!retried(t.send_failure("sendMessage", api(status, None))), "{status}");
    }
    assert!(!retried(
        t.send_failure("sendMessage", CallError::Malformed { status: 200, message: "x".into() })
    ));
    assert!(retried(
        t.send_failure("sendMessage", CallError::Malformed { status: 502, message: "x".into() })
    ));
}

#[test]
fn poll_failures_are_fatal_only_for_a_refused_token() {
    let t = channel();
    let api = |status| CallError::Api { status, description: "x".into(), retry_after: Some(3) };
    assert!(matches!(t.poll_failure(api(401)), PollFailure::Fatal(_)));
    assert!(matches!(t.poll_failure(api(404)), PollFailure::Fatal(_)));
    assert_eq!(
        t.poll_failure(api(429)),
        PollFailure::Retry {
            message: "the Bot API answered 429: x".into(),
            wait: Some(Duration::from_secs(3))
        }
    );
    assert!(matches!(t.poll_failure(api(409)), PollFailure::Retry { .. }));
    assert!(matches!(t.poll_failure(api(500)), PollFailure::Retry { .. }));
}

#[test]
fn the_token_is_not_in_debug_or_redacted_text() {
    let t = channel();
    assert!(!format!("{t:?}").contains("ABC-DEF"));
    assert_eq!(t.redact(&format!("GET /bot{TOKEN}/getMe")), "GET /bot***/getMe");
    assert_eq!(
        t.redact("GET /bot123456%3AABC-DEF1234ghIkl-zyx57W2v1u123ew11/getMe"),
        "GET /bot123456%3A***/getMe"
    );
}

#[test]
fn settings_that_cannot_work_are_fatal_without_the_token() {
    let settings = |token: &str, api_root: &str| TelegramSettings {
        account: "default".into(),
        bot_token: Secret(token.into()),
        api_root: api_root.into(),
        username: None,
        state_dir: std::env::temp_dir(),
    };
    for (token, api_root) in [
        ("", DEFAULT_API_ROOT),
        ("123:abc/../x", DEFAULT_API_ROOT),
        ("123:abc def", DEFAULT_API_ROOT),
        ("123:abc", "not a url"),
        ("123:abc", "ftp://example.org"),
    ] {
        match Telegram::new(settings(token, api_root)) {
            Err(ChannelError::Fatal(message)) => {
                assert!(
                    !token.is_empty() && !message.contains(token) || token.is_empty(),
                    "{message}"
                );
                assert!(message.contains("botToken") || message.contains("apiRoot"), "{message}");
            }
            other => panic!("{token:?} {api_root:?}: {other:?}"),
        }
    }
    assert!(Telegram::new(settings(TOKEN, "")).is_ok());
}

#[test]
fn loopback_and_private_roots_are_local() {
    for (root, local) in [
        ("http://127.0.0.1:8081", true),
        ("http://localhost:8081", true),
        ("http://[::1]:8081", true),
        ("http://10.0.0.2", true),
        ("https://api.telegram.org", false),
    ] {
        assert_eq!(is_local(&reqwest::Url::parse(root).unwrap()), local, "{root}");
    }
}

#[tokio::test]
async fn the_offset_round_trips_and_belongs_to_its_bot() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_offset(dir.path(), 1).await, None);
    store_offset(dir.path(), StoredOffset { bot_id: 1, offset: 77 }).await.unwrap();
    assert_eq!(load_offset(dir.path(), 1).await, Some(77));
    assert_eq!(load_offset(dir.path(), 2).await, None);
    std::fs::write(dir.path().join(OFFSET_FILE), b"\xff{garbage").unwrap();
    assert_eq!(load_offset(dir.path(), 1).await, None);
}
