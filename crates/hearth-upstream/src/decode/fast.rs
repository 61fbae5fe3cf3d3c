//! The typed path of stream decoding: borrowing views of the chunks that make up nearly every
//! stream, read without building a `serde_json::Value` (an `IndexMap` per object and a
//! `String` per key: two dozen allocations for a chunk that carries one token).
//!
//! Covered: OpenAI chat chunks (text, reasoning, tool calls, finish reason, usage, llama.cpp
//! timings; not token logprobs: a choice with `logprobs` goes the `Value` way), Responses text
//! and reasoning deltas (with an empty `logprobs` list), Anthropic text and thinking deltas, Ollama
//! lines before the last. Every field is read the way the `Value` path reads it (`as_str`,
//! `as_u64`, `as_bool`: a value of another type counts as absent; of a repeated key the last
//! wins). Strings are borrowed from the chunk; one that holds an escape is unescaped into a
//! buffer the decoder keeps, so an ordinary text chunk costs one allocation, the `String` its
//! [`Event::TextDelta`] carries.
//!
//! The typed path accepts a chunk only where `serde_json::Value` would: fields it does not read
//! are checked as `Value` checks them (string escapes, number range, nesting depth) and
//! dropped. What it does not cover (a parse failure, an array or a scalar where it reads an
//! object, a field of an odd type, an escaped key, an in-band error, `reasoning_details`
//! without a reasoning string, any other event) makes it return `false` before it changes
//! anything, and the chunk goes the `Value` way. A property test (`fast/tests.rs`) holds the
//! two paths to the same events.
//!
//! serde_json's `raw_value` feature, on for [`Raw`], also makes `Value` read an object whose
//! first key is `$serde_json::private::RawValue` as the JSON text in its value; the typed path
//! leaves any object with that key to `Value`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Decoder, finish_reason};
use crate::classify;
use crate::event::{Event, Usage};

#[cfg(test)]
mod tests;

// ---- reading values ------------------------------------------------------------------------

/// Why the typed parse failed: the chunk goes the `Value` way.
const LEFT_TO_VALUE: &str = "left to serde_json::Value";

/// A field value kept as its raw JSON text, borrowed from the chunk (serde_json's `raw_value`):
/// a string, a boolean or an integer of up to 20 digits. Anything else (an object, an array, a
/// float, a negative number) fails the typed parse: the raw scan checks neither number range
/// nor nesting depth, and no field the typed path reads carries one in practice.
#[derive(Debug, Clone, Copy)]
struct Raw<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'a RawValue>::deserialize(deserializer)?.get();
        let accepted = match raw.as_bytes().first() {
            // serde_json's scan of a string checks escapes but lets unpaired surrogates through.
            Some(b'"') => {
                str_of(Some(Raw(raw))).is_some_and(|s| !s.escaped || unescape(s.inner, |_| {}))
            }
            Some(b't' | b'f' | b'n') => true,
            Some(b'0'..=b'9') => raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit()),
            _ => false,
        };
        if accepted { Ok(Raw(raw)) } else { Err(D::Error::custom(LEFT_TO_VALUE)) }
    }
}

/// The value as `Value::as_str` reads it: a string, else nothing.
fn str_of(raw: Option<Raw<'_>>) -> Option<JsonStr<'_>> {
    let inner = raw?.0.strip_prefix('"')?.strip_suffix('"')?;
    Some(JsonStr { inner, escaped: inner.contains('\\') })
}

/// The value as `Value::as_u64` reads it: an integer that fits a `u64` (a larger one is a
/// float to serde_json), else nothing.
fn count_of(raw: Option<Raw<'_>>) -> Option<u64> {
    let text = raw?.0;
    if text.bytes().all(|b| b.is_ascii_digit()) { text.parse().ok() } else { None }
}

/// The value as `Value::as_bool(..) == Some(true)` reads it.
fn is_true(raw: Option<Raw<'_>>) -> bool {
    raw.is_some_and(|r| r.0 == "true")
}

/// The inside of a JSON string literal that serde_json reads as a string, as it stands in the
/// chunk.
#[derive(Debug, Clone, Copy)]
struct JsonStr<'a> {
    inner: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The text, unescaped into `buf` when it holds an escape.
    fn get<'b>(self, buf: &'b mut String) -> &'b str
    where
        'a: 'b,
    {
        if !self.escaped {
            return self.inner;
        }
        buf.clear();
        unescape(self.inner, |piece| buf.push_str(piece));
        buf
    }

    /// The text as an owned string.
    fn owned(self) -> String {
        if !self.escaped {
            return self.inner.to_owned();
        }
        let mut text = String::with_capacity(self.inner.len());
        unescape(self.inner, |piece| text.push_str(piece));
        text
    }
}

/// Unescapes the inside of a JSON string literal that serde_json has already scanned, handing
/// the text to `push` in pieces. False when serde_json would refuse it as a string: the scan
/// lets unpaired surrogate escapes through, the string reader does not.
fn unescape(inner: &str, mut push: impl FnMut(&str)) -> bool {
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        push(&rest[..at]);
        let escape = &rest[at + 1..];
        let (ch, len) = match escape.as_bytes().first() {
            Some(b'"') => ('"', 1),
            Some(b'\\') => ('\\', 1),
            Some(b'/') => ('/', 1),
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => match unicode_escape(escape) {
                Some(found) => found,
                None => return false,
            },
            _ => return false,
        };
        push(ch.encode_utf8(&mut [0; 4]));
        rest = &escape[len..];
    }
    push(rest);
    true
}

/// The char of the `uXXXX` escape at the start of `escape` (a leading surrogate takes the
/// `\uXXXX` trailing one after it) and the length of the escape after its backslash.
fn unicode_escape(escape: &str) -> Option<(char, usize)> {
    let hex = |at: usize| {
        let digits = escape.get(at..at + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))?;
        u32::from_str_radix(digits, 16).ok()
    };
    let first = hex(1)?;
    if !(0xD800..=0xDBFF).contains(&first) {
        // A lone trailing surrogate is no char.
        return char::from_u32(first).map(|ch| (ch, 5));
    }
    if escape.get(5..7) != Some("\\u") {
        return None;
    }
    let second = hex(7)?;
    if !(0xDC00..=0xDFFF).contains(&second) {
        return None;
    }
    char::from_u32(0x1_0000 + ((first - 0xD800) << 10) + (second - 0xDC00)).map(|ch| (ch, 11))
}

/// Any JSON value, checked as `serde_json::Value` checks it (both go through
/// `deserialize_any`: string escapes, number range, nesting depth) and dropped. Allocates only
/// for a string with an escape.
#[derive(Debug)]
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<CheckedKey, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// The key `serde_json::Value` reads specially with the `raw_value` feature: an object whose
/// first key it is stands for the JSON text in its value. The typed path leaves it to `Value`.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// An object key of a [`Checked`] object.
struct CheckedKey;

impl<'de> Deserialize<'de> for CheckedKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckedKeyVisitor;
        impl Visitor<'_> for CheckedKeyVisitor {
            type Value = CheckedKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<CheckedKey, E> {
                if key == RAW_VALUE_TOKEN { Err(E::custom(LEFT_TO_VALUE)) } else { Ok(CheckedKey) }
            }
        }
        deserializer.deserialize_str(CheckedKeyVisitor)
    }
}

/// An object key without escapes (a key with one fails the typed parse).
struct Key<'a>(&'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key without escapes")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                if key == RAW_VALUE_TOKEN { Err(E::custom(LEFT_TO_VALUE)) } else { Ok(Key(key)) }
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The fields of an object that the typed path reads; every other field is [`Checked`].
trait Shape<'de>: Default {
    /// Reads the value of `key` when it is one of the shape's fields (the last of a repeated
    /// key wins, as in `Value`); false, the value unread, for any other key.
    fn field<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error>;
}

/// Implements [`Shape`] for a struct of `Option` fields, one per key.
macro_rules! shape {
    ($shape:ident { $($key:literal => $field:ident),* $(,)? }) => {
        impl<'de> Shape<'de> for $shape<'de> {
            fn field<A: MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
            ) -> Result<bool, A::Error> {
                match key {
                    $($key => self.$field = map.next_value()?,)*
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

/// A [`Shape`] read from a JSON object (anything else fails the typed parse).
struct Obj<T>(T);

impl<'de, T: Shape<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Shape<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj<T>, A::Error> {
                let mut shape = T::default();
                while let Some(Key(key)) = map.next_key()? {
                    if !shape.field(key, &mut map)? {
                        map.next_value::<Checked>()?;
                    }
                }
                Ok(Obj(shape))
            }
        }
        deserializer.deserialize_map(ObjVisitor(PhantomData))
    }
}

/// The first element of a JSON array, the rest [`Checked`]: the `Value` path reads
/// `choices[0]` only.
struct First<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for FirstVisitor<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First<T>, A::Error> {
                let first = seq.next_element()?;
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(First(first))
            }
        }
        deserializer.deserialize_seq(FirstVisitor(PhantomData))
    }
}

// ---- the shapes ----------------------------------------------------------------------------
//
// `null` reads as absent, as on the `Value` path; an `Option<Checked>` only says whether a
// field is there and not `null`.

#[derive(Default)]
struct ChatChunk<'a> {
    error: Option<Checked>,
    choices: Option<First<Obj<ChatChoice<'a>>>>,
    usage: Option<Obj<ChatUsage<'a>>>,
    timings: Option<Obj<Timings<'a>>>,
    /// llama-server's prompt processing report: such a chunk goes the `Value` way (a few per
    /// request, before the first token).
    prompt_progress: Option<Checked>,
}
shape!(ChatChunk {
    "error" => error,
    "choices" => choices,
    "usage" => usage,
    "timings" => timings,
    "prompt_progress" => prompt_progress,
});

#[derive(Default)]
struct ChatChoice<'a> {
    delta: Option<Obj<ChatDelta<'a>>>,
    /// A whole body's message (same fields as a delta).
    message: Option<Obj<ChatDelta<'a>>>,
    finish_reason: Option<Raw<'a>>,
    /// Token logprobs: a choice with any (not `null`) goes the `Value` way.
    logprobs: Option<Checked>,
}
shape!(ChatChoice {
    "delta" => delta,
    "message" => message,
    "finish_reason" => finish_reason,
    "logprobs" => logprobs,
});

#[derive(Default)]
struct ChatDelta<'a> {
    content: Option<Raw<'a>>,
    reasoning: Option<Raw<'a>>,
    reasoning_content: Option<Raw<'a>>,
    thinking: Option<Raw<'a>>,
    reasoning_details: Option<Vec<Obj<ReasoningDetail<'a>>>>,
    tool_calls: Option<Vec<Obj<ChatToolCall<'a>>>>,
}
shape!(ChatDelta {
    "content" => content,
    "reasoning" => reasoning,
    "reasoning_content" => reasoning_content,
    "thinking" => thinking,
    "reasoning_details" => reasoning_details,
    "tool_calls" => tool_calls,
});

#[derive(Default)]
struct ReasoningDetail<'a> {
    text: Option<Raw<'a>>,
    summary: Option<Raw<'a>>,
}
shape!(ReasoningDetail { "text" => text, "summary" => summary });

impl<'a> ReasoningDetail<'a> {
    fn text(&self) -> Option<JsonStr<'a>> {
        str_of(self.text).or_else(|| str_of(self.summary))
    }
}

#[derive(Default)]
struct ChatToolCall<'a> {
    index: Option<Raw<'a>>,
    id: Option<Raw<'a>>,
    function: Option<Obj<ChatFunction<'a>>>,
}
shape!(ChatToolCall { "index" => index, "id" => id, "function" => function });

#[derive(Default)]
struct ChatFunction<'a> {
    name: Option<Raw<'a>>,
    arguments: Option<Raw<'a>>,
}
shape!(ChatFunction { "name" => name, "arguments" => arguments });

impl ChatToolCall<'_> {
    fn function(&self) -> Option<&ChatFunction<'_>> {
        self.function.as_ref().map(|f| &f.0)
    }
}

/// OpenAI chat `usage`, read as [`crate::usage::from_openai_chat`] reads it.
#[derive(Default)]
struct ChatUsage<'a> {
    prompt_tokens: Option<Raw<'a>>,
    completion_tokens: Option<Raw<'a>>,
    prompt_tokens_details: Option<Obj<PromptDetails<'a>>>,
    completion_tokens_details: Option<Obj<CompletionDetails<'a>>>,
}
shape!(ChatUsage {
    "prompt_tokens" => prompt_tokens,
    "completion_tokens" => completion_tokens,
    "prompt_tokens_details" => prompt_tokens_details,
    "completion_tokens_details" => completion_tokens_details,
});

#[derive(Default)]
struct PromptDetails<'a> {
    cached_tokens: Option<Raw<'a>>,
}
shape!(PromptDetails { "cached_tokens" => cached_tokens });

#[derive(Default)]
struct CompletionDetails<'a> {
    reasoning_tokens: Option<Raw<'a>>,
}
shape!(CompletionDetails { "reasoning_tokens" => reasoning_tokens });

impl ChatUsage<'_> {
    fn usage(&self) -> Option<Usage> {
        Some(Usage {
            input_tokens: count_of(self.prompt_tokens)?,
            output_tokens: count_of(self.completion_tokens).unwrap_or(0),
            cache_read_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| count_of(d.0.cached_tokens))
                .unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| count_of(d.0.reasoning_tokens)),
            estimated: false,
        })
    }
}

/// llama.cpp `timings`, read as [`crate::usage::from_llama_timings`] reads them.
#[derive(Default)]
struct Timings<'a> {
    prompt_n: Option<Raw<'a>>,
    cache_n: Option<Raw<'a>>,
    predicted_n: Option<Raw<'a>>,
}
shape!(Timings { "prompt_n" => prompt_n, "cache_n" => cache_n, "predicted_n" => predicted_n });

impl Timings<'_> {
    fn usage(&self) -> Option<Usage> {
        let prompt = count_of(self.prompt_n)?;
        let cached = count_of(self.cache_n).unwrap_or(0);
        Some(Usage {
            input_tokens: prompt.saturating_add(cached),
            output_tokens: count_of(self.predicted_n).unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            reasoning_tokens: None,
            estimated: false,
        })
    }
}

#[derive(Default)]
struct ResponsesEvent<'a> {
    kind: Option<Raw<'a>>,
    delta: Option<Raw<'a>>,
    /// Token logprobs: OpenAI sends `[]` on every delta; a non-empty list goes the `Value` way.
    logprobs: Option<First<Checked>>,
}
shape!(ResponsesEvent { "type" => kind, "delta" => delta, "logprobs" => logprobs });

#[derive(Default)]
struct AnthropicEvent<'a> {
    kind: Option<Raw<'a>>,
    delta: Option<Obj<AnthropicDelta<'a>>>,
}
shape!(AnthropicEvent { "type" => kind, "delta" => delta });

#[derive(Default)]
struct AnthropicDelta<'a> {
    kind: Option<Raw<'a>>,
    text: Option<Raw<'a>>,
    thinking: Option<Raw<'a>>,
}
shape!(AnthropicDelta { "type" => kind, "text" => text, "thinking" => thinking });

#[derive(Default)]
struct OllamaLine<'a> {
    error: Option<Checked>,
    message: Option<Obj<OllamaMessage<'a>>>,
    done: Option<Raw<'a>>,
}
shape!(OllamaLine { "error" => error, "message" => message, "done" => done });

#[derive(Default)]
struct OllamaMessage<'a> {
    thinking: Option<Raw<'a>>,
    content: Option<Raw<'a>>,
    tool_calls: Option<Checked>,
}
shape!(OllamaMessage { "thinking" => thinking, "content" => content, "tool_calls" => tool_calls });

/// A type tag without escapes (one with an escape goes the `Value` way).
fn tag_of(raw: Option<Raw<'_>>) -> Option<&str> {
    str_of(raw).filter(|s| !s.escaped).map(|s| s.inner)
}

// ---- decoding ------------------------------------------------------------------------------

impl Decoder {
    /// Runs `f` with the buffer for unescaped strings lent out of the decoder.
    fn with_buf<R>(&mut self, f: impl FnOnce(&mut Self, &mut String) -> R) -> R {
        let mut buf = std::mem::take(&mut self.unescaped);
        let result = f(self, &mut buf);
        self.unescaped = buf;
        result
    }

    /// One OpenAI chat chunk, as [`Decoder::chat_chunk`] reads it; false (nothing done) when
    /// the typed path does not cover it.
    pub(crate) fn chat_fast(&mut self, data: &str, out: &mut Vec<Event>) -> bool {
        self.chat_typed(data, false, out)
    }

    /// A whole OpenAI chat body, as [`Decoder::chat_body`] reads it; false (nothing done) when
    /// the typed path does not cover it.
    pub(crate) fn chat_body_fast(&mut self, data: &str, out: &mut Vec<Event>) -> bool {
        self.chat_typed(data, true, out)
    }

    /// A chunk's `delta` (`body`: a whole body's `message`; its tool calls are numbered by
    /// position, as the `Value` path numbers them).
    fn chat_typed(&mut self, data: &str, body: bool, out: &mut Vec<Event>) -> bool {
        let Ok(Obj(chunk)) = serde_json::from_str::<Obj<ChatChunk<'_>>>(data) else {
            return false;
        };
        if chunk.error.is_some() || chunk.prompt_progress.is_some() {
            // In-band errors are classified from the whole value; progress reports are rare.
            return false;
        }
        let choice = chunk.choices.and_then(|c| c.0).map(|c| c.0);
        if choice.as_ref().is_some_and(|c| c.logprobs.is_some()) {
            // Token logprobs are read on the `Value` path (only when a caller asked for them).
            return false;
        }
        let delta = choice
            .as_ref()
            .and_then(|c| if body { c.message.as_ref() } else { c.delta.as_ref() })
            .map(|d| &d.0);
        // `reasoning` (vLLM, Ollama /v1, OpenRouter) wins over its deprecated duplicate.
        let reasoning = delta.and_then(|d| {
            str_of(d.reasoning)
                .or_else(|| str_of(d.reasoning_content))
                .or_else(|| str_of(d.thinking))
        });
        let details = match (reasoning, delta) {
            (None, Some(d)) => d.reasoning_details.as_deref().unwrap_or_default(),
            _ => &[],
        };
        let content = delta.and_then(|d| str_of(d.content));
        let tools = delta.and_then(|d| d.tool_calls.as_deref()).unwrap_or_default();
        // A body's arguments that are not a string (an object, `null`) go up as their JSON
        // text on the `Value` path.
        if body
            && tools.iter().any(|Obj(call)| {
                call.function().and_then(|f| f.arguments).is_some_and(|raw| !raw.0.starts_with('"'))
            })
        {
            return false;
        }
        let finish = choice.as_ref().and_then(|c| str_of(c.finish_reason));
        let failed = self.with_buf(|this, buf| {
            if let Some(r) = reasoning {
                this.reasoning(r.get(buf), out);
            } else {
                for text in details.iter().filter_map(|d| d.0.text()) {
                    this.reasoning(text.get(buf), out);
                }
            }
            if let Some(text) = content {
                this.text(text.get(buf), out);
            }
            for (position, Obj(call)) in tools.iter().enumerate() {
                let function = call.function();
                let index =
                    if body { position as u32 } else { count_of(call.index).unwrap_or(0) as u32 };
                this.tool(
                    index,
                    str_of(call.id).map(JsonStr::owned),
                    function.and_then(|f| str_of(f.name)).map(JsonStr::owned),
                    function
                        .and_then(|f| str_of(f.arguments))
                        .map(JsonStr::owned)
                        .unwrap_or_default(),
                    out,
                );
            }
            if let Some(reason) = finish {
                let reason = reason.get(buf);
                if let Some(error) = classify::classify_finish_reason(reason) {
                    this.fail(error, out);
                    return true;
                }
                this.finish = Some(finish_reason(reason));
            }
            false
        });
        if failed {
            return true;
        }
        if let Some(u) = chunk.usage.and_then(|u| u.0.usage()) {
            self.usage = Some(u);
        } else if self.usage.is_none()
            && let Some(u) = chunk.timings.and_then(|t| t.0.usage())
        {
            self.usage = Some(u);
        }
        true
    }

    /// A Responses text or reasoning delta, as [`Decoder::responses_event`] reads it; false
    /// (nothing done) for any other event.
    pub(crate) fn responses_fast(
        &mut self,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<Event>,
    ) -> bool {
        let Ok(Obj(event)) = serde_json::from_str::<Obj<ResponsesEvent<'_>>>(data) else {
            return false;
        };
        if event.logprobs.as_ref().is_some_and(|l| l.0.is_some()) {
            return false;
        }
        let kind = match str_of(event.kind) {
            Some(kind) if kind.escaped => return false,
            Some(kind) => kind.inner,
            None => name.unwrap_or_default(),
        };
        let reasoning = match kind {
            "response.output_text.delta" | "response.refusal.delta" => false,
            "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta"
            | "response.reasoning.delta" => true,
            _ => return false,
        };
        if let Some(delta) = str_of(event.delta) {
            self.with_buf(|this, buf| {
                if reasoning {
                    this.reasoning(delta.get(buf), out);
                } else {
                    this.text(delta.get(buf), out);
                }
            });
        }
        true
    }

    /// An Anthropic text or thinking delta, as [`Decoder::anthropic_event`] reads it; false
    /// (nothing done) for any other event.
    pub(crate) fn anthropic_fast(&mut self, data: &str, out: &mut Vec<Event>) -> bool {
        let Ok(Obj(event)) = serde_json::from_str::<Obj<AnthropicEvent<'_>>>(data) else {
            return false;
        };
        let Some(Obj(delta)) = event.delta else { return false };
        if tag_of(event.kind) != Some("content_block_delta") {
            return false;
        }
        let (thinking, text) = match tag_of(delta.kind) {
            Some("text_delta") => (false, str_of(delta.text)),
            Some("thinking_delta") => (true, str_of(delta.thinking)),
            _ => return false,
        };
        if let Some(text) = text {
            self.with_buf(|this, buf| {
                if thinking {
                    this.reasoning(text.get(buf), out);
                } else {
                    this.anthropic_text(text.get(buf), out);
                }
            });
        }
        true
    }

    /// An Ollama line before the last, without tool calls, as [`Decoder::ollama_chunk`] reads
    /// it; false (nothing done) otherwise.
    pub(crate) fn ollama_fast(&mut self, data: &str, out: &mut Vec<Event>) -> bool {
        let Ok(Obj(line)) = serde_json::from_str::<Obj<OllamaLine<'_>>>(data) else {
            return false;
        };
        if line.error.is_some() || is_true(line.done) {
            return false;
        }
        let message = line.message.map(|m| m.0);
        if message.as_ref().is_some_and(|m| m.tool_calls.is_some()) {
            return false;
        }
        let thinking = message.as_ref().and_then(|m| str_of(m.thinking));
        let content = message.as_ref().and_then(|m| str_of(m.content));
        self.with_buf(|this, buf| {
            if let Some(t) = thinking {
                this.reasoning(t.get(buf), out);
            }
            if let Some(t) = content {
                this.text(t.get(buf), out);
            }
        });
        true
    }
}
