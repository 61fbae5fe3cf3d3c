//! The canonical request: what one model call asks for, independent of the upstream API.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    Tool,
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// An image by URL (`data:` URLs included).
    Image {
        url: String,
    },
}

/// A tool call the assistant made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
}

/// Reasoning of an earlier assistant turn, for replay.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reasoning {
    pub text: String,
    /// Anthropic thinking signature, when the reasoning came from Anthropic.
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
    pub reasoning: Option<Reasoning>,
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the call this result answers.
    pub tool_call_id: Option<String>,
    /// For `Role::Tool`: the tool's name, when known.
    pub name: Option<String>,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![Part::Text(text.into())],
            reasoning: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Message { role: Role::Assistant, ..Message::user(text) }
    }

    /// All text parts joined.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let Part::Text(t) = part {
                out.push_str(t);
            }
        }
        out
    }

    pub fn is_text_only(&self) -> bool {
        self.content.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

/// A function tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// The shape the answer must have (chat `response_format`, Responses `text.format`, Anthropic
/// `output_config.format`, Ollama `format`).
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Plain text (the default; nothing is sent).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching `schema`.
    JsonSchema { name: String, description: Option<String>, schema: Value, strict: Option<bool> },
}

impl OutputFormat {
    /// From chat `response_format` (`{"type":"json_schema","json_schema":{name,schema,strict}}`).
    /// `Err((field under response_format, message))`.
    pub fn from_chat(value: &Value) -> Result<Self, (String, String)> {
        Self::parse(value, value.get("json_schema"), ".json_schema")
    }

    /// From Responses `text.format` (`{"type":"json_schema",name,schema,strict}`, flat).
    pub fn from_responses(value: &Value) -> Result<Self, (String, String)> {
        Self::parse(value, Some(value), "")
    }

    fn parse(value: &Value, spec: Option<&Value>, at: &str) -> Result<Self, (String, String)> {
        let kind = value.get("type").and_then(Value::as_str);
        match kind {
            Some("text") => Ok(OutputFormat::Text),
            Some("json_object") => Ok(OutputFormat::JsonObject),
            Some("json_schema") => {
                let Some(spec) = spec.filter(|s| s.is_object()) else {
                    return Err((at.to_owned(), "json_schema format needs its schema".to_owned()));
                };
                let Some(schema) = spec.get("schema").filter(|s| s.is_object()) else {
                    return Err((
                        format!("{at}.schema"),
                        "a json_schema format needs `schema` (an object)".to_owned(),
                    ));
                };
                Ok(OutputFormat::JsonSchema {
                    name: spec.get("name").and_then(Value::as_str).unwrap_or("response").to_owned(),
                    description: spec.get("description").and_then(Value::as_str).map(str::to_owned),
                    schema: schema.clone(),
                    strict: spec.get("strict").and_then(Value::as_bool),
                })
            }
            other => Err((
                ".type".to_owned(),
                format!(
                    "format type `{}` is not supported (text, json_object, json_schema)",
                    other.unwrap_or("?")
                ),
            )),
        }
    }

    /// As chat `response_format`.
    pub fn to_chat(&self) -> Value {
        match self {
            OutputFormat::Text => serde_json::json!({"type": "text"}),
            OutputFormat::JsonObject => serde_json::json!({"type": "json_object"}),
            OutputFormat::JsonSchema { name, description, schema, strict } => {
                let mut spec = Map::new();
                spec.insert("name".into(), Value::String(name.clone()));
                if let Some(d) = description {
                    spec.insert("description".into(), Value::String(d.clone()));
                }
                spec.insert("schema".into(), schema.clone());
                if let Some(s) = strict {
                    spec.insert("strict".into(), Value::Bool(*s));
                }
                serde_json::json!({"type": "json_schema", "json_schema": spec})
            }
        }
    }

    /// As Responses `text.format`.
    pub fn to_responses(&self) -> Value {
        match self.to_chat() {
            Value::Object(mut o) => {
                if let Some(Value::Object(spec)) = o.remove("json_schema") {
                    o.extend(spec);
                }
                Value::Object(o)
            }
            other => other,
        }
    }
}

/// A caller's thinking request: a level, and the token budget when the caller named one
/// (Anthropic `budget_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thinking {
    pub level: hearth_config::ThinkingLevel,
    pub budget: Option<u64>,
}

impl Thinking {
    pub fn level(level: hearth_config::ThinkingLevel) -> Self {
        Thinking { level, budget: None }
    }
}

/// How the model must use tools.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

/// One model call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prompt {
    /// System instructions (`system` and `developer` messages, in order).
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// Output cap requested by the caller (bounded by the model's `maxTokens`).
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    /// Structured output the caller asked for (`None`: whatever the model writes).
    pub output_format: Option<OutputFormat>,
    /// The thinking level the caller asked for (chat `reasoning_effort`, Responses
    /// `reasoning.effort`, Anthropic `thinking`); `None`: the configured level, if any
    /// ([`crate::thinking`]).
    pub thinking: Option<Thinking>,
    /// Token logprobs the caller asked for, with this many most likely alternatives per token
    /// (0: the chosen token's only). Sent to APIs that have them ([`crate::encode::has_logprobs`]).
    pub logprobs: Option<u32>,
    pub stream: bool,
    /// Request fields hearth does not own, passed through to OpenAI-compatible upstreams.
    pub passthrough: Map<String, Value>,
    /// The request as an Anthropic Messages client sent it (direct runs of `/v1/messages`):
    /// an Anthropic upstream gets this body with only `model`, `max_tokens` and `stream`
    /// rewritten, so what hearth does not model (server tools, `cache_control`, `thinking`,
    /// `context_management`, mid-conversation system messages, …) reaches it untouched.
    /// Every other upstream is sent the canonical fields above.
    pub anthropic_native: Option<std::sync::Arc<AnthropicNative>>,
}

/// An Anthropic Messages request kept whole for an Anthropic upstream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnthropicNative {
    /// The request body as received.
    pub body: Map<String, Value>,
    /// The caller's `anthropic-beta` header.
    pub beta: Option<String>,
}

impl Prompt {
    /// A one-message prompt.
    pub fn text(system: Option<&str>, user: &str) -> Self {
        Prompt {
            system: system.map(|s| vec![s.to_owned()]).unwrap_or_default(),
            messages: vec![Message::user(user)],
            ..Prompt::default()
        }
    }

    /// The system instructions as one string.
    pub fn system_text(&self) -> Option<String> {
        (!self.system.is_empty()).then(|| self.system.join("\n\n"))
    }

    /// Characters of every text in the prompt (for estimates when no usage is reported).
    pub fn char_count(&self) -> usize {
        self.system.iter().map(String::len).sum::<usize>()
            + self.messages.iter().map(|m| m.text().len()).sum::<usize>()
    }

    /// Characters of everything the model reads: texts, replayed reasoning, tool calls and
    /// their arguments, and the tool definitions (for token estimates of a whole request).
    pub fn full_char_count(&self) -> usize {
        let messages: usize = self
            .messages
            .iter()
            .map(|m| {
                m.text().len()
                    + m.reasoning.as_ref().map_or(0, |r| r.text.len())
                    + m.tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum::<usize>()
            })
            .sum();
        let tools: usize = self
            .tools
            .iter()
            .map(|t| {
                t.name.len()
                    + t.description.as_ref().map_or(0, String::len)
                    + t.parameters.to_string().len()
            })
            .sum();
        self.system.iter().map(String::len).sum::<usize>() + messages + tools
    }
}
