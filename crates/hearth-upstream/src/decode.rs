//! Response decoding: each API's stream events or body into canonical [`Event`]s.
//!
//! One [`Decoder`] per upstream call. It is fed SSE events (chat, Responses, Anthropic),
//! NDJSON lines (Ollama) or a whole JSON body, and closes with [`Decoder::finish`], which
//! decides what the end means: usage (reported, from llama.cpp timings, or estimated and
//! marked so), the finish reason, or an error when the stream was cut short, carried an
//! in-band error, or held no answer (reasoning only counts as no answer).
//!
//! Stream chunks are read on a typed, borrowing path first ([`fast`]), and as a
//! `serde_json::Value` only when that path does not cover them; both read every chunk alike.

mod fast;

use std::collections::HashMap;

use hearth_config::Api;
use hearth_wire::sse::SseEvent;
use serde_json::Value;

use crate::api::Dialect;
use crate::classify;
use crate::event::{
    ErrorClass, Event, FinishReason, TokenLogprob, TopLogprob, UpstreamError, Usage,
};
use crate::reasoning::{Piece, ThinkSplitter, ThinkStart};
use crate::text_calls::{Found, TextCalls};
use crate::usage;

/// The most reasoning held while thinking is off ([`Decoder::thinking_off`]).
const MAX_HELD_REASONING: usize = 1 << 20;

/// Turns one upstream response into canonical events.
#[derive(Debug)]
pub struct Decoder {
    pub(crate) dialect: &'static dyn Dialect,
    pub(crate) splitter: ThinkSplitter,
    pub(crate) prompt_chars: usize,
    pub(crate) output_chars: usize,
    pub(crate) saw_text: bool,
    /// Answer text came in (some of it may still be held by the splitter or `text_calls`).
    pub(crate) text_in: bool,
    pub(crate) saw_tool: bool,
    pub(crate) saw_reasoning: bool,
    pub(crate) usage: Option<Usage>,
    pub(crate) finish: Option<FinishReason>,
    /// A terminal marker arrived (`[DONE]`, `response.completed`, `message_stop`, `done: true`).
    pub(crate) complete: bool,
    pub(crate) failed: bool,
    /// Responses `output_index` / Anthropic block index → canonical tool index.
    pub(crate) tool_index: HashMap<u64, u32>,
    /// Anthropic block index → kind (`text`, `thinking`, `tool_use`).
    pub(crate) block_kind: HashMap<u64, String>,
    /// Anthropic block index → a block no canonical event holds, and its streamed input so far.
    pub(crate) native_blocks: HashMap<u64, (Value, String)>,
    pub(crate) pieces: Vec<Piece>,
    /// Tool calls written as text, recovered from the answer (`None`: off for this call).
    pub(crate) text_calls: Option<TextCalls>,
    pub(crate) found: Vec<Found>,
    /// One past the highest tool index given out so far.
    pub(crate) next_tool: u32,
    /// A tool call was recovered from the text.
    pub(crate) recovered_calls: bool,
    /// Thinking is off for this call (`crate::thinking`): reasoning is not relayed but held
    /// here until the answer begins (then dropped); a server that wrote its whole answer as
    /// reasoning (vLLM #40816, llama.cpp templates that open a think block the level closed)
    /// gets it back as the answer at the end. `None`: thinking is not off.
    pub(crate) thinking_off: Option<String>,
    /// Strings of a chunk that hold escapes, unescaped by the typed path (reused).
    pub(crate) unescaped: String,
    /// Whether stream chunks try the typed path first (false only in tests, to compare).
    pub(crate) fast_path: bool,
}

pub(crate) fn finish_reason(raw: &str) -> FinishReason {
    match raw {
        "stop" | "end_turn" | "stop_sequence" | "completed" | "eos" => FinishReason::Stop,
        "length" | "max_tokens" | "max_output_tokens" | "model_context_window_exceeded" => {
            FinishReason::Length
        }
        "tool_calls" | "tool_use" | "function_call" => FinishReason::ToolCalls,
        "content_filter" | "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

pub(crate) fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Token logprobs from a list of `{token, logprob, bytes, top_logprobs}` (OpenAI chat
/// `logprobs.content`, Responses `logprobs`); an entry without a string `token` or a numeric
/// `logprob` is skipped, `bytes` that are not all bytes read as none.
fn token_logprobs(list: Option<&Value>) -> Vec<TokenLogprob> {
    let Some(items) = list.and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let (token, logprob, bytes) = logprob_fields(item)?;
            let top = item
                .get("top_logprobs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let (token, logprob, bytes) = logprob_fields(t)?;
                    Some(TopLogprob { token, logprob, bytes })
                })
                .collect();
            Some(TokenLogprob { token, logprob, bytes, top })
        })
        .collect()
}

fn logprob_fields(item: &Value) -> Option<(String, f64, Option<Vec<u8>>)> {
    let token = str_at(item, "token")?.to_owned();
    let logprob = item.get("logprob").and_then(Value::as_f64)?;
    let bytes = item.get("bytes").and_then(Value::as_array).and_then(|b| {
        b.iter().map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok())).collect::<Option<Vec<u8>>>()
    });
    Some((token, logprob, bytes))
}

impl Decoder {
    /// `reasoning_model`: the catalog marks the model as reasoning, so output that opens with
    /// reasoning and only closes the think block (`…</think>answer`) is recognized.
    pub fn new(api: Api, reasoning_model: bool, prompt_chars: usize) -> Self {
        Decoder {
            dialect: crate::api::of(api),
            splitter: ThinkSplitter::new(if reasoning_model {
                ThinkStart::Auto
            } else {
                ThinkStart::Detect
            }),
            prompt_chars,
            output_chars: 0,
            saw_text: false,
            text_in: false,
            saw_tool: false,
            saw_reasoning: false,
            usage: None,
            finish: None,
            complete: false,
            failed: false,
            tool_index: HashMap::new(),
            block_kind: HashMap::new(),
            native_blocks: HashMap::new(),
            pieces: Vec::new(),
            text_calls: None,
            found: Vec::new(),
            next_tool: 0,
            recovered_calls: false,
            thinking_off: None,
            unescaped: String::new(),
            fast_path: true,
        }
    }

    /// For a whole (non-streaming) body: nothing is shown before the end, so the text is split
    /// with no hold limit and output that starts inside a think block (`…</think>answer`) is
    /// recognized whatever the catalog says about reasoning (Invariant 2; see: #13).
    #[must_use]
    pub fn for_whole_body(mut self) -> Self {
        self.splitter = ThinkSplitter::new(ThinkStart::Auto).with_hold_limit(usize::MAX);
        self.text_calls = self.text_calls.map(|t| t.with_hold_limit(usize::MAX));
        self
    }

    /// Thinking is off for this call: no reasoning is relayed ([`Decoder::thinking_off`]).
    #[must_use]
    pub fn with_thinking_off(mut self) -> Self {
        self.thinking_off = Some(String::new());
        self
    }

    /// Reasoning text while thinking is off: held until the answer begins, dropped after.
    /// `false` when thinking is not off (the caller relays it).
    fn hold_reasoning(&mut self, r: &str) -> bool {
        let answered = self.saw_text || self.text_in || self.saw_tool;
        let Some(held) = self.thinking_off.as_mut() else {
            return false;
        };
        if !answered && held.len() < MAX_HELD_REASONING {
            held.push_str(r);
        }
        true
    }

    /// Recovers tool calls the model wrote into its answer text (`crate::text_calls`).
    #[must_use]
    pub fn with_text_calls(mut self, scanner: TextCalls) -> Self {
        self.text_calls = Some(scanner);
        self
    }

    /// Turns the typed path for stream chunks off (`false`) or on: for the differential fuzz
    /// target, which holds both paths to the same events. Production code never calls it.
    #[doc(hidden)]
    pub fn with_typed_path(mut self, on: bool) -> Self {
        self.fast_path = on;
        self
    }

    /// Whether the decoder has seen the end of the answer (or a failure).
    pub fn is_done(&self) -> bool {
        self.complete || self.failed
    }

    /// Records a terminal failure (only the first one is emitted).
    pub fn fail(&mut self, error: UpstreamError, out: &mut Vec<Event>) {
        if !self.failed {
            self.failed = true;
            out.push(Event::Error(error));
        }
    }

    /// Token logprobs, sent before the text they belong to (see [`Event::Logprobs`]).
    pub(crate) fn logprobs(&mut self, list: Option<&Value>, out: &mut Vec<Event>) {
        let tokens = token_logprobs(list);
        if !tokens.is_empty() {
            out.push(Event::Logprobs(tokens));
        }
    }

    pub(crate) fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        self.text_in = true;
        self.splitter.push(text, &mut self.pieces);
        self.drain_pieces(out);
    }

    pub(crate) fn drain_pieces(&mut self, out: &mut Vec<Event>) {
        let mut pieces = std::mem::take(&mut self.pieces);
        for piece in pieces.drain(..) {
            match piece {
                Piece::Text(t) if !t.is_empty() => match self.text_calls.as_mut() {
                    Some(scanner) => {
                        scanner.push(&t, &mut self.found);
                        self.drain_found(out);
                    }
                    None => self.answer_text(t, out),
                },
                Piece::Reasoning(r) if !r.is_empty() => self.reasoning_text(r, out),
                _ => {}
            }
        }
        self.pieces = pieces;
    }

    /// What the text-call scanner decided.
    fn drain_found(&mut self, out: &mut Vec<Event>) {
        let mut found = std::mem::take(&mut self.found);
        for f in found.drain(..) {
            match f {
                Found::Text(t) => self.answer_text(t, out),
                Found::Reasoning(r) => self.reasoning_text(r, out),
                Found::Call { name, arguments } => {
                    // After every index given out, and past the positional ones Ollama and
                    // Responses count from `tool_index`.
                    let index = self.next_tool.max(self.tool_index.len() as u32);
                    self.tool_index.insert(u64::MAX - u64::from(index), index);
                    self.recovered_calls = true;
                    let id = format!("call_{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..));
                    self.tool(index, Some(id), Some(name), arguments, out);
                }
            }
        }
        self.found = found;
    }

    fn answer_text(&mut self, t: String, out: &mut Vec<Event>) {
        if t.is_empty() {
            return;
        }
        self.output_chars += t.len();
        if !t.trim().is_empty() {
            self.saw_text = true;
        }
        out.push(Event::TextDelta(t));
    }

    fn reasoning_text(&mut self, r: String, out: &mut Vec<Event>) {
        if r.is_empty() {
            return;
        }
        self.output_chars += r.len();
        self.saw_reasoning = true;
        if !self.hold_reasoning(&r) {
            out.push(Event::ReasoningDelta(r));
        }
    }

    pub(crate) fn reasoning(&mut self, text: &str, out: &mut Vec<Event>) {
        if !text.is_empty() {
            // Reasoning in a field of its own: the text is the answer, no need to hold it.
            self.splitter.settle_as_answer(&mut self.pieces);
            self.drain_pieces(out);
            self.output_chars += text.len();
            self.saw_reasoning = true;
            if !self.hold_reasoning(text) {
                out.push(Event::ReasoningDelta(text.to_owned()));
            }
        }
    }

    pub(crate) fn tool(
        &mut self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
        out: &mut Vec<Event>,
    ) {
        self.saw_tool = true;
        self.next_tool = self.next_tool.max(index.saturating_add(1));
        self.output_chars += arguments.len();
        out.push(Event::ToolCallDelta { index, id, name, arguments });
    }

    /// One SSE event of a streaming response.
    pub fn sse(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        if self.failed {
            return;
        }
        if event.is_done() {
            self.complete = true;
            return;
        }
        if event.event.as_deref() == Some("error") {
            self.fail(classify::classify_stream_error(&event.data), out);
            return;
        }
        if self.fast_path && self.sse_fast(event, out) {
            return;
        }
        let Ok(value) = serde_json::from_str::<Value>(&event.data) else {
            if event.data.trim().is_empty() {
                return;
            }
            let snippet: String = classify::redact(&event.data).chars().take(200).collect();
            self.fail(
                UpstreamError::new(
                    ErrorClass::ServerError,
                    format!("malformed event from upstream: {snippet}"),
                ),
                out,
            );
            return;
        };
        let dialect = self.dialect;
        dialect.stream_value(self, event.event.as_deref(), &value, out);
    }

    /// The typed path for one SSE event; false (nothing done) when it does not cover it.
    fn sse_fast(&mut self, event: &SseEvent, out: &mut Vec<Event>) -> bool {
        let dialect = self.dialect;
        dialect.stream_typed(self, event.event.as_deref(), &event.data, out)
    }

    /// One NDJSON line (Ollama `/api/chat`).
    pub fn ndjson(&mut self, line: &str, out: &mut Vec<Event>) {
        if self.failed {
            return;
        }
        if self.fast_path && self.ollama_fast(line, out) {
            return;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(value) => self.ollama_chunk(&value, out),
            Err(_) => {
                let snippet: String = classify::redact(line).chars().take(200).collect();
                self.fail(
                    UpstreamError::new(
                        ErrorClass::ServerError,
                        format!("malformed line from upstream: {snippet}"),
                    ),
                    out,
                );
            }
        }
    }

    /// A whole (non-streaming) response body as it came: an OpenAI chat body is read by the
    /// typed path where it covers it, anything else as a `Value`. `Err`: not JSON.
    pub fn body_bytes(
        &mut self,
        bytes: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<(), serde_json::Error> {
        let dialect = self.dialect;
        if self.fast_path
            && let Ok(text) = std::str::from_utf8(bytes)
            && dialect.body_typed(self, text, out)
        {
            self.complete = true;
            return Ok(());
        }
        let value = serde_json::from_slice::<Value>(bytes)?;
        self.body(&value, out);
        Ok(())
    }

    /// A whole (non-streaming) response body.
    pub fn body(&mut self, body: &Value, out: &mut Vec<Event>) {
        let dialect = self.dialect;
        dialect.body_value(self, body, out);
        self.complete = true;
    }

    // ---- the end ---------------------------------------------------------------------------

    /// The upstream closed the stream (or the body was decoded). Emits the trailing events.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.failed {
            return;
        }
        self.splitter.finish(&mut self.pieces);
        self.drain_pieces(out);
        if let Some(scanner) = self.text_calls.as_mut() {
            scanner.finish(&mut self.found);
            self.drain_found(out);
        }
        // Chat streams may end without `[DONE]`: a finish_reason is enough.
        let ended_properly = self.complete || self.finish.is_some();
        if !ended_properly {
            self.fail(
                UpstreamError::new(
                    ErrorClass::ServerError,
                    "the upstream closed the stream before the model finished",
                ),
                out,
            );
            return;
        }
        // Thinking off, and all the server wrote was "reasoning": that was its answer.
        if !self.saw_text && !self.saw_tool {
            let held = self.thinking_off.as_mut().map(std::mem::take).unwrap_or_default();
            if !held.trim().is_empty() {
                self.saw_text = true;
                out.push(Event::TextDelta(held));
            }
        }
        if !self.saw_text && !self.saw_tool {
            let message = if self.saw_reasoning {
                "the model produced reasoning but no answer"
            } else {
                "the model produced no answer"
            };
            self.fail(UpstreamError::new(ErrorClass::EmptyResponse, message), out);
            return;
        }
        let usage =
            self.usage.unwrap_or_else(|| usage::estimate(self.prompt_chars, self.output_chars));
        out.push(Event::Usage(usage));
        let reason = match self.finish.clone() {
            // The upstream saw text where there were calls: they count as calls.
            Some(FinishReason::Stop) if self.recovered_calls => FinishReason::ToolCalls,
            Some(reason) => reason,
            None if self.saw_tool => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        out.push(Event::Finish(reason));
    }
}
