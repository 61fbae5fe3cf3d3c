//! `localService`: the real llama.cpp server started on demand, once under concurrent
//! requests, stopped after `idleStopMs`; servers hearth did not start are reused and never
//! stopped; failures carry a redacted tail of the child's output.
#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hearth_config::{Config, load_str};
use hearth_testkit::LlamaServer;
use hearth_upstream::local_service::LocalServices;
use hearth_upstream::{Client, ErrorClass, Event, Prompt, Target};

fn env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(provider: &str) -> Config {
    let text = format!(r#"{{models: {{mode: "replace", providers: {{ {provider} }}}}}}"#);
    let loaded = load_str("local.json5", &text, &env());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.config.unwrap()
}

/// A provider whose localService is the test bed's llama-server on a free port.
fn llama_config(port: u16, idle_ms: u64) -> Config {
    let binary = hearth_testkit::llama::binary()
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let model = hearth_testkit::llama::model()
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let args: Vec<String> = [
        "--model",
        &model.display().to_string(),
        "--alias",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--ctx-size",
        "256",
        "--threads",
        "1",
        "--parallel",
        "1",
        "--no-webui",
    ]
    .iter()
    .map(|a| format!("{a:?}"))
    .collect();
    config(&format!(
        r#"local: {{
            baseUrl: "http://127.0.0.1:{port}/v1",
            models: [{{id: "tiny", maxTokens: 4}}],
            localService: {{
              command: "{}",
              args: [{}],
              healthUrl: "http://127.0.0.1:{port}/health",
              readyTimeoutMs: 60000,
              idleStopMs: {idle_ms},
            }},
        }}"#,
        binary.display(),
        args.join(", ")
    ))
}

async fn health(port: u16) -> Option<u16> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

async fn wait_down(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if health(port).await.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn chat(config: &Config) -> String {
    let provider = &config.providers["local"];
    let model = provider.model("tiny").unwrap();
    let client = Client::new(provider).unwrap();
    let prompt = Prompt::text(None, "hello");
    let events: Vec<Event> = client
        .send(&Target { provider, model, params: None, served_max: None }, &prompt, &env())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(!events.iter().any(|e| matches!(e, Event::Error(_))), "{events:?}");
    events
        .iter()
        .filter_map(|e| if let Event::TextDelta(t) = e { Some(t.as_str()) } else { None })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_once_on_demand_answers_and_stops_when_idle() {
    let port = free_port();
    let config = llama_config(port, 300);
    let provider = &config.providers["local"];
    let services = LocalServices::new();
    assert_eq!(health(port).await, None, "nothing runs before the first request");

    // Two concurrent requests: one start.
    let (a, b) = tokio::join!(services.acquire(provider), services.acquire(provider));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_managed() && b.is_managed());
    assert_eq!(u8::from(a.started()) + u8::from(b.started()), 1, "exactly one acquire started it");
    let view = services.status_of(provider).unwrap();
    assert_eq!((view.starts, view.leases, view.external), (1, 2, false));
    let pid = view.pid.unwrap();
    assert_eq!(health(port).await, Some(200));

    // It answers through the normal transport.
    let text = chat(&config).await;
    assert!(!text.is_empty());

    // Still leased: the idle timer does not run.
    drop(a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(health(port).await, Some(200), "one lease is still held");

    // Last lease gone: stopped after idleStopMs.
    let released = Instant::now();
    drop(b);
    assert!(wait_down(port, Duration::from_secs(10)).await, "not stopped after idleStopMs");
    assert!(released.elapsed() >= Duration::from_millis(300), "stopped before idleStopMs");
    // The port closes when the server begins to exit; the status says stopped once it is
    // reaped. See: #14 (the status said stopped before the child was gone).
    let deadline = Instant::now() + Duration::from_secs(10);
    let view = loop {
        let view = services.status_of(provider).unwrap();
        if view.pid.is_none() || Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((view.pid, view.idle_stops, view.leases), (None, 1, 0));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "process {pid} still exists");

    // The next request starts it again.
    let lease = services.acquire(provider).await.unwrap();
    assert!(lease.started());
    assert_eq!(services.status_of(provider).unwrap().starts, 2);
    assert_eq!(health(port).await, Some(200));

    // Dropping LocalServices stops what it started, leases or not.
    drop(services);
    assert!(
        wait_down(port, Duration::from_secs(5)).await,
        "still running after LocalServices was dropped"
    );
    drop(lease);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_lease_cancels_the_idle_stop() {
    let port = free_port();
    let config = llama_config(port, 400);
    let provider = &config.providers["local"];
    let services = LocalServices::new();
    let lease = services.acquire(provider).await.unwrap();
    assert!(lease.started());
    drop(lease);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lease = services.acquire(provider).await.unwrap();
    assert!(!lease.started(), "still running: reused");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(health(port).await, Some(200), "the stop scheduled before the new lease ran");
    assert_eq!(services.status_of(provider).unwrap().idle_stops, 0);
    drop(lease);
    assert!(wait_down(port, Duration::from_secs(10)).await);
    assert_eq!(services.status_of(provider).unwrap().starts, 1);
}

/// A healthy server hearth did not start is used and never stopped by hearth.
#[tokio::test(flavor = "multi_thread")]
async fn reuses_without_adopting() {
    let server = LlamaServer::start(256)
        .unwrap_or_else(|e| panic!("the llama.cpp test bed is required: {e}"));
    let config = config(&format!(
        r#"local: {{baseUrl: "{0}/v1", models: [{{id: "tiny"}}],
            localService: {{command: "/bin/false", healthUrl: "{0}/health", idleStopMs: 100}}}}"#,
        server.origin()
    ));
    let provider = &config.providers["local"];
    let services = LocalServices::new();
    let lease = services.acquire(provider).await.unwrap();
    assert!(!lease.started());
    let view = services.status_of(provider).unwrap();
    assert_eq!((view.starts, view.pid, view.external), (0, None, true));
    drop(lease);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(health(server.port).await, Some(200));
    drop(services);
    assert_eq!(health(server.port).await, Some(200), "hearth stopped a server it did not start");
}

#[tokio::test(flavor = "multi_thread")]
async fn start_failure_reports_a_redacted_tail() {
    let port = free_port();
    let config = config(&format!(
        r#"local: {{baseUrl: "http://127.0.0.1:{port}/v1", models: [{{id: "m"}}],
            localService: {{
              command: "/bin/sh",
              args: ["-c", "echo starting on port {port}; echo using key sk-abcdefgh12345678; echo token is $MY_SECRET >&2; echo flag $0 value $1; echo failed to load model >&2; exit 3", "--api-key", "argsecret99"],
              env: {{MY_SECRET: "hunter2hunter2"}},
            }}}}"#
    ));
    let provider = &config.providers["local"];
    let services = LocalServices::new();
    let started = Instant::now();
    let e = services.acquire(provider).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(e.class, ErrorClass::Connect);
    assert!(e.message.contains("exited"), "{e}");
    assert!(e.message.contains("failed to load model"), "{e}");
    assert!(e.message.contains(&format!("starting on port {port}")), "{e}");
    for secret in ["sk-abcdefgh12345678", "hunter2hunter2", "argsecret99"] {
        assert!(!e.message.contains(secret), "{secret} leaked: {e}");
    }
    let view = services.status_of(provider).unwrap();
    assert_eq!((view.starts, view.pid, view.leases), (1, None, 0));

    // A command that cannot be executed at all.
    let config = config_missing_binary(port);
    let e = services.acquire(&config.providers["local"]).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Connect);
    assert!(e.message.contains("cannot start"), "{e}");
}

fn config_missing_binary(port: u16) -> Config {
    config(&format!(
        r#"local: {{baseUrl: "http://127.0.0.1:{port}/v1",
            localService: {{command: "/nonexistent/hearth-test-server"}}}}"#
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_timeout_stops_the_child() {
    let port = free_port();
    let config = config(&format!(
        r#"local: {{baseUrl: "http://127.0.0.1:{port}/v1",
            localService: {{command: "/bin/sleep", args: ["30"], readyTimeoutMs: 300}}}}"#
    ));
    let provider = &config.providers["local"];
    assert_eq!(
        provider.local_service.as_ref().unwrap().health_url,
        format!("http://127.0.0.1:{port}/v1/models")
    );
    let services = LocalServices::new();
    let started = Instant::now();
    let e = services.acquire(provider).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert_eq!(e.class, ErrorClass::Connect);
    assert!(e.message.contains("did not become ready"), "{e}");
    assert!(e.message.contains("readyTimeoutMs"), "{e}");
    assert_eq!(services.status_of(provider).unwrap().pid, None, "the child was stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_without_local_service_get_an_empty_lease() {
    let config = config(r#"plain: {baseUrl: "http://127.0.0.1:9/v1"}"#);
    let services = LocalServices::new();
    // The gateway awaits these inside spawned tasks.
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync(&services);
    let acquire = services.acquire(&config.providers["plain"]);
    assert_send(&acquire);
    let lease = acquire.await.unwrap();
    assert_send_sync(&lease);
    assert!(!lease.is_managed() && !lease.started());
    assert!(services.status().is_empty());
}
