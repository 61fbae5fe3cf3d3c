//! Requests are routed by what they carry: images go only to models whose entry takes images
//! (`input: ["text", "image"]`), to the agent's `imageModel` when the active model takes text
//! only, and are refused with a clear error when nothing can take them; never silently sent to
//! a text-only model. See: #15
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

mod common;
use common::{client, start, state};

const CHAT_BODY: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"a cat"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

fn config(txt: &str, vis: &str, extra: &str) -> String {
    format!(
        r#"{{models: {{mode: "replace", providers: {{
            txt: {{baseUrl: "{txt}/v1", api: "openai-completions", models: [{{id: "m"}}]}},
            vis: {{baseUrl: "{vis}/v1", api: "openai-completions", models: [{{id: "vision:7b", input: ["text", "image"]}}]}}}}}},
          agents: {{defaults: {{ {extra} }}}}}}"#
    )
}

async fn post(origin: &str, path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = client()
        .post(format!("{origin}{path}"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

fn chat_with_image(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": PNG}}]}]})
}

/// A text-only primary with an image-capable fallback: images skip the primary, text does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_skip_a_text_only_model_for_an_image_capable_fallback() {
    let (txt, vis) = (FakeUpstream::start().await.unwrap(), FakeUpstream::start().await.unwrap());
    let gw = start(
        state(
            &config(
                &txt.origin(),
                &vis.origin(),
                r#"model: {primary: "vis/vision:7b", fallbacks: ["txt/m"]}"#,
            ),
            &[],
        ),
        None,
    )
    .await;
    // The request names the text-only model: its chain (it, then the configured fallbacks and
    // primary) keeps only what takes images.
    vis.push(Reply::json(200, CHAT_BODY));
    let (status, headers, body) =
        post(&gw.origin(), "/v1/chat/completions", &chat_with_image("txt/m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-provider"], "vis");
    assert!(txt.requests().is_empty(), "the text-only model never saw the image");
    let sent = vis.requests()[0].json();
    assert_eq!(sent["messages"][0]["content"][1]["image_url"]["url"], PNG);
    // Text goes where it was asked.
    txt.push(Reply::json(200, CHAT_BODY));
    let (status, headers, _) = post(
        &gw.origin(),
        "/v1/chat/completions",
        &json!({"model": "txt/m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!((status, headers["x-hearth-provider"].to_str().unwrap()), (200, "txt"));
}

/// The active model takes text only and `imageModel` is set (a bare id naming the one
/// image-capable entry): the image model answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_model_answers_for_a_text_only_model() {
    let (txt, vis) = (FakeUpstream::start().await.unwrap(), FakeUpstream::start().await.unwrap());
    let gw = start(
        state(
            &config(&txt.origin(), &vis.origin(), r#"model: "txt/m", imageModel: "vision:7b""#),
            &[],
        ),
        None,
    )
    .await;
    vis.push(Reply::json(200, CHAT_BODY));
    vis.push(Reply::json(200, CHAT_BODY));
    let (status, headers, body) =
        post(&gw.origin(), "/v1/chat/completions", &chat_with_image("txt/m")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-provider"], "vis");
    // An image in a tool result counts too (Messages).
    let messages = json!({"model": "txt/m", "max_tokens": 64, "messages": [
        {"role": "user", "content": "take a screenshot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}]});
    let (status, headers, body) = post(&gw.origin(), "/v1/messages", &messages).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-hearth-provider"], "vis");
    assert!(txt.requests().is_empty());
}

/// Nothing takes images: a 400 in each API's own shape that names the model and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_takes_images_is_a_clear_error_in_every_api() {
    let (txt, vis) = (FakeUpstream::start().await.unwrap(), FakeUpstream::start().await.unwrap());
    let gw =
        start(state(&config(&txt.origin(), &vis.origin(), r#"model: "txt/m""#), &[]), None).await;
    let (status, _, body) =
        post(&gw.origin(), "/v1/chat/completions", &chat_with_image("txt/m")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "messages");
    assert_eq!(body["error"]["code"], "model_does_not_take_images");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`txt/m` takes text only") && message.contains("imageModel"),
        "{message}"
    );

    let responses = json!({"model": "txt/m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "what is this?"}, {"type": "input_image", "image_url": PNG}]}]});
    let (status, _, body) = post(&gw.origin(), "/v1/responses", &responses).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "input");

    let messages = json!({"model": "txt/m", "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "text", "text": "what is this?"}]}]});
    let (status, _, body) = post(&gw.origin(), "/v1/messages", &messages).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["type"].as_str(), body["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error"))
    );
    assert!(txt.requests().is_empty() && vis.requests().is_empty(), "nothing was sent anywhere");
}
