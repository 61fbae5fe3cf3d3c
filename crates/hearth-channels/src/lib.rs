//! Chat channels: where people talk to their agent (docs/channels.md).
//!
//! A [`Channel`] receives inbound messages and sends final text; everything between (who may
//! talk, pairing, session keys, the agent turn, cleaning and chunking the reply, retrying a
//! send) is the dispatcher's, the same for every channel.
//!
//! Delivery contract, both ways:
//! - **Inbound**: a channel advances its own cursor (Matrix `since`, Telegram `offset`) only
//!   after [`Inbox::deliver`] returned `Ok`, which happens once the dispatcher has durably
//!   recorded the message; the dispatcher drops a message id it has seen, so a replay after a
//!   crash between the two is harmless. Nothing inbound is lost, nothing is answered twice.
//! - **Outbound**: [`Channel::send`] gets a `key` that is the same on every retry of the same
//!   piece of a reply (Matrix uses it as the transaction id), so a retried send never posts twice
//!   where the channel can deduplicate.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

pub mod access;
pub mod chunk;
pub mod dispatch;
pub mod journal;
pub mod matrix;
pub mod pairing;
pub mod registry;
mod state_file;
pub mod telegram;
pub mod webhook;

pub use dispatch::{ChannelRun, Dispatcher};
pub use registry::Hub;

/// A direct chat with one person, or a group (room) with many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKind {
    Direct,
    Group,
}

/// Where a message came from and where its reply goes: a Matrix room id, a Telegram chat id,
/// a webhook conversation id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conversation {
    pub kind: ConversationKind,
    pub id: String,
}

/// Who sent an inbound message, as the channel names them (Matrix `@user:server`, Telegram's
/// numeric user id, the webhook's `sender` field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub id: String,
    /// A display name, when the channel gives one (never used for access decisions).
    pub name: Option<String>,
}

/// One inbound text message, as the channel received it. `text` is untrusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The channel's own id of the message (Matrix event id, `<chat>:<message_id>` on
    /// Telegram, the webhook's `id`): the dispatcher's deduplication key.
    pub id: String,
    pub conversation: Conversation,
    pub sender: Sender,
    pub text: String,
    /// The bot was mentioned (or replied to): what `requireMention` in a group looks at.
    pub mentioned: bool,
    pub received_at: SystemTime,
}

/// Why a channel stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChannelError {
    /// Misconfigured or refused for good (bad token, homeserver that is not one): the restart
    /// ladder does not retry it.
    #[error("{0}")]
    Fatal(String),
    /// Went away (network, server down): the restart ladder backs off and retries.
    #[error("{0}")]
    Transient(String),
    /// The dispatcher is gone (shutdown).
    #[error("the gateway is shutting down")]
    Closed,
}

/// Why one send failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth retrying with the same key (network, 5xx, 429 with its wait).
    #[error("{message}")]
    Retry { message: String, after: Option<std::time::Duration> },
    /// Not worth retrying (the room is gone, the bot was kicked, 4xx).
    #[error("{0}")]
    Fatal(String),
}

/// Set to `true` when the channel must stop.
pub type Stop = watch::Receiver<bool>;

/// What the dispatcher hands a channel to pass inbound messages on.
#[derive(Debug, Clone)]
pub struct Inbox {
    tx: mpsc::Sender<(Inbound, oneshot::Sender<()>)>,
}

/// The dispatcher's end of an [`Inbox`]: each message comes with the acknowledgement to send
/// once it is durably recorded.
#[derive(Debug)]
pub struct InboxReceiver {
    rx: mpsc::Receiver<(Inbound, oneshot::Sender<()>)>,
}

/// A bounded inbox: a channel that delivers faster than the dispatcher records waits.
pub fn inbox(capacity: usize) -> (Inbox, InboxReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Inbox { tx }, InboxReceiver { rx })
}

impl Inbox {
    /// Hands one message to the dispatcher; returns once it is durably recorded (then the
    /// channel may advance its cursor past it).
    pub async fn deliver(&self, message: Inbound) -> Result<(), ChannelError> {
        let (ack, acked) = oneshot::channel();
        self.tx.send((message, ack)).await.map_err(|_| ChannelError::Closed)?;
        acked.await.map_err(|_| ChannelError::Closed)
    }
}

impl InboxReceiver {
    /// The next message and its acknowledgement; `None` once every [`Inbox`] is dropped.
    pub async fn recv(&mut self) -> Option<(Inbound, oneshot::Sender<()>)> {
        self.rx.recv().await
    }
}

/// What `hearth channels status`, `/ready` and `/metrics` report of one channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthSnapshot {
    pub connected: bool,
    pub last_inbound: Option<SystemTime>,
    pub last_outbound: Option<SystemTime>,
    /// The last error, worded for the user (never a token).
    pub last_error: Option<String>,
    pub inbound_total: u64,
    pub outbound_total: u64,
    pub send_failures_total: u64,
    pub restarts: u32,
    /// The restart ladder gave up.
    pub gave_up: bool,
}

/// A channel's shared health record (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<HealthSnapshot>>);

impl Health {
    pub fn snapshot(&self) -> HealthSnapshot {
        self.0.lock().map(|h| h.clone()).unwrap_or_default()
    }
    pub fn update(&self, f: impl FnOnce(&mut HealthSnapshot)) {
        if let Ok(mut h) = self.0.lock() {
            f(&mut h);
        }
    }
}

/// A secret string (token, password, signing key): never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One chat channel (one account of it).
pub trait Channel: Send + Sync + fmt::Debug {
    /// `matrix`, `telegram`, `webhook`: the `channels.<name>` key and the session key part.
    fn name(&self) -> &'static str;
    /// The account id (`default` unless configured).
    fn account(&self) -> &str;
    /// The most characters one outbound message may carry (the dispatcher chunks to it).
    fn text_limit(&self) -> usize;
    /// Receives until `stop` turns `true` (then `Ok`) or a connection problem it cannot ride
    /// out itself: each message goes to `inbox`, and `health` says what happened. Transient
    /// errors inside (one failed long poll) are retried here with backoff; the dispatcher's
    /// restart ladder handles what `run` returns.
    fn run(
        &self,
        inbox: Inbox,
        health: Health,
        stop: Stop,
    ) -> BoxFuture<'_, Result<(), ChannelError>>;
    /// Sends one message of final text to `to`. `key` is the same on every retry of the same
    /// piece (a transaction id where the channel has one).
    fn send<'a>(
        &'a self,
        to: &'a Conversation,
        text: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>>;
    /// Shows (or stops showing) that a reply is being written, where the channel can.
    fn typing<'a>(
        &'a self,
        to: &'a Conversation,
        on: bool,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        let _ = (to, on);
        Box::pin(async { Ok(()) })
    }
}
