//! Session store: the `SessionStore` trait and its SQLite implementation (embedded, the
//! default). The only crate that knows sqlx.
//!
//! A session key (`agent:<agentId>:main`, or a key derived from a request) names a
//! conversation. Under it lives one current transcript, named by a `SessionId` (UUID v7), whose
//! entries are numbered 1, 2, 3, ... (`Seq`). `reset` starts a new transcript under the same
//! key and keeps the old one on disk, no longer current.
//!
//! Invariant (DESIGN.md invariant 6): an entry whose `append` returned `Ok` is on disk. Each
//! append is one SQLite transaction in WAL mode with `synchronous=FULL`, so it is acknowledged
//! only after its commit record is written to the WAL and the WAL is fsynced. It survives
//! `kill -9` of the process (the write reached the OS before `append` returned) and power loss
//! or an OS crash (the fsync reached the disk, as far as the disk honors fsync; `fullfsync` is
//! on for macOS). An append that did not return `Ok` left nothing: all its entries or none.

mod error;
mod lock;
mod model;
mod rows;
mod sqlite;

use std::future::Future;
use std::pin::Pin;

pub use error::{DbError, Error};
pub use lock::{SessionGuard, SessionLocks};
pub use model::{
    Content, Entry, EntryKind, EntryMeta, NewEntry, NewSession, ParseError, ResponseLink, Seq,
    SeqRange, SessionId, SessionSummary, Timestamp, Totals, Usage,
};
pub use sqlite::{DATABASE_FILE, Durability, STATE_DIR_ENV, SqliteStore, default_database_path};

/// A boxed, sendable future: what `SessionStore` methods return, so that
/// `Arc<dyn SessionStore>` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where sessions and their transcripts live.
///
/// Object safe: the gateway holds an `Arc<dyn SessionStore>`. Methods that name a session key
/// act on the key's current session and fail with `Error::SessionNotFound` when there is none,
/// except `ensure_session` (which creates it) and the lookups (which return `None`).
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Returns the current session under `new.key`, creating it from `new` when there is none.
    /// An existing session is returned as it is (its id and agent are not changed).
    fn ensure_session(&self, new: NewSession) -> BoxFuture<'_, Result<SessionSummary, Error>>;

    /// The current session under `key`.
    fn get_session<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionSummary>, Error>>;

    /// Current sessions, newest activity first; only `agent_id`'s when given.
    fn list_sessions<'a>(
        &'a self,
        agent_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, Error>>;

    /// Appends `entries` in order, in one transaction: all are stored or none. Returns the seq
    /// assigned to each. A `Compaction` entry must replace a range that ends before its own seq
    /// and past the previous compaction's (see `history`).
    fn append<'a>(
        &'a self,
        key: &'a str,
        entries: Vec<NewEntry>,
    ) -> BoxFuture<'a, Result<Vec<Seq>, Error>>;

    /// The current session's entries in seq order. With `since_last_compaction`, the view a
    /// model should see: the newest compaction entry first, then every non-compaction entry
    /// after the range it replaces (entries a compaction kept, and everything since), in seq
    /// order. Without a compaction both views are the whole transcript.
    fn history<'a>(
        &'a self,
        key: &'a str,
        since_last_compaction: bool,
    ) -> BoxFuture<'a, Result<Vec<Entry>, Error>>;

    /// Appends a compaction entry whose `summary` replaces every entry up to and including
    /// `replaces_up_to` (and any earlier summary). The range recorded starts after the previous
    /// compaction's. Fails with `Error::InvalidCompaction` unless the range covers at least one
    /// entry not yet compacted and ends at or before the newest entry.
    fn record_compaction<'a>(
        &'a self,
        key: &'a str,
        summary: String,
        replaces_up_to: Seq,
        meta: EntryMeta,
        created_at: Timestamp,
    ) -> BoxFuture<'a, Result<Seq, Error>>;

    /// Starts a new transcript `new_session_id` under `key`, as of `at`. The old transcript
    /// stays on disk, archived: it is no longer current, `history` and `list_sessions` no longer
    /// show it, and response links keep naming it.
    fn reset<'a>(
        &'a self,
        key: &'a str,
        new_session_id: SessionId,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<SessionSummary, Error>>;

    /// Records that `response_id` was produced by the current session under `key`, for a later
    /// `previous_response_id`. Linking an id again moves it to the new session.
    fn link_response<'a>(
        &'a self,
        response_id: &'a str,
        key: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// The session `response_id` was linked to.
    fn response_session<'a>(
        &'a self,
        response_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ResponseLink>, Error>>;

    /// Waits until no other run in this process holds `key`, then holds it until the guard is
    /// dropped: one run per session. Different keys never wait on each other. Across
    /// processes, SQLite's own locking keeps the database consistent (see `SessionLocks`).
    fn lock_session<'a>(&'a self, key: &'a str) -> BoxFuture<'a, SessionGuard>;

    /// Holds `key` if no run in this process does, without waiting.
    fn try_lock_session(&self, key: &str) -> Option<SessionGuard>;
}
