//! Keeping models loaded: at gateway start hearth asks a local server to load the configured
//! models, so the first request does not pay for the load (issue 15, `docs/local-models.md`,
//! "Keeping models loaded").
//!
//! | server | `params.preload` default | request | skipped when |
//! |---|---|---|---|
//! | LM Studio | on (OpenClaw's default) | `POST /api/v1/models/load {model, context_length}` (0.4.0+) | the probe lists the model loaded or loading: LM Studio answers a second load with a second instance |
//! | Ollama | off | `POST /api/generate {model, stream: false, keep_alive, options.num_ctx}` (no prompt: load only) | the probe lists the model loaded |
//!
//! Ollama's load carries the `num_ctx` later requests send (`encode::num_ctx`): a runner
//! loaded with another window would be reloaded by the first request.
//!
//! Invariant: never fails and never runs on a request's way. The gateway runs it in the
//! background and logs each [`Preload`]; a failure carries the server's answer and a fix.

use std::time::Duration;

use hearth_config::{Api, Env, Model, Provider};
use serde_json::{Map, Value, json};

use crate::event::{ErrorClass, UpstreamError};
use crate::probe::{self, ModelState, Probes, ServerKind};

/// LM Studio's load endpoint (REST API v1, LM Studio 0.4.0+).
pub const LMSTUDIO_LOAD_PATH: &str = "/api/v1/models/load";
/// Ollama's generate endpoint: without a prompt it only loads the model.
pub const OLLAMA_GENERATE_PATH: &str = "/api/generate";
/// The longest a load may take when the provider sets no `timeoutSeconds` (big models on a
/// slow disk take minutes).
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// What happened to one model.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The server loaded it (`context_length` as the server reports it, else as asked).
    Loaded { context_length: Option<u64>, seconds: Option<f64> },
    /// The server holds it already (or is loading it); nothing was sent.
    AlreadyLoaded { state: ModelState, context_length: Option<u64> },
    /// It could not be loaded; requests still load it on first use where the server does.
    Failed { error: UpstreamError, help: String },
}

/// One model's preload.
#[derive(Debug, Clone, PartialEq)]
pub struct Preload {
    pub model: String,
    /// The window asked for (`contextTokens`, else `contextWindow`, cut to the most the server
    /// says the model takes); `None`: the server's own default.
    pub context_length: Option<u64>,
    /// The server's path that was (or would have been) asked.
    pub path: &'static str,
    pub outcome: Outcome,
}

/// The kind of server a preload goes to, when it has a load request: LM Studio, or Ollama
/// (native API or its `/v1`).
pub fn server_kind(provider: &Provider) -> Option<ServerKind> {
    if provider.api == Api::Ollama || crate::encode::is_ollama_compat(provider) {
        return Some(ServerKind::Ollama);
    }
    probe::is_lmstudio(provider).then_some(ServerKind::LmStudio)
}

/// Whether `params.preload` (merged: provider < model row < agent settings) asks for a preload
/// of a model of `provider`: on by default for LM Studio, off for Ollama.
pub fn wanted(provider: &Provider, params: &Map<String, Value>) -> bool {
    let default = match server_kind(provider) {
        Some(ServerKind::LmStudio) => true,
        Some(ServerKind::Ollama) => false,
        _ => return false,
    };
    params.get("preload").and_then(Value::as_bool).unwrap_or(default)
}

/// Preloads `models` of `provider` (each with its merged params), one after the other, and
/// says what happened to each. The probe cache is read first (a model the server holds is not
/// loaded again) and forgotten afterwards, so the next reader sees the loaded window.
pub async fn run(
    provider: &Provider,
    models: &[(Model, Map<String, Value>)],
    probes: &Probes,
    env: &(dyn Env + Sync),
) -> Vec<Preload> {
    let Some(kind) = server_kind(provider) else { return Vec::new() };
    let path = match kind {
        ServerKind::LmStudio => LMSTUDIO_LOAD_PATH,
        _ => OLLAMA_GENERATE_PATH,
    };
    let served = probes.get(provider).await;
    let timeout = provider.timeout.unwrap_or(LOAD_TIMEOUT);
    let cx = match probe::Cx::new(provider, env, timeout) {
        Ok(cx) => cx,
        Err(error) => {
            let help = "check the provider's baseUrl and proxy settings".to_owned();
            return models
                .iter()
                .map(|(m, _)| Preload {
                    model: m.id.clone(),
                    context_length: None,
                    path,
                    outcome: Outcome::Failed { error: error.clone(), help: help.clone() },
                })
                .collect();
        }
    };
    let mut out = Vec::new();
    for (model, params) in models {
        let found = served.find(&model.id);
        let max = found.and_then(|s| s.max_context_window);
        let context_length = match kind {
            ServerKind::LmStudio => {
                model.context_tokens.or(model.context_window).map(|n| max.map_or(n, |m| n.min(m)))
            }
            _ => crate::encode::num_ctx(model, params, max).map(|n| n.value),
        };
        let mut preload = Preload {
            model: model.id.clone(),
            context_length,
            path,
            outcome: Outcome::Loaded { context_length: None, seconds: None },
        };
        if !served.reachable {
            let error = served.error.clone().unwrap_or_else(|| {
                UpstreamError::new(ErrorClass::Connect, format!("{} did not answer", provider.id))
            });
            preload.outcome = Outcome::Failed { help: unreachable_help(kind), error };
            out.push(preload);
            continue;
        }
        if let Some(s) =
            found.filter(|s| matches!(s.state, ModelState::Loaded | ModelState::Loading))
        {
            preload.outcome =
                Outcome::AlreadyLoaded { state: s.state, context_length: s.context_window };
            out.push(preload);
            continue;
        }
        preload.outcome = match kind {
            ServerKind::LmStudio => load_lmstudio(&cx, &model.id, context_length).await,
            _ => load_ollama(&cx, &model.id, context_length, params).await,
        };
        out.push(preload);
    }
    probes.invalidate(provider);
    out
}

async fn load_lmstudio(cx: &probe::Cx<'_>, model: &str, context_length: Option<u64>) -> Outcome {
    let mut body = json!({ "model": model });
    if let Some(n) = context_length {
        body["context_length"] = Value::from(n);
    }
    let url = format!("{}{LMSTUDIO_LOAD_PATH}", cx.root());
    let reply = match cx.post(&url, &body).await {
        Ok(reply) => reply,
        Err(error) => {
            return Outcome::Failed { help: unreachable_help(ServerKind::LmStudio), error };
        }
    };
    if !reply.ok() {
        let error =
            probe::http_error(&cx.provider.id, &format!("POST {LMSTUDIO_LOAD_PATH}"), &reply);
        // An LM Studio older than 0.4.0 has no such route ("Unexpected endpoint or method.").
        let no_route = reply.status == 405
            || reply.text().to_ascii_lowercase().contains("unexpected endpoint");
        let help = if no_route {
            "the load endpoint needs LM Studio 0.4.0 or newer: update LM Studio, or set params.preload: false".to_owned()
        } else {
            format!(
                "check that LM Studio has `{model}` downloaded (`lms ls`, `lms get {model}`) and that its window fits in memory (a smaller contextWindow), or set params.preload: false"
            )
        };
        return Outcome::Failed { error, help };
    }
    let answer = reply.json().unwrap_or(Value::Null);
    Outcome::Loaded {
        context_length: answer
            .pointer("/load_config/context_length")
            .and_then(Value::as_u64)
            .or(context_length),
        seconds: answer.get("load_time_seconds").and_then(Value::as_f64),
    }
}

async fn load_ollama(
    cx: &probe::Cx<'_>,
    model: &str,
    num_ctx: Option<u64>,
    params: &Map<String, Value>,
) -> Outcome {
    let mut body = json!({ "model": model, "stream": false });
    if let Some(keep_alive) = params.get("keep_alive").or_else(|| params.get("keepAlive")) {
        body["keep_alive"] = keep_alive.clone();
    }
    if let Some(n) = num_ctx {
        body["options"] = json!({ "num_ctx": n });
    }
    let url = format!("{}{OLLAMA_GENERATE_PATH}", cx.root());
    let reply = match cx.post(&url, &body).await {
        Ok(reply) => reply,
        Err(error) => return Outcome::Failed { help: unreachable_help(ServerKind::Ollama), error },
    };
    if !reply.ok() {
        let error =
            probe::http_error(&cx.provider.id, &format!("POST {OLLAMA_GENERATE_PATH}"), &reply);
        let help = format!(
            "check that Ollama has `{model}` pulled (`ollama list`; `ollama pull {model}`), or set params.preload: false"
        );
        return Outcome::Failed { error, help };
    }
    let answer = reply.json().unwrap_or(Value::Null);
    Outcome::Loaded {
        context_length: num_ctx,
        seconds: answer.get("load_duration").and_then(Value::as_f64).map(|ns| ns / 1e9),
    }
}

fn unreachable_help(kind: ServerKind) -> String {
    match kind {
        ServerKind::LmStudio => "start LM Studio's server (`lms server start`, or the Developer tab); the model loads on its first request (JIT) if it is on; or set params.preload: false".to_owned(),
        _ => "start Ollama (`ollama serve`); or set params.preload: false".to_owned(),
    }
}
