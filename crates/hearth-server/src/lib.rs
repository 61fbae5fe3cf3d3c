//! The HTTP gateway: OpenAI- and Anthropic-compatible `/v1/*`, `/health`, `/ready`,
//! `/metrics`, auth. The only crate that knows axum and decides downstream status codes.
//!
//! Invariants kept here:
//! - Every endpoint renders from the canonical event stream; reasoning goes only to the API's
//!   reasoning field or item, never into answer text (Invariant 2).
//! - Failover happens inside `Router::run`, before the first event; an upstream failure after
//!   that is rendered as the API's terminal error event, never as a shorter success
//!   (Invariant 1).
//! - Each request reads one config snapshot (`ArcSwap::load_full`) and keeps it to the end of
//!   its stream (Invariant 4).

mod api;
pub mod auth;
pub mod conn;
pub mod error;
pub mod limits;
mod logprobs;
pub mod metrics;
pub mod models;
pub mod origin;
pub mod plan;
pub mod ready;
pub mod relay;
pub mod sse;
mod status;
pub mod telemetry;
mod webchat;
pub mod ws;

pub use api::{chat, messages, responses};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Router as AxumRouter;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hearth_config::{Config, Env};
use hearth_upstream::Router;

pub use auth::Auth;
pub use error::{ApiError, Shape};

/// Request bodies are limited to 20 MB by default (OpenClaw's limit;
/// `gateway.limits.maxBodyBytes`).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What every request reads: one allocation behind [`AppState`], so cloning the state (each
/// middleware layer and extractor does, per request) is one reference-count increment.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<ArcSwap<Config>>,
    pub router: Arc<Router>,
    pub env: Arc<dyn Env + Send + Sync>,
    pub auth: Arc<Auth>,
    pub limiter: Arc<auth::Limiter>,
    pub metrics: Arc<metrics::Metrics>,
    pub conversations: Arc<responses::Conversations>,
    /// Agent runs (sessions, budget, compaction); `None`: agent targets run statelessly.
    pub agents: Option<hearth_agent::Agents>,
    /// Set when shutdown began: `/ready` answers 503.
    pub draining: Arc<AtomicBool>,
    /// Why no model of the default chain can answer (`/ready` answers 503 with it), computed
    /// from the config when the state is built ([`ready::not_ready_reason`]).
    pub not_ready: Option<Arc<str>>,
    /// The WebSocket control plane: connections, agent runs, the shutdown signal.
    pub ws: Arc<ws::Hub>,
    /// Which browsers' pages and `Host` names are served.
    pub origin: Arc<origin::Policy>,
    /// Requests and body bytes in flight.
    pub budgets: Arc<limits::Budgets>,
    /// Set at the drain deadline: every open stream ends with its terminal error event.
    pub stop_streams: Arc<tokio::sync::watch::Sender<bool>>,
    /// A per-run key `GET /hearth/*` also accepts (`hearth models status` reads it from the
    /// state directory, so it never sends the gateway token to a stranger on the port).
    pub local_key: Option<hearth_config::SecretString>,
    /// What upstream servers serve (kind, windows) and their token counters
    /// (`/v1/messages/count_tokens`); shared with agent runs.
    pub probes: Arc<hearth_upstream::probe::Probes>,
    /// The chat channels (`channels.*`): their health for `/ready`, `/metrics` and
    /// `channels.status`, the webhook accounts `POST /channels/webhook/<account>` feeds, and the
    /// state directory pairing works on. `None`: no channel is configured.
    pub channels: Option<Arc<hearth_channels::Hub>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("auth", &self.auth).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("auth", &self.auth).finish_non_exhaustive()
    }
}

impl AppState {
    /// A fresh state (starts the router worker threads).
    pub fn new(
        config: Config,
        env: Arc<dyn Env + Send + Sync>,
        auth: Auth,
    ) -> std::io::Result<Self> {
        let origin = origin::Policy::new(&config, true);
        let budgets = limits::Budgets::new(&config.gateway.limits);
        let conversations =
            responses::Conversations::with_budget(config.gateway.limits.responses_store_bytes);
        let probes = Arc::new(hearth_upstream::probe::Probes::new(Arc::clone(&env)));
        let not_ready = ready::not_ready_reason(&config, env.as_ref()).map(Arc::from);
        Ok(AppState(Arc::new(Shared {
            config: Arc::new(ArcSwap::from_pointee(config)),
            router: Arc::new(Router::new().with_probes(Arc::clone(&probes))),
            env,
            auth: Arc::new(auth),
            limiter: Arc::new(auth::Limiter::default()),
            metrics: Arc::new(metrics::Metrics::default()),
            conversations: Arc::new(conversations),
            agents: None,
            draining: Arc::new(AtomicBool::new(false)),
            not_ready,
            ws: Arc::default(),
            origin: Arc::new(origin),
            budgets: Arc::new(budgets),
            stop_streams: Arc::new(tokio::sync::watch::channel(false).0),
            local_key: None,
            probes,
            channels: None,
        })))
    }

    /// The shared part, to change while building the state (copied if already shared).
    pub fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

impl AppState {
    /// Agent targets run as agent turns with sessions in `store`.
    pub fn with_agents(mut self, store: Arc<dyn hearth_store::SessionStore>) -> Self {
        self.shared_mut().agents = Some(hearth_agent::Agents {
            store,
            router: Arc::clone(&self.router),
            env: Arc::clone(&self.env),
            probes: Some(Arc::clone(&self.probes)),
        });
        self
    }
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> AxumRouter {
    let authed = AxumRouter::new()
        .route("/v1/chat/completions", post(api::handle::<chat::Chat>))
        .route("/v1/responses", post(api::handle::<responses::Responses>))
        .route("/v1/messages", post(api::handle::<messages::Messages>))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get_one))
        .route("/metrics", get(metrics_text))
        .route("/hearth/cooldowns", get(cooldowns_json))
        .route("/hearth/status", get(status::status))
        .route("/hearth/channels", get(channels_json))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require));
    AxumRouter::new()
        // The WebSocket control plane authenticates in its `connect` frame, not by header.
        .route("/", get(ws::upgrade).fallback(not_found))
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/ready", get(ready))
        .route("/readyz", get(ready))
        // Signed by the webhook's own secret (HMAC), not the gateway token.
        .route(CHANNEL_WEBHOOK_ROUTE, post(channel_webhook))
        .merge(authed)
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        // One gate around every route: metrics see everything; origin and host checks run
        // before the limits, which run before auth, routing and any handler.
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
        // `limits::admit` reads bodies within `gateway.limits.maxBodyBytes`.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `app` on `listener` (TCP_NODELAY on every connection, the connection limits of
/// `gateway.limits`) until `shutdown` resolves, then drains: open requests and streams get
/// `gateway.limits.drainTimeoutMs` to finish, after which streams end with a terminal error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mut state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bound: SocketAddr = listener.local_addr()?;
    let config = state.config.load_full();
    state.shared_mut().origin = Arc::new(origin::Policy::new(&config, bound.ip().is_loopback()));
    conn::run(listener, app(state.clone()), state, shutdown).await
}

/// What every request passes first, in one layer: the origin checks, the limits (and auth on
/// the headers of a POST), the route, and the request's metrics.
async fn gate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let route: &'static str =
        match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
            Some("/") if upgrade => "ws",
            Some("/v1/chat/completions") => "chat_completions",
            Some("/v1/responses") => "responses",
            Some("/v1/messages") => "messages",
            Some("/v1/messages/count_tokens") => "count_tokens",
            Some("/v1/models") | Some("/v1/models/{*id}") => "models",
            Some("/health") | Some("/healthz") => "health",
            Some("/ready") | Some("/readyz") => "ready",
            Some("/metrics") => "metrics",
            Some("/hearth/cooldowns") => "cooldowns",
            Some("/hearth/channels") => "channels",
            Some(CHANNEL_WEBHOOK_ROUTE) => "channel_webhook",
            _ => "other",
        };
    let request_id = telemetry::request_id(request.headers());
    let record = telemetry::Record::begin(&request, route, &request_id);
    let mut response = match origin::screen(&app, &request) {
        Err(answer) => *answer,
        Ok(cross) => {
            let mut response =
                telemetry::scope(record.clone(), limits::admit(&app, request, next)).await;
            origin::decorate(&mut response, cross);
            response
        }
    };
    app.metrics.observe_request(route, response.status().as_u16(), started.elapsed());
    telemetry::respond(record, request_id, &mut response);
    response
}

async fn health() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"ok": true, "status": "live"}))
}

async fn ready(State(app): State<AppState>) -> Response {
    let (status, mut body) = if app.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"ok": false, "status": "draining"}))
    } else if let Some(reason) = &app.not_ready {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ok": false, "status": "not_ready", "reason": &**reason}),
        )
    } else {
        (StatusCode::OK, serde_json::json!({"ok": true, "status": "ready"}))
    };
    // Channels are detail: a disconnected channel does not make the API unready.
    if let Some(hub) = &app.channels {
        body["channels"] = serde_json::json!(hub.status());
    }
    json_response(status, &body)
}

/// Where the webhook channel's inbound requests arrive.
pub const CHANNEL_WEBHOOK_ROUTE: &str = "/channels/webhook/{account}";
/// The path prefix of [`CHANNEL_WEBHOOK_ROUTE`] (outside the gateway's token auth).
pub const CHANNEL_WEBHOOK_PREFIX: &str = "/channels/webhook/";

/// `POST /channels/webhook/<account>`: verified and journaled by the channel (202), or refused
/// with a JSON error naming what is wrong.
async fn channel_webhook(
    State(app): State<AppState>,
    axum::extract::Path(account): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let refuse = |status: StatusCode, code: &str, message: &str| {
        json_response(
            status,
            &serde_json::json!({"ok": false, "error": {"code": code, "message": message}}),
        )
    };
    let Some(webhook) = app.channels.as_ref().and_then(|hub| hub.webhook(&account)) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "unknown_account",
            "no webhook channel account of that name runs here (channels.webhook)",
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match webhook
        .accept(
            header(hearth_channels::webhook::HEADER_TIMESTAMP),
            header(hearth_channels::webhook::HEADER_SIGNATURE),
            &body,
        )
        .await
    {
        Ok(id) => json_response(StatusCode::ACCEPTED, &serde_json::json!({"ok": true, "id": id})),
        Err(refusal) => json_response(
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST),
            &refusal.body(),
        ),
    }
}

/// Every channel account's status (`hearth channels status`).
async fn channels_json(State(app): State<AppState>) -> Response {
    let rows = app.channels.as_ref().map(|hub| hub.status()).unwrap_or_default();
    json_response(StatusCode::OK, &serde_json::json!({ "channels": rows }))
}

async fn metrics_text(State(app): State<AppState>) -> Response {
    let channels = app.channels.as_ref().map(|hub| hub.status()).unwrap_or_default();
    let text = app.metrics.encode_with_channels(&app.router.cooldowns(), &channels);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// The router's cooldowns as JSON (what `hearth models status` shows of a running gateway).
async fn cooldowns_json(State(app): State<AppState>) -> Response {
    json_response(StatusCode::OK, &serde_json::json!({ "cooldowns": app.router.cooldowns() }))
}

async fn method_not_allowed(request: Request) -> Response {
    let shape = auth::shape_of_request(&request);
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!(
            "{} is not allowed on {}",
            request.method(),
            error::excerpt(request.uri().path(), 200)
        ),
    )
    .with_code("method_not_allowed")
    .shaped(shape)
    .into_response()
}

/// The fallback: the chat page's files under a `gateway.controlUi.basePath` other than `/`,
/// else a 404 in the caller's shape.
async fn fallback(State(app): State<AppState>, request: Request) -> Response {
    if let Some(page) = webchat::serve(&app, &request) {
        return page;
    }
    not_found(request).await
}

pub(crate) async fn not_found(request: Request) -> Response {
    let shape = auth::shape_of_request(&request);
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no route for {} {}", request.method(), error::excerpt(request.uri().path(), 200)),
    )
    .with_code("unknown_url")
    .shaped(shape)
    .into_response()
}

/// A JSON body with `status`.
pub(crate) fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
                .into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            format!("cannot encode the response: {e}"),
        )
        .into_response(),
    }
}

/// A request body, or the error (413 over the limit) in the caller's shape.
pub(crate) fn body_or_error(
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
    shape: Shape,
) -> Result<bytes::Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let err = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "invalid_request_error",
                format!("the request body is larger than {} MB", MAX_BODY_BYTES / (1024 * 1024)),
            )
            .with_code("request_too_large")
        } else {
            ApiError::new(status, "invalid_request_error", rejection.body_text())
        };
        err.shaped(shape)
    })
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random id with `prefix` (`chatcmpl-`, `resp_`, `msg_`, …).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}
