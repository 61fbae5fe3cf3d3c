//! `hearth agent` (one agent turn from the terminal) and `hearth sessions` (the session store).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use comfy_table::{Table, presets};
use futures::StreamExt;
use hearth_agent::{Agents, TurnError, TurnRequest, session_key_for};
use hearth_config::{Config, Env, ProcessEnv};
use hearth_store::{Content, SessionStore, SqliteStore};
use hearth_upstream::{Event, Router};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The message to send.
    #[arg(long, short, value_name = "TEXT")]
    pub message: String,
    /// The agent (default: the one marked `default`, else the first, else `main`).
    #[arg(long, value_name = "ID")]
    pub agent: Option<String>,
    /// Session key (default `agent:<id>:main`); a bare key is scoped to the agent.
    #[arg(long, value_name = "KEY")]
    pub session: Option<String>,
    /// An explicit model for this turn (strict: no fallback).
    #[arg(long, value_name = "REF")]
    pub model: Option<String>,
    /// Thinking level of this turn: off, minimal, low, medium, high, xhigh, max or adaptive
    /// (default: the model's `params.thinking`, else the agent's `thinkingDefault`).
    #[arg(long, value_name = "LEVEL", value_parser = crate::parse_thinking)]
    pub thinking: Option<hearth_config::ThinkingLevel>,
    /// Also print the model's reasoning (dimmed, on stderr).
    #[arg(long)]
    pub show_reasoning: bool,
    /// Send the turn to a running gateway instead of running it in this process.
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    /// Print one JSON object on stdout: ok, agent, session, model, text, notices, usage,
    /// attempts, error (the same fields with --gateway, plus `gateway`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SessionsCommand {
    /// List sessions (key, agent, entries, tokens, cost, last activity).
    #[command(
        after_help = "Examples:\n  hearth sessions list\n  hearth sessions list --agent coder --json"
    )]
    List {
        /// Only this agent's sessions.
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// Print machine-readable JSON on stdout (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Show a session's transcript (since its last compaction, or all with --all).
    #[command(
        after_help = "Examples:\n  hearth sessions show agent:main:main\n  hearth sessions show chat-1 --all --json"
    )]
    Show {
        /// Session key: `agent:<id>:<name>`, or a bare name scoped to the agent (`main`).
        key: String,
        /// The agent the session belongs to (default: the default agent); a bare KEY is
        /// scoped to it.
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// The whole transcript, compacted parts included.
        #[arg(long)]
        all: bool,
        /// Print machine-readable JSON on stdout (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Summarize a session's older turns now.
    #[command(after_help = "Example:\n  hearth sessions compact agent:main:main")]
    Compact {
        /// Session key: `agent:<id>:<name>`, or a bare name scoped to the agent (`main`).
        key: String,
        /// The agent the session belongs to (default: the default agent); a bare KEY is
        /// scoped to it.
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// Print machine-readable JSON on stdout (errors too).
        #[arg(long)]
        json: bool,
    },
    /// Start a session over under the same key (the old transcript is kept, archived).
    #[command(after_help = "Example:\n  hearth sessions reset agent:main:main")]
    Reset {
        /// Session key: `agent:<id>:<name>`, or a bare name scoped to the agent (`main`).
        key: String,
        /// The agent the session belongs to (default: the default agent); a bare KEY is
        /// scoped to it.
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// Print machine-readable JSON on stdout (errors too).
        #[arg(long)]
        json: bool,
    },
}

async fn open_store() -> anyhow::Result<Arc<SqliteStore>> {
    let store = SqliteStore::open_default(None).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot open the session store: {e} (set HEARTH_STATE_DIR to a writable folder)"
        )
    })?;
    Ok(Arc::new(store))
}

fn agents(store: Arc<SqliteStore>) -> Agents {
    let env: Arc<dyn Env + Send + Sync> = Arc::new(ProcessEnv);
    Agents {
        store,
        router: Arc::new(Router::new()),
        env: Arc::clone(&env),
        probes: Some(Arc::new(hearth_upstream::probe::Probes::new(env))),
    }
}

/// One turn. Exit code: 0 an answer arrived, 1 the turn failed or nothing was said.
pub async fn agent(config: Arc<Config>, args: &AgentArgs) -> anyhow::Result<u8> {
    if args.message.trim().is_empty() {
        if args.json {
            crate::render::print_error_json("usage", "--message is blank; nothing to send", None)?;
        }
        writeln!(std::io::stderr().lock(), "error: --message is blank; nothing to send")?;
        return Ok(2);
    }
    if let Some(url) = &args.gateway {
        return agent_via_gateway(&config, url, args).await;
    }
    let store = open_store().await?;
    let agents = agents(store);
    let request = TurnRequest {
        agent: args.agent.clone(),
        session_key: args.session.clone(),
        prompt: Some(hearth_upstream::Prompt {
            messages: vec![hearth_upstream::Message::user(args.message.clone())],
            stream: !args.json,
            thinking: args.thinking.map(hearth_upstream::prompt::Thinking::level),
            ..hearth_upstream::Prompt::default()
        }),
        model: args.model.clone(),
        timeout: Some(hearth_agent::turn::CLI_TIMEOUT),
        ..TurnRequest::default()
    };
    // The server's prompt progress, while the answer has not begun (crate::progress).
    let bar = Arc::new(crate::progress::Bar::default());
    let request = if !args.json && crate::progress::enabled() {
        let bar = Arc::clone(&bar);
        let sink = move |_: &hearth_config::ModelRef, progress: &hearth_upstream::Progress| {
            bar.draw(progress);
        };
        TurnRequest { on_progress: Some(hearth_agent::ProgressSink(Arc::new(sink))), ..request }
    } else {
        request
    };
    // Notices that come due while the turn still waits (overload retries) print at once.
    let shown: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let request = if args.json {
        request
    } else {
        let (shown, bar) = (Arc::clone(&shown), Arc::clone(&bar));
        let sink = move |notice: &str| {
            bar.clear();
            let _ = writeln!(std::io::stderr().lock(), "{notice}");
            if let Ok(mut shown) = shown.lock() {
                shown.push(notice.to_owned());
            }
        };
        TurnRequest { on_notice: Some(hearth_agent::NoticeSink(Arc::new(sink))), ..request }
    };
    let dim = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let started = agents.start(Arc::clone(&config), request).await;
    bar.clear();
    let turn = match started {
        Ok(turn) => turn,
        Err(e) => return report_error(&e, args.json),
    };
    if !args.json {
        let shown = shown.lock().map(|s| s.clone()).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        for notice in turn.notices.iter().filter(|n| !shown.contains(n)) {
            writeln!(err, "{notice}")?;
        }
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut usage = None;
    let mut error = None;
    let mut events = turn.events;
    while let Some(event) = events.next().await {
        match event {
            Event::TextDelta(t) => {
                if !args.json {
                    let mut out = std::io::stdout().lock();
                    out.write_all(t.as_bytes())?;
                    out.flush()?;
                }
                text.push_str(&t);
            }
            Event::ReasoningDelta(r) => {
                if args.show_reasoning && !args.json {
                    let mut err = std::io::stderr().lock();
                    if dim {
                        write!(err, "\x1b[2m{r}\x1b[0m")?;
                    } else {
                        err.write_all(r.as_bytes())?;
                    }
                }
                reasoning.push_str(&r);
            }
            Event::Usage(u) => usage = Some(u),
            Event::Error(e) => error = Some(e),
            Event::Finish(_)
            | Event::ToolCallDelta { .. }
            | Event::ReasoningSignature(_)
            | Event::Logprobs(_)
            | Event::Progress(_)
            | Event::Native(_) => {}
        }
    }
    let text = hearth_agent::containment::clean_reply(&text);
    let ok = error.is_none() && !text.is_empty();
    if args.json {
        let value = json!({
            "ok": ok,
            "agent": turn.agent,
            "session": turn.session_key,
            "model": turn.model_ref.to_string(),
            "text": text,
            "reasoning": if args.show_reasoning { Some(reasoning) } else { None },
            "notices": turn.notices,
            "compacted": turn.compacted,
            "usage": usage.map(|u| json!({"inputTokens": u.input_tokens, "outputTokens": u.output_tokens, "estimated": u.estimated})),
            "attempts": turn.attempts.iter().map(|a| json!({
                "ref": a.model_ref.to_string(),
                "outcome": a.outcome(),
                "errorClass": a.error.as_ref().map(|e| e.class.as_str()),
                "ms": a.elapsed.as_millis() as u64,
            })).collect::<Vec<_>>(),
            "error": error.as_ref().map(|e| json!({"code": e.class.as_str(), "class": e.class.as_str(), "message": e.message})),
        });
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(std::io::stdout().lock())?;
        if let Some(e) = &error {
            writeln!(std::io::stderr().lock(), "error: {} ({})", e.message, e.class.as_str())?;
        }
    }
    // The answer is persisted when its stream ends; give the relay its moment.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    Ok(if ok { 0 } else { 1 })
}

/// The [`crate::render::error_json`] code of a turn that did not start.
fn turn_error_code(e: &TurnError) -> &'static str {
    match e {
        TurnError::Config(_) => "invalid_config",
        TurnError::Model(e) => crate::render::ref_error_code(e),
        TurnError::Refused { .. } => "refused",
        TurnError::Store(_) => "store",
        TurnError::Upstream { failure } => failure.last.class.as_str(),
    }
}

fn report_error(e: &TurnError, json_out: bool) -> anyhow::Result<u8> {
    if json_out {
        crate::render::print_error_json(turn_error_code(e), &e.to_string(), None)?;
    } else {
        writeln!(std::io::stderr().lock(), "error: {e}")?;
    }
    Ok(1)
}

/// The same turn through a running gateway (`/v1/chat/completions`, agent target).
async fn agent_via_gateway(local: &Config, url: &str, args: &AgentArgs) -> anyhow::Result<u8> {
    let base = serde_json::Value::String(format!("{}/v1", url.trim_end_matches('/')));
    let target = serde_json::Value::String(match &args.agent {
        Some(id) => format!("hearth/{id}"),
        None => "hearth".to_owned(),
    });
    let session = args.session.clone().unwrap_or_else(|| "main".to_owned());
    // The gateway's credential: the same lookup as every command that talks to a gateway.
    let credential = crate::gateway::client_credential(local, &ProcessEnv);
    let mut headers = serde_json::Map::new();
    headers.insert("x-hearth-session-key".to_owned(), session.into());
    if let Some(model) = &args.model {
        headers.insert("x-hearth-model".to_owned(), model.clone().into());
    }
    let headers = serde_json::Value::Object(headers);
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{gateway: {{baseUrl: {base}, api: "openai-completions", headers: {headers}, models: [{{id: {target}, maxTokens: 8192}}]}}}}}}}}"#
    );
    let loaded = hearth_config::load_str("--gateway", &text, &ProcessEnv);
    let Some(config) = loaded.config else {
        anyhow::bail!("invalid --gateway URL `{url}`");
    };
    let provider = &config.providers["gateway"];
    let model = &provider.models[0];
    if args.json {
        return agent_via_gateway_json(local, url, provider, &model.id, credential.as_ref(), args)
            .await;
    }
    let mut prompt = hearth_upstream::Prompt::text(None, &args.message);
    prompt.stream = true;
    let client = hearth_upstream::Client::new(provider).map_err(|e| anyhow::anyhow!("{e}"))?;
    let target = hearth_upstream::Target { provider, model, params: None, served_max: None };
    let events =
        match client.send_with_key(&target, &prompt, &ProcessEnv, credential.as_ref()).await {
            Ok(events) => events,
            Err(e) => {
                if args.json {
                    crate::render::print_error_json(
                        e.class.as_str(),
                        &format!("the gateway at {url} failed: {}", e.message),
                        None,
                    )?;
                }
                writeln!(std::io::stderr().lock(), "error: the gateway at {url} failed: {e}")?;
                return Ok(1);
            }
        };
    let collected = hearth_agent::collect(events).await;
    writeln!(std::io::stdout().lock(), "{}", collected.text)?;
    if let Some(e) = &collected.error {
        writeln!(std::io::stderr().lock(), "error: {} ({})", e.message, e.class.as_str())?;
    }
    Ok(if collected.error.is_none() && !collected.text.is_empty() { 0 } else { 1 })
}

/// `agent --gateway --json`: one non-streaming request, so the envelope can carry what the
/// gateway says in its headers (who answered, attempts, notices) and body (usage): the same
/// shape as the local `agent --json`. The session and agent are the ones the gateway derives
/// from `x-hearth-session-key` with this config (the gateway's own when both read one file).
/// Through a gateway only the answering attempt is known; the attempts before it are counted
/// (`x-hearth-attempts`), with `null` fields.
async fn agent_via_gateway_json(
    config: &Config,
    url: &str,
    provider: &hearth_config::Provider,
    target: &str,
    credential: Option<&hearth_config::SecretString>,
    args: &AgentArgs,
) -> anyhow::Result<u8> {
    let mut body = json!({
        "model": target,
        "stream": false,
        "messages": [{"role": "user", "content": args.message}],
    });
    if let Some(level) = args.thinking {
        body["reasoning_effort"] = json!(level.as_str());
    }
    let reply = match hearth_upstream::remote::post_json(
        provider,
        "chat/completions",
        credential,
        &body,
        hearth_agent::turn::CLI_TIMEOUT,
    )
    .await
    {
        Ok(reply) => reply,
        Err(e) => {
            let message = format!("the gateway at {url} failed: {}", e.message);
            crate::render::print_error_json(e.class.as_str(), &message, None)?;
            writeln!(std::io::stderr().lock(), "error: {message}")?;
            return Ok(1);
        }
    };
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    if !(200..300).contains(&reply.status) {
        let error = &answer["error"];
        let code = error["code"].as_str().or(error["type"].as_str()).unwrap_or("gateway_error");
        let message = format!(
            "the gateway at {url} answered {}: {}",
            reply.status,
            error["message"].as_str().unwrap_or("no message")
        );
        crate::render::print_error_json(code, &message, None)?;
        writeln!(std::io::stderr().lock(), "error: {message}")?;
        return Ok(1);
    }
    let (agent, session) = session_key_for(
        config,
        args.agent.as_deref(),
        Some(args.session.as_deref().unwrap_or("main")),
    );
    let header = |name: &str| reply.header(name).map(str::to_owned);
    let model = match (header("x-hearth-provider"), header("x-hearth-model")) {
        (Some(p), Some(m)) => Some(format!("{p}/{m}")),
        _ => None,
    };
    let message = &answer["choices"][0]["message"];
    let text =
        hearth_agent::containment::clean_reply(message["content"].as_str().unwrap_or_default());
    let reasoning = message["reasoning_content"].as_str().or(message["reasoning"].as_str());
    let usage = &answer["usage"];
    let count = header("x-hearth-attempts").and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
    let mut attempts: Vec<serde_json::Value> = (1..count.max(1))
        .map(|_| json!({"ref": null, "outcome": null, "errorClass": null, "ms": null}))
        .collect();
    attempts.push(json!({"ref": model, "outcome": "ok", "errorClass": null, "ms": null}));
    let ok = !text.is_empty();
    let value = json!({
        "ok": ok,
        "agent": agent,
        "session": session,
        "model": model,
        "text": text,
        "reasoning": if args.show_reasoning { Some(reasoning.unwrap_or_default()) } else { None },
        "notices": reply.header_values("x-hearth-notice").map(percent_decode).collect::<Vec<_>>(),
        "compacted": null,
        "usage": usage.is_object().then(|| json!({
            "inputTokens": usage["prompt_tokens"],
            "outputTokens": usage["completion_tokens"],
            "estimated": null,
        })),
        "attempts": attempts,
        "error": if ok { None } else { Some(json!({"code": "empty_response", "class": "empty_response", "message": "the gateway's answer has no text"})) },
        "gateway": url,
    });
    writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(if ok { 0 } else { 1 })
}

/// An `x-hearth-notice` value back to its text (`%XX` is a UTF-8 byte).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn time(ts: hearth_store::Timestamp) -> String {
    let secs = ts.as_unix_millis() / 1000;
    let days = secs / 86_400;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}Z")
}

pub async fn sessions(config: Arc<Config>, command: &SessionsCommand) -> anyhow::Result<u8> {
    let store = open_store().await?;
    match command {
        SessionsCommand::List { agent, json } => {
            let list = store.list_sessions(agent.as_deref()).await?;
            if *json {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|s| {
                        json!({
                            "key": s.key, "agent": s.agent_id, "sessionId": s.session_id.to_string(),
                            "entries": s.entry_count, "compactions": s.compaction_count,
                            "inputTokens": s.totals.input_tokens, "outputTokens": s.totals.output_tokens,
                            "costUsd": s.totals.cost_usd, "updatedAt": s.updated_at.as_unix_millis(),
                        })
                    })
                    .collect();
                writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                let mut table = Table::new();
                table.load_preset(presets::UTF8_BORDERS_ONLY);
                table.set_header([
                    "KEY",
                    "AGENT",
                    "ENTRIES",
                    "COMPACTIONS",
                    "TOKENS IN/OUT",
                    "COST",
                    "UPDATED",
                ]);
                for s in &list {
                    table.add_row(vec![
                        s.key.clone(),
                        s.agent_id.clone(),
                        s.entry_count.to_string(),
                        s.compaction_count.to_string(),
                        format!("{}/{}", s.totals.input_tokens, s.totals.output_tokens),
                        format!("${:.4}", s.totals.cost_usd),
                        time(s.updated_at),
                    ]);
                }
                writeln!(std::io::stdout().lock(), "{table}")?;
                if list.is_empty() {
                    writeln!(
                        std::io::stderr().lock(),
                        "no sessions yet; `hearth agent --message hi` starts one"
                    )?;
                }
            }
            Ok(0)
        }
        SessionsCommand::Show { key, agent, all, json } => {
            let (_, key) = session_key_for(&config, agent.as_deref(), Some(key));
            if store.get_session(&key).await?.is_none() {
                return no_session(&key, *json);
            }
            let entries = store.history(&key, !*all).await?;
            if *json {
                let rows: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| {
                        let (kind, text) = describe(&e.content);
                        json!({"seq": e.seq.get(), "kind": kind, "text": text, "model": e.meta.model, "costUsd": e.meta.cost_usd, "at": e.created_at.as_unix_millis()})
                    })
                    .collect();
                writeln!(
                    std::io::stdout().lock(),
                    "{}",
                    serde_json::to_string_pretty(&json!({"key": key, "entries": rows}))?
                )?;
            } else {
                let mut out = std::io::stdout().lock();
                for e in &entries {
                    let (kind, text) = describe(&e.content);
                    let model =
                        e.meta.model.as_deref().map_or(String::new(), |m| format!(" ({m})"));
                    writeln!(
                        out,
                        "#{} {kind}{model} {}\n{text}\n",
                        e.seq.get(),
                        time(e.created_at)
                    )?;
                }
            }
            Ok(0)
        }
        SessionsCommand::Compact { key, agent, json } => {
            let (agent_id, key) = session_key_for(&config, agent.as_deref(), Some(key));
            let agents = agents(Arc::clone(&store));
            let agent_ref = config.agents.contains_key(&agent_id).then_some(agent_id.as_str());
            match agents.compact_now(&config, &key, agent_ref).await {
                Ok(n) => {
                    if *json {
                        writeln!(
                            std::io::stdout().lock(),
                            "{}",
                            json!({"ok": true, "key": key, "summarizedMessages": n})
                        )?;
                    } else if n == 0 {
                        writeln!(std::io::stderr().lock(), "{key}: nothing to compact")?;
                    } else {
                        writeln!(std::io::stderr().lock(), "{key}: {n} messages summarized")?;
                    }
                    Ok(0)
                }
                Err(e) => report_error(&e, *json),
            }
        }
        SessionsCommand::Reset { key, agent, json } => {
            let (_, key) = session_key_for(&config, agent.as_deref(), Some(key));
            if store.get_session(&key).await?.is_none() {
                return no_session(&key, *json);
            }
            let summary = store
                .reset(&key, hearth_store::SessionId::now_v7(), hearth_store::Timestamp::now())
                .await?;
            if *json {
                writeln!(
                    std::io::stdout().lock(),
                    "{}",
                    json!({"ok": true, "key": key, "sessionId": summary.session_id.to_string()})
                )?;
            } else {
                writeln!(
                    std::io::stderr().lock(),
                    "{key}: reset (new session {})",
                    summary.session_id
                )?;
            }
            Ok(0)
        }
    }
}

/// A session key that names nothing: exit 1.
fn no_session(key: &str, json: bool) -> anyhow::Result<u8> {
    let message = format!("no session `{key}`");
    if json {
        crate::render::print_error_json(
            "session_not_found",
            &message,
            Some("`hearth sessions list` shows the keys"),
        )?;
    }
    writeln!(std::io::stderr().lock(), "{message}")?;
    Ok(1)
}

fn describe(content: &Content) -> (&'static str, String) {
    match content {
        Content::User { text } => ("user", text.clone()),
        Content::Assistant { text } => ("assistant", text.clone()),
        Content::Reasoning { text } => ("reasoning", text.clone()),
        Content::ToolCall { id, name, arguments } => {
            ("tool_call", format!("{name} {arguments} [{id}]"))
        }
        Content::ToolResult { call_id, content, .. } => {
            ("tool_result", format!("[{call_id}] {content}"))
        }
        Content::Compaction { summary, replaces } => (
            "compaction",
            format!("(replaces #{}..#{}) {summary}", replaces.first.get(), replaces.last.get()),
        ),
        Content::SystemNote { text } => ("note", text.clone()),
    }
}
