//! The shared core of every model endpoint: run the plan's chain through the router, record
//! attempts, and either collect the whole answer (non-streaming) or hand the live event stream
//! to a renderer (`sse`).
//!
//! Invariant: an `Event::Error` after the first event is never dropped: a non-streaming answer
//! becomes an error response, a stream ends with its API's terminal error event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use futures::StreamExt;
use hearth_agent::{NoticeSink, ProgressSink};
use hearth_config::{Config, Cost};
use hearth_upstream::{
    Answer, ErrorClass, Event, FinishReason, Prompt, RunOptions, TokenLogprob, ToolChoice,
    UpstreamError, Usage,
};

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::{AttemptLabels, Metrics, ModelLabels, TokenLabels};
use crate::plan::Plan;

pub const HEADER_PROVIDER: HeaderName = HeaderName::from_static("x-hearth-provider");
pub const HEADER_MODEL: HeaderName = HeaderName::from_static("x-hearth-model");
pub const HEADER_ATTEMPTS: HeaderName = HeaderName::from_static("x-hearth-attempts");

/// The whole run (all attempts and retries) of a gateway request ends by then at the latest.
pub const RUN_BUDGET: Duration = Duration::from_secs(600);

/// A running answer and what the renderers need to know about it.
pub struct Started {
    pub answer: Answer,
    pub usage: UsageSink,
    pub pace: crate::sse::Pace,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").field("answer", &self.answer).finish_non_exhaustive()
    }
}

/// Records usage and cost of one answer in the metrics.
#[derive(Debug, Clone)]
pub struct UsageSink {
    metrics: Arc<Metrics>,
    provider: String,
    model: String,
    cost: Option<Cost>,
    /// The request's log and trace record, when one is kept.
    log: Option<Arc<crate::telemetry::Record>>,
}

impl UsageSink {
    pub fn record(&self, usage: &Usage) {
        if let Some(log) = &self.log {
            log.usage(usage);
        }
        let source = if usage.estimated { "estimate" } else { "upstream" };
        let model = format!("{}/{}", self.provider, self.model);
        self.metrics
            .tokens
            .get_or_create(&TokenLabels { model: model.clone(), direction: "prompt", source })
            .inc_by(usage.input_tokens);
        self.metrics
            .tokens
            .get_or_create(&TokenLabels { model, direction: "completion", source })
            .inc_by(usage.output_tokens);
        if let Some(cost) = &self.cost {
            let usd = hearth_upstream::usage::cost_usd(usage, cost);
            if usd > 0.0 {
                self.metrics
                    .cost
                    .get_or_create(&ModelLabels {
                        provider: self.provider.clone(),
                        model: self.model.clone(),
                    })
                    .inc_by(usd);
            }
        }
    }

    pub fn abort(&self, error: &UpstreamError) {
        if let Some(log) = &self.log {
            log.failed(error.class.as_str());
        }
        self.metrics
            .stream_aborts
            .get_or_create(&crate::metrics::AbortLabels {
                provider: self.provider.clone(),
                error_kind: error.class.as_str(),
            })
            .inc();
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// A model's metrics label: its id when the catalog lists it, else `other` (a discovering
/// provider serves ids the client names; labels must not grow with them). Providers come from
/// the config, so they are bounded already.
pub fn model_label(config: &Config, model_ref: &hearth_config::ModelRef) -> String {
    match config.providers.get(&model_ref.provider).and_then(|p| p.model(&model_ref.model)) {
        Some(model) => model.id.clone(),
        None => OTHER_MODEL.to_owned(),
    }
}

/// The metrics label of models no catalog lists.
pub const OTHER_MODEL: &str = "other";

/// Runs the plan's chain. `Err` is the error response (every attempt in its message).
pub async fn start(
    app: &AppState,
    config: &Arc<Config>,
    plan: &Plan,
    prompt: Prompt,
) -> Result<(Started, Prompt), ApiError> {
    start_with(app, config, plan, prompt, None, None).await
}

/// [`start`], with `on_notice` called the moment a notice comes due while the run still waits
/// for a model (the overload notice), on direct and agent runs alike. Such a notice is also in
/// the answer's notices; a caller that delivered it live must not deliver it again.
/// `on_progress` gets the server's prompt progress reports while the run waits for the answer
/// to begin; every report is counted in `/metrics` either way.
pub async fn start_with(
    app: &AppState,
    config: &Arc<Config>,
    plan: &Plan,
    prompt: Prompt,
    on_notice: Option<&NoticeSink>,
    on_progress: Option<&ProgressSink>,
) -> Result<(Started, Prompt), ApiError> {
    let started = Instant::now();
    let progress = {
        let (metrics, config, sink) =
            (Arc::clone(&app.metrics), Arc::clone(config), on_progress.cloned());
        // A server may repeat its last report; the run's processing time is observed once.
        let observed = std::sync::atomic::AtomicBool::new(false);
        ProgressSink(Arc::new(move |model_ref, progress| {
            let complete = progress.is_complete()
                && !observed.swap(true, std::sync::atomic::Ordering::Relaxed);
            let model = model_label(&config, model_ref);
            metrics.observe_progress(model_ref.provider.clone(), model, progress, complete);
            if let Some(sink) = &sink {
                sink.0(model_ref, progress);
            }
        }))
    };
    let options = RunOptions {
        deadline: Some(tokio::time::Instant::now() + RUN_BUDGET),
        on_notice: on_notice.map(|sink| &*sink.0 as &(dyn Fn(&str) + Sync)),
        on_progress: Some(&*progress.0),
        ..RunOptions::default()
    };
    let sinks = (on_notice, &progress);
    let agent = plan.agent.clone();
    let mut prompt = prompt;
    if !(plan.agent_run && app.agents.is_some()) {
        // Direct runs too: chat-template control tokens never reach a model from the client's
        // messages (an agent turn strips them as it stores them).
        hearth_agent::containment::strip_prompt_control_tokens(&mut prompt);
    }
    let result = match (&app.agents, plan.agent_run) {
        (Some(agents), true) => match agent_turn(agents, config, plan, &prompt, sinks).await {
            Ok(answer) => Ok(answer),
            Err(AgentFailure::Upstream(failure)) => Err(failure),
            Err(AgentFailure::Api(error)) => return Err(error),
        },
        _ => {
            let params_for = |r: &hearth_config::ModelRef| config.params_for(agent.as_deref(), r);
            let env: &(dyn hearth_config::Env + Sync) = &*app.env;
            app.router.run(config, &plan.chain, &prompt, &params_for, env, options).await
        }
    };
    let log = crate::telemetry::current();
    if let Some(log) = &log {
        log.run(&plan.requested, plan.agent_run, &result);
    }
    let attempts = match &result {
        Ok(answer) => &answer.attempts,
        Err(failure) => &failure.attempts,
    };
    for attempt in attempts {
        let outcome = match (&attempt.error, attempt.skipped) {
            (_, true) => "skipped",
            (None, false) => "ok",
            (Some(e), false) => e.class.as_str(),
        };
        app.metrics
            .upstream_attempts
            .get_or_create(&AttemptLabels {
                provider: attempt.model_ref.provider.clone(),
                model: model_label(config, &attempt.model_ref),
                outcome,
            })
            .inc();
    }
    match result {
        Ok(mut answer) => {
            if let Some(choice) = &prompt.tool_choice {
                answer.events = require_tool_call(answer.events, choice);
            }
            if answer.attempts.len() > 1 {
                app.metrics.fallbacks.inc();
            }
            app.metrics
                .time_to_first_byte
                .get_or_create(&ModelLabels {
                    provider: answer.model_ref.provider.clone(),
                    model: model_label(config, &answer.model_ref),
                })
                .observe(started.elapsed().as_secs_f64());
            let cost = config.resolve_model_ref(&answer.model_ref).ok().and_then(|r| r.model.cost);
            let usage = UsageSink {
                metrics: Arc::clone(&app.metrics),
                provider: answer.model_ref.provider.clone(),
                model: model_label(config, &answer.model_ref),
                cost,
                log,
            };
            Ok((Started { answer, usage, pace: crate::sse::Pace::new(app) }, prompt))
        }
        Err(failure) => Err(ApiError::from_failure(&failure, &hints(config, &failure))),
    }
}

/// `tool_choice` `"required"` or a named function: the answer must call a client tool (that
/// one). An answer that finishes without such a call ends in an error instead of its finish
/// (OpenClaw's contract: a 502 `api_error` when not streaming, the API's terminal error event
/// — `response.failed` for Responses — when streaming). Other choices pass through untouched.
pub fn require_tool_call(
    events: hearth_upstream::client::EventStream,
    choice: &ToolChoice,
) -> hearth_upstream::client::EventStream {
    let wanted: Option<String> = match choice {
        ToolChoice::Required => None,
        ToolChoice::Function(name) => Some(name.clone()),
        ToolChoice::Auto | ToolChoice::None => return events,
    };
    // Each call's name, by index (names may arrive in pieces); whether the error went out.
    let state: (Vec<(u32, String)>, bool) = (Vec::new(), false);
    events
        .scan(state, move |(names, failed), event| {
            if *failed {
                return futures::future::ready(None);
            }
            match &event {
                Event::ToolCallDelta { index, name: Some(piece), .. } => {
                    match names.iter_mut().find(|(i, _)| i == index) {
                        Some((_, name)) => name.push_str(piece),
                        None => names.push((*index, piece.clone())),
                    }
                }
                Event::Finish(_) => {
                    let satisfied = names.iter().any(|(_, name)| match &wanted {
                        None => !name.is_empty(),
                        Some(w) => name == w,
                    });
                    if !satisfied {
                        *failed = true;
                        let message = match &wanted {
                            None => "tool_choice is \"required\", but the model answered without calling a tool".to_owned(),
                            Some(w) => format!(
                                "tool_choice requires a call to `{w}`, but the model answered without calling it"
                            ),
                        };
                        return futures::future::ready(Some(Event::Error(UpstreamError::new(
                            ErrorClass::ServerError,
                            message,
                        ))));
                    }
                }
                _ => {}
            }
            futures::future::ready(Some(event))
        })
        .boxed()
}

/// What to start or configure, for providers that could not be reached.
pub fn hints(config: &Config, failure: &hearth_upstream::Failure) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for attempt in &failure.attempts {
        let Some(error) = &attempt.error else { continue };
        if error.class != ErrorClass::Connect {
            continue;
        }
        let Some(provider) = config.providers.get(&attempt.model_ref.provider) else { continue };
        let hint = start_hint(&provider.id, provider.base_url.as_str());
        if !out.contains(&hint) {
            out.push(hint);
        }
    }
    out
}

/// How to start the server a provider points at.
pub fn start_hint(provider_id: &str, base_url: &str) -> String {
    let how = match provider_id {
        "lmstudio" => {
            "start LM Studio's local server (`lms server start`, or the Developer tab) and load a model"
        }
        "ollama" => "start Ollama (`ollama serve`)",
        "llamacpp" | "llama-cpp" => "start llama.cpp (`llama-server -m MODEL.gguf --port PORT`)",
        "vllm" => "start vLLM (`vllm serve MODEL`)",
        "sglang" => "start SGLang (`python -m sglang.launch_server --model-path MODEL`)",
        "mlx" => "start the MLX server (`mlx_lm.server --model MODEL`)",
        _ => "start the server, or fix models.providers.<id>.baseUrl",
    };
    format!("{provider_id} is not reachable at {base_url}: {how}")
}

/// `x-hearth-provider`, `x-hearth-model`, `x-hearth-attempts`.
pub fn answer_headers(answer: &Answer, headers: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&answer.model_ref.provider) {
        headers.insert(HEADER_PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&answer.model_ref.model) {
        headers.insert(HEADER_MODEL, v);
    }
    headers.insert(HEADER_ATTEMPTS, HeaderValue::from(answer.attempts.len()));
    for notice in &answer.notices {
        if let Ok(v) = HeaderValue::from_str(&header_safe(notice)) {
            headers.append(HEADER_NOTICE, v);
        }
    }
}

/// The notices a caller still has to deliver: `notices` less those it already delivered live
/// (`sent`, through [`start_with`]'s `on_notice`), each of those taken out once.
pub fn unsent<'a>(notices: &'a [String], sent: &[String]) -> Vec<&'a str> {
    let mut sent: Vec<&str> = sent.iter().map(String::as_str).collect();
    notices
        .iter()
        .filter(|notice| match sent.iter().position(|s| s == notice) {
            Some(i) => {
                sent.swap_remove(i);
                false
            }
            None => true,
        })
        .map(String::as_str)
        .collect()
}

/// One `x-hearth-notice` per notice (fallback, preflight warning, served window, compaction).
pub const HEADER_NOTICE: HeaderName = HeaderName::from_static("x-hearth-notice");

/// A notice as a header value: printable ASCII as it is, `%` and everything else
/// percent-encoded (UTF-8), so `percent-decode` gives the text back.
pub fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One tool call, assembled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCallAcc {
    pub index: u32,
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A whole answer.
#[derive(Debug, Default)]
pub struct Collected {
    pub text: String,
    pub reasoning: String,
    pub signature: String,
    /// Token logprobs of the text, in order (empty unless the upstream reported them).
    pub logprobs: Vec<TokenLogprob>,
    pub tool_calls: Vec<ToolCallAcc>,
    /// Blocks of the upstream's own API no canonical event holds (`Event::Native`), each with
    /// the length `text` had when it came, so a renderer can put it back in its place.
    pub native: Vec<(usize, serde_json::Value)>,
    pub usage: Option<Usage>,
    pub finish: Option<FinishReason>,
}

impl Collected {
    pub fn push(&mut self, event: Event) -> Result<(), UpstreamError> {
        match event {
            Event::TextDelta(t) => self.text.push_str(&t),
            Event::ReasoningDelta(r) => self.reasoning.push_str(&r),
            Event::ReasoningSignature(s) => self.signature.push_str(&s),
            Event::Logprobs(l) => self.logprobs.extend(l),
            Event::Native(block) => self.native.push((self.text.len(), *block)),
            Event::ToolCallDelta { index, id, name, arguments } => {
                let call = match self.tool_calls.iter_mut().position(|c| c.index == index) {
                    Some(i) => &mut self.tool_calls[i],
                    None => {
                        self.tool_calls.push(ToolCallAcc { index, ..ToolCallAcc::default() });
                        let last = self.tool_calls.len() - 1;
                        &mut self.tool_calls[last]
                    }
                };
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&arguments);
            }
            Event::Usage(u) => self.usage = Some(u),
            Event::Progress(_) => {}
            Event::Finish(f) => self.finish = Some(f),
            Event::Error(e) => return Err(e),
        }
        Ok(())
    }

    /// Tool calls with an id each (some servers send none).
    pub fn finish_tool_ids(&mut self) {
        for call in &mut self.tool_calls {
            if call.id.is_empty() {
                call.id = crate::new_id("call_");
            }
        }
    }
}

/// Reads the whole answer; an upstream failure becomes the error response.
pub async fn collect(started: Started) -> Result<(Collected, Answer), ApiError> {
    let Started { mut answer, usage, .. } = started;
    let mut collected = Collected::default();
    let events = std::mem::replace(&mut answer.events, futures::stream::empty().boxed());
    let mut events = events;
    while let Some(event) = events.next().await {
        let terminal = matches!(event, Event::Finish(_) | Event::Error(_));
        if let Err(e) = collected.push(event) {
            usage.abort(&e);
            return Err(ApiError::from_upstream(&e));
        }
        if terminal {
            break;
        }
    }
    if collected.finish.is_none() {
        let e = UpstreamError::new(
            ErrorClass::ServerError,
            "the upstream stream ended before the model finished",
        );
        usage.abort(&e);
        return Err(ApiError::from_upstream(&e));
    }
    if let Some(u) = &collected.usage {
        usage.record(u);
    }
    collected.finish_tool_ids();
    Ok((collected, answer))
}

enum AgentFailure {
    Upstream(hearth_upstream::Failure),
    Api(ApiError),
}

/// An agent target with sessions: the client's request goes down whole
/// ([`hearth_agent::TurnRequest::conversation`] says what is stored and sent).
async fn agent_turn(
    agents: &hearth_agent::Agents,
    config: &Arc<Config>,
    plan: &Plan,
    prompt: &Prompt,
    (on_notice, on_progress): (Option<&NoticeSink>, &ProgressSink),
) -> Result<Answer, AgentFailure> {
    use hearth_upstream::Role;
    if !prompt.messages.iter().any(|m| m.role == Role::User) {
        return Err(AgentFailure::Api(ApiError::invalid_param(
            "messages",
            "an agent run needs a user message",
        )));
    }
    let user = prompt.passthrough.get("user").and_then(|u| u.as_str()).filter(|u| !u.is_empty());
    if let Some(user) = user {
        crate::plan::check_session_key("user", user).map_err(AgentFailure::Api)?;
    }
    let session_key = match (&plan.session_key, user) {
        (Some(key), _) => key.clone(),
        (None, Some(user)) => format!("user:{user}"),
        // OpenClaw's HTTP API is stateless per request unless the caller names a session.
        (None, None) => format!("http:{}", uuid_like()),
    };
    let request = hearth_agent::TurnRequest {
        agent: plan.agent.clone(),
        session_key: Some(session_key),
        // The client's request whole: the turn stores and sends from it.
        prompt: Some(prompt.clone()),
        model: plan.model_override.clone(),
        // The agent's `timeoutSeconds` (the turn applies it).
        timeout: None,
        on_notice: on_notice.cloned(),
        on_progress: Some(on_progress.clone()),
        ..hearth_agent::TurnRequest::default()
    };
    match agents.start(Arc::clone(config), request).await {
        Ok(turn) => Ok(Answer {
            model_ref: turn.model_ref,
            attempts: turn.attempts,
            notices: turn.notices,
            events: turn.events,
        }),
        Err(hearth_agent::TurnError::Upstream { failure }) => Err(AgentFailure::Upstream(failure)),
        Err(hearth_agent::TurnError::Refused { message }) => Err(AgentFailure::Api(ApiError {
            overflow: Some(Box::default()),
            ..ApiError::invalid_param("messages", message).with_code("context_length_exceeded")
        })),
        Err(hearth_agent::TurnError::Model(e)) => Err(AgentFailure::Api(ApiError::from_ref(&e))),
        Err(hearth_agent::TurnError::Config(message)) => {
            Err(AgentFailure::Api(ApiError::invalid_param("model", message)))
        }
        Err(e @ hearth_agent::TurnError::Store(_)) => Err(AgentFailure::Api(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            e.to_string(),
        ))),
    }
}

/// A random id for a one-request session.
fn uuid_like() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
