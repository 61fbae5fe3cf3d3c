//! Matrix (client-server API, unencrypted rooms only): `/sync` long polling, DMs and rooms,
//! `m.room.message` sends with the dispatcher's key as the transaction id.
//!
//! Invariants:
//! - The sync cursor (`since`, in `state_dir`) moves past a batch only after every message of
//!   that batch was acknowledged by [`Inbox::deliver`] (or skipped on purpose), and it is
//!   written atomically (temp file, fsync, rename). A crash anywhere replays at most the last
//!   batch, which the dispatcher deduplicates by event id; nothing inbound is lost.
//! - The first sync with no stored cursor skips history: old messages are never answered.
//! - A send of one key is one transaction id on one device (the device id is kept in
//!   `state_dir`), so Synapse posts a retried send once.
//! - Every response is read up to a cap ([`MAX_SYNC_BYTES`], [`MAX_REPLY_BYTES`]) and every
//!   request has a deadline: a huge, slow or vanished homeserver costs bounded memory and time.
//! - Tokens and passwords never reach logs, errors or `Debug` ([`Secret`]).
//! - A homeserver on loopback or a private network is refused unless
//!   `network.dangerouslyAllowPrivateNetwork` allows it, by URL and by DNS answer; link-local
//!   and metadata addresses are refused always; plain `http` is refused for a public host.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use hearth_config::resolve::{HostClass, classify_ip, host_class};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::{
    Channel, ChannelError, Conversation, ConversationKind, Health, Inbound, Inbox, Secret,
    SendError, Sender, Stop,
};

#[cfg(test)]
mod tests;

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
    /// `autoJoinAllowlist`, used with [`AutoJoin::Allowlist`]: which invites are joined. Room
    /// ids (`!room:server`) and aliases (`#alias:server`, matched against the invite's
    /// canonical alias) as OpenClaw writes them, plus user ids (`@user:server`: invites from
    /// that sender, which is how the dispatcher passes `allowFrom` and approved senders) and
    /// `*`. Ignored with the other modes.
    pub auto_join_allowlist: Vec<String>,
}

/// The most characters one outbound message carries (Matrix caps an event at 64 KiB of JSON).
pub const TEXT_LIMIT: usize = 16_000;
/// A sync response larger than this is not read; the next try asks for fewer events per room.
pub const MAX_SYNC_BYTES: usize = 16 * 1024 * 1024;
/// Any other response (send, login, members) is not read past this.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// An inbound message body over this is skipped (Synapse caps whole events at 64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long the homeserver holds a `/sync` open when nothing happens.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole `/sync` request: the long poll plus time to answer.
const SYNC_DEADLINE: Duration = Duration::from_secs(60);
/// Every other request.
const CALL_DEADLINE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Events per room per sync (Synapse's own default is 10; a restart after a short outage
/// should see everything).
const TIMELINE_LIMIT: u32 = 100;
/// Missed messages fetched per room after a long outage, at most.
const MAX_BACKFILL: usize = 1_000;
/// Rooms whose members are cached at most (then the cache starts over).
const MAX_CACHED_ROOMS: usize = 10_000;

const CLIENT_V3: &str = "/_matrix/client/v3";
const SINCE_FILE: &str = "since";
const DEVICE_FILE: &str = "device.json";
const EVENT_MESSAGE: &str = "m.room.message";
const EVENT_ENCRYPTED: &str = "m.room.encrypted";
const EVENT_ENCRYPTION: &str = "m.room.encryption";
const EVENT_MEMBER: &str = "m.room.member";
const EVENT_CANONICAL_ALIAS: &str = "m.room.canonical_alias";
const EVENT_DIRECT: &str = "m.direct";
const MSGTYPE_TEXT: &str = "m.text";
const ERRCODE_UNKNOWN_TOKEN: &str = "M_UNKNOWN_TOKEN";
const ERRCODE_LIMIT_EXCEEDED: &str = "M_LIMIT_EXCEEDED";
const PRIVATE_NETWORK_KEY: &str = "channels.matrix.network.dangerouslyAllowPrivateNetwork";

/// A Matrix account as a [`Channel`].
#[derive(Debug)]
pub struct Matrix {
    settings: MatrixSettings,
    /// The homeserver's origin, checked by [`check_homeserver`]; no trailing slash.
    origin: String,
    http: reqwest::Client,
    /// Logged in (or token checked) once, on first use by `run` or `send`.
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    rooms: Mutex<Rooms>,
    /// The health record `run` was given, for `send` to count outbound messages.
    health: Mutex<Option<Health>>,
}

/// Who the bot is on the homeserver.
#[derive(Debug)]
struct Session {
    token: Secret,
    me: Me,
}

/// The bot's names, for mention detection and to drop its own messages.
#[derive(Debug, Clone, Default)]
struct Me {
    user_id: String,
    localpart: String,
    display_name: Option<String>,
}

/// What the channel remembers about rooms between syncs (rebuilt after a restart).
#[derive(Debug, Default)]
struct Rooms {
    /// Joined members and their display names, per room (fetched when first needed, dropped
    /// on any membership change in the room).
    members: HashMap<String, HashMap<String, Option<String>>>,
    /// Rooms the bot's `m.direct` account data (or an accepted `is_direct` invite) marks direct.
    direct: HashSet<String>,
    /// `m.direct` was read (once per process; later changes come with the sync).
    direct_loaded: bool,
    /// Rooms already told about: encrypted, or an invite not joined.
    noted_encrypted: HashSet<String>,
    noted_invites: HashSet<String>,
}

/// One failed request, worded for a user (never a token).
#[derive(Debug, Clone)]
enum ApiError {
    /// Connect, TLS, timeout, reset: the homeserver may come back.
    Network(String),
    /// The answer was larger than the cap.
    TooLarge(usize),
    /// The homeserver answered with an error status.
    Status { status: u16, errcode: String, error: String, retry_after: Option<Duration> },
    /// A 2xx answer that is not the JSON expected.
    Malformed(String),
}

/// Why processing a sync batch stopped before its end (the cursor stays where it was).
#[derive(Debug)]
enum BatchError {
    Api(ApiError),
    Closed,
}

/// Why one attempt of the sync loop failed.
#[derive(Debug)]
enum Attempt {
    Channel(ChannelError),
    Api(ApiError),
}

/// A room message the channel passes on, before room facts (kind, sender name) are added.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    event_id: String,
    sender: String,
    body: String,
    mentioned: bool,
    reply_to: Option<String>,
}

/// What to do with one timeline event.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Deliver(Candidate),
    /// Not for the agent (own message, edit, notice, image, too large): why, for a debug line.
    Skip(&'static str),
    /// `m.room.encrypted`: not deliverable, noted once per room.
    Encrypted,
}

// === Sync wire types (only the fields the channel reads; everything else is ignored) ===

#[derive(Debug, Deserialize)]
struct SyncResponse {
    next_batch: String,
    #[serde(default)]
    rooms: SyncRooms,
    #[serde(default)]
    account_data: EventList,
}

#[derive(Debug, Default, Deserialize)]
struct SyncRooms {
    #[serde(default)]
    join: BTreeMap<String, JoinedRoom>,
    #[serde(default)]
    invite: BTreeMap<String, InvitedRoom>,
    #[serde(default)]
    leave: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct JoinedRoom {
    #[serde(default)]
    state: EventList,
    #[serde(default)]
    timeline: Timeline,
}

#[derive(Debug, Default, Deserialize)]
struct InvitedRoom {
    #[serde(default)]
    invite_state: EventList,
}

#[derive(Debug, Default, Deserialize)]
struct Timeline {
    #[serde(default)]
    events: Vec<RawEvent>,
    #[serde(default)]
    limited: bool,
    /// Where to page back from when `limited` (events between the cursor and this batch).
    #[serde(default)]
    prev_batch: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct MessagesPage {
    #[serde(default)]
    chunk: Vec<RawEvent>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct EventList {
    #[serde(default)]
    events: Vec<RawEvent>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawEvent {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    state_key: Option<String>,
    #[serde(default)]
    content: Value,
    #[serde(default)]
    unsigned: Value,
}

// === impl Matrix ===

impl Matrix {
    /// Checks the settings (homeserver URL and network class, credentials present) and builds
    /// the HTTP client; nothing is sent until `run` or `send`.
    pub fn new(settings: MatrixSettings) -> Result<Matrix, ChannelError> {
        let origin = check_homeserver(&settings.homeserver, settings.allow_private_network)?;
        if settings.access_token.is_none()
            && (settings.user_id.is_none() || settings.password.is_none())
        {
            return Err(ChannelError::Fatal(
                "channels.matrix: set accessToken, or userId and password".to_owned(),
            ));
        }
        std::fs::create_dir_all(&settings.state_dir).map_err(|e| {
            ChannelError::Fatal(format!(
                "channels.matrix: cannot create the state folder {}: {e}",
                settings.state_dir.display()
            ))
        })?;
        hearth_upstream::client::install_crypto();
        let resolver = GuardedResolver { allow_private_network: settings.allow_private_network };
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            // The client-server API never redirects; a redirect could lead past the guard.
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver))
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")));
        let local = url::Url::parse(&origin).is_ok_and(|url| host_class(&url).is_local());
        if local {
            // A homeserver on the LAN is never reached through the user's HTTP(S)_PROXY.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            ChannelError::Fatal(format!("channels.matrix: cannot build an HTTP client: {e}"))
        })?;
        Ok(Matrix {
            settings,
            origin,
            http,
            session: tokio::sync::Mutex::new(None),
            rooms: Mutex::new(Rooms::default()),
            health: Mutex::new(None),
        })
    }

    // --- HTTP ---

    /// One request to the homeserver: the JSON answer of a 2xx, else why not. The body is read
    /// up to `cap` bytes and the whole exchange has `deadline`.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&Secret>,
        body: Option<&Value>,
        deadline: Duration,
        cap: usize,
    ) -> Result<Value, ApiError> {
        let what = path.split('?').next().unwrap_or(path).to_owned();
        let exchange = async {
            let mut request = self.http.request(method, format!("{}{path}", self.origin));
            if let Some(token) = token {
                request = request.bearer_auth(&token.0);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let mut response = request.send().await.map_err(|e| network_error(&what, &e))?;
            let status = response.status().as_u16();
            let retry_header = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| network_error(&what, &e))? {
                if bytes.len() + chunk.len() > cap {
                    return Err(ApiError::TooLarge(cap));
                }
                bytes.extend_from_slice(&chunk);
            }
            if (200..300).contains(&status) {
                return serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::Malformed(format!("{what}: {e}")));
            }
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let retry_body = answer["retry_after_ms"].as_u64().map(Duration::from_millis);
            Err(ApiError::Status {
                status,
                errcode: short(answer["errcode"].as_str().unwrap_or(""), 64),
                error: short(answer["error"].as_str().unwrap_or(""), 300),
                retry_after: retry_body.or(retry_header),
            })
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Network(format!(
                "{what}: no answer from the homeserver within {} s",
                deadline.as_secs()
            ))),
        }
    }

    async fn get(&self, path: &str, token: &Secret) -> Result<Value, ApiError> {
        self.call(reqwest::Method::GET, path, Some(token), None, CALL_DEADLINE, MAX_REPLY_BYTES)
            .await
    }

    // --- Session ---

    /// The logged-in session: logs in (password) or checks the token (`whoami`) on first use.
    async fn session(&self) -> Result<Arc<Session>, ChannelError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let token = match &self.settings.access_token {
            Some(token) => token.clone(),
            None => self.login().await?,
        };
        let whoami = self
            .get(&format!("{CLIENT_V3}/account/whoami"), &token)
            .await
            .map_err(|e| session_error("checking the access token", e))?;
        let user_id = whoami["user_id"].as_str().unwrap_or_default().to_owned();
        if user_id.is_empty() {
            return Err(ChannelError::Transient("whoami: the homeserver named no user".to_owned()));
        }
        if let Some(configured) = &self.settings.user_id
            && configured != &user_id
        {
            warn!(configured = %configured, actual = %user_id, "Matrix access token belongs to another user than userId; using the token's.");
        }
        let display_name = match self
            .get(&format!("{CLIENT_V3}/profile/{}/displayname", encode(&user_id)), &token)
            .await
        {
            Ok(profile) => profile["displayname"].as_str().map(str::to_owned),
            Err(e) => {
                debug!(error = %e, "Matrix display name not read; mentions by user id and localpart only.");
                None
            }
        };
        let me = Me { localpart: localpart(&user_id).to_owned(), user_id, display_name };
        info!(account = %self.settings.account, user = %me.user_id, "Matrix signed in.");
        let session = Arc::new(Session { token, me });
        *slot = Some(session.clone());
        Ok(session)
    }

    /// `m.login.password` with the device id kept in `state_dir` (so transaction ids and the
    /// device list stay stable across restarts): the access token.
    async fn login(&self) -> Result<Secret, ChannelError> {
        let (Some(user_id), Some(password)) = (&self.settings.user_id, &self.settings.password)
        else {
            return Err(ChannelError::Fatal(
                "channels.matrix: set accessToken, or userId and password".to_owned(),
            ));
        };
        let device_path = self.settings.state_dir.join(DEVICE_FILE);
        let stored_device = std::fs::read(&device_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .filter(|v| v["user_id"].as_str() == Some(user_id.as_str()))
            .and_then(|v| v["device_id"].as_str().map(str::to_owned));
        let mut body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password.0,
            "initial_device_display_name": "hearth",
        });
        if let Some(device) = &stored_device {
            body["device_id"] = json!(device);
        }
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("{CLIENT_V3}/login"),
                None,
                Some(&body),
                CALL_DEADLINE,
                MAX_REPLY_BYTES,
            )
            .await
            .map_err(|e| session_error(&format!("logging in as {user_id}"), e))?;
        let token = answer["access_token"].as_str().unwrap_or_default();
        if token.is_empty() {
            return Err(ChannelError::Transient(
                "login: the homeserver sent no access token".to_owned(),
            ));
        }
        if let Some(device) = answer["device_id"].as_str()
            && stored_device.as_deref() != Some(device)
        {
            let record = json!({"user_id": user_id, "device_id": device}).to_string();
            if let Err(e) = crate::state_file::write_atomic(&device_path, record.as_bytes()) {
                warn!(error = %e, "Matrix device id not saved; the next start logs in as a new device.");
            }
        }
        Ok(Secret(token.to_owned()))
    }

    /// Forgets the session after the homeserver refused its token: with a password, the next
    /// use logs in again; with a configured token, the caller stops for good.
    async fn drop_session(&self) -> bool {
        *self.session.lock().await = None;
        self.settings.access_token.is_none()
    }

    // --- Receiving ---

    async fn run_loop(
        &self,
        inbox: Inbox,
        health: Health,
        mut stop: Stop,
    ) -> Result<(), ChannelError> {
        if let Ok(mut slot) = self.health.lock() {
            *slot = Some(health.clone());
        }
        info!(account = %self.settings.account, "Matrix: end-to-end encrypted rooms are not supported; use unencrypted rooms.");
        let since_path = self.settings.state_dir.join(SINCE_FILE);
        let mut since = read_since(&since_path);
        let mut backoff = BACKOFF_FIRST;
        let mut timeline_limit = TIMELINE_LIMIT;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let attempt = async {
                let session = self.session().await.map_err(Attempt::Channel)?;
                self.load_direct_rooms(&session).await;
                let batch = self
                    .sync(&session, since.as_deref(), timeline_limit)
                    .await
                    .map_err(Attempt::Api)?;
                Ok::<_, Attempt>((session, batch))
            };
            let outcome = tokio::select! {
                outcome = attempt => outcome,
                () = stopped(&mut stop) => return Ok(()),
            };
            let failure = match outcome {
                Ok((session, batch)) => {
                    health.update(|h| {
                        h.connected = true;
                        h.last_error = None;
                    });
                    let processed = {
                        let mut process = std::pin::pin!(self.process(
                            &session,
                            &batch,
                            since.as_deref(),
                            &inbox,
                            &health
                        ));
                        tokio::select! {
                            processed = &mut process => processed,
                            () = stopped(&mut stop) => {
                                // The stop may come just as the batch's last ack did: finish that
                                // batch (one poll, no waiting) so its position is saved and its
                                // messages are not delivered again.
                                if let Some(Ok(())) = futures::FutureExt::now_or_never(process.as_mut()) {
                                    let _ = crate::state_file::write_atomic(&since_path, batch.next_batch.as_bytes());
                                }
                                return Ok(());
                            }
                        }
                    };
                    match processed {
                        Ok(()) => {
                            backoff = BACKOFF_FIRST;
                            timeline_limit = TIMELINE_LIMIT;
                            // Written before anything can stop the loop (no await between
                            // the last ack and this): a stop right after a batch must not
                            // leave its messages to be delivered again.
                            if let Err(e) = crate::state_file::write_atomic(
                                &since_path,
                                batch.next_batch.as_bytes(),
                            ) {
                                warn!(error = %e, "Matrix sync position not saved; a restart may replay messages (the dispatcher drops repeats).");
                                health.update(|h| {
                                    h.last_error =
                                        Some(format!("cannot save the sync position: {e}"))
                                });
                            }
                            since = Some(batch.next_batch);
                            continue;
                        }
                        Err(BatchError::Closed) => return Err(ChannelError::Closed),
                        Err(BatchError::Api(e)) => Attempt::Api(e),
                    }
                }
                Err(failure) => failure,
            };
            let message = match failure {
                Attempt::Channel(ChannelError::Transient(message)) => message,
                Attempt::Channel(other) => return Err(other),
                Attempt::Api(ApiError::Status { status: 401, errcode, .. })
                    if errcode == ERRCODE_UNKNOWN_TOKEN =>
                {
                    if !self.drop_session().await {
                        let message = "the homeserver refused the access token (M_UNKNOWN_TOKEN): set a new channels.matrix.accessToken".to_owned();
                        health.update(|h| {
                            h.connected = false;
                            h.last_error = Some(message.clone());
                        });
                        return Err(ChannelError::Fatal(message));
                    }
                    "the homeserver ended the session (M_UNKNOWN_TOKEN); logging in again"
                        .to_owned()
                }
                Attempt::Api(ApiError::TooLarge(cap)) => {
                    timeline_limit = (timeline_limit / 4).max(1);
                    format!(
                        "a sync answer was over {} MiB; asking for at most {timeline_limit} events per room",
                        cap / (1024 * 1024)
                    )
                }
                Attempt::Api(e) => e.to_string(),
            };
            warn!(account = %self.settings.account, error = %message, retry_in_s = backoff.as_secs(), "Matrix sync failed; retrying.");
            health.update(|h| {
                h.connected = false;
                h.last_error = Some(message);
            });
            if pause(&mut stop, backoff).await {
                return Ok(());
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One `/sync`: a long poll from `since`, or (no cursor yet) an immediate one whose
    /// timeline is not delivered.
    async fn sync(
        &self,
        session: &Session,
        since: Option<&str>,
        timeline_limit: u32,
    ) -> Result<SyncResponse, ApiError> {
        let limit = if since.is_some() { timeline_limit } else { 1 };
        let filter = json!({
            "presence": {"types": []},
            "account_data": {"types": [EVENT_DIRECT]},
            "room": {
                "timeline": {"types": [EVENT_MESSAGE, EVENT_ENCRYPTED, EVENT_MEMBER], "limit": limit},
                "state": {"types": [EVENT_MEMBER, EVENT_ENCRYPTION], "lazy_load_members": true},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        });
        let mut path =
            format!("{CLIENT_V3}/sync?set_presence=offline&filter={}", encode(&filter.to_string()));
        match since {
            Some(since) => {
                path.push_str(&format!(
                    "&timeout={}&since={}",
                    SYNC_TIMEOUT.as_millis(),
                    encode(since)
                ));
            }
            None => path.push_str("&timeout=0"),
        }
        let answer = self
            .call(
                reqwest::Method::GET,
                &path,
                Some(&session.token),
                None,
                SYNC_DEADLINE,
                MAX_SYNC_BYTES,
            )
            .await?;
        serde_json::from_value(answer).map_err(|e| ApiError::Malformed(format!("/sync: {e}")))
    }

    /// Reads the bot's `m.direct` account data once per session (a resumed sync only carries
    /// changes).
    async fn load_direct_rooms(&self, session: &Session) {
        let loaded = self.rooms.lock().map(|mut r| std::mem::replace(&mut r.direct_loaded, true));
        if loaded.unwrap_or(true) {
            return;
        }
        let path =
            format!("{CLIENT_V3}/user/{}/account_data/{EVENT_DIRECT}", encode(&session.me.user_id));
        match self.get(&path, &session.token).await {
            Ok(content) => self.note_direct(&content),
            // None yet (404) is the common case for a bot; anything else is retried next session.
            Err(ApiError::Status { status: 404, .. }) => {}
            Err(e) => {
                debug!(error = %e, "Matrix m.direct not read; DMs are told by member count.");
                if let Ok(mut rooms) = self.rooms.lock() {
                    rooms.direct_loaded = false;
                }
            }
        }
    }

    fn note_direct(&self, content: &Value) {
        let Some(map) = content.as_object() else { return };
        if let Ok(mut rooms) = self.rooms.lock() {
            for ids in map.values() {
                for id in ids.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    rooms.direct.insert(id.to_owned());
                }
            }
        }
    }

    /// Handles one batch: invites, membership changes, then each room's messages in order.
    /// `since` is `None` on the first sync: history is skipped, invites are still answered.
    async fn process(
        &self,
        session: &Session,
        batch: &SyncResponse,
        since: Option<&str>,
        inbox: &Inbox,
        health: &Health,
    ) -> Result<(), BatchError> {
        for event in &batch.account_data.events {
            if event.kind == EVENT_DIRECT {
                self.note_direct(&event.content);
            }
        }
        for (room_id, invite) in &batch.rooms.invite {
            self.on_invite(session, room_id, invite).await?;
        }
        if let Ok(mut rooms) = self.rooms.lock() {
            for room_id in batch.rooms.leave.keys() {
                rooms.members.remove(room_id);
            }
        }
        for (room_id, room) in &batch.rooms.join {
            let membership_changed = room
                .state
                .events
                .iter()
                .chain(&room.timeline.events)
                .any(|e| e.kind == EVENT_MEMBER);
            if membership_changed && let Ok(mut rooms) = self.rooms.lock() {
                rooms.members.remove(room_id);
            }
            if room
                .state
                .events
                .iter()
                .chain(&room.timeline.events)
                .any(|e| e.kind == EVENT_ENCRYPTION)
            {
                self.note_encrypted(room_id);
            }
            let Some(since) = since else { continue };
            let events = &room.timeline.events;
            let start = first_new_event(events, &session.me.user_id);
            let mut older = Vec::new();
            if start.is_none()
                && room.timeline.limited
                && let Some(prev_batch) = &room.timeline.prev_batch
            {
                // More happened since the cursor than one sync carries (hearth or the
                // homeserver was down a while): page back to the cursor so nothing is lost.
                older = self
                    .backfill(session, room_id, prev_batch, since)
                    .await
                    .map_err(BatchError::Api)?;
            }
            for event in older.iter().chain(&events[start.unwrap_or(0)..]) {
                match classify(event, &session.me) {
                    Verdict::Deliver(candidate) => {
                        self.deliver(session, room_id, candidate, inbox, health).await?;
                    }
                    Verdict::Encrypted => self.note_encrypted(room_id),
                    Verdict::Skip(why) => {
                        debug!(room = %room_id, event = %event.event_id, why, "Matrix event not passed on.");
                    }
                }
            }
        }
        Ok(())
    }

    /// The room's messages after `since` and before `prev_batch`, oldest first (at most
    /// [`MAX_BACKFILL`]; past that the oldest are dropped with a warning).
    async fn backfill(
        &self,
        session: &Session,
        room_id: &str,
        prev_batch: &str,
        since: &str,
    ) -> Result<Vec<RawEvent>, ApiError> {
        let filter = json!({"types": [EVENT_MESSAGE, EVENT_ENCRYPTED]}).to_string();
        let mut from = prev_batch.to_owned();
        let mut events: Vec<RawEvent> = Vec::new();
        loop {
            let path = format!(
                "{CLIENT_V3}/rooms/{}/messages?dir=b&limit=100&from={}&to={}&filter={}",
                encode(room_id),
                encode(&from),
                encode(since),
                encode(&filter)
            );
            let page = self.get(&path, &session.token).await?;
            let page: MessagesPage = serde_json::from_value(page)
                .map_err(|e| ApiError::Malformed(format!("/messages: {e}")))?;
            let done = page.chunk.is_empty() || page.end.is_none();
            events.extend(page.chunk);
            if events.len() >= MAX_BACKFILL {
                warn!(room = %room_id, kept = MAX_BACKFILL, "Matrix room had more missed messages than are fetched; the oldest were dropped.");
                events.truncate(MAX_BACKFILL);
                break;
            }
            match page.end {
                Some(end) if !done => from = end,
                _ => break,
            }
        }
        events.reverse();
        Ok(events)
    }

    async fn deliver(
        &self,
        session: &Session,
        room_id: &str,
        candidate: Candidate,
        inbox: &Inbox,
        health: &Health,
    ) -> Result<(), BatchError> {
        let members = self.members(session, room_id).await.map_err(BatchError::Api)?;
        let direct = self.rooms.lock().map(|r| r.direct.contains(room_id)).unwrap_or(false)
            || members.len() == 2;
        let mut mentioned = candidate.mentioned;
        if !mentioned && let Some(parent) = &candidate.reply_to {
            mentioned = self.is_own_event(session, room_id, parent).await;
        }
        let message = Inbound {
            id: candidate.event_id,
            conversation: Conversation {
                kind: if direct { ConversationKind::Direct } else { ConversationKind::Group },
                id: room_id.to_owned(),
            },
            sender: Sender {
                name: members.get(&candidate.sender).cloned().flatten(),
                id: candidate.sender,
            },
            text: candidate.body,
            mentioned,
            received_at: SystemTime::now(),
        };
        inbox.deliver(message).await.map_err(|_| BatchError::Closed)?;
        health.update(|h| {
            h.inbound_total += 1;
            h.last_inbound = Some(SystemTime::now());
        });
        Ok(())
    }

    /// A room's joined members and their display names (cached until membership changes).
    async fn members(
        &self,
        session: &Session,
        room_id: &str,
    ) -> Result<HashMap<String, Option<String>>, ApiError> {
        if let Some(cached) = self.rooms.lock().ok().and_then(|r| r.members.get(room_id).cloned()) {
            return Ok(cached);
        }
        let answer = self
            .get(&format!("{CLIENT_V3}/rooms/{}/joined_members", encode(room_id)), &session.token)
            .await?;
        let members: HashMap<String, Option<String>> = answer["joined"]
            .as_object()
            .map(|joined| {
                joined
                    .iter()
                    .map(|(id, m)| (id.clone(), m["display_name"].as_str().map(|n| short(n, 256))))
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(mut rooms) = self.rooms.lock() {
            if rooms.members.len() >= MAX_CACHED_ROOMS {
                rooms.members.clear();
            }
            rooms.members.insert(room_id.to_owned(), members.clone());
        }
        Ok(members)
    }

    /// Whether `event_id` was sent by the bot (a reply to the bot counts as a mention).
    async fn is_own_event(&self, session: &Session, room_id: &str, event_id: &str) -> bool {
        let path = format!("{CLIENT_V3}/rooms/{}/event/{}", encode(room_id), encode(event_id));
        match self.get(&path, &session.token).await {
            Ok(event) => event["sender"].as_str() == Some(session.me.user_id.as_str()),
            Err(_) => false,
        }
    }

    async fn on_invite(
        &self,
        session: &Session,
        room_id: &str,
        invite: &InvitedRoom,
    ) -> Result<(), BatchError> {
        let own = invite.invite_state.events.iter().find(|e| {
            e.kind == EVENT_MEMBER && e.state_key.as_deref() == Some(session.me.user_id.as_str())
        });
        let inviter = own.map(|e| e.sender.as_str()).unwrap_or_default();
        let is_direct = own.is_some_and(|e| e.content["is_direct"].as_bool() == Some(true));
        let join = match self.settings.auto_join {
            AutoJoin::Off => false,
            AutoJoin::Always => true,
            AutoJoin::Allowlist => {
                let alias = invite
                    .invite_state
                    .events
                    .iter()
                    .find(|e| e.kind == EVENT_CANONICAL_ALIAS)
                    .and_then(|e| e.content["alias"].as_str());
                invite_allowed(&self.settings.auto_join_allowlist, room_id, alias, inviter)
            }
        };
        if !join {
            let first_time = self
                .rooms
                .lock()
                .map(|mut r| r.noted_invites.insert(room_id.to_owned()))
                .unwrap_or(false);
            if first_time {
                info!(room = %room_id, inviter = %inviter, auto_join = ?self.settings.auto_join, "Matrix invite not joined (channels.matrix.autoJoin).");
            }
            return Ok(());
        }
        let path = format!("{CLIENT_V3}/join/{}", encode(room_id));
        match self
            .call(
                reqwest::Method::POST,
                &path,
                Some(&session.token),
                Some(&json!({})),
                CALL_DEADLINE,
                MAX_REPLY_BYTES,
            )
            .await
        {
            Ok(_) => {
                info!(room = %room_id, inviter = %inviter, direct = is_direct, "Matrix invite joined.");
                if let Ok(mut rooms) = self.rooms.lock() {
                    if is_direct {
                        rooms.direct.insert(room_id.to_owned());
                    }
                    rooms.members.remove(room_id);
                }
                if is_direct && !inviter.is_empty() {
                    self.remember_direct(session, inviter, room_id).await;
                }
                Ok(())
            }
            // A refusal (the room is gone, the invite was withdrawn) will not change on retry.
            Err(ApiError::Status { status, errcode, error, .. })
                if (400..500).contains(&status)
                    && status != 429
                    && errcode != ERRCODE_UNKNOWN_TOKEN =>
            {
                warn!(room = %room_id, errcode = %errcode, error = %error, "Matrix invite could not be joined.");
                Ok(())
            }
            Err(e) => Err(BatchError::Api(e)),
        }
    }

    /// Adds a DM the bot accepted to its `m.direct` account data, as a person's client does, so
    /// the room stays direct after a restart even if someone else joins it. Best effort: the
    /// member count still tells a two-person room.
    async fn remember_direct(&self, session: &Session, inviter: &str, room_id: &str) {
        let path =
            format!("{CLIENT_V3}/user/{}/account_data/{EVENT_DIRECT}", encode(&session.me.user_id));
        let mut content = match self.get(&path, &session.token).await {
            Ok(content) if content.is_object() => content,
            Ok(_) | Err(ApiError::Status { status: 404, .. }) => json!({}),
            Err(e) => {
                debug!(error = %e, "Matrix m.direct not read; the DM is not recorded there.");
                return;
            }
        };
        let rooms = &mut content[inviter];
        if !rooms.is_array() {
            *rooms = json!([]);
        }
        if let Some(list) = rooms.as_array_mut() {
            if list.iter().any(|r| r.as_str() == Some(room_id)) {
                return;
            }
            list.push(json!(room_id));
        }
        let put = self
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&session.token),
                Some(&content),
                CALL_DEADLINE,
                MAX_REPLY_BYTES,
            )
            .await;
        if let Err(e) = put {
            debug!(error = %e, "Matrix m.direct not updated.");
        }
    }

    fn note_encrypted(&self, room_id: &str) {
        let first_time = self
            .rooms
            .lock()
            .map(|mut r| r.noted_encrypted.insert(room_id.to_owned()))
            .unwrap_or(false);
        if first_time {
            warn!(room = %room_id, "Matrix: end-to-end encrypted rooms are not supported; use an unencrypted room.");
        }
    }

    // --- Sending ---

    async fn send_text(&self, to: &Conversation, text: &str, key: &str) -> Result<(), SendError> {
        let session = self.session().await.map_err(|e| match e {
            ChannelError::Fatal(message) => SendError::Fatal(message),
            other => SendError::Retry { message: other.to_string(), after: None },
        })?;
        let path =
            format!("{CLIENT_V3}/rooms/{}/send/{EVENT_MESSAGE}/{}", encode(&to.id), txn_id(key));
        let body = json!({"msgtype": MSGTYPE_TEXT, "body": text});
        let result = self
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&session.token),
                Some(&body),
                CALL_DEADLINE,
                MAX_REPLY_BYTES,
            )
            .await;
        let health = self.health.lock().ok().and_then(|h| h.clone());
        match result {
            Ok(_) => {
                if let Some(health) = health {
                    health.update(|h| {
                        h.outbound_total += 1;
                        h.last_outbound = Some(SystemTime::now());
                    });
                }
                Ok(())
            }
            Err(e) => {
                if let Some(health) = &health {
                    health.update(|h| h.send_failures_total += 1);
                }
                Err(self.send_error(e).await)
            }
        }
    }

    async fn send_error(&self, error: ApiError) -> SendError {
        match error {
            ApiError::Status { status: 401, ref errcode, .. }
                if errcode == ERRCODE_UNKNOWN_TOKEN =>
            {
                if self.drop_session().await {
                    SendError::Retry {
                        message: "the homeserver ended the session; logging in again".to_owned(),
                        after: None,
                    }
                } else {
                    SendError::Fatal(
                        "the homeserver refused the access token (M_UNKNOWN_TOKEN)".to_owned(),
                    )
                }
            }
            ApiError::Status { status, ref errcode, retry_after, .. }
                if status == 429 || errcode == ERRCODE_LIMIT_EXCEEDED =>
            {
                SendError::Retry { message: error.to_string(), after: retry_after }
            }
            ApiError::Status { status, .. } if status >= 500 => {
                SendError::Retry { message: error.to_string(), after: None }
            }
            ApiError::Status { .. } => SendError::Fatal(error.to_string()),
            ApiError::Network(_) | ApiError::TooLarge(_) | ApiError::Malformed(_) => {
                SendError::Retry { message: error.to_string(), after: None }
            }
        }
    }

    async fn set_typing(&self, to: &Conversation, on: bool) -> Result<(), SendError> {
        let session = self
            .session()
            .await
            .map_err(|e| SendError::Retry { message: e.to_string(), after: None })?;
        let path =
            format!("{CLIENT_V3}/rooms/{}/typing/{}", encode(&to.id), encode(&session.me.user_id));
        let body =
            if on { json!({"typing": true, "timeout": 30_000}) } else { json!({"typing": false}) };
        match self
            .call(
                reqwest::Method::PUT,
                &path,
                Some(&session.token),
                Some(&body),
                CALL_DEADLINE,
                MAX_REPLY_BYTES,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.send_error(e).await),
        }
    }
}

impl Channel for Matrix {
    fn name(&self) -> &'static str {
        "matrix"
    }

    fn account(&self) -> &str {
        &self.settings.account
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
            let ended = self.run_loop(inbox, health.clone(), stop).await;
            health.update(|h| h.connected = false);
            ended
        })
    }

    fn send<'a>(
        &'a self,
        to: &'a Conversation,
        text: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.send_text(to, text, key))
    }

    fn typing<'a>(
        &'a self,
        to: &'a Conversation,
        on: bool,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.set_typing(to, on))
    }
}

// === impl ApiError ===

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Network(message) => f.write_str(message),
            ApiError::TooLarge(cap) => {
                write!(f, "the homeserver's answer was larger than {cap} bytes")
            }
            ApiError::Status { status, errcode, error, .. } => {
                write!(f, "the homeserver answered HTTP {status}")?;
                if !errcode.is_empty() {
                    write!(f, " {errcode}")?;
                }
                if !error.is_empty() {
                    write!(f, ": {error}")?;
                }
                Ok(())
            }
            ApiError::Malformed(message) => {
                write!(f, "unexpected answer from the homeserver: {message}")
            }
        }
    }
}

// === Pure parts (unit-tested in tests.rs) ===

/// Checks `homeserver` for the network rules (module doc): its origin, without a trailing slash.
fn check_homeserver(homeserver: &str, allow_private_network: bool) -> Result<String, ChannelError> {
    let url = url::Url::parse(homeserver.trim()).map_err(|e| {
        ChannelError::Fatal(format!("channels.matrix.homeserver {homeserver:?} is not a URL: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ChannelError::Fatal(format!(
            "channels.matrix.homeserver {homeserver:?} must be an http(s) URL such as https://matrix.example.org"
        )));
    }
    let origin = url.origin().ascii_serialization();
    match host_class(&url) {
        HostClass::LinkLocal => Err(ChannelError::Fatal(format!(
            "channels.matrix.homeserver {origin} is a link-local or metadata address; it is refused always"
        ))),
        HostClass::Loopback | HostClass::Private if !allow_private_network => {
            Err(ChannelError::Fatal(format!(
                "channels.matrix.homeserver {origin} is on loopback or a private network; set {PRIVATE_NETWORK_KEY}: true to allow it"
            )))
        }
        HostClass::Public if url.scheme() == "http" => Err(ChannelError::Fatal(format!(
            "channels.matrix.homeserver {origin} is a public host over plain http; use https"
        ))),
        _ => {
            // Keep a path prefix (a homeserver behind `/matrix`), drop a trailing slash.
            let path = url.path().trim_end_matches('/');
            Ok(format!("{origin}{path}"))
        }
    }
}

/// What to do with one timeline event (module doc: own messages, edits, notices, non-text and
/// oversized bodies are skipped; encrypted events are reported).
fn classify(event: &RawEvent, me: &Me) -> Verdict {
    if event.kind == EVENT_ENCRYPTED {
        return Verdict::Encrypted;
    }
    if event.kind != EVENT_MESSAGE {
        return Verdict::Skip("not a message");
    }
    if event.sender == me.user_id {
        return Verdict::Skip("own message");
    }
    if event.event_id.is_empty() || event.sender.is_empty() {
        return Verdict::Skip("no event id or sender");
    }
    let content = &event.content;
    if content["m.relates_to"]["rel_type"].as_str() == Some("m.replace") {
        return Verdict::Skip("edit");
    }
    match content["msgtype"].as_str() {
        Some(MSGTYPE_TEXT) => {}
        Some("m.notice") => return Verdict::Skip("notice"),
        None => return Verdict::Skip("redacted or empty"),
        Some(_) => {
            info!(event = %event.event_id, msgtype = %short(content["msgtype"].as_str().unwrap_or(""), 64), "Matrix message is not text; only text is passed to the agent.");
            return Verdict::Skip("not text");
        }
    }
    let Some(body) = content["body"].as_str() else { return Verdict::Skip("no body") };
    if body.len() > MAX_BODY_BYTES {
        info!(event = %event.event_id, bytes = body.len(), "Matrix message over 64 KiB skipped.");
        return Verdict::Skip("too large");
    }
    let reply_to = content["m.relates_to"]["m.in_reply_to"]["event_id"].as_str().map(str::to_owned);
    Verdict::Deliver(Candidate {
        event_id: event.event_id.clone(),
        sender: event.sender.clone(),
        mentioned: mentions_me(content, body, me),
        body: body.to_owned(),
        reply_to,
    })
}

/// `m.mentions.user_ids` names the bot, or the text holds its user id, localpart or display
/// name (as a word, case-insensitive), or the formatted body links to it.
fn mentions_me(content: &Value, body: &str, me: &Me) -> bool {
    let listed = content["m.mentions"]["user_ids"]
        .as_array()
        .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(me.user_id.as_str())));
    if listed || me.user_id.is_empty() {
        return listed;
    }
    let lower = body.to_lowercase();
    if lower.contains(&me.user_id.to_lowercase()) {
        return true;
    }
    if let Some(formatted) = content["formatted_body"].as_str() {
        let formatted = formatted.to_lowercase();
        if formatted.contains(&me.user_id.to_lowercase())
            || formatted.contains(&encode(&me.user_id).to_lowercase())
        {
            return true;
        }
    }
    let names = std::iter::once(me.localpart.as_str()).chain(me.display_name.as_deref());
    names.filter(|n| n.chars().count() >= 2).any(|name| contains_word(&lower, &name.to_lowercase()))
}

/// `needle` in `haystack` with no letter or digit right before or after it.
fn contains_word(haystack: &str, needle: &str) -> bool {
    let mut from = 0;
    while let Some(found) = haystack[from..].find(needle) {
        let start = from + found;
        let end = start + needle.len();
        let before = haystack[..start].chars().next_back();
        let after = haystack[end..].chars().next();
        if !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric) {
            return true;
        }
        from = start + haystack[start..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Where a joined room's new messages start in its timeline: `Some` when the bot joined in
/// this batch (the timeline then reaches back into history that is not for the bot): right
/// after its invite when that is in the timeline too (a DM's first words, written before the
/// bot joined, are for it), else right after its join. `None`: the whole timeline is new.
fn first_new_event(events: &[RawEvent], me: &str) -> Option<usize> {
    let own = |e: &RawEvent, membership: &str| {
        e.kind == EVENT_MEMBER
            && e.state_key.as_deref() == Some(me)
            && e.content["membership"].as_str() == Some(membership)
    };
    let join = events.iter().rposition(|e| {
        own(e, "join") && e.unsigned["prev_content"]["membership"].as_str() != Some("join")
    })?;
    let invite = events[..join].iter().rposition(|e| own(e, "invite"));
    Some(invite.unwrap_or(join) + 1)
}

/// Whether `autoJoinAllowlist` admits an invite to `room_id` (with its canonical `alias`) from
/// `inviter`.
fn invite_allowed(allowlist: &[String], room_id: &str, alias: Option<&str>, inviter: &str) -> bool {
    allowlist.iter().map(|entry| entry.trim()).any(|entry| {
        entry == "*"
            || entry == room_id
            || (!inviter.is_empty() && entry == inviter)
            || alias.is_some_and(|alias| entry.eq_ignore_ascii_case(alias))
    })
}

/// `@name:server` → `name`.
fn localpart(user_id: &str) -> &str {
    let id = user_id.strip_prefix('@').unwrap_or(user_id);
    id.split(':').next().unwrap_or(id)
}

/// The dispatcher's key as a Matrix transaction id: the same for the same key, URL-safe, and
/// bounded (a long or unusual key is hashed; the two forms cannot collide).
fn txn_id(key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        format!("hearth.{key}")
    } else {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let hex: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("hearth~{hex}")
    }
}

/// Percent-encodes a path segment or query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// At most `max` characters of `text` (server-supplied strings in logs and errors).
fn short(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn network_error(what: &str, error: &reqwest::Error) -> ApiError {
    // Named by path, not URL: the URL holds the sync filter and cursor (no secrets, but noise).
    let mut message = format!("{what}: cannot reach the homeserver");
    let mut source: Option<&dyn std::error::Error> = Some(error);
    let mut parts = Vec::new();
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && !parts.contains(&text) && !text.starts_with("error sending request")
        {
            parts.push(text);
        }
        source = e.source();
    }
    if error.is_timeout() {
        parts.insert(0, "timed out".to_owned());
    }
    if !parts.is_empty() {
        message.push_str(": ");
        message.push_str(&parts.join(": "));
    }
    ApiError::Network(short(&message, 400))
}

fn session_error(what: &str, error: ApiError) -> ChannelError {
    match &error {
        ApiError::Status { status: 401 | 403, .. } => {
            ChannelError::Fatal(format!("{what}: {error}"))
        }
        ApiError::Status { status, .. } if (400..500).contains(status) && *status != 429 => {
            ChannelError::Fatal(format!("{what}: {error}"))
        }
        _ => ChannelError::Transient(format!("{what}: {error}")),
    }
}

/// The stored cursor, if it looks like one (a corrupt file means a fresh start, not a crash).
fn read_since(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    let sane = !text.is_empty() && text.len() <= 4096 && !text.chars().any(char::is_control);
    sane.then(|| text.to_owned())
}

/// Resolves when `stop` turns `true` or its sender is gone.
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

/// Waits `wait` unless stopped first: `true` when stopped.
async fn pause(stop: &mut Stop, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => *stop.borrow(),
        () = stopped(stop) => true,
    }
}

/// DNS answers filtered by the network rules: a public name that resolves to a private
/// address is refused like a private URL (DNS rebinding).
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow_private_network: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private_network;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let answers: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = answers
                .iter()
                .copied()
                .filter(|addr| match classify_ip(addr.ip()) {
                    HostClass::Public => true,
                    HostClass::Loopback | HostClass::Private => allow,
                    HostClass::LinkLocal => false,
                })
                .collect();
            if allowed.is_empty() && !answers.is_empty() {
                let message = format!(
                    "{host} resolves to loopback, private or link-local addresses only; set {PRIVATE_NETWORK_KEY}: true for a homeserver on your network"
                );
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    message,
                )) as Box<dyn std::error::Error + Send + Sync>);
            }
            let iter: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(iter)
        })
    }
}
