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

use crate::classify;
use crate::event::{
    ErrorClass, Event, FinishReason, TokenLogprob, TopLogprob, UpstreamError, Usage,
};
use crate::reasoning::{Piece, ThinkSplitter, ThinkStart};
use crate::usage;

/// Turns one upstream response into canonical events.
#[derive(Debug)]
pub struct Decoder {
    api: Api,
    splitter: ThinkSplitter,
    prompt_chars: usize,
    output_chars: usize,
    saw_text: bool,
    saw_tool: bool,
    saw_reasoning: bool,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
    /// A terminal marker arrived (`[DONE]`, `response.completed`, `message_stop`, `done: true`).
    complete: bool,
    failed: bool,
    /// Responses `output_index` / Anthropic block index → canonical tool index.
    tool_index: HashMap<u64, u32>,
    /// Anthropic block index → kind (`text`, `thinking`, `tool_use`).
    block_kind: HashMap<u64, String>,
    pieces: Vec<Piece>,
    /// Strings of a chunk that hold escapes, unescaped by the typed path (reused).
    unescaped: String,
    /// Whether stream chunks try the typed path first (false only in tests, to compare).
    fast_path: bool,
}

fn finish_reason(raw: &str) -> FinishReason {
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

fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
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
            api,
            splitter: ThinkSplitter::new(if reasoning_model {
                ThinkStart::Auto
            } else {
                ThinkStart::Detect
            }),
            prompt_chars,
            output_chars: 0,
            saw_text: false,
            saw_tool: false,
            saw_reasoning: false,
            usage: None,
            finish: None,
            complete: false,
            failed: false,
            tool_index: HashMap::new(),
            block_kind: HashMap::new(),
            pieces: Vec::new(),
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
    fn logprobs(&mut self, list: Option<&Value>, out: &mut Vec<Event>) {
        let tokens = token_logprobs(list);
        if !tokens.is_empty() {
            out.push(Event::Logprobs(tokens));
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        self.splitter.push(text, &mut self.pieces);
        self.drain_pieces(out);
    }

    fn drain_pieces(&mut self, out: &mut Vec<Event>) {
        for piece in self.pieces.drain(..) {
            match piece {
                Piece::Text(t) if !t.is_empty() => {
                    self.output_chars += t.len();
                    if !t.trim().is_empty() {
                        self.saw_text = true;
                    }
                    out.push(Event::TextDelta(t));
                }
                Piece::Reasoning(r) if !r.is_empty() => {
                    self.output_chars += r.len();
                    self.saw_reasoning = true;
                    out.push(Event::ReasoningDelta(r));
                }
                _ => {}
            }
        }
    }

    fn reasoning(&mut self, text: &str, out: &mut Vec<Event>) {
        if !text.is_empty() {
            // Reasoning in a field of its own: the text is the answer, no need to hold it.
            self.splitter.settle_as_answer(&mut self.pieces);
            self.drain_pieces(out);
            self.output_chars += text.len();
            self.saw_reasoning = true;
            out.push(Event::ReasoningDelta(text.to_owned()));
        }
    }

    fn tool(
        &mut self,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
        out: &mut Vec<Event>,
    ) {
        self.saw_tool = true;
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
        match self.api {
            Api::OpenaiCompletions => self.chat_chunk(&value, out),
            Api::OpenaiResponses => self.responses_event(event.event.as_deref(), &value, out),
            Api::AnthropicMessages => self.anthropic_event(&value, out),
            Api::Ollama => self.ollama_chunk(&value, out),
        }
    }

    /// The typed path for one SSE event; false (nothing done) when it does not cover it.
    fn sse_fast(&mut self, event: &SseEvent, out: &mut Vec<Event>) -> bool {
        match self.api {
            Api::OpenaiCompletions => self.chat_fast(&event.data, out),
            Api::OpenaiResponses => self.responses_fast(event.event.as_deref(), &event.data, out),
            Api::AnthropicMessages => self.anthropic_fast(&event.data, out),
            Api::Ollama => self.ollama_fast(&event.data, out),
        }
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
        if self.fast_path
            && self.api == Api::OpenaiCompletions
            && let Ok(text) = std::str::from_utf8(bytes)
            && self.chat_body_fast(text, out)
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
        match self.api {
            Api::OpenaiCompletions => self.chat_body(body, out),
            Api::OpenaiResponses => self.responses_body(body, out),
            Api::AnthropicMessages => self.anthropic_body(body, out),
            Api::Ollama => self.ollama_chunk(body, out),
        }
        self.complete = true;
    }

    // ---- OpenAI chat -----------------------------------------------------------------------

    fn in_band_error(&mut self, value: &Value, out: &mut Vec<Event>) -> bool {
        if value.get("error").is_some_and(|e| !e.is_null()) {
            self.fail(classify::classify_stream_error(&value.to_string()), out);
            return true;
        }
        false
    }

    fn chat_reasoning_fields(&mut self, delta: &Value, out: &mut Vec<Event>) {
        // `reasoning` (vLLM, Ollama /v1, OpenRouter) wins over its deprecated duplicate.
        let reasoning = str_at(delta, "reasoning")
            .or_else(|| str_at(delta, "reasoning_content"))
            .or_else(|| str_at(delta, "thinking"));
        if let Some(r) = reasoning {
            self.reasoning(r, out);
        } else if let Some(details) = delta.get("reasoning_details").and_then(Value::as_array) {
            for d in details {
                if let Some(t) = str_at(d, "text").or_else(|| str_at(d, "summary")) {
                    self.reasoning(t, out);
                }
            }
        }
    }

    fn chat_usage(&mut self, value: &Value) {
        if let Some(u) =
            value.get("usage").filter(|u| !u.is_null()).and_then(usage::from_openai_chat)
        {
            self.usage = Some(u);
        } else if self.usage.is_none()
            && let Some(u) = value.get("timings").and_then(usage::from_llama_timings)
        {
            self.usage = Some(u);
        }
    }

    fn chat_chunk(&mut self, value: &Value, out: &mut Vec<Event>) {
        if self.in_band_error(value, out) {
            return;
        }
        if let Some(choice) = value.get("choices").and_then(Value::as_array).and_then(|c| c.first())
        {
            if let Some(delta) = choice.get("delta") {
                self.chat_reasoning_fields(delta, out);
                self.logprobs(choice.pointer("/logprobs/content"), out);
                if let Some(text) = str_at(delta, "content") {
                    self.text(text, out);
                }
                for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten()
                {
                    let index = call.get("index").and_then(Value::as_u64).unwrap_or(0) as u32;
                    let function = call.get("function");
                    self.tool(
                        index,
                        str_at(call, "id").map(str::to_owned),
                        function.and_then(|f| str_at(f, "name")).map(str::to_owned),
                        function
                            .and_then(|f| str_at(f, "arguments"))
                            .unwrap_or_default()
                            .to_owned(),
                        out,
                    );
                }
            }
            if let Some(reason) = str_at(choice, "finish_reason") {
                if let Some(error) = classify::classify_finish_reason(reason) {
                    self.fail(error, out);
                    return;
                }
                self.finish = Some(finish_reason(reason));
            }
        }
        self.chat_usage(value);
    }

    fn chat_body(&mut self, value: &Value, out: &mut Vec<Event>) {
        if self.in_band_error(value, out) {
            return;
        }
        if let Some(choice) = value.get("choices").and_then(Value::as_array).and_then(|c| c.first())
        {
            if let Some(message) = choice.get("message") {
                self.chat_reasoning_fields(message, out);
                self.logprobs(choice.pointer("/logprobs/content"), out);
                if let Some(text) = str_at(message, "content") {
                    self.text(text, out);
                }
                for (idx, call) in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let function = call.get("function");
                    // Arguments sent as an object go up as its JSON text; `null` as none.
                    let arguments = match function.and_then(|f| f.get("arguments")) {
                        Some(Value::String(s)) => s.clone(),
                        None | Some(Value::Null) => String::new(),
                        Some(other) => other.to_string(),
                    };
                    self.tool(
                        idx as u32,
                        str_at(call, "id").map(str::to_owned),
                        function.and_then(|f| str_at(f, "name")).map(str::to_owned),
                        arguments,
                        out,
                    );
                }
            }
            if let Some(reason) = str_at(choice, "finish_reason") {
                if let Some(error) = classify::classify_finish_reason(reason) {
                    self.fail(error, out);
                    return;
                }
                self.finish = Some(finish_reason(reason));
            }
        }
        self.chat_usage(value);
    }

    // ---- OpenAI Responses ------------------------------------------------------------------

    fn responses_event(&mut self, name: Option<&str>, value: &Value, out: &mut Vec<Event>) {
        let kind = str_at(value, "type").or(name).unwrap_or_default().to_owned();
        match kind.as_str() {
            "response.output_text.delta" | "response.refusal.delta" => {
                self.logprobs(value.get("logprobs"), out);
                if let Some(d) = str_at(value, "delta") {
                    self.text(d, out);
                }
            }
            "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning.delta" => {
                if let Some(d) = str_at(value, "delta") {
                    self.reasoning(d, out);
                }
            }
            "response.output_item.added" => {
                let item = value.get("item");
                if item.and_then(|i| str_at(i, "type")) == Some("function_call") {
                    let next = self.tool_index.len() as u32;
                    let output_index = value
                        .get("output_index")
                        .and_then(Value::as_u64)
                        .unwrap_or(u64::from(next));
                    let index = *self.tool_index.entry(output_index).or_insert(next);
                    let item = item.unwrap_or(&Value::Null);
                    let args = str_at(item, "arguments").unwrap_or_default().to_owned();
                    self.tool(
                        index,
                        str_at(item, "call_id").or_else(|| str_at(item, "id")).map(str::to_owned),
                        str_at(item, "name").map(str::to_owned),
                        args,
                        out,
                    );
                }
            }
            "response.function_call_arguments.delta" => {
                let output_index = value.get("output_index").and_then(Value::as_u64);
                let index = match output_index.and_then(|i| self.tool_index.get(&i)) {
                    Some(i) => *i,
                    None => self.tool_index.len().saturating_sub(1) as u32,
                };
                if let Some(d) = str_at(value, "delta") {
                    self.tool(index, None, None, d.to_owned(), out);
                }
            }
            "response.output_item.done" => {
                // Encrypted reasoning content is kept for replay.
                if let Some(item) = value.get("item")
                    && str_at(item, "type") == Some("reasoning")
                    && let Some(enc) = str_at(item, "encrypted_content")
                {
                    out.push(Event::ReasoningSignature(enc.to_owned()));
                }
            }
            "response.completed" | "response.incomplete" => {
                if let Some(response) = value.get("response") {
                    if let Some(u) = response.get("usage").and_then(usage::from_responses) {
                        self.usage = Some(u);
                    }
                    if !self.saw_text && !self.saw_tool {
                        // Some servers send the whole output only in the final event.
                        self.responses_output(response, out);
                    }
                }
                let incomplete = kind == "response.incomplete"
                    || value.pointer("/response/status").and_then(Value::as_str)
                        == Some("incomplete");
                self.finish = Some(if incomplete {
                    FinishReason::Length
                } else if self.saw_tool {
                    FinishReason::ToolCalls
                } else {
                    FinishReason::Stop
                });
                self.complete = true;
            }
            "response.failed" | "error" => {
                let detail = value
                    .pointer("/response/error")
                    .or_else(|| value.get("error"))
                    .unwrap_or(value);
                let text = if detail.get("error").is_some() {
                    detail.to_string()
                } else {
                    serde_json::json!({"error": detail}).to_string()
                };
                self.fail(classify::classify_stream_error(&text), out);
            }
            _ => {}
        }
    }

    fn responses_output(&mut self, response: &Value, out: &mut Vec<Event>) {
        for item in response.get("output").and_then(Value::as_array).into_iter().flatten() {
            match str_at(item, "type") {
                Some("message") => {
                    for part in item.get("content").and_then(Value::as_array).into_iter().flatten()
                    {
                        self.logprobs(part.get("logprobs"), out);
                        if let Some(t) = str_at(part, "text") {
                            self.text(t, out);
                        }
                    }
                }
                Some("reasoning") => {
                    for key in ["content", "summary"] {
                        for part in item.get(key).and_then(Value::as_array).into_iter().flatten() {
                            if let Some(t) = str_at(part, "text") {
                                self.reasoning(t, out);
                            }
                        }
                    }
                    if let Some(enc) = str_at(item, "encrypted_content") {
                        out.push(Event::ReasoningSignature(enc.to_owned()));
                    }
                }
                Some("function_call") => {
                    let index = self.tool_index.len() as u32;
                    self.tool_index.insert(u64::MAX - u64::from(index), index);
                    self.tool(
                        index,
                        str_at(item, "call_id").or_else(|| str_at(item, "id")).map(str::to_owned),
                        str_at(item, "name").map(str::to_owned),
                        str_at(item, "arguments").unwrap_or_default().to_owned(),
                        out,
                    );
                }
                _ => {}
            }
        }
    }

    fn responses_body(&mut self, value: &Value, out: &mut Vec<Event>) {
        if value.get("error").is_some_and(|e| !e.is_null()) {
            self.fail(classify::classify_stream_error(&value.to_string()), out);
            return;
        }
        self.responses_output(value, out);
        if let Some(u) = value.get("usage").and_then(usage::from_responses) {
            self.usage = Some(u);
        }
        self.finish = Some(match str_at(value, "status") {
            Some("incomplete") => FinishReason::Length,
            _ if self.saw_tool => FinishReason::ToolCalls,
            _ => FinishReason::Stop,
        });
    }

    // ---- Anthropic Messages ----------------------------------------------------------------

    fn anthropic_event(&mut self, value: &Value, out: &mut Vec<Event>) {
        match str_at(value, "type").unwrap_or_default() {
            "message_start" => {
                if let Some(u) = value.pointer("/message/usage") {
                    self.usage = Some(usage::from_anthropic(u, self.usage));
                }
            }
            "content_block_start" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = value.get("content_block").unwrap_or(&Value::Null);
                let kind = str_at(block, "type").unwrap_or_default().to_owned();
                match kind.as_str() {
                    "tool_use" => {
                        let tool = self.tool_index.len() as u32;
                        self.tool_index.insert(index, tool);
                        self.tool(
                            tool,
                            str_at(block, "id").map(str::to_owned),
                            str_at(block, "name").map(str::to_owned),
                            String::new(),
                            out,
                        );
                    }
                    "text" => {
                        if let Some(t) = str_at(block, "text") {
                            self.anthropic_text(t, out);
                        }
                    }
                    "thinking" => {
                        if let Some(t) = str_at(block, "thinking") {
                            self.reasoning(t, out);
                        }
                    }
                    _ => {}
                }
                self.block_kind.insert(index, kind);
            }
            "content_block_delta" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = value.get("delta").unwrap_or(&Value::Null);
                match str_at(delta, "type").unwrap_or_default() {
                    "text_delta" => {
                        if let Some(t) = str_at(delta, "text") {
                            self.anthropic_text(t, out);
                        }
                    }
                    "thinking_delta" => {
                        if let Some(t) = str_at(delta, "thinking") {
                            self.reasoning(t, out);
                        }
                    }
                    "signature_delta" => {
                        if let Some(s) = str_at(delta, "signature") {
                            out.push(Event::ReasoningSignature(s.to_owned()));
                        }
                    }
                    "input_json_delta" => {
                        let tool = self.tool_index.get(&index).copied().unwrap_or(0);
                        self.tool(
                            tool,
                            None,
                            None,
                            str_at(delta, "partial_json").unwrap_or_default().to_owned(),
                            out,
                        );
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.finish = Some(finish_reason(reason));
                }
                if let Some(u) = value.get("usage") {
                    self.usage = Some(usage::from_anthropic(u, self.usage));
                }
            }
            "message_stop" => self.complete = true,
            "error" => {
                self.fail(classify::classify_stream_error(&value.to_string()), out);
            }
            _ => {}
        }
    }

    /// Anthropic text never carries inline think tags; it bypasses the splitter.
    fn anthropic_text(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        self.output_chars += text.len();
        if !text.trim().is_empty() {
            self.saw_text = true;
        }
        out.push(Event::TextDelta(text.to_owned()));
    }

    fn anthropic_body(&mut self, value: &Value, out: &mut Vec<Event>) {
        if str_at(value, "type") == Some("error") {
            self.fail(classify::classify_stream_error(&value.to_string()), out);
            return;
        }
        for block in value.get("content").and_then(Value::as_array).into_iter().flatten() {
            match str_at(block, "type") {
                Some("text") => self.anthropic_text(str_at(block, "text").unwrap_or_default(), out),
                Some("thinking") => {
                    self.reasoning(str_at(block, "thinking").unwrap_or_default(), out);
                    if let Some(sig) = str_at(block, "signature") {
                        out.push(Event::ReasoningSignature(sig.to_owned()));
                    }
                }
                Some("tool_use") => {
                    let index = self.tool_index.len() as u32;
                    self.tool_index.insert(u64::MAX - u64::from(index), index);
                    let input =
                        block.get("input").map(Value::to_string).unwrap_or_else(|| "{}".to_owned());
                    self.tool(
                        index,
                        str_at(block, "id").map(str::to_owned),
                        str_at(block, "name").map(str::to_owned),
                        input,
                        out,
                    );
                }
                _ => {}
            }
        }
        if let Some(u) = value.get("usage") {
            self.usage = Some(usage::from_anthropic(u, None));
        }
        if let Some(reason) = str_at(value, "stop_reason") {
            self.finish = Some(finish_reason(reason));
        }
    }

    // ---- Ollama ----------------------------------------------------------------------------

    fn ollama_chunk(&mut self, value: &Value, out: &mut Vec<Event>) {
        if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
            let body = serde_json::json!({"error": error}).to_string();
            self.fail(classify::classify_stream_error(&body), out);
            return;
        }
        if let Some(message) = value.get("message") {
            if let Some(t) = str_at(message, "thinking") {
                self.reasoning(t, out);
            }
            if let Some(t) = str_at(message, "content") {
                self.text(t, out);
            }
            for call in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let index = self.tool_index.len() as u32;
                self.tool_index.insert(u64::MAX - u64::from(index), index);
                let function = call.get("function");
                let args = function.and_then(|f| f.get("arguments")).map(|a| match a {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                self.tool(
                    index,
                    str_at(call, "id").map(str::to_owned).or_else(|| Some(format!("call_{index}"))),
                    function.and_then(|f| str_at(f, "name")).map(str::to_owned),
                    args.unwrap_or_default(),
                    out,
                );
            }
        }
        if value.get("done").and_then(Value::as_bool) == Some(true) {
            if let Some(u) = usage::from_ollama(value) {
                self.usage = Some(u);
            }
            let reason = str_at(value, "done_reason").unwrap_or("stop");
            self.finish = Some(if self.saw_tool && reason == "stop" {
                FinishReason::ToolCalls
            } else {
                finish_reason(reason)
            });
            self.complete = true;
        }
    }

    // ---- the end ---------------------------------------------------------------------------

    /// The upstream closed the stream (or the body was decoded). Emits the trailing events.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.failed {
            return;
        }
        self.splitter.finish(&mut self.pieces);
        self.drain_pieces(out);
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
        let reason = self.finish.clone().unwrap_or(if self.saw_tool {
            FinishReason::ToolCalls
        } else {
            FinishReason::Stop
        });
        out.push(Event::Finish(reason));
    }
}
