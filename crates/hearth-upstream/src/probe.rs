//! Runtime truth: what a model server really serves, read from the server itself
//! (`shared/reference/local-servers.md` §1–§2).
//!
//! | server | read | gives |
//! |---|---|---|
//! | llama.cpp | `GET /v1/models` (503 `Loading model` while loading), `GET /props` | `default_generation_settings.n_ctx` (per slot), router-mode `status.value` |
//! | vLLM, SGLang | `GET /v1/models` | `max_model_len` (LoRA rows inherit their `parent`) |
//! | Ollama | `GET /api/tags`, `GET /api/ps`, `POST /api/show` | loaded models and their `context_length`; `model_info.<arch>.context_length` and the Modelfile's `num_ctx` |
//! | LM Studio | `GET /api/v0/models` | `state`, `loaded_context_length`, `max_context_length` |
//! | anything else | `GET {baseUrl}/models` | ids; `context_length` / `context_window` / `max_context_length` when listed |
//!
//! The server kind comes from the provider (`api: "ollama"`, the ids `ollama`, `lmstudio`,
//! `vllm`, `sglang`, `llamacpp`, the default ports 11434 and 1234), else from `owned_by` in the
//! model list. Requests of one probe are sent one after the other, in the order above, so a
//! small local server is not flooded (and scripted test upstreams see a fixed order).
//! `/v1/responses` support is checked (a POST with `{}`: 404 or 405 means absent) only when the
//! provider or one of its models is configured with `openai-responses`.
//!
//! Every request goes through the network guard ([`crate::guard`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hearth_config::{Api, Env, Model, Provider};
use serde_json::Value;
use tokio::time::Instant;

use crate::event::{ErrorClass, UpstreamError};
use crate::guard;

/// Per-request limit of a probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a successful probe is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(30);
/// How long a failed probe is reused (a server that comes up is seen soon).
pub const PROBE_ERROR_TTL: Duration = Duration::from_secs(5);
/// Model lists are read up to this size (hosted catalogs run to a few MB).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// `POST /api/show` is sent for at most this many models per Ollama probe.
const MAX_OLLAMA_SHOW: usize = 8;

/// Whether a model is in memory, as far as the server tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelState {
    Loaded,
    Loading,
    NotLoaded,
    /// The server does not say (generic `/v1/models`, hosted APIs).
    Unknown,
}

impl ModelState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Loaded => "loaded",
            ModelState::Loading => "loading",
            ModelState::NotLoaded => "not loaded",
            ModelState::Unknown => "unknown",
        }
    }
}

/// What kind of server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    LlamaCpp,
    Vllm,
    Sglang,
    Ollama,
    LmStudio,
    Anthropic,
    /// Any other OpenAI-compatible server.
    Generic,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::LlamaCpp => "llama.cpp",
            ServerKind::Vllm => "vllm",
            ServerKind::Sglang => "sglang",
            ServerKind::Ollama => "ollama",
            ServerKind::LmStudio => "lmstudio",
            ServerKind::Anthropic => "anthropic",
            ServerKind::Generic => "openai-compatible",
        }
    }
}

/// One model a server lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedModel {
    pub id: String,
    /// Other names the server answers to (llama.cpp `aliases`, Ollama `name`).
    pub aliases: Vec<String>,
    /// The window a request gets now (runtime, per slot for llama.cpp).
    pub context_window: Option<u64>,
    /// The most the model could be loaded with (trained window, LM Studio's maximum).
    pub max_context_window: Option<u64>,
    pub state: ModelState,
}

impl ServedModel {
    fn new(id: impl Into<String>, state: ModelState) -> Self {
        ServedModel {
            id: id.into(),
            aliases: Vec::new(),
            context_window: None,
            max_context_window: None,
            state,
        }
    }

    fn answers_to(&self, model_id: &str) -> bool {
        self.id == model_id || self.aliases.iter().any(|a| a == model_id)
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderProbe {
    pub provider: String,
    pub kind: ServerKind,
    /// The server answered HTTP (any status).
    pub reachable: bool,
    /// Time of the first request (to the whole body).
    pub latency: Option<Duration>,
    /// Why the probe could not read the server (unreachable, auth, blocked, ...).
    pub error: Option<UpstreamError>,
    pub served: Vec<ServedModel>,
    /// `Some(false)`: `/responses` answered 404/405. `None`: not checked.
    pub responses_api: Option<bool>,
    /// llama.cpp in single-model mode answers any model id with its one model.
    pub any_model_id: bool,
}

impl ProviderProbe {
    /// A provider before (or without) any contact: not reachable, nothing served.
    pub fn new(provider: &Provider, kind: ServerKind) -> Self {
        ProviderProbe {
            provider: provider.id.clone(),
            kind,
            reachable: false,
            latency: None,
            error: None,
            served: Vec::new(),
            responses_api: None,
            any_model_id: false,
        }
    }

    /// The served model a request for `model_id` reaches: listed by id or alias (exact, then
    /// any case, then Ollama's implicit `:latest`), else the only model of a single-model
    /// llama.cpp server.
    pub fn find(&self, model_id: &str) -> Option<&ServedModel> {
        self.find_listed(model_id)
            .or_else(|| if self.any_model_id { self.served.first() } else { None })
    }

    /// Whether the server lists `model_id` (see [`ProviderProbe::find`]; the single-model
    /// fallback does not count as listed).
    pub fn listed(&self, model_id: &str) -> bool {
        self.find_listed(model_id).is_some()
    }

    fn find_listed(&self, model_id: &str) -> Option<&ServedModel> {
        let latest = |s: &str| {
            if s.contains(':') {
                s.to_ascii_lowercase()
            } else {
                format!("{s}:latest").to_ascii_lowercase()
            }
        };
        self.served
            .iter()
            .find(|m| m.answers_to(model_id))
            .or_else(|| {
                self.served.iter().find(|m| {
                    m.id.eq_ignore_ascii_case(model_id)
                        || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(model_id))
                })
            })
            .or_else(|| {
                (self.kind == ServerKind::Ollama)
                    .then(|| self.served.iter().find(|m| latest(&m.id) == latest(model_id)))
                    .flatten()
            })
    }
}

/// Probe settings.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Limit of each request.
    pub timeout: Duration,
    /// Check `/responses`: `None` decides from the provider's configured APIs.
    pub check_responses: Option<bool>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { timeout: PROBE_TIMEOUT, check_responses: None }
    }
}

/// Probes `provider` with the default options.
pub async fn probe(provider: &Provider, env: &(dyn Env + Sync)) -> ProviderProbe {
    probe_with(provider, env, &ProbeOptions::default()).await
}

/// Probes `provider`: never fails; what went wrong is in [`ProviderProbe::error`].
pub async fn probe_with(
    provider: &Provider,
    env: &(dyn Env + Sync),
    options: &ProbeOptions,
) -> ProviderProbe {
    let hint = kind_hint(provider);
    let mut out = ProviderProbe::new(provider, hint.unwrap_or(ServerKind::Generic));
    let http = match http_client(provider, options.timeout) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let cx = Cx { provider, http, auth: auth_headers(provider, env) };
    match hint {
        Some(ServerKind::Ollama) => probe_ollama(&cx, &mut out).await,
        Some(ServerKind::LmStudio) => {
            if !probe_lmstudio(&cx, &mut out).await {
                probe_models(&cx, &mut out).await;
            }
        }
        _ => probe_models(&cx, &mut out).await,
    }
    let check = options.check_responses.unwrap_or_else(|| uses_responses(provider));
    if check && out.reachable && out.error.as_ref().is_none_or(|e| e.class != ErrorClass::Loading) {
        out.responses_api = check_responses(&cx).await;
    }
    out
}

/// Whether the provider or one of its models is configured with `openai-responses`.
pub fn uses_responses(provider: &Provider) -> bool {
    provider.api == Api::OpenaiResponses
        || provider.models.iter().any(|m| m.api == Api::OpenaiResponses)
}

/// Whether `provider` is an LM Studio server by its id (`lmstudio`, `lm-studio`) or its local
/// default port (1234): the one rule the probe, the preload and the request body (`ttl`) share.
pub fn is_lmstudio(provider: &Provider) -> bool {
    kind_hint(provider) == Some(ServerKind::LmStudio)
}

/// Whether `provider` is a llama.cpp `llama-server` as far as its config tells (its id, or a
/// `localService` that runs `llama-server`): such a server gets `return_progress` on streaming
/// chat requests (`docs/local-models.md`, "Cold loads and slow prompts").
pub fn is_llama_cpp(provider: &Provider) -> bool {
    kind_hint(provider) == Some(ServerKind::LlamaCpp)
        || ["llamacpp-", "llama-cpp-"].iter().any(|p| provider.id.starts_with(p))
        || provider.local_service.as_ref().is_some_and(|service| {
            service.command.file_stem().is_some_and(|stem| stem == "llama-server")
        })
}

/// The server kind a provider's id, API or local port names, before any probe.
pub(crate) fn kind_hint(provider: &Provider) -> Option<ServerKind> {
    if provider.api == Api::Ollama {
        return Some(ServerKind::Ollama);
    }
    if provider.api == Api::AnthropicMessages {
        return Some(ServerKind::Anthropic);
    }
    match provider.id.as_str() {
        "ollama" => return Some(ServerKind::Ollama),
        "lmstudio" | "lm-studio" => return Some(ServerKind::LmStudio),
        "vllm" => return Some(ServerKind::Vllm),
        "sglang" => return Some(ServerKind::Sglang),
        "llamacpp" | "llama-cpp" | "llama.cpp" => return Some(ServerKind::LlamaCpp),
        _ => {}
    }
    if provider.is_local() {
        match provider.base_url.port() {
            Some(11434) => return Some(ServerKind::Ollama),
            Some(1234) => return Some(ServerKind::LmStudio),
            _ => {}
        }
    }
    None
}

fn http_client(provider: &Provider, timeout: Duration) -> Result<reqwest::Client, UpstreamError> {
    // The inference transport's policy (proxy, guard, redirects), with the probe's clocks.
    crate::client::http_builder(provider)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .build()
        .map_err(|e| {
            UpstreamError::new(ErrorClass::Connect, format!("cannot build HTTP client: {e}"))
        })
}

fn auth_headers(provider: &Provider, env: &dyn Env) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let dialect = crate::api::of(provider.api);
    if let Some(Ok(Some(key))) = provider.api_key.as_ref().map(|s| s.resolve(env)) {
        let (name, value) = dialect.credential(key.expose());
        headers.push((name.into(), value));
    }
    for (name, value) in dialect.fixed_headers() {
        headers.push(((*name).into(), (*value).into()));
    }
    for (name, value) in &provider.headers {
        if let Ok(Some(v)) = value.resolve(env) {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.clone(), v.expose().to_owned()));
        }
    }
    headers
}

/// How long one look at a server's load state may take.
const LOAD_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A request's view of a local Ollama or LM Studio server while it waits for the first byte:
/// both load a model on the first request that names it (JIT) and send nothing until it is in,
/// so a fixed first-byte timeout would kill a cold load (openclaw#74353, #76117, #130718).
/// When the wait runs out, [`LoadWatch::loading`] asks the server whether the model is still
/// loading: LM Studio's `/api/v0/models` (`state: "loading"`, or `"not-loaded"` while a
/// request for it waits: the load is about to start), Ollama's `/api/ps` (a model that is not
/// listed while a request for it waits is being loaded). Owned, so a stream can keep it.
#[derive(Debug, Clone)]
pub(crate) struct LoadWatch {
    provider: Provider,
    http: reqwest::Client,
    auth: Vec<(String, String)>,
    kind: ServerKind,
    model: String,
}

impl LoadWatch {
    /// A watch for `model_id` on `provider`, when it is a local Ollama or LM Studio server.
    pub(crate) fn new(provider: &Provider, model_id: &str, env: &dyn Env) -> Option<Self> {
        let kind = kind_hint(provider)
            .filter(|k| matches!(k, ServerKind::Ollama | ServerKind::LmStudio))?;
        if !provider.is_local() {
            return None;
        }
        Some(LoadWatch {
            provider: provider.clone(),
            http: http_client(provider, LOAD_CHECK_TIMEOUT).ok()?,
            auth: auth_headers(provider, env),
            kind,
            model: model_id.to_owned(),
        })
    }

    /// Whether the server says the model is still loading (`false` when it says otherwise, or
    /// nothing within [`LOAD_CHECK_TIMEOUT`]).
    pub(crate) async fn loading(&self) -> bool {
        let cx = Cx { provider: &self.provider, http: self.http.clone(), auth: self.auth.clone() };
        match self.kind {
            // The probe's own reader of LM Studio's model list (`state` per model).
            ServerKind::LmStudio => {
                let mut out = ProviderProbe::new(&self.provider, self.kind);
                if !probe_lmstudio(&cx, &mut out).await || out.error.is_some() {
                    return false;
                }
                out.served
                    .iter()
                    .filter(|m| m.answers_to(&self.model))
                    .any(|m| matches!(m.state, ModelState::Loading | ModelState::NotLoaded))
                    && !out
                        .served
                        .iter()
                        .any(|m| m.answers_to(&self.model) && m.state == ModelState::Loaded)
            }
            // Ollama lists what it has loaded; a model a request waits on that is not there yet
            // is being loaded.
            _ => ollama_loaded(&cx).await.is_some_and(|loaded| {
                !loaded.iter().any(|(id, _)| {
                    *id == self.model || id.strip_suffix(":latest") == Some(self.model.as_str())
                })
            }),
        }
    }

    /// The provider's id, for logs.
    pub(crate) fn provider_id(&self) -> &str {
        &self.provider.id
    }
}

pub(crate) struct Cx<'p> {
    pub(crate) provider: &'p Provider,
    http: reqwest::Client,
    auth: Vec<(String, String)>,
}

/// One HTTP exchange: status and body (up to [`MAX_BODY`]).
pub(crate) struct Reply {
    pub(crate) status: u16,
    body: Vec<u8>,
    elapsed: Duration,
}

impl Reply {
    pub(crate) fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl<'p> Cx<'p> {
    /// The probe's transport for `provider` (credentials and headers resolved from `env`),
    /// with `timeout` for each request: for callers other than a probe (the preload).
    pub(crate) fn new(
        provider: &'p Provider,
        env: &dyn Env,
        timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        Ok(Cx {
            provider,
            http: http_client(provider, timeout)?,
            auth: auth_headers(provider, env),
        })
    }

    fn base(&self) -> String {
        self.provider.base_url.as_str().trim_end_matches('/').to_owned()
    }

    /// The server root: `baseUrl` without a trailing `/v1`.
    pub(crate) fn root(&self) -> String {
        let base = self.base();
        base.strip_suffix("/v1").map_or(base.clone(), str::to_owned)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, UpstreamError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            UpstreamError::new(
                ErrorClass::Format,
                format!("{}: bad probe URL {url}: {e}", self.provider.id),
            )
        })?;
        guard::check(self.provider, &parsed)?;
        let mut request = self.http.request(method, parsed);
        for (name, value) in &self.auth {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await.map_err(|e| transport_error(&self.provider.id, &e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport_error(&self.provider.id, &e))?;
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        Ok(Reply { status, body, elapsed: started.elapsed() })
    }

    async fn get(&self, url: &str) -> Result<Reply, UpstreamError> {
        self.send(reqwest::Method::GET, url, None).await
    }

    pub(crate) async fn post(&self, url: &str, body: &Value) -> Result<Reply, UpstreamError> {
        self.send(reqwest::Method::POST, url, Some(body)).await
    }

    /// The first request of a probe: records reachability and latency. `None` (with the
    /// error recorded) when nothing answered.
    async fn first(&self, url: &str, out: &mut ProviderProbe) -> Option<Reply> {
        match self.get(url).await {
            Ok(reply) => {
                out.reachable = true;
                out.latency = Some(reply.elapsed);
                Some(reply)
            }
            Err(e) => {
                out.error = Some(e);
                None
            }
        }
    }
}

fn transport_error(provider: &str, e: &reqwest::Error) -> UpstreamError {
    let class = if e.is_timeout() { ErrorClass::Timeout } else { ErrorClass::Connect };
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    // A redirect refused by the guard carries the guard's own message.
    let url = e.url().map_or(String::new(), |u| format!(" {}", u.origin().ascii_serialization()));
    UpstreamError::new(class, format!("{provider}{url}: {cause}"))
}

/// A non-2xx answer to a metadata request, as an error.
pub(crate) fn http_error(provider: &str, what: &str, reply: &Reply) -> UpstreamError {
    let mut error = crate::classify::classify_http(reply.status, None, &reply.text());
    error.status = Some(reply.status);
    error.message = format!("{provider}: {what} answered {}: {}", reply.status, error.message);
    error
}

fn is_loading(reply: &Reply) -> bool {
    reply.status == 503 && reply.text().to_ascii_lowercase().contains("loading model")
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_u64().or_else(|| cur.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)).filter(|n| *n > 0)
}

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// `GET {baseUrl}/models` and, for llama.cpp, `GET /props`.
async fn probe_models(cx: &Cx<'_>, out: &mut ProviderProbe) {
    let url = if out.kind == ServerKind::Anthropic && !cx.base().ends_with("/v1") {
        format!("{}/v1/models", cx.base())
    } else {
        format!("{}/models", cx.base())
    };
    let Some(reply) = cx.first(&url, out).await else { return };
    if is_loading(&reply) {
        // llama.cpp answers every route with 503 "Loading model" until the model is in.
        out.kind = ServerKind::LlamaCpp;
        out.error = Some(http_error(&cx.provider.id, "GET /models", &reply));
        for m in &cx.provider.models {
            out.served.push(ServedModel::new(&m.id, ModelState::Loading));
        }
        out.any_model_id = true;
        return;
    }
    if !reply.ok() {
        out.error = Some(http_error(&cx.provider.id, "GET /models", &reply));
        return;
    }
    let Some(body) = reply.json() else {
        out.error = Some(UpstreamError::new(
            ErrorClass::Format,
            format!("{}: GET /models did not answer JSON", cx.provider.id),
        ));
        return;
    };
    let rows: Vec<&Value> = body
        .get("data")
        .and_then(Value::as_array)
        .or_else(|| body.get("models").and_then(Value::as_array))
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if out.kind == ServerKind::Generic {
        out.kind = match rows.first().and_then(|r| str_at(r, "owned_by")) {
            Some("llamacpp") => ServerKind::LlamaCpp,
            Some("vllm") => ServerKind::Vllm,
            Some("sglang") => ServerKind::Sglang,
            _ => ServerKind::Generic,
        };
    }
    let router_mode = rows.iter().any(|r| r.get("status").is_some_and(Value::is_object));
    for row in &rows {
        let Some(id) = str_at(row, "id").or_else(|| str_at(row, "name")) else { continue };
        let state = match out.kind {
            ServerKind::LlamaCpp if router_mode => {
                match row.get("status").and_then(|s| str_at(s, "value")) {
                    Some("loaded") => ModelState::Loaded,
                    Some("loading") => ModelState::Loading,
                    Some(_) => ModelState::NotLoaded,
                    None => ModelState::Unknown,
                }
            }
            // A single-model llama.cpp, vLLM and SGLang hold their model while they answer.
            ServerKind::LlamaCpp | ServerKind::Vllm | ServerKind::Sglang => ModelState::Loaded,
            _ => ModelState::Unknown,
        };
        let mut m = ServedModel::new(id, state);
        if let Some(aliases) = row.get("aliases").and_then(Value::as_array) {
            m.aliases = aliases
                .iter()
                .filter_map(Value::as_str)
                .filter(|a| *a != id)
                .map(str::to_owned)
                .collect();
        }
        m.context_window = u64_at(row, &["max_model_len"])
            .or_else(|| u64_at(row, &["meta", "n_ctx"]))
            .or_else(|| u64_at(row, &["context_length"]))
            .or_else(|| u64_at(row, &["context_window"]))
            .or_else(|| u64_at(row, &["max_context_length"]))
            .or_else(|| u64_at(row, &["max_input_tokens"]));
        m.max_context_window = u64_at(row, &["meta", "n_ctx_train"]).or(m.context_window);
        out.served.push(m);
    }
    // vLLM LoRA adapters list their base model as `parent` and no max_model_len.
    let parents: HashMap<String, Option<u64>> =
        out.served.iter().map(|m| (m.id.clone(), m.context_window)).collect();
    for (row, m) in rows.iter().zip(out.served.iter_mut()) {
        if m.context_window.is_none()
            && let Some(parent) = str_at(row, "parent")
            && let Some(Some(n)) = parents.get(parent)
        {
            m.context_window = Some(*n);
            m.max_context_window = m.max_context_window.or(Some(*n));
        }
    }
    if out.kind == ServerKind::LlamaCpp && !router_mode {
        out.any_model_id = true;
        probe_props(cx, out).await;
    }
}

/// llama.cpp `GET /props`: the runtime (per-slot) context window.
async fn probe_props(cx: &Cx<'_>, out: &mut ProviderProbe) {
    let reply = match cx.get(&format!("{}/props", cx.root())).await {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(e);
            return;
        }
    };
    if is_loading(&reply) {
        out.served.iter_mut().for_each(|m| m.state = ModelState::Loading);
        return;
    }
    let Some(props) = reply.json().filter(|_| reply.ok()) else { return };
    let n_ctx = u64_at(&props, &["default_generation_settings", "n_ctx"])
        .or_else(|| u64_at(&props, &["n_ctx"]));
    if out.served.is_empty() {
        let id = str_at(&props, "model_alias")
            .or_else(|| str_at(&props, "model_path"))
            .unwrap_or("default");
        out.served.push(ServedModel::new(id, ModelState::Loaded));
    }
    if props.get("is_sleeping").and_then(Value::as_bool) == Some(true) {
        out.served.iter_mut().for_each(|m| m.state = ModelState::NotLoaded);
    }
    if let Some(n) = n_ctx {
        for m in &mut out.served {
            m.context_window = Some(n);
        }
    }
}

/// LM Studio `GET /api/v0/models`. `false` when the server does not have that route.
async fn probe_lmstudio(cx: &Cx<'_>, out: &mut ProviderProbe) -> bool {
    let Some(reply) = cx.first(&format!("{}/api/v0/models", cx.root()), out).await else {
        return true;
    };
    if reply.status == 404 {
        return false;
    }
    if !reply.ok() {
        out.error = Some(http_error(&cx.provider.id, "GET /api/v0/models", &reply));
        return true;
    }
    let body = reply.json().unwrap_or(Value::Null);
    for row in body.get("data").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = str_at(row, "id") else { continue };
        let state = match str_at(row, "state") {
            Some("loaded") => ModelState::Loaded,
            Some("loading") => ModelState::Loading,
            Some("not-loaded") => ModelState::NotLoaded,
            _ => ModelState::Unknown,
        };
        let mut m = ServedModel::new(id, state);
        m.max_context_window = u64_at(row, &["max_context_length"]);
        m.context_window = u64_at(row, &["loaded_context_length"]);
        // The same id may be listed twice (a loaded and a loading instance): keep the best.
        match out.served.iter_mut().find(|s| s.id == m.id) {
            Some(existing) => {
                if rank(m.state) > rank(existing.state) {
                    *existing = m;
                }
            }
            None => out.served.push(m),
        }
    }
    true
}

fn rank(state: ModelState) -> u8 {
    match state {
        ModelState::Loaded => 3,
        ModelState::Loading => 2,
        ModelState::NotLoaded => 1,
        ModelState::Unknown => 0,
    }
}

/// Ollama's `GET /api/ps`: the loaded models and their `context_length`; `None` when it did not
/// answer with a list.
async fn ollama_loaded(cx: &Cx<'_>) -> Option<Vec<(String, Option<u64>)>> {
    let ps = cx.get(&format!("{}/api/ps", cx.root())).await.ok().filter(Reply::ok)?;
    let ps = ps.json().unwrap_or(Value::Null);
    let rows = ps.get("models").and_then(Value::as_array).into_iter().flatten();
    Some(
        rows.filter_map(|row| {
            let id = str_at(row, "model").or_else(|| str_at(row, "name"))?;
            Some((id.to_owned(), u64_at(row, &["context_length"])))
        })
        .collect(),
    )
}

/// Ollama: `GET /api/tags` (pulled), `GET /api/ps` (loaded, with `context_length`), then
/// `POST /api/show` for configured models that are not loaded.
async fn probe_ollama(cx: &Cx<'_>, out: &mut ProviderProbe) {
    let root = cx.root();
    let Some(tags) = cx.first(&format!("{root}/api/tags"), out).await else { return };
    if !tags.ok() {
        out.error = Some(http_error(&cx.provider.id, "GET /api/tags", &tags));
        return;
    }
    let tags = tags.json().unwrap_or(Value::Null);
    for row in tags.get("models").and_then(Value::as_array).into_iter().flatten() {
        let Some(id) = str_at(row, "model").or_else(|| str_at(row, "name")) else { continue };
        let mut m = ServedModel::new(id, ModelState::NotLoaded);
        if let Some(name) = str_at(row, "name").filter(|n| *n != id) {
            m.aliases.push(name.to_owned());
        }
        out.served.push(m);
    }
    for (id, ctx) in ollama_loaded(cx).await.unwrap_or_default() {
        match out.served.iter_mut().find(|m| m.answers_to(&id)) {
            Some(m) => {
                m.state = ModelState::Loaded;
                m.context_window = ctx;
            }
            None => {
                let mut m = ServedModel::new(id, ModelState::Loaded);
                m.context_window = ctx;
                out.served.push(m);
            }
        }
    }
    // Configured models that are not loaded: the trained window and the Modelfile's num_ctx.
    // A provider without `models[]` discovers what is served: its pulled models are asked.
    let wanted: Vec<String> = if cx.provider.models.is_empty() {
        out.served
            .iter()
            .filter(|s| s.state != ModelState::Loaded)
            .map(|s| s.id.clone())
            .take(MAX_OLLAMA_SHOW)
            .collect()
    } else {
        cx.provider
            .models
            .iter()
            .filter(|m| out.find_listed(&m.id).is_some_and(|s| s.state != ModelState::Loaded))
            .map(|m| m.id.clone())
            .take(MAX_OLLAMA_SHOW)
            .collect()
    };
    for model_id in wanted {
        let body = serde_json::json!({ "model": model_id });
        let Ok(reply) = cx.post(&format!("{root}/api/show"), &body).await else { continue };
        let Some(show) = reply.json().filter(|_| reply.ok()) else { continue };
        let trained = ollama_trained_context(&show);
        let num_ctx = show.get("parameters").and_then(Value::as_str).and_then(modelfile_num_ctx);
        let listed_id = out.find_listed(&model_id).map(|s| s.id.clone());
        if let Some(m) = out.served.iter_mut().find(|s| Some(&s.id) == listed_id.as_ref()) {
            m.max_context_window = trained;
            // Without a Modelfile num_ctx the window is the server's default (VRAM-tiered
            // since 2025), which the API does not tell: unknown.
            m.context_window = match (num_ctx, trained) {
                (Some(n), Some(t)) => Some(n.min(t)),
                (Some(n), None) => Some(n),
                (None, _) => None,
            };
        }
    }
}

/// `model_info["<general.architecture>.context_length"]`, else any `*.context_length`.
fn ollama_trained_context(show: &Value) -> Option<u64> {
    let info = show.get("model_info")?.as_object()?;
    if let Some(arch) = info.get("general.architecture").and_then(Value::as_str)
        && let Some(n) = info.get(&format!("{arch}.context_length")).and_then(Value::as_u64)
    {
        return Some(n);
    }
    info.iter().find(|(k, _)| k.ends_with(".context_length")).and_then(|(_, v)| v.as_u64())
}

/// `num_ctx` from the free-text `parameters` of `/api/show` (`"num_ctx    32768\n..."`).
fn modelfile_num_ctx(parameters: &str) -> Option<u64> {
    parameters.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some("num_ctx")).then(|| parts.next()?.trim_matches('"').parse().ok())?
    })
}

/// `POST {baseUrl}/responses` with `{}`: 404 or 405 means the route is absent; any other
/// answer (400 for the empty body, 401, 422...) means it exists.
async fn check_responses(cx: &Cx<'_>) -> Option<bool> {
    let reply = cx.post(&format!("{}/responses", cx.base()), &serde_json::json!({})).await.ok()?;
    Some(!matches!(reply.status, 404 | 405))
}

/// A configured window larger than the one the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextWarning {
    pub configured: u64,
    pub served: u64,
}

impl std::fmt::Display for ContextWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the config claims a context window of {} tokens but the server serves {}; budgeting with {}",
            self.configured, self.served, self.served
        )
    }
}

/// The window to budget with: the smaller of the configured and the served one, with a
/// warning when the config claims more than the server gives.
pub fn effective_context(configured: u64, served: Option<u64>) -> (u64, Option<ContextWarning>) {
    match served {
        Some(s) if s < configured => (s, Some(ContextWarning { configured, served: s })),
        _ => (configured, None),
    }
}

/// [`effective_context`] for a model row: a row that sets neither `contextTokens` nor
/// `contextWindow` budgets with the served window (or the default) and never warns.
pub fn effective_context_for(model: &Model, served: Option<u64>) -> (u64, Option<ContextWarning>) {
    if model.context_tokens.is_none() && model.context_window.is_none() {
        return (served.unwrap_or_else(|| model.context_budget()), None);
    }
    effective_context(model.context_budget(), served)
}

#[derive(Debug, Default)]
struct Entry {
    /// Serializes probes of one provider (concurrent callers share one probe).
    probing: tokio::sync::Mutex<()>,
    value: Mutex<Option<(Instant, Arc<ProviderProbe>)>>,
    /// Windows learned from context-overflow errors, by model id.
    learned: Mutex<HashMap<String, u64>>,
}

/// A cache of probes, one per gateway: a probe is reused for [`PROBE_TTL`] ([`PROBE_ERROR_TTL`]
/// when it failed); concurrent callers share one probe.
pub struct Probes {
    env: Arc<dyn Env + Send + Sync>,
    options: ProbeOptions,
    ttl: Duration,
    error_ttl: Duration,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl std::fmt::Debug for Probes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probes").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Default for Probes {
    fn default() -> Self {
        Probes::new(Arc::new(hearth_config::ProcessEnv))
    }
}

impl Probes {
    /// `env` resolves the providers' keys for the probe requests.
    pub fn new(env: Arc<dyn Env + Send + Sync>) -> Self {
        Probes {
            env,
            options: ProbeOptions::default(),
            ttl: PROBE_TTL,
            error_ttl: PROBE_ERROR_TTL,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Other reuse times (tests, `models status`).
    pub fn with_ttl(mut self, ttl: Duration, error_ttl: Duration) -> Self {
        self.ttl = ttl;
        self.error_ttl = error_ttl;
        self
    }

    pub fn with_options(mut self, options: ProbeOptions) -> Self {
        self.options = options;
        self
    }

    fn key(provider: &Provider) -> String {
        format!("{} {}", provider.id, provider.base_url)
    }

    fn entry(&self, provider: &Provider) -> Arc<Entry> {
        let Ok(mut entries) = self.entries.lock() else { return Arc::new(Entry::default()) };
        Arc::clone(entries.entry(Self::key(provider)).or_default())
    }

    fn fresh(&self, entry: &Entry) -> Option<Arc<ProviderProbe>> {
        let value = entry.value.lock().ok()?;
        let (at, probe) = value.as_ref()?;
        let ttl = if probe.error.is_some() { self.error_ttl } else { self.ttl };
        (at.elapsed() < ttl).then(|| Arc::clone(probe))
    }

    /// The provider's probe: cached while fresh, else probed now (once for concurrent callers).
    pub async fn get(&self, provider: &Provider) -> Arc<ProviderProbe> {
        let entry = self.entry(provider);
        if let Some(p) = self.fresh(&entry) {
            return p;
        }
        let _probing = entry.probing.lock().await;
        if let Some(p) = self.fresh(&entry) {
            return p;
        }
        let probe = Arc::new(probe_with(provider, self.env.as_ref(), &self.options).await);
        if let Ok(mut value) = entry.value.lock() {
            *value = Some((Instant::now(), Arc::clone(&probe)));
        }
        probe
    }

    /// The last probe of the provider, however old, without probing.
    pub fn cached(&self, provider: &Provider) -> Option<Arc<ProviderProbe>> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&Self::key(provider))?;
        let value = entry.value.lock().ok()?;
        value.as_ref().map(|(_, p)| Arc::clone(p))
    }

    /// Forgets the provider's probe (after a server was started or stopped).
    pub fn invalidate(&self, provider: &Provider) {
        if let Ok(entries) = self.entries.lock()
            && let Some(entry) = entries.get(&Self::key(provider))
            && let Ok(mut value) = entry.value.lock()
        {
            *value = None;
        }
    }

    /// Records the window a context-overflow error revealed (`Overflow::context_size`); it
    /// caps the served window from then on.
    pub fn learn_context(&self, provider: &Provider, model_id: &str, context_size: u64) {
        if context_size == 0 {
            return;
        }
        let entry = self.entry(provider);
        if let Ok(mut learned) = entry.learned.lock() {
            let slot = learned.entry(model_id.to_owned()).or_insert(context_size);
            *slot = (*slot).min(context_size);
        }
    }

    fn learned(&self, provider: &Provider, model_id: &str) -> Option<u64> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&Self::key(provider))?;
        let learned = entry.learned.lock().ok()?;
        learned.get(model_id).copied()
    }

    /// The window the server serves for `model_id` (probing when the cache is stale), capped
    /// by what overflow errors revealed. `None`: the server does not say.
    pub async fn served_context(&self, provider: &Provider, model_id: &str) -> Option<u64> {
        let probe = self.get(provider).await;
        let served = probe.find(model_id).and_then(|m| m.context_window);
        min_opt(served, self.learned(provider, model_id))
    }

    /// Exact token count of `text` from servers that have a tokenizer endpoint (llama.cpp
    /// `/tokenize`); `None` elsewhere. Used to calibrate hearth's estimate once per turn.
    pub async fn count_tokens(&self, provider: &Provider, text: &str) -> Option<u64> {
        let probe = self.get(provider).await;
        if probe.kind != ServerKind::LlamaCpp || !probe.reachable {
            return None;
        }
        let cx = Cx {
            provider,
            http: http_client(provider, Duration::from_secs(5)).ok()?,
            auth: auth_headers(provider, self.env.as_ref()),
        };
        let url = format!("{}/tokenize", cx.root());
        let body = serde_json::json!({"content": text, "add_special": false});
        let reply = cx.send(reqwest::Method::POST, &url, Some(&body)).await.ok()?;
        if !reply.ok() {
            return None;
        }
        reply.json()?.get("tokens")?.as_array().map(|t| t.len() as u64)
    }

    /// Exact prompt tokens of a chat request on llama.cpp: the body rendered by the model's
    /// own chat template (`/apply-template`, tools included), then `/tokenize`d. `None` when
    /// the server is not llama.cpp or does not answer.
    pub async fn count_chat_tokens(&self, provider: &Provider, chat_body: &Value) -> Option<u64> {
        let probe = self.get(provider).await;
        if probe.kind != ServerKind::LlamaCpp || !probe.reachable {
            return None;
        }
        let cx = Cx {
            provider,
            http: http_client(provider, Duration::from_secs(10)).ok()?,
            auth: auth_headers(provider, self.env.as_ref()),
        };
        let rendered = cx
            .send(reqwest::Method::POST, &format!("{}/apply-template", cx.root()), Some(chat_body))
            .await
            .ok()
            .filter(Reply::ok)?;
        let prompt = rendered.json()?.get("prompt")?.as_str()?.to_owned();
        let body =
            serde_json::json!({"content": prompt, "add_special": true, "parse_special": true});
        let reply = cx
            .send(reqwest::Method::POST, &format!("{}/tokenize", cx.root()), Some(&body))
            .await
            .ok()
            .filter(Reply::ok)?;
        reply.json()?.get("tokens")?.as_array().map(|t| t.len() as u64)
    }

    /// Anthropic's own count (`POST /v1/messages/count_tokens`) of a Messages request body.
    /// `Err` is the upstream's answer when it refused (its status and message), `Ok(None)`
    /// when it could not be asked.
    pub async fn count_anthropic_tokens(
        &self,
        provider: &Provider,
        body: &Value,
    ) -> Result<Option<u64>, UpstreamError> {
        if provider.api != Api::AnthropicMessages {
            return Ok(None);
        }
        let Ok(http) = http_client(provider, Duration::from_secs(30)) else { return Ok(None) };
        let cx = Cx { provider, http, auth: auth_headers(provider, self.env.as_ref()) };
        let url = format!("{}/v1/messages/count_tokens", cx.root());
        let Ok(reply) = cx.send(reqwest::Method::POST, &url, Some(body)).await else {
            return Ok(None);
        };
        if !reply.ok() {
            let mut error = crate::classify::classify_http(reply.status, None, &reply.text());
            error.status = Some(reply.status);
            return Err(error);
        }
        Ok(reply.json().and_then(|v| v.get("input_tokens").and_then(Value::as_u64)))
    }

    /// Like [`Probes::served_context`] from the cache only: never waits for the network.
    pub fn cached_context(&self, provider: &Provider, model_id: &str) -> Option<u64> {
        let served =
            self.cached(provider).and_then(|p| p.find(model_id).and_then(|m| m.context_window));
        min_opt(served, self.learned(provider, model_id))
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num_ctx_from_parameters() {
        assert_eq!(
            modelfile_num_ctx("num_ctx                        32768\nstop \"<|im_end|>\""),
            Some(32768)
        );
        assert_eq!(modelfile_num_ctx("temperature 0.7"), None);
    }

    #[test]
    fn effective() {
        assert_eq!(
            effective_context(4096, Some(256)),
            (256, Some(ContextWarning { configured: 4096, served: 256 }))
        );
        assert_eq!(effective_context(4096, Some(8192)), (4096, None));
        assert_eq!(effective_context(4096, None), (4096, None));
        let w = ContextWarning { configured: 4096, served: 256 }.to_string();
        assert!(w.contains("4096") && w.contains("256"), "{w}");
    }
}
