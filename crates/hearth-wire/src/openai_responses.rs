//! OpenAI Responses API (`POST /v1/responses`): request, response object and stream events, as
//! spoken by OpenAI, vLLM, LM Studio, Ollama and llama.cpp.
//!
//! Every struct keeps the fields it does not name in `extra`. Output items and stream events
//! whose `type` hearth does not model, or whose shape does not match, are kept whole in an
//! `Other` variant, so they relay unchanged. A known optional field that was `null` comes back
//! absent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// `type` of the event that carries a piece of answer text.
pub const EVENT_OUTPUT_TEXT_DELTA: &str = "response.output_text.delta";
/// `type` of the terminal success event.
pub const EVENT_COMPLETED: &str = "response.completed";
/// `type` of the terminal failure event.
pub const EVENT_FAILED: &str = "response.failed";

/// A request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    /// Model id.
    pub model: String,
    /// A string, or a list of input items (messages, function calls and outputs, reasoning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<ResponseInput>,
    /// System-level instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Whether to stream events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Output token limit, reasoning included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Reasoning effort and summary settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ReasoningConfig>,
    /// Tool definitions (flat: `{"type":"function","name",…}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Server-side conversation state; backend-local, so never failed over as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// Whether the server stores the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Extra output to include, such as `reasoning.encrypted_content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `input` of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponseInput {
    /// A single user message.
    Text(String),
    /// Input items, kept as JSON.
    Items(Vec<Value>),
}

/// `reasoning` of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningConfig {
    /// `none`, `minimal`, `low`, `medium`, `high`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// `auto`, `concise` or `detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The response object, returned whole or carried by `response.*` lifecycle events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Response id (`resp_…`).
    #[serde(default)]
    pub id: String,
    /// `response`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// `queued`, `in_progress`, `completed`, `incomplete`, `failed`, `cancelled`.
    #[serde(default)]
    pub status: String,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Output items in order.
    #[serde(default)]
    pub output: Vec<OutputItem>,
    /// Token usage, on terminal responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ResponseUsage>,
    /// `{"code","message"}` when `status` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponseError>,
    /// `{"reason"}` when `status` is `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_details: Option<Value>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `error` of a failed response, and the body of a standalone `error` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseError {
    /// Machine-readable code, such as `context_length_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage. `input_tokens` includes cached; `output_tokens` includes reasoning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseUsage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// `{"cached_tokens"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens_details: Option<Value>,
    /// `{"reasoning_tokens"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<Value>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OutputItem {
    /// An assistant message.
    #[serde(rename = "message")]
    Message(MessageItem),
    /// Reasoning: summaries, raw text (open-weight servers), encrypted content.
    #[serde(rename = "reasoning")]
    Reasoning(ReasoningItem),
    /// A function call.
    #[serde(rename = "function_call")]
    FunctionCall(FunctionCallItem),
    /// Any other item, kept whole (its `type` included).
    #[serde(untagged)]
    Other(Extra),
}

/// An assistant message item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageItem {
    /// Item id (`msg_…`).
    #[serde(default)]
    pub id: String,
    /// `in_progress` or `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// `output_text` and `refusal` parts.
    #[serde(default)]
    pub content: Vec<ContentPart>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A content part of a message or reasoning item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// `output_text`, `refusal`, `reasoning_text`, `summary_text`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The text, for text parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Every other field (`annotations`, `logprobs`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reasoning item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReasoningItem {
    /// Item id (`rs_…`).
    #[serde(default)]
    pub id: String,
    /// `summary_text` parts.
    #[serde(default)]
    pub summary: Vec<ContentPart>,
    /// `reasoning_text` parts (vLLM, LM Studio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentPart>>,
    /// Opaque state to pass back; Ollama puts plaintext here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A function call item. Results refer to `call_id`, not `id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallItem {
    /// Item id (`fc_…`).
    #[serde(default)]
    pub id: String,
    /// Call id (`call_…`).
    #[serde(default)]
    pub call_id: String,
    /// Function name.
    pub name: String,
    /// Arguments as a JSON string.
    #[serde(default)]
    pub arguments: String,
    /// `in_progress` or `completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One stream event, the `data` of one SSE event (whose `event:` repeats the `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// The response was created.
    #[serde(rename = "response.created")]
    Created(LifecycleEvent),
    /// Background response queued.
    #[serde(rename = "response.queued")]
    Queued(LifecycleEvent),
    /// Generation is in progress.
    #[serde(rename = "response.in_progress")]
    InProgress(LifecycleEvent),
    /// Terminal: success.
    #[serde(rename = "response.completed")]
    Completed(LifecycleEvent),
    /// Terminal: stopped early (`incomplete_details.reason`).
    #[serde(rename = "response.incomplete")]
    Incomplete(LifecycleEvent),
    /// Terminal: failure (`response.error`).
    #[serde(rename = "response.failed")]
    Failed(LifecycleEvent),
    /// An output item started.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded(OutputItemEvent),
    /// An output item finished; take reasoning items from here.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone(OutputItemEvent),
    /// A content part started.
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded(ContentPartEvent),
    /// A content part finished.
    #[serde(rename = "response.content_part.done")]
    ContentPartDone(ContentPartEvent),
    /// A piece of answer text.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta(TextDeltaEvent),
    /// The whole answer text of a part.
    #[serde(rename = "response.output_text.done")]
    OutputTextDone(TextDoneEvent),
    /// A piece of raw reasoning text.
    #[serde(rename = "response.reasoning_text.delta")]
    ReasoningTextDelta(TextDeltaEvent),
    /// The whole raw reasoning text.
    #[serde(rename = "response.reasoning_text.done")]
    ReasoningTextDone(TextDoneEvent),
    /// A piece of reasoning summary (Ollama streams its thinking here).
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta(TextDeltaEvent),
    /// The whole reasoning summary text.
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone(TextDoneEvent),
    /// A piece of function call arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta(TextDeltaEvent),
    /// The whole function call arguments.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone(ArgumentsDoneEvent),
    /// A standalone error.
    #[serde(rename = "error")]
    Error(ErrorEvent),
    /// Any other event, kept whole (its `type` included).
    #[serde(untagged)]
    Other(Extra),
}

/// A lifecycle event carrying the whole response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// The response so far.
    pub response: Response,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.output_item.added` / `.done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputItemEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// Index of the item in `output`.
    #[serde(default)]
    pub output_index: u32,
    /// The item.
    pub item: OutputItem,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.content_part.added` / `.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentPartEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// The item the part belongs to.
    #[serde(default)]
    pub item_id: String,
    /// Index of the item in `output`.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the part in the item's content.
    #[serde(default)]
    pub content_index: u32,
    /// The part.
    pub part: ContentPart,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `*.delta` event: a piece of text for one item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextDeltaEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// The item the text belongs to.
    #[serde(default)]
    pub item_id: String,
    /// Index of the item in `output`.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the content part (text events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_index: Option<u32>,
    /// Index of the summary part (summary events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_index: Option<u32>,
    /// The text piece.
    pub delta: String,
    /// Every other field (`logprobs`, `obfuscation`), kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `*.done` text event: the whole text of one part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextDoneEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// The item the text belongs to.
    #[serde(default)]
    pub item_id: String,
    /// Index of the item in `output`.
    #[serde(default)]
    pub output_index: u32,
    /// Index of the content part (text events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_index: Option<u32>,
    /// Index of the summary part (summary events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_index: Option<u32>,
    /// The whole text.
    pub text: String,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `response.function_call_arguments.done`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArgumentsDoneEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// The function call item.
    #[serde(default)]
    pub item_id: String,
    /// Index of the item in `output`.
    #[serde(default)]
    pub output_index: u32,
    /// The whole argument string.
    pub arguments: String,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A standalone `error` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// Position in the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// Machine-readable code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// The parameter at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<Value>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

// === impl StreamEvent ===

impl StreamEvent {
    /// Whether the event ends the stream (`completed`, `incomplete`, `failed`, `error`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed(_) | Self::Incomplete(_) | Self::Failed(_) | Self::Error(_))
    }
}

/// The request body as hearth sends it, borrowed from the canonical request.
pub mod out {
    use std::borrow::Cow;

    use serde::Serialize;
    use serde::ser::{SerializeMap, Serializer};
    use serde_json::Value;

    use crate::Fields;

    /// `POST /responses`.
    #[derive(Debug, Serialize)]
    pub struct Request<'a> {
        /// Model id.
        pub model: &'a str,
        /// The system prompt.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub instructions: Option<Cow<'a, str>>,
        /// The conversation as input items.
        pub input: Vec<Item<'a>>,
        /// The output cap.
        pub max_output_tokens: u64,
        /// Sampling temperature (a configured `params.temperature` as given).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub temperature: Option<Cow<'a, Value>>,
        /// Nucleus sampling.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_p: Option<Cow<'a, Value>>,
        /// Function tools, flat.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tools: Option<Vec<Tool<'a>>>,
        /// Tool choice.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice<'a>>,
        /// `{"format": …}`: structured output.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub text: Option<TextConfig>,
        /// SSE or one body.
        pub stream: bool,
        /// Configured `params` and the caller's pass-through fields.
        #[serde(flatten)]
        pub extra: Fields<'a>,
        /// Alternatives per token.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub top_logprobs: Option<u32>,
        /// Extra output, such as `message.output_text.logprobs`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub include: Option<Vec<Cow<'a, Value>>>,
    }

    impl Request<'_> {
        /// Whether the struct writes `key` itself: such a key is never added to `extra`.
        pub fn writes(&self, key: &str) -> bool {
            match key {
                "model" | "input" | "max_output_tokens" | "stream" => true,
                "instructions" => self.instructions.is_some(),
                "temperature" => self.temperature.is_some(),
                "top_p" => self.top_p.is_some(),
                "tools" => self.tools.is_some(),
                "tool_choice" => self.tool_choice.is_some(),
                "text" => self.text.is_some(),
                "top_logprobs" => self.top_logprobs.is_some(),
                "include" => self.include.is_some(),
                _ => false,
            }
        }
    }

    /// `text` of a request.
    #[derive(Debug, Serialize)]
    pub struct TextConfig {
        /// `{"type": "json_schema", "name", "schema", …}` and the like.
        pub format: Value,
    }

    /// One input item.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Item<'a> {
        /// A message.
        Message {
            /// `user` or `assistant`.
            role: &'a str,
            /// Its parts.
            content: Vec<Part<'a>>,
        },
        /// A call the model made.
        FunctionCall {
            /// The call id.
            call_id: &'a str,
            /// The function.
            name: &'a str,
            /// Its arguments, a JSON text.
            arguments: &'a str,
        },
        /// What a call returned.
        FunctionCallOutput {
            /// The call it answers.
            call_id: &'a str,
            /// Text, or parts where the tool returned images too.
            output: Output<'a>,
        },
    }

    /// `output` of a function call output.
    #[derive(Debug, Serialize)]
    #[serde(untagged)]
    pub enum Output<'a> {
        /// Text.
        Text(Cow<'a, str>),
        /// `input_text` and `input_image` parts.
        Parts(Vec<Part<'a>>),
    }

    /// A content part.
    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Part<'a> {
        /// Caller text.
        InputText {
            /// The text.
            text: &'a str,
        },
        /// A caller image by URL (`data:` URLs included).
        InputImage {
            /// The URL.
            image_url: &'a str,
        },
        /// Text the model wrote earlier.
        OutputText {
            /// The text.
            text: Cow<'a, str>,
        },
    }

    /// A function tool: `{"type": "function", "name", "description"?, "parameters"}`.
    #[derive(Debug, Serialize)]
    pub struct Tool<'a> {
        /// Always `function`.
        #[serde(rename = "type")]
        pub kind: &'static str,
        /// Its name.
        pub name: &'a str,
        /// Never sent as `null`.
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
        /// `{"type": "function", "name": …}`.
        Function(&'a str),
    }

    impl Serialize for ToolChoice<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self {
                ToolChoice::Mode(mode) => serializer.serialize_str(mode),
                ToolChoice::Function(name) => {
                    let mut map = serializer.serialize_map(Some(2))?;
                    map.serialize_entry("type", "function")?;
                    map.serialize_entry("name", name)?;
                    map.end()
                }
            }
        }
    }
}
