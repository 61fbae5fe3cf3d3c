//! The router's policy: what a run does next, as a pure function of its candidate chain, the
//! health table (cooldowns per provider, model and credential), the auth skip cache and the
//! time. It sends nothing, sleeps nowhere and never reads a clock: the driver
//! (`Router::run`) asks for a [`Decision`], carries it out (a call, a sleep, a notice) and
//! reports what happened, passing `now` with every call.
//!
//! Invariant: the same reports at the same instants give the same decisions, so the unit
//! tests (`policy/tests.rs`) drive it with made-up instants, and the driver's tests run on
//! tokio's paused clock. The rules it keeps are the ones `docs/routing.md` lists.

use std::collections::HashMap;
use std::time::Duration;

use hearth_config::ModelRef;
use tokio::time::Instant;

use super::{
    AUTH_COOLDOWN, AUTH_COOLDOWN_CAP, Attempt, BILLING_DISABLE, BILLING_DISABLE_CAP,
    CONNECT_COOLDOWN, CooldownView, FAILURE_WINDOW, Failure, LOADING_COOLDOWN,
    LOADING_COOLDOWN_CAP, LOADING_POLL, LOADING_POLL_MAX, MAX_HEALTH_ENTRIES, MAX_SKIP_MARKERS,
    OVERLOAD_NOTICE, OVERLOAD_RETRY_CAP, RATE_LIMIT_COOLDOWNS, RATE_LIMIT_WAITS,
};
use crate::event::{ErrorClass, UpstreamError};

#[cfg(test)]
mod tests;

/// One candidate of the chain, as the driver resolved it.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) model_ref: ModelRef,
    /// (provider id, model id), or why the ref does not resolve.
    pub(crate) ids: Result<(String, String), UpstreamError>,
    /// Credentials in rotation order; at least 1 (a provider without a key is tried once).
    pub(crate) credentials: usize,
    /// How long a loading model is waited for (the provider's `timeoutSeconds`).
    pub(crate) loading_wait: Duration,
    /// Never skipped by the auth skip cache (the requested model, the configured primary).
    pub(crate) protected: bool,
}

/// A run's settings (`RunOptions` and `Config::routing`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The whole run ends by then.
    pub(crate) deadline: Option<Instant>,
    pub(crate) overload_retries: u32,
    pub(crate) overload_base: Duration,
    pub(crate) overload_notice_after: Duration,
    /// The longest `Retry-After` waited out at the end of the chain; `None`: no cap.
    pub(crate) retry_wait_cap: Option<Duration>,
    /// The auth skip cache: the run's session and the TTL; `None`: off.
    pub(crate) skip: Option<(String, Duration)>,
}

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Call `candidate` with credential `credential`, then [`Policy::report`] or
    /// [`Policy::answered`].
    Send { candidate: usize, credential: usize },
    /// Sleep until then, and ask again.
    Wait(Instant),
    /// Hand this notice to the caller now, and ask again.
    Notice(&'static str),
    /// The run is over: no candidate answered.
    Fail(Failure),
}

/// How a [`Decision::Send`] went, when it did not answer.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The call failed before its first event.
    Failed(UpstreamError),
    /// The call could not be made (the local server did not start): no cooldown is recorded.
    NotSent(UpstreamError),
}

/// The router's shared state: the health table and the auth skip cache.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) health: HealthTable,
    pub(crate) skips: SkipTable,
}

/// Cooldowns and failure counts per (provider, model, credential); a `None` model is the whole
/// provider on that credential.
#[derive(Debug, Default)]
pub(crate) struct HealthTable {
    entries: HashMap<Key, Health>,
}

/// The auth skip cache: (session, provider, model) → skipped until.
#[derive(Debug, Default)]
pub(crate) struct SkipTable {
    until: HashMap<(String, String, String), Instant>,
}

/// One run's state: where it is in the chain, what it tried, what it owes the caller.
#[derive(Debug)]
pub(crate) struct Policy {
    candidates: Vec<Candidate>,
    settings: Settings,
    started: Instant,
    attempts: Vec<Attempt>,
    notices: Vec<String>,
    /// The candidate of the last attempt, and whether that attempt was a skip.
    last_attempt: Option<(usize, bool)>,
    round: Round,
    phase: Phase,
    overload_retries: u32,
    rate_limit_waits: u32,
    notice_sent: bool,
}

type Key = (String, Option<String>, usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    /// One model on one credential (rate limits, overload).
    Model,
    /// Every model of the provider on one credential (auth, billing, connect).
    Provider,
}

#[derive(Debug, Clone, Default)]
struct Health {
    until: Option<Instant>,
    reason: Option<ErrorClass>,
    count: u32,
    last_failure: Option<Instant>,
}

/// One pass over the chain.
#[derive(Debug, Default)]
struct Round {
    /// The candidate tried although it cools down (every candidate does).
    probe: Option<usize>,
    last: Option<UpstreamError>,
    only_overloaded: bool,
    tried_any: bool,
    /// The soonest end of a cooldown among the candidates skipped.
    soonest: Option<Instant>,
}

#[derive(Debug)]
enum Phase {
    RoundStart,
    Candidate(usize),
    Credential {
        candidate: usize,
        credential: usize,
        sent_any: bool,
        last_error: Option<UpstreamError>,
    },
    Sending(Sending),
    LoadingPoll {
        sending: Sending,
        until: Instant,
    },
    AfterCandidate(usize),
    EndRound,
    Backoff {
        wake: Instant,
    },
    RateLimitWait {
        until: Instant,
        candidate: usize,
    },
    Done,
}

#[derive(Debug)]
struct Sending {
    candidate: usize,
    credential: usize,
    sent_at: Instant,
    /// A loading model is waited for until then.
    loading_deadline: Instant,
}

fn budget_error() -> UpstreamError {
    UpstreamError::new(ErrorClass::Timeout, "the run's time budget ran out")
}

fn unknown_failure() -> UpstreamError {
    UpstreamError::new(ErrorClass::ServerError, "unknown failure")
}

// === impl Policy ===

impl Policy {
    pub(crate) fn new(candidates: Vec<Candidate>, settings: Settings, now: Instant) -> Self {
        Policy {
            candidates,
            settings,
            started: now,
            attempts: Vec::new(),
            notices: Vec::new(),
            last_attempt: None,
            round: Round::default(),
            phase: Phase::RoundStart,
            overload_retries: 0,
            rate_limit_waits: 0,
            notice_sent: false,
        }
    }

    /// What to do next. After a [`Decision::Send`], call [`Policy::report`] or
    /// [`Policy::answered`] before asking again.
    pub(crate) fn next(&mut self, tables: &mut Tables, now: Instant) -> Decision {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::RoundStart => self.start_round(&tables.health, now),
                Phase::Candidate(idx) => self.at_candidate(idx, tables, now),
                Phase::Credential { candidate, credential, sent_any, last_error } => {
                    let Some(c) = self.candidates.get(candidate) else {
                        self.phase = Phase::EndRound;
                        continue;
                    };
                    let Ok((provider, model)) = &c.ids else {
                        self.phase = Phase::AfterCandidate(candidate);
                        continue;
                    };
                    if credential >= c.credentials {
                        if sent_any {
                            let error = last_error.unwrap_or_else(unknown_failure);
                            self.candidate_failed(candidate, error, false, tables, now);
                        } else {
                            let error = self.cooling_error(c, &tables.health, now);
                            self.push_attempt(candidate, Some(error.clone()), true, Duration::ZERO);
                            self.candidate_failed(candidate, error, true, tables, now);
                        }
                        continue;
                    }
                    let probe = self.round.probe == Some(candidate);
                    if !probe
                        && tables.health.cooling_until(provider, model, credential, now).is_some()
                    {
                        self.phase = Phase::Credential {
                            candidate,
                            credential: credential + 1,
                            sent_any,
                            last_error,
                        };
                        continue;
                    }
                    let loading_deadline = now + c.loading_wait;
                    self.phase = Phase::Sending(Sending {
                        candidate,
                        credential,
                        sent_at: now,
                        loading_deadline,
                    });
                    return Decision::Send { candidate, credential };
                }
                Phase::Sending(sending) => {
                    let decision = Decision::Send {
                        candidate: sending.candidate,
                        credential: sending.credential,
                    };
                    self.phase = Phase::Sending(sending);
                    return decision;
                }
                Phase::LoadingPoll { sending, until } => {
                    if now < until {
                        self.phase = Phase::LoadingPoll { sending, until };
                        return Decision::Wait(until);
                    }
                    let decision = Decision::Send {
                        candidate: sending.candidate,
                        credential: sending.credential,
                    };
                    self.phase = Phase::Sending(Sending { sent_at: now, ..sending });
                    return decision;
                }
                Phase::AfterCandidate(idx) => {
                    if self.settings.deadline.is_some_and(|d| now >= d) {
                        self.round.last = Some(budget_error());
                        self.phase = Phase::EndRound;
                    } else {
                        self.phase = Phase::Candidate(idx + 1);
                    }
                }
                Phase::EndRound => {
                    if let Some(decision) = self.end_round(tables, now) {
                        return decision;
                    }
                }
                Phase::Backoff { wake } => {
                    let notice_at = self.started + self.settings.overload_notice_after;
                    self.phase = Phase::Backoff { wake };
                    if !self.notice_sent && notice_at <= wake {
                        if now < notice_at {
                            return Decision::Wait(notice_at);
                        }
                        self.notice_sent = true;
                        self.notices.push(OVERLOAD_NOTICE.to_owned());
                        return Decision::Notice(OVERLOAD_NOTICE);
                    }
                    if now < wake {
                        return Decision::Wait(wake);
                    }
                    self.phase = Phase::RoundStart;
                }
                Phase::RateLimitWait { until, candidate } => {
                    if now < until {
                        self.phase = Phase::RateLimitWait { until, candidate };
                        return Decision::Wait(until);
                    }
                    if let Some(Ok((provider, model))) =
                        self.candidates.get(candidate).map(|c| &c.ids)
                    {
                        tables.health.clear_model(provider, model);
                    }
                    self.phase = Phase::RoundStart;
                }
                Phase::Done => {
                    let error = UpstreamError::new(ErrorClass::ServerError, "the run is over");
                    return Decision::Fail(self.fail(error, None));
                }
            }
        }
    }

    /// The call of the last [`Decision::Send`] failed (or could not be made).
    pub(crate) fn report(&mut self, outcome: Outcome, tables: &mut Tables, now: Instant) {
        let sending = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Sending(sending) => sending,
            other => {
                self.phase = other;
                return;
            }
        };
        let elapsed = now.saturating_duration_since(sending.sent_at);
        let candidate = sending.candidate;
        let (ids, credentials) = match self.candidates.get(candidate) {
            Some(Candidate { ids: Ok(ids), credentials, .. }) => (ids.clone(), *credentials),
            _ => {
                self.phase = Phase::EndRound;
                return;
            }
        };
        let (provider, model) = (ids.0.as_str(), ids.1.as_str());
        let mut error = match outcome {
            Outcome::NotSent(error) => {
                self.push_attempt(candidate, Some(error.clone()), false, elapsed);
                self.candidate_failed(candidate, error, false, tables, now);
                return;
            }
            Outcome::Failed(error) => error,
        };
        self.push_attempt(candidate, Some(error.clone()), false, elapsed);
        // A server loading the model is waited for (cold start), then given up on. Other
        // requests skip it meanwhile once it gave an estimate, and after the wait (module doc
        // of `router`).
        if error.class == ErrorClass::Loading {
            let waiting = now + LOADING_POLL < sending.loading_deadline;
            if waiting && error.retry_after.is_some() {
                tables.health.record_loading(provider, model, credentials, error.retry_after, now);
            }
            if waiting {
                tracing::info!(provider, model, "The server is loading the model; waiting.");
                let until = now + error.retry_after.unwrap_or(LOADING_POLL).min(LOADING_POLL_MAX);
                self.phase = Phase::LoadingPoll { sending, until };
                return;
            }
            let cooldown =
                tables.health.record_loading(provider, model, credentials, error.retry_after, now);
            error.retry_after = Some(cooldown);
            self.candidate_failed(candidate, error, false, tables, now);
            return;
        }
        tables.health.record_failure(provider, model, sending.credential, &error, now);
        let rotate = matches!(
            error.class,
            ErrorClass::RateLimit | ErrorClass::Auth | ErrorClass::Billing | ErrorClass::Overloaded
        );
        if rotate {
            self.phase = Phase::Credential {
                candidate,
                credential: sending.credential + 1,
                sent_any: true,
                last_error: Some(error),
            };
        } else {
            self.candidate_failed(candidate, error, false, tables, now);
        }
    }

    /// The call of the last [`Decision::Send`] answered: its cooldowns end, and the run is
    /// over. Returns the attempts and notices for the answer.
    pub(crate) fn answered(
        &mut self,
        tables: &mut Tables,
        now: Instant,
    ) -> (Vec<Attempt>, Vec<String>) {
        if let Phase::Sending(sending) = std::mem::replace(&mut self.phase, Phase::Done) {
            if let Some(Ok((provider, model))) =
                self.candidates.get(sending.candidate).map(|c| &c.ids)
            {
                tables.health.record_success(provider, model, sending.credential);
            }
            let elapsed = now.saturating_duration_since(sending.sent_at);
            self.push_attempt(sending.candidate, None, false, elapsed);
        }
        (std::mem::take(&mut self.attempts), std::mem::take(&mut self.notices))
    }

    fn start_round(&mut self, health: &HealthTable, now: Instant) {
        let all_cooling =
            self.candidates.iter().all(|c| candidate_cooling(c, health, now).is_some());
        // When every candidate cools down, the first one is probed anyway, so a turn is never
        // refused only because of old failures; a loading server is not probed (it just said
        // it is busy, and its cooldown is short).
        let probe = if all_cooling {
            self.candidates.iter().position(|c| !loading_cooldown(c, health, now))
        } else {
            None
        };
        self.round = Round { probe, only_overloaded: true, ..Round::default() };
        self.phase = Phase::Candidate(0);
    }

    fn at_candidate(&mut self, idx: usize, tables: &mut Tables, now: Instant) {
        let Some(c) = self.candidates.get(idx) else {
            self.phase = Phase::EndRound;
            return;
        };
        if let Some((session, _)) = &self.settings.skip
            && !c.protected
            && let Some(remaining) = tables.skips.remaining(&skip_key(session, c), now)
        {
            let mut error = UpstreamError::new(
                ErrorClass::Auth,
                format!(
                    "skipped: it failed authentication in this session; tried again in {}s (models.routing.fallbackSkipTtlMs)",
                    remaining.as_secs().max(1),
                ),
            );
            error.retry_after = Some(remaining);
            self.push_attempt(idx, Some(error.clone()), true, Duration::ZERO);
            self.round.last = Some(error);
            self.phase = Phase::AfterCandidate(idx);
            return;
        }
        match &c.ids {
            Err(error) => {
                let error = error.clone();
                self.push_attempt(idx, Some(error.clone()), false, Duration::ZERO);
                self.candidate_failed(idx, error, false, tables, now);
            }
            Ok(_) => {
                self.phase = Phase::Credential {
                    candidate: idx,
                    credential: 0,
                    sent_any: false,
                    last_error: None,
                };
            }
        }
    }

    /// A candidate is done without answering: fail over, or end the round on a terminal error.
    fn candidate_failed(
        &mut self,
        idx: usize,
        error: UpstreamError,
        skipped: bool,
        tables: &mut Tables,
        now: Instant,
    ) {
        if let Some(c) = self.candidates.get(idx) {
            if let Some((session, ttl)) = &self.settings.skip
                && !skipped
                && error.class == ErrorClass::Auth
                && !c.protected
            {
                tables.skips.mark(skip_key(session, c), now + *ttl, now);
            }
            if skipped {
                if let Some(until) = candidate_cooling(c, &tables.health, now) {
                    self.round.soonest = Some(self.round.soonest.map_or(until, |s| s.min(until)));
                }
            } else {
                self.round.tried_any = true;
                if error.class != ErrorClass::Overloaded {
                    self.round.only_overloaded = false;
                }
            }
        }
        let terminal = !error.class.is_failover_eligible();
        if !terminal
            && let (Some(c), Some(next)) = (self.candidates.get(idx), self.candidates.get(idx + 1))
        {
            tracing::info!(candidate = %c.model_ref, error_kind = error.class.as_str(), status = error.status, next = %next.model_ref, "Candidate failed before its first byte; trying the next one.");
        }
        self.round.last = Some(error);
        self.phase = if terminal { Phase::EndRound } else { Phase::AfterCandidate(idx) };
    }

    /// The chain was gone through: retry it (overload backoff, a short rate limit) or fail.
    fn end_round(&mut self, tables: &mut Tables, now: Instant) -> Option<Decision> {
        let last = self.round.last.take().unwrap_or_else(|| {
            UpstreamError::new(ErrorClass::ServerError, "the candidate chain is empty")
        });
        let deadline = self.settings.deadline;
        if self.round.tried_any
            && self.round.only_overloaded
            && last.class == ErrorClass::Overloaded
            && self.overload_retries < self.settings.overload_retries
        {
            let delay = self
                .settings
                .overload_base
                .saturating_mul(1 << self.overload_retries.min(8))
                .min(OVERLOAD_RETRY_CAP);
            if deadline.is_some_and(|d| now + delay >= d) {
                return Some(Decision::Fail(self.fail(last, None)));
            }
            self.overload_retries += 1;
            tracing::info!(
                retry = self.overload_retries,
                delay_ms = delay.as_millis() as u64,
                "Every candidate is overloaded; retrying the chain."
            );
            // The overloaded candidates' cooldowns must not block the retry.
            tables.health.clear_class(ErrorClass::Overloaded);
            self.phase = Phase::Backoff { wake: now + delay };
            return None;
        }
        // A rate limit whose `Retry-After` is short enough, on the last candidate that was
        // tried: nothing else can answer, so wait it out and try again (as the SDKs do).
        if last.class == ErrorClass::RateLimit
            && self.rate_limit_waits < RATE_LIMIT_WAITS
            && let Some(wait) = last.retry_after
            && self.settings.retry_wait_cap.is_none_or(|cap| wait <= cap)
            && let Some((candidate, false)) = self.last_attempt
            && deadline.is_none_or(|d| now + wait < d)
        {
            self.rate_limit_waits += 1;
            if let Some(c) = self.candidates.get(candidate) {
                tracing::info!(candidate = %c.model_ref, wait_ms = wait.as_millis() as u64, "Rate limited at the end of the chain; waiting it out.");
            }
            self.phase = Phase::RateLimitWait { until: now + wait, candidate };
            return None;
        }
        let retry_in = self.round.soonest.map(|s| s.saturating_duration_since(now));
        Some(Decision::Fail(self.fail(last, retry_in)))
    }

    fn fail(&mut self, last: UpstreamError, retry_in: Option<Duration>) -> Failure {
        self.phase = Phase::Done;
        Failure {
            attempts: std::mem::take(&mut self.attempts),
            last,
            retry_in,
            notices: std::mem::take(&mut self.notices),
        }
    }

    fn push_attempt(
        &mut self,
        candidate: usize,
        error: Option<UpstreamError>,
        skipped: bool,
        elapsed: Duration,
    ) {
        let Some(c) = self.candidates.get(candidate) else { return };
        self.attempts.push(Attempt { model_ref: c.model_ref.clone(), error, skipped, elapsed });
        self.last_attempt = Some((candidate, skipped));
    }

    /// The error of a candidate skipped because every credential cools down.
    fn cooling_error(&self, c: &Candidate, health: &HealthTable, now: Instant) -> UpstreamError {
        let reason = match &c.ids {
            Ok((provider, model)) => health.cooling_reason(provider, model, now).map(|(r, _)| r),
            Err(_) => None,
        };
        let remaining = candidate_cooling(c, health, now)
            .map(|u| u.saturating_duration_since(now))
            .unwrap_or_default();
        let mut error = UpstreamError::new(
            reason.unwrap_or(ErrorClass::RateLimit),
            format!(
                "cooling down for {}s after {}",
                remaining.as_secs(),
                reason.map_or("failures", |r| r.as_str())
            ),
        );
        error.retry_after = Some(remaining);
        if reason == Some(ErrorClass::Loading) {
            // What the server itself answers while it loads (llama.cpp, vLLM).
            error.status = Some(503);
        }
        error
    }
}

/// When every credential of `c` may be tried again (the soonest), if all of them cool down.
fn candidate_cooling(c: &Candidate, health: &HealthTable, now: Instant) -> Option<Instant> {
    let (provider, model) = c.ids.as_ref().ok()?;
    let mut soonest: Option<Instant> = None;
    for credential in 0..c.credentials.max(1) {
        let until = health.cooling_until(provider, model, credential, now)?;
        soonest = Some(soonest.map_or(until, |s| s.min(until)));
    }
    soonest
}

/// Whether `c` is skipped because its server is loading the model.
fn loading_cooldown(c: &Candidate, health: &HealthTable, now: Instant) -> bool {
    c.ids.as_ref().is_ok_and(|(provider, model)| {
        health
            .cooling_reason(provider, model, now)
            .is_some_and(|(class, _)| class == ErrorClass::Loading)
    })
}

fn skip_key(session: &str, c: &Candidate) -> (String, String, String) {
    match &c.ids {
        Ok((provider, model)) => (session.to_owned(), provider.clone(), model.clone()),
        Err(_) => (session.to_owned(), c.model_ref.provider.clone(), c.model_ref.model.clone()),
    }
}

// === impl HealthTable ===

impl HealthTable {
    /// When (provider, model, credential) may be tried again; `None` when it may now.
    pub(crate) fn cooling_until(
        &self,
        provider: &str,
        model: &str,
        credential: usize,
        now: Instant,
    ) -> Option<Instant> {
        let model_until = self
            .entries
            .get(&(provider.to_owned(), Some(model.to_owned()), credential))
            .and_then(|h| h.until);
        let provider_until =
            self.entries.get(&(provider.to_owned(), None, credential)).and_then(|h| h.until);
        [model_until, provider_until].into_iter().flatten().filter(|u| *u > now).max()
    }

    /// The running cooldowns, for status pages and metrics.
    pub(crate) fn views(&self, now: Instant) -> Vec<CooldownView> {
        let mut out: Vec<CooldownView> = self
            .entries
            .iter()
            .filter_map(|((provider, model, credential), h)| {
                let until = h.until.filter(|u| *u > now)?;
                Some(CooldownView {
                    provider: provider.clone(),
                    model: model.clone(),
                    credential: *credential,
                    reason: h.reason?,
                    remaining: until - now,
                    failures: h.count,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.provider, &a.model).cmp(&(&b.provider, &b.model)));
        out
    }

    pub(crate) fn record_success(&mut self, provider: &str, model: &str, credential: usize) {
        let model_entry =
            self.entries.remove(&(provider.to_owned(), Some(model.to_owned()), credential));
        let provider_entry = self.entries.remove(&(provider.to_owned(), None, credential));
        if model_entry.or(provider_entry).is_some_and(|h| h.until.is_some()) {
            tracing::info!(provider, model, credential, "Cooldown cleared: the model answered.");
        }
        // Loading is the server's state, not the credential's: it ended for all of them.
        self.entries.retain(|(p, m, _), h| {
            !(p == provider && m.as_deref() == Some(model) && h.reason == Some(ErrorClass::Loading))
        });
    }

    /// Cools (provider, model) down for a loading server, on every credential (the server is
    /// loading whichever key asks), and returns the cooldown.
    pub(crate) fn record_loading(
        &mut self,
        provider: &str,
        model: &str,
        credentials: usize,
        estimate: Option<Duration>,
        now: Instant,
    ) -> Duration {
        let cooldown = estimate.unwrap_or(LOADING_COOLDOWN).min(LOADING_COOLDOWN_CAP);
        for credential in 0..credentials.max(1) {
            let h = self
                .entries
                .entry((provider.to_owned(), Some(model.to_owned()), credential))
                .or_default();
            // A longer cooldown for another reason (a rate limit) stays as it is, with its
            // failure count (the rate-limit schedule reads it).
            if h.reason != Some(ErrorClass::Loading) && h.until.is_some_and(|u| u > now + cooldown)
            {
                continue;
            }
            if h.reason != Some(ErrorClass::Loading)
                || h.last_failure.is_some_and(|t| now.duration_since(t) > FAILURE_WINDOW)
            {
                h.count = 0;
            }
            h.count += 1;
            h.last_failure = Some(now);
            h.until = Some(now + cooldown);
            h.reason = Some(ErrorClass::Loading);
        }
        tracing::info!(
            provider,
            model,
            cooldown_ms = cooldown.as_millis() as u64,
            "Cooldown set: the server is loading the model."
        );
        cooldown
    }

    /// The cooldown of a candidate that ends last, with its reason, if one is running.
    pub(crate) fn cooling_reason(
        &self,
        provider: &str,
        model: &str,
        now: Instant,
    ) -> Option<(ErrorClass, Instant)> {
        self.entries
            .iter()
            .filter(|((p, m, _), _)| {
                p.as_str() == provider && m.as_deref().is_none_or(|m| m == model)
            })
            .filter_map(|(_, h)| Some((h.reason?, h.until.filter(|u| *u > now)?)))
            .max_by_key(|(_, until)| *until)
    }

    /// Records a failure and returns the cooldown it started, if any.
    pub(crate) fn record_failure(
        &mut self,
        provider: &str,
        model: &str,
        credential: usize,
        error: &UpstreamError,
        now: Instant,
    ) -> Option<Duration> {
        let (scope, base, cap, schedule): (Scope, Duration, Duration, Option<&[Duration]>) =
            match error.class {
                ErrorClass::RateLimit | ErrorClass::Overloaded => (
                    Scope::Model,
                    RATE_LIMIT_COOLDOWNS[0],
                    RATE_LIMIT_COOLDOWNS[2],
                    Some(&RATE_LIMIT_COOLDOWNS),
                ),
                ErrorClass::Billing => {
                    (Scope::Provider, BILLING_DISABLE, BILLING_DISABLE_CAP, None)
                }
                ErrorClass::Auth => (Scope::Provider, AUTH_COOLDOWN, AUTH_COOLDOWN_CAP, None),
                ErrorClass::Connect | ErrorClass::Timeout => {
                    (Scope::Provider, CONNECT_COOLDOWN, CONNECT_COOLDOWN, None)
                }
                _ => return None,
            };
        let key: Key =
            (provider.to_owned(), (scope == Scope::Model).then(|| model.to_owned()), credential);
        if self.entries.len() >= MAX_HEALTH_ENTRIES && !self.entries.contains_key(&key) {
            self.entries.retain(|_, h| {
                h.until.is_some_and(|u| u > now)
                    || h.last_failure.is_some_and(|t| now.duration_since(t) < FAILURE_WINDOW)
            });
            if self.entries.len() >= MAX_HEALTH_ENTRIES {
                let oldest =
                    self.entries.iter().min_by_key(|(_, h)| h.last_failure).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    self.entries.remove(&oldest);
                }
            }
        }
        let h = self.entries.entry(key).or_default();
        if h.last_failure.is_some_and(|t| now.duration_since(t) > FAILURE_WINDOW) {
            h.count = 0;
        }
        h.count += 1;
        h.last_failure = Some(now);
        let mut cooldown = match schedule {
            Some(s) => s[(h.count as usize - 1).min(s.len() - 1)],
            None => base.saturating_mul(1 << (h.count - 1).min(8)).min(cap),
        };
        if let Some(retry_after) = error.retry_after {
            cooldown = cooldown.max(retry_after);
        }
        h.until = Some(now + cooldown);
        h.reason = Some(error.class);
        tracing::warn!(
            provider,
            model = (scope == Scope::Model).then_some(model),
            credential,
            reason = error.class.as_str(),
            cooldown_ms = cooldown.as_millis() as u64,
            "Cooldown set."
        );
        Some(cooldown)
    }

    /// Ends every cooldown with reason `class` (the overload retry of a whole chain).
    pub(crate) fn clear_class(&mut self, class: ErrorClass) {
        for h in self.entries.values_mut() {
            if h.reason == Some(class) {
                h.until = None;
            }
        }
    }

    /// Ends the model-scoped cooldowns of (provider, model), on every credential.
    pub(crate) fn clear_model(&mut self, provider: &str, model: &str) {
        for ((p, m, _), h) in self.entries.iter_mut() {
            if p == provider && m.as_deref() == Some(model) {
                h.until = None;
            }
        }
    }
}

// === impl SkipTable ===

impl SkipTable {
    /// How long `key` stays skipped, if it is.
    fn remaining(&self, key: &(String, String, String), now: Instant) -> Option<Duration> {
        let remaining = self.until.get(key)?.saturating_duration_since(now);
        (!remaining.is_zero()).then_some(remaining)
    }

    fn mark(&mut self, key: (String, String, String), until: Instant, now: Instant) {
        if self.until.len() >= MAX_SKIP_MARKERS {
            self.until.retain(|_, u| *u > now);
        }
        if self.until.len() < MAX_SKIP_MARKERS {
            self.until.insert(key, until);
        }
    }
}
