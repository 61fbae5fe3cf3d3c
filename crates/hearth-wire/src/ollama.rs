//! Ollama's native chat API (`POST /api/chat`): request and the NDJSON response lines.
//!
//! The stream is NDJSON, not SSE: split it with [`crate::ndjson::NdjsonDecoder`] and parse each
//! line as a [`ChatChunk`]. The last line has `done: true` and the metrics; an error after
//! HTTP 200 arrives as a line `{"error":"…"}`, which parses as a chunk with `error` set.
//! Every struct keeps the fields it does not name in `extra`. A known optional field that was
//! `null` comes back absent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// A request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name (`qwen3:8b`).
    pub model: String,
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Whether to stream NDJSON lines; Ollama's default is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Thinking: a bool, or a level (`"low"`, `"medium"`, `"high"`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Tool definitions (chat-completions shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// `"json"` or a JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Runner options such as `num_ctx`; changing load options reloads the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Extra>,
    /// How long the model stays loaded (`"5m"`, seconds, `0` to unload, `-1` to pin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<Value>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `think` of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Think {
    /// On or off.
    Enabled(bool),
    /// An effort level.
    Level(String),
}

/// A message of a request, or of a response line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    #[serde(default)]
    pub role: String,
    /// Answer text; `""` on thinking and tool-call lines.
    #[serde(default)]
    pub content: String,
    /// Thinking text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Tool calls, each complete in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Base64 images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// The tool a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool call; the id is missing in older builds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, when the build sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function called.
    pub function: ToolCallFunction,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The function of a tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Position among the calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Function name.
    pub name: String,
    /// Arguments as a JSON object (not a string, unlike chat completions).
    #[serde(default)]
    pub arguments: Value,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One NDJSON line of a response (or the whole response when `stream` is false).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Model name.
    #[serde(default)]
    pub model: String,
    /// RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// What this line adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// True on the last line.
    #[serde(default)]
    pub done: bool,
    /// `stop`, `length`, `load`, `unload`, on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Total time in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<u64>,
    /// Model load time in nanoseconds; large after a cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<u64>,
    /// Prompt tokens; absent when 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    /// Prompt evaluation time in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<u64>,
    /// Generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    /// Generation time in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<u64>,
    /// An in-band error (`{"error":"…"}` with HTTP 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The request body as hearth sends it, borrowed from the canonical request.
pub mod out {
    use std::borrow::Cow;

    use serde::Serialize;
    use serde_json::Value;

    use crate::Fields;
    use crate::openai_chat::out::Tool;

    /// `POST /api/chat`.
    #[derive(Debug, Serialize)]
    pub struct Request<'a> {
        /// Model name.
        pub model: &'a str,
        /// The conversation.
        pub messages: Vec<Message<'a>>,
        /// NDJSON lines or one body.
        pub stream: bool,
        /// How long the model stays loaded.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub keep_alive: Option<&'a Value>,
        /// Thinking on, off or a level.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub think: Option<Cow<'a, Value>>,
        /// Runner options (`num_ctx`, `num_predict`, sampling).
        pub options: Fields<'a>,
        /// Tool definitions (chat-completions shape).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tools: Option<Vec<Tool<'a>>>,
        /// `"json"` or a JSON Schema.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub format: Option<Cow<'a, Value>>,
    }

    /// One message.
    #[derive(Debug, Serialize)]
    pub struct Message<'a> {
        /// `system`, `user`, `assistant` or `tool`.
        pub role: &'static str,
        /// Its text.
        pub content: Cow<'a, str>,
        /// Base64 images (no `data:` prefix).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub images: Vec<&'a str>,
        /// An assistant message's calls.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub tool_calls: Vec<ToolCall<'a>>,
        /// The tool a `tool` message answers for.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_name: Option<&'a str>,
    }

    impl<'a> Message<'a> {
        /// A message of text only.
        pub fn text(role: &'static str, content: impl Into<Cow<'a, str>>) -> Self {
            Message {
                role,
                content: content.into(),
                images: Vec::new(),
                tool_calls: Vec::new(),
                tool_name: None,
            }
        }
    }

    /// A call: `{"function": {"name", "arguments": {…}}}` (arguments an object, not a text).
    #[derive(Debug, Serialize)]
    pub struct ToolCall<'a> {
        /// The function called.
        pub function: FunctionCall<'a>,
    }

    /// `function` of a call.
    #[derive(Debug, Serialize)]
    pub struct FunctionCall<'a> {
        /// Its name.
        pub name: &'a str,
        /// Its arguments.
        pub arguments: Value,
    }
}
