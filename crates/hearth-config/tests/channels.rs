//! `channels` and `session`: OpenClaw's keys, defaults, accounts over channel keys, and the
//! refusals (an `open` DM policy without `"*"`, a webhook without a secret). See: #17
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use hearth_config::{
    ChannelKind, ChannelSettings, Config, DmPolicy, DmScope, GroupPolicy, RawAutoJoin, Secret,
    Severity, load_str,
};

fn config(text: &str) -> Config {
    let loaded = load_str("test.json5", text, &BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    loaded.config.unwrap()
}

fn errors(text: &str) -> Vec<String> {
    let loaded = load_str("test.json5", text, &BTreeMap::<String, String>::new());
    assert!(loaded.config.is_none(), "expected errors: {:#?}", loaded.diagnostics);
    loaded.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect()
}

#[test]
fn a_webhook_section_is_one_default_account_with_openclaw_defaults() {
    let c = config(r#"{channels: {webhook: {secret: "0123456789abcdef-webhook"}}}"#);
    assert_eq!(c.channels.accounts.len(), 1);
    let a = &c.channels.accounts[0];
    assert_eq!((a.channel, a.account.as_str(), a.enabled), (ChannelKind::Webhook, "default", true));
    assert_eq!(a.access.dm_policy, DmPolicy::Pairing);
    assert_eq!(a.access.group_policy, GroupPolicy::Allowlist);
    assert!(a.access.allow_from.is_empty());
    let ChannelSettings::Webhook(w) = &a.settings else { panic!("{a:?}") };
    assert_eq!(w.max_skew_secs, 300);
    assert!(w.outbound_url.is_none());
    assert_eq!(c.session.dm_scope, DmScope::Main);
}

#[test]
fn accounts_take_their_own_keys_over_the_channels() {
    let c = config(
        r#"{channels: {defaults: {groupPolicy: "open"}, webhook: {
            secret: "channel-wide-secret-0001", dmPolicy: "allowlist", allowFrom: ["alice", 42],
            groups: {"*": {requireMention: false}}, textChunkLimit: 500,
            accounts: {
              a: {},
              b: {secret: "account-b-secret-00002", dmPolicy: "pairing", allowFrom: ["bob"], groupPolicy: "disabled",
                  outboundUrl: "http://127.0.0.1:9/out", maxSkewSeconds: 60, enabled: false},
            }}},
          session: {dmScope: "per-account-channel-peer"}}"#,
    );
    assert_eq!(c.session.dm_scope, DmScope::PerAccountChannelPeer);
    let a = c.channels.get(ChannelKind::Webhook, "a").unwrap();
    assert_eq!(a.access.dm_policy, DmPolicy::Allowlist);
    assert_eq!(a.access.allow_from, ["alice", "42"]);
    assert_eq!(a.access.group_policy, GroupPolicy::Open, "channels.defaults.groupPolicy");
    assert!(!a.access.groups["*"].require_mention);
    assert_eq!(a.text_chunk_limit, Some(500));
    let b = c.channels.get(ChannelKind::Webhook, "b").unwrap();
    assert!(!b.enabled);
    assert_eq!(b.access.dm_policy, DmPolicy::Pairing);
    assert_eq!(b.access.allow_from, ["bob"]);
    assert_eq!(b.access.group_policy, GroupPolicy::Disabled);
    let ChannelSettings::Webhook(w) = &b.settings else { panic!() };
    assert_eq!(w.max_skew_secs, 60);
    assert_eq!(w.outbound_url.as_deref(), Some("http://127.0.0.1:9/out"));
    assert!(c.channels.get(ChannelKind::Webhook, "default").is_none(), "accounts replace default");
}

#[test]
fn open_needs_a_star_in_allow_from() {
    let e = errors(r#"{channels: {webhook: {secret: "0123456789abcdef-x", dmPolicy: "open"}}}"#);
    assert!(e.iter().any(|e| e.contains("open-dm-policy") && e.contains("\"*\"")), "{e:?}");
    let c = config(
        r#"{channels: {webhook: {secret: "0123456789abcdef-x", dmPolicy: "open", allowFrom: ["*"]}}}"#,
    );
    assert_eq!(c.channels.accounts[0].access.dm_policy, DmPolicy::Open);
}

#[test]
fn refusals_name_the_key() {
    let e = errors(r#"{channels: {webhook: {}}}"#);
    assert!(e.iter().any(|e| e.contains("secret")), "{e:?}");
    let e = errors(r#"{channels: {webhook: {secret: "0123456789abcdef-x", dmPolicy: "pairng"}}}"#);
    assert!(e.iter().any(|e| e.contains("did you mean `pairing`")), "{e:?}");
    let e =
        errors(r#"{channels: {webhook: {secret: "0123456789abcdef-x", outboundUrl: "ftp://x"}}}"#);
    assert!(e.iter().any(|e| e.contains("outboundUrl")), "{e:?}");
    let e = errors(r#"{channels: {webhook: {secret: "0123456789abcdef-x", textChunkLimit: 0}}}"#);
    assert!(e.iter().any(|e| e.contains("textChunkLimit")), "{e:?}");
    let e =
        errors(r#"{channels: {webhook: {secret: "0123456789abcdef-x", accounts: {"../x": {}}}}}"#);
    assert!(e.iter().any(|e| e.contains("account id")), "{e:?}");
    let e = errors(r#"{channels: {matrix: {accessToken: "syt_abcdefgh"}}}"#);
    assert!(e.iter().any(|e| e.contains("homeserver")), "{e:?}");
    let e = errors(r#"{session: {dmScope: "per-sender"}}"#);
    assert!(e.iter().any(|e| e.contains("dmScope")), "{e:?}");
}

#[test]
fn matrix_reads_dm_policy_and_its_own_keys() {
    let c = config(
        r#"{channels: {matrix: {homeserver: "http://127.0.0.1:8008/", accessToken: "syt_abcdefgh",
            dm: {policy: "allowlist", allowFrom: ["@a:x"]}, allowFrom: ["@b:x"], autoJoin: "always",
            network: {dangerouslyAllowPrivateNetwork: true}, groups: {"!room:x": {allowFrom: ["@c:x"]}}}}}"#,
    );
    let a = &c.channels.accounts[0];
    assert_eq!(a.access.dm_policy, DmPolicy::Allowlist);
    assert_eq!(a.access.allow_from, ["@b:x", "@a:x"]);
    assert!(a.access.groups["!room:x"].require_mention, "requireMention defaults to true");
    assert_eq!(a.access.groups["!room:x"].allow_from, ["@c:x"]);
    let ChannelSettings::Matrix(m) = &a.settings else { panic!() };
    assert_eq!(m.homeserver.as_deref(), Some("http://127.0.0.1:8008"));
    assert_eq!(m.auto_join, RawAutoJoin::Always);
    assert!(m.allow_private_network);
    assert!(!format!("{m:?}").contains("syt_abcdefgh"), "the token never prints");
}

#[test]
fn telegram_token_falls_back_to_the_variable_for_the_default_account_only() {
    let c = config(r#"{channels: {telegram: {}}}"#);
    let ChannelSettings::Telegram(t) = &c.channels.accounts[0].settings else { panic!() };
    assert_eq!(t.bot_token, Some(Secret::Env("TELEGRAM_BOT_TOKEN".into())));
    assert_eq!(t.api_root, "https://api.telegram.org");
    let c = config(
        r#"{channels: {telegram: {apiRoot: "http://127.0.0.1:8081", accounts: {default: {}, other: {}, own: {botToken: "123:abcdefghij"}}}}}"#,
    );
    let token = |id: &str| match &c.channels.get(ChannelKind::Telegram, id).unwrap().settings {
        ChannelSettings::Telegram(t) => (t.bot_token.clone(), t.api_root.clone()),
        _ => panic!(),
    };
    assert_eq!(token("default").0, Some(Secret::Env("TELEGRAM_BOT_TOKEN".into())));
    assert_eq!(token("other").0, None);
    assert!(matches!(token("own").0, Some(Secret::Literal(_))));
    assert_eq!(token("own").1, "http://127.0.0.1:8081");
}

#[test]
fn other_channels_load_with_a_warning_naming_the_doc() {
    let loaded = load_str(
        "t.json5",
        r#"{channels: {whatsapp: {dmPolicy: "pairing"}, discord: {}, someday: {}}}"#,
        &BTreeMap::<String, String>::new(),
    );
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(warnings[0].contains("whatsapp") && warnings[0].contains("docs/channels.md"));
    assert!(warnings[1].contains("discord") && warnings[1].contains("docs/channels.md"));
    assert!(loaded.config.unwrap().channels.accounts.is_empty());
}
