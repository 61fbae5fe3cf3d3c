//! Anthropic Messages API (`POST /v1/messages`): request, response and stream events, as
//! spoken by Anthropic and by the Anthropic-compatible local servers.
//!
//! Every struct keeps the fields it does not name in `extra`. Content blocks, deltas and stream
//! events whose `type` hearth does not model, or whose shape does not match, are kept whole in
//! an `Other` variant. Thinking blocks keep their `signature` byte for byte, since Anthropic
//! rejects edited ones. A known optional field that was `null` comes back absent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// SSE event name and `type` of a keep-alive.
pub const EVENT_PING: &str = "ping";
/// SSE event name and `type` of the terminal event.
pub const EVENT_MESSAGE_STOP: &str = "message_stop";

/// A request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// Model id.
    pub model: String,
    /// The conversation, alternating `user` and `assistant`.
    pub messages: Vec<Message>,
    /// Output token limit (required by Anthropic; llama.cpp defaults it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// System prompt: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Whether to stream events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Tool definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `{"type":"auto"|"any"|"tool"|"none", …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Extended thinking: `{"type":"enabled","budget_tokens":N}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ThinkingConfig>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `thinking` of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThinkingConfig {
    /// `enabled`, `disabled` or `adaptive`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Thinking token budget, below `max_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Tool name.
    pub name: String,
    /// What the tool does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Every other field (`type` of server tools, `cache_control`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One message of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    /// A string or content blocks.
    pub content: Content,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message or system content: a plain string or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<ContentBlock>),
}

/// One content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContentBlock {
    /// Text.
    #[serde(rename = "text")]
    Text(TextBlock),
    /// Extended thinking with its signature.
    #[serde(rename = "thinking")]
    Thinking(ThinkingBlock),
    /// Encrypted thinking.
    #[serde(rename = "redacted_thinking")]
    RedactedThinking(RedactedThinkingBlock),
    /// A tool call.
    #[serde(rename = "tool_use")]
    ToolUse(ToolUseBlock),
    /// A tool result, in a user message.
    #[serde(rename = "tool_result")]
    ToolResult(ToolResultBlock),
    /// Any other block (`image`, `document`, server tools), kept whole (its `type` included).
    #[serde(untagged)]
    Other(Extra),
}

/// A text block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Every other field (`citations`, `cache_control`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A thinking block; pass it back unmodified while a tool loop is in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    /// The thinking text.
    pub thinking: String,
    /// Opaque signature; local servers send none or `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A redacted thinking block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RedactedThinkingBlock {
    /// Encrypted thinking.
    pub data: String,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool call block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolUseBlock {
    /// Call id (`toolu_…`).
    pub id: String,
    /// Tool name.
    pub name: String,
    /// The input, a JSON object (not a string); `{}` at `content_block_start`.
    #[serde(default)]
    pub input: Value,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool result block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolResultBlock {
    /// The call it answers.
    pub tool_use_id: String,
    /// A string or content blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A non-streaming response, and the `message` of `message_start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// Message id (`msg_…`).
    #[serde(default)]
    pub id: String,
    /// `message`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Content blocks; empty in `message_start`.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<String>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage. `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens, thinking included; cumulative in `message_delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One stream event, the `data` of one SSE event (whose `event:` repeats the `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// The message started; carries usage so far.
    #[serde(rename = "message_start")]
    MessageStart(MessageStartEvent),
    /// A content block started.
    #[serde(rename = "content_block_start")]
    ContentBlockStart(ContentBlockStartEvent),
    /// A piece of a content block.
    #[serde(rename = "content_block_delta")]
    ContentBlockDelta(ContentBlockDeltaEvent),
    /// A content block ended.
    #[serde(rename = "content_block_stop")]
    ContentBlockStop(ContentBlockStopEvent),
    /// Stop reason and cumulative usage.
    #[serde(rename = "message_delta")]
    MessageDelta(MessageDeltaEvent),
    /// Terminal: the message is complete.
    #[serde(rename = "message_stop")]
    MessageStop(EmptyEvent),
    /// Keep-alive.
    #[serde(rename = "ping")]
    Ping(EmptyEvent),
    /// Terminal: an error after HTTP 200 (such as `overloaded_error`).
    #[serde(rename = "error")]
    Error(ErrorEvent),
    /// Any other event, kept whole (its `type` included).
    #[serde(untagged)]
    Other(Extra),
}

/// `message_start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageStartEvent {
    /// The message, with empty content.
    pub message: MessagesResponse,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockStartEvent {
    /// Block index.
    pub index: u32,
    /// The block, with empty text, thinking or input.
    pub content_block: ContentBlock,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `content_block_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockDeltaEvent {
    /// Block index.
    pub index: u32,
    /// The piece.
    pub delta: BlockDelta,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The piece carried by `content_block_delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BlockDelta {
    /// Answer text.
    #[serde(rename = "text_delta")]
    Text {
        /// The text piece.
        text: String,
        /// Every other field, kept verbatim.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Thinking text.
    #[serde(rename = "thinking_delta")]
    Thinking {
        /// The thinking piece.
        thinking: String,
        /// Every other field, kept verbatim.
        #[serde(flatten)]
        extra: Extra,
    },
    /// The thinking block's signature, just before `content_block_stop`.
    #[serde(rename = "signature_delta")]
    Signature {
        /// The signature.
        signature: String,
        /// Every other field, kept verbatim.
        #[serde(flatten)]
        extra: Extra,
    },
    /// A piece of tool input JSON; may be empty.
    #[serde(rename = "input_json_delta")]
    InputJson {
        /// The JSON piece.
        partial_json: String,
        /// Every other field, kept verbatim.
        #[serde(flatten)]
        extra: Extra,
    },
    /// Any other delta, kept whole (its `type` included).
    #[serde(untagged)]
    Other(Extra),
}

/// `content_block_stop`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentBlockStopEvent {
    /// Block index.
    pub index: u32,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDeltaEvent {
    /// Stop reason and sequence.
    #[serde(default)]
    pub delta: MessageDelta,
    /// Cumulative usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `delta` of `message_delta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageDelta {
    /// Why generation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An event with no fields of its own (`message_stop`, `ping`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmptyEvent {
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `error` event, and the body of an error response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The error.
    pub error: ErrorDetail,
    /// Every other field (`request_id`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `{"type","message"}` of an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `overloaded_error`, `invalid_request_error`, `rate_limit_error`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

// === impl StreamEvent ===

impl StreamEvent {
    /// Whether the event ends the stream (`message_stop` or `error`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::MessageStop(_) | Self::Error(_))
    }
}

/// The request body as hearth sends it, borrowed from the canonical request.
pub mod out {
    use std::borrow::Cow;

    use serde::Serialize;
    use serde::ser::{SerializeMap, Serializer};
    use serde_json::{Map, Value};

    /// `POST /v1/messages`, built from the canonical request.
    #[derive(Debug, Serialize)]
    pub struct Request<'a> {
        /// Model id.
        pub model: &'a str,
        /// The system prompt.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub system: Option<Cow<'a, str>>,
        /// Alternating user and assistant turns.
        pub messages: Vec<Message<'a>>,
        /// The output cap.
        pub max_tokens: u64,
        /// Sampling temperature.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        /// Nucleus sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_p: Option<f64>,
        /// Stop sequences.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_sequences: Option<&'a [String]>,
        /// Tool definitions.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tools: Option<Vec<Tool<'a>>>,
        /// Tool choice.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice<'a>>,
        /// `{"format": {"type": "json_schema", "schema": …}}`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub output_config: Option<OutputConfig<'a>>,
        /// Extended thinking: `{"type": "enabled", "budget_tokens": N}` or adaptive.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub thinking: Option<Value>,
        /// SSE or one body.
        pub stream: bool,
    }

    /// One turn.
    #[derive(Debug, Serialize)]
    pub struct Message<'a> {
        /// `user` or `assistant`.
        pub role: &'static str,
        /// Its blocks.
        pub content: Vec<Block<'a>>,
    }

    /// A content block.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Block<'a> {
        /// Text.
        Text {
            /// The text.
            text: Cow<'a, str>,
        },
        /// An image.
        Image {
            /// Where its bytes are.
            source: ImageSource<'a>,
        },
        /// Signed reasoning, replayed as it came.
        Thinking {
            /// The reasoning text.
            thinking: &'a str,
            /// Anthropic's signature over it.
            signature: &'a str,
        },
        /// A call the model made.
        ToolUse {
            /// The call id.
            id: &'a str,
            /// The tool.
            name: &'a str,
            /// Its input, a JSON object.
            input: Value,
        },
        /// What a call returned.
        ToolResult {
            /// The call it answers.
            tool_use_id: &'a str,
            /// Text, or text and image blocks.
            content: ToolResultContent<'a>,
        },
    }

    /// `content` of a tool result.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum ToolResultContent<'a> {
        /// Text.
        Text(Cow<'a, str>),
        /// Blocks (text and images).
        Blocks(Vec<Block<'a>>),
    }

    /// `source` of an image block.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ImageSource<'a> {
        /// Inline bytes.
        Base64 {
            /// `image/png`, …
            media_type: &'a str,
            /// The base64 text.
            data: &'a str,
        },
        /// By URL.
        Url {
            /// The URL.
            url: &'a str,
        },
    }

    /// A client tool.
    #[derive(Debug, Serialize)]
    pub struct Tool<'a> {
        /// Its name.
        pub name: &'a str,
        /// Never sent as `null`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<&'a str>,
        /// JSON Schema of its input.
        pub input_schema: &'a Value,
    }

    /// `tool_choice`.
    #[derive(Debug)]
    pub enum ToolChoice<'a> {
        /// `{"type": "auto" | "none" | "any"}`.
        Mode(&'static str),
        /// `{"type": "tool", "name": …}`.
        Tool(&'a str),
    }

    impl Serialize for ToolChoice<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self {
                ToolChoice::Mode(mode) => {
                    let mut map = serializer.serialize_map(Some(1))?;
                    map.serialize_entry("type", mode)?;
                    map.end()
                }
                ToolChoice::Tool(name) => {
                    let mut map = serializer.serialize_map(Some(2))?;
                    map.serialize_entry("type", "tool")?;
                    map.serialize_entry("name", name)?;
                    map.end()
                }
            }
        }
    }

    /// `output_config` of a request.
    #[derive(Debug, Serialize)]
    pub struct OutputConfig<'a> {
        /// The output format.
        pub format: JsonSchemaFormat<'a>,
    }

    /// `{"type": "json_schema", "schema": …}`.
    #[derive(Debug, Serialize)]
    pub struct JsonSchemaFormat<'a> {
        /// Always `json_schema`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The schema.
        pub schema: &'a Value,
    }

    /// A Messages caller's own body, sent up as it came: every member in its place, with
    /// `model`, `max_tokens` and `stream` set (replaced where the caller sent them, else added
    /// at the end in that order).
    #[derive(Debug)]
    pub struct Native<'a> {
        /// The body as the caller sent it.
        pub body: &'a Map<String, Value>,
        /// The model id to call.
        pub model: &'a str,
        /// The output cap.
        pub max_tokens: u64,
        /// SSE or one body.
        pub stream: bool,
        /// `thinking` for a body that has none (a configured thinking level); a caller's own
        /// `thinking` is kept.
        pub thinking: Option<&'a Value>,
    }

    impl Serialize for Native<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let set = ["model", "max_tokens", "stream"];
            let thinking = self.thinking.filter(|_| !self.body.contains_key("thinking"));
            let missing = set.iter().filter(|k| !self.body.contains_key(**k)).count()
                + usize::from(thinking.is_some());
            let mut map = serializer.serialize_map(Some(self.body.len() + missing))?;
            let put = |map: &mut S::SerializeMap, key: &str| match key {
                "model" => map.serialize_entry(key, self.model),
                "max_tokens" => map.serialize_entry(key, &self.max_tokens),
                _ => map.serialize_entry(key, &self.stream),
            };
            for (k, v) in self.body {
                if set.contains(&k.as_str()) {
                    put(&mut map, k)?;
                } else {
                    map.serialize_entry(k, v)?;
                }
            }
            for key in set {
                if !self.body.contains_key(key) {
                    put(&mut map, key)?;
                }
            }
            if let Some(t) = thinking {
                map.serialize_entry("thinking", t)?;
            }
            map.end()
        }
    }
}
