//! A real Synapse (the Matrix homeserver), started on a free loopback port with a generated
//! config in a temp dir (`scripts/testbed/synapse-env.sh` installs the pinned version into a
//! venv), plus the test-side client calls a person's Matrix client would make (create a DM,
//! send a message, read a room back).
//!
//! Invariant: a [`Synapse`] owns exactly one process; dropping it kills that process and
//! nothing else. [`Synapse::restart`] keeps the data dir and the port, so a channel pointed at
//! the old origin reconnects to the same server with the same rooms.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The matrix-synapse release `scripts/testbed/synapse-env.sh` pins.
pub const SYNAPSE_VERSION: &str = "1.163.2";
/// The `server_name` of every test homeserver: user ids are `@name:hearth.test`.
pub const SERVER_NAME: &str = "hearth.test";

const SHARED_SECRET: &str = "hearth-test-registration-secret";
/// Responses are small in tests; anything past this is a harness bug, not data.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

fn setup_hint() -> String {
    "run `bash scripts/testbed/synapse-env.sh` (it installs the pinned matrix-synapse into a venv)"
        .to_owned()
}

/// The venv's python: `HEARTH_SYNAPSE_PYTHON`, else the venv `synapse-env.sh` creates.
pub fn python() -> Result<PathBuf, String> {
    let path = std::env::var_os("HEARTH_SYNAPSE_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let home =
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        let venv = std::env::var_os("HEARTH_SYNAPSE_ENV").map(PathBuf::from).unwrap_or_else(|| {
            home.join(".cache").join(format!("hearth-synapse-{SYNAPSE_VERSION}"))
        });
        venv.join("bin").join("python")
    });
    if !path.is_file() {
        return Err(format!("Synapse's python not found at {}: {}", path.display(), setup_hint()));
    }
    let check = format!(
        "import synapse, sys; sys.exit(0 if synapse.__version__ == '{SYNAPSE_VERSION}' else 1)"
    );
    match Command::new(&path)
        .args(["-c", &check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(path),
        _ => Err(format!(
            "matrix-synapse {SYNAPSE_VERSION} is not installed for {}: {}",
            path.display(),
            setup_hint()
        )),
    }
}

/// A user registered on the test homeserver, as their own client knows them.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    pub access_token: String,
}

/// A running Synapse.
#[derive(Debug)]
pub struct Synapse {
    child: Option<Child>,
    python: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Synapse {
    /// Writes a config (sqlite, no federation, rate limits out of the way, no presence),
    /// generates the signing key, starts the server and waits until
    /// `/_matrix/client/versions` answers. `Err` names the setup script when Synapse is absent.
    pub async fn start() -> Result<Self, String> {
        // Both run Python for a second or two: off the async worker threads.
        let python = tokio::task::spawn_blocking(python)
            .await
            .map_err(|e| format!("checking Synapse's python: {e}"))??;
        let dir = tempfile::Builder::new()
            .prefix("hearth-synapse-")
            .tempdir()
            .map_err(|e| format!("no temp dir: {e}"))?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        write_config(dir.path(), port).map_err(|e| format!("writing Synapse's config: {e}"))?;
        let mut generate = Command::new(&python);
        generate
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(dir.path().join("homeserver.yaml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let generated = tokio::task::spawn_blocking(move || generate.output())
            .await
            .map_err(|e| format!("running synapse --generate-keys: {e}"))?
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !generated.status.success() {
            return Err(format!(
                "synapse --generate-keys failed: {}",
                String::from_utf8_lossy(&generated.stderr)
            ));
        }
        let mut synapse = Synapse { child: None, python, dir, port };
        synapse.spawn().await?;
        Ok(synapse)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The last lines of the server's log (for a failing test's message).
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("homeserver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new(&self.python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(self.dir.path().join("homeserver.yaml"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Synapse: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "Synapse exited during startup: {status}\n{}",
                    self.log_tail()
                ));
            }
            if self
                .request("GET", "/_matrix/client/versions", None, None)
                .await
                .is_ok_and(|(s, _)| s == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("Synapse did not answer within 60 s\n{}", self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the process to exit (SIGKILL after 20 s).
    pub async fn stop(&mut self) {
        self.end(rustix::process::Signal::TERM).await;
    }

    /// SIGKILL (a crash: nothing flushed, no goodbye), then reaps the process.
    pub async fn kill(&mut self) {
        self.end(rustix::process::Signal::KILL).await;
    }

    async fn end(&mut self, signal: rustix::process::Signal) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the server (if running) and starts it again on the same data dir and port.
    pub async fn restart(&mut self) -> Result<(), String> {
        self.stop().await;
        // The old socket may linger a moment; the listener retries for a while inside spawn().
        self.spawn().await
    }

    /// Registers a user through the shared-secret admin API (`/_synapse/admin/v1/register`,
    /// nonce + HMAC-SHA1): `(user_id, access_token)`.
    pub async fn register(
        &self,
        user: &str,
        password: &str,
        admin: bool,
    ) -> Result<(String, String), String> {
        let (_, nonce) = self.call("GET", "/_synapse/admin/v1/register", None, None).await?;
        let nonce = nonce["nonce"].as_str().ok_or("no nonce in the register answer")?.to_owned();
        let key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            SHARED_SECRET.as_bytes(),
        );
        let mut message = Vec::new();
        for (i, part) in [nonce.as_str(), user, password, if admin { "admin" } else { "notadmin" }]
            .iter()
            .enumerate()
        {
            if i > 0 {
                message.push(0);
            }
            message.extend_from_slice(part.as_bytes());
        }
        let mac: String =
            ring::hmac::sign(&key, &message).as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let body = json!({"nonce": nonce, "username": user, "password": password, "admin": admin, "mac": mac});
        let (_, answer) =
            self.call("POST", "/_synapse/admin/v1/register", None, Some(&body)).await?;
        match (answer["user_id"].as_str(), answer["access_token"].as_str()) {
            (Some(id), Some(token)) => Ok((id.to_owned(), token.to_owned())),
            _ => Err(format!("register {user}: unexpected answer {answer}")),
        }
    }

    /// [`Synapse::register`] as a [`User`].
    pub async fn user(&self, name: &str) -> Result<User, String> {
        let (user_id, access_token) =
            self.register(name, &format!("{name}-password"), false).await?;
        Ok(User { user_id, access_token })
    }

    /// A direct chat created by `user` with `invitee` invited (`is_direct`, trusted private
    /// chat), as Element creates one: the room id.
    pub async fn create_dm(&self, user: &User, invitee: &str) -> Result<String, String> {
        let body =
            json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [invitee]});
        self.create_room(user, &body).await
    }

    /// A group room named `name` created by `user` with `invite` invited: the room id.
    pub async fn create_group(
        &self,
        user: &User,
        name: &str,
        invite: &[&str],
    ) -> Result<String, String> {
        let body = json!({"preset": "private_chat", "name": name, "invite": invite});
        self.create_room(user, &body).await
    }

    /// `POST /createRoom` with any body: the room id.
    pub async fn create_room(&self, user: &User, body: &Value) -> Result<String, String> {
        let (_, answer) = self
            .call("POST", "/_matrix/client/v3/createRoom", Some(&user.access_token), Some(body))
            .await?;
        answer["room_id"].as_str().map(str::to_owned).ok_or_else(|| format!("createRoom: {answer}"))
    }

    /// `user` joins `room`.
    pub async fn join(&self, user: &User, room: &str) -> Result<(), String> {
        let path = format!("/_matrix/client/v3/join/{}", encode(room));
        self.call("POST", &path, Some(&user.access_token), Some(&json!({}))).await.map(|_| ())
    }

    /// `user` invites `invitee` into `room`.
    pub async fn invite(&self, user: &User, room: &str, invitee: &str) -> Result<(), String> {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", encode(room));
        self.call("POST", &path, Some(&user.access_token), Some(&json!({"user_id": invitee})))
            .await
            .map(|_| ())
    }

    /// Sends a text message; `mentions` fill `m.mentions.user_ids` (as a client does when the
    /// user picks someone from the completion list). The event id.
    pub async fn send_text(
        &self,
        user: &User,
        room: &str,
        body: &str,
        mentions: &[&str],
    ) -> Result<String, String> {
        let mut content = json!({"msgtype": "m.text", "body": body});
        if !mentions.is_empty() {
            content["m.mentions"] = json!({"user_ids": mentions});
        }
        self.send_event(user, room, "m.room.message", &content).await
    }

    /// Sends any room event (`m.room.encrypted`, a notice, an edit): the event id.
    pub async fn send_event(
        &self,
        user: &User,
        room: &str,
        event_type: &str,
        content: &Value,
    ) -> Result<String, String> {
        static TXN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let txn = TXN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/test-{}-{txn}",
            encode(room),
            encode(event_type),
            std::process::id()
        );
        let (_, answer) = self.call("PUT", &path, Some(&user.access_token), Some(content)).await?;
        answer["event_id"].as_str().map(str::to_owned).ok_or_else(|| format!("send: {answer}"))
    }

    /// Sets a state event (`m.room.encryption` to make a room encrypted).
    pub async fn set_state(
        &self,
        user: &User,
        room: &str,
        event_type: &str,
        content: &Value,
    ) -> Result<(), String> {
        let path =
            format!("/_matrix/client/v3/rooms/{}/state/{}/", encode(room), encode(event_type));
        self.call("PUT", &path, Some(&user.access_token), Some(content)).await.map(|_| ())
    }

    /// The room's latest events (up to 100), oldest first, as `user` sees them (`/messages`).
    pub async fn messages(&self, user: &User, room: &str) -> Result<Vec<Value>, String> {
        let path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100", encode(room));
        let (_, answer) = self.call("GET", &path, Some(&user.access_token), None).await?;
        let mut events = answer["chunk"].as_array().cloned().unwrap_or_default();
        events.reverse();
        Ok(events)
    }

    /// The user ids joined to `room`, as `user` sees them.
    pub async fn joined_members(&self, user: &User, room: &str) -> Result<Vec<String>, String> {
        let path = format!("/_matrix/client/v3/rooms/{}/joined_members", encode(room));
        let (_, answer) = self.call("GET", &path, Some(&user.access_token), None).await?;
        Ok(answer["joined"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }

    /// Waits (up to `within`) until `member` has joined `room`.
    pub async fn wait_joined(
        &self,
        user: &User,
        room: &str,
        member: &str,
        within: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if self.joined_members(user, room).await?.iter().any(|m| m == member) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{member} did not join {room} within {within:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A request that must answer 2xx: `(status, json body)`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let (status, answer) = self.request(method, path, token, body).await?;
        if (200..300).contains(&status) {
            Ok((status, answer))
        } else {
            Err(format!("{method} {path}: HTTP {status}: {answer}"))
        }
    }

    /// One HTTP/1.0 request to the server (no keep-alive, no chunking): `(status, json body)`
    /// (`Value::Null` when the body is not JSON).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let exchange = async {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            let body = body.map(Value::to_string).unwrap_or_default();
            let mut head = format!(
                "{method} {path} HTTP/1.0\r\nhost: 127.0.0.1:{}\r\ncontent-length: {}\r\n",
                self.port,
                body.len()
            );
            if !body.is_empty() {
                head.push_str("content-type: application/json\r\n");
            }
            if let Some(token) = token {
                head.push_str(&format!("authorization: Bearer {token}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(body.as_bytes()).await?;
            let mut response = Vec::new();
            (&mut stream).take(MAX_RESPONSE_BYTES as u64).read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within 30 s"))?
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Percent-encodes one path segment (room ids hold `!` and `:`, aliases `#`).
pub fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn write_config(dir: &Path, port: u16) -> std::io::Result<()> {
    let d = dir.display();
    // Every rate limit far out of the way: tests send bursts a person never would.
    let wide = "{per_second: 100000, burst_count: 100000}";
    let config = format!(
        r#"server_name: "{SERVER_NAME}"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {d}/homeserver.db
log_config: {d}/log.yaml
media_store_path: {d}/media
signing_key_path: {d}/signing.key
registration_shared_secret: "{SHARED_SECRET}"
macaroon_secret_key: "hearth-test-macaroon"
form_secret: "hearth-test-form"
report_stats: false
suppress_key_server_warning: true
trusted_key_servers: []
federation_domain_whitelist: []
presence:
  enabled: false
enable_metrics: false
url_preview_enabled: false
enable_registration: false
rc_message: {wide}
rc_login:
  address: {wide}
  account: {wide}
  failed_attempts: {wide}
rc_registration: {wide}
rc_joins:
  local: {wide}
  remote: {wide}
rc_joins_per_room: {wide}
rc_invites:
  per_room: {wide}
  per_user: {wide}
  per_issuer: {wide}
rc_admin_redaction: {wide}
rc_3pid_validation: {wide}
rc_presence:
  per_user: {wide}
rc_delayed_event_mgmt: {wide}
"#
    );
    std::fs::write(dir.join("homeserver.yaml"), config)?;
    let log = format!(
        r#"version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {d}/homeserver.log
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"#
    );
    std::fs::write(dir.join("log.yaml"), log)
}
