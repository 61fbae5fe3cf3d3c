use hearth_config::{ThinkingLevel, load_str};
use serde_json::{Value, json};

use crate::encode::{Target, encode_json};
use crate::prompt::{Prompt, Thinking, ToolChoice};

/// One provider `p` with one model, as `api` at `base`.
fn config(id: &str, api: &str, base: &str, model: &str) -> hearth_config::Config {
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{"{id}": {{baseUrl: "{base}", api: "{api}", models: [{model}]}}}}}}}}"#
    );
    let loaded = load_str("t.json5", &text, &std::collections::BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config.unwrap()
}

/// The body sent and the plan's notice, for a request at `level`.
fn send(
    id: &str,
    api: &str,
    base: &str,
    model: &str,
    level: Option<ThinkingLevel>,
) -> (Value, Option<String>) {
    let c = config(id, api, base, model);
    let provider = &c.providers[id];
    let target = Target { provider, model: &provider.models[0], params: None, served_max: None };
    let mut prompt = Prompt::text(None, "hi");
    prompt.thinking = level.map(Thinking::level);
    let notice = super::plan(&prompt, &target, &target.all_params()).notice;
    (encode_json(&prompt, &target).unwrap(), notice)
}

/// Just the thinking-related fields of a body.
fn fields(body: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in [
        "chat_template_kwargs",
        "reasoning_effort",
        "reasoning_budget_tokens",
        "enable_thinking",
        "reasoning",
        "thinking",
        "think",
    ] {
        if let Some(v) = body.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

const M: &str = r#"{id: "m", reasoning: true, maxTokens: 32000}"#;

#[test]
fn no_level_sends_nothing() {
    for (id, api, base) in [
        ("llamacpp", "openai-completions", "http://127.0.0.1:8080/v1"),
        ("vllm", "openai-completions", "http://127.0.0.1:8000/v1"),
        ("ollama", "ollama", "http://127.0.0.1:11434"),
        ("anthropic", "anthropic-messages", "https://api.anthropic.com"),
        ("openai", "openai-responses", "https://api.openai.com/v1"),
    ] {
        let (body, notice) = send(id, api, base, M, None);
        assert_eq!(fields(&body), json!({}), "{id}");
        assert_eq!(notice, None);
    }
}

#[test]
fn llama_cpp_gets_template_kwargs_effort_and_budget() {
    let base = "http://127.0.0.1:8080/v1";
    let (off, _) = send("llamacpp", "openai-completions", base, M, Some(ThinkingLevel::Off));
    assert_eq!(fields(&off), json!({"chat_template_kwargs": {"enable_thinking": false}}));
    let (low, notice) = send("local", "openai-completions", base, M, Some(ThinkingLevel::Low));
    assert_eq!(
        fields(&low),
        json!({"chat_template_kwargs": {"enable_thinking": true}, "reasoning_effort": "low",
               "reasoning_budget_tokens": 4096})
    );
    assert_eq!(notice, None);
    // Above `high` the template's effort tops out; the budget carries the difference.
    let (xhigh, notice) =
        send("llamacpp", "openai-completions", base, M, Some(ThinkingLevel::XHigh));
    assert_eq!(xhigh["reasoning_effort"], "high");
    assert_eq!(xhigh["reasoning_budget_tokens"], 32000);
    assert_eq!(notice, None);
    let (max, _) = send("llamacpp", "openai-completions", base, M, Some(ThinkingLevel::Max));
    assert!(max.get("reasoning_budget_tokens").is_none(), "max has no cap: {max}");
}

#[test]
fn vllm_and_thinking_formats() {
    let base = "http://127.0.0.1:8000/v1";
    let (off, _) = send("vllm", "openai-completions", base, M, Some(ThinkingLevel::Off));
    assert_eq!(fields(&off), json!({"chat_template_kwargs": {"enable_thinking": false}}));
    let (high, _) = send("sglang", "openai-completions", base, M, Some(ThinkingLevel::High));
    assert_eq!(
        fields(&high),
        json!({"chat_template_kwargs": {"enable_thinking": true}, "reasoning_effort": "high"})
    );
    let (max, notice) = send("vllm", "openai-completions", base, M, Some(ThinkingLevel::Max));
    assert_eq!(max["reasoning_effort"], "high");
    assert!(notice.unwrap().contains("`max` is not supported"));
    let cases = [
        ("qwen", json!({"enable_thinking": false})),
        ("qwen-chat-template", json!({"chat_template_kwargs": {"enable_thinking": false}})),
        ("together", json!({"reasoning": {"enabled": false}})),
        ("deepseek", json!({"thinking": {"type": "disabled"}})),
    ];
    for (format, want) in cases {
        let model =
            format!(r#"{{id: "m", reasoning: true, compat: {{thinkingFormat: "{format}"}}}}"#);
        let (b, _) = send(
            "x",
            "openai-completions",
            "https://example.com/v1",
            &model,
            Some(ThinkingLevel::Off),
        );
        assert_eq!(fields(&b), want, "{format}");
    }
    let deepseek = r#"{id: "m", reasoning: true, compat: {thinkingFormat: "deepseek"}}"#;
    let (b, _) = send(
        "x",
        "openai-completions",
        "https://example.com/v1",
        deepseek,
        Some(ThinkingLevel::XHigh),
    );
    assert_eq!(fields(&b), json!({"thinking": {"type": "enabled"}, "reasoning_effort": "max"}));
}

#[test]
fn effort_servers_and_compat() {
    let openai = "https://api.openai.com/v1";
    let (off, _) = send("openai", "openai-completions", openai, M, Some(ThinkingLevel::Off));
    assert_eq!(fields(&off), json!({"reasoning_effort": "none"}));
    let (adaptive, _) =
        send("openai", "openai-completions", openai, M, Some(ThinkingLevel::Adaptive));
    assert_eq!(adaptive["reasoning_effort"], "medium");
    let (max, notice) = send("openai", "openai-responses", openai, M, Some(ThinkingLevel::Max));
    assert_eq!(fields(&max), json!({"reasoning": {"effort": "xhigh"}}));
    assert!(notice.is_some());
    let lms = "http://127.0.0.1:1234/v1";
    let (m, _) = send("lmstudio", "openai-completions", lms, M, Some(ThinkingLevel::Minimal));
    assert_eq!(fields(&m), json!({"reasoning_effort": "minimal"}));
    let ollama_v1 = "http://127.0.0.1:11434/v1";
    let (m, _) = send("ollama", "openai-completions", ollama_v1, M, Some(ThinkingLevel::Minimal));
    assert_eq!(m["reasoning_effort"], "low");
    let (off, _) = send("ollama", "openai-completions", ollama_v1, M, Some(ThinkingLevel::Off));
    assert_eq!(off["reasoning_effort"], "none");
    let router = "https://openrouter.ai/api/v1";
    let (r, _) = send("openrouter", "openai-completions", router, M, Some(ThinkingLevel::High));
    assert_eq!(fields(&r), json!({"reasoning": {"effort": "high"}}));
    // A hosted API hearth does not know: the standard field, and no `none` it may refuse.
    let other = "https://api.example.com/v1";
    let (off, _) = send("x", "openai-completions", other, M, Some(ThinkingLevel::Off));
    assert_eq!(fields(&off), json!({}));
    // compat: the map renames, the list limits (nearest below, with a notice).
    let mapped = r#"{id: "m", compat: {reasoningEffortMap: {xhigh: "ultra-think"}}}"#;
    let (b, _) = send("openai", "openai-completions", openai, mapped, Some(ThinkingLevel::XHigh));
    assert_eq!(b["reasoning_effort"], "ultra-think");
    let listed = r#"{id: "m", compat: {supportedReasoningEfforts: ["low", "high"]}}"#;
    let (b, notice) =
        send("openai", "openai-completions", openai, listed, Some(ThinkingLevel::Medium));
    assert_eq!(b["reasoning_effort"], "low");
    assert!(notice.unwrap().contains("efforts: low, high"));
    let (b, notice) =
        send("openai", "openai-completions", openai, listed, Some(ThinkingLevel::Off));
    assert!(b.get("reasoning_effort").is_none(), "no way to say none: left out");
    assert!(notice.unwrap().contains("thinking off cannot be sent"));
    let (b, _) = send("openai", "openai-completions", openai, listed, Some(ThinkingLevel::Minimal));
    assert_eq!(b["reasoning_effort"], "low", "nothing below: the nearest above");
    let none = r#"{id: "m", compat: {supportsReasoningEffort: false}}"#;
    let (b, notice) = send("lmstudio", "openai-completions", lms, none, Some(ThinkingLevel::High));
    assert_eq!(fields(&b), json!({}));
    assert!(notice.unwrap().contains("supportsReasoningEffort"));
}

#[test]
fn ollama_think() {
    let base = "http://127.0.0.1:11434";
    let (off, _) = send("ollama", "ollama", base, M, Some(ThinkingLevel::Off));
    assert_eq!(fields(&off), json!({"think": false}));
    let (on, _) = send("ollama", "ollama", base, M, Some(ThinkingLevel::High));
    assert_eq!(fields(&on), json!({"think": true}));
    let oss = r#"{id: "gpt-oss:20b", reasoning: true}"#;
    let (b, _) = send("ollama", "ollama", base, oss, Some(ThinkingLevel::Minimal));
    assert_eq!(fields(&b), json!({"think": "low"}));
    let (b, notice) = send("ollama", "ollama", base, oss, Some(ThinkingLevel::Max));
    assert_eq!(fields(&b), json!({"think": "high"}));
    assert!(notice.is_some());
    // Never a truthy think to a model not marked reasoning: left out, with a notice.
    let plain = r#"{id: "llama3.2"}"#;
    let (b, notice) = send("ollama", "ollama", base, plain, Some(ThinkingLevel::High));
    assert_eq!(fields(&b), json!({}));
    assert!(notice.unwrap().contains("reasoning: true"));
    let (b, _) = send("ollama", "ollama", base, plain, Some(ThinkingLevel::Off));
    assert_eq!(fields(&b), json!({"think": false}));
}

#[test]
fn anthropic_budgets_and_limits() {
    let base = "https://api.anthropic.com";
    let (off, _) = send("anthropic", "anthropic-messages", base, M, Some(ThinkingLevel::Off));
    assert_eq!(fields(&off), json!({}), "Anthropic's default is no thinking");
    let (low, _) = send("anthropic", "anthropic-messages", base, M, Some(ThinkingLevel::Low));
    assert_eq!(fields(&low), json!({"thinking": {"type": "enabled", "budget_tokens": 4096}}));
    let (a, _) = send("anthropic", "anthropic-messages", base, M, Some(ThinkingLevel::Adaptive));
    assert_eq!(fields(&a), json!({"thinking": {"type": "adaptive"}}));
    // The budget stays below the output cap; below Anthropic's minimum nothing is sent.
    let small = r#"{id: "m", reasoning: true, maxTokens: 5000}"#;
    let (b, _) = send("anthropic", "anthropic-messages", base, small, Some(ThinkingLevel::Max));
    assert_eq!(b["thinking"]["budget_tokens"], 3750, "a quarter of the cap stays for the answer");
    let tiny = r#"{id: "m", reasoning: true, maxTokens: 2000}"#;
    let (b, notice) =
        send("anthropic", "anthropic-messages", base, tiny, Some(ThinkingLevel::High));
    assert!(b.get("thinking").is_none());
    assert!(notice.unwrap().contains("at least 1024"));
    // Temperature and forced tool use do not go with thinking.
    let c = config("anthropic", "anthropic-messages", base, M);
    let provider = &c.providers["anthropic"];
    let target = Target { provider, model: &provider.models[0], params: None, served_max: None };
    let mut prompt = Prompt::text(None, "hi");
    prompt.thinking = Some(Thinking::level(ThinkingLevel::Medium));
    prompt.temperature = Some(0.2);
    let b = encode_json(&prompt, &target).unwrap();
    assert!(b.get("temperature").is_none() && b.get("thinking").is_some(), "{b}");
    prompt.temperature = None;
    prompt.tools.push(crate::prompt::Tool {
        name: "t".into(),
        description: None,
        parameters: json!({"type": "object"}),
    });
    prompt.tool_choice = Some(ToolChoice::Required);
    let plan = super::plan(&prompt, &target, &target.all_params());
    assert!(plan.fields.is_empty() && plan.notice.unwrap().contains("forced"));
}

#[test]
fn configured_levels_and_precedence() {
    let base = "http://127.0.0.1:8000/v1";
    // A model entry's `params.thinking` applies when the request sets none; the request wins.
    let model = r#"{id: "m", reasoning: true, params: {thinking: "off"}}"#;
    let (b, _) = send("vllm", "openai-completions", base, model, None);
    assert_eq!(fields(&b), json!({"chat_template_kwargs": {"enable_thinking": false}}));
    assert!(b.get("thinking").is_none(), "a level is not a wire field");
    let (b, _) = send("vllm", "openai-completions", base, model, Some(ThinkingLevel::High));
    assert_eq!(b["chat_template_kwargs"]["enable_thinking"], true);
    // Configured chat_template_kwargs keep their other keys.
    let kwargs = r#"{id: "m", params: {thinking: "low", chat_template_kwargs: {foo: 1}}}"#;
    let (b, _) = send("vllm", "openai-completions", base, kwargs, None);
    assert_eq!(b["chat_template_kwargs"], json!({"foo": 1, "enable_thinking": true}));
    // thinkingDefault (the agent's) is below params.thinking.
    let mut params = serde_json::Map::new();
    params.insert("thinkingDefault".into(), json!("high"));
    let prompt = Prompt::text(None, "hi");
    let r = super::resolve(&prompt, &params).unwrap();
    assert_eq!((r.level, r.source), (ThinkingLevel::High, super::Source::AgentDefault));
    params.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": 2000}));
    let r = super::resolve(&prompt, &params).unwrap();
    assert_eq!(
        (r.level, r.budget, r.source),
        (ThinkingLevel::Low, Some(2000), super::Source::Params)
    );
    // An explicit Ollama `think` is kept unless the caller asks.
    let ollama = r#"{id: "m", reasoning: true, params: {think: "high"}}"#;
    let c = config("ollama", "ollama", "http://127.0.0.1:11434", ollama);
    let provider = &c.providers["ollama"];
    let mut agent = serde_json::Map::new();
    agent.insert("thinkingDefault".into(), json!("off"));
    let target =
        Target { provider, model: &provider.models[0], params: Some(&agent), served_max: None };
    assert_eq!(encode_json(&prompt, &target).unwrap()["think"], "high");
}
