//! Keeping reasoning apart from the answer (Invariant 2).
//!
//! Servers without a reasoning parser (llama.cpp `--reasoning-format none`, old Ollama, many LM
//! Studio setups, vLLM `minimax_m2_append_think`) put the model's thinking inline in `content`:
//! `"<think>\n…\n</think>\n\nAnswer"`. Templates that pre-fill the opening tag (DeepSeek-R1,
//! Qwen3) produce only `"…</think>\n\nAnswer"`. [`ThinkSplitter`] separates the two while
//! streaming; [`strip_think_tags`] does the same for a whole message. [`replay_policy_for`]
//! says what to do with reasoning when an assistant turn is sent back as history.
//!
//! Recognized tags: `<think>`, `</think>`, `<thinking>`, `</thinking>` (exact, lowercase). A
//! tag is markup, never content: an opening tag inside a think block and a closing tag outside
//! one are dropped, so a tag never reaches the answer text.

/// The kind of tag found in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Open,
    Close,
}

/// Every tag the splitter recognizes. None is a prefix of another.
const TAGS: [(&str, Tag); 4] = [
    ("<think>", Tag::Open),
    ("<thinking>", Tag::Open),
    ("</think>", Tag::Close),
    ("</thinking>", Tag::Close),
];

/// How many bytes [`ThinkStart::Auto`] holds back, by default, before deciding that a stream
/// without any tag is plain answer text.
pub const DEFAULT_AUTO_HOLD_BYTES: usize = 4096;

/// One separated piece of output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Answer text.
    Text(String),
    /// Reasoning text (the inside of a think block), tags removed.
    Reasoning(String),
}

impl Piece {
    /// The text of the piece, whichever kind.
    pub fn as_str(&self) -> &str {
        match self {
            Piece::Text(s) | Piece::Reasoning(s) => s,
        }
    }

    /// Whether this is reasoning.
    pub fn is_reasoning(&self) -> bool {
        matches!(self, Piece::Reasoning(_))
    }
}

/// Where a stream starts, with respect to think blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkStart {
    /// Answer text until an opening tag appears. Text is emitted as soon as it can no longer be
    /// part of a tag, so there is no delay. Whitespace at the very start of the stream is held
    /// and dropped if an opening tag follows it. A closing tag outside a think block is dropped,
    /// but text before it has already gone out as answer text: use [`ThinkStart::Auto`] or
    /// [`ThinkStart::InsideThink`] when the opening tag may be missing.
    Detect,
    /// The chat template already opened the think block (DeepSeek-R1, Qwen3 templates that
    /// pre-fill `<think>`): everything is reasoning until a closing tag. An opening tag the model
    /// emits anyway is dropped.
    InsideThink,
    /// Undecided: output is held back until the first tag, the hold limit (default
    /// [`DEFAULT_AUTO_HOLD_BYTES`], see [`ThinkSplitter::with_hold_limit`]; a tag counts only
    /// when it ends within the limit, so chunking never changes the outcome) or the end of the
    /// stream. An opening tag first: what came before is answer text (dropped when only
    /// whitespace) and a think block starts. A closing tag first: what came before is
    /// reasoning (the opening tag was pre-filled). Limit or end first: all of it is answer
    /// text. After the decision it behaves like [`ThinkStart::Detect`]. Costs latency (up to
    /// the hold limit) on streams that turn out to have no tags.
    Auto,
}

/// Internal state of the splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Deciding: `Detect` holds leading whitespace, `Auto` holds everything.
    Start,
    /// Outside a think block.
    Answer,
    /// Inside a think block.
    Think,
}

/// What [`scan`] found.
enum Scan {
    /// A whole tag at byte `at`, `len` bytes long.
    Tag { at: usize, len: usize, tag: Tag },
    /// The text from `at` to the end could still become a tag.
    Partial { at: usize },
    /// No tag and no possible tag start.
    Nothing,
}

/// Finds the first tag, or the start of a possible tag at the end, in `s[from..]`.
/// `from` must be a char boundary.
fn scan(s: &str, from: usize) -> Scan {
    let mut from = from;
    while let Some(off) = s.get(from..).and_then(|rest| rest.find('<')) {
        let at = from + off;
        let rest = &s[at..];
        for (name, tag) in TAGS {
            if rest.starts_with(name) {
                return Scan::Tag { at, len: name.len(), tag };
            }
        }
        if TAGS.iter().any(|(name, _)| rest.len() < name.len() && name.starts_with(rest)) {
            return Scan::Partial { at };
        }
        // '<' is one byte, so `at + 1` is a char boundary.
        from = at + 1;
    }
    Scan::Nothing
}

/// Appends `s` to `out`, merged into the last piece when it is of the same kind.
fn emit(out: &mut Vec<Piece>, reasoning: bool, s: &str) {
    if s.is_empty() {
        return;
    }
    match (out.last_mut(), reasoning) {
        (Some(Piece::Reasoning(r)), true) => r.push_str(s),
        (Some(Piece::Text(t)), false) => t.push_str(s),
        _ => out.push(if reasoning {
            Piece::Reasoning(s.to_owned())
        } else {
            Piece::Text(s.to_owned())
        }),
    }
}

fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// A streaming splitter of inline think blocks.
///
/// Feed chunks with [`push`](Self::push) (tags may be split across chunks at any point) and
/// end with [`finish`](Self::finish). Text that could still be the start of a tag (`"<thi"`)
/// is held back until the next chunk shows whether it is one. After a think block closes,
/// newlines at the start of the answer (`"</think>\n\n"`) are dropped. A block left open at
/// the end of the stream is reasoning. Adjacent pieces of the same kind are merged into the
/// last element of `out`. After `finish` the splitter starts over in its initial mode.
#[derive(Debug, Clone)]
pub struct ThinkSplitter {
    mode: ThinkStart,
    state: State,
    /// Unprocessed or held-back input.
    buf: String,
    /// In `State::Start`: `buf[..scanned]` holds no tag and no tag start.
    scanned: usize,
    /// Drop leading newlines of the next answer text (a think block just closed).
    strip_newlines: bool,
    hold_limit: usize,
}

impl ThinkSplitter {
    /// A splitter starting in `mode`.
    pub fn new(mode: ThinkStart) -> Self {
        ThinkSplitter {
            mode,
            state: Self::initial_state(mode),
            buf: String::new(),
            scanned: 0,
            strip_newlines: false,
            hold_limit: DEFAULT_AUTO_HOLD_BYTES,
        }
    }

    /// Sets how many bytes [`ThinkStart::Auto`] holds back before deciding that the stream is
    /// plain answer text (`usize::MAX`: until a tag or the end). No effect in other modes.
    #[must_use]
    pub fn with_hold_limit(mut self, bytes: usize) -> Self {
        self.hold_limit = bytes;
        self
    }

    fn initial_state(mode: ThinkStart) -> State {
        match mode {
            ThinkStart::Detect | ThinkStart::Auto => State::Start,
            ThinkStart::InsideThink => State::Think,
        }
    }

    /// The upstream sends its reasoning in a field of its own (`reasoning_content`, thinking
    /// blocks): the text is the answer, so an undecided [`ThinkStart::Auto`] stops holding it
    /// back and behaves as [`ThinkStart::Detect`] from here. Whatever was held is appended to
    /// `out`.
    pub fn settle_as_answer(&mut self, out: &mut Vec<Piece>) {
        if self.mode == ThinkStart::Auto && self.state == State::Start {
            self.mode = ThinkStart::Detect;
            self.scanned = 0;
            self.run(out);
        }
    }

    /// Feeds the next chunk; whatever can be decided is appended to `out`.
    pub fn push(&mut self, chunk: &str, out: &mut Vec<Piece>) {
        self.buf.push_str(chunk);
        self.run(out);
    }

    /// Ends the stream: everything held back is appended to `out` (a partial tag as the
    /// content it turned out to be), and the splitter is reset to its initial mode.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        self.run(out);
        let rest = std::mem::take(&mut self.buf);
        match self.state {
            State::Think => emit(out, true, &rest),
            State::Answer | State::Start => self.emit_text(out, &rest),
        }
        self.buf = rest;
        self.buf.clear();
        self.state = Self::initial_state(self.mode);
        self.scanned = 0;
        self.strip_newlines = false;
    }

    fn emit_text(&mut self, out: &mut Vec<Piece>, s: &str) {
        let s = if self.strip_newlines {
            let t = s.trim_start_matches(['\n', '\r']);
            if !t.is_empty() {
                self.strip_newlines = false;
            }
            t
        } else {
            s
        };
        emit(out, false, s);
    }

    fn on_tag(&mut self, tag: Tag) {
        match (self.state, tag) {
            // An opening tag inside a block is dropped.
            (State::Think, Tag::Open) => {}
            (_, Tag::Open) => self.state = State::Think,
            // Closes a block; outside one, the stray tag is dropped all the same.
            (_, Tag::Close) => {
                self.state = State::Answer;
                self.strip_newlines = true;
            }
        }
    }

    fn run(&mut self, out: &mut Vec<Piece>) {
        let buf = std::mem::take(&mut self.buf);
        let mut pos = 0;
        while pos < buf.len() {
            let rest = &buf[pos..];
            let from = if self.state == State::Start { self.scanned } else { 0 };
            let (seg_end, tag) = match scan(rest, from) {
                Scan::Tag { at, len, tag } => (at, Some((len, tag))),
                Scan::Partial { at } => (at, None),
                Scan::Nothing => (rest.len(), None),
            };
            let seg = &rest[..seg_end];
            match self.state {
                State::Answer => self.emit_text(out, seg),
                State::Think => emit(out, true, seg),
                State::Start => {
                    if self.mode == ThinkStart::Auto {
                        match tag {
                            // The limit counts as reached first when the tag ends past it,
                            // whatever the chunking.
                            Some((len, _)) if seg_end + len > self.hold_limit => {
                                self.state = State::Answer;
                                self.scanned = 0;
                                continue;
                            }
                            Some((_, Tag::Open)) if !is_blank(seg) => emit(out, false, seg),
                            Some((_, Tag::Open)) => {}
                            Some((_, Tag::Close)) => emit(out, true, seg),
                            None if rest.len() >= self.hold_limit => {
                                self.state = State::Answer;
                                self.scanned = 0;
                                continue;
                            }
                            None => {
                                self.scanned = seg_end;
                                break;
                            }
                        }
                    } else if !is_blank(seg) {
                        // Detect: answer text before any tag.
                        self.state = State::Answer;
                        self.scanned = 0;
                        continue;
                    } else if tag.is_none() {
                        // Only whitespace so far: hold it.
                        self.scanned = seg_end;
                        break;
                    }
                    // A tag after nothing but whitespace: the whitespace is dropped.
                    self.scanned = 0;
                }
            }
            match tag {
                Some((len, tag)) => {
                    pos += seg_end + len;
                    self.on_tag(tag);
                }
                None => {
                    pos += seg_end;
                    break;
                }
            }
        }
        let mut buf = buf;
        buf.drain(..pos);
        self.buf = buf;
    }
}

/// Splits a whole message into `(answer, reasoning)`: think blocks go to the reasoning, tags
/// are removed, newlines after a closing tag are dropped. A closing tag without an opening tag
/// makes everything before it reasoning (a pre-filled opening tag), as [`ThinkStart::Auto`]
/// with no hold limit.
pub fn strip_think_tags(text: &str) -> (String, String) {
    let mut splitter = ThinkSplitter::new(ThinkStart::Auto).with_hold_limit(usize::MAX);
    let mut out = Vec::new();
    splitter.push(text, &mut out);
    splitter.finish(&mut out);
    let mut answer = String::new();
    let mut reasoning = String::new();
    for piece in &out {
        match piece {
            Piece::Text(s) => answer.push_str(s),
            Piece::Reasoning(s) => reasoning.push_str(s),
        }
    }
    (answer, reasoning)
}

/// Whether the chat templates of this model family write the opening think tag themselves, so
/// the output starts inside a think block and only closes it (`…</think>answer`: MiniMax-M2,
/// DeepSeek-R1 and its distills, QwQ). Such output is split even when the catalog says
/// `reasoning: false` (the founding page sets that for MiniMax M2.1).
pub fn template_opens_think(model_id: &str) -> bool {
    let id = model_id.to_ascii_lowercase();
    ["minimax-m2", "minimax_m2", "deepseek-r1", "qwq"].iter().any(|family| id.contains(family))
}

/// What to do with an assistant turn's reasoning when the turn is sent back as history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayPolicy {
    /// Keep the reasoning inline as `<think>…</think>` at the start of the assistant content
    /// (MiniMax M2.x requires the complete message back).
    KeepInline,
    /// Leave the reasoning out (DeepSeek-R1, Qwen3: templates strip it anyway; DeepSeek's API
    /// rejected it).
    Drop,
    /// Keep signed thinking blocks verbatim, signature included (Anthropic).
    KeepSigned,
}

impl ReplayPolicy {
    /// The config spelling (`keep-inline`, `drop`, `keep-signed`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayPolicy::KeepInline => "keep-inline",
            ReplayPolicy::Drop => "drop",
            ReplayPolicy::KeepSigned => "keep-signed",
        }
    }
}

/// The history replay policy for a model id, by family (case-insensitive, `_` read as `-`):
/// MiniMax M2.x (`minimax-m2`) keeps reasoning inline; Claude (`claude`) keeps signed blocks;
/// DeepSeek-R1 (`deepseek-r1`, `deepseek-reasoner`), Qwen3 (`qwen3`, `qwq`) and every other
/// model drop it.
pub fn replay_policy_for(model_id: &str) -> ReplayPolicy {
    let id = model_id.to_ascii_lowercase().replace('_', "-");
    if id.contains("minimax-m2") {
        ReplayPolicy::KeepInline
    } else if id.contains("claude") {
        ReplayPolicy::KeepSigned
    } else {
        // deepseek-r1, deepseek-reasoner, qwen3, qwq and the default alike.
        ReplayPolicy::Drop
    }
}

/// Parses a config value: `keep-inline`, `drop` or `keep-signed` (ASCII case-insensitive,
/// surrounding whitespace ignored).
pub fn parse_replay_policy(s: &str) -> Option<ReplayPolicy> {
    let s = s.trim();
    [ReplayPolicy::KeepInline, ReplayPolicy::Drop, ReplayPolicy::KeepSigned]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Piece {
        Piece::Text(s.to_owned())
    }
    fn r(s: &str) -> Piece {
        Piece::Reasoning(s.to_owned())
    }

    /// Feeds `chunks` into one output vector (pieces merge).
    fn run_chunks(mode: ThinkStart, chunks: &[&str]) -> Vec<Piece> {
        run_chunks_limit(mode, DEFAULT_AUTO_HOLD_BYTES, chunks)
    }

    fn run_chunks_limit(mode: ThinkStart, limit: usize, chunks: &[&str]) -> Vec<Piece> {
        let mut s = ThinkSplitter::new(mode).with_hold_limit(limit);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    /// Feeds chunks into a fresh vector each time and merges afterwards.
    fn run_fresh(mode: ThinkStart, chunks: &[&str]) -> Vec<Piece> {
        let mut s = ThinkSplitter::new(mode);
        let mut merged = Vec::new();
        for c in chunks {
            let mut out = Vec::new();
            s.push(c, &mut out);
            for p in out {
                emit(&mut merged, p.is_reasoning(), p.as_str());
            }
        }
        let mut out = Vec::new();
        s.finish(&mut out);
        for p in out {
            emit(&mut merged, p.is_reasoning(), p.as_str());
        }
        merged
    }

    fn expected(reasoning: &str, answer: &str) -> Vec<Piece> {
        let mut v = Vec::new();
        emit(&mut v, true, reasoning);
        emit(&mut v, false, answer);
        v
    }

    #[test]
    fn detect_basic() {
        let out = run_chunks(ThinkStart::Detect, &["<think>\nhmm\n</think>\n\nThe answer."]);
        assert_eq!(out, vec![r("\nhmm\n"), t("The answer.")]);
    }

    #[test]
    fn detect_plain_text_is_emitted_without_delay() {
        let mut s = ThinkSplitter::new(ThinkStart::Detect);
        let mut out = Vec::new();
        s.push("Hello", &mut out);
        assert_eq!(out, vec![t("Hello")]);
        s.push(" world", &mut out);
        assert_eq!(out, vec![t("Hello world")]);
    }

    #[test]
    fn tags_split_across_chunks() {
        let out = run_chunks(ThinkStart::Detect, &["<thi", "nk>abc</th", "ink", ">", "\n\nok"]);
        assert_eq!(out, vec![r("abc"), t("ok")]);
        let out =
            run_chunks(ThinkStart::Detect, &["<", "t", "h", "i", "n", "k", ">x<", "/", "think>y"]);
        assert_eq!(out, vec![r("x"), t("y")]);
    }

    #[test]
    fn partial_tag_is_held_only_while_it_could_be_a_tag() {
        let mut s = ThinkSplitter::new(ThinkStart::Detect);
        let mut out = Vec::new();
        s.push("x <th", &mut out);
        assert_eq!(out, vec![t("x ")]);
        s.push("e", &mut out);
        assert_eq!(out, vec![t("x <the")]);
        s.push(" a<b", &mut out);
        assert_eq!(out, vec![t("x <the a<b")]);
        // `<thinking` is still a possible `<thinking>`.
        out.clear();
        s.push(" <thinking", &mut out);
        assert_eq!(out, vec![t(" ")]);
        s.push("!", &mut out);
        assert_eq!(out, vec![t(" <thinking!")]);
    }

    #[test]
    fn partial_tag_at_end_is_flushed_as_content() {
        assert_eq!(run_chunks(ThinkStart::Detect, &["a <thin"]), vec![t("a <thin")]);
        assert_eq!(run_chunks(ThinkStart::InsideThink, &["a </thi"]), vec![r("a </thi")]);
        assert_eq!(run_chunks(ThinkStart::Auto, &["a <"]), vec![t("a <")]);
    }

    #[test]
    fn detect_drops_leading_whitespace_before_tag() {
        let out = run_chunks(ThinkStart::Detect, &["\n", " \n", "<think>r</think>a"]);
        assert_eq!(out, vec![r("r"), t("a")]);
        // But keeps it before plain text.
        let out = run_chunks(ThinkStart::Detect, &["\n", " ", "hi"]);
        assert_eq!(out, vec![t("\n hi")]);
        // Whitespace-only stream stays text.
        assert_eq!(run_chunks(ThinkStart::Detect, &["\n\n"]), vec![t("\n\n")]);
    }

    // See: #13. Detect is only for streams that cannot start inside a think block: a stray
    // closing tag is markup and dropped, and what came before it is already answer text. Output
    // that may start inside a block (the MiniMax-M2 shape) goes through Auto instead: whole
    // bodies always (`strip_think_tags`), streams for reasoning models and families whose
    // templates open the block (`template_opens_think`).
    #[test]
    fn detect_drops_a_stray_close_and_auto_splits_the_minimax_shape() {
        let out = run_chunks(ThinkStart::Detect, &["<think>a</think>b</think>c"]);
        assert_eq!(out, vec![r("a"), t("bc")]);
        for chunks in [
            &["SECRET-REASON</think>FINAL-ANSWER"][..],
            &["SECRET-", "REASON</thi", "nk>FINAL-", "ANSWER"],
        ] {
            assert_eq!(
                run_chunks(ThinkStart::Auto, chunks),
                vec![r("SECRET-REASON"), t("FINAL-ANSWER")]
            );
        }
        assert_eq!(
            strip_think_tags("SECRET-REASON</think>\n\nFINAL-ANSWER"),
            ("FINAL-ANSWER".to_owned(), "SECRET-REASON".to_owned())
        );
        assert!(template_opens_think("minimax-m2.1-gs32"));
        assert!(template_opens_think("MiniMax-M2"));
        assert!(!template_opens_think("qwen2.5-7b-instruct"));
    }

    #[test]
    fn auto_stops_holding_once_reasoning_comes_in_its_own_field() {
        let mut splitter = ThinkSplitter::new(ThinkStart::Auto);
        let mut out = Vec::new();
        splitter.push("The answer", &mut out);
        assert!(out.is_empty(), "Auto holds undecided text");
        splitter.settle_as_answer(&mut out);
        splitter.push(" goes on", &mut out);
        splitter.finish(&mut out);
        assert_eq!(out, vec![t("The answer goes on")]);
    }

    #[test]
    fn thinking_tags() {
        let out = run_chunks(ThinkStart::Detect, &["<thinking>deep</thinking>\nout"]);
        assert_eq!(out, vec![r("deep"), t("out")]);
        // Mixed tags close each other.
        let out = run_chunks(ThinkStart::Detect, &["<thinking>deep</think>out"]);
        assert_eq!(out, vec![r("deep"), t("out")]);
    }

    #[test]
    fn multiple_blocks() {
        let out = run_chunks(
            ThinkStart::Detect,
            &["<think>one</think>\n\nA", " then <think>two</think>\nB"],
        );
        assert_eq!(out, vec![r("one"), t("A then "), r("two"), t("B")]);
    }

    #[test]
    fn inside_think_mode() {
        let out = run_chunks(ThinkStart::InsideThink, &["step 1\n", "step 2</thi", "nk>\n\nDone"]);
        assert_eq!(out, vec![r("step 1\nstep 2"), t("Done")]);
        // A re-emitted opening tag is dropped.
        let out = run_chunks(ThinkStart::InsideThink, &["<think>\nx</think>y"]);
        assert_eq!(out, vec![r("\nx"), t("y")]);
    }

    #[test]
    fn unterminated_block_is_reasoning() {
        let out = run_chunks(ThinkStart::Detect, &["<think>cut off by max_tok", "ens"]);
        assert_eq!(out, vec![r("cut off by max_tokens")]);
        assert_eq!(run_chunks(ThinkStart::InsideThink, &["only"]), vec![r("only")]);
    }

    #[test]
    fn newline_strip_spans_chunks_and_keeps_later_newlines() {
        let out = run_chunks(ThinkStart::Detect, &["<think>x</think>", "\n", "\r\n", "a\n\nb"]);
        assert_eq!(out, vec![r("x"), t("a\n\nb")]);
    }

    #[test]
    fn auto_lone_close_makes_prefix_reasoning() {
        let out = run_chunks(ThinkStart::Auto, &["Let me ", "think.</thi", "nk>\n\nAnswer"]);
        assert_eq!(out, vec![r("Let me think."), t("Answer")]);
    }

    #[test]
    fn auto_open_tag() {
        let out = run_chunks(ThinkStart::Auto, &["\n<think>", "x</think>y"]);
        assert_eq!(out, vec![r("x"), t("y")]);
        let out = run_chunks(ThinkStart::Auto, &["Sure. <think>x</think>y"]);
        assert_eq!(out, vec![t("Sure. "), r("x"), t("y")]);
    }

    #[test]
    fn auto_holds_until_decision() {
        let mut s = ThinkSplitter::new(ThinkStart::Auto);
        let mut out = Vec::new();
        s.push("no tags yet", &mut out);
        assert!(out.is_empty());
        s.finish(&mut out);
        assert_eq!(out, vec![t("no tags yet")]);
    }

    #[test]
    fn auto_hold_limit() {
        let mut s = ThinkSplitter::new(ThinkStart::Auto).with_hold_limit(8);
        let mut out = Vec::new();
        s.push("abcd", &mut out);
        assert!(out.is_empty());
        s.push("efgh<thi", &mut out);
        // Over the limit: plain text, with the possible tag still held.
        assert_eq!(out, vec![t("abcdefgh")]);
        s.push("nk>r</think>a", &mut out);
        s.finish(&mut out);
        assert_eq!(out, vec![t("abcdefgh"), r("r"), t("a")]);
        // After the limit a lone close is a stray tag, as in Detect.
        let out = {
            let mut s = ThinkSplitter::new(ThinkStart::Auto).with_hold_limit(4);
            let mut out = Vec::new();
            s.push("abcdef</think>g", &mut out);
            s.finish(&mut out);
            out
        };
        assert_eq!(out, vec![t("abcdefg")]);
    }

    #[test]
    fn finish_resets() {
        let mut s = ThinkSplitter::new(ThinkStart::InsideThink);
        let mut out = Vec::new();
        s.push("a</think>b", &mut out);
        s.finish(&mut out);
        assert_eq!(out, vec![r("a"), t("b")]);
        out.clear();
        s.push("c</think>d", &mut out);
        s.finish(&mut out);
        assert_eq!(out, vec![r("c"), t("d")]);
    }

    #[test]
    fn multibyte_text() {
        let out = run_chunks(ThinkStart::Detect, &["<think>é", "ü</think>ß"]);
        assert_eq!(out, vec![r("éü"), t("ß")]);
    }

    #[test]
    fn strip_think_tags_cases() {
        assert_eq!(
            strip_think_tags("<think>\nwhy\n</think>\n\nBecause."),
            ("Because.".to_owned(), "\nwhy\n".to_owned())
        );
        assert_eq!(strip_think_tags("why</think>Because."), ("Because.".into(), "why".into()));
        assert_eq!(strip_think_tags("plain"), ("plain".into(), String::new()));
        assert_eq!(strip_think_tags(""), (String::new(), String::new()));
        assert_eq!(strip_think_tags("<think>open"), (String::new(), "open".into()));
        let long = "x".repeat(10_000);
        assert_eq!(strip_think_tags(&format!("{long}</think>a")), ("a".to_owned(), long.clone()));
        assert_eq!(strip_think_tags(&long), (long.clone(), String::new()));
    }

    #[test]
    fn replay_policies() {
        use ReplayPolicy::*;
        for (id, want) in [
            ("lmstudio/minimax-m2.1-gs32", KeepInline),
            ("MiniMaxAI/MiniMax-M2", KeepInline),
            ("minimax_m2.5", KeepInline),
            ("minimax-text-01", Drop),
            ("deepseek-r1:32b", Drop),
            ("deepseek-reasoner", Drop),
            ("Qwen/Qwen3-30B-A3B", Drop),
            ("qwq-32b", Drop),
            ("claude-sonnet-4-5", KeepSigned),
            ("anthropic/Claude-Opus-4", KeepSigned),
            ("gpt-4o", Drop),
            ("", Drop),
        ] {
            assert_eq!(replay_policy_for(id), want, "{id}");
        }
    }

    #[test]
    fn parse_policies() {
        assert_eq!(parse_replay_policy("keep-inline"), Some(ReplayPolicy::KeepInline));
        assert_eq!(parse_replay_policy(" Drop "), Some(ReplayPolicy::Drop));
        assert_eq!(parse_replay_policy("keep-signed"), Some(ReplayPolicy::KeepSigned));
        assert_eq!(parse_replay_policy("keep"), None);
        assert_eq!(parse_replay_policy(""), None);
        for p in [ReplayPolicy::KeepInline, ReplayPolicy::Drop, ReplayPolicy::KeepSigned] {
            assert_eq!(parse_replay_policy(p.as_str()), Some(p));
        }
    }

    /// Every char-boundary position in `s`, ends included.
    fn boundaries(s: &str) -> Vec<usize> {
        s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
    }

    /// Checks every 2-way split and char-by-char feeding of `s`.
    fn check_all_splits(mode: ThinkStart, s: &str, want: &[Piece]) -> Result<(), TestCaseError> {
        for i in boundaries(s) {
            let (a, b) = s.split_at(i);
            prop_assert_eq!(&run_chunks(mode, &[a, b]), want, "split at {}", i);
            prop_assert_eq!(&run_fresh(mode, &[a, b]), want, "split at {} (fresh)", i);
        }
        let chars: Vec<String> = s.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        prop_assert_eq!(&run_chunks(mode, &chars), want, "char by char");
        prop_assert_eq!(&run_fresh(mode, &chars), want, "char by char (fresh)");
        Ok(())
    }

    proptest! {
        #[test]
        fn prop_detect_split_anywhere(rs in "[^<]{0,24}", a in "[^<]{0,24}") {
            let s = format!("<think>{rs}</think>{a}");
            let want = expected(&rs, a.trim_start_matches(['\n', '\r']));
            check_all_splits(ThinkStart::Detect, &s, &want)?;
        }

        #[test]
        fn prop_inside_split_anywhere(rs in "[^<]{0,24}", a in "[^<]{0,24}") {
            let s = format!("{rs}</think>{a}");
            let want = expected(&rs, a.trim_start_matches(['\n', '\r']));
            check_all_splits(ThinkStart::InsideThink, &s, &want)?;
        }

        #[test]
        fn prop_auto_split_anywhere(rs in "[^<]{0,24}", a in "[^<]{0,24}") {
            let want = expected(&rs, a.trim_start_matches(['\n', '\r']));
            check_all_splits(ThinkStart::Auto, &format!("<think>{rs}</think>{a}"), &want)?;
            check_all_splits(ThinkStart::Auto, &format!("{rs}</think>{a}"), &want)?;
            check_all_splits(ThinkStart::Auto, &a, &expected("", &a))?;
        }

        #[test]
        fn prop_detect_plain_text(a in "[^<]{0,40}") {
            check_all_splits(ThinkStart::Detect, &a, &expected("", &a))?;
        }

        #[test]
        fn prop_random_chunking_never_leaks_tags(
            s in "(<think>|</think>|<thinking>|</thinking>|<|[a-z \n]{0,4}){0,12}",
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            limit in 0usize..24,
        ) {
            for mode in [ThinkStart::Detect, ThinkStart::InsideThink, ThinkStart::Auto] {
                let whole = run_chunks_limit(mode, limit, &[&s]);
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(s.len() + 1)).collect();
                at.sort_unstable();
                let mut chunks = Vec::new();
                let mut prev = 0;
                for c in at {
                    chunks.push(&s[prev..c]);
                    prev = c;
                }
                chunks.push(&s[prev..]);
                let split = run_chunks_limit(mode, limit, &chunks);
                prop_assert_eq!(&split, &whole);
                for p in &whole {
                    // A complete tag never survives into any piece.
                    for (name, _) in TAGS {
                        prop_assert!(!p.as_str().contains(name), "{:?} in {:?}", name, p);
                    }
                }
            }
        }
    }
}
