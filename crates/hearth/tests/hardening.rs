//! The hardening suite (issue 11): a real `hearth gateway run` process, driven through its
//! real doors (raw TCP, HTTP, WebSocket, the CLI) with what a hostile web page, a stranger, a
//! slow client or a misbehaving upstream sends. Each test first shows the door is open for the
//! legitimate case, so a refusal is the defence and not a broken setup.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};

type Gateway = GatewayProcess;

fn rss_kib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn hearth() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .env_remove("HEARTH_GATEWAY_TOKEN")
        .env_remove("HEARTH_GATEWAY_PASSWORD")
        .env_remove("HEARTH_STATE_DIR");
    command
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("hearth.json5");
    std::fs::write(&path, text).unwrap();
    path
}

/// `hearth gateway run` on a free port with `config`, sessions in `dir/state`.
fn spawn(dir: &Path, config: &str, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
    let config = write_config(dir, config);
    let mut command = hearth();
    command
        .arg("--config")
        .arg(&config)
        .args(["gateway", "run", "--port", "0"])
        .args(extra)
        .env("HEARTH_STATE_DIR", dir.join("state"))
        .envs(env.iter().copied());
    GatewayProcess::spawn(&mut command).unwrap()
}

/// A config with one local provider `fake` at `upstream`, default model `fake/m`.
fn fake_config(upstream: &FakeUpstream, gateway: &str) -> String {
    format!(
        r#"{{models: {{mode: "merge", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", models: [{{id: "m"}}]}}}}}},
           agents: {{defaults: {{model: {{primary: "fake/m"}}}}}},
           gateway: {gateway}}}"#,
        upstream.origin()
    )
}

const ANSWER: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

/// One raw HTTP/1.1 exchange (`Connection: close`): the status and the body.
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn post_head(addr: SocketAddr, path: &str, extra: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {len}\r\n{extra}\r\n"
    )
}

fn chat_body(model: &str) -> String {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Whether the server closed `tcp` (EOF or reset) within `within`.
fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    tcp.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > within {
            return false;
        }
    }
}

// === 1. browser origins, CSRF, DNS rebinding ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_web_pages_cannot_drive_a_default_gateway() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(Reply::json(200, ANSWER));
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &fake_config(&upstream, "{}"), &[], &[]);
    let addr = gw.addr;
    let body = chat_body("fake/m");

    // The door is open to a non-browser client…
    let (status, _) = raw(
        addr,
        &post_head(addr, "/v1/chat/completions", "content-type: application/json\r\n", body.len()),
        body.as_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(upstream.requests().len(), 1);

    // …but a cross-site "simple" request (text/plain, no preflight) is refused unexecuted,
    let (status, text) = raw(
        addr,
        &post_head(addr, "/v1/chat/completions", "content-type: text/plain\r\n", body.len()),
        body.as_bytes(),
    );
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("application/json"), "{text}");
    // …so is any request from another origin, and a sandboxed (`null`) one,
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let (status, text) = raw(
            addr,
            &post_head(
                addr,
                "/v1/chat/completions",
                &format!("content-type: application/json\r\norigin: {origin}\r\n"),
                body.len(),
            ),
            body.as_bytes(),
        );
        assert_eq!(status, 403, "{origin}: {text}");
        assert!(text.contains("origin not allowed"), "{text}");
    }
    // …and a DNS-rebinding page, whose requests name its own host.
    let (status, text) = raw(
        addr,
        &format!(
            "GET /v1/models HTTP/1.1\r\nhost: rebind.evil.example:{}\r\nconnection: close\r\n\r\n",
            addr.port()
        ),
        b"",
    );
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("host not allowed"), "{text}");
    let (status, _) = raw(
        addr,
        &format!(
            "GET /v1/models HTTP/1.1\r\nhost: localhost:{}\r\nconnection: close\r\n\r\n",
            addr.port()
        ),
        b"",
    );
    assert_eq!(status, 200);
    // The page the gateway serves itself (same origin) is welcome.
    let (status, _) = raw(
        addr,
        &format!(
            "GET /v1/models HTTP/1.1\r\nhost: {addr}\r\norigin: http://{addr}\r\nconnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(upstream.requests().len(), 1, "no refused request reached the model");

    // A WebSocket from a page of another origin never gets to `connect`.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/"
        ))
        .unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(request.clone()).await.unwrap();
    drop(ws);
    request.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("a cross-origin WebSocket was accepted: {:?}", other.map(|r| r.1)),
    }
}

#[test]
fn r11_allowed_origins_get_cors_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        r#"{gateway: {controlUi: {allowedOrigins: ["https://chat.example.com"]}}}"#,
        &[],
        &[],
    );
    let addr = gw.addr;
    let preflight = |origin: &str| {
        let mut tcp = TcpStream::connect(addr).unwrap();
        write!(
            tcp,
            "OPTIONS /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\norigin: {origin}\r\naccess-control-request-method: POST\r\naccess-control-request-headers: content-type, authorization\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        let _ = tcp.read_to_string(&mut text);
        text.to_ascii_lowercase()
    };
    let allowed = preflight("https://chat.example.com");
    assert!(allowed.starts_with("http/1.1 204"), "{allowed}");
    assert!(allowed.contains("access-control-allow-origin: https://chat.example.com"), "{allowed}");
    let refused = preflight("https://evil.example");
    assert!(refused.starts_with("http/1.1 403"), "{refused}");
    assert!(!refused.contains("access-control-allow-origin"), "{refused}");
    let (status, _) = raw(
        addr,
        &format!(
            "GET /v1/models HTTP/1.1\r\nhost: {addr}\r\norigin: https://chat.example.com\r\nconnection: close\r\n\r\n"
        ),
        b"",
    );
    assert_eq!(status, 200);
}

// === 3. bounded work per request ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_huge_model_names_do_not_freeze_the_gateway() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &fake_config(&upstream, "{}"), &[], &[]);
    let origin = gw.origin();
    let name = "x".repeat(1024 * 1024);
    let big = serde_json::json!({"model": name, "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let started = Instant::now();
    let heavy: Vec<_> = (0..3)
        .map(|_| {
            let request = client()
                .post(format!("{origin}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(big.clone());
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    let mut health = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let response = client().get(format!("{origin}/health")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        health.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for task in heavy {
        let (status, text) = task.await.unwrap();
        assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
        assert!(text.len() < 1024, "the error echoes {} bytes", text.len());
        assert!(text.contains("at most 256 bytes"), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    health.sort();
    assert!(health[health.len() / 2] < Duration::from_millis(50), "/health: {health:?}");
    assert!(health[health.len() - 1] < Duration::from_millis(500), "/health: {health:?}");
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_invented_model_ids_are_refused_and_never_become_labels() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for _ in 0..2 {
        upstream.push(Reply::json(200, ANSWER));
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &fake_config(&upstream, "{}"), &[], &[]);
    let origin = gw.origin();
    let http = client();
    let send = |model: String| {
        http.post(format!("{origin}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(chat_body(&model))
            .send()
    };
    // Warm the metrics with one answer of each kind: a listed model and an unlisted local one.
    assert_eq!(send("fake/m".to_owned()).await.unwrap().status(), 200);
    assert_eq!(send("fake/loaded-in-the-server".to_owned()).await.unwrap().status(), 200);
    let metrics = |http: reqwest::Client| {
        let origin = origin.clone();
        async move { http.get(format!("{origin}/metrics")).send().await.unwrap().text().await.unwrap() }
    };
    // And one refusal, so the 4xx series exist before the measurement.
    assert_eq!(send("anthropic/warm-up".to_owned()).await.unwrap().status(), 404);
    // (The first scrape adds the scrape's own series.)
    metrics(http.clone()).await;
    let before = metrics(http.clone()).await;
    assert!(before.contains("model=\"other\""), "{before}");
    // A hosted provider's catalog is closed: an invented id is refused, never forwarded.
    let response = send("anthropic/claude-invented-9".to_owned()).await.unwrap();
    assert_eq!(response.status(), 404);
    let text = response.text().await.unwrap();
    assert!(text.contains("not in the catalog"), "{text}");
    for i in 0..3000 {
        let response = send(format!("anthropic/invented-{i}")).await.unwrap();
        assert_eq!(response.status(), 404);
    }
    let after = metrics(http.clone()).await;
    assert!(!after.contains("invented"), "a label came from a request");
    assert!(
        after.len() < before.len() + 256,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert_eq!(upstream.requests().len(), 2, "only the two real calls reached the upstream");
}

// === 4. connection discipline ===

#[test]
fn r11_slow_and_idle_clients_are_closed_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        r#"{gateway: {limits: {headerTimeoutMs: 600, idleTimeoutMs: 900, bodyTimeoutMs: 600, maxConnections: 64}}}"#,
        &[],
        &[],
    );
    let addr = gw.addr;
    // Slow headers: one byte every 150 ms never makes a request head.
    let slow = std::thread::spawn(move || {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        for byte in
            b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if tcp.write_all(&[*byte]).is_err() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        panic!("the slow client was never cut off");
    });
    // A body that never arrives after its headers: 408, then the connection closes.
    let mut body_less = TcpStream::connect(addr).unwrap();
    write!(
        body_less,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{{\"model\""
    )
    .unwrap();
    body_less.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = String::new();
    let started = Instant::now();
    let _ = body_less.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // Idle sockets, never used or kept alive after a request, are closed.
    let mut idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut kept = TcpStream::connect(addr).unwrap();
    write!(kept, "GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    // While they are held, more connections than the cap still get /health answered: the
    // oldest idle connections make room.
    let extra: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (status, _) = raw(
        addr,
        &format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"),
        b"",
    );
    assert_eq!(status, 200);
    let cut = slow.join().unwrap();
    assert!(cut < Duration::from_secs(3), "slow headers held for {cut:?}");
    assert!(
        closed_within(&mut kept, Duration::from_secs(3)),
        "a kept-alive connection stayed open"
    );
    for tcp in idle.iter_mut().chain(extra.into_iter().collect::<Vec<_>>().iter_mut()) {
        assert!(closed_within(tcp, Duration::from_secs(3)), "an idle socket stayed open");
    }
}

#[test]
fn r11_strangers_and_refused_bodies_cost_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        r#"{gateway: {auth: {token: "the-right-token"}, limits: {bodyTimeoutMs: 500, maxBodyBytes: 1000, maxConnections: 8}}}"#,
        &[],
        &[],
    );
    let addr = gw.addr;
    // A stranger's POST is refused on its headers: no body is waited for or held.
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    .unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // An over-long body sent one byte at a time is drained only for a bounded time.
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer the-right-token\r\ncontent-type: application/json\r\ncontent-length: 2000\r\n\r\n"
    )
    .unwrap();
    let trickle = tcp.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut trickle = trickle;
        for _ in 0..2000 {
            if trickle.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = Instant::now();
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // WebSockets count toward the connection cap.
    let sockets: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut ws = TcpStream::connect(addr).unwrap();
            write!(ws, "GET / HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
            let mut buf = [0u8; 12];
            ws.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"HTTP/1.1 101");
            ws
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let (status, text) = raw(
        addr,
        &format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"),
        b"",
    );
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("maxConnections"), "{text}");
    drop(sockets);
}

// === 5. memory in bytes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_large_responses_inputs_stay_within_the_memory_budget() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for _ in 0..20 {
        upstream.push(Reply::json(200, ANSWER));
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        &fake_config(&upstream, "{limits: {responsesStoreBytes: 50331648}}"),
        &[],
        &[],
    );
    let origin = gw.origin();
    let input = "y".repeat(10 * 1024 * 1024);
    let mut last = None;
    for _ in 0..20 {
        let body =
            serde_json::json!({"model": "fake/m", "input": input, "store": true}).to_string();
        let response = client()
            .post(format!("{origin}/v1/responses"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let value: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{value}");
        last = value["id"].as_str().map(str::to_owned);
    }
    // The newest conversation is still there to continue; the budget dropped the old ones.
    upstream.push(Reply::json(200, ANSWER));
    let response = client()
        .post(format!("{origin}/v1/responses"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"model": "fake/m", "input": "and?", "previous_response_id": last})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rss_mib = rss_kib(&gw) / 1024;
    // 48 MiB of continuations, the process itself, and allocator slack: 200 MiB at most
    // (before the budget, twenty such inputs left 563 MB resident).
    assert!(rss_mib < 200, "RSS {rss_mib} MiB after twenty 10 MB inputs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_request_bytes_in_flight_are_capped() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    // The upstream takes its time, so the bodies are all in flight at once.
    for _ in 0..8 {
        upstream.push(Reply::json(200, ANSWER).split_at(1, Duration::from_millis(1500)));
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        &fake_config(&upstream, "{limits: {maxInflightBodyBytes: 41943040}}"),
        &[],
        &[],
    );
    let origin = gw.origin();
    let content = "z".repeat(19 * 1024 * 1024);
    let body =
        serde_json::json!({"model": "fake/m", "messages": [{"role": "user", "content": content}]})
            .to_string();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let request = client()
                .post(format!("{origin}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body.clone());
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let retry = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry)
            })
        })
        .collect();
    let mut ok = 0;
    let mut shed = 0;
    for task in tasks {
        match task.await.unwrap() {
            (200, _) => ok += 1,
            (503, true) => shed += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!((1..=2).contains(&ok), "{ok} accepted of 8 (40 MB budget, 19 MB bodies)");
    assert_eq!(ok + shed, 8);
    let rss_mib = rss_kib(&gw) / 1024;
    assert!(rss_mib < 300, "RSS {rss_mib} MiB");
}

// === 6. the failed-auth limiter ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_dual_stack_bind_does_not_lock_out_the_local_user() {
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        r#"{gateway: {auth: {token: "right-token-123"}}}"#,
        &["--bind", "::"],
        &[],
    );
    let port = gw.addr.port();
    let from = |ip: &str| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let models = |http: &reqwest::Client, token: &str| {
        http.get(format!("http://127.0.0.1:{port}/v1/models"))
            .header("authorization", format!("BEARER {token}"))
            .send()
    };
    let local = from("127.0.0.1");
    let other = from("127.0.0.2");
    // The scheme in capitals is fine.
    assert_eq!(models(&local, "right-token-123").await.unwrap().status(), 200);
    // The local user mistypes twenty times: still only 401 (loopback's limit is higher)…
    for _ in 0..20 {
        assert_eq!(models(&local, "wrong").await.unwrap().status(), 401);
    }
    // …while another address that guesses on is locked out…
    let mut locked = false;
    for _ in 0..150 {
        if models(&other, "guess").await.unwrap().status() == 429 {
            locked = true;
            break;
        }
    }
    assert!(locked, "guessing from 127.0.0.2 was never limited");
    assert_eq!(models(&other, "right-token-123").await.unwrap().status(), 429);
    // …and that lockout is not the local user's.
    assert_eq!(models(&local, "right-token-123").await.unwrap().status(), 200);
}

#[test]
fn r11_a_blank_gateway_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), r#"{gateway: {auth: {mode: "token", token: "   "}}}"#);
    let output = hearth()
        .arg("--config")
        .arg(&config)
        .args(["gateway", "run", "--port", "0"])
        .env("HEARTH_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gateway.auth.token is blank"), "{stderr}");
}

// === 7. shutdown and readiness ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_sigterm_ends_open_streams_with_a_terminal_error_and_ready_says_draining() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let first = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n";
    for _ in 0..2 {
        upstream.push(Reply::sse_raw(first).end(hearth_testkit::End::Stall));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut gw =
        spawn(dir.path(), &fake_config(&upstream, "{limits: {drainTimeoutMs: 800}}"), &[], &[]);
    let origin = gw.origin();
    let chat = client()
        .post(format!("{origin}/v1/chat/completions"))
        .json(&serde_json::json!({"model": "fake/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let responses = client()
        .post(format!("{origin}/v1/responses"))
        .json(&serde_json::json!({"model": "fake/m", "stream": true, "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    assert_eq!(responses.status(), 200);
    let chat = tokio::spawn(async move { chat.text().await.unwrap() });
    let responses = tokio::spawn(async move { responses.text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Command::new("kill").args(["-TERM", &gw.pid().to_string()]).status().unwrap();
    assert!(sent.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Draining: /ready still answers, with 503.
    let ready = client().get(format!("{origin}/ready")).send().await;
    let ready = ready.unwrap_or_else(|e| panic!("{e}\n{}", gw.stderr()));
    assert_eq!(ready.status(), 503);
    let chat = tokio::time::timeout(Duration::from_secs(5), chat).await.unwrap().unwrap();
    assert!(chat.contains("Hello"), "{chat}\n{}", gw.stderr());
    assert!(chat.contains("\"error\"") && chat.contains("shutting down"), "{chat}");
    let responses = tokio::time::timeout(Duration::from_secs(5), responses).await.unwrap().unwrap();
    assert!(responses.contains("response.failed"), "{responses}");
    let exit = tokio::task::spawn_blocking(move || gw.wait().unwrap()).await.unwrap();
    assert_eq!(exit.code(), Some(0));
}

// === 8. streams never wait in silence ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_slow_model_gets_headers_and_keep_alives_at_once() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    // The first event only after 2.5 s (a model reading a long prompt).
    let mut reply = Reply::sse_raw(body);
    reply.steps.insert(0, hearth_testkit::Step::Pause(Duration::from_millis(2500)));
    upstream.push(reply);
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(
        dir.path(),
        &fake_config(&upstream, "{limits: {streamHeadersAfterMs: 200, streamKeepAliveMs: 500}}"),
        &[],
        &[],
    );
    let started = Instant::now();
    let mut response = client()
        .post(format!("{}/v1/chat/completions", gw.origin()))
        .json(&serde_json::json!({"model": "fake/m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "headers after {:?}",
        started.elapsed()
    );
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b": keep-alive\n\n");
    let mut rest = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains(": keep-alive"), "{rest}");
    assert!(rest.contains("late") && rest.ends_with("data: [DONE]\n\n"), "{rest}");
}

// === 8. a loading server costs one wait, not one per request ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_loading_server_costs_one_timeout_not_one_per_request() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    const LOADING: &str =
        r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#;
    for _ in 0..20 {
        upstream.push(Reply::json(503, LOADING));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{{models: {{mode: "merge", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions", timeoutSeconds: 3, models: [{{id: "m"}}]}}}}}},
           agents: {{defaults: {{model: {{primary: "fake/m"}}}}}}}}"#,
        upstream.origin()
    );
    let gw = spawn(dir.path(), &config, &[], &[]);
    let send = || {
        client()
            .post(format!("{}/v1/chat/completions", gw.origin()))
            .json(&serde_json::json!({"model": "fake/m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    // The first request waits for the model to load, up to the provider's timeout…
    let started = Instant::now();
    let first = send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(first.status(), 503);
    assert!(waited >= Duration::from_millis(1500), "gave up after {waited:?}");
    let polled = upstream.requests().len();
    assert!(polled >= 2, "the loading server was polled {polled} times");
    // …later ones are answered at once while the loading cooldown runs, without asking it.
    for _ in 0..3 {
        let started = Instant::now();
        let again = send().await.unwrap();
        assert_eq!(again.status(), 503);
        assert!(again.headers().get("retry-after").is_some());
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    }
    assert_eq!(upstream.requests().len(), polled, "the cooled-down server was asked again");
}

// === 10. the smaller ones ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_bad_session_keys_are_400s_and_reserved_namespaces_stay_closed() {
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    upstream.push(Reply::json(200, ANSWER));
    let dir = tempfile::tempdir().unwrap();
    let gw = spawn(dir.path(), &fake_config(&upstream, "{}"), &[], &[]);
    let origin = gw.origin();
    let send = |user: Option<&str>, header: Option<&str>| {
        let mut body =
            serde_json::json!({"model": "hearth", "messages": [{"role": "user", "content": "hi"}]});
        if let Some(user) = user {
            body["user"] = serde_json::Value::String(user.to_owned());
        }
        let mut request = client().post(format!("{origin}/v1/chat/completions")).json(&body);
        if let Some(key) = header {
            request = request.header("x-hearth-session-key", key);
        }
        request.send()
    };
    assert_eq!(send(Some("ada"), None).await.unwrap().status(), 200);
    let long = "k".repeat(2000);
    for (user, header) in [
        (Some("a\u{0}b"), None),
        (Some("a\r\nb"), None),
        (Some(long.as_str()), None),
        (None, Some(long.as_str())),
        (None, Some("agent:main:cron:x")),
        (None, Some("cron:x")),
    ] {
        let response = send(user, header).await.unwrap();
        assert_eq!(response.status(), 400, "{user:?} {header:?}");
        let value: serde_json::Value = response.json().await.unwrap();
        assert!(value["error"]["param"].is_string(), "{value}");
    }
    // 405 has a body in the caller's shape.
    let response = client().get(format!("{origin}/v1/chat/completions")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["error"]["code"], "method_not_allowed");
    let response = client().get(format!("{origin}/v1/messages")).send().await.unwrap();
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["type"], "error");
}

#[test]
fn r11_a_second_gateway_on_the_same_state_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let _first = spawn(dir.path(), "{}", &[], &[]);
    let config = write_config(dir.path(), "{}");
    let output = hearth()
        .arg("--config")
        .arg(&config)
        .args(["gateway", "run", "--port", "0"])
        .env("HEARTH_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another hearth gateway"), "{stderr}");
    // Another state directory is fine.
    let other = tempfile::tempdir().unwrap();
    let _second = spawn(other.path(), "{}", &[], &[]);
}

#[test]
fn r11_models_status_never_sends_the_token_to_a_stranger_on_the_port() {
    let dir = tempfile::tempdir().unwrap();
    // Something else holds the configured gateway port and records what it is sent.
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stranger.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        let (mut tcp, _) = stranger.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 8192];
        let n = tcp.read(&mut buf).unwrap_or(0);
        let _ = tcp.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let config = write_config(
        dir.path(),
        &format!(r#"{{gateway: {{port: {port}, auth: {{token: "secret-token-xyz"}}}}}}"#),
    );
    let output = hearth()
        .arg("--config")
        .arg(&config)
        .args(["models", "status", "--json"])
        .env("HEARTH_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let request = seen.join().unwrap();
    assert!(request.starts_with("GET /hearth/cooldowns"), "{request}");
    assert!(!request.contains("secret-token-xyz"), "the token went to a stranger: {request}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("\"cooldownSource\""), "{stdout}");

    // The gateway running on this state directory is found and asked with its per-run key.
    let gw = spawn(dir.path(), r#"{gateway: {auth: {token: "secret-token-xyz"}}}"#, &[], &[]);
    let output = hearth()
        .arg("--config")
        .arg(&config)
        .args(["models", "status", "--json"])
        .env("HEARTH_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["cooldownSource"]["kind"], "gateway", "{report}");
    assert_eq!(
        report["cooldownSource"]["url"],
        format!("http://127.0.0.1:{}", gw.addr.port()),
        "{report}"
    );
    drop(gw);
}
