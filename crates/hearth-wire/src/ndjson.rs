//! Splits newline-delimited JSON bodies (Ollama's native `/api/chat` and `/api/generate`
//! streams) into lines.
//!
//! Lines end in LF; one CR before it is dropped; lines that are empty or only whitespace are
//! skipped; a leading UTF-8 BOM is skipped; a last line without a line end is produced by
//! [`NdjsonDecoder::finish`]. Invalid UTF-8 is replaced by U+FFFD, so a broken line fails later
//! as JSON rather than here. The decoder does not parse JSON: callers deserialize each line
//! into the type they expect, such as [`crate::ollama::ChatChunk`].
//!
//! Invariants: never panics on any byte sequence; buffers at most the configured limit; the
//! items produced depend only on the bytes, never on how they were split into chunks.

use crate::error::DecodeError;
use crate::lines::{LineEnds, LineEvent, LineSplitter};

/// Default limit, in bytes, for one line.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// What [`NdjsonDecoder`] produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdjsonItem {
    /// One non-blank line, without its line end.
    Line(String),
    /// A line exceeded the limit and was dropped.
    Error(DecodeError),
}

/// Incremental, bounded NDJSON line decoder; feed it the body in chunks of any size.
///
/// ```
/// use hearth_wire::ndjson::{NdjsonDecoder, NdjsonItem};
///
/// let mut decoder = NdjsonDecoder::new();
/// let mut items = Vec::new();
/// decoder.feed(b"{\"done\":false}\n{\"do", &mut items);
/// decoder.feed(b"ne\":true}", &mut items);
/// decoder.finish(&mut items);
/// assert_eq!(items, [
///     NdjsonItem::Line("{\"done\":false}".into()),
///     NdjsonItem::Line("{\"done\":true}".into()),
/// ]);
/// ```
#[derive(Debug, Clone)]
pub struct NdjsonDecoder {
    lines: LineSplitter,
}

// === impl NdjsonDecoder ===

impl Default for NdjsonDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl NdjsonDecoder {
    /// A decoder with the [`DEFAULT_MAX_LINE_BYTES`] limit.
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    /// A decoder that buffers at most `max_line_bytes` (line end included) for one line.
    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        Self { lines: LineSplitter::new(LineEnds::Lf, max_line_bytes) }
    }

    /// Decodes one chunk, appending every line it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<NdjsonItem>) {
        let limit = self.lines.max_line_bytes();
        self.lines.feed(chunk, &mut |line| on_line(line, limit, out));
    }

    /// Ends the stream: produces a last line that had no line end, then resets the decoder.
    pub fn finish(&mut self, out: &mut Vec<NdjsonItem>) {
        let limit = self.lines.max_line_bytes();
        self.lines.finish(&mut |line| on_line(line, limit, out));
    }
}

fn on_line(line: LineEvent<'_>, limit: usize, out: &mut Vec<NdjsonItem>) {
    match line {
        LineEvent::Line(line) if line.iter().all(u8::is_ascii_whitespace) => {}
        LineEvent::Line(line) => {
            out.push(NdjsonItem::Line(String::from_utf8_lossy(line).into_owned()));
        }
        LineEvent::TooLong => out.push(NdjsonItem::Error(DecodeError::LineTooLong { limit })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]], max: usize) -> Vec<NdjsonItem> {
        let mut decoder = NdjsonDecoder::with_max_line_bytes(max);
        let mut items = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, &mut items);
        }
        decoder.finish(&mut items);
        items
    }

    /// The single place that exercises the decoder; every split of `input` must agree.
    #[track_caller]
    fn check_with_limit(input: &[u8], max: usize, expected: &[Option<&str>]) {
        let expected: Vec<NdjsonItem> = expected
            .iter()
            .map(|line| match line {
                Some(line) => NdjsonItem::Line((*line).to_owned()),
                None => NdjsonItem::Error(DecodeError::LineTooLong { limit: max }),
            })
            .collect();
        assert_eq!(decode(&[input], max), expected, "whole");
        for at in 0..=input.len() {
            let (head, tail) = input.split_at(at);
            assert_eq!(decode(&[head, tail], max), expected, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode(&bytes, max), expected, "byte by byte");
    }

    #[track_caller]
    fn check(input: &str, expected: &[&str]) {
        let expected: Vec<Option<&str>> = expected.iter().copied().map(Some).collect();
        check_with_limit(input.as_bytes(), DEFAULT_MAX_LINE_BYTES, &expected);
    }

    #[test]
    fn ollama_chat_stream_splits_into_objects() {
        let input = concat!(
            r#"{"model":"qwen3:8b","message":{"role":"assistant","content":"","thinking":"Hm"},"done":false}"#,
            "\n",
            r#"{"model":"qwen3:8b","message":{"role":"assistant","content":"Hi"},"done":false}"#,
            "\n",
            r#"{"model":"qwen3:8b","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","eval_count":15}"#,
            "\n",
        );
        let lines: Vec<&str> = input.lines().collect();
        check(input, &lines);
    }

    #[test]
    fn crlf_line_ends_are_accepted() {
        check("{\"a\":1}\r\n{\"b\":2}\r\n", &["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn last_line_without_newline_is_flushed() {
        check(
            "{\"a\":1}\n{\"error\":\"model 'x' not found\"}",
            &["{\"a\":1}", "{\"error\":\"model 'x' not found\"}"],
        );
    }

    #[test]
    fn blank_lines_are_skipped() {
        check("\n\n  \r\n{}\n\t\n", &["{}"]);
    }

    #[test]
    fn leading_bom_is_skipped() {
        check("\u{FEFF}{}\n", &["{}"]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        check_with_limit(b"{\"a\":\"\xFF\"}\n", 64, &[Some("{\"a\":\"\u{FFFD}\"}")]);
    }

    #[test]
    fn oversized_line_becomes_an_error_and_decoding_resumes() {
        check_with_limit(
            b"{}\n{\"long\":\"xxxxxxxx\"}\n{\"b\":1}",
            10,
            &[Some("{}"), None, Some("{\"b\":1}")],
        );
        check_with_limit(b"{}\n{\"unterminated\":1", 10, &[Some("{}"), None]);
    }
}
