//! `hearth models status [--probe] [--json]`: is every provider of the default chain (and every
//! provider the config defines) reachable, serving the configured models, loaded, sized as
//! the config says, speaking the configured API?
//!
//! What it reads comes from `hearth_upstream::probe` (the servers' own metadata); `--probe` also
//! sends a one-token request to each model of the default chain. Cooldowns come from the
//! router that owns them: this CLI process has none yet ([`collect`] takes them as an
//! argument so the gateway can pass `Router::cooldowns()`).
//!
//! Exit 0 when the default chain can answer: a candidate whose server is reachable (or that
//! hearth starts on demand), accepts the credentials and serves the model; with `--probe`, a
//! candidate that answered the one-token request. Exit 1 otherwise.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use futures::StreamExt;
use hearth_config::{Api, Config, Env, Model, ModelRef, Origin, Provider};
use hearth_upstream::local_service::LocalServices;
use hearth_upstream::probe::{self, ContextWarning, ModelState, ProbeOptions, ProviderProbe};
use hearth_upstream::router::CooldownView;
use hearth_upstream::{Client, ErrorClass, Event, Prompt, Target, UpstreamError};
use serde_json::json;

/// Default limit of the one-token request of `--probe`.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 15_000;
/// Rows listed for a provider with no configured models (what its server serves).
const MAX_SERVED_ROWS: usize = 10;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Also send a one-token request to each model of the default chain (starting servers
    /// that have a localService, as a real request would).
    #[arg(long)]
    pub probe: bool,
    /// Limit of each one-token request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_PROBE_TIMEOUT_MS)]
    pub probe_timeout: u64,
    /// Show every provider, built-in hosted ones included (default: the default chain's and
    /// those the config defines).
    #[arg(long)]
    pub all: bool,
    /// The running gateway to ask for its cooldowns (default: this config's gateway on
    /// loopback, http://127.0.0.1:<gateway.port>). Cooldowns live in the gateway process.
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where the cooldown column came from.
#[derive(Debug, Clone, PartialEq)]
pub enum CooldownSource {
    /// The caller passed its own router's state.
    Local,
    /// The running gateway at this URL answered.
    Gateway(String),
    /// No gateway answered at this URL, and why.
    NoGateway { url: String, why: String },
}

/// The role of a model in the default chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Fallback(usize),
    /// Configured, not in the default chain.
    Configured,
    /// Not configured: the server serves it.
    Served,
    /// The provider has no models to show.
    None,
}

impl Role {
    fn label(self) -> String {
        match self {
            Role::Primary => "primary".into(),
            Role::Fallback(n) => format!("fallback {n}"),
            Role::Configured => "configured".into(),
            Role::Served => "served".into(),
            Role::None => "-".into(),
        }
    }
}

/// The one-token request of `--probe`.
#[derive(Debug, Clone)]
pub struct Answered {
    pub error: Option<UpstreamError>,
    pub elapsed: Duration,
}

impl Answered {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// One row: a model of a provider.
#[derive(Debug, Clone)]
pub struct ModelStatus {
    pub model_ref: ModelRef,
    pub role: Role,
    pub api: Api,
    /// `None`: the server lists nothing (unreachable, or no listing).
    pub listed: Option<bool>,
    pub state: Option<ModelState>,
    /// The window the config claims (`contextTokens`, else `contextWindow`), if any.
    pub configured_context: Option<u64>,
    pub served_context: Option<u64>,
    pub context_warning: Option<ContextWarning>,
    /// For an Ollama server: the `options.num_ctx` hearth sends (`None` inside: none, Ollama's
    /// default applies). `None`: not an Ollama server.
    pub num_ctx: Option<Option<hearth_upstream::encode::NumCtx>>,
    /// Configured `openai-responses` on a server without `/responses`.
    pub api_problem: Option<String>,
    pub cooldowns: Vec<CooldownView>,
    pub answered: Option<Answered>,
    /// Whether this candidate could answer a turn now.
    pub usable: bool,
}

/// One provider with its rows.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    pub id: String,
    pub base_url: String,
    pub probe: ProviderProbe,
    /// The provider's host is loopback or private.
    pub local: bool,
    /// The provider has a `localService` (hearth starts it on demand).
    pub local_service: bool,
    /// `--probe` started its local service for this check.
    pub started: bool,
    /// `--probe` could not start its local service.
    pub start_error: Option<UpstreamError>,
    /// A hosted provider whose configured key cannot be had (`ANTHROPIC_API_KEY is not set`):
    /// it is not contacted, and its rows cannot answer.
    pub key_problem: Option<String>,
    pub models: Vec<ModelStatus>,
}

/// Everything `models status` shows.
#[derive(Debug, Clone)]
pub struct Report {
    pub chain: Vec<ModelRef>,
    pub chain_error: Option<String>,
    pub providers: Vec<ProviderStatus>,
    pub probed: bool,
    pub cooldown_source: CooldownSource,
}

impl Report {
    /// The first candidate of the default chain that can answer.
    pub fn answering(&self) -> Option<&ModelStatus> {
        self.chain.iter().find_map(|r| {
            self.providers
                .iter()
                .flat_map(|p| p.models.iter())
                .find(|m| &m.model_ref == r && m.usable)
        })
    }

    pub fn can_answer(&self) -> bool {
        self.answering().is_some()
    }
}

/// Options of [`collect`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub all: bool,
    pub probe: bool,
    pub probe_timeout: Duration,
    /// Only the default chain's providers (`hearth doctor`), not every configured one.
    pub chain_only: bool,
    /// Limit of each metadata request (`GET /v1/models` and the like).
    pub read_timeout: Duration,
}

/// The CLI entry point.
pub fn run(config: &Config, args: &StatusArgs, env: &(dyn Env + Sync)) -> anyhow::Result<ExitCode> {
    let options = Options {
        all: args.all,
        probe: args.probe,
        probe_timeout: Duration::from_millis(args.probe_timeout.max(1)),
        chain_only: false,
        read_timeout: probe::PROBE_TIMEOUT,
    };
    let spinner = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(if args.probe {
            "probing the providers and the default chain…"
        } else {
            "asking the providers what they serve…"
        });
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let services = LocalServices::new();
    // Cooldowns live in the gateway process: ask the running one.
    // The gateway token goes only where the user pointed (`--gateway URL`); otherwise the
    // gateway running on this state directory is asked with its per-run key, and a process
    // that merely holds the configured port gets no credential at all.
    let (url, bearer) = match &args.gateway {
        Some(url) => (
            url.clone(),
            crate::gateway::client_credential(config, env).map(|s| s.expose().to_owned()),
        ),
        None => match crate::state_lock::state_dir().and_then(|d| crate::state_lock::running(&d)) {
            Some(info) => (
                format!("http://{}", std::net::SocketAddr::new(info.host, info.port)),
                Some(info.local_key),
            ),
            None => (format!("http://127.0.0.1:{}", config.gateway.port), None),
        },
    };
    let (cooldowns, source) = match runtime.block_on(gateway_cooldowns(&url, bearer.as_deref())) {
        Ok(c) => (c, CooldownSource::Gateway(url)),
        Err(why) => (Vec::new(), CooldownSource::NoGateway { url, why }),
    };
    let mut report = runtime.block_on(collect(config, env, &cooldowns, &services, options));
    report.cooldown_source = source;
    // Stop what `--probe` started, inside the runtime that owns the children.
    runtime.block_on(async { drop(services) });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report_json(&report))?)?;
    } else {
        write!(out, "{}", report_text(&report))?;
    }
    Ok(if report.can_answer() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// How long asking the gateway for its cooldowns may take.
const GATEWAY_TIMEOUT: Duration = Duration::from_millis(1500);

/// A cooldown answer larger than this is refused.
const GATEWAY_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The cooldowns of the gateway at `url` (`GET /hearth/cooldowns`), over plain HTTP on a bare
/// socket: only `hearth-upstream` links an HTTP client (`tests/tidy.rs`), and this is one GET
/// to a loopback gateway that answers with a `content-length` body.
pub async fn gateway_cooldowns(
    url: &str,
    bearer: Option<&str>,
) -> Result<Vec<CooldownView>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        cooldowns: Vec<CooldownView>,
    }
    let body = gateway_get(url, "/hearth/cooldowns", bearer).await?;
    serde_json::from_str::<Answer>(&body)
        .map(|a| a.cooldowns)
        .map_err(|e| format!("the gateway's answer is not a cooldown list: {e}"))
}

/// One `GET <path>` to the gateway at `url`: the body of a 200, or why not.
pub async fn gateway_get(url: &str, path: &str, bearer: Option<&str>) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid --gateway URL: {e}"))?;
    if parsed.scheme() != "http" {
        return Err(format!("only http:// gateways can be asked, not {}://", parsed.scheme()));
    }
    let addrs = parsed.socket_addrs(|| Some(80)).map_err(|e| e.to_string())?;
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let path = format!("{}{path}", parsed.path().trim_end_matches('/'));
    let exchange = async {
        let mut stream =
            tokio::net::TcpStream::connect(&addrs[..]).await.map_err(|e| e.to_string())?;
        let auth = bearer.map(|b| format!("authorization: Bearer {b}\r\n")).unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n{auth}connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(GATEWAY_MAX_BYTES as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<Vec<u8>, String>(raw)
    };
    let raw = tokio::time::timeout(GATEWAY_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {} ms", GATEWAY_TIMEOUT.as_millis()))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("not an HTTP answer")?;
    match head.split_whitespace().nth(1).unwrap_or("?") {
        "200" => Ok(body.to_owned()),
        status @ ("401" | "403") => Err(format!(
            "the gateway refused the credentials ({status}); set HEARTH_GATEWAY_TOKEN or gateway.auth"
        )),
        "404" => Err("the server there is not a hearth gateway (404)".to_owned()),
        other => Err(format!("the gateway answered {other}")),
    }
}

/// Which providers to show: the default chain's (in chain order), those the config defines,
/// and with `all` every other one.
fn selected<'c>(
    config: &'c Config,
    chain: &[ModelRef],
    all: bool,
    chain_only: bool,
) -> Vec<&'c Provider> {
    let mut out: Vec<&Provider> = Vec::new();
    let mut push = |p: &'c Provider| {
        if !out.iter().any(|o| o.id == p.id) {
            out.push(p);
        }
    };
    for r in chain {
        if let Some(p) = config.providers.get(&r.provider) {
            push(p);
        }
    }
    for p in config.providers.values() {
        if !chain_only && (all || p.origin == Origin::Config) {
            push(p);
        }
    }
    out
}

/// Gathers the report: probes every selected provider (concurrently), and with `probe` sends
/// the one-token requests. `cooldowns` is the router's state (`Router::cooldowns()`).
pub async fn collect(
    config: &Config,
    env: &(dyn Env + Sync),
    cooldowns: &[CooldownView],
    services: &LocalServices,
    options: Options,
) -> Report {
    let (chain, chain_error) = match config.candidate_chain(None, None, false) {
        Ok(c) => (c.candidates, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let providers = selected(config, &chain, options.all, options.chain_only);
    let probe_options = ProbeOptions { timeout: options.read_timeout, ..ProbeOptions::default() };

    // With --probe, the chain's local services are started first, as a request would.
    let mut leases = Vec::new();
    let mut started: Vec<String> = Vec::new();
    let mut start_errors: Vec<(String, UpstreamError)> = Vec::new();
    if options.probe {
        for p in providers.iter().filter(|p| p.local_service.is_some()) {
            if !chain.iter().any(|r| r.provider == p.id) {
                continue;
            }
            match services.acquire(p).await {
                Ok(lease) => {
                    if lease.started() {
                        started.push(p.id.clone());
                    }
                    leases.push(lease);
                }
                Err(e) => start_errors.push((p.id.clone(), e)),
            }
        }
    }

    // A hosted provider without its key is not asked: the answer would only be "unauthorized"
    // (or, offline, "unreachable"), and the cause is known already.
    let key_problems: Vec<Option<String>> =
        providers.iter().map(|p| p.key_state(env).problem().filter(|_| !p.is_local())).collect();
    let probes: Vec<ProviderProbe> =
        futures::future::join_all(providers.iter().zip(&key_problems).map(|(p, key)| async move {
            match key {
                None => probe::probe_with(p, env, &probe_options).await,
                Some(_) => not_contacted(p),
            }
        }))
        .await;

    let mut out: Vec<ProviderStatus> = Vec::new();
    for ((provider, probe), key_problem) in providers.iter().zip(probes).zip(key_problems) {
        let rows = rows_of(config, provider, &chain, &probe, options.all);
        let models = rows
            .into_iter()
            .map(|(model_ref, role, model)| {
                let mut row = model_status(provider, &probe, model_ref, role, &model, cooldowns);
                row.usable &= key_problem.is_none();
                row
            })
            .collect();
        out.push(ProviderStatus {
            id: provider.id.clone(),
            base_url: provider.base_url.as_str().trim_end_matches('/').to_owned(),
            local: provider.is_local(),
            local_service: provider.local_service.is_some(),
            started: started.contains(&provider.id),
            start_error: start_errors
                .iter()
                .find(|(id, _)| *id == provider.id)
                .map(|(_, e)| e.clone()),
            probe,
            key_problem,
            models,
        });
    }

    if options.probe {
        let answers = futures::future::join_all(chain.iter().map(|r| async move {
            let resolved = config.resolve_ref(&r.to_string()).ok()?;
            let params = config
                .model_settings
                .get(&resolved.model_ref)
                .and_then(|s| s.params.as_ref())
                .and_then(|p| p.as_object())
                .cloned();
            Some(
                one_token(resolved.provider, &resolved.model, params, env, options.probe_timeout)
                    .await,
            )
        }))
        .await;
        for (r, answer) in chain.iter().zip(answers) {
            for row in out.iter_mut().flat_map(|p| p.models.iter_mut()) {
                if &row.model_ref == r {
                    row.usable = answer.as_ref().is_some_and(Answered::ok);
                    row.answered = answer.clone();
                }
            }
        }
    }
    drop(leases);
    Report {
        chain,
        chain_error,
        providers: out,
        probed: options.probe,
        cooldown_source: CooldownSource::Local,
    }
}

/// The probe of a provider that was not contacted.
fn not_contacted(provider: &Provider) -> ProviderProbe {
    let kind = if provider.api == Api::AnthropicMessages {
        probe::ServerKind::Anthropic
    } else {
        probe::ServerKind::Generic
    };
    ProviderProbe::new(provider, kind)
}

/// The rows of one provider: its chain models, its configured models, and (when it has
/// none) what its server serves.
fn rows_of(
    config: &Config,
    provider: &Provider,
    chain: &[ModelRef],
    probe: &ProviderProbe,
    all: bool,
) -> Vec<(ModelRef, Role, Model)> {
    let mut rows: Vec<(ModelRef, Role, Model)> = Vec::new();
    for (idx, r) in chain.iter().enumerate().filter(|(_, r)| r.provider == provider.id) {
        let model = config
            .resolve_ref(&r.to_string())
            .map(|res| res.model.into_owned())
            .unwrap_or_else(|_| provider.synthetic_model(&r.model));
        let role = if idx == 0 { Role::Primary } else { Role::Fallback(idx) };
        rows.push((r.clone(), role, model));
    }
    for m in &provider.models {
        if (all || m.origin != Origin::Builtin) && !rows.iter().any(|(_, _, row)| row.id == m.id) {
            rows.push((ModelRef::new(&provider.id, &m.id), Role::Configured, m.clone()));
        }
    }
    // A provider without models (or with a `provider/*` key) shows what its server serves.
    let wildcard = config.model_settings.contains_key(&ModelRef::new(&provider.id, "*"));
    if rows.is_empty() || wildcard {
        for served in probe.served.iter().take(MAX_SERVED_ROWS) {
            if rows.iter().any(|(r, _, _)| r.model == served.id) {
                continue;
            }
            let model = provider.synthetic_model(&served.id);
            rows.push((ModelRef::new(&provider.id, &served.id), Role::Served, model));
        }
    }
    if rows.is_empty() {
        rows.push((ModelRef::new(&provider.id, "-"), Role::None, provider.synthetic_model("-")));
    }
    rows
}

fn model_status(
    provider: &Provider,
    probe: &ProviderProbe,
    model_ref: ModelRef,
    role: Role,
    model: &Model,
    cooldowns: &[CooldownView],
) -> ModelStatus {
    let served = probe.find(&model.id);
    let listed = (!probe.served.is_empty()).then(|| probe.listed(&model.id));
    let served_context = served.and_then(|s| s.context_window);
    let configured_context = model.context_tokens.or(model.context_window);
    let (_, context_warning) = probe::effective_context_for(model, served_context);
    let num_ctx = sends_num_ctx(provider, model).then(|| {
        // The provider's and the model row's params (an agent's come per request).
        let params = Target { provider, model, params: None, served_max: None }.all_params();
        hearth_upstream::encode::num_ctx(model, &params, served.and_then(|s| s.max_context_window))
    });
    let api_problem = (model.api == Api::OpenaiResponses && probe.responses_api == Some(false))
        .then(|| {
            format!(
                "{model_ref}: configured api openai-responses, but the server has no /v1/responses; \
                 set api: \"openai-completions\" (models.providers.{}{})",
                provider.id,
                if model.origin == Origin::Config && provider.api != Api::OpenaiResponses {
                    format!(".models[id={}].api", model.id)
                } else {
                    ".api".to_owned()
                }
            )
        });
    let cooldowns: Vec<CooldownView> = cooldowns
        .iter()
        .filter(|c| c.provider == provider.id && c.model.as_ref().is_none_or(|m| *m == model.id))
        .cloned()
        .collect();
    let blocked = probe.error.as_ref().is_some_and(|e| {
        matches!(e.class, ErrorClass::Auth | ErrorClass::Billing)
            || e.message.contains("network guard")
    });
    let serves = probe.served.is_empty() || served.is_some();
    let reachable_now = probe.reachable && !blocked && serves && api_problem.is_none();
    let startable = provider.local_service.is_some() && !probe.reachable && !blocked;
    ModelStatus {
        usable: role != Role::None && role != Role::Served && (reachable_now || startable),
        model_ref,
        role,
        api: model.api,
        listed,
        state: served.map(|s| s.state),
        configured_context,
        served_context,
        context_warning,
        num_ctx,
        api_problem,
        cooldowns,
        answered: None,
    }
}

/// Whether requests to `model` carry `options.num_ctx`: Ollama's native API, or its `/v1` with
/// `injectNumCtxForOpenAICompat` (default on).
pub fn sends_num_ctx(provider: &Provider, model: &Model) -> bool {
    match model.api {
        Api::Ollama => true,
        Api::OpenaiCompletions => {
            provider.inject_num_ctx && hearth_upstream::encode::is_ollama_compat(provider)
        }
        _ => false,
    }
}

/// What `num_ctx` a model gets, in words.
pub fn num_ctx_note(
    model_ref: &ModelRef,
    num_ctx: Option<&hearth_upstream::encode::NumCtx>,
) -> String {
    match num_ctx {
        Some(n) => match n.capped_from {
            Some(configured) => format!(
                "{model_ref}: hearth sends num_ctx {} ({} {configured}, cut to what the model supports)",
                n.value,
                n.source.key()
            ),
            None => {
                format!("{model_ref}: hearth sends num_ctx {} (from {})", n.value, n.source.key())
            }
        },
        None => format!(
            "{model_ref}: no contextWindow or contextTokens, so no num_ctx is sent and Ollama's own default window applies (4096 tokens, or more with much VRAM); set contextWindow"
        ),
    }
}

/// One non-streaming request with `max_tokens: 1`.
async fn one_token(
    provider: &Provider,
    model: &Model,
    params: Option<serde_json::Map<String, serde_json::Value>>,
    env: &(dyn Env + Sync),
    limit: Duration,
) -> Answered {
    let started = Instant::now();
    let mut prompt = Prompt::text(None, "Say OK.");
    prompt.max_tokens = Some(1);
    prompt.stream = false;
    let call = async {
        let client = Client::new(provider)?;
        let target = Target { provider, model, params: params.as_ref(), served_max: None };
        let mut events = client.send(&target, &prompt, env).await?;
        while let Some(event) = events.next().await {
            if let Event::Error(e) = event {
                return Err(e);
            }
        }
        Ok(())
    };
    let error = match tokio::time::timeout(limit, call).await {
        Ok(Ok(())) => None,
        // One token may all be reasoning: the model answered.
        Ok(Err(e)) if e.class == ErrorClass::EmptyResponse => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(UpstreamError::new(
            ErrorClass::Timeout,
            format!("no answer within {} ms", limit.as_millis()),
        )),
    };
    Answered { error, elapsed: started.elapsed() }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn server_cell(p: &ProviderStatus) -> String {
    let probe = &p.probe;
    match (&probe.error, probe.reachable) {
        _ if p.key_problem.is_some() => "no key (not contacted)".to_owned(),
        (_, false) if p.start_error.is_some() => "failed to start".to_owned(),
        (_, false) if p.local_service => "down (starts on demand)".to_owned(),
        (Some(e), false) if e.message.contains("network guard") => "blocked".to_owned(),
        (Some(e), false) => format!("unreachable ({})", e.class.as_str()),
        (None, false) => "unreachable".to_owned(),
        (Some(e), true) => format!("up {} ms, {}", probe.latency.map_or(0, ms), e.class.as_str()),
        (None, true) => format!("up {} ms", probe.latency.map_or(0, ms)),
    }
}

fn context_cell(m: &ModelStatus) -> String {
    let show = |v: Option<u64>| v.map_or("?".to_owned(), |n| n.to_string());
    match (m.served_context, m.configured_context) {
        (None, None) => "-".to_owned(),
        (served, configured) => {
            let flag = if m.context_warning.is_some() { " !" } else { "" };
            format!(
                "{} / {}{flag}",
                show(served),
                configured.map_or("-".to_owned(), |c| c.to_string())
            )
        }
    }
}

fn api_cell(m: &ModelStatus, probe: &ProviderProbe) -> String {
    if m.api_problem.is_some() {
        return format!("{}: no /responses", m.api.as_str());
    }
    match (m.api, probe.responses_api) {
        (Api::OpenaiResponses, Some(true)) => format!("{} ok", m.api.as_str()),
        (api, _) => api.as_str().to_owned(),
    }
}

fn cooldown_cell(m: &ModelStatus) -> String {
    match m.cooldowns.iter().max_by_key(|c| c.remaining) {
        Some(c) => format!("{} {}s", c.reason.as_str(), c.remaining.as_secs().max(1)),
        None => "-".to_owned(),
    }
}

fn probe_cell(m: &ModelStatus) -> String {
    match &m.answered {
        None => "-".to_owned(),
        Some(a) => match &a.error {
            None => format!("ok {} ms", ms(a.elapsed)),
            Some(e) => format!("{} {} ms", e.class.as_str(), ms(a.elapsed)),
        },
    }
}

/// Warnings and errors worth a line of their own, in table order.
fn notes(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for p in &report.providers {
        if let Some(problem) = &p.key_problem {
            out.push(format!("{}: {problem}; not contacted ({})", p.id, key_fix(p)));
        }
        if let Some(e) = p.probe.error.as_ref().filter(|_| p.start_error.is_none()) {
            let hint = match e.class {
                ErrorClass::Connect if p.local_service => {
                    " (hearth starts its localService when a request needs it)".to_owned()
                }
                ErrorClass::Connect if p.local && !e.message.contains("network guard") => {
                    format!(" (start the server, or fix models.providers.{}.baseUrl)", p.id)
                }
                ErrorClass::Auth => format!(" (check the API key of provider `{}`)", p.id),
                _ => String::new(),
            };
            // Messages of the transport already start with the provider id.
            if e.message.starts_with(&p.id) {
                out.push(format!("{}{hint}", e.message));
            } else {
                out.push(format!("{}: {}{hint}", p.id, e.message));
            }
        }
        if let Some(e) = &p.start_error {
            out.push(e.message.clone());
        }
        if p.started {
            out.push(format!(
                "{}: started by this check (localService); stopped again on exit",
                p.id
            ));
        }
        for m in &p.models {
            if let Some(n) = &m.num_ctx
                && !matches!(m.role, Role::None | Role::Served)
            {
                out.push(num_ctx_note(&m.model_ref, n.as_ref()));
            }
            if let Some(w) = &m.context_warning {
                out.push(format!(
                    "{}: {w}; lower contextWindow to {} or raise the server's context size",
                    m.model_ref, w.served
                ));
            }
            if let Some(problem) = &m.api_problem {
                out.push(problem.clone());
            }
            if m.listed == Some(false) && !matches!(m.role, Role::None | Role::Served) {
                if p.probe.any_model_id {
                    out.push(format!(
                        "{}: not listed; this llama.cpp server answers any model id with `{}`",
                        m.model_ref,
                        p.probe.served.first().map_or("its model", |s| s.id.as_str())
                    ));
                } else {
                    out.push(format!(
                        "{}: the server does not list this model (it lists: {})",
                        m.model_ref,
                        p.probe
                            .served
                            .iter()
                            .take(5)
                            .map(|s| s.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            if let Some(Answered { error: Some(e), .. }) = &m.answered {
                out.push(format!("{}: the one-token request failed: {e}", m.model_ref));
            }
        }
    }
    match &report.cooldown_source {
        CooldownSource::Local => {}
        CooldownSource::Gateway(url) => out.push(format!("cooldowns: from the gateway at {url}")),
        CooldownSource::NoGateway { url, why } => out.push(format!(
            "cooldowns: unknown (no gateway at {url}: {why}); they live in a running `hearth gateway run` (--gateway URL asks another)"
        )),
    }
    out
}

/// What to do about a provider's missing key.
fn key_fix(p: &ProviderStatus) -> String {
    if p.key_problem.as_deref().is_some_and(|k| k.ends_with(" is not set")) {
        format!("export it, or set models.providers.{}.apiKey", p.id)
    } else {
        format!("fix models.providers.{}.apiKey", p.id)
    }
}

/// Why the default chain cannot answer, in one line (after `error: `).
pub fn cannot_answer(report: &Report) -> String {
    if report.chain_error.is_some() || report.chain.is_empty() {
        let why = report.chain_error.as_deref().unwrap_or("no model configured");
        return format!(
            "there is no default chain ({why}); run `hearth config init` to write a config for \
             the servers running here, or set agents.defaults.model.primary"
        );
    }
    if report.probed {
        return "no model of the default chain answered the probe".to_owned();
    }
    // When every chain provider lacks its key, say so instead of blaming the network.
    let chain_providers: Vec<&ProviderStatus> = report
        .providers
        .iter()
        .filter(|p| report.chain.iter().any(|r| r.provider == p.id))
        .collect();
    if !chain_providers.is_empty() && chain_providers.iter().all(|p| p.key_problem.is_some()) {
        let keys: Vec<String> = chain_providers
            .iter()
            .map(|p| format!("{}: {}", p.id, p.key_problem.as_deref().unwrap_or_default()))
            .collect();
        return format!("no model of the default chain can answer: {}", keys.join("; "));
    }
    "no model of the default chain is reachable".to_owned()
}

/// The table and the notes, as printed.
pub fn report_text(report: &Report) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let mut header = vec![
        "REF",
        "ROLE",
        "SERVER",
        "LISTED",
        "STATE",
        "CONTEXT served/config",
        "API",
        "COOLDOWN",
    ];
    if report.probed {
        header.push("PROBE");
    }
    table.set_header(header);
    for p in &report.providers {
        for m in &p.models {
            let mut row = vec![
                Cell::new(m.model_ref.to_string()),
                Cell::new(m.role.label()),
                Cell::new(server_cell(p)),
                Cell::new(match m.listed {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                }),
                Cell::new(m.state.map_or("?", ModelState::as_str)),
                Cell::new(context_cell(m)).set_alignment(CellAlignment::Right),
                Cell::new(api_cell(m, &p.probe)),
                Cell::new(cooldown_cell(m)),
            ];
            if report.probed {
                row.push(Cell::new(probe_cell(m)));
            }
            table.add_row(row);
        }
    }
    let mut out = String::new();
    match (&report.chain_error, report.chain.is_empty()) {
        (Some(e), _) => out.push_str(&format!("default chain: none ({e})\n")),
        (None, true) => out.push_str("default chain: none\n"),
        (None, false) => out.push_str(&format!(
            "default chain: {}\n",
            report.chain.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> ")
        )),
    }
    out.push_str(&table.to_string());
    out.push('\n');
    let notes = notes(report);
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out.push('\n');
    match report.answering() {
        Some(m) => out.push_str(&format!(
            "ok: the default chain can answer ({}{})\n",
            m.model_ref,
            if report.probed { " answered the probe" } else { " is reachable" }
        )),
        None => out.push_str(&format!("error: {}\n", cannot_answer(report))),
    }
    out
}

fn error_json(e: &UpstreamError) -> serde_json::Value {
    json!({"class": e.class.as_str(), "status": e.status, "message": e.message})
}

/// The same data as the table, as JSON.
pub fn report_json(report: &Report) -> serde_json::Value {
    let providers: Vec<serde_json::Value> = report
        .providers
        .iter()
        .map(|p| {
            let models: Vec<serde_json::Value> = p
                .models
                .iter()
                .filter(|m| m.role != Role::None)
                .map(|m| {
                    json!({
                        "ref": m.model_ref.to_string(),
                        "id": m.model_ref.model,
                        "role": m.role.label(),
                        "api": m.api.as_str(),
                        "listed": m.listed,
                        "state": m.state.map(ModelState::as_str),
                        "context": {
                            "configured": m.configured_context,
                            "served": m.served_context,
                            "warning": m.context_warning.map(|w| w.to_string()),
                            "numCtx": m.num_ctx.map(|n| match n {
                                Some(n) => json!({
                                    "value": n.value,
                                    "source": n.source.key(),
                                    "cappedFrom": n.capped_from,
                                }),
                                None => json!({"value": null, "source": "ollama-default"}),
                            }),
                        },
                        "apiCheck": {
                            "ok": m.api_problem.is_none(),
                            "message": m.api_problem,
                        },
                        "cooldowns": m.cooldowns.iter().map(|c| json!({
                            "reason": c.reason.as_str(),
                            "remainingMs": ms(c.remaining),
                            "failures": c.failures,
                            "credential": c.credential,
                            "scope": if c.model.is_some() { "model" } else { "provider" },
                        })).collect::<Vec<_>>(),
                        "probe": m.answered.as_ref().map(|a| json!({
                            "ok": a.ok(),
                            "ms": ms(a.elapsed),
                            "errorClass": a.error.as_ref().map(|e| e.class.as_str()),
                            "error": a.error.as_ref().map(|e| e.message.clone()),
                        })),
                        "usable": m.usable,
                    })
                })
                .collect();
            json!({
                "id": p.id,
                "baseUrl": p.base_url,
                "server": p.probe.kind.as_str(),
                "reachable": p.probe.reachable,
                "latencyMs": p.probe.latency.map(ms),
                "error": p.probe.error.as_ref().map(error_json),
                "keyProblem": p.key_problem,
                "responsesApi": p.probe.responses_api,
                "localService": p.local_service.then(|| json!({
                    "startedByThisCheck": p.started,
                    "startError": p.start_error.as_ref().map(error_json),
                })),
                "served": p.probe.served.iter().map(|s| json!({
                    "id": s.id,
                    "state": s.state.as_str(),
                    "contextWindow": s.context_window,
                    "maxContextWindow": s.max_context_window,
                })).collect::<Vec<_>>(),
                "models": models,
            })
        })
        .collect();
    json!({
        "ok": report.can_answer(),
        "defaultChain": report.chain.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "chainError": report.chain_error,
        "answeredBy": report.answering().map(|m| m.model_ref.to_string()),
        "reason": (!report.can_answer()).then(|| cannot_answer(report)),
        "probed": report.probed,
        "cooldownSource": match &report.cooldown_source {
            CooldownSource::Local => json!({"kind": "local"}),
            CooldownSource::Gateway(url) => json!({"kind": "gateway", "url": url}),
            CooldownSource::NoGateway { url, why } => {
                json!({"kind": "none", "url": url, "error": why})
            }
        },
        "providers": providers,
        "notes": notes(report),
    })
}
