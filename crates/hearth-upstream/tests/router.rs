//! The router against scripted upstreams: every failure class, every chain rule, and the
//! sixteen fault scenarios of the public failover benchmark (peers.md §3.7). Most go end to
//! end through `FakeUpstream` (real HTTP); the ones about time (waits, backoff, cooldowns
//! ending, the deadline) run on tokio's paused clock through a scripted [`Transport`], so
//! they assert exact instants and take no wall-clock time.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use hearth_config::{Chain, Config, Env, ModelRef, SecretString, load_str};
use hearth_testkit::{End, FakeUpstream, Reply};
use hearth_upstream::router::{LOADING_COOLDOWN, OVERLOAD_NOTICE};
use hearth_upstream::{
    ErrorClass, Event, EventStream, FinishReason, Prompt, Router, RunOptions, Target, Transport,
    UpstreamError,
};

struct Bed {
    upstreams: Vec<FakeUpstream>,
    config: Config,
    env: BTreeMap<String, String>,
}

/// `n` fake providers `p0..pN`, each serving model `m`; `extra` is appended to every provider.
async fn make_bed(n: usize, extra: &str) -> Bed {
    make_bed_with(n, extra, "", &[]).await
}

/// [`make_bed`] with `models` keys besides `providers` (`routing: {…},`) and variables set
/// before the config is loaded (the router's variables are read at load).
async fn make_bed_with(n: usize, extra: &str, models: &str, vars: &[(&str, &str)]) -> Bed {
    let mut upstreams = Vec::new();
    let mut providers = String::new();
    for i in 0..n {
        let up = FakeUpstream::start().await.unwrap();
        providers.push_str(&format!(
            r#"p{i}: {{baseUrl: "{}/v1", apiKey: "${{P{i}_KEY}}", api: "openai-completions", {extra} models: [{{id: "m", maxTokens: 64}}]}},"#,
            up.origin()
        ));
        upstreams.push(up);
    }
    let text = format!(r#"{{models: {{mode: "replace", {models} providers: {{{providers}}}}}}}"#);
    let mut env: BTreeMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    for i in 0..n {
        env.insert(format!("P{i}_KEY"), format!("key-{i}"));
    }
    let loaded = load_str("router.json5", &text, &env);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    Bed { upstreams, config: loaded.config.unwrap(), env }
}

fn chain(refs: &[&str]) -> Chain {
    Chain {
        candidates: refs.iter().map(|r| r.parse::<ModelRef>().unwrap()).collect(),
        strict: refs.len() == 1,
    }
}

fn ok_stream(text: &str) -> Reply {
    Reply::sse(&[
        &format!(
            r#"{{"choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
        ),
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        "[DONE]",
    ])
}

fn prompt() -> Prompt {
    Prompt { stream: true, ..Prompt::text(None, "hi") }
}

fn fast() -> RunOptions<'static> {
    RunOptions {
        overload_retries: 3,
        overload_base: Duration::from_millis(10),
        ..RunOptions::default()
    }
}

async fn run(
    router: &Router,
    bed: &Bed,
    chain: &Chain,
    options: RunOptions<'_>,
) -> Result<(String, Vec<Event>, Vec<hearth_upstream::Attempt>), hearth_upstream::Failure> {
    let answer = router.run(&bed.config, chain, &prompt(), &|_| None, &bed.env, options).await?;
    let events: Vec<Event> = answer.events.collect().await;
    Ok((answer.model_ref.to_string(), events, answer.attempts))
}

fn text(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| if let Event::TextDelta(t) = e { Some(t.as_str()) } else { None })
        .collect()
}

fn terminal(events: &[Event]) -> &Event {
    events.last().unwrap()
}

fn classes(attempts: &[hearth_upstream::Attempt]) -> Vec<String> {
    attempts
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a.model_ref.provider,
                a.error.as_ref().map_or(a.outcome().to_owned(), |e| e.class.as_str().to_owned())
            )
        })
        .collect()
}

// ---- the sixteen fault scenarios ----------------------------------------------------------

#[tokio::test]
async fn f01_rate_limit_without_retry_after_fails_over_and_cools_down() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(429, r#"{"error":{"message":"Rate limit reached"}}"#));
    bed.upstreams[1].push(ok_stream("from p1"));
    let (who, events, attempts) =
        run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p1/m", "from p1"));
    assert_eq!(classes(&attempts), ["p0:rate_limit", "p1:ok"]);
    let cooldowns = router.cooldowns();
    assert_eq!(cooldowns.len(), 1);
    assert!(
        cooldowns[0].remaining > Duration::from_secs(25)
            && cooldowns[0].remaining <= Duration::from_secs(30)
    );
    // The next turn skips the cooling primary without a request.
    bed.upstreams[1].push(ok_stream("again"));
    let (_, _, attempts) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(classes(&attempts), ["p0:rate_limit", "p1:ok"]);
    assert!(attempts[0].skipped);
    assert_eq!(bed.upstreams[0].requests().len(), 1);
}

#[tokio::test]
async fn f02_rate_limit_with_long_retry_after_fails_over_now() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(
        Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "120"),
    );
    bed.upstreams[1].push(ok_stream("b"));
    let (who, _, _) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert!(
        router.cooldowns()[0].remaining > Duration::from_secs(110),
        "Retry-After sets the cooldown"
    );
}

#[tokio::test]
async fn f03_server_error_once_fails_over_and_does_not_cool_down() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(500, r#"{"error":{"message":"boom"}}"#));
    bed.upstreams[1].push(ok_stream("b"));
    let (who, _, attempts) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:ok"]);
    assert!(router.cooldowns().is_empty());
    // Flapping primary: it answers on the next turn.
    bed.upstreams[0].push(ok_stream("a is back"));
    let (who, events, _) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "a is back"));
}

#[tokio::test]
async fn f04_persistent_overload_retries_the_whole_chain_then_fails() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    for _ in 0..4 {
        bed.upstreams[0]
            .push(Reply::json(503, r#"{"error":{"message":"The server is overloaded"}}"#));
        bed.upstreams[1].push(Reply::json(
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ));
    }
    let failure = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Overloaded);
    assert_eq!(failure.attempts.len(), 8, "1 run + 3 retries, 2 candidates each");
    assert_eq!(bed.upstreams[0].requests().len(), 4);
}

#[tokio::test]
async fn f04b_overload_then_recovery_within_the_retries() {
    let bed = make_bed(1, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    bed.upstreams[0].push(ok_stream("recovered"));
    let (_, events, attempts) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "recovered");
    assert_eq!(classes(&attempts), ["p0:overloaded", "p0:ok"]);
}

#[tokio::test]
async fn f05_tcp_reset_and_refused_fail_over() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    // Headers then an immediate close: a disconnect at byte 0 of the body.
    bed.upstreams[0].push(Reply::sse_raw("").end(End::Disconnect));
    bed.upstreams[1].push(ok_stream("b"));
    let (who, _, attempts) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:ok"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text_cfg = format!(
        r#"{{models: {{mode: "replace", providers: {{down: {{baseUrl: "http://127.0.0.1:{port}/v1", models: [{{id: "m"}}]}},
            up: {{baseUrl: "{}/v1", models: [{{id: "m"}}]}}}}}}}}"#,
        bed.upstreams[1].origin()
    );
    let config = load_str("t.json5", &text_cfg, &BTreeMap::<String, String>::new()).config.unwrap();
    bed.upstreams[1].push(ok_stream("b"));
    let answer = router
        .run(&config, &chain(&["down/m", "up/m"]), &prompt(), &|_| None, &bed.env, fast())
        .await
        .unwrap();
    assert_eq!(classes(&answer.attempts), ["down:connect", "up:ok"]);
}

#[tokio::test]
async fn f06_no_response_times_out_and_fails_over() {
    let bed = make_bed(2, "timeoutSeconds: 0.3,").await;
    let router = Router::new();
    // The server reads the request and never answers.
    bed.upstreams[0].push(
        Reply { status: 200, headers: vec![], steps: vec![], end: End::Stall }
            .stall_before_headers(),
    );
    bed.upstreams[1].push(ok_stream("b"));
    let (who, _, attempts) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:timeout", "p1:ok"]);
}

#[tokio::test]
async fn f07_slow_first_token_is_waited_for() {
    let bed = make_bed(2, "timeoutSeconds: 2,").await;
    let router = Router::new();
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"slow\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    bed.upstreams[0].push(Reply::sse_raw(body).split_at(0, Duration::from_millis(400)));
    let (who, events, _) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "slow"));
    assert!(bed.upstreams[1].requests().is_empty());
}

#[tokio::test]
async fn f08_stream_cut_after_output_is_a_terminal_error_not_a_failover() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    let reply = ok_stream("partial answer");
    let cut = {
        let Reply { steps, .. } = &reply;
        let hearth_testkit::upstream::Step::Bytes(b) = &steps[0] else { unreachable!() };
        String::from_utf8_lossy(b).find("finish_reason\":\"stop").unwrap()
    };
    bed.upstreams[0].push(reply.disconnect_after(cut));
    let (who, events, _) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p0/m");
    assert_eq!(text(&events), "partial answer");
    assert!(
        matches!(terminal(&events), Event::Error(e) if e.class == ErrorClass::ServerError),
        "{events:?}"
    );
    assert!(bed.upstreams[1].requests().is_empty(), "no failover once output was handed out");
}

#[tokio::test]
async fn f09_stream_stall_is_a_terminal_timeout() {
    let bed = make_bed(1, "timeoutSeconds: 0.3,").await;
    let router = Router::new();
    bed.upstreams[0].push(
        Reply::sse(&[
            r#"{"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}"#,
        ])
        .end(End::Stall),
    );
    let (_, events, _) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "par");
    assert!(matches!(terminal(&events), Event::Error(e) if e.class == ErrorClass::Timeout));
}

#[tokio::test]
async fn f10_malformed_first_chunk_fails_over() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::sse(&["{not json"]));
    bed.upstreams[1].push(ok_stream("b"));
    let (who, _, attempts) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:ok"]);
}

#[tokio::test]
async fn f11_no_done_marker_is_a_success() {
    let bed = make_bed(1, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"done"},"finish_reason":"stop"}]}"#,
    ]));
    let (_, events, _) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "done");
    assert!(matches!(terminal(&events), Event::Finish(FinishReason::Stop)));
}

#[tokio::test]
async fn f12_context_overflow_does_not_fall_back() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(400, r#"{"error":{"code":400,"message":"request (815 tokens) exceeds the available context size (512 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":815,"n_ctx":512}}"#));
    let failure = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::ContextOverflow);
    assert_eq!(failure.last.overflow.unwrap().context_size, Some(512));
    assert!(bed.upstreams[1].requests().is_empty());
}

#[tokio::test]
async fn f13_content_filter_is_a_finish_not_a_failure() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"I can't"},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}"#,
        "[DONE]",
    ]));
    let (who, events, _) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p0/m");
    assert!(matches!(terminal(&events), Event::Finish(FinishReason::ContentFilter)));
}

#[tokio::test]
async fn f14_fallback_rejecting_the_request_is_surfaced() {
    let bed = make_bed(3, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(500, r#"{"error":{"message":"down"}}"#));
    bed.upstreams[1].push(Reply::json(400, r#"{"error":{"message":"Invalid 'messages[1].content': expected a string","type":"invalid_request_error"}}"#));
    let failure = run(&router, &bed, &chain(&["p0/m", "p1/m", "p2/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Format);
    assert_eq!(classes(&failure.attempts), ["p0:server_error", "p1:format"]);
    assert!(bed.upstreams[2].requests().is_empty(), "a format error is terminal");
}

#[tokio::test]
async fn f15_per_attempt_accounting() {
    let bed = make_bed(3, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(500, "{}"));
    bed.upstreams[1].push(Reply::json(429, "{}"));
    bed.upstreams[2].push(ok_stream("c"));
    let (_, _, attempts) =
        run(&router, &bed, &chain(&["p0/m", "p1/m", "p2/m"]), fast()).await.unwrap();
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:rate_limit", "p2:ok"]);
    assert!(attempts.iter().all(|a| a.elapsed < Duration::from_secs(5)));
    assert_eq!(attempts[0].error.as_ref().unwrap().status, Some(500));
}

#[tokio::test]
async fn f16_truncated_stream_is_never_success() {
    let bed = make_bed(1, "").await;
    let router = Router::new();
    // Output, then the connection ends without a finish reason or [DONE].
    bed.upstreams[0].push(Reply::sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"half"},"finish_reason":null}]}"#,
    ]));
    let (_, events, _) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert!(matches!(terminal(&events), Event::Error(_)));
    assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))));
}

// ---- chain and credential rules -------------------------------------------------------------

#[tokio::test]
async fn strict_chain_does_not_fall_back() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(500, "{}"));
    let failure = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.attempts.len(), 1);
    assert!(bed.upstreams[1].requests().is_empty());
}

#[tokio::test]
async fn keys_rotate_on_rate_limit_and_auth() {
    let mut bed = make_bed(2, "").await;
    bed.env.insert("P0_KEYS".into(), "key-0; key-0b".into());
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(429, "{}"));
    bed.upstreams[0].push(ok_stream("second key"));
    let (who, events, _) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "second key"));
    let auth: Vec<String> = bed.upstreams[0]
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(auth, ["Bearer key-0", "Bearer key-0b"]);
}

#[tokio::test]
async fn billing_disables_for_hours_and_usage_window_402_is_a_rate_limit() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(402, r#"{"error":{"message":"insufficient credits"}}"#));
    bed.upstreams[1].push(ok_stream("b"));
    run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    let c = &router.cooldowns()[0];
    assert_eq!(c.reason, ErrorClass::Billing);
    assert!(c.remaining > Duration::from_secs(4 * 3600));

    let bed2 = make_bed(2, "").await;
    let router = Router::new();
    bed2.upstreams[0]
        .push(Reply::json(402, r#"{"error":{"message":"daily limit reached, resets tomorrow"}}"#));
    bed2.upstreams[1].push(ok_stream("b"));
    run(&router, &bed2, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    let c = &router.cooldowns()[0];
    assert_eq!(c.reason, ErrorClass::RateLimit);
    assert!(c.remaining <= Duration::from_secs(30));
}

#[tokio::test]
async fn rate_limit_cooldowns_grow_30_60_300() {
    let bed = make_bed(1, "").await;
    let router = Router::new();
    let mut seen = Vec::new();
    for _ in 0..4 {
        bed.upstreams[0].push(Reply::json(429, "{}"));
        // Probe even while cooling: the only candidate is always tried.
        let _ = run(&router, &bed, &chain(&["p0/m"]), fast()).await;
        let c = &router.cooldowns()[0];
        seen.push((c.remaining.as_secs() + 1) / 30 * 30);
    }
    assert_eq!(seen, [30, 60, 300, 300]);
}

// ---- §E 31–33: the overload notice, the Retry-After cap, the auth skip cache -------------

#[tokio::test]
async fn e32_a_short_retry_after_on_the_last_candidate_is_waited_out() {
    let bed = make_bed(1, "").await;
    let router = Router::new();
    bed.upstreams[0]
        .push(Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "1"));
    bed.upstreams[0].push(ok_stream("after the wait"));
    let started = std::time::Instant::now();
    let (_, events, attempts) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "after the wait");
    assert_eq!(classes(&attempts), ["p0:rate_limit", "p0:ok"]);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited the Retry-After");
}

#[tokio::test]
async fn e32_a_retry_after_over_the_cap_surfaces_at_once() {
    // Default cap (60 s): 120 s is not waited for.
    let bed = make_bed(1, "").await;
    let router = Router::new();
    bed.upstreams[0].push(
        Reply::json(429, r#"{"error":{"message":"slow down"}}"#).header("retry-after", "120"),
    );
    let started = std::time::Instant::now();
    let failure = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::RateLimit);
    assert_eq!(failure.attempts.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn run_in(
    router: &Router,
    bed: &Bed,
    refs: &[&str],
    session: &str,
) -> Result<Vec<hearth_upstream::Attempt>, hearth_upstream::Failure> {
    let options = RunOptions { session: Some(session), ..fast() };
    let answer =
        router.run(&bed.config, &chain(refs), &prompt(), &|_| None, &bed.env, options).await?;
    let _: Vec<Event> = answer.events.collect().await;
    Ok(answer.attempts)
}

#[tokio::test]
async fn e33_a_fallback_that_failed_auth_is_skipped_in_that_session_only() {
    let bed = make_bed_with(3, "", "routing: {fallbackSkipTtlMs: 60000},", &[]).await;
    let router = Router::new();
    let refs = ["p0/m", "p1/m", "p2/m"];
    // Turn 1 in s1: the primary fails (no cooldown), the fallback F = p1 is refused (401).
    bed.upstreams[0].push(Reply::json(500, "{}"));
    bed.upstreams[1].push(Reply::json(401, r#"{"error":{"message":"invalid api key"}}"#));
    bed.upstreams[2].push(ok_stream("c"));
    let attempts = run_in(&router, &bed, &refs, "s1").await.unwrap();
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:auth", "p2:ok"]);
    // The key works again (a strict request probes it and succeeds, ending its cooldown).
    bed.upstreams[1].push(ok_stream("key fixed"));
    run_in(&router, &bed, &["p1/m"], "other").await.unwrap();
    assert!(router.cooldowns().is_empty());
    // Turn 2 in s1: F is skipped without a request; the primary is tried.
    bed.upstreams[0].push(Reply::json(500, "{}"));
    bed.upstreams[2].push(ok_stream("c"));
    let attempts = run_in(&router, &bed, &refs, "s1").await.unwrap();
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:auth", "p2:ok"]);
    assert!(attempts[1].skipped);
    let message = &attempts[1].error.as_ref().unwrap().message;
    assert!(message.contains("failed authentication in this session"), "{message}");
    assert_eq!(bed.upstreams[1].requests().len(), 2);
    // Another session tries F.
    bed.upstreams[0].push(Reply::json(500, "{}"));
    bed.upstreams[1].push(ok_stream("b"));
    let attempts = run_in(&router, &bed, &refs, "s2").await.unwrap();
    assert_eq!(classes(&attempts), ["p0:server_error", "p1:ok"]);
}

#[tokio::test]
async fn e33_the_primary_is_never_skipped_and_unset_means_no_skip_cache() {
    for skip in [true, false] {
        let vars: &[(&str, &str)] =
            if skip { &[("HEARTH_FALLBACK_SKIP_TTL_MS", "60000")] } else { &[] };
        let bed = make_bed_with(3, "", "", vars).await;
        let router = Router::new();
        // The primary and F both fail authentication in s1.
        bed.upstreams[0].push(Reply::json(401, "{}"));
        bed.upstreams[1].push(Reply::json(401, "{}"));
        bed.upstreams[2].push(ok_stream("c"));
        run_in(&router, &bed, &["p0/m", "p1/m", "p2/m"], "s1").await.unwrap();
        // Both keys are fixed; their cooldowns end.
        for (i, r) in ["p0/m", "p1/m"].iter().enumerate() {
            bed.upstreams[i].push(ok_stream("fixed"));
            run_in(&router, &bed, &[r], "other").await.unwrap();
        }
        bed.upstreams[0].push(Reply::json(500, "{}"));
        bed.upstreams[1].push(ok_stream("b"));
        bed.upstreams[2].push(ok_stream("c"));
        let attempts = run_in(&router, &bed, &["p0/m", "p1/m", "p2/m"], "s1").await.unwrap();
        let expected: &[&str] = if skip {
            &["p0:server_error", "p1:auth", "p2:ok"]
        } else {
            &["p0:server_error", "p1:ok"]
        };
        assert_eq!(classes(&attempts), expected, "skip cache on: {skip}");
    }
}

// ---- loading servers: waited for once, then skipped while they cool down -----------------

const LOADING: &str =
    r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#;

fn loading_cooldowns<T: Transport>(
    router: &Router<T>,
) -> Vec<hearth_upstream::router::CooldownView> {
    router.cooldowns().into_iter().filter(|c| c.reason == ErrorClass::Loading).collect()
}

/// The cooldown is the server's own estimate when it gives one: a `Retry-After` header, or a
/// `try again in 20s` in its message.
#[tokio::test]
async fn a_loading_cooldown_lasts_the_servers_estimate() {
    let bed = make_bed(3, "timeoutSeconds: 1,").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(503, LOADING).header("retry-after", "40"));
    bed.upstreams[1].push(Reply::json(
        503,
        r#"{"error":{"message":"Loading model, try again in 20s","type":"unavailable_error"}}"#,
    ));
    bed.upstreams[2].push(ok_stream("fallback"));
    let (who, _, attempts) =
        run(&router, &bed, &chain(&["p0/m", "p1/m", "p2/m"]), fast()).await.unwrap();
    assert_eq!(who, "p2/m");
    assert_eq!(classes(&attempts), ["p0:loading", "p1:loading", "p2:ok"]);
    let remaining = |p: &str| {
        loading_cooldowns(&router).into_iter().find(|c| c.provider == p).unwrap().remaining
    };
    assert!((Duration::from_secs(35)..=Duration::from_secs(40)).contains(&remaining("p0")));
    assert!((Duration::from_secs(15)..=Duration::from_secs(20)).contains(&remaining("p1")));
}

// ---- first-byte and stall timeouts are separate ------------------------------------------

/// Headers and one chunk, then silence: the stream ends with a timeout after the stall
/// setting (0.3 s), long before the first-byte setting (30 s).
#[tokio::test]
async fn a_stall_mid_stream_ends_after_the_stall_timeout() {
    let bed = make_bed(1, "timeoutSeconds: 30, streamIdleTimeoutSeconds: 0.3,").await;
    let router = Router::new();
    bed.upstreams[0].push(
        Reply::sse(&[
            r#"{"choices":[{"index":0,"delta":{"content":"par"},"finish_reason":null}]}"#,
        ])
        .end(End::Stall),
    );
    let started = std::time::Instant::now();
    let (_, events, _) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "par");
    let e = match terminal(&events) {
        Event::Error(e) => e,
        other => unreachable!("not an error: {other:?}"),
    };
    assert_eq!(e.class, ErrorClass::Timeout);
    assert!(e.message.contains("300ms") && e.message.contains("streamIdleTimeoutSeconds"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(15), "the first-byte timeout applied");
}

/// The stall setting does not cut the wait for the first output (prompt processing): a first
/// chunk after 0.8 s passes with a stall setting of 0.3 s.
#[tokio::test]
async fn the_stall_timeout_does_not_apply_before_the_first_output() {
    let bed = make_bed(1, "timeoutSeconds: 5, streamIdleTimeoutSeconds: 0.3,").await;
    let router = Router::new();
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"slow\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    // Headers at once, and a keep-alive comment: bytes, but no output yet.
    let reply = Reply::sse_raw(&format!(": keep-alive\n\n{body}"))
        .split_at(": keep-alive\n\n".len(), Duration::from_millis(800));
    bed.upstreams[0].push(reply);
    let (_, events, _) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "slow", "{events:?}");
    assert!(matches!(terminal(&events), Event::Finish(FinishReason::Stop)), "{events:?}");
}

/// No first output within `timeoutSeconds` is a timeout that names it, and fails over.
#[tokio::test]
async fn no_first_output_within_the_first_byte_timeout_fails_over() {
    let bed = make_bed(2, "timeoutSeconds: 0.5, streamIdleTimeoutSeconds: 30,").await;
    let router = Router::new();
    // Headers, then nothing.
    bed.upstreams[0].push(Reply::sse_raw("").end(End::Stall));
    bed.upstreams[1].push(ok_stream("b"));
    let (who, _, attempts) = run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:timeout", "p1:ok"]);
    let message = &attempts[0].error.as_ref().unwrap().message;
    assert!(message.contains("timeoutSeconds"), "{message}");
}

// ---- on tokio's paused clock, through a scripted transport -------------------------------

/// What one scripted call does.
enum Scripted {
    /// Fails before its first event.
    Fail(UpstreamError),
    /// Answers with these events.
    Answer(Vec<Event>),
    /// Answers with headers and then never an event.
    Silent,
    /// Never answers at all.
    Hang,
}

/// One call the router made: to which provider, with which key, when (since the test began).
#[derive(Debug, Clone, PartialEq)]
struct Call {
    provider: String,
    key: Option<String>,
    at: Duration,
}

/// A transport with a queue of scripted replies per provider; a provider with none left
/// answers `server_error`.
struct Script {
    started: tokio::time::Instant,
    replies: Mutex<HashMap<String, VecDeque<Scripted>>>,
    calls: Mutex<Vec<Call>>,
}

impl Script {
    fn new() -> Self {
        Script {
            started: tokio::time::Instant::now(),
            replies: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    fn push(&self, provider: &str, reply: Scripted) {
        self.replies.lock().unwrap().entry(provider.to_owned()).or_default().push_back(reply);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// When each call to `provider` was made, in seconds since the test began.
    fn times(&self, provider: &str) -> Vec<f64> {
        self.calls().iter().filter(|c| c.provider == provider).map(|c| c.at.as_secs_f64()).collect()
    }

    fn since_start(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Transport for Script {
    async fn send(
        &self,
        target: &Target<'_>,
        _prompt: &Prompt,
        _env: &(dyn Env + Sync),
        key: Option<&SecretString>,
    ) -> Result<EventStream, UpstreamError> {
        let provider = target.provider.id.clone();
        self.calls.lock().unwrap().push(Call {
            provider: provider.clone(),
            key: key.map(|k| k.expose().to_owned()),
            at: self.since_start(),
        });
        let reply = self.replies.lock().unwrap().get_mut(&provider).and_then(VecDeque::pop_front);
        match reply {
            Some(Scripted::Answer(events)) => Ok(futures::stream::iter(events).boxed()),
            Some(Scripted::Fail(error)) => Err(error),
            Some(Scripted::Silent) => Ok(futures::stream::pending().boxed()),
            Some(Scripted::Hang) => std::future::pending().await,
            None => Err(UpstreamError::new(ErrorClass::ServerError, "nothing scripted")),
        }
    }
}

fn answer(text: &str) -> Scripted {
    Scripted::Answer(vec![Event::TextDelta(text.to_owned()), Event::Finish(FinishReason::Stop)])
}

fn failing(class: ErrorClass, retry_after: Option<Duration>) -> Scripted {
    let mut error = UpstreamError::new(class, class.as_str());
    error.retry_after = retry_after;
    Scripted::Fail(error)
}

fn loading(retry_after: Option<Duration>) -> Scripted {
    let mut error = UpstreamError::new(ErrorClass::Loading, "Loading model");
    error.status = Some(503);
    error.retry_after = retry_after;
    Scripted::Fail(error)
}

/// A config of `n` providers `p0..pN` (model `m`, key `key-i`) that are never contacted:
/// calls go to the script. `models` and `vars` as in [`make_bed_with`].
fn offline(n: usize, extra: &str, models: &str, vars: &[(&str, &str)]) -> Bed {
    let providers: String = (0..n)
        .map(|i| {
            format!(
                r#"p{i}: {{baseUrl: "http://127.0.0.1:9/v1", apiKey: "${{P{i}_KEY}}", api: "openai-completions", {extra} models: [{{id: "m"}}]}},"#
            )
        })
        .collect();
    let text = format!(r#"{{models: {{mode: "replace", {models} providers: {{{providers}}}}}}}"#);
    let mut env: BTreeMap<String, String> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    for i in 0..n {
        env.insert(format!("P{i}_KEY"), format!("key-{i}"));
    }
    let loaded = load_str("offline.json5", &text, &env);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    Bed { upstreams: Vec::new(), config: loaded.config.unwrap(), env }
}

async fn run_scripted(
    router: &Router<Script>,
    bed: &Bed,
    refs: &[&str],
    options: RunOptions<'_>,
) -> Result<(String, Vec<Event>, Vec<hearth_upstream::Attempt>), hearth_upstream::Failure> {
    let answer =
        router.run(&bed.config, &chain(refs), &prompt(), &|_| None, &bed.env, options).await?;
    let events: Vec<Event> = answer.events.collect().await;
    Ok((answer.model_ref.to_string(), events, answer.attempts))
}

#[tokio::test(start_paused = true)]
async fn the_run_deadline_ends_a_call_that_never_answers_on_time() {
    let bed = offline(2, "", "", &[]);
    let router = Router::with_transport(Script::new());
    router.transport().push("p0", Scripted::Hang);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let options = RunOptions { deadline: Some(deadline), ..RunOptions::default() };
    let failure = run_scripted(&router, &bed, &["p0/m", "p1/m"], options).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Timeout);
    assert_eq!(classes(&failure.attempts), ["p0:timeout"], "p1 is not tried past the deadline");
    assert_eq!(failure.attempts[0].elapsed, Duration::from_millis(300));
    assert_eq!(router.transport().since_start(), Duration::from_millis(300));

    // Headers and then no event: the deadline bounds the wait for the first event too.
    let router = Router::with_transport(Script::new());
    router.transport().push("p0", Scripted::Silent);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(7);
    let options = RunOptions { deadline: Some(deadline), ..RunOptions::default() };
    let failure = run_scripted(&router, &bed, &["p0/m"], options).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Timeout);
    assert_eq!(router.transport().since_start(), Duration::from_secs(7));
}

/// With the default options (10 retries, 2.5 s doubling to 30 s, the notice at 30 s): every
/// retry at its instant, and exactly one notice, handed out at 30 s while the retries go on.
#[tokio::test(start_paused = true)]
async fn e31_overload_retries_back_off_on_time_and_the_notice_comes_at_30_s() {
    let bed = offline(2, "", "", &[]);
    let router = Router::with_transport(Script::new());
    for _ in 0..11 {
        router.transport().push("p0", failing(ErrorClass::Overloaded, None));
        router.transport().push("p1", failing(ErrorClass::Overloaded, None));
    }
    let sent = Mutex::new(Vec::<(String, Duration)>::new());
    let notify =
        |n: &str| sent.lock().unwrap().push((n.to_owned(), router.transport().since_start()));
    let options = RunOptions { on_notice: Some(&notify), ..RunOptions::default() };
    let failure = run_scripted(&router, &bed, &["p0/m", "p1/m"], options).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Overloaded);
    assert_eq!(failure.attempts.len(), 22, "1 run + 10 retries, 2 candidates each");
    assert_eq!(failure.notices, [OVERLOAD_NOTICE]);
    let times = router.transport().times("p0");
    assert_eq!(
        times,
        [0.0, 2.5, 7.5, 17.5, 37.5, 67.5, 97.5, 127.5, 157.5, 187.5, 217.5],
        "2.5 s doubling, capped at 30 s"
    );
    assert_eq!(router.transport().times("p1"), times, "the whole chain each time");
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent, [(OVERLOAD_NOTICE.to_owned(), Duration::from_secs(30))]);
    assert_eq!(
        sent[0].0,
        "The AI service is temporarily overloaded. I’m still retrying; this may take a few minutes."
    );
}

#[tokio::test(start_paused = true)]
async fn e31_no_notice_when_the_chain_recovers_before_30_s_and_one_after() {
    let bed = offline(1, "", "", &[]);
    let router = Router::with_transport(Script::new());
    // Overloaded at 0, 2.5 and 7.5 s; answers at 17.5 s: before the notice is due.
    for _ in 0..3 {
        router.transport().push("p0", failing(ErrorClass::Overloaded, None));
    }
    router.transport().push("p0", answer("back"));
    let notify = |_: &str| unreachable!("no notice is due");
    let options = RunOptions { on_notice: Some(&notify), ..RunOptions::default() };
    let answer_ =
        router.run(&bed.config, &chain(&["p0/m"]), &prompt(), &|_| None, &bed.env, options).await;
    let answer_ = answer_.unwrap();
    assert!(answer_.notices.is_empty());
    assert_eq!(router.transport().times("p0"), [0.0, 2.5, 7.5, 17.5]);

    // Answering at 37.5 s, after the notice went out at 30 s: the answer carries it.
    let router = Router::with_transport(Script::new());
    for _ in 0..4 {
        router.transport().push("p0", failing(ErrorClass::Overloaded, None));
    }
    router.transport().push("p0", answer("back again"));
    let (_, events, attempts) =
        run_scripted(&router, &bed, &["p0/m"], RunOptions::default()).await.unwrap();
    assert_eq!(text(&events), "back again");
    assert_eq!(attempts.len(), 5);
    assert_eq!(router.transport().since_start(), Duration::from_millis(37_500));
}

#[tokio::test(start_paused = true)]
async fn e32_a_short_retry_after_is_waited_out_to_the_instant() {
    let bed = offline(1, "", "", &[]);
    let router = Router::with_transport(Script::new());
    router
        .transport()
        .push("p0", failing(ErrorClass::RateLimit, Some(Duration::from_millis(1500))));
    router.transport().push("p0", answer("after the wait"));
    let (_, events, attempts) =
        run_scripted(&router, &bed, &["p0/m"], RunOptions::default()).await.unwrap();
    assert_eq!(text(&events), "after the wait");
    assert_eq!(classes(&attempts), ["p0:rate_limit", "p0:ok"]);
    assert_eq!(router.transport().times("p0"), [0.0, 1.5]);
}

/// `models.routing.retryMaxWaitSeconds` caps the wait; the variables win over it.
#[tokio::test(start_paused = true)]
async fn e32_the_retry_wait_cap_comes_from_the_config_and_the_variable_wins() {
    let capped = offline(1, "", "routing: {retryMaxWaitSeconds: 1},", &[]);
    let router = Router::with_transport(Script::new());
    router
        .transport()
        .push("p0", failing(ErrorClass::RateLimit, Some(Duration::from_millis(1500))));
    let failure =
        run_scripted(&router, &capped, &["p0/m"], RunOptions::default()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::RateLimit);
    assert_eq!(router.transport().times("p0"), [0.0], "1.5 s is over the cap: no wait");
    assert_eq!(router.transport().since_start(), Duration::ZERO);

    let env_capped = offline(1, "", "", &[("HEARTH_RETRY_MAX_WAIT_SECONDS", "1")]);
    let router = Router::with_transport(Script::new());
    router
        .transport()
        .push("p0", failing(ErrorClass::RateLimit, Some(Duration::from_millis(1500))));
    let failure = run_scripted(&router, &env_capped, &["p0/m"], RunOptions::default()).await;
    assert_eq!(failure.unwrap_err().attempts.len(), 1);

    let uncapped = offline(
        1,
        "",
        "routing: {retryMaxWaitSeconds: 1},",
        &[("OPENCLAW_SDK_RETRY_MAX_WAIT_SECONDS", "0")],
    );
    let router = Router::with_transport(Script::new());
    router.transport().push("p0", failing(ErrorClass::RateLimit, Some(Duration::from_secs(600))));
    router.transport().push("p0", answer("uncapped"));
    let (_, events, _) =
        run_scripted(&router, &uncapped, &["p0/m"], RunOptions::default()).await.unwrap();
    assert_eq!(text(&events), "uncapped");
    assert_eq!(router.transport().times("p0"), [0.0, 600.0], "ten minutes, waited out");
}

/// A cooldown ends at its instant: skipped a moment before, tried again right at it.
#[tokio::test(start_paused = true)]
async fn a_rate_limit_cooldown_ends_on_time_and_the_primary_is_tried_again() {
    let bed = offline(2, "", "", &[]);
    let router = Router::with_transport(Script::new());
    router.transport().push("p0", failing(ErrorClass::RateLimit, None));
    router.transport().push("p1", answer("p1"));
    let (who, _, _) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert_eq!(who, "p1/m");

    tokio::time::advance(Duration::from_secs(30) - Duration::from_millis(1)).await;
    router.transport().push("p1", answer("p1 again"));
    let (_, _, attempts) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert!(attempts[0].skipped, "still cooling 1 ms before the end: {attempts:?}");
    assert_eq!(attempts[0].error.as_ref().unwrap().retry_after, Some(Duration::from_millis(1)));

    tokio::time::advance(Duration::from_millis(1)).await;
    router.transport().push("p0", answer("p0 is back"));
    let (who, events, attempts) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "p0 is back"));
    assert_eq!(classes(&attempts), ["p0:ok"]);
    assert!(router.cooldowns().is_empty());
    assert_eq!(router.transport().times("p0"), [0.0, 30.0]);
}

/// Keys rotate before the chain moves on, in order; a rotated key is not retried while it cools.
#[tokio::test(start_paused = true)]
async fn keys_rotate_in_order_and_a_cooling_key_is_passed_over() {
    let bed = offline(2, "", "", &[("P0_KEYS", "key-0, key-0b; key-0c")]);
    let router = Router::with_transport(Script::new());
    router.transport().push("p0", failing(ErrorClass::RateLimit, None));
    router.transport().push("p0", failing(ErrorClass::Auth, None));
    router.transport().push("p0", answer("third key"));
    let (who, _, attempts) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert_eq!(who, "p0/m");
    assert_eq!(classes(&attempts), ["p0:rate_limit", "p0:auth", "p0:ok"]);
    // The next run starts with the key that answered.
    router.transport().push("p0", answer("again"));
    run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    let keys: Vec<Option<String>> = router.transport().calls().into_iter().map(|c| c.key).collect();
    let key = |k: &str| Some(k.to_owned());
    assert_eq!(keys, [key("key-0"), key("key-0b"), key("key-0c"), key("key-0c")]);
}

/// A server that answers "Loading model" to everything is polled every second by the first
/// request, up to its `timeoutSeconds` (3 s); then it cools down for 15 s: the requests after
/// it skip it without contacting it, fail over at once, and, with nothing left to fail over
/// to, answer at once with a `loading` failure and the exact time left; after the cooldown it
/// is tried again.
#[tokio::test(start_paused = true)]
async fn a_loading_server_is_waited_for_once_then_skipped_while_it_cools_down() {
    let bed = offline(2, "timeoutSeconds: 3,", "", &[]);
    let router = Router::with_transport(Script::new());
    for _ in 0..3 {
        router.transport().push("p0", loading(None));
    }
    router.transport().push("p1", answer("first"));
    let (who, _, attempts) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:loading", "p0:loading", "p0:loading", "p1:ok"]);
    assert_eq!(router.transport().times("p0"), [0.0, 1.0, 2.0]);
    assert_eq!(router.transport().times("p1"), [2.0], "the failover comes at once");
    let cooling = loading_cooldowns(&router);
    assert_eq!(cooling.len(), 1, "{:?}", router.cooldowns());
    assert_eq!(cooling[0].remaining, LOADING_COOLDOWN);

    // 5 s later: skipped without a call, the fallback answers at once.
    tokio::time::advance(Duration::from_secs(5)).await;
    router.transport().push("p1", answer("second"));
    let (who, _, attempts) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert_eq!(who, "p1/m");
    assert_eq!(classes(&attempts), ["p0:loading", "p1:ok"]);
    assert!(attempts[0].skipped);
    assert_eq!(router.transport().times("p1"), [2.0, 7.0]);

    // Alone in its chain: a loading failure at once, with a 503 and the time left.
    let failure = run_scripted(&router, &bed, &["p0/m"], RunOptions::default()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Loading);
    assert_eq!(failure.last.status, Some(503));
    assert!(failure.attempts.iter().all(|a| a.skipped), "{:?}", failure.attempts);
    assert_eq!(failure.retry_in, Some(LOADING_COOLDOWN - Duration::from_secs(5)));
    assert_eq!(router.transport().times("p0").len(), 3, "p0 was contacted again");

    // When the cooldown is over, it is tried again.
    tokio::time::advance(LOADING_COOLDOWN - Duration::from_secs(5)).await;
    router.transport().push("p0", answer("warm"));
    let (who, _, _) =
        run_scripted(&router, &bed, &["p0/m", "p1/m"], RunOptions::default()).await.unwrap();
    assert_eq!(who, "p0/m");
    assert_eq!(router.transport().times("p0"), [0.0, 1.0, 2.0, 17.0]);
}

/// An estimate starts the cooldown at once (other requests skip the server meanwhile), the
/// request that got it keeps polling (at the estimate, 5 s at most), and its answer ends the
/// cooldown.
#[tokio::test(start_paused = true)]
async fn a_loading_cooldown_starts_with_the_estimate_and_ends_when_the_model_answers() {
    let bed = offline(1, "timeoutSeconds: 10,", "", &[]);
    let router = Router::with_transport(Script::new());
    router.transport().push("p0", loading(Some(Duration::from_secs(2))));
    router.transport().push("p0", loading(Some(Duration::from_secs(40))));
    router.transport().push("p0", answer("warm now"));
    let watch = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        loading_cooldowns(&router)
    };
    let (result, seen) =
        tokio::join!(run_scripted(&router, &bed, &["p0/m"], RunOptions::default()), watch);
    let (who, events, attempts) = result.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "warm now"));
    assert_eq!(classes(&attempts), ["p0:loading", "p0:loading", "p0:ok"]);
    assert_eq!(router.transport().times("p0"), [0.0, 2.0, 7.0], "polled at 2 s, then 5 s");
    assert_eq!(seen.len(), 1, "the estimate started a cooldown while the request waited");
    assert_eq!(seen[0].remaining, Duration::from_millis(1500));
    assert!(router.cooldowns().is_empty(), "{:?}", router.cooldowns());
}
