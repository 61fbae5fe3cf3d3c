//! One test per rule of the model layer: defaults, merge, refs, chains, policy, diagnostics.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;

use hearth_config::{Config, InputKind, ModelRef, Origin, RefError, Severity, load_str};

fn env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn config(text: &str) -> Config {
    let loaded = load_str("test.json5", text, &env());
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    loaded.config.unwrap()
}

fn errors(text: &str) -> Vec<String> {
    let loaded = load_str("test.json5", text, &env());
    assert!(loaded.config.is_none());
    loaded.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect()
}

fn chain(c: &Config, agent: Option<&str>, requested: Option<&str>, strict: bool) -> Vec<String> {
    c.candidate_chain(agent, requested, strict)
        .unwrap()
        .candidates
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn builtin_catalog_loads_without_diagnostics() {
    let loaded = load_str("builtin.json5", hearth_config::resolve::BUILTIN_CATALOG, &env());
    let problems: Vec<_> = loaded.diagnostics.iter().filter(|d| d.code != "missing-env").collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let c = loaded.config.unwrap();
    for id in [
        "anthropic",
        "openai",
        "openrouter",
        "groq",
        "together",
        "mistral",
        "deepseek",
        "huggingface",
        "moonshot",
        "minimax",
        "qwen",
        "xai",
        "fireworks",
        "cerebras",
        "nvidia",
    ] {
        assert!(c.providers.contains_key(id), "built-in provider {id}");
    }
    for (id, port) in [
        ("lmstudio", 1234),
        ("ollama", 11434),
        ("vllm", 8000),
        ("sglang", 30000),
        ("llamacpp", 8080),
        ("litellm", 4000),
    ] {
        let p = &c.providers[id];
        assert_eq!(p.base_url.port(), Some(port), "{id}");
        assert!(p.is_local());
    }
    assert_eq!(c.providers["lmstudio"].api.as_str(), "openai-responses");
    assert_eq!(c.providers["ollama"].api.as_str(), "ollama");
    for m in ["claude-opus-4-6", "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-haiku-4-5"] {
        let row = c.providers["anthropic"].model(m).unwrap_or_else(|| panic!("{m}"));
        assert!(row.cost.is_some() && row.context_window.is_some(), "{m}");
    }
}

#[test]
fn custom_model_defaults() {
    let c = config(
        r#"{models: {providers: {p: {baseUrl: "http://127.0.0.1:9/v1", models: [{id: "m"}]}}}}"#,
    );
    let p = &c.providers["p"];
    assert_eq!(p.api.as_str(), "openai-completions");
    let m = p.model("m").unwrap();
    assert_eq!((m.reasoning, m.max_tokens, m.context_window), (false, 8192, None));
    assert_eq!(m.input, vec![InputKind::Text]);
    assert_eq!(m.cost, Some(Default::default()));
    assert_eq!(m.context_budget(), 200_000);
    assert_eq!(m.name, "m");
}

#[test]
fn provider_max_tokens_and_model_override() {
    let c = config(
        r#"{models: {providers: {p: {baseUrl: "http://h:1/v1", maxTokens: 16384, models: [{id: "a"}, {id: "b", maxTokens: 4096}]}}}}"#,
    );
    assert_eq!(c.providers["p"].model("a").unwrap().max_tokens, 16384);
    assert_eq!(c.providers["p"].model("b").unwrap().max_tokens, 4096);
}

#[test]
fn context_tokens_caps_the_budget() {
    let c = config(
        r#"{models: {providers: {p: {baseUrl: "http://h:1/v1", models: [{id: "a", contextWindow: 131072, contextTokens: 32768}]}}}}"#,
    );
    assert_eq!(c.providers["p"].model("a").unwrap().context_budget(), 32768);
}

#[test]
fn merge_keeps_builtins_and_overrides_field_by_field() {
    let c = config(
        r#"{models: {providers: {anthropic: {timeoutSeconds: 5, models: [{id: "claude-sonnet-4-5", maxTokens: 1000}]}}}}"#,
    );
    let a = &c.providers["anthropic"];
    assert_eq!(a.base_url.as_str(), "https://api.anthropic.com/");
    assert_eq!(a.api.as_str(), "anthropic-messages");
    assert_eq!(a.timeout, Some(std::time::Duration::from_secs(5)));
    let sonnet = a.model("claude-sonnet-4-5").unwrap();
    assert_eq!(sonnet.max_tokens, 1000);
    assert!(sonnet.cost.is_some_and(|cost| cost.input > 0.0), "price kept from the built-in row");
    assert_eq!(sonnet.origin, Origin::Config);
    assert!(a.model("claude-haiku-4-5").is_some());
    assert!(c.providers.contains_key("openai"));
}

#[test]
fn replace_drops_builtins() {
    let c = config(r#"{models: {mode: "replace", providers: {lmstudio: {models: [{id: "x"}]}}}}"#);
    assert_eq!(c.providers.len(), 1);
    assert_eq!(
        c.providers["lmstudio"].base_url.as_str(),
        "http://127.0.0.1:1234/v1",
        "provider defaults still apply"
    );
    assert_eq!(c.providers["lmstudio"].models.len(), 1);
}

#[test]
fn refs_split_on_first_slash_and_strip_nothing() {
    let c = config(
        r#"{models: {providers: {mlx: {baseUrl: "http://127.0.0.1:8080/v1", models: [{id: "mlx-community/Qwen3-30B-A3B-6bit"}]}}}}"#,
    );
    let r = c.resolve_ref("mlx/mlx-community/Qwen3-30B-A3B-6bit").unwrap();
    assert_eq!(r.model_ref, ModelRef::new("mlx", "mlx-community/Qwen3-30B-A3B-6bit"));
    assert_eq!(r.model.id, "mlx-community/Qwen3-30B-A3B-6bit");
    let r = c.resolve_ref("openrouter/openrouter/fusion").unwrap();
    assert_eq!(r.model.id, "openrouter/fusion");
    assert_eq!(r.model.origin, Origin::Synthetic);
    // A built-in provider with a model it does not list still resolves.
    assert_eq!(c.resolve_ref("ollama/llama3.3").unwrap().model_ref.to_string(), "ollama/llama3.3");
    assert_eq!(c.resolve_ref("groq/openai/gpt-oss-120b").unwrap().model.origin, Origin::Builtin);
}

#[test]
fn resolution_order_alias_then_ref_then_unique_id() {
    let c = config(
        r#"{agents: {defaults: {models: {"lmstudio/my-model": {alias: "Local"}}}},
            models: {providers: {lmstudio: {models: [{id: "my-model"}, {id: "only-here"}]},
                                 vllm: {models: [{id: "shared"}]}, sglang: {models: [{id: "shared"}]}}}}"#,
    );
    assert_eq!(
        c.resolve_ref("local").unwrap().model_ref.to_string(),
        "lmstudio/my-model",
        "aliases ignore case"
    );
    assert_eq!(c.resolve_ref("only-here").unwrap().model_ref.to_string(), "lmstudio/only-here");
    assert!(matches!(c.resolve_ref("shared"), Err(RefError::Ambiguous { .. })));
    let err = c.resolve_ref("nosuch/x").unwrap_err();
    assert!(matches!(err, RefError::UnknownProvider { ref provider, .. } if provider == "nosuch"));
    let err = c.resolve_ref("only-her").unwrap_err();
    match err {
        RefError::UnknownModel { candidates, .. } => {
            assert!(candidates.contains(&"lmstudio/only-here".to_owned()))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn builtin_alias_needs_its_target_configured() {
    let without = config(r#"{}"#);
    assert!(without.resolve_ref("opus").is_err());
    let with = config(r#"{agents: {defaults: {models: {"anthropic/claude-opus-5": {}}}}}"#);
    assert_eq!(with.resolve_ref("opus").unwrap().model_ref.to_string(), "anthropic/claude-opus-5");
    let user = config(
        r#"{agents: {defaults: {models: {"anthropic/claude-opus-5": {}, "lmstudio/m": {alias: "opus"}}}}}"#,
    );
    assert_eq!(user.resolve_ref("opus").unwrap().model_ref.to_string(), "lmstudio/m");
}

#[test]
fn candidate_chains() {
    let c = config(
        r#"{agents: {
              defaults: {model: {primary: "anthropic/claude-sonnet-4-5", fallbacks: ["lmstudio/m", "anthropic/claude-opus-4-6", "lmstudio/m"]}},
              entries: {strict: {model: "lmstudio/m"}, chained: {model: {primary: "lmstudio/m", fallbacks: ["openai/gpt-5.4"]}}, empty: {model: {primary: "lmstudio/m", fallbacks: []}}}},
            models: {providers: {lmstudio: {models: [{id: "m"}]}}}}"#,
    );
    assert_eq!(
        chain(&c, None, None, false),
        ["anthropic/claude-sonnet-4-5", "lmstudio/m", "anthropic/claude-opus-4-6"]
    );
    // Requesting another model: it, the fallbacks, then the primary appended.
    assert_eq!(
        chain(&c, None, Some("openai/gpt-5.4"), false),
        [
            "openai/gpt-5.4",
            "lmstudio/m",
            "anthropic/claude-opus-4-6",
            "anthropic/claude-sonnet-4-5"
        ]
    );
    assert_eq!(
        chain(&c, None, Some("lmstudio/m"), false),
        ["lmstudio/m", "anthropic/claude-opus-4-6", "anthropic/claude-sonnet-4-5"]
    );
    // An explicit user selection is strict.
    assert_eq!(chain(&c, None, Some("openai/gpt-5.4"), true), ["openai/gpt-5.4"]);
    // An agent's string model is strict; an object with fallbacks opts in; `[]` is strict.
    assert_eq!(chain(&c, Some("strict"), None, false), ["lmstudio/m"]);
    assert!(c.candidate_chain(Some("strict"), None, false).unwrap().strict);
    assert_eq!(chain(&c, Some("chained"), None, false), ["lmstudio/m", "openai/gpt-5.4"]);
    assert!(c.candidate_chain(Some("empty"), None, false).unwrap().strict);
    assert!(matches!(c.candidate_chain(Some("nope"), None, false), Err(RefError::UnknownAgent(_))));
    assert!(matches!(config("{}").candidate_chain(None, None, false), Err(RefError::NoDefault)));
}

#[test]
fn model_policy() {
    let c = config(
        r#"{agents: {defaults: {models: {"anthropic/claude-sonnet-4-6": {alias: "Sonnet"}}, modelPolicy: {allow: ["openai/*", "Sonnet", "vllm/ns/*"]}},
                     entries: {open: {modelPolicy: {allow: []}}}}}"#,
    );
    let r = |s: &str| s.parse::<ModelRef>().unwrap();
    assert!(c.allows(None, &r("openai/gpt-5.4")));
    assert!(c.allows(None, &r("anthropic/claude-sonnet-4-6")));
    assert!(c.allows(None, &r("vllm/ns/model")));
    assert!(!c.allows(None, &r("vllm/other")));
    assert!(!c.allows(None, &r("ollama/gemma4")));
    assert!(c.allows(Some("open"), &r("ollama/gemma4")), "an agent's [] allows any model");
}

#[test]
fn unknown_keys_error_under_models_and_warn_elsewhere() {
    let loaded = load_str(
        "t.json5",
        r#"{plugins: {}, agents: {defaults: {heartbeat: {}}}, models: {providers: {p: {baseUrl: "http://h:1", bogus: 1}}}}"#,
        &env(),
    );
    let by_code = |code: &str, sev: Severity| {
        loaded.diagnostics.iter().filter(|d| d.code == code && d.severity == sev).count()
    };
    assert_eq!(by_code("unsupported-key", Severity::Warning), 2);
    assert_eq!(by_code("unknown-key", Severity::Error), 1);
}

#[test]
fn near_misses_are_errors_with_suggestions() {
    let errs = errors(
        r#"{agents: {defaults: {modle: "x", model: {primry: "a/b"}}}, models: {providers: {p: {baseUrl: "http://h:1", models: [{id: "m", contextwindow: 1}]}}}}"#,
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs.iter().any(|e| e.contains("did you mean `model`")));
    assert!(errs.iter().any(|e| e.contains("did you mean `primary`")));
    assert!(errs.iter().any(|e| e.contains("did you mean `contextWindow`")));
}

#[test]
fn wrong_types_name_the_path() {
    let errs =
        errors(r#"{models: {providers: {lmstudio: {models: [{id: "m", maxTokens: "8192"}]}}}}"#);
    assert!(
        errs[0].contains(
            "models.providers.lmstudio.models[0].maxTokens: expected integer, found string"
        ),
        "{errs:?}"
    );
    assert!(errs[0].contains("test.json5:1:64"), "{errs:?}");
}

#[test]
fn env_substitution_in_strings() {
    let env: BTreeMap<String, String> = [("HOST".to_owned(), "10.1.2.3".to_owned())].into();
    let loaded = load_str(
        "t.json5",
        r#"{models: {providers: {p: {baseUrl: "http://${HOST}:8000/v1", models: [{id: "$${LITERAL}"}]}}}}"#,
        &env,
    );
    let c = loaded.config.unwrap();
    assert_eq!(c.providers["p"].base_url.as_str(), "http://10.1.2.3:8000/v1");
    assert_eq!(c.providers["p"].models[0].id, "${LITERAL}");
    let errs =
        errors(r#"{models: {providers: {p: {baseUrl: "http://${NOT_SET_ANYWHERE}:1/v1"}}}}"#);
    assert!(errs[0].contains("`NOT_SET_ANYWHERE` is not set"), "{errs:?}");
}

#[test]
fn secrets_in_env_are_warnings_not_errors() {
    let loaded = load_str(
        "t.json5",
        r#"{models: {providers: {p: {baseUrl: "http://h:1/v1", apiKey: "${NOT_SET_KEY}"}}}}"#,
        &env(),
    );
    assert!(loaded.config.is_some());
    assert!(
        loaded
            .diagnostics
            .iter()
            .any(|d| d.code == "missing-env" && d.severity == Severity::Warning)
    );
}

#[test]
fn local_service_command_must_be_absolute() {
    let errs = errors(
        r#"{models: {providers: {p: {baseUrl: "http://127.0.0.1:1/v1", localService: {command: "llama-server"}}}}}"#,
    );
    assert!(errs[0].contains("absolute path"), "{errs:?}");
    let c = config(
        r#"{models: {providers: {p: {baseUrl: "http://127.0.0.1:1/v1", localService: {command: "/bin/true"}}}}}"#,
    );
    let ls = c.providers["p"].local_service.as_ref().unwrap();
    assert_eq!(ls.health_url, "http://127.0.0.1:1/v1/models");
    assert_eq!(ls.ready_timeout, std::time::Duration::from_millis(120_000));
    assert_eq!(ls.idle_stop, None);
}

#[test]
fn gateway_settings() {
    let c = config(r#"{}"#);
    assert_eq!(c.gateway.port, 18789);
    assert!(c.gateway.bind.is_loopback());
    let errs = errors(r#"{gateway: {auth: {token: "a", password: "b"}}}"#);
    assert!(errs[0].contains("gateway.auth.mode"), "{errs:?}");
}

#[test]
fn hostile_input_gives_errors_not_panics() {
    for text in [
        "",
        "{",
        "{a:",
        "[[[[",
        "{'a",
        "\"\\u12",
        "{a: 1,,}",
        "{\"a\" 1}",
        "nul",
        "{a: 0x}",
        "{a: 1e}",
        "/*",
        "{a: -}",
    ] {
        let loaded = load_str("t.json5", text, &env());
        assert!(loaded.has_errors(), "{text:?} should be rejected");
    }
    let deep = "{a:".repeat(10_000);
    assert!(load_str("t.json5", &deep, &env()).diagnostics[0].message.contains("nesting"));
}

#[test]
fn big_and_binary_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.json5");
    std::fs::write(&big, vec![b' '; 50 * 1024 * 1024]).unwrap();
    let loaded = hearth_config::load_file(&big, &env());
    assert!(loaded.diagnostics[0].message.contains("the limit is"), "{:?}", loaded.diagnostics);
    let binary = dir.path().join("bin.json5");
    std::fs::write(&binary, b"{a: '\xff\xfe'}").unwrap();
    let loaded = hearth_config::load_file(&binary, &env());
    let d = &loaded.diagnostics[0];
    assert_eq!(d.code, "encoding");
    assert_eq!(d.location.as_ref().unwrap().column, 6);
}

#[test]
fn includes_merge_and_are_confined() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.json5");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/p.json5"),
        r#"{providers: {p: {baseUrl: "http://h:1/v1", models: [{id: "a"}]}}}"#,
    )
    .unwrap();
    std::fs::write(&main, r#"{models: {$include: "./sub/p.json5", mode: "replace"}}"#).unwrap();
    let loaded = hearth_config::load_file(&main, &env());
    let c = loaded.config.unwrap();
    assert_eq!(c.providers.keys().collect::<Vec<_>>(), ["p"]);
    std::fs::write(&main, r#"{$include: "../outside.json5"}"#).unwrap();
    std::fs::write(dir.path().parent().unwrap().join("outside.json5"), "{}").ok();
    let loaded = hearth_config::load_file(&main, &env());
    assert!(loaded.has_errors());
    std::fs::write(&main, r#"{$include: "./main.json5"}"#).unwrap();
    let loaded = hearth_config::load_file(&main, &env());
    assert!(
        loaded.diagnostics.iter().any(|d| d.message.contains("cycle")),
        "{:?}",
        loaded.diagnostics
    );
}

#[test]
fn locate_prefers_flag_then_env_then_home() {
    use hearth_config::{ConfigSource, locate};
    let mut env = BTreeMap::new();
    env.insert("HOME".to_owned(), "/nonexistent-home".to_owned());
    assert!(matches!(locate(None, &env), ConfigSource::Builtin(Some(_))));
    env.insert("HEARTH_CONFIG".to_owned(), "/etc/h.json5".to_owned());
    assert_eq!(locate(None, &env), ConfigSource::EnvVar("/etc/h.json5".into()));
    assert_eq!(
        locate(Some(std::path::Path::new("x.json5")), &env),
        ConfigSource::Flag("x.json5".into())
    );
}

/// "Local" (free usage, local marker keys, exact-origin trust) is decided by the address a
/// host reaches: IPv6 forms that embed an IPv4 address are classified by that address.
#[test]
fn host_class_reads_ipv4_embedded_in_ipv6() {
    use HostClass::*;
    use hearth_config::resolve::{HostClass, host_class};
    for (url, want) in [
        ("http://[::127.0.0.1]:8080/v1", Loopback),
        ("http://[::ffff:127.0.0.1]:8080/v1", Loopback),
        ("http://[::ffff:0:10.0.0.1]/v1", Private),
        ("http://[64:ff9b::7f00:1]/v1", Loopback),
        ("http://[64:ff9b::a9fe:a9fe]/v1", LinkLocal),
        ("http://[64:ff9b:1::5]/v1", LinkLocal),
        ("http://[2002:c0a8:101::1]/v1", Private),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/v1", Loopback),
        ("http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/v1", Public),
        ("http://[64:ff9b::808:808]/v1", Public),
        ("http://[::1]/v1", Loopback),
        ("http://[::]:8000/v1", Loopback),
        ("http://0.0.0.0:8000/v1", Loopback),
        ("http://[2001:db8::1]/v1", Public),
    ] {
        assert_eq!(host_class(&url::Url::parse(url).unwrap()), want, "{url}");
    }
}

/// `streamIdleTimeoutSeconds` (hearth only): decoded apart from `timeoutSeconds`, range-checked
/// like it, and a near miss is an error with the suggestion.
#[test]
fn stream_idle_timeout_is_its_own_setting() {
    use std::time::Duration;
    let c = config(
        r#"{models: {providers: {p: {baseUrl: "http://127.0.0.1:8080/v1", timeoutSeconds: 600, streamIdleTimeoutSeconds: 2.5, models: [{id: "m"}]}}}}"#,
    );
    let p = &c.providers["p"];
    assert_eq!(p.timeout, Some(Duration::from_secs(600)));
    assert_eq!(p.stream_idle_timeout, Some(Duration::from_millis(2500)));
    let c =
        config(r#"{models: {providers: {p: {baseUrl: "http://h:1/v1", models: [{id: "m"}]}}}}"#);
    assert_eq!(c.providers["p"].stream_idle_timeout, None, "unset: the runtime default");

    let errs = errors(
        r#"{models: {providers: {p: {baseUrl: "http://h:1/v1", streamIdleTimeoutSeconds: 0, models: [{id: "m"}]}}}}"#,
    );
    assert!(
        errs.iter().any(|e| e.contains("streamIdleTimeoutSeconds must be positive")),
        "{errs:?}"
    );
    let errs = errors(
        r#"{models: {providers: {p: {baseUrl: "http://h:1/v1", streamIdleTimoutSeconds: 5, models: [{id: "m"}]}}}}"#,
    );
    assert!(errs.iter().any(|e| e.contains("did you mean `streamIdleTimeoutSeconds`")), "{errs:?}");
}

// See: #11. A closed catalog refuses invented ids; local, empty and live catalogs discover;
// `discoverModels` decides either way.
#[test]
fn r11_only_discovering_providers_take_unlisted_model_ids() {
    let c = config(
        r#"{models: {providers: {
            lan: {baseUrl: "http://192.168.1.5:8000/v1", api: "openai-completions", models: [{id: "a"}]},
            strict: {baseUrl: "http://127.0.0.1:8001/v1", api: "openai-completions", discoverModels: false, models: [{id: "a"}]},
            proxy: {baseUrl: "https://proxy.example/v1", api: "openai-completions", discoverModels: true, models: [{id: "a"}]},
            bare: {baseUrl: "https://bare.example/v1", api: "openai-completions"},
        }}}"#,
    );
    for ok in
        ["lan/loaded-now", "proxy/anything", "bare/anything", "openrouter/some/model", "lan/a"]
    {
        assert!(c.resolve_ref(ok).is_ok(), "{ok}");
    }
    for refused in ["anthropic/claude-invented-9", "strict/b", "openai/gpt-nope"] {
        match c.resolve_ref(refused) {
            Err(RefError::NotInCatalog { provider, .. }) => {
                assert_eq!(provider, refused.split('/').next().unwrap());
            }
            other => panic!("{refused}: {other:?}"),
        }
    }
    // A long input is neither searched nor echoed whole.
    let long = format!("anthropic/{}", "x".repeat(100_000));
    let err = c.resolve_ref(&long).unwrap_err();
    assert!(err.to_string().len() < 200, "{}", err.to_string().len());
}

#[test]
fn diagnostics_otel_takes_openclaws_shape() {
    let text = r#"{ diagnostics: { enabled: true, otel: {
        enabled: true, endpoint: "http://127.0.0.1:4318/", protocol: "http/protobuf",
        serviceName: "gw", headers: { "x-team": "hearth" }, traces: true, metrics: true,
        logs: false, captureContent: false, sampleRate: 0.5, flushIntervalMs: 200 } } }"#;
    let loaded = load_str("test.json5", text, &env());
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let warned: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    for key in ["diagnostics.enabled", "metrics", "logs", "captureContent"] {
        assert!(warned.iter().any(|w| w.contains(key)), "no warning for {key}: {warned:#?}");
    }
    let otel = loaded.config.unwrap().diagnostics.otel;
    assert_eq!(otel.enabled, Some(true));
    assert_eq!(otel.traces_endpoint().as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
    assert_eq!(otel.service_name.as_deref(), Some("gw"));
    assert_eq!(otel.headers.len(), 1);
    assert_eq!(otel.sample_rate, Some(0.5));
    // OpenClaw's minimum.
    assert_eq!(otel.flush_interval, Some(std::time::Duration::from_secs(1)));

    let traces = config(
        r#"{ diagnostics: { otel: { endpoint: "http://a:1", tracesEndpoint: "http://b:2/t" } } }"#,
    )
    .diagnostics
    .otel;
    assert_eq!(traces.enabled, None);
    assert_eq!(traces.traces_endpoint().as_deref(), Some("http://b:2/t"));
    let bad = errors(r#"{ diagnostics: { otel: { endpoint: "nope", sampleRate: 2 } } }"#);
    assert_eq!(bad.len(), 2, "{bad:#?}");
}

// ---- models.routing: the router's waits, from the file and the environment -----------------

fn routing(text: &str, vars: &[(&str, &str)]) -> (hearth_config::Routing, Vec<String>) {
    let env: BTreeMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let loaded = load_str("test.json5", text, &env);
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    let warnings = loaded.diagnostics.iter().map(ToString::to_string).collect();
    (loaded.config.unwrap().routing, warnings)
}

#[test]
fn routing_keys_are_read_with_their_defaults() {
    use std::time::Duration;
    let (r, _) = routing("{}", &[]);
    assert_eq!(r.retry_max_wait, Some(Duration::from_secs(60)), "default cap");
    assert_eq!(r.fallback_skip_ttl, None, "the skip cache is off by default");
    assert_eq!(r.overload_notice_after, Duration::from_secs(30), "OpenClaw's 30 s");
    let (r, _) = routing("{models: {routing: {overloadNoticeAfterMs: 250}}}", &[]);
    assert_eq!(r.overload_notice_after, Duration::from_millis(250));

    let (r, warnings) =
        routing("{models: {routing: {retryMaxWaitSeconds: 2.5, fallbackSkipTtlMs: 60000}}}", &[]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(r.retry_max_wait, Some(Duration::from_millis(2500)));
    assert_eq!(r.fallback_skip_ttl, Some(Duration::from_secs(60)));

    for off in ["false", "0"] {
        let (r, _) =
            routing(&format!("{{models: {{routing: {{retryMaxWaitSeconds: {off}}}}}}}"), &[]);
        assert_eq!(r.retry_max_wait, None, "{off}: no cap");
    }
    let (r, _) = routing("{models: {routing: {fallbackSkipTtlMs: 0}}}", &[]);
    assert_eq!(r.fallback_skip_ttl, None);

    // Out of range: clamped, with a warning that names the key.
    let (r, warnings) = routing("{models: {routing: {fallbackSkipTtlMs: 500}}}", &[]);
    assert_eq!(r.fallback_skip_ttl, Some(Duration::from_secs(1)));
    assert!(
        warnings.iter().any(|w| w.contains("models.routing.fallbackSkipTtlMs")),
        "{warnings:?}"
    );
    let (r, _) = routing("{models: {routing: {fallbackSkipTtlMs: 9000000}}}", &[]);
    assert_eq!(r.fallback_skip_ttl, Some(Duration::from_secs(600)));
}

#[test]
fn routing_variables_override_the_file() {
    use std::time::Duration;
    let file = "{models: {routing: {retryMaxWaitSeconds: 5, fallbackSkipTtlMs: 60000}}}";
    let (r, _) = routing(file, &[("HEARTH_RETRY_MAX_WAIT_SECONDS", "2")]);
    assert_eq!(r.retry_max_wait, Some(Duration::from_secs(2)));
    for off in ["0", "false", "OFF", "none", "disabled"] {
        let (r, _) = routing(file, &[("OPENCLAW_SDK_RETRY_MAX_WAIT_SECONDS", off)]);
        assert_eq!(r.retry_max_wait, None, "{off}");
    }
    // hearth's name wins over OpenClaw's.
    let (r, _) = routing(
        file,
        &[("HEARTH_RETRY_MAX_WAIT_SECONDS", "3"), ("OPENCLAW_SDK_RETRY_MAX_WAIT_SECONDS", "0")],
    );
    assert_eq!(r.retry_max_wait, Some(Duration::from_secs(3)));

    let (r, _) = routing(file, &[("OPENCLAW_FALLBACK_SKIP_TTL_MS", "0")]);
    assert_eq!(r.fallback_skip_ttl, None, "0 turns the file's skip cache off");
    let (r, _) = routing("{}", &[("HEARTH_FALLBACK_SKIP_TTL_MS", "500")]);
    assert_eq!(r.fallback_skip_ttl, Some(Duration::from_secs(1)), "clamped");
    let (r, _) = routing("{}", &[("OPENCLAW_FALLBACK_SKIP_TTL_MS", "9000000")]);
    assert_eq!(r.fallback_skip_ttl, Some(Duration::from_secs(600)), "clamped");

    // A variable that is not a value is a warning naming it; the file's value applies.
    let (r, warnings) = routing(
        file,
        &[("HEARTH_RETRY_MAX_WAIT_SECONDS", "soon"), ("HEARTH_FALLBACK_SKIP_TTL_MS", "1.5s")],
    );
    assert_eq!(r.retry_max_wait, Some(Duration::from_secs(5)));
    assert_eq!(r.fallback_skip_ttl, Some(Duration::from_secs(60)));
    for name in ["HEARTH_RETRY_MAX_WAIT_SECONDS", "HEARTH_FALLBACK_SKIP_TTL_MS"] {
        assert!(
            warnings.iter().any(|w| w.starts_with("warning") && w.contains(name)),
            "{warnings:?}"
        );
    }
}

#[test]
fn a_bad_routing_value_is_a_load_error_naming_the_key() {
    for (text, key) in [
        ("retryMaxWaitSeconds: -1", "models.routing.retryMaxWaitSeconds"),
        ("retryMaxWaitSeconds: \"soon\"", "models.routing.retryMaxWaitSeconds"),
        ("retryMaxWaitSeconds: true", "models.routing.retryMaxWaitSeconds"),
        ("fallbackSkipTtlMs: -5", "models.routing.fallbackSkipTtlMs"),
        ("fallbackSkipTtlMs: 1.5", "models.routing.fallbackSkipTtlMs"),
        ("fallbackSkipTtlMs: \"60s\"", "models.routing.fallbackSkipTtlMs"),
        ("retryMaxWait: 5", "retryMaxWait"),
    ] {
        let errors = errors(&format!("{{models: {{routing: {{{text}}}}}}}"));
        assert!(errors.iter().any(|e| e.contains(key)), "{text}: {errors:?}");
    }
}

/// `imageModel`: a bare id naming exactly one image-capable entry stands for it; the chain keeps
/// only what takes images; a text-only model named there is a warning. See: #15
#[test]
fn image_model_bare_ids_and_text_only_entries() {
    let text = r#"{models: {mode: "replace", providers: {
        ollama: {baseUrl: "http://127.0.0.1:11434", api: "ollama", models: [
          {id: "qwen2.5vl:7b", input: ["text", "image"]}, {id: "qwen3:8b"}]},
        lm: {baseUrl: "http://127.0.0.1:1234/v1", models: [{id: "gemma", input: ["text", "image"]}]}}},
      agents: {defaults: {model: "ollama/qwen3:8b",
        imageModel: {primary: "qwen2.5vl:7b", fallbacks: ["ollama/qwen3:8b", "lm/gemma"]}},
        entries: {coder: {imageModel: "lm/gemma"}}}}"#;
    let loaded = load_str("test.json5", text, &env());
    let warnings: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.code == "image-model-text-only")
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{:#?}", loaded.diagnostics);
    assert!(warnings[0].contains("ollama/qwen3:8b"), "{}", warnings[0]);
    let c = loaded.config.unwrap();
    let refs = |agent| -> Vec<String> {
        c.image_chain(agent).unwrap().candidates.iter().map(ToString::to_string).collect()
    };
    assert_eq!(refs(None), ["ollama/qwen2.5vl:7b", "lm/gemma"]);
    assert_eq!(refs(Some("coder")), ["lm/gemma"]);
    assert!(
        config(r#"{agents: {defaults: {model: "openai/gpt-5.5"}}}"#).image_chain(None).is_none()
    );
}

/// `thinkingDefault`: a level (aliases included) per agent, else the defaults'; it rides in the
/// merged params as `thinkingDefault`, below any `params.thinking`. A value that is no level is
/// an error with a suggestion. See: #15
#[test]
fn thinking_default_per_agent() {
    let text = r#"{models: {mode: "replace", providers: {
        vllm: {baseUrl: "http://127.0.0.1:8000/v1", models: [{id: "q"}]}}},
      agents: {defaults: {model: "vllm/q", thinkingDefault: "X-High"},
        entries: {quiet: {thinkingDefault: "none"}, plain: {}}}}"#;
    let c = config(text);
    let r: hearth_config::ModelRef = "vllm/q".parse().unwrap();
    let level = |agent| c.params_for(agent, &r).and_then(|p| p.get("thinkingDefault").cloned());
    assert_eq!(level(Some("quiet")), Some(serde_json::json!("off")));
    assert_eq!(level(Some("plain")), Some(serde_json::json!("xhigh")));
    assert_eq!(level(None), Some(serde_json::json!("xhigh")));
    let loaded =
        load_str("test.json5", r#"{agents: {defaults: {thinkingDefault: "hihg"}}}"#, &env());
    assert!(loaded.has_errors());
    let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|d| d.contains("agents.defaults.thinkingDefault")
            && d.contains("unknown level `hihg`")
            && d.contains("did you mean `high`")),
        "{shown:#?}"
    );
}

/// `gateway.controlUi`: the chat page is on at `/` unless turned off; `basePath` is normalized
/// to `/a/b/`, and a path it cannot be served at is an error naming the key. See: #16
#[test]
fn control_ui_base_path() {
    let c = config(r#"{gateway: {}}"#);
    assert!(c.gateway.control_ui);
    assert_eq!(c.gateway.control_ui_base, "/");
    let c = config(r#"{gateway: {controlUi: {enabled: false, basePath: "chat/ui/"}}}"#);
    assert!(!c.gateway.control_ui);
    assert_eq!(c.gateway.control_ui_base, "/chat/ui/");
    for bad in ["/../etc", "/a b", "/<script>"] {
        let loaded = load_str(
            "test.json5",
            &format!(r#"{{gateway: {{controlUi: {{basePath: "{bad}"}}}}}}"#),
            &env(),
        );
        assert!(loaded.has_errors(), "{bad}");
        let shown: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert!(shown.iter().any(|d| d.contains("gateway.controlUi.basePath")), "{shown:#?}");
    }
}
