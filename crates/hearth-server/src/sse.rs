//! Streaming responses: a [`Render`] turns canonical events into one API's SSE frames; this
//! module drives it and keeps the bookkeeping (active streams, usage, aborts).
//!
//! Invariants: each relayed event costs one frame buffer and nothing else; the stream always
//! ends with the renderer's terminal frames (success or error), never by simply stopping; when
//! the client goes away the body is dropped, which drops the upstream stream and so cancels
//! the upstream request.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use hearth_upstream::{ErrorClass, Event, EventStream, UpstreamError, Usage};

use crate::relay::{Started, UsageSink, answer_headers};

/// Renders one API's stream.
pub trait Render: Send + 'static {
    /// Frames sent before the first event (`response.created`, `message_start`, the role chunk).
    fn start(&mut self, out: &mut Vec<u8>);
    /// Renders one event. Returns true after a terminal event (`Finish` or `Error`), when the
    /// renderer has written its closing frames.
    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool;
}

/// Writes `data: <json>\n\n`.
pub fn data(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

/// Writes `event: <name>\ndata: <json>\n\n`.
pub fn named(out: &mut Vec<u8>, name: &str, value: &impl serde::Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    data(out, value);
}

/// `data: [DONE]`.
pub fn done(out: &mut Vec<u8>) {
    out.extend_from_slice(b"data: [DONE]\n\n");
}

struct Relay<R> {
    events: EventStream,
    render: R,
    usage_sink: UsageSink,
    usage: Option<Usage>,
    started: bool,
    done: bool,
}

impl<R> Drop for Relay<R> {
    fn drop(&mut self) {
        self.usage_sink.metrics().active_streams.dec();
        if let Some(u) = &self.usage {
            self.usage_sink.record(u);
        }
    }
}

/// The streaming response for a started answer.
pub fn respond<R: Render>(started: Started, render: R) -> Response {
    let Started { answer, usage } = started;
    let mut headers = axum::http::HeaderMap::new();
    answer_headers(&answer, &mut headers);
    usage.metrics().active_streams.inc();
    let relay = Relay {
        events: answer.events,
        render,
        usage_sink: usage,
        usage: None,
        started: false,
        done: false,
    };
    let body = futures::stream::unfold(relay, |mut relay| async move {
        if relay.done {
            return None;
        }
        let mut out = Vec::with_capacity(256);
        if !relay.started {
            relay.started = true;
            relay.render.start(&mut out);
        }
        loop {
            let event = match relay.events.next().await {
                Some(event) => event,
                None => Event::Error(UpstreamError::new(
                    ErrorClass::ServerError,
                    "the upstream stream ended before the model finished",
                )),
            };
            match &event {
                Event::Usage(u) => relay.usage = Some(*u),
                Event::Error(e) => relay.usage_sink.abort(e),
                _ => {}
            }
            if relay.render.event(event, &mut out) {
                relay.done = true;
            }
            if !out.is_empty() || relay.done {
                break;
            }
        }
        Some((Ok::<Bytes, Infallible>(Bytes::from(out)), relay))
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    h.extend(headers);
    response
}
