//! What one HTTP request leaves behind: its request id (`x-request-id`, the client's when
//! usable), one log line, and the OpenTelemetry spans of the request and of each upstream
//! attempt (`docs/gateway.md`, "Logs and traces").
//!
//! The `observe` middleware opens a [`Record`] per request and makes it the task's current
//! one; the relay writes what it learned into it (the requested model, every attempt, the
//! answering model, usage, a stream's terminal error), reusing what it already computed for the
//! `x-hearth-*` headers and the metrics. The line and the spans are written when the last
//! holder lets go of the record: the middleware for a whole answer or an error, the stream body
//! once a stream has ended (or its client went away), so a stream's line has its usage and its
//! whole duration.
//!
//! Invariants: nothing is allocated or recorded when neither the request line (target
//! [`REQUEST_TARGET`] at info) nor trace export is on; the line and the spans carry ids, model
//! refs, numbers and error classes only: never a credential, a header value other than the
//! request id, a query string, prompt or answer text, or an upstream error message (those may
//! quote either).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::Response;
use hearth_config::ModelRef;
use hearth_upstream::{Answer, Failure, Usage};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, global::BoxedTracer};

/// The request id header: accepted from the client, returned on every response.
pub const HEADER_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A client's request id longer than this (or empty, or with other than visible ASCII) is
/// replaced by a fresh one.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// The target of the one line per request (`RUST_LOG=hearth_server::request=info`).
pub const REQUEST_TARGET: &str = "hearth_server::request";

/// Where spans go, once trace export is on (set once, by the binary).
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

tokio::task_local! {
    /// The record of the request the task serves.
    static CURRENT: Arc<Record>;
}

/// Turns trace export on for this process: spans go to the global tracer provider, which the
/// caller has installed (`opentelemetry::global::set_tracer_provider`).
pub fn enable_traces() {
    let _ = TRACER.set(opentelemetry::global::tracer("hearth"));
}

/// The client's `x-request-id` when usable (1 to [`MAX_REQUEST_ID_BYTES`] visible ASCII
/// characters), else a fresh one (32 hex digits).
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(given) = headers.get(HEADER_REQUEST_ID) {
        let bytes = given.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID_BYTES
            && bytes.iter().all(u8::is_ascii_graphic)
        {
            return given.clone();
        }
    }
    new_request_id()
}

fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut digits = [0u8; 32];
    for digit in digits.iter_mut().rev() {
        *digit = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&digits).unwrap_or(HeaderValue::from_static("0"))
}

/// What the relay learned about one request; written out when the last holder drops it.
pub struct Record {
    id: HeaderValue,
    method: Method,
    uri: Uri,
    api: &'static str,
    started: Instant,
    wall: SystemTime,
    log: bool,
    fields: Mutex<Fields>,
}

#[derive(Default)]
struct Fields {
    status: u16,
    requested: Option<String>,
    agent_run: bool,
    answer: Option<ModelRef>,
    attempts: Vec<AttemptLog>,
    /// When the router handed over the answer (the attempts end there).
    routed: Option<SystemTime>,
    usage: Option<Usage>,
    /// The error class that ended the request or its stream.
    error: Option<&'static str>,
}

struct AttemptLog {
    model_ref: ModelRef,
    outcome: &'static str,
    elapsed: Duration,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

// === impl Record ===

impl Record {
    /// A record for `request` when its line or its spans will be written, else `None`.
    pub fn begin(request: &Request, api: &'static str, id: &HeaderValue) -> Option<Arc<Record>> {
        let log = tracing::enabled!(target: REQUEST_TARGET, tracing::Level::INFO);
        if !log && TRACER.get().is_none() {
            return None;
        }
        Some(Arc::new(Record {
            id: id.clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            api,
            started: Instant::now(),
            wall: SystemTime::now(),
            log,
            fields: Mutex::new(Fields::default()),
        }))
    }

    /// The run's outcome: what was asked for, every attempt, and who answered.
    pub fn run(&self, requested: &str, agent_run: bool, result: &Result<Answer, Failure>) {
        let Ok(mut fields) = self.fields.lock() else { return };
        fields.requested = Some(requested.to_owned());
        fields.agent_run = agent_run;
        fields.routed = Some(SystemTime::now());
        let attempts = match result {
            Ok(answer) => {
                fields.answer = Some(answer.model_ref.clone());
                &answer.attempts
            }
            Err(failure) => {
                fields.error = Some(failure.last.class.as_str());
                &failure.attempts
            }
        };
        fields.attempts = attempts
            .iter()
            .map(|a| AttemptLog {
                model_ref: a.model_ref.clone(),
                outcome: match (&a.error, a.skipped) {
                    (_, true) => "skipped",
                    (None, false) => "ok",
                    (Some(e), false) => e.class.as_str(),
                },
                elapsed: a.elapsed,
            })
            .collect();
    }

    /// The answer's usage (whole answers and streams alike).
    pub fn usage(&self, usage: &Usage) {
        if let Ok(mut fields) = self.fields.lock() {
            fields.usage = Some(*usage);
        }
    }

    /// The error that ended an answer after it began (a stream's terminal error event).
    pub fn failed(&self, class: &'static str) {
        if let Ok(mut fields) = self.fields.lock() {
            fields.error = Some(class);
        }
    }

    fn write_line(&self, fields: &Fields, latency: Duration) {
        let answered = fields.answer.as_ref();
        let usage = fields.usage.as_ref();
        tracing::info!(
            target: REQUEST_TARGET,
            request_id = self.id.to_str().unwrap_or_default(),
            method = %self.method,
            path = %Clean(self.uri.path()),
            api = self.api,
            requested_model = fields.requested.as_deref().map(|m| tracing::field::display(Clean(m))),
            provider = answered.map(|m| m.provider.as_str()),
            model = answered.map(|m| m.model.as_str()),
            attempts = (!fields.attempts.is_empty()).then(|| tracing::field::display(Attempts(&fields.attempts))),
            status = fields.status,
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            input_tokens = usage.map(|u| u.input_tokens),
            output_tokens = usage.map(|u| u.output_tokens),
            error = fields.error,
            "Request done."
        );
    }

    /// The request span and one child span per attempt (GenAI semantic conventions). Only
    /// model requests (those that reached the router) have spans.
    fn export(&self, tracer: &BoxedTracer, fields: &Fields, end: SystemTime) {
        let Some(requested) = fields.requested.as_deref() else { return };
        let operation = if fields.agent_run { "invoke_agent" } else { "chat" };
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", requested.to_owned()),
            KeyValue::new("http.request.method", self.method.as_str().to_owned()),
            KeyValue::new("url.path", self.uri.path().to_owned()),
            KeyValue::new("http.response.status_code", i64::from(fields.status)),
            KeyValue::new("hearth.request_id", self.id.to_str().unwrap_or_default().to_owned()),
            KeyValue::new("hearth.api", self.api),
            KeyValue::new("hearth.attempts", fields.attempts.len() as i64),
        ];
        if let Some(answer) = &fields.answer {
            attributes.extend(provider_attributes(&answer.provider));
            attributes.push(KeyValue::new("gen_ai.response.model", answer.model.clone()));
        }
        if let Some(usage) = &fields.usage {
            attributes.extend(usage_attributes(usage));
        }
        let error = fields.error.or_else(|| {
            (fields.status >= 400).then_some(if fields.status < 500 {
                "client_error"
            } else {
                "server_error"
            })
        });
        if let Some(error) = error {
            attributes.push(KeyValue::new("error.type", error));
        }
        let mut span = tracer
            .span_builder(format!("{operation} {requested}"))
            .with_kind(SpanKind::Server)
            .with_start_time(self.wall)
            .with_attributes(attributes)
            .start(tracer);
        if let Some(error) = error {
            span.set_status(Status::error(error));
        }
        let cx = Context::new().with_span(span);
        // Attempts ran one after another and ended when the router handed over the answer.
        let routed = fields.routed.unwrap_or(end);
        let mut start = fields
            .attempts
            .iter()
            .fold(routed, |t, a| t.checked_sub(a.elapsed).unwrap_or(t))
            .max(self.wall);
        for attempt in &fields.attempts {
            let answered = attempt.outcome == "ok";
            let mut attributes = vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", attempt.model_ref.model.clone()),
                KeyValue::new("hearth.outcome", attempt.outcome),
            ];
            attributes.extend(provider_attributes(&attempt.model_ref.provider));
            if answered {
                attributes
                    .push(KeyValue::new("gen_ai.response.model", attempt.model_ref.model.clone()));
                if let Some(usage) = &fields.usage {
                    attributes.extend(usage_attributes(usage));
                }
            } else {
                attributes.push(KeyValue::new("error.type", attempt.outcome));
            }
            let mut child = tracer
                .span_builder(format!("chat {}", attempt.model_ref.model))
                .with_kind(SpanKind::Client)
                .with_start_time(start)
                .with_attributes(attributes)
                .start_with_context(tracer, &cx);
            if !answered {
                child.set_status(Status::error(attempt.outcome));
            }
            let attempt_end = start + attempt.elapsed;
            // The answering attempt streams on until the answer ends.
            child.end_with_timestamp(if answered { end } else { attempt_end });
            start = attempt_end;
        }
        cx.span().end_with_timestamp(end);
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let latency = self.started.elapsed();
        let Ok(fields) = self.fields.get_mut() else { return };
        let fields = std::mem::take(fields);
        if self.log {
            self.write_line(&fields, latency);
        }
        if let Some(tracer) = TRACER.get() {
            self.export(tracer, &fields, self.wall + latency);
        }
    }
}

fn provider_attributes(provider: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("gen_ai.provider.name", provider.to_owned()),
        // The older name, still read by many backends.
        KeyValue::new("gen_ai.system", provider.to_owned()),
    ]
}

fn usage_attributes(usage: &Usage) -> [KeyValue; 2] {
    [
        KeyValue::new(
            "gen_ai.usage.input_tokens",
            i64::try_from(usage.input_tokens).unwrap_or(i64::MAX),
        ),
        KeyValue::new(
            "gen_ai.usage.output_tokens",
            i64::try_from(usage.output_tokens).unwrap_or(i64::MAX),
        ),
    ]
}

/// `provider/model=outcome`, comma-separated, in the order they ran.
struct Attempts<'a>(&'a [AttemptLog]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={}", attempt.model_ref, attempt.outcome)?;
        }
        Ok(())
    }
}

/// Client-chosen text (a path, a model name) with control characters escaped, so a line is
/// always one line.
#[derive(Clone, Copy)]
struct Clean<'a>(&'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// The record of the request this task serves, if any.
pub fn current() -> Option<Arc<Record>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `future` with `record` as the current record.
pub async fn scope<F: Future>(record: Option<Arc<Record>>, future: F) -> F::Output {
    match record {
        Some(record) => CURRENT.scope(record, future).await,
        None => future.await,
    }
}

/// `future` keeping the current record wherever it is polled later (a stream's body polls the
/// run it waits for outside the request's task).
pub fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    scope(current(), future)
}

/// Ends the middleware's part: the status goes into the record and the request id onto the
/// response.
pub fn respond(record: Option<Arc<Record>>, id: HeaderValue, response: &mut Response) {
    if let Some(record) = record
        && let Ok(mut fields) = record.fields.lock()
    {
        fields.status = response.status().as_u16();
    }
    response.headers_mut().insert(HEADER_REQUEST_ID, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(given: Option<&str>, kept: bool) {
        let mut headers = HeaderMap::new();
        if let Some(given) = given {
            headers.insert(HEADER_REQUEST_ID, HeaderValue::from_str(given).unwrap());
        }
        let id = request_id(&headers);
        let id = id.to_str().unwrap();
        if kept {
            assert_eq!(Some(id), given);
        } else {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }

    #[test]
    fn request_ids_are_kept_when_usable() {
        check(Some("abc-123"), true);
        check(Some(&"x".repeat(128)), true);
        check(None, false);
        check(Some(""), false);
        check(Some(&"x".repeat(129)), false);
        check(Some("has space"), false);
        check(Some("tab\there"), false);
    }

    #[test]
    fn client_text_stays_on_one_line() {
        assert_eq!(Clean("a\nb\u{7}").to_string(), "a\\nb\\u{7}");
    }
}
