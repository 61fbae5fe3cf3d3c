//! `hearth gateway run`: loads the config, prints one short startup block on stderr, serves the
//! HTTP API until SIGTERM/SIGINT, then drains open streams up to a deadline and exits 0.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hearth_config::{
    Config, ConfigSource, Model, ModelRef, Origin, ProcessEnv, Provider, SecretString,
};
use hearth_server::{AppState, Auth};
use hearth_upstream::Target;
use hearth_upstream::preload::{self, Preload};
use serde_json::{Map, Value};

/// Exit code when the gateway refuses its settings (sysexits EX_CONFIG).
const EXIT_CONFIG: u8 = 78;
/// Exit code when another gateway already uses the state directory (sysexits EX_TEMPFAIL).
const EXIT_IN_USE: u8 = 75;
/// Beyond `gateway.limits.drainTimeoutMs`, the server gets this long to write the streams'
/// terminal events before the process stops anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Reachability checks at startup give up after this long.
const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Port to listen on (default: gateway.port, else 18789; 0 picks a free port).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// `loopback` (127.0.0.1), `lan` (0.0.0.0), or an IP address (default: gateway.bind).
    #[arg(long, value_name = "loopback|lan|ADDR")]
    pub bind: Option<String>,
}

/// The credential a command sends to a gateway the user pointed it at (`agent --gateway`,
/// `models status --gateway`): the config's `gateway.auth` token or password, else
/// `HEARTH_GATEWAY_TOKEN` / `HEARTH_GATEWAY_PASSWORD` (and the `OPENCLAW_GATEWAY_*` spellings):
/// the same lookup the gateway makes for itself, so a command and the gateway it talks to agree.
/// `None` when auth is off, or its secret cannot be read.
pub fn client_credential(config: &Config, env: &dyn hearth_config::Env) -> Option<SecretString> {
    let auth = Auth::from_config(config, env).ok()?;
    auth.bearer().map(|b| SecretString::new(b.to_owned()))
}

fn parse_bind(text: &str) -> Option<IpAddr> {
    match text.trim().to_ascii_lowercase().as_str() {
        "loopback" => Some(IpAddr::from([127, 0, 0, 1])),
        "lan" => Some(IpAddr::from([0, 0, 0, 0])),
        other => other.parse().ok(),
    }
}

/// Where the gateway's own lines go. With `--log-format json` stderr carries JSON lines only:
/// the startup block and the shutdown lines go to stdout (and are logged as events too), and
/// errors are logged as events.
#[derive(Debug, Clone, Copy)]
struct Say {
    json: bool,
}

impl Say {
    /// A status line (the startup block, shutdown): stderr, or stdout beside JSON logs.
    fn status(self, text: &str) -> std::io::Result<()> {
        if self.json {
            write!(std::io::stdout().lock(), "{text}")
        } else {
            write!(std::io::stderr().lock(), "{text}")
        }
    }

    /// A status line that is also an event in JSON logs.
    fn event(self, text: &str) -> std::io::Result<()> {
        if self.json {
            tracing::info!("{}", text.trim_end());
        }
        self.status(text)
    }

    /// Why the gateway cannot run.
    fn error(self, text: &str) -> std::io::Result<()> {
        if self.json {
            tracing::error!("{}", text.trim_end());
            Ok(())
        } else {
            writeln!(std::io::stderr().lock(), "{text}")
        }
    }
}

/// Runs the gateway; returns the exit code.
pub fn run(
    config: &Config,
    source: &ConfigSource,
    args: &RunArgs,
    log_format: crate::telemetry::LogFormat,
) -> anyhow::Result<u8> {
    let say = Say { json: log_format == crate::telemetry::LogFormat::Json };
    let ip = match &args.bind {
        Some(text) => match parse_bind(text) {
            Some(ip) => ip,
            None => {
                say.error(&format!(
                    "error: --bind `{text}` is not `loopback`, `lan` or an IP address"
                ))?;
                return Ok(2);
            }
        },
        None => config.gateway.bind.ip(),
    };
    let port = args.port.unwrap_or(config.gateway.port);
    let env = ProcessEnv;
    let auth = match Auth::from_config(config, &env) {
        Ok(auth) => auth,
        Err(e) => {
            say.error(&format!("error: {e}"))?;
            return Ok(EXIT_CONFIG);
        }
    };
    if !ip.is_loopback() && auth.is_none() {
        say.error(&format!(
            "error: refusing to bind the gateway to {ip} without auth: anyone on the network could use your models.\n  \
             = help: set gateway.auth.token (or HEARTH_GATEWAY_TOKEN), or keep --bind loopback"
        ))?;
        return Ok(EXIT_CONFIG);
    }
    // Built before the runtime: the exporter runs on its own threads, and its shutdown (which
    // sends what is still queued) blocks.
    let traces = match crate::telemetry::start_traces(config, &env) {
        Ok(traces) => traces,
        Err(e) => {
            say.error(&format!("error: {e:#}"))?;
            return Ok(EXIT_CONFIG);
        }
    };
    let runtime = gateway_runtime()?;
    let result =
        runtime.block_on(serve(config.clone(), source, SocketAddr::new(ip, port), auth, say));
    drop(runtime);
    if let Some(traces) = traces {
        traces.shutdown();
    }
    result
}

/// The gateway's runtime: one thread when the process may use one CPU (`taskset`, a container's
/// CPU limit, a 1-vCPU machine), where a work-stealing pool of one worker only adds cross-thread
/// wake-ups and atomics to every request; a worker per CPU otherwise.
/// `HEARTH_WORKER_THREADS` overrides (`1` = the single-threaded runtime).
fn gateway_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("HEARTH_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if workers == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
    }
}

async fn serve(
    config: Config,
    source: &ConfigSource,
    addr: SocketAddr,
    auth: Auth,
    say: Say,
) -> anyhow::Result<u8> {
    let limits = config.gateway.limits.clone();
    // One gateway per state directory: a second one would interleave turns of one session.
    let Some(state_dir) = crate::state_lock::state_dir() else {
        say.error(
            "error: no state directory: set HEARTH_STATE_DIR (or HOME) to a writable folder",
        )?;
        return Ok(1);
    };
    let local_key = crate::state_lock::random_key()?;
    let listener = match hearth_server::conn::bind(addr, limits.backlog) {
        Ok(l) => l,
        Err(e) => {
            say.error(&format!(
                "error: cannot listen on {addr}: {e} (is another gateway already running?)"
            ))?;
            return Ok(1);
        }
    };
    let local = listener.local_addr()?;
    let _lock = match crate::state_lock::acquire(&state_dir, local, &local_key) {
        Ok(lock) => lock,
        Err(crate::state_lock::LockError::Held(info)) => {
            let who =
                info.map_or_else(String::new, |i| format!(" (pid {}, port {})", i.pid, i.port));
            say.error(&format!(
                "error: another hearth gateway{who} is using the state directory {}.\n  = help: stop it first, or give this one its own folder with HEARTH_STATE_DIR",
                state_dir.display()
            ))?;
            return Ok(EXIT_IN_USE);
        }
        Err(crate::state_lock::LockError::Io(e)) => {
            say.error(&format!(
                "error: cannot lock the state directory {}: {e} (set HEARTH_STATE_DIR to a writable folder)",
                state_dir.display()
            ))?;
            return Ok(1);
        }
    };
    let block = startup_block(&config, source, local, &auth).await;
    say.status(&block)?;
    if say.json {
        // The block's first line, as an event: where the gateway listens.
        tracing::info!(addr = %local, "{}", block.lines().next().unwrap_or_default());
    }
    // Sessions live in SQLite under ~/.hearth/state (HEARTH_STATE_DIR overrides).
    let store = match hearth_store::SqliteStore::open_default(None).await {
        Ok(store) => store,
        Err(e) => {
            say.error(&format!(
                "error: cannot open the session store: {e} (set HEARTH_STATE_DIR to a writable folder)"
            ))?;
            return Ok(1);
        }
    };
    if let Some(path) = store.path() {
        say.status(&format!("  sessions:  {}\n", path.display()))?;
    }
    let mut state = AppState::new(config, Arc::new(ProcessEnv), auth)?.with_agents(Arc::new(store));
    state.shared_mut().local_key = Some(hearth_config::SecretString::new(local_key));
    // HTTP clients (TLS setup) are built now, off the request path.
    let router = Arc::clone(&state.router);
    let snapshot = state.config.load_full();
    let env = Arc::clone(&state.env);
    tokio::task::spawn_blocking(move || router.prepare(&snapshot, &*env));
    // Local servers are asked once, in the background, what they serve (the probe cache;
    // requests never wait for it): Ollama's `/api/show` cuts the `num_ctx` hearth sends, and a
    // provider without `models[]` (or with a `provider/*` key) discovers its served models.
    // LM Studio (and Ollama with `params.preload: true`) is asked to load the configured models.
    let snapshot = state.config.load_full();
    for provider in snapshot.providers.values() {
        if !provider.is_local() || provider.origin != Origin::Config {
            continue;
        }
        let ollama = provider.api == hearth_config::Api::Ollama
            || provider.models.iter().any(|m| m.api == hearth_config::Api::Ollama);
        let discovers = provider.models.is_empty()
            || snapshot.model_settings.contains_key(&ModelRef::new(&provider.id, "*"));
        let preloads = preload_models(&snapshot, provider);
        let (probes, env, provider) =
            (Arc::clone(&state.probes), Arc::clone(&state.env), provider.clone());
        if !preloads.is_empty() {
            tokio::spawn(async move {
                let done = preload::run(&provider, &preloads, &probes, &*env).await;
                for one in &done {
                    log_preload(&provider.id, one);
                }
                probes.get(&provider).await
            });
        } else if ollama || discovers {
            tokio::spawn(async move { probes.get(&provider).await });
        }
    }
    // The chat channels: built from the config, started beside the server, stopped with it.
    let hub = Arc::new(hearth_channels::registry::build(&snapshot, &ProcessEnv, &state_dir));
    say.status(&channel_lines(&hub))?;
    for account in hub.accounts.iter().filter(|a| a.enabled) {
        let (channel, account_id) = (account.kind.as_str(), account.account.as_str());
        match &account.error {
            Some(error) => {
                tracing::error!(channel, account = account_id, error = %error, "The channel cannot start.")
            }
            None => tracing::info!(
                channel,
                account = account_id,
                dm_policy = account.dm_policy.as_str(),
                "Channel starting."
            ),
        }
        if account.dm_policy == hearth_config::DmPolicy::Open {
            tracing::warn!(
                channel,
                account = account_id,
                "dmPolicy is \"open\": anyone who can reach this channel talks to your agent."
            );
        }
    }
    state.shared_mut().channels = Some(Arc::clone(&hub));
    let (channels_stop_tx, channels_stop) = tokio::sync::watch::channel(false);
    let channel_tasks = match state.agents.clone() {
        Some(agents) => {
            let dispatcher = Arc::new(hearth_channels::Dispatcher::new(
                agents,
                Arc::clone(&snapshot),
                state_dir.clone(),
            ));
            hub.start(&dispatcher, &channels_stop)
        }
        None => Vec::new(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(hearth_server::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    tokio::select! {
        result = &mut server => {
            result??;
            return Ok(0);
        }
        () = shutdown_signal() => {}
    }
    say.event(&format!(
        "hearth: shutting down; draining open requests (up to {}s; /ready answers 503)\n",
        limits.drain_timeout.as_secs_f64()
    ))?;
    let _ = stop_tx.send(());
    let _ = channels_stop_tx.send(true);
    // The server ends streams still open at the drain deadline with their terminal error event.
    match tokio::time::timeout(limits.drain_timeout + DRAIN_GRACE, &mut server).await {
        Ok(result) => {
            result??;
            say.event("hearth: stopped\n")?;
        }
        Err(_) => {
            server.abort();
            say.event("hearth: drain deadline passed; closing the remaining connections\n")?;
        }
    }
    let _ = tokio::time::timeout(DRAIN_GRACE, futures::future::join_all(channel_tasks)).await;
    Ok(0)
}

/// The startup block's channel lines: one per configured account, and a loud line for every
/// account anyone may talk to.
fn channel_lines(hub: &hearth_channels::Hub) -> String {
    let mut out = String::new();
    for account in &hub.accounts {
        let name = format!("{}/{}", account.kind.as_str(), account.account);
        let state = if !account.enabled {
            "disabled".to_owned()
        } else if let Some(error) = &account.error {
            format!("NOT started: {error}")
        } else if account.kind == hearth_config::ChannelKind::Webhook {
            format!(
                "POST /channels/webhook/{} (dmPolicy {})",
                account.account,
                account.dm_policy.as_str()
            )
        } else {
            format!("starting (dmPolicy {})", account.dm_policy.as_str())
        };
        out.push_str(&format!("  channel:   {name} {state}\n"));
        if account.enabled && account.dm_policy == hearth_config::DmPolicy::Open {
            out.push_str(&format!(
                "  WARNING:   {name} has dmPolicy \"open\": anyone who can reach it talks to your agent\n"
            ));
        }
    }
    out
}

/// The models of `provider` that `params.preload` asks to load at start: its configured rows
/// and the refs the agents name, each with its merged params (provider < row < settings).
fn preload_models(config: &Config, provider: &Provider) -> Vec<(Model, Map<String, Value>)> {
    if preload::server_kind(provider).is_none() {
        return Vec::new();
    }
    config
        .rows()
        .into_iter()
        .filter(|(model_ref, _, model)| {
            model_ref.provider == provider.id && model.origin != Origin::Builtin
        })
        .filter_map(|(model_ref, _, model)| {
            let settings = config.params_for(None, &model_ref);
            let params =
                Target { provider, model: &model, params: settings.as_ref(), served_max: None }
                    .all_params();
            preload::wanted(provider, &params).then_some((model, params))
        })
        .collect()
}

/// One log line per preloaded model: what was asked, what happened, and on failure what to do.
fn log_preload(provider: &str, done: &Preload) {
    let model = done.model.as_str();
    match &done.outcome {
        preload::Outcome::Loaded { context_length, seconds } => tracing::info!(
            provider,
            model,
            context_length = *context_length,
            seconds = *seconds,
            "Preloaded the model ({}).",
            done.path
        ),
        preload::Outcome::AlreadyLoaded { state, context_length } => tracing::info!(
            provider,
            model,
            state = state.as_str(),
            context_length = *context_length,
            "The model is {} already; not preloading it.",
            state.as_str()
        ),
        preload::Outcome::Failed { error, help } => tracing::warn!(
            provider,
            model,
            asked_context_length = done.context_length,
            error = %error.message,
            "Preload failed ({}); the gateway runs on, and the first request loads the model if the server loads on demand. Fix: {help}.",
            done.path
        ),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether something accepts TCP connections at the URL's host and port.
async fn reachable(url: &url::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let port = url.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port)))
            .await,
        Ok(Ok(_))
    )
}

async fn startup_block(
    config: &Config,
    source: &ConfigSource,
    addr: SocketAddr,
    auth: &Auth,
) -> String {
    let mut out = String::new();
    let scope = if addr.ip().is_loopback() { "loopback only" } else { "network" };
    out.push_str(&format!(
        "hearth gateway listening on http://{addr} (auth: {}, {scope})\n",
        auth.mode()
    ));
    let config_line = match source.path() {
        Some(p) if p.exists() => p.display().to_string(),
        _ => source.describe(),
    };
    out.push_str(&format!("  config:    {config_line}\n"));
    let agent = config.default_agent().map(|a| a.id.clone());
    let chain = config.candidate_chain(agent.as_deref(), None, false);
    match &chain {
        Ok(chain) => {
            let refs: Vec<String> = chain.candidates.iter().map(ToString::to_string).collect();
            out.push_str(&format!("  default:   {}\n", refs.join(" -> ")));
        }
        Err(e) => {
            out.push_str(&format!("  default:   none ({e}); requests must name a model, e.g. \"lmstudio/<model id>\"\n"));
        }
    }
    // The window each Ollama model of the default chain runs with (`options.num_ctx`).
    for model_ref in chain.iter().flat_map(|c| c.candidates.iter()) {
        if let Ok(resolved) = config.resolve_model_ref(model_ref)
            && crate::status::sends_num_ctx(resolved.provider, &resolved.model)
        {
            let target = hearth_upstream::Target {
                provider: resolved.provider,
                model: &resolved.model,
                params: None,
                served_max: None,
            };
            let params = target.all_params();
            let n = hearth_upstream::encode::num_ctx(&resolved.model, &params, None);
            out.push_str(&format!(
                "  num_ctx:   {}\n",
                crate::status::num_ctx_note(model_ref, n.as_ref())
            ));
        }
    }
    // Providers worth checking: configured ones, and those the default chain or agents use.
    let mut ids: Vec<String> = config
        .providers
        .values()
        .filter(|p| p.origin == Origin::Config)
        .map(|p| p.id.clone())
        .collect();
    let referenced = config.referenced();
    for r in
        chain.iter().flat_map(|c| c.candidates.iter().map(ToString::to_string)).chain(referenced)
    {
        if let Ok(resolved) = config.resolve_ref(&r)
            && !ids.contains(&resolved.provider.id)
        {
            ids.push(resolved.provider.id.clone());
        }
    }
    if ids.is_empty() && config.providers.contains_key("lmstudio") {
        ids.push("lmstudio".to_owned());
    }
    // Under a local-only policy no hosted provider is contacted, not even to say hello.
    let local_only = config.local_only(agent.as_deref());
    if local_only {
        out.push_str(
            "  policy:    local only (modelPolicy.localOnly): hosted models are never contacted\n",
        );
    }
    let providers: Vec<_> = ids
        .iter()
        .filter_map(|id| config.providers.get(id))
        .filter(|p| !local_only || p.is_local() || p.local_service.is_some())
        .collect();
    // A hosted provider whose key is not set is not contacted: its line says what is missing,
    // not "unreachable" (the same key state as `hearth doctor` and `/ready`).
    let keys: Vec<Option<String>> = providers
        .iter()
        .map(|p| {
            let state = p.key_state(&ProcessEnv);
            let fix = match &state {
                hearth_config::KeyState::MissingEnv(_) => {
                    format!("export it, or set models.providers.{}.apiKey", p.id)
                }
                _ => format!("fix models.providers.{}.apiKey", p.id),
            };
            state
                .problem()
                .filter(|_| !p.is_local())
                .map(|problem| format!("{problem}; not contacted ({fix})"))
        })
        .collect();
    let checks = futures::future::join_all(
        providers
            .iter()
            .zip(&keys)
            .filter(|(_, k)| k.is_none())
            .map(|(p, _)| reachable(&p.base_url)),
    )
    .await;
    let mut checks = checks.into_iter();
    for (provider, key_problem) in providers.iter().zip(keys) {
        if let Some(problem) = key_problem {
            out.push_str(&format!("  provider:  {}: {problem}\n", provider.id));
            continue;
        }
        let up = checks.next().unwrap_or(false);
        let state = if up {
            "reachable".to_owned()
        } else if provider.is_local() {
            format!(
                "NOT reachable: {}",
                hearth_server::relay::start_hint(&provider.id, provider.base_url.as_str())
                    .split(": ")
                    .nth(1)
                    .unwrap_or("start it")
            )
        } else {
            "NOT reachable (network?)".to_owned()
        };
        out.push_str(&format!("  provider:  {} {} {state}\n", provider.id, provider.base_url));
    }
    out
}
