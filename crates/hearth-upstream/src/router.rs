//! The router: runs a candidate chain with failover, cooldowns and retries, and hands back the
//! first candidate's stream that produced output.
//!
//! Invariant 1: failover happens only before the first event is handed to the caller. Once
//! `Router::run` returns `Ok`, a later upstream failure arrives as a terminal `Event::Error` in
//! the stream; it is never turned into a silently shorter success.
//!
//! Reasoning events are held until the answer begins (its first text, tool call or finish), so
//! an answer that is reasoning only fails over like an empty one.
//!
//! A server loading its model is waited for once: the request that finds it loading polls it
//! up to its `timeoutSeconds`; when that wait gives up, or as soon as the server gives an
//! estimate, the (provider, model) cools down with reason `loading` (the estimate, else
//! [`LOADING_COOLDOWN`]), so later requests skip it at once instead of each paying the wait.
//! A loading cooldown is never probed (the server just said it is busy), and any success of
//! that model ends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use hearth_config::{Chain, Config, Env, ModelRef};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::client::{Client, EventStream};
use crate::encode::Target;
use crate::event::{ErrorClass, Event, UpstreamError};
use crate::prompt::Prompt;
use crate::secret_keys;

/// Rate-limit cooldown schedule by consecutive failures: 30 s, 60 s, then 300 s.
pub const RATE_LIMIT_COOLDOWNS: [Duration; 3] =
    [Duration::from_secs(30), Duration::from_secs(60), Duration::from_secs(300)];
/// A `Retry-After` up to this long is waited out at the end of a chain when
/// `models.routing.retryMaxWaitSeconds` is not set.
pub const MAX_RETRY_AFTER: Duration = hearth_config::resolve::DEFAULT_RETRY_MAX_WAIT;
/// Whole-chain retries when every candidate was only overloaded.
pub const OVERLOAD_RETRIES: u32 = 10;
/// First delay of the overload retry; doubles up to [`OVERLOAD_RETRY_CAP`].
pub const OVERLOAD_RETRY_BASE: Duration = Duration::from_millis(2500);
pub const OVERLOAD_RETRY_CAP: Duration = Duration::from_secs(30);
/// Billing failures disable a credential for 5 h, doubling to 24 h.
pub const BILLING_DISABLE: Duration = Duration::from_secs(5 * 3600);
pub const BILLING_DISABLE_CAP: Duration = Duration::from_secs(24 * 3600);
/// Auth failures cool a credential down for 10 min, doubling to 60 min.
pub const AUTH_COOLDOWN: Duration = Duration::from_secs(600);
pub const AUTH_COOLDOWN_CAP: Duration = Duration::from_secs(3600);
/// A refused connection or a timeout cools the provider down briefly.
pub const CONNECT_COOLDOWN: Duration = Duration::from_secs(30);
/// Failure counters reset after this long without failures.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Overload retries send one notice once this long has passed since the run began.
pub const OVERLOAD_NOTICE_AFTER: Duration = Duration::from_secs(30);
/// The notice (OpenClaw's wording).
pub const OVERLOAD_NOTICE: &str =
    "The AI service is temporarily overloaded. I’m still retrying; this may take a few minutes.";
/// A rate limit with a `Retry-After` at the end of the chain is waited out at most this many
/// times per run (the official SDKs' default retry count).
pub const RATE_LIMIT_WAITS: u32 = 2;
/// At most this many skip markers are kept (expired ones are dropped first).
const MAX_SKIP_MARKERS: usize = 4096;
/// Health entries (one per provider, model and credential that failed) kept at most: a
/// discovering provider serves ids the client names, so the table must not grow with them.
/// Beyond it, entries whose cooldown and failure window are over go first, then the oldest.
const MAX_HEALTH_ENTRIES: usize = 4096;
/// Context windows learned from overflow errors, kept at most.
const MAX_LEARNED: usize = 4096;
/// While a server says it is loading a model, poll it this often (up to its timeout).
pub const LOADING_POLL: Duration = Duration::from_secs(1);
/// How long to wait for a loading model when the provider sets no `timeoutSeconds`.
pub const LOADING_WAIT: Duration = Duration::from_secs(120);
/// After a loading wait gave up, the (provider, model) is skipped this long when the server
/// gave no estimate: long enough that a burst of requests does not pay the wait again one by
/// one, short enough that a model that finished loading is used again soon.
pub const LOADING_COOLDOWN: Duration = Duration::from_secs(15);
/// A server's own loading estimate (`Retry-After`, or `try again in 20s` in the message) is
/// honoured up to this long.
pub const LOADING_COOLDOWN_CAP: Duration = Duration::from_secs(300);

/// What happened to one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub model_ref: ModelRef,
    /// `None`: the candidate answered (its stream was handed out).
    pub error: Option<UpstreamError>,
    /// Skipped without a request (in cooldown).
    pub skipped: bool,
    pub elapsed: Duration,
}

impl Attempt {
    pub fn outcome(&self) -> &'static str {
        match (&self.error, self.skipped) {
            (_, true) => "skipped",
            (None, false) => "ok",
            (Some(_), false) => "error",
        }
    }
}

/// A candidate answered: its stream, with the attempts that led to it.
pub struct Answer {
    pub model_ref: ModelRef,
    pub attempts: Vec<Attempt>,
    /// User-visible notices the run produced (the overload notice), in order.
    pub notices: Vec<String>,
    /// Starts with the first event the candidate produced.
    pub events: EventStream,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("model_ref", &self.model_ref)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// No candidate answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", summary(.attempts))]
pub struct Failure {
    pub attempts: Vec<Attempt>,
    /// The error that ended the run (the last real one).
    pub last: UpstreamError,
    /// When the soonest cooldown among the candidates ends, if any is cooling down.
    pub retry_in: Option<Duration>,
    /// User-visible notices the run produced (the overload notice), in order.
    pub notices: Vec<String>,
}

/// Reasoning, which the router holds until the answer begins.
fn is_reasoning(event: &Event) -> bool {
    matches!(event, Event::ReasoningDelta(_) | Event::ReasoningSignature(_))
}

fn summary(attempts: &[Attempt]) -> String {
    let parts: Vec<String> = attempts
        .iter()
        .map(|a| match (&a.error, a.skipped) {
            (_, true) => format!("{}: skipped (cooling down)", a.model_ref),
            (Some(e), _) => format!("{}: {}", a.model_ref, e),
            (None, _) => format!("{}: ok", a.model_ref),
        })
        .collect();
    format!("no model could answer ({})", parts.join("; "))
}

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

/// Cooldown state of one (provider, model, credential), for `models status` and `/metrics`.
/// Its JSON (`GET /hearth/cooldowns`) carries `remaining` as `remaining_ms`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CooldownView {
    pub provider: String,
    /// `None`: the whole provider (on that credential).
    pub model: Option<String>,
    pub credential: usize,
    pub reason: ErrorClass,
    #[serde(rename = "remaining_ms", with = "millis")]
    pub remaining: Duration,
    pub failures: u32,
}

/// A `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

type Key = (String, Option<String>, usize);

/// Runs candidate chains. One per gateway; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Router {
    clients: Mutex<HashMap<String, Client>>,
    health: Mutex<HashMap<Key, Health>>,
    /// Servers started on demand (`localService`), leased per request.
    services: std::sync::Arc<crate::local_service::LocalServices>,
    /// Context sizes the servers taught us (overflow errors).
    learned: Mutex<HashMap<(String, String), u64>>,
    /// The auth skip cache: (session, provider, model) → skip until.
    skips: Mutex<HashMap<(String, String, String), Instant>>,
}

/// Per-call options.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// The whole run (all attempts, waits and retries) ends by then.
    pub deadline: Option<Instant>,
    /// Whole-chain retries when every candidate was only overloaded (0: none).
    pub overload_retries: u32,
    /// First delay of those retries; doubles up to [`OVERLOAD_RETRY_CAP`].
    pub overload_base: Duration,
    /// The overload notice goes out once this long has passed in overload retries.
    pub overload_notice_after: Duration,
    /// The session the run belongs to (scopes the auth skip cache); `None`: no skip cache.
    pub session: Option<&'a str>,
    /// Called with each notice the moment it is due (the run may still wait for minutes).
    pub on_notice: Option<&'a (dyn Fn(&str) + Sync)>,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("deadline", &self.deadline)
            .field("overload_retries", &self.overload_retries)
            .field("overload_base", &self.overload_base)
            .field("overload_notice_after", &self.overload_notice_after)
            .field("session", &self.session)
            .field("on_notice", &self.on_notice.is_some())
            .finish()
    }
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            deadline: None,
            overload_retries: OVERLOAD_RETRIES,
            overload_base: OVERLOAD_RETRY_BASE,
            overload_notice_after: OVERLOAD_NOTICE_AFTER,
            session: None,
            on_notice: None,
        }
    }
}

enum Step {
    Answered(Box<Answer>),
    Failed(UpstreamError),
}

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    /// The local services this router starts and stops.
    pub fn services(&self) -> &std::sync::Arc<crate::local_service::LocalServices> {
        &self.services
    }

    /// The context window a server reported in an overflow error, if any.
    pub fn learned_context(&self, provider: &str, model: &str) -> Option<u64> {
        self.learned.lock().ok()?.get(&(provider.to_owned(), model.to_owned())).copied()
    }

    fn client(&self, provider: &hearth_config::Provider) -> Result<Client, UpstreamError> {
        let poisoned = || UpstreamError::new(ErrorClass::ServerError, "router state poisoned");
        if let Some(c) = self.clients.lock().map_err(|_| poisoned())?.get(&provider.id)
            && c.built_for(provider)
        {
            return Ok(c.clone());
        }
        // Built without the lock held: it takes milliseconds (TLS roots).
        let client = Client::new(provider)?;
        let mut clients = self.clients.lock().map_err(|_| poisoned())?;
        match clients.get(&provider.id) {
            Some(c) if c.built_for(provider) => Ok(c.clone()),
            _ => {
                clients.insert(provider.id.clone(), client.clone());
                Ok(client)
            }
        }
    }

    /// Builds the HTTP clients of the default chain's providers (the ones most requests use),
    /// so the first request does not pay for it; the others are built on first use (each
    /// client holds its own TLS roots: memory). Blocking work: run it off the async workers.
    pub fn prepare(&self, config: &Config) {
        let Ok(chain) = config.candidate_chain(None, None, false) else { return };
        for model_ref in &chain.candidates {
            if let Some(provider) = config.providers.get(&model_ref.provider) {
                let _ = self.client(provider);
            }
        }
    }

    /// Current cooldowns (for status pages and metrics).
    pub fn cooldowns(&self) -> Vec<CooldownView> {
        let now = Instant::now();
        let Ok(health) = self.health.lock() else { return Vec::new() };
        let mut out: Vec<CooldownView> = health
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

    /// When (provider, model, credential) may be tried again; `None` when it may now.
    fn cooling_until(&self, provider: &str, model: &str, credential: usize) -> Option<Instant> {
        let now = Instant::now();
        let health = self.health.lock().ok()?;
        let model_until = health
            .get(&(provider.to_owned(), Some(model.to_owned()), credential))
            .and_then(|h| h.until);
        let provider_until =
            health.get(&(provider.to_owned(), None, credential)).and_then(|h| h.until);
        [model_until, provider_until].into_iter().flatten().filter(|u| *u > now).max()
    }

    fn record_success(&self, provider: &str, model: &str, credential: usize) {
        if let Ok(mut health) = self.health.lock() {
            let model_entry =
                health.remove(&(provider.to_owned(), Some(model.to_owned()), credential));
            let provider_entry = health.remove(&(provider.to_owned(), None, credential));
            if model_entry.or(provider_entry).is_some_and(|h| h.until.is_some()) {
                tracing::info!(
                    provider,
                    model,
                    credential,
                    "Cooldown cleared: the model answered."
                );
            }
            // Loading is the server's state, not the credential's: it ended for all of them.
            health.retain(|(p, m, _), h| {
                !(p == provider
                    && m.as_deref() == Some(model)
                    && h.reason == Some(ErrorClass::Loading))
            });
        }
    }

    /// Cools (provider, model) down for a loading server, on every credential (the server is
    /// loading whichever key asks), and returns the cooldown.
    fn record_loading(
        &self,
        provider: &str,
        model: &str,
        credentials: usize,
        estimate: Option<Duration>,
    ) -> Duration {
        let cooldown = estimate.unwrap_or(LOADING_COOLDOWN).min(LOADING_COOLDOWN_CAP);
        let now = Instant::now();
        if let Ok(mut health) = self.health.lock() {
            for credential in 0..credentials.max(1) {
                let h = health
                    .entry((provider.to_owned(), Some(model.to_owned()), credential))
                    .or_default();
                // A longer cooldown for another reason (a rate limit) stays as it is, with its
                // failure count (the rate-limit schedule reads it).
                if h.reason != Some(ErrorClass::Loading)
                    && h.until.is_some_and(|u| u > now + cooldown)
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
    fn cooling_reason(&self, provider: &str, model: &str) -> Option<(ErrorClass, Instant)> {
        let now = Instant::now();
        let health = self.health.lock().ok()?;
        health
            .iter()
            .filter(|((p, m, _), _)| {
                p.as_str() == provider && m.as_deref().is_none_or(|m| m == model)
            })
            .filter_map(|(_, h)| Some((h.reason?, h.until.filter(|u| *u > now)?)))
            .max_by_key(|(_, until)| *until)
    }

    /// Whether `model_ref` is skipped because its server is loading the model.
    fn loading_cooldown(&self, config: &Config, model_ref: &ModelRef) -> bool {
        config.resolve_model_ref(model_ref).is_ok_and(|r| {
            self.cooling_reason(&r.provider.id, &r.model.id)
                .is_some_and(|(class, _)| class == ErrorClass::Loading)
        })
    }

    /// Records a failure and returns the cooldown it started, if any.
    fn record_failure(
        &self,
        provider: &str,
        model: &str,
        credential: usize,
        error: &UpstreamError,
    ) -> Option<Duration> {
        let (scope, base, cap, schedule): (Scope, Duration, Duration, Option<&[Duration]>) =
            match error.class {
                ErrorClass::RateLimit => (
                    Scope::Model,
                    RATE_LIMIT_COOLDOWNS[0],
                    RATE_LIMIT_COOLDOWNS[2],
                    Some(&RATE_LIMIT_COOLDOWNS),
                ),
                ErrorClass::Overloaded => (
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
        let now = Instant::now();
        let mut health = self.health.lock().ok()?;
        if health.len() >= MAX_HEALTH_ENTRIES && !health.contains_key(&key) {
            health.retain(|_, h| {
                h.until.is_some_and(|u| u > now)
                    || h.last_failure.is_some_and(|t| now.duration_since(t) < FAILURE_WINDOW)
            });
            if health.len() >= MAX_HEALTH_ENTRIES {
                let oldest =
                    health.iter().min_by_key(|(_, h)| h.last_failure).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    health.remove(&oldest);
                }
            }
        }
        let h = health.entry(key).or_default();
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

    /// Runs `chain`: each candidate in order (skipping those cooling down), failing over on
    /// failover-eligible errors before anything was produced; the whole chain again (with
    /// backoff) when every candidate was only overloaded. `params_for` gives the merged params
    /// of a candidate.
    pub async fn run(
        &self,
        config: &Config,
        chain: &Chain,
        prompt: &Prompt,
        params_for: &(dyn Fn(&ModelRef) -> Option<Map<String, Value>> + Sync),
        env: &(dyn Env + Sync),
        options: RunOptions<'_>,
    ) -> Result<Answer, Failure> {
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut notices: Vec<String> = Vec::new();
        let mut retry = 0u32;
        let mut rate_limit_waits = 0u32;
        let run_started = Instant::now();
        // Read once per config snapshot, at load (`models.routing` and its variables).
        let skip_ttl = config.routing.fallback_skip_ttl.filter(|_| options.session.is_some());
        let session = options.session.unwrap_or_default();
        let wait_cap = config.routing.retry_max_wait;
        // The requested model and the configured primary are never skipped by the skip cache.
        let default_primary = skip_ttl.and_then(|_| {
            config
                .candidate_chain(None, None, false)
                .ok()
                .and_then(|c| c.candidates.first().cloned())
        });
        let protected = |idx: usize, r: &ModelRef| idx == 0 || default_primary.as_ref() == Some(r);
        loop {
            let mut last: Option<UpstreamError> = None;
            let mut only_overloaded = true;
            let mut tried_any = false;
            let mut soonest: Option<Instant> = None;
            let all_cooling =
                chain.candidates.iter().all(|r| self.candidate_cooling(config, r, env).is_some());
            // When every candidate cools down, the first one is probed anyway, so a turn is
            // never refused only because of old failures; a loading server is not probed (it
            // just said it is busy, and its cooldown is short).
            let probe_idx = if all_cooling {
                chain.candidates.iter().position(|r| !self.loading_cooldown(config, r))
            } else {
                None
            };
            for (idx, model_ref) in chain.candidates.iter().enumerate() {
                let probe = probe_idx == Some(idx);
                if skip_ttl.is_some()
                    && !protected(idx, model_ref)
                    && let Some(remaining) = self.skip_remaining(config, session, model_ref)
                {
                    let mut error = UpstreamError::new(
                        ErrorClass::Auth,
                        format!(
                            "skipped: it failed authentication in this session; tried again in {}s (models.routing.fallbackSkipTtlMs)",
                            remaining.as_secs().max(1),
                        ),
                    );
                    error.retry_after = Some(remaining);
                    attempts.push(Attempt {
                        model_ref: model_ref.clone(),
                        error: Some(error.clone()),
                        skipped: true,
                        elapsed: Duration::ZERO,
                    });
                    last = Some(error);
                    continue;
                }
                match self
                    .try_candidate(
                        config,
                        model_ref,
                        prompt,
                        params_for,
                        env,
                        options,
                        probe,
                        &mut attempts,
                    )
                    .await
                {
                    Step::Answered(answer) => {
                        let mut answer = *answer;
                        answer.attempts = attempts;
                        answer.notices = notices;
                        return Ok(answer);
                    }
                    Step::Failed(error) => {
                        let was_skipped = attempts.last().is_some_and(|a| a.skipped);
                        if let Some(ttl) = skip_ttl
                            && !was_skipped
                            && error.class == ErrorClass::Auth
                            && !protected(idx, model_ref)
                        {
                            self.mark_skip(config, session, model_ref, ttl);
                        }
                        if was_skipped {
                            if let Some(until) = self.candidate_cooling(config, model_ref, env) {
                                soonest = Some(soonest.map_or(until, |s: Instant| s.min(until)));
                            }
                        } else {
                            tried_any = true;
                            if error.class != ErrorClass::Overloaded {
                                only_overloaded = false;
                            }
                        }
                        let terminal = !error.class.is_failover_eligible();
                        if !terminal && let Some(next) = chain.candidates.get(idx + 1) {
                            tracing::info!(candidate = %model_ref, error_kind = error.class.as_str(), status = error.status, next = %next, "Candidate failed before its first byte; trying the next one.");
                        }
                        last = Some(error);
                        if terminal {
                            break;
                        }
                    }
                }
                if options.deadline.is_some_and(|d| Instant::now() >= d) {
                    last = Some(UpstreamError::new(
                        ErrorClass::Timeout,
                        "the run's time budget ran out",
                    ));
                    break;
                }
            }
            let last = last.unwrap_or_else(|| {
                UpstreamError::new(ErrorClass::ServerError, "the candidate chain is empty")
            });
            if tried_any
                && only_overloaded
                && last.class == ErrorClass::Overloaded
                && retry < options.overload_retries
            {
                let delay =
                    options.overload_base.saturating_mul(1 << retry.min(8)).min(OVERLOAD_RETRY_CAP);
                if options.deadline.is_some_and(|d| Instant::now() + delay >= d) {
                    return Err(Failure { attempts, last, retry_in: None, notices });
                }
                retry += 1;
                tracing::info!(
                    retry,
                    delay_ms = delay.as_millis() as u64,
                    "Every candidate is overloaded; retrying the chain."
                );
                // The overloaded candidates' cooldowns must not block the retry.
                self.clear_class(ErrorClass::Overloaded);
                let wake = Instant::now() + delay;
                let notice_at = run_started + options.overload_notice_after;
                if !notices.iter().any(|n| n == OVERLOAD_NOTICE) && notice_at <= wake {
                    tokio::time::sleep_until(notice_at).await;
                    notices.push(OVERLOAD_NOTICE.to_owned());
                    if let Some(notify) = options.on_notice {
                        notify(OVERLOAD_NOTICE);
                    }
                }
                tokio::time::sleep_until(wake).await;
                continue;
            }
            // A rate limit whose `Retry-After` is short enough, on the last candidate that was
            // tried: nothing else can answer, so wait it out and try again (as the SDKs do).
            if last.class == ErrorClass::RateLimit
                && rate_limit_waits < RATE_LIMIT_WAITS
                && let Some(wait) = last.retry_after
                && wait_cap.is_none_or(|cap| wait <= cap)
                && let Some(tried) = attempts.last().filter(|a| !a.skipped)
                && options.deadline.is_none_or(|d| Instant::now() + wait < d)
            {
                rate_limit_waits += 1;
                let model_ref = tried.model_ref.clone();
                tracing::info!(candidate = %model_ref, wait_ms = wait.as_millis() as u64, "Rate limited at the end of the chain; waiting it out.");
                tokio::time::sleep(wait).await;
                self.clear_model(config, &model_ref);
                continue;
            }
            let retry_in = soonest.map(|s| s.saturating_duration_since(Instant::now()));
            return Err(Failure { attempts, last, retry_in, notices });
        }
    }

    /// Ends the model-scoped cooldowns of `model_ref` (every credential).
    fn clear_model(&self, config: &Config, model_ref: &ModelRef) {
        let Ok(resolved) = config.resolve_model_ref(model_ref) else { return };
        if let Ok(mut health) = self.health.lock() {
            for ((provider, model, _), h) in health.iter_mut() {
                if *provider == resolved.provider.id
                    && model.as_deref() == Some(resolved.model.id.as_str())
                {
                    h.until = None;
                }
            }
        }
    }

    fn skip_key(config: &Config, session: &str, model_ref: &ModelRef) -> (String, String, String) {
        match config.resolve_model_ref(model_ref) {
            Ok(r) => (session.to_owned(), r.provider.id.clone(), r.model.id.clone()),
            Err(_) => (session.to_owned(), model_ref.provider.clone(), model_ref.model.clone()),
        }
    }

    /// How long `model_ref` stays skipped in `session`, if it is.
    fn skip_remaining(
        &self,
        config: &Config,
        session: &str,
        model_ref: &ModelRef,
    ) -> Option<Duration> {
        let key = Router::skip_key(config, session, model_ref);
        let until = *self.skips.lock().ok()?.get(&key)?;
        let remaining = until.saturating_duration_since(Instant::now());
        (!remaining.is_zero()).then_some(remaining)
    }

    fn mark_skip(&self, config: &Config, session: &str, model_ref: &ModelRef, ttl: Duration) {
        let key = Router::skip_key(config, session, model_ref);
        let now = Instant::now();
        if let Ok(mut skips) = self.skips.lock() {
            if skips.len() >= MAX_SKIP_MARKERS {
                skips.retain(|_, until| *until > now);
            }
            if skips.len() < MAX_SKIP_MARKERS {
                skips.insert(key, now + ttl);
            }
        }
    }

    fn clear_class(&self, class: ErrorClass) {
        if let Ok(mut health) = self.health.lock() {
            for h in health.values_mut() {
                if h.reason == Some(class) {
                    h.until = None;
                }
            }
        }
    }

    fn candidate_cooling(
        &self,
        config: &Config,
        model_ref: &ModelRef,
        env: &(dyn Env + Sync),
    ) -> Option<Instant> {
        let resolved = config.resolve_model_ref(model_ref).ok()?;
        let keys = secret_keys(resolved.provider, env).len().max(1);
        (0..keys)
            .map(|k| self.cooling_until(&resolved.provider.id, &resolved.model.id, k))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .min()
    }

    #[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename them")]
    async fn try_candidate(
        &self,
        config: &Config,
        model_ref: &ModelRef,
        prompt: &Prompt,
        params_for: &(dyn Fn(&ModelRef) -> Option<Map<String, Value>> + Sync),
        env: &(dyn Env + Sync),
        options: RunOptions<'_>,
        probe: bool,
        attempts: &mut Vec<Attempt>,
    ) -> Step {
        let started = Instant::now();
        let resolved = match config.resolve_model_ref(model_ref) {
            Ok(r) => r,
            Err(e) => {
                let error = UpstreamError::new(ErrorClass::ModelNotFound, e.to_string());
                attempts.push(Attempt {
                    model_ref: model_ref.clone(),
                    error: Some(error.clone()),
                    skipped: false,
                    elapsed: started.elapsed(),
                });
                return Step::Failed(error);
            }
        };
        let provider = resolved.provider;
        let model = &resolved.model;
        let client = match self.client(provider) {
            Ok(c) => c,
            Err(e) => {
                attempts.push(Attempt {
                    model_ref: model_ref.clone(),
                    error: Some(e.clone()),
                    skipped: false,
                    elapsed: started.elapsed(),
                });
                return Step::Failed(e);
            }
        };
        // A provider with `localService` is started on demand; the lease lives as long as the
        // answer's stream.
        let lease = match self.services.acquire(provider).await {
            Ok(lease) => lease,
            Err(e) => {
                attempts.push(Attempt {
                    model_ref: model_ref.clone(),
                    error: Some(e.clone()),
                    skipped: false,
                    elapsed: started.elapsed(),
                });
                return Step::Failed(e);
            }
        };
        let params = params_for(model_ref);
        let target = Target { provider, model, params: params.as_ref() };
        let keys = secret_keys(provider, env);
        let key_count = keys.len().max(1);
        let mut last_error: Option<UpstreamError> = None;
        let mut any_tried = false;
        for credential in 0..key_count {
            if !probe && self.cooling_until(&provider.id, &model.id, credential).is_some() {
                continue;
            }
            any_tried = true;
            let key = keys.get(credential);
            let loading_deadline = Instant::now() + provider.timeout.unwrap_or(LOADING_WAIT);
            loop {
                let attempt_started = Instant::now();
                let result = match options.deadline {
                    Some(d) => match tokio::time::timeout_at(
                        d,
                        client.send_with_key(&target, prompt, env, key),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(UpstreamError::new(
                            ErrorClass::Timeout,
                            "the run's time budget ran out",
                        )),
                    },
                    None => client.send_with_key(&target, prompt, env, key).await,
                };
                let first = match result {
                    Ok(mut stream) => {
                        // The wait for the first event is bounded by the run's deadline too.
                        let next = match options.deadline {
                            Some(d) => tokio::time::timeout_at(d, stream.next())
                                .await
                                .unwrap_or_else(|_| {
                                    Some(Event::Error(UpstreamError::new(
                                        ErrorClass::Timeout,
                                        "the run's time budget ran out",
                                    )))
                                }),
                            None => stream.next().await,
                        };
                        Ok((next, stream))
                    }
                    Err(e) => Err(e),
                };
                // Reasoning is held until the answer itself begins (text, a tool call, the
                // finish): an answer that is reasoning only ends in an error and fails over like
                // an empty one, before anything was relayed.
                let first = match first {
                    Ok((Some(event), mut stream)) if is_reasoning(&event) => {
                        let mut held = vec![event];
                        loop {
                            let next = match options.deadline {
                                Some(d) => tokio::time::timeout_at(d, stream.next())
                                    .await
                                    .unwrap_or_else(|_| {
                                        Some(Event::Error(UpstreamError::new(
                                            ErrorClass::Timeout,
                                            "the run's time budget ran out",
                                        )))
                                    }),
                                None => stream.next().await,
                            };
                            match next {
                                Some(e) if is_reasoning(&e) => held.push(e),
                                Some(Event::Error(e)) => {
                                    break Ok((Some(Event::Error(e)), Vec::new(), stream));
                                }
                                next => break Ok((next, held, stream)),
                            }
                        }
                    }
                    Ok((next, stream)) => Ok((next, Vec::new(), stream)),
                    Err(e) => Err(e),
                };
                let error = match first {
                    Ok((next, held, stream)) => match next {
                        Some(Event::Error(e)) => e,
                        None if !held.is_empty() => UpstreamError::new(
                            ErrorClass::EmptyResponse,
                            "the model produced reasoning but no answer",
                        ),
                        Some(first) => {
                            self.record_success(&provider.id, &model.id, credential);
                            attempts.push(Attempt {
                                model_ref: model_ref.clone(),
                                error: None,
                                skipped: false,
                                elapsed: attempt_started.elapsed(),
                            });
                            let lease = lease;
                            let events = futures::stream::iter(held)
                                .chain(futures::stream::once(async move { first }))
                                .chain(stream)
                                .map(move |event| {
                                    let _held = &lease;
                                    event
                                })
                                .boxed();
                            return Step::Answered(Box::new(Answer {
                                model_ref: crate::model_ref_of(provider, model),
                                attempts: Vec::new(),
                                notices: Vec::new(),
                                events,
                            }));
                        }
                        None => UpstreamError::new(
                            ErrorClass::EmptyResponse,
                            "the upstream sent nothing",
                        ),
                    },
                    Err(e) => e,
                };
                attempts.push(Attempt {
                    model_ref: model_ref.clone(),
                    error: Some(error.clone()),
                    skipped: false,
                    elapsed: attempt_started.elapsed(),
                });
                if error.class == ErrorClass::Connect && provider.local_service.is_some() {
                    self.services.mark_unhealthy(provider);
                }
                if let Some(n) = error.overflow.and_then(|o| o.context_size)
                    && let Ok(mut learned) = self.learned.lock()
                {
                    let key = (provider.id.clone(), model.id.clone());
                    if learned.len() >= MAX_LEARNED && !learned.contains_key(&key) {
                        learned.clear();
                    }
                    learned.insert(key, n);
                }
                // A server loading the model is waited for (cold start), then given up on. Other
                // requests skip it meanwhile once it gave an estimate, and after the wait (module
                // doc).
                if error.class == ErrorClass::Loading {
                    let waiting = Instant::now() + LOADING_POLL < loading_deadline;
                    if waiting && error.retry_after.is_some() {
                        self.record_loading(&provider.id, &model.id, key_count, error.retry_after);
                    }
                    if waiting {
                        tracing::info!(provider = %provider.id, model = %model.id, "The server is loading the model; waiting.");
                        tokio::time::sleep(
                            error.retry_after.unwrap_or(LOADING_POLL).min(Duration::from_secs(5)),
                        )
                        .await;
                        continue;
                    }
                    let cooldown =
                        self.record_loading(&provider.id, &model.id, key_count, error.retry_after);
                    let mut error = error;
                    error.retry_after = Some(cooldown);
                    return Step::Failed(error);
                }
                self.record_failure(&provider.id, &model.id, credential, &error);
                let rotate = matches!(
                    error.class,
                    ErrorClass::RateLimit
                        | ErrorClass::Auth
                        | ErrorClass::Billing
                        | ErrorClass::Overloaded
                );
                last_error = Some(error);
                if !rotate {
                    return Step::Failed(last_error.unwrap_or_else(|| {
                        UpstreamError::new(ErrorClass::ServerError, "unknown failure")
                    }));
                }
                break;
            }
        }
        if !any_tried {
            let until = self.candidate_cooling(config, model_ref, env);
            let reason = self.cooling_reason(&provider.id, &model.id).map(|(class, _)| class);
            let remaining =
                until.map(|u| u.saturating_duration_since(Instant::now())).unwrap_or_default();
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
            attempts.push(Attempt {
                model_ref: model_ref.clone(),
                error: Some(error.clone()),
                skipped: true,
                elapsed: Duration::ZERO,
            });
            return Step::Failed(error);
        }
        Step::Failed(
            last_error
                .unwrap_or_else(|| UpstreamError::new(ErrorClass::ServerError, "unknown failure")),
        )
    }
}
