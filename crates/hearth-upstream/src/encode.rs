//! Request shaping: the canonical [`Prompt`] as each upstream API's request body. What every
//! dialect shares lives here (the [`Target`], params, the output cap, replay); each dialect's
//! own body is built in `api/<dialect>.rs` from `hearth_wire`'s typed `out` structs and
//! serialized once.
//!
//! Rules (OpenClaw's, `docs/upstream.md`): `system` never `developer` off api.openai.com;
//! `compat` flags respected; OpenAI-only fields (`store`, `service_tier`, ...) never sent to
//! other hosts, OpenRouter's `params.provider` routing to no host but OpenRouter's;
//! `stream_options.include_usage` only when streaming; the output cap is the
//! smaller of the caller's and the model's `maxTokens`; `params` applied, `extra_body` last.

use hearth_config::provider_routing::{self, merge_params};
use hearth_config::{Api, Model, Provider};
use serde_json::{Map, Value};

use crate::prompt::{Message, Prompt};
use crate::reasoning::{ReplayPolicy, parse_replay_policy, replay_policy_for};

/// Request parameters that are wire fields of OpenAI-compatible bodies. Other `params` keys are
/// OpenClaw runtime knobs (`fastMode`, `cacheRetention`, ...) and are not sent.
const WIRE_PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "repeat_penalty",
    "stop",
    "chat_template_kwargs",
    "reasoning_effort",
    "response_format",
    "parallel_tool_calls",
    "logit_bias",
    "typical_p",
    "enable_thinking",
    "reasoning_format",
    "cache_prompt",
    "n_probs",
    "grammar",
    "json_schema",
    "guided_json",
    "separate_reasoning",
    "provider",
    "reasoning",
    "transforms",
    "thinking",
];

/// Fields only OpenAI's own API accepts; stripped for every other host.
pub(crate) const OPENAI_ONLY: &[&str] =
    &["store", "service_tier", "prompt_cache_key", "safety_identifier", "metadata", "user"];

/// Everything about the target that shapes a request.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub provider: &'a Provider,
    pub model: &'a Model,
    /// Merged `params` (agent defaults < model settings < agent), without `extra_body`.
    pub params: Option<&'a Map<String, Value>>,
    /// The most context the server says the model supports (Ollama's `/api/show` trained
    /// window), when a probe has told: caps the `num_ctx` hearth derives ([`num_ctx`]).
    pub served_max: Option<u64>,
}

/// Where the `options.num_ctx` sent to an Ollama server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumCtxSource {
    /// `params.num_ctx`, as configured.
    Params,
    /// The model entry's `contextTokens`.
    ContextTokens,
    /// The model entry's `contextWindow`.
    ContextWindow,
}

impl NumCtxSource {
    /// The config key, for `models status` and logs.
    pub fn key(self) -> &'static str {
        match self {
            NumCtxSource::Params => "params.num_ctx",
            NumCtxSource::ContextTokens => "contextTokens",
            NumCtxSource::ContextWindow => "contextWindow",
        }
    }
}

/// The context window hearth asks an Ollama server to run a model with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumCtx {
    pub value: u64,
    pub source: NumCtxSource,
    /// The configured value, when the served maximum cut it down.
    pub capped_from: Option<u64>,
}

/// `options.num_ctx` for an Ollama server: `params.num_ctx` when set (a positive integer, sent
/// as given), else the entry's `contextTokens`, else its `contextWindow`, cut to `served_max`
/// (the trained window `/api/show` reports) when known. `None` when the entry sets none of
/// them: Ollama's own default applies (`models status` says so), because hearth's 200000-token
/// fallback budget sent as `num_ctx` would make Ollama allocate a huge cache.
pub fn num_ctx(
    model: &Model,
    params: &Map<String, Value>,
    served_max: Option<u64>,
) -> Option<NumCtx> {
    if let Some(n) = params.get("num_ctx").and_then(Value::as_u64).filter(|n| *n > 0) {
        return Some(NumCtx { value: n, source: NumCtxSource::Params, capped_from: None });
    }
    let (configured, source) = match (model.context_tokens, model.context_window) {
        (Some(n), _) => (n, NumCtxSource::ContextTokens),
        (None, Some(n)) => (n, NumCtxSource::ContextWindow),
        (None, None) => return None,
    };
    Some(match served_max {
        Some(max) if max < configured => {
            NumCtx { value: max, source, capped_from: Some(configured) }
        }
        _ => NumCtx { value: configured, source, capped_from: None },
    })
}

/// Whether an `openai-completions` provider is an Ollama server's `/v1` (its id, or Ollama's
/// port on a local host), for `injectNumCtxForOpenAICompat`.
pub fn is_ollama_compat(provider: &Provider) -> bool {
    provider.id == "ollama"
        || provider.id.starts_with("ollama-")
        || (provider.is_local() && provider.base_url.port() == Some(11434))
}

/// `params.ttl` for an LM Studio server: the idle time, in seconds, after which LM Studio
/// unloads a model that this request loads (JIT). LM Studio takes it in the request body of
/// its OpenAI-compatible endpoints, not in its load request (`docs/local-models.md`, "Keeping
/// models loaded"); other servers never get it.
pub(crate) fn lmstudio_ttl<'p>(
    provider: &Provider,
    params: &'p Map<String, Value>,
) -> Option<&'p Value> {
    params
        .get("ttl")
        .filter(|v| v.as_u64().is_some_and(|n| n > 0))
        .filter(|_| crate::probe::is_lmstudio(provider))
}

impl Target<'_> {
    /// The official OpenAI host (gets OpenAI-only fields and the `developer` role).
    pub fn is_native_openai(&self) -> bool {
        self.provider.base_url.host_str() == Some("api.openai.com")
    }

    pub(crate) fn output_cap(&self, prompt: &Prompt) -> u64 {
        let model_cap = self.model.max_tokens;
        let param_cap =
            self.param("maxTokens").or_else(|| self.param("max_tokens")).and_then(Value::as_u64);
        let requested = prompt.max_tokens.or(param_cap).unwrap_or(model_cap);
        requested.min(model_cap).max(1)
    }

    fn param(&self, key: &str) -> Option<&Value> {
        self.params
            .and_then(|p| p.get(key))
            .or_else(|| self.model.params.as_ref().and_then(|p| p.get(key)))
    }

    /// All params in precedence order: provider < model row < merged agent params, each key
    /// replacing the one below except OpenRouter's `provider` routing, merged key by key
    /// ([`merge_params`]) and kept only when the target is OpenRouter (any other server would
    /// take it for something else).
    pub fn all_params(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for layer in
            [self.provider.params.as_ref(), self.model.params.as_ref()].into_iter().flatten()
        {
            if let Value::Object(map) = layer {
                merge_params(&mut out, map);
            }
        }
        if let Some(map) = self.params {
            merge_params(&mut out, map);
        }
        if !self.provider.is_openrouter() {
            out.shift_remove(provider_routing::PARAMS_KEY);
        }
        out
    }

    /// The merged `params.provider` this target is sent (OpenRouter's provider routing), if any.
    pub fn provider_routing(&self) -> Option<Map<String, Value>> {
        match self.all_params().shift_remove(provider_routing::PARAMS_KEY) {
            Some(Value::Object(routing)) => Some(routing),
            _ => None,
        }
    }

    /// `params.reasoningReplay` (`keep-inline`, `drop`, `keep-signed`) in the merged `params`
    /// ([`Target::all_params`]), else the model family's default.
    pub(crate) fn replay(&self, params: &Map<String, Value>) -> ReplayPolicy {
        let configured =
            params.get("reasoningReplay").and_then(Value::as_str).and_then(parse_replay_policy);
        configured.unwrap_or_else(|| replay_policy_for(&self.model.id))
    }
}

/// Deep-merges `over` into `base` (objects by key, anything else replaced).
pub fn merge_json(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Whether `api` reports token logprobs: OpenAI chat (llama-server, vLLM, OpenAI) and OpenAI
/// Responses do; Anthropic Messages and Ollama's native API have no such field, so a caller's
/// request for them is not sent there (the server says so in `x-hearth-dropped`).
pub fn has_logprobs(api: Api) -> bool {
    crate::api::of(api).has_logprobs()
}

/// The Responses `include` value that asks for `output_text` logprobs.
pub const INCLUDE_OUTPUT_TEXT_LOGPROBS: &str = "message.output_text.logprobs";

/// The request body for `target`'s API, serialized: the dialect's typed body, with the target's
/// `extra_body` deep-merged last.
pub fn encode(prompt: &Prompt, target: &Target<'_>) -> serde_json::Result<Vec<u8>> {
    crate::api::of(target.model.api).encode(prompt, target)
}

/// [`encode`] as a JSON value: for callers that adjust the body (count-token requests) and
/// for tests.
pub fn encode_json(prompt: &Prompt, target: &Target<'_>) -> serde_json::Result<Value> {
    serde_json::from_slice(&encode(prompt, target)?)
}

/// The wire fields of the merged params, in order (`WIRE_PARAMS`).
/// A `thinking` that is a level (a name or a boolean) is hearth's, not a wire field: the
/// dialect sends it in its own fields (`thinking.rs`).
pub(crate) fn wire_params(params: &Map<String, Value>) -> Vec<(&str, &Value)> {
    params
        .iter()
        .filter(|(k, _)| WIRE_PARAMS.contains(&k.as_str()))
        .filter(|(k, v)| k.as_str() != "thinking" || v.is_object())
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

pub(crate) fn tools_allowed(target: &Target<'_>) -> bool {
    target.model.compat.supports_tools != Some(false)
}

pub(crate) fn text_with_replayed_reasoning(message: &Message, policy: ReplayPolicy) -> String {
    let text = message.text();
    match (&message.reasoning, policy) {
        (Some(r), ReplayPolicy::KeepInline) if !r.text.is_empty() => {
            format!("<think>{}</think>\n\n{text}", r.text)
        }
        _ => text,
    }
}

/// What `json_object` output means where an API has no such mode (Anthropic).
pub const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with one JSON object and nothing else: no prose, no code fences.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::{Part, Role, ToolChoice};
    use crate::prompt::{Reasoning, Tool, ToolCall};
    use hearth_config::load_str;
    use serde_json::json;

    fn config(api: &str, base: &str, model: &str) -> hearth_config::Config {
        let text = format!(
            r#"{{models: {{mode: "replace", providers: {{p: {{baseUrl: "{base}", api: "{api}", models: [{model}]}}}}}}}}"#
        );
        let loaded =
            load_str("t.json5", &text, &std::collections::BTreeMap::<String, String>::new());
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.config.unwrap()
    }

    fn body(api: &str, base: &str, model: &str, prompt: &Prompt) -> Value {
        let c = config(api, base, model);
        let provider = &c.providers["p"];
        encode_json(
            prompt,
            &Target { provider, model: &provider.models[0], params: None, served_max: None },
        )
        .unwrap()
    }

    fn conversation() -> Prompt {
        let mut prompt = Prompt::text(Some("sys"), "weather in Paris?");
        prompt.messages.push(Message {
            reasoning: Some(Reasoning {
                text: "need the tool".into(),
                signature: Some("sig".into()),
            }),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            }],
            ..Message::assistant("")
        });
        prompt.messages.push(Message {
            role: Role::Tool,
            tool_call_id: Some("call_1".into()),
            name: Some("weather".into()),
            ..Message::user("sunny")
        });
        prompt.tools.push(Tool {
            name: "weather".into(),
            description: Some("Weather".into()),
            parameters: json!({"type": "object"}),
        });
        prompt.tool_choice = Some(ToolChoice::Auto);
        prompt
    }

    /// Logprobs go where the API has them, in its own fields; elsewhere nothing is sent.
    #[test]
    fn logprobs_only_where_the_api_has_them() {
        let model = r#"{id: "m", maxTokens: 100}"#;
        let mut prompt = Prompt::text(None, "hi");
        prompt.logprobs = Some(2);
        let chat = body("openai-completions", "http://127.0.0.1:8080/v1", model, &prompt);
        assert_eq!(
            (chat["logprobs"].clone(), chat["top_logprobs"].clone()),
            (json!(true), json!(2))
        );
        prompt.logprobs = Some(0);
        let chat = body("openai-completions", "http://127.0.0.1:8080/v1", model, &prompt);
        assert_eq!(chat["logprobs"], json!(true));
        assert!(chat.get("top_logprobs").is_none());
        prompt.logprobs = Some(3);
        let responses = body("openai-responses", "https://api.openai.com/v1", model, &prompt);
        assert_eq!(responses["top_logprobs"], json!(3));
        assert_eq!(responses["include"], json!([INCLUDE_OUTPUT_TEXT_LOGPROBS]));
        assert!(responses.get("logprobs").is_none());
        for api in ["anthropic-messages", "ollama"] {
            let b = body(api, "http://127.0.0.1:9/", model, &prompt);
            assert!(b.get("logprobs").is_none() && b.get("top_logprobs").is_none(), "{api}: {b}");
        }
        assert!(!has_logprobs(Api::AnthropicMessages) && !has_logprobs(Api::Ollama));
        prompt.logprobs = None;
        let chat = body("openai-completions", "http://127.0.0.1:8080/v1", model, &prompt);
        assert!(chat.get("logprobs").is_none() && chat.get("top_logprobs").is_none());
    }

    #[test]
    fn tools_map_across_the_apis() {
        let p = conversation();
        let chat = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &p);
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "sys"}));
        assert_eq!(chat["messages"][2]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "content": "sunny", "tool_call_id": "call_1"})
        );
        assert_eq!(chat["tools"][0]["function"]["parameters"], json!({"type": "object"}));
        assert_eq!(chat["tool_choice"], "auto");

        let responses = body("openai-responses", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &p);
        assert_eq!(responses["instructions"], "sys");
        let input = responses["input"].as_array().unwrap();
        assert_eq!(
            input[1],
            json!({"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": r#"{"city":"Paris"}"#})
        );
        assert_eq!(
            input[2],
            json!({"type": "function_call_output", "call_id": "call_1", "output": "sunny"})
        );
        assert_eq!(responses["tools"][0]["name"], "weather");

        let anthropic = body(
            "anthropic-messages",
            "https://api.anthropic.com",
            r#"{id: "claude-sonnet-4-5"}"#,
            &p,
        );
        assert_eq!(anthropic["system"], "sys");
        let assistant = &anthropic["messages"][1]["content"];
        assert_eq!(
            assistant[0],
            json!({"type": "thinking", "thinking": "need the tool", "signature": "sig"}),
            "signed thinking is replayed"
        );
        assert_eq!(
            assistant[1],
            json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
        );
        assert_eq!(anthropic["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(anthropic["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(anthropic["tool_choice"], json!({"type": "auto"}));

        let ollama = body("ollama", "http://127.0.0.1:11434", r#"{id: "m"}"#, &p);
        assert_eq!(
            ollama["messages"][2]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        assert_eq!(ollama["messages"][3]["role"], "tool");
    }

    /// See: #12. A tool result with an image, from any client API.
    #[test]
    fn tool_result_images_reach_anthropic_and_chat() {
        let mut p = conversation();
        p.messages[2].content.push(Part::Image { url: "data:image/png;base64,AAAA".into() });
        let anthropic =
            body("anthropic-messages", "https://api.anthropic.com", r#"{id: "claude-x"}"#, &p);
        assert_eq!(
            anthropic["messages"][2]["content"][0]["content"],
            json!([{"type": "text", "text": "sunny"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}])
        );
        let chat = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &p);
        let messages = chat["messages"].as_array().unwrap();
        assert_eq!(messages[3]["content"], "sunny");
        assert_eq!(messages[4]["role"], "user", "the images follow the tool messages");
        assert_eq!(messages[4]["content"][1]["image_url"]["url"], "data:image/png;base64,AAAA");
    }

    #[test]
    fn compat_flags() {
        let p = conversation();
        let strict = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "m", compat: {strictMessageKeys: true, supportsTools: false}}"#,
            &p,
        );
        for m in strict["messages"].as_array().unwrap() {
            let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["role", "content"], "{m}");
        }
        assert!(strict.get("tools").is_none() && strict.get("tool_choice").is_none());
        let mut image = Prompt::text(None, "what is this?");
        image.messages[0].content.push(Part::Image { url: "data:image/png;base64,AAAA".into() });
        let parts = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "m"}"#, &image);
        assert!(parts["messages"][0]["content"].is_array());
        let flat = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "m", compat: {requiresStringContent: true}}"#,
            &image,
        );
        assert_eq!(flat["messages"][0]["content"], "what is this?");
        // `developer` only on api.openai.com, never on a proxy even when the config claims support.
        let proxy = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "m", compat: {supportsDeveloperRole: true}}"#,
            &p,
        );
        assert_eq!(proxy["messages"][0]["role"], "system");
        let native = body(
            "openai-completions",
            "https://api.openai.com/v1",
            r#"{id: "m", compat: {supportsDeveloperRole: true}}"#,
            &p,
        );
        assert_eq!(native["messages"][0]["role"], "developer");
        assert!(native.get("max_completion_tokens").is_some());
    }

    #[test]
    fn params_and_extra_body_last() {
        let p = Prompt::text(None, "hi");
        let b = body(
            "openai-completions",
            "http://127.0.0.1:8000/v1",
            r#"{id: "Qwen/Qwen3-8B", params: {chat_template_kwargs: {enable_thinking: true}, fastMode: true,
                extra_body: {tool_choice: "required", chat_template_kwargs: {enable_thinking: false}}}}"#,
            &p,
        );
        assert_eq!(b["chat_template_kwargs"]["enable_thinking"], false, "extra_body wins");
        assert_eq!(b["tool_choice"], "required");
        assert!(b.get("fastMode").is_none(), "runtime knobs are not wire fields");
        assert!(b.get("extra_body").is_none());
    }

    #[test]
    fn reasoning_replay_policies() {
        let mut p = Prompt::text(None, "q");
        p.messages.push(Message {
            reasoning: Some(Reasoning { text: "r".into(), signature: None }),
            ..Message::assistant("a")
        });
        p.messages.push(Message::user("q2"));
        let minimax =
            body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "minimax-m2.1-gs32"}"#, &p);
        assert_eq!(
            minimax["messages"][1]["content"], "<think>r</think>\n\na",
            "MiniMax keeps <think> in history"
        );
        let qwen = body("openai-completions", "http://127.0.0.1:1/v1", r#"{id: "qwen3-8b"}"#, &p);
        assert_eq!(qwen["messages"][1]["content"], "a", "Qwen3 drops it");
        let configured = body(
            "openai-completions",
            "http://127.0.0.1:1/v1",
            r#"{id: "qwen3-8b", params: {reasoningReplay: "keep-inline"}}"#,
            &p,
        );
        assert_eq!(
            configured["messages"][1]["content"], "<think>r</think>\n\na",
            "configurable per model"
        );
    }

    /// LM Studio takes its idle TTL in the body of its OpenAI-compatible endpoints; no other
    /// server gets `ttl`. See: #15
    #[test]
    fn r15_ttl_goes_only_to_lmstudio() {
        let p = Prompt::text(None, "hi");
        for api in ["openai-completions", "openai-responses"] {
            let lmstudio = body(
                api,
                "http://127.0.0.1:1234/v1",
                r#"{id: "qwen3-8b", params: {ttl: 300}}"#,
                &p,
            );
            assert_eq!(lmstudio["ttl"], 300, "{api}");
            let other = body(
                api,
                "http://127.0.0.1:8000/v1",
                r#"{id: "qwen3-8b", params: {ttl: 300}}"#,
                &p,
            );
            assert!(other.get("ttl").is_none(), "{api}: {other}");
            let unset = body(api, "http://127.0.0.1:1234/v1", r#"{id: "qwen3-8b"}"#, &p);
            assert!(unset.get("ttl").is_none(), "{api}: {unset}");
        }
    }

    #[test]
    fn ollama_options_and_think_guard() {
        let p = Prompt::text(None, "hi");
        let b = body(
            "ollama",
            "http://127.0.0.1:11434",
            r#"{id: "qwen3.5:27b", params: {num_ctx: 32768, keep_alive: "15m", temperature: 0.7, streaming: false, think: true}}"#,
            &p,
        );
        assert_eq!(b["options"]["num_ctx"], 32768);
        assert_eq!(b["options"]["temperature"], 0.7);
        assert_eq!(b["keep_alive"], "15m");
        assert!(b.get("streaming").is_none());
        assert!(b.get("think").is_none(), "never a truthy think for a model not marked reasoning");
    }
}
