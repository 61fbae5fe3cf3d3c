//! OpenRouter's provider routing (`params.provider`) in the body an upstream receives: merged
//! key by key (the provider's < the model entry's < `agents.defaults.models[ref]`'s), sent to
//! OpenRouter (the provider `openrouter`, here at a scripted upstream) on chat and Responses,
//! and never to any other server, whatever its params say. See: #15 (item 7).
#![expect(clippy::unwrap_used, reason = "tests")]

use hearth_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

mod common;
use common::{client, start, state};

const CHAT_BODY: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
const RESPONSES_BODY: &str = r#"{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","id":"m1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"hi","annotations":[]}]}],"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openrouter_gets_the_merged_routing_and_no_other_server_gets_any() {
    let up = FakeUpstream::start_calls_only().await.unwrap();
    let origin = up.origin();
    let config = format!(
        r#"{{models: {{mode: "replace", providers: {{
            openrouter: {{baseUrl: "{origin}/v1", apiKey: "or-test-key",
              params: {{provider: {{only: ["deepinfra"], allow_fallbacks: false, data_collection: "deny"}}}},
              models: [
                {{id: "minimax/minimax-m2", params: {{provider: {{only: ["deepinfra/us"], zdr: true}}}}}},
                {{id: "moonshotai/kimi-k2", api: "openai-responses"}},
                {{id: "z-ai/glm-4.6"}}]}},
            vllm: {{baseUrl: "{origin}/v1", api: "openai-completions",
              params: {{provider: {{zdr: true}}, temperature: 0.3}}, models: [{{id: "m"}}]}}}}}},
          agents: {{defaults: {{model: {{primary: "openrouter/minimax/minimax-m2"}},
            models: {{"openrouter/z-ai/glm-4.6": {{params: {{provider: {{sort: "throughput", allow_fallbacks: true}}}}}},
                      "vllm/m": {{params: {{provider: {{only: ["x"]}}}}}}}}}}}}}}"#
    );
    let gw = start(state(&config, &[]), None).await;
    let cases = [
        ("/v1/chat/completions", "openrouter/minimax/minimax-m2", CHAT_BODY),
        ("/v1/responses", "openrouter/moonshotai/kimi-k2", RESPONSES_BODY),
        ("/v1/chat/completions", "openrouter/z-ai/glm-4.6", CHAT_BODY),
        ("/v1/chat/completions", "vllm/m", CHAT_BODY),
    ];
    for (path, model, reply) in cases {
        up.push(Reply::json(200, reply));
        let body = if path == "/v1/responses" {
            json!({"model": model, "input": "hi"})
        } else {
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        };
        let response =
            client().post(format!("{}{path}", gw.origin())).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 200, "{model}: {}", response.text().await.unwrap());
    }
    let requests = up.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/v1/chat/completions", "/v1/responses", "/v1/chat/completions", "/v1/chat/completions"]
    );
    let bodies: Vec<Value> = requests.iter().map(|r| r.json()).collect();
    assert_eq!(
        bodies[0]["provider"],
        json!({"only": ["deepinfra/us"], "allow_fallbacks": false, "data_collection": "deny", "zdr": true}),
        "the model entry's keys over the provider's, the others kept"
    );
    assert_eq!(
        bodies[1]["provider"],
        json!({"only": ["deepinfra"], "allow_fallbacks": false, "data_collection": "deny"}),
        "the provider's routing on the Responses API too"
    );
    assert_eq!(
        bodies[2]["provider"],
        json!({"only": ["deepinfra"], "allow_fallbacks": true, "data_collection": "deny", "sort": "throughput"}),
        "agents.defaults.models[ref] over the provider's, key by key"
    );
    assert_eq!(bodies[3].get("provider"), None, "a server that is not OpenRouter: {}", bodies[3]);
    assert_eq!(bodies[3]["temperature"], json!(0.3), "its other params still go");
}
