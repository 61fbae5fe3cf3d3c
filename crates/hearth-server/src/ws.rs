//! The WebSocket control plane on the gateway's one port: OpenClaw's gateway protocol 4 (a
//! subset). `GET /` with `Upgrade: websocket` opens a connection; the server sends
//! `connect.challenge`, the client's first frame is a `connect` request that carries the
//! credential, and then `req`/`res` and `event` frames flow. Decisions: `docs/gateway.md`.
//!
//! Invariants kept here:
//! - Nothing gets past the handshake but a well-formed `connect` with a valid credential; a
//!   frame before it is at most 64 KiB, and the handshake ends within 15 s.
//! - Events on one connection carry `seq` 1, 2, 3, … in the order they are written: `Outbox`
//!   numbers an event under the lock that queues it.
//! - An agent run belongs to the gateway, not to the connection that started it: it runs to its
//!   end (the answer is persisted) when that connection closes, and its `idempotencyKey` finds it
//!   again, from any connection, until 10 minutes after it ended.
//! - Reasoning never reaches `assistant` events (Invariant 2).
//! - The gateway buffers at most `maxBufferedBytes` for a client that does not read; past that
//!   the client is disconnected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hearth_config::{Config, RefError};
use hearth_store::{Content, Entry, SessionSummary};
use hearth_upstream::{Event, Prompt};
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};

use crate::error::ApiError;
use crate::plan::Plan;
use crate::{AppState, auth, models, relay};

/// The protocol version spoken (OpenClaw's `PROTOCOL_VERSION`); clients must include it.
pub const PROTOCOL_VERSION: u64 = 4;
/// Frames before the handshake completes are at most this long.
pub const MAX_PREAUTH_PAYLOAD_BYTES: usize = 64 * 1024;
/// Frames after the handshake are at most this long (`hello-ok.policy.maxPayload`).
pub const MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;
/// Bytes queued for a client that does not read before it is disconnected
/// (`hello-ok.policy.maxBufferedBytes`).
pub const MAX_BUFFERED_BYTES: usize = 50 * 1024 * 1024;
/// `tick` events come this often after the handshake (`hello-ok.policy.tickIntervalMs`).
pub const TICK_INTERVAL: Duration = Duration::from_secs(15);
/// The `connect` request must arrive within this long of the upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// A finished agent run (its result, its idempotency key) is kept this long for `agent.wait`
/// and for retries.
pub const RUN_RETENTION: Duration = Duration::from_secs(600);
/// `agent.wait` waits this long unless `timeoutMs` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Methods a connection can call (`hello-ok.features.methods`).
pub const METHODS: &[&str] = &[
    "health",
    "models.list",
    "agents.list",
    "sessions.list",
    "sessions.reset",
    "sessions.compact",
    "chat.history",
    "agent",
    "agent.wait",
    "channels.status",
    "pairing.list",
    "pairing.approve",
];
/// Wire contracts served (`hello-ok.features.capabilities`, OpenClaw's `GATEWAY_SERVER_CAPS`):
/// `published-model-catalog` is `models.list` with `view`, `provider`, `includeDetails`,
/// `preparedOnly` and `refresh` (hearth's catalog is its config: always published).
pub const CAPABILITIES: &[&str] = &["published-model-catalog"];
/// Events a connection can receive (`hello-ok.features.events`).
pub const EVENTS: &[&str] = &["connect.challenge", "tick", "agent", "shutdown"];
/// The operator scopes a shared-secret connection holds unless it asks for fewer.
pub const OPERATOR_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.approvals",
    "operator.pairing",
    "operator.read",
    "operator.talk.secrets",
    "operator.write",
];

/// `agent.wait` waits at most this long, whatever `timeoutMs` says.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// `agent.wait` requests pending at once on one connection.
const MAX_PENDING_WAITS: usize = 64;
/// Agent runs going at once, over every connection.
const MAX_ACTIVE_RUNS: usize = 256;
/// Finished runs remembered at most (the oldest are forgotten first).
const MAX_FINISHED_RUNS: usize = 256;
/// The final answers of finished runs are kept within this many bytes (oldest dropped first).
const MAX_FINISHED_BYTES: usize = 32 * 1024 * 1024;
/// How long the last frames and the close frame get to reach a closing client.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Request ids, idempotency keys and session keys are at most this long.
const MAX_KEY_CHARS: usize = 512;
const DEFAULT_SESSIONS_LIMIT: u64 = 100;
const DEFAULT_HISTORY_LIMIT: u64 = 200;
const MAX_LIMIT: u64 = 1000;
/// A `chat.history` message longer than this is replaced by a placeholder.
const MAX_HISTORY_TEXT_BYTES: usize = 256 * 1024;

// === Hub ===

/// The WebSocket side of the gateway, shared by every connection: open connections, agent runs
/// with their idempotency keys, and the shutdown signal.
#[derive(Debug)]
pub struct Hub {
    started: Instant,
    activity: watch::Sender<Activity>,
    shutdown: watch::Sender<bool>,
    runs: Mutex<Runs>,
}

/// What keeps the hub busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Activity {
    connections: usize,
    runs: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            started: Instant::now(),
            activity: watch::channel(Activity::default()).0,
            shutdown: watch::channel(false).0,
            runs: Mutex::default(),
        }
    }
}

impl Hub {
    /// Tells every connection that the gateway is shutting down: each sends a `shutdown` event
    /// and closes with 1012. Agent runs go on to their end.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once no connection is open and no agent run is going.
    pub async fn idle(&self) {
        let mut activity = self.activity.subscribe();
        let _ = activity.wait_for(|a| a.connections == 0 && a.runs == 0).await;
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.activity.borrow().connections
    }

    /// Agent runs going now.
    pub fn active_runs(&self) -> usize {
        self.activity.borrow().runs
    }

    fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The run whose id is the idempotency key `key` (OpenClaw's run id is the request's
    /// `idempotencyKey`), or a new one made by `make`; `true` when it is new.
    fn admit(&self, key: &str, make: impl FnOnce() -> Run) -> Result<(Arc<Run>, bool), RpcError> {
        let mut runs = lock(&self.runs);
        runs.prune(Instant::now());
        if let Some(run) = runs.by_id.get(key) {
            return Ok((Arc::clone(run), false));
        }
        if runs.by_id.values().filter(|r| !r.ended()).count() >= MAX_ACTIVE_RUNS {
            return Err(RpcError::unavailable(format!(
                "{MAX_ACTIVE_RUNS} agent runs are going already; retry when one has ended"
            ))
            .retry_after(Duration::from_secs(1)));
        }
        let run = Arc::new(make());
        runs.by_id.insert(run.id.clone(), Arc::clone(&run));
        Ok((run, true))
    }

    fn run(&self, id: &str) -> Option<Arc<Run>> {
        lock(&self.runs).by_id.get(id).cloned()
    }

    /// Run ids going now, by session key.
    fn active_by_session(&self) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for run in lock(&self.runs).by_id.values().filter(|r| !r.ended()) {
            out.entry(run.session_key.clone()).or_default().push(run.id.clone());
        }
        out
    }
}

/// Agent runs by id (which is their idempotency key).
#[derive(Debug, Default)]
struct Runs {
    by_id: HashMap<String, Arc<Run>>,
}

impl Runs {
    /// Forgets runs that ended more than `RUN_RETENTION` ago, then the oldest finished ones
    /// beyond `MAX_FINISHED_RUNS`.
    fn prune(&mut self, now: Instant) {
        self.by_id.retain(|_, run| {
            run.finished_at().is_none_or(|at| now.duration_since(at) < RUN_RETENTION)
        });
        let mut finished: Vec<(Instant, String)> = self
            .by_id
            .values()
            .filter_map(|run| run.finished_at().map(|at| (at, run.id.clone())))
            .collect();
        finished.sort();
        if finished.len() > MAX_FINISHED_RUNS {
            for (_, id) in finished.drain(..finished.len() - MAX_FINISHED_RUNS) {
                self.by_id.remove(&id);
            }
        }
        // Then by bytes: the newest answers stay.
        let mut bytes: usize = finished
            .iter()
            .filter_map(|(_, id)| self.by_id.get(id))
            .map(|r| r.result_bytes())
            .sum();
        for (_, id) in &finished {
            if bytes <= MAX_FINISHED_BYTES {
                break;
            }
            if let Some(run) = self.by_id.remove(id) {
                bytes = bytes.saturating_sub(run.result_bytes());
            }
        }
    }
}

/// Counts one open connection (and the `ws_connections` gauge) or one running agent run for
/// as long as it lives.
struct Presence {
    hub: Arc<Hub>,
    run: bool,
    gauge: Option<Gauge>,
}

impl Presence {
    fn connection(app: &AppState) -> Presence {
        app.ws.activity.send_modify(|a| a.connections += 1);
        app.metrics.ws_connections.inc();
        Presence {
            hub: Arc::clone(&app.ws),
            run: false,
            gauge: Some(app.metrics.ws_connections.clone()),
        }
    }

    fn run(hub: &Arc<Hub>) -> Presence {
        hub.activity.send_modify(|a| a.runs += 1);
        Presence { hub: Arc::clone(hub), run: true, gauge: None }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let run = self.run;
        self.hub.activity.send_modify(|a| {
            if run {
                a.runs = a.runs.saturating_sub(1);
            } else {
                a.connections = a.connections.saturating_sub(1);
            }
        });
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
    }
}

// === Upgrade and connection ===

/// `GET /`: a WebSocket upgrade opens a control-plane connection (no HTTP auth: the credential
/// comes in `connect`); a request without `Upgrade` gets the usual 404.
pub async fn upgrade(State(app): State<AppState>, request: Request) -> Response {
    if !request.headers().contains_key(header::UPGRADE) {
        // A plain GET of `/` is the chat page (`webchat.rs`), when it is on.
        if let Some(page) = crate::webchat::serve(&app, &request) {
            return page;
        }
        return crate::not_found(request).await;
    }
    let ip = auth::client_ip(request.extensions());
    let (mut parts, _body) = request.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                rejection.status(),
                "invalid_request_error",
                format!("not a valid WebSocket upgrade: {}", rejection.body_text()),
            )
            .with_code("invalid_websocket_upgrade")
            .into_response();
        }
    };
    if app.draining.load(Ordering::SeqCst) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "the gateway is shutting down; reconnect once it has restarted",
        )
        .with_code("draining")
        .into_response();
    }
    ws.max_message_size(MAX_PAYLOAD_BYTES)
        .max_frame_size(MAX_PAYLOAD_BYTES)
        .on_upgrade(move |socket| connection(app, ip, socket))
}

/// Resolves once shutdown began (never, should the hub be gone).
async fn shutdown_began(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How a connection ends.
#[derive(Debug)]
enum End {
    /// The client closed or the socket failed.
    Gone,
    /// Close with this code and reason.
    Close(u16, String),
}

fn policy(reason: &str) -> End {
    End::Close(close_code::POLICY, reason.to_owned())
}

/// One connection: handshake, then requests until either side closes.
async fn connection(app: AppState, ip: IpAddr, socket: WebSocket) {
    let _open = Presence::connection(&app);
    let (sink, mut stream) = socket.split();
    let (outbox, frames) = Outbox::new();
    let mut writer = tokio::spawn(write_frames(sink, frames, Arc::clone(&outbox.0.buffered)));
    let end = match handshake(&app, ip, &outbox, &mut stream).await {
        Ok(conn) => {
            tracing::info!(conn_id = %conn.id, client = %ip, "WebSocket connected.");
            let end = session(&app, &conn, &outbox, &mut stream).await;
            let code = match &end {
                End::Close(code, _) => *code,
                End::Gone => close_code::NORMAL,
            };
            tracing::info!(conn_id = %conn.id, code, "WebSocket closed.");
            end
        }
        Err(end) => end,
    };
    match end {
        End::Close(code, reason) => outbox.close(code, &reason),
        End::Gone => outbox.close(close_code::NORMAL, ""),
    }
    if tokio::time::timeout(CLOSE_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// Writes queued frames in order until a close frame is written or the client is gone.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut frames: mpsc::UnboundedReceiver<Message>,
    buffered: Arc<AtomicUsize>,
) {
    while let Some(message) = frames.recv().await {
        let (len, last) = match &message {
            Message::Text(text) => (text.len(), false),
            Message::Close(_) => (0, true),
            _ => (0, false),
        };
        let sent = sink.send(message).await;
        buffered.fetch_sub(len, Ordering::AcqRel);
        if sent.is_err() || last {
            break;
        }
    }
}

/// A read error: a frame over `maxPayload` closes with 1009, anything else means the client is
/// gone. (axum hides tungstenite's error type; its capacity error reads "Space limit exceeded".)
fn read_error(error: &axum::Error) -> End {
    if error.to_string().contains("Space limit exceeded") {
        End::Close(close_code::SIZE, format!("frames are limited to {MAX_PAYLOAD_BYTES} bytes"))
    } else {
        End::Gone
    }
}

/// A connection past its handshake.
#[derive(Debug)]
struct Conn {
    id: String,
    scopes: Vec<&'static str>,
}

impl Conn {
    /// Whether the connection holds `scope` (admin holds every scope, write holds read).
    fn holds(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| {
            *s == scope
                || *s == "operator.admin"
                || (*s == "operator.write" && scope == "operator.read")
        })
    }
}

/// Sends the challenge and answers the `connect` request: the connection, or how it ends.
async fn handshake(
    app: &AppState,
    ip: IpAddr,
    outbox: &Outbox,
    stream: &mut SplitStream<WebSocket>,
) -> Result<Conn, End> {
    outbox
        .unnumbered_event("connect.challenge", json!({"nonce": crate::new_id(""), "ts": now_ms()}));
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut shutdown = app.ws.shutdown.subscribe();
    let (size, text) = loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, stream.next()) => next,
            () = shutdown_began(&mut shutdown) => {
                return Err(End::Close(close_code::RESTART, "the gateway is shutting down".into()));
            }
        };
        match next {
            Err(_) => {
                return Err(policy("connect handshake timed out: send `connect` within 15 s"));
            }
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return Err(End::Gone),
            Ok(Some(Err(e))) => return Err(read_error(&e)),
            Ok(Some(Ok(Message::Text(text)))) => break (text.len(), Some(text)),
            Ok(Some(Ok(Message::Binary(bytes)))) => break (bytes.len(), None),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
        }
    };
    if size > MAX_PREAUTH_PAYLOAD_BYTES {
        return Err(End::Close(
            close_code::SIZE,
            format!("frames before connect are limited to {MAX_PREAUTH_PAYLOAD_BYTES} bytes"),
        ));
    }
    let Some(text) = text else {
        return Err(policy("binary frames are not supported: send JSON text frames"));
    };
    let (id, params) = connect_request(text.as_str()).map_err(policy)?;
    match accept(app, ip, &params) {
        Ok(conn) => {
            outbox.res_ok(&id, hello(app, &conn));
            Ok(conn)
        }
        Err(refusal) => {
            outbox.res_err(&id, &refusal.error);
            Err(End::Close(refusal.close, refusal.reason.to_owned()))
        }
    }
}

/// The first frame's id and params, or why it is not a `connect` request.
fn connect_request(text: &str) -> Result<(Value, Map<String, Value>), &'static str> {
    let frame: Value = serde_json::from_str(text)
        .map_err(|_| "invalid frame: the first frame must be a JSON `connect` request")?;
    let id = request_id(&frame);
    match (frame.get("type").and_then(Value::as_str), frame.get("method"), id) {
        (Some("req"), Some(Value::String(method)), Some(id)) if method == "connect" => {
            let params =
                frame.get("params").and_then(Value::as_object).cloned().unwrap_or_default();
            Ok((id, params))
        }
        _ => Err(
            "the first frame must be a `connect` request: {type:\"req\", id, method:\"connect\", params}",
        ),
    }
}

/// A refused `connect`: the error answered, then the close.
#[derive(Debug)]
struct Refusal {
    error: RpcError,
    close: u16,
    reason: &'static str,
}

/// Checks the `connect` params: protocol range, role, credential.
fn accept(app: &AppState, ip: IpAddr, params: &Map<String, Value>) -> Result<Conn, Refusal> {
    let refuse = |error: RpcError, reason: &'static str| Refusal {
        error,
        close: close_code::POLICY,
        reason,
    };
    let (min, max) = match (
        params.get("minProtocol").and_then(Value::as_u64),
        params.get("maxProtocol").and_then(Value::as_u64),
    ) {
        (Some(min), Some(max)) => (min, max),
        _ => {
            return Err(refuse(
                RpcError::invalid(format!(
                    "invalid connect params: minProtocol and maxProtocol must be integers (this gateway speaks protocol {PROTOCOL_VERSION})"
                )),
                "invalid connect params",
            ));
        }
    };
    if !(min..=max).contains(&PROTOCOL_VERSION) {
        return Err(Refusal {
            error: RpcError::invalid("protocol mismatch").with_details(json!({
                "code": "PROTOCOL_MISMATCH",
                "expectedProtocol": PROTOCOL_VERSION,
                "minProtocol": min,
                "maxProtocol": max,
            })),
            close: close_code::PROTOCOL,
            reason: "protocol mismatch",
        });
    }
    match params.get("role") {
        None | Some(Value::Null) => {}
        Some(Value::String(role)) if role == "operator" => {}
        Some(role) => {
            return Err(refuse(
                RpcError::invalid(format!(
                    "unsupported role {role}: this gateway accepts operator clients only"
                )),
                "unsupported role",
            ));
        }
    }
    check_credential(app, ip, params).map_err(|error| {
        let reason = if error.retry_after.is_some() {
            "too many failed authentication attempts"
        } else {
            "unauthorized"
        };
        refuse(error, reason)
    })?;
    Ok(Conn { id: crate::new_id("conn-"), scopes: granted_scopes(params) })
}

/// The credential of `connect` (`auth.token` in token mode, `auth.password` in password mode)
/// checked like the HTTP bearer: constant time, failed attempts limited per client address.
fn check_credential(
    app: &AppState,
    ip: IpAddr,
    params: &Map<String, Value>,
) -> Result<(), RpcError> {
    let (field, missing, mismatch) = match app.auth.mode() {
        "password" => ("password", "AUTH_PASSWORD_MISSING", "AUTH_PASSWORD_MISMATCH"),
        _ => ("token", "AUTH_TOKEN_MISSING", "AUTH_TOKEN_MISMATCH"),
    };
    let given = params
        .get("auth")
        .and_then(|a| a.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mode = app.auth.mode();
    match auth::verify(&app.auth, &app.limiter, ip, given) {
        auth::Verdict::Allowed => Ok(()),
        auth::Verdict::Missing => Err(RpcError::invalid(format!(
            "unauthorized: gateway {mode} missing (send it in connect params as auth.{field})"
        ))
        .with_details(json!({
            "code": missing,
            "authReason": format!("{field}_missing"),
            "recommendedNextStep": "update_auth_configuration",
        }))),
        auth::Verdict::Mismatch => Err(RpcError::invalid(format!(
            "unauthorized: gateway {mode} mismatch (send the gateway.auth.{field} the gateway was started with)"
        ))
        .with_details(json!({
            "code": mismatch,
            "authReason": format!("{field}_mismatch"),
            "recommendedNextStep": "update_auth_credentials",
        }))),
        auth::Verdict::Locked(remaining) => Err(RpcError::invalid(
            "unauthorized: too many failed authentication attempts (retry later)",
        )
        .with_details(json!({
            "code": "AUTH_RATE_LIMITED",
            "authReason": "rate_limited",
            "recommendedNextStep": "wait_then_retry",
        }))
        .retry_after(remaining)),
    }
}

/// The operator scopes asked for in `connect` (unknown names dropped), or all of them when the
/// client asks for none in particular.
fn granted_scopes(params: &Map<String, Value>) -> Vec<&'static str> {
    match params.get("scopes").and_then(Value::as_array) {
        None => OPERATOR_SCOPES.to_vec(),
        Some(asked) => OPERATOR_SCOPES
            .iter()
            .copied()
            .filter(|scope| asked.iter().any(|a| a.as_str() == Some(scope)))
            .collect(),
    }
}

/// The `hello-ok` payload.
fn hello(app: &AppState, conn: &Conn) -> Value {
    json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {"version": env!("CARGO_PKG_VERSION"), "connId": conn.id},
        "features": {"methods": METHODS, "events": EVENTS, "capabilities": CAPABILITIES},
        "snapshot": {"presence": [], "health": health(app), "uptimeMs": app.ws.uptime_ms()},
        "auth": {"role": "operator", "scopes": conn.scopes},
        "policy": {
            "maxPayload": MAX_PAYLOAD_BYTES,
            "maxBufferedBytes": MAX_BUFFERED_BYTES,
            "tickIntervalMs": TICK_INTERVAL.as_millis() as u64,
        },
    })
}

/// Requests until the client leaves, the gateway shuts down or the client stops reading.
async fn session(
    app: &AppState,
    conn: &Conn,
    outbox: &Outbox,
    stream: &mut SplitStream<WebSocket>,
) -> End {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + TICK_INTERVAL, TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = app.ws.shutdown.subscribe();
    loop {
        tokio::select! {
            next = stream.next() => match next {
                None | Some(Ok(Message::Close(_))) => return End::Gone,
                Some(Err(e)) => return read_error(&e),
                Some(Ok(Message::Text(text))) => handle_frame(app, conn, outbox, text.as_str()).await,
                // Binary frames carry no request id to answer; pings are answered by axum.
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
            },
            _ = tick.tick() => outbox.event("tick", json!({"ts": now_ms()})),
            () = shutdown_began(&mut shutdown) => {
                outbox.event("shutdown", json!({"reason": "draining"}));
                return End::Close(close_code::RESTART, "the gateway is shutting down".into());
            }
            () = outbox.overflowed() => {
                return End::Close(
                    close_code::POLICY,
                    format!("slow consumer: more than {MAX_BUFFERED_BYTES} bytes unread"),
                );
            }
        }
    }
}

// === Frames ===

/// A request's `id`: a string (as OpenClaw clients send) or a number, echoed as given.
fn request_id(frame: &Value) -> Option<Value> {
    match frame.get("id")? {
        Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_KEY_CHARS => {
            Some(Value::String(s.clone()))
        }
        n @ Value::Number(_) => Some(n.clone()),
        _ => None,
    }
}

/// One text frame after the handshake. A frame without an id has nobody to answer and is
/// dropped; any other problem is answered as an error `res`.
async fn handle_frame(app: &AppState, conn: &Conn, outbox: &Outbox, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
    let Some(id) = request_id(&frame) else { return };
    let (method, params) = match parse_request(&frame) {
        Ok(request) => request,
        Err(e) => return outbox.res_err(&id, &e),
    };
    if let Some(result) = call(app, conn, outbox, &id, method, params).await {
        match result {
            Ok(payload) => outbox.res_ok(&id, payload),
            Err(e) => outbox.res_err(&id, &e),
        }
    }
}

/// The method and params of a `req` frame.
fn parse_request(frame: &Value) -> Result<(&str, Map<String, Value>), RpcError> {
    if frame.get("type").and_then(Value::as_str) != Some("req") {
        return Err(RpcError::invalid(
            "invalid frame: expected {type:\"req\", id, method, params}",
        ));
    }
    let method =
        frame.get("method").and_then(Value::as_str).filter(|m| !m.is_empty()).ok_or_else(|| {
            RpcError::invalid("invalid frame: `method` must be a non-empty string")
        })?;
    let params = match frame.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params.clone(),
        Some(_) => return Err(RpcError::invalid("invalid frame: `params` must be an object")),
    };
    Ok((method, params))
}

/// Runs one method. `None`: the method answers by itself (later).
async fn call(
    app: &AppState,
    conn: &Conn,
    outbox: &Outbox,
    id: &Value,
    method: &str,
    params: Map<String, Value>,
) -> Option<Result<Value, RpcError>> {
    let scope = match method {
        "connect" => {
            return Some(Err(RpcError::invalid(
                "already connected: `connect` is only the first frame",
            )));
        }
        "agent" | "sessions.reset" | "sessions.compact" => "operator.write",
        "pairing.list" | "pairing.approve" => "operator.admin",
        m if METHODS.contains(&m) => "operator.read",
        other => return Some(Err(RpcError::invalid(format!("unknown method: {other}")))),
    };
    if !conn.holds(scope) {
        return Some(Err(RpcError::new("FORBIDDEN", format!("missing scope: {scope}"))
            .with_details(json!({
                "code": "MISSING_SCOPE",
                "missingScope": scope,
                "requiredScopes": [scope],
            }))));
    }
    Some(match method {
        "health" => check_keys(&params, method, &[]).map(|()| health(app)),
        "models.list" => models_list(app, &app.config.load(), &params),
        "agents.list" => check_keys(&params, method, &[]).map(|()| agents_list(&app.config.load())),
        "sessions.list" => sessions_list(app, &params).await,
        "chat.history" => chat_history(app, &params).await,
        "sessions.reset" => sessions_reset(app, &params).await,
        "sessions.compact" => sessions_compact(app, &params).await,
        "channels.status" => check_keys(&params, method, &[]).map(|()| {
            json!({"channels": app.channels.as_ref().map(|hub| hub.status()).unwrap_or_default()})
        }),
        "pairing.list" | "pairing.approve" => pairing(app, method, &params),
        "agent.wait" => match agent_wait(app, outbox, id, &params) {
            Ok(()) => return None,
            Err(e) => Err(e),
        },
        "agent" => match agent(app, outbox, id, &params) {
            Ok(()) => return None,
            Err(e) => Err(e),
        },
        other => Err(RpcError::invalid(format!("unknown method: {other}"))),
    })
}

/// `pairing.list {channel, account?}` and `pairing.approve {channel, code, account?}`: the
/// same files `hearth pairing` works on.
fn pairing(app: &AppState, method: &str, params: &Map<String, Value>) -> Result<Value, RpcError> {
    let approve = method == "pairing.approve";
    let accepted: &[&str] =
        if approve { &["channel", "account", "code"] } else { &["channel", "account"] };
    check_keys(params, method, accepted)?;
    let Some(hub) = app.channels.as_ref() else {
        return Err(RpcError::invalid("no channel is configured (channels.*)"));
    };
    let channel = opt_str(params, "channel")?
        .and_then(hearth_config::ChannelKind::parse)
        .ok_or_else(|| RpcError::invalid("`channel` must be one of: matrix, telegram, webhook"))?;
    let account = opt_str(params, "account")?.unwrap_or("default");
    if !hub.accounts.iter().any(|a| a.kind == channel && a.account == account) {
        return Err(RpcError::invalid(format!(
            "{} has no account `{account}` in the config",
            channel.as_str()
        )));
    }
    let store =
        hearth_channels::pairing::PairingStore::new(&hub.state_dir, channel.as_str(), account);
    let now = std::time::SystemTime::now();
    if approve {
        let code =
            opt_str(params, "code")?.ok_or_else(|| RpcError::invalid("`code` is required"))?;
        match store.approve(code, now) {
            Ok(done) => Ok(
                json!({"approved": true, "channel": channel.as_str(), "account": account, "id": done.id}),
            ),
            Err(e @ hearth_channels::pairing::ApproveError::Unknown(_)) => {
                Err(RpcError::new("NOT_FOUND", e.to_string()))
            }
            Err(e) => Err(RpcError::new("UNAVAILABLE", e.to_string())),
        }
    } else {
        store
            .pending(now)
            .map(|requests| json!({"channel": channel.as_str(), "account": account, "requests": requests}))
            .map_err(|e| RpcError::new("UNAVAILABLE", format!("cannot read the pairing files: {e}")))
    }
}

/// Frames queued for one connection's writer, with the connection's event `seq`.
#[derive(Debug, Clone)]
struct Outbox(Arc<OutboxInner>);

#[derive(Debug)]
struct OutboxInner {
    frames: mpsc::UnboundedSender<Message>,
    /// The last event `seq`; its lock also keeps events in `seq` order in the queue.
    seq: Mutex<u64>,
    /// Bytes queued and not yet written.
    buffered: Arc<AtomicUsize>,
    overflowed: AtomicBool,
    overflow: Notify,
    /// `agent.wait` requests not answered yet.
    waits: AtomicUsize,
}

impl Outbox {
    fn new() -> (Outbox, mpsc::UnboundedReceiver<Message>) {
        let (frames, rx) = mpsc::unbounded_channel();
        let inner = OutboxInner {
            frames,
            seq: Mutex::new(0),
            buffered: Arc::new(AtomicUsize::new(0)),
            overflowed: AtomicBool::new(false),
            overflow: Notify::new(),
            waits: AtomicUsize::new(0),
        };
        (Outbox(Arc::new(inner)), rx)
    }

    /// Queues a text frame. Past `MAX_BUFFERED_BYTES` unwritten, nothing more is queued and the
    /// connection is told to close.
    fn push(&self, text: String) {
        let inner = &self.0;
        if inner.overflowed.load(Ordering::Acquire) {
            return;
        }
        let len = text.len();
        if inner.buffered.fetch_add(len, Ordering::AcqRel) + len > MAX_BUFFERED_BYTES {
            inner.buffered.fetch_sub(len, Ordering::AcqRel);
            inner.overflowed.store(true, Ordering::Release);
            inner.overflow.notify_one();
            return;
        }
        if inner.frames.send(Message::Text(text.into())).is_err() {
            inner.buffered.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// Whether frames can still reach the client.
    fn is_open(&self) -> bool {
        !self.0.frames.is_closed() && !self.0.overflowed.load(Ordering::Acquire)
    }

    /// A successful `res`; one over `maxPayload` becomes an error `res` instead.
    fn res_ok(&self, id: &Value, payload: Value) {
        let frame = json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string();
        if frame.len() > MAX_PAYLOAD_BYTES {
            let error = RpcError::invalid(format!(
                "the response would be {} bytes, over maxPayload ({MAX_PAYLOAD_BYTES}); ask for less (a smaller `limit`)",
                frame.len()
            ));
            return self.res_err(id, &error);
        }
        self.push(frame);
    }

    fn res_err(&self, id: &Value, error: &RpcError) {
        self.push(
            json!({"type": "res", "id": id, "ok": false, "error": error.to_json()}).to_string(),
        );
    }

    /// An event with the connection's next `seq`.
    fn event(&self, event: &str, payload: Value) {
        let mut seq = lock(&self.0.seq);
        *seq += 1;
        self.push(
            json!({"type": "event", "event": event, "payload": payload, "seq": *seq}).to_string(),
        );
    }

    /// An event outside the numbered stream (the challenge, before the handshake).
    fn unnumbered_event(&self, event: &str, payload: Value) {
        self.push(json!({"type": "event", "event": event, "payload": payload}).to_string());
    }

    /// Queues the close frame (the writer stops after it).
    fn close(&self, code: u16, reason: &str) {
        let frame = CloseFrame { code, reason: close_reason(reason).into() };
        let _ = self.0.frames.send(Message::Close(Some(frame)));
    }

    /// Resolves once the client has more than `MAX_BUFFERED_BYTES` unread.
    async fn overflowed(&self) {
        while !self.0.overflowed.load(Ordering::Acquire) {
            self.0.overflow.notified().await;
        }
    }
}

/// A close reason fits in 123 bytes.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

// === Errors and params ===

/// An error `res`: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone)]
struct RpcError {
    code: &'static str,
    message: String,
    /// Boxed: errors travel in `Result`s everywhere here and should stay small.
    details: Option<Box<Value>>,
    retry_after: Option<Duration>,
}

impl RpcError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), details: None, retry_after: None }
    }

    fn invalid(message: impl Into<String>) -> Self {
        RpcError::new("INVALID_REQUEST", message)
    }

    fn unavailable(message: impl Into<String>) -> Self {
        RpcError::new("UNAVAILABLE", message)
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// Retryable after `after`.
    fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The HTTP error of the same failure: a 4xx other than 429 is the caller's
    /// (`INVALID_REQUEST`), the rest `UNAVAILABLE`; the HTTP code and status go in `details`.
    fn from_api(e: &ApiError) -> Self {
        let code = match e.status.as_u16() {
            400..=428 | 430..=499 => "INVALID_REQUEST",
            _ => "UNAVAILABLE",
        };
        let mut error = RpcError::new(code, e.message.clone())
            .with_details(json!({"code": e.code, "status": e.status.as_u16()}));
        error.retry_after = e.retry_after;
        error
    }

    fn to_json(&self) -> Value {
        let mut out = json!({"code": self.code, "message": self.message});
        if let Some(details) = &self.details {
            out["details"] = Value::clone(details);
        }
        if let Some(after) = self.retry_after {
            out["retryable"] = Value::Bool(true);
            out["retryAfterMs"] = json!(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
        }
        out
    }
}

/// Refuses params a method does not take (OpenClaw's schemas are strict).
fn check_keys(
    params: &Map<String, Value>,
    method: &str,
    accepted: &[&str],
) -> Result<(), RpcError> {
    match params.keys().find(|k| !accepted.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) if accepted.is_empty() => {
            Err(RpcError::invalid(format!("unknown param `{key}`: {method} takes no params")))
        }
        Some(key) => Err(RpcError::invalid(format!(
            "unknown param `{key}` for {method} (it takes: {})",
            accepted.join(", ")
        ))),
    }
}

/// A key-like string param (an id, a key, a name), trimmed and at most `MAX_KEY_CHARS` long;
/// absent, null or blank is `None`.
fn opt_str<'p>(params: &'p Map<String, Value>, name: &str) -> Result<Option<&'p str>, RpcError> {
    let value = opt_text(params, name)?;
    if value.is_some_and(|v| v.chars().count() > MAX_KEY_CHARS) {
        return Err(RpcError::invalid(format!(
            "`{name}` is longer than {MAX_KEY_CHARS} characters"
        )));
    }
    Ok(value)
}

/// A free-text string param (a message, a prompt), trimmed; absent, null or blank is `None`.
fn opt_text<'p>(params: &'p Map<String, Value>, name: &str) -> Result<Option<&'p str>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
        Some(_) => Err(RpcError::invalid(format!("`{name}` must be a string"))),
    }
}

/// `value`, or the error that says `name` is required and what it is.
fn required<T>(value: Option<T>, name: &str, what: &str) -> Result<T, RpcError> {
    value.ok_or_else(|| RpcError::invalid(format!("`{name}` is required: {what}")))
}

/// An integer param within `min..=max`.
fn opt_int(
    params: &Map<String, Value>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| (min..=max).contains(n)).map(Some).ok_or_else(|| {
            RpcError::invalid(format!("`{name}` must be an integer from {min} to {max}"))
        }),
    }
}

fn opt_bool(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RpcError::invalid(format!("`{name}` must be true or false"))),
    }
}

/// A session key the caller may use: not in a namespace reserved for hearth itself.
fn session_key_param(params: &Map<String, Value>) -> Result<Option<&str>, RpcError> {
    let key = opt_str(params, "sessionKey")?;
    if let Some(key) = key
        && let Some(problem) = crate::plan::session_key_problem(key)
    {
        return Err(RpcError::invalid(format!("`sessionKey`: {problem}")));
    }
    Ok(key)
}

fn store_error(e: &hearth_store::Error) -> RpcError {
    RpcError::unavailable(format!("session store: {e}"))
}

/// Unix milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// === Methods ===

/// `health`: what `GET /health` and `GET /ready` say, with the WebSocket side's counters.
/// `ok` means the snapshot was produced (OpenClaw's meaning); `ready` is false while draining
/// and while no model of the default chain can answer (`reason` says why).
fn health(app: &AppState) -> Value {
    let draining = app.draining.load(Ordering::SeqCst);
    let status = match (draining, &app.not_ready) {
        (true, _) => "draining",
        (false, Some(_)) => "not_ready",
        (false, None) => "ready",
    };
    json!({
        "ok": true,
        "status": status,
        "live": true,
        "ready": status == "ready",
        "reason": app.not_ready.as_deref().filter(|_| !draining),
        "ts": now_ms(),
        "uptimeMs": app.ws.uptime_ms(),
        "version": env!("CARGO_PKG_VERSION"),
        "sessionStore": app.agents.is_some(),
        "connections": app.ws.connections(),
        "activeRuns": app.ws.active_runs(),
    })
}

/// `models.list {view?, provider?, includeDetails?, preparedOnly?, refresh?}`: the model refs
/// `GET /v1/models` lists (not its agent targets: over WebSocket the agent is `agentId`), as
/// OpenClaw's model choices `{id, name, provider, alias?, contextWindow?, reasoning}`; with
/// `includeDetails`, also `input`, `contextTokens` and `local`; then the models the servers of
/// discovering providers serve (as `GET /v1/models` lists them, with `state`). Every view
/// lists the same rows, and `refresh` has nothing to acquire: the catalog is the config and the
/// probe cache.
fn models_list(
    app: &AppState,
    config: &Config,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    check_keys(
        params,
        "models.list",
        &["view", "provider", "includeDetails", "preparedOnly", "refresh"],
    )?;
    match opt_str(params, "view")? {
        None | Some("default" | "configured" | "provider-config" | "all") => {}
        Some(other) => {
            return Err(RpcError::invalid(format!(
                "unknown view `{other}` (views: default, configured, provider-config, all)"
            )));
        }
    }
    let details = opt_bool(params, "includeDetails")? == Some(true);
    if opt_bool(params, "preparedOnly")? == Some(true) && opt_bool(params, "refresh")? == Some(true)
    {
        return Err(RpcError::invalid("`preparedOnly` and `refresh` cannot both be true"));
    }
    let provider = opt_str(params, "provider")?;
    if let Some(p) = provider
        && !config.providers.keys().any(|id| id.eq_ignore_ascii_case(p))
    {
        return Err(RpcError::invalid(format!("unknown provider `{p}`")));
    }
    let listed: std::collections::HashSet<String> = models::entries(config)
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let mut rows = Vec::new();
    for (model_ref, p, model) in config.rows() {
        if !listed.contains(&model_ref.to_string())
            || provider.is_some_and(|want| !p.id.eq_ignore_ascii_case(want))
        {
            continue;
        }
        let mut row = json!({
            "id": model.id,
            "name": if model.name.is_empty() { &model.id } else { &model.name },
            "provider": p.id,
            "reasoning": model.reasoning,
        });
        if let Some(alias) = config.alias_of(&model_ref) {
            row["alias"] = json!(alias);
        }
        if let Some(window) = model.context_window.filter(|w| *w > 0) {
            row["contextWindow"] = json!(window);
        }
        if details {
            let input: Vec<&str> = model.input.iter().map(|i| i.as_str()).collect();
            row["input"] = json!(input);
            if let Some(tokens) = model.context_tokens.filter(|t| *t > 0) {
                row["contextTokens"] = json!(tokens);
            }
            row["local"] = json!(p.is_local());
        }
        rows.push(row);
    }
    for (p, served) in models::served(app, config) {
        let taken =
            rows.iter().any(|r| r["provider"] == p.as_str() && r["id"] == served.id.as_str());
        if taken || provider.is_some_and(|want| !p.eq_ignore_ascii_case(want)) {
            continue;
        }
        let mut row = json!({"id": served.id, "name": served.id, "provider": p, "reasoning": false,
            "state": served.state.as_str()});
        if let Some(window) = served.context_window.filter(|w| *w > 0) {
            row["contextWindow"] = json!(window);
        }
        if details {
            row["local"] = json!(config.providers.get(&p).is_some_and(|p| p.is_local()));
        }
        rows.push(row);
    }
    Ok(json!({"models": rows}))
}

/// `agents.list`: the configured agents (OpenClaw's implicit `main` when there are none); each
/// agent's sessions are keyed `agent:<id>:<key>`, its default one `main`.
fn agents_list(config: &Config) -> Value {
    let agents: Vec<Value> = if config.agents.is_empty() {
        vec![json!({"id": "main", "kind": "agent"})]
    } else {
        config
            .agents
            .values()
            .map(|a| {
                let mut row = json!({"id": a.id, "kind": "agent"});
                if let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) {
                    row["name"] = json!(name);
                }
                row
            })
            .collect()
    };
    let default = config.default_agent().map_or("main", |a| a.id.as_str());
    json!({"defaultId": default, "mainKey": "main", "scope": "per-sender", "agents": agents})
}

/// `sessions.list {agentId?, limit?}`: current sessions, newest activity first.
async fn sessions_list(app: &AppState, params: &Map<String, Value>) -> Result<Value, RpcError> {
    check_keys(params, "sessions.list", &["agentId", "limit"])?;
    let agent = opt_str(params, "agentId")?;
    let limit = opt_int(params, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_SESSIONS_LIMIT);
    let Some(agents) = &app.agents else {
        return Ok(json!({"sessions": [], "totalCount": 0, "hasMore": false}));
    };
    let all = agents.store.list_sessions(agent).await.map_err(|e| store_error(&e))?;
    let active = app.ws.active_by_session();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let rows: Vec<Value> =
        all.iter().take(limit).map(|s| session_row(s, active.contains_key(&s.key))).collect();
    Ok(json!({"sessions": rows, "totalCount": all.len(), "hasMore": all.len() > limit}))
}

/// `sessions.reset {key, agentId?}`: a new generation under the same key (the old history is
/// kept, archived, and no longer in the model's context), as `hearth sessions reset`;
/// `{ok, key, sessionId}`.
async fn sessions_reset(app: &AppState, params: &Map<String, Value>) -> Result<Value, RpcError> {
    check_keys(params, "sessions.reset", &["key", "agentId"])?;
    let (key, _) = session_to_manage(app, params, "sessions.reset")?;
    let Some(agents) = &app.agents else {
        return Err(RpcError::unavailable("this gateway keeps no sessions"));
    };
    if agents.store.get_session(&key).await.map_err(|e| store_error(&e))?.is_none() {
        return Err(RpcError::invalid(format!("no session `{key}`")));
    }
    let summary = agents
        .store
        .reset(&key, hearth_store::SessionId::now_v7(), hearth_store::Timestamp::now())
        .await
        .map_err(|e| store_error(&e))?;
    Ok(json!({"ok": true, "key": key, "sessionId": summary.session_id.to_string()}))
}

/// `sessions.compact {key, agentId?}`: the session's older turns summarized now, as
/// `hearth sessions compact`; `{ok, key, compacted, summarizedMessages}`.
async fn sessions_compact(app: &AppState, params: &Map<String, Value>) -> Result<Value, RpcError> {
    check_keys(params, "sessions.compact", &["key", "agentId"])?;
    let (key, agent_id) = session_to_manage(app, params, "sessions.compact")?;
    let Some(agents) = &app.agents else {
        return Err(RpcError::unavailable("this gateway keeps no sessions"));
    };
    let config = app.config.load();
    let agent_ref = config.agents.contains_key(&agent_id).then_some(agent_id.as_str());
    let n = agents
        .compact_now(&config, &key, agent_ref)
        .await
        .map_err(|e| RpcError::unavailable(format!("compaction failed: {e}")))?;
    Ok(json!({"ok": true, "key": key, "compacted": n > 0, "summarizedMessages": n}))
}

/// The `key` (and `agentId`) of a session-management call, scoped as `chat.history` scopes
/// `sessionKey`: `(full key, agent id)`.
fn session_to_manage(
    app: &AppState,
    params: &Map<String, Value>,
    method: &str,
) -> Result<(String, String), RpcError> {
    let key = opt_str(params, "key")?
        .ok_or_else(|| RpcError::invalid(format!("`key` is required: the session to {method}")))?;
    if let Some(problem) = crate::plan::session_key_problem(key) {
        return Err(RpcError::invalid(format!("`key`: {problem}")));
    }
    let agent = opt_str(params, "agentId")?;
    let (agent_id, key) = hearth_agent::session_key_for(&app.config.load(), agent, Some(key));
    Ok((key, agent_id))
}

fn session_row(s: &SessionSummary, active: bool) -> Value {
    json!({
        "key": s.key,
        "sessionId": s.session_id.to_string(),
        "agentId": s.agent_id,
        "createdAt": s.created_at.as_unix_millis(),
        "updatedAt": s.updated_at.as_unix_millis(),
        "entryCount": s.entry_count,
        "lastSeq": s.last_seq.get(),
        "compactionCount": s.compaction_count,
        "inputTokens": s.totals.input_tokens,
        "outputTokens": s.totals.output_tokens,
        "costUsd": s.totals.cost_usd,
        "hasActiveRun": active,
    })
}

/// `chat.history {sessionKey, agentId?, limit?}`: the session's transcript for display, the
/// newest `limit` messages, oldest first; reasoning and hearth's own notes left out.
async fn chat_history(app: &AppState, params: &Map<String, Value>) -> Result<Value, RpcError> {
    check_keys(params, "chat.history", &["sessionKey", "agentId", "limit"])?;
    let key = session_key_param(params)?
        .ok_or_else(|| RpcError::invalid("`sessionKey` is required: the session to read"))?;
    let agent = opt_str(params, "agentId")?;
    let limit = opt_int(params, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_HISTORY_LIMIT);
    let config = app.config.load();
    let (agent_id, key) = hearth_agent::session_key_for(&config, agent, Some(key));
    let active = app.ws.active_by_session().remove(&key).unwrap_or_default();
    let empty = json!({
        "sessionKey": key, "agentId": agent_id, "messages": [], "hasMore": false,
        "sessionInfo": {"hasActiveRun": !active.is_empty(), "activeRunIds": active},
    });
    let Some(agents) = &app.agents else { return Ok(empty) };
    let Some(session) = agents.store.get_session(&key).await.map_err(|e| store_error(&e))? else {
        return Ok(empty);
    };
    let entries = agents.store.history(&key, false).await.map_err(|e| store_error(&e))?;
    let messages: Vec<Value> = entries.iter().filter_map(history_row).collect();
    let skip = messages.len().saturating_sub(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(json!({
        "sessionKey": key,
        "sessionId": session.session_id.to_string(),
        "agentId": session.agent_id,
        "messages": &messages[skip..],
        "hasMore": skip > 0,
        "sessionInfo": {"hasActiveRun": !active.is_empty(), "activeRunIds": active},
    }))
}

/// One transcript entry as a display message (OpenClaw's shape: content blocks), or `None` for
/// what is not shown (reasoning, hearth's notes).
fn history_row(entry: &Entry) -> Option<Value> {
    let text = |t: &str| {
        if t.len() > MAX_HISTORY_TEXT_BYTES {
            json!([{"type": "text", "text": "[chat.history omitted: message too large]"}])
        } else {
            json!([{"type": "text", "text": t}])
        }
    };
    let mut row = match &entry.content {
        Content::User { text: t } => json!({"role": "user", "content": text(t)}),
        Content::Assistant { text: t } => {
            json!({"role": "assistant", "content": text(t), "model": entry.meta.model})
        }
        Content::ToolCall { id, name, arguments } => json!({
            "role": "assistant",
            "content": [{"type": "toolCall", "id": id, "name": name, "arguments": arguments}],
        }),
        Content::ToolResult { call_id, content, is_error } => json!({
            "role": "toolResult", "toolCallId": call_id, "isError": is_error, "content": text(content),
        }),
        Content::Compaction { summary, .. } => json!({"role": "system", "content": text(summary)}),
        Content::Reasoning { .. } | Content::SystemNote { .. } => return None,
    };
    row["timestamp"] = json!(entry.created_at.as_unix_millis());
    row["__openclaw"] = match entry.content {
        Content::Compaction { .. } => json!({"seq": entry.seq.get(), "kind": "compaction"}),
        _ => json!({"seq": entry.seq.get()}),
    };
    Some(row)
}

// === Agent runs ===

/// `agent` params, checked.
#[derive(Debug, Clone)]
struct AgentParams {
    idempotency_key: String,
    message: String,
    agent_id: Option<String>,
    session_key: Option<String>,
    model: Option<String>,
    extra_system: Option<String>,
    timeout: Option<Duration>,
    /// `thinking`, one of [`THINKING_LEVELS`]: the turn's thinking level (`prompt.thinking`),
    /// recorded in the final answer's `result.meta.thinking` (docs/gateway.md).
    thinking: Option<&'static str>,
}

/// OpenClaw's thinking levels (`/think`, `openclaw agent --thinking`).
const THINKING_LEVELS: &[&str] =
    &["off", "minimal", "low", "medium", "high", "xhigh", "adaptive", "max", "ultra"];

impl AgentParams {
    const ACCEPTED: &[&str] = &[
        "idempotencyKey",
        "message",
        "agentId",
        "sessionKey",
        "model",
        "provider",
        "extraSystemPrompt",
        "timeout",
        "thinking",
        "to",
        "deliver",
        "bestEffortDeliver",
        "label",
    ];

    /// OpenClaw `agent` params hearth cannot honour, each refused with the reason rather than as
    /// an unknown param.
    const UNSUPPORTED: &[(&str, &str)] = &[
        ("sessionId", "hearth selects a session by `sessionKey` (openclaw agent --session-key)"),
        ("channel", "hearth has no channels yet"),
        ("replyChannel", "hearth has no channels yet"),
        ("replyTo", "hearth has no channels yet"),
        ("replyAccountId", "hearth has no channels yet"),
        ("accountId", "hearth has no channels yet"),
        ("threadId", "hearth has no channels yet"),
        ("attachments", "agent runs over WebSocket take text only"),
    ];

    fn parse(params: &Map<String, Value>) -> Result<AgentParams, RpcError> {
        if let Some((name, why)) = Self::UNSUPPORTED
            .iter()
            .find(|(name, _)| params.get(*name).is_some_and(|v| !v.is_null()))
        {
            return Err(RpcError::invalid(format!("`{name}` is not supported: {why}"))
                .with_details(json!({"code": "UNSUPPORTED_PARAM", "param": name})));
        }
        check_keys(params, "agent", Self::ACCEPTED)?;
        let idempotency_key = required(
            opt_str(params, "idempotencyKey")?,
            "idempotencyKey",
            "a client-chosen key (a UUID) that makes retries start one run only",
        )?;
        let message =
            required(opt_text(params, "message")?, "message", "the user's message for this turn")?;
        // `to` is where a reply would be delivered (a channel recipient); it selects no session
        // here (OpenClaw's default `dmScope: main` puts direct chats in the main session too).
        let to = opt_str(params, "to")?;
        opt_bool(params, "bestEffortDeliver")?;
        if opt_bool(params, "deliver")? == Some(true) {
            let target = to.map(|t| format!(" to `{t}`")).unwrap_or_default();
            return Err(RpcError::invalid(format!(
                "hearth has no channels yet, so it cannot deliver the reply{target}: send deliver:false and read the reply from the final answer"
            ))
            .with_details(json!({"code": "DELIVERY_UNSUPPORTED", "reason": "unknown_channel"})));
        }
        let thinking = match opt_str(params, "thinking")? {
            None => None,
            Some(level) => Some(
                THINKING_LEVELS
                    .iter()
                    .copied()
                    .find(|name| name.eq_ignore_ascii_case(level))
                    .ok_or_else(|| {
                        RpcError::invalid(format!(
                            "unknown thinking level `{level}` (levels: {})",
                            THINKING_LEVELS.join(", ")
                        ))
                    })?,
            ),
        };
        opt_text(params, "label")?;
        let model = match (opt_str(params, "provider")?, opt_str(params, "model")?) {
            (Some(provider), Some(model)) if !model.contains('/') => {
                Some(format!("{provider}/{model}"))
            }
            (Some(_), None) => {
                return Err(RpcError::invalid(
                    "`provider` needs `model` (or send model as provider/model)",
                ));
            }
            (_, model) => model.map(str::to_owned),
        };
        Ok(AgentParams {
            idempotency_key: idempotency_key.to_owned(),
            message: message.to_owned(),
            agent_id: opt_str(params, "agentId")?.map(str::to_owned),
            session_key: session_key_param(params)?.map(str::to_owned),
            model,
            extra_system: opt_text(params, "extraSystemPrompt")?.map(str::to_owned),
            // 0 is OpenClaw's "no timeout of its own": the gateway's run budget still bounds it.
            timeout: opt_int(params, "timeout", 0, relay::RUN_BUDGET.as_secs())?
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            thinking,
        })
    }
}

/// The agent-run plan: the agent (checked), its allowed chain, the session key (`main` when
/// none is given) and a strict model override.
fn agent_plan(config: &Config, params: &AgentParams) -> Result<Plan, RpcError> {
    let agent = match params.agent_id.as_deref() {
        None => config.default_agent().map(|a| a.id.clone()),
        Some(id) if config.agents.contains_key(id) => Some(id.to_owned()),
        // With no agents configured, OpenClaw's implicit agent is `main`.
        Some(id) if config.agents.is_empty() && id.eq_ignore_ascii_case("main") => None,
        Some(id) => {
            return Err(RpcError::from_api(&ApiError::from_ref(&RefError::UnknownAgent(
                id.to_owned(),
            ))));
        }
    };
    let model = params.model.as_deref();
    if let Some(m) = model {
        crate::plan::check_model_name("model", m).map_err(|e| RpcError::from_api(&e))?;
    }
    // The chain comes filtered by the agent's model policy.
    let chain = config
        .candidate_chain(agent.as_deref(), model, false)
        .map_err(|e| RpcError::from_api(&ApiError::from_ref(&e)))?;

    Ok(Plan {
        chain,
        agent,
        requested: "hearth".to_owned(),
        agent_run: true,
        session_key: Some(params.session_key.clone().unwrap_or_else(|| "main".to_owned())),
        model_override: model.map(str::to_owned),
    })
}

/// `agent`: answers `accepted` at once (or, for a known `idempotencyKey`, joins that run), then
/// streams `agent` events and answers the same request id again when the run ends.
fn agent(
    app: &AppState,
    outbox: &Outbox,
    id: &Value,
    params: &Map<String, Value>,
) -> Result<(), RpcError> {
    if app.agents.is_none() {
        return Err(RpcError::unavailable(
            "agent runs need the session store, and this gateway runs without one (`hearth gateway run` opens it)",
        ));
    }
    let request = AgentParams::parse(params)?;
    if app.draining.load(Ordering::SeqCst) {
        return Err(RpcError::unavailable(
            "the gateway is shutting down; retry on the restarted gateway",
        )
        .retry_after(Duration::from_secs(1)));
    }
    let config = app.config.load_full();
    let plan = agent_plan(&config, &request)?;
    let (agent_id, session_key) =
        hearth_agent::session_key_for(&config, plan.agent.as_deref(), plan.session_key.as_deref());
    let (run, fresh) = app.ws.admit(&request.idempotency_key, || {
        Run::new(request.idempotency_key.clone(), agent_id, session_key)
    })?;
    run.subscribe(outbox, id);
    if fresh {
        let running = Presence::run(&app.ws);
        tokio::spawn(drive(app.clone(), config, plan, request, run, running));
    }
    Ok(())
}

/// Runs one agent turn to its end, whoever is still listening (`_running` counts it for
/// `Hub::idle`).
async fn drive(
    app: AppState,
    config: Arc<Config>,
    plan: Plan,
    request: AgentParams,
    run: Arc<Run>,
    _running: Presence,
) {
    run.start();
    let prompt = Prompt {
        system: request.extra_system.into_iter().collect(),
        messages: vec![hearth_upstream::Message::user(request.message)],
        stream: true,
        thinking: request
            .thinking
            .and_then(hearth_config::ThinkingLevel::parse)
            .map(hearth_upstream::prompt::Thinking::level),
        ..Prompt::default()
    };
    // The request's `timeout`, else the agent's `timeoutSeconds` (0: none).
    let budget = request
        .timeout
        .or_else(|| hearth_agent::run_timeout(&config, plan.agent.as_deref()))
        .unwrap_or(Duration::MAX);
    let outcome = match tokio::time::timeout(budget, turn(&app, &config, &plan, prompt, &run)).await
    {
        Ok(Ok(mut result)) => {
            if let Some(level) = request.thinking {
                result["meta"]["thinking"] = json!(level);
            }
            Ok(result)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(RpcError::unavailable(format!(
            "the run timed out after {} s (the agent's `timeout`)",
            budget.as_secs()
        ))
        .with_details(json!({"code": "timeout"}))),
    };
    run.finish(outcome);
}

/// The turn itself: `assistant` events for answer text (never reasoning), the result when the
/// model finished and the answer is stored.
async fn turn(
    app: &AppState,
    config: &Arc<Config>,
    plan: &Plan,
    prompt: Prompt,
    run: &Arc<Run>,
) -> Result<Value, RpcError> {
    // A notice that comes due while the run waits (the overload notice) goes out at once.
    let live: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = {
        let (run, live) = (Arc::clone(run), Arc::clone(&live));
        hearth_agent::NoticeSink(Arc::new(move |notice: &str| {
            run.emit("notice", json!({"message": notice}));
            lock(&live).push(notice.to_owned());
        }))
    };
    // The server's prompt progress while the answer has not begun: an `agent` event with
    // `stream: "progress"`, at most every 200 ms (the report that the prompt was read always).
    let progress = {
        let run = Arc::clone(run);
        let last: Mutex<Option<Instant>> = Mutex::new(None);
        hearth_agent::ProgressSink(Arc::new(move |_, report: &hearth_upstream::Progress| {
            let now = Instant::now();
            let mut last = lock(&last);
            let due = last.is_none_or(|at| now >= at + Duration::from_millis(200));
            if due || report.is_complete() {
                *last = Some(now);
                run.emit("progress", json!({"processed": report.processed, "total": report.total}));
            }
        }))
    };
    let (started, _) = relay::start_with(app, config, plan, prompt, Some(&sink), Some(&progress))
        .await
        .map_err(|e| RpcError::from_api(&e))?;
    let relay::Started { mut answer, usage, .. } = started;
    // Notices (fallback, window warnings) as the CLI shows them: an `agent` event each, before
    // the answer (those sent live not again), and all of them in the result's `meta.notices`.
    let sent = std::mem::take(&mut *lock(&live));
    for notice in relay::unsent(&answer.notices, &sent) {
        run.emit("notice", json!({"message": notice}));
    }
    let mut text = String::new();
    let mut tokens = None;
    let mut finished = false;
    while let Some(event) = answer.events.next().await {
        match event {
            Event::TextDelta(delta) => {
                text.push_str(&delta);
                run.emit("assistant", json!({"delta": delta}));
            }
            Event::Usage(u) => tokens = Some(u),
            Event::Error(e) => {
                usage.abort(&e);
                return Err(RpcError::from_api(&ApiError::from_upstream(&e)));
            }
            Event::Finish(_) => {
                finished = true;
                break;
            }
            Event::ReasoningDelta(_)
            | Event::ReasoningSignature(_)
            | Event::Logprobs(_)
            | Event::ToolCallDelta { .. }
            | Event::Progress(_)
            | Event::Native(_) => {}
        }
    }
    if !finished {
        return Err(RpcError::unavailable("the upstream stream ended before the model finished"));
    }
    if let Some(u) = &tokens {
        usage.record(u);
    }
    Ok(json!({
        "payloads": [{"text": hearth_agent::containment::clean_reply(&text)}],
        "meta": {
            "agentMeta": {
                "provider": answer.model_ref.provider,
                "model": answer.model_ref.model,
            },
            "attempts": answer.attempts.len(),
            "notices": answer.notices,
            "usage": tokens.map(|u| json!({"input": u.input_tokens, "output": u.output_tokens})),
        },
    }))
}

/// `agent.wait {runId, timeoutMs?}`: answers when the run ends or the wait times out; the run
/// itself goes on.
fn agent_wait(
    app: &AppState,
    outbox: &Outbox,
    id: &Value,
    params: &Map<String, Value>,
) -> Result<(), RpcError> {
    check_keys(params, "agent.wait", &["runId", "timeoutMs"])?;
    let run_id = required(opt_str(params, "runId")?, "runId", "the runId `agent` answered with")?;
    let max_ms = u64::try_from(MAX_WAIT.as_millis()).unwrap_or(u64::MAX);
    let wait = opt_int(params, "timeoutMs", 0, max_ms)?.map_or(DEFAULT_WAIT, Duration::from_millis);
    let run = app.ws.run(run_id).ok_or_else(|| {
        RpcError::new(
            "NOT_FOUND",
            format!("unknown run: {run_id} (runs are kept for 10 minutes after they end)"),
        )
    })?;
    let pending = outbox.0.waits.fetch_add(1, Ordering::AcqRel) + 1;
    let waiting = Waiting(outbox.clone());
    if pending > MAX_PENDING_WAITS {
        return Err(RpcError::unavailable(format!(
            "{MAX_PENDING_WAITS} agent.wait requests are pending on this connection; wait for one"
        ))
        .retry_after(Duration::from_secs(1)));
    }
    tokio::spawn(answer_wait(run, wait, waiting, id.clone()));
    Ok(())
}

/// One pending `agent.wait` of a connection, counted while it lives.
struct Waiting(Outbox);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.0.waits.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers `agent.wait` request `id` when `run` ends or `wait` passes; gives up when the
/// connection closes.
async fn answer_wait(run: Arc<Run>, wait: Duration, waiting: Waiting, id: Value) {
    let outbox = &waiting.0;
    let mut state = run.state.subscribe();
    let ended = tokio::select! {
        ended = tokio::time::timeout(wait, state.wait_for(|s| s.ended.is_some())) => {
            matches!(ended, Ok(Ok(_)))
        }
        () = outbox.0.frames.closed() => return,
    };
    let state = run.state.borrow().clone();
    let mut payload = json!({"runId": run.id, "startedAt": state.started_at});
    match (ended, &state.ended) {
        (true, Some(end)) => {
            payload["status"] = json!(if end.error.is_some() { "error" } else { "ok" });
            payload["endedAt"] = json!(end.ended_at);
            if let Some(error) = &end.error {
                payload["error"] = json!(error.message);
            }
        }
        _ => payload["status"] = json!("timeout"),
    }
    outbox.res_ok(&id, payload);
}

/// One agent run: who listens, its per-run event `seq`, how it ended.
#[derive(Debug)]
struct Run {
    /// The request's `idempotencyKey`, as OpenClaw names its runs: clients match `agent` events
    /// by `runId == idempotencyKey`.
    id: String,
    agent_id: String,
    session_key: String,
    accepted_at: u64,
    state: watch::Sender<RunState>,
    live: Mutex<Live>,
}

/// The listeners of a run, under one lock so that a late joiner gets either the `accepted` ack
/// and everything after it, or the final answer, never both or neither.
#[derive(Debug, Default)]
struct Live {
    seq: u64,
    listeners: Vec<(Outbox, Value)>,
    last: Option<Last>,
}

/// A run's final answer: `ok:true` with the payload, or `ok:false` with the payload and the
/// error.
#[derive(Debug)]
struct Last {
    payload: Value,
    error: Option<RpcError>,
    /// About how much memory `payload` holds (its JSON length).
    bytes: usize,
}

impl Last {
    fn send(&self, outbox: &Outbox, id: &Value) {
        match &self.error {
            None => outbox.res_ok(id, self.payload.clone()),
            Some(error) => outbox.push(
                json!({"type": "res", "id": id, "ok": false, "payload": self.payload, "error": error.to_json()})
                    .to_string(),
            ),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct RunState {
    started_at: Option<u64>,
    ended: Option<RunEnd>,
}

#[derive(Debug, Clone)]
struct RunEnd {
    ended_at: u64,
    finished: Instant,
    error: Option<RpcError>,
}

impl Run {
    fn new(id: String, agent_id: String, session_key: String) -> Run {
        Run {
            id,
            agent_id,
            session_key,
            accepted_at: now_ms(),
            state: watch::channel(RunState::default()).0,
            live: Mutex::default(),
        }
    }

    fn ended(&self) -> bool {
        self.state.borrow().ended.is_some()
    }

    fn result_bytes(&self) -> usize {
        lock(&self.live).last.as_ref().map_or(0, |l| l.bytes)
    }

    fn finished_at(&self) -> Option<Instant> {
        self.state.borrow().ended.as_ref().map(|e| e.finished)
    }

    /// Sends `accepted` to request `id` and the run's later events to `outbox`; once the run has
    /// ended, its final answer instead.
    fn subscribe(&self, outbox: &Outbox, id: &Value) {
        let mut live = lock(&self.live);
        match &live.last {
            Some(last) => last.send(outbox, id),
            None => {
                outbox.res_ok(
                    id,
                    json!({
                        "runId": self.id,
                        "sessionKey": self.session_key,
                        "agentId": self.agent_id,
                        "acceptedAt": self.accepted_at,
                        "status": "accepted",
                    }),
                );
                live.listeners.push((outbox.clone(), id.clone()));
            }
        }
    }

    /// An `agent` event on `stream` to every listener.
    fn emit(&self, stream: &str, data: Value) {
        self.emit_locked(&mut lock(&self.live), stream, data);
    }

    fn emit_locked(&self, live: &mut Live, stream: &str, data: Value) {
        live.seq += 1;
        let payload = json!({
            "runId": self.id,
            "sessionKey": self.session_key,
            "agentId": self.agent_id,
            "seq": live.seq,
            "stream": stream,
            "ts": now_ms(),
            "data": data,
        });
        live.listeners.retain(|(outbox, _)| outbox.is_open());
        for (outbox, _) in &live.listeners {
            outbox.event("agent", payload.clone());
        }
    }

    fn start(&self) {
        let now = now_ms();
        self.state.send_modify(|s| s.started_at = Some(now));
        self.emit("lifecycle", json!({"phase": "start", "startedAt": now}));
    }

    /// The lifecycle `end` or `error` event, then the final answer to every listener.
    fn finish(&self, outcome: Result<Value, RpcError>) {
        let ended_at = now_ms();
        let started_at = self.state.borrow().started_at;
        let mut live = lock(&self.live);
        let (data, payload, error): (Value, Value, Option<RpcError>) = match outcome {
            Ok(result) => (
                json!({"phase": "end", "startedAt": started_at, "endedAt": ended_at}),
                json!({
                    "runId": self.id, "status": "ok", "summary": "completed",
                    "sessionKey": self.session_key, "agentId": self.agent_id, "result": result,
                }),
                None,
            ),
            Err(e) => (
                json!({"phase": "error", "startedAt": started_at, "endedAt": ended_at, "error": e.message}),
                json!({
                    "runId": self.id, "status": "error", "summary": e.message,
                    "sessionKey": self.session_key, "agentId": self.agent_id,
                }),
                Some(e),
            ),
        };
        self.emit_locked(&mut live, "lifecycle", data);
        let bytes = serde_json::to_vec(&payload).map_or(0, |v| v.len());
        let last = Last { payload, error: error.clone(), bytes };
        // Ended before anyone hears of it: a client that sends `agent.wait` as soon as the
        // final answer arrives finds the run ended, never still running.
        let end = RunEnd { ended_at, finished: Instant::now(), error };
        self.state.send_modify(|s| s.ended = Some(end));
        for (outbox, id) in live.listeners.drain(..) {
            last.send(&outbox, &id);
        }
        live.last = Some(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert_eq!(cut.len(), 122);
        assert_eq!(close_reason("short"), "short");
    }

    #[test]
    fn write_scope_holds_read_and_admin_holds_all() {
        let conn = Conn { id: String::new(), scopes: vec!["operator.write"] };
        assert!(conn.holds("operator.read"));
        assert!(!conn.holds("operator.admin"));
        let conn = Conn { id: String::new(), scopes: vec!["operator.read"] };
        assert!(!conn.holds("operator.write"));
        let conn = Conn { id: String::new(), scopes: vec!["operator.admin"] };
        assert!(conn.holds("operator.write"));
    }

    #[test]
    fn unknown_params_are_named() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"runId":"r","x":1}"#).unwrap_or_default();
        let e = check_keys(&params, "agent.wait", &["runId", "timeoutMs"]).err();
        assert_eq!(
            e.map(|e| e.message),
            Some("unknown param `x` for agent.wait (it takes: runId, timeoutMs)".to_owned())
        );
    }

    #[test]
    fn keys_are_bounded_and_text_is_not() {
        let long = "k".repeat(MAX_KEY_CHARS + 1);
        let params: Map<String, Value> =
            json!({"sessionKey": long, "message": long}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            opt_str(&params, "sessionKey").err().map(|e| e.message),
            Some("`sessionKey` is longer than 512 characters".to_owned())
        );
        assert_eq!(opt_text(&params, "message").ok().flatten().map(str::len), Some(513));
        let blank: Map<String, Value> =
            json!({"message": "  "}).as_object().cloned().unwrap_or_default();
        assert_eq!(
            required(opt_text(&blank, "message").ok().flatten(), "message", "the text")
                .err()
                .map(|e| e.message),
            Some("`message` is required: the text".to_owned())
        );
    }

    #[test]
    fn first_frame_must_be_connect() {
        assert!(connect_request("nope").is_err());
        assert!(connect_request(r#"{"type":"req","id":"1","method":"health"}"#).is_err());
        assert!(connect_request(r#"{"type":"req","method":"connect"}"#).is_err());
        let (id, params) = connect_request(
            r#"{"type":"req","id":"1","method":"connect","params":{"minProtocol":4}}"#,
        )
        .unwrap_or_default();
        assert_eq!(id, json!("1"));
        assert_eq!(params.get("minProtocol"), Some(&json!(4)));
    }
}
