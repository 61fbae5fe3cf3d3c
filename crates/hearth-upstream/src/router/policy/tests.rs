//! Unit tests of the policy: plain and fast, on made-up instants (no runtime, no sleeping).
//! Each test plays the driver: it asks for decisions, moves its clock to each `Wait`, and
//! reports outcomes.

use std::time::Duration;

use tokio::time::Instant;

use super::{Candidate, Decision, Outcome, Policy, Settings, Tables};
use crate::event::{ErrorClass, UpstreamError};
use crate::router::{
    AUTH_COOLDOWN, LOADING_COOLDOWN, OVERLOAD_NOTICE, OVERLOAD_RETRY_BASE, RATE_LIMIT_COOLDOWNS,
};

const SECOND: Duration = Duration::from_secs(1);

fn candidate(provider: &str, credentials: usize) -> Candidate {
    Candidate {
        model_ref: format!("{provider}/m").parse().unwrap(),
        ids: Ok((provider.to_owned(), "m".to_owned())),
        credentials,
        loading_wait: 10 * SECOND,
        protected: false,
    }
}

fn settings() -> Settings {
    Settings {
        deadline: None,
        overload_retries: 3,
        overload_base: OVERLOAD_RETRY_BASE,
        overload_notice_after: 30 * SECOND,
        retry_wait_cap: Some(60 * SECOND),
        skip: None,
    }
}

fn error(class: ErrorClass) -> UpstreamError {
    UpstreamError::new(class, class.as_str())
}

fn with_retry_after(class: ErrorClass, retry_after: Duration) -> UpstreamError {
    UpstreamError { retry_after: Some(retry_after), ..error(class) }
}

/// The driver's side of a run: the shared tables and a clock that only moves when told to.
struct Bench {
    tables: Tables,
    t0: Instant,
    now: Instant,
}

/// One run on a [`Bench`].
struct Run<'b> {
    bench: &'b mut Bench,
    policy: Policy,
}

impl Bench {
    fn new() -> Self {
        let t0 = Instant::now();
        Bench { tables: Tables::default(), t0, now: t0 }
    }

    fn run(&mut self, candidates: Vec<Candidate>, settings: Settings) -> Run<'_> {
        let policy = Policy::new(candidates, settings, self.now);
        Run { bench: self, policy }
    }

    /// Seconds since the bench began.
    fn at(&self, instant: Instant) -> f64 {
        instant.duration_since(self.t0).as_secs_f64()
    }
}

impl Run<'_> {
    fn next(&mut self) -> Decision {
        self.policy.next(&mut self.bench.tables, self.bench.now)
    }

    /// The next decision must be a call; returns (candidate, credential).
    #[track_caller]
    fn send(&mut self) -> (usize, usize) {
        match self.next() {
            Decision::Send { candidate, credential } => (candidate, credential),
            other => panic!("expected a call, got {other:?}"),
        }
    }

    /// The next decision must be a wait; the clock moves there. Returns its time (seconds
    /// since the bench began).
    #[track_caller]
    fn wait(&mut self) -> f64 {
        match self.next() {
            Decision::Wait(until) => {
                assert!(until > self.bench.now, "a wait into the past");
                self.bench.now = until;
                self.bench.at(until)
            }
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[track_caller]
    fn fail(&mut self) -> crate::router::Failure {
        match self.next() {
            Decision::Fail(failure) => failure,
            other => panic!("expected the run to fail, got {other:?}"),
        }
    }

    fn report(&mut self, error: UpstreamError) {
        self.policy.report(Outcome::Failed(error), &mut self.bench.tables, self.bench.now);
    }

    fn answered(&mut self) -> Vec<String> {
        let (attempts, _) = self.policy.answered(&mut self.bench.tables, self.bench.now);
        outcomes(&attempts)
    }

    fn elapse(&mut self, d: Duration) {
        self.bench.now += d;
    }
}

fn outcomes(attempts: &[crate::router::Attempt]) -> Vec<String> {
    attempts
        .iter()
        .map(|a| {
            let what = match (&a.error, a.skipped) {
                (Some(e), true) => format!("skipped {}", e.class.as_str()),
                (Some(e), false) => e.class.as_str().to_owned(),
                (None, _) => "ok".to_owned(),
            };
            format!("{}:{what}", a.model_ref.provider)
        })
        .collect()
}

#[test]
fn credentials_rotate_on_a_rate_limit_then_the_next_candidate_is_tried() {
    let mut bench = Bench::new();
    let mut run = bench.run(vec![candidate("a", 2), candidate("b", 1)], settings());
    assert_eq!(run.send(), (0, 0));
    run.report(error(ErrorClass::RateLimit));
    assert_eq!(run.send(), (0, 1), "the second key of the same candidate");
    run.report(error(ErrorClass::ServerError));
    assert_eq!(run.send(), (1, 0), "a server error does not rotate keys: next candidate");
    assert_eq!(run.answered(), ["a:rate_limit", "a:server_error", "b:ok"]);
    // Only the rate-limited key cools down, for the first step of the schedule.
    let views = bench.tables.health.views(bench.now);
    assert_eq!(views.len(), 1, "{views:?}");
    assert_eq!((views[0].credential, views[0].remaining), (0, RATE_LIMIT_COOLDOWNS[0]));
}

#[test]
fn a_cooling_candidate_is_skipped_and_the_failure_says_when_to_retry() {
    let mut bench = Bench::new();
    let now = bench.now;
    bench.tables.health.record_failure("a", "m", 0, &error(ErrorClass::RateLimit), now);
    bench.now += 10 * SECOND;
    let mut run = bench.run(vec![candidate("a", 1), candidate("b", 1)], settings());
    assert_eq!(run.send(), (1, 0), "a is skipped without a call");
    run.report(error(ErrorClass::ServerError));
    let failure = run.fail();
    assert_eq!(outcomes(&failure.attempts), ["a:skipped rate_limit", "b:server_error"]);
    assert_eq!(failure.last.class, ErrorClass::ServerError);
    assert_eq!(failure.retry_in, Some(20 * SECOND), "30 s cooldown, 10 s of it over");
    let skipped = failure.attempts[0].error.as_ref().unwrap();
    assert_eq!(skipped.message, "cooling down for 20s after rate_limit");
    assert_eq!(skipped.retry_after, Some(20 * SECOND));
}

#[test]
fn when_every_candidate_cools_down_the_first_is_probed_unless_it_is_loading() {
    let mut bench = Bench::new();
    let now = bench.now;
    bench.tables.health.record_failure("a", "m", 0, &error(ErrorClass::Auth), now);
    bench.tables.health.record_failure("b", "m", 0, &error(ErrorClass::RateLimit), now);
    let mut run = bench.run(vec![candidate("a", 1), candidate("b", 1)], settings());
    assert_eq!(run.send(), (0, 0), "the first candidate is probed");
    run.report(error(ErrorClass::Auth));
    let failure = run.fail();
    assert_eq!(outcomes(&failure.attempts), ["a:auth", "b:skipped rate_limit"]);
    // A cooldown that doubled: 10 min, then 20.
    let auth = bench.tables.health.views(bench.now).into_iter().find(|v| v.provider == "a");
    assert_eq!(auth.unwrap().remaining, 2 * AUTH_COOLDOWN);

    // A loading server is not probed: the next cooling candidate is.
    let mut bench = Bench::new();
    let now = bench.now;
    bench.tables.health.record_loading("a", "m", 1, None, now);
    bench.tables.health.record_failure("b", "m", 0, &error(ErrorClass::RateLimit), now);
    let mut run = bench.run(vec![candidate("a", 1), candidate("b", 1)], settings());
    assert_eq!(run.send(), (1, 0));
    assert_eq!(run.answered(), ["a:skipped loading", "b:ok"]);
}

#[test]
fn overload_retries_back_off_doubling_and_the_notice_comes_due_at_its_time() {
    let mut bench = Bench::new();
    let settings = Settings { overload_retries: 5, ..settings() };
    let mut run = bench.run(vec![candidate("a", 1), candidate("b", 1)], settings);
    let mut waits = Vec::new();
    let mut notices = Vec::new();
    for _ in 0..6 {
        assert_eq!(run.send(), (0, 0));
        run.report(error(ErrorClass::Overloaded));
        assert_eq!(run.send(), (1, 0));
        run.report(error(ErrorClass::Overloaded));
        loop {
            match run.next() {
                Decision::Wait(until) => {
                    run.bench.now = until;
                    waits.push(run.bench.at(until));
                }
                Decision::Notice(notice) => notices.push((notice, run.bench.at(run.bench.now))),
                // The retry's first call: asked for again (the same decision) by `send` above.
                Decision::Send { .. } => break,
                Decision::Fail(failure) => {
                    assert_eq!(failure.attempts.len(), 12, "1 run + 5 retries, 2 candidates each");
                    assert_eq!(failure.notices, [OVERLOAD_NOTICE]);
                    assert_eq!(failure.retry_in, None);
                    // 2.5 s doubling, capped at 30 s: wakes at 2.5, 7.5, 17.5, 37.5, 67.5 s;
                    // the notice is due 30 s into the run, inside the fourth backoff.
                    assert_eq!(waits, [2.5, 7.5, 17.5, 30.0, 37.5, 67.5]);
                    assert_eq!(notices, [(OVERLOAD_NOTICE, 30.0)]);
                    return;
                }
            }
        }
    }
    panic!("the run did not end");
}

#[test]
fn a_recovered_overload_before_the_threshold_sends_no_notice() {
    let mut bench = Bench::new();
    let mut run = bench.run(vec![candidate("a", 1)], settings());
    run.send();
    run.report(error(ErrorClass::Overloaded));
    assert_eq!(run.wait(), 2.5);
    run.send();
    let (attempts, notices) = run.policy.answered(&mut run.bench.tables, run.bench.now);
    assert_eq!(outcomes(&attempts), ["a:overloaded", "a:ok"]);
    assert!(notices.is_empty());
}

#[test]
fn a_short_retry_after_on_the_last_candidate_is_waited_out_twice_at_most() {
    let mut bench = Bench::new();
    let mut run = bench.run(vec![candidate("a", 1)], settings());
    run.send();
    run.report(with_retry_after(ErrorClass::RateLimit, 2 * SECOND));
    assert_eq!(run.wait(), 2.0);
    assert_eq!(run.send(), (0, 0), "tried again although its cooldown (30 s) runs");
    run.report(with_retry_after(ErrorClass::RateLimit, 3 * SECOND));
    assert_eq!(run.wait(), 5.0);
    run.send();
    run.report(with_retry_after(ErrorClass::RateLimit, SECOND));
    let failure = run.fail();
    assert_eq!(failure.attempts.len(), 3, "two waits, then the rate limit surfaces");
}

#[test]
fn a_retry_after_over_the_cap_surfaces_at_once_and_no_cap_waits_it_out() {
    let mut bench = Bench::new();
    let mut run = bench.run(vec![candidate("a", 1)], settings());
    run.send();
    run.report(with_retry_after(ErrorClass::RateLimit, 61 * SECOND));
    assert_eq!(run.fail().last.retry_after, Some(61 * SECOND));

    let mut bench = Bench::new();
    let mut run =
        bench.run(vec![candidate("a", 1)], Settings { retry_wait_cap: None, ..settings() });
    run.send();
    run.report(with_retry_after(ErrorClass::RateLimit, 3600 * SECOND));
    assert_eq!(run.wait(), 3600.0);
    run.send();
    assert_eq!(run.answered(), ["a:rate_limit", "a:ok"]);

    // The deadline bounds the wait: one that would end after it is not begun.
    let mut bench = Bench::new();
    let deadline = Some(bench.now + 5 * SECOND);
    let mut run = bench.run(vec![candidate("a", 1)], Settings { deadline, ..settings() });
    run.send();
    run.report(with_retry_after(ErrorClass::RateLimit, 5 * SECOND));
    assert_eq!(run.fail().last.class, ErrorClass::RateLimit);
}

#[test]
fn a_rate_limit_wait_needs_the_last_candidate_to_have_been_tried() {
    // b is skipped (cooling) after a is rate limited: the last attempt is a skip, no wait.
    let mut bench = Bench::new();
    let now = bench.now;
    bench.tables.health.record_failure("b", "m", 0, &error(ErrorClass::Billing), now);
    let mut run = bench.run(vec![candidate("a", 1), candidate("b", 1)], settings());
    run.send();
    run.report(with_retry_after(ErrorClass::RateLimit, SECOND));
    let failure = run.fail();
    assert_eq!(outcomes(&failure.attempts), ["a:rate_limit", "b:skipped billing"]);
}

#[test]
fn a_loading_server_is_polled_until_its_timeout_then_cools_down() {
    let mut bench = Bench::new();
    let a = Candidate { loading_wait: 3 * SECOND, ..candidate("a", 2) };
    let mut run = bench.run(vec![a, candidate("b", 1)], settings());
    let mut calls = Vec::new();
    loop {
        match run.next() {
            Decision::Send { candidate: 0, credential } => {
                calls.push((run.bench.at(run.bench.now), credential));
                run.report(error(ErrorClass::Loading));
            }
            Decision::Wait(until) => run.bench.now = until,
            Decision::Send { candidate: 1, .. } => break,
            other => panic!("{other:?}"),
        }
    }
    // Every second while a poll still ends before the 3 s wait is over; the same key each
    // time (the server loads whichever key asks).
    assert_eq!(calls, [(0.0, 0), (1.0, 0), (2.0, 0)]);
    assert_eq!(run.answered(), ["a:loading", "a:loading", "a:loading", "b:ok"]);
    let views = bench.tables.health.views(bench.now);
    assert_eq!(views.len(), 2, "every credential: {views:?}");
    assert!(
        views.iter().all(|v| v.reason == ErrorClass::Loading && v.remaining == LOADING_COOLDOWN)
    );

    // The next run skips it without a call, and its failure carries the 503 a server sends.
    bench.now += 5 * SECOND;
    let mut run = bench.run(vec![candidate("a", 2)], settings());
    let failure = run.fail();
    assert_eq!(outcomes(&failure.attempts), ["a:skipped loading"]);
    assert_eq!(failure.last.status, Some(503));
    assert_eq!(failure.retry_in, Some(LOADING_COOLDOWN - 5 * SECOND));
}

#[test]
fn a_loading_estimate_cools_down_at_once_and_stretches_the_poll() {
    let mut bench = Bench::new();
    let mut run = bench.run(vec![candidate("a", 1)], settings());
    run.send();
    run.report(with_retry_after(ErrorClass::Loading, 40 * SECOND));
    // Others skip it while this run keeps polling, every 5 s at most.
    let views = run.bench.tables.health.views(run.bench.now);
    assert_eq!(views[0].remaining, 40 * SECOND);
    assert_eq!(run.wait(), 5.0);
    run.send();
    assert_eq!(run.answered(), ["a:loading", "a:ok"]);
    assert!(bench.tables.health.views(bench.now).is_empty(), "the answer ends the cooldown");
}

#[test]
fn the_deadline_ends_the_chain_and_an_overload_retry_past_it() {
    let mut bench = Bench::new();
    let deadline = Some(bench.now + 2 * SECOND);
    let mut run =
        bench.run(vec![candidate("a", 1), candidate("b", 1)], Settings { deadline, ..settings() });
    run.send();
    run.elapse(3 * SECOND);
    run.report(error(ErrorClass::ServerError));
    let failure = run.fail();
    assert_eq!(failure.last.class, ErrorClass::Timeout, "b is not tried past the deadline");
    assert_eq!(failure.attempts.len(), 1);
    assert_eq!(failure.attempts[0].elapsed, 3 * SECOND);

    let mut bench = Bench::new();
    let deadline = Some(bench.now + 2 * SECOND);
    let mut run = bench.run(vec![candidate("a", 1)], Settings { deadline, ..settings() });
    run.send();
    run.report(error(ErrorClass::Overloaded));
    let failure = run.fail();
    assert_eq!(failure.last.class, ErrorClass::Overloaded, "2.5 s backoff ends after it");
    assert_eq!(failure.retry_in, None);
}

#[test]
fn a_terminal_error_ends_the_run_and_an_unknown_ref_fails_over() {
    let mut bench = Bench::new();
    let missing = Candidate { ids: Err(error(ErrorClass::ModelNotFound)), ..candidate("gone", 1) };
    let mut run = bench.run(vec![missing, candidate("a", 1), candidate("b", 1)], settings());
    assert_eq!(run.send(), (1, 0), "the unknown ref is recorded without a call");
    run.report(error(ErrorClass::Format));
    let failure = run.fail();
    assert_eq!(outcomes(&failure.attempts), ["gone:model_not_found", "a:format"]);
    assert_eq!(failure.last.class, ErrorClass::Format);
    assert!(bench.tables.health.views(bench.now).is_empty(), "no cooldown for either");
}

#[test]
fn a_fallback_that_failed_auth_is_skipped_in_its_session_until_the_ttl_ends() {
    let mut bench = Bench::new();
    let in_session = |s: &str| Settings { skip: Some((s.to_owned(), 60 * SECOND)), ..settings() };
    let chain = || {
        vec![
            Candidate { protected: true, ..candidate("a", 1) },
            candidate("f", 1),
            candidate("c", 1),
        ]
    };
    let mut run = bench.run(chain(), in_session("s1"));
    run.send();
    run.report(error(ErrorClass::ServerError));
    assert_eq!(run.send(), (1, 0));
    run.report(error(ErrorClass::Auth));
    assert_eq!(run.send(), (2, 0));
    run.answered();
    // The credential answered elsewhere: its cooldown is over, the skip marker is not.
    bench.tables.health.record_success("f", "m", 0);
    bench.now += 30 * SECOND;
    let mut run = bench.run(chain(), in_session("s1"));
    run.send();
    run.report(error(ErrorClass::ServerError));
    assert_eq!(run.send(), (2, 0), "f is skipped in s1");
    let attempts = run.answered();
    assert_eq!(attempts, ["a:server_error", "f:skipped auth", "c:ok"]);
    // Another session tries it; after the TTL, s1 does too.
    let mut run = bench.run(chain(), in_session("s2"));
    run.send();
    run.report(error(ErrorClass::ServerError));
    assert_eq!(run.send(), (1, 0));
    run.answered();
    bench.now += 30 * SECOND;
    let mut run = bench.run(chain(), in_session("s1"));
    run.send();
    run.report(error(ErrorClass::ServerError));
    assert_eq!(run.send(), (1, 0), "the marker ended after 60 s");
}

#[test]
fn cooldown_schedules_grow_and_reset_after_the_failure_window() {
    let mut health = super::HealthTable::default();
    let mut now = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(health.record_failure("a", "m", 0, &error(ErrorClass::RateLimit), now).unwrap());
    }
    assert_eq!(seen, [30 * SECOND, 60 * SECOND, 300 * SECOND, 300 * SECOND]);
    now += crate::router::FAILURE_WINDOW + SECOND;
    let after_quiet = health.record_failure("a", "m", 0, &error(ErrorClass::RateLimit), now);
    assert_eq!(after_quiet, Some(30 * SECOND), "a quiet day resets the count");
    // A longer Retry-After stretches the cooldown; server errors start none.
    let long = with_retry_after(ErrorClass::RateLimit, 500 * SECOND);
    assert_eq!(health.record_failure("b", "m", 0, &long, now), Some(500 * SECOND));
    assert_eq!(health.record_failure("c", "m", 0, &error(ErrorClass::ServerError), now), None);
    // Billing and auth double to their caps, provider-wide.
    let billing: Vec<u64> = (0..4)
        .map(|_| {
            health.record_failure("d", "m", 0, &error(ErrorClass::Billing), now).unwrap().as_secs()
                / 3600
        })
        .collect();
    assert_eq!(billing, [5, 10, 20, 24]);
    assert!(health.cooling_until("d", "other-model", 0, now).is_some(), "the whole provider");
    assert!(health.cooling_until("d", "m", 1, now).is_none(), "on that credential only");
}
