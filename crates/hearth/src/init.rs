//! `hearth config init`: writes a commented JSON5 starter config with a provider for each
//! local model server found on its default port, and the models it lists.
//!
//! Servers are read through `hearth_upstream::probe` (the same reads as `models status`),
//! concurrently and with a short limit. The text is loaded with hearth's own loader before it
//! is written: `config init` never writes a file that `config validate` would refuse. An
//! existing file is never overwritten without `--force`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hearth_config::{ConfigSource, Env};
use hearth_upstream::probe::{
    self, ModelState, ProbeOptions, ProviderProbe, ServedModel, ServerKind,
};
use serde_json::json;

/// Default limit of each probe request.
const DEFAULT_TIMEOUT_MS: u64 = 800;
/// Models written per provider, at most.
const MAX_MODELS: usize = 50;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write (default: --config, else $HEARTH_CONFIG, else ~/.hearth/hearth.json5).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// Probe this address instead of the default ports (repeatable), e.g. 127.0.0.1:8081.
    #[arg(long, value_name = "HOST:PORT")]
    pub probe: Vec<String>,
    /// Limit of each probe request, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout: u64,
    /// Print what was found and written as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One address to probe.
#[derive(Debug, Clone)]
struct Target {
    /// Provider id to write (`None`: named after the server that answers).
    id: Option<&'static str>,
    /// What listens there by default.
    name: &'static str,
    host: String,
    port: u16,
    /// Ollama's native API (no `/v1` in the base URL).
    ollama: bool,
}

/// The local servers' default ports (`docs/configuration.md`, "config init").
const DEFAULT_TARGETS: &[(&str, &str, u16)] = &[
    ("lmstudio", "LM Studio", 1234),
    ("ollama", "Ollama", 11434),
    ("llamacpp", "llama.cpp llama-server (or mlx_lm.server)", 8080),
    ("vllm", "vLLM", 8000),
    ("sglang", "SGLang", 30000),
];

/// A server that answered.
#[derive(Debug, Clone)]
struct Found {
    id: String,
    name: String,
    base_url: String,
    api: &'static str,
    models: Vec<ServedModel>,
    /// A problem worth a comment (the server wants a key, it is loading, ...).
    note: Option<String>,
}

impl Target {
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn base_url(&self) -> String {
        if self.ollama {
            format!("http://{}", self.address())
        } else {
            format!("http://{}/v1", self.address())
        }
    }
}

/// Parses `HOST:PORT` (`[::1]:PORT` for IPv6).
fn parse_target(text: &str) -> Result<Target, String> {
    let (host, port) =
        text.trim().rsplit_once(':').ok_or_else(|| format!("`{text}` is not HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| format!("`{text}`: `{port}` is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{text}` has no host"));
    }
    Ok(Target { id: None, name: "(--probe)", host: host.to_owned(), port, ollama: port == 11434 })
}

/// The file to write.
fn target_path(args: &InitArgs, source: &ConfigSource) -> Option<PathBuf> {
    if let Some(p) = &args.path {
        return Some(p.clone());
    }
    match source {
        ConfigSource::Flag(p)
        | ConfigSource::EnvVar(p)
        | ConfigSource::DefaultPath(p)
        | ConfigSource::Builtin(Some(p)) => Some(p.clone()),
        ConfigSource::Builtin(None) => None,
    }
}

/// The CLI entry point.
pub fn run(
    source: &ConfigSource,
    args: &InitArgs,
    env: &(dyn Env + Sync),
) -> anyhow::Result<ExitCode> {
    let mut err = std::io::stderr().lock();
    let Some(path) = target_path(args, source) else {
        writeln!(err, "error: no config path: HOME is unset; pass --path PATH")?;
        return Ok(ExitCode::from(2));
    };
    if path.exists() && !args.force {
        writeln!(
            err,
            "error: {} exists; pass --force to overwrite it (or --path to write elsewhere)",
            path.display()
        )?;
        return Ok(ExitCode::FAILURE);
    }
    let targets: Vec<Target> = if args.probe.is_empty() {
        DEFAULT_TARGETS
            .iter()
            .map(|(id, name, port)| Target {
                id: Some(id),
                name,
                host: "127.0.0.1".to_owned(),
                port: *port,
                ollama: *id == "ollama",
            })
            .collect()
    } else {
        match args.probe.iter().map(|t| parse_target(t)).collect::<Result<Vec<_>, _>>() {
            Ok(t) => t,
            Err(e) => {
                writeln!(err, "error: --probe {e}")?;
                return Ok(ExitCode::from(2));
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let timeout = Duration::from_millis(args.timeout.max(1));
    let results = runtime.block_on(probe_all(&targets, env, timeout))?;
    let mut found: Vec<Found> = Vec::new();
    let mut missing: Vec<&Target> = Vec::new();
    for (target, probe) in targets.iter().zip(results) {
        match found_server(target, &probe, &found) {
            Some(f) => found.push(f),
            None => missing.push(target),
        }
    }
    let text = starter(&found, &missing);
    // Refuse to write what hearth itself would not load.
    let loaded = hearth_config::load_str(&path.display().to_string(), &text, env);
    if loaded.has_errors() {
        crate::render::diagnostics(&mut err, &loaded.diagnostics)?;
        anyhow::bail!("the starter config does not load (a bug in `hearth config init`)");
    }
    write_file(&path, &text)?;
    if args.json {
        let value = json!({
            "ok": true,
            "path": path.display().to_string(),
            "found": found.iter().map(|f| json!({
                "provider": f.id,
                "server": f.name,
                "baseUrl": f.base_url,
                "models": f.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
                "note": f.note,
            })).collect::<Vec<_>>(),
            "notFound": missing.iter().map(|t| t.address()).collect::<Vec<_>>(),
        });
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        for f in &found {
            writeln!(
                err,
                "found {} at {} ({} model(s)){}",
                f.name,
                f.base_url,
                f.models.len(),
                f.note.as_ref().map(|n| format!(": {n}")).unwrap_or_default()
            )?;
        }
        if found.is_empty() {
            writeln!(
                err,
                "no local model server answered on {}; the file has examples to fill in",
                missing.iter().map(|t| t.address()).collect::<Vec<_>>().join(", ")
            )?;
        }
        writeln!(err, "wrote {}", path.display())?;
        writeln!(
            err,
            "next: hearth config validate --config {0}; hearth doctor --config {0}",
            path.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Probes every target at once; each gets a provider the prober understands.
async fn probe_all(
    targets: &[Target],
    env: &(dyn Env + Sync),
    timeout: Duration,
) -> anyhow::Result<Vec<ProviderProbe>> {
    // One provider per target, built by hearth's own loader (ids `t0`, `t1`, ... except the
    // defaults, whose ids give the prober its server kind).
    let mut providers = Vec::new();
    for (idx, t) in targets.iter().enumerate() {
        let id = t.id.map_or_else(|| format!("t{idx}"), str::to_owned);
        let api = if t.ollama { "ollama" } else { "openai-completions" };
        let text = format!(
            r#"{{ models: {{ mode: "replace", providers: {{ {}: {{ baseUrl: {}, api: "{api}" }} }} }} }}"#,
            serde_json::to_string(&id)?,
            serde_json::to_string(&t.base_url())?,
        );
        let loaded = hearth_config::load_str("probe", &text, env);
        let provider = loaded
            .config
            .and_then(|c| c.providers.get(&id).cloned())
            .ok_or_else(|| anyhow::anyhow!("cannot probe {}: not a valid address", t.address()))?;
        providers.push(provider);
    }
    let options = ProbeOptions { timeout, check_responses: Some(false) };
    Ok(futures::future::join_all(providers.iter().map(|p| probe::probe_with(p, env, &options)))
        .await)
}

fn kind_id(kind: ServerKind) -> Option<&'static str> {
    match kind {
        ServerKind::LmStudio => Some("lmstudio"),
        ServerKind::Ollama => Some("ollama"),
        ServerKind::LlamaCpp => Some("llamacpp"),
        ServerKind::Vllm => Some("vllm"),
        ServerKind::Sglang => Some("sglang"),
        ServerKind::Anthropic | ServerKind::Generic => None,
    }
}

fn kind_name(kind: ServerKind) -> Option<&'static str> {
    match kind {
        ServerKind::LmStudio => Some("LM Studio"),
        ServerKind::Ollama => Some("Ollama"),
        ServerKind::LlamaCpp => Some("llama.cpp llama-server"),
        ServerKind::Vllm => Some("vLLM"),
        ServerKind::Sglang => Some("SGLang"),
        ServerKind::Anthropic | ServerKind::Generic => None,
    }
}

/// What to write for a target that answered; `None` when nothing did.
fn found_server(target: &Target, probe: &ProviderProbe, found: &[Found]) -> Option<Found> {
    if !probe.reachable {
        return None;
    }
    // Port 8080 is llama-server's and mlx_lm.server's: name it after what answered.
    let base_id = match (target.id, kind_id(probe.kind)) {
        (Some("llamacpp"), Some(k)) => k,
        (Some("llamacpp"), None) => "mlx",
        (Some(id), _) => id,
        (None, Some(k)) => k,
        (None, None) => "local",
    };
    let mut id = base_id.to_owned();
    if found.iter().any(|f| f.id == id) {
        id = format!("{base_id}-{}", target.port);
    }
    let name = match (target.id, kind_name(probe.kind)) {
        (Some("llamacpp"), None) => "mlx_lm.server (or another server on 8080)".to_owned(),
        (_, Some(k)) => k.to_owned(),
        (Some(_), None) => target.name.to_owned(),
        (None, None) => "an OpenAI-compatible server".to_owned(),
    };
    let note = probe.error.as_ref().map(|e| match e.class {
        hearth_upstream::ErrorClass::Auth => {
            "it wants an API key: set apiKey (the models could not be listed)".to_owned()
        }
        hearth_upstream::ErrorClass::Loading => "it is loading a model".to_owned(),
        _ => format!("its model list could not be read: {}", e.message),
    });
    let mut models = probe.served.clone();
    // Loaded models first: the first one becomes the default.
    models.sort_by_key(|m| m.state != ModelState::Loaded);
    models.truncate(MAX_MODELS);
    Some(Found {
        id,
        name,
        base_url: target.base_url(),
        api: if target.ollama { "ollama" } else { "openai-completions" },
        models,
        note,
    })
}

/// An object key: bare when it is an identifier, quoted otherwise.
fn key(text: &str) -> String {
    let bare = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if bare { text.to_owned() } else { quoted(text) }
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The starter file's text.
fn starter(found: &[Found], missing: &[&Target]) -> String {
    let mut out = String::new();
    out.push_str(
        "// hearth config, written by `hearth config init`. JSON5: comments and trailing commas are fine.\n\
         // The format is OpenClaw's (an existing openclaw.json loads unchanged); every key and\n\
         // environment variable: docs/configuration.md. Check it: `hearth config validate`, `hearth doctor`.\n{\n",
    );
    let default = found.iter().find_map(|f| f.models.first().map(|m| (f, m)));
    out.push_str("  agents: {\n    defaults: {\n");
    match default {
        Some((f, m)) => {
            out.push_str(
                "      // The model every turn tries first, then the fallbacks in order.\n",
            );
            out.push_str("      model: {\n");
            out.push_str(&format!("        primary: {},\n", quoted(&format!("{}/{}", f.id, m.id))));
        }
        None => {
            out.push_str(
                "      // No local server listed a model: name one as \"provider/model\", start that server.\n",
            );
            out.push_str("      model: {\n");
            out.push_str("        // primary: \"lmstudio/qwen3-8b\",\n");
        }
    }
    out.push_str(
        "        // A hosted safety net (reads ANTHROPIC_API_KEY from the environment):\n\
         \x20       // fallbacks: [\"anthropic/claude-sonnet-4-5\"],\n      },\n    },\n  },\n",
    );
    out.push_str("  models: {\n");
    out.push_str(
        "    // \"merge\": the built-in catalog (Anthropic, OpenAI, OpenRouter, ...) stays beside these.\n",
    );
    out.push_str("    mode: \"merge\",\n    providers: {\n");
    for f in found {
        let mut name = f.name.clone();
        if let Some(first) = name.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        out.push_str(&format!("      // {name}, found at {}.", f.base_url));
        if let Some(note) = &f.note {
            out.push_str(&format!(" Note: {note}."));
        }
        out.push('\n');
        out.push_str(&format!("      {}: {{\n", key(&f.id)));
        out.push_str(&format!("        baseUrl: {},\n", quoted(&f.base_url)));
        out.push_str(&format!("        api: \"{}\",\n", f.api));
        if f.models.is_empty() {
            out.push_str("        // The server listed no models: add { id: \"...\" } rows, or name them as\n");
            out.push_str(&format!("        // \"{}/<model id>\" (the server decides).\n", f.id));
            out.push_str("        models: [],\n");
        } else {
            out.push_str("        models: [\n");
            for m in &f.models {
                out.push_str(&format!("          {{ id: {}", quoted(&m.id)));
                if let Some(window) = m.context_window {
                    out.push_str(&format!(", contextWindow: {window}"));
                }
                out.push_str(" },");
                let mut notes = Vec::new();
                if m.state != ModelState::Unknown {
                    notes.push(m.state.as_str().to_owned());
                }
                if m.context_window.is_none()
                    && let Some(max) = m.max_context_window
                {
                    notes.push(format!("up to {max} tokens when loaded"));
                }
                if !notes.is_empty() {
                    out.push_str(&format!("  // {}", notes.join(", ")));
                }
                out.push('\n');
            }
            out.push_str("        ],\n");
        }
        out.push_str("      },\n");
    }
    if !missing.is_empty() {
        out.push_str("      // Nothing answered at:\n");
        for t in missing {
            out.push_str(&format!("      //   {:<18} {}\n", t.address(), t.name));
        }
        out.push_str(
            "      // Start one and run `hearth config init --force`, or add it by hand, e.g.\n",
        );
        out.push_str("      // ollama: { baseUrl: \"http://127.0.0.1:11434\", api: \"ollama\", models: [{ id: \"llama3.3\" }] },\n");
    }
    out.push_str("    },\n  },\n");
    out.push_str(
        "  // The gateway: `hearth gateway run` serves 127.0.0.1:18789. Beyond loopback it needs auth:\n\
         \x20 // gateway: { bind: \"lan\", auth: { mode: \"token\", token: \"${HEARTH_GATEWAY_TOKEN}\" } },\n}\n",
    );
    out
}

/// Writes `text` to `path` (owner-only on Unix: the file may come to hold keys).
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = parse_target("127.0.0.1:8081").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.ollama), ("127.0.0.1", 8081, false));
        assert_eq!(t.base_url(), "http://127.0.0.1:8081/v1");
        let t = parse_target("[::1]:11434").unwrap();
        assert_eq!(t.base_url(), "http://[::1]:11434");
        assert!(parse_target("localhost").is_err());
        assert!(parse_target(":80").is_err());
        assert!(parse_target("h:99999").is_err());
    }

    #[test]
    fn nothing_found_still_loads() {
        let missing: Vec<Target> = DEFAULT_TARGETS
            .iter()
            .map(|(_, _, p)| parse_target(&format!("127.0.0.1:{p}")).unwrap())
            .collect();
        let refs: Vec<&Target> = missing.iter().collect();
        let text = starter(&[], &refs);
        let env = std::collections::BTreeMap::<String, String>::new();
        let loaded = hearth_config::load_str("init.json5", &text, &env);
        assert!(loaded.diagnostics.is_empty(), "{:?}\n{text}", loaded.diagnostics);
    }
}
