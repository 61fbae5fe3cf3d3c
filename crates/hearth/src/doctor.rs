//! `hearth doctor [--json]`: is this installation ready to answer? Checks the config (loads,
//! diagnostics), the state directory (exists or can be created, not world-writable) and each
//! provider of the default chain (key present, server reachable, model listed, context window),
//! and says for every problem what to do about it.
//!
//! Providers are read through `models status`'s [`status::collect`] (and so through
//! `hearth_upstream::probe`): doctor is a verdict on the same data, not a second prober.
//! It sends no request to a model, and it probes only the default chain's providers.
//!
//! Exit 0 when no check failed (warnings allowed), 1 when one did.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hearth_config::{Config, ConfigSource, Env, KeyState, Loaded, Provider};
use hearth_upstream::ErrorClass;
use hearth_upstream::local_service::LocalServices;
use hearth_upstream::probe::ServerKind;
use serde_json::json;

use crate::status::{self, ModelStatus, ProviderStatus, Role};

/// Default limit of each metadata request.
const DEFAULT_TIMEOUT_MS: u64 = 2_000;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Limit of each request to a provider, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout: u64,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Worth knowing; does not fail the run.
    Warn,
    /// Something is wrong: the exit code is 1.
    Error,
    /// Not checked (an earlier check failed).
    Skipped,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Error => "error",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked: `config`, `state`, `chain`, a provider id or a model ref.
    pub subject: String,
    /// Which check: `config`, `stateDir`, `chain`, `key`, `reachable`, `model`, `window`, `api`.
    pub kind: &'static str,
    pub verdict: Verdict,
    pub message: String,
    /// What to do about it (problems and warnings).
    pub fix: Option<String>,
}

impl Check {
    fn new(
        subject: impl Into<String>,
        kind: &'static str,
        verdict: Verdict,
        message: String,
    ) -> Self {
        Check { subject: subject.into(), kind, verdict, message, fix: None }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The CLI entry point.
pub fn run(
    source: &ConfigSource,
    loaded: &Loaded,
    args: &DoctorArgs,
    env: &(dyn Env + Sync),
) -> anyhow::Result<ExitCode> {
    let mut checks = vec![config_check(source, loaded)];
    checks.push(state_check(crate::state_lock::state_dir().as_deref()));
    match &loaded.config {
        Some(config) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let services = LocalServices::new();
            let options = status::Options {
                all: false,
                probe: false,
                probe_timeout: Duration::from_millis(args.timeout.max(1)),
                chain_only: true,
                read_timeout: Duration::from_millis(args.timeout.max(1)),
            };
            let report = runtime.block_on(status::collect(config, env, &[], &services, options));
            runtime.block_on(async { drop(services) });
            checks.extend(chain_checks(config, &report, env, source.path().is_some()));
        }
        None => checks.push(
            Check::new(
                "providers",
                "chain",
                Verdict::Skipped,
                "not checked: the config does not load".to_owned(),
            )
            .fix("fix the config first (`hearth config validate`)"),
        ),
    }
    let problems = checks.iter().filter(|c| c.verdict == Verdict::Error).count();
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "ok": problems == 0,
            "config": source.path().map(|p| p.display().to_string()),
            "problems": problems,
            "warnings": checks.iter().filter(|c| c.verdict == Verdict::Warn).count(),
            "checks": checks.iter().map(|c| json!({
                "subject": c.subject,
                "check": c.kind,
                "status": c.verdict.as_str(),
                "message": c.message,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        write!(out, "{}", text(&checks))?;
    }
    Ok(if problems == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The report as printed: one line per check, one `fix:` line under each problem.
fn text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.verdict {
            Verdict::Ok => "ok   ",
            Verdict::Warn => "warn ",
            Verdict::Error => "FAIL ",
            Verdict::Skipped => "-    ",
        };
        out.push_str(&format!("{mark} {}: {}\n", c.subject, c.message));
        if let Some(fix) = &c.fix
            && c.verdict != Verdict::Ok
        {
            out.push_str(&format!("      fix: {fix}\n"));
        }
    }
    let problems = checks.iter().filter(|c| c.verdict == Verdict::Error).count();
    out.push('\n');
    match problems {
        0 => out.push_str("ok: no problems found\n"),
        1 => out.push_str("1 problem found\n"),
        n => out.push_str(&format!("{n} problems found\n")),
    }
    out
}

fn config_check(source: &ConfigSource, loaded: &Loaded) -> Check {
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = loaded.diagnostics.len() - errors;
    let described = source.describe();
    if errors > 0 {
        let first = loaded.diagnostics.iter().find(|d| d.is_error()).map(ToString::to_string);
        return Check::new(
            "config",
            "config",
            Verdict::Error,
            format!(
                "{described} has {errors} error(s){}",
                first
                    .map(|f| format!(", first: {}", f.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            ),
        )
        .fix("run `hearth config validate` to see every problem with file:line:col");
    }
    if warnings > 0 {
        return Check::new(
            "config",
            "config",
            Verdict::Warn,
            format!("{described} loads with {warnings} warning(s)"),
        )
        .fix("run `hearth config validate` to see them");
    }
    match source.path() {
        Some(_) => Check::new("config", "config", Verdict::Ok, format!("{described} loads")),
        None => Check::new("config", "config", Verdict::Ok, format!("no file: {described}")),
    }
}

#[cfg(unix)]
fn world_writable(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    (mode & 0o002 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn world_writable(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

/// Whether a file can be created in `dir` (created and removed again).
fn can_write_in(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".hearth-doctor-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    std::fs::remove_file(&probe)
}

fn state_check(dir: Option<&Path>) -> Check {
    let subject = "state directory";
    let Some(dir) = dir else {
        return Check::new(
            subject,
            "stateDir",
            Verdict::Error,
            "none: HEARTH_STATE_DIR and HOME are both unset".to_owned(),
        )
        .fix("set HEARTH_STATE_DIR to a folder only you can write");
    };
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            Check::new(subject, "stateDir", Verdict::Error, format!("{shown} is not a directory"))
                .fix("remove it, or set HEARTH_STATE_DIR to another folder")
        }
        Ok(meta) => {
            if let Some(mode) = world_writable(&meta) {
                return Check::new(
                    subject,
                    "stateDir",
                    Verdict::Error,
                    format!("{shown} is world-writable (mode {mode:o}): anyone can alter sessions"),
                )
                .fix(format!("chmod 700 {shown}"));
            }
            match can_write_in(dir) {
                Ok(()) => {
                    Check::new(subject, "stateDir", Verdict::Ok, format!("{shown} is writable"))
                }
                Err(e) => Check::new(
                    subject,
                    "stateDir",
                    Verdict::Error,
                    format!("{shown} is not writable: {e}"),
                )
                .fix("fix its owner and permissions, or set HEARTH_STATE_DIR to a writable folder"),
            }
        }
        Err(_) => {
            // Created on first use: the nearest existing ancestor must take it.
            let ancestor: Option<PathBuf> =
                dir.ancestors().skip(1).find(|a| a.is_dir()).map(Path::to_path_buf);
            match ancestor {
                Some(a) if can_write_in(&a).is_ok() => Check::new(
                    subject,
                    "stateDir",
                    Verdict::Ok,
                    format!("{shown} does not exist yet; it is created on first use"),
                ),
                Some(a) => Check::new(
                    subject,
                    "stateDir",
                    Verdict::Error,
                    format!("{shown} does not exist and {} is not writable", a.display()),
                )
                .fix("set HEARTH_STATE_DIR to a writable folder"),
                None => Check::new(
                    subject,
                    "stateDir",
                    Verdict::Error,
                    format!("{shown} cannot be created"),
                )
                .fix("set HEARTH_STATE_DIR to a writable folder"),
            }
        }
    }
}

/// The name of the server at a provider's address, and the command that starts it.
fn server_and_start(p: &Provider, kind: ServerKind) -> (String, String) {
    let port = p.base_url.port_or_known_default().unwrap_or(0);
    let on_port =
        |default: u16| if port == default { String::new() } else { format!(" --port {port}") };
    let elsewhere = format!("; if it listens elsewhere, fix models.providers.{}.baseUrl", p.id);
    let (name, start) = if p.id.contains("mlx") {
        ("mlx_lm.server".to_owned(), format!("`mlx_lm.server --model <model> --port {port}`"))
    } else {
        match kind {
            ServerKind::LmStudio => (
                "LM Studio".to_owned(),
                format!(
                    "start LM Studio's server: `lms server start{}` (or Developer → Start Server in the app)",
                    on_port(1234)
                ),
            ),
            ServerKind::Ollama => (
                "Ollama".to_owned(),
                if port == 11434 {
                    "start it: `ollama serve` (or open the Ollama app)".to_owned()
                } else {
                    format!("start it: `OLLAMA_HOST=127.0.0.1:{port} ollama serve`")
                },
            ),
            ServerKind::LlamaCpp => (
                "llama.cpp's llama-server".to_owned(),
                format!("start it: `llama-server -m <model.gguf> --port {port}`"),
            ),
            ServerKind::Vllm => (
                "vLLM".to_owned(),
                format!(
                    "start it: `vllm serve <model> --port {port}` (the port opens once the weights are loaded)"
                ),
            ),
            ServerKind::Sglang => (
                "SGLang".to_owned(),
                format!(
                    "start it: `python -m sglang.launch_server --model-path <model> --port {port}`"
                ),
            ),
            ServerKind::Anthropic | ServerKind::Generic => {
                (format!("the server of `{}`", p.id), "start it".to_owned())
            }
        }
    };
    (name, format!("{start}{elsewhere}"))
}

fn host_port(p: &Provider) -> String {
    let host = p.base_url.host_str().unwrap_or("?");
    match p.base_url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The key check, on [`Provider::key_state`] (the gateway's startup lines and `/ready` read
/// the same state).
fn key_check(p: &Provider, env: &dyn Env) -> Check {
    let id = p.id.as_str();
    match p.key_state(env) {
        KeyState::NotNeeded => {
            Check::new(id, "key", Verdict::Ok, "no key needed (local server)".to_owned())
        }
        KeyState::NoneConfigured => {
            Check::new(id, "key", Verdict::Warn, "no apiKey configured".to_owned())
                .fix(format!("set models.providers.{id}.apiKey if the server needs one"))
        }
        KeyState::Present(how) => Check::new(id, "key", Verdict::Ok, format!("key: {how}")),
        KeyState::Empty => Check::new(id, "key", Verdict::Error, "the apiKey is empty".to_owned())
            .fix(format!("set models.providers.{id}.apiKey")),
        KeyState::MissingEnv(name) => {
            Check::new(id, "key", Verdict::Error, format!("{name} is not set"))
                .fix(format!(
                    "export {name}=<your key> in the environment hearth runs in (systemd: its EnvironmentFile), or set models.providers.{id}.apiKey"
                ))
        }
        KeyState::Unreadable(message) => Check::new(id, "key", Verdict::Error, message)
            .fix(format!("fix the key file of models.providers.{id}.apiKey")),
    }
}

fn reach_check(p: &Provider, status: &ProviderStatus, key_missing: bool) -> Check {
    let id = p.id.as_str();
    let probe = &status.probe;
    let at = host_port(p);
    match (&probe.error, probe.reachable) {
        _ if status.key_problem.is_some() => Check::new(
            id,
            "reachable",
            Verdict::Skipped,
            "not contacted: its key is missing (see above)".to_owned(),
        ),
        (_, false) if status.local_service => Check::new(
            id,
            "reachable",
            Verdict::Ok,
            format!("not running at {at}; hearth starts it on demand (localService)"),
        ),
        (Some(e), false) if e.message.contains("network guard") => {
            Check::new(id, "reachable", Verdict::Error, e.message.clone()).fix(format!(
                "set models.providers.{id}.allowPrivateNetwork: true if this address is yours"
            ))
        }
        (e, false) if p.is_local() => {
            let (name, start) = server_and_start(p, probe.kind);
            let why = match e {
                Some(e) if e.class != ErrorClass::Connect => format!(" ({})", e.message),
                _ => String::new(),
            };
            Check::new(
                id,
                "reachable",
                Verdict::Error,
                format!("{name} is not running at {at}{why}"),
            )
            .fix(start)
        }
        (e, false) => Check::new(
            id,
            "reachable",
            Verdict::Error,
            format!(
                "{} is not reachable{}",
                p.base_url.as_str().trim_end_matches('/'),
                e.as_ref()
                    .map(|e| format!(": {}", without_prefix(&e.message, p)))
                    .unwrap_or_default()
            ),
        )
        .fix(format!("check the network (and HTTPS_PROXY), or models.providers.{id}.baseUrl")),
        (Some(e), true) if e.class == ErrorClass::Auth || e.class == ErrorClass::Billing => {
            if key_missing {
                Check::new(
                    id,
                    "reachable",
                    Verdict::Skipped,
                    format!("{at} answered; it wants a key (see above)"),
                )
            } else {
                Check::new(
                    id,
                    "reachable",
                    Verdict::Error,
                    format!("{at} refused the key: {}", e.message),
                )
                .fix(format!("check the key of models.providers.{id}.apiKey"))
            }
        }
        (Some(e), true) if e.class == ErrorClass::Loading => {
            Check::new(id, "reachable", Verdict::Warn, format!("{at} is up and loading a model"))
                .fix("wait for the load to finish")
        }
        (Some(e), true) => Check::new(
            id,
            "reachable",
            Verdict::Warn,
            format!("{at} answered, but its model list could not be read: {}", e.message),
        ),
        (None, true) => Check::new(
            id,
            "reachable",
            Verdict::Ok,
            format!(
                "{} at {at} answered in {} ms",
                probe.kind.as_str(),
                probe.latency.map_or(0, |l| l.as_millis())
            ),
        ),
    }
}

/// Transport messages start with the provider id and its URL; the check names both already.
fn without_prefix<'m>(message: &'m str, p: &Provider) -> &'m str {
    let url = p.base_url.as_str().trim_end_matches('/');
    message
        .strip_prefix(p.id.as_str())
        .map(str::trim_start)
        .map(|m| m.strip_prefix(url).unwrap_or(m))
        .map(|m| m.trim_start_matches([':', ' ']))
        .unwrap_or(message)
}

fn pull_hint(kind: ServerKind, model: &str) -> String {
    match kind {
        ServerKind::LmStudio => {
            format!("download and load it (`lms get {model}`, `lms load {model}`), or ")
        }
        ServerKind::Ollama => format!("pull it (`ollama pull {model}`), or "),
        _ => "serve it, or ".to_owned(),
    }
}

fn model_checks(config: &Config, status: &ProviderStatus, m: &ModelStatus) -> Vec<Check> {
    let subject = m.model_ref.to_string();
    let probe = &status.probe;
    let mut out = Vec::new();
    match m.listed {
        Some(true) => out.push(Check::new(
            &subject,
            "model",
            Verdict::Ok,
            format!(
                "listed by the server{}",
                m.state
                    .filter(|s| *s != hearth_upstream::probe::ModelState::Unknown)
                    .map(|s| format!(" ({})", s.as_str()))
                    .unwrap_or_default()
            ),
        )),
        Some(false) if probe.any_model_id => out.push(Check::new(
            &subject,
            "model",
            Verdict::Warn,
            format!(
                "not listed; this llama.cpp server answers any model id with `{}`",
                probe.served.first().map_or("its model", |s| s.id.as_str())
            ),
        )),
        Some(false) => out.push(
            Check::new(
                &subject,
                "model",
                Verdict::Error,
                format!(
                    "the server does not list `{}` (it lists: {})",
                    m.model_ref.model,
                    probe
                        .served
                        .iter()
                        .take(5)
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .fix(format!(
                "{}change the model id in the config (`hearth models status` shows what is served)",
                pull_hint(probe.kind, &m.model_ref.model)
            )),
        ),
        None if probe.reachable => out.push(Check::new(
            &subject,
            "model",
            Verdict::Skipped,
            "the server lists no models to check against".to_owned(),
        )),
        None if status.key_problem.is_some() => out.push(Check::new(
            &subject,
            "model",
            Verdict::Skipped,
            "not checked: the provider was not contacted".to_owned(),
        )),
        None => out.push(Check::new(
            &subject,
            "model",
            Verdict::Skipped,
            "not checked: the server is not reachable".to_owned(),
        )),
    }
    if let Some(problem) = &m.api_problem {
        out.push(Check::new(&subject, "api", Verdict::Error, problem.clone()));
    }
    let default_window = config
        .resolve_ref(&subject)
        .map(|r| r.model.context_budget())
        .unwrap_or(hearth_config::resolve::DEFAULT_CONTEXT_WINDOW);
    let window = match (&m.context_warning, m.configured_context, m.served_context) {
        (Some(w), _, _) => Check::new(
            &subject,
            "window",
            Verdict::Error,
            format!("the server serves {} tokens, the config says {}", w.served, w.configured),
        )
        .fix(format!(
            "lower contextWindow to {} or raise the server's context size",
            w.served
        )),
        (None, Some(configured), Some(served)) => Check::new(
            &subject,
            "window",
            Verdict::Ok,
            format!("context window {configured} (the server serves {served})"),
        ),
        (None, Some(configured), None) => Check::new(
            &subject,
            "window",
            Verdict::Ok,
            if probe.reachable {
                format!("context window {configured} (configured; the server does not say)")
            } else {
                format!("context window {configured} (configured)")
            },
        ),
        (None, None, Some(served)) => Check::new(
            &subject,
            "window",
            Verdict::Ok,
            format!("context window {served} (served)"),
        ),
        (None, None, None) => Check::new(
            &subject,
            "window",
            Verdict::Warn,
            format!("context window unknown; hearth assumes {default_window}"),
        )
        .fix(format!(
            "set contextWindow on models.providers.{}.models[id={}] (or check the model id for a typo)",
            m.model_ref.provider, m.model_ref.model
        )),
    };
    out.push(window);
    out
}

fn chain_checks(
    config: &Config,
    report: &status::Report,
    env: &dyn Env,
    has_file: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    let fix = if has_file {
        "set agents.defaults.model.primary (`hearth models list` shows the refs)"
    } else {
        "run `hearth config init` to write a config for the servers running here, or set \
         agents.defaults.model.primary in ~/.hearth/hearth.json5"
    };
    if let Some(e) = &report.chain_error {
        out.push(
            Check::new("default chain", "chain", Verdict::Error, format!("none: {e}")).fix(fix),
        );
        return out;
    }
    if report.chain.is_empty() {
        out.push(
            Check::new("default chain", "chain", Verdict::Error, "no default model".to_owned())
                .fix(fix),
        );
        return out;
    }
    out.push(Check::new(
        "default chain",
        "chain",
        Verdict::Ok,
        report.chain.iter().map(ToString::to_string).collect::<Vec<_>>().join(" → "),
    ));
    for status in &report.providers {
        let Some(p) = config.providers.get(&status.id) else { continue };
        let key = key_check(p, env);
        let key_missing = key.verdict == Verdict::Error;
        out.push(key);
        out.push(reach_check(p, status, key_missing));
        for m in
            status.models.iter().filter(|m| matches!(m.role, Role::Primary | Role::Fallback(_)))
        {
            out.extend(model_checks(config, status, m));
        }
    }
    out
}
