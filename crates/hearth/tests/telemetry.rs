//! Logs and traces of a real `hearth gateway run` process (issue 14, items 1 and 2): the one
//! request line of a request that fails over (its request id, both attempts, the answering
//! model, never the provider key), JSON logs that are JSON line by line, and the spans of a
//! fallback request at a real OTLP/HTTP receiver, decoded with the official protobuf types.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};

/// The first provider's key: it must never appear in what the gateway writes.
const SECRET: &str = "sk-telemetry-test-SECRET-4242";

/// The first provider answers 500 (echoing its key), the second answers (streamed or whole)
/// with usage.
async fn failover_upstream(stream: bool) -> FakeUpstream {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let answer = if stream {
        Reply::sse(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Hello"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            "[DONE]",
        ])
    } else {
        Reply::json(
            200,
            r#"{"id":"x","object":"chat.completion","created":1,"model":"m2","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#,
        )
    };
    for _ in 0..4 {
        upstream.push(Reply::json(
            500,
            &format!(r#"{{"error":{{"message":"internal error for key {SECRET}"}}}}"#),
        ));
        upstream.push(answer.clone());
    }
    upstream
}

fn write_config(dir: &Path, origin: &str) -> PathBuf {
    let text = r#"{
  models: { mode: "replace", providers: {
    first: { baseUrl: "ORIGIN/v1", api: "openai-completions", apiKey: "SECRET",
             models: [{ id: "m1", contextWindow: 8192 }] },
    second: { baseUrl: "ORIGIN/v1", api: "openai-completions",
              models: [{ id: "m2", contextWindow: 8192 }] },
  } },
  agents: { defaults: { model: { primary: "first/m1", fallbacks: ["second/m2"] } } },
}"#
    .replace("ORIGIN", origin)
    .replace("SECRET", SECRET);
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

fn hearth(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("NO_COLOR", "1")
        .env("HEARTH_STATE_DIR", config.parent().unwrap().join("state"))
        .arg("--config")
        .arg(config);
    command
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn chat(gateway: &GatewayProcess, request_id: &str, stream: bool) -> reqwest::Response {
    let response = client()
        .post(format!("{}/v1/chat/completions", gateway.origin()))
        .header("x-request-id", request_id)
        .json(&serde_json::json!({
            "model": "first/m1",
            "stream": stream,
            "messages": [{"role": "user", "content": "a prompt that must stay private"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], request_id);
    assert_eq!(response.headers()["x-hearth-attempts"], "2");
    response
}

fn stop(gateway: &mut GatewayProcess) {
    let status = Command::new("kill").args(["-TERM", &gateway.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(gateway.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_line_has_the_request_id_both_attempts_and_no_secret() {
    let upstream = failover_upstream(false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &upstream.origin());
    let gateway = GatewayProcess::spawn(
        hearth(&config).env("RUST_LOG", "info").args(["gateway", "run", "--port", "0"]),
    )
    .unwrap();
    let response = chat(&gateway, "req-failover-1", false).await;
    assert_eq!(response.headers()["x-hearth-model"], "m2");
    let _ = response.text().await.unwrap();
    // An error response carries a fresh request id too.
    let missing = client().get(format!("{}/nope", gateway.origin())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let fresh = missing.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(fresh.len(), 32, "{fresh}");
    assert!(gateway.wait_for_stderr(&fresh, Duration::from_secs(5)), "{}", gateway.stderr());

    let stderr = gateway.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("\"req-failover-1\"")).collect();
    assert_eq!(lines.len(), 1, "one request line:\n{stderr}");
    let line = lines[0];
    for field in [
        "Request done.",
        "method=POST",
        "path=/v1/chat/completions",
        "api=\"chat_completions\"",
        "requested_model=first/m1",
        "attempts=first/m1=server_error,second/m2=ok",
        "provider=\"second\"",
        "model=\"m2\"",
        "status=200",
        "latency_ms=",
        "input_tokens=7",
        "output_tokens=3",
    ] {
        assert!(line.contains(field), "`{field}` missing from:\n{line}");
    }
    // The routing decision has its own line.
    assert!(stderr.contains("trying the next one"), "{stderr}");
    // The upstream was sent the key and echoed it; hearth wrote it nowhere.
    assert!(
        upstream
            .requests()
            .iter()
            .any(|r| r.header("authorization").is_some_and(|v| v.contains(SECRET)))
    );
    assert!(!stderr.contains(SECRET), "the key leaked into the log:\n{stderr}");
    assert!(!stderr.contains("a prompt that must stay private"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_json_object_per_line() {
    let upstream = failover_upstream(true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &upstream.origin());
    let mut gateway = GatewayProcess::spawn(hearth(&config).args([
        "--log-format",
        "json",
        "gateway",
        "run",
        "--port",
        "0",
    ]))
    .unwrap();
    let response = chat(&gateway, "req-json-stream", true).await;
    let body = response.text().await.unwrap();
    assert!(body.contains("Hello") && body.contains("[DONE]"), "{body}");
    // A stream's line is written when the stream has ended, with its usage.
    assert!(
        gateway.wait_for_stderr("req-json-stream", Duration::from_secs(5)),
        "{}",
        gateway.stderr()
    );
    stop(&mut gateway);

    let stderr = gateway.stderr();
    let mut request_lines = Vec::new();
    for line in stderr.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("not a JSON line ({e}): {line}\n--- all of stderr:\n{stderr}")
        });
        if value["request_id"] == "req-json-stream" {
            request_lines.push(value);
        }
    }
    assert!(stderr.contains("listening on http://"), "{stderr}");
    assert!(stderr.contains("hearth: stopped"), "{stderr}");
    assert_eq!(request_lines.len(), 1, "{stderr}");
    let line = &request_lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "hearth_server::request");
    assert_eq!(line["attempts"], "first/m1=server_error,second/m2=ok");
    assert_eq!(line["provider"], "second");
    assert_eq!(line["model"], "m2");
    assert_eq!(line["status"], 200);
    assert_eq!(line["input_tokens"], 7);
    assert_eq!(line["output_tokens"], 3);
    assert!(!stderr.contains(SECRET), "{stderr}");
}

/// Trace export (the `otel` feature, on by default).
#[cfg(feature = "otel")]
mod otlp {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A real OTLP/HTTP receiver: `POST /v1/traces` with an `application/x-protobuf` body, decoded
    /// as `ExportTraceServiceRequest`; every span that arrived is kept.
    struct Receiver {
        origin: String,
        spans: Arc<Mutex<Vec<Span>>>,
        content_types: Arc<Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn receiver() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let content_types: Arc<Mutex<Vec<String>>> = Arc::default();
        let (task_spans, task_types) = (Arc::clone(&spans), Arc::clone(&content_types));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (spans, types) = (Arc::clone(&task_spans), Arc::clone(&task_types));
                tokio::spawn(async move {
                    // One request per connection: read the head, then Content-Length bytes.
                    let mut buf = Vec::new();
                    let head_end = loop {
                        let mut chunk = [0u8; 8192];
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    assert!(head.starts_with("post /v1/traces "), "{head}");
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| l.strip_prefix(&format!("{name}:")))
                            .map(|v| v.trim().to_owned())
                    };
                    let length: usize = header("content-length").unwrap().parse().unwrap();
                    types.lock().unwrap().push(header("content-type").unwrap_or_default());
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let request =
                        ExportTraceServiceRequest::decode(&buf[head_end..head_end + length])
                            .unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.lock().unwrap().extend(scope.spans);
                        }
                    }
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        Receiver { origin, spans, content_types, task }
    }

    fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.clone())
    }

    fn text(span: &Span, key: &str) -> Option<String> {
        match attribute(span, key)? {
            AnyValue::StringValue(s) => Some(s),
            _ => None,
        }
    }

    fn int(span: &Span, key: &str) -> Option<i64> {
        match attribute(span, key)? {
            AnyValue::IntValue(n) => Some(n),
            _ => None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fallback_request_spans_reach_an_otlp_receiver() {
        let receiver = receiver().await;
        let upstream = failover_upstream(false).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &upstream.origin());
        let mut gateway = GatewayProcess::spawn(
            hearth(&config)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.origin)
                .args(["gateway", "run", "--port", "0"]),
        )
        .unwrap();
        let response = chat(&gateway, "req-otel-1", false).await;
        let _ = response.text().await.unwrap();
        // The exporter sends what is queued when the gateway shuts down.
        stop(&mut gateway);

        let spans = receiver.spans.lock().unwrap().clone();
        let types = receiver.content_types.lock().unwrap().clone();
        assert!(types.iter().all(|t| t == "application/x-protobuf"), "{types:?}");
        let request = spans
            .iter()
            .find(|s| text(s, "hearth.request_id").as_deref() == Some("req-otel-1"))
            .unwrap_or_else(|| panic!("no request span among {spans:#?}\n{}", gateway.stderr()));
        assert_eq!(request.name, "chat first/m1");
        assert_eq!(text(request, "gen_ai.operation.name").as_deref(), Some("chat"));
        assert_eq!(text(request, "gen_ai.request.model").as_deref(), Some("first/m1"));
        assert_eq!(text(request, "gen_ai.response.model").as_deref(), Some("m2"));
        assert_eq!(text(request, "gen_ai.provider.name").as_deref(), Some("second"));
        assert_eq!(int(request, "gen_ai.usage.input_tokens"), Some(7));
        assert_eq!(int(request, "gen_ai.usage.output_tokens"), Some(3));
        assert_eq!(int(request, "http.response.status_code"), Some(200));
        assert!(request.parent_span_id.is_empty());

        let mut attempts: Vec<&Span> = spans
            .iter()
            .filter(|s| s.parent_span_id == request.span_id && s.trace_id == request.trace_id)
            .collect();
        attempts.sort_by_key(|s| s.start_time_unix_nano);
        assert_eq!(attempts.len(), 2, "{spans:#?}");
        let (failed, answered) = (attempts[0], attempts[1]);
        assert_eq!(failed.name, "chat m1");
        assert_eq!(text(failed, "gen_ai.provider.name").as_deref(), Some("first"));
        assert_eq!(text(failed, "gen_ai.request.model").as_deref(), Some("m1"));
        assert_eq!(text(failed, "error.type").as_deref(), Some("server_error"));
        assert_eq!(answered.name, "chat m2");
        assert_eq!(text(answered, "gen_ai.provider.name").as_deref(), Some("second"));
        assert_eq!(text(answered, "gen_ai.response.model").as_deref(), Some("m2"));
        assert_eq!(int(answered, "gen_ai.usage.input_tokens"), Some(7));
        assert_eq!(int(answered, "gen_ai.usage.output_tokens"), Some(3));
        assert_eq!(text(answered, "error.type"), None);
        for span in [request, failed, answered] {
            assert!(span.end_time_unix_nano >= span.start_time_unix_nano, "{span:#?}");
            for kv in &span.attributes {
                assert!(!format!("{:?}", kv.value).contains(SECRET), "{span:#?}");
            }
        }
    }
}
