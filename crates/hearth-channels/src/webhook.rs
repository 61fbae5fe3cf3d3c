//! A generic signed webhook channel: inbound `POST` with an HMAC-SHA256 signature (unsigned,
//! badly signed and replayed requests are refused), outbound `POST` to a configured URL signed
//! the same way. The bridge for anything else (WhatsApp Cloud API bridges, n8n, Home Assistant).
//!
//! The protocol (docs/channels.md, "The webhook protocol"):
//! - Inbound: `POST /channels/webhook/<account>` with a JSON body `{id, sender, conversation?,
//!   kind?: "direct"|"group", text, mentioned?}` and the headers `x-hearth-timestamp` (unix
//!   seconds) and `x-hearth-signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw
//!   body>")>`. 202 once the message is journaled; 401 unsigned, badly signed or outside
//!   `maxSkewSeconds`; 409 an `id` already accepted; 400 a body that is not the JSON above;
//!   413 over [`MAX_BODY_BYTES`].
//! - Outbound: `POST outboundUrl` with `{conversation, text, inReplyTo, key}`, signed the same
//!   way, and `x-hearth-delivery: <key>` (the same on every retry of one piece). 2xx is
//!   delivered; 5xx, 429 and timeouts are retried; other 4xx are given up.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use hmac::{KeyInit, Mac};
use serde::Deserialize;

use crate::{
    Channel, ChannelError, Conversation, ConversationKind, Health, Inbound, Inbox, Secret,
    SendError, Sender, Stop,
};

/// `x-hearth-timestamp`: unix seconds, part of the signed text.
pub const HEADER_TIMESTAMP: &str = "x-hearth-timestamp";
/// `x-hearth-signature: sha256=<hex>`.
pub const HEADER_SIGNATURE: &str = "x-hearth-signature";
/// `x-hearth-delivery`: the stable key of one outbound piece.
pub const HEADER_DELIVERY: &str = "x-hearth-delivery";
const SIGNATURE_PREFIX: &str = "sha256=";
/// Inbound bodies larger than this are refused (413) before they are read further.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The most characters of one outbound message unless `textChunkLimit` says otherwise.
pub const TEXT_LIMIT: usize = 4000;
/// Longest `id`, `sender` and `conversation` accepted.
pub const MAX_ID_CHARS: usize = 256;
/// One outbound POST gets this long.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// An inbound request waits at most this long for the dispatcher to journal it.
const DELIVER_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted ids remembered for the 409 answer (the dispatcher's journal is the durable check).
const RECENT_IDS: usize = 4096;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// One webhook account, resolved from `channels.webhook`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub account: String,
    /// The shared signing secret (both directions).
    pub secret: Secret,
    /// Where replies are POSTed; `None`: inbound only (replies are dropped with a log line).
    pub outbound_url: Option<String>,
    /// How far a request's timestamp may be from now (seconds; replay window).
    pub max_skew_secs: u64,
    pub state_dir: PathBuf,
}

/// `sha256=<hex>` of `"<timestamp>.<body>"` under `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("{SIGNATURE_PREFIX}{}", hex::encode(tag))
}

fn unreachable_mac() -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as KeyInit>::new(&Default::default())
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable_mac());
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Why an inbound request was refused: the HTTP status and a JSON-ready code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Refusal { status, code, message: message.into() }
    }

    /// `{"ok": false, "error": {"code", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"ok": false, "error": {"code": self.code, "message": self.message}})
    }
}

/// Checks the timestamp and signature of a request (constant-time comparison).
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: SystemTime,
    max_skew_secs: u64,
) -> Result<(), Refusal> {
    let Some(timestamp) = timestamp.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(Refusal::new(
            401,
            "missing_timestamp",
            format!("the request has no `{HEADER_TIMESTAMP}` header (unix seconds)"),
        ));
    };
    let Some(signature) = signature.map(str::trim).filter(|s| !s.is_empty()) else {
        return Err(Refusal::new(
            401,
            "missing_signature",
            format!(
                "the request has no `{HEADER_SIGNATURE}` header (sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\">)"
            ),
        ));
    };
    let Ok(sent) = timestamp.parse::<u64>() else {
        return Err(Refusal::new(
            401,
            "bad_timestamp",
            format!("`{HEADER_TIMESTAMP}` must be unix seconds"),
        ));
    };
    let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if now.abs_diff(sent) > max_skew_secs {
        return Err(Refusal::new(
            401,
            "stale_timestamp",
            format!(
                "`{HEADER_TIMESTAMP}` is {} s from the gateway's clock (at most {max_skew_secs} s: maxSkewSeconds)",
                now.abs_diff(sent)
            ),
        ));
    }
    let tag = signature
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| {
            Refusal::new(
                401,
                "bad_signature",
                format!("`{HEADER_SIGNATURE}` must be `sha256=<hex>`"),
            )
        })?;
    mac(secret, timestamp, body).verify_slice(&tag).map_err(|_| {
        Refusal::new(
            401,
            "bad_signature",
            "the signature does not match the body and timestamp (check the shared secret)",
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundBody {
    id: String,
    sender: String,
    #[serde(default)]
    conversation: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    text: String,
    #[serde(default)]
    mentioned: bool,
    /// A display name (never used for access decisions).
    #[serde(default)]
    name: Option<String>,
}

/// Parses a verified body into an [`Inbound`].
pub fn parse(body: &[u8], received_at: SystemTime) -> Result<Inbound, Refusal> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Refusal::new(
            400,
            "not_utf8",
            format!("the body is not UTF-8 (invalid byte at {})", e.valid_up_to()),
        )
    })?;
    let body: InboundBody = serde_json::from_str(text).map_err(|e| {
        Refusal::new(400, "bad_body", format!("the body is not the webhook's JSON: {e}"))
    })?;
    let field = |name: &str, value: &str| -> Result<String, Refusal> {
        let value = value.trim();
        if value.is_empty()
            || value.chars().count() > MAX_ID_CHARS
            || value.chars().any(char::is_control)
        {
            Err(Refusal::new(
                400,
                "bad_body",
                format!("`{name}` must be 1 to {MAX_ID_CHARS} printable characters"),
            ))
        } else {
            Ok(value.to_owned())
        }
    };
    let id = field("id", &body.id)?;
    let sender = field("sender", &body.sender)?;
    let kind = match body.kind.as_deref() {
        None | Some("direct") => ConversationKind::Direct,
        Some("group") => ConversationKind::Group,
        Some(_) => {
            return Err(Refusal::new(400, "bad_body", "`kind` must be \"direct\" or \"group\""));
        }
    };
    let conversation = match (&body.conversation, kind) {
        (Some(c), _) => field("conversation", c)?,
        (None, ConversationKind::Direct) => sender.clone(),
        (None, ConversationKind::Group) => {
            return Err(Refusal::new(400, "bad_body", "a group message needs `conversation`"));
        }
    };
    Ok(Inbound {
        id,
        conversation: Conversation { kind, id: conversation },
        sender: Sender {
            id: sender,
            name: body.name.map(|n| n.chars().take(MAX_ID_CHARS).collect()),
        },
        text: body.text,
        mentioned: body.mentioned,
        received_at,
    })
}

/// Ids accepted lately, oldest first.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Recent {
    fn insert(&mut self, id: &str) -> bool {
        if !self.set.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    fn remove(&mut self, id: &str) {
        self.set.remove(id);
        self.order.retain(|x| x != id);
    }
}

/// One webhook account: the inbound side is fed by the gateway's route ([`Webhook::accept`]).
#[derive(Debug)]
pub struct Webhook {
    settings: WebhookSettings,
    client: reqwest::Client,
    inbox: Mutex<Option<Inbox>>,
    recent: Mutex<Recent>,
    text_limit: usize,
}

impl Webhook {
    /// # Errors
    ///
    /// [`ChannelError::Fatal`] when the secret is empty or the HTTP client cannot be built.
    pub fn new(settings: WebhookSettings) -> Result<Webhook, ChannelError> {
        if settings.secret.0.is_empty() {
            return Err(ChannelError::Fatal("channels.webhook.secret is empty".into()));
        }
        hearth_upstream::client::install_crypto();
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                ChannelError::Fatal(format!("cannot build the webhook's HTTP client: {e}"))
            })?;
        Ok(Webhook {
            settings,
            client,
            inbox: Mutex::new(None),
            recent: Mutex::new(Recent::default()),
            text_limit: TEXT_LIMIT,
        })
    }

    /// With a `textChunkLimit`.
    pub fn with_text_limit(mut self, limit: usize) -> Self {
        self.text_limit = limit.max(1);
        self
    }

    /// One inbound request: verified, parsed, handed to the dispatcher. `Ok` (202) once the
    /// message is journaled.
    pub async fn accept(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<String, Refusal> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Refusal::new(
                413,
                "too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        let now = SystemTime::now();
        verify(
            &self.settings.secret.0,
            timestamp,
            signature,
            body,
            now,
            self.settings.max_skew_secs,
        )?;
        let message = parse(body, now)?;
        let inbox = self.inbox.lock().ok().and_then(|i| i.clone());
        let Some(inbox) = inbox else {
            return Err(Refusal::new(
                503,
                "not_running",
                "the webhook channel is not running; retry shortly",
            ));
        };
        let id = message.id.clone();
        let fresh = self.recent.lock().map(|mut r| r.insert(&id)).unwrap_or(true);
        if !fresh {
            return Err(Refusal::new(
                409,
                "duplicate",
                format!("message `{id}` was accepted before; it is not processed again"),
            ));
        }
        match tokio::time::timeout(DELIVER_TIMEOUT, inbox.deliver(message)).await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(_)) | Err(_) => {
                if let Ok(mut r) = self.recent.lock() {
                    r.remove(&id);
                }
                Err(Refusal::new(
                    503,
                    "busy",
                    "the gateway could not record the message; retry shortly",
                ))
            }
        }
    }
}

impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn account(&self) -> &str {
        &self.settings.account
    }

    fn text_limit(&self) -> usize {
        self.text_limit
    }

    fn run(
        &self,
        inbox: Inbox,
        health: Health,
        mut stop: Stop,
    ) -> BoxFuture<'_, Result<(), ChannelError>> {
        Box::pin(async move {
            if let Ok(mut slot) = self.inbox.lock() {
                *slot = Some(inbox);
            }
            health.update(|h| {
                h.connected = true;
                h.last_error = None;
            });
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
            if let Ok(mut slot) = self.inbox.lock() {
                *slot = None;
            }
            health.update(|h| h.connected = false);
            Ok(())
        })
    }

    fn send<'a>(
        &'a self,
        to: &'a Conversation,
        text: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let Some(url) = &self.settings.outbound_url else {
                return Err(SendError::Fatal(
                    "channels.webhook.outboundUrl is not set: replies are dropped".into(),
                ));
            };
            let in_reply_to = key.rsplit_once(':').map_or(key, |(id, _)| id);
            let body = serde_json::to_vec(&serde_json::json!({
                "conversation": to.id,
                "text": text,
                "inReplyTo": in_reply_to,
                "key": key,
            }))
            .map_err(|e| SendError::Fatal(e.to_string()))?;
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .to_string();
            let signature = sign(&self.settings.secret.0, &timestamp, &body);
            let response = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(HEADER_TIMESTAMP, &timestamp)
                .header(HEADER_SIGNATURE, signature)
                .header(HEADER_DELIVERY, key)
                .body(body)
                .send()
                .await
                .map_err(|e| SendError::Retry {
                    message: format!(
                        "outbound POST failed: {}",
                        if e.is_timeout() { "timed out".to_owned() } else { without_url(&e) }
                    ),
                    after: None,
                })?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let message = format!("the outbound URL answered {}", status.as_u16());
            if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                Err(SendError::Retry { message, after })
            } else {
                Err(SendError::Fatal(message))
            }
        })
    }
}

/// A reqwest error's text without its URL (an outbound URL may carry a token in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<outboundUrl>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret-0123456789";

    fn now() -> (SystemTime, String) {
        let t = SystemTime::now();
        (t, t.duration_since(UNIX_EPOCH).unwrap().as_secs().to_string())
    }

    #[test]
    fn a_signed_request_verifies_and_every_alteration_fails() {
        let (t, ts) = now();
        let body = br#"{"id":"1","sender":"a","text":"hi"}"#;
        let sig = sign(SECRET, &ts, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(verify(SECRET, Some(&ts), Some(&sig), body, t, 300), Ok(()));
        let code = |r: Result<(), Refusal>| r.unwrap_err().code;
        assert_eq!(code(verify(SECRET, None, Some(&sig), body, t, 300)), "missing_timestamp");
        assert_eq!(code(verify(SECRET, Some(&ts), None, body, t, 300)), "missing_signature");
        assert_eq!(
            code(verify("other-secret", Some(&ts), Some(&sig), body, t, 300)),
            "bad_signature"
        );
        assert_eq!(code(verify(SECRET, Some(&ts), Some(&sig), b"{}", t, 300)), "bad_signature");
        assert_eq!(
            code(verify(SECRET, Some(&ts), Some("sha256=zz"), body, t, 300)),
            "bad_signature"
        );
        assert_eq!(code(verify(SECRET, Some(&ts), Some(&sig[7..]), body, t, 300)), "bad_signature");
        let old = (t.duration_since(UNIX_EPOCH).unwrap().as_secs() - 301).to_string();
        let old_sig = sign(SECRET, &old, body);
        assert_eq!(
            code(verify(SECRET, Some(&old), Some(&old_sig), body, t, 300)),
            "stale_timestamp"
        );
        assert_eq!(code(verify(SECRET, Some("soon"), Some(&sig), body, t, 300)), "bad_timestamp");
    }

    #[test]
    fn bodies_are_parsed_strictly() {
        let t = SystemTime::now();
        let m = parse(br#"{"id":"1","sender":"alice","text":"hi"}"#, t).unwrap();
        assert_eq!(
            m.conversation,
            Conversation { kind: ConversationKind::Direct, id: "alice".into() }
        );
        let m = parse(br#"{"id":"2","sender":"a","conversation":"g","kind":"group","text":"x","mentioned":true}"#, t).unwrap();
        assert_eq!(m.conversation.kind, ConversationKind::Group);
        assert!(m.mentioned);
        let code = |b: &[u8]| parse(b, t).unwrap_err().code;
        assert_eq!(code(b"\xff\xfe{}"), "not_utf8");
        assert_eq!(code(b"[]"), "bad_body");
        assert_eq!(code(br#"{"id":"","sender":"a","text":"x"}"#), "bad_body");
        assert_eq!(code(br#"{"id":"1","sender":"a","text":"x","kind":"room"}"#), "bad_body");
        assert_eq!(code(br#"{"id":"1","sender":"a","text":"x","kind":"group"}"#), "bad_body");
        assert_eq!(code(br#"{"id":"1","sender":"a\nb","text":"x"}"#), "bad_body");
        assert_eq!(code(br#"{"id":"1","sender":"a","text":5}"#), "bad_body");
    }
}
