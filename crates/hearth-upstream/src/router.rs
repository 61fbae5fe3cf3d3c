//! The router: runs a candidate chain with failover, cooldowns and retries, and hands back the
//! first candidate's stream that produced output.
//!
//! Invariant 1: failover happens only before the first event is handed to the caller. Once
//! `Router::run` returns `Ok`, a later upstream failure arrives as a terminal `Event::Error` in
//! the stream; it is never turned into a silently shorter success.
//!
//! Reasoning events are held until the answer begins (its first text, tool call or finish), so
//! an answer that is reasoning only fails over like an empty one. Prompt progress reports
//! (`Event::Progress`) are never the answer's beginning: they go to
//! [`RunOptions::on_progress`] as they come and are left out of the answer's stream, so a
//! server that reports progress and then fails still fails over.
//!
//! A server loading its model is waited for once: the request that finds it loading polls it
//! up to its `timeoutSeconds`; when that wait gives up, or as soon as the server gives an
//! estimate, the (provider, model) cools down with reason `loading` (the estimate, else
//! [`LOADING_COOLDOWN`]), so later requests skip it at once instead of each paying the wait.
//! A loading cooldown is never probed (the server just said it is busy), and any success of
//! that model ends it.
//!
//! Policy apart from mechanism: [`policy`] decides every step (which candidate and credential
//! next, how long to wait, when to give up) from the health table and the time it is given;
//! [`Router::run`] is the driver, the only place that calls an upstream (through a
//! [`Transport`]), reads the clock and sleeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use hearth_config::{Chain, Config, Env, ModelRef, SecretString};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::client::EventStream;
use crate::encode::Target;
use crate::event::{ErrorClass, Event, Progress, UpstreamError};
use crate::local_service::LocalServices;
use crate::prompt::Prompt;
use crate::secret_keys;
use crate::transport::{Clients, Transport};
use policy::{Candidate, Decision, Outcome, Policy, Settings, Tables};

mod policy;

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
/// `models.routing.overloadNoticeAfterMs` changes it for runs that do not set their own.
pub const OVERLOAD_NOTICE_AFTER: Duration = hearth_config::resolve::DEFAULT_OVERLOAD_NOTICE_AFTER;
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
/// A loading server's own estimate stretches the poll interval up to this.
const LOADING_POLL_MAX: Duration = Duration::from_secs(5);
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

/// Runs candidate chains. One per gateway; cheap to share behind an `Arc`. Calls go through
/// `T`: HTTP ([`Clients`]), or a scripted transport in tests ([`Router::with_transport`]).
#[derive(Debug, Default)]
pub struct Router<T = Clients> {
    transport: T,
    /// The health table and the auth skip cache, shared by every run.
    tables: Mutex<Tables>,
    /// Servers started on demand (`localService`), leased per request.
    services: Arc<LocalServices>,
    /// Context sizes the servers taught us (overflow errors).
    learned: Mutex<HashMap<(String, String), u64>>,
    /// What servers were probed to serve (the gateway's probe cache): caps the `num_ctx` sent
    /// to Ollama. Read from the cache only, never probed on a request's way.
    probes: Option<Arc<crate::probe::Probes>>,
}

/// Receives a candidate's prompt progress reports (its ref, the report).
pub type OnProgress<'a> = &'a (dyn Fn(&ModelRef, &Progress) + Sync);

/// Per-call options.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// The whole run (all attempts, waits and retries) ends by then.
    pub deadline: Option<Instant>,
    /// Whole-chain retries when every candidate was only overloaded (0: none).
    pub overload_retries: u32,
    /// First delay of those retries; doubles up to [`OVERLOAD_RETRY_CAP`].
    pub overload_base: Duration,
    /// The overload notice goes out once this long has passed in overload retries; `None`:
    /// the config's (`models.routing.overloadNoticeAfterMs`, default [`OVERLOAD_NOTICE_AFTER`]).
    pub overload_notice_after: Option<Duration>,
    /// The session the run belongs to (scopes the auth skip cache); `None`: no skip cache.
    pub session: Option<&'a str>,
    /// Called with each notice the moment it is due (the run may still wait for minutes).
    pub on_notice: Option<&'a (dyn Fn(&str) + Sync)>,
    /// Called with each prompt progress report of the candidate being tried, before its
    /// answer begins.
    pub on_progress: Option<OnProgress<'a>>,
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
            .field("on_progress", &self.on_progress.is_some())
            .finish()
    }
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            deadline: None,
            overload_retries: OVERLOAD_RETRIES,
            overload_base: OVERLOAD_RETRY_BASE,
            overload_notice_after: None,
            session: None,
            on_notice: None,
            on_progress: None,
        }
    }
}

// === impl Router ===

impl Router {
    pub fn new() -> Self {
        Router::default()
    }

    /// Reads what servers serve from `probes`' cache (the most context a model supports).
    #[must_use]
    pub fn with_probes(mut self, probes: Arc<crate::probe::Probes>) -> Self {
        self.probes = Some(probes);
        self
    }

    /// Builds the HTTP clients of the default chain's providers (the ones most requests use),
    /// so the first request does not pay for it; the others are built on first use (each
    /// client holds its own TLS roots: memory). Blocking work: run it off the async workers.
    pub fn prepare(&self, config: &Config, env: &(dyn Env + Sync)) {
        let Ok(chain) = config.candidate_chain(None, None, false) else { return };
        for model_ref in &chain.candidates {
            if let Some(provider) = config.providers.get(&model_ref.provider)
                && let Ok(client) = self.transport.client(provider)
            {
                // Credentials too (a secret file is read here, off the runtime, not on the
                // first request); `env` must be the one requests bring.
                client.warm(provider, env);
            }
        }
    }
}

impl<T: Transport> Router<T> {
    /// A router whose calls go through `transport`.
    pub fn with_transport(transport: T) -> Self {
        Router {
            transport,
            tables: Mutex::default(),
            services: Arc::default(),
            learned: Mutex::default(),
            probes: None,
        }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The local services this router starts and stops.
    pub fn services(&self) -> &Arc<LocalServices> {
        &self.services
    }

    /// The context window a server reported in an overflow error, if any.
    pub fn learned_context(&self, provider: &str, model: &str) -> Option<u64> {
        self.learned.lock().ok()?.get(&(provider.to_owned(), model.to_owned())).copied()
    }

    /// Current cooldowns (for status pages and metrics).
    pub fn cooldowns(&self) -> Vec<CooldownView> {
        self.tables().health.views(Instant::now())
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // The tables stay consistent whatever a panicking holder did: the policy's updates
        // never panic halfway (no indexing out of range, no unwrap).
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `chain`: each candidate in order (skipping those cooling down), failing over on
    /// failover-eligible errors before anything was produced; the whole chain again (with
    /// backoff) when every candidate was only overloaded. `params_for` gives the merged params
    /// of a candidate. The driver of [`policy`]: it carries out each decision (a call, a
    /// sleep, a notice) and reports what happened.
    pub async fn run(
        &self,
        config: &Config,
        chain: &Chain,
        prompt: &Prompt,
        params_for: &(dyn Fn(&ModelRef) -> Option<Map<String, Value>> + Sync),
        env: &(dyn Env + Sync),
        options: RunOptions<'_>,
    ) -> Result<Answer, Failure> {
        // `models.routing` was read once, with its variables, when the config was loaded.
        let skip = config
            .routing
            .fallback_skip_ttl
            .zip(options.session)
            .map(|(ttl, session)| (session.to_owned(), ttl));
        // The requested model and the configured primary are never skipped by the skip cache.
        let default_primary = skip
            .as_ref()
            .and_then(|_| config.candidate_chain(None, None, false).ok())
            .and_then(|c| c.candidates.into_iter().next());
        let resolved: Vec<_> =
            chain.candidates.iter().map(|r| config.resolve_model_ref(r)).collect();
        let keys: Vec<Vec<SecretString>> = resolved
            .iter()
            .map(|r| r.as_ref().map(|r| secret_keys(r.provider, env)).unwrap_or_default())
            .collect();
        let candidates = chain
            .candidates
            .iter()
            .zip(&resolved)
            .zip(&keys)
            .enumerate()
            .map(|(idx, ((model_ref, resolved), keys))| Candidate {
                model_ref: model_ref.clone(),
                ids: match resolved {
                    Ok(r) => Ok((r.provider.id.clone(), r.model.id.clone())),
                    Err(e) => Err(UpstreamError::new(ErrorClass::ModelNotFound, e.to_string())),
                },
                credentials: keys.len().max(1),
                loading_wait: resolved
                    .as_ref()
                    .ok()
                    .and_then(|r| r.provider.timeout)
                    .unwrap_or(LOADING_WAIT),
                protected: idx == 0 || default_primary.as_ref() == Some(model_ref),
            })
            .collect();
        let settings = Settings {
            deadline: options.deadline,
            overload_retries: options.overload_retries,
            overload_base: options.overload_base,
            overload_notice_after: options
                .overload_notice_after
                .unwrap_or(config.routing.overload_notice_after),
            retry_wait_cap: config.routing.retry_max_wait,
            skip,
        };
        let mut policy = Policy::new(candidates, settings, Instant::now());
        // The lease of the candidate being tried: a `localService` runs while it is held.
        let mut lease: Option<(usize, crate::local_service::Lease)> = None;
        loop {
            let decision = policy.next(&mut self.tables(), Instant::now());
            let (candidate, credential) = match decision {
                Decision::Send { candidate, credential } => (candidate, credential),
                Decision::Wait(until) => {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                Decision::Notice(notice) => {
                    if let Some(notify) = options.on_notice {
                        notify(notice);
                    }
                    continue;
                }
                Decision::Fail(failure) => return Err(failure),
            };
            let (Some(Ok(target)), Some(model_ref)) =
                (resolved.get(candidate), chain.candidates.get(candidate))
            else {
                let error = UpstreamError::new(ErrorClass::ModelNotFound, "no such candidate");
                policy.report(Outcome::NotSent(error), &mut self.tables(), Instant::now());
                continue;
            };
            let (provider, model) = (target.provider, target.model.as_ref());
            if lease.as_ref().is_none_or(|(idx, _)| *idx != candidate) {
                lease = None;
                match self.services.acquire(provider).await {
                    Ok(l) => lease = Some((candidate, l)),
                    Err(error) => {
                        policy.report(Outcome::NotSent(error), &mut self.tables(), Instant::now());
                        continue;
                    }
                }
            }
            let params = params_for(model_ref);
            let served_max = self
                .probes
                .as_ref()
                .and_then(|p| p.cached(provider))
                .and_then(|probe| probe.find(&model.id).and_then(|m| m.max_context_window));
            let target = Target { provider, model, params: params.as_ref(), served_max };
            let key = keys.get(candidate).and_then(|k| k.get(credential));
            let on_progress = options.on_progress.map(|f| (f, model_ref));
            match self.first_event(&target, prompt, env, key, options.deadline, on_progress).await {
                Ok((held, first, stream)) => {
                    let (attempts, mut notices) =
                        policy.answered(&mut self.tables(), Instant::now());
                    // What the thinking level in force became on this server (`thinking.rs`).
                    let thinking = crate::thinking::plan_for(prompt, &target);
                    notices.extend(thinking.notice);
                    let hide_reasoning = thinking.hide_reasoning;
                    let lease = lease.take();
                    // Progress after the answer began says nothing a client needs.
                    let rest =
                        stream.filter(|e| futures::future::ready(!matches!(e, Event::Progress(_))));
                    let events = futures::stream::iter(held)
                        .chain(futures::stream::once(async move { first }))
                        .chain(rest)
                        .filter(move |event| {
                            // Thinking off: reasoning a server sends anyway is not relayed.
                            let hidden = hide_reasoning
                                && matches!(
                                    event,
                                    Event::ReasoningDelta(_) | Event::ReasoningSignature(_)
                                );
                            std::future::ready(!hidden)
                        })
                        .map(move |event| {
                            let _held = &lease;
                            event
                        })
                        .boxed();
                    return Ok(Answer {
                        model_ref: crate::model_ref_of(provider, model),
                        attempts,
                        notices,
                        events,
                    });
                }
                Err(error) => {
                    self.learn(provider, model, &error);
                    policy.report(Outcome::Failed(error), &mut self.tables(), Instant::now());
                }
            }
        }
    }

    /// One call, up to its first event: the events before the answer begins (reasoning), the
    /// first event of the answer, and the rest of the stream. Reasoning is held until the
    /// answer itself begins (text, a tool call, the finish): an answer that is reasoning only
    /// fails over like an empty one, before anything was relayed. Progress reports go to
    /// `on_progress` and are not the answer. The run's deadline bounds the call and every wait
    /// for an event.
    async fn first_event(
        &self,
        target: &Target<'_>,
        prompt: &Prompt,
        env: &(dyn Env + Sync),
        key: Option<&SecretString>,
        deadline: Option<Instant>,
        on_progress: Option<(OnProgress<'_>, &ModelRef)>,
    ) -> Result<(Vec<Event>, Event, EventStream), UpstreamError> {
        let budget = || UpstreamError::new(ErrorClass::Timeout, "the run's time budget ran out");
        let mut stream = within(deadline, self.transport.send(target, prompt, env, key))
            .await
            .unwrap_or_else(|| Err(budget()))?;
        let mut held = Vec::new();
        loop {
            match within(deadline, stream.next())
                .await
                .unwrap_or_else(|| Some(Event::Error(budget())))
            {
                Some(event) if is_reasoning(&event) => held.push(event),
                Some(Event::Progress(progress)) => {
                    if let Some((report, model_ref)) = on_progress {
                        report(model_ref, &progress);
                    }
                }
                Some(Event::Error(error)) => return Err(error),
                Some(first) => return Ok((held, first, stream)),
                None if !held.is_empty() => {
                    return Err(UpstreamError::new(
                        ErrorClass::EmptyResponse,
                        "the model produced reasoning but no answer",
                    ));
                }
                None => {
                    return Err(UpstreamError::new(
                        ErrorClass::EmptyResponse,
                        "the upstream sent nothing",
                    ));
                }
            }
        }
    }

    /// What a failure teaches beyond the health table: a local server that refused the
    /// connection is restarted on next use; an overflow names the server's context window.
    fn learn(
        &self,
        provider: &hearth_config::Provider,
        model: &hearth_config::Model,
        error: &UpstreamError,
    ) {
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
    }
}

/// `future`, unless `deadline` passes first (`None`).
async fn within<F: std::future::Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, future).await.ok(),
        None => Some(future.await),
    }
}
