//! `hearth infer model run`: one model call, no tools, no session.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use futures::StreamExt;
use hearth_config::{Config, Env, ModelRef};
use hearth_upstream::{Event, Prompt, Router, RunOptions, UpstreamError, Usage};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Model ref (`provider/model`) or alias; strict (no fallback). Default: the configured
    /// default chain, with its fallbacks.
    #[arg(long, value_name = "REF")]
    pub model: Option<String>,
    /// The user message.
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// A system message.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Output cap in tokens (never above the model's maxTokens).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u64>,
    /// Thinking level: off, minimal, low, medium, high, xhigh, max or adaptive (default: the
    /// model's `params.thinking`, else the server's own).
    #[arg(long, value_name = "LEVEL", value_parser = crate::parse_thinking)]
    pub thinking: Option<hearth_config::ThinkingLevel>,
    /// Print text as it arrives.
    #[arg(long)]
    pub stream: bool,
    /// Do not print reasoning.
    #[arg(long)]
    pub no_reasoning: bool,
    /// Print one JSON envelope on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What one attempt produced.
#[derive(Debug, Default)]
struct Collected {
    text: String,
    reasoning: String,
    usage: Option<Usage>,
    finish: Option<String>,
    error: Option<UpstreamError>,
}

/// Runs the call; returns the exit code (0 ok, 1 model failure or no text).
pub async fn run(config: &Config, args: &RunArgs, env: &(dyn Env + Sync)) -> anyhow::Result<u8> {
    let chain = match config.candidate_chain(None, args.model.as_deref(), args.model.is_some()) {
        Ok(c) => c,
        Err(e) => {
            if args.json {
                crate::render::print_error_json(
                    crate::render::ref_error_code(&e),
                    &e.to_string(),
                    e.help().as_deref(),
                )?;
            }
            let mut err = std::io::stderr().lock();
            writeln!(err, "error: {e}")?;
            if let Some(help) = e.help() {
                writeln!(err, "  = help: {help}")?;
            }
            return Ok(1);
        }
    };
    let mut prompt = Prompt::text(args.system.as_deref(), &args.prompt);
    prompt.stream = args.stream;
    prompt.max_tokens = args.max_tokens;
    prompt.thinking = args.thinking.map(hearth_upstream::prompt::Thinking::level);
    let params_for = |r: &ModelRef| config.params_for(None, r);

    let started = Instant::now();
    let mut collected = Collected::default();
    let live = args.stream && !args.json;
    let dim = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let router = Router::new();
    let mut answered_by: Option<ModelRef> = None;
    // The server's prompt progress, while the answer has not begun (crate::progress).
    let bar = crate::progress::Bar::default();
    let draw = |_: &ModelRef, progress: &hearth_upstream::Progress| bar.draw(progress);
    let options_with_bar = RunOptions {
        on_progress: (!args.json && crate::progress::enabled())
            .then_some(&draw as &(dyn Fn(&ModelRef, &hearth_upstream::Progress) + Sync)),
        ..RunOptions::default()
    };
    let attempts =
        match router.run(config, &chain, &prompt, &params_for, env, options_with_bar).await {
            Err(failure) => {
                bar.clear();
                collected.error = Some(failure.last.clone());
                failure.attempts
            }
            Ok(answer) => {
                bar.clear();
                answered_by = Some(answer.model_ref.clone());
                let mut events = answer.events;
                while let Some(event) = events.next().await {
                    match event {
                        Event::TextDelta(t) => {
                            if live {
                                let mut out = std::io::stdout().lock();
                                out.write_all(t.as_bytes())?;
                                out.flush()?;
                            }
                            collected.text.push_str(&t);
                        }
                        Event::ReasoningDelta(r) => {
                            if live && !args.no_reasoning {
                                let mut err = std::io::stderr().lock();
                                if dim {
                                    write!(err, "\x1b[2m{r}\x1b[0m")?;
                                } else {
                                    err.write_all(r.as_bytes())?;
                                }
                                err.flush()?;
                            }
                            collected.reasoning.push_str(&r);
                        }
                        Event::Usage(u) => collected.usage = Some(u),
                        Event::Finish(f) => collected.finish = Some(f.as_openai().to_owned()),
                        Event::Error(e) => collected.error = Some(e),
                        Event::ToolCallDelta { .. }
                        | Event::ReasoningSignature(_)
                        | Event::Logprobs(_)
                        | Event::Progress(_)
                        | Event::Native(_) => {}
                    }
                }
                answer.attempts
            }
        };
    let last_ref = answered_by.clone().or_else(|| attempts.last().map(|a| a.model_ref.clone()));
    let resolved = last_ref.as_ref().and_then(|r| config.resolve_ref(&r.to_string()).ok());
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let ok = collected.error.is_none() && !collected.text.trim().is_empty();
    let model_cost = resolved.as_ref().and_then(|r| r.model.cost);
    let cost_usd = match (collected.usage, model_cost) {
        (Some(u), Some(c)) => Some(hearth_upstream::usage::cost_usd(&u, &c)),
        _ => None,
    };

    if args.json {
        let envelope = json!({
            "ok": ok,
            "provider": resolved.as_ref().map(|r| r.provider.id.clone()),
            "model": resolved.as_ref().map(|r| r.model.id.clone()),
            "ref": last_ref.as_ref().map(ToString::to_string),
            "api": resolved.as_ref().map(|r| r.model.api.as_str()),
            "chain": chain.candidates.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "attempts": attempts.iter().map(|a| json!({
                "provider": a.model_ref.provider,
                "model": a.model_ref.model,
                "outcome": a.outcome(),
                "errorClass": a.error.as_ref().map(|e| e.class.as_str()),
                "status": a.error.as_ref().and_then(|e| e.status),
                "error": a.error.as_ref().map(|e| e.message.clone()),
                "ms": a.elapsed.as_millis() as u64,
            })).collect::<Vec<_>>(),
            "error": collected.error.as_ref().map(|e| json!({"code": e.class.as_str(), "class": e.class.as_str(), "message": e.message})),
            "outputs": {"text": collected.text, "reasoning": collected.reasoning},
            "finishReason": collected.finish,
            "usage": collected.usage.map(|u| json!({
                "inputTokens": u.input_tokens,
                "outputTokens": u.output_tokens,
                "cacheReadTokens": u.cache_read_tokens,
                "cacheWriteTokens": u.cache_write_tokens,
                "reasoningTokens": u.reasoning_tokens,
                "estimated": u.estimated,
            })),
            "costUsd": cost_usd,
        });
        writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&envelope)?)?;
    } else {
        if !live {
            if !args.no_reasoning && !collected.reasoning.is_empty() {
                let mut err = std::io::stderr().lock();
                if dim {
                    writeln!(err, "\x1b[2m{}\x1b[0m", collected.reasoning)?;
                } else {
                    writeln!(err, "{}", collected.reasoning)?;
                }
            }
            if !collected.text.is_empty() {
                writeln!(std::io::stdout().lock(), "{}", collected.text)?;
            }
        } else if !collected.text.is_empty() {
            writeln!(std::io::stdout().lock())?;
        }
        let mut err = std::io::stderr().lock();
        match &collected.error {
            Some(e) => {
                for a in attempts.iter().filter(|a| a.error.is_some()) {
                    if let Some(ae) = &a.error {
                        writeln!(
                            err,
                            "attempt {}: {} ({}, {} ms)",
                            a.model_ref,
                            ae.message,
                            ae.class.as_str(),
                            a.elapsed.as_millis()
                        )?;
                    }
                }
                writeln!(err, "error: {} ({}) after {elapsed_ms} ms", e.message, e.class.as_str())?;
                if let Some(hint) = resolved.as_ref().and_then(|r| hint(e, r.provider)) {
                    writeln!(err, "  = help: {hint}")?;
                }
            }
            None if !ok => writeln!(
                err,
                "error: {} returned no text",
                last_ref.as_ref().map_or(String::new(), ToString::to_string)
            )?,
            None => {
                let usage = collected.usage.map_or(String::new(), |u| {
                    format!(
                        ", {} in / {} out tokens{}",
                        u.input_tokens,
                        u.output_tokens,
                        if u.estimated { " (estimated)" } else { "" }
                    )
                });
                let cost = cost_usd.map_or(String::new(), |c| format!(", ${c:.6}"));
                let api = resolved.as_ref().map_or("", |r| r.model.api.as_str());
                let who = last_ref.as_ref().map_or(String::new(), ToString::to_string);
                let fell_back = if attempts.len() > 1 {
                    format!(" after {} attempts", attempts.len())
                } else {
                    String::new()
                };
                writeln!(err, "{who} via {api} in {elapsed_ms} ms{fell_back}{usage}{cost}")?;
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

fn hint(e: &UpstreamError, provider: &hearth_config::Provider) -> Option<String> {
    use hearth_upstream::ErrorClass as C;
    match e.class {
        C::Connect => Some(format!(
            "nothing answers at {}; start the server (or fix models.providers.{}.baseUrl)",
            provider.base_url, provider.id
        )),
        C::ContextOverflow => Some("lower contextWindow/contextTokens, shorten the prompt, or raise the server's context size".into()),
        C::Auth => Some(format!("check the API key of provider `{}`", provider.id)),
        C::ModelNotFound => Some("the server does not know this model id; check the id (without the provider prefix) and that baseUrl ends in /v1".into()),
        C::Loading => Some("the server is still loading the model; try again in a moment".into()),
        _ => None,
    }
}
