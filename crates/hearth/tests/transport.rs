//! One transport per provider (issue 12, item 4), through a real `hearth gateway run`: a local
//! server is never reached through the user's proxy, a hosted one is. Every proxy variable
//! points at a stand-in that counts the connections it gets; `NO_PROXY` is unset, so only
//! hearth's own policy keeps local traffic off the proxy.

use std::process::Command;
use std::time::Duration;

use hearth_testkit::{CountingListener, FakeUpstream, GatewayProcess, Reply};
use serde_json::json;

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"local hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

#[tokio::test]
async fn local_servers_bypass_the_proxy_and_hosted_ones_use_it() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(Reply::json(200, ANSWER));
    let proxied = CountingListener::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hearth.json5"),
        format!(
            r#"{{models: {{mode: "replace", providers: {{
                 local: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m"}}]}},
                 hosted: {{baseUrl: "http://hosted.example.com/v1", apiKey: "sk-hosted-0000", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "local/m"}}}}}}}}"#,
            upstream.origin()
        ),
    )
    .unwrap();
    let proxy = proxied.url();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .arg("--config")
        .arg(dir.path().join("hearth.json5"))
        .args(["gateway", "run", "--port", "0"])
        .env("HEARTH_STATE_DIR", dir.path().join("state"))
        .env_remove("HEARTH_GATEWAY_TOKEN")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"] {
        command.env(name, &proxy);
    }
    let process = GatewayProcess::spawn(&mut command).unwrap();
    assert!(process.wait_for_stderr("sessions:", Duration::from_secs(10)), "{}", process.stderr());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/v1/chat/completions", process.origin());

    let local = client
        .post(&url)
        .json(&json!({"model": "local/m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), 200, "{}", local.text().await.unwrap());
    assert!(!upstream.requests().is_empty(), "the local server got the request itself");
    assert_eq!(proxied.connections(), 0, "a local server was reached through the proxy");

    // The control: a hosted provider does go through the proxy (which answers nothing).
    let hosted = client
        .post(&url)
        .json(&json!({"model": "hosted/m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert!(hosted.status().is_server_error(), "{}", hosted.status());
    assert!(proxied.connections() >= 1, "the hosted provider did not use the proxy");
}
