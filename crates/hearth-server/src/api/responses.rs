//! `POST /v1/responses` (OpenResponses): string or item input, `instructions`, function tools,
//! `previous_response_id` (kept in memory), `max_output_tokens`; streaming with OpenAI's exact
//! event order and `sequence_number`/`output_index`/`content_index` on every event.
//!
//! Invariant: reasoning is its own `reasoning` output item (`response.reasoning_text.*`),
//! never part of a `message` item; a failure mid-stream ends with `response.failed`.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::Response;
use hearth_config::Config;
use hearth_upstream::prompt::Reasoning;
use hearth_upstream::{
    Event, FinishReason, Message, Part, Prompt, Role, TokenLogprob, Tool, ToolCall, ToolChoice,
    Usage,
};
use hearth_wire::openai_responses::{ResponseInput, ResponsesRequest};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Cx, Endpoint, Parsed, Whole};
use crate::error::{ApiError, Shape};
use crate::logprobs::Dialect;
use crate::plan::Plan;
use crate::relay::{Collected, ToolCallAcc};
use crate::sse::{self, Made, Render};
use crate::{AppState, json_response};

/// Conversations kept for `previous_response_id`, at most this many (oldest dropped first).
pub const MAX_CONVERSATIONS: usize = 4096;

/// Stored conversations by response id (with their size), and ids in insertion order.
#[derive(Debug, Default)]
struct Store {
    map: HashMap<String, (Arc<Vec<Message>>, usize)>,
    order: VecDeque<String>,
    bytes: usize,
}

/// Response id → the conversation up to and including that response, within a memory budget
/// (`gateway.limits.responsesStoreBytes`): the oldest conversations leave first, and one larger
/// than a quarter of the budget is not kept (continuing it answers "not found").
#[derive(Debug)]
pub struct Conversations {
    inner: Mutex<Store>,
    budget: usize,
}

impl Default for Conversations {
    fn default() -> Self {
        Conversations::with_budget(hearth_config::GatewayLimits::default().responses_store_bytes)
    }
}

/// About how much memory a conversation holds (text, ids, and per-item overhead).
pub fn conversation_bytes(messages: &[Message]) -> usize {
    const ITEM: usize = 64;
    messages
        .iter()
        .map(|m| {
            let parts: usize = m
                .content
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.len() + ITEM,
                    Part::Image { url } => url.len() + ITEM,
                })
                .sum();
            let calls: usize = m
                .tool_calls
                .iter()
                .map(|c| c.id.len() + c.name.len() + c.arguments.len() + ITEM)
                .sum();
            let reasoning = m
                .reasoning
                .as_ref()
                .map_or(0, |r| r.text.len() + r.signature.as_ref().map_or(0, String::len));
            ITEM * 2
                + parts
                + calls
                + reasoning
                + m.tool_call_id.as_ref().map_or(0, String::len)
                + m.name.as_ref().map_or(0, String::len)
        })
        .sum()
}

impl Conversations {
    pub fn with_budget(budget: usize) -> Self {
        Conversations { inner: Mutex::new(Store::default()), budget }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Vec<Message>>> {
        self.inner.lock().ok()?.map.get(id).map(|(m, _)| Arc::clone(m))
    }

    /// Bytes held now (for tests and `/metrics`).
    pub fn bytes(&self) -> usize {
        self.inner.lock().map(|s| s.bytes).unwrap_or(0)
    }

    pub fn insert(&self, id: String, messages: Vec<Message>) {
        let size = conversation_bytes(&messages) + id.len();
        if size > self.budget / 4 {
            return;
        }
        let Ok(mut store) = self.inner.lock() else { return };
        let store = &mut *store;
        match store.map.insert(id.clone(), (Arc::new(messages), size)) {
            Some((_, old)) => store.bytes = store.bytes - old + size,
            None => {
                store.order.push_back(id);
                store.bytes += size;
            }
        }
        while store.order.len() > MAX_CONVERSATIONS || store.bytes > self.budget {
            let Some(old) = store.order.pop_front() else { break };
            if let Some((_, freed)) = store.map.remove(&old) {
                store.bytes -= freed;
            }
        }
    }
}

/// A client tool as the client named it, for a flattened name the upstream sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTool {
    /// The `namespace` tool it came from (its upstream name is `<namespace>__<name>`).
    pub namespace: Option<String>,
    pub name: String,
    /// A `custom` (free-form text) tool, sent up as a function taking `{"input": string}`.
    pub custom: bool,
}

/// Joins a namespace and a tool name into the one function name the upstream sees.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// Tool types that run on OpenAI's side (or need a specific model): a gateway to other servers
/// cannot run them, so they are dropped with a note (`x-hearth-dropped`), never refused.
pub const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer_use_preview",
    "computer_use",
    "computer",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
];

/// What the response object echoes from the request: every field the API defines, with the
/// values hearth applied.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Option<String>,
    /// The cap the client asked for; the response shows the cap applied (see [`Echo::cap`]).
    pub max_output_tokens: Option<u64>,
    /// The cap applied: the smaller of the request's and the answering model's `maxTokens`.
    pub applied_max_output_tokens: Option<u64>,
    pub previous_response_id: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub top_logprobs: Option<u64>,
    /// The caller asked for token logprobs (`top_logprobs` > 0, or `include` names
    /// `message.output_text.logprobs`).
    pub logprobs: bool,
    pub max_tool_calls: Option<u64>,
    pub parallel_tool_calls: Option<bool>,
    pub store: Option<bool>,
    pub service_tier: Option<String>,
    pub safety_identifier: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub truncation: Option<String>,
    pub user: Option<String>,
    pub metadata: Option<Value>,
    pub reasoning_effort: Option<String>,
    pub reasoning_summary: Option<String>,
    /// `text.format` (default `{"type":"text"}`).
    pub text_format: Option<Value>,
    pub verbosity: Option<String>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    /// Flattened upstream names of namespaced and custom tools → the client's tool.
    pub client_tools: HashMap<String, ClientTool>,
    /// What was dropped, as `tools[8] (web_search)`, for `x-hearth-dropped`.
    pub dropped: Vec<String>,
}

impl Echo {
    /// Whether the conversation is kept for `previous_response_id` (`store`, default true).
    pub fn stored(&self) -> bool {
        self.store != Some(false)
    }

    fn cap(&self) -> Option<u64> {
        self.applied_max_output_tokens.or(self.max_output_tokens)
    }
}

/// A hearth notice on a Responses stream goes out as an SSE comment, `: hearth_notice: TEXT`:
/// the openai Node SDK's stream helper (`responses.stream()`, 7.x) throws on any event type it
/// does not list (`Unhandled response stream event`), so an in-band event would break it.
pub const COMMENT_NOTICE: &str = ": hearth_notice: ";

pub use super::HEADER_DROPPED;

/// The output cap hearth sends for `model_ref`: the request's, bounded by the model's
/// `maxTokens` (the model's when the request names none), as the encoders do.
fn applied_cap(
    config: &hearth_config::Config,
    model_ref: &hearth_config::ModelRef,
    requested: Option<u64>,
) -> Option<u64> {
    let model = config.providers.get(&model_ref.provider)?.model(&model_ref.model)?;
    Some(requested.unwrap_or(model.max_tokens).min(model.max_tokens).max(1))
}

/// An overflow on this endpoint names `input`, the field that holds the conversation here.
fn input_param(mut e: ApiError) -> ApiError {
    if e.param.as_deref() == Some("messages") {
        e.param = Some("input".to_owned());
    }
    e
}

/// The Responses endpoint on the one pipeline: the response's id and what its object echoes.
#[derive(Debug, Clone)]
pub(crate) struct Responses {
    id: String,
    echo: Echo,
}

/// What the run needs: the response id, and the agent session it continues (agent runs).
pub(crate) struct Link {
    id: String,
    session: Option<(Arc<dyn hearth_store::SessionStore>, String)>,
}

impl Endpoint for Responses {
    type Request = ResponsesRequest;
    type Run = Link;
    type Render = ResponsesRender;

    const SHAPE: Shape = Shape::OpenAi;

    fn enabled(config: &Config) -> Result<(), ApiError> {
        super::switch(config.gateway.responses, "responses", "responses")
    }

    fn model(request: &ResponsesRequest) -> &str {
        &request.model
    }

    fn parse(cx: &Cx<'_>, request: ResponsesRequest) -> Result<Parsed<Self>, ApiError> {
        let (prompt, mut echo) = to_prompt(request, &cx.app.conversations)?;
        Ok(Parsed {
            prompt,
            dropped: std::mem::take(&mut echo.dropped),
            logprobs: echo.logprobs,
            endpoint: Responses { id: crate::new_id("resp_"), echo },
        })
    }

    /// Agent runs: `previous_response_id` continues the session it came from; a response
    /// without any session key gets one named after it, so it can be continued.
    async fn planned(
        &mut self,
        cx: &Cx<'_>,
        plan: &mut Plan,
        prompt: &mut Prompt,
    ) -> Result<Link, ApiError> {
        let session = match (&cx.app.agents, plan.agent_run) {
            (Some(agents), true) => {
                if plan.session_key.is_none()
                    && let Some(prev) = &self.echo.previous_response_id
                    && let Ok(Some(link)) = agents.store.response_session(prev).await
                {
                    plan.session_key = Some(link.session_key);
                }
                let user = prompt
                    .passthrough
                    .get("user")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty());
                if plan.session_key.is_none() && user.is_none() {
                    plan.session_key = Some(format!("resp:{}", self.id));
                }
                let key = plan.session_key.clone().or_else(|| user.map(|u| format!("user:{u}")));
                let (_, full) =
                    hearth_agent::session_key_for(cx.config, plan.agent.as_deref(), key.as_deref());
                Some((agents.store.clone(), full))
            }
            _ => None,
        };
        Ok(Link { id: self.id.clone(), session })
    }

    fn run_error(_link: &Link, e: ApiError) -> ApiError {
        input_param(e)
    }

    async fn started(link: &Link) {
        if let Some((store, key)) = &link.session {
            let _ = store.link_response(&link.id, key, hearth_store::Timestamp::now()).await;
        }
    }

    fn render(
        self,
        app: &AppState,
        config: &Config,
        shown: String,
        made: Made<'_>,
    ) -> ResponsesRender {
        let Responses { id, mut echo } = self;
        if let Some((started, _)) = &made {
            echo.applied_max_output_tokens =
                applied_cap(config, &started.answer.model_ref, echo.max_output_tokens);
        }
        let messages = made.map(|(_, prompt)| prompt.messages).unwrap_or_default();
        ResponsesRender::new(id, shown, echo, messages, Arc::clone(&app.conversations))
    }

    fn whole(self, cx: &Cx<'_>, whole: Whole<'_>) -> Response {
        let Responses { id, mut echo } = self;
        let Whole { shown, started_at, prompt, collected, answer } = whole;
        echo.applied_max_output_tokens =
            applied_cap(cx.config, &answer.model_ref, echo.max_output_tokens);
        let output = output_items(collected, &echo);
        if echo.stored() {
            let mut conversation = prompt.messages;
            conversation.push(assistant_message(
                &collected.text,
                &collected.reasoning,
                &collected.tool_calls,
            ));
            cx.app.conversations.insert(id.clone(), conversation);
        }
        let body = response_object(
            &id,
            shown,
            started_at,
            &echo,
            status_of(collected.finish.as_ref()),
            output,
            collected.usage.as_ref(),
            None,
        );
        json_response(StatusCode::OK, &body)
    }
}

fn part_text(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => part.get("text").and_then(Value::as_str),
        Some("refusal") => part.get("refusal").and_then(Value::as_str),
        _ => None,
    }
}

fn content_parts(content: Option<&Value>, field: &str) -> Result<Vec<Part>, ApiError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                if let Some(text) = part_text(part) {
                    out.push(Part::Text(text.to_owned()));
                    continue;
                }
                match part.get("type").and_then(Value::as_str) {
                    Some("input_image") => {
                        let url = match part.get("image_url") {
                            Some(Value::String(u)) => u.clone(),
                            Some(Value::Object(o)) => {
                                o.get("url").and_then(Value::as_str).unwrap_or_default().to_owned()
                            }
                            _ => String::new(),
                        };
                        if url.is_empty() {
                            return Err(ApiError::invalid_param(
                                &format!("{field}[{i}].image_url"),
                                "input_image needs image_url",
                            ));
                        }
                        out.push(Part::Image { url });
                    }
                    other => {
                        return Err(ApiError::invalid_param(
                            &format!("{field}[{i}].type"),
                            format!(
                                "content type `{}` is not supported here",
                                other.unwrap_or("?")
                            ),
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(_) => {
            Err(ApiError::invalid_param(field, "content must be a string or a list of parts"))
        }
    }
}

fn text_only(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| if let Part::Text(t) = p { Some(t.as_str()) } else { None })
        .collect::<Vec<_>>()
        .join("")
}

/// The canonical prompt of a Responses request (with the stored conversation of
/// `previous_response_id` in front).
pub fn to_prompt(
    request: ResponsesRequest,
    conversations: &Conversations,
) -> Result<(Prompt, Echo), ApiError> {
    let ResponsesRequest {
        input,
        instructions,
        stream,
        max_output_tokens,
        reasoning,
        tools,
        tool_choice,
        previous_response_id,
        temperature,
        store,
        include,
        mut extra,
        ..
    } = request;
    let top_p = extra.remove("top_p").and_then(|v| v.as_f64());
    super::chat::check_sampling(temperature, top_p)?;
    let number =
        |extra: &mut serde_json::Map<String, Value>, key: &str| -> Result<Option<f64>, ApiError> {
            match extra.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if (-2.0..=2.0).contains(&x) => Ok(Some(x)),
                    _ => Err(ApiError::invalid_param(
                        key,
                        format!("{key} must be a number between -2 and 2"),
                    )),
                },
            }
        };
    let presence_penalty = number(&mut extra, "presence_penalty")?;
    let frequency_penalty = number(&mut extra, "frequency_penalty")?;
    let count = |extra: &mut serde_json::Map<String, Value>,
                 key: &str,
                 max: u64|
     -> Result<Option<u64>, ApiError> {
        match extra.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(ApiError::invalid_param(
                    key,
                    format!("{key} must be an integer from 0 to {max}"),
                )),
            },
        }
    };
    let top_logprobs = count(&mut extra, "top_logprobs", 20)?;
    let max_tool_calls = count(&mut extra, "max_tool_calls", u64::MAX)?;
    let string = |extra: &mut serde_json::Map<String, Value>,
                  key: &str|
     -> Result<Option<String>, ApiError> {
        match extra.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid_param(key, format!("{key} must be a string"))),
        }
    };
    let service_tier = string(&mut extra, "service_tier")?;
    let safety_identifier = string(&mut extra, "safety_identifier")?;
    let prompt_cache_key = string(&mut extra, "prompt_cache_key")?;
    let truncation = string(&mut extra, "truncation")?;
    let user = string(&mut extra, "user")?;
    if let Some(Value::Bool(true)) = extra.get("background") {
        return Err(ApiError::invalid_param(
            "background",
            "background responses are not supported: hearth answers in the request",
        ));
    }
    let parallel_tool_calls = extra.remove("parallel_tool_calls").and_then(|v| v.as_bool());
    let metadata = extra.remove("metadata").filter(|m| !m.is_null());
    if metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ApiError::invalid_param("metadata", "metadata must be an object"));
    }
    let (text_format, verbosity, output_format) = match extra.remove("text") {
        None | Some(Value::Null) => (None, None, None),
        Some(Value::Object(text)) => {
            let verbosity = text.get("verbosity").and_then(Value::as_str).map(str::to_owned);
            match text.get("format").filter(|f| !f.is_null()) {
                None => (None, verbosity, None),
                Some(f) => {
                    let format = hearth_upstream::OutputFormat::from_responses(f).map_err(
                        |(at, message)| {
                            ApiError::invalid_param(&format!("text.format{at}"), message)
                        },
                    )?;
                    (Some(f.clone()), verbosity, Some(format))
                }
            }
        }
        Some(_) => return Err(ApiError::invalid_param("text", "text must be an object")),
    };
    if max_output_tokens == Some(0) {
        return Err(ApiError::invalid_param(
            "max_output_tokens",
            "max_output_tokens must be a positive integer",
        ));
    }
    let mut prompt = Prompt::default();
    if let Some(i) = instructions.as_ref().filter(|i| !i.is_empty()) {
        prompt.system.push(i.clone());
    }
    if let Some(prev) = &previous_response_id {
        let Some(history) = conversations.get(prev) else {
            return Err(ApiError::invalid_param(
                "previous_response_id",
                format!(
                    "no response `{prev}` is known to this gateway (responses are kept in memory until it restarts)"
                ),
            ));
        };
        prompt.messages.extend(history.iter().cloned());
    }
    match input {
        None => {}
        Some(ResponseInput::Text(t)) => prompt.messages.push(Message::user(t)),
        Some(ResponseInput::Items(items)) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("input[{i}]");
                let kind = item.get("type").and_then(Value::as_str);
                match kind {
                    Some("message") | None if item.get("role").is_some() => {
                        let parts =
                            content_parts(item.get("content"), &format!("{field}.content"))?;
                        match item.get("role").and_then(Value::as_str) {
                            Some("system" | "developer") => prompt.system.push(text_only(&parts)),
                            Some("user") => prompt
                                .messages
                                .push(Message { content: parts, ..Message::user("") }),
                            Some("assistant") => prompt
                                .messages
                                .push(Message { content: parts, ..Message::assistant("") }),
                            other => {
                                return Err(ApiError::invalid_param(
                                    &format!("{field}.role"),
                                    format!("role `{}` is not supported", other.unwrap_or("?")),
                                ));
                            }
                        }
                    }
                    Some(kind @ ("function_call" | "custom_tool_call")) => {
                        let get = |k: &str| {
                            item.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
                        };
                        let name = match item.get("namespace").and_then(Value::as_str) {
                            Some(ns) if !ns.is_empty() => {
                                format!("{ns}{NAMESPACE_SEPARATOR}{}", get("name"))
                            }
                            _ => get("name"),
                        };
                        let arguments = if kind == "custom_tool_call" {
                            json!({"input": get("input")}).to_string()
                        } else {
                            get("arguments")
                        };
                        let call = ToolCall { id: get("call_id"), name, arguments };
                        match prompt.messages.last_mut() {
                            Some(last) if last.role == Role::Assistant => {
                                last.tool_calls.push(call)
                            }
                            _ => prompt.messages.push(Message {
                                content: Vec::new(),
                                tool_calls: vec![call],
                                ..Message::assistant("")
                            }),
                        }
                    }
                    Some("function_call_output" | "custom_tool_call_output") => {
                        let output = match item.get("output") {
                            Some(Value::String(s)) => s.clone(),
                            Some(Value::Array(parts)) => {
                                parts.iter().filter_map(part_text).collect::<Vec<_>>().join("")
                            }
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        prompt.messages.push(Message {
                            role: Role::Tool,
                            content: vec![Part::Text(output)],
                            reasoning: None,
                            tool_calls: Vec::new(),
                            tool_call_id: item
                                .get("call_id")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            name: None,
                        });
                    }
                    Some("reasoning" | "item_reference") => {}
                    other => {
                        return Err(ApiError::invalid_param(
                            &format!("{field}.type"),
                            format!("input item type `{}` is not supported", other.unwrap_or("?")),
                        ));
                    }
                }
            }
        }
    }
    if prompt.messages.is_empty() {
        return Err(ApiError::invalid_param("input", "`input` must contain at least one message"));
    }
    let mut echo_tools = Vec::new();
    let mut client_tools = HashMap::new();
    let mut dropped = Vec::new();
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        let field = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function" | "custom") => {
                echo_tools.push(echo_tool(&tool));
                prompt.tools.push(client_tool(&tool, &field, None, &mut client_tools)?);
            }
            Some("namespace") => {
                let Some(ns) = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty())
                else {
                    return Err(ApiError::invalid_param(
                        &format!("{field}.name"),
                        "a namespace tool needs a name",
                    ));
                };
                let Some(inner) = tool.get("tools").and_then(Value::as_array) else {
                    return Err(ApiError::invalid_param(
                        &format!("{field}.tools"),
                        "a namespace tool needs `tools` (a list of function or custom tools)",
                    ));
                };
                let mut echoed = tool.clone();
                let mut inner_echo = Vec::new();
                for (j, t) in inner.iter().enumerate() {
                    let at = format!("{field}.tools[{j}]");
                    match t.get("type").and_then(Value::as_str) {
                        Some("function" | "custom") => {
                            inner_echo.push(echo_tool(t));
                            prompt.tools.push(client_tool(t, &at, Some(ns), &mut client_tools)?);
                        }
                        other => dropped.push(format!("{at} ({})", other.unwrap_or("no type"))),
                    }
                }
                echoed["tools"] = Value::Array(inner_echo);
                echo_tools.push(echoed);
            }
            Some(kind) if HOSTED_TOOLS.contains(&kind) || kind.starts_with("web_search") => {
                dropped.push(format!("{field} ({kind})"));
            }
            Some(kind) => {
                return Err(ApiError::invalid_param(
                    &format!("{field}.type"),
                    format!(
                        "tool type `{kind}` is not supported (function, custom, namespace; hosted tools such as web_search are dropped)"
                    ),
                ));
            }
            None => {
                return Err(ApiError::invalid_param(
                    &format!("{field}.type"),
                    "a tool needs a type",
                ));
            }
        }
    }
    let mut echo_choice = tool_choice.clone().unwrap_or_else(|| Value::String("auto".to_owned()));
    prompt.tool_choice = match tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(ToolChoice::Auto),
        Some(Value::String(s)) if s == "none" => Some(ToolChoice::None),
        Some(Value::String(s)) if s == "required" => Some(ToolChoice::Required),
        Some(Value::Object(o))
            if matches!(o.get("type").and_then(Value::as_str), Some("function" | "custom")) =>
        {
            let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
            let name = match o.get("namespace").and_then(Value::as_str) {
                Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
                None => name.to_owned(),
            };
            if !prompt.tools.iter().any(|t| t.name == name) {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!("tool_choice names `{name}`, which is not in `tools`"),
                ));
            }
            Some(ToolChoice::Function(name))
        }
        Some(Value::Object(o))
            if o.get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| HOSTED_TOOLS.contains(&k) || k.starts_with("web_search")) =>
        {
            dropped.push(format!(
                "tool_choice ({})",
                o.get("type").and_then(Value::as_str).unwrap_or_default()
            ));
            None
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"name\":…}",
            ));
        }
    };
    if dropped.iter().any(|d| d.starts_with("tool_choice")) {
        // A choice of a dropped hosted tool leaves the model free: that is what was applied.
        echo_choice = Value::String("auto".to_owned());
    }
    let (reasoning_effort, reasoning_summary) =
        reasoning.map(|r| (r.effort, r.summary)).unwrap_or_default();
    if let Some(effort) = &reasoning_effort {
        prompt.thinking = Some(super::thinking_level(effort, "reasoning.effort")?);
    }
    for (key, value) in
        [("presence_penalty", presence_penalty), ("frequency_penalty", frequency_penalty)]
    {
        if let Some(v) = value {
            prompt.passthrough.insert(key.to_owned(), json!(v));
        }
    }
    // Token logprobs: asked for by `include` (OpenAI's way) or by a `top_logprobs` count
    // (taken as asking: a count of alternatives means nothing without the tokens).
    let include_logprobs = include
        .iter()
        .flatten()
        .any(|i| i == hearth_upstream::encode::INCLUDE_OUTPUT_TEXT_LOGPROBS);
    let top = top_logprobs.unwrap_or(0) as u32;
    prompt.logprobs = (include_logprobs || top > 0).then_some(top);
    if let Some(p) = parallel_tool_calls.filter(|_| !prompt.tools.is_empty()) {
        prompt.passthrough.insert("parallel_tool_calls".to_owned(), Value::Bool(p));
    }
    for (key, value) in [
        ("service_tier", &service_tier),
        ("safety_identifier", &safety_identifier),
        ("prompt_cache_key", &prompt_cache_key),
        ("user", &user),
    ] {
        if let Some(v) = value {
            prompt.passthrough.insert(key.to_owned(), Value::String(v.clone()));
        }
    }
    if let Some(store) = store {
        prompt.passthrough.insert("store".to_owned(), Value::Bool(store));
    }
    prompt.max_tokens = max_output_tokens;
    prompt.temperature = temperature;
    prompt.top_p = top_p;
    prompt.output_format = output_format;
    prompt.stream = stream.unwrap_or(false);
    let echo = Echo {
        instructions,
        max_output_tokens,
        applied_max_output_tokens: None,
        previous_response_id,
        temperature,
        top_p,
        presence_penalty,
        frequency_penalty,
        top_logprobs,
        logprobs: prompt.logprobs.is_some(),
        max_tool_calls,
        parallel_tool_calls,
        store,
        service_tier,
        safety_identifier,
        prompt_cache_key,
        truncation,
        user,
        metadata,
        reasoning_effort,
        reasoning_summary,
        text_format,
        verbosity,
        tools: echo_tools,
        tool_choice: echo_choice,
        client_tools,
        dropped,
    };
    Ok((prompt, echo))
}

/// A tool as the response object echoes it: `strict` shown as applied (hearth sends no `strict`
/// upstream, so a function tool's schema is not enforced unless the client said so).
fn echo_tool(tool: &Value) -> Value {
    let mut t = tool.clone();
    if t.get("type").and_then(Value::as_str) == Some("function")
        && let Value::Object(o) = &mut t
    {
        o.entry("strict").or_insert(Value::Bool(false));
        o.entry("description").or_insert(Value::Null);
    }
    t
}

/// A `function` or `custom` tool (inside `namespace` when given) as the function the upstream
/// sees; namespaced and custom tools are remembered so their calls map back.
fn client_tool(
    tool: &Value,
    field: &str,
    namespace: Option<&str>,
    client_tools: &mut HashMap<String, ClientTool>,
) -> Result<Tool, ApiError> {
    let Some(name) = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
        return Err(ApiError::invalid_param(&format!("{field}.name"), "a tool needs a name"));
    };
    let custom = tool.get("type").and_then(Value::as_str) == Some("custom");
    let flat = match namespace {
        Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
        None => name.to_owned(),
    };
    if namespace.is_some() || custom {
        client_tools.insert(
            flat.clone(),
            ClientTool { namespace: namespace.map(str::to_owned), name: name.to_owned(), custom },
        );
    }
    let parameters = if custom {
        super::chat::custom_parameters()
    } else {
        match tool.get("parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(ApiError::invalid_param(
                    &format!("{field}.parameters"),
                    "parameters must be a JSON Schema object",
                ));
            }
        }
    };
    Ok(Tool {
        name: flat,
        description: tool.get("description").and_then(Value::as_str).map(str::to_owned),
        parameters,
    })
}

fn assistant_message<'a>(
    text: &str,
    reasoning: &str,
    tools: impl IntoIterator<Item = &'a ToolCallAcc>,
) -> Message {
    Message {
        role: Role::Assistant,
        content: if text.is_empty() { Vec::new() } else { vec![Part::Text(text.to_owned())] },
        reasoning: (!reasoning.is_empty())
            .then(|| Reasoning { text: reasoning.to_owned(), signature: None }),
        tool_calls: tools
            .into_iter()
            .map(|t| ToolCall {
                id: t.id.clone(),
                name: t.name.clone(),
                arguments: t.arguments.clone(),
            })
            .collect(),
        tool_call_id: None,
        name: None,
    }
}

fn status_of(finish: Option<&FinishReason>) -> &'static str {
    match finish {
        Some(FinishReason::Length) => "incomplete",
        _ => "completed",
    }
}

/// The Responses object (`object: "response"`), serialized straight from the request's echo
/// and the answer (field order as OpenAI writes it).
#[derive(Debug, Serialize)]
struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    completed_at: Option<u64>,
    status: &'a str,
    background: bool,
    error: Option<ResponseError<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: Option<&'a str>,
    max_output_tokens: Option<u64>,
    max_tool_calls: Option<u64>,
    model: &'a str,
    output: Vec<OutputItem<'a>>,
    parallel_tool_calls: bool,
    previous_response_id: Option<&'a str>,
    prompt_cache_key: Option<&'a str>,
    reasoning: ReasoningEcho<'a>,
    safety_identifier: Option<&'a str>,
    service_tier: &'a str,
    store: bool,
    temperature: f64,
    text: TextEcho<'a>,
    tool_choice: &'a Value,
    tools: &'a [Value],
    top_logprobs: u64,
    top_p: f64,
    presence_penalty: f64,
    frequency_penalty: f64,
    truncation: &'a str,
    usage: Option<UsageOut>,
    user: Option<&'a str>,
    metadata: ObjectOr<'a>,
}

/// A failed response's `error`.
#[derive(Debug, Serialize)]
struct ResponseError<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Debug, Serialize)]
struct ReasoningEcho<'a> {
    effort: Option<&'a str>,
    summary: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct TextEcho<'a> {
    format: ObjectOr<'a>,
    verbosity: &'a str,
}

/// A value the request gave, or the object the API defaults it to.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ObjectOr<'a> {
    Given(&'a Value),
    /// `{}`.
    Empty {},
    /// `{"type": …}` (`text.format`'s default is `{"type": "text"}`).
    Typed {
        #[serde(rename = "type")]
        kind: &'static str,
    },
}

impl<'a> ObjectOr<'a> {
    fn or_empty(value: Option<&'a Value>) -> Self {
        value.map_or(ObjectOr::Empty {}, ObjectOr::Given)
    }

    fn or_typed(value: Option<&'a Value>, kind: &'static str) -> Self {
        value.map_or(ObjectOr::Typed { kind }, ObjectOr::Given)
    }
}

#[derive(Debug, Serialize)]
struct UsageOut {
    input_tokens: u64,
    input_tokens_details: CachedTokens,
    output_tokens: u64,
    output_tokens_details: ReasoningTokens,
    total_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CachedTokens {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct ReasoningTokens {
    reasoning_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> Self {
        UsageOut {
            input_tokens: u.input_tokens,
            input_tokens_details: CachedTokens { cached_tokens: u.cache_read_tokens },
            output_tokens: u.output_tokens,
            output_tokens_details: ReasoningTokens {
                reasoning_tokens: u.reasoning_tokens.unwrap_or(0),
            },
            total_tokens: u.input_tokens + u.output_tokens,
        }
    }
}

/// One item of `output` (and of `response.output_item.*`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum OutputItem<'a> {
    Reasoning(ReasoningItem<'a>),
    Message(MessageItem<'a>),
    Call(CallItem<'a>),
}

/// A tool call item, as the client named the tool.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum CallItem<'a> {
    Function(FunctionCallItem<'a>),
    Custom(CustomToolCallItem<'a>),
}

#[derive(Debug, Serialize)]
struct ReasoningItem<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Always `[]`.
    summary: [(); 0],
    content: [ReasoningText<'a>; 1],
    status: &'a str,
}

#[derive(Debug, Serialize)]
struct ReasoningText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Debug, Serialize)]
struct MessageItem<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'a str,
    role: &'static str,
    /// `[]` while in progress, else the one `output_text` part.
    content: List<TextPart<'a>>,
}

/// An `output_text` part with the logprobs of its tokens (`[]` when none were asked for or
/// reported).
#[derive(Debug, Serialize)]
struct TextPart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    /// Always `[]`.
    annotations: [(); 0],
    logprobs: crate::logprobs::Tokens<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionCallItem<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'a str,
    call_id: &'a str,
    /// The `namespace` tool a namespaced function came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct CustomToolCallItem<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'a str,
    call_id: &'a str,
    name: &'a str,
    /// The free-form input (`""` while in progress).
    input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

/// A list of at most one element.
#[derive(Debug)]
struct List<T>(Option<T>);

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

fn reasoning_item<'a>(id: Cow<'a, str>, text: &'a str, status: &'a str) -> OutputItem<'a> {
    OutputItem::Reasoning(ReasoningItem {
        id,
        kind: "reasoning",
        summary: [],
        content: [ReasoningText { kind: "reasoning_text", text }],
        status,
    })
}

fn text_part<'a>(text: &'a str, logprobs: &'a [TokenLogprob]) -> TextPart<'a> {
    TextPart {
        kind: "output_text",
        text,
        annotations: [],
        logprobs: crate::logprobs::Tokens { tokens: logprobs, dialect: Dialect::ResponsesPart },
    }
}

fn message_item<'a>(
    id: Cow<'a, str>,
    text: &'a str,
    status: &'a str,
    logprobs: &'a [TokenLogprob],
) -> OutputItem<'a> {
    let content = List((status != "in_progress").then(|| text_part(text, logprobs)));
    OutputItem::Message(MessageItem { id, kind: "message", status, role: "assistant", content })
}

/// A tool call as the client named the tool: a namespaced function keeps its `namespace`, a
/// custom tool becomes a `custom_tool_call` with its `input`.
fn function_item<'a>(
    id: Cow<'a, str>,
    call: &'a ToolCallAcc,
    status: &'a str,
    client_tools: &'a HashMap<String, ClientTool>,
) -> CallItem<'a> {
    match client_tools.get(&call.name) {
        Some(t) if t.custom => CallItem::Custom(CustomToolCallItem {
            id,
            kind: "custom_tool_call",
            status,
            call_id: &call.id,
            name: &t.name,
            input: if status == "in_progress" {
                String::new()
            } else {
                super::chat::custom_input(&call.arguments)
            },
            namespace: t.namespace.as_deref(),
        }),
        // Only namespaced functions are remembered besides custom tools.
        Some(t) => CallItem::Function(FunctionCallItem {
            id,
            kind: "function_call",
            status,
            call_id: &call.id,
            namespace: t.namespace.as_deref(),
            name: &t.name,
            arguments: &call.arguments,
        }),
        None => CallItem::Function(FunctionCallItem {
            id,
            kind: "function_call",
            status,
            call_id: &call.id,
            namespace: None,
            name: &call.name,
            arguments: &call.arguments,
        }),
    }
}

fn output_items<'a>(c: &'a Collected, echo: &'a Echo) -> Vec<OutputItem<'a>> {
    let client_tools = &echo.client_tools;
    let logprobs: &[TokenLogprob] = if echo.logprobs { &c.logprobs } else { &[] };
    let mut out = Vec::new();
    if !c.reasoning.is_empty() {
        out.push(reasoning_item(crate::new_id("rs_").into(), &c.reasoning, "completed"));
    }
    if !c.text.is_empty() || c.tool_calls.is_empty() {
        out.push(message_item(crate::new_id("msg_").into(), &c.text, "completed", logprobs));
    }
    for call in &c.tool_calls {
        let item = function_item(crate::new_id("fc_").into(), call, "completed", client_tools);
        out.push(OutputItem::Call(item));
    }
    out
}

#[expect(clippy::too_many_arguments, reason = "one response object, built from its parts")]
fn response_object<'a>(
    id: &'a str,
    model: &'a str,
    created_at: u64,
    echo: &'a Echo,
    status: &'a str,
    output: Vec<OutputItem<'a>>,
    usage: Option<&Usage>,
    error: Option<ResponseError<'a>>,
) -> ResponseObject<'a> {
    let completed_at = (status == "completed" || status == "incomplete").then(crate::unix_now);
    ResponseObject {
        id,
        object: "response",
        created_at,
        completed_at,
        status,
        background: false,
        error,
        incomplete_details: (status == "incomplete")
            .then_some(IncompleteDetails { reason: "max_output_tokens" }),
        instructions: echo.instructions.as_deref(),
        max_output_tokens: echo.cap(),
        max_tool_calls: echo.max_tool_calls,
        model,
        output,
        parallel_tool_calls: echo.parallel_tool_calls.unwrap_or(true),
        previous_response_id: echo.previous_response_id.as_deref(),
        prompt_cache_key: echo.prompt_cache_key.as_deref(),
        reasoning: ReasoningEcho {
            effort: echo.reasoning_effort.as_deref(),
            summary: echo.reasoning_summary.as_deref(),
        },
        safety_identifier: echo.safety_identifier.as_deref(),
        service_tier: echo.service_tier.as_deref().unwrap_or("default"),
        store: echo.stored(),
        temperature: echo.temperature.unwrap_or(1.0),
        text: TextEcho {
            format: ObjectOr::or_typed(echo.text_format.as_ref(), "text"),
            verbosity: echo.verbosity.as_deref().unwrap_or("medium"),
        },
        tool_choice: &echo.tool_choice,
        tools: &echo.tools,
        top_logprobs: echo.top_logprobs.unwrap_or(0),
        top_p: echo.top_p.unwrap_or(1.0),
        presence_penalty: echo.presence_penalty.unwrap_or(0.0),
        frequency_penalty: echo.frequency_penalty.unwrap_or(0.0),
        truncation: echo.truncation.as_deref().unwrap_or("disabled"),
        usage: usage.map(UsageOut::from),
        user: echo.user.as_deref(),
        metadata: ObjectOr::or_empty(echo.metadata.as_ref()),
    }
}

/// A text delta event (`response.output_text.delta`, `response.reasoning_text.delta`,
/// `response.function_call_arguments.delta`).
#[derive(Serialize)]
struct DeltaEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<crate::logprobs::Tokens<'a>>,
}

/// Every other stream event: the fields it has (in this order), then `type` and
/// `sequence_number`.
#[derive(Default, Serialize)]
struct StreamEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponseObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<crate::logprobs::Tokens<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<TextPart<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<OutputItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
}

impl StreamEvent<'_> {
    fn new(kind: &'static str) -> Self {
        StreamEvent { kind, ..StreamEvent::default() }
    }
}

/// Writes `event` with the stream's next sequence number.
fn emit(out: &mut Vec<u8>, sequence: &mut u64, mut event: StreamEvent<'_>) {
    event.sequence_number = *sequence;
    *sequence += 1;
    sse::named(out, event.kind, &event);
}

/// An output item of a stream, open or done.
#[derive(Debug)]
enum Item {
    Reasoning { id: String, text: String },
    Message { id: String, text: String, logprobs: Vec<TokenLogprob> },
    Function { id: String, call: ToolCallAcc },
}

impl Item {
    /// The item as `response.output_item.done` and the response's `output` show it.
    fn done<'a>(&'a self, client_tools: &'a HashMap<String, ClientTool>) -> OutputItem<'a> {
        match self {
            Item::Reasoning { id, text } => reasoning_item(id.into(), text, "completed"),
            Item::Message { id, text, logprobs } => {
                message_item(id.into(), text, "completed", logprobs)
            }
            Item::Function { id, call } => {
                OutputItem::Call(function_item(id.into(), call, "completed", client_tools))
            }
        }
    }
}

/// Renders Responses stream events.
#[derive(Debug)]
pub struct ResponsesRender {
    id: String,
    model: String,
    created_at: u64,
    echo: Echo,
    sequence: u64,
    /// The items done, in order.
    output: Vec<Item>,
    open: Option<Item>,
    usage: Option<Usage>,
    text: String,
    reasoning: String,
    conversation: Vec<Message>,
    conversations: Arc<Conversations>,
    /// Logprobs that came before the text they belong to ([`Event::Logprobs`]).
    pending_logprobs: Vec<TokenLogprob>,
}

impl ResponsesRender {
    pub fn new(
        id: String,
        model: String,
        echo: Echo,
        conversation: Vec<Message>,
        conversations: Arc<Conversations>,
    ) -> Self {
        ResponsesRender {
            id,
            model,
            created_at: crate::unix_now(),
            echo,
            sequence: 0,
            output: Vec::new(),
            open: None,
            usage: None,
            text: String::new(),
            reasoning: String::new(),
            conversation,
            conversations,
            pending_logprobs: Vec::new(),
        }
    }

    fn emit_delta(
        &mut self,
        out: &mut Vec<u8>,
        kind: &'static str,
        item_id: &str,
        delta: &str,
        logprobs: Option<&[TokenLogprob]>,
    ) {
        let event = DeltaEvent {
            kind,
            sequence_number: self.sequence,
            item_id,
            output_index: self.output.len() as u32,
            content_index: 0,
            delta,
            logprobs: logprobs
                .map(|tokens| crate::logprobs::Tokens { tokens, dialect: Dialect::ResponsesEvent }),
        };
        self.sequence += 1;
        sse::named(out, kind, &event);
    }

    /// `response.created`, `.in_progress`, `.completed`, `.incomplete` or `.failed`: the whole
    /// response as it stands.
    fn lifecycle(
        &mut self,
        out: &mut Vec<u8>,
        kind: &'static str,
        status: &str,
        error: Option<ResponseError<'_>>,
    ) {
        let client_tools = &self.echo.client_tools;
        let output = self.output.iter().map(|item| item.done(client_tools)).collect();
        let response = response_object(
            &self.id,
            &self.model,
            self.created_at,
            &self.echo,
            status,
            output,
            self.usage.as_ref(),
            error,
        );
        emit(
            out,
            &mut self.sequence,
            StreamEvent { response: Some(response), ..StreamEvent::new(kind) },
        );
    }

    /// Writes the open item's closing events; it joins `output`.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(item) = self.open.take() else { return };
        let index = self.output.len();
        let sequence = &mut self.sequence;
        let client_tools = &self.echo.client_tools;
        match &item {
            Item::Reasoning { id, text } => emit(
                out,
                sequence,
                StreamEvent {
                    item_id: Some(id),
                    output_index: Some(index),
                    content_index: Some(0),
                    text: Some(text),
                    ..StreamEvent::new("response.reasoning_text.done")
                },
            ),
            Item::Message { id, text, logprobs } => {
                emit(
                    out,
                    sequence,
                    StreamEvent {
                        item_id: Some(id),
                        output_index: Some(index),
                        content_index: Some(0),
                        text: Some(text),
                        logprobs: Some(crate::logprobs::Tokens {
                            tokens: logprobs,
                            dialect: Dialect::ResponsesEvent,
                        }),
                        ..StreamEvent::new("response.output_text.done")
                    },
                );
                emit(
                    out,
                    sequence,
                    StreamEvent {
                        item_id: Some(id),
                        output_index: Some(index),
                        content_index: Some(0),
                        part: Some(text_part(text, logprobs)),
                        ..StreamEvent::new("response.content_part.done")
                    },
                );
            }
            Item::Function { id, call } => {
                match function_item(id.into(), call, "completed", client_tools) {
                    // A custom tool's input is whole only once its JSON arguments are.
                    CallItem::Custom(custom) => {
                        emit(
                            out,
                            sequence,
                            StreamEvent {
                                item_id: Some(id),
                                output_index: Some(index),
                                delta: Some(&custom.input),
                                ..StreamEvent::new("response.custom_tool_call_input.delta")
                            },
                        );
                        emit(
                            out,
                            sequence,
                            StreamEvent {
                                item_id: Some(id),
                                output_index: Some(index),
                                input: Some(&custom.input),
                                ..StreamEvent::new("response.custom_tool_call_input.done")
                            },
                        );
                    }
                    CallItem::Function(function) => emit(
                        out,
                        sequence,
                        StreamEvent {
                            item_id: Some(id),
                            output_index: Some(index),
                            name: Some(function.name),
                            arguments: Some(&call.arguments),
                            ..StreamEvent::new("response.function_call_arguments.done")
                        },
                    ),
                }
            }
        }
        emit(
            out,
            sequence,
            StreamEvent {
                output_index: Some(index),
                item: Some(item.done(client_tools)),
                ..StreamEvent::new("response.output_item.done")
            },
        );
        self.output.push(item);
    }

    /// Writes `response.output_item.added` for `item`, which becomes the open one.
    fn open(&mut self, out: &mut Vec<u8>, item: Item) {
        let index = self.output.len();
        let client_tools = &self.echo.client_tools;
        let added = match &item {
            Item::Reasoning { id, .. } => reasoning_item(id.into(), "", "in_progress"),
            Item::Message { id, .. } => message_item(id.into(), "", "in_progress", &[]),
            Item::Function { id, call } => {
                OutputItem::Call(function_item(id.into(), call, "in_progress", client_tools))
            }
        };
        emit(
            out,
            &mut self.sequence,
            StreamEvent {
                output_index: Some(index),
                item: Some(added),
                ..StreamEvent::new("response.output_item.added")
            },
        );
        if let Item::Message { id, .. } = &item {
            emit(
                out,
                &mut self.sequence,
                StreamEvent {
                    item_id: Some(id),
                    output_index: Some(index),
                    content_index: Some(0),
                    part: Some(text_part("", &[])),
                    ..StreamEvent::new("response.content_part.added")
                },
            );
        }
        self.open = Some(item);
    }
}

impl Render for ResponsesRender {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.lifecycle(out, "response.created", "in_progress", None);
        self.lifecycle(out, "response.in_progress", "in_progress", None);
    }

    fn notice(&mut self, text: &str, out: &mut Vec<u8>) {
        // A comment, not an event: every SSE parser skips it (see `COMMENT_NOTICE`); one line.
        out.extend_from_slice(COMMENT_NOTICE.as_bytes());
        for c in text.chars() {
            let c = if c.is_control() { ' ' } else { c };
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(b"\n\n");
    }

    fn resume(&mut self, early: Self) {
        self.sequence = early.sequence;
        self.created_at = early.created_at;
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool {
        match event {
            Event::ReasoningDelta(r) => {
                if !matches!(self.open, Some(Item::Reasoning { .. })) {
                    self.close(out);
                    let id = crate::new_id("rs_");
                    self.open(out, Item::Reasoning { id, text: String::new() });
                }
                self.reasoning.push_str(&r);
                if let Some(Item::Reasoning { id, text }) = &mut self.open {
                    text.push_str(&r);
                    let id = id.clone();
                    self.emit_delta(out, "response.reasoning_text.delta", &id, &r, None);
                }
            }
            // Blocks only the upstream's own API holds (docs/upstream.md, "Server tools").
            Event::ReasoningSignature(_) | Event::Native(_) | Event::Progress(_) => {}
            Event::TextDelta(t) => {
                if !matches!(self.open, Some(Item::Message { .. })) {
                    self.close(out);
                    let id = crate::new_id("msg_");
                    self.open(out, Item::Message { id, text: String::new(), logprobs: Vec::new() });
                }
                self.text.push_str(&t);
                let pending = std::mem::take(&mut self.pending_logprobs);
                if let Some(Item::Message { id, text, logprobs }) = &mut self.open {
                    text.push_str(&t);
                    let id = id.clone();
                    logprobs.extend_from_slice(&pending);
                    self.emit_delta(out, "response.output_text.delta", &id, &t, Some(&pending));
                }
            }
            Event::Logprobs(l) if self.echo.logprobs => {
                if self.pending_logprobs.is_empty() {
                    self.pending_logprobs = l;
                } else {
                    self.pending_logprobs.extend(l);
                }
            }
            // Not asked for (a `params` setting may have asked the upstream).
            Event::Logprobs(_) => {}
            Event::ToolCallDelta { index: call_index, id: call_id, name, arguments } => {
                let same = matches!(&self.open, Some(Item::Function { call, .. }) if call.index == call_index);
                if !same {
                    self.close(out);
                    let id = crate::new_id("fc_");
                    let call = ToolCallAcc {
                        index: call_index,
                        id: call_id.unwrap_or_else(|| crate::new_id("call_")),
                        name: name.unwrap_or_default(),
                        arguments: String::new(),
                    };
                    self.open(out, Item::Function { id, call });
                } else if let (Some(n), Some(Item::Function { call, .. })) = (name, &mut self.open)
                {
                    call.name.push_str(&n);
                }
                if !arguments.is_empty()
                    && let Some(Item::Function { id, call }) = &mut self.open
                {
                    call.arguments.push_str(&arguments);
                    if self.echo.client_tools.get(&call.name).is_some_and(|t| t.custom) {
                        return false;
                    }
                    let id = id.clone();
                    self.emit_delta(
                        out,
                        "response.function_call_arguments.delta",
                        &id,
                        &arguments,
                        None,
                    );
                }
            }
            Event::Usage(u) => self.usage = Some(u),
            Event::Finish(reason) => {
                self.close(out);
                if self.output.is_empty() {
                    // An answer with nothing in it still has its (empty) message item.
                    self.event(Event::TextDelta(String::new()), out);
                    self.close(out);
                }
                let status = status_of(Some(&reason));
                let kind = if status == "incomplete" {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                self.lifecycle(out, kind, status, None);
                sse::done(out);
                if self.echo.stored() {
                    let mut conversation = std::mem::take(&mut self.conversation);
                    let calls = self.output.iter().filter_map(|item| match item {
                        Item::Function { call, .. } => Some(call),
                        _ => None,
                    });
                    conversation.push(assistant_message(&self.text, &self.reasoning, calls));
                    self.conversations.insert(self.id.clone(), conversation);
                }
                return true;
            }
            Event::Error(e) => {
                let err = ApiError::from_upstream(&e);
                let code = err.code.unwrap_or("server_error");
                let error = ResponseError { code, message: &err.message };
                self.lifecycle(out, "response.failed", "failed", Some(error));
                sse::done(out);
                return true;
            }
        }
        false
    }
}
