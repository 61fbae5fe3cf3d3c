//! The model endpoints, one module each: `chat` (`POST /v1/chat/completions`), `responses`
//! (`POST /v1/responses`) and `messages` (`POST /v1/messages`, and `/v1/messages/count_tokens`).
//! They answer through one pipeline, [`handle`]; what differs between them is their
//! [`Endpoint`].
//!
//! The pipeline: the body (a read error in the API's shape) → the endpoint's switch in the
//! config → the typed request → the canonical [`Prompt`] and the [`Plan`] → the endpoint's
//! step on the plan → the run (`relay`) → a stream (`sse::respond_when_started` with the
//! endpoint's renderer) or the whole answer (`relay::collect`, rendered at once) → the
//! answer's headers (`relay::answer_headers`) and `x-hearth-dropped`.

pub mod chat;
pub mod messages;
pub mod responses;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hearth_config::{Chain, Config};
use hearth_upstream::{Answer, Prompt};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Shape};
use crate::plan::{self, Plan};
use crate::relay::{self, Collected};
use crate::sse::{self, Made, Render};
use crate::{AppState, body_or_error};

/// The header that says what hearth left out of a request (`tools[8] (web_search)`, …),
/// comma-separated.
pub const HEADER_DROPPED: HeaderName = HeaderName::from_static("x-hearth-dropped");

/// What an endpoint's steps read of the request.
pub(crate) struct Cx<'a> {
    pub app: &'a AppState,
    /// The snapshot the request keeps to its end (Invariant 4).
    pub config: &'a Arc<Config>,
    pub headers: &'a HeaderMap,
    /// The body as the client sent it.
    pub body: &'a Bytes,
}

/// A request in canonical form, and what its endpoint keeps of it.
pub(crate) struct Parsed<E> {
    pub prompt: Prompt,
    /// What the renderers need: moved into a stream's renderer, or rendering the whole answer.
    pub endpoint: E,
    /// What was left out of the request, for `x-hearth-dropped`.
    pub dropped: Vec<String>,
    /// The caller asked for token logprobs.
    pub logprobs: bool,
}

/// A whole answer, to render.
pub(crate) struct Whole<'a> {
    /// The `model` the answer reports ([`shown_model`]).
    pub shown: &'a str,
    /// When the run started (Unix seconds; before the answer was read).
    pub started_at: u64,
    /// The prompt as the run sent it.
    pub prompt: Prompt,
    pub collected: &'a Collected,
    pub answer: &'a Answer,
}

/// One API on the one pipeline ([`handle`]): its request, its error shape and renderers, and
/// the steps only it has.
pub(crate) trait Endpoint: Clone + Send + Sized + 'static {
    /// The request body, typed (unknown fields kept).
    type Request: DeserializeOwned;
    /// What the run needs of the endpoint ([`Endpoint::run_error`], [`Endpoint::started`]).
    type Run: Send + Sync + 'static;
    /// The stream's renderer.
    type Render: Render;

    /// The API's error shape.
    const SHAPE: Shape;
    /// The model is planned before the body is converted (a bad model is then reported before
    /// a bad body); else after.
    const PLAN_FIRST: bool = false;

    /// The 404 when the config switches the endpoint off.
    fn enabled(_config: &Config) -> Result<(), ApiError> {
        Ok(())
    }

    /// The request's `model`.
    fn model(request: &Self::Request) -> &str;

    /// The request in canonical form.
    fn parse(cx: &Cx<'_>, request: Self::Request) -> Result<Parsed<Self>, ApiError>;

    /// The endpoint's step on the planned request, before the run.
    fn planned(
        &mut self,
        cx: &Cx<'_>,
        plan: &mut Plan,
        prompt: &mut Prompt,
    ) -> impl Future<Output = Result<Self::Run, ApiError>> + Send;

    /// An error of the run (it did not start, or failed before the whole answer was read) in
    /// this endpoint's terms.
    fn run_error(_run: &Self::Run, e: ApiError) -> ApiError {
        e
    }

    /// Once the run started, before anything of it is rendered.
    fn started(_run: &Self::Run) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The stream's renderer; `made` is `None` for one built before the run started (or
    /// after it failed), which writes the start frames and early notices only.
    fn render(self, app: &AppState, config: &Config, shown: String, made: Made<'_>)
    -> Self::Render;

    /// The whole answer as the response.
    fn whole(self, cx: &Cx<'_>, whole: Whole<'_>) -> Response;

    /// Headers a stream carries besides the answer's.
    fn stream_headers(_headers: &mut HeaderMap) {}

    /// `x-hearth-dropped`, with `logprobs` when they were asked for and the answering upstream
    /// has none.
    fn note_dropped(
        config: &Config,
        chain: &Chain,
        logprobs: bool,
        mut dropped: Vec<String>,
        response: &mut Response,
    ) {
        crate::logprobs::note_dropped(config, chain, logprobs, response, &mut dropped);
        dropped_header(&dropped, response.headers_mut());
    }
}

/// A model endpoint's route: the whole pipeline for `E`, errors in `E`'s shape.
pub(crate) async fn handle<E: Endpoint>(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // Boxed: the run's future (the whole relay, router and transport nest) is many kilobytes, and
    // every layer above would otherwise move it again.
    match Box::pin(run::<E>(app, headers, body)).await {
        Ok(response) => response,
        Err(e) => e.shaped(E::SHAPE).into_response(),
    }
}

async fn run<E: Endpoint>(
    app: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_error(body, E::SHAPE)?;
    let config = app.config.load_full();
    E::enabled(&config)?;
    let request: E::Request = serde_json::from_slice(&body).map_err(|e| ApiError::from_json(&e))?;
    let cx = Cx { app: &app, config: &config, headers: &headers, body: &body };
    let model = E::model(&request).to_owned();
    let (mut plan, parsed) = if E::PLAN_FIRST {
        let plan = plan::plan(&config, &model, &headers)?;
        (plan, E::parse(&cx, request)?)
    } else {
        let parsed = E::parse(&cx, request)?;
        (plan::plan(&config, &model, &headers)?, parsed)
    };
    let Parsed { mut prompt, mut endpoint, dropped, logprobs } = parsed;
    let run = endpoint.planned(&cx, &mut plan, &mut prompt).await?;
    if let Some(note) =
        plan::route_by_input(&config, &mut plan, &prompt).map_err(|e| E::run_error(&run, e))?
    {
        tracing::info!(model = %plan.requested, "{note}");
    }
    if prompt.stream {
        let start = {
            let (app, config, plan) = (app.clone(), Arc::clone(&config), plan.clone());
            move |notices, progress| async move {
                let started = relay::start_with(
                    &app,
                    &config,
                    &plan,
                    prompt,
                    Some(&notices),
                    Some(&progress),
                )
                .await
                .map_err(|e| E::run_error(&run, e))?;
                E::started(&run).await;
                Ok(started)
            }
        };
        let chain = plan.chain.clone();
        let (render_app, render_config) = (app.clone(), Arc::clone(&config));
        let mut response = sse::respond_when_started(&app, start, move |made| {
            let shown = shown_for(&plan, made.as_ref().map(|(started, _)| *started));
            endpoint.render(&render_app, &render_config, shown, made)
        })
        .await?;
        E::stream_headers(response.headers_mut());
        E::note_dropped(&config, &chain, logprobs, dropped, &mut response);
        return Ok(response);
    }
    let (started, prompt) =
        relay::start(&app, &config, &plan, prompt).await.map_err(|e| E::run_error(&run, e))?;
    E::started(&run).await;
    let shown = shown_model(&plan, &started.answer.model_ref);
    let started_at = crate::unix_now();
    let (collected, answer) = relay::collect(started).await.map_err(|e| E::run_error(&run, e))?;
    let whole = Whole { shown: &shown, started_at, prompt, collected: &collected, answer: &answer };
    let mut response = endpoint.whole(&cx, whole);
    relay::answer_headers(&answer, response.headers_mut());
    E::note_dropped(&config, &plan.chain, logprobs, dropped, &mut response);
    Ok(response)
}

/// An endpoint's switch (`Endpoint::enabled`): `Ok` when on, else the 404 that names the key.
pub(crate) fn switch(on: bool, endpoint: &str, key: &str) -> Result<(), ApiError> {
    if on {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("the {endpoint} endpoint is disabled (gateway.http.endpoints.{key}.enabled)"),
    ))
}

/// The `model` a response reports: the agent target for agent runs, else the ref that answered.
/// [`shown_model`] for a renderer built before or without an answer.
pub(crate) fn shown_for(plan: &Plan, started: Option<&relay::Started>) -> String {
    match started {
        Some(started) => shown_model(plan, &started.answer.model_ref),
        None => plan.requested.clone(),
    }
}

pub(crate) fn shown_model(plan: &Plan, answered: &hearth_config::ModelRef) -> String {
    if plan.agent.is_some() || plan::agent_target(&plan.requested).is_some() {
        plan.requested.clone()
    } else {
        answered.to_string()
    }
}

/// A caller's thinking level (chat `reasoning_effort`, Responses `reasoning.effort`): one of
/// OpenClaw's levels or OpenAI's efforts (`none` is off); anything else is a 400 naming
/// `param`. What the answering server can take is decided per server, never refused
/// (`hearth_upstream::thinking`).
pub(crate) fn thinking_level(
    effort: &str,
    param: &str,
) -> Result<hearth_upstream::prompt::Thinking, ApiError> {
    hearth_config::ThinkingLevel::parse(effort)
        .map(hearth_upstream::prompt::Thinking::level)
        .ok_or_else(|| {
            ApiError::invalid_param(
                param,
                format!(
                    "unknown reasoning effort `{}` (none, {})",
                    effort.chars().take(64).collect::<String>(),
                    hearth_config::ThinkingLevel::NAMES.join(", ")
                ),
            )
        })
}

/// Adds `x-hearth-dropped` when something was dropped.
pub(crate) fn dropped_header(dropped: &[String], headers: &mut HeaderMap) {
    if dropped.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&dropped.join(", ")) {
        headers.insert(HEADER_DROPPED, value);
    }
}
