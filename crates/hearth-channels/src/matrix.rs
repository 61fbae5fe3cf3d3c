//! Matrix (client-server API, unencrypted rooms only): sync long-polling, DMs and rooms.
//! To be built: `Matrix::new(MatrixSettings) -> Result<Matrix, ChannelError>` and `impl Channel`.

use std::path::PathBuf;

use crate::Secret;

/// Which room invites the bot joins (`channels.matrix.autoJoin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoJoin {
    /// Never (OpenClaw's current default): invites wait for the owner.
    #[default]
    Off,
    /// Every invite.
    Always,
    /// Invites from senders the access policy allows (paired or `allowFrom`).
    Allowlist,
}

/// One Matrix account, resolved from `channels.matrix` (secrets already read).
#[derive(Debug, Clone)]
pub struct MatrixSettings {
    pub account: String,
    /// `https://matrix.example.org` (no trailing slash needed).
    pub homeserver: String,
    /// Either an access token, or `user_id` + `password` (logged in once at start).
    pub access_token: Option<Secret>,
    pub user_id: Option<String>,
    pub password: Option<Secret>,
    pub auto_join: AutoJoin,
    /// `network.dangerouslyAllowPrivateNetwork`: required for a homeserver on loopback or a
    /// private network.
    pub allow_private_network: bool,
    /// Where the channel keeps its cursor (`since`) and device id: a folder of its own.
    pub state_dir: PathBuf,
}
