//! Token logprobs through the real HTTP surface (issue 12): the real llama-server's logprobs
//! reach chat and Responses clients, streaming and not, with tokens that spell the answer; a
//! Responses upstream is asked in its own fields and its logprobs (shaped as OpenAI's API
//! reference shows them) reach both client APIs; an upstream without logprobs answers with
//! them named in `x-hearth-dropped`, never a 400; a client that did not ask sees today's output.
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, LlamaServer, Reply};
use serde_json::{Value, json};

mod common;
use common::{Gateway, client, start, state};

const INCLUDE: &str = "message.output_text.logprobs";

async fn post(gw: &Gateway, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client().post(format!("{}{path}", gw.origin())).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// The JSON `data:` of every SSE frame but `[DONE]`.
fn sse_data(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn tokens_text(tokens: &[Value]) -> String {
    tokens.iter().map(|t| t["token"].as_str().unwrap()).collect()
}

/// Every entry has a token, a logprob and `top` alternatives (at most `top`, at least one);
/// `bytes`: whether entries and alternatives carry their UTF-8 bytes.
#[track_caller]
fn check_tokens(label: &str, tokens: &[Value], top: usize, bytes: bool) {
    assert!(!tokens.is_empty(), "{label}: no tokens");
    for t in tokens {
        assert!(t["token"].is_string() && t["logprob"].is_f64(), "{label}: {t}");
        let alternatives = t["top_logprobs"].as_array().unwrap();
        assert!((1..=top).contains(&alternatives.len()), "{label}: {t}");
        for entry in std::iter::once(t).chain(alternatives) {
            assert!(entry["logprob"].as_f64().unwrap() <= 0.0, "{label}: {entry}");
            if bytes {
                let b: Vec<u8> = entry["bytes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
                    .collect();
                assert_eq!(b, entry["token"].as_str().unwrap().as_bytes(), "{label}: {entry}");
            } else {
                assert!(entry.get("bytes").is_none(), "{label}: {entry}");
            }
        }
    }
}

/// A whole chat completion: `(text, logprobs.content)`.
fn chat_whole(body: &str) -> (String, Value) {
    let v: Value = serde_json::from_str(body).unwrap();
    let choice = &v["choices"][0];
    (
        choice["message"]["content"].as_str().unwrap_or_default().to_owned(),
        choice["logprobs"].clone(),
    )
}

/// A chat stream: the text, and every chunk's `(content, logprobs.content)` where it has them.
fn chat_stream(body: &str) -> (String, Vec<(String, Vec<Value>)>) {
    let mut text = String::new();
    let mut carried = Vec::new();
    for chunk in sse_data(body) {
        let Some(choice) = chunk["choices"].get(0) else { continue };
        let content = choice["delta"]["content"].as_str().unwrap_or_default();
        text.push_str(content);
        let logprobs = &choice["logprobs"];
        if !logprobs.is_null() {
            assert_eq!(logprobs["refusal"], Value::Null, "{chunk}");
            carried.push((content.to_owned(), logprobs["content"].as_array().unwrap().clone()));
        }
    }
    (text, carried)
}

/// The `output_text` part of a Responses object.
fn output_text(response: &Value) -> Value {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "message")
        .map(|i| i["content"][0].clone())
        .unwrap()
}

/// A Responses stream: the deltas' `(delta, logprobs)`, the `output_text.done` event and the
/// final response.
fn responses_stream(body: &str) -> (Vec<(String, Vec<Value>)>, Value, Value) {
    let events = sse_data(body);
    let deltas = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| {
            (e["delta"].as_str().unwrap().to_owned(), e["logprobs"].as_array().unwrap().clone())
        })
        .collect();
    let done = events.iter().find(|e| e["type"] == "response.output_text.done").unwrap().clone();
    // `response.incomplete` when the answer ran into the cap.
    let completed = events
        .iter()
        .find(|e| e["type"] == "response.completed" || e["type"] == "response.incomplete")
        .unwrap()["response"]
        .clone();
    (deltas, done, completed)
}

#[tokio::test(flavor = "multi_thread")]
async fn llama_server_logprobs_reach_chat_and_responses_clients() {
    let server = LlamaServer::start(1024)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let origin = server.origin();
    let config = format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "tiny", maxTokens: 8, contextWindow: 1024}}]}},
        }}}}}}"#
    );
    let gw = start(state(&config, &[]), None).await;
    let chat = json!({"model": "chat/tiny", "messages": [{"role": "user", "content": "hi"}],
        "logprobs": true, "top_logprobs": 2, "max_tokens": 6});

    // Chat, whole: `choices[0].logprobs.content` spells the answer.
    let (status, _, body) = post(&gw, "/v1/chat/completions", &chat).await;
    assert_eq!(status, 200, "{body}");
    let (text, logprobs) = chat_whole(&body);
    assert_eq!(logprobs["refusal"], Value::Null, "{body}");
    let tokens = logprobs["content"].as_array().unwrap();
    check_tokens("chat whole", tokens, 2, true);
    assert!(!text.is_empty(), "{body}");
    assert_eq!(tokens_text(tokens), text, "{body}");

    // Chat, streaming: each text chunk carries its own tokens.
    let mut streaming = chat.clone();
    streaming["stream"] = json!(true);
    let (status, _, body) = post(&gw, "/v1/chat/completions", &streaming).await;
    assert_eq!(status, 200, "{body}");
    let (text, carried) = chat_stream(&body);
    assert!(!text.is_empty(), "{body}");
    let mut all = Vec::new();
    for (content, tokens) in &carried {
        check_tokens("chat stream", tokens, 2, true);
        assert_eq!(&tokens_text(tokens), content, "{body}");
        all.extend(tokens.iter().cloned());
    }
    assert_eq!(tokens_text(&all), text, "{body}");

    // Responses client → chat upstream, whole: the `output_text` part's logprobs.
    let responses = json!({"model": "chat/tiny", "input": "hi", "top_logprobs": 2,
        "include": [INCLUDE], "max_output_tokens": 6});
    let (status, _, body) = post(&gw, "/v1/responses", &responses).await;
    assert_eq!(status, 200, "{body}");
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(response["top_logprobs"], 2);
    let part = output_text(&response);
    let tokens = part["logprobs"].as_array().unwrap();
    check_tokens("responses whole", tokens, 2, true);
    assert_eq!(tokens_text(tokens), part["text"].as_str().unwrap(), "{body}");

    // Responses, streaming: each delta's logprobs (no bytes there), the done event, the part.
    let mut streaming = responses.clone();
    streaming["stream"] = json!(true);
    let (status, _, body) = post(&gw, "/v1/responses", &streaming).await;
    assert_eq!(status, 200, "{body}");
    let (deltas, done, completed) = responses_stream(&body);
    let mut all = Vec::new();
    for (delta, tokens) in &deltas {
        if !tokens.is_empty() {
            check_tokens("responses delta", tokens, 2, false);
            assert_eq!(&tokens_text(tokens), delta, "{body}");
        }
        all.extend(tokens.iter().cloned());
    }
    let text: String = deltas.iter().map(|(d, _)| d.as_str()).collect();
    assert!(!text.is_empty(), "{body}");
    assert_eq!(tokens_text(&all), text, "{body}");
    assert_eq!(done["logprobs"].as_array().unwrap(), &all, "{body}");
    let part = output_text(&completed);
    check_tokens("responses completed", part["logprobs"].as_array().unwrap(), 2, true);
    assert_eq!(tokens_text(part["logprobs"].as_array().unwrap()), text, "{body}");
}

/// One provider per upstream API on the same fake upstream.
fn fake_config(upstream: &str) -> String {
    format!(
        r#"{{gateway: {{auth: {{mode: "none"}}}}, models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{upstream}/v1", api: "openai-completions", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
            resp: {{baseUrl: "{upstream}/v1", api: "openai-responses", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
            anth: {{baseUrl: "{upstream}", api: "anthropic-messages", apiKey: "sk-local", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
            olla: {{baseUrl: "{upstream}", api: "ollama", models: [{{id: "m", maxTokens: 256, contextWindow: 4096}}]}},
        }}}}}}"#
    )
}

/// Logprobs as OpenAI's Responses API reference shows them on an `output_text` part.
fn responses_logprobs() -> Value {
    json!([
        {"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": [
            {"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
            {"token": "Hello", "logprob": -2.5, "bytes": [72, 101, 108, 108, 111]}]},
        {"token": " there", "logprob": -0.3, "bytes": [32, 116, 104, 101, 114, 101], "top_logprobs": [
            {"token": " there", "logprob": -0.3, "bytes": [32, 116, 104, 101, 114, 101]},
            {"token": "!", "logprob": -1.9, "bytes": [33]}]},
    ])
}

/// The same entries as a `response.output_text.delta` carries them (no bytes).
fn delta_logprobs(entry: &Value) -> Value {
    json!([{"token": entry["token"], "logprob": entry["logprob"], "top_logprobs":
        entry["top_logprobs"].as_array().unwrap().iter()
            .map(|t| json!({"token": t["token"], "logprob": t["logprob"]})).collect::<Vec<_>>()}])
}

fn responses_body() -> String {
    json!({"id": "resp_1", "object": "response", "status": "completed", "output": [{"type": "message",
        "id": "msg_1", "role": "assistant", "status": "completed", "content": [{"type": "output_text",
        "text": "Hi there", "annotations": [], "logprobs": responses_logprobs()}]}],
        "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}})
    .to_string()
}

fn responses_events() -> Vec<String> {
    let lp = responses_logprobs();
    let delta = |i: usize, text: &str| {
        json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
            "content_index": 0, "delta": text, "logprobs": delta_logprobs(&lp[i]), "sequence_number": 3 + i})
        .to_string()
    };
    vec![
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "status": "in_progress", "output": []}}).to_string(),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}}).to_string(),
        json!({"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}).to_string(),
        delta(0, "Hi"),
        delta(1, " there"),
        json!({"type": "response.completed", "sequence_number": 5, "response": {"id": "resp_1", "status": "completed",
            "output": [], "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}}).to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_upstream_is_asked_in_its_fields_and_its_logprobs_reach_both_clients() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&fake_config(&upstream.origin()), &[]), None).await;
    let expected = responses_logprobs();

    // Responses client, whole: the upstream gets `top_logprobs` and the include; the part
    // carries the upstream's logprobs as they came.
    upstream.push(Reply::json(200, &responses_body()));
    let request =
        json!({"model": "resp/m", "input": "hi", "top_logprobs": 2, "include": [INCLUDE]});
    let (status, headers, body) = post(&gw, "/v1/responses", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("x-hearth-dropped").is_none());
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(sent["top_logprobs"], 2, "{sent}");
    assert_eq!(sent["include"], json!([INCLUDE]), "{sent}");
    assert!(sent.get("logprobs").is_none(), "{sent}");
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(output_text(&response)["logprobs"], expected, "{body}");

    // Responses client, streaming: deltas carry theirs, the done event and the part all of them.
    upstream.push(Reply::sse(&responses_events().iter().map(String::as_str).collect::<Vec<_>>()));
    let mut streaming = request.clone();
    streaming["stream"] = json!(true);
    let (status, _, body) = post(&gw, "/v1/responses", &streaming).await;
    assert_eq!(status, 200, "{body}");
    let (deltas, done, completed) = responses_stream(&body);
    assert_eq!(
        deltas,
        vec![
            ("Hi".to_owned(), delta_logprobs(&expected[0]).as_array().unwrap().clone()),
            (" there".to_owned(), delta_logprobs(&expected[1]).as_array().unwrap().clone()),
        ],
        "{body}"
    );
    let all: Vec<Value> = deltas.iter().flat_map(|(_, l)| l.iter().cloned()).collect();
    assert_eq!(done["logprobs"], Value::Array(all), "{body}");
    // The stream had no bytes: the part shows each token's UTF-8 bytes.
    assert_eq!(output_text(&completed)["logprobs"], expected, "{body}");

    // Chat client → Responses upstream, streaming: chat's shape, on the text's chunk.
    upstream.push(Reply::sse(&responses_events().iter().map(String::as_str).collect::<Vec<_>>()));
    let chat = json!({"model": "resp/m", "messages": [{"role": "user", "content": "hi"}],
        "logprobs": true, "top_logprobs": 2, "stream": true});
    let (status, _, body) = post(&gw, "/v1/chat/completions", &chat).await;
    assert_eq!(status, 200, "{body}");
    let sent = upstream.requests().last().unwrap().json();
    assert_eq!(
        (sent["top_logprobs"].clone(), sent["include"].clone()),
        (json!(2), json!([INCLUDE]))
    );
    let (text, carried) = chat_stream(&body);
    assert_eq!(text, "Hi there");
    assert_eq!(carried.len(), 2, "{body}");
    assert_eq!(carried[0].0, "Hi");
    assert_eq!(carried[0].1[0]["token"], "Hi");
    assert_eq!(carried[0].1[0]["bytes"], Value::Null, "chat says null for unknown bytes: {body}");
    assert_eq!(
        carried[1].1[0]["top_logprobs"][1],
        json!({"token": "!", "logprob": -1.9, "bytes": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_without_logprobs_answer_and_say_they_were_dropped() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&fake_config(&upstream.origin()), &[]), None).await;
    let anthropic = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    let ollama = r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"ok"},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":1}"#;
    for (model, reply) in [("anth/m", anthropic), ("olla/m", ollama)] {
        upstream.push(Reply::json(200, reply));
        let chat = json!({"model": model, "messages": [{"role": "user", "content": "hi"}],
            "logprobs": true, "top_logprobs": 2});
        let (status, headers, body) = post(&gw, "/v1/chat/completions", &chat).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(headers["x-hearth-dropped"], "logprobs", "{model}");
        let sent = upstream.requests().last().unwrap().json();
        assert!(sent.get("logprobs").is_none() && sent.get("top_logprobs").is_none(), "{sent}");
        assert_eq!(chat_whole(&body).1, Value::Null, "{body}");

        upstream.push(Reply::json(200, reply));
        let responses = json!({"model": model, "input": "hi", "include": [INCLUDE]});
        let (status, headers, body) = post(&gw, "/v1/responses", &responses).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(headers["x-hearth-dropped"], "logprobs", "{model}");
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(output_text(&response)["logprobs"], json!([]), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_did_not_ask_sees_no_logprobs_and_bad_counts_are_400s() {
    let upstream = FakeUpstream::start().await.unwrap();
    let gw = start(state(&fake_config(&upstream.origin()), &[]), None).await;
    // An upstream that sends them anyway (a `params` setting may ask it to).
    let chunk = r#"{"choices":[{"index":0,"delta":{"content":"ok"},"logprobs":{"content":[{"token":"ok","logprob":-0.2,"bytes":[111,107],"top_logprobs":[]}]},"finish_reason":null}]}"#;
    let end = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    upstream.push(Reply::sse(&[chunk, end, "[DONE]"]));
    let chat =
        json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let (status, headers, body) = post(&gw, "/v1/chat/completions", &chat).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("x-hearth-dropped").is_none());
    let sent = upstream.requests().last().unwrap().json();
    assert!(sent.get("logprobs").is_none() && sent.get("top_logprobs").is_none(), "{sent}");
    for c in sse_data(&body) {
        if let Some(choice) = c["choices"].get(0) {
            assert_eq!(choice["logprobs"], Value::Null, "{c}");
        }
    }

    for (request, param) in [
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"logprobs": true, "top_logprobs": 21}), "top_logprobs"),
        (json!({"logprobs": "yes"}), "logprobs"),
    ] {
        let mut body = json!({"model": "chat/m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut().unwrap().extend(request.as_object().unwrap().clone());
        let (status, _, answer) = post(&gw, "/v1/chat/completions", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["error"]["param"], param);
    }
}
