//! Unit tests of the Matrix channel's pure parts: homeserver checks, event classification,
//! mention detection, transaction ids. The behavior against a real Synapse is in
//! `tests/matrix.rs`.

use serde_json::json;

use super::*;

fn me() -> Me {
    Me {
        user_id: "@hearthbot:hearth.test".to_owned(),
        localpart: "hearthbot".to_owned(),
        display_name: Some("Hearth Helper".to_owned()),
    }
}

fn event(sender: &str, content: Value) -> RawEvent {
    RawEvent {
        kind: EVENT_MESSAGE.to_owned(),
        sender: sender.to_owned(),
        event_id: "$e1".to_owned(),
        content,
        ..RawEvent::default()
    }
}

/// The single place that exercises mention detection through `classify`.
#[track_caller]
fn check_mention(content: Value, expected: bool) {
    match classify(&event("@alice:hearth.test", content.clone()), &me()) {
        Verdict::Deliver(candidate) => assert_eq!(candidate.mentioned, expected, "{content}"),
        other => panic!("expected delivery of {content}, got {other:?}"),
    }
}

#[test]
fn mentions_are_found_in_m_mentions_user_id_localpart_and_display_name() {
    check_mention(json!({"msgtype": "m.text", "body": "hello all"}), false);
    check_mention(
        json!({"msgtype": "m.text", "body": "hi", "m.mentions": {"user_ids": ["@hearthbot:hearth.test"]}}),
        true,
    );
    check_mention(
        json!({"msgtype": "m.text", "body": "hi", "m.mentions": {"user_ids": ["@bob:hearth.test"]}}),
        false,
    );
    check_mention(json!({"msgtype": "m.text", "body": "ask @HearthBot:hearth.test"}), true);
    check_mention(json!({"msgtype": "m.text", "body": "hearthbot, what time is it?"}), true);
    check_mention(json!({"msgtype": "m.text", "body": "hey Hearth Helper!"}), true);
    // A word that merely contains the localpart is not a mention.
    check_mention(json!({"msgtype": "m.text", "body": "myhearthbots are great"}), false);
    check_mention(
        json!({"msgtype": "m.text", "body": "Helper", "formatted_body":
            "<a href=\"https://matrix.to/#/%40hearthbot%3Ahearth.test\">Helper</a>"}),
        true,
    );
}

#[test]
fn own_edits_notices_images_and_huge_bodies_are_skipped() {
    let me = me();
    let own = event("@hearthbot:hearth.test", json!({"msgtype": "m.text", "body": "x"}));
    assert_eq!(classify(&own, &me), Verdict::Skip("own message"));
    let edit = event(
        "@alice:hearth.test",
        json!({"msgtype": "m.text", "body": "* x", "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}}),
    );
    assert_eq!(classify(&edit, &me), Verdict::Skip("edit"));
    let notice = event("@alice:hearth.test", json!({"msgtype": "m.notice", "body": "x"}));
    assert_eq!(classify(&notice, &me), Verdict::Skip("notice"));
    let image = event("@alice:hearth.test", json!({"msgtype": "m.image", "body": "cat.png"}));
    assert_eq!(classify(&image, &me), Verdict::Skip("not text"));
    let redacted = event("@alice:hearth.test", json!({}));
    assert_eq!(classify(&redacted, &me), Verdict::Skip("redacted or empty"));
    let huge = event(
        "@alice:hearth.test",
        json!({"msgtype": "m.text", "body": "a".repeat(MAX_BODY_BYTES + 1)}),
    );
    assert_eq!(classify(&huge, &me), Verdict::Skip("too large"));
    let binary = event("@alice:hearth.test", json!({"msgtype": "m.text", "body": 42}));
    assert_eq!(classify(&binary, &me), Verdict::Skip("no body"));
    let encrypted = RawEvent { kind: EVENT_ENCRYPTED.to_owned(), ..own };
    assert_eq!(classify(&encrypted, &me), Verdict::Encrypted);
}

#[test]
fn a_reply_names_its_parent() {
    let reply = event(
        "@alice:hearth.test",
        json!({"msgtype": "m.text", "body": "> quoted\n\nyes", "m.relates_to": {"m.in_reply_to": {"event_id": "$parent"}}}),
    );
    match classify(&reply, &me()) {
        Verdict::Deliver(c) => assert_eq!(c.reply_to.as_deref(), Some("$parent")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn private_homeservers_need_the_key_and_public_http_is_refused() {
    for url in [
        "http://127.0.0.1:8008",
        "http://localhost:8008",
        "http://192.168.1.5",
        "http://[::1]:8008",
        "https://matrix.lan",
    ] {
        let Err(ChannelError::Fatal(message)) = check_homeserver(url, false) else {
            panic!("{url} accepted without the key")
        };
        assert!(message.contains(PRIVATE_NETWORK_KEY), "{message}");
        assert!(check_homeserver(url, true).is_ok(), "{url}");
    }
    for url in ["http://169.254.169.254", "http://[fe80::1]"] {
        assert!(check_homeserver(url, true).is_err(), "{url}");
    }
    assert!(check_homeserver("http://matrix.example.org", true).is_err());
    assert!(check_homeserver("ftp://matrix.example.org", true).is_err());
    assert!(check_homeserver("not a url", true).is_err());
    assert_eq!(
        check_homeserver("https://matrix.example.org/", false).ok().as_deref(),
        Some("https://matrix.example.org")
    );
    assert_eq!(
        check_homeserver("https://example.org/matrix/", false).ok().as_deref(),
        Some("https://example.org/matrix")
    );
}

#[test]
fn transaction_ids_are_stable_url_safe_and_bounded() {
    assert_eq!(txn_id("r1-0"), txn_id("r1-0"));
    assert_ne!(txn_id("r1-0"), txn_id("r1-1"));
    for key in ["r1-0", "a/b?c#d", "", "ü", &"k".repeat(500)] {
        let id = txn_id(key);
        assert!(id.len() <= 71, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)), "{id}");
    }
    assert_ne!(txn_id("a/b"), txn_id("a_b"));
}

#[test]
fn a_corrupt_cursor_file_means_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SINCE_FILE);
    assert_eq!(read_since(&path), None);
    crate::state_file::write_atomic(&path, b"s72594_4483_1934").unwrap();
    assert_eq!(read_since(&path).as_deref(), Some("s72594_4483_1934"));
    std::fs::write(&path, b"\x00\x01binary").unwrap();
    assert_eq!(read_since(&path), None);
    std::fs::write(&path, "x".repeat(10_000)).unwrap();
    assert_eq!(read_since(&path), None);
}

#[test]
fn secrets_stay_out_of_debug() {
    let settings = MatrixSettings {
        account: "default".to_owned(),
        homeserver: "https://matrix.example.org".to_owned(),
        access_token: Some(Secret("syt_very_secret".to_owned())),
        user_id: None,
        password: Some(Secret("hunter2".to_owned())),
        auto_join: AutoJoin::Always,
        allow_private_network: false,
        state_dir: std::env::temp_dir().join("hearth-matrix-debug-test"),
        auto_join_allowlist: Vec::new(),
    };
    let matrix = Matrix::new(settings).unwrap();
    let debug = format!("{matrix:?}");
    assert!(!debug.contains("syt_very_secret") && !debug.contains("hunter2"), "{debug}");
}

#[test]
fn the_auto_join_allowlist_takes_rooms_aliases_senders_and_a_wildcard() {
    let list: Vec<String> = ["!ops:hearth.test", "#support:hearth.test", "@alice:hearth.test"]
        .map(str::to_owned)
        .to_vec();
    assert!(invite_allowed(&list, "!ops:hearth.test", None, "@eve:hearth.test"));
    assert!(invite_allowed(
        &list,
        "!x:hearth.test",
        Some("#Support:hearth.test"),
        "@eve:hearth.test"
    ));
    assert!(invite_allowed(&list, "!x:hearth.test", None, "@alice:hearth.test"));
    assert!(!invite_allowed(&list, "!x:hearth.test", None, "@eve:hearth.test"));
    assert!(!invite_allowed(&list, "!x:hearth.test", None, ""));
    assert!(!invite_allowed(&[], "!x:hearth.test", None, "@alice:hearth.test"));
    assert!(invite_allowed(&["*".to_owned()], "!x:hearth.test", None, ""));
}

#[test]
fn a_fresh_join_starts_after_the_invite_or_the_join() {
    let me = "@hearthbot:hearth.test";
    let member = |membership: &str, prev: Option<&str>| RawEvent {
        kind: EVENT_MEMBER.to_owned(),
        state_key: Some(me.to_owned()),
        content: json!({"membership": membership}),
        unsigned: prev.map_or(Value::Null, |p| json!({"prev_content": {"membership": p}})),
        ..RawEvent::default()
    };
    let text = || event("@alice:hearth.test", json!({"msgtype": "m.text", "body": "x"}));
    // Already joined: everything is new.
    assert_eq!(first_new_event(&[text(), text()], me), None);
    // A display name change is not a join.
    assert_eq!(first_new_event(&[text(), member("join", Some("join")), text()], me), None);
    // Joined in this batch: history before the join is not for the bot.
    assert_eq!(first_new_event(&[text(), member("join", Some("invite")), text()], me), Some(2));
    // With the invite in view, what was said after it is.
    let events = [text(), member("invite", None), text(), member("join", Some("invite")), text()];
    assert_eq!(first_new_event(&events, me), Some(2));
}
