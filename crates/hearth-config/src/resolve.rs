//! From the file as written to what the runtime uses: the catalog (built-in merged with the
//! config), defaults applied, references checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use crate::decode::{Cx, Decode, Env, Spanned};
use crate::diag::Severity;
use crate::model_ref::{ModelRef, ModelSelection};
use crate::raw::{
    Api, AuthMode, DmPolicy, DmScope, GroupPolicy, InputKind, ModelsMode, RawAgent, RawApi,
    RawAutoJoin, RawChannelAccess, RawChannels, RawCompat, RawConfig, RawCost, RawMatrixDm,
    RawModel, RawModelSelection, RawModelSettings, RawPeer, RawProvider, RawSecret,
};
use crate::secret::{Secret, SecretError};
use crate::source::SourceMap;
use crate::thinking::ThinkingLevel;

/// Output cap of a model entry that sets none (and whose provider sets none).
pub const DEFAULT_MAX_TOKENS: u64 = 8192;
/// Context budget when neither the server nor the config says.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 200_000;
/// Default gateway port (OpenClaw's).
pub const DEFAULT_PORT: u16 = 18789;
/// Whole agent-run budget for gateway turns (48 h).
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(172_800);
/// `localService.readyTimeoutMs` default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_millis(120_000);
/// The longest `Retry-After` the router waits out when `models.routing.retryMaxWaitSeconds` is
/// not set (the official SDKs' cap).
pub const DEFAULT_RETRY_MAX_WAIT: Duration = Duration::from_secs(60);
/// When the overload notice goes out unless `models.routing.overloadNoticeAfterMs` says
/// otherwise (OpenClaw's 30 s).
pub const DEFAULT_OVERLOAD_NOTICE_AFTER: Duration = Duration::from_secs(30);
/// Caps on `retryMaxWaitSeconds`: a day at most.
const RETRY_MAX_WAIT_LIMIT_SECONDS: f64 = 86_400.0;
/// `fallbackSkipTtlMs` is clamped to this range (milliseconds).
const SKIP_TTL_RANGE_MS: (u64, u64) = (1_000, 600_000);
/// Variables overriding `models.routing.retryMaxWaitSeconds` (seconds; `0`, `off`, `none`,
/// `false`, `disabled`: no cap). The first one set wins.
pub const RETRY_WAIT_ENV: [&str; 2] =
    ["HEARTH_RETRY_MAX_WAIT_SECONDS", "OPENCLAW_SDK_RETRY_MAX_WAIT_SECONDS"];
/// Variables overriding `models.routing.fallbackSkipTtlMs` (milliseconds; `0`: off). The first
/// one set wins.
pub const SKIP_TTL_ENV: [&str; 2] =
    ["HEARTH_FALLBACK_SKIP_TTL_MS", "OPENCLAW_FALLBACK_SKIP_TTL_MS"];

/// The built-in catalog, in the config file's own format.
pub const BUILTIN_CATALOG: &str = include_str!("../builtin/providers.json5");
const BUILTIN_NAME: &str = "<builtin>/providers.json5";

/// Where a provider or model row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// hearth's built-in catalog only.
    Builtin,
    /// Written in the config (possibly overriding a built-in row).
    Config,
    /// Not in any catalog: a reference to a known provider with a model id it may serve.
    Synthetic,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Builtin => "builtin",
            Origin::Config => "config",
            Origin::Synthetic => "ref",
        }
    }
}

/// Where a host is, as far as trust and local markers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostClass {
    Loopback,
    /// RFC 1918 / unique-local addresses, `.local` names and bare host names.
    Private,
    /// Link-local and cloud metadata addresses: never trusted implicitly.
    LinkLocal,
    Public,
}

impl HostClass {
    pub fn is_local(self) -> bool {
        matches!(self, HostClass::Loopback | HostClass::Private)
    }
}

/// The resolved configuration: one immutable snapshot.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: ModelsMode,
    pub providers: IndexMap<String, Provider>,
    /// Keys of `agents.defaults.models`, in file order.
    pub model_settings: IndexMap<ModelRef, ModelSettings>,
    /// Lowercased alias → (alias as written, target).
    pub aliases: IndexMap<String, (String, ModelRef)>,
    pub defaults: AgentDefaults,
    pub agents: IndexMap<String, Agent>,
    pub gateway: Gateway,
    pub diagnostics: Diagnostics,
    /// `models.routing`, with its environment overrides applied (read once, here).
    pub routing: Routing,
    /// `channels`: every account of every configured channel.
    pub channels: Channels,
    /// `session` (what hearth implements of it).
    pub session: Session,
}

/// `models.routing`, resolved: what the router's failover waits for and skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing {
    /// The longest `Retry-After` waited out at the end of a chain; `None`: no cap.
    pub retry_max_wait: Option<Duration>,
    /// How long a fallback that failed authentication is skipped in the same session; `None`:
    /// the skip cache is off.
    pub fallback_skip_ttl: Option<Duration>,
    /// How long into overload retries of the whole chain the overload notice goes out.
    pub overload_notice_after: Duration,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            retry_max_wait: Some(DEFAULT_RETRY_MAX_WAIT),
            fallback_skip_ttl: None,
            overload_notice_after: DEFAULT_OVERLOAD_NOTICE_AFTER,
        }
    }
}

/// `diagnostics`: what hearth implements of it.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    /// `diagnostics.otel`.
    pub otel: Otel,
}

/// `diagnostics.otel`, resolved: trace export over OTLP/HTTP protobuf.
#[derive(Debug, Clone)]
pub struct Otel {
    /// `None`: on when an `OTEL_EXPORTER_OTLP_*ENDPOINT` variable is set.
    pub enabled: Option<bool>,
    /// The collector's base URL (`/v1/traces` is appended).
    pub endpoint: Option<String>,
    /// The full traces URL (wins over `endpoint`).
    pub traces_url: Option<String>,
    /// `service.name` (else `OTEL_SERVICE_NAME`, else `hearth`).
    pub service_name: Option<String>,
    /// Sent with every export.
    pub headers: Vec<(String, Secret)>,
    /// `traces: false` turns trace export off.
    pub traces: bool,
    /// 0 to 1; `None`: every request.
    pub sample_rate: Option<f64>,
    /// How often queued spans are sent; `None`: the SDK's default (5 s, `OTEL_BSP_SCHEDULE_DELAY`).
    pub flush_interval: Option<Duration>,
}

impl Default for Otel {
    fn default() -> Self {
        Otel {
            enabled: None,
            endpoint: None,
            traces_url: None,
            service_name: None,
            headers: Vec::new(),
            traces: true,
            sample_rate: None,
            flush_interval: None,
        }
    }
}

impl Otel {
    /// The traces URL the config names, if it names one (else the exporter reads
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn traces_endpoint(&self) -> Option<String> {
        self.traces_url.clone().or_else(|| {
            self.endpoint.as_ref().map(|e| format!("{}/v1/traces", e.trim_end_matches('/')))
        })
    }
}

/// Hosted providers whose model list is live (OpenClaw discovers it); see
/// [`Provider::discovers_models`].
const LIVE_CATALOGS: &[&str] = &["openrouter"];

#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub base_url: url::Url,
    pub api: Api,
    pub api_key: Option<Secret>,
    pub headers: Vec<(String, Secret)>,
    pub max_tokens: Option<u64>,
    /// `timeoutSeconds`: the wait for the first byte of an answer (and for a loading model).
    pub timeout: Option<Duration>,
    /// `streamIdleTimeoutSeconds` (hearth only): the longest gap between chunks mid-stream.
    pub stream_idle_timeout: Option<Duration>,
    pub allow_private_network: Option<bool>,
    pub inject_num_ctx: bool,
    pub params: Option<serde_json::Value>,
    pub local_service: Option<LocalService>,
    pub models: Vec<Model>,
    pub origin: Origin,
    pub host: HostClass,
    /// `discoverModels`, when set (see [`Provider::discovers_models`]).
    pub discover_models: Option<bool>,
}

impl Provider {
    pub fn model(&self, id: &str) -> Option<&Model> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .or_else(|| self.models.iter().find(|m| m.id.eq_ignore_ascii_case(id)))
    }

    /// Local providers' usage costs nothing.
    pub fn is_local(&self) -> bool {
        self.host.is_local()
    }

    /// Whether a model id the catalog does not list may still be sent to this provider: local
    /// servers serve whatever is loaded, a provider with no rows has no catalog to check, and
    /// aggregators' catalogs are live (the built-in rows are a sample). Other providers' ids
    /// must be listed, so an invented id is refused before it reaches the network or a metric.
    pub fn discovers_models(&self) -> bool {
        self.discover_models.unwrap_or_else(|| {
            self.is_local() || self.models.is_empty() || LIVE_CATALOGS.contains(&self.id.as_str())
        })
    }

    /// Whether this provider's credential can be had, without showing it: the one check
    /// `hearth doctor`, the gateway's startup lines and `/ready` share, so a hosted provider
    /// whose key is simply not set is said to be that, never "unreachable".
    pub fn key_state(&self, env: &dyn Env) -> KeyState {
        let Some(secret) = &self.api_key else {
            return if self.is_local() { KeyState::NotNeeded } else { KeyState::NoneConfigured };
        };
        match secret.resolve(env) {
            Ok(Some(_)) => KeyState::Present(secret.describe()),
            Ok(None) if self.is_local() => KeyState::NotNeeded,
            Ok(None) => KeyState::Empty,
            Err(SecretError::MissingEnv(name)) => KeyState::MissingEnv(name),
            Err(e @ SecretError::File { .. }) => KeyState::Unreadable(e.to_string()),
        }
    }

    /// A row for a model id this provider may serve but no catalog lists.
    pub fn synthetic_model(&self, id: &str) -> Model {
        Model {
            id: id.to_owned(),
            name: id.to_owned(),
            api: self.api,
            reasoning: false,
            input: vec![InputKind::Text],
            cost: self.is_local().then(Cost::default),
            context_window: None,
            context_tokens: None,
            max_tokens: self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            compat: RawCompat::default(),
            params: None,
            origin: Origin::Synthetic,
        }
    }
}

/// What [`Provider::key_state`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// A key is there; how it is configured ([`Secret::describe`], never the value).
    Present(String),
    /// A local server with no key (or an empty one): none is needed.
    NotNeeded,
    /// A hosted provider without `apiKey`: its server may need none.
    NoneConfigured,
    /// `apiKey` is configured but empty.
    Empty,
    /// `apiKey` names an environment variable that is not set (or is empty).
    MissingEnv(String),
    /// `apiKey` is a file that cannot be read.
    Unreadable(String),
}

impl KeyState {
    /// A configured key that cannot be had: requests to the provider cannot authenticate.
    pub fn is_missing(&self) -> bool {
        matches!(self, KeyState::Empty | KeyState::MissingEnv(_) | KeyState::Unreadable(_))
    }

    /// Why the key is missing, in a few words (`ANTHROPIC_API_KEY is not set`).
    pub fn problem(&self) -> Option<String> {
        match self {
            KeyState::Empty => Some("the apiKey is empty".to_owned()),
            KeyState::MissingEnv(name) => Some(format!("{name} is not set")),
            KeyState::Unreadable(message) => Some(message.clone()),
            KeyState::Present(_) | KeyState::NotNeeded | KeyState::NoneConfigured => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LocalService {
    pub command: PathBuf,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub health_url: String,
    pub ready_timeout: Duration,
    /// `None`: keep running until hearth exits.
    pub idle_stop: Option<Duration>,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

impl From<&RawCost> for Cost {
    fn from(raw: &RawCost) -> Self {
        Cost {
            input: raw.input.unwrap_or(0.0),
            output: raw.output.unwrap_or(0.0),
            cache_read: raw.cache_read.unwrap_or(0.0),
            cache_write: raw.cache_write.unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub api: Api,
    pub reasoning: bool,
    pub input: Vec<InputKind>,
    /// `None`: price unknown (built-in rows hearth could not price).
    pub cost: Option<Cost>,
    pub context_window: Option<u64>,
    pub context_tokens: Option<u64>,
    pub max_tokens: u64,
    pub compat: RawCompat,
    pub params: Option<serde_json::Value>,
    pub origin: Origin,
}

impl Model {
    /// Whether the entry's `input` names images.
    pub fn takes_images(&self) -> bool {
        self.input.contains(&InputKind::Image)
    }

    /// Tokens of context to budget with, before the server has told us its real size.
    pub fn context_budget(&self) -> u64 {
        self.context_tokens.or(self.context_window).unwrap_or(DEFAULT_CONTEXT_WINDOW)
    }
}

#[derive(Debug, Clone, Default)]
pub struct ModelSettings {
    pub alias: Option<String>,
    pub params: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct AgentDefaults {
    pub model: Option<ModelSelection>,
    /// `imageModel`: for requests with images when the active model takes text only.
    pub image_model: Option<ModelSelection>,
    /// `thinkingDefault`: the level of model calls that set none (below any `params.thinking`).
    pub thinking_default: Option<ThinkingLevel>,
    /// Empty: any model allowed.
    pub allow: Vec<String>,
    /// `modelPolicy.localOnly`: only local providers' models.
    pub local_only: bool,
    pub timeout: Option<Duration>,
    pub params: Option<serde_json::Value>,
    pub compaction_model: Option<String>,
    /// `compaction.timeoutSeconds`: the deadline of one summary call (0 or unset: the default).
    pub compaction_timeout: Option<Duration>,
    /// The system prompt (text, or the file's text read at load).
    pub system_prompt: Option<String>,
    pub tools: ToolPolicy,
}

/// Tool names or `*` patterns. `None` lists: not set (inherit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPolicy {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub name: Option<String>,
    pub is_default: bool,
    pub model: Option<ModelSelection>,
    /// `None` inherits `agents.defaults.imageModel`.
    pub image_model: Option<ModelSelection>,
    /// `None` inherits `agents.defaults.thinkingDefault`.
    pub thinking_default: Option<ThinkingLevel>,
    /// `Some(vec![])` allows any model; `None` inherits the default policy.
    pub allow: Option<Vec<String>>,
    /// `None` inherits `agents.defaults.modelPolicy.localOnly`.
    pub local_only: Option<bool>,
    pub timeout: Option<Duration>,
    pub params: Option<serde_json::Value>,
    /// `None`: the defaults' prompt.
    pub system_prompt: Option<String>,
    /// Fields not set inherit the defaults' policy.
    pub tools: ToolPolicy,
    /// `agents.entries.<id>.models`: per-model settings for this agent, merged over
    /// `agents.defaults.models` (see [`Config::params_for`]).
    pub model_settings: IndexMap<ModelRef, ModelSettings>,
    /// This agent's aliases (lowercased alias → (alias as written, target)); they win over the
    /// defaults' aliases for this agent's references.
    pub aliases: IndexMap<String, (String, ModelRef)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    Loopback,
    Lan,
    Addr(IpAddr),
}

impl Bind {
    pub fn ip(self) -> IpAddr {
        match self {
            Bind::Loopback => IpAddr::from([127, 0, 0, 1]),
            Bind::Lan => IpAddr::from([0, 0, 0, 0]),
            Bind::Addr(ip) => ip,
        }
    }

    pub fn is_loopback(self) -> bool {
        self.ip().is_loopback()
    }
}

#[derive(Debug, Clone)]
pub struct Gateway {
    pub port: u16,
    pub bind: Bind,
    pub auth_mode: Option<AuthMode>,
    pub token: Option<Secret>,
    pub password: Option<Secret>,
    pub chat_completions: bool,
    pub responses: bool,
    /// `gateway.controlUi.allowedOrigins`, normalized (`scheme://host[:port]`, lowercase,
    /// default ports dropped); `"*"` kept as is.
    pub allowed_origins: Vec<String>,
    /// `gateway.allowedHosts`, lowercase, without port.
    pub allowed_hosts: Vec<String>,
    pub limits: GatewayLimits,
    /// `gateway.controlUi.enabled` (default on): the chat page is served.
    pub control_ui: bool,
    /// `gateway.controlUi.basePath`, normalized to start and end with `/` (default `/`).
    pub control_ui_base: String,
}

impl Default for Gateway {
    fn default() -> Self {
        Gateway {
            port: DEFAULT_PORT,
            bind: Bind::Loopback,
            auth_mode: None,
            token: None,
            password: None,
            chat_completions: true,
            responses: true,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            control_ui: true,
            control_ui_base: "/".to_owned(),
            limits: GatewayLimits::default(),
        }
    }
}

/// `gateway.limits`, with the defaults documented in `docs/security.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub min_body_bytes_per_second: u64,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    pub max_inflight_body_bytes: usize,
    pub responses_store_bytes: usize,
    pub backlog: u32,
    pub stream_headers_after: Duration,
    pub stream_keep_alive: Duration,
    pub drain_timeout: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
            min_body_bytes_per_second: 4096,
            max_body_bytes: 20 * 1024 * 1024,
            max_connections: 16384,
            max_concurrent_requests: 10_000,
            max_inflight_body_bytes: 128 * 1024 * 1024,
            responses_store_bytes: 64 * 1024 * 1024,
            backlog: 1024,
            stream_headers_after: Duration::from_millis(1000),
            stream_keep_alive: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// `scheme://host[:port]` lowercased with the scheme's default port dropped, or `None` when
/// `text` is not a bare origin (a path, query or credentials make it something else).
pub fn normalize_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || !matches!(url.path(), "" | "/")
    {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// The built-in providers as raw config (validated by a test to produce no diagnostics).
pub fn builtin_providers() -> IndexMap<String, RawProvider> {
    let mut sources = SourceMap::default();
    let file = sources.add(Path::new(BUILTIN_NAME), BUILTIN_CATALOG.to_owned());
    let env = std::collections::BTreeMap::<String, String>::new();
    let mut cx = Cx::new(&sources, &env);
    crate::json5::parse(BUILTIN_CATALOG, file)
        .ok()
        .and_then(|node| RawConfig::decode(&node, &mut cx))
        .and_then(|raw| raw.models)
        .and_then(|m| m.providers)
        .unwrap_or_default()
}

/// Resolves the raw file into a [`Config`], recording diagnostics in `cx`.
pub fn resolve(raw: &RawConfig, cx: &mut Cx<'_>) -> Option<Config> {
    let models = raw.models.clone().unwrap_or_default();
    let mode = models.mode.unwrap_or_default();
    let builtin = builtin_providers();
    let user = models.providers.unwrap_or_default();

    let mut providers = IndexMap::new();
    let mut merged: Vec<(String, RawProvider, Origin, Option<RawProvider>)> = Vec::new();
    if mode == ModelsMode::Merge {
        for (id, b) in &builtin {
            if !user.contains_key(id) {
                merged.push((id.clone(), b.clone(), Origin::Builtin, None));
            }
        }
    }
    for (id, u) in &user {
        let base = builtin.get(id).cloned();
        merged.push((id.clone(), u.clone(), Origin::Config, base));
    }
    cx.push_key("models");
    cx.push_key("providers");
    for (id, raw_provider, origin, base) in merged {
        cx.push_key(&id);
        if let Some(p) = resolve_provider(&id, &raw_provider, base.as_ref(), origin, mode, cx) {
            crate::provider_routing::check_provider(&p, &raw_provider, cx);
            providers.insert(id.to_ascii_lowercase(), p);
        }
        cx.pop();
    }
    cx.pop();
    cx.pop();

    let agents_raw = raw.agents.clone().unwrap_or_default();
    let defaults_raw = agents_raw.defaults.unwrap_or_default();

    let mut model_settings = IndexMap::new();
    let mut aliases: IndexMap<String, (String, ModelRef)> = IndexMap::new();
    cx.push_key("agents");
    cx.push_key("defaults");
    cx.push_key("models");
    if let Some(models) = &defaults_raw.models {
        settings_section(models, &providers, &mut aliases, &mut model_settings, cx);
    }
    cx.pop();

    let mut config = Config {
        mode,
        providers,
        model_settings,
        aliases,
        defaults: AgentDefaults {
            model: None,
            image_model: None,
            thinking_default: None,
            allow: defaults_raw
                .model_policy
                .as_ref()
                .and_then(|p| p.allow.clone())
                .unwrap_or_default(),
            local_only: defaults_raw
                .model_policy
                .as_ref()
                .and_then(|p| p.local_only)
                .unwrap_or(false),
            timeout: defaults_raw.timeout_seconds.map(Duration::from_secs),
            params: defaults_raw.params.clone(),
            compaction_model: defaults_raw
                .compaction
                .as_ref()
                .and_then(|c| c.model.as_ref())
                .map(|m| m.value.clone()),
            compaction_timeout: defaults_raw
                .compaction
                .as_ref()
                .and_then(|c| c.timeout_seconds)
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            system_prompt: None,
            tools: tool_policy(defaults_raw.tools.as_ref()),
        },
        agents: IndexMap::new(),
        gateway: Gateway::default(),
        diagnostics: Diagnostics::default(),
        routing: resolve_routing(models.routing.as_ref(), cx),
        channels: Channels::default(),
        session: Session {
            dm_scope: raw.session.as_ref().and_then(|s| s.dm_scope).unwrap_or_default(),
        },
    };

    config.defaults.system_prompt = system_prompt(
        defaults_raw.system_prompt.as_ref(),
        defaults_raw.system_prompt_file.as_ref(),
        cx,
    );
    config.defaults.model = defaults_raw.model.as_ref().and_then(|sel| {
        cx.push_key("model");
        let resolved = selection(sel, &config, cx);
        cx.pop();
        resolved
    });
    config.defaults.thinking_default =
        defaults_raw.thinking_default.as_deref().and_then(ThinkingLevel::parse);
    config.defaults.image_model = defaults_raw.image_model.as_ref().and_then(|sel| {
        cx.push_key("imageModel");
        let resolved = image_selection(sel, &config, cx);
        cx.pop();
        resolved
    });
    if let Some(compaction) = defaults_raw.compaction.as_ref().and_then(|c| c.model.as_ref()) {
        cx.push_key("compaction");
        cx.push_key("model");
        check_ref(compaction, &config, cx);
        cx.pop();
        cx.pop();
    }
    cx.pop(); // defaults

    cx.push_key("entries");
    let mut default_agents = Vec::new();
    for (id, agent) in agents_raw.entries.iter().flatten() {
        cx.push_key(id);
        let resolved = resolve_agent(id, agent, &config, cx);
        if resolved.is_default {
            default_agents.push(id.clone());
        }
        config.agents.insert(id.clone(), resolved);
        cx.pop();
    }
    cx.pop();
    cx.pop(); // agents
    if default_agents.len() > 1 {
        cx.report(
            Severity::Warning,
            "multiple-defaults",
            None,
            format!(
                "several agents are marked `default: true` ({}); `{}` is used",
                default_agents.join(", "),
                default_agents[0]
            ),
            None,
        );
    }

    if let Some(gateway) = &raw.gateway {
        cx.push_key("gateway");
        config.gateway = resolve_gateway(gateway, cx);
        cx.pop();
    }
    if let Some(otel) = raw.diagnostics.as_ref().and_then(|d| d.otel.as_ref()) {
        cx.push_key("diagnostics");
        cx.push_key("otel");
        config.diagnostics.otel = resolve_otel(otel, cx);
        cx.pop();
        cx.pop();
    }
    if let Some(channels) = &raw.channels {
        cx.push_key("channels");
        config.channels = resolve_channels(channels, cx);
        cx.pop();
    }
    Some(config)
}

/// One `models` map (`agents.defaults.models` or an agent's own): its aliases (a duplicate is an
/// error) and per-model settings.
fn settings_section(
    models: &IndexMap<String, RawModelSettings>,
    providers: &IndexMap<String, Provider>,
    aliases: &mut IndexMap<String, (String, ModelRef)>,
    model_settings: &mut IndexMap<ModelRef, ModelSettings>,
    cx: &mut Cx<'_>,
) {
    for (key, settings) in models {
        cx.push_key(key);
        if let Some(model_ref) = settings_key(key, cx, providers) {
            if let Some(provider) = providers.get(&model_ref.provider) {
                crate::provider_routing::check_target(provider, settings.params.as_ref(), cx);
            }
            if let Some(alias) = &settings.alias {
                let lower = alias.value.trim().to_lowercase();
                if let Some((_, existing)) = aliases.get(&lower) {
                    let message = format!("alias `{}` already points at `{existing}`", alias.value);
                    cx.push_key("alias");
                    cx.error(
                        "duplicate-alias",
                        alias.span,
                        message,
                        Some("give each model its own alias".into()),
                    );
                    cx.pop();
                } else {
                    aliases.insert(lower, (alias.value.trim().to_owned(), model_ref.clone()));
                }
            }
            model_settings.insert(model_ref, settings_of(settings));
        }
        cx.pop();
    }
}

fn settings_of(raw: &RawModelSettings) -> ModelSettings {
    ModelSettings {
        alias: raw.alias.as_ref().map(|a| a.value.trim().to_owned()),
        params: raw.params.clone(),
    }
}

/// Keys of `agents.defaults.models`: `provider/model` or `provider/*`.
fn settings_key(
    key: &str,
    cx: &mut Cx<'_>,
    providers: &IndexMap<String, Provider>,
) -> Option<ModelRef> {
    match key.parse::<ModelRef>() {
        Ok(model_ref) => {
            if !providers.contains_key(&model_ref.provider) {
                unknown_provider_warning(cx, None, &model_ref.provider, providers);
            }
            Some(model_ref)
        }
        Err(e) => {
            cx.report(
                Severity::Error,
                "model-ref",
                None,
                format!("`{key}` is not a model ref: {e}"),
                Some("keys here are \"provider/model\"".into()),
            );
            None
        }
    }
}

fn unknown_provider_warning(
    cx: &mut Cx<'_>,
    span: Option<crate::source::Span>,
    provider: &str,
    providers: &IndexMap<String, Provider>,
) {
    let help = match crate::diag::suggest(provider, providers.keys().map(String::as_str)) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "define it under models.providers, or use a built-in provider (hearth models list --all)".to_owned(),
    };
    cx.report(
        Severity::Warning,
        "unknown-provider",
        span,
        format!("unknown provider `{provider}`; requests to it will fail"),
        Some(help),
    );
}

/// Checks that a model reference resolves; unknown providers and models are warnings.
fn check_ref(input: &Spanned<String>, config: &Config, cx: &mut Cx<'_>) {
    match config.resolve_ref(&input.value) {
        Ok(_) => {}
        Err(crate::model_ref::RefError::UnknownProvider { provider, .. }) => {
            unknown_provider_warning(cx, Some(input.span), &provider, &config.providers);
        }
        Err(e) => {
            cx.report(Severity::Warning, "unknown-model", Some(input.span), e.to_string(), e.help())
        }
    }
}

fn selection(raw: &RawModelSelection, config: &Config, cx: &mut Cx<'_>) -> Option<ModelSelection> {
    match raw {
        RawModelSelection::Ref(primary) => {
            check_ref(primary, config, cx);
            Some(ModelSelection { primary: primary.value.clone(), fallbacks: None })
        }
        RawModelSelection::Chain(chain) => {
            let Some(primary) = &chain.primary else {
                if chain.fallbacks.as_ref().is_some_and(|f| !f.is_empty()) {
                    cx.report(
                        Severity::Error,
                        "missing-key",
                        None,
                        "`fallbacks` without `primary`",
                        Some("add `primary: \"provider/model\"`".into()),
                    );
                }
                return None;
            };
            cx.push_key("primary");
            check_ref(primary, config, cx);
            cx.pop();
            let fallbacks = chain.fallbacks.as_ref().map(|list| {
                cx.push_key("fallbacks");
                for (i, f) in list.iter().enumerate() {
                    cx.push_index(i);
                    check_ref(f, config, cx);
                    cx.pop();
                }
                cx.pop();
                list.iter().map(|f| f.value.clone()).collect()
            });
            Some(ModelSelection { primary: primary.value.clone(), fallbacks })
        }
    }
}

/// `imageModel`: like a `model` selection, where a bare id that names exactly one configured
/// image-capable entry stands for it (`qwen2.5vl:7b` for `ollama/qwen2.5vl:7b`), and every
/// model it names should take images.
fn image_selection(
    raw: &RawModelSelection,
    config: &Config,
    cx: &mut Cx<'_>,
) -> Option<ModelSelection> {
    let bare = |s: &str| -> String {
        if config.resolve_ref(s).is_ok() {
            return s.to_owned();
        }
        let mut found = config.providers.values().flat_map(|p| {
            p.models
                .iter()
                .filter(move |m| m.id == s && m.takes_images())
                .map(move |m| format!("{}/{}", p.id, m.id))
        });
        match (found.next(), found.next()) {
            (Some(one), None) => one,
            _ => s.to_owned(),
        }
    };
    let normalized = match raw {
        RawModelSelection::Ref(r) => {
            RawModelSelection::Ref(Spanned { value: bare(r), span: r.span })
        }
        RawModelSelection::Chain(c) => RawModelSelection::Chain(crate::raw::RawModelChain {
            primary: c.primary.as_ref().map(|p| Spanned { value: bare(p), span: p.span }),
            fallbacks: c
                .fallbacks
                .as_ref()
                .map(|l| l.iter().map(|f| Spanned { value: bare(f), span: f.span }).collect()),
        }),
    };
    let selection = selection(&normalized, config, cx)?;
    for name in std::iter::once(&selection.primary).chain(selection.fallbacks.iter().flatten()) {
        if let Ok(resolved) = config.resolve_ref(name)
            && !resolved.model.takes_images()
        {
            cx.report(
                Severity::Warning,
                "image-model-text-only",
                None,
                format!("`{name}` takes text only (its `input` has no \"image\"), so it cannot answer a request with images"),
                Some("name a model whose entry says `input: [\"text\", \"image\"]`".into()),
            );
        }
    }
    Some(selection)
}

fn resolve_agent(id: &str, raw: &RawAgent, config: &Config, cx: &mut Cx<'_>) -> Agent {
    let model = raw.model.as_ref().and_then(|sel| {
        cx.push_key("model");
        let s = selection(sel, config, cx);
        cx.pop();
        s
    });
    let image_model = raw.image_model.as_ref().and_then(|sel| {
        cx.push_key("imageModel");
        let s = image_selection(sel, config, cx);
        cx.pop();
        s
    });
    let mut model_settings = IndexMap::new();
    let mut aliases: IndexMap<String, (String, ModelRef)> = IndexMap::new();
    if let Some(models) = &raw.models {
        cx.push_key("models");
        settings_section(models, &config.providers, &mut aliases, &mut model_settings, cx);
        cx.pop();
    }
    // The agent's own model may name one of its aliases: resolve it with them.
    let model = model.map(|sel| {
        let own = |s: &str| aliases.get(&s.trim().to_lowercase()).map(|(_, r)| r.to_string());
        ModelSelection {
            primary: own(&sel.primary).unwrap_or(sel.primary),
            fallbacks: sel
                .fallbacks
                .map(|list| list.into_iter().map(|f| own(&f).unwrap_or(f)).collect()),
        }
    });
    Agent {
        image_model,
        thinking_default: raw.thinking_default.as_deref().and_then(ThinkingLevel::parse),
        model_settings,
        aliases,
        id: id.to_owned(),
        name: raw.name.clone(),
        is_default: raw.default.unwrap_or(false),
        model,
        allow: raw.model_policy.as_ref().and_then(|p| p.allow.clone()),
        local_only: raw.model_policy.as_ref().and_then(|p| p.local_only),
        timeout: raw.timeout_seconds.map(Duration::from_secs),
        params: raw.params.clone(),
        system_prompt: system_prompt(
            raw.system_prompt.as_ref(),
            raw.system_prompt_file.as_ref(),
            cx,
        ),
        tools: tool_policy(raw.tools.as_ref()),
    }
}

fn tool_policy(raw: Option<&crate::raw::RawToolPolicy>) -> ToolPolicy {
    raw.map_or_else(ToolPolicy::default, |t| ToolPolicy {
        allow: t.allow.clone(),
        deny: t.deny.clone(),
    })
}

/// The prompt text, or the text of the prompt file (relative to the file that names it).
fn system_prompt(
    text: Option<&String>,
    file: Option<&Spanned<String>>,
    cx: &mut Cx<'_>,
) -> Option<String> {
    if let Some(file) = file {
        let base = cx
            .sources
            .path(file.span.file)
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = base.join(&file.value);
        return match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) => {
                cx.push_key("systemPromptFile");
                cx.error(
                    "file",
                    file.span,
                    format!("cannot read {}: {e}", path.display()),
                    Some("the path is relative to the config file".into()),
                );
                cx.pop();
                None
            }
        };
    }
    text.cloned()
}

fn resolve_provider(
    id: &str,
    user: &RawProvider,
    base: Option<&RawProvider>,
    origin: Origin,
    mode: ModelsMode,
    cx: &mut Cx<'_>,
) -> Option<Provider> {
    let empty = RawProvider::default();
    let base = base.unwrap_or(&empty);

    let api = match user.api.as_ref().or(base.api.as_ref()) {
        Some(Spanned { value: RawApi::Known(api), .. }) => *api,
        Some(Spanned { value: RawApi::Unsupported(_), .. }) => return None,
        None => Api::OpenaiCompletions,
    };
    let Some(base_url_raw) = user.base_url.as_ref().or(base.base_url.as_ref()) else {
        // A baseUrl that failed to decode was reported already; do not pile on.
        let here = cx.path_string();
        if cx
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.path.as_deref().is_some_and(|p| p.starts_with(&here)))
        {
            return None;
        }
        cx.report(
            Severity::Error,
            "missing-key",
            None,
            format!("provider `{id}` has no `baseUrl`"),
            Some("set baseUrl, e.g. \"http://127.0.0.1:8000/v1\" (OpenAI-compatible servers include /v1)".into()),
        );
        return None;
    };
    cx.push_key("baseUrl");
    let base_url = parse_base_url(base_url_raw, cx);
    cx.pop();
    let base_url = base_url?;
    let host = host_class(&base_url);

    if api == Api::Ollama && base_url.path().trim_end_matches('/').ends_with("/v1") {
        cx.push_key("baseUrl");
        cx.warn(
            "ollama-v1",
            base_url_raw.span,
            "native Ollama (`api: \"ollama\"`) is served at the root, not under /v1",
            Some(format!(
                "write baseUrl: \"{}\"",
                base_url.as_str().trim_end_matches('/').trim_end_matches("/v1")
            )),
        );
        cx.pop();
    }

    let api_key = user
        .api_key
        .as_ref()
        .map(|s| &s.value)
        .or(base.api_key.as_ref().map(|s| &s.value))
        .map(Secret::from_raw);
    if let Some(secret) = &api_key {
        secret.register_literal();
    }
    if origin == Origin::Config
        && let Some(key_spanned) = &user.api_key
        && let Some(secret) = api_key.as_ref()
        && let Some(var) = secret.missing_env(cx.env())
    {
        cx.push_key("apiKey");
        cx.warn(
            "missing-env",
            key_spanned.span,
            format!(
                "environment variable `{var}` is not set; requests to `{id}` will carry no API key"
            ),
            Some(format!("export {var}=... before starting hearth")),
        );
        cx.pop();
    }
    let mut headers: Vec<(String, Secret)> = Vec::new();
    for source in [
        base.headers.as_ref(),
        user.headers.as_ref(),
        user.request.as_ref().and_then(|r| r.headers.as_ref()),
    ] {
        for (name, value) in source.into_iter().flatten() {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), Secret::from_raw(value)));
        }
    }
    let timeout = positive_seconds(
        user.timeout_seconds.as_ref().or(base.timeout_seconds.as_ref()),
        "timeoutSeconds",
        cx,
    );
    let stream_idle_timeout = positive_seconds(
        user.stream_idle_timeout_seconds.as_ref().or(base.stream_idle_timeout_seconds.as_ref()),
        "streamIdleTimeoutSeconds",
        cx,
    );
    let local_service = user.local_service.as_ref().and_then(|ls| {
        cx.push_key("localService");
        let resolved = resolve_local_service(ls, &base_url, cx);
        cx.pop();
        resolved
    });
    let max_tokens = user.max_tokens.or(base.max_tokens);

    // Models: built-in rows first (not in replace mode), then config rows merged over them by id.
    // For a built-in provider `user` is the built-in entry itself and `base` is empty.
    let mut models: Vec<Model> = Vec::new();
    let builtin_rows = match origin {
        Origin::Builtin => user.models.as_deref().unwrap_or_default(),
        _ if mode == ModelsMode::Merge => base.models.as_deref().unwrap_or_default(),
        _ => &[],
    };
    models.extend(
        builtin_rows
            .iter()
            .filter_map(|raw| model_row(raw, None, api, max_tokens, Origin::Builtin, host)),
    );
    if origin == Origin::Config {
        cx.push_key("models");
        for (idx, raw) in user.models.iter().flatten().enumerate() {
            let Some(model_id) = &raw.id else { continue };
            cx.push_index(idx);
            if let Some(Spanned { value: RawApi::Unsupported(_), .. }) = &raw.api {
                cx.pop();
                continue;
            }
            let builtin_row = base
                .models
                .iter()
                .flatten()
                .find(|b| b.id.as_ref().is_some_and(|b| b.value == model_id.value));
            if let (Some(window), Some(tokens)) = (raw.context_window, raw.context_tokens)
                && tokens > window
            {
                cx.report(
                    Severity::Warning,
                    "context",
                    None,
                    format!("contextTokens ({tokens}) is larger than contextWindow ({window})"),
                    Some("contextTokens caps the input below the native window".into()),
                );
            }
            if let Some(row) = model_row(raw, builtin_row, api, max_tokens, Origin::Config, host) {
                if let Some(existing) = models.iter_mut().find(|m| m.id == row.id) {
                    if existing.origin == Origin::Config {
                        cx.report(
                            Severity::Warning,
                            "duplicate-model",
                            Some(model_id.span),
                            format!("model `{}` is listed twice; the last entry wins", row.id),
                            None,
                        );
                    }
                    *existing = row;
                } else {
                    models.push(row);
                }
            }
            cx.pop();
        }
        cx.pop();
    }

    Some(Provider {
        id: id.to_ascii_lowercase(),
        base_url,
        api,
        api_key,
        headers,
        max_tokens,
        timeout,
        stream_idle_timeout,
        allow_private_network: user.request.as_ref().and_then(|r| r.allow_private_network),
        inject_num_ctx: user.inject_num_ctx_for_open_ai_compat.unwrap_or(true),
        params: user.params.clone().or_else(|| base.params.clone()),
        local_service,
        models,
        origin,
        host,
        discover_models: user.discover_models.or(base.discover_models),
    })
}

/// A provider's duration in seconds: positive, else an error (and `None`: the default).
fn positive_seconds(
    value: Option<&Spanned<f64>>,
    key: &'static str,
    cx: &mut Cx<'_>,
) -> Option<Duration> {
    let t = value?;
    if t.value.is_nan() || t.value <= 0.0 {
        cx.push_key(key);
        cx.error(
            "range",
            t.span,
            format!("{key} must be positive"),
            Some("omit it to use the default timeouts".into()),
        );
        cx.pop();
        return None;
    }
    Some(Duration::from_secs_f64(t.value.min(1.0e9)))
}

fn model_row(
    raw: &RawModel,
    base: Option<&RawModel>,
    provider_api: Api,
    provider_max_tokens: Option<u64>,
    origin: Origin,
    host: HostClass,
) -> Option<Model> {
    let id = raw.id.as_ref().or(base.and_then(|b| b.id.as_ref()))?.value.clone();
    let api = match raw.api.as_ref().or(base.and_then(|b| b.api.as_ref())) {
        Some(Spanned { value: RawApi::Known(api), .. }) => *api,
        Some(Spanned { value: RawApi::Unsupported(_), .. }) => return None,
        None => provider_api,
    };
    let cost = match (&raw.cost, base.and_then(|b| b.cost.as_ref())) {
        (Some(c), _) | (None, Some(c)) => Some(Cost::from(c)),
        // Config rows default to zero cost (OpenClaw's default); unknown built-in prices stay unknown.
        (None, None) if origin == Origin::Config || host.is_local() => Some(Cost::default()),
        (None, None) => None,
    };
    let positive = |v: Option<u64>| v.filter(|n| *n > 0);
    Some(Model {
        name: raw
            .name
            .clone()
            .or_else(|| base.and_then(|b| b.name.clone()))
            .unwrap_or_else(|| id.clone()),
        id,
        api,
        reasoning: raw.reasoning.or(base.and_then(|b| b.reasoning)).unwrap_or(false),
        input: raw
            .input
            .clone()
            .or_else(|| base.and_then(|b| b.input.clone()))
            .unwrap_or_else(|| vec![InputKind::Text]),
        cost,
        context_window: positive(raw.context_window)
            .or(base.and_then(|b| positive(b.context_window))),
        context_tokens: positive(raw.context_tokens)
            .or(base.and_then(|b| positive(b.context_tokens))),
        max_tokens: positive(raw.max_tokens)
            .or(base.and_then(|b| positive(b.max_tokens)))
            .or(provider_max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS),
        compat: raw
            .compat
            .clone()
            .or_else(|| base.and_then(|b| b.compat.clone()))
            .unwrap_or_default(),
        params: raw.params.clone().or_else(|| base.and_then(|b| b.params.clone())),
        origin,
    })
}

fn parse_base_url(raw: &Spanned<String>, cx: &mut Cx<'_>) -> Option<url::Url> {
    if raw.value.contains('<') && raw.value.contains('>') {
        cx.warn(
            "placeholder",
            raw.span,
            format!("baseUrl `{}` still holds a placeholder; this provider is skipped", raw.value),
            Some("replace the <...> part with your endpoint".into()),
        );
        return None;
    }
    let url = match url::Url::parse(raw.value.trim()) {
        Ok(u) => u,
        Err(e) => {
            cx.error(
                "url",
                raw.span,
                format!("`{}` is not a valid URL: {e}", raw.value),
                Some("write a full URL, e.g. \"http://127.0.0.1:8000/v1\"".into()),
            );
            return None;
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        cx.error(
            "url",
            raw.span,
            format!("baseUrl must use http or https, not `{}`", url.scheme()),
            None,
        );
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        cx.error(
            "url",
            raw.span,
            "baseUrl must not carry credentials",
            Some("put the key in `apiKey` (or a header) instead of the URL".into()),
        );
        return None;
    }
    if url.host().is_none() {
        cx.error("url", raw.span, "baseUrl has no host", None);
        return None;
    }
    Some(url)
}

/// Classifies the host of a URL for trust decisions and local-marker keys.
pub fn host_class(url: &url::Url) -> HostClass {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => classify_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => classify_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                HostClass::Loopback
            } else if name.ends_with(".local")
                || !name.contains('.')
                || name.ends_with(".internal")
                || name.ends_with(".lan")
            {
                HostClass::Private
            } else {
                HostClass::Public
            }
        }
        None => HostClass::Public,
    }
}

/// Classifies one address. Every IPv6 form that embeds an IPv4 address (see [`embedded_ipv4`])
/// is classified by the IPv4 address it reaches, so `[::127.0.0.1]` is loopback and
/// `[64:ff9b::a9fe:a9fe]` is link-local. `0.0.0.0/8` and `::` reach this machine: loopback.
pub fn classify_ip(ip: IpAddr) -> HostClass {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() || v4.octets()[0] == 0 {
                HostClass::Loopback
            } else if v4.is_link_local() {
                HostClass::LinkLocal
            } else if v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xC0) == 64) {
                HostClass::Private
            } else {
                HostClass::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return classify_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if v6.is_loopback() || v6.is_unspecified() {
                HostClass::Loopback
            } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) {
                // Link-local, and the NAT64 local-use prefix `64:ff9b:1::/48` (RFC 8215),
                // whose embedding depends on the operator's prefix length: never trusted.
                HostClass::LinkLocal
            } else if (s[0] & 0xfe00) == 0xfc00 {
                HostClass::Private
            } else {
                HostClass::Public
            }
        }
    }
}

/// The IPv4 address an IPv6 address embeds, for the forms that route to it:
///
/// | form | prefix | IPv4 bits |
/// |---|---|---|
/// | IPv4-mapped | `::ffff:0:0/96` | last 32 |
/// | IPv4-translated (SIIT) | `::ffff:0:0:0/96` | last 32 |
/// | IPv4-compatible (deprecated) | `::/96`, except `::` and `::1` | last 32 |
/// | NAT64 well-known prefix | `64:ff9b::/96` (RFC 6052) | last 32 |
/// | 6to4 | `2002::/16` (RFC 3056) | bits 16–47 |
/// | Teredo | `2001:0::/32` (RFC 4380) | last 32, inverted (the client) |
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let last = v4(s[6], s[7]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!u32::from(last))),
        _ => None,
    }
}

fn resolve_local_service(
    raw: &crate::raw::RawLocalService,
    base_url: &url::Url,
    cx: &mut Cx<'_>,
) -> Option<LocalService> {
    let command = raw.command.as_ref()?;
    let path = PathBuf::from(&command.value);
    cx.push_key("command");
    let usable = if command.value.contains('<') && command.value.contains('>') {
        cx.warn(
            "placeholder",
            command.span,
            format!("localService.command `{}` still holds a placeholder; hearth will not start this server", command.value),
            Some("replace the <...> part with the absolute path of the server binary".into()),
        );
        false
    } else if !path.is_absolute() {
        cx.error(
            "relative-command",
            command.span,
            format!("localService.command must be an absolute path, not `{}`", command.value),
            Some(format!(
                "hearth does no PATH lookup; write the full path, e.g. \"/usr/local/bin/{}\"",
                command.value.trim_start_matches("./")
            )),
        );
        false
    } else {
        true
    };
    cx.pop();
    let health_url = raw
        .health_url
        .as_ref()
        .map(|h| h.value.clone())
        .unwrap_or_else(|| format!("{}/models", base_url.as_str().trim_end_matches('/')));
    usable.then(|| LocalService {
        command: path,
        args: raw.args.clone().unwrap_or_default(),
        cwd: raw.cwd.as_ref().map(PathBuf::from),
        env: raw.env.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect(),
        health_url,
        ready_timeout: raw.ready_timeout_ms.map_or(DEFAULT_READY_TIMEOUT, Duration::from_millis),
        idle_stop: raw.idle_stop_ms.filter(|ms| *ms > 0).map(Duration::from_millis),
    })
}

fn resolve_otel(raw: &crate::raw::RawOtel, cx: &mut Cx<'_>) -> Otel {
    let mut otel = Otel {
        enabled: raw.enabled,
        service_name: raw.service_name.clone().filter(|s| !s.trim().is_empty()),
        traces: raw.traces.unwrap_or(true),
        ..Otel::default()
    };
    let url = |key: &str, value: &Option<Spanned<String>>, cx: &mut Cx<'_>| {
        let value = value.as_ref()?;
        let text = value.value.trim();
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Some(text.to_owned()),
            _ => {
                cx.push_key(key);
                cx.error(
                    "invalid-url",
                    value.span,
                    format!("`{text}` is not an http(s) URL"),
                    Some("write the collector's URL, e.g. \"http://127.0.0.1:4318\"".into()),
                );
                cx.pop();
                None
            }
        }
    };
    otel.endpoint = url("endpoint", &raw.endpoint, cx);
    otel.traces_url = url("tracesEndpoint", &raw.traces_endpoint, cx);
    if let Some(protocol) = &raw.protocol
        && protocol.value != "http/protobuf"
    {
        cx.push_key("protocol");
        cx.warn(
            "unsupported-value",
            protocol.span,
            format!("diagnostics.otel.protocol `{}` is not supported; hearth exports OTLP over http/protobuf", protocol.value),
            None,
        );
        cx.pop();
    }
    for (name, value) in raw.headers.iter().flatten() {
        let secret = Secret::from_raw(value);
        secret.register_literal();
        otel.headers.push((name.clone(), secret));
    }
    if let Some(rate) = &raw.sample_rate {
        if (0.0..=1.0).contains(&rate.value) {
            otel.sample_rate = Some(rate.value);
        } else {
            cx.push_key("sampleRate");
            cx.error(
                "range",
                rate.span,
                "diagnostics.otel.sampleRate must be between 0 and 1",
                None,
            );
            cx.pop();
        }
    }
    if let Some(ms) = &raw.flush_interval_ms {
        // OpenClaw's minimum.
        otel.flush_interval = Some(Duration::from_millis(ms.value.max(1000)));
    }
    otel
}

fn resolve_gateway(raw: &crate::raw::RawGateway, cx: &mut Cx<'_>) -> Gateway {
    let mut gateway = Gateway::default();
    if let Some(port) = &raw.port {
        if port.value == 0 {
            cx.push_key("port");
            cx.error("range", port.span, "gateway.port must be between 1 and 65535", None);
            cx.pop();
        } else {
            gateway.port = port.value;
        }
    }
    if let Some(bind) = &raw.bind {
        cx.push_key("bind");
        gateway.bind = match bind.value.as_str() {
            "loopback" => Bind::Loopback,
            "lan" => Bind::Lan,
            other => {
                match other.parse::<IpAddr>() {
                    Ok(ip) => Bind::Addr(ip),
                    Err(_) => {
                        cx.warn(
                        "unsupported-value",
                        bind.span,
                        format!("gateway.bind `{other}` is not supported by hearth; binding to loopback"),
                        Some("use \"loopback\", \"lan\" or an IP address".into()),
                    );
                        Bind::Loopback
                    }
                }
            }
        };
        cx.pop();
    }
    if let Some(auth) = &raw.auth {
        gateway.auth_mode = auth.mode.as_ref().map(|m| m.value);
        gateway.token = auth.token.as_ref().map(Secret::from_raw);
        gateway.password = auth.password.as_ref().map(Secret::from_raw);
        for secret in gateway.token.iter().chain(&gateway.password) {
            secret.register_literal();
        }
        if gateway.auth_mode.is_none() && gateway.token.is_some() && gateway.password.is_some() {
            cx.push_key("auth");
            cx.report(Severity::Error, "ambiguous-auth", None, "both gateway.auth.token and gateway.auth.password are set but gateway.auth.mode is not", Some("set mode: \"token\" or mode: \"password\"".into()));
            cx.pop();
        }
    }
    if let Some(endpoints) = raw.http.as_ref().and_then(|h| h.endpoints.as_ref()) {
        gateway.chat_completions =
            endpoints.chat_completions.as_ref().and_then(|e| e.enabled).unwrap_or(true);
        gateway.responses = endpoints.responses.as_ref().and_then(|e| e.enabled).unwrap_or(true);
    }
    if let Some(ui) = raw.control_ui.as_ref() {
        gateway.control_ui = ui.enabled.unwrap_or(true);
        if let Some(base) = ui.base_path.as_deref() {
            match control_ui_base(base) {
                Some(base) => gateway.control_ui_base = base,
                None => {
                    cx.push_key("controlUi");
                    cx.push_key("basePath");
                    let path = cx.path_string();
                    cx.report(
                        Severity::Error,
                        "invalid-value",
                        None,
                        format!(
                            "{path}: `{}` is not a path the page can be served at",
                            base.chars().take(80).collect::<String>()
                        ),
                        Some("use a path such as \"/\" or \"/chat\" (letters, digits, `-`, `_`, `.` and `/`; no `..`)".into()),
                    );
                    cx.pop();
                    cx.pop();
                }
            }
        }
    }
    if let Some(origins) = raw.control_ui.as_ref().and_then(|ui| ui.allowed_origins.as_ref()) {
        cx.push_key("controlUi");
        cx.push_key("allowedOrigins");
        for origin in origins {
            let text = origin.value.trim();
            if text == "*" {
                gateway.allowed_origins.push("*".to_owned());
                continue;
            }
            match normalize_origin(text) {
                Some(normalized) => gateway.allowed_origins.push(normalized),
                None => cx.error(
                    "invalid-origin",
                    origin.span,
                    format!("`{text}` is not an origin"),
                    Some("write a full origin such as \"https://chat.example.com\" (scheme, host and port only) or \"*\"".into()),
                ),
            }
        }
        cx.pop();
        cx.pop();
    }
    if let Some(hosts) = &raw.allowed_hosts {
        cx.push_key("allowedHosts");
        for host in hosts {
            let text = host.value.trim().trim_end_matches('.').to_ascii_lowercase();
            if text.is_empty() || text.contains(['/', ':', ' ', '@']) {
                cx.error(
                    "invalid-host",
                    host.span,
                    format!("`{}` is not a host name", host.value),
                    Some(
                        "write a bare host name such as \"mybox.lan\" (no scheme, port or path)"
                            .into(),
                    ),
                );
            } else {
                gateway.allowed_hosts.push(text);
            }
        }
        cx.pop();
    }
    if let Some(limits) = &raw.limits {
        cx.push_key("limits");
        gateway.limits = resolve_limits(limits, cx);
        cx.pop();
    }
    gateway
}

fn resolve_limits(raw: &crate::raw::RawGatewayLimits, cx: &mut Cx<'_>) -> GatewayLimits {
    let mut limits = GatewayLimits::default();
    let positive =
        |value: &Option<Spanned<u64>>, key: &'static str, cx: &mut Cx<'_>| -> Option<u64> {
            let value = value.as_ref()?;
            if value.value == 0 {
                cx.push_key(key);
                cx.error(
                    "range",
                    value.span,
                    format!("gateway.limits.{key} must be positive"),
                    Some("omit it to use the default".into()),
                );
                cx.pop();
                return None;
            }
            Some(value.value)
        };
    let ms = Duration::from_millis;
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = positive(&raw.header_timeout_ms, "headerTimeoutMs", cx) {
        limits.header_timeout = ms(v);
    }
    if let Some(v) = positive(&raw.idle_timeout_ms, "idleTimeoutMs", cx) {
        limits.idle_timeout = ms(v);
    }
    if let Some(v) = positive(&raw.body_timeout_ms, "bodyTimeoutMs", cx) {
        limits.body_timeout = ms(v);
    }
    if let Some(v) = positive(&raw.min_body_bytes_per_second, "minBodyBytesPerSecond", cx) {
        limits.min_body_bytes_per_second = v;
    }
    if let Some(v) = positive(&raw.max_body_bytes, "maxBodyBytes", cx) {
        limits.max_body_bytes = size(v);
    }
    if let Some(v) = positive(&raw.max_connections, "maxConnections", cx) {
        limits.max_connections = size(v);
    }
    if let Some(v) = positive(&raw.max_concurrent_requests, "maxConcurrentRequests", cx) {
        limits.max_concurrent_requests = size(v);
    }
    if let Some(v) = positive(&raw.max_inflight_body_bytes, "maxInflightBodyBytes", cx) {
        limits.max_inflight_body_bytes = size(v);
    }
    if let Some(v) = positive(&raw.responses_store_bytes, "responsesStoreBytes", cx) {
        limits.responses_store_bytes = size(v);
    }
    if let Some(v) = positive(&raw.backlog, "backlog", cx) {
        limits.backlog = u32::try_from(v).unwrap_or(u32::MAX);
    }
    if let Some(v) = positive(&raw.stream_headers_after_ms, "streamHeadersAfterMs", cx) {
        limits.stream_headers_after = ms(v);
    }
    if let Some(v) = positive(&raw.stream_keep_alive_ms, "streamKeepAliveMs", cx) {
        limits.stream_keep_alive = ms(v);
    }
    if let Some(v) = positive(&raw.drain_timeout_ms, "drainTimeoutMs", cx) {
        limits.drain_timeout = ms(v);
    }
    limits
}

/// `models.routing` from the file, then the environment variables over it (`RETRY_WAIT_ENV`,
/// `SKIP_TTL_ENV`). A bad value in the file is an error naming the key; a bad variable is a
/// warning naming it, and the file's value applies.
fn resolve_routing(raw: Option<&crate::raw::RawRouting>, cx: &mut Cx<'_>) -> Routing {
    use crate::raw::RawRetryWait;

    let mut routing = Routing::default();
    cx.push_key("models");
    cx.push_key("routing");
    if let Some(wait) = raw.and_then(|r| r.retry_max_wait_seconds.as_ref()) {
        routing.retry_max_wait = match wait.value {
            RawRetryWait::Capped(_) => None,
            RawRetryWait::Seconds(0.0) => None,
            RawRetryWait::Seconds(secs) => {
                if secs > RETRY_MAX_WAIT_LIMIT_SECONDS {
                    cx.push_key("retryMaxWaitSeconds");
                    cx.warn(
                        "range",
                        wait.span,
                        format!("models.routing.retryMaxWaitSeconds: {secs} is over a day; 86400 is used"),
                        Some("write `false` for no cap".into()),
                    );
                    cx.pop();
                }
                Some(Duration::from_secs_f64(secs.min(RETRY_MAX_WAIT_LIMIT_SECONDS)))
            }
        };
    }
    if let Some(ttl) = raw.and_then(|r| r.fallback_skip_ttl_ms.as_ref()) {
        let (low, high) = SKIP_TTL_RANGE_MS;
        if ttl.value != 0 && !(low..=high).contains(&ttl.value) {
            cx.push_key("fallbackSkipTtlMs");
            cx.warn(
                "range",
                ttl.span,
                format!(
                    "models.routing.fallbackSkipTtlMs: {} is outside {low} to {high}; {} is used",
                    ttl.value,
                    ttl.value.clamp(low, high)
                ),
                Some("write 0 to turn the skip cache off".into()),
            );
            cx.pop();
        }
        routing.fallback_skip_ttl =
            (ttl.value != 0).then(|| Duration::from_millis(ttl.value.clamp(low, high)));
    }
    if let Some(after) = raw.and_then(|r| r.overload_notice_after_ms.as_ref()) {
        routing.overload_notice_after = Duration::from_millis(after.value);
    }
    cx.pop();
    cx.pop();

    let var = |names: &[&'static str], cx: &Cx<'_>| {
        names.iter().find_map(|&name| {
            let value = cx.env().var(name)?;
            let value = value.trim().to_owned();
            (!value.is_empty()).then_some((name, value))
        })
    };
    if let Some((name, value)) = var(&RETRY_WAIT_ENV, cx) {
        match parse_retry_wait(&value) {
            Some(wait) => routing.retry_max_wait = wait,
            None => cx.report(
                Severity::Warning,
                "invalid-env",
                None,
                format!("{name}=`{value}` is not a number of seconds; it is ignored"),
                Some("write seconds, or 0, off, none, false or disabled for no cap".into()),
            ),
        }
    }
    if let Some((name, value)) = var(&SKIP_TTL_ENV, cx) {
        match value.parse::<u64>() {
            Ok(0) => routing.fallback_skip_ttl = None,
            Ok(ms) => {
                let (low, high) = SKIP_TTL_RANGE_MS;
                routing.fallback_skip_ttl = Some(Duration::from_millis(ms.clamp(low, high)));
            }
            Err(_) => cx.report(
                Severity::Warning,
                "invalid-env",
                None,
                format!("{name}=`{value}` is not a whole number of milliseconds; it is ignored"),
                Some("write milliseconds (1000 to 600000), or 0 to turn the skip cache off".into()),
            ),
        }
    }
    routing
}

/// A retry-wait variable: `Some(None)` for no cap, `Some(Some(d))` for a cap, `None` when it
/// is not a wait.
fn parse_retry_wait(value: &str) -> Option<Option<Duration>> {
    let value = value.to_ascii_lowercase();
    match value.as_str() {
        "0" | "false" | "off" | "none" | "disabled" => Some(None),
        _ => match value.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs > 0.0 => {
                Some(Some(Duration::from_secs_f64(secs.min(RETRY_MAX_WAIT_LIMIT_SECONDS))))
            }
            Ok(0.0) => Some(None),
            _ => None,
        },
    }
}

/// `gateway.controlUi.basePath` as served: `/`, or `/a/b/` (a leading and a trailing slash);
/// `None` for a path with other characters, `..`, or over 100 bytes.
fn control_ui_base(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_matches('/');
    let ok = trimmed.len() <= 100
        && trimmed.split('/').all(|seg| seg != ".." && seg != ".")
        && !trimmed.contains("//")
        && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| if trimmed.is_empty() { "/".to_owned() } else { format!("/{trimmed}/") })
}

// ---- channels ---------------------------------------------------------------------------------

/// `channels.webhook.maxSkewSeconds` default.
pub const DEFAULT_WEBHOOK_MAX_SKEW_SECS: u64 = 300;
/// `channels.telegram.apiRoot` default.
pub const DEFAULT_TELEGRAM_API_ROOT: &str = "https://api.telegram.org";
/// The variable read for the default Telegram account's `botToken` when the config has none.
pub const TELEGRAM_TOKEN_ENV: &str = "TELEGRAM_BOT_TOKEN";
/// The account id of a channel configured without `accounts`.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Which channel an account belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Matrix,
    Telegram,
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Matrix, ChannelKind::Telegram, ChannelKind::Webhook];

    /// The `channels.<name>` key (also the session-key and state-file part).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Matrix => "matrix",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Webhook => "webhook",
        }
    }

    pub fn parse(name: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// `session`, resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Session {
    pub dm_scope: DmScope,
}

/// `channels`, resolved: one entry per account of every configured channel, enabled or not.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    pub accounts: Vec<ChannelAccount>,
}

impl Channels {
    /// The account `account` of `channel`.
    pub fn get(&self, channel: ChannelKind, account: &str) -> Option<&ChannelAccount> {
        self.accounts.iter().find(|a| a.channel == channel && a.account == account)
    }
}

/// Who may talk to one channel account, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelAccess {
    pub dm_policy: DmPolicy,
    /// From the config (pairing approvals are merged in at run time).
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    /// By group id; `"*"` applies to every group.
    pub groups: IndexMap<String, GroupRule>,
    pub group_allow_from: Vec<String>,
}

/// `groups.<id>`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    pub require_mention: bool,
    pub allow_from: Vec<String>,
}

/// One account of one channel.
#[derive(Debug, Clone)]
pub struct ChannelAccount {
    pub channel: ChannelKind,
    /// `default` unless `accounts` names it.
    pub account: String,
    pub enabled: bool,
    pub access: ChannelAccess,
    /// `textChunkLimit`; `None`: the channel's own limit.
    pub text_chunk_limit: Option<usize>,
    pub settings: ChannelSettings,
}

/// The keys only one channel has.
#[derive(Debug, Clone)]
pub enum ChannelSettings {
    Matrix(MatrixAccount),
    Telegram(TelegramAccount),
    Webhook(WebhookAccount),
}

#[derive(Debug, Clone)]
pub struct MatrixAccount {
    pub homeserver: Option<String>,
    pub access_token: Option<Secret>,
    pub user_id: Option<String>,
    pub password: Option<Secret>,
    pub auto_join: RawAutoJoin,
    /// `autoJoinAllowlist` (the account's, else the channel's).
    pub auto_join_allowlist: Vec<String>,
    pub allow_private_network: bool,
}

#[derive(Debug, Clone)]
pub struct TelegramAccount {
    /// The config's `botToken`, else `TELEGRAM_BOT_TOKEN` (default account only).
    pub bot_token: Option<Secret>,
    pub api_root: String,
}

#[derive(Debug, Clone)]
pub struct WebhookAccount {
    pub secret: Option<Secret>,
    pub outbound_url: Option<String>,
    pub max_skew_secs: u64,
}

fn peers(list: Option<&Vec<RawPeer>>) -> Vec<String> {
    list.into_iter().flatten().map(|p| p.0.clone()).filter(|p| !p.is_empty()).collect()
}

/// The common keys of an account over its channel's.
fn resolve_access(
    account: &RawChannelAccess,
    channel: &RawChannelAccess,
    default_group_policy: GroupPolicy,
    matrix_dm: Option<(&RawMatrixDm, Option<&RawMatrixDm>)>,
    cx: &mut Cx<'_>,
) -> (ChannelAccess, bool, Option<usize>) {
    let pick = |a: Option<&Vec<RawPeer>>, c: Option<&Vec<RawPeer>>| peers(a.or(c));
    let mut dm_policy =
        account.dm_policy.as_ref().or(channel.dm_policy.as_ref()).map(|p| (p.value, p.span));
    let mut allow_from = pick(account.allow_from.as_ref(), channel.allow_from.as_ref());
    if let Some((channel_dm, account_dm)) = matrix_dm {
        let dm_policy_node =
            account_dm.and_then(|d| d.policy.as_ref()).or(channel_dm.policy.as_ref());
        if let Some(p) = dm_policy_node {
            dm_policy = Some((p.value, p.span));
        }
        let dm_allow =
            account_dm.and_then(|d| d.allow_from.as_ref()).or(channel_dm.allow_from.as_ref());
        for peer in peers(dm_allow) {
            if !allow_from.contains(&peer) {
                allow_from.push(peer);
            }
        }
    }
    let groups = account
        .groups
        .as_ref()
        .or(channel.groups.as_ref())
        .map(|groups| {
            groups
                .iter()
                .map(|(id, g)| {
                    (
                        id.trim().to_owned(),
                        GroupRule {
                            require_mention: g.require_mention.unwrap_or(true),
                            allow_from: peers(g.allow_from.as_ref()),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let access = ChannelAccess {
        dm_policy: dm_policy.map(|(p, _)| p).unwrap_or_default(),
        allow_from,
        group_policy: account.group_policy.or(channel.group_policy).unwrap_or(default_group_policy),
        groups,
        group_allow_from: pick(
            account.group_allow_from.as_ref(),
            channel.group_allow_from.as_ref(),
        ),
    };
    if access.dm_policy == DmPolicy::Open && !access.allow_from.iter().any(|p| p == "*") {
        let span = dm_policy.map(|(_, s)| s);
        cx.report(
            Severity::Error,
            "open-dm-policy",
            span,
            "dmPolicy \"open\" lets anyone talk to the agent, and needs \"*\" in allowFrom to say so",
            Some("add allowFrom: [\"*\"], or use dmPolicy \"pairing\" (the default)".into()),
        );
    }
    let enabled = account.enabled.or(channel.enabled).unwrap_or(true);
    let limit = account.text_chunk_limit.as_ref().or(channel.text_chunk_limit.as_ref());
    let text_chunk_limit = match limit {
        Some(l) if l.value == 0 => {
            cx.push_key("textChunkLimit");
            cx.error("range", l.span, "textChunkLimit must be at least 1", None);
            cx.pop();
            None
        }
        Some(l) => Some(usize::try_from(l.value).unwrap_or(usize::MAX)),
        None => None,
    };
    (access, enabled, text_chunk_limit)
}

/// The accounts of one channel: `accounts` entries over the channel's keys, or `default`.
fn account_list<'r, A>(
    top: &'r A,
    accounts: Option<&'r IndexMap<String, A>>,
) -> Vec<(String, &'r A, bool)> {
    match accounts.filter(|a| !a.is_empty()) {
        Some(map) => map.iter().map(|(id, a)| (id.clone(), a, true)).collect(),
        None => vec![(DEFAULT_ACCOUNT.to_owned(), top, false)],
    }
}

fn account_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_account_id(id: &str, cx: &mut Cx<'_>) -> bool {
    if account_id_ok(id) {
        return true;
    }
    cx.report(
        Severity::Error,
        "invalid-account",
        None,
        format!("account id `{}` is not usable", id.chars().take(64).collect::<String>()),
        Some("use letters, digits, `-` and `_` (at most 64): it names files and URL paths".into()),
    );
    false
}

fn secret_of(raw: Option<&RawSecret>) -> Option<Secret> {
    let secret = raw.map(Secret::from_raw)?;
    secret.register_literal();
    Some(secret)
}

fn resolve_channels(raw: &RawChannels, cx: &mut Cx<'_>) -> Channels {
    let default_group_policy =
        raw.defaults.as_ref().and_then(|d| d.group_policy).unwrap_or_default();
    let mut out = Channels::default();
    if let Some(matrix) = &raw.matrix {
        cx.push_key("matrix");
        let top = &matrix.account;
        for (id, account, nested) in account_list(top, matrix.accounts.as_ref()) {
            if nested {
                cx.push_key("accounts");
                cx.push_key(&id);
            }
            if check_account_id(&id, cx) {
                let dm = top.dm.clone().unwrap_or_default();
                let (access, enabled, text_chunk_limit) = resolve_access(
                    &account.access,
                    &top.access,
                    default_group_policy,
                    Some((&dm, if nested { account.dm.as_ref() } else { None })),
                    cx,
                );
                let homeserver = account.homeserver.as_ref().or(top.homeserver.as_ref());
                let homeserver = homeserver.and_then(|h| {
                    let text = h.value.trim().trim_end_matches('/');
                    match url::Url::parse(text) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => Some(text.to_owned()),
                        _ => {
                            cx.error(
                                "invalid-url",
                                h.span,
                                format!("homeserver `{text}` is not an http(s) URL"),
                                Some("e.g. \"https://matrix.example.org\"".into()),
                            );
                            None
                        }
                    }
                });
                if enabled
                    && homeserver.is_none()
                    && account.homeserver.is_none()
                    && top.homeserver.is_none()
                {
                    cx.report(
                        Severity::Error,
                        "missing-key",
                        None,
                        "a Matrix account needs `homeserver`",
                        Some("e.g. homeserver: \"https://matrix.example.org\"".into()),
                    );
                }
                let settings = MatrixAccount {
                    homeserver,
                    access_token: secret_of(
                        account.access_token.as_ref().or(top.access_token.as_ref()),
                    ),
                    user_id: account.user_id.clone().or_else(|| top.user_id.clone()),
                    password: secret_of(account.password.as_ref().or(top.password.as_ref())),
                    auto_join: account.auto_join.or(top.auto_join).unwrap_or_default(),
                    auto_join_allowlist: account
                        .auto_join_allowlist
                        .clone()
                        .or_else(|| top.auto_join_allowlist.clone())
                        .unwrap_or_default(),
                    allow_private_network: account
                        .network
                        .as_ref()
                        .and_then(|n| n.dangerously_allow_private_network)
                        .or(top.network.as_ref().and_then(|n| n.dangerously_allow_private_network))
                        .unwrap_or(false),
                };
                if enabled
                    && settings.access_token.is_none()
                    && (settings.user_id.is_none() || settings.password.is_none())
                {
                    cx.report(
                        Severity::Error,
                        "missing-key",
                        None,
                        "a Matrix account needs `accessToken`, or `userId` and `password`",
                        None,
                    );
                }
                out.accounts.push(ChannelAccount {
                    channel: ChannelKind::Matrix,
                    account: id.clone(),
                    enabled,
                    access,
                    text_chunk_limit,
                    settings: ChannelSettings::Matrix(settings),
                });
            }
            if nested {
                cx.pop();
                cx.pop();
            }
        }
        cx.pop();
    }
    if let Some(telegram) = &raw.telegram {
        cx.push_key("telegram");
        let top = &telegram.account;
        for (id, account, nested) in account_list(top, telegram.accounts.as_ref()) {
            if nested {
                cx.push_key("accounts");
                cx.push_key(&id);
            }
            if check_account_id(&id, cx) {
                let (access, enabled, text_chunk_limit) =
                    resolve_access(&account.access, &top.access, default_group_policy, None, cx);
                let bot_token = secret_of(account.bot_token.as_ref().or(if nested {
                    None
                } else {
                    top.bot_token.as_ref()
                }))
                .or_else(|| {
                    (id == DEFAULT_ACCOUNT).then(|| Secret::Env(TELEGRAM_TOKEN_ENV.to_owned()))
                });
                let api_root = match account.api_root.as_ref().or(top.api_root.as_ref()) {
                    Some(root) => {
                        let text = root.value.trim().trim_end_matches('/');
                        match url::Url::parse(text) {
                            Ok(u) if matches!(u.scheme(), "http" | "https") => text.to_owned(),
                            _ => {
                                cx.error(
                                    "invalid-url",
                                    root.span,
                                    format!("apiRoot `{text}` is not an http(s) URL"),
                                    None,
                                );
                                DEFAULT_TELEGRAM_API_ROOT.to_owned()
                            }
                        }
                    }
                    None => DEFAULT_TELEGRAM_API_ROOT.to_owned(),
                };
                out.accounts.push(ChannelAccount {
                    channel: ChannelKind::Telegram,
                    account: id.clone(),
                    enabled,
                    access,
                    text_chunk_limit,
                    settings: ChannelSettings::Telegram(TelegramAccount { bot_token, api_root }),
                });
            }
            if nested {
                cx.pop();
                cx.pop();
            }
        }
        cx.pop();
    }
    if let Some(webhook) = &raw.webhook {
        cx.push_key("webhook");
        let top = &webhook.account;
        for (id, account, nested) in account_list(top, webhook.accounts.as_ref()) {
            if nested {
                cx.push_key("accounts");
                cx.push_key(&id);
            }
            if check_account_id(&id, cx) {
                let (access, enabled, text_chunk_limit) =
                    resolve_access(&account.access, &top.access, default_group_policy, None, cx);
                let secret = secret_of(account.secret.as_ref().or(top.secret.as_ref()));
                if enabled && secret.is_none() {
                    cx.report(
                        Severity::Error,
                        "missing-key",
                        None,
                        "the webhook channel needs `secret` (it signs both directions)",
                        Some("e.g. secret: \"${WEBHOOK_SECRET}\" (a long random string)".into()),
                    );
                }
                let outbound_url =
                    account.outbound_url.as_ref().or(top.outbound_url.as_ref()).and_then(|u| {
                        let text = u.value.trim();
                        match url::Url::parse(text) {
                            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                                Some(text.to_owned())
                            }
                            _ => {
                                cx.error(
                                    "invalid-url",
                                    u.span,
                                    format!("outboundUrl `{text}` is not an http(s) URL"),
                                    None,
                                );
                                None
                            }
                        }
                    });
                out.accounts.push(ChannelAccount {
                    channel: ChannelKind::Webhook,
                    account: id.clone(),
                    enabled,
                    access,
                    text_chunk_limit,
                    settings: ChannelSettings::Webhook(WebhookAccount {
                        secret,
                        outbound_url,
                        max_skew_secs: account
                            .max_skew_seconds
                            .or(top.max_skew_seconds)
                            .unwrap_or(DEFAULT_WEBHOOK_MAX_SKEW_SECS),
                    }),
                });
            }
            if nested {
                cx.pop();
                cx.pop();
            }
        }
        cx.pop();
    }
    out
}
