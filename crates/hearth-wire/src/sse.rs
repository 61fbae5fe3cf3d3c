//! Decodes and encodes `text/event-stream` bodies (Server-Sent Events).
//!
//! [`SseDecoder`] follows the WHATWG EventSource parsing rules: lines end in CR, LF or CRLF (also
//! when a CRLF is split across chunks), a leading UTF-8 BOM is skipped, `:` lines are comments,
//! the fields are `event`, `data`, `id` and `retry`, one space after the colon is stripped, and a
//! blank line dispatches the event if it has a `data` field. Two deliberate additions for LLM
//! servers:
//!
//! - llama.cpp reports errors after the headers as a non-standard `error: {json}` field. The
//!   decoder turns it into an event named [`ERROR_EVENT`] with the JSON as its data.
//! - [`SseDecoder::finish`] dispatches a last event that was not followed by a blank line
//!   (the WHATWG rules drop it), so a body cut right after `data: [DONE]` still yields it.
//!
//! Invalid UTF-8 is replaced by U+FFFD, as the WHATWG UTF-8 decode step does. Lines are decoded
//! only once complete, so a character split across chunks is never damaged.
//!
//! Invariants: decoding never panics on any byte sequence; buffered memory is bounded by the
//! decoder's limit (an overflow becomes an [`SseItem::Error`] and the event is dropped); and the
//! items produced depend only on the bytes, never on how they were split into chunks.

use crate::error::DecodeError;
use crate::lines::{LineEnds, LineEvent, LineSplitter};

/// The `data` of the event that ends an OpenAI-style chat stream.
pub const DONE_SENTINEL: &str = "[DONE]";

/// The event name given to llama.cpp's `error:` field, and used by Anthropic for stream errors.
pub const ERROR_EVENT: &str = "error";

/// Default limit, in bytes, for one line and for one event's fields.
///
/// Big enough for a Responses `response.completed` event that repeats a long answer.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// One dispatched server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field; `None` when absent or empty (the WHATWG type `message`).
    pub event: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
    /// The `id` field of this event, if it had one; see [`SseDecoder::last_event_id`].
    pub id: Option<String>,
    /// The `retry` field of this event, in milliseconds, if it had a valid one.
    pub retry: Option<u64>,
}

/// What [`SseDecoder`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line's text after the `:` (one leading space stripped); only produced when
    /// enabled with [`SseDecoder::emit_comments`].
    Comment(String),
    /// Input that exceeded the limit; the event it belonged to was dropped.
    Error(DecodeError),
}

/// Incremental, bounded SSE decoder; feed it the body in chunks of any size.
///
/// ```
/// use hearth_wire::sse::{SseDecoder, SseItem};
///
/// let mut decoder = SseDecoder::new();
/// let mut items = Vec::new();
/// decoder.feed(b"event: ping\r\ndata: {\"type\":", &mut items);
/// decoder.feed(b"\"ping\"}\r\n\r\ndata: [DONE]", &mut items);
/// decoder.finish(&mut items);
/// assert_eq!(items.len(), 2);
/// assert!(matches!(&items[1], SseItem::Event(event) if event.is_done()));
/// ```
#[derive(Debug, Clone)]
pub struct SseDecoder {
    lines: LineSplitter,
    builder: EventBuilder,
}

/// Accumulates the fields of the event being parsed.
#[derive(Debug, Clone)]
struct EventBuilder {
    max_bytes: usize,
    emit_comments: bool,
    comments_seen: u64,
    event_type: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    /// The event overflowed the limit; its remaining fields are skipped until the blank line.
    poisoned: bool,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

// === impl SseEvent ===

impl SseEvent {
    /// An event with only `data`.
    pub fn data(data: impl Into<String>) -> Self {
        Self { data: data.into(), ..Self::default() }
    }

    /// Whether this is the `data: [DONE]` end marker of OpenAI-style chat streams.
    pub fn is_done(&self) -> bool {
        self.data == DONE_SENTINEL
    }

    /// Whether the event is named [`ERROR_EVENT`] (llama.cpp `error:` field, Anthropic errors).
    pub fn is_error(&self) -> bool {
        self.event.as_deref() == Some(ERROR_EVENT)
    }

    /// Appends this event, framed, to `buf`; see [`write_event`] for the rules.
    ///
    /// An `id` containing NUL is not written, since decoders ignore it.
    pub fn write_to(&self, buf: &mut Vec<u8>) {
        if let Some(name) = self.event.as_deref().filter(|name| !name.is_empty()) {
            write_single_line_field(buf, b"event", name);
        }
        if let Some(id) = self.id.as_deref().filter(|id| !id.contains('\0')) {
            write_single_line_field(buf, b"id", id);
        }
        if let Some(retry) = self.retry {
            write_single_line_field(buf, b"retry", &retry.to_string());
        }
        write_data_lines(buf, &self.data);
        buf.push(b'\n');
    }
}

// === impl SseDecoder ===

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the [`DEFAULT_MAX_BYTES`] limit that does not emit comments.
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }

    /// A decoder that buffers at most `max_bytes` for one line and `max_bytes` for one event's
    /// fields, so about twice that in total.
    pub fn with_max_bytes(max_bytes: usize) -> Self {
        Self {
            lines: LineSplitter::new(LineEnds::CrOrLf, max_bytes),
            builder: EventBuilder {
                max_bytes,
                emit_comments: false,
                comments_seen: 0,
                event_type: String::new(),
                data: String::new(),
                has_data: false,
                id: None,
                retry: None,
                poisoned: false,
                last_event_id: String::new(),
                reconnection_time: None,
            },
        }
    }

    /// Whether comment lines are produced as [`SseItem::Comment`] (they are always counted).
    pub fn emit_comments(mut self, emit: bool) -> Self {
        self.builder.emit_comments = emit;
        self
    }

    /// Decodes one chunk, appending every item it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) {
        let Self { lines, builder } = self;
        lines.feed(chunk, &mut |line| builder.on_line(line, out));
    }

    /// Ends the stream: dispatches a last event not followed by a blank line, then resets the
    /// decoder for a new stream (the comment count is kept).
    pub fn finish(&mut self, out: &mut Vec<SseItem>) {
        let Self { lines, builder } = self;
        lines.finish(&mut |line| builder.on_line(line, out));
        builder.dispatch(out);
        builder.last_event_id.clear();
        builder.reconnection_time = None;
    }

    /// How many comment lines (such as `: keepalive` or `: ping`) were seen since creation.
    pub fn comments_seen(&self) -> u64 {
        self.builder.comments_seen
    }

    /// The WHATWG "last event ID": the latest `id` field seen, kept across events.
    pub fn last_event_id(&self) -> &str {
        &self.builder.last_event_id
    }

    /// The latest valid `retry` field, in milliseconds, kept across events.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.builder.reconnection_time
    }
}

// === impl EventBuilder ===

impl EventBuilder {
    fn on_line(&mut self, line: LineEvent<'_>, out: &mut Vec<SseItem>) {
        let line = match line {
            LineEvent::Line(line) => line,
            LineEvent::TooLong => {
                out.push(SseItem::Error(DecodeError::LineTooLong { limit: self.max_bytes }));
                self.poison();
                return;
            }
        };
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            self.comments_seen += 1;
            if self.emit_comments {
                let comment = comment.strip_prefix(' ').unwrap_or(comment);
                out.push(SseItem::Comment(comment.to_owned()));
            }
            return;
        }
        if self.poisoned {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (&*line, ""),
        };
        match name {
            "event" => self.set_event_type(value, out),
            "data" => self.append_data(value, out),
            ERROR_EVENT => {
                // llama.cpp: `error: {json}` stands for a whole error event.
                self.set_event_type(ERROR_EVENT, out);
                self.append_data(value, out);
            }
            "id" if !value.contains('\0') => self.set_id(value, out),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(retry) = value.parse() {
                    self.retry = Some(retry);
                    self.reconnection_time = Some(retry);
                }
            }
            _ => {}
        }
    }

    fn set_event_type(&mut self, value: &str, out: &mut Vec<SseItem>) {
        if self.fits(value.len(), self.event_type.len(), out) {
            self.event_type.clear();
            self.event_type.push_str(value);
        }
    }

    fn set_id(&mut self, value: &str, out: &mut Vec<SseItem>) {
        let replaced = self.id.as_ref().map_or(0, String::len);
        if self.fits(value.len(), replaced, out) {
            self.last_event_id.clear();
            self.last_event_id.push_str(value);
            self.id = Some(value.to_owned());
        }
    }

    fn append_data(&mut self, value: &str, out: &mut Vec<SseItem>) {
        let separator = usize::from(self.has_data);
        if self.fits(separator + value.len(), 0, out) {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
    }

    /// Checks that adding `added` bytes (replacing `replaced` bytes) keeps the event within the
    /// limit; otherwise reports the overflow (once per event) and poisons the event.
    fn fits(&mut self, added: usize, replaced: usize, out: &mut Vec<SseItem>) -> bool {
        if self.poisoned {
            return false;
        }
        let current =
            self.event_type.len() + self.data.len() + self.id.as_ref().map_or(0, String::len);
        if current.saturating_sub(replaced).saturating_add(added) <= self.max_bytes {
            return true;
        }
        out.push(SseItem::Error(DecodeError::EventTooLarge { limit: self.max_bytes }));
        self.poison();
        false
    }

    fn poison(&mut self) {
        self.reset_event();
        // Release the memory an oversized event may have taken.
        self.data = String::new();
        self.poisoned = true;
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        if self.has_data && !self.poisoned {
            let event_type = std::mem::take(&mut self.event_type);
            out.push(SseItem::Event(SseEvent {
                event: (!event_type.is_empty()).then_some(event_type),
                data: std::mem::take(&mut self.data),
                id: self.id.take(),
                retry: self.retry.take(),
            }));
        }
        self.reset_event();
        self.poisoned = false;
    }

    fn reset_event(&mut self) {
        self.event_type.clear();
        self.data.clear();
        self.has_data = false;
        self.id = None;
        self.retry = None;
    }
}

/// Appends one event with an optional name and `data` to `buf`, framed and ended by a blank line.
///
/// `data` is split at every CR, LF or CRLF into several `data:` lines, so it decodes back with
/// its line ends normalized to `\n`. Line ends inside `event` are removed, since they would
/// start a new field. An empty `event` is written as none.
pub fn write_event(buf: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(name) = event.filter(|name| !name.is_empty()) {
        write_single_line_field(buf, b"event", name);
    }
    write_data_lines(buf, data);
    buf.push(b'\n');
}

/// Appends the `data: [DONE]` event that ends an OpenAI-style chat stream.
pub fn write_done(buf: &mut Vec<u8>) {
    write_event(buf, None, DONE_SENTINEL);
}

/// Appends a comment line (a keep-alive); line ends inside `text` are removed.
pub fn write_comment(buf: &mut Vec<u8>, text: &str) {
    buf.push(b':');
    if !text.is_empty() {
        buf.push(b' ');
        extend_without_line_ends(buf, text);
    }
    buf.push(b'\n');
}

fn write_single_line_field(buf: &mut Vec<u8>, name: &[u8], value: &str) {
    buf.extend_from_slice(name);
    buf.push(b':');
    if !value.is_empty() {
        buf.push(b' ');
        extend_without_line_ends(buf, value);
    }
    buf.push(b'\n');
}

fn extend_without_line_ends(buf: &mut Vec<u8>, value: &str) {
    for part in value.split(['\r', '\n']) {
        buf.extend_from_slice(part.as_bytes());
    }
}

fn write_data_lines(buf: &mut Vec<u8>, data: &str) {
    let mut rest = data;
    loop {
        let (line, next) = match rest.find(['\r', '\n']) {
            Some(end) => {
                let after = if rest[end..].starts_with("\r\n") { end + 2 } else { end + 1 };
                (&rest[..end], Some(&rest[after..]))
            }
            None => (rest, None),
        };
        buf.extend_from_slice(b"data:");
        if !line.is_empty() {
            buf.push(b' ');
            buf.extend_from_slice(line.as_bytes());
        }
        buf.push(b'\n');
        match next {
            Some(next) => rest = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests;
