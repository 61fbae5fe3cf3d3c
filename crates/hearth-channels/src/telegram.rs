//! Telegram (Bot API): `getUpdates` long polling and `sendMessage`.
//! To be built: `Telegram::new(TelegramSettings) -> Result<Telegram, ChannelError>` and `impl Channel`.

use std::path::PathBuf;

use crate::Secret;

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
