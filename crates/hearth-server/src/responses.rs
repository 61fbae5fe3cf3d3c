//! `POST /v1/responses` (OpenResponses): string or item input, `instructions`, function tools,
//! `previous_response_id` (kept in memory), `max_output_tokens`; streaming with OpenAI's exact
//! event order and `sequence_number`/`output_index`/`content_index` on every event.
//!
//! Invariant: reasoning is its own `reasoning` output item (`response.reasoning_text.*`),
//! never part of a `message` item; a failure mid-stream ends with `response.failed`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hearth_upstream::prompt::Reasoning;
use hearth_upstream::{
    Event, FinishReason, Message, Part, Prompt, Role, Tool, ToolCall, ToolChoice, Usage,
};
use hearth_wire::openai_responses::{ResponseInput, ResponsesRequest};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, Shape};
use crate::relay::{self, Collected, ToolCallAcc};
use crate::sse::{self, Render};
use crate::{AppState, body_or_error, json_response, plan};

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

/// What the response object echoes from the request.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub previous_response_id: Option<String>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
}

pub async fn handle(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match run(app, headers, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(
    app: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_or_error(body, Shape::OpenAi)?;
    let config = app.config.load_full();
    if !config.gateway.responses {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "the responses endpoint is disabled (gateway.http.endpoints.responses.enabled)",
        ));
    }
    let request: ResponsesRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::from_json(&e))?;
    let model = request.model.clone();
    let (prompt, echo) = to_prompt(request, &app.conversations)?;
    let mut plan = plan::plan(&config, &model, &headers)?;
    let id = crate::new_id("resp_");
    // Agent runs: `previous_response_id` continues the session it came from; a response
    // without any session key gets one named after it, so it can be continued.
    let linked_session = match (&app.agents, plan.agent_run) {
        (Some(agents), true) => {
            if plan.session_key.is_none()
                && let Some(prev) = &echo.previous_response_id
                && let Ok(Some(link)) = agents.store.response_session(prev).await
            {
                plan.session_key = Some(link.session_key);
            }
            let user =
                prompt.passthrough.get("user").and_then(Value::as_str).filter(|u| !u.is_empty());
            if plan.session_key.is_none() && user.is_none() {
                plan.session_key = Some(format!("resp:{id}"));
            }
            let key = plan.session_key.clone().or_else(|| user.map(|u| format!("user:{u}")));
            let (_, full) =
                hearth_agent::session_key_for(&config, plan.agent.as_deref(), key.as_deref());
            Some((agents.store.clone(), full))
        }
        _ => None,
    };
    if prompt.stream {
        let start = {
            let (app, config, plan, id) =
                (app.clone(), Arc::clone(&config), plan.clone(), id.clone());
            async move {
                let started = relay::start(&app, &config, &plan, prompt).await?;
                if let Some((store, key)) = linked_session {
                    let _ = store.link_response(&id, &key, hearth_store::Timestamp::now()).await;
                }
                Ok(started)
            }
        };
        let conversations = Arc::clone(&app.conversations);
        return sse::respond_when_started(&app, start, move |made| {
            let shown = crate::chat::shown_for(&plan, made.as_ref().map(|(s, _)| *s));
            let messages = made.map(|(_, prompt)| prompt.messages).unwrap_or_default();
            ResponsesRender::new(id, shown, echo, messages, conversations)
        })
        .await;
    }
    let (started, prompt) = relay::start(&app, &config, &plan, prompt).await?;
    if let Some((store, key)) = linked_session {
        let _ = store.link_response(&id, &key, hearth_store::Timestamp::now()).await;
    }
    let shown = crate::chat::shown_model(&plan, &started.answer.model_ref);
    let (collected, answer) = relay::collect(started).await?;
    let output = output_items(&collected);
    let mut conversation = prompt.messages;
    conversation.push(assistant_message(
        &collected.text,
        &collected.reasoning,
        &collected.tool_calls,
    ));
    app.conversations.insert(id.clone(), conversation);
    let body = response_object(
        &id,
        &shown,
        crate::unix_now(),
        &echo,
        status_of(collected.finish.as_ref()),
        output,
        collected.usage.as_ref(),
        None,
    );
    let mut response = json_response(StatusCode::OK, &body);
    relay::answer_headers(&answer, response.headers_mut());
    Ok(response)
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
        mut extra,
        ..
    } = request;
    let top_p = extra.remove("top_p").and_then(|v| v.as_f64());
    crate::chat::check_sampling(temperature, top_p)?;
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
                    Some("function_call") => {
                        let get = |k: &str| {
                            item.get(k).and_then(Value::as_str).unwrap_or_default().to_owned()
                        };
                        let call = ToolCall {
                            id: get("call_id"),
                            name: get("name"),
                            arguments: get("arguments"),
                        };
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
                    Some("function_call_output") => {
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
    let echo_tools = tools.clone().unwrap_or_default();
    for (i, tool) in tools.into_iter().flatten().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].type"),
                "only function tools are supported",
            ));
        }
        let Some(name) = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].name"),
                "a tool needs a name",
            ));
        };
        prompt.tools.push(Tool {
            name: name.to_owned(),
            description: tool.get("description").and_then(Value::as_str).map(str::to_owned),
            parameters: tool
                .get("parameters")
                .cloned()
                .filter(|p| !p.is_null())
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    let echo_choice = tool_choice.clone().unwrap_or_else(|| Value::String("auto".to_owned()));
    prompt.tool_choice = match tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "auto" => Some(ToolChoice::Auto),
        Some(Value::String(s)) if s == "none" => Some(ToolChoice::None),
        Some(Value::String(s)) if s == "required" => Some(ToolChoice::Required),
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
            if !prompt.tools.iter().any(|t| t.name == name) {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!("tool_choice names `{name}`, which is not in `tools`"),
                ));
            }
            Some(ToolChoice::Function(name.to_owned()))
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"name\":…}",
            ));
        }
    };
    if let Some(effort) = reasoning.and_then(|r| r.effort) {
        prompt.passthrough.insert("reasoning_effort".to_owned(), Value::String(effort));
    }
    prompt.max_tokens = max_output_tokens;
    prompt.temperature = temperature;
    prompt.top_p = top_p;
    prompt.stream = stream.unwrap_or(false);
    let echo = Echo {
        instructions,
        max_output_tokens,
        previous_response_id,
        temperature,
        top_p,
        tools: echo_tools,
        tool_choice: echo_choice,
    };
    Ok((prompt, echo))
}

fn assistant_message(text: &str, reasoning: &str, tools: &[ToolCallAcc]) -> Message {
    Message {
        role: Role::Assistant,
        content: if text.is_empty() { Vec::new() } else { vec![Part::Text(text.to_owned())] },
        reasoning: (!reasoning.is_empty())
            .then(|| Reasoning { text: reasoning.to_owned(), signature: None }),
        tool_calls: tools
            .iter()
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

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}], "status": "completed"})
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" { json!([]) } else { json!([text_part(text)]) };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

fn function_item(id: &str, call: &ToolCallAcc, status: &str) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "call_id": call.id, "name": call.name, "arguments": call.arguments})
}

fn output_items(c: &Collected) -> Vec<Value> {
    let mut out = Vec::new();
    if !c.reasoning.is_empty() {
        out.push(reasoning_item(&crate::new_id("rs_"), &c.reasoning));
    }
    if !c.text.is_empty() || c.tool_calls.is_empty() {
        out.push(message_item(&crate::new_id("msg_"), &c.text, "completed"));
    }
    for call in &c.tool_calls {
        out.push(function_item(&crate::new_id("fc_"), call, "completed"));
    }
    out
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": u.input_tokens + u.output_tokens,
    })
}

#[expect(clippy::too_many_arguments, reason = "one response object, built from its parts")]
fn response_object(
    id: &str,
    model: &str,
    created_at: u64,
    echo: &Echo,
    status: &str,
    output: Vec<Value>,
    usage: Option<&Usage>,
    error: Option<Value>,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": if status == "incomplete" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": echo.previous_response_id,
        "reasoning": {"effort": null, "summary": null},
        "store": true,
        "temperature": echo.temperature,
        "text": {"format": {"type": "text"}},
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "metadata": {},
    })
}

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
    logprobs: Option<[(); 0]>,
}

#[derive(Debug)]
enum Open {
    Reasoning { id: String, text: String },
    Message { id: String, text: String },
    Function { id: String, call: ToolCallAcc },
}

/// Renders Responses stream events.
#[derive(Debug)]
pub struct ResponsesRender {
    id: String,
    model: String,
    created_at: u64,
    echo: Echo,
    sequence: u64,
    output: Vec<Value>,
    open: Option<Open>,
    usage: Option<Usage>,
    text: String,
    reasoning: String,
    tool_calls: Vec<ToolCallAcc>,
    conversation: Vec<Message>,
    conversations: Arc<Conversations>,
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
            tool_calls: Vec::new(),
            conversation,
            conversations,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &'static str, mut value: Map<String, Value>) {
        value.insert("type".to_owned(), Value::String(kind.to_owned()));
        value.insert("sequence_number".to_owned(), json!(self.sequence));
        self.sequence += 1;
        sse::named(out, kind, &value);
    }

    fn emit_delta(
        &mut self,
        out: &mut Vec<u8>,
        kind: &'static str,
        item_id: &str,
        delta: &str,
        logprobs: bool,
    ) {
        let event = DeltaEvent {
            kind,
            sequence_number: self.sequence,
            item_id,
            output_index: self.output.len() as u32,
            content_index: 0,
            delta,
            logprobs: logprobs.then_some([]),
        };
        self.sequence += 1;
        sse::named(out, kind, &event);
    }

    fn lifecycle(
        &mut self,
        out: &mut Vec<u8>,
        kind: &'static str,
        status: &str,
        error: Option<Value>,
    ) {
        let usage = self.usage;
        let response = response_object(
            &self.id,
            &self.model,
            self.created_at,
            &self.echo,
            status,
            self.output.clone(),
            usage.as_ref(),
            error,
        );
        let mut map = Map::new();
        map.insert("response".to_owned(), response);
        self.emit(out, kind, map);
    }

    fn fields(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let index = self.output.len();
        match open {
            Open::Reasoning { id, text } => {
                self.emit(
                    out,
                    "response.reasoning_text.done",
                    Self::fields(vec![
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("content_index", json!(0)),
                        ("text", json!(text)),
                    ]),
                );
                let item = reasoning_item(&id, &text);
                self.emit(
                    out,
                    "response.output_item.done",
                    Self::fields(vec![("output_index", json!(index)), ("item", item.clone())]),
                );
                self.output.push(item);
            }
            Open::Message { id, text } => {
                self.emit(
                    out,
                    "response.output_text.done",
                    Self::fields(vec![
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("content_index", json!(0)),
                        ("text", json!(text)),
                        ("logprobs", json!([])),
                    ]),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    Self::fields(vec![
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("content_index", json!(0)),
                        ("part", text_part(&text)),
                    ]),
                );
                let item = message_item(&id, &text, "completed");
                self.emit(
                    out,
                    "response.output_item.done",
                    Self::fields(vec![("output_index", json!(index)), ("item", item.clone())]),
                );
                self.output.push(item);
            }
            Open::Function { id, call } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    Self::fields(vec![
                        ("item_id", json!(id)),
                        ("output_index", json!(index)),
                        ("name", json!(call.name)),
                        ("arguments", json!(call.arguments)),
                    ]),
                );
                let item = function_item(&id, &call, "completed");
                self.emit(
                    out,
                    "response.output_item.done",
                    Self::fields(vec![("output_index", json!(index)), ("item", item.clone())]),
                );
                self.output.push(item);
                self.tool_calls.push(call);
            }
        }
    }
}

impl Render for ResponsesRender {
    fn start(&mut self, out: &mut Vec<u8>) {
        self.lifecycle(out, "response.created", "in_progress", None);
        self.lifecycle(out, "response.in_progress", "in_progress", None);
    }

    fn event(&mut self, event: Event, out: &mut Vec<u8>) -> bool {
        let index = self.output.len();
        match event {
            Event::ReasoningDelta(r) => {
                if !matches!(self.open, Some(Open::Reasoning { .. })) {
                    self.close(out);
                    let id = crate::new_id("rs_");
                    let index = self.output.len();
                    let item = json!({"id": id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"});
                    self.emit(
                        out,
                        "response.output_item.added",
                        Self::fields(vec![("output_index", json!(index)), ("item", item)]),
                    );
                    self.open = Some(Open::Reasoning { id, text: String::new() });
                }
                self.reasoning.push_str(&r);
                if let Some(Open::Reasoning { id, text }) = &mut self.open {
                    text.push_str(&r);
                    let id = id.clone();
                    self.emit_delta(out, "response.reasoning_text.delta", &id, &r, false);
                }
            }
            Event::ReasoningSignature(_) => {}
            Event::TextDelta(t) => {
                if !matches!(self.open, Some(Open::Message { .. })) {
                    self.close(out);
                    let id = crate::new_id("msg_");
                    let index = self.output.len();
                    self.emit(
                        out,
                        "response.output_item.added",
                        Self::fields(vec![
                            ("output_index", json!(index)),
                            ("item", message_item(&id, "", "in_progress")),
                        ]),
                    );
                    self.emit(
                        out,
                        "response.content_part.added",
                        Self::fields(vec![
                            ("item_id", json!(id)),
                            ("output_index", json!(index)),
                            ("content_index", json!(0)),
                            ("part", text_part("")),
                        ]),
                    );
                    self.open = Some(Open::Message { id, text: String::new() });
                }
                self.text.push_str(&t);
                if let Some(Open::Message { id, text }) = &mut self.open {
                    text.push_str(&t);
                    let id = id.clone();
                    self.emit_delta(out, "response.output_text.delta", &id, &t, true);
                }
            }
            Event::ToolCallDelta { index: call_index, id: call_id, name, arguments } => {
                let same = matches!(&self.open, Some(Open::Function { call, .. }) if call.index == call_index);
                if !same {
                    self.close(out);
                    let id = crate::new_id("fc_");
                    let call = ToolCallAcc {
                        index: call_index,
                        id: call_id.unwrap_or_else(|| crate::new_id("call_")),
                        name: name.unwrap_or_default(),
                        arguments: String::new(),
                    };
                    let index = self.output.len();
                    self.emit(
                        out,
                        "response.output_item.added",
                        Self::fields(vec![
                            ("output_index", json!(index)),
                            ("item", function_item(&id, &call, "in_progress")),
                        ]),
                    );
                    self.open = Some(Open::Function { id, call });
                } else if let (Some(n), Some(Open::Function { call, .. })) = (name, &mut self.open)
                {
                    call.name.push_str(&n);
                }
                if !arguments.is_empty()
                    && let Some(Open::Function { id, call }) = &mut self.open
                {
                    call.arguments.push_str(&arguments);
                    let id = id.clone();
                    self.emit_delta(
                        out,
                        "response.function_call_arguments.delta",
                        &id,
                        &arguments,
                        false,
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
                let mut conversation = std::mem::take(&mut self.conversation);
                conversation.push(assistant_message(&self.text, &self.reasoning, &self.tool_calls));
                self.conversations.insert(self.id.clone(), conversation);
                return true;
            }
            Event::Error(e) => {
                let _ = index;
                let err = ApiError::from_upstream(&e);
                let code = err.code.unwrap_or("server_error");
                self.lifecycle(
                    out,
                    "response.failed",
                    "failed",
                    Some(json!({"code": code, "message": err.message})),
                );
                sse::done(out);
                return true;
            }
        }
        false
    }
}
