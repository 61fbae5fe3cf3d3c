//! From the resolved config to running channels: one [`Channel`] per enabled account, their
//! health records, the webhook accounts the gateway's route feeds, and the status every surface
//! reports (`/ready`, `/metrics`, `hearth channels status`, the WebSocket `channels.status`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_config::{ChannelKind, ChannelSettings, Config, DmPolicy, Env};

use crate::dispatch::{ChannelRun, Dispatcher};
use crate::matrix::{AutoJoin, MatrixSettings};
use crate::telegram::TelegramSettings;
use crate::webhook::{Webhook, WebhookSettings};
use crate::{Channel, ChannelError, Health, Secret, Stop};

/// One configured account: running, disabled, or refused at start (with why).
#[derive(Debug, Clone)]
pub struct Account {
    pub kind: ChannelKind,
    pub account: String,
    pub enabled: bool,
    pub dm_policy: DmPolicy,
    pub health: Health,
    /// `None` when disabled or when it could not be built (`error` says why).
    pub run: Option<ChannelRun>,
    /// The webhook behind `run`, for the gateway's inbound route.
    pub webhook: Option<Arc<Webhook>>,
    pub error: Option<String>,
}

/// Every configured channel account.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    pub accounts: Vec<Account>,
    pub state_dir: PathBuf,
}

/// One row of `hearth channels status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub channel: &'static str,
    pub account: String,
    pub enabled: bool,
    pub dm_policy: &'static str,
    pub connected: bool,
    /// Unix seconds.
    pub last_inbound: Option<u64>,
    pub last_outbound: Option<u64>,
    pub last_error: Option<String>,
    pub inbound_total: u64,
    pub outbound_total: u64,
    pub send_failures_total: u64,
    pub restarts: u32,
    pub gave_up: bool,
}

fn unix(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs())
}

fn secret(
    value: Option<&hearth_config::Secret>,
    key: &str,
    env: &dyn Env,
) -> Result<Secret, ChannelError> {
    let Some(value) = value else {
        return Err(ChannelError::Fatal(format!("{key} is not set")));
    };
    match value.resolve(env) {
        Ok(Some(v)) => Ok(Secret(v.expose().to_owned())),
        Ok(None) => Err(ChannelError::Fatal(format!("{key} is empty"))),
        Err(e) => Err(ChannelError::Fatal(format!("{key}: {e}"))),
    }
}

fn optional_secret(
    value: Option<&hearth_config::Secret>,
    key: &str,
    env: &dyn Env,
) -> Result<Option<Secret>, ChannelError> {
    value.map(|v| secret(Some(v), key, env)).transpose()
}

/// `channels.matrix` (one account) as the Matrix channel takes it, secrets read.
fn matrix_settings(
    account: &str,
    m: &hearth_config::MatrixAccount,
    allow_from: &[String],
    env: &dyn Env,
    state_dir: PathBuf,
) -> Result<MatrixSettings, ChannelError> {
    let homeserver = m
        .homeserver
        .clone()
        .ok_or_else(|| ChannelError::Fatal("channels.matrix.homeserver is not set".into()))?;
    Ok(MatrixSettings {
        account: account.to_owned(),
        homeserver,
        access_token: optional_secret(m.access_token.as_ref(), "channels.matrix.accessToken", env)?,
        user_id: m.user_id.clone(),
        password: optional_secret(m.password.as_ref(), "channels.matrix.password", env)?,
        auto_join: match m.auto_join {
            hearth_config::RawAutoJoin::Off => AutoJoin::Off,
            hearth_config::RawAutoJoin::Always => AutoJoin::Always,
            hearth_config::RawAutoJoin::Allowlist => AutoJoin::Allowlist,
        },
        allow_private_network: m.allow_private_network,
        state_dir,
        // `autoJoin: "allowlist"`: `autoJoinAllowlist`, and the people the account's configured
        // `allowFrom` lets in; senders approved by pairing later are not in it (docs/channels.md).
        auto_join_allowlist: m
            .auto_join_allowlist
            .iter()
            .chain(allow_from.iter().filter(|id| id.starts_with('@')))
            .cloned()
            .collect(),
    })
}

/// `channels.telegram` (one account) as the Telegram channel takes it, the token read.
fn telegram_settings(
    account: &str,
    t: &hearth_config::TelegramAccount,
    env: &dyn Env,
    state_dir: PathBuf,
) -> Result<TelegramSettings, ChannelError> {
    Ok(TelegramSettings {
        account: account.to_owned(),
        bot_token: secret(t.bot_token.as_ref(), "channels.telegram.botToken", env)?,
        api_root: t.api_root.clone(),
        username: None,
        state_dir,
    })
}

/// A built channel, and the webhook behind it when it is one.
type Built = (Arc<dyn Channel>, Option<Arc<Webhook>>);

/// Builds every configured account's channel (none is started yet).
pub fn build(config: &Config, env: &dyn Env, state_dir: &Path) -> Hub {
    let mut hub = Hub { accounts: Vec::new(), state_dir: state_dir.to_owned() };
    for configured in &config.channels.accounts {
        let health = Health::default();
        let mut account = Account {
            kind: configured.channel,
            account: configured.account.clone(),
            enabled: configured.enabled,
            dm_policy: configured.access.dm_policy,
            health: health.clone(),
            run: None,
            webhook: None,
            error: None,
        };
        if configured.enabled {
            let own_dir = state_dir.join("channels").join(format!(
                "{}-{}",
                configured.channel.as_str(),
                configured.account
            ));
            let built: Result<Built, ChannelError> = match &configured.settings {
                ChannelSettings::Webhook(w) => {
                    secret(w.secret.as_ref(), "channels.webhook.secret", env).and_then(|s| {
                        let webhook = Webhook::new(WebhookSettings {
                            account: configured.account.clone(),
                            secret: s,
                            outbound_url: w.outbound_url.clone(),
                            max_skew_secs: w.max_skew_secs,
                            state_dir: own_dir,
                        })?;
                        let webhook = Arc::new(match configured.text_chunk_limit {
                            Some(limit) => webhook.with_text_limit(limit),
                            None => webhook,
                        });
                        Ok((Arc::clone(&webhook) as Arc<dyn Channel>, Some(webhook)))
                    })
                }
                ChannelSettings::Matrix(m) => matrix_settings(
                    &configured.account,
                    m,
                    &configured.access.allow_from,
                    env,
                    own_dir,
                )
                .and_then(|settings| {
                    let channel = crate::matrix::Matrix::new(settings)?;
                    Ok((Arc::new(channel) as Arc<dyn Channel>, None))
                }),
                ChannelSettings::Telegram(t) => {
                    telegram_settings(&configured.account, t, env, own_dir).and_then(|settings| {
                        let channel = crate::telegram::Telegram::new(settings)?;
                        Ok((Arc::new(channel) as Arc<dyn Channel>, None))
                    })
                }
            };
            match built {
                Ok((channel, webhook)) => {
                    account.run = Some(ChannelRun {
                        channel,
                        access: configured.access.clone(),
                        text_chunk_limit: configured.text_chunk_limit,
                        health: health.clone(),
                    });
                    account.webhook = webhook;
                }
                Err(e) => {
                    let message = e.to_string();
                    health.update(|h| {
                        h.gave_up = true;
                        h.last_error = Some(message.clone());
                    });
                    account.error = Some(message);
                }
            }
        }
        hub.accounts.push(account);
    }
    hub
}

impl Hub {
    /// The webhook account `account`, if it runs.
    pub fn webhook(&self, account: &str) -> Option<Arc<Webhook>> {
        self.accounts
            .iter()
            .find(|a| a.kind == ChannelKind::Webhook && a.account == account)
            .and_then(|a| a.webhook.clone())
    }

    /// Starts every account that was built, until `stop`.
    pub fn start(
        &self,
        dispatcher: &Arc<Dispatcher>,
        stop: &Stop,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.accounts
            .iter()
            .filter_map(|a| a.run.clone())
            .map(|run| dispatcher.start(run, stop.clone()))
            .collect()
    }

    /// Every account's status now.
    pub fn status(&self) -> Vec<Status> {
        self.accounts
            .iter()
            .map(|a| {
                let h = a.health.snapshot();
                Status {
                    channel: a.kind.as_str(),
                    account: a.account.clone(),
                    enabled: a.enabled,
                    dm_policy: a.dm_policy.as_str(),
                    connected: h.connected,
                    last_inbound: unix(h.last_inbound),
                    last_outbound: unix(h.last_outbound),
                    last_error: h.last_error.or_else(|| a.error.clone()),
                    inbound_total: h.inbound_total,
                    outbound_total: h.outbound_total,
                    send_failures_total: h.send_failures_total,
                    restarts: h.restarts,
                    gave_up: h.gave_up,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(text: &str) -> Config {
        let loaded = hearth_config::load_str("t.json5", text, &BTreeMap::<String, String>::new());
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        loaded.config.unwrap()
    }

    #[test]
    fn webhook_accounts_are_built_and_the_rest_reported() {
        let dir = tempfile::tempdir().unwrap();
        let env: BTreeMap<String, String> = BTreeMap::new();
        let c = config(
            r#"{channels: {
                webhook: {accounts: {a: {secret: "secret-a-0123456789"}, b: {secret: "${NOT_SET_ANYWHERE}"}, off: {secret: "x", enabled: false}}},
                telegram: {botToken: "123:abcdefgh"}}}"#,
        );
        let hub = build(&c, &env, dir.path());
        assert_eq!(hub.accounts.len(), 4);
        assert!(hub.webhook("a").is_some());
        assert!(hub.webhook("b").is_none());
        let status = hub.status();
        let row = |account: &str| status.iter().find(|s| s.account == account).unwrap();
        assert!(row("b").last_error.as_deref().unwrap().contains("NOT_SET_ANYWHERE"));
        assert!(row("b").gave_up);
        assert!(!row("off").enabled && row("off").last_error.is_none());
        // Telegram is built from its settings (it talks to the Bot API only once it runs).
        let telegram = status.iter().find(|s| s.channel == "telegram").unwrap();
        assert!(telegram.last_error.is_none() && !telegram.gave_up, "{telegram:?}");
        // Without a token (the variable unset) it says which key is missing instead.
        let c = config(r#"{channels: {telegram: {}}}"#);
        let hub = build(&c, &env, dir.path());
        let error = hub.status()[0].last_error.clone().unwrap();
        assert!(error.contains("TELEGRAM_BOT_TOKEN"), "{error}");
        assert!(!format!("{hub:?}").contains("secret-a-0123456789"), "secrets never print");
    }
}
