//! `/v1/responses` (and the chat surface where the same decisions apply) through the real HTTP
//! surface against the scripted upstream: non-function tools (namespace, custom, hosted), the
//! full Responses object, structured output across APIs, overflow naming `input`, bad input in
//! the caller's shape with the field named. The real llama-server takes tools without
//! descriptions in every client API.
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, LlamaServer, Reply};
use serde_json::{Value, json};

mod common;
use common::{Gateway, client, start, state};

/// One provider per upstream API on the same fake upstream: `chat/m`, `resp/m`, `anth/m`.
fn config(upstream: &str) -> String {
    format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{upstream}/v1", api: "openai-completions", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
            resp: {{baseUrl: "{upstream}/v1", api: "openai-responses", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
            anth: {{baseUrl: "{upstream}", api: "anthropic-messages", apiKey: "sk-local", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
        }}}}}}"#
    )
}

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client().post(format!("{}{path}", gw.origin())).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn tool_call_body(name: &str, arguments: &str) -> String {
    json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
    .to_string()
}

fn tool_call_stream(name: &str, arguments: &str) -> Vec<String> {
    vec![
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]}}]}).to_string(),
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}, "finish_reason": "tool_calls"}]}).to_string(),
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).to_string(),
        "[DONE]".to_owned(),
    ]
}

const TEXT_BODY: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"done"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

/// The tool list Codex CLI sends, in small: functions, a `namespace` tool, a hosted
/// `web_search`, a free-form `custom` tool.
fn codex_tools() -> Value {
    json!([
        {"type": "function", "name": "exec_command", "description": "Run a command", "strict": false,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
        {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents", "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawn one", "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}},
            {"type": "function", "name": "wait_agent", "parameters": {"type": "object", "properties": {}}}]},
        {"type": "web_search", "external_web_access": false},
        {"type": "custom", "name": "apply_patch", "description": "Apply a patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}},
    ])
}

fn upstream_tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_tools_are_flattened_dropped_and_mapped_back() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&upstream.origin()), &[]), None).await;

    // Non-streaming: a call to a namespaced tool comes back in the client's namespaced form.
    upstream
        .push(Reply::json(200, &tool_call_body("multi_agent_v1__spawn_agent", r#"{"task":"x"}"#)));
    let request =
        json!({"model": "chat/m", "input": "go", "tools": codex_tools(), "tool_choice": "auto"});
    let (status, headers, body) = post(&gw, "/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-dropped"], "tools[2] (web_search)");
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(
        upstream_tool_names(&sent),
        [
            "exec_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__wait_agent",
            "apply_patch"
        ]
    );
    assert_eq!(
        sent["tools"][3]["function"]["parameters"]["required"],
        json!(["input"]),
        "a custom tool goes up as a function taking its free-form input"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call", "{v}");
    assert_eq!(
        (call["namespace"].as_str(), call["name"].as_str()),
        (Some("multi_agent_v1"), Some("spawn_agent"))
    );
    assert_eq!(call["arguments"], r#"{"task":"x"}"#);
    assert_eq!(v["tools"].as_array().unwrap().len(), 3, "the hosted tool is not echoed as applied");
    assert_eq!(v["tools"][0]["strict"], false);
    assert_eq!(
        v["tools"][1]["tools"][1]["strict"], false,
        "strict shown for tools in a namespace too"
    );

    // A tool_choice of a dropped hosted tool is dropped too, and the object shows what applied.
    upstream.push(Reply::json(200, TEXT_BODY));
    let request = json!({"model": "chat/m", "input": "go", "tools": codex_tools(), "tool_choice": {"type": "web_search"}});
    let (status, headers, body) = post(&gw, "/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-dropped"], "tools[2] (web_search), tool_choice (web_search)");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["tool_choice"], "auto");
    assert!(upstream.requests().last().unwrap().json().get("tool_choice").is_none());

    // Streaming: a custom tool's call comes back as a custom_tool_call with its input.
    let frames = tool_call_stream("apply_patch", r#"{"input":"*** Begin Patch"}"#);
    upstream.push(Reply::sse(&frames.iter().map(String::as_str).collect::<Vec<_>>()));
    let (status, headers, body) = post(
        &gw,
        "/v1/responses",
        &json!({"model": "chat/m", "input": "go", "tools": codex_tools(), "stream": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-dropped"], "tools[2] (web_search)");
    let events = sse_data(&body);
    let done: Vec<&Value> =
        events.iter().filter(|e| e["type"] == "response.output_item.done").collect();
    assert_eq!(done.len(), 1, "{body}");
    assert_eq!(
        (
            done[0]["item"]["type"].as_str(),
            done[0]["item"]["name"].as_str(),
            done[0]["item"]["input"].as_str()
        ),
        (Some("custom_tool_call"), Some("apply_patch"), Some("*** Begin Patch"))
    );
    assert!(
        events.iter().any(|e| e["type"] == "response.custom_tool_call_input.done"
            && e["input"] == "*** Begin Patch")
    );
    assert!(!events.iter().any(|e| e["type"] == "response.function_call_arguments.delta"));
    let completed = events.last().unwrap();
    assert_eq!(completed["type"], "response.completed");
    assert_eq!(completed["response"]["output"][0]["type"], "custom_tool_call");

    // The client sends the calls back in its own form; the upstream sees the flat names.
    upstream.push(Reply::json(200, TEXT_BODY));
    let request = json!({"model": "chat/m", "tools": codex_tools(), "input": [
        {"type": "message", "role": "user", "content": "go"},
        {"type": "function_call", "call_id": "call_1", "namespace": "multi_agent_v1", "name": "spawn_agent", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "spawned"},
        {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": "applied"},
    ]});
    let (status, _, body) = post(&gw, "/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.requests().last().unwrap().json();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[1]["tool_calls"][0]["function"]["name"], "multi_agent_v1__spawn_agent");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "content": "spawned", "tool_call_id": "call_1"})
    );
    assert_eq!(messages[3]["tool_calls"][0]["function"]["name"], "apply_patch");
    assert_eq!(
        messages[3]["tool_calls"][0]["function"]["arguments"],
        r#"{"input":"*** Begin Patch"}"#
    );
    assert_eq!(messages[4]["content"], "applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_tools_are_400s_naming_the_field_and_chat_maps_custom_tools() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&upstream.origin()), &[]), None).await;
    let cases = [
        (json!([{"type": "function", "name": "a"}, {"type": "teleport"}]), "tools[1].type"),
        (json!([{"name": "a"}]), "tools[0].type"),
        (json!([{"type": "function"}]), "tools[0].name"),
        (json!([{"type": "namespace", "name": "ns"}]), "tools[0].tools"),
        (
            json!([{"type": "namespace", "name": "ns", "tools": [{"type": "function", "parameters": {}}]}]),
            "tools[0].tools[0].name",
        ),
        (json!([{"type": "function", "name": "a", "parameters": "no"}]), "tools[0].parameters"),
    ];
    for (tools, param) in cases {
        let (status, _, body) =
            post(&gw, "/v1/responses", &json!({"model": "chat/m", "input": "hi", "tools": tools}))
                .await;
        assert_eq!(status, 400, "{tools}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["param"], param, "{body}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert!(upstream.requests().is_empty(), "nothing malformed went up");

    // Chat: a hosted tool type is dropped with a note; a `custom` tool goes up as a function
    // taking its input, and its call comes back as a custom call, whole or streamed.
    let chat_tools = json!([
        {"type": "web_search_preview"},
        {"type": "custom", "custom": {"name": "apply_patch", "description": "Apply a patch"}},
        {"type": "function", "function": {"name": "ls"}}]);
    upstream
        .push(Reply::json(200, &tool_call_body("apply_patch", r#"{"input":"*** Begin Patch"}"#)));
    let request = json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}], "tools": chat_tools});
    let (status, headers, body) = post(&gw, "/v1/chat/completions", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-dropped"], "tools[0] (web_search_preview)");
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(upstream_tool_names(&sent), ["apply_patch", "ls"]);
    assert_eq!(sent["tools"][0]["function"]["parameters"]["required"], json!(["input"]));
    assert!(sent["tools"][1]["function"].get("description").is_none(), "no null description");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0],
        json!({"id": "call_1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}})
    );
    let frames = tool_call_stream("apply_patch", r#"{"input":"*** Begin Patch"}"#);
    upstream.push(Reply::sse(&frames.iter().map(String::as_str).collect::<Vec<_>>()));
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let (status, _, body) = post(&gw, "/v1/chat/completions", &streamed).await;
    assert_eq!(status, 200, "{body}");
    let calls: Vec<Value> = sse_data(&body)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0].as_object().cloned())
        .map(Value::Object)
        .collect();
    assert_eq!(calls.len(), 1, "one whole custom call: {body}");
    assert_eq!(calls[0]["type"], "custom");
    assert_eq!(calls[0]["custom"], json!({"name": "apply_patch", "input": "*** Begin Patch"}));
    assert!(body.contains(r#""finish_reason":"tool_calls""#), "{body}");
    // The client replays the custom call; the upstream sees the function call it was.
    upstream.push(Reply::json(200, TEXT_BODY));
    let replay = json!({"model": "chat/m", "tools": chat_tools, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "applied"}]});
    let (status, _, body) = post(&gw, "/v1/chat/completions", &replay).await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(
        sent["messages"][1]["tool_calls"][0]["function"],
        json!({"name": "apply_patch", "arguments": r#"{"input":"*** Begin Patch"}"#})
    );
    // …and a tool without a type is a 400 naming it.
    let request = json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"function": {"name": "ls"}}]});
    let (status, _, body) = post(&gw, "/v1/chat/completions", &request).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["param"], "tools[0].type");
    let request = json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "custom", "custom": {}}]});
    let (status, _, body) = post(&gw, "/v1/chat/completions", &request).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["param"],
        "tools[0].custom.name"
    );
    // n > 1 is refused by name (hearth renders one choice).
    let request =
        json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}], "n": 2});
    let (status, _, body) = post(&gw, "/v1/chat/completions", &request).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["param"], "n");
}

/// Every field of the Responses object (OpenAI's API reference, the OpenResponses
/// `ResponseResource`).
const RESPONSE_FIELDS: &[&str] = &[
    "id",
    "object",
    "created_at",
    "completed_at",
    "status",
    "background",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "truncation",
    "usage",
    "user",
    "metadata",
];

fn check_object(label: &str, r: &Value, completed: bool) {
    for field in RESPONSE_FIELDS {
        assert!(r.get(*field).is_some(), "{label}: `{field}` missing in {r}");
    }
    assert_eq!(r["object"], "response");
    assert_eq!(r["store"], false, "{label}: the client's store:false is echoed");
    assert_eq!(r["max_output_tokens"], 256, "{label}: the cap applied (the model's maxTokens)");
    assert_eq!(r["temperature"], 0.5, "{label}");
    assert_eq!(r["top_p"], 0.9);
    assert_eq!(r["presence_penalty"], 0.25);
    assert_eq!(r["frequency_penalty"], 0.0);
    assert_eq!(r["top_logprobs"], 2);
    assert_eq!(r["max_tool_calls"], 3);
    assert_eq!(r["background"], false);
    assert_eq!(r["service_tier"], "default");
    assert_eq!(r["safety_identifier"], "user-1");
    assert_eq!(r["prompt_cache_key"], "thread-1");
    assert_eq!(r["parallel_tool_calls"], false);
    assert_eq!(r["metadata"], json!({"k": "v"}));
    assert_eq!(r["reasoning"], json!({"effort": "low", "summary": "auto"}));
    assert_eq!(r["text"]["format"], json!({"type": "json_object"}));
    assert_eq!(r["tools"][0]["strict"], false);
    assert_eq!(r["tools"][0]["description"], Value::Null);
    assert_eq!(
        r["completed_at"].is_u64(),
        completed,
        "{label}: completed_at {}",
        r["completed_at"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_object_has_every_field_with_the_values_applied() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&upstream.origin()), &[]), None).await;
    let request = |stream: bool| {
        json!({"model": "chat/m", "input": "hi", "stream": stream, "store": false, "max_output_tokens": 100000,
            "temperature": 0.5, "top_p": 0.9, "presence_penalty": 0.25, "top_logprobs": 2, "max_tool_calls": 3,
            "safety_identifier": "user-1", "prompt_cache_key": "thread-1", "parallel_tool_calls": false,
            "metadata": {"k": "v"}, "reasoning": {"effort": "low", "summary": "auto"},
            "text": {"format": {"type": "json_object"}},
            "tools": [{"type": "function", "name": "ls", "parameters": {"type": "object", "properties": {}}}]})
    };
    upstream.push(Reply::json(200, TEXT_BODY));
    let (status, _, body) = post(&gw, "/v1/responses", &request(false)).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    check_object("non-streaming", &v, true);
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_object"}),
        "text.format goes up as response_format"
    );
    assert_eq!((sent["logprobs"].as_bool(), sent["top_logprobs"].as_u64()), (Some(true), Some(2)));
    assert_eq!(sent["presence_penalty"], 0.25);
    assert_eq!(sent["parallel_tool_calls"], false);
    assert!(
        sent.get("store").is_none() && sent.get("safety_identifier").is_none(),
        "OpenAI-only fields stay home: {sent}"
    );
    // store:false: nothing is kept to continue from.
    let id = v["id"].as_str().unwrap();
    let (status, _, body) = post(
        &gw,
        "/v1/responses",
        &json!({"model": "chat/m", "input": "more", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["param"],
        "previous_response_id"
    );

    upstream.push(Reply::sse(&[
        r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"{}"},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]));
    let (status, _, body) = post(&gw, "/v1/responses", &request(true)).await;
    assert_eq!(status, 200, "{body}");
    let events = sse_data(&body);
    for kind in ["response.created", "response.in_progress", "response.completed"] {
        let e =
            events.iter().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("{kind} in {body}"));
        check_object(kind, &e["response"], kind == "response.completed");
    }

    // A failure mid-stream: response.failed carries the whole object as well.
    upstream.push(Reply::sse_raw(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n",
    ));
    let (status, _, body) = post(&gw, "/v1/responses", &request(true)).await;
    assert_eq!(status, 200, "{body}");
    let events = sse_data(&body);
    let failed = events.last().unwrap();
    assert_eq!(failed["type"], "response.failed", "{body}");
    check_object("response.failed", &failed["response"], false);
    assert_eq!(failed["response"]["status"], "failed");

    // A smaller request cap is the one applied and shown.
    upstream.push(Reply::json(200, TEXT_BODY));
    let (status, _, body) = post(
        &gw,
        "/v1/responses",
        &json!({"model": "chat/m", "input": "hi", "max_output_tokens": 100}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["max_output_tokens"], 100);
    assert_eq!(v["store"], true, "store defaults to true");
    assert_eq!(upstream.requests().last().unwrap().json()["max_tokens"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_output_reaches_every_upstream_api() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&upstream.origin()), &[]), None).await;
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let chat_format = json!({"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": true}});
    let responses_format =
        json!({"type": "json_schema", "name": "place", "schema": schema, "strict": true});
    let chat = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "where?"}], "response_format": chat_format});

    // Chat → Anthropic Messages: output_config.format.
    upstream.push(Reply::json(200, r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"{\"city\":\"Paris\"}"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":4}}"#));
    let (status, _, body) = post(&gw, "/v1/chat/completions", &chat("anth/m")).await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(
        sent["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}}),
        "{sent}"
    );
    assert!(sent.get("response_format").is_none());

    // Chat → Responses: text.format, not response_format.
    upstream.push(Reply::json(200, r#"{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","id":"m1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"{}","annotations":[]}]}],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}}"#));
    let (status, _, body) = post(&gw, "/v1/chat/completions", &chat("resp/m")).await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(sent["text"], json!({"format": responses_format}), "{sent}");
    assert!(sent.get("response_format").is_none());

    // Chat → chat: unchanged.
    upstream.push(Reply::json(200, TEXT_BODY));
    let (status, _, body) = post(&gw, "/v1/chat/completions", &chat("chat/m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.requests().last().unwrap().json()["response_format"], chat_format);

    // Responses text.format → chat upstream: response_format; → Anthropic: output_config.
    upstream.push(Reply::json(200, TEXT_BODY));
    let request =
        json!({"model": "chat/m", "input": "where?", "text": {"format": responses_format}});
    let (status, _, body) = post(&gw, "/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.requests().last().unwrap().json()["response_format"], chat_format);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["text"]["format"], responses_format);

    // Malformed formats: 400 naming the field, in each API's shape.
    let (status, _, body) = post(
        &gw,
        "/v1/responses",
        &json!({"model": "chat/m", "input": "x", "text": {"format": {"type": "xml"}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["param"], "text.format.type");
    let bad = json!({"model": "chat/m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "n"}}});
    let (status, _, body) = post(&gw, "/v1/chat/completions", &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["param"],
        "response_format.json_schema.schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflow_on_responses_names_input() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&config(&upstream.origin()), &[]), None).await;
    let overflow = r#"{"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":13392,"n_ctx":8192}}"#;
    for stream in [false, true] {
        upstream.push(Reply::json(400, overflow));
        let (status, _, body) = post(
            &gw,
            "/v1/responses",
            &json!({"model": "chat/m", "input": "hi", "stream": stream}),
        )
        .await;
        assert_eq!(status, 400, "stream={stream}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["param"], "input", "{body}");
        assert_eq!(v["error"]["code"], "context_length_exceeded");
    }
    // Chat still names `messages`.
    upstream.push(Reply::json(400, overflow));
    let (status, _, body) = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["param"], "messages");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_without_description_works_against_the_real_llama_server_in_every_api() {
    let server = LlamaServer::start(1024)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let origin = server.origin();
    let config = format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "tiny", maxTokens: 8, contextWindow: 1024}}]}},
            resp: {{baseUrl: "{origin}/v1", api: "openai-responses", models: [{{id: "tiny", maxTokens: 8, contextWindow: 1024}}]}},
            anth: {{baseUrl: "{origin}", api: "anthropic-messages", apiKey: "sk-local", models: [{{id: "tiny", maxTokens: 8, contextWindow: 1024}}]}},
        }}}}}}"#
    );
    let gw = start(state(&config, &[]), None).await;
    let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
    let requests = [
        (
            "/v1/chat/completions",
            json!({"model": "llama/tiny", "messages": [{"role": "user", "content": "list"}],
            "tools": [{"type": "function", "function": {"name": "ls", "parameters": schema}}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "llama/tiny", "input": "list",
            "tools": [{"type": "function", "name": "ls", "parameters": schema}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "llama/tiny", "max_tokens": 8, "messages": [{"role": "user", "content": "list"}],
            "tools": [{"name": "ls", "input_schema": schema}]}),
        ),
    ];
    // Every client API × every upstream API llama-server speaks, streaming and not.
    for upstream in ["chat", "resp", "anth"] {
        for (path, body) in &requests {
            for stream in [false, true] {
                let mut body = body.clone();
                body["model"] = json!(format!("{upstream}/tiny"));
                body["stream"] = json!(stream);
                let (status, _, answer) = post(&gw, path, &body).await;
                assert_eq!(status, 200, "{path} via {upstream} stream={stream}: {answer}");
                assert!(!answer.contains("type must be string"), "{path}: {answer}");
            }
        }
    }
}
