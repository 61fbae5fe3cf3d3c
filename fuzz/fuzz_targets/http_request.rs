//! One HTTP request per input, handed to the real axum app of `hearth-server`
//! (`hearth_server::app(state)` and `tower::ServiceExt::oneshot`, no listener), and checks that
//! the app never panics, that every answer comes within a few seconds, and that every 4xx/5xx
//! body is at most 64 KiB of JSON in the OpenAI (`{"error":{...}}`) or Anthropic
//! (`{"type":"error","error":{...}}`) shape.
//!
//! The state is built once: one provider at `http://127.0.0.1:9/v1` (refused at once, so no
//! request waits on the network), token auth, an allowed browser origin, agents with an
//! in-memory session store. The runtime is a current-thread tokio runtime, built once.
//!
//! The input is decoded with `arbitrary` into a method, a route (mostly the known ones), a
//! query, the headers the gateway reads (`host`, `origin`, `content-type`, `content-length`,
//! `authorization`/`x-api-key`, `x-hearth-session-key`, `x-hearth-model`, the WebSocket
//! upgrade headers) and a body, mostly JSON in the shape of the route's API with arbitrary
//! extra fields, long strings and control characters.

#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// The largest error body the gateway may send.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How much of a success body is read (streams and model lists are not checked further).
const MAX_OK_BODY: usize = 1 << 20;
/// No request may wait longer than this for its head or its body.
const DEADLINE: Duration = Duration::from_secs(10);
const TOKEN: &str = "s3cret-fuzz-token";

const CONFIG: &str = r#"{
  models: {mode: "replace", providers: {
    fake: {baseUrl: "http://127.0.0.1:9/v1", apiKey: "sk-local", api: "openai-completions",
      models: [{id: "m", reasoning: true, maxTokens: 256, contextWindow: 4096}]},
  }},
  agents: {defaults: {model: {primary: "fake/m"}}},
  gateway: {
    auth: {mode: "token", token: "${GW_TOKEN}"},
    controlUi: {allowedOrigins: ["http://app.example:8080"]},
    allowedHosts: ["gateway.lan"],
  },
}"#;

struct World {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    let env: BTreeMap<String, String> = [("GW_TOKEN".to_owned(), TOKEN.to_owned())].into();
    let loaded = hearth_config::load_str("fuzz.json5", CONFIG, &env);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let config = loaded.config.expect("a config");
    let auth = hearth_server::Auth::from_config(&config, &env).expect("auth");
    let state = hearth_server::AppState::new(config, Arc::new(env), auth).expect("a state");
    let state = runtime.block_on(async {
        let store = hearth_store::SqliteStore::in_memory().await.expect("an in-memory store");
        state.with_agents(Arc::new(store))
    });
    let app = runtime.block_on(async { hearth_server::app(state) });
    World { runtime, app }
});

// === The input ===

#[derive(Arbitrary, Debug)]
enum MethodPick {
    Get,
    Post,
    Options,
    Head,
    Put,
    Delete,
    Patch,
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Responses,
    Messages,
    CountTokens,
    Models,
    ModelsOne,
    Root,
    Health,
    Healthz,
    Ready,
    Readyz,
    Metrics,
    Cooldowns,
    Hearth,
    V1,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Chat => "/v1/chat/completions",
            Route::Responses => "/v1/responses",
            Route::Messages => "/v1/messages",
            Route::CountTokens => "/v1/messages/count_tokens",
            Route::Models => "/v1/models",
            Route::ModelsOne => "/v1/models/",
            Route::Root => "/",
            Route::Health => "/health",
            Route::Healthz => "/healthz",
            Route::Ready => "/ready",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::Cooldowns => "/hearth/cooldowns",
            Route::Hearth => "/hearth/",
            Route::V1 => "/v1/",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PathPick {
    Known(Route),
    /// A known route with bytes after it (`/v1/models/<id>`, `/v1/messages/x`, `%zz`, …).
    Suffixed(Route, Vec<u8>),
    Raw(Vec<u8>),
    /// The absolute form (`http://host/path`).
    Absolute(Route, String),
}

#[derive(Arbitrary, Debug)]
enum Text {
    Raw(Vec<u8>),
    /// `n` copies of a byte (long values, runs of control characters).
    Repeat(u8, u16),
    Pick(u8),
}

const HOSTS: &[&str] = &[
    "localhost",
    "127.0.0.1:18789",
    "localhost:18789",
    "[::1]:18789",
    "gateway.lan",
    "evil.example",
    "app.example:8080",
    "",
    "LOCALHOST.",
    "127.0.0.1:99999",
];
const ORIGINS: &[&str] = &[
    "http://app.example:8080",
    "http://localhost:18789",
    "http://127.0.0.1:18789",
    "http://evil.example",
    "null",
    "file://",
    "HTTP://APP.EXAMPLE:8080",
    "http://app.example:8080/",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "",
];
const AUTHS: &[&str] = &[
    "Bearer s3cret-fuzz-token",
    "bearer s3cret-fuzz-token",
    "Bearer  s3cret-fuzz-token ",
    "Bearer wrong",
    "Bearer ",
    "Basic czNjcmV0",
    "s3cret-fuzz-token",
];
const SESSION_KEYS: &[&str] = &[
    "user-1",
    "agent:main:user-1",
    "subagent:x",
    "agent:main:cron:x",
    "AGENT:x:ACP:y",
    "",
    " ",
];
const MODELS: &[&str] = &[
    "fake/m",
    "m",
    "hearth",
    "hearth/main",
    "hearth/nope",
    "agent:main",
    "agent:",
    "openclaw",
    "openclaw/main",
    "fake/",
    "/m",
    "lmstudio/x",
    "nope/nope",
    "",
];

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

impl Text {
    fn bytes(&self, list: &[&str]) -> Vec<u8> {
        match self {
            Text::Raw(b) => b.clone(),
            Text::Repeat(b, n) => vec![*b; usize::from(*n) % 20_000],
            Text::Pick(i) => pick(list, *i).as_bytes().to_vec(),
        }
    }

    fn string(&self, list: &[&str]) -> String {
        String::from_utf8_lossy(&self.bytes(list)).into_owned()
    }
}

#[derive(Arbitrary, Debug)]
enum ContentLength {
    /// The body's real length.
    Exact,
    Huge,
    Number(u64),
    Raw(Text),
}

#[derive(Arbitrary, Debug)]
enum Credential {
    Authorization(Text),
    XApiKey(Text),
    Both(Text, Text),
}

#[derive(Arbitrary, Debug)]
struct Headers {
    host: Option<Text>,
    origin: Option<Text>,
    content_type: Option<Text>,
    content_length: Option<ContentLength>,
    credential: Option<Credential>,
    session_key: Option<Text>,
    model: Option<Text>,
    /// `Upgrade: websocket` and friends (mostly on `/`).
    websocket: Option<WebSocket>,
    /// `Access-Control-Request-Method` (a CORS preflight with `OPTIONS` and a cross origin).
    preflight: Option<Text>,
    extra: Vec<(Text, Text)>,
}

#[derive(Arbitrary, Debug)]
struct WebSocket {
    upgrade: Option<Text>,
    connection: Option<Text>,
    version: Option<Text>,
    key: Option<Text>,
}

/// A JSON value, depth-limited when rendered.
#[derive(Arbitrary, Debug)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    Arr(Vec<Val>),
    Obj(Vec<(Key, Val)>),
    /// A message list of the route's API.
    Messages(Vec<Message>),
}

/// Object keys: mostly the fields the gateway reads.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Raw(String),
}

const KEYS: &[&str] = &[
    "model",
    "messages",
    "input",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "user",
    "n",
    "stop",
    "response_format",
    "reasoning_effort",
    "reasoning",
    "metadata",
    "previous_response_id",
    "store",
    "instructions",
    "system",
    "thinking",
    "role",
    "content",
    "type",
    "text",
    "name",
    "function",
    "arguments",
    "parameters",
    "tool_calls",
    "tool_call_id",
    "tool_use_id",
    "id",
    "image_url",
    "source",
    "parallel_tool_calls",
    "seed",
    "logprobs",
    "conversation",
    "truncation",
];

const ROLES: &[&str] =
    &["user", "assistant", "system", "developer", "tool", "function", "model", ""];

#[derive(Arbitrary, Debug)]
struct Message {
    role: u8,
    content: Val,
    extra: Vec<(Key, Val)>,
}

#[derive(Arbitrary, Debug)]
enum BodyPick {
    Empty,
    Raw(Vec<u8>),
    /// A body in the shape of the route's API, with `extra` fields (replacing the usual ones
    /// of the same name).
    Shaped { model: Option<Text>, stream: Option<bool>, messages: Vec<Message>, extra: Vec<(Key, Val)> },
    Json(Val),
    /// A valid shaped body, then cut or with trailing bytes.
    Mangled { cut: u16, trailing: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: MethodPick,
    path: PathPick,
    query: Option<Text>,
    headers: Headers,
    body: BodyPick,
}

// === Rendering ===

impl Key {
    fn name(&self) -> String {
        match self {
            Key::Known(i) => pick(KEYS, *i).to_owned(),
            Key::Raw(s) => s.clone(),
        }
    }
}

fn text_value(text: &Text) -> Value {
    Value::String(text.string(MODELS))
}

impl Val {
    fn render(&self, route: Route, depth: u32) -> Value {
        if depth > 8 {
            return Value::Null;
        }
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => json!(i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(t) => text_value(t),
            Val::Arr(items) => items.iter().map(|v| v.render(route, depth + 1)).collect(),
            Val::Obj(fields) => object(fields, route, depth + 1),
            Val::Messages(messages) => {
                messages.iter().map(|m| m.render(route, depth + 1)).collect()
            }
        }
    }
}

fn object(fields: &[(Key, Val)], route: Route, depth: u32) -> Value {
    let mut map = Map::new();
    for (k, v) in fields {
        map.insert(k.name(), v.render(route, depth + 1));
    }
    Value::Object(map)
}

impl Message {
    fn render(&self, route: Route, depth: u32) -> Value {
        let mut map = Map::new();
        map.insert("role".to_owned(), json!(pick(ROLES, self.role)));
        map.insert("content".to_owned(), self.content.render(route, depth + 1));
        for (k, v) in &self.extra {
            map.insert(k.name(), v.render(route, depth + 1));
        }
        Value::Object(map)
    }
}

fn shaped(
    route: Route,
    model: Option<&Text>,
    stream: Option<bool>,
    messages: &[Message],
    extra: &[(Key, Val)],
) -> Value {
    let mut map = Map::new();
    map.insert("model".to_owned(), model.map_or(json!("fake/m"), text_value));
    let messages: Vec<Value> = if messages.is_empty() {
        vec![json!({"role": "user", "content": "hi"})]
    } else {
        messages.iter().map(|m| m.render(route, 1)).collect()
    };
    match route {
        Route::Responses => {
            map.insert("input".to_owned(), Value::Array(messages));
        }
        Route::Messages | Route::CountTokens => {
            map.insert("max_tokens".to_owned(), json!(64));
            map.insert("messages".to_owned(), Value::Array(messages));
        }
        _ => {
            map.insert("messages".to_owned(), Value::Array(messages));
        }
    }
    if let Some(stream) = stream {
        map.insert("stream".to_owned(), json!(stream));
    }
    for (k, v) in extra {
        map.insert(k.name(), v.render(route, 1));
    }
    Value::Object(map)
}

/// `bytes` as a path or query: as they are when `Uri` takes them, else percent-encoded
/// outside printable ASCII.
fn encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'#' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

fn build(input: &Input) -> Option<(Request<Body>, Route)> {
    let method = match &input.method {
        MethodPick::Get => Method::GET,
        MethodPick::Post => Method::POST,
        MethodPick::Options => Method::OPTIONS,
        MethodPick::Head => Method::HEAD,
        MethodPick::Put => Method::PUT,
        MethodPick::Delete => Method::DELETE,
        MethodPick::Patch => Method::PATCH,
        MethodPick::Raw(s) => Method::from_bytes(s.as_bytes()).ok()?,
    };
    let (route, mut uri) = match &input.path {
        PathPick::Known(r) => (*r, r.path().to_owned()),
        PathPick::Suffixed(r, suffix) => {
            let mut p = r.path().to_owned();
            encode(suffix, &mut p);
            (*r, p)
        }
        PathPick::Raw(bytes) => {
            let mut p = "/".to_owned();
            encode(bytes.strip_prefix(b"/").unwrap_or(bytes), &mut p);
            (Route::V1, p)
        }
        PathPick::Absolute(r, host) => {
            let mut p = "http://".to_owned();
            encode(host.as_bytes(), &mut p);
            p.push_str(r.path());
            (*r, p)
        }
    };
    if let Some(q) = &input.query {
        uri.push('?');
        encode(&q.bytes(&["stream=true", "beta=true", "a=%zz", "limit=1&after=x"]), &mut uri);
    }
    let uri: Uri = uri.parse().ok()?;

    let body: Vec<u8> = match &input.body {
        BodyPick::Empty => Vec::new(),
        BodyPick::Raw(b) => b.clone(),
        BodyPick::Shaped { model, stream, messages, extra } => {
            serde_json::to_vec(&shaped(route, model.as_ref(), *stream, messages, extra)).ok()?
        }
        BodyPick::Json(v) => serde_json::to_vec(&v.render(route, 0)).ok()?,
        BodyPick::Mangled { cut, trailing } => {
            let mut b = serde_json::to_vec(&shaped(route, None, None, &[], &[])).ok()?;
            b.truncate(usize::from(*cut));
            b.extend_from_slice(trailing);
            b
        }
    };

    let mut request = Request::builder().method(method).uri(uri);
    let h = &input.headers;
    let mut add = |name: &str, value: &[u8]| {
        if let (Ok(name), Some(value)) = (HeaderName::from_bytes(name.as_bytes()), header_value(value)) {
            request.headers_mut().expect("a valid builder").append(name, value);
        }
    };
    if let Some(host) = &h.host {
        add("host", &host.bytes(HOSTS));
    }
    if let Some(origin) = &h.origin {
        add("origin", &origin.bytes(ORIGINS));
    }
    if let Some(ct) = &h.content_type {
        add("content-type", &ct.bytes(CONTENT_TYPES));
    }
    match &h.content_length {
        None => {}
        Some(ContentLength::Exact) => add("content-length", body.len().to_string().as_bytes()),
        Some(ContentLength::Huge) => add("content-length", b"99999999999"),
        Some(ContentLength::Number(n)) => add("content-length", n.to_string().as_bytes()),
        Some(ContentLength::Raw(t)) => add("content-length", &t.bytes(&["-1", " 5 ", "1e3", "0x10"])),
    }
    match &h.credential {
        None => {}
        Some(Credential::Authorization(t)) => add("authorization", &t.bytes(AUTHS)),
        Some(Credential::XApiKey(t)) => add("x-api-key", &t.bytes(&[TOKEN, "wrong", ""])),
        Some(Credential::Both(a, k)) => {
            add("authorization", &a.bytes(AUTHS));
            add("x-api-key", &k.bytes(&[TOKEN, "wrong", ""]));
        }
    }
    if let Some(key) = &h.session_key {
        add("x-hearth-session-key", &key.bytes(SESSION_KEYS));
    }
    if let Some(model) = &h.model {
        add("x-hearth-model", &model.bytes(MODELS));
    }
    if let Some(ws) = &h.websocket {
        if let Some(t) = &ws.upgrade {
            add("upgrade", &t.bytes(&["websocket", "WebSocket", "h2c"]));
        }
        if let Some(t) = &ws.connection {
            add("connection", &t.bytes(&["upgrade", "Upgrade", "keep-alive, Upgrade", "close"]));
        }
        if let Some(t) = &ws.version {
            add("sec-websocket-version", &t.bytes(&["13", "8", ""]));
        }
        if let Some(t) = &ws.key {
            add("sec-websocket-key", &t.bytes(&["dGhlIHNhbXBsZSBub25jZQ==", "x"]));
        }
    }
    if let Some(m) = &h.preflight {
        add("access-control-request-method", &m.bytes(&["POST", "GET", "DELETE"]));
    }
    for (name, value) in h.extra.iter().take(16) {
        let name = name.string(&[
            "accept",
            "cookie",
            "x-forwarded-for",
            "transfer-encoding",
            "expect",
            "sec-fetch-site",
            "anthropic-version",
            "openai-beta",
            "x-request-id",
        ]);
        add(&name, &value.bytes(&["*/*", "1", "100-continue", "chunked"]));
    }
    let request = request.body(Body::from(body)).ok()?;
    Some((request, route))
}

// === The checks ===

fn check_error_body(status: u16, body: &[u8], input: &Input) {
    let value: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{status} with a body that is not JSON ({e}): {:?}\ninput: {input:?}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        )
    });
    let openai = value.get("error").is_some_and(|e| {
        e.is_object() && e.get("message").is_some_and(Value::is_string)
    });
    let anthropic = value.get("type").and_then(Value::as_str) == Some("error")
        && value.get("error").is_some_and(|e| {
            e.get("type").is_some_and(Value::is_string)
                && e.get("message").is_some_and(Value::is_string)
        });
    assert!(
        openai || anthropic,
        "{status} with a body in neither error shape: {value}\ninput: {input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut u = arbitrary::Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else { return };
    let Some((request, _route)) = build(&input) else { return };
    // A HEAD answer has no body (axum strips it), whatever its status.
    let head = request.method() == Method::HEAD;
    let world = &*WORLD;
    world.runtime.block_on(async {
        let response = tokio::time::timeout(DEADLINE, world.app.clone().oneshot(request))
            .await
            .unwrap_or_else(|_| panic!("no response within {DEADLINE:?}\ninput: {input:?}"))
            .unwrap_or_else(|never| match never {});
        let status = response.status().as_u16();
        assert!((100..600).contains(&status), "status {status}\ninput: {input:?}");
        let error = status >= 400;
        let cap = if error { MAX_ERROR_BODY } else { MAX_OK_BODY };
        let body = tokio::time::timeout(DEADLINE, axum::body::to_bytes(response.into_body(), cap))
            .await
            .unwrap_or_else(|_| panic!("{status}: no whole body within {DEADLINE:?}\ninput: {input:?}"));
        if error {
            let body = body.unwrap_or_else(|e| {
                panic!("{status} with a body over {MAX_ERROR_BODY} bytes or failing: {e}\ninput: {input:?}")
            });
            if !(head && body.is_empty()) {
                check_error_body(status, &body, &input);
            }
        }
    });
});
