//! Pairing (OpenClaw's rules, spec §10.3): an unknown sender gets a one-time code, the owner
//! approves it with `hearth pairing approve <channel> <CODE>`, and the sender is allowed from
//! then on.
//!
//! Two small JSON files per channel account in `<state dir>/credentials/`:
//! `<channel>[-<account>]-pairing.json` (pending codes) and `<channel>[-<account>]-allowFrom.json`
//! (approved senders; merged with the config's `allowFrom`). Each is written atomically (a
//! temporary file, fsync, rename), and every read-modify-write holds an OS lock on a lock file
//! beside them, so the CLI and a running gateway never lose each other's changes. The gateway
//! re-reads the approvals when a sender it does not know writes, so an approval made while it
//! runs counts at once.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a code stays valid.
pub const CODE_TTL: Duration = Duration::from_secs(3600);
/// Pending requests per channel account at most; a further stranger gets nothing.
pub const MAX_PENDING: usize = 3;
/// Characters of a code.
pub const CODE_LEN: usize = 8;
/// Upper-case letters and digits without the look-alikes `0 O 1 I` (32 symbols).
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The account id of a channel without `accounts`; its files carry no account part.
const DEFAULT_ACCOUNT: &str = "default";
/// Longest sender id or display name kept in a pending request.
const MAX_FIELD_CHARS: usize = 256;
/// Approved senders kept at most (the file stays small).
const MAX_APPROVED: usize = 10_000;

/// One pending request, as `pairing list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    /// The sender's id on the channel.
    pub id: String,
    pub code: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The display name the channel gave, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl PendingRequest {
    /// Unix seconds at which the code stops working.
    pub fn expires_at(&self) -> u64 {
        self.created_at + CODE_TTL.as_secs()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PendingFile {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    requests: Vec<PendingRequest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllowFile {
    #[serde(default)]
    version: u32,
    #[serde(default)]
    allow_from: Vec<String>,
}

/// What a stranger's message leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A new code: send it to the sender (once).
    NewCode(String),
    /// The sender has a code that is still valid: send nothing.
    AlreadyPending,
    /// [`MAX_PENDING`] others are waiting: send nothing.
    Full,
}

/// Why an approval failed.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("no pending request has the code {0} (it may have expired: codes last one hour)")]
    Unknown(String),
    #[error("cannot update the pairing files: {0}")]
    Io(#[from] io::Error),
}

/// The pairing files of one channel account.
#[derive(Debug, Clone)]
pub struct PairingStore {
    dir: PathBuf,
    stem: String,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(MAX_FIELD_CHARS).collect()
}

/// A fresh code from the OS's random source.
pub fn new_code() -> io::Result<String> {
    let mut bytes = [0u8; CODE_LEN];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    // 256 is a multiple of 32: masking keeps every symbol equally likely.
    Ok(bytes.iter().map(|b| CODE_ALPHABET[usize::from(b & 31)] as char).collect())
}

impl PairingStore {
    /// The files of `channel`'s `account` under `<state_dir>/credentials/`.
    pub fn new(state_dir: &Path, channel: &str, account: &str) -> Self {
        let stem = if account == DEFAULT_ACCOUNT {
            channel.to_owned()
        } else {
            format!("{channel}-{account}")
        };
        PairingStore { dir: state_dir.join("credentials"), stem }
    }

    /// `credentials/<channel>[-<account>]-allowFrom.json`.
    pub fn allow_path(&self) -> PathBuf {
        self.dir.join(format!("{}-allowFrom.json", self.stem))
    }

    /// `credentials/<channel>[-<account>]-pairing.json`.
    pub fn pending_path(&self) -> PathBuf {
        self.dir.join(format!("{}-pairing.json", self.stem))
    }

    fn lock(&self) -> io::Result<File> {
        fs::create_dir_all(&self.dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(format!(".{}.lock", self.stem)))?;
        file.lock()?;
        Ok(file)
    }

    /// The approved senders (empty when nobody was approved yet).
    pub fn approved(&self) -> io::Result<Vec<String>> {
        Ok(read_json::<AllowFile>(&self.allow_path())?.allow_from)
    }

    /// Whether `sender` was approved.
    pub fn is_approved(&self, sender: &str) -> io::Result<bool> {
        Ok(self.approved()?.iter().any(|s| s == sender))
    }

    /// The requests whose code is still valid at `now`.
    pub fn pending(&self, now: SystemTime) -> io::Result<Vec<PendingRequest>> {
        let now = unix(now);
        let file: PendingFile = read_json(&self.pending_path())?;
        Ok(file.requests.into_iter().filter(|r| r.expires_at() > now).collect())
    }

    /// A stranger wrote: a new code, or nothing when they have one or the queue is full.
    pub fn request(
        &self,
        sender: &str,
        name: Option<&str>,
        now: SystemTime,
    ) -> io::Result<Request> {
        let _lock = self.lock()?;
        let now_s = unix(now);
        let mut file: PendingFile = read_json(&self.pending_path())?;
        file.requests.retain(|r| r.expires_at() > now_s);
        let outcome = if file.requests.iter().any(|r| r.id == sender) {
            Request::AlreadyPending
        } else if file.requests.len() >= MAX_PENDING {
            Request::Full
        } else {
            let mut code = new_code()?;
            while file.requests.iter().any(|r| r.code == code) {
                code = new_code()?;
            }
            file.requests.push(PendingRequest {
                id: clip(sender),
                code: code.clone(),
                created_at: now_s,
                name: name.map(clip).filter(|n| !n.is_empty()),
            });
            Request::NewCode(code)
        };
        file.version = 1;
        write_json(&self.pending_path(), &file)?;
        Ok(outcome)
    }

    /// Approves the pending request with `code` (any case): its sender is allowed from now on.
    pub fn approve(&self, code: &str, now: SystemTime) -> Result<PendingRequest, ApproveError> {
        let _lock = self.lock()?;
        let now_s = unix(now);
        let wanted = code.trim().to_ascii_uppercase();
        let mut file: PendingFile = read_json(&self.pending_path())?;
        file.requests.retain(|r| r.expires_at() > now_s);
        let Some(at) = file.requests.iter().position(|r| r.code == wanted) else {
            return Err(ApproveError::Unknown(wanted.chars().take(16).collect()));
        };
        let request = file.requests.remove(at);
        let mut allow: AllowFile = read_json(&self.allow_path())?;
        if !allow.allow_from.contains(&request.id) {
            allow.allow_from.push(request.id.clone());
        }
        if allow.allow_from.len() > MAX_APPROVED {
            let extra = allow.allow_from.len() - MAX_APPROVED;
            allow.allow_from.drain(..extra);
        }
        allow.version = 1;
        // The approval first: a crash between the two leaves a used code, never a lost approval.
        write_json(&self.allow_path(), &allow)?;
        file.version = 1;
        write_json(&self.pending_path(), &file)?;
        Ok(request)
    }
}

/// Reads a small JSON file; a missing file is the default. A file that is not what hearth wrote
/// is an error (never silently replaced: it may hold approvals).
fn read_json<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    match fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Writes `value` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// folder.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    crate::state_file::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn codes_use_the_alphabet_without_look_alikes() {
        for _ in 0..200 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
        }
    }

    #[test]
    fn one_code_per_sender_per_hour_and_three_pending_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairingStore::new(dir.path(), "webhook", "default");
        let t0 = 1_800_000_000;
        let Request::NewCode(alice) = store.request("alice", Some("Alice"), at(t0)).unwrap() else {
            panic!("a first request gets a code")
        };
        assert_eq!(store.request("alice", None, at(t0 + 60)).unwrap(), Request::AlreadyPending);
        assert!(matches!(store.request("bob", None, at(t0)).unwrap(), Request::NewCode(_)));
        assert!(matches!(store.request("carol", None, at(t0)).unwrap(), Request::NewCode(_)));
        assert_eq!(store.request("dave", None, at(t0)).unwrap(), Request::Full);
        assert_eq!(store.pending(at(t0)).unwrap().len(), 3);
        // An hour later every code has expired: alice gets a new one, dave gets one too.
        let later = at(t0 + 3600);
        assert!(store.pending(later).unwrap().is_empty());
        let Request::NewCode(again) = store.request("alice", None, later).unwrap() else {
            panic!()
        };
        assert_ne!(again, alice);
        assert!(matches!(store.request("dave", None, later).unwrap(), Request::NewCode(_)));
        assert!(store.path_files_exist());
    }

    impl PairingStore {
        fn path_files_exist(&self) -> bool {
            self.pending_path().exists()
        }
    }

    #[test]
    fn approving_moves_the_sender_to_the_allow_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairingStore::new(dir.path(), "telegram", "work");
        assert!(store.allow_path().ends_with("credentials/telegram-work-allowFrom.json"));
        assert!(store.pending_path().ends_with("credentials/telegram-work-pairing.json"));
        let t0 = 1_800_000_000;
        let Request::NewCode(code) = store.request("12345", None, at(t0)).unwrap() else {
            panic!()
        };
        assert!(!store.is_approved("12345").unwrap());
        let done = store.approve(&code.to_ascii_lowercase(), at(t0 + 10)).unwrap();
        assert_eq!(done.id, "12345");
        assert!(store.is_approved("12345").unwrap());
        assert!(store.pending(at(t0 + 10)).unwrap().is_empty());
        // A code works once.
        assert!(matches!(store.approve(&code, at(t0 + 11)), Err(ApproveError::Unknown(_))));
        // An expired code does not work at all.
        let Request::NewCode(late) = store.request("999", None, at(t0)).unwrap() else { panic!() };
        assert!(matches!(store.approve(&late, at(t0 + 3601)), Err(ApproveError::Unknown(_))));
        assert!(!store.is_approved("999").unwrap());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairingStore::new(dir.path(), "webhook", "default");
        fs::create_dir_all(store.allow_path().parent().unwrap()).unwrap();
        fs::write(store.allow_path(), b"\xff\xfe not json").unwrap();
        assert!(store.approved().is_err());
        assert_eq!(fs::read(store.allow_path()).unwrap(), b"\xff\xfe not json");
    }
}
