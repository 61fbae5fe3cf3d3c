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
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use hearth_agent::{NoticeSink, ProgressSink};
use hearth_upstream::{ErrorClass, Event, EventStream, Progress, Prompt, UpstreamError, Usage};
use tokio::sync::{mpsc, watch};

use crate::error::ApiError;
use crate::relay::{Started, UsageSink, answer_headers};

/// Renders one API's stream.
pub trait Render: Send + 'static {
    /// Frames sent before the first event (`response.created`, `message_start`, the role chunk).
    fn start(&mut self, out: &mut Vec<u8>);
    /// Renders one event. Returns true after a terminal event (`Finish` or `Error`), when the
    /// renderer has written its closing frames.
    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool;
    /// Renders one notice in-band, after the start frames, for a stream whose headers went
    /// out before its notices existed (they are `x-hearth-notice` headers otherwise).
    fn notice(&mut self, text: &str, out: &mut Vec<u8>);
    /// Takes over the stream `early` began: a renderer built before the run started (no
    /// answer yet) wrote the start frames and a notice that came due while the run waited (the
    /// overload notice). Keep its ids and numbering, so the stream reads as one.
    fn resume(&mut self, early: Self)
    where
        Self: Sized;
    /// A prompt progress report of the server while the run waits for the answer to begin, as
    /// a keep-alive the API's clients ignore: an SSE comment (`: progress 1024/2270`) unless
    /// the API has its own (Messages' `ping`). It carries no content: failover is still open
    /// (Invariant 1).
    fn progress(progress: &Progress, out: &mut Vec<u8>)
    where
        Self: Sized,
    {
        progress_comment(progress, out);
    }
}

/// `: progress <processed>/<total>\n\n`.
pub fn progress_comment(progress: &Progress, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // A few reports per request, never per token: no need to avoid the formatter.
    let _ = write!(out, ": progress {}/{}\n\n", progress.processed, progress.total);
}

/// Progress reports of a waiting run go out at most this often (a server may report every
/// few milliseconds); the report that the whole prompt was read always goes.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

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

/// How a stream behaves while it waits: SSE comments keep an idle client company, and the
/// drain deadline ends it with its terminal error event.
#[derive(Debug, Clone)]
pub struct Pace {
    pub keep_alive: Duration,
    /// Becomes true at the drain deadline.
    pub stop: watch::Receiver<bool>,
}

impl Pace {
    pub fn new(app: &crate::AppState) -> Self {
        Pace {
            keep_alive: app.config.load().gateway.limits.stream_keep_alive,
            stop: app.stop_streams.subscribe(),
        }
    }
}

/// An SSE comment: every client ignores it, and it tells proxies and the client the stream lives.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Resolves when the drain deadline passed (never, once the gateway's state is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn shutting_down() -> UpstreamError {
    UpstreamError::new(
        ErrorClass::Overloaded,
        "the gateway is shutting down; the answer was cut off (retry the request)",
    )
}

struct Relay<R> {
    events: EventStream,
    render: R,
    usage_sink: UsageSink,
    usage: Option<Usage>,
    frames: Frames,
    started: bool,
    done: bool,
    pace: Pace,
    /// Fires every `keep_alive`; a comment goes out only when nothing else did meanwhile.
    tick: Pin<Box<tokio::time::Sleep>>,
    last_write: Instant,
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

    /// Waits for the next event, the keep-alive tick or the drain deadline. `false`: only a
    /// keep-alive comment was written.
    async fn wait(&mut self) -> bool {
        let woke = tokio::select! {
            biased;
            event = self.events.next() => Some(event),
            () = stopped(&mut self.pace.stop) => Some(Some(Event::Error(shutting_down()))),
            () = &mut self.tick => None,
        };
        match woke {
            Some(event) => {
                self.feed(event);
                true
            }
            None => {
                let now = Instant::now();
                if now.duration_since(self.last_write) >= self.pace.keep_alive {
                    self.frames.out().extend_from_slice(KEEP_ALIVE);
                }
                let next = self.last_write.max(now) + self.pace.keep_alive;
                self.tick.as_mut().reset(tokio::time::Instant::from_std(next));
                false
            }
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

type Frame = Result<Bytes, Infallible>;

/// What a stream whose headers went out before its run started has already written.
#[derive(Debug, Default)]
struct Early {
    /// The renderer's start frames.
    start: bool,
    /// Notices that came due while the run waited, in the order they went out.
    notices: Vec<String>,
}

/// The frames of a started answer, rendered by `render`. `early`: the headers went out before
/// the run started, so its notices go in-band (less those already sent while it waited).
fn relay_frames<R: Render>(
    started: Started,
    render: R,
    early: Option<Early>,
) -> impl futures::Stream<Item = Frame> + Send + 'static {
    let Started { answer, usage, pace } = started;
    let (notices, started_early) = match early {
        None => (Vec::new(), false),
        Some(early) => (
            crate::relay::unsent(&answer.notices, &early.notices)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            early.start,
        ),
    };
    usage.metrics().active_streams.inc();
    let tick = Box::pin(tokio::time::sleep(pace.keep_alive));
    let relay = Relay {
        events: answer.events,
        render,
        usage_sink: usage,
        usage: None,
        frames: Frames::new(),
        started: false,
        done: false,
        pace,
        tick,
        last_write: Instant::now(),
    };
    futures::stream::unfold((relay, notices), move |(mut relay, notices)| async move {
        if relay.done {
            return None;
        }
        let first = !relay.started;
        if first {
            relay.started = true;
            if !started_early {
                relay.render.start(relay.frames.out());
            }
            for notice in &notices {
                relay.render.notice(notice, relay.frames.out());
            }
        }
        // Wait for something to write (on the first frame, for the first event too)…
        let mut fed = !first;
        while !relay.done && (relay.frames.out().is_empty() || !fed) {
            if relay.wait().await {
                fed = true;
            } else if !first && !relay.frames.out().is_empty() {
                // A keep-alive comment: out now, alone.
                break;
            }
        }
        relay.last_write = Instant::now();
        if first {
            // The first event goes out at once: time to first token is what users feel.
            return Some((Ok::<Bytes, Infallible>(relay.frames.take()), (relay, Vec::new())));
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
        Some((Ok::<Bytes, Infallible>(relay.frames.take()), (relay, Vec::new())))
    })
}

fn stream_response(body: Body, extra: axum::http::HeaderMap) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    h.extend(extra);
    response
}

/// The streaming response for a started answer.
pub fn respond<R: Render>(started: Started, render: R) -> Response {
    let mut headers = axum::http::HeaderMap::new();
    answer_headers(&started.answer, &mut headers);
    stream_response(Body::from_stream(relay_frames(started, render, None)), headers)
}

/// What a renderer is built from: the started answer and its prompt, or nothing when the run
/// failed after the headers went out.
pub type Made<'a> = Option<(&'a Started, Prompt)>;

/// A stream that may be slow to start (a local model loading, a long prompt): the first event
/// is awaited for `gateway.limits.streamHeadersAfterMs`; a run that starts or fails within it is
/// answered as usual (a failure keeps its HTTP status). Past it, the headers go out with an SSE
/// keep-alive comment, more follow every `streamKeepAliveMs`, and a run that then fails ends
/// the stream with its API's terminal error event. Failover still happens only before the
/// first event (Invariant 1): comments carry no content.
///
/// `start` is handed the sink for notices that come due while the run waits (the overload
/// notice): once the headers are out, each goes out at once, after the start frames (written
/// then by a renderer `make` builds without an answer), and not again when the answer starts.
/// Before that, it is an `x-hearth-notice` header like the others. It is also handed the sink
/// for the server's prompt progress: once the headers are out, the latest report goes out as
/// [`Render::progress`] (at most every [`PROGRESS_EVERY`]).
pub async fn respond_when_started<R, S, F, M>(
    app: &crate::AppState,
    start: S,
    make: M,
) -> Result<Response, ApiError>
where
    R: Render,
    S: FnOnce(NoticeSink, ProgressSink) -> F,
    F: Future<Output = Result<(Started, Prompt), ApiError>> + Send + 'static,
    M: for<'a> FnOnce(Made<'a>) -> R + Clone + Send + 'static,
{
    let grace = app.config.load().gateway.limits.stream_headers_after;
    // Unbounded, yet small: a run has one notice that comes due while it waits.
    let (notice_tx, notices) = mpsc::unbounded_channel::<String>();
    let sink = NoticeSink(std::sync::Arc::new(move |notice: &str| {
        // The stream may be gone (the client left, or the answer was on time): nobody to tell.
        let _ = notice_tx.send(notice.to_owned());
    }));
    // The latest report wins: a fast server's reports never pile up.
    let (progress_tx, progress) = watch::channel::<Option<Progress>>(None);
    let progress_sink = ProgressSink(std::sync::Arc::new(move |_, report: &Progress| {
        progress_tx.send_replace(Some(*report));
    }));
    // The run may finish inside the body, outside the request's task: it keeps its record.
    let mut start = Box::pin(crate::telemetry::carry(start(sink, progress_sink)));
    match tokio::time::timeout(grace, &mut start).await {
        Ok(Ok((started, prompt))) => {
            let render = make(Some((&started, prompt)));
            Ok(respond(started, render))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(stream_response(
            Body::from_stream(late(start, make, Pace::new(app), notices, progress)),
            Default::default(),
        )),
    }
}

/// A late stream while its run has not started yet.
struct Waiting<F, M, R> {
    start: Pin<Box<F>>,
    make: Option<M>,
    pace: Pace,
    tick: Pin<Box<tokio::time::Sleep>>,
    said_hello: bool,
    /// Notices that come due while the run waits.
    notices: mpsc::UnboundedReceiver<String>,
    /// The renderer that wrote the start frames and those notices, once one came.
    early: Option<R>,
    sent: Vec<String>,
    /// The server's latest prompt progress report, and when the last one went out.
    progress: watch::Receiver<Option<Progress>>,
    progress_sent: Option<tokio::time::Instant>,
}

enum Late<F, M, R> {
    Waiting(Box<Waiting<F, M, R>>),
    Relaying(Pin<Box<dyn futures::Stream<Item = Frame> + Send>>),
    Done,
}

fn late<R, F, M>(
    start: Pin<Box<F>>,
    make: M,
    pace: Pace,
    notices: mpsc::UnboundedReceiver<String>,
    progress: watch::Receiver<Option<Progress>>,
) -> impl futures::Stream<Item = Frame> + Send + 'static
where
    R: Render,
    F: Future<Output = Result<(Started, Prompt), ApiError>> + Send + 'static,
    M: for<'a> FnOnce(Made<'a>) -> R + Clone + Send + 'static,
{
    let tick = Box::pin(tokio::time::sleep(pace.keep_alive));
    let state = Late::Waiting(Box::new(Waiting {
        start,
        make: Some(make),
        pace,
        tick,
        said_hello: false,
        notices,
        early: None,
        sent: Vec::new(),
        progress,
        progress_sent: None,
    }));
    futures::stream::unfold(state, |state| async move {
        match state {
            Late::Done => None,
            Late::Relaying(mut frames) => {
                let frame = frames.next().await?;
                Some((frame, Late::Relaying(frames)))
            }
            Late::Waiting(mut w) => {
                if !w.said_hello {
                    w.said_hello = true;
                    return Some((Ok(Bytes::from_static(KEEP_ALIVE)), Late::Waiting(w)));
                }
                let failed = |w: &mut Waiting<F, M, R>, error: UpstreamError| {
                    let mut out = Vec::new();
                    let render = match w.early.take() {
                        Some(early) => Some(early),
                        None => w.make.take().map(|make| {
                            let mut render = make(None);
                            render.start(&mut out);
                            render
                        }),
                    };
                    if let Some(mut render) = render {
                        render.event(Event::Error(error), &mut out);
                    }
                    Some((Ok(Bytes::from(out)), Late::Done))
                };
                tokio::select! {
                    biased;
                    result = &mut w.start => match result {
                        Ok((started, prompt)) => {
                            let make = w.make.take()?;
                            let mut render = make(Some((&started, prompt)));
                            let start = match w.early.take() {
                                Some(early) => {
                                    render.resume(early);
                                    true
                                }
                                None => false,
                            };
                            let early = Early { start, notices: std::mem::take(&mut w.sent) };
                            let mut frames: Pin<Box<dyn futures::Stream<Item = Frame> + Send>> =
                                Box::pin(relay_frames(started, render, Some(early)));
                            let frame = frames.next().await?;
                            Some((frame, Late::Relaying(frames)))
                        }
                        Err(e) => failed(&mut w, upstream_error_of(&e)),
                    },
                    () = stopped(&mut w.pace.stop) => failed(&mut w, shutting_down()),
                    Some(notice) = w.notices.recv() => {
                        // Out now, after the start frames (written once, by a renderer that
                        // has no answer yet; the answer's renderer takes it over).
                        let mut out = Vec::new();
                        let Waiting { make, early, .. } = &mut *w;
                        if early.is_none() {
                            let make = make.as_ref()?.clone();
                            let mut render = make(None);
                            render.start(&mut out);
                            *early = Some(render);
                        }
                        if let Some(render) = early {
                            render.notice(&notice, &mut out);
                        }
                        w.sent.push(notice);
                        Some((Ok(Bytes::from(out)), Late::Waiting(w)))
                    }
                    Ok(()) = w.progress.changed() => {
                        let report = *w.progress.borrow_and_update();
                        let now = tokio::time::Instant::now();
                        let due = w.progress_sent.is_none_or(|at| now >= at + PROGRESS_EVERY);
                        let mut out = Vec::new();
                        if let Some(report) = report.filter(|r| due || r.is_complete()) {
                            R::progress(&report, &mut out);
                            w.progress_sent = Some(now);
                        }
                        Some((Ok(Bytes::from(out)), Late::Waiting(w)))
                    }
                    () = &mut w.tick => {
                        let next = tokio::time::Instant::now() + w.pace.keep_alive;
                        w.tick.as_mut().reset(next);
                        Some((Ok(Bytes::from_static(KEEP_ALIVE)), Late::Waiting(w)))
                    }
                }
            }
        }
    })
}

/// A run's error response as the stream error its renderer shows.
fn upstream_error_of(e: &ApiError) -> UpstreamError {
    let class = match e.status.as_u16() {
        504 => ErrorClass::Timeout,
        503 | 529 => ErrorClass::Overloaded,
        429 => ErrorClass::RateLimit,
        400..=499 => ErrorClass::Format,
        _ => ErrorClass::ServerError,
    };
    UpstreamError::new(class, e.message.clone())
}
