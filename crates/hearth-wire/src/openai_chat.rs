//! OpenAI Chat Completions (`POST /v1/chat/completions`) as spoken by OpenAI and by local
//! servers (llama.cpp, vLLM, SGLang, LM Studio, Ollama `/v1`, mlx, LiteLLM).
//!
//! Parsing is lenient: fields that some server omits are optional or defaulted, every server's
//! reasoning field (`reasoning_content`, `reasoning`) has a place, and every struct keeps the
//! fields it does not name in `extra`, so they serialize back out. A known optional field that
//! was `null` comes back absent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// `object` of a streamed chunk.
pub const OBJECT_CHUNK: &str = "chat.completion.chunk";
/// `object` of a non-streaming response.
pub const OBJECT_COMPLETION: &str = "chat.completion";

/// A request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model id as the server knows it.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Whether to stream the answer as SSE chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streaming options, such as `include_usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Output token limit (legacy name; local servers read this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Output token limit (current OpenAI name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":…}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Reasoning effort (`"none"`, `"low"`, `"medium"`, `"high"`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// End-user id; hearth reads it as a session key for agent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `stream_options` of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final usage chunk with empty `choices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One message of a request, or the message of a non-streaming response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text or content parts; `None` for an assistant message with only tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    /// Optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Reasoning text (llama.cpp, SGLang, LiteLLM, DeepSeek, older vLLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Reasoning text (newer vLLM, Ollama `/v1`, LM Studio, mlx, OpenRouter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts (`text`, `image_url`, …).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// `text`, `image_url`, `input_audio`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `function`, `custom`, … (empty when the client sent none; the surface refuses that).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The function (absent on `custom` and other non-function tools).
    #[serde(default)]
    pub function: FunctionDefinition,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The function of a tool definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// Function name.
    pub name: String,
    /// What the function does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A complete tool call in a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id; some servers omit it or send `""`.
    #[serde(default)]
    pub id: String,
    /// Always `function` today; some servers omit it.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function called (absent on a `custom` tool's call, whose `custom` is in `extra`).
    #[serde(default)]
    pub function: FunctionCall,
    /// Every other field (Ollama's `index`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The function of a complete tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string (not validated).
    #[serde(default)]
    pub arguments: String,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A non-streaming response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// Response id.
    #[serde(default)]
    pub id: String,
    /// [`OBJECT_COMPLETION`].
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The answers.
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend build (llama.cpp) or configuration fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// llama.cpp timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One answer of a non-streaming response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    pub message: ChatMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`, or a server's own value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Every other field (vLLM `stop_reason`, SGLang `matched_stop`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One streamed chunk, the `data` of one SSE event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Response id, the same in every chunk.
    #[serde(default)]
    pub id: String,
    /// [`OBJECT_CHUNK`] (mlx sends `chat.completion` on the usage chunk).
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Deltas; empty on the usage chunk.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token usage, on the last chunk when requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Backend build or configuration fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// llama.cpp timings (on any chunk, usually the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
    /// Every other field (OpenAI `obfuscation`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One choice of a streamed chunk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: ChatDelta,
    /// Set on the chunk that ends the choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Every other field (`logprobs`, vLLM `stop_reason`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The increment carried by one streamed choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatDelta {
    /// `assistant`, usually only on the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Answer text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text (llama.cpp, SGLang, LiteLLM, older vLLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Reasoning text (newer vLLM, Ollama `/v1`, LM Studio, mlx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Tool call fragments, concatenated by `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Refusal text (OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A fragment of a streamed tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call this fragment belongs to.
    #[serde(default)]
    pub index: u32,
    /// Call id, on the first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on the first fragment.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and argument fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The function part of a tool call fragment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// Function name, on the first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The next piece of the JSON argument string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage. `prompt_tokens` includes cached tokens; `completion_tokens` includes reasoning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Cached prompt tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Reasoning tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    /// Tokens spent on reasoning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// llama.cpp `timings`. Context used is `prompt_n + cache_n + predicted_n`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens reused from the KV cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_n: Option<u64>,
    /// Prompt tokens evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_n: Option<u64>,
    /// Prompt evaluation time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    /// Prompt evaluation speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_per_second: Option<f64>,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_n: Option<u64>,
    /// Generation time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ms: Option<f64>,
    /// Generation speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_per_second: Option<f64>,
    /// Every other field (`*_per_token_ms`, draft stats), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

// === impl ChatDelta ===

impl ChatDelta {
    /// The reasoning text of this delta, whichever field the server used.
    pub fn reasoning_text(&self) -> Option<&str> {
        self.reasoning.as_deref().or(self.reasoning_content.as_deref())
    }
}

// === impl ChatMessage ===

impl ChatMessage {
    /// The reasoning text of this message, whichever field the server used.
    pub fn reasoning_text(&self) -> Option<&str> {
        self.reasoning.as_deref().or(self.reasoning_content.as_deref())
    }
}

/// The request body as hearth sends it, borrowed from the canonical request.
pub mod out {
    use std::borrow::Cow;

    use serde::Serialize;
    use serde::ser::{SerializeMap, Serializer};
    use serde_json::Value;

    use crate::Fields;

    /// `POST /chat/completions`.
    #[derive(Debug, Serialize)]
    pub struct Request<'a> {
        /// Model id as the server knows it.
        pub model: &'a str,
        /// The conversation.
        pub messages: Vec<Message<'a>>,
        /// The output cap under the name the server reads (`max_tokens`,
        /// `max_completion_tokens`, or a `compat.maxTokensField`).
        #[serde(flatten)]
        pub cap: Cap<'a>,
        /// Sampling temperature (a configured `params.temperature` as given).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<Cow<'a, Value>>,
        /// Nucleus sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_p: Option<Cow<'a, Value>>,
        /// Stop sequences.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop: Option<Cow<'a, Value>>,
        /// Tool definitions.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tools: Option<Vec<Tool<'a>>>,
        /// Tool choice.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice<'a>>,
        /// Structured output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub response_format: Option<Cow<'a, Value>>,
        /// Token logprobs.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub logprobs: Option<bool>,
        /// Alternatives per token.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_logprobs: Option<u32>,
        /// SSE or one body.
        pub stream: bool,
        /// Ask for the final usage chunk.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stream_options: Option<StreamOptions>,
        /// Configured `params` and the caller's pass-through fields.
        #[serde(flatten)]
        pub extra: Fields<'a>,
    }

    impl Request<'_> {
        /// Whether the struct writes `key` itself (the cap's name aside): such a key is never
        /// added to `extra`.
        pub fn writes(&self, key: &str) -> bool {
            match key {
                "model" | "messages" | "stream" => true,
                "temperature" => self.temperature.is_some(),
                "top_p" => self.top_p.is_some(),
                "stop" => self.stop.is_some(),
                "tools" => self.tools.is_some(),
                "tool_choice" => self.tool_choice.is_some(),
                "response_format" => self.response_format.is_some(),
                "logprobs" => self.logprobs.is_some(),
                "top_logprobs" => self.top_logprobs.is_some(),
                "stream_options" => self.stream_options.is_some(),
                _ => false,
            }
        }
    }

    /// One member named at run time: `{"<field>": value}`.
    #[derive(Debug)]
    pub struct Cap<'a> {
        /// The member's name.
        pub field: &'a str,
        /// Its value.
        pub value: u64,
    }

    impl Serialize for Cap<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(1))?;
            map.serialize_entry(self.field, &self.value)?;
            map.end()
        }
    }

    /// `stream_options`.
    #[derive(Debug, Serialize)]
    pub struct StreamOptions {
        /// A last chunk with the usage.
        pub include_usage: bool,
    }

    /// One message.
    #[derive(Debug, Serialize)]
    pub struct Message<'a> {
        /// `system`, `developer`, `user`, `assistant` or `tool`.
        pub role: &'a str,
        /// Text or parts.
        pub content: Content<'a>,
        /// Reasoning replayed for servers that want it back.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reasoning_content: Option<&'a str>,
        /// An assistant message's calls.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_calls: Option<Vec<ToolCall<'a>>>,
        /// The call a `tool` message answers.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_call_id: Option<&'a str>,
        /// The tool's name (`compat.requiresToolResultName`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<&'a str>,
    }

    impl<'a> Message<'a> {
        /// A message of text only.
        pub fn text(role: &'a str, text: impl Into<Cow<'a, str>>) -> Self {
            Message {
                role,
                content: Content::Text(text.into()),
                reasoning_content: None,
                tool_calls: None,
                tool_call_id: None,
                name: None,
            }
        }
    }

    /// Message content.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum Content<'a> {
        /// A string.
        Text(Cow<'a, str>),
        /// Typed parts.
        Parts(Vec<Part<'a>>),
    }

    /// One content part.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Part<'a> {
        /// Text.
        Text {
            /// The text.
            text: Cow<'a, str>,
        },
        /// An image by URL (`data:` URLs included).
        ImageUrl {
            /// `{"url": …}`.
            image_url: ImageUrl<'a>,
        },
    }

    /// `image_url` of an image part.
    #[derive(Debug, Serialize)]
    pub struct ImageUrl<'a> {
        /// The URL.
        pub url: &'a str,
    }

    /// An assistant message's tool call.
    #[derive(Debug, Serialize)]
    pub struct ToolCall<'a> {
        /// The call id.
        pub id: &'a str,
        /// Always `function`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// Name and arguments.
        pub function: FunctionCall<'a>,
    }

    /// `function` of a tool call.
    #[derive(Debug, Serialize)]
    pub struct FunctionCall<'a> {
        /// The function's name.
        pub name: &'a str,
        /// Its arguments, a JSON text.
        pub arguments: &'a str,
    }

    /// A tool definition: `{"type": "function", "function": {…}}`.
    #[derive(Debug, Serialize)]
    pub struct Tool<'a> {
        /// Always `function`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// The function.
        pub function: Function<'a>,
    }

    /// A function as tools name it (also Ollama's and, flattened, Responses').
    #[derive(Debug, Serialize)]
    pub struct Function<'a> {
        /// Its name.
        pub name: &'a str,
        /// Never sent as `null`: llama-server answers "type must be string, but is null".
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<&'a str>,
        /// JSON Schema of its arguments.
        pub parameters: &'a Value,
    }

    /// `tool_choice`.
    #[derive(Debug)]
    pub enum ToolChoice<'a> {
        /// `"auto"`, `"none"` or `"required"`.
        Mode(&'static str),
        /// `{"type": "function", "function": {"name": …}}`.
        Function(&'a str),
    }

    impl Serialize for ToolChoice<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            #[derive(Serialize)]
            struct Named<'a> {
                name: &'a str,
            }
            match self {
                ToolChoice::Mode(mode) => serializer.serialize_str(mode),
                ToolChoice::Function(name) => {
                    let mut map = serializer.serialize_map(Some(2))?;
                    map.serialize_entry("type", "function")?;
                    map.serialize_entry("function", &Named { name })?;
                    map.end()
                }
            }
        }
    }
}
