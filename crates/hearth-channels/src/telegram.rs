//! Telegram (Bot API): `getMe` at start, `getUpdates` long polling, `sendMessage` and
//! `sendChatAction` (docs/channels.md, "Telegram").
//!
//! Invariants:
//! - **Nothing inbound lost, nothing twice.** The `offset` cursor is written to `state_dir`
//!   (atomically: a temporary file, fsync, rename) only after every update of a batch was
//!   acknowledged by [`Inbox::deliver`]; a restart resumes from it, an update below it is
//!   never delivered again, and a crash between the two only replays updates whose ids the
//!   dispatcher has already seen.
//! - **A send with a definite answer is never repeated.** The Bot API has no idempotency key,
//!   so only failures without an answer (connect refused, a dropped connection, a timeout)
//!   and `5xx`/`429` are worth a retry; every other answer is final.
//! - **The bot token never leaves.** It is in every request's URL path, so no error, log line
//!   or `Debug` output carries a URL: reqwest errors are stripped of theirs, and every text
//!   that came from the network is masked by the token's value before it is kept.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{
    Channel, ChannelError, Conversation, ConversationKind, Health, Inbound, Inbox, Secret,
    SendError, Sender, Stop,
};

#[cfg(test)]
mod tests;

/// Where the Bot API lives unless `apiRoot` says otherwise.
pub const DEFAULT_API_ROOT: &str = "https://api.telegram.org";
/// The most characters one `sendMessage` may carry (the Bot API's "1-4096 characters").
pub const TEXT_LIMIT: usize = 4096;
/// The environment variable the default account's token falls back to.
pub const ENV_BOT_TOKEN: &str = "TELEGRAM_BOT_TOKEN";

pub const METHOD_GET_ME: &str = "getMe";
pub const METHOD_GET_UPDATES: &str = "getUpdates";
pub const METHOD_SEND_MESSAGE: &str = "sendMessage";
pub const METHOD_SEND_CHAT_ACTION: &str = "sendChatAction";
const ACTION_TYPING: &str = "typing";
const UPDATE_MESSAGE: &str = "message";
const CHAT_PRIVATE: &str = "private";
const CHAT_GROUP: &str = "group";
const CHAT_SUPERGROUP: &str = "supergroup";
const ENTITY_MENTION: &str = "mention";
const ENTITY_TEXT_MENTION: &str = "text_mention";
const ENTITY_BOT_COMMAND: &str = "bot_command";

/// The long poll's `timeout` (seconds): the Bot API holds the request this long when idle.
const POLL_TIMEOUT_SECS: u64 = 30;
/// A long poll's HTTP deadline: the poll's own time plus room for a slow answer.
const POLL_DEADLINE: Duration = Duration::from_secs(POLL_TIMEOUT_SECS + 15);
/// Every other call's HTTP deadline.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Updates per poll (the Bot API's maximum).
const POLL_LIMIT: u32 = 100;
/// The most bytes of one answer read: a batch of 100 updates fits many times over.
const MAX_POLL_ANSWER_BYTES: usize = 16 << 20;
const MAX_CALL_ANSWER_BYTES: usize = 1 << 20;
/// The most characters of inbound text kept: Telegram's own limit, so anything longer is not
/// from Telegram and is cut.
const MAX_INBOUND_CHARS: usize = TEXT_LIMIT;
/// The most characters of a server's error description kept in an error.
const MAX_DESCRIPTION_CHARS: usize = 300;
/// Poll backoff: 1 s, doubling, at most 30 s.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest `retry_after` honored while polling (a hostile answer cannot park the channel).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The cursor file in `state_dir`.
const OFFSET_FILE: &str = "offset.json";
/// Message fields that make a message something other than text (logged when skipped).
const MEDIA_KINDS: &[&str] = &[
    "photo",
    "sticker",
    "animation",
    "audio",
    "document",
    "video",
    "video_note",
    "voice",
    "contact",
    "dice",
    "game",
    "poll",
    "venue",
    "location",
    "story",
];

/// One Telegram bot, resolved from `channels.telegram` (`botToken`, else `TELEGRAM_BOT_TOKEN`
/// for the default account).
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub account: String,
    pub bot_token: Secret,
    /// `https://api.telegram.org` unless configured (`apiRoot`, hearth's key: a local Bot API
    /// server, or the tests' server).
    pub api_root: String,
    /// The bot's @username without `@`, for mention detection; learned from `getMe` when `None`.
    pub username: Option<String>,
    /// Where the channel keeps its cursor (`offset`): a folder of its own.
    pub state_dir: PathBuf,
}

/// The Telegram channel of one bot.
pub struct Telegram {
    account: String,
    token: Secret,
    /// Without a trailing `/`.
    api_root: String,
    configured_username: Option<String>,
    state_dir: PathBuf,
    http: reqwest::Client,
}

/// The bot's identity, for mention detection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Me {
    id: i64,
    /// Without `@`.
    username: Option<String>,
}

/// Why one Bot API call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallError {
    /// No answer: `connect` when the request never left (refused, unreachable).
    Transport { message: String, connect: bool },
    /// The Bot API answered `ok: false` (or a non-2xx status with its envelope).
    Api { status: u16, description: String, retry_after: Option<u64> },
    /// An answer that is not a Bot API response (an HTML error page, a broken or huge body).
    Malformed { status: u16, message: String },
}

/// What the poll loop does about a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PollFailure {
    Fatal(String),
    /// Retry after the backoff, or at least `wait`.
    Retry {
        message: String,
        wait: Option<Duration>,
    },
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    ok: bool,
    result: Option<T>,
    description: Option<String>,
    parameters: Option<ResponseParameters>,
}

#[derive(Debug, Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: i64,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    message_id: i64,
    from: Option<User>,
    chat: Chat,
    text: Option<String>,
    #[serde(default)]
    entities: Vec<Entity>,
    reply_to_message: Option<Box<RepliedTo>>,
}

#[derive(Debug, Deserialize)]
struct RepliedTo {
    from: Option<User>,
}

#[derive(Debug, Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    length: i64,
    user: Option<User>,
}

/// The cursor as it is kept in `state_dir/offset.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredOffset {
    /// Update ids are per bot: a cursor of another bot (a changed token) is not used.
    bot_id: i64,
    offset: i64,
}

// === impl Telegram ===

impl Telegram {
    /// Checks the settings and builds the HTTP client; nothing is sent until `run`.
    pub fn new(settings: TelegramSettings) -> Result<Telegram, ChannelError> {
        let TelegramSettings { account, bot_token, api_root, username, state_dir } = settings;
        let token = bot_token.0.trim();
        if token.is_empty() {
            return Err(ChannelError::Fatal(format!(
                "channels.telegram.botToken is empty (account {account}): set it, or {ENV_BOT_TOKEN} for the default account"
            )));
        }
        // The token goes into the URL path: anything that would change the path is refused
        // (and never printed).
        if !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-')
        {
            return Err(ChannelError::Fatal(format!(
                "channels.telegram.botToken (account {account}) is not a Bot API token: it looks like 123456:ABC-DEF… (letters, digits, ':', '_', '-')"
            )));
        }
        let api_root = api_root.trim().trim_end_matches('/').to_owned();
        let api_root = if api_root.is_empty() { DEFAULT_API_ROOT.to_owned() } else { api_root };
        let url = reqwest::Url::parse(&api_root).map_err(|e| {
            ChannelError::Fatal(format!("channels.telegram.apiRoot {api_root:?} is not a URL: {e}"))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ChannelError::Fatal(format!(
                "channels.telegram.apiRoot {api_root:?} must be an http:// or https:// URL"
            )));
        }
        hearth_upstream::client::install_crypto();
        let builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            // The token is in the path: a redirect would carry it to another host.
            .redirect(reqwest::redirect::Policy::none());
        // A local Bot API server is never reached through the user's HTTP_PROXY.
        let builder = if is_local(&url) { builder.no_proxy() } else { builder };
        let http = builder.build().map_err(|e| {
            ChannelError::Fatal(format!(
                "cannot build the Telegram HTTP client: {}",
                e.without_url()
            ))
        })?;
        let configured_username =
            username.map(|u| u.trim().trim_start_matches('@').to_owned()).filter(|u| !u.is_empty());
        Ok(Telegram {
            account,
            token: Secret(token.to_owned()),
            api_root,
            configured_username,
            state_dir,
            http,
        })
    }

    /// Masks the token in any text that came from the network: whole, and its secret part
    /// after the `:` on its own (a text may carry it percent-encoded, `%3A` for the `:`).
    fn redact(&self, text: &str) -> String {
        let text = text.replace(&self.token.0, "***");
        match self.token.0.split_once(':') {
            Some((_, secret)) if secret.len() >= 8 => text.replace(secret, "***"),
            _ => text,
        }
    }

    /// One Bot API call: the JSON body out, the `result` back.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        deadline: Duration,
        max_bytes: usize,
    ) -> Result<T, CallError> {
        let url = format!("{}/bot{}/{method}", self.api_root, self.token.0);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .timeout(deadline);
        let mut response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > max_bytes {
                        return Err(CallError::Malformed {
                            status,
                            message: format!(
                                "the answer to {method} is larger than {max_bytes} bytes"
                            ),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport(e)),
            }
        }
        let envelope: Envelope<T> = match serde_json::from_slice(&bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                return Err(CallError::Malformed {
                    status,
                    message: format!(
                        "the answer to {method} (HTTP {status}) is not a Bot API response: {e}"
                    ),
                });
            }
        };
        match envelope {
            Envelope { ok: true, result: Some(result), .. } if (200..300).contains(&status) => {
                Ok(result)
            }
            Envelope { ok: true, .. } if (200..300).contains(&status) => {
                Err(CallError::Malformed {
                    status,
                    message: format!("the answer to {method} has no result"),
                })
            }
            Envelope { description, parameters, .. } => Err(CallError::Api {
                status,
                description: bounded(
                    &self.redact(description.as_deref().unwrap_or("(no description)")),
                ),
                retry_after: parameters.and_then(|p| p.retry_after),
            }),
        }
    }

    /// A reqwest error as text without its URL (which carries the token).
    fn transport(&self, error: reqwest::Error) -> CallError {
        let connect = error.is_connect();
        let what = if connect {
            "cannot connect to the Bot API"
        } else if error.is_timeout() {
            "the Bot API did not answer in time"
        } else {
            "the connection to the Bot API broke"
        };
        let error = error.without_url();
        let mut message = format!("{what} at {}: {error}", self.api_root);
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        CallError::Transport { message: bounded(&self.redact(&message)), connect }
    }

    async fn get_me(&self) -> Result<Me, CallError> {
        let user: User =
            self.call(METHOD_GET_ME, &json!({}), CALL_DEADLINE, MAX_CALL_ANSWER_BYTES).await?;
        Ok(Me { id: user.id, username: user.username })
    }

    async fn get_updates(&self, offset: Option<i64>) -> Result<Vec<Value>, CallError> {
        let mut body = json!({
            "timeout": POLL_TIMEOUT_SECS,
            "limit": POLL_LIMIT,
            "allowed_updates": [UPDATE_MESSAGE],
        });
        if let Some(offset) = offset {
            body["offset"] = json!(offset);
        }
        self.call(METHOD_GET_UPDATES, &body, POLL_DEADLINE, MAX_POLL_ANSWER_BYTES).await
    }

    /// What the poll loop does about a failed `getMe` or `getUpdates`.
    fn poll_failure(&self, error: CallError) -> PollFailure {
        match error {
            CallError::Api { status: 401, .. } => PollFailure::Fatal(format!(
                "Telegram refused the bot token (401 Unauthorized): check channels.telegram.botToken (account {}) or {ENV_BOT_TOKEN}",
                self.account
            )),
            CallError::Api { status: 404, .. } => PollFailure::Fatal(format!(
                "the Bot API answered 404 Not Found: channels.telegram.botToken (account {}) is malformed, or apiRoot {} is not a Bot API server",
                self.account, self.api_root
            )),
            CallError::Api { status, description, retry_after } => PollFailure::Retry {
                message: format!("the Bot API answered {status}: {description}"),
                wait: retry_after.map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
            },
            CallError::Transport { message, .. } | CallError::Malformed { message, .. } => {
                PollFailure::Retry { message, wait: None }
            }
        }
    }

    /// The inbound message of one update, or `None` (logged) when it is not one to deliver.
    fn to_inbound(&self, raw: &Value, me: &Me) -> Option<Inbound> {
        let update = match Update::deserialize(raw) {
            Ok(update) => update,
            Err(e) => {
                tracing::warn!(account = %self.account, error = %e, "Telegram update is malformed, skipped.");
                return None;
            }
        };
        let update_id = update.update_id;
        let Some(message) = update.message else {
            tracing::debug!(account = %self.account, update_id, "Telegram update is not a message, skipped.");
            return None;
        };
        let kind = match message.chat.kind.as_str() {
            CHAT_PRIVATE => ConversationKind::Direct,
            CHAT_GROUP | CHAT_SUPERGROUP => ConversationKind::Group,
            other => {
                tracing::info!(account = %self.account, update_id, chat_type = %other, "Telegram message from a chat type hearth does not answer, skipped.");
                return None;
            }
        };
        let Some(text) = message.text.as_deref() else {
            let media = raw
                .get(UPDATE_MESSAGE)
                .and_then(|m| MEDIA_KINDS.iter().find(|k| m.get(**k).is_some()))
                .copied()
                .unwrap_or("service");
            tracing::info!(account = %self.account, update_id, kind = %media, "Telegram message without text skipped (only text is answered).");
            return None;
        };
        let Some(from) = message.from.as_ref() else {
            tracing::info!(account = %self.account, update_id, "Telegram message without a sender skipped.");
            return None;
        };
        let mentioned = is_mentioned(&message, text, me);
        let text = match text.char_indices().nth(MAX_INBOUND_CHARS) {
            Some((cut, _)) => {
                tracing::warn!(account = %self.account, update_id, "Telegram message longer than {MAX_INBOUND_CHARS} characters cut.");
                &text[..cut]
            }
            None => text,
        };
        let name = match (&from.first_name, &from.last_name) {
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            (Some(first), None) => Some(first.clone()),
            (None, _) => from.username.clone(),
        };
        Some(Inbound {
            id: format!("{}:{}", message.chat.id, message.message_id),
            conversation: Conversation { kind, id: message.chat.id.to_string() },
            sender: Sender { id: from.id.to_string(), name },
            text: text.to_owned(),
            mentioned,
            received_at: SystemTime::now(),
        })
    }

    async fn run_inner(
        &self,
        inbox: Inbox,
        health: Health,
        mut stop: Stop,
    ) -> Result<(), ChannelError> {
        let mut backoff = BACKOFF_FIRST;
        let me = loop {
            let Some(result) = until_stopped(&mut stop, self.get_me()).await else {
                return Ok(());
            };
            match result {
                Ok(me) => break me,
                Err(error) => match self.poll_failure(error) {
                    PollFailure::Fatal(message) => return Err(self.fatal(&health, message)),
                    PollFailure::Retry { message, wait } => {
                        if self
                            .wait_after_failure(&health, &mut stop, &mut backoff, message, wait)
                            .await
                        {
                            return Ok(());
                        }
                    }
                },
            }
        };
        let me = Me { id: me.id, username: self.configured_username.clone().or(me.username) };
        if me.username.is_none() {
            tracing::warn!(account = %self.account, "Telegram bot has no username: group mentions are seen only as text mentions and replies.");
        }
        let mut offset = load_offset(&self.state_dir, me.id).await;
        // The Bot API answered `getMe` with this token: connected, before the first long poll
        // (which may hold for its whole timeout) returns.
        health.update(|h| h.connected = true);
        tracing::info!(account = %self.account, username = ?me.username, offset = ?offset, "Telegram channel polling.");
        loop {
            let Some(result) = until_stopped(&mut stop, self.get_updates(offset)).await else {
                return Ok(());
            };
            let updates = match result {
                Ok(updates) => updates,
                Err(error) => match self.poll_failure(error) {
                    PollFailure::Fatal(message) => return Err(self.fatal(&health, message)),
                    PollFailure::Retry { message, wait } => {
                        if self
                            .wait_after_failure(&health, &mut stop, &mut backoff, message, wait)
                            .await
                        {
                            return Ok(());
                        }
                        continue;
                    }
                },
            };
            backoff = BACKOFF_FIRST;
            health.update(|h| h.connected = true);
            let mut next = offset;
            let mut outcome = Ok(());
            for raw in &updates {
                let Some(update_id) = raw.get("update_id").and_then(Value::as_i64) else {
                    tracing::warn!(account = %self.account, "Telegram update without an update_id skipped.");
                    continue;
                };
                // Below the cursor: delivered before (a server that repeats itself).
                if offset.is_some_and(|offset| update_id < offset) {
                    continue;
                }
                if let Some(inbound) = self.to_inbound(raw, &me) {
                    match until_stopped(&mut stop, inbox.deliver(inbound)).await {
                        None => {
                            outcome = Err(None);
                            break;
                        }
                        Some(Err(e)) => {
                            outcome = Err(Some(e));
                            break;
                        }
                        Some(Ok(())) => health.update(|h| {
                            h.inbound_total += 1;
                            h.last_inbound = Some(SystemTime::now());
                        }),
                    }
                }
                let after = update_id.saturating_add(1);
                next = Some(next.map_or(after, |n| n.max(after)));
            }
            // Everything up to `next` was acknowledged (or skipped): the cursor may move.
            if next != offset
                && let Some(value) = next
            {
                if let Err(e) =
                    store_offset(&self.state_dir, StoredOffset { bot_id: me.id, offset: value })
                        .await
                {
                    tracing::warn!(account = %self.account, error = %e, "Telegram offset not written; a restart replays updates the dispatcher has seen.");
                    health.update(|h| {
                        h.last_error = Some(format!("cannot write the Telegram offset: {e}"))
                    });
                }
                offset = next;
            }
            match outcome {
                Ok(()) => {}
                Err(None) => return Ok(()),
                Err(Some(e)) => return Err(e),
            }
        }
    }

    fn fatal(&self, health: &Health, message: String) -> ChannelError {
        tracing::error!(account = %self.account, error = %message, "Telegram channel stopped.");
        health.update(|h| {
            h.connected = false;
            h.last_error = Some(message.clone());
        });
        ChannelError::Fatal(message)
    }

    /// Records a failed poll and waits out the backoff; `true` when stopped meanwhile.
    async fn wait_after_failure(
        &self,
        health: &Health,
        stop: &mut Stop,
        backoff: &mut Duration,
        message: String,
        wait: Option<Duration>,
    ) -> bool {
        let delay = wait.map_or(*backoff, |w| w.max(*backoff));
        tracing::warn!(account = %self.account, error = %message, retry_in_ms = delay.as_millis() as u64, "Telegram poll failed, retrying.");
        health.update(|h| {
            h.connected = false;
            h.last_error = Some(message);
        });
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
        until_stopped(stop, tokio::time::sleep(delay)).await.is_none()
    }

    /// Maps a failed send: only failures without an answer, `5xx` and `429` are retried.
    fn send_failure(&self, method: &str, error: CallError) -> SendError {
        match error {
            CallError::Transport { message, .. } => SendError::Retry { message, after: None },
            CallError::Api { status: 429, description, retry_after } => SendError::Retry {
                message: format!("Telegram is rate limiting {method}: {description}"),
                after: retry_after.map(Duration::from_secs),
            },
            CallError::Api { status, description, .. } if status >= 500 => SendError::Retry {
                message: format!("the Bot API answered {method} with {status}: {description}"),
                after: None,
            },
            CallError::Api { status: 401, .. } => SendError::Fatal(format!(
                "Telegram refused the bot token (401 Unauthorized): check channels.telegram.botToken (account {})",
                self.account
            )),
            CallError::Api { status, description, .. } => {
                SendError::Fatal(format!("Telegram refused {method} ({status}): {description}"))
            }
            CallError::Malformed { status, message } if status >= 500 => {
                SendError::Retry { message, after: None }
            }
            CallError::Malformed { status, message } if (200..300).contains(&status) => {
                SendError::Fatal(format!("{message} (not retried: it may have been posted)"))
            }
            CallError::Malformed { message, .. } => SendError::Fatal(message),
        }
    }
}

impl fmt::Debug for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telegram")
            .field("account", &self.account)
            .field("api_root", &self.api_root)
            .field("username", &self.configured_username)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn account(&self) -> &str {
        &self.account
    }

    fn text_limit(&self) -> usize {
        TEXT_LIMIT
    }

    fn run(
        &self,
        inbox: Inbox,
        health: Health,
        stop: Stop,
    ) -> BoxFuture<'_, Result<(), ChannelError>> {
        Box::pin(async move {
            let result = self.run_inner(inbox, health.clone(), stop).await;
            health.update(|h| h.connected = false);
            result
        })
    }

    fn send<'a>(
        &'a self,
        to: &'a Conversation,
        text: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            // Telegram has no idempotency key; `key` only names the piece in logs.
            let body = json!({ "chat_id": chat_id(&to.id), "text": text });
            match self
                .call::<serde::de::IgnoredAny>(
                    METHOD_SEND_MESSAGE,
                    &body,
                    CALL_DEADLINE,
                    MAX_CALL_ANSWER_BYTES,
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(error) => {
                    let error = self.send_failure(METHOD_SEND_MESSAGE, error);
                    tracing::warn!(account = %self.account, key = %key, error = %error, "Telegram send failed.");
                    Err(error)
                }
            }
        })
    }

    fn typing<'a>(
        &'a self,
        to: &'a Conversation,
        on: bool,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            // Telegram shows the action for about 5 s and clears it when the bot's message
            // arrives: there is nothing to send to stop it.
            if !on {
                return Ok(());
            }
            let body = json!({ "chat_id": chat_id(&to.id), "action": ACTION_TYPING });
            self.call::<serde::de::IgnoredAny>(
                METHOD_SEND_CHAT_ACTION,
                &body,
                CALL_DEADLINE,
                MAX_CALL_ANSWER_BYTES,
            )
            .await
            .map(|_| ())
            .map_err(|error| self.send_failure(METHOD_SEND_CHAT_ACTION, error))
        })
    }
}

// === helpers ===

/// A loopback or private-network host (a local Bot API server).
fn is_local(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// A conversation id as `chat_id`: a number when it is one (every chat hearth answers).
fn chat_id(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// The bot was addressed: a `mention` of its @username, a `text_mention` of it, a command
/// addressed to it (`/start@bot`), or a reply to one of its messages.
fn is_mentioned(message: &Message, text: &str, me: &Me) -> bool {
    if message
        .reply_to_message
        .as_ref()
        .and_then(|r| r.from.as_ref())
        .is_some_and(|u| u.id == me.id)
    {
        return true;
    }
    let units: Vec<u16> = text.encode_utf16().collect();
    message.entities.iter().any(|entity| match entity.kind.as_str() {
        ENTITY_TEXT_MENTION => entity.user.as_ref().is_some_and(|u| u.id == me.id),
        ENTITY_MENTION | ENTITY_BOT_COMMAND => {
            let (Some(username), Some(slice)) = (&me.username, utf16_slice(&units, entity)) else {
                return false;
            };
            let handle = format!("@{username}");
            if entity.kind == ENTITY_MENTION {
                slice.eq_ignore_ascii_case(&handle)
            } else {
                slice.len() > handle.len()
                    && slice
                        .get(slice.len() - handle.len()..)
                        .is_some_and(|end| end.eq_ignore_ascii_case(&handle))
            }
        }
        _ => false,
    })
}

/// The entity's text (offset and length count UTF-16 code units), if it is inside `units`.
fn utf16_slice(units: &[u16], entity: &Entity) -> Option<String> {
    let start = usize::try_from(entity.offset).ok()?;
    let end = start.checked_add(usize::try_from(entity.length).ok()?)?;
    String::from_utf16(units.get(start..end)?).ok()
}

/// Keeps at most [`MAX_DESCRIPTION_CHARS`] characters of a server's text.
fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Runs `future` unless `stop` turns `true` first (`None` then). A dropped stop sender
/// counts as a stop: nobody is left to stop the channel otherwise.
async fn until_stopped<F: Future>(stop: &mut Stop, future: F) -> Option<F::Output> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        output = future => Some(output),
        () = stopped(stop) => None,
    }
}

async fn stopped(stop: &mut Stop) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The stored cursor, when it is this bot's; a missing or unreadable file means none (the
/// Bot API then returns every unconfirmed update, which the dispatcher deduplicates).
async fn load_offset(state_dir: &Path, bot_id: i64) -> Option<i64> {
    let path = state_dir.join(OFFSET_FILE);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Telegram offset unreadable; starting from the Bot API's unconfirmed updates.");
            return None;
        }
    };
    match serde_json::from_slice::<StoredOffset>(&bytes) {
        Ok(stored) if stored.bot_id == bot_id => Some(stored.offset),
        Ok(_) => {
            tracing::info!(path = %path.display(), "Telegram offset belongs to another bot; not used.");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "Telegram offset file is malformed; starting from the Bot API's unconfirmed updates.");
            None
        }
    }
}

/// Writes the cursor atomically: a temporary file, fsync, rename, fsync of the folder.
async fn store_offset(state_dir: &Path, stored: StoredOffset) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
    crate::state_file::write_atomic_off_runtime(&state_dir.join(OFFSET_FILE), &bytes).await
}
