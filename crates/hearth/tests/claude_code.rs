//! Claude Code itself (npm `@anthropic-ai/claude-code`) against a real `hearth gateway run`
//! process with a scripted openai-completions upstream: `claude -p` completes with no wasted
//! first request, recognises a context overflow, and stops at once on a wrong token. See: #12
//!
//! `scripts/testbed/claude-code.sh` installs the package once under
//! `~/.cache/hearth-claude-code/<version>`. Where npm cannot install it (no npm, registry
//! unreachable) the tests say so on stderr and pass without running it.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::{FakeUpstream, GatewayProcess, Reply};

const TOKEN: &str = "cc-gateway-token-5d1e";

type Gateway = GatewayProcess;

fn spawn_gateway(config: &Path) -> Gateway {
    GatewayProcess::spawn(
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("--config")
            .arg(config)
            .args(["gateway", "run", "--port", "0"])
            .env_remove("HEARTH_GATEWAY_TOKEN")
            .env("HEARTH_STATE_DIR", config.parent().unwrap().join("state")),
    )
    .unwrap()
}

/// The `claude` launcher, or `None` (with the reason printed) when npm cannot install it here.
#[expect(clippy::print_stderr, reason = "the skip is said where the test output shows it")]
#[expect(clippy::panic, reason = "a failed install that is not a missing registry fails the test")]
fn claude() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testbed/claude-code.sh");
    let output = Command::new("bash").arg(&script).stderr(Stdio::piped()).output().unwrap();
    match output.status.code() {
        Some(0) => {
            let stdout = String::from_utf8(output.stdout).unwrap();
            Some(PathBuf::from(stdout.lines().last().unwrap().trim()))
        }
        Some(3) => {
            eprintln!(
                "SKIPPED: Claude Code cannot be installed here, so these tests did not run it: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            None
        }
        _ => panic!("installing Claude Code failed: {}", String::from_utf8_lossy(&output.stderr)),
    }
}

/// A gateway (token auth) in front of `upstream`, serving `fake/m`.
fn gateway_for(upstream: &FakeUpstream, dir: &Path) -> Gateway {
    let config = dir.join("hearth.json5");
    std::fs::write(
        &config,
        format!(
            r#"{{models: {{mode: "replace", providers: {{fake: {{baseUrl: "{}/v1", api: "openai-completions",
                models: [{{id: "m", maxTokens: 1024, contextWindow: 8192}}]}}}}}},
               agents: {{defaults: {{model: {{primary: "fake/m"}}}}}},
               gateway: {{auth: {{mode: "token", token: "{TOKEN}"}}}}}}"#,
            upstream.origin()
        ),
    )
    .unwrap();
    spawn_gateway(&config)
}

/// `claude -p "say hi"` as real-clients.md runs it, with a home of its own.
fn run_claude(claude: &Path, origin: &str, key: &str, home: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(claude)
        .args(["-p", "say hi", "--model", "fake/m"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("ANTHROPIC_BASE_URL", origin)
        .env("ANTHROPIC_API_KEY", key)
        .env("ANTHROPIC_SMALL_FAST_MODEL", "fake/m")
        .env("ANTHROPIC_DEFAULT_HAIKU_MODEL", "fake/m")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Never hang the suite: two minutes at most (a healthy run takes a few seconds).
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (output, started.elapsed())
}

fn text_of(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The gateway's 4xx count on the Messages routes, from `/metrics`.
async fn messages_client_errors(gateway: &Gateway) -> u64 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", gateway.origin()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("hearth_http_requests_total"))
        .filter(|l| l.contains(r#"status_class="4xx""#))
        .filter(|l| l.contains(r#"route="messages""#) || l.contains(r#"route="count_tokens""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi from hearth"},"finish_reason":"stop"}],"usage":{"prompt_tokens":900,"completion_tokens":4,"total_tokens":904}}"#;
const LLAMA_OVERFLOW: &str = r#"{"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":13392,"n_ctx":8192}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_says_hi_through_the_gateway_without_a_wasted_request() {
    let Some(claude) = claude() else { return };
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for _ in 0..8 {
        upstream.push(Reply::json(200, ANSWER));
    }
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway_for(&upstream, dir.path());
    let home = tempfile::tempdir().unwrap();
    let (output, _) = tokio::task::spawn_blocking({
        let claude = claude.clone();
        let home = home.path().to_owned();
        let origin = gateway.origin();
        move || run_claude(&claude, &origin, TOKEN, &home)
    })
    .await
    .unwrap();
    let all = text_of(&output);
    assert!(output.status.success(), "{all}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("hi from hearth"), "{all}");
    let posts: Vec<_> = upstream.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert!(!posts.is_empty(), "{all}");
    assert!(posts.iter().all(|r| r.path == "/v1/chat/completions"), "{all}");
    assert_eq!(messages_client_errors(&gateway).await, 0, "a request was refused: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_recognises_a_context_overflow() {
    let Some(claude) = claude() else { return };
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    for _ in 0..8 {
        upstream.push(Reply::json(400, LLAMA_OVERFLOW));
    }
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway_for(&upstream, dir.path());
    let home = tempfile::tempdir().unwrap();
    let origin = gateway.origin();
    let (output, _) =
        tokio::task::spawn_blocking(move || run_claude(&claude, &origin, TOKEN, home.path()))
            .await
            .unwrap();
    let all = text_of(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Claude Code's own words (hearth's are lower-case): it recognised the overflow and read
    // the numbers, instead of showing a generic `API Error: 400 …`.
    assert!(stdout.contains("Prompt is too long"), "{all}");
    assert!(stdout.contains("13392") && stdout.contains("8192"), "{all}");
    assert!(!stdout.contains("API Error"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_stops_at_once_on_a_wrong_token() {
    let Some(claude) = claude() else { return };
    let upstream = FakeUpstream::start_calls_only().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway_for(&upstream, dir.path());
    let home = tempfile::tempdir().unwrap();
    let origin = gateway.origin();
    let (output, took) = tokio::task::spawn_blocking(move || {
        run_claude(&claude, &origin, "not-the-token", home.path())
    })
    .await
    .unwrap();
    let all = text_of(&output);
    assert!(!output.status.success(), "{all}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {all}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("401"), "{all}");
    assert!(upstream.requests().is_empty(), "nothing reached the upstream");
}
