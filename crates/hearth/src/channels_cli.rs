//! `hearth pairing list|approve` (on the state directory's pairing files, gateway running or
//! not) and `hearth channels status` (asks the running gateway). See docs/channels.md.

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use hearth_channels::pairing::{ApproveError, PairingStore};
use hearth_config::{ChannelKind, Config};

#[derive(Debug, Subcommand)]
pub enum PairingCommand {
    /// List the pending pairing requests of a channel account (codes that are still valid).
    #[command(
        after_help = "Examples:\n  hearth pairing list webhook\n  hearth pairing list telegram --account work --json"
    )]
    List {
        /// `matrix`, `telegram` or `webhook`.
        channel: String,
        /// The account (default: `default`).
        #[arg(long, value_name = "ID", default_value = "default")]
        account: String,
        /// Print JSON (errors too, in the `{"ok": false, "error"}` envelope).
        #[arg(long)]
        json: bool,
    },
    /// Approve a pairing code: its sender may talk to the agent from now on.
    #[command(
        after_help = "Works on the state directory, whether the gateway runs or not; a running gateway sees the approval at the sender's next message.\n\n\
Exit codes: 0 approved, 1 unknown or expired code, 2 usage error.\n\n\
Examples:\n  hearth pairing approve webhook K7QM2XWD\n  hearth pairing approve telegram K7QM2XWD --account work --json"
    )]
    Approve {
        /// `matrix`, `telegram` or `webhook`.
        channel: String,
        /// The code the sender received (case does not matter).
        code: String,
        /// The account (default: `default`).
        #[arg(long, value_name = "ID", default_value = "default")]
        account: String,
        /// Print JSON (errors too, in the `{"ok": false, "error"}` envelope).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Each channel account of the running gateway: connected, last inbound and outbound,
    /// counters, the last error.
    #[command(
        after_help = "Exit codes: 0 the gateway answered, 1 no gateway runs on this state directory.\n\n\
Examples:\n  hearth channels status\n  hearth channels status --json | jq '.channels[] | select(.connected | not)'"
    )]
    Status {
        /// Print JSON (errors too, in the `{"ok": false, "error"}` envelope).
        #[arg(long)]
        json: bool,
    },
}

fn usage(json: bool, message: &str, help: &str) -> anyhow::Result<ExitCode> {
    if json {
        crate::render::print_error_json("usage", message, Some(help))?;
    } else {
        writeln!(std::io::stderr().lock(), "error: {message}\n  = help: {help}")?;
    }
    Ok(ExitCode::from(2))
}

fn store_for(
    config: &Config,
    channel: &str,
    account: &str,
    json: bool,
) -> anyhow::Result<Result<PairingStore, ExitCode>> {
    let Some(kind) = ChannelKind::parse(channel) else {
        return Ok(Err(usage(
            json,
            &format!("unknown channel `{channel}`"),
            "use matrix, telegram or webhook",
        )?));
    };
    let Some(state_dir) = crate::state_lock::state_dir() else {
        return Ok(Err(usage(json, "no state directory", "set HEARTH_STATE_DIR (or HOME)")?));
    };
    if config.channels.get(kind, account).is_none() && !json {
        writeln!(
            std::io::stderr().lock(),
            "note: channels.{channel} has no account `{account}` in the config; using its pairing files anyway"
        )?;
    }
    Ok(Ok(PairingStore::new(&state_dir, kind.as_str(), account)))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn pairing(config: &Config, command: &PairingCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        PairingCommand::List { channel, account, json } => {
            let store = match store_for(config, channel, account, *json)? {
                Ok(store) => store,
                Err(code) => return Ok(code),
            };
            let pending = store.pending(SystemTime::now())?;
            if *json {
                let value = serde_json::json!({"channel": channel, "account": account, "requests": pending});
                writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            } else if pending.is_empty() {
                writeln!(out, "No pending pairing requests for {channel} ({account}).")?;
            } else {
                let now = unix_now();
                writeln!(out, "Pending pairing requests for {channel} ({account}):")?;
                for r in &pending {
                    let minutes = r.expires_at().saturating_sub(now).div_ceil(60);
                    let name = r.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
                    writeln!(out, "  {}  {}{name}  expires in {minutes} min", r.code, r.id)?;
                }
                let flag = if account == "default" {
                    String::new()
                } else {
                    format!(" --account {account}")
                };
                writeln!(out, "Approve one with: hearth pairing approve {channel} <CODE>{flag}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PairingCommand::Approve { channel, code, account, json } => {
            let store = match store_for(config, channel, account, *json)? {
                Ok(store) => store,
                Err(code) => return Ok(code),
            };
            match store.approve(code, SystemTime::now()) {
                Ok(done) => {
                    if *json {
                        let value = serde_json::json!({"ok": true, "channel": channel, "account": account, "id": done.id});
                        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
                    } else {
                        writeln!(
                            out,
                            "Approved {} on {channel} ({account}): they can talk to the agent now.",
                            done.id
                        )?;
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ ApproveError::Unknown(_)) => {
                    let help =
                        format!("`hearth pairing list {channel}` shows the codes still valid");
                    if *json {
                        crate::render::print_error_json(
                            "unknown_code",
                            &e.to_string(),
                            Some(&help),
                        )?;
                    } else {
                        writeln!(std::io::stderr().lock(), "error: {e}\n  = help: {help}")?;
                    }
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

pub fn channels(command: &ChannelsCommand) -> anyhow::Result<ExitCode> {
    let ChannelsCommand::Status { json } = command;
    let running = crate::state_lock::state_dir().and_then(|d| crate::state_lock::running(&d));
    let Some(info) = running else {
        let message = "no gateway runs on this state directory";
        let help = "start one with `hearth gateway run` (or set HEARTH_STATE_DIR to its folder)";
        if *json {
            crate::render::print_error_json("no_gateway", message, Some(help))?;
        } else {
            writeln!(std::io::stderr().lock(), "error: {message}\n  = help: {help}")?;
        }
        return Ok(ExitCode::FAILURE);
    };
    let url = format!("http://{}", std::net::SocketAddr::new(info.host, info.port));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = match runtime.block_on(crate::status::gateway_get(
        &url,
        "/hearth/channels",
        Some(&info.local_key),
    )) {
        Ok(body) => body,
        Err(why) => {
            if *json {
                crate::render::print_error_json("no_gateway", &why, None)?;
            } else {
                writeln!(
                    std::io::stderr().lock(),
                    "error: the gateway at {url} did not answer: {why}"
                )?;
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let value: serde_json::Value = serde_json::from_str(&body)?;
    let mut out = std::io::stdout().lock();
    if *json {
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = value["channels"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        writeln!(out, "No channel is configured (docs/channels.md).")?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = unix_now();
    let ago = |v: &serde_json::Value| match v.as_u64() {
        Some(t) => format!("{}s ago", now.saturating_sub(t)),
        None => "never".to_owned(),
    };
    for row in rows {
        let state = if row["enabled"] == false {
            "disabled"
        } else if row["gaveUp"] == true {
            "STOPPED"
        } else if row["connected"] == true {
            "connected"
        } else {
            "not connected"
        };
        writeln!(
            out,
            "{}/{}  {state}  dmPolicy {}  in {} (last {})  out {} (last {})  send failures {}  restarts {}",
            row["channel"].as_str().unwrap_or("?"),
            row["account"].as_str().unwrap_or("?"),
            row["dmPolicy"].as_str().unwrap_or("?"),
            row["inboundTotal"],
            ago(&row["lastInbound"]),
            row["outboundTotal"],
            ago(&row["lastOutbound"]),
            row["sendFailuresTotal"],
            row["restarts"],
        )?;
        if let Some(error) = row["lastError"].as_str() {
            writeln!(out, "  last error: {error}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
