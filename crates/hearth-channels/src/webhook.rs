//! A generic signed webhook channel: inbound `POST` with an HMAC-SHA256 signature (unsigned,
//! badly signed and replayed requests are refused), outbound `POST` to a configured URL signed
//! the same way. The bridge for anything else (WhatsApp Cloud API bridges, n8n, Home Assistant).
//! To be built: `Webhook::new(WebhookSettings)`, `impl Channel`, and the inbound route.

use std::path::PathBuf;

use crate::Secret;

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
