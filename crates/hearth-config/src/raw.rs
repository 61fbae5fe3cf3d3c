//! The config file as written: OpenClaw's JSON5 shape, every field optional.
//!
//! These types are the source of `hearth config schema` (schemars reads the serde attributes);
//! the [`Decode`] impls below read them from the span-carrying tree. A test checks that the keys
//! each decoder accepts are exactly the properties its schema declares.

use indexmap::IndexMap;
use schemars::JsonSchema;

use crate::decode::{Cx, Decode, Obj, Spanned, Unknown, decode_enum};
use crate::json5::{Node, Value};

/// The whole file. Sections hearth does not implement (channels, plugins, ...) load with a
/// warning and are ignored.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawConfig {
    /// The model layer: providers and their model catalogs.
    pub models: Option<RawModels>,
    /// Agent defaults and per-agent entries.
    pub agents: Option<RawAgents>,
    /// The HTTP gateway.
    pub gateway: Option<RawGateway>,
    /// Diagnostics; hearth implements `otel` (trace export).
    pub diagnostics: Option<RawDiagnostics>,
    /// Chat channels (Matrix, Telegram, the signed webhook): docs/channels.md.
    pub channels: Option<RawChannels>,
    /// Sessions; hearth implements `dmScope` (how channel DMs map to sessions).
    pub session: Option<RawSession>,
}

/// `diagnostics` (OpenClaw's section): hearth reads `otel`; its other keys warn.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawDiagnostics {
    /// OpenTelemetry export (OpenClaw's `diagnostics-otel` shape). hearth exports traces only,
    /// over OTLP/HTTP protobuf.
    pub otel: Option<RawOtel>,
}

/// `diagnostics.otel`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawOtel {
    /// Export on (`true`) or off (`false`); unset: on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
    pub enabled: Option<bool>,
    /// The collector's base URL (`http://127.0.0.1:4318`); `/v1/traces` is appended.
    pub endpoint: Option<Spanned<String>>,
    /// The full traces URL; wins over `endpoint`.
    pub traces_endpoint: Option<Spanned<String>>,
    /// Only `http/protobuf` is supported.
    pub protocol: Option<Spanned<String>>,
    /// The `service.name` resource attribute (else `OTEL_SERVICE_NAME`, else `hearth`).
    pub service_name: Option<String>,
    /// Headers sent with every export; values may be secrets.
    pub headers: Option<IndexMap<String, RawSecret>>,
    /// Export traces (default true).
    pub traces: Option<bool>,
    /// The share of requests traced, 0 to 1 (default 1).
    pub sample_rate: Option<Spanned<f64>>,
    /// How often queued spans are sent (milliseconds, at least 1000; default 5000).
    pub flush_interval_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ModelsMode {
    /// Configured providers are merged over the built-in catalog (the default).
    #[default]
    Merge,
    /// Only configured providers exist; the built-in catalog is dropped.
    Replace,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawModels {
    /// `merge` (default) keeps the built-in providers as fallbacks; `replace` drops them.
    pub mode: Option<ModelsMode>,
    /// Provider id → provider. An id that matches a built-in provider overrides it field by field.
    pub providers: Option<IndexMap<String, RawProvider>>,
    /// How the router waits and skips while it fails over (hearth's own key).
    pub routing: Option<RawRouting>,
}

/// `models.routing` (hearth-only): the router's tunable waits. OpenClaw has them as
/// environment variables only; those variables (and hearth's own names) still win over the
/// file.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawRouting {
    /// The longest `Retry-After` (seconds) waited out when the whole chain is rate limited;
    /// `0` or `false`: no cap. Default 60. `HEARTH_RETRY_MAX_WAIT_SECONDS` (or
    /// `OPENCLAW_SDK_RETRY_MAX_WAIT_SECONDS`) wins over it.
    pub retry_max_wait_seconds: Option<Spanned<RawRetryWait>>,
    /// The session-scoped auth skip cache: a fallback that failed authentication is skipped
    /// this long (milliseconds, clamped to 1000 to 600000) in the same session; `0`: off (the
    /// default). `HEARTH_FALLBACK_SKIP_TTL_MS` (or `OPENCLAW_FALLBACK_SKIP_TTL_MS`) wins over it.
    pub fallback_skip_ttl_ms: Option<Spanned<u64>>,
    /// When every candidate is only overloaded and the whole chain is being retried, the
    /// overload notice ("still retrying") goes out this long (milliseconds) after the run
    /// began. Default 30000 (OpenClaw's 30 s).
    pub overload_notice_after_ms: Option<Spanned<u64>>,
}

/// `models.routing.retryMaxWaitSeconds`: seconds, or `false` for no cap.
#[derive(Debug, Clone, Copy, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum RawRetryWait {
    /// Seconds (fractions allowed); `0`: no cap.
    Seconds(f64),
    /// Only `false` (no cap) is accepted.
    Capped(bool),
}

/// The upstream protocol of a provider or model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// OpenAI Chat Completions (`/chat/completions`), what most local servers speak.
    OpenaiCompletions,
    /// OpenAI Responses (`/responses`): keeps reasoning apart from the answer.
    OpenaiResponses,
    /// Anthropic Messages (`/v1/messages`).
    AnthropicMessages,
    /// Ollama's native `/api/chat`.
    Ollama,
}

impl Api {
    pub const ALL: [(&'static str, Api); 4] = [
        ("openai-completions", Api::OpenaiCompletions),
        ("openai-responses", Api::OpenaiResponses),
        ("anthropic-messages", Api::AnthropicMessages),
        ("ollama", Api::Ollama),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenaiCompletions => "openai-completions",
            Api::OpenaiResponses => "openai-responses",
            Api::AnthropicMessages => "anthropic-messages",
            Api::Ollama => "ollama",
        }
    }
}

/// OpenClaw adapters hearth does not implement: a provider using one is skipped with a warning.
const FOREIGN_APIS: &[&str] = &[
    "openai-chatgpt-responses",
    "google-generative-ai",
    "google-vertex",
    "github-copilot",
    "bedrock-converse-stream",
    "azure-openai-responses",
];

/// An `api` value as written: one hearth speaks, or an OpenClaw adapter it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawApi {
    Known(Api),
    Unsupported(String),
}

impl JsonSchema for RawApi {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Api".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        Api::json_schema(generator)
    }
}

impl Decode for RawApi {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        if let Value::String(s) = &node.value {
            if s == "openai" {
                let path = cx.path_string();
                cx.warn(
                    "deprecated",
                    node.span,
                    format!("{path}: `openai` is the legacy name of `openai-completions`"),
                    Some("write `api: \"openai-completions\"`".to_owned()),
                );
                return Some(RawApi::Known(Api::OpenaiCompletions));
            }
            if FOREIGN_APIS.contains(&s.as_str()) {
                let path = cx.path_string();
                cx.warn(
                    "unsupported-api",
                    node.span,
                    format!("{path}: hearth does not implement the `{s}` adapter; this provider is skipped"),
                    Some("use openai-completions, openai-responses, anthropic-messages or ollama".to_owned()),
                );
                return Some(RawApi::Unsupported(s.clone()));
            }
        }
        decode_enum(node, cx, &Api::ALL).map(RawApi::Known)
    }
}

/// A credential: a literal (or `${VAR}` template, resolved when used), or a reference.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum RawSecret {
    /// A literal key, a local marker such as `"lmstudio"`, `"${VAR}"`, or a bare variable name
    /// such as `"OPENAI_API_KEY"` (read from that variable).
    Text(String),
    /// `{source: "env", id: "VAR"}` or `{source: "file", id: "/path/to/secret"}`.
    Ref(RawSecretRef),
}

#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawSecretRef {
    pub source: SecretSource,
    /// Variable name (`env`) or absolute file path (`file`).
    pub id: String,
    /// OpenClaw's secret-provider name; accepted, not used (hearth has one provider per source).
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SecretSource {
    Env,
    File,
}

impl Decode for RawSecret {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            // Kept as written: `${VAR}` in a secret is resolved when the secret is used, so a
            // key exported later still works and the value never sits in the config snapshot.
            Value::String(s) => Some(RawSecret::Text(s.clone())),
            Value::Object(_) => {
                let mut obj = Obj::new(node, cx)?;
                let source_node = obj.node("source", cx);
                let source = match source_node {
                    Some(n) => {
                        if let Value::String(s) = &n.value
                            && (s == "exec" || s == "store")
                        {
                            cx.push_key("source");
                            cx.error(
                                "unsupported-secret",
                                n.span,
                                format!("secret source `{s}` is not supported by hearth"),
                                Some("use {source: \"env\", id: \"VAR\"} or {source: \"file\", id: \"/path\"}".into()),
                            );
                            cx.pop();
                            None
                        } else {
                            cx.push_key("source");
                            let v = decode_enum(
                                n,
                                cx,
                                &[("env", SecretSource::Env), ("file", SecretSource::File)],
                            );
                            cx.pop();
                            v
                        }
                    }
                    None => {
                        cx.error(
                            "missing-key",
                            obj.span(),
                            "a secret reference needs `source`",
                            Some("e.g. {source: \"env\", id: \"OPENAI_API_KEY\"}".into()),
                        );
                        None
                    }
                };
                let id: Option<String> = obj.get("id", cx);
                if id.is_none() && obj.node("id", cx).is_none() {
                    cx.error(
                        "missing-key",
                        obj.span(),
                        "a secret reference needs `id`",
                        Some("the variable name or file path".into()),
                    );
                }
                let provider = obj.get("provider", cx);
                obj.finish(cx, Unknown::Error);
                Some(RawSecret::Ref(RawSecretRef { source: source?, id: id?, provider }))
            }
            _ => {
                cx.type_error(node, "string or {source, id} object");
                None
            }
        }
    }
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawProvider {
    /// Upstream base URL. OpenAI-compatible servers include `/v1` (`http://127.0.0.1:8000/v1`);
    /// native Ollama does not (`http://127.0.0.1:11434`). `baseURL` is accepted too.
    pub base_url: Option<Spanned<String>>,
    /// API key: literal, local marker (`"lmstudio"`), `"${VAR}"`, or `{source, id}`.
    pub api_key: Option<Spanned<RawSecret>>,
    /// Adapter; a custom provider with a `baseUrl` and no `api` uses `openai-completions`.
    pub api: Option<Spanned<RawApi>>,
    /// Auth strategy (`api-key`, `token`); OAuth and AWS SDK auth are not implemented.
    pub auth: Option<String>,
    /// Send the key in `Authorization` even for APIs that use another header.
    pub auth_header: Option<bool>,
    /// Extra static headers; values may be secrets.
    pub headers: Option<IndexMap<String, RawSecret>>,
    /// Default output cap for models of this provider that set none.
    pub max_tokens: Option<u64>,
    /// Per-provider HTTP timeout in seconds: how long to wait for the first byte of an answer
    /// (headers and first chunk; a whole non-streaming body), and for a loading model.
    pub timeout_seconds: Option<Spanned<f64>>,
    /// hearth only: the longest gap between two chunks of a streaming answer, in seconds,
    /// once it has started (a stall). Default: 60, never more than the first-byte timeout.
    pub stream_idle_timeout_seconds: Option<Spanned<f64>>,
    pub request: Option<RawRequest>,
    /// Ollama via `openai-completions` only: send `options.num_ctx` (default true).
    #[serde(rename = "injectNumCtxForOpenAICompat")]
    pub inject_num_ctx_for_open_ai_compat: Option<bool>,
    /// Provider-wide request parameters.
    pub params: Option<serde_json::Value>,
    /// Start the server on demand.
    pub local_service: Option<RawLocalService>,
    /// The provider's model catalog.
    pub models: Option<Vec<RawModel>>,
    /// hearth only: whether model ids the catalog does not list may be sent to this provider.
    /// Default: yes for local servers, providers without rows and live catalogs (OpenRouter).
    pub discover_models: Option<bool>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawRequest {
    /// Headers merged over the provider's defaults.
    pub headers: Option<IndexMap<String, RawSecret>>,
    /// Unset: only the exact `baseUrl` origin is trusted. `true`: private, loopback and
    /// link-local destinations allowed. `false`: even the configured origin is not trusted.
    pub allow_private_network: Option<bool>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawLocalService {
    /// Absolute path of the server executable (no PATH lookup, no `~`).
    pub command: Option<Spanned<String>>,
    /// Arguments, passed as-is (no shell).
    pub args: Option<Vec<String>>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Extra environment for the child; values are never logged.
    pub env: Option<IndexMap<String, String>>,
    /// Readiness URL; default `baseUrl` + `/models`.
    pub health_url: Option<Spanned<String>>,
    /// How long to wait for readiness, in ms (default 120000).
    pub ready_timeout_ms: Option<u64>,
    /// Stop a server hearth started after this long without requests, in ms (0: keep running).
    pub idle_stop_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    Text,
    Image,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Text => "text",
            InputKind::Image => "image",
        }
    }
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawModel {
    /// Provider-local id, sent on the wire as-is (may contain `/` and `:`). Required.
    pub id: Option<Spanned<String>>,
    /// Display name (default: the id).
    pub name: Option<String>,
    /// Adapter override for this model.
    pub api: Option<Spanned<RawApi>>,
    /// Reasoning-capable (default false).
    pub reasoning: Option<bool>,
    /// Accepted inputs (default `["text"]`).
    pub input: Option<Vec<InputKind>>,
    /// USD per million tokens (default all 0).
    pub cost: Option<RawCost>,
    /// Native context window in tokens (unset: budgets use 200000).
    pub context_window: Option<u64>,
    /// Active input cap, below the native window.
    pub context_tokens: Option<u64>,
    /// Output cap in tokens (default: the provider's `maxTokens`, else 8192).
    pub max_tokens: Option<u64>,
    pub compat: Option<RawCompat>,
    /// Per-model request parameters (e.g. Ollama `num_ctx`, `keep_alive`).
    pub params: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawCost {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

/// Capability declarations for custom routes.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawCompat {
    pub supports_store: Option<bool>,
    pub supports_prompt_cache_key: Option<bool>,
    /// Forced off for `openai-completions` on any host other than api.openai.com.
    pub supports_developer_role: Option<bool>,
    pub supports_reasoning_effort: Option<bool>,
    pub supports_temperature: Option<bool>,
    pub supports_usage_in_streaming: Option<bool>,
    /// `false`: never send tools.
    pub supports_tools: Option<bool>,
    pub supports_strict_mode: Option<bool>,
    /// Flatten text-only content parts into a plain string.
    pub requires_string_content: Option<bool>,
    /// Outgoing messages carry only `role` and `content`.
    pub strict_message_keys: Option<bool>,
    pub visible_reasoning_detail_types: Option<Vec<String>>,
    pub supported_reasoning_efforts: Option<Vec<String>>,
    pub reasoning_effort_map: Option<IndexMap<String, String>>,
    /// `max_tokens` or `max_completion_tokens`.
    pub max_tokens_field: Option<String>,
    /// `together`, `qwen`, `qwen-chat-template` or `deepseek`.
    pub thinking_format: Option<String>,
    pub requires_tool_result_name: Option<bool>,
    pub requires_assistant_after_tool_result: Option<bool>,
    pub requires_thinking_as_text: Option<bool>,
    pub requires_reasoning_content_on_assistant_messages: Option<bool>,
    /// `llamacpp` or `gemini`.
    pub tool_schema_profile: Option<String>,
    pub unsupported_tool_schema_keywords: Option<Vec<String>>,
    pub tool_call_arguments_encoding: Option<String>,
    pub requires_open_ai_anthropic_tool_payload: Option<bool>,
    /// hearth-only. `false`: tool calls the model writes into its text are left as text.
    pub text_tool_calls: Option<bool>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawAgents {
    pub defaults: Option<RawAgentDefaults>,
    /// Agent id → agent.
    pub entries: Option<IndexMap<String, RawAgent>>,
}

/// `"provider/model"` or `{primary, fallbacks}`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum RawModelSelection {
    Ref(Spanned<String>),
    Chain(RawModelChain),
}

#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawModelChain {
    pub primary: Option<Spanned<String>>,
    /// Tried in order when the primary fails; `[]` means no fallback.
    pub fallbacks: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawModelSettings {
    /// Short name usable wherever a model ref is expected.
    pub alias: Option<Spanned<String>>,
    /// Request parameters; `extra_body` (or `extraBody`) is merged into the body last.
    pub params: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawModelPolicy {
    /// Exact refs, aliases or `provider/*` prefixes; empty means any model.
    pub allow: Option<Vec<String>>,
    /// hearth only: admit only models of local providers (loopback or private hosts, or a
    /// `localService`); hosted models are never contacted.
    pub local_only: Option<bool>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawAgentDefaults {
    pub model: Option<RawModelSelection>,
    /// `imageModel`: the model (and fallbacks) for a request with images when the active model
    /// takes text only.
    pub image_model: Option<RawModelSelection>,
    /// `thinkingDefault`: the thinking level of every agent's model calls that set none
    /// (`off`, `minimal`, `low`, `medium`, `high`, `xhigh`, `max`, `adaptive`).
    pub thinking_default: Option<String>,
    /// `"provider/model"` (or `"provider/*"`) → alias and params.
    pub models: Option<IndexMap<String, RawModelSettings>>,
    pub model_policy: Option<RawModelPolicy>,
    /// Whole-run budget in seconds (default 172800; 0 = unlimited).
    pub timeout_seconds: Option<u64>,
    /// Global request parameters (lowest precedence).
    pub params: Option<serde_json::Value>,
    pub compaction: Option<RawCompaction>,
    /// System prompt text for every agent (an agent's own replaces it).
    pub system_prompt: Option<String>,
    /// A file whose text is the system prompt (relative to the config file).
    pub system_prompt_file: Option<Spanned<String>>,
    /// Which client-supplied tools agents may use.
    pub tools: Option<RawToolPolicy>,
}

/// Tool policy: names or `*` patterns; deny wins over allow.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawToolPolicy {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawCompaction {
    /// Model used to summarize old turns (default: the session's model).
    pub model: Option<Spanned<String>>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawAgent {
    /// Display name.
    pub name: Option<String>,
    /// The agent used when a request names none.
    pub default: Option<bool>,
    /// A string is strict (no fallback); `{primary, fallbacks}` opts in to fallbacks.
    pub model: Option<RawModelSelection>,
    /// `imageModel`, this agent's (else the defaults').
    pub image_model: Option<RawModelSelection>,
    /// `thinkingDefault`, this agent's (else the defaults').
    pub thinking_default: Option<String>,
    pub models: Option<IndexMap<String, RawModelSettings>>,
    /// Replaces the default policy (`[]` allows any model).
    pub model_policy: Option<RawModelPolicy>,
    pub timeout_seconds: Option<u64>,
    pub params: Option<serde_json::Value>,
    /// System prompt text (replaces the defaults' prompt).
    pub system_prompt: Option<String>,
    /// A file whose text is the system prompt (relative to the config file).
    pub system_prompt_file: Option<Spanned<String>>,
    /// Replaces the defaults' tool policy.
    pub tools: Option<RawToolPolicy>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawGateway {
    /// Port for HTTP and WebSocket (default 18789).
    pub port: Option<Spanned<u16>>,
    /// `loopback` (default), `lan`, or an IP address.
    pub bind: Option<Spanned<String>>,
    pub auth: Option<RawGatewayAuth>,
    pub http: Option<RawGatewayHttp>,
    /// OpenClaw's `local`/`remote` switch; hearth is always local.
    pub mode: Option<String>,
    /// The browser page (OpenClaw's Control UI key): `allowedOrigins` also governs which web
    /// pages may call the API from a browser.
    pub control_ui: Option<RawControlUi>,
    /// Host names (besides loopback names and IP literals) the gateway answers to while bound to
    /// loopback (DNS-rebinding defence). hearth's own key.
    pub allowed_hosts: Option<Vec<Spanned<String>>>,
    /// Connection and request limits (hearth's own key).
    pub limits: Option<RawGatewayLimits>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawControlUi {
    pub enabled: Option<bool>,
    pub base_path: Option<String>,
    /// Full origins (`https://app.example:8443`) whose pages may call the gateway from a
    /// browser; `"*"` allows every origin.
    pub allowed_origins: Option<Vec<Spanned<String>>>,
}

/// `gateway.limits`: every value is optional; the defaults are in `resolve::GatewayLimits`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawGatewayLimits {
    /// A request head must arrive in full within this long of its first byte.
    pub header_timeout_ms: Option<Spanned<u64>>,
    /// A connection with no request in flight is closed after this long.
    pub idle_timeout_ms: Option<Spanned<u64>>,
    /// The longest pause inside a request body.
    pub body_timeout_ms: Option<Spanned<u64>>,
    /// After the first `bodyTimeoutMs`, a request body must arrive at least this fast.
    pub min_body_bytes_per_second: Option<Spanned<u64>>,
    /// Request bodies larger than this are refused (413).
    pub max_body_bytes: Option<Spanned<u64>>,
    /// Open connections at most (also kept under the open-files limit).
    pub max_connections: Option<Spanned<u64>>,
    /// Requests in flight at most; beyond it 503 with `Retry-After`.
    pub max_concurrent_requests: Option<Spanned<u64>>,
    /// Request body bytes held in memory at once at most; beyond it 503 with `Retry-After`.
    pub max_inflight_body_bytes: Option<Spanned<u64>>,
    /// Memory for `previous_response_id` continuations kept in the gateway.
    pub responses_store_bytes: Option<Spanned<u64>>,
    /// The listen backlog.
    pub backlog: Option<Spanned<u64>>,
    /// A stream whose first event has not come after this long sends its headers and keeps
    /// the client company with SSE comments.
    pub stream_headers_after_ms: Option<Spanned<u64>>,
    /// The interval of SSE keep-alive comments while a stream waits.
    pub stream_keep_alive_ms: Option<Spanned<u64>>,
    /// On SIGTERM, open streams get this long before they end with a terminal error.
    pub drain_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    Token,
    Password,
    None,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawGatewayAuth {
    /// `token`, `password` or `none`.
    pub mode: Option<Spanned<AuthMode>>,
    pub token: Option<RawSecret>,
    pub password: Option<RawSecret>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawGatewayHttp {
    pub endpoints: Option<RawEndpoints>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawEndpoints {
    pub chat_completions: Option<RawEndpoint>,
    pub responses: Option<RawEndpoint>,
}

#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawEndpoint {
    /// hearth serves every endpoint unless this is `false`.
    pub enabled: Option<bool>,
}

// ---- decoders -------------------------------------------------------------------------------

/// The keys each decoder accepts, for the schema-consistency test.
#[cfg(test)]
pub(crate) const KEYS: &[(&str, &[&str])] = &[
    ("RawConfig", &["models", "agents", "gateway", "diagnostics", "channels", "session"]),
    ("RawChannels", &["defaults", "matrix", "telegram", "webhook"]),
    ("RawChannelDefaults", &["groupPolicy"]),
    ("RawChannelGroup", &["requireMention", "allowFrom"]),
    ("RawSession", &["dmScope"]),
    ("RawMatrixDm", &["policy", "allowFrom"]),
    ("RawMatrixNetwork", &["dangerouslyAllowPrivateNetwork"]),
    (
        "RawMatrixAccount",
        &[
            "enabled",
            "dmPolicy",
            "allowFrom",
            "groupPolicy",
            "groups",
            "groupAllowFrom",
            "textChunkLimit",
            "homeserver",
            "accessToken",
            "userId",
            "password",
            "autoJoin",
            "autoJoinAllowlist",
            "network",
            "dm",
        ],
    ),
    (
        "RawMatrix",
        &[
            "enabled",
            "dmPolicy",
            "allowFrom",
            "groupPolicy",
            "groups",
            "groupAllowFrom",
            "textChunkLimit",
            "homeserver",
            "accessToken",
            "userId",
            "password",
            "autoJoin",
            "autoJoinAllowlist",
            "network",
            "dm",
            "accounts",
        ],
    ),
    (
        "RawTelegramAccount",
        &[
            "enabled",
            "dmPolicy",
            "allowFrom",
            "groupPolicy",
            "groups",
            "groupAllowFrom",
            "textChunkLimit",
            "botToken",
            "apiRoot",
        ],
    ),
    (
        "RawTelegram",
        &[
            "enabled",
            "dmPolicy",
            "allowFrom",
            "groupPolicy",
            "groups",
            "groupAllowFrom",
            "textChunkLimit",
            "botToken",
            "apiRoot",
            "accounts",
        ],
    ),
    (
        "RawWebhookAccount",
        &[
            "enabled",
            "dmPolicy",
            "allowFrom",
            "groupPolicy",
            "groups",
            "groupAllowFrom",
            "textChunkLimit",
            "secret",
            "outboundUrl",
            "maxSkewSeconds",
        ],
    ),
    (
        "RawWebhook",
        &[
            "enabled",
            "dmPolicy",
            "allowFrom",
            "groupPolicy",
            "groups",
            "groupAllowFrom",
            "textChunkLimit",
            "secret",
            "outboundUrl",
            "maxSkewSeconds",
            "accounts",
        ],
    ),
    ("RawDiagnostics", &["otel"]),
    (
        "RawOtel",
        &[
            "enabled",
            "endpoint",
            "tracesEndpoint",
            "protocol",
            "serviceName",
            "headers",
            "traces",
            "sampleRate",
            "flushIntervalMs",
        ],
    ),
    ("RawModels", &["mode", "providers", "routing"]),
    ("RawRouting", &["retryMaxWaitSeconds", "fallbackSkipTtlMs", "overloadNoticeAfterMs"]),
    (
        "RawProvider",
        &[
            "baseUrl",
            "apiKey",
            "api",
            "auth",
            "authHeader",
            "headers",
            "maxTokens",
            "timeoutSeconds",
            "streamIdleTimeoutSeconds",
            "request",
            "injectNumCtxForOpenAICompat",
            "params",
            "localService",
            "models",
            "discoverModels",
        ],
    ),
    ("RawRequest", &["headers", "allowPrivateNetwork"]),
    (
        "RawLocalService",
        &["command", "args", "cwd", "env", "healthUrl", "readyTimeoutMs", "idleStopMs"],
    ),
    (
        "RawModel",
        &[
            "id",
            "name",
            "api",
            "reasoning",
            "input",
            "cost",
            "contextWindow",
            "contextTokens",
            "maxTokens",
            "compat",
            "params",
        ],
    ),
    ("RawCost", &["input", "output", "cacheRead", "cacheWrite"]),
    ("RawAgents", &["defaults", "entries"]),
    ("RawModelChain", &["primary", "fallbacks"]),
    ("RawModelSettings", &["alias", "params"]),
    ("RawModelPolicy", &["allow", "localOnly"]),
    (
        "RawAgentDefaults",
        &[
            "model",
            "imageModel",
            "thinkingDefault",
            "models",
            "modelPolicy",
            "timeoutSeconds",
            "params",
            "compaction",
            "systemPrompt",
            "systemPromptFile",
            "tools",
        ],
    ),
    ("RawToolPolicy", &["allow", "deny"]),
    ("RawCompaction", &["model", "timeoutSeconds"]),
    (
        "RawAgent",
        &[
            "name",
            "default",
            "model",
            "imageModel",
            "thinkingDefault",
            "models",
            "modelPolicy",
            "timeoutSeconds",
            "params",
            "systemPrompt",
            "systemPromptFile",
            "tools",
        ],
    ),
    (
        "RawGateway",
        &["port", "bind", "auth", "http", "mode", "controlUi", "allowedHosts", "limits"],
    ),
    ("RawControlUi", &["enabled", "basePath", "allowedOrigins"]),
    (
        "RawGatewayLimits",
        &[
            "headerTimeoutMs",
            "idleTimeoutMs",
            "bodyTimeoutMs",
            "minBodyBytesPerSecond",
            "maxBodyBytes",
            "maxConnections",
            "maxConcurrentRequests",
            "maxInflightBodyBytes",
            "responsesStoreBytes",
            "backlog",
            "streamHeadersAfterMs",
            "streamKeepAliveMs",
            "drainTimeoutMs",
        ],
    ),
    ("RawGatewayAuth", &["mode", "token", "password"]),
    ("RawGatewayHttp", &["endpoints"]),
    ("RawEndpoints", &["chatCompletions", "responses"]),
    ("RawEndpoint", &["enabled"]),
];

impl Decode for RawConfig {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let config = RawConfig {
            models: obj.get("models", cx),
            agents: obj.get("agents", cx),
            gateway: obj.get("gateway", cx),
            diagnostics: obj.get("diagnostics", cx),
            channels: obj.get("channels", cx),
            session: obj.get("session", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(config)
    }
}

impl Decode for RawDiagnostics {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let diagnostics = RawDiagnostics { otel: obj.get("otel", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(diagnostics)
    }
}

/// OpenClaw's `diagnostics.otel` keys for signals hearth does not export.
const OTEL_IGNORED: &[(&str, &str)] = &[
    ("metrics", "hearth exports traces only (its metrics are on /metrics)"),
    ("logs", "hearth exports traces only (its logs go to stderr)"),
    ("metricsEndpoint", "hearth exports traces only"),
    ("logsEndpoint", "hearth exports traces only"),
    ("logsExporter", "hearth exports traces only"),
    ("metricNamePrefix", "hearth exports traces only"),
    ("captureContent", "hearth never exports prompt or answer text"),
];

impl Decode for RawOtel {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let otel = RawOtel {
            enabled: obj.get("enabled", cx),
            endpoint: obj.get("endpoint", cx),
            traces_endpoint: obj.get("tracesEndpoint", cx),
            protocol: obj.get("protocol", cx),
            service_name: obj.get("serviceName", cx),
            headers: obj.get("headers", cx),
            traces: obj.get("traces", cx),
            sample_rate: obj.get("sampleRate", cx),
            flush_interval_ms: obj.get("flushIntervalMs", cx),
        };
        obj.finish_with(cx, Unknown::Warn, OTEL_IGNORED);
        Some(otel)
    }
}

impl Decode for ModelsMode {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(node, cx, &[("merge", ModelsMode::Merge), ("replace", ModelsMode::Replace)])
    }
}

impl Decode for RawModels {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let models = RawModels {
            mode: obj.get("mode", cx),
            providers: obj.get("providers", cx),
            routing: obj.get("routing", cx),
        };
        obj.finish_with(
            cx,
            Unknown::Error,
            &[
                ("catalogRefresh", "hearth ships its catalog in the binary and never fetches one"),
                (
                    "pricing",
                    "retired by OpenClaw; put prices in models.providers.<id>.models[].cost",
                ),
            ],
        );
        Some(models)
    }
}

impl Decode for RawRouting {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let routing = RawRouting {
            retry_max_wait_seconds: obj.get("retryMaxWaitSeconds", cx),
            fallback_skip_ttl_ms: obj.get("fallbackSkipTtlMs", cx),
            overload_notice_after_ms: obj.get("overloadNoticeAfterMs", cx),
        };
        obj.finish(cx, Unknown::Error);
        Some(routing)
    }
}

impl Decode for RawRetryWait {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let path = cx.path_string();
        let help = || Some("write a number of seconds, or `false` (or 0) for no cap".to_owned());
        match &node.value {
            Value::Bool(false) => Some(RawRetryWait::Capped(false)),
            Value::Number(n) if n.as_f64().is_finite() && n.as_f64() >= 0.0 => {
                Some(RawRetryWait::Seconds(n.as_f64()))
            }
            Value::Number(_) => {
                cx.error(
                    "range",
                    node.span,
                    format!("{path}: expected seconds, 0 or more"),
                    help(),
                );
                None
            }
            Value::Bool(true) => {
                cx.error("type", node.span, format!("{path}: `true` is not a wait"), help());
                None
            }
            _ => {
                cx.type_error(node, "number of seconds or false");
                None
            }
        }
    }
}

const PROVIDER_IGNORED: &[(&str, &str)] = &[("agentRuntime", "hearth has a single runtime")];

impl Decode for RawProvider {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let provider = RawProvider {
            base_url: obj.get_any(&["baseUrl", "baseURL"], cx),
            api_key: obj.get("apiKey", cx),
            api: obj.get("api", cx),
            auth: obj.get("auth", cx),
            auth_header: obj.get("authHeader", cx),
            headers: obj.get("headers", cx),
            max_tokens: obj.get("maxTokens", cx),
            timeout_seconds: obj.get("timeoutSeconds", cx),
            stream_idle_timeout_seconds: obj.get("streamIdleTimeoutSeconds", cx),
            discover_models: obj.get("discoverModels", cx),
            request: obj.get("request", cx),
            inject_num_ctx_for_open_ai_compat: obj.get("injectNumCtxForOpenAICompat", cx),
            params: object_value(&mut obj, "params", cx),
            local_service: obj.get("localService", cx),
            models: obj.get("models", cx),
        };
        obj.finish_with(cx, Unknown::Error, PROVIDER_IGNORED);
        Some(provider)
    }
}

/// A `params`-like member: any object, kept as JSON (`params.provider` is checked here).
fn object_value(
    obj: &mut Obj<'_>,
    key: &'static str,
    cx: &mut Cx<'_>,
) -> Option<serde_json::Value> {
    let node = obj.node(key, cx)?;
    if !matches!(node.value, Value::Object(_)) {
        cx.push_key(key);
        cx.type_error(node, "object");
        cx.pop();
        return None;
    }
    if key == "params" {
        cx.push_key(key);
        crate::provider_routing::check_params(node, cx);
        cx.pop();
    }
    Some(node.to_json())
}

impl Decode for RawRequest {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let request = RawRequest {
            headers: obj.get("headers", cx),
            allow_private_network: obj.get("allowPrivateNetwork", cx),
        };
        obj.finish_with(
            cx,
            Unknown::Error,
            &[
                ("auth", "custom request auth is not implemented yet; use apiKey and headers"),
                ("proxy", "HTTP proxies are not implemented yet"),
                ("tls", "custom TLS settings are not implemented yet"),
            ],
        );
        Some(request)
    }
}

impl Decode for RawLocalService {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let service = RawLocalService {
            command: obj.get("command", cx),
            args: obj.get("args", cx),
            cwd: obj.get("cwd", cx),
            env: obj.get("env", cx),
            health_url: obj.get("healthUrl", cx),
            ready_timeout_ms: obj.get("readyTimeoutMs", cx),
            idle_stop_ms: obj.get("idleStopMs", cx),
        };
        if service.command.is_none() && obj.node("command", cx).is_none() {
            cx.error(
                "missing-key",
                obj.span(),
                "localService needs `command`",
                Some(
                    "the absolute path of the server binary, e.g. \"/usr/local/bin/llama-server\""
                        .into(),
                ),
            );
        }
        obj.finish(cx, Unknown::Error);
        Some(service)
    }
}

impl Decode for InputKind {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(node, cx, &[("text", InputKind::Text), ("image", InputKind::Image)])
    }
}

impl Decode for RawModel {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let model = RawModel {
            id: obj.get("id", cx),
            name: obj.get("name", cx),
            api: obj.get("api", cx),
            reasoning: obj.get("reasoning", cx),
            input: obj.get("input", cx),
            cost: obj.get("cost", cx),
            context_window: obj.get("contextWindow", cx),
            context_tokens: obj.get("contextTokens", cx),
            max_tokens: obj.get("maxTokens", cx),
            compat: obj.get("compat", cx),
            params: object_value(&mut obj, "params", cx),
        };
        if model.id.is_none() && obj.node("id", cx).is_none() {
            cx.error(
                "missing-key",
                obj.span(),
                "a model entry needs `id`",
                Some("the id the server knows the model by, e.g. \"qwen3:32b\"".into()),
            );
        }
        obj.finish_with(cx, Unknown::Error, &[("agentRuntime", "hearth has a single runtime")]);
        Some(model)
    }
}

impl Decode for RawCost {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let cost = RawCost {
            input: obj.get("input", cx),
            output: obj.get("output", cx),
            cache_read: obj.get("cacheRead", cx),
            cache_write: obj.get("cacheWrite", cx),
        };
        obj.finish(cx, Unknown::Error);
        Some(cost)
    }
}

/// `thinkingDefault`: a thinking level ([`crate::ThinkingLevel::parse`], aliases included),
/// kept as its canonical name; anything else is an error naming the levels.
fn decode_thinking(obj: &mut Obj<'_>, cx: &mut Cx<'_>) -> Option<String> {
    let node = obj.node("thinkingDefault", cx)?;
    cx.push_key("thinkingDefault");
    let raw = String::decode(node, cx);
    let level = raw.as_deref().and_then(crate::ThinkingLevel::parse);
    if let (Some(raw), None) = (&raw, level) {
        let path = cx.path_string();
        let names = crate::ThinkingLevel::NAMES;
        let help = match crate::diag::suggest(raw, names.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("expected one of: {}", names.join(", ")),
        };
        cx.error("invalid-value", node.span, format!("{path}: unknown level `{raw}`"), Some(help));
    }
    cx.pop();
    level.map(|l| l.as_str().to_owned())
}

fn decode_choice(
    obj: &mut Obj<'_>,
    key: &'static str,
    cx: &mut Cx<'_>,
    choices: &[&'static str],
) -> Option<String> {
    let node = obj.node(key, cx)?;
    let pairs: Vec<(&'static str, &'static str)> = choices.iter().map(|c| (*c, *c)).collect();
    cx.push_key(key);
    let value = decode_enum(node, cx, &pairs);
    cx.pop();
    value.map(str::to_owned)
}

impl Decode for RawCompat {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let compat = RawCompat {
            supports_store: obj.get("supportsStore", cx),
            supports_prompt_cache_key: obj.get("supportsPromptCacheKey", cx),
            supports_developer_role: obj.get("supportsDeveloperRole", cx),
            supports_reasoning_effort: obj.get("supportsReasoningEffort", cx),
            supports_temperature: obj.get("supportsTemperature", cx),
            supports_usage_in_streaming: obj.get("supportsUsageInStreaming", cx),
            supports_tools: obj.get("supportsTools", cx),
            supports_strict_mode: obj.get("supportsStrictMode", cx),
            requires_string_content: obj.get("requiresStringContent", cx),
            strict_message_keys: obj.get("strictMessageKeys", cx),
            visible_reasoning_detail_types: obj.get("visibleReasoningDetailTypes", cx),
            supported_reasoning_efforts: obj.get("supportedReasoningEfforts", cx),
            reasoning_effort_map: obj.get("reasoningEffortMap", cx),
            max_tokens_field: decode_choice(
                &mut obj,
                "maxTokensField",
                cx,
                &["max_tokens", "max_completion_tokens"],
            ),
            thinking_format: decode_choice(
                &mut obj,
                "thinkingFormat",
                cx,
                &["together", "qwen", "qwen-chat-template", "deepseek"],
            ),
            requires_tool_result_name: obj.get("requiresToolResultName", cx),
            requires_assistant_after_tool_result: obj.get("requiresAssistantAfterToolResult", cx),
            requires_thinking_as_text: obj.get("requiresThinkingAsText", cx),
            requires_reasoning_content_on_assistant_messages: obj
                .get("requiresReasoningContentOnAssistantMessages", cx),
            tool_schema_profile: decode_choice(
                &mut obj,
                "toolSchemaProfile",
                cx,
                &["llamacpp", "gemini"],
            ),
            unsupported_tool_schema_keywords: obj.get("unsupportedToolSchemaKeywords", cx),
            tool_call_arguments_encoding: obj.get("toolCallArgumentsEncoding", cx),
            requires_open_ai_anthropic_tool_payload: obj
                .get("requiresOpenAiAnthropicToolPayload", cx),
            text_tool_calls: obj.get("textToolCalls", cx),
        };
        obj.finish(cx, Unknown::Error);
        Some(compat)
    }
}

impl Decode for RawAgents {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let agents =
            RawAgents { defaults: obj.get("defaults", cx), entries: obj.get("entries", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(agents)
    }
}

impl Decode for RawModelSelection {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::String(_) => Spanned::<String>::decode(node, cx).map(RawModelSelection::Ref),
            Value::Object(_) => {
                let mut obj = Obj::new(node, cx)?;
                let chain = RawModelChain {
                    primary: obj.get("primary", cx),
                    fallbacks: obj.get("fallbacks", cx),
                };
                obj.finish(cx, Unknown::Error);
                Some(RawModelSelection::Chain(chain))
            }
            _ => {
                cx.type_error(node, "\"provider/model\" string or {primary, fallbacks} object");
                None
            }
        }
    }
}

impl Decode for RawModelSettings {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let settings = RawModelSettings {
            alias: obj.get("alias", cx),
            params: object_value(&mut obj, "params", cx),
        };
        obj.finish_with(cx, Unknown::Error, &[("agentRuntime", "hearth has a single runtime")]);
        Some(settings)
    }
}

impl Decode for RawModelPolicy {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let policy =
            RawModelPolicy { allow: obj.get("allow", cx), local_only: obj.get("localOnly", cx) };
        obj.finish(cx, Unknown::Error);
        Some(policy)
    }
}

impl Decode for RawAgentDefaults {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let defaults = RawAgentDefaults {
            model: obj.get("model", cx),
            image_model: obj.get("imageModel", cx),
            thinking_default: decode_thinking(&mut obj, cx),
            models: obj.get("models", cx),
            model_policy: obj.get("modelPolicy", cx),
            timeout_seconds: obj.get("timeoutSeconds", cx),
            params: object_value(&mut obj, "params", cx),
            compaction: obj.get("compaction", cx),
            system_prompt: obj.get("systemPrompt", cx),
            system_prompt_file: obj.get("systemPromptFile", cx),
            tools: obj.get("tools", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(defaults)
    }
}

impl Decode for RawToolPolicy {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let policy = RawToolPolicy { allow: obj.get("allow", cx), deny: obj.get("deny", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(policy)
    }
}

impl Decode for RawCompaction {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let compaction = RawCompaction {
            model: obj.get("model", cx),
            timeout_seconds: obj.get("timeoutSeconds", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(compaction)
    }
}

impl Decode for RawAgent {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let agent = RawAgent {
            name: obj.get("name", cx),
            default: obj.get("default", cx),
            model: obj.get("model", cx),
            image_model: obj.get("imageModel", cx),
            thinking_default: decode_thinking(&mut obj, cx),
            models: obj.get("models", cx),
            model_policy: obj.get("modelPolicy", cx),
            timeout_seconds: obj.get("timeoutSeconds", cx),
            params: object_value(&mut obj, "params", cx),
            system_prompt: obj.get("systemPrompt", cx),
            system_prompt_file: obj.get("systemPromptFile", cx),
            tools: obj.get("tools", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(agent)
    }
}

impl Decode for RawGateway {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let gateway = RawGateway {
            port: obj.get("port", cx),
            bind: obj.get("bind", cx),
            auth: obj.get("auth", cx),
            http: obj.get("http", cx),
            mode: obj.get("mode", cx),
            control_ui: obj.get("controlUi", cx),
            allowed_hosts: obj.get("allowedHosts", cx),
            limits: obj.get("limits", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(gateway)
    }
}

impl Decode for RawControlUi {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let ui = RawControlUi {
            enabled: obj.get("enabled", cx),
            base_path: obj.get("basePath", cx),
            allowed_origins: obj.get("allowedOrigins", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(ui)
    }
}

impl Decode for RawGatewayLimits {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let limits = RawGatewayLimits {
            header_timeout_ms: obj.get("headerTimeoutMs", cx),
            idle_timeout_ms: obj.get("idleTimeoutMs", cx),
            body_timeout_ms: obj.get("bodyTimeoutMs", cx),
            min_body_bytes_per_second: obj.get("minBodyBytesPerSecond", cx),
            max_body_bytes: obj.get("maxBodyBytes", cx),
            max_connections: obj.get("maxConnections", cx),
            max_concurrent_requests: obj.get("maxConcurrentRequests", cx),
            max_inflight_body_bytes: obj.get("maxInflightBodyBytes", cx),
            responses_store_bytes: obj.get("responsesStoreBytes", cx),
            backlog: obj.get("backlog", cx),
            stream_headers_after_ms: obj.get("streamHeadersAfterMs", cx),
            stream_keep_alive_ms: obj.get("streamKeepAliveMs", cx),
            drain_timeout_ms: obj.get("drainTimeoutMs", cx),
        };
        obj.finish(cx, Unknown::Error);
        Some(limits)
    }
}

impl Decode for AuthMode {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(
            node,
            cx,
            &[
                ("token", AuthMode::Token),
                ("password", AuthMode::Password),
                ("none", AuthMode::None),
            ],
        )
    }
}

impl Decode for RawGatewayAuth {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let auth = RawGatewayAuth {
            mode: obj.get("mode", cx),
            token: obj.get("token", cx),
            password: obj.get("password", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(auth)
    }
}

impl Decode for RawGatewayHttp {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let http = RawGatewayHttp { endpoints: obj.get("endpoints", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(http)
    }
}

impl Decode for RawEndpoints {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let endpoints = RawEndpoints {
            chat_completions: obj.get("chatCompletions", cx),
            responses: obj.get("responses", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(endpoints)
    }
}

impl Decode for RawEndpoint {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let endpoint = RawEndpoint { enabled: obj.get("enabled", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(endpoint)
    }
}

// ---- channels and session ---------------------------------------------------------------------

/// `channels` (OpenClaw's section): hearth implements `matrix`, `telegram` and `webhook`;
/// other channel names load with a warning (docs/channels.md).
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawChannels {
    /// What every channel falls back to.
    pub defaults: Option<RawChannelDefaults>,
    /// Matrix (client-server API, unencrypted rooms).
    pub matrix: Option<RawMatrix>,
    /// Telegram (Bot API, long polling).
    pub telegram: Option<RawTelegram>,
    /// The signed webhook (hearth's own channel: a bridge for anything else).
    pub webhook: Option<RawWebhook>,
}

/// `channels.defaults`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawChannelDefaults {
    /// The `groupPolicy` of a channel that sets none (default `allowlist`).
    pub group_policy: Option<GroupPolicy>,
}

/// Who may start a direct conversation (`dmPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DmPolicy {
    /// An unknown sender gets a one-time code; nothing is processed until the owner approves.
    #[default]
    Pairing,
    /// Only `allowFrom` and approved senders; others are dropped silently.
    Allowlist,
    /// Anyone (requires `"*"` in `allowFrom`).
    Open,
    /// Direct messages are ignored.
    Disabled,
}

impl DmPolicy {
    pub const ALL: [(&'static str, DmPolicy); 4] = [
        ("pairing", DmPolicy::Pairing),
        ("allowlist", DmPolicy::Allowlist),
        ("open", DmPolicy::Open),
        ("disabled", DmPolicy::Disabled),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Pairing => "pairing",
            DmPolicy::Allowlist => "allowlist",
            DmPolicy::Open => "open",
            DmPolicy::Disabled => "disabled",
        }
    }
}

/// Which groups the bot answers in (`groupPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GroupPolicy {
    /// Only groups listed under `groups` (`"*"` lists all).
    #[default]
    Allowlist,
    /// Every group (mention gating still applies).
    Open,
    /// Group messages are ignored.
    Disabled,
}

impl GroupPolicy {
    pub const ALL: [(&'static str, GroupPolicy); 3] = [
        ("allowlist", GroupPolicy::Allowlist),
        ("open", GroupPolicy::Open),
        ("disabled", GroupPolicy::Disabled),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupPolicy::Allowlist => "allowlist",
            GroupPolicy::Open => "open",
            GroupPolicy::Disabled => "disabled",
        }
    }
}

/// Which Matrix room invites the bot joins (`autoJoin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawAutoJoin {
    /// Never (invites wait for the owner).
    #[default]
    Off,
    /// Every invite.
    Always,
    /// Invites from senders the access policy allows.
    Allowlist,
}

/// How direct conversations map to sessions (`session.dmScope`, spec §12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    /// Every DM shares the agent's main session (`agent:<id>:main`).
    #[default]
    Main,
    /// One session per sender (`agent:<id>:direct:<peer>`).
    PerPeer,
    /// One per channel and sender (`agent:<id>:<channel>:direct:<peer>`).
    PerChannelPeer,
    /// One per account, channel and sender (`agent:<id>:<channel>:<account>:direct:<peer>`).
    PerAccountChannelPeer,
}

impl DmScope {
    pub const ALL: [(&'static str, DmScope); 4] = [
        ("main", DmScope::Main),
        ("per-peer", DmScope::PerPeer),
        ("per-channel-peer", DmScope::PerChannelPeer),
        ("per-account-channel-peer", DmScope::PerAccountChannelPeer),
    ];
}

/// A sender or group id: a string, or a number (Telegram's numeric ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPeer(pub String);

impl JsonSchema for RawPeer {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawPeer".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "integer"]})
    }
}

impl Decode for RawPeer {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::String(_) => String::decode(node, cx).map(|s| RawPeer(s.trim().to_owned())),
            Value::Number(crate::json5::Number::Int(i)) => Some(RawPeer(i.to_string())),
            _ => {
                cx.type_error(node, "string or integer id");
                None
            }
        }
    }
}

/// `groups.<id>` (a group id, or `"*"` for every group).
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawChannelGroup {
    /// Answer only when the bot is mentioned or replied to (default true).
    pub require_mention: Option<bool>,
    /// Senders allowed in this group (else `groupAllowFrom`).
    pub allow_from: Option<Vec<RawPeer>>,
}

/// The keys every channel (and each of its `accounts`) has.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawChannelAccess {
    /// The channel (or account) runs unless `false`.
    pub enabled: Option<bool>,
    /// `pairing` (default), `allowlist`, `open` (requires `"*"` in `allowFrom`) or `disabled`.
    pub dm_policy: Option<Spanned<DmPolicy>>,
    /// Senders allowed to talk to the bot directly (besides those approved by pairing).
    pub allow_from: Option<Vec<RawPeer>>,
    /// `allowlist` (default), `open` or `disabled`.
    pub group_policy: Option<GroupPolicy>,
    /// Groups the bot answers in, by id (`"*"`: every group), with their mention rule.
    pub groups: Option<IndexMap<String, RawChannelGroup>>,
    /// Senders allowed inside groups.
    pub group_allow_from: Option<Vec<RawPeer>>,
    /// The most characters one outbound message carries (replies are chunked to it).
    pub text_chunk_limit: Option<Spanned<u64>>,
}

fn decode_access(obj: &mut Obj<'_>, cx: &mut Cx<'_>) -> RawChannelAccess {
    RawChannelAccess {
        enabled: obj.get("enabled", cx),
        dm_policy: obj.get("dmPolicy", cx),
        allow_from: obj.get("allowFrom", cx),
        group_policy: obj.get("groupPolicy", cx),
        groups: obj.get("groups", cx),
        group_allow_from: obj.get("groupAllowFrom", cx),
        text_chunk_limit: obj.get("textChunkLimit", cx),
    }
}

/// Matrix's `dm` block (OpenClaw's current spelling of `dmPolicy` / `allowFrom`).
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawMatrixDm {
    /// As `dmPolicy` (wins over it).
    pub policy: Option<Spanned<DmPolicy>>,
    /// As `allowFrom` (both are merged).
    pub allow_from: Option<Vec<RawPeer>>,
}

/// Matrix's `network` block.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawMatrixNetwork {
    /// Required for a homeserver on loopback or a private network.
    pub dangerously_allow_private_network: Option<bool>,
}

/// One Matrix account.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawMatrixAccount {
    #[serde(flatten)]
    pub access: RawChannelAccess,
    /// `https://matrix.example.org`.
    pub homeserver: Option<Spanned<String>>,
    /// An access token (a secret); or `userId` + `password`.
    pub access_token: Option<RawSecret>,
    /// `@bot:example.org`, with `password`.
    pub user_id: Option<String>,
    /// The account's password (a secret), with `userId`.
    pub password: Option<RawSecret>,
    /// `off` (default), `always` or `allowlist`.
    pub auto_join: Option<RawAutoJoin>,
    /// With `autoJoin: "allowlist"`: room ids (`!…`), aliases (`#…`), user ids (`@…`: invites
    /// from that person) or `*`.
    pub auto_join_allowlist: Option<Vec<String>>,
    pub network: Option<RawMatrixNetwork>,
    pub dm: Option<RawMatrixDm>,
}

/// `channels.matrix`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawMatrix {
    #[serde(flatten)]
    pub account: RawMatrixAccount,
    /// Several accounts, by id, each over the channel's own keys.
    pub accounts: Option<IndexMap<String, RawMatrixAccount>>,
}

/// One Telegram bot.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawTelegramAccount {
    #[serde(flatten)]
    pub access: RawChannelAccess,
    /// The bot token (a secret); `TELEGRAM_BOT_TOKEN` for the default account when unset.
    pub bot_token: Option<RawSecret>,
    /// The Bot API's root (default `https://api.telegram.org`; hearth's key).
    pub api_root: Option<Spanned<String>>,
}

/// `channels.telegram`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawTelegram {
    #[serde(flatten)]
    pub account: RawTelegramAccount,
    /// Several bots, by id, each over the channel's own keys.
    pub accounts: Option<IndexMap<String, RawTelegramAccount>>,
}

/// One webhook account.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawWebhookAccount {
    #[serde(flatten)]
    pub access: RawChannelAccess,
    /// The HMAC-SHA256 signing secret, both directions (a secret).
    pub secret: Option<RawSecret>,
    /// Where replies are POSTed (unset: inbound only).
    pub outbound_url: Option<Spanned<String>>,
    /// How far a request's `x-hearth-timestamp` may be from now (default 300).
    pub max_skew_seconds: Option<u64>,
}

/// `channels.webhook`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawWebhook {
    #[serde(flatten)]
    pub account: RawWebhookAccount,
    /// Several webhook accounts, by id (`POST /channels/webhook/<id>`).
    pub accounts: Option<IndexMap<String, RawWebhookAccount>>,
}

/// `session` (OpenClaw's section): hearth implements `dmScope`.
#[derive(Debug, Clone, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RawSession {
    /// `main` (default), `per-peer`, `per-channel-peer` or `per-account-channel-peer`.
    pub dm_scope: Option<DmScope>,
}

/// Channel names OpenClaw has and hearth does not.
const OTHER_CHANNELS: &[(&str, &str)] = &[
    ("whatsapp", "hearth has no WhatsApp channel; docs/channels.md shows the webhook bridge"),
    ("discord", "hearth has no Discord channel (docs/channels.md)"),
    ("slack", "hearth has no Slack channel (docs/channels.md)"),
    ("signal", "hearth has no Signal channel (docs/channels.md)"),
    ("imessage", "hearth has no iMessage channel (docs/channels.md)"),
    ("bluebubbles", "hearth has no BlueBubbles channel (docs/channels.md)"),
    ("googlechat", "hearth has no Google Chat channel (docs/channels.md)"),
    ("msteams", "hearth has no Microsoft Teams channel (docs/channels.md)"),
    ("mattermost", "hearth has no Mattermost channel (docs/channels.md)"),
    ("irc", "hearth has no IRC channel (docs/channels.md)"),
    ("line", "hearth has no LINE channel (docs/channels.md)"),
    ("nostr", "hearth has no Nostr channel (docs/channels.md)"),
    ("zalo", "hearth has no Zalo channel (docs/channels.md)"),
    ("feishu", "hearth has no Feishu channel (docs/channels.md)"),
    ("twitch", "hearth has no Twitch channel (docs/channels.md)"),
    ("nextcloud-talk", "hearth has no Nextcloud Talk channel (docs/channels.md)"),
    ("modelByChannel", "hearth does not pin models per channel yet (docs/channels.md)"),
];

impl Decode for RawChannels {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let channels = RawChannels {
            defaults: obj.get("defaults", cx),
            matrix: obj.get("matrix", cx),
            telegram: obj.get("telegram", cx),
            webhook: obj.get("webhook", cx),
        };
        obj.finish_with(cx, Unknown::Warn, OTHER_CHANNELS);
        Some(channels)
    }
}

impl Decode for RawChannelDefaults {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let defaults = RawChannelDefaults { group_policy: obj.get("groupPolicy", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(defaults)
    }
}

impl Decode for DmPolicy {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(node, cx, &DmPolicy::ALL)
    }
}

impl Decode for GroupPolicy {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(node, cx, &GroupPolicy::ALL)
    }
}

impl Decode for RawAutoJoin {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(
            node,
            cx,
            &[
                ("off", RawAutoJoin::Off),
                ("always", RawAutoJoin::Always),
                ("allowlist", RawAutoJoin::Allowlist),
            ],
        )
    }
}

impl Decode for DmScope {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        decode_enum(node, cx, &DmScope::ALL)
    }
}

impl Decode for RawChannelGroup {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let group = RawChannelGroup {
            require_mention: obj.get("requireMention", cx),
            allow_from: obj.get("allowFrom", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(group)
    }
}

impl Decode for RawMatrixDm {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let dm =
            RawMatrixDm { policy: obj.get("policy", cx), allow_from: obj.get("allowFrom", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(dm)
    }
}

impl Decode for RawMatrixNetwork {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let network = RawMatrixNetwork {
            dangerously_allow_private_network: obj.get("dangerouslyAllowPrivateNetwork", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(network)
    }
}

fn decode_matrix_account(obj: &mut Obj<'_>, cx: &mut Cx<'_>) -> RawMatrixAccount {
    RawMatrixAccount {
        access: decode_access(obj, cx),
        homeserver: obj.get("homeserver", cx),
        access_token: obj.get("accessToken", cx),
        user_id: obj.get("userId", cx),
        password: obj.get("password", cx),
        auto_join: obj.get("autoJoin", cx),
        auto_join_allowlist: obj.get("autoJoinAllowlist", cx),
        network: obj.get("network", cx),
        dm: obj.get("dm", cx),
    }
}

impl Decode for RawMatrixAccount {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let account = decode_matrix_account(&mut obj, cx);
        obj.finish(cx, Unknown::Warn);
        Some(account)
    }
}

impl Decode for RawMatrix {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let matrix = RawMatrix {
            account: decode_matrix_account(&mut obj, cx),
            accounts: obj.get("accounts", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(matrix)
    }
}

fn decode_telegram_account(obj: &mut Obj<'_>, cx: &mut Cx<'_>) -> RawTelegramAccount {
    RawTelegramAccount {
        access: decode_access(obj, cx),
        bot_token: obj.get("botToken", cx),
        api_root: obj.get("apiRoot", cx),
    }
}

impl Decode for RawTelegramAccount {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let account = decode_telegram_account(&mut obj, cx);
        obj.finish(cx, Unknown::Warn);
        Some(account)
    }
}

impl Decode for RawTelegram {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let telegram = RawTelegram {
            account: decode_telegram_account(&mut obj, cx),
            accounts: obj.get("accounts", cx),
        };
        obj.finish(cx, Unknown::Warn);
        Some(telegram)
    }
}

fn decode_webhook_account(obj: &mut Obj<'_>, cx: &mut Cx<'_>) -> RawWebhookAccount {
    RawWebhookAccount {
        access: decode_access(obj, cx),
        secret: obj.get("secret", cx),
        outbound_url: obj.get("outboundUrl", cx),
        max_skew_seconds: obj.get("maxSkewSeconds", cx),
    }
}

impl Decode for RawWebhookAccount {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let account = decode_webhook_account(&mut obj, cx);
        // hearth's own channel: every key is known.
        obj.finish(cx, Unknown::Error);
        Some(account)
    }
}

impl Decode for RawWebhook {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let webhook = RawWebhook {
            account: decode_webhook_account(&mut obj, cx),
            accounts: obj.get("accounts", cx),
        };
        obj.finish(cx, Unknown::Error);
        Some(webhook)
    }
}

impl Decode for RawSession {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let mut obj = Obj::new(node, cx)?;
        let session = RawSession { dm_scope: obj.get("dmScope", cx) };
        obj.finish(cx, Unknown::Warn);
        Some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::KEYS;

    /// The schema (from serde attributes) and the decoders (hand-written key lists) must agree.
    #[test]
    fn decoders_accept_exactly_the_schema_properties() {
        let schema = crate::schema();
        let defs = schema["$defs"].as_object().expect("schema has $defs");
        for (name, keys) in KEYS {
            let props = if *name == "RawConfig" {
                &schema["properties"]
            } else {
                &defs[*name]["properties"]
            };
            let mut from_schema: Vec<&str> = props
                .as_object()
                .unwrap_or_else(|| panic!("{name} in schema"))
                .keys()
                .map(String::as_str)
                .collect();
            let mut from_decoder: Vec<&str> = keys.to_vec();
            from_schema.sort_unstable();
            from_decoder.sort_unstable();
            assert_eq!(from_schema, from_decoder, "{name}");
        }
    }
}
