//! Streaming responses: a [`Render`] turns canonical events into one API's SSE frames; this
//! module drives it and keeps the bookkeeping (active streams, usage, aborts).
//!
//! Invariants: relaying allocates nothing per event once warm (one reused render buffer, frames
//! split off one reused `BytesMut`); events that are already waiting go out in one write; the
//! stream always
//! ends with the renderer's terminal frames (success or error), never by simply stopping; when
//! the client goes away the body is dropped, which drops the upstream stream and so cancels
//! the upstream request.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
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

/// Frames that are already rendered are written together up to this size.
pub const COALESCE_BYTES: usize = 16 * 1024;
/// Consecutive yields to the scheduler without a new event before a frame goes out (measured:
/// with 1, hyper's upstream connection task rarely gets the next chunk across; with 2, a burst
/// of 200 events leaves in about 4 writes instead of 200).
const COALESCE_YIELDS: u32 = 2;

/// The frame buffers of one stream: renderers write into a reused `Vec`, and each write leaves
/// as `Bytes` split off one reused `BytesMut`. Once hyper has written the earlier frames,
/// `reserve` takes the same memory back, so a warm stream allocates nothing per frame.
#[derive(Debug, Default)]
pub struct Frames {
    scratch: Vec<u8>,
    buf: BytesMut,
}

impl Frames {
    pub fn new() -> Self {
        Frames { scratch: Vec::with_capacity(1024), buf: BytesMut::with_capacity(4096) }
    }

    /// Where renderers write.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.scratch
    }

    /// Everything written since the last `take`, as one frame.
    pub fn take(&mut self) -> Bytes {
        self.buf.reserve(self.scratch.len());
        self.buf.extend_from_slice(&self.scratch);
        self.scratch.clear();
        self.buf.split().freeze()
    }
}

struct Relay<R> {
    events: EventStream,
    render: R,
    usage_sink: UsageSink,
    usage: Option<Usage>,
    frames: Frames,
    started: bool,
    done: bool,
}

impl<R: Render> Relay<R> {
    /// Renders one event (`None`: the upstream stream ended, which before a terminal event is
    /// an error).
    fn feed(&mut self, event: Option<Event>) {
        let event = event.unwrap_or_else(|| {
            Event::Error(UpstreamError::new(
                ErrorClass::ServerError,
                "the upstream stream ended before the model finished",
            ))
        });
        match &event {
            Event::Usage(u) => self.usage = Some(*u),
            Event::Error(e) => self.usage_sink.abort(e),
            _ => {}
        }
        if self.render.event(event, self.frames.out()) {
            self.done = true;
        }
    }
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
        frames: Frames::new(),
        started: false,
        done: false,
    };
    let body = futures::stream::unfold(relay, |mut relay| async move {
        if relay.done {
            return None;
        }
        let first = !relay.started;
        if first {
            relay.started = true;
            relay.render.start(relay.frames.out());
        }
        // Wait for something to write (on the first frame, for the first event too)…
        let mut fed = !first;
        while !relay.done && (relay.frames.out().is_empty() || !fed) {
            let event = relay.events.next().await;
            relay.feed(event);
            fed = true;
        }
        if first {
            // The first event goes out at once: time to first token is what users feel.
            return Some((Ok::<Bytes, Infallible>(relay.frames.take()), relay));
        }
        // …then add what has already arrived, without waiting for more. hyper hands the
        // upstream body over one chunk at a time (its connection task passes the next chunk on
        // only after this one was taken), so a couple of yields let it pass on what it has
        // already read; when nothing more comes, the frame goes out after those yields.
        let mut yielded = 0u32;
        while !relay.done && relay.frames.out().len() < COALESCE_BYTES {
            match relay.events.next().now_or_never() {
                Some(event) => {
                    relay.feed(event);
                    yielded = 0;
                }
                None if yielded < COALESCE_YIELDS => {
                    tokio::task::yield_now().await;
                    yielded += 1;
                }
                None => break,
            }
        }
        Some((Ok::<Bytes, Infallible>(relay.frames.take()), relay))
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    h.extend(headers);
    response
}
