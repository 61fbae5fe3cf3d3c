//! Tool calls written as text (issue 15): local models often write their calls into the answer
//! text instead of the structured field (vLLM without a tool parser, Ollama templates that do
//! not parse, llama.cpp without `--jinja`), and gpt-oss writes its Harmony channels inline.
//! [`TextCalls`] recovers them from the answer text while it streams.
//!
//! Formats, each recognized only by its exact markers:
//!
//! | format | shape |
//! |---|---|
//! | Hermes / Qwen | `<tool_call>{"name": N, "arguments": {…}}</tool_call>`, several in a row |
//! | Mistral | `[TOOL_CALLS][{"name": N, "arguments": {…}}, …]`; `[TOOL_CALLS]N[ARGS]{…}` (also with `[CALL_ID]id`, or without `[ARGS]`), one per marker |
//! | Llama 3 | the whole answer is `{"name": N, "parameters": {…}}`, optionally after `<|python_tag|>` |
//! | DeepSeek V3 | `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>N` + "\n```json\n{…}\n```" + `<｜tool▁call▁end｜>…<｜tool▁calls▁end｜>` |
//! | DeepSeek V3.1 | `<｜tool▁call▁begin｜>N<｜tool▁sep｜>{…}<｜tool▁call▁end｜>`, inside the same block |
//! | gpt-oss Harmony | `<|channel|>commentary to=functions.N <|constrain|>json<|message|>{…}<|call|>` |
//!
//! Harmony's other messages are read too: `<|channel|>analysis<|message|>…<|end|>` is reasoning
//! (never answer text), `<|channel|>final<|message|>…` (and a commentary message without a
//! recipient) is answer text, the markup removed.
//!
//! The rules:
//!
//! - A call is recovered only when its name is one of the request's tools and its arguments are
//!   a valid JSON object; anything else (an unknown name, broken JSON, a marker in prose) passes
//!   through as the text it was, markers and all. A bare JSON object counts only when it is the
//!   whole answer (whitespace aside).
//! - The same events for any split of the text: text that may start a marker is held back only
//!   until it is decided, and every decision depends on the text alone, never on where the
//!   chunks end (the property tests feed every format at every split). A held call is bounded
//!   by the hold limit ([`DEFAULT_HOLD_BYTES`]; a Harmony header by 256 bytes): one that has not
//!   closed within it, or by the end of the stream, goes out as text.
//! - Text before and after a call stays text; whitespace between calls, and after the last one,
//!   is dropped, and so is whitespace before the first call when nothing else came before it.

use hearth_config::Api;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::encode::Target;
use crate::prompt::{OutputFormat, Prompt, ToolChoice};

/// How many bytes a call (from its first marker) may take before it is given up as text.
pub const DEFAULT_HOLD_BYTES: usize = 256 * 1024;
/// How long a Harmony header (`<|start|>assistant<|channel|>… <|message|>`) may be.
const HEADER_BYTES: usize = 256;
/// How long a tool name written before its arguments (Mistral, DeepSeek) may be.
const NAME_BYTES: usize = 128;
/// JSON nesting deeper than this is not a call (serde_json refuses past 128).
const MAX_DEPTH: u32 = 128;

const HERMES_OPEN: &str = "<tool_call>";
const HERMES_CLOSE: &str = "</tool_call>";
const MISTRAL: &str = "[TOOL_CALLS]";
const MISTRAL_ARGS: &str = "[ARGS]";
const MISTRAL_CALL_ID: &str = "[CALL_ID]";
const PYTHON_TAG: &str = "<|python_tag|>";
const DS_CALLS_BEGIN: &str = "<｜tool▁calls▁begin｜>";
const DS_CALLS_END: &str = "<｜tool▁calls▁end｜>";
const DS_CALL_BEGIN: &str = "<｜tool▁call▁begin｜>";
const DS_CALL_END: &str = "<｜tool▁call▁end｜>";
const DS_SEP: &str = "<｜tool▁sep｜>";
const H_START: &str = "<|start|>";
const H_CHANNEL: &str = "<|channel|>";
const H_MESSAGE: &str = "<|message|>";
const H_CONSTRAIN: &str = "<|constrain|>";
const H_END: &str = "<|end|>";
const H_RETURN: &str = "<|return|>";
const H_CALL: &str = "<|call|>";
const CHANNELS: [&str; 3] = ["analysis", "commentary", "final"];

/// One piece of the answer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Answer text.
    Text(String),
    /// Reasoning (a Harmony analysis message).
    Reasoning(String),
    /// A recovered call: a name the request offered, its arguments as JSON text (an object).
    Call { name: String, arguments: String },
}

/// What opens a held unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    Hermes,
    Mistral,
    DeepSeekBlock,
    DeepSeekCall,
    Harmony,
    PythonTag,
    BareJson,
}

/// The markers that open a unit, with what they open. None is a prefix of another.
const OPENERS: [(&str, Opener); 7] = [
    (HERMES_OPEN, Opener::Hermes),
    (MISTRAL, Opener::Mistral),
    (DS_CALLS_BEGIN, Opener::DeepSeekBlock),
    (DS_CALL_BEGIN, Opener::DeepSeekCall),
    (H_START, Opener::Harmony),
    (H_CHANNEL, Opener::Harmony),
    (PYTHON_TAG, Opener::PythonTag),
];

/// Where a Harmony message body ends: the first three are consumed, the last two open the next
/// message.
const BODY_ENDS: [&str; 5] = [H_END, H_RETURN, H_CALL, H_START, H_CHANNEL];

/// What a marker scan found.
enum MarkerScan {
    /// Marker `index` of the list, whole, at `at`.
    Found {
        at: usize,
        index: usize,
    },
    /// From `at` to the end the text could still become a marker.
    Partial {
        at: usize,
    },
    Nothing,
}

/// The first marker of `markers` in `s` that `allowed(index, at)` accepts, or the start of a
/// possible one at the end. Every marker starts with `<` or `[`.
fn find_marker(s: &str, markers: &[&str], allowed: impl Fn(usize, usize) -> bool) -> MarkerScan {
    for (at, byte) in s.bytes().enumerate() {
        if byte != b'<' && byte != b'[' {
            continue;
        }
        // `at` holds an ASCII byte, so it is a char boundary.
        let rest = s.get(at..).unwrap_or_default();
        let mut partial = false;
        for (index, marker) in markers.iter().enumerate() {
            if !allowed(index, at) {
                continue;
            }
            if rest.starts_with(marker) {
                return MarkerScan::Found { at, index };
            }
            partial |= rest.len() < marker.len() && marker.starts_with(rest);
        }
        if partial {
            return MarkerScan::Partial { at };
        }
    }
    MarkerScan::Nothing
}

/// A marker of `markers` right at `at` (or the start of one, at the end of `s`).
fn marker_at(s: &str, at: usize, markers: &[&str]) -> MarkerScan {
    let rest = s.get(at..).unwrap_or_default();
    if let Some(index) = markers.iter().position(|m| rest.starts_with(m)) {
        return MarkerScan::Found { at, index };
    }
    if markers.iter().any(|m| rest.len() < m.len() && m.starts_with(rest)) {
        return MarkerScan::Partial { at };
    }
    MarkerScan::Nothing
}

/// One step of reading a held unit.
enum Step {
    /// Read up to here.
    At(usize),
    /// The text ends before it can be told.
    Need,
    /// Not this format.
    Fail,
}

/// The first non-whitespace char at or after `pos`.
fn skip_ws(s: &str, pos: usize) -> Step {
    let rest = s.get(pos..).unwrap_or_default();
    match rest.char_indices().find(|(_, c)| !c.is_whitespace()) {
        Some((i, _)) => Step::At(pos + i),
        None => Step::Need,
    }
}

/// `lit` at `pos`.
fn expect(s: &str, pos: usize, lit: &str) -> Step {
    let rest = s.get(pos..).unwrap_or_default();
    if rest.starts_with(lit) {
        Step::At(pos + lit.len())
    } else if lit.starts_with(rest) {
        Step::Need
    } else {
        Step::Fail
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// A tool name at `pos`, ended by one of `ends`: the end of the name.
fn name_end(s: &str, pos: usize, ends: &[u8]) -> Step {
    let rest = s.as_bytes().get(pos..).unwrap_or_default();
    for (i, &b) in rest.iter().enumerate() {
        if i > NAME_BYTES {
            return Step::Fail;
        }
        if is_name_byte(b) {
            continue;
        }
        return if i > 0 && ends.contains(&b) { Step::At(pos + i) } else { Step::Fail };
    }
    if rest.len() > NAME_BYTES { Step::Fail } else { Step::Need }
}

/// Finds where a JSON object or array ends (strings and nesting followed, nothing else
/// checked: serde_json reads it afterwards), resumable as the text grows.
#[derive(Debug, Default, Clone)]
struct Skim {
    pos: usize,
    depth: u32,
    in_str: bool,
    esc: bool,
}

impl Skim {
    fn new(start: usize) -> Self {
        Skim { pos: start, ..Skim::default() }
    }

    fn run(&mut self, s: &str) -> Step {
        while let Some(&b) = s.as_bytes().get(self.pos) {
            self.pos += 1;
            if self.in_str {
                if self.esc {
                    self.esc = false;
                } else if b == b'\\' {
                    self.esc = true;
                } else if b == b'"' {
                    self.in_str = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_str = true,
                b'{' | b'[' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Step::Fail;
                    }
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Step::At(self.pos);
                    }
                }
                _ => {}
            }
        }
        Step::Need
    }
}

/// A call written as a JSON object (Hermes, Mistral's array, Llama 3).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallJson<'a> {
    name: String,
    #[serde(borrow, default, alias = "parameters")]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    #[expect(dead_code, reason = "accepted (Mistral writes an id), not used: ids are hearth's")]
    id: Option<serde::de::IgnoredAny>,
}

/// The arguments of a call as JSON text: an object as written, or a string that holds one.
/// Absent: `{}` unless `required`.
fn arguments_text(raw: Option<&RawValue>, required: bool) -> Option<String> {
    let Some(raw) = raw else {
        return (!required).then(|| "{}".to_owned());
    };
    let text = raw.get();
    if text.starts_with('{') {
        return Some(text.to_owned());
    }
    let inner: String = serde_json::from_str(text).ok()?;
    is_object(inner.trim()).then_some(inner)
}

/// Whether `s` is one valid JSON object.
fn is_object(s: &str) -> bool {
    s.starts_with('{') && serde_json::from_str::<serde_json::Value>(s).is_ok_and(|v| v.is_object())
}

impl CallJson<'_> {
    fn call(self, tools: &[String], required: bool) -> Option<Call> {
        if self.kind.as_deref().is_some_and(|k| k != "function") || !offered(tools, &self.name) {
            return None;
        }
        let arguments = arguments_text(self.arguments, required)?;
        Some(Call { name: self.name, arguments })
    }
}

fn offered(tools: &[String], name: &str) -> bool {
    tools.iter().any(|t| t == name)
}

/// `{"name": …, "arguments": …}` as a call.
fn object_call(json: &str, tools: &[String], required: bool) -> Option<Call> {
    serde_json::from_str::<CallJson<'_>>(json).ok()?.call(tools, required)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    name: String,
    arguments: String,
}

/// What a held unit turned out to be.
#[derive(Debug)]
enum Verdict {
    /// Undecided: hold on.
    Need,
    /// Not a call: `keep` bytes go out as text, the rest is read again.
    Reject { keep: usize },
    /// Calls, taking `len` bytes.
    Calls { len: usize, calls: Vec<Call> },
    /// A Harmony message header of `len` bytes; its body is reasoning or answer text.
    Channel { len: usize, reasoning: bool },
}

/// Where reading a unit is.
#[derive(Debug, Clone)]
enum Phase {
    /// The text ended where a JSON value must open.
    JsonAt {
        open: u8,
        next: Box<Phase>,
    },
    /// Hermes: whitespace, then the object.
    HermesStart,
    HermesJson,
    /// After the object: whitespace, then `</tool_call>`.
    HermesClose(Call),
    /// Mistral: whitespace, then an array, an object or a name.
    MistralStart,
    MistralArray {
        start: usize,
    },
    MistralObject {
        start: usize,
    },
    MistralName {
        start: usize,
    },
    /// After the name: `[CALL_ID]id`, `[ARGS]` or the object.
    MistralAfterName {
        name: String,
    },
    MistralCallId {
        name: String,
    },
    MistralArgs {
        name: String,
        start: usize,
    },
    /// DeepSeek: inside the block, the next call or the block's end.
    DsNext,
    /// After `<｜tool▁call▁begin｜>`: the name (or `function`), then `<｜tool▁sep｜>`.
    DsName {
        start: usize,
    },
    DsAfterSep {
        first: String,
    },
    /// V3: the name after `function<｜tool▁sep｜>`, then the fence.
    DsV3Name {
        start: usize,
    },
    DsFence {
        name: String,
    },
    DsJson {
        name: String,
        start: usize,
        fenced: bool,
    },
    DsClose {
        call: Call,
        fenced: bool,
    },
    /// The closing fence is read; `<｜tool▁call▁end｜>` next.
    DsEnd {
        call: Call,
    },
    /// Harmony: the header up to `<|message|>`.
    HarmonyHeader,
    /// After the header of a call to an offered function: whitespace, then the object.
    HarmonyBodyStart {
        name: String,
    },
    HarmonyJson {
        name: String,
        start: usize,
    },
    HarmonyAfter(Call),
    /// Llama 3: whitespace after `<|python_tag|>`, then the object.
    BareStart,
    BareJson {
        start: usize,
    },
    /// After the object: only whitespace until the end.
    BareAfter(Call),
}

/// A held unit: the text from its first marker on is in the buffer.
#[derive(Debug, Clone)]
struct Unit {
    opener: Opener,
    /// Bytes of the opening marker.
    opener_len: usize,
    phase: Phase,
    /// Read up to here.
    pos: usize,
    skim: Skim,
    /// DeepSeek: calls of the block read so far.
    calls: Vec<Call>,
    /// Harmony: the length of the header of a call being read.
    header: Option<usize>,
}

impl Unit {
    fn new(opener: Opener, opener_len: usize) -> Self {
        let phase = match opener {
            Opener::Hermes => Phase::HermesStart,
            Opener::Mistral => Phase::MistralStart,
            Opener::DeepSeekBlock => Phase::DsNext,
            Opener::DeepSeekCall => Phase::DsName { start: opener_len },
            Opener::Harmony => Phase::HarmonyHeader,
            Opener::PythonTag => Phase::BareStart,
            Opener::BareJson => Phase::BareJson { start: 0 },
        };
        let skim = Skim::new(if opener == Opener::BareJson { 0 } else { opener_len });
        Unit { opener, opener_len, phase, pos: opener_len, skim, calls: Vec::new(), header: None }
    }

    /// Not a call: the opening marker goes out as text (a Harmony call's whole header once it
    /// is read; a DeepSeek block up to where it failed), and the rest is read again.
    fn reject(&self) -> Verdict {
        if self.opener == Opener::DeepSeekBlock {
            // A block is text up to where it stopped being one: its calls before that are not
            // read again as lone calls.
            return Verdict::Reject { keep: self.pos.max(self.opener_len) };
        }
        Verdict::Reject { keep: self.header.unwrap_or(self.opener_len) }
    }

    /// Given up at the hold limit: as [`Unit::reject`] at that point, so the outcome is the
    /// same whether the limit or a failure past it comes first (a header that ends past the
    /// limit was never read).
    fn give_up(&self, limit: usize) -> Verdict {
        Verdict::Reject { keep: self.header.filter(|h| *h <= limit).unwrap_or(self.opener_len) }
    }

    /// Reads on; `eos`: the text is complete (a verdict other than `Need` comes back).
    fn advance(&mut self, s: &str, eos: bool, tools: &[String]) -> Verdict {
        loop {
            let phase = std::mem::replace(&mut self.phase, Phase::HermesStart);
            match self.step(phase, s, tools) {
                Next::Go(next) => self.phase = next,
                Next::Wait(phase) if eos => return self.at_end(&phase, s),
                Next::Wait(phase) => {
                    self.phase = phase;
                    return Verdict::Need;
                }
                Next::Done(verdict) => return verdict,
            }
        }
    }

    /// The text ended while in `phase`.
    fn at_end(&self, phase: &Phase, s: &str) -> Verdict {
        match phase {
            // The call's object is whole; the stop token (`<|call|>`, `<|eom_id|>`) is not
            // part of the text servers send.
            Phase::BareAfter(call) | Phase::HarmonyAfter(call) => {
                Verdict::Calls { len: s.len(), calls: vec![call.clone()] }
            }
            // A DeepSeek block whose calls are whole, cut before its closing marker.
            Phase::DsNext if !self.calls.is_empty() => {
                Verdict::Calls { len: s.len(), calls: self.calls.clone() }
            }
            _ => self.reject(),
        }
    }

    /// A JSON value that opens with `open` at `at`, then `next` (which skims it).
    fn json_at(&mut self, s: &str, at: usize, open: u8, next: Phase) -> Next {
        self.pos = at;
        match s.as_bytes().get(at) {
            None => return Next::Wait(Phase::JsonAt { open, next: Box::new(next) }),
            Some(b) if *b != open => return Next::Done(self.reject()),
            Some(_) => {}
        }
        self.skim = Skim::new(at);
        self.pos = at;
        Next::Go(next)
    }

    fn step(&mut self, phase: Phase, s: &str, tools: &[String]) -> Next {
        use Phase as P;
        match phase {
            P::JsonAt { open, next } => {
                let at = self.pos;
                self.json_at(s, at, open, *next)
            }
            P::HermesStart => match skip_ws(s, self.pos) {
                Step::At(at) => self.json_at(s, at, b'{', P::HermesJson),
                Step::Need => self.wait_ws(s, phase),
                Step::Fail => Next::Done(self.reject()),
            },
            P::HermesJson => {
                let start = self.pos;
                match self.skim.run(s) {
                    Step::At(end) => match object_call(&s[start..end], tools, false) {
                        Some(call) => {
                            self.pos = end;
                            Next::Go(P::HermesClose(call))
                        }
                        None => Next::Done(self.reject()),
                    },
                    Step::Need => Next::Wait(P::HermesJson),
                    Step::Fail => Next::Done(self.reject()),
                }
            }
            P::HermesClose(call) => match skip_ws(s, self.pos) {
                Step::At(at) => {
                    self.pos = at;
                    match expect(s, at, HERMES_CLOSE) {
                        Step::At(len) => Next::Done(Verdict::Calls { len, calls: vec![call] }),
                        Step::Need => Next::Wait(P::HermesClose(call)),
                        Step::Fail => Next::Done(self.reject()),
                    }
                }
                Step::Need => self.wait_ws(s, P::HermesClose(call)),
                Step::Fail => Next::Done(self.reject()),
            },
            P::MistralStart => match skip_ws(s, self.pos) {
                Step::At(at) => match s.as_bytes().get(at) {
                    Some(b'[') => self.json_at(s, at, b'[', P::MistralArray { start: at }),
                    Some(b'{') => self.json_at(s, at, b'{', P::MistralObject { start: at }),
                    Some(&b) if is_name_byte(b) => {
                        self.pos = at;
                        Next::Go(P::MistralName { start: at })
                    }
                    _ => Next::Done(self.reject()),
                },
                Step::Need => self.wait_ws(s, phase),
                Step::Fail => Next::Done(self.reject()),
            },
            P::MistralArray { start } | P::MistralObject { start } => {
                let array = matches!(phase, P::MistralArray { .. });
                match self.skim.run(s) {
                    Step::At(end) => {
                        let json = &s[start..end];
                        let calls = if array {
                            serde_json::from_str::<Vec<CallJson<'_>>>(json).ok().and_then(|list| {
                                list.into_iter()
                                    .map(|c| c.call(tools, false))
                                    .collect::<Option<Vec<_>>>()
                            })
                        } else {
                            object_call(json, tools, false).map(|c| vec![c])
                        };
                        match calls {
                            Some(calls) if !calls.is_empty() => {
                                Next::Done(Verdict::Calls { len: end, calls })
                            }
                            _ => Next::Done(self.reject()),
                        }
                    }
                    Step::Need => Next::Wait(phase),
                    Step::Fail => Next::Done(self.reject()),
                }
            }
            P::MistralName { start } => match name_end(s, start, b"[{") {
                Step::At(end) if offered(tools, &s[start..end]) => {
                    self.pos = end;
                    Next::Go(P::MistralAfterName { name: s[start..end].to_owned() })
                }
                Step::Need => Next::Wait(phase),
                Step::At(_) | Step::Fail => Next::Done(self.reject()),
            },
            P::MistralAfterName { name } => {
                if s.as_bytes().get(self.pos) == Some(&b'{') {
                    let at = self.pos;
                    return self.json_at(s, at, b'{', P::MistralArgs { name, start: at });
                }
                match (expect(s, self.pos, MISTRAL_ARGS), expect(s, self.pos, MISTRAL_CALL_ID)) {
                    (Step::At(end), _) => {
                        let next = P::MistralArgs { name, start: end };
                        self.json_at(s, end, b'{', next)
                    }
                    (_, Step::At(end)) => {
                        self.pos = end;
                        Next::Go(P::MistralCallId { name })
                    }
                    (Step::Need, _) | (_, Step::Need) => Next::Wait(P::MistralAfterName { name }),
                    _ => Next::Done(self.reject()),
                }
            }
            P::MistralCallId { name } => {
                // The id: letters and digits up to `[ARGS]`.
                let rest = s.as_bytes().get(self.pos..).unwrap_or_default();
                let id_len = rest.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
                if id_len > NAME_BYTES {
                    return Next::Done(self.reject());
                }
                if id_len == rest.len() {
                    return Next::Wait(P::MistralCallId { name });
                }
                let at = self.pos + id_len;
                match expect(s, at, MISTRAL_ARGS) {
                    Step::At(end) => {
                        self.json_at(s, end, b'{', P::MistralArgs { name, start: end })
                    }
                    Step::Need => Next::Wait(P::MistralCallId { name }),
                    Step::Fail => Next::Done(self.reject()),
                }
            }
            P::MistralArgs { name, start } => match self.skim.run(s) {
                Step::At(end) if is_object(&s[start..end]) => {
                    let call = Call { name, arguments: s[start..end].to_owned() };
                    Next::Done(Verdict::Calls { len: end, calls: vec![call] })
                }
                Step::Need => Next::Wait(P::MistralArgs { name, start }),
                Step::At(_) | Step::Fail => Next::Done(self.reject()),
            },
            P::DsNext => match skip_ws(s, self.pos) {
                Step::At(at) => {
                    self.pos = at;
                    match (expect(s, at, DS_CALL_BEGIN), expect(s, at, DS_CALLS_END)) {
                        (Step::At(end), _) => {
                            self.pos = end;
                            Next::Go(P::DsName { start: end })
                        }
                        (_, Step::At(len)) if !self.calls.is_empty() => {
                            let calls = std::mem::take(&mut self.calls);
                            Next::Done(Verdict::Calls { len, calls })
                        }
                        (Step::Need, _) | (_, Step::Need) => Next::Wait(P::DsNext),
                        _ => Next::Done(self.reject()),
                    }
                }
                Step::Need => self.wait_ws(s, phase),
                Step::Fail => Next::Done(self.reject()),
            },
            P::DsName { start } => match name_end(s, start, "<\n".as_bytes()) {
                Step::At(end) => match expect(s, end, DS_SEP) {
                    Step::At(after) => {
                        self.pos = after;
                        Next::Go(P::DsAfterSep { first: s[start..end].to_owned() })
                    }
                    Step::Need => Next::Wait(phase),
                    Step::Fail => Next::Done(self.reject()),
                },
                Step::Need => Next::Wait(phase),
                Step::Fail => Next::Done(self.reject()),
            },
            P::DsAfterSep { first } => {
                let at = self.pos;
                match s.as_bytes().get(at) {
                    None => Next::Wait(P::DsAfterSep { first }),
                    // V3: `function<｜tool▁sep｜>NAME` then the fenced arguments.
                    Some(&b) if first == "function" && is_name_byte(b) => {
                        Next::Go(P::DsV3Name { start: at })
                    }
                    // V3.1: `NAME<｜tool▁sep｜>{…}`.
                    Some(_) if offered(tools, &first) => match skip_ws(s, at) {
                        Step::At(at) => {
                            let next = P::DsJson { name: first, start: at, fenced: false };
                            self.json_at(s, at, b'{', next)
                        }
                        Step::Need => Next::Wait(P::DsAfterSep { first }),
                        Step::Fail => Next::Done(self.reject()),
                    },
                    Some(_) => Next::Done(self.reject()),
                }
            }
            P::DsV3Name { start } => match name_end(s, start, b"\n \r\t`") {
                Step::At(end) if offered(tools, &s[start..end]) => {
                    self.pos = end;
                    Next::Go(P::DsFence { name: s[start..end].to_owned() })
                }
                Step::Need => Next::Wait(phase),
                Step::At(_) | Step::Fail => Next::Done(self.reject()),
            },
            P::DsFence { name } => match skip_ws(s, self.pos) {
                Step::At(at) => match expect(s, at, "```json") {
                    Step::At(end) => match skip_ws(s, end) {
                        Step::At(json) => {
                            let next = P::DsJson { name, start: json, fenced: true };
                            self.json_at(s, json, b'{', next)
                        }
                        Step::Need => Next::Wait(P::DsFence { name }),
                        Step::Fail => Next::Done(self.reject()),
                    },
                    Step::Need => Next::Wait(P::DsFence { name }),
                    Step::Fail => Next::Done(self.reject()),
                },
                Step::Need => Next::Wait(P::DsFence { name }),
                Step::Fail => Next::Done(self.reject()),
            },
            P::DsJson { name, start, fenced } => match self.skim.run(s) {
                Step::At(end) if is_object(&s[start..end]) => {
                    self.pos = end;
                    let call = Call { name, arguments: s[start..end].to_owned() };
                    Next::Go(P::DsClose { call, fenced })
                }
                Step::Need => Next::Wait(P::DsJson { name, start, fenced }),
                Step::At(_) | Step::Fail => Next::Done(self.reject()),
            },
            P::DsClose { call, fenced } => match skip_ws(s, self.pos) {
                Step::At(at) => {
                    let (lit, next) = if fenced { ("```", true) } else { (DS_CALL_END, false) };
                    match expect(s, at, lit) {
                        Step::At(end) if next => {
                            self.pos = end;
                            Next::Go(P::DsEnd { call })
                        }
                        Step::At(end) => self.ds_call_done(call, end),
                        Step::Need => Next::Wait(P::DsClose { call, fenced }),
                        Step::Fail => Next::Done(self.reject()),
                    }
                }
                Step::Need => self.wait_ws(s, P::DsClose { call, fenced }),
                Step::Fail => Next::Done(self.reject()),
            },
            P::DsEnd { call } => match skip_ws(s, self.pos) {
                Step::At(at) => match expect(s, at, DS_CALL_END) {
                    Step::At(end) => self.ds_call_done(call, end),
                    Step::Need => Next::Wait(P::DsEnd { call }),
                    Step::Fail => Next::Done(self.reject()),
                },
                Step::Need => self.wait_ws(s, P::DsEnd { call }),
                Step::Fail => Next::Done(self.reject()),
            },
            P::HarmonyHeader => match s.find(H_MESSAGE) {
                Some(at) if at <= HEADER_BYTES => {
                    let header = at + H_MESSAGE.len();
                    let Some((channel, recipient)) = harmony_header(&s[..at]) else {
                        return Next::Done(self.reject());
                    };
                    let function = recipient
                        .as_deref()
                        .and_then(|r| r.strip_prefix("functions."))
                        .filter(|name| offered(tools, name));
                    if let Some(name) = function {
                        self.header = Some(header);
                        self.pos = header;
                        return Next::Go(P::HarmonyBodyStart { name: name.to_owned() });
                    }
                    if recipient.is_some() && channel != "analysis" {
                        // To a recipient that is not an offered function: as it was.
                        return Next::Done(Verdict::Reject { keep: header });
                    }
                    // Analysis (to whomever) is reasoning; final and commentary are the answer.
                    Next::Done(Verdict::Channel { len: header, reasoning: channel == "analysis" })
                }
                Some(_) => Next::Done(self.reject()),
                None if harmony_header_may_continue(s) => Next::Wait(phase),
                None => Next::Done(self.reject()),
            },
            P::HarmonyBodyStart { name } => match skip_ws(s, self.pos) {
                Step::At(at) => {
                    let next = P::HarmonyJson { name, start: at };
                    self.json_at(s, at, b'{', next)
                }
                Step::Need => self.wait_ws(s, P::HarmonyBodyStart { name }),
                Step::Fail => Next::Done(self.reject()),
            },
            P::HarmonyJson { name, start } => match self.skim.run(s) {
                Step::At(end) if is_object(&s[start..end]) => {
                    self.pos = end;
                    Next::Go(P::HarmonyAfter(Call { name, arguments: s[start..end].to_owned() }))
                }
                Step::Need => Next::Wait(P::HarmonyJson { name, start }),
                Step::At(_) | Step::Fail => Next::Done(self.reject()),
            },
            P::HarmonyAfter(call) => match skip_ws(s, self.pos) {
                Step::At(at) => {
                    self.pos = at;
                    match marker_at(s, at, &BODY_ENDS) {
                        MarkerScan::Found { index, .. } => {
                            // `<|end|>`, `<|return|>`, `<|call|>` belong to the call; the
                            // header of a next message does not.
                            let len = if index < 3 { at + BODY_ENDS[index].len() } else { at };
                            Next::Done(Verdict::Calls { len, calls: vec![call] })
                        }
                        MarkerScan::Partial { .. } => Next::Wait(P::HarmonyAfter(call)),
                        MarkerScan::Nothing => Next::Done(self.reject()),
                    }
                }
                Step::Need => self.wait_ws(s, P::HarmonyAfter(call)),
                Step::Fail => Next::Done(self.reject()),
            },
            P::BareStart => match skip_ws(s, self.pos) {
                Step::At(at) => self.json_at(s, at, b'{', P::BareJson { start: at }),
                Step::Need => self.wait_ws(s, phase),
                Step::Fail => Next::Done(self.reject()),
            },
            P::BareJson { start } => match self.skim.run(s) {
                Step::At(end) => match object_call(&s[start..end], tools, true) {
                    Some(call) => {
                        self.pos = end;
                        Next::Go(P::BareAfter(call))
                    }
                    None => Next::Done(self.reject()),
                },
                Step::Need => Next::Wait(phase),
                Step::Fail => Next::Done(self.reject()),
            },
            P::BareAfter(call) => match skip_ws(s, self.pos) {
                // Anything after the object: it was not the whole answer.
                Step::At(_) | Step::Fail => Next::Done(self.reject()),
                Step::Need => self.wait_ws(s, P::BareAfter(call)),
            },
        }
    }

    /// Only whitespace from `pos` to the end: read past it, then wait.
    fn wait_ws(&mut self, s: &str, phase: Phase) -> Next {
        self.pos = s.len();
        Next::Wait(phase)
    }

    /// One DeepSeek call read to its `<｜tool▁call▁end｜>` at `end`.
    fn ds_call_done(&mut self, call: Call, end: usize) -> Next {
        self.pos = end;
        if self.opener == Opener::DeepSeekCall {
            return Next::Done(Verdict::Calls { len: end, calls: vec![call] });
        }
        self.calls.push(call);
        Next::Go(Phase::DsNext)
    }
}

/// What reading a phase led to.
enum Next {
    Go(Phase),
    Wait(Phase),
    Done(Verdict),
}

/// The leading ASCII letters of `s`, and whether something other than a letter follows them.
fn word(s: &str) -> (&str, bool) {
    let len = s.bytes().take_while(u8::is_ascii_alphabetic).count();
    (&s[..len], len < s.len())
}

/// Whether a word at the start of `s` can still be (or is) one of `choices`.
fn word_may_be(s: &str, choices: &[&str]) -> bool {
    match word(s) {
        (w, true) => choices.contains(&w),
        (w, false) => choices.iter().any(|c| c.starts_with(w)),
    }
}

/// Whether a Harmony header not yet ended by `<|message|>` may still become a valid one (the
/// same rules [`harmony_header`] applies, on what has come so far).
fn harmony_header_may_continue(s: &str) -> bool {
    if s.len() >= HEADER_BYTES + H_MESSAGE.len() || s.contains('\n') {
        return false;
    }
    if let Some(rest) = s.strip_prefix(H_START) {
        if !word_may_be(rest, &["assistant"]) {
            return false;
        }
        if let Some((_, channel)) = rest.split_once(H_CHANNEL) {
            return word_may_be(channel, &CHANNELS);
        }
        return true;
    }
    s.strip_prefix(H_CHANNEL).is_none_or(|rest| word_may_be(rest, &CHANNELS))
}

/// A Harmony header (from `<|start|>` or `<|channel|>` up to `<|message|>`): the channel and
/// the recipient, if any. `None`: not the header of an assistant message.
fn harmony_header(h: &str) -> Option<(&'static str, Option<String>)> {
    if h.contains('\n') {
        return None;
    }
    let mut recipient: Option<String> = None;
    let mut take_recipient = |token: &str| -> Option<()> {
        let to = token.strip_prefix("to=").filter(|r| !r.is_empty())?;
        recipient.replace(to.to_owned()).is_none().then_some(())
    };
    let channel_part = match h.strip_prefix(H_START) {
        Some(rest) => {
            let (role, channel) = rest.split_once(H_CHANNEL)?;
            let (w, _) = word(role);
            let after = &role[w.len()..];
            if w != "assistant" || !(after.is_empty() || after.starts_with(' ')) {
                return None;
            }
            for token in after.split_whitespace() {
                take_recipient(token)?;
            }
            channel
        }
        None => h.strip_prefix(H_CHANNEL)?,
    };
    let (w, _) = word(channel_part);
    let channel = CHANNELS.into_iter().find(|c| *c == w)?;
    let after = &channel_part[w.len()..];
    if !(after.is_empty() || after.starts_with(' ') || after.starts_with(H_CONSTRAIN)) {
        return None;
    }
    let after = after.replace(H_CONSTRAIN, " ");
    if after.contains("<|") {
        return None;
    }
    for token in after.split_whitespace() {
        if token.starts_with("to=") {
            take_recipient(token)?;
        } else if !token.bytes().all(is_name_byte) {
            return None;
        }
    }
    Some((channel, recipient))
}

/// The scanner for one call, or `None` where the model's answers are not read for calls
/// written as text: APIs other than OpenAI chat, Responses and Ollama (Anthropic's Messages
/// always carries structured calls), api.openai.com, and models with
/// `compat.textToolCalls: false`. Calls are recovered for the request's tools (only the named
/// one when `tool_choice` names one; none when it is `none`: then only Harmony channels are
/// read); a bare JSON object counts only when the caller did not ask for JSON output.
pub fn for_call(target: &Target<'_>, prompt: &Prompt) -> Option<TextCalls> {
    let eligible =
        matches!(target.model.api, Api::OpenaiCompletions | Api::OpenaiResponses | Api::Ollama);
    if !eligible || target.is_native_openai() || target.model.compat.text_tool_calls == Some(false)
    {
        return None;
    }
    let names = prompt.tools.iter().map(|t| t.name.clone());
    let tools = match &prompt.tool_choice {
        Some(ToolChoice::None) => Vec::new(),
        Some(ToolChoice::Function(name)) => names.filter(|n| n == name).collect(),
        _ => names.collect(),
    };
    let json_output = matches!(
        prompt.output_format,
        Some(OutputFormat::JsonObject | OutputFormat::JsonSchema { .. })
    );
    Some(TextCalls::new(tools).with_bare_json(!json_output))
}

/// Where the scanner is.
#[derive(Debug, Clone)]
enum State {
    /// Answer text, looking for a marker.
    Text,
    /// A unit is held from the start of the buffer.
    Unit(Unit),
    /// Inside a Harmony message body: reasoning or answer text until its end.
    Body { reasoning: bool },
}

/// How whitespace at the start of answer text is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// Nothing but whitespace yet: held; dropped if a call follows, kept otherwise.
    Start,
    /// After a call or a Harmony header: held; dropped if a call or the end follows.
    After,
    /// Text flows.
    Free,
}

/// A streaming scanner of tool calls written as text. Feed it the answer text (after think-tag
/// splitting) with [`push`](Self::push) and end with [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct TextCalls {
    /// The names of the tools the request offered (none: only Harmony channels are read).
    tools: Vec<String>,
    /// Whether a bare JSON object (Llama 3) may be a call.
    bare_json: bool,
    hold_limit: usize,
    buf: String,
    state: State,
    /// No answer text (other than whitespace) and no unit has gone by yet.
    at_start: bool,
    lead: Lead,
    /// Whitespace held by `lead`.
    pending: String,
}

impl TextCalls {
    /// A scanner for calls to `tools` (their names).
    pub fn new(tools: Vec<String>) -> Self {
        TextCalls {
            tools,
            bare_json: true,
            hold_limit: DEFAULT_HOLD_BYTES,
            buf: String::new(),
            state: State::Text,
            at_start: true,
            lead: Lead::Start,
            pending: String::new(),
        }
    }

    /// Whether a whole answer that is a bare JSON object may be a call (off when the caller
    /// asked for JSON output).
    #[must_use]
    pub fn with_bare_json(mut self, on: bool) -> Self {
        self.bare_json = on;
        self
    }

    /// How many bytes a call may take before it is given up as text (`usize::MAX`: until the
    /// end, for whole bodies).
    #[must_use]
    pub fn with_hold_limit(mut self, bytes: usize) -> Self {
        self.hold_limit = bytes;
        self
    }

    /// Feeds the next piece of answer text; whatever is decided is appended to `out`.
    pub fn push(&mut self, text: &str, out: &mut Vec<Found>) {
        self.buf.push_str(text);
        self.run(false, out);
    }

    /// The answer ended: everything held is decided and appended to `out`.
    pub fn finish(&mut self, out: &mut Vec<Found>) {
        self.run(true, out);
        if self.lead == Lead::Start {
            let pending = std::mem::take(&mut self.pending);
            push_text(out, &pending);
        }
        self.pending.clear();
    }

    fn run(&mut self, eos: bool, out: &mut Vec<Found>) {
        loop {
            match std::mem::replace(&mut self.state, State::Text) {
                State::Text => {
                    if !self.scan_text(eos, out) {
                        return;
                    }
                }
                State::Unit(mut unit) => {
                    let buf = std::mem::take(&mut self.buf);
                    let limit = self.hold_limit;
                    let verdict = match unit.advance(&buf, eos, &self.tools) {
                        // Past the limit, whatever is decided later counts as decided there.
                        Verdict::Need if buf.len() >= limit => unit.give_up(limit),
                        Verdict::Calls { len, .. } | Verdict::Channel { len, .. }
                            if len > limit =>
                        {
                            unit.give_up(limit)
                        }
                        Verdict::Reject { keep } if keep > limit => unit.give_up(limit),
                        verdict => verdict,
                    };
                    self.buf = buf;
                    match verdict {
                        Verdict::Need => {
                            self.state = State::Unit(unit);
                            return;
                        }
                        Verdict::Reject { keep } => {
                            let kept: String = self.buf.drain(..keep).collect();
                            self.emit_text(&kept, out);
                        }
                        Verdict::Calls { len, calls } => {
                            self.buf.drain(..len);
                            self.at_start = false;
                            self.pending.clear();
                            self.lead = Lead::After;
                            for call in calls {
                                out.push(Found::Call {
                                    name: call.name,
                                    arguments: call.arguments,
                                });
                            }
                        }
                        Verdict::Channel { len, reasoning } => {
                            self.buf.drain(..len);
                            self.at_start = false;
                            self.pending.clear();
                            self.lead = Lead::After;
                            self.state = State::Body { reasoning };
                        }
                    }
                }
                State::Body { reasoning } => {
                    let buf = std::mem::take(&mut self.buf);
                    match find_marker(&buf, &BODY_ENDS, |_, _| true) {
                        MarkerScan::Found { at, index } => {
                            self.emit_body(reasoning, &buf[..at], out);
                            let end = if index < 3 { at + BODY_ENDS[index].len() } else { at };
                            self.buf = buf[end..].to_owned();
                        }
                        MarkerScan::Partial { at } if !eos => {
                            self.emit_body(reasoning, &buf[..at], out);
                            self.buf = buf[at..].to_owned();
                            self.state = State::Body { reasoning };
                            return;
                        }
                        MarkerScan::Partial { .. } | MarkerScan::Nothing => {
                            self.emit_body(reasoning, &buf, out);
                            self.state = State::Body { reasoning };
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Text state: emits text up to the first marker and opens its unit (true: go on), or emits
    /// all that is decided and holds a possible marker (false: wait for more).
    fn scan_text(&mut self, eos: bool, out: &mut Vec<Found>) -> bool {
        let buf = std::mem::take(&mut self.buf);
        let tools = !self.tools.is_empty();
        // Only whitespace so far, in the answer and in this buffer, up to `at`.
        let at_start = |at: usize| self.at_start && buf[..at].trim().is_empty();
        let bare_json = tools && self.bare_json;
        if bare_json
            && self.at_start
            && let Some(first) = buf.find(|c: char| !c.is_whitespace())
            && buf.as_bytes().get(first) == Some(&b'{')
        {
            let head = buf[..first].to_owned();
            self.emit_text(&head, out);
            self.buf = buf[first..].to_owned();
            self.state = State::Unit(Unit::new(Opener::BareJson, 1));
            return true;
        }
        let markers = OPENERS.map(|(m, _)| m);
        let scan = find_marker(&buf, &markers, |index, at| match OPENERS[index].1 {
            Opener::Harmony => true,
            Opener::PythonTag => bare_json && at_start(at),
            _ => tools,
        });
        match scan {
            MarkerScan::Found { at, index } => {
                let (marker, opener) = OPENERS[index];
                self.emit_text(&buf[..at], out);
                self.buf = buf[at..].to_owned();
                self.state = State::Unit(Unit::new(opener, marker.len()));
                true
            }
            MarkerScan::Partial { at } if !eos => {
                self.emit_text(&buf[..at], out);
                self.buf = buf[at..].to_owned();
                false
            }
            MarkerScan::Partial { .. } | MarkerScan::Nothing => {
                self.emit_text(&buf, out);
                false
            }
        }
    }

    fn emit_body(&mut self, reasoning: bool, s: &str, out: &mut Vec<Found>) {
        if reasoning {
            if !s.is_empty() {
                match out.last_mut() {
                    Some(Found::Reasoning(r)) => r.push_str(s),
                    _ => out.push(Found::Reasoning(s.to_owned())),
                }
            }
        } else {
            self.emit_text(s, out);
        }
    }

    /// Answer text, with whitespace held where [`Lead`] says.
    fn emit_text(&mut self, s: &str, out: &mut Vec<Found>) {
        if s.is_empty() {
            return;
        }
        if self.lead != Lead::Free {
            if s.trim().is_empty() {
                self.pending.push_str(s);
                return;
            }
            self.lead = Lead::Free;
            let pending = std::mem::take(&mut self.pending);
            push_text(out, &pending);
        }
        self.at_start = false;
        push_text(out, s);
    }
}

/// Appends text to `out`, merged into the last piece when that is text.
fn push_text(out: &mut Vec<Found>, s: &str) {
    if s.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Found::Text(t)) => t.push_str(s),
        _ => out.push(Found::Text(s.to_owned())),
    }
}

#[cfg(test)]
mod tests;
