//! One gateway per state directory: `hearth gateway run` holds an exclusive lock on
//! `<state>/gateway.lock` for as long as it runs, and writes who it is (pid, port, a per-run
//! local key) to `<state>/gateway.json`, readable by its owner only.
//!
//! Invariants: a second gateway on the same state directory refuses to start (two processes
//! would interleave turns of one session); the lock is the operating system's, so a gateway
//! killed with SIGKILL leaves no stale lock. `hearth models status` talks to the gateway named
//! there with the per-run key, so it never hands the gateway token to whatever process happens
//! to listen on the configured port.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const LOCK_FILE: &str = "gateway.lock";
const INFO_FILE: &str = "gateway.json";

/// What a running gateway says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub pid: u32,
    /// The address to reach it on (a loopback address when it listens on all of them).
    #[serde(default = "loopback")]
    pub host: std::net::IpAddr,
    pub port: u16,
    /// A random key the gateway accepts on `GET /hearth/*` for this run only.
    #[serde(rename = "localKey")]
    pub local_key: String,
}

fn loopback() -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 1])
}

/// The lock, held while the gateway runs.
#[derive(Debug)]
pub struct GatewayLock {
    _file: File,
    info: PathBuf,
}

impl Drop for GatewayLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.info);
    }
}

/// The state directory sessions live in (`HEARTH_STATE_DIR`, else `~/.hearth/state`).
pub fn state_dir() -> Option<PathBuf> {
    hearth_store::default_database_path(None).ok()?.parent().map(Path::to_path_buf)
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another gateway holds it; what it wrote about itself, if readable.
    Held(Option<RunInfo>),
    Io(std::io::Error),
}

fn open_lock(dir: &Path) -> std::io::Result<File> {
    std::fs::create_dir_all(dir)?;
    OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE))
}

/// Takes the lock of `dir` and records where the gateway listens and `local_key`.
pub fn acquire(
    dir: &Path,
    addr: std::net::SocketAddr,
    local_key: &str,
) -> Result<GatewayLock, LockError> {
    let file = open_lock(dir).map_err(LockError::Io)?;
    // `running` (a `models status` next door) holds the lock for a moment: try a few times.
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => return Err(LockError::Held(read_info(dir))),
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => {
            std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        }
        ip if ip.is_unspecified() => loopback(),
        ip => ip,
    };
    let info = RunInfo {
        pid: std::process::id(),
        host,
        port: addr.port(),
        local_key: local_key.to_owned(),
    };
    let path = dir.join(INFO_FILE);
    let text = serde_json::to_vec(&info).map_err(|e| LockError::Io(e.into()))?;
    write_private(&path, &text).map_err(LockError::Io)?;
    Ok(GatewayLock { _file: file, info: path })
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = OpenOptions::new();
    options.create_new(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn read_info(dir: &Path) -> Option<RunInfo> {
    let text = std::fs::read(dir.join(INFO_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The gateway running on `dir`, if one holds its lock.
pub fn running(dir: &Path) -> Option<RunInfo> {
    let file = File::open(dir.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        // Nobody holds it: no gateway runs here (the lock is released when `file` drops).
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => read_info(dir),
        Err(TryLockError::Error(_)) => None,
    }
}

/// 32 random bytes as hex, from the operating system.
pub fn random_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
