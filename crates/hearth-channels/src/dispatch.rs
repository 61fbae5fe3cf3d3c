//! The dispatcher: what happens between a channel receiving a message and sending the reply,
//! the same for every channel.
//!
//! For each channel account: the restart ladder around [`Channel::run`] (backoff 1 s doubling to
//! 60 s; given up after [`MAX_FAILURES`] failures in a row, which [`Health`] reports), and the
//! loop over its [`InboxReceiver`]: the message id is journaled (on disk) before the channel's
//! acknowledgement, so a replayed id is dropped; then the access policy ([`crate::access`])
//! decides: a stranger under `pairing` gets a code and nothing else, a dropped message gets
//! nothing, an allowed one becomes an agent turn. Turns run one at a time per session (the
//! session key follows `session.dmScope`), their final text is cleaned, chunked to the
//! channel's limit and sent piece by piece with a stable key per piece and retries with
//! exponential backoff, given up after a bounded time with a log line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use hearth_agent::containment::{clean_reply, strip_control_tokens, wrap_untrusted};
use hearth_agent::{Agents, TurnRequest};
use hearth_config::{ChannelAccess, Config, DmScope};
use tokio::sync::Semaphore;

use crate::access::{Decision, decide};
use crate::journal::{Journal, MAX_ID_BYTES};
use crate::pairing::{PairingStore, Request};
use crate::{
    Channel, ChannelError, Conversation, ConversationKind, Health, Inbound, InboxReceiver,
    SendError, Stop, inbox,
};

/// Inbound text larger than this is not processed (the sender gets a short notice).
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// The restart ladder gives up after this many failures in a row.
pub const MAX_FAILURES: u32 = 10;
/// The restart ladder's first and longest wait.
pub const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// Agent turns running at once across all channels.
pub const MAX_CONCURRENT_TURNS: usize = 8;
/// Messages a channel may hand over before the dispatcher has journaled the earlier ones.
const INBOX_CAPACITY: usize = 64;
/// How often the typing indicator is renewed while a turn runs (Telegram's lasts about 5 s; a
/// local model may take a minute).
pub const TYPING_EVERY: Duration = Duration::from_secs(4);

/// How one piece of a reply is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// No retry starts after this long since the first attempt.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
            give_up_after: Duration::from_secs(120),
        }
    }
}

/// One channel account, ready to run.
#[derive(Debug, Clone)]
pub struct ChannelRun {
    pub channel: Arc<dyn Channel>,
    pub access: ChannelAccess,
    /// `textChunkLimit` (never above the channel's own limit).
    pub text_chunk_limit: Option<usize>,
    pub health: Health,
}

/// Runs agent turns for every channel.
pub struct Dispatcher {
    agents: Agents,
    config: Arc<Config>,
    state_dir: PathBuf,
    turns: Arc<Semaphore>,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("state_dir", &self.state_dir).finish_non_exhaustive()
    }
}

/// The session key of a message (spec §12.1): groups
/// `agent:<id>:<channel>:group:<conversation>`; direct messages by `session.dmScope`.
pub fn session_key(
    agent: &str,
    scope: DmScope,
    channel: &str,
    account: &str,
    conversation: &Conversation,
    sender: &str,
) -> String {
    match conversation.kind {
        ConversationKind::Group => format!("agent:{agent}:{channel}:group:{}", conversation.id),
        ConversationKind::Direct => match scope {
            DmScope::Main => format!("agent:{agent}:main"),
            DmScope::PerPeer => format!("agent:{agent}:direct:{sender}"),
            DmScope::PerChannelPeer => format!("agent:{agent}:{channel}:direct:{sender}"),
            DmScope::PerAccountChannelPeer => {
                format!("agent:{agent}:{channel}:{account}:direct:{sender}")
            }
        },
    }
}

/// The text a stranger gets under `pairing`.
pub fn pairing_text(channel: &str, account: &str, code: &str) -> String {
    let account_flag =
        if account == "default" { String::new() } else { format!(" --account {account}") };
    format!(
        "Hello! This agent only talks to people its owner approved.\n\
         Your pairing code: {code} (valid for one hour)\n\
         Ask the owner to run: hearth pairing approve {channel} {code}{account_flag}"
    )
}

impl Dispatcher {
    pub fn new(agents: Agents, config: Arc<Config>, state_dir: PathBuf) -> Self {
        Dispatcher {
            agents,
            config,
            state_dir,
            turns: Arc::new(Semaphore::new(MAX_CONCURRENT_TURNS)),
            sessions: Mutex::new(HashMap::new()),
            retry: RetryPolicy::default(),
        }
    }

    /// With another retry policy for sends (tests).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Where the journal of `channel`'s `account` lives.
    pub fn journal_path(&self, channel: &str, account: &str) -> PathBuf {
        self.state_dir.join("channels").join(format!("{channel}-{account}-journal.jsonl"))
    }

    /// Starts one channel account: its restart ladder and its inbound loop, until `stop`.
    pub fn start(self: &Arc<Self>, run: ChannelRun, stop: Stop) -> tokio::task::JoinHandle<()> {
        let dispatcher = Arc::clone(self);
        tokio::spawn(async move {
            let channel = Arc::clone(&run.channel);
            let path = dispatcher.journal_path(channel.name(), channel.account());
            let journal = match Journal::open(&path, SystemTime::now()) {
                Ok(journal) => journal,
                Err(e) => {
                    let message =
                        format!("cannot open the inbound journal {}: {e}", path.display());
                    tracing::error!(channel = channel.name(), account = channel.account(), error = %e, "The channel cannot start: its inbound journal cannot be opened.");
                    run.health.update(|h| {
                        h.gave_up = true;
                        h.last_error = Some(message);
                    });
                    return;
                }
            };
            let (inbox, receiver) = inbox(INBOX_CAPACITY);
            let ladder = tokio::spawn(restart_ladder(
                Arc::clone(&channel),
                inbox,
                run.health.clone(),
                stop.clone(),
                RESTART_BACKOFF,
            ));
            dispatcher.receive(run, receiver, journal, stop).await;
            let _ = ladder.await;
        })
    }

    async fn receive(
        self: &Arc<Self>,
        run: ChannelRun,
        mut receiver: InboxReceiver,
        mut journal: Journal,
        mut stop: Stop,
    ) {
        let channel = Arc::clone(&run.channel);
        let pairing = PairingStore::new(&self.state_dir, channel.name(), channel.account());
        loop {
            let next = tokio::select! {
                next = receiver.recv() => next,
                changed = stop.changed() => {
                    // A dropped stop sender can never say stop: treat it as one.
                    if changed.is_err() || *stop.borrow() { break } else { continue }
                }
            };
            let Some((message, ack)) = next else { break };
            if message.id.len() > MAX_ID_BYTES {
                tracing::warn!(
                    channel = channel.name(),
                    account = channel.account(),
                    "Dropped a message whose id is too long."
                );
                let _ = ack.send(());
                continue;
            }
            // The journal's fsync runs off the runtime: a gateway on one CPU runs a single
            // thread, and a slow disk must not hold every other request while it syncs.
            let id = message.id.clone();
            let recorded = tokio::task::spawn_blocking(move || {
                let recorded = journal.record(&id, SystemTime::now());
                (journal, recorded)
            })
            .await;
            let Ok((back, recorded)) = recorded else { break };
            journal = back;
            match recorded {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(
                        channel = channel.name(),
                        account = channel.account(),
                        "Dropped a message id seen before (a replay)."
                    );
                    let _ = ack.send(());
                    continue;
                }
                Err(e) => {
                    // Not acknowledged: the channel keeps its cursor and delivers it again.
                    tracing::error!(channel = channel.name(), account = channel.account(), error = %e, "Cannot journal an inbound message; it is not acknowledged.");
                    continue;
                }
            }
            let _ = ack.send(());
            run.health.update(|h| {
                h.inbound_total += 1;
                h.last_inbound = Some(SystemTime::now());
            });
            let decision = decide(&run.access, &message, |sender| {
                pairing.is_approved(sender).unwrap_or_else(|e| {
                    tracing::warn!(channel = channel.name(), account = channel.account(), error = %e, "Cannot read the pairing approvals; treating the sender as unknown.");
                    false
                })
            });
            match decision {
                Decision::Drop(reason) => {
                    tracing::debug!(
                        channel = channel.name(),
                        account = channel.account(),
                        reason = reason.as_str(),
                        "Dropped an inbound message."
                    );
                }
                Decision::Pair => {
                    // Writes the pairing file (fsync): off the runtime, as the journal.
                    let dispatcher = Arc::clone(self);
                    let (run, pairing) = (run.clone(), pairing.clone());
                    let done = tokio::task::spawn_blocking(move || {
                        dispatcher.offer_pairing(&run, &pairing, message);
                    });
                    let _ = done.await;
                }
                Decision::Process => {
                    let dispatcher = Arc::clone(self);
                    let run = run.clone();
                    tokio::spawn(async move { dispatcher.process(&run, message).await });
                }
            }
        }
    }

    fn offer_pairing(self: &Arc<Self>, run: &ChannelRun, pairing: &PairingStore, message: Inbound) {
        let channel = &run.channel;
        match pairing.request(&message.sender.id, message.sender.name.as_deref(), SystemTime::now())
        {
            Ok(Request::NewCode(code)) => {
                tracing::info!(
                    channel = channel.name(),
                    account = channel.account(),
                    "An unknown sender asked to talk; a pairing code was sent (hearth pairing list {}).",
                    channel.name()
                );
                let text = pairing_text(channel.name(), channel.account(), &code);
                let (run, retry) = (run.clone(), self.retry);
                tokio::spawn(async move {
                    let key = format!("{}:pairing", message.id);
                    deliver(&run, &message.conversation, &text, &key, retry).await;
                });
            }
            Ok(Request::AlreadyPending) => {
                tracing::debug!(
                    channel = channel.name(),
                    account = channel.account(),
                    "An unknown sender with a pending code wrote again; nothing sent."
                );
            }
            Ok(Request::Full) => {
                tracing::info!(
                    channel = channel.name(),
                    account = channel.account(),
                    "An unknown sender wrote while 3 pairing requests are pending; nothing sent."
                );
            }
            Err(e) => {
                tracing::error!(channel = channel.name(), account = channel.account(), error = %e, "Cannot record a pairing request.");
            }
        }
    }

    fn session_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget the locks nobody holds (the map stays as small as the sessions in flight).
        sessions.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(sessions.entry(key.to_owned()).or_default())
    }

    /// One allowed message: its turn, then the reply.
    async fn process(&self, run: &ChannelRun, message: Inbound) {
        let channel = &run.channel;
        let notice_key = format!("{}:notice", message.id);
        if message.text.len() > MAX_INBOUND_BYTES {
            let text = format!(
                "hearth: that message is larger than {} KiB and was not processed.",
                MAX_INBOUND_BYTES / 1024
            );
            deliver(run, &message.conversation, &text, &notice_key, self.retry).await;
            return;
        }
        let text = strip_control_tokens(&message.text);
        if text.trim().is_empty() {
            deliver(
                run,
                &message.conversation,
                "hearth reads text messages only; that one was not processed.",
                &notice_key,
                self.retry,
            )
            .await;
            return;
        }
        let agent = self.config.default_agent().map_or_else(|| "main".to_owned(), |a| a.id.clone());
        let key = session_key(
            &agent,
            self.config.session.dm_scope,
            channel.name(),
            channel.account(),
            &message.conversation,
            &message.sender.id,
        );
        let lock = self.session_lock(&key);
        let _session = lock.lock().await;
        let Ok(_turn_slot) = Arc::clone(&self.turns).acquire_owned().await else { return };
        let typing = {
            let (channel, to) = (Arc::clone(channel), message.conversation.clone());
            tokio::spawn(async move {
                loop {
                    let _ = channel.typing(&to, true).await;
                    tokio::time::sleep(TYPING_EVERY).await;
                }
            })
        };
        let source = format!("{} message from {}", channel.name(), message.sender.id);
        let request = TurnRequest {
            session_key: Some(key),
            message: wrap_untrusted(&message.id, &source, &text),
            timeout: hearth_agent::run_timeout(&self.config, None),
            ..TurnRequest::default()
        };
        let outcome = match self.agents.start(Arc::clone(&self.config), request).await {
            Ok(turn) => {
                let notices: Vec<String> = turn
                    .notices
                    .iter()
                    .filter(|n| n.starts_with("↪️ Model Fallback"))
                    .cloned()
                    .collect();
                let collected = hearth_agent::collect(turn.events).await;
                Ok((notices, collected))
            }
            Err(e) => Err(e),
        };
        typing.abort();
        let _ = channel.typing(&message.conversation, false).await;
        let (notices, collected) = match outcome {
            Ok(pair) => pair,
            Err(e) => {
                let error = hearth_config::redact::redact(&e.to_string()).into_owned();
                tracing::warn!(channel = channel.name(), account = channel.account(), error = %error, "The agent turn for a channel message failed.");
                deliver(run, &message.conversation, "hearth: no model could answer this message right now (the gateway log says why).", &notice_key, self.retry).await;
                return;
            }
        };
        if !notices.is_empty() {
            deliver(run, &message.conversation, &notices.join("\n"), &notice_key, self.retry).await;
        }
        let reply = clean_reply(&collected.text);
        if reply.is_empty() {
            if let Some(error) = &collected.error {
                let error = hearth_config::redact::redact(&error.message).into_owned();
                tracing::warn!(channel = channel.name(), account = channel.account(), error = %error, "The agent turn ended without an answer.");
                deliver(
                    run,
                    &message.conversation,
                    "hearth: the model stopped before answering (the gateway log says why).",
                    &notice_key,
                    self.retry,
                )
                .await;
            }
            return;
        }
        let limit =
            run.text_chunk_limit.map_or(channel.text_limit(), |l| l.min(channel.text_limit()));
        for (idx, piece) in crate::chunk::chunk(&reply, limit).iter().enumerate() {
            let key = format!("{}:{idx}", message.id);
            if !deliver(run, &message.conversation, piece, &key, self.retry).await {
                break;
            }
        }
    }
}

/// Sends one piece with retries; whether it was delivered.
pub async fn deliver(
    run: &ChannelRun,
    to: &Conversation,
    text: &str,
    key: &str,
    retry: RetryPolicy,
) -> bool {
    let channel = &run.channel;
    let started = Instant::now();
    let mut wait = retry.first_wait;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match channel.send(to, text, key).await {
            Ok(()) => {
                run.health.update(|h| {
                    h.outbound_total += 1;
                    h.last_outbound = Some(SystemTime::now());
                });
                return true;
            }
            Err(SendError::Fatal(message)) => {
                let message = hearth_config::redact::redact(&message).into_owned();
                tracing::warn!(channel = channel.name(), account = channel.account(), attempts, error = %message, "A reply could not be delivered (not retried).");
                run.health.update(|h| {
                    h.send_failures_total += 1;
                    h.last_error = Some(message);
                });
                return false;
            }
            Err(SendError::Retry { message, after }) => {
                let message = hearth_config::redact::redact(&message).into_owned();
                run.health.update(|h| {
                    h.send_failures_total += 1;
                    h.last_error = Some(message.clone());
                });
                let pause = after.unwrap_or(wait).min(retry.max_wait);
                if started.elapsed() + pause > retry.give_up_after {
                    tracing::warn!(channel = channel.name(), account = channel.account(), attempts, error = %message, "Gave up delivering a reply after {} s.", started.elapsed().as_secs());
                    return false;
                }
                tokio::time::sleep(pause).await;
                wait = (wait * 2).min(retry.max_wait);
            }
        }
    }
}

/// Runs `channel` until `stop`, restarting it after transient failures: waits `backoff.0`
/// doubling to `backoff.1`; gives up after [`MAX_FAILURES`] failures in a row (a run that
/// lasted longer than the longest wait resets the count) or at a fatal error.
pub async fn restart_ladder(
    channel: Arc<dyn Channel>,
    inbox: crate::Inbox,
    health: Health,
    mut stop: Stop,
    backoff: (Duration, Duration),
) {
    let (name, account) = (channel.name(), channel.account().to_owned());
    let mut failures = 0u32;
    let mut wait = backoff.0;
    loop {
        if *stop.borrow() {
            break;
        }
        let started = Instant::now();
        let result = channel.run(inbox.clone(), health.clone(), stop.clone()).await;
        health.update(|h| h.connected = false);
        if *stop.borrow() {
            break;
        }
        let message = match result {
            Err(ChannelError::Closed) => break,
            Err(ChannelError::Fatal(message)) => {
                let message = hearth_config::redact::redact(&message).into_owned();
                tracing::error!(channel = name, account = %account, error = %message, "The channel stopped for good (fix the config and restart the gateway).");
                health.update(|h| {
                    h.gave_up = true;
                    h.last_error = Some(message);
                });
                break;
            }
            Err(ChannelError::Transient(message)) => {
                hearth_config::redact::redact(&message).into_owned()
            }
            Ok(()) => "the channel stopped by itself".to_owned(),
        };
        if started.elapsed() > backoff.1 {
            failures = 0;
            wait = backoff.0;
        }
        failures += 1;
        health.update(|h| {
            h.restarts += 1;
            h.last_error = Some(message.clone());
        });
        if failures >= MAX_FAILURES {
            tracing::error!(channel = name, account = %account, failures, error = %message, "The channel failed too often in a row; giving up.");
            health.update(|h| h.gave_up = true);
            break;
        }
        tracing::warn!(channel = name, account = %account, failures, error = %message, "The channel failed; restarting in {} s.", wait.as_secs_f64());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        wait = (wait * 2).min(backoff.1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn session_keys_follow_the_dm_scope() {
        let dm = Conversation { kind: ConversationKind::Direct, id: "u1".into() };
        let group = Conversation { kind: ConversationKind::Group, id: "g1".into() };
        let key = |scope, c: &Conversation| session_key("main", scope, "webhook", "acct", c, "u1");
        assert_eq!(key(DmScope::Main, &dm), "agent:main:main");
        assert_eq!(key(DmScope::PerPeer, &dm), "agent:main:direct:u1");
        assert_eq!(key(DmScope::PerChannelPeer, &dm), "agent:main:webhook:direct:u1");
        assert_eq!(key(DmScope::PerAccountChannelPeer, &dm), "agent:main:webhook:acct:direct:u1");
        for scope in [DmScope::Main, DmScope::PerPeer, DmScope::PerAccountChannelPeer] {
            assert_eq!(key(scope, &group), "agent:main:webhook:group:g1");
        }
    }

    #[test]
    fn the_pairing_text_names_the_command() {
        let text = pairing_text("webhook", "default", "ABCD2345");
        assert!(
            text.contains("hearth pairing approve webhook ABCD2345") && !text.contains("--account")
        );
        assert!(pairing_text("telegram", "work", "X").contains("--account work"));
    }

    /// A channel whose `run` fails (transiently or for good) and whose `send` fails a set number
    /// of times.
    #[derive(Debug)]
    struct Flaky {
        runs: AtomicU32,
        fatal: bool,
        send_failures: AtomicU32,
        sends: Mutex<Vec<String>>,
    }

    impl Channel for Flaky {
        fn name(&self) -> &'static str {
            "webhook"
        }
        fn account(&self) -> &str {
            "default"
        }
        fn text_limit(&self) -> usize {
            100
        }
        fn run(
            &self,
            _: crate::Inbox,
            _: Health,
            _: Stop,
        ) -> BoxFuture<'_, Result<(), ChannelError>> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let fatal = self.fatal;
            Box::pin(async move {
                if fatal {
                    Err(ChannelError::Fatal("bad token".into()))
                } else {
                    Err(ChannelError::Transient("connection refused".into()))
                }
            })
        }
        fn send<'a>(
            &'a self,
            _: &'a Conversation,
            _: &'a str,
            key: &'a str,
        ) -> BoxFuture<'a, Result<(), SendError>> {
            Box::pin(async move {
                if let Ok(mut s) = self.sends.lock() {
                    s.push(key.to_owned());
                }
                if self.send_failures.load(Ordering::SeqCst) > 0 {
                    self.send_failures.fetch_sub(1, Ordering::SeqCst);
                    return Err(SendError::Retry { message: "500".into(), after: None });
                }
                Ok(())
            })
        }
    }

    fn flaky(fatal: bool, send_failures: u32) -> Arc<Flaky> {
        Arc::new(Flaky {
            runs: AtomicU32::new(0),
            fatal,
            send_failures: AtomicU32::new(send_failures),
            sends: Mutex::default(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_ladder_backs_off_and_gives_up_after_ten_failures() {
        let channel = flaky(false, 0);
        let health = Health::default();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (inbox, _rx) = inbox(1);
        let started = tokio::time::Instant::now();
        restart_ladder(channel.clone(), inbox, health.clone(), stop, RESTART_BACKOFF).await;
        assert_eq!(channel.runs.load(Ordering::SeqCst), MAX_FAILURES);
        let h = health.snapshot();
        assert!(h.gave_up && h.restarts == MAX_FAILURES, "{h:?}");
        assert_eq!(h.last_error.as_deref(), Some("connection refused"));
        // 1 + 2 + 4 + 8 + 16 + 32 + 60 + 60 + 60 s between the ten runs.
        assert_eq!(started.elapsed(), Duration::from_secs(243));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_error_is_not_retried() {
        let channel = flaky(true, 0);
        let health = Health::default();
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let (inbox, _rx) = inbox(1);
        restart_ladder(channel.clone(), inbox, health.clone(), stop, RESTART_BACKOFF).await;
        assert_eq!(channel.runs.load(Ordering::SeqCst), 1);
        assert!(health.snapshot().gave_up);
    }

    #[tokio::test(start_paused = true)]
    async fn sends_are_retried_with_the_same_key_then_given_up() {
        let channel = flaky(false, 2);
        let run = ChannelRun {
            channel: channel.clone(),
            access: ChannelAccess::default(),
            text_chunk_limit: None,
            health: Health::default(),
        };
        let to = Conversation { kind: ConversationKind::Direct, id: "u".into() };
        assert!(deliver(&run, &to, "hi", "m1:0", RetryPolicy::default()).await);
        assert_eq!(
            *channel.sends.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            ["m1:0", "m1:0", "m1:0"]
        );
        let h = run.health.snapshot();
        assert_eq!((h.outbound_total, h.send_failures_total), (1, 2));
        // Always failing: given up within the policy's time.
        let channel = flaky(false, u32::MAX);
        let run = ChannelRun { channel, ..run };
        let started = tokio::time::Instant::now();
        assert!(!deliver(&run, &to, "hi", "m2:0", RetryPolicy::default()).await);
        assert!(started.elapsed() <= RetryPolicy::default().give_up_after);
    }
}
