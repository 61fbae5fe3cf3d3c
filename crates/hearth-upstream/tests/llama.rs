//! Conformance against the real llama.cpp `llama-server` with the tiny generated model
//! (`scripts/testbed/setup.sh`): every API hearth speaks to it, streaming and not.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;

use futures::StreamExt;
use hearth_config::{Config, load_str};
use hearth_testkit::LlamaServer;
use hearth_upstream::{Client, ErrorClass, Event, FinishReason, Prompt, Target};

fn server(ctx: u32) -> LlamaServer {
    LlamaServer::start(ctx).unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"))
}

fn config(server: &LlamaServer) -> Config {
    let origin = server.origin();
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "tiny", maxTokens: 16, contextWindow: {ctx}, cost: {{input: 1, output: 2}}}}]}},
            responses: {{baseUrl: "{origin}/v1", api: "openai-responses", models: [{{id: "tiny", maxTokens: 16}}]}},
            messages: {{baseUrl: "{origin}", api: "anthropic-messages", apiKey: "sk-local", models: [{{id: "tiny", maxTokens: 16}}]}},
        }}}}}}"#,
        ctx = server.ctx_size
    );
    let loaded = load_str("llama.json5", &text, &BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config.unwrap()
}

async fn call(
    config: &Config,
    provider: &str,
    prompt: &Prompt,
) -> Result<Vec<Event>, hearth_upstream::UpstreamError> {
    let provider = &config.providers[provider];
    let model = provider.model("tiny").unwrap();
    let client = Client::new(provider)?;
    let stream = client
        .send(
            &Target { provider, model, params: None, served_max: None },
            prompt,
            &BTreeMap::<String, String>::new(),
        )
        .await?;
    Ok(stream.collect().await)
}

fn check_answer(label: &str, events: &[Event]) {
    let text: String = events
        .iter()
        .filter_map(|e| if let Event::TextDelta(t) = e { Some(t.as_str()) } else { None })
        .collect();
    let errors: Vec<_> = events.iter().filter(|e| matches!(e, Event::Error(_))).collect();
    assert!(errors.is_empty(), "{label}: {errors:?}");
    assert!(!text.is_empty(), "{label}: no text in {events:?}");
    let usage = events
        .iter()
        .rev()
        .find_map(|e| if let Event::Usage(u) = e { Some(*u) } else { None })
        .unwrap();
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0, "{label}: {usage:?}");
    assert!(!usage.estimated, "{label}: llama-server reports usage; it must not be estimated");
    let finish =
        events.iter().find_map(|e| if let Event::Finish(f) = e { Some(f.clone()) } else { None });
    assert!(
        matches!(finish, Some(FinishReason::Length | FinishReason::Stop)),
        "{label}: {finish:?}"
    );
    assert!(matches!(events.last(), Some(Event::Finish(_))), "{label}: Finish is last");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_responses_and_messages_streaming_and_not() {
    let server = server(512);
    let config = config(&server);
    for provider in ["chat", "responses", "messages"] {
        for stream in [false, true] {
            let prompt = Prompt { stream, ..Prompt::text(Some("You are terse."), "Say hello.") };
            let events = call(&config, provider, &prompt)
                .await
                .unwrap_or_else(|e| panic!("{provider} stream={stream}: {e}"));
            check_answer(&format!("{provider} stream={stream}"), &events);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn models_are_listed() {
    let server = server(512);
    let (status, body) = server.get("/v1/models").unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["data"].as_array().unwrap().iter().any(|m| m["id"] == "tiny"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prompt_larger_than_the_context_is_overflow_with_both_numbers() {
    let server = server(256);
    let config = config(&server);
    let long = "word ".repeat(600);
    for provider in ["chat", "responses", "messages"] {
        for stream in [false, true] {
            let prompt = Prompt { stream, ..Prompt::text(None, &long) };
            let error = match call(&config, provider, &prompt).await {
                Err(e) => e,
                Ok(events) => match events
                    .into_iter()
                    .find_map(|e| if let Event::Error(e) = e { Some(e) } else { None })
                {
                    Some(e) => e,
                    None => panic!("{provider} stream={stream}: no error for an oversized prompt"),
                },
            };
            assert_eq!(
                error.class,
                ErrorClass::ContextOverflow,
                "{provider} stream={stream}: {error:?}"
            );
            let overflow = error.overflow.unwrap();
            assert_eq!(overflow.context_size, Some(256), "{provider}: {error:?}");
            assert!(overflow.prompt_tokens.unwrap() > 256, "{provider}: {error:?}");
        }
    }
}

/// Tool calls written as text (issue 15) from the real server: a GBNF grammar makes the tiny
/// model write a Hermes call into its content (llama-server refuses a grammar beside tools, so
/// the row sends none: `compat.supportsTools: false`, as for a server whose template has no tool
/// support), and hearth hands back a structured call, chat and Responses, streaming (the
/// Responses stream comes one byte a delta) and not.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_real_server_writes_as_text_comes_back_structured() {
    let server = server(1024);
    let origin = server.origin();
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{
            chat: {{baseUrl: "{origin}/v1", api: "openai-completions", models: [{{id: "tiny", maxTokens: 200, compat: {{supportsTools: false}}}}]}},
            responses: {{baseUrl: "{origin}/v1", api: "openai-responses", models: [{{id: "tiny", maxTokens: 200, compat: {{supportsTools: false}}}}]}},
        }}}}}}"#
    );
    let loaded = load_str("llama.json5", &text, &BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    let written = r#"Checking. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>"#;
    let grammar = format!("root ::= {}", serde_json::to_string(written).unwrap());
    for provider in ["chat", "responses"] {
        for stream in [false, true] {
            let label = format!("{provider} stream={stream}");
            let mut prompt = Prompt {
                stream,
                tools: vec![hearth_upstream::Tool {
                    name: "get_weather".into(),
                    description: None,
                    parameters: serde_json::json!({"type": "object"}),
                }],
                temperature: Some(0.0),
                ..Prompt::text(None, "Weather in Paris?")
            };
            prompt.passthrough.insert("grammar".into(), grammar.clone().into());
            let events =
                call(&config, provider, &prompt).await.unwrap_or_else(|e| panic!("{label}: {e}"));
            let text: String = events
                .iter()
                .filter_map(|e| if let Event::TextDelta(t) = e { Some(t.as_str()) } else { None })
                .collect();
            let calls: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::ToolCallDelta { id, name, arguments, .. } => {
                        Some((id.clone(), name.clone(), arguments.clone()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(text, "Checking. ", "{label}: {events:?}");
            let [(Some(id), Some(name), arguments)] = &calls[..] else {
                panic!("{label}: {events:?}")
            };
            assert!(id.starts_with("call_"), "{label}: {id}");
            assert_eq!(
                (name.as_str(), arguments.as_str()),
                ("get_weather", r#"{"city": "Paris"}"#)
            );
            assert!(
                matches!(events.last(), Some(Event::Finish(FinishReason::ToolCalls))),
                "{label}: {events:?}"
            );
        }
    }
}
