//! The router against scripted upstreams: every failure class, every chain rule, and the
//! sixteen fault scenarios of the public failover benchmark (peers.md §3.7).
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use hearth_config::{Chain, Config, ModelRef, load_str};
use hearth_testkit::{End, FakeUpstream, Reply};
use hearth_upstream::router::{LOADING_COOLDOWN, LOADING_POLL, OVERLOAD_NOTICE};
use hearth_upstream::{ErrorClass, Event, FinishReason, Prompt, Router, RunOptions};

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

#[tokio::test]
async fn a_loading_model_is_waited_for() {
    let bed = make_bed(2, "timeoutSeconds: 10,").await;
    let router = Router::new();
    for _ in 0..2 {
        bed.upstreams[0].push(Reply::json(
            503,
            r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#,
        ));
    }
    bed.upstreams[0].push(ok_stream("warm now"));
    let (who, events, attempts) =
        run(&router, &bed, &chain(&["p0/m", "p1/m"]), fast()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "warm now"));
    assert_eq!(classes(&attempts), ["p0:loading", "p0:loading", "p0:ok"]);
}

#[tokio::test]
async fn the_run_deadline_bounds_everything() {
    let bed = make_bed(1, "timeoutSeconds: 30,").await;
    let router = Router::new();
    bed.upstreams[0].push(
        Reply { status: 200, headers: vec![], steps: vec![], end: End::Stall }
            .stall_before_headers(),
    );
    let options = RunOptions {
        deadline: Some(tokio::time::Instant::now() + Duration::from_millis(300)),
        ..fast()
    };
    let started = std::time::Instant::now();
    let failure = run(&router, &bed, &chain(&["p0/m"]), options).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---- §E 31–33: the overload notice, the Retry-After cap, the auth skip cache -------------

#[tokio::test]
async fn e31_overload_retries_send_one_notice_once_the_threshold_passed() {
    let bed = make_bed(2, "").await;
    let router = Router::new();
    for _ in 0..4 {
        bed.upstreams[0].push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
        bed.upstreams[1].push(Reply::json(529, r#"{"error":{"message":"Overloaded"}}"#));
    }
    let sent = std::sync::Mutex::new(Vec::<(String, Duration)>::new());
    let started = std::time::Instant::now();
    let notify = |n: &str| sent.lock().unwrap().push((n.to_owned(), started.elapsed()));
    // Delays 10, 20, 40 ms; the notice is due 25 ms into the run.
    let options = RunOptions {
        overload_notice_after: Duration::from_millis(25),
        on_notice: Some(&notify),
        ..fast()
    };
    let failure = run(&router, &bed, &chain(&["p0/m", "p1/m"]), options).await.unwrap_err();
    assert_eq!(failure.notices, [OVERLOAD_NOTICE]);
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "exactly one notice: {sent:?}");
    assert_eq!(
        sent[0].0,
        "The AI service is temporarily overloaded. I’m still retrying; this may take a few minutes."
    );
    assert!(sent[0].1 >= Duration::from_millis(25), "not before the threshold: {:?}", sent[0].1);
}

#[tokio::test]
async fn e31_no_notice_when_the_chain_recovers_before_the_threshold() {
    let bed = make_bed(1, "").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    bed.upstreams[0].push(ok_stream("back"));
    let notify = |_: &str| unreachable!("no notice is due");
    let options = RunOptions {
        overload_notice_after: Duration::from_secs(5),
        on_notice: Some(&notify),
        ..fast()
    };
    let answer =
        router.run(&bed.config, &chain(&["p0/m"]), &prompt(), &|_| None, &bed.env, options).await;
    let answer = answer.unwrap();
    assert!(answer.notices.is_empty());
    // A run that recovers after the threshold carries the notice with its answer.
    bed.upstreams[0].push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    bed.upstreams[0].push(Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    bed.upstreams[0].push(ok_stream("back again"));
    let options = RunOptions { overload_notice_after: Duration::from_millis(5), ..fast() };
    let answer =
        router.run(&bed.config, &chain(&["p0/m"]), &prompt(), &|_| None, &bed.env, options).await;
    assert_eq!(answer.unwrap().notices, [OVERLOAD_NOTICE]);
}

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

    // A cap of 1 s: 1.5 s is not waited for; with the cap off it is.
    let bed = make_bed_with(1, "", "", &[("HEARTH_RETRY_MAX_WAIT_SECONDS", "1")]).await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(429, "{}").header("retry-after", "1.5"));
    let failure = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.attempts.len(), 1);
    // The same cap from the config key.
    let bed = make_bed_with(1, "", "routing: {retryMaxWaitSeconds: 1},", &[]).await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(429, "{}").header("retry-after", "1.5"));
    let failure = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.attempts.len(), 1);

    // The variable wins over the key: no cap.
    let bed = make_bed_with(
        1,
        "",
        "routing: {retryMaxWaitSeconds: 1},",
        &[("OPENCLAW_SDK_RETRY_MAX_WAIT_SECONDS", "0")],
    )
    .await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(429, "{}").header("retry-after", "1.5"));
    bed.upstreams[0].push(ok_stream("uncapped"));
    let started = std::time::Instant::now();
    let (_, events, _) = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap();
    assert_eq!(text(&events), "uncapped");
    assert!(started.elapsed() >= Duration::from_millis(1500));
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

fn loading_cooldowns(router: &Router) -> Vec<hearth_upstream::router::CooldownView> {
    router.cooldowns().into_iter().filter(|c| c.reason == ErrorClass::Loading).collect()
}

/// A server that answers "Loading model" to everything is waited for by the first request
/// only; the requests after it skip it without contacting it, fail over at once, and, with
/// nothing left to fail over to, answer at once with a `loading` failure and a retry time.
#[tokio::test]
async fn a_loading_server_is_waited_for_once_then_skipped_while_it_cools_down() {
    let bed = make_bed(2, "timeoutSeconds: 2,").await;
    let router = Router::new();
    for _ in 0..20 {
        bed.upstreams[0].push(Reply::json(503, LOADING));
    }
    bed.upstreams[1].push(ok_stream("first"));
    bed.upstreams[1].push(ok_stream("second"));
    let both = chain(&["p0/m", "p1/m"]);

    let (who, _, attempts) = run(&router, &bed, &both, fast()).await.unwrap();
    assert_eq!(who, "p1/m");
    let waited = bed.upstreams[0].requests().len();
    assert!(waited >= 2, "the first request polls the loading server: {attempts:?}");
    assert!(classes(&attempts[..waited]).iter().all(|c| c == "p0:loading"), "{attempts:?}");
    let cooling = loading_cooldowns(&router);
    assert_eq!(cooling.len(), 1, "{:?}", router.cooldowns());
    assert_eq!((cooling[0].provider.as_str(), cooling[0].model.as_deref()), ("p0", Some("m")));
    assert!(cooling[0].remaining <= LOADING_COOLDOWN, "{cooling:?}");
    assert!(cooling[0].remaining > LOADING_COOLDOWN - Duration::from_secs(5), "{cooling:?}");

    // The next request skips p0 without a request and fails over at once.
    let started = std::time::Instant::now();
    let (who, events, attempts) = run(&router, &bed, &both, fast()).await.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p1/m", "second"));
    assert_eq!(classes(&attempts), ["p0:loading", "p1:ok"]);
    assert!(attempts[0].skipped);
    assert_eq!(bed.upstreams[0].requests().len(), waited, "p0 was contacted again");
    assert!(started.elapsed() < LOADING_POLL, "the second request waited");

    // Alone in its chain: the answer is at once a loading failure with a retry time.
    let failure = run(&router, &bed, &chain(&["p0/m"]), fast()).await.unwrap_err();
    assert_eq!(failure.last.class, ErrorClass::Loading);
    assert_eq!(failure.last.status, Some(503));
    assert!(failure.attempts.iter().all(|a| a.skipped), "{:?}", failure.attempts);
    let retry_in = failure.retry_in.unwrap();
    assert!(retry_in > Duration::ZERO && retry_in <= LOADING_COOLDOWN, "{retry_in:?}");
    assert_eq!(bed.upstreams[0].requests().len(), waited, "p0 was contacted again");
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

/// An estimate starts the cooldown at once (other requests skip the server meanwhile), and
/// the answer of the request that kept waiting ends it.
#[tokio::test]
async fn a_loading_cooldown_ends_when_the_model_answers() {
    let bed = make_bed(1, "timeoutSeconds: 10,").await;
    let router = Router::new();
    bed.upstreams[0].push(Reply::json(503, LOADING).header("retry-after", "1"));
    bed.upstreams[0].push(ok_stream("warm now"));
    let watch = async {
        for _ in 0..200 {
            if !loading_cooldowns(&router).is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    let only = chain(&["p0/m"]);
    let (result, seen) = tokio::join!(run(&router, &bed, &only, fast()), watch);
    let (who, events, attempts) = result.unwrap();
    assert_eq!((who.as_str(), text(&events).as_str()), ("p0/m", "warm now"));
    assert_eq!(classes(&attempts), ["p0:loading", "p0:ok"]);
    assert!(seen, "the estimate started no cooldown while the request waited");
    assert!(router.cooldowns().is_empty(), "{:?}", router.cooldowns());
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
