//! Splits a byte stream, arriving in arbitrary chunks, into bounded lines.
//!
//! This is the shared core of the SSE and NDJSON decoders.
//! Invariant: the sequence of [`LineEvent`]s depends only on the concatenated input, never on
//! how it was split into chunks; no byte sequence panics; at most `max_line_bytes` bytes are
//! buffered.

/// The UTF-8 encoding of U+FEFF, skipped once at the very start of a stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Which bytes end a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnds {
    /// CR, LF or CRLF, as in the WHATWG `text/event-stream` grammar.
    CrOrLf,
    /// LF only; one CR right before it is dropped (NDJSON).
    Lf,
}

/// What the splitter reports to its caller.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineEvent<'a> {
    /// A complete line, without its terminator.
    Line(&'a [u8]),
    /// A line grew past the limit; its bytes are discarded up to the next line end.
    TooLong,
}

/// Incremental, bounded line splitter.
#[derive(Debug, Clone)]
pub(crate) struct LineSplitter {
    ends: LineEnds,
    max_line_bytes: usize,
    /// Bytes of the current, not yet terminated line.
    partial: Vec<u8>,
    /// How many bytes of a leading BOM have been matched; `None` once the start is decided.
    bom_matched: Option<u8>,
    /// The previous byte was a CR line end, so an LF right after it belongs to it.
    after_cr: bool,
    /// The current line overflowed and is being skipped.
    discarding: bool,
}

// === impl LineSplitter ===

impl LineSplitter {
    pub(crate) fn new(ends: LineEnds, max_line_bytes: usize) -> Self {
        Self {
            ends,
            max_line_bytes,
            partial: Vec::new(),
            bom_matched: Some(0),
            after_cr: false,
            discarding: false,
        }
    }

    pub(crate) fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Feeds one chunk, calling `on_line` for every line it completes.
    pub(crate) fn feed(&mut self, chunk: &[u8], on_line: &mut impl FnMut(LineEvent<'_>)) {
        let chunk = self.skip_bom(chunk);
        self.split(chunk, on_line);
    }

    /// Ends the stream: reports an unterminated last line, then resets for a new stream.
    pub(crate) fn finish(&mut self, on_line: &mut impl FnMut(LineEvent<'_>)) {
        if let Some(matched) = self.bom_matched.take() {
            // A stream shorter than a BOM that looked like one: its bytes are ordinary data.
            let prefix = BOM.get(..usize::from(matched)).unwrap_or_default();
            self.split(prefix, on_line);
        }
        if !self.discarding && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, on_line);
            self.partial = line;
        }
        self.partial.clear();
        self.bom_matched = Some(0);
        self.after_cr = false;
        self.discarding = false;
    }

    /// Consumes a leading BOM, which may itself arrive split across chunks.
    fn skip_bom<'a>(&mut self, mut chunk: &'a [u8]) -> &'a [u8] {
        let Some(mut matched) = self.bom_matched else { return chunk };
        while let Some(&expected) = BOM.get(usize::from(matched)) {
            match chunk.split_first() {
                Some((&byte, rest)) if byte == expected => {
                    matched += 1;
                    chunk = rest;
                }
                Some(_) => {
                    // Not a BOM after all: the bytes matched so far are line content. They are
                    // never line ends, so appending them to the (empty) partial line is exact.
                    self.bom_matched = None;
                    self.partial
                        .extend_from_slice(BOM.get(..usize::from(matched)).unwrap_or_default());
                    return chunk;
                }
                None => {
                    self.bom_matched = Some(matched);
                    return chunk;
                }
            }
        }
        self.bom_matched = None;
        chunk
    }

    fn split(&mut self, mut chunk: &[u8], on_line: &mut impl FnMut(LineEvent<'_>)) {
        loop {
            if self.after_cr {
                match chunk.split_first() {
                    // Keep `after_cr`: the LF may be the first byte of the next chunk.
                    None => return,
                    Some((&b'\n', rest)) => chunk = rest,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let end = match self.ends {
                LineEnds::CrOrLf => chunk.iter().position(|&b| b == b'\n' || b == b'\r'),
                LineEnds::Lf => chunk.iter().position(|&b| b == b'\n'),
            };
            let Some(end) = end else {
                self.push_partial(chunk, on_line);
                return;
            };
            let (line, rest) = chunk.split_at(end);
            let Some((&terminator, rest)) = rest.split_first() else { return };
            self.after_cr = terminator == b'\r';
            chunk = rest;
            if self.discarding {
                self.discarding = false;
                self.partial.clear();
            } else if self.partial.is_empty() {
                self.emit(line, on_line);
            } else if self.partial.len() + line.len() > self.max_line_bytes {
                self.partial.clear();
                on_line(LineEvent::TooLong);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.emit(&whole, on_line);
                whole.clear();
                self.partial = whole;
            }
        }
    }

    /// Buffers the start of a line that has no terminator yet, enforcing the limit.
    fn push_partial(&mut self, bytes: &[u8], on_line: &mut impl FnMut(LineEvent<'_>)) {
        if self.discarding || bytes.is_empty() {
            return;
        }
        if self.partial.len() + bytes.len() > self.max_line_bytes {
            self.partial.clear();
            self.discarding = true;
            on_line(LineEvent::TooLong);
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// Reports one complete line, applying the limit and stripping an NDJSON CR.
    fn emit(&self, line: &[u8], on_line: &mut impl FnMut(LineEvent<'_>)) {
        if line.len() > self.max_line_bytes {
            on_line(LineEvent::TooLong);
            return;
        }
        let line = match (self.ends, line.split_last()) {
            (LineEnds::Lf, Some((&b'\r', head))) => head,
            _ => line,
        };
        on_line(LineEvent::Line(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(ends: LineEnds, max: usize, chunks: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut splitter = LineSplitter::new(ends, max);
        let mut lines = Vec::new();
        let mut on_line = |event: LineEvent<'_>| match event {
            LineEvent::Line(line) => lines.push(Some(line.to_vec())),
            LineEvent::TooLong => lines.push(None),
        };
        for chunk in chunks {
            splitter.feed(chunk, &mut on_line);
        }
        splitter.finish(&mut on_line);
        lines
    }

    #[track_caller]
    fn check(ends: LineEnds, max: usize, input: &[u8], expected: &[Option<&str>]) {
        let expected: Vec<Option<Vec<u8>>> =
            expected.iter().map(|line| line.map(|text| text.as_bytes().to_vec())).collect();
        assert_eq!(collect(ends, max, &[input]), expected, "whole");
        for at in 0..=input.len() {
            let (head, tail) = input.split_at(at);
            assert_eq!(collect(ends, max, &[head, tail]), expected, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(collect(ends, max, &bytes), expected, "byte by byte");
    }

    #[test]
    fn every_line_end_style_splits_lines() {
        check(LineEnds::CrOrLf, 64, b"a\rb\nc\r\nd", &[Some("a"), Some("b"), Some("c"), Some("d")]);
    }

    #[test]
    fn cr_cr_is_two_line_ends() {
        check(LineEnds::CrOrLf, 64, b"a\r\rb", &[Some("a"), Some(""), Some("b")]);
    }

    #[test]
    fn ndjson_splits_on_lf_and_drops_one_cr() {
        check(LineEnds::Lf, 64, b"a\r\nb\rc\n\nd", &[Some("a"), Some("b\rc"), Some(""), Some("d")]);
    }

    #[test]
    fn bom_is_skipped_only_at_the_start() {
        let input = b"\xEF\xBB\xBFa\n\xEF\xBB\xBFb";
        check(LineEnds::CrOrLf, 64, input, &[Some("a"), Some("\u{FEFF}b")]);
    }

    #[test]
    fn partial_bom_is_kept_as_content() {
        let lines = collect(LineEnds::CrOrLf, 64, &[b"\xEF\xBB"]);
        assert_eq!(lines, vec![Some(b"\xEF\xBB".to_vec())]);
        let lines = collect(LineEnds::CrOrLf, 64, &[b"\xEF", b"x\n"]);
        assert_eq!(lines, vec![Some(b"\xEFx".to_vec())]);
    }

    #[test]
    fn overlong_line_is_reported_once_and_skipped() {
        check(LineEnds::CrOrLf, 4, b"ab\nabcdefgh\ncd", &[Some("ab"), None, Some("cd")]);
        check(LineEnds::CrOrLf, 4, b"abcd\nabcde", &[Some("abcd"), None]);
    }
}
