//! The `hearth` command line. The only crate that writes to the terminal.

mod agent_cli;
mod channels_cli;
mod doctor;
mod gateway;
mod infer;
mod init;
mod progress;
mod render;
mod state_lock;
mod status;
mod telemetry;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use hearth_config::{Config, ConfigSource, Loaded, ProcessEnv};

/// mimalloc: the request path allocates small short-lived buffers on one worker, where glibc's
/// malloc spent ~15 % of the gateway's CPU (~11 % more instructions per request). Built without
/// transparent huge pages (`no_thp`): with THP on, its arenas cost ~12 MB more idle RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid configuration (sysexits EX_CONFIG; systemd units use
/// `RestartPreventExitStatus=78`).
const EXIT_CONFIG: u8 = 78;
/// Exit code when a lookup (a model ref, a config path) finds nothing.
const EXIT_NOT_FOUND: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "A local-first gateway for personal AI agents",
    long_about = "hearth routes your agents to the models on your own hardware first (LM Studio, \
llama.cpp, vLLM, SGLang, Ollama, MLX), with hosted models as a safety net. It reads \
OpenClaw's JSON5 config.",
    after_help = "Config file: --config PATH, else $HEARTH_CONFIG, else ~/.hearth/hearth.json5; \
with none, built-in defaults apply.\n\nExit codes: 0 ok, 1 not found or failed, 2 usage error, 78 invalid config.\n\
With --json, data and errors go to stdout as JSON; an error is {\"ok\": false, \"error\": {\"code\", \"message\", \"help\"}}.\n\n\
Examples:\n  hearth config validate --config ~/.openclaw/openclaw.json\n  hearth models list\n  \
hearth models resolve Minimax"
)]
struct Cli {
    /// Config file to use (overrides HEARTH_CONFIG and ~/.hearth/hearth.json5).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Which log lines to write to stderr: a level (`error`, `warn`, `info`, `debug`,
    /// `trace`, `off`) or a filter (`warn,hearth_server=debug`). Wins over RUST_LOG. Default:
    /// info for `gateway run`, warn otherwise.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// How log lines look: `pretty` (one line per event) or `json` (one object per line; the
    /// gateway's startup block then goes to stdout).
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value = "pretty")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, read and describe the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List the model catalog and resolve model references.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Run one agent turn (session history, budget, compaction, tool policy).
    #[command(
        after_help = "Exit codes: 0 answered, 1 the turn failed, 2 usage error, 78 invalid config.\n\n\
Examples:\n  hearth agent --message 'hi'\n  hearth agent --message 'and then?' --session project-x --show-reasoning\n  \
hearth agent --message hi --gateway http://127.0.0.1:18789 --json"
    )]
    Agent(agent_cli::AgentArgs),
    /// List, show, compact and reset sessions.
    #[command(
        subcommand,
        after_help = "Exit codes: 0 ok, 1 no such session or the compaction failed, 2 usage error, 78 invalid config."
    )]
    Sessions(agent_cli::SessionsCommand),
    /// Call a model directly.
    #[command(subcommand)]
    Infer(InferCommand),
    /// Run the HTTP gateway.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Check the config, the state directory and each provider of the default chain (key,
    /// reachable, model listed, context window), with what to do about each problem.
    #[command(
        after_help = "Sends no request to a model; probes only the default chain's providers.\n\n\
Exit codes: 0 no problem found (warnings allowed), 1 a check failed, 2 usage error.\n\n\
Examples:\n  hearth doctor\n  hearth doctor --config ~/.openclaw/openclaw.json\n  \
hearth doctor --json | jq '.checks[] | select(.status == \"error\")'"
    )]
    Doctor(doctor::DoctorArgs),
    /// Approve who may talk to the agent on a chat channel (pairing codes).
    #[command(
        subcommand,
        after_help = "An unknown sender on a channel with dmPolicy \"pairing\" (the default) gets a one-time code; \
approving it lets them in (docs/channels.md).\n\n\
Examples:\n  hearth pairing list webhook\n  hearth pairing approve webhook K7QM2XWD"
    )]
    Pairing(channels_cli::PairingCommand),
    /// The chat channels of the running gateway.
    #[command(subcommand)]
    Channels(channels_cli::ChannelsCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  hearth completions bash > ~/.local/share/bash-completion/completions/hearth\n  \
hearth completions zsh > \"${fpath[1]}/_hearth\"\n  hearth completions fish > ~/.config/fish/completions/hearth.fish"
    )]
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Serve the OpenAI- and Anthropic-compatible API until SIGTERM/SIGINT.
    #[command(
        after_help = "Exit codes: 0 stopped cleanly, 1 cannot listen, 2 usage error, 78 invalid config or unsafe bind.\n\n\
Examples:\n  hearth gateway run\n  hearth gateway run --port 8080\n  HEARTH_GATEWAY_TOKEN=secret hearth gateway run --bind lan"
    )]
    Run(gateway::RunArgs),
}

#[derive(Debug, Subcommand)]
enum InferCommand {
    /// Model calls.
    #[command(subcommand)]
    Model(InferModelCommand),
}

#[derive(Debug, Subcommand)]
enum InferModelCommand {
    /// One call to one model: no tools, no session, no fallback.
    #[command(
        after_help = "Exit codes: 0 text received, 1 the model failed or returned no text, 2 usage error, 78 invalid config.\n\n\
Examples:\n  hearth infer model run --model Minimax --prompt 'Say hi'\n  \
hearth infer model run --model lmstudio/minimax-m2.1-gs32 --prompt hi --stream --no-reasoning\n  \
hearth infer model run --model ollama/llama3.3 --prompt hi --json | jq .usage"
    )]
    Run(infer::RunArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Report every problem in the config at once; exit 78 if any is an error.
    #[command(
        after_help = "Examples:\n  hearth config validate\n  hearth config validate --config openclaw.json --json"
    )]
    Validate(JsonFlag),
    /// Print the value at a path as JSON, as written in the file (secrets shown as ***).
    #[command(
        after_help = "Exit codes: 0 printed, 1 not set, no config file or invalid path, 78 invalid config.\n\n\
Examples:\n  hearth config get models.providers.lmstudio.baseUrl\n  \
hearth config get 'agents.defaults.models[\"lmstudio/minimax-m2.1-gs32\"].alias'\n  \
hearth config get agents.defaults.model.fallbacks[0] --json"
    )]
    Get {
        /// Dotted path; `[N]` indexes arrays, `["key"]` quotes keys with dots or slashes.
        path: String,
        /// Errors as JSON on stdout too (the value is JSON either way).
        #[arg(long)]
        json: bool,
    },
    /// Write a commented starter config with a provider for each local model server found on
    /// its default port (LM Studio 1234, Ollama 11434, llama.cpp/MLX 8080, vLLM 8000, SGLang
    /// 30000), listing the models each one serves.
    #[command(
        after_help = "Never overwrites a file without --force. The file is checked with hearth's own loader before it is written.\n\n\
Exit codes: 0 written, 1 the file exists (use --force) or cannot be written, 2 usage error.\n\n\
Examples:\n  hearth config init\n  hearth config init --path ./hearth.json5 --force\n  \
hearth config init --probe 127.0.0.1:8081 --probe 192.168.1.20:11434"
    )]
    Init(init::InitArgs),
    /// Print the JSON Schema of the config file format.
    #[command(after_help = "Example:\n  hearth config schema > hearth.schema.json")]
    Schema,
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Show the model catalog: configured models, built-in models, and referenced models.
    #[command(
        after_help = "Examples:\n  hearth models list\n  hearth models list --all --provider anthropic\n  \
hearth models list --json | jq '.[].ref'"
    )]
    List(ListArgs),
    /// Resolve a model ref or alias, and show the candidate chain a turn would try.
    #[command(after_help = "Without REF, the configured default chain is shown.\n\nExamples:\n  \
hearth models resolve\n  hearth models resolve Minimax\n  hearth models resolve ollama/llama3.3 --strict\n  \
hearth models resolve --agent coder --json")]
    Resolve(ResolveArgs),
    /// Ask each provider what it really serves: reachable, model listed and loaded, served vs
    /// configured context window, API; `--probe` also sends a one-token request.
    #[command(
        after_help = "Shows the default chain's providers and those the config defines (--all: every provider).\n\n\
Exit codes: 0 the default chain can answer, 1 it cannot, 78 invalid config.\n\n\
Examples:\n  hearth models status\n  hearth models status --probe\n  hearth models status --json | jq '.providers[].reachable'"
    )]
    Status(status::StatusArgs),
}

#[derive(Debug, Args)]
struct JsonFlag {
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Show every built-in row, not just the configured and referenced ones.
    #[arg(long)]
    all: bool,
    /// Only rows of this provider id.
    #[arg(long, value_name = "ID")]
    provider: Option<String>,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ResolveArgs {
    /// A model ref (`provider/model`), an alias, or a model id; default: the configured default.
    #[arg(value_name = "REF")]
    model: Option<String>,
    /// Use this agent's model settings.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// Treat REF as an explicit user selection: no fallback.
    #[arg(long)]
    strict: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = wants_json(&cli.command);
    let default_level = match cli.command {
        Command::Gateway(_) => "info",
        _ => "warn",
    };
    if let Err(e) = telemetry::init_logs(cli.log_level.as_deref(), cli.log_format, default_level) {
        let _ = writeln!(std::io::stderr(), "error: {e:#}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // `hearth models list | head` closes the pipe early: that is success.
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            if json {
                let _ = render::print_error_json("error", &format!("{err:#}"), None);
            }
            let _ = writeln!(std::io::stderr(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the command was asked for JSON (its errors are JSON too).
/// `--thinking LEVEL`: one of the thinking levels (aliases included).
fn parse_thinking(text: &str) -> Result<hearth_config::ThinkingLevel, String> {
    hearth_config::ThinkingLevel::parse(text).ok_or_else(|| {
        format!(
            "unknown thinking level `{text}` ({})",
            hearth_config::ThinkingLevel::NAMES.join(", ")
        )
    })
}

fn wants_json(command: &Command) -> bool {
    use agent_cli::SessionsCommand as S;
    match command {
        Command::Config(ConfigCommand::Validate(JsonFlag { json }))
        | Command::Config(ConfigCommand::Get { json, .. })
        | Command::Config(ConfigCommand::Init(init::InitArgs { json, .. }))
        | Command::Models(ModelsCommand::List(ListArgs { json, .. }))
        | Command::Models(ModelsCommand::Resolve(ResolveArgs { json, .. }))
        | Command::Models(ModelsCommand::Status(status::StatusArgs { json, .. }))
        | Command::Agent(agent_cli::AgentArgs { json, .. })
        | Command::Sessions(
            S::List { json, .. }
            | S::Show { json, .. }
            | S::Compact { json, .. }
            | S::Reset { json, .. },
        )
        | Command::Infer(InferCommand::Model(InferModelCommand::Run(infer::RunArgs {
            json,
            ..
        })))
        | Command::Doctor(doctor::DoctorArgs { json, .. })
        | Command::Pairing(
            channels_cli::PairingCommand::List { json, .. }
            | channels_cli::PairingCommand::Approve { json, .. },
        )
        | Command::Channels(channels_cli::ChannelsCommand::Status { json }) => *json,
        Command::Config(ConfigCommand::Schema)
        | Command::Gateway(_)
        | Command::Completions { .. } => false,
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completions { shell } = cli.command {
        let mut out = std::io::stdout().lock();
        clap_complete::generate(shell, &mut Cli::command(), "hearth", &mut out);
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let json = wants_json(&cli.command);
    let env = ProcessEnv;
    let source = hearth_config::locate(cli.config.as_deref(), &env);
    let loaded = hearth_config::load(&source, &env);
    let log_format = cli.log_format;
    match cli.command {
        Command::Config(ConfigCommand::Validate(flags)) => validate(&source, &loaded, flags.json),
        Command::Config(ConfigCommand::Get { path, json }) => {
            config_get(&source, &loaded, &path, json)
        }
        Command::Config(ConfigCommand::Init(args)) => init::run(&source, &args, &env),
        Command::Config(ConfigCommand::Schema) => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string_pretty(&hearth_config::schema())?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Infer(InferCommand::Model(InferModelCommand::Run(args))) => {
            if args.prompt.trim().is_empty() {
                if json {
                    render::print_error_json("usage", "--prompt is blank; nothing to send", None)?;
                }
                writeln!(std::io::stderr().lock(), "error: --prompt is blank; nothing to send")?;
                return Ok(ExitCode::from(2));
            }
            let Some(config) = usable(&source, &loaded, json, log_format)? else {
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let code = runtime.block_on(infer::run(config, &args, &env))?;
            Ok(ExitCode::from(code))
        }
        Command::Doctor(args) => doctor::run(&source, &loaded, &args, &env),
        // Answered before the config is read.
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
        Command::Gateway(GatewayCommand::Run(args)) => {
            let Some(config) = usable(&source, &loaded, json, log_format)? else {
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            Ok(ExitCode::from(gateway::run(config, &source, &args, log_format)?))
        }
        Command::Agent(args) => {
            let Some(config) = usable(&source, &loaded, json, log_format)? else {
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let code =
                runtime.block_on(agent_cli::agent(std::sync::Arc::new(config.clone()), &args))?;
            Ok(ExitCode::from(code))
        }
        Command::Pairing(cmd) => {
            let Some(config) = usable(&source, &loaded, json, log_format)? else {
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            channels_cli::pairing(config, &cmd)
        }
        Command::Channels(cmd) => channels_cli::channels(&cmd),
        Command::Sessions(cmd) => {
            let Some(config) = usable(&source, &loaded, json, log_format)? else {
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let code =
                runtime.block_on(agent_cli::sessions(std::sync::Arc::new(config.clone()), &cmd))?;
            Ok(ExitCode::from(code))
        }
        Command::Models(cmd) => {
            let Some(config) = usable(&source, &loaded, json, log_format)? else {
                return Ok(ExitCode::from(EXIT_CONFIG));
            };
            match cmd {
                ModelsCommand::List(args) => models_list(config, &args),
                ModelsCommand::Resolve(args) => models_resolve(config, &args),
                ModelsCommand::Status(args) => status::run(config, &args, &env),
            }
        }
    }
}

/// The config, or the rendered errors. Warnings are summarized in one line.
fn usable<'l>(
    source: &ConfigSource,
    loaded: &'l Loaded,
    json: bool,
    log_format: telemetry::LogFormat,
) -> anyhow::Result<Option<&'l Config>> {
    let mut err = std::io::stderr().lock();
    if loaded.has_errors() {
        if json {
            invalid_config_json(source, loaded)?;
        }
        render::diagnostics(&mut err, &loaded.diagnostics)?;
        writeln!(
            err,
            "hearth: the config at {} is invalid (run `hearth config validate`)",
            source.describe()
        )?;
        return Ok(None);
    }
    let warnings = loaded.diagnostics.len();
    if warnings > 0 && log_format == telemetry::LogFormat::Json {
        // stderr carries JSON lines only.
        tracing::warn!(warnings, "Config warnings; `hearth config validate` shows them.");
    } else if warnings > 0 {
        writeln!(err, "note: {warnings} config warning(s); `hearth config validate` shows them")?;
    }
    Ok(loaded.config.as_ref())
}

/// The `invalid_config` error, with the diagnostics, on stdout.
fn invalid_config_json(source: &ConfigSource, loaded: &Loaded) -> anyhow::Result<()> {
    let mut value = render::error_json(
        "invalid_config",
        &format!("the config at {} is invalid", source.describe()),
        Some("run `hearth config validate`"),
    );
    value["error"]["diagnostics"] =
        loaded.diagnostics.iter().map(render::diagnostic_json).collect();
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

fn validate(source: &ConfigSource, loaded: &Loaded, json: bool) -> anyhow::Result<ExitCode> {
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = loaded.diagnostics.len() - errors;
    if json {
        let value = serde_json::json!({
            "ok": errors == 0,
            "config": source.path().map(|p| p.display().to_string()),
            "errors": errors,
            "warnings": warnings,
            "diagnostics": loaded.diagnostics.iter().map(render::diagnostic_json).collect::<Vec<_>>(),
        });
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        let mut err = std::io::stderr().lock();
        render::diagnostics(&mut err, &loaded.diagnostics)?;
        let verdict = if errors == 0 { "valid" } else { "invalid" };
        writeln!(
            err,
            "{}: {verdict} ({errors} error(s), {warnings} warning(s))",
            source.describe()
        )?;
    }
    Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CONFIG) })
}

fn config_get(
    source: &ConfigSource,
    loaded: &Loaded,
    path: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(tree) = &loaded.tree else {
        let mut err = std::io::stderr().lock();
        if loaded.has_errors() {
            if json {
                invalid_config_json(source, loaded)?;
            }
            render::diagnostics(&mut err, &loaded.diagnostics)?;
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        let message = format!("no config file ({}); nothing is set", source.describe());
        if json {
            render::print_error_json("no_config_file", &message, None)?;
        }
        writeln!(err, "{message}")?;
        return Ok(ExitCode::from(EXIT_NOT_FOUND));
    };
    let segments = match render::parse_path(path) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("invalid path `{path}`: {e}");
            if json {
                render::print_error_json("invalid_path", &message, None)?;
            }
            writeln!(std::io::stderr().lock(), "error: {message}")?;
            return Ok(ExitCode::FAILURE);
        }
    };
    match render::lookup(tree, &segments) {
        Some(node) => {
            let value = render::redact(node.to_json(), segments.last().and_then(|s| s.key()));
            writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let message = format!("`{path}` is not set in {}", source.describe());
            if json {
                render::print_error_json("not_set", &message, None)?;
            }
            writeln!(std::io::stderr().lock(), "{message}")?;
            Ok(ExitCode::from(EXIT_NOT_FOUND))
        }
    }
}

fn models_list(config: &Config, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let view = render::list_view(config, args.all, args.provider.as_deref());
    if let Some(p) = &args.provider
        && view.rows.is_empty()
        && !config.providers.contains_key(&p.to_ascii_lowercase())
    {
        let message = format!("unknown provider `{p}`");
        if args.json {
            render::print_error_json(
                "provider_not_found",
                &message,
                Some("`hearth models list --all` shows every provider"),
            )?;
        }
        writeln!(std::io::stderr().lock(), "{message}")?;
        return Ok(ExitCode::from(EXIT_NOT_FOUND));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&render::rows_json(config, &view.rows))?)?;
    } else {
        writeln!(out, "{}", render::rows_table(config, &view.rows))?;
        let mut err = std::io::stderr().lock();
        for note in &view.notes {
            writeln!(err, "{note}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn models_resolve(config: &Config, args: &ResolveArgs) -> anyhow::Result<ExitCode> {
    let chain = config.candidate_chain(args.agent.as_deref(), args.model.as_deref(), args.strict);
    let resolved = args.model.as_deref().map(|m| config.resolve_ref(m));
    let error = match (&resolved, &chain) {
        (Some(Err(e)), _) | (_, Err(e)) => Some(e.clone()),
        _ => None,
    };
    if let Some(e) = error {
        if args.json {
            render::print_error_json(
                render::ref_error_code(&e),
                &e.to_string(),
                e.help().as_deref(),
            )?;
        } else {
            let mut err = std::io::stderr().lock();
            writeln!(err, "error: {e}")?;
            if let Some(help) = e.help() {
                writeln!(err, "  = help: {help}")?;
            }
        }
        return Ok(ExitCode::from(EXIT_NOT_FOUND));
    }
    let chain = chain?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&render::resolve_json(
                config,
                args.agent.as_deref(),
                args.model.as_deref(),
                &chain
            ))?
        )?;
    } else {
        write!(
            out,
            "{}",
            render::resolve_text(config, args.agent.as_deref(), args.model.as_deref(), &chain)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand, argument and flag says what it is in `--help`. See: #14.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "hearth", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
