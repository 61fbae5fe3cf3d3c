//! HTTP transport: one pooled client per provider, requests out, canonical events back.
//!
//! Two clocks guard an answer (`docs/routing.md`, "Timeouts"): the first-byte timeout
//! (`timeoutSeconds`) runs from the request until the answer's first event (headers, prompt
//! processing and first token: slow on local hardware with a long prompt), and the stall
//! timeout (`streamIdleTimeoutSeconds`) bounds every gap between chunks after that. Either one
//! ending is an [`ErrorClass::Timeout`]: before the first event the router may fail over, after
//! it the stream ends with a terminal `Event::Error` (Invariant 1).
//!
//! A server that reports prompt processing (`Event::Progress`, llama-server's
//! `return_progress`) is alive but has not begun the answer: each report that shows more of the
//! prompt read moves the first-byte deadline to `timeoutSeconds` after it (never earlier than
//! it was), and the stall clock still waits for the answer's first event. A server that sends
//! nothing, or repeats the same report, is timed out as before.
//!
//! A local Ollama or LM Studio server loads a model on the first request that names it and
//! sends nothing meanwhile: when the first-byte wait runs out there, hearth asks the server
//! (`probe::LoadWatch`: LM Studio's model state, Ollama's `/api/ps`) and, while it says the
//! model is loading, waits another `timeoutSeconds`, up to [`MAX_LOAD_WAIT`] more in all. A
//! server that answers nothing and is not loading is timed out as before.

use std::sync::Once;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use hearth_config::{Api, Env, Provider, SecretString};
use hearth_wire::ndjson::{NdjsonDecoder, NdjsonItem};
use hearth_wire::sse::{SseDecoder, SseItem};

use crate::classify;
use crate::decode::Decoder;
use crate::encode::{Target, encode};
use crate::event::{ErrorClass, Event, UpstreamError};
use crate::prompt::Prompt;

/// How long to wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First-byte timeout of hosted providers that set no `timeoutSeconds`.
pub const HOSTED_FIRST_BYTE: Duration = Duration::from_secs(120);
/// First-byte timeout of local servers that set no `timeoutSeconds` (slow hardware, long
/// prompts: prompt processing happens before the first token).
pub const LOCAL_FIRST_BYTE: Duration = Duration::from_secs(300);
/// Stall timeout (gap between chunks once output has begun) of providers that set no
/// `streamIdleTimeoutSeconds`, capped by the first-byte timeout. Tokens of a running answer
/// come in milliseconds, and hosted APIs send keep-alives every few seconds: a minute of
/// silence mid-stream is a dead stream, whatever the prompt length.
pub const STREAM_IDLE: Duration = Duration::from_secs(60);
/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Non-streaming bodies are read up to this size.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A stream of canonical events; ends after `Finish` or `Error`.
pub type EventStream = BoxStream<'static, Event>;

/// One provider's transport: the pooled HTTP client (TCP_NODELAY; the proxy policy, the
/// network guard's resolver and redirect policy of [`http_builder`]), its endpoints checked by
/// the guard once, and its credentials and headers resolved once and kept as header values.
/// Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Client(std::sync::Arc<Inner>);

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// A local provider over plain `http://`: inference goes straight on hyper (`plain.rs`).
    plain: Option<crate::plain::Plain>,
    /// From the request to the answer's first event.
    first_byte: Duration,
    /// Between two chunks once output has begun.
    stall: Duration,
    /// What the client was built from, to tell a changed provider (`Client::built_for`).
    built_from: Provider,
    /// The endpoint of each API (`Api::ALL`), checked by the guard.
    endpoints: Vec<(Api, Result<url::Url, UpstreamError>)>,
    /// Credentials and headers, resolved with the first environment a request brought.
    auth: std::sync::OnceLock<(usize, Auth)>,
}

/// A provider's resolved credentials and headers.
#[derive(Debug, Clone)]
struct Auth {
    /// The configured key (`None`: none is sent), or why it cannot be had.
    key: Result<Option<SecretString>, UpstreamError>,
    /// `headers`, resolved (a failure names the header).
    headers: Result<reqwest::header::HeaderMap, UpstreamError>,
}

/// The builder every HTTP client of a provider starts from (inference, probes): TCP_NODELAY,
/// the network guard's resolver and redirect policy, and the proxy policy — a local server
/// (loopback, private address, `localService`) is never reached through the user's
/// `HTTP_PROXY`/`HTTPS_PROXY`; a hosted one is, as every HTTP client does.
pub fn http_builder(provider: &Provider) -> reqwest::ClientBuilder {
    install_crypto();
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(crate::guard::redirect_policy(provider))
        .dns_resolver(std::sync::Arc::new(crate::guard::GuardedResolver::new(provider)));
    if provider.is_local() { builder.no_proxy() } else { builder }
}

/// Installs rustls' ring provider once per process (reqwest is built without one); every
/// place that builds an HTTP client calls this first.
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed a provider already; both are fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    pub fn new(provider: &Provider) -> Result<Self, UpstreamError> {
        let first_byte = provider.timeout.unwrap_or(if provider.is_local() {
            LOCAL_FIRST_BYTE
        } else {
            HOSTED_FIRST_BYTE
        });
        let stall = provider.stream_idle_timeout.unwrap_or(STREAM_IDLE.min(first_byte));
        let http = http_builder(provider)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| {
                UpstreamError::new(ErrorClass::Connect, format!("cannot build HTTP client: {e}"))
            })?;
        let endpoints: Vec<(Api, Result<url::Url, UpstreamError>)> = Api::ALL
            .iter()
            .map(|&(_, api)| {
                let endpoint = Self::endpoint(provider, api);
                // The network guard: the exact configured origin is trusted; metadata and other
                // private destinations are not (docs/routing.md, "Network guard").
                let url = url::Url::parse(&endpoint)
                    .map_err(|e| {
                        UpstreamError::new(
                            ErrorClass::Format,
                            format!("invalid endpoint {endpoint}: {e}"),
                        )
                    })
                    .and_then(|url| crate::guard::check(provider, &url).map(|()| url))
                    .and_then(|url| match crate::guard::local_marker_error(provider) {
                        Some(error) => Err(error),
                        None => Ok(url),
                    });
                (api, url)
            })
            .collect();
        let plain = endpoints
            .iter()
            .find_map(|(_, url)| url.as_ref().ok())
            .and_then(|url| crate::plain::Plain::for_url(provider, url, CONNECT_TIMEOUT));
        Ok(Client(std::sync::Arc::new(Inner {
            http,
            plain,
            first_byte,
            stall,
            built_from: provider.clone(),
            endpoints,
            auth: std::sync::OnceLock::new(),
        })))
    }

    /// Whether this client was built from `provider` as it is now (same origin, credentials,
    /// headers and clocks): the router builds a new one otherwise.
    pub fn built_for(&self, provider: &Provider) -> bool {
        let b = &self.0.built_from;
        b.base_url == provider.base_url
            && b.api_key == provider.api_key
            && b.headers == provider.headers
            && b.timeout == provider.timeout
            && b.stream_idle_timeout == provider.stream_idle_timeout
            && b.allow_private_network == provider.allow_private_network
            && b.local_service.is_some() == provider.local_service.is_some()
    }

    /// Resolves the credentials and headers for `env` now (blocking work: a secret file may be
    /// read), so requests that bring the same `env` find them ready.
    pub fn warm(&self, provider: &Provider, env: &(dyn Env + Sync)) {
        let _ = self.auth(provider, env);
    }

    /// The provider's credentials and headers for `env`: resolved once (secret files are not
    /// read per request), again only for another environment.
    fn auth(&self, provider: &Provider, env: &(dyn Env + Sync)) -> Auth {
        let env_id = (env as *const (dyn Env + Sync)).cast::<()>() as usize;
        if let Some((id, auth)) = self.0.auth.get()
            && *id == env_id
        {
            return auth.clone();
        }
        let auth = resolve_auth(provider, env);
        let _ = self.0.auth.set((env_id, auth.clone()));
        auth
    }

    /// The URL a request for `api` goes to (the dialect's, `api/<dialect>.rs`).
    pub fn endpoint(provider: &Provider, api: Api) -> String {
        crate::api::of(api).endpoint(provider.base_url.as_str().trim_end_matches('/'))
    }

    /// Sends one call. `Err` means nothing was received (the caller may fail over); once `Ok`,
    /// failures arrive as a terminal `Event::Error` in the stream.
    pub async fn send(
        &self,
        target: &Target<'_>,
        prompt: &Prompt,
        env: &(dyn Env + Sync),
    ) -> Result<EventStream, UpstreamError> {
        self.send_with_key(target, prompt, env, None).await
    }

    /// Like [`Client::send`], with one credential of the provider's rotation chosen by the
    /// caller (`None`: the provider's `apiKey`).
    pub async fn send_with_key(
        &self,
        target: &Target<'_>,
        prompt: &Prompt,
        env: &(dyn Env + Sync),
        key: Option<&SecretString>,
    ) -> Result<EventStream, UpstreamError> {
        let provider = target.provider;
        let api = target.model.api;
        let url = match self.0.endpoints.iter().find(|(a, _)| *a == api) {
            Some((_, url)) => url.clone()?,
            None => {
                return Err(UpstreamError::new(ErrorClass::Format, "no endpoint for this API"));
            }
        };
        let body = encode(prompt, target).map_err(|e| {
            UpstreamError::new(ErrorClass::Format, format!("cannot encode the request: {e}"))
        })?;
        let mut headers = reqwest::header::HeaderMap::with_capacity(4);
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        authorize(&mut headers, api, &self.auth(provider, env), key)?;
        if api == Api::AnthropicMessages
            && let Some(beta) = prompt.anthropic_native.as_ref().and_then(|n| n.beta.as_deref())
        {
            let beta = reqwest::header::HeaderValue::from_str(beta).map_err(|_| {
                UpstreamError::new(ErrorClass::Format, "anthropic-beta is not a valid header value")
            })?;
            headers.insert("anthropic-beta", beta);
        }
        // A local Ollama or LM Studio server may be loading the model (module doc).
        let watch = crate::probe::LoadWatch::new(provider, &target.model.id, env);
        let started = tokio::time::Instant::now();
        let mut first_byte_by = started + self.0.first_byte;
        let load_limit = first_byte_by + MAX_LOAD_WAIT;
        let whole_timeout = !prompt.stream && watch.is_none();
        let send = async {
            if let Some(plain) = &self.0.plain {
                return plain.send(&url, headers, body).await;
            }
            let mut request = self.0.http.post(url.clone()).headers(headers).body(body);
            if whole_timeout {
                request = request.timeout(self.0.first_byte);
            }
            let mut response =
                request.send().await.map_err(|e| transport_error(&provider.id, &e))?;
            let provider_id = provider.id.clone();
            Ok(crate::plain::Answer {
                status: response.status(),
                headers: std::mem::take(response.headers_mut()),
                body: response
                    .bytes_stream()
                    .map(move |chunk| chunk.map_err(|e| transport_error(&provider_id, &e)))
                    .boxed(),
            })
        };
        tokio::pin!(send);
        let response = loop {
            match tokio::time::timeout_at(first_byte_by, &mut send).await {
                Ok(sent) => break sent?,
                Err(_) => {
                    let waiting = self.0.first_byte;
                    if !still_loading(watch.as_ref(), &mut first_byte_by, load_limit, waiting).await
                    {
                        return Err(UpstreamError::new(
                            ErrorClass::Timeout,
                            format!(
                                "no response from {} within {:?} (timeoutSeconds)",
                                provider.id, self.0.first_byte
                            ),
                        ));
                    }
                }
            }
        };
        let status = response.status;
        if !status.is_success() {
            let retry_after = response
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = read_limited(response, MAX_ERROR_BODY).await.unwrap_or_default();
            let mut error = classify::classify_http(
                status.as_u16(),
                retry_after.as_deref(),
                &String::from_utf8_lossy(&body),
            );
            error.status = Some(status.as_u16());
            return Err(error);
        }
        // Output of models whose templates open the think block starts inside it, whatever the
        // catalog's `reasoning` says.
        let opens_think =
            target.model.reasoning || crate::reasoning::template_opens_think(&target.model.id);
        let mut decoder = Decoder::new(api, opens_think, prompt.char_count());
        if let Some(scanner) = crate::text_calls::for_call(target, prompt) {
            decoder = decoder.with_text_calls(scanner);
        }
        if crate::thinking::is_off(prompt, target) {
            decoder = decoder.with_thinking_off();
        }
        let streaming = prompt.stream
            && response
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_none_or(|ct| !ct.starts_with("application/json"));
        if streaming {
            let clocks =
                Clocks { first_byte_by, first_byte: self.0.first_byte, stall: self.0.stall };
            Ok(stream_events(response, decoder, api, clocks, watch.map(|w| (w, load_limit))))
        } else {
            let read = read_limited(response, MAX_BODY);
            tokio::pin!(read);
            let bytes = loop {
                match tokio::time::timeout_at(first_byte_by, &mut read).await {
                    Ok(read) => break read?,
                    Err(_) => {
                        let waiting = self.0.first_byte;
                        if !still_loading(watch.as_ref(), &mut first_byte_by, load_limit, waiting)
                            .await
                        {
                            return Err(UpstreamError::new(
                                ErrorClass::Timeout,
                                "the response body did not arrive in time",
                            ));
                        }
                    }
                }
            };
            let mut decoder = decoder.for_whole_body();
            let mut out = Vec::new();
            match decoder.body_bytes(&bytes, &mut out) {
                Ok(()) => decoder.finish(&mut out),
                Err(e) => out.push(Event::Error(UpstreamError::new(
                    ErrorClass::ServerError,
                    format!("the upstream answered with invalid JSON: {e}"),
                ))),
            }
            Ok(futures::stream::iter(out).boxed())
        }
    }
}

fn resolve_auth(provider: &Provider, env: &dyn Env) -> Auth {
    let key = match &provider.api_key {
        None => Ok(None),
        Some(secret) => match secret.resolve(env) {
            Ok(key) => Ok(key),
            // Local servers mostly need no key: a missing variable just means none is sent.
            Err(_) if provider.is_local() => Ok(None),
            Err(e) => Err(UpstreamError::new(
                ErrorClass::Auth,
                format!("no API key for {}: {e}", provider.id),
            )),
        },
    };
    let mut headers = reqwest::header::HeaderMap::new();
    let mut failed = None;
    for (name, value) in &provider.headers {
        let error = |detail: String| {
            UpstreamError::new(
                ErrorClass::Auth,
                format!("header {name} for {}: {detail}", provider.id),
            )
        };
        match value.resolve(env) {
            Ok(Some(v)) => {
                let parsed = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| error(e.to_string()))
                    .and_then(|n| {
                        let mut value = reqwest::header::HeaderValue::from_str(v.expose())
                            .map_err(|e| error(e.to_string()))?;
                        value.set_sensitive(true);
                        Ok((n, value))
                    });
                match parsed {
                    Ok((n, value)) => {
                        headers.insert(n, value);
                    }
                    Err(e) => failed = Some(e),
                }
            }
            Ok(None) => {}
            Err(e) => failed = Some(error(e.to_string())),
        }
        if failed.is_some() {
            break;
        }
    }
    Auth { key, headers: failed.map_or(Ok(headers), Err) }
}

fn authorize(
    request: &mut reqwest::header::HeaderMap,
    api: Api,
    auth: &Auth,
    chosen: Option<&SecretString>,
) -> Result<(), UpstreamError> {
    let key = match chosen {
        Some(k) => Some(k),
        None => auth.key.as_ref().map_err(Clone::clone)?.as_ref(),
    };
    let dialect = crate::api::of(api);
    if let Some(key) = key {
        let (name, value) = dialect.credential(key.expose());
        let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            UpstreamError::new(ErrorClass::Auth, "the API key is not a valid header value")
        })?;
        value.set_sensitive(true);
        request.append(header_name(name)?, value);
    }
    for (name, value) in dialect.fixed_headers() {
        request.append(header_name(name)?, reqwest::header::HeaderValue::from_static(value));
    }
    let headers = auth.headers.as_ref().map_err(Clone::clone)?;
    for (name, value) in headers {
        request.insert(name.clone(), value.clone());
    }
    Ok(())
}

fn header_name(name: &str) -> Result<reqwest::header::HeaderName, UpstreamError> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| UpstreamError::new(ErrorClass::Format, format!("invalid header name {name}")))
}

fn transport_error(provider: &str, e: &reqwest::Error) -> UpstreamError {
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_connect() {
        ErrorClass::Connect
    } else {
        ErrorClass::ServerError
    };
    // reqwest's Display names the URL, never headers, so no secret can leak here. The root
    // cause (e.g. "Connection refused") is at the end of the source chain.
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let url = e.url().map_or(String::new(), |u| format!(" {u}"));
    UpstreamError::new(class, format!("{provider}{url}: {cause}"))
}

async fn read_limited(
    response: crate::plain::Answer,
    limit: usize,
) -> Result<Vec<u8>, UpstreamError> {
    let mut out = Vec::new();
    let mut stream = response.body;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

enum Framing {
    Sse(SseDecoder),
    Ndjson(NdjsonDecoder),
}

/// The most a cold load may add to the first-byte wait (module doc).
pub const MAX_LOAD_WAIT: Duration = Duration::from_secs(30 * 60);

/// The first-byte wait ran out: when the server says the model is still loading (and the
/// load has not taken [`MAX_LOAD_WAIT`] more already), the wait is renewed for another
/// `first_byte` and the caller waits on; `false` when the wait is over.
async fn still_loading(
    watch: Option<&crate::probe::LoadWatch>,
    deadline: &mut tokio::time::Instant,
    limit: tokio::time::Instant,
    first_byte: Duration,
) -> bool {
    let Some(watch) = watch else { return false };
    if tokio::time::Instant::now() >= limit || !watch.loading().await {
        return false;
    }
    tracing::info!(
        provider = watch.provider_id(),
        "the model is still loading on the server; waiting another {first_byte:?} for its answer"
    );
    *deadline = (tokio::time::Instant::now() + first_byte).min(limit).max(*deadline);
    true
}

/// The two limits of a streaming answer (module doc).
#[derive(Debug, Clone, Copy)]
struct Clocks {
    /// The first event is due by then (the request's start plus `first_byte`).
    first_byte_by: tokio::time::Instant,
    first_byte: Duration,
    stall: Duration,
}

struct StreamState {
    bytes: BoxStream<'static, Result<bytes::Bytes, UpstreamError>>,
    framing: Framing,
    decoder: Decoder,
    clocks: Clocks,
    /// An event came out: from now on the stall clock applies. Bytes without an event (a
    /// keep-alive comment, a role-only first chunk) do not end the first-byte wait: prompt
    /// processing may still be under way behind them.
    output_started: bool,
    /// The most of the prompt a progress report said was read (module doc).
    progress: u64,
    /// A local Ollama or LM Studio server's load state, asked when the first-byte wait runs
    /// out, and how long a load may stretch it.
    load: Option<(crate::probe::LoadWatch, tokio::time::Instant)>,
    done: bool,
}

fn stream_events(
    response: crate::plain::Answer,
    decoder: Decoder,
    api: Api,
    clocks: Clocks,
    load: Option<(crate::probe::LoadWatch, tokio::time::Instant)>,
) -> EventStream {
    let framing = match crate::api::of(api).framing() {
        crate::api::Framing::Ndjson => Framing::Ndjson(NdjsonDecoder::new()),
        crate::api::Framing::Sse => Framing::Sse(SseDecoder::new().emit_comments(true)),
    };
    let state = StreamState {
        bytes: response.body,
        framing,
        decoder,
        clocks,
        output_started: false,
        progress: 0,
        load,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let mut events = Vec::new();
        loop {
            let next = if st.output_started {
                tokio::time::timeout(st.clocks.stall, st.bytes.next()).await
            } else {
                tokio::time::timeout_at(st.clocks.first_byte_by, st.bytes.next()).await
            };
            match next {
                Err(_) if !st.output_started && renew_for_load(&mut st).await => {}
                Err(_) => {
                    let message = if st.output_started {
                        format!(
                            "the stream stalled: no data for {:?} (streamIdleTimeoutSeconds)",
                            st.clocks.stall
                        )
                    } else {
                        format!("no output within {:?} (timeoutSeconds)", st.clocks.first_byte)
                    };
                    events.push(Event::Error(UpstreamError::new(ErrorClass::Timeout, message)));
                    st.done = true;
                    return Some((events, st));
                }
                Ok(Some(Ok(chunk))) => {
                    feed(&mut st, &chunk, &mut events);
                    if !st.output_started {
                        note_progress(&mut st, &events);
                    }
                    st.output_started |= events.iter().any(|e| !matches!(e, Event::Progress(_)));
                    if st.decoder.is_done() {
                        st.decoder.finish(&mut events);
                        st.done = true;
                    }
                    if !events.is_empty() {
                        return Some((events, st));
                    }
                }
                Ok(Some(Err(e))) => {
                    // The connection broke mid-stream: whatever the decoder holds decides
                    // between a proper end and a truncated one.
                    let _ = e;
                    flush(&mut st, &mut events);
                    st.decoder.finish(&mut events);
                    st.done = true;
                    return Some((events, st));
                }
                Ok(None) => {
                    flush(&mut st, &mut events);
                    st.decoder.finish(&mut events);
                    st.done = true;
                    return Some((events, st));
                }
            }
        }
    })
    .flat_map(futures::stream::iter)
    .boxed()
}

/// Before the answer began, the first-byte wait ran out: renewed while the server is loading
/// the model ([`still_loading`]).
async fn renew_for_load(st: &mut StreamState) -> bool {
    let Some((watch, limit)) = st.load.as_ref() else { return false };
    still_loading(Some(watch), &mut st.clocks.first_byte_by, *limit, st.clocks.first_byte).await
}

/// Before the answer began: a report that shows more of the prompt read gives the server
/// another `timeoutSeconds` (module doc).
fn note_progress(st: &mut StreamState, events: &[Event]) {
    let processed = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress(p) => Some(p.processed),
            _ => None,
        })
        .max();
    if let Some(processed) = processed
        && (processed > st.progress || st.progress == 0)
    {
        st.progress = processed.max(1);
        let renewed = tokio::time::Instant::now() + st.clocks.first_byte;
        st.clocks.first_byte_by = st.clocks.first_byte_by.max(renewed);
    }
}

fn feed(st: &mut StreamState, chunk: &[u8], events: &mut Vec<Event>) {
    match &mut st.framing {
        Framing::Sse(sse) => {
            let mut items = Vec::new();
            sse.feed(chunk, &mut items);
            route_sse(&mut st.decoder, items, events);
        }
        Framing::Ndjson(nd) => {
            let mut items = Vec::new();
            nd.feed(chunk, &mut items);
            route_ndjson(&mut st.decoder, items, events);
        }
    }
}

fn flush(st: &mut StreamState, events: &mut Vec<Event>) {
    match &mut st.framing {
        Framing::Sse(sse) => {
            let mut items = Vec::new();
            sse.finish(&mut items);
            route_sse(&mut st.decoder, items, events);
        }
        Framing::Ndjson(nd) => {
            let mut items = Vec::new();
            nd.finish(&mut items);
            route_ndjson(&mut st.decoder, items, events);
        }
    }
}

fn route_sse(decoder: &mut Decoder, items: Vec<SseItem>, events: &mut Vec<Event>) {
    for item in items {
        match item {
            SseItem::Event(event) => decoder.sse(&event, events),
            SseItem::Comment(text) => events.extend(comment_progress(&text).map(Event::Progress)),
            SseItem::Error(e) => {
                decoder.fail(UpstreamError::new(ErrorClass::ServerError, e.to_string()), events)
            }
        }
    }
}

/// `mlx_lm.server`'s prompt progress: while it reads a long prompt it sends SSE comments
/// `keepalive PROCESSED/TOTAL` (shared/reference/local-servers.md §5). Other comments are
/// keep-alives of no meaning here.
fn comment_progress(text: &str) -> Option<crate::event::Progress> {
    let (processed, total) = text.trim().strip_prefix("keepalive")?.trim().split_once('/')?;
    let (processed, total) = (processed.trim().parse().ok()?, total.trim().parse().ok()?);
    Some(crate::event::Progress { processed, total, ..Default::default() })
}

fn route_ndjson(decoder: &mut Decoder, items: Vec<NdjsonItem>, events: &mut Vec<Event>) {
    for item in items {
        match item {
            NdjsonItem::Line(line) => decoder.ndjson(&line, events),
            NdjsonItem::Error(e) => {
                decoder.fail(UpstreamError::new(ErrorClass::ServerError, e.to_string()), events)
            }
        }
    }
}
