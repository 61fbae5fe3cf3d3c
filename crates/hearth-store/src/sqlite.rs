//! The embedded SQLite store.
//!
//! Durability (DESIGN.md invariant 6): every connection runs in WAL mode with
//! `synchronous=FULL`, so each commit fsyncs the WAL before it returns, and an entry is
//! acknowledged (its `append` returns `Ok`) only after its transaction committed. Checkpoints
//! copy the WAL into the main file later; a crash before that replays the WAL on the next open.
//!
//! Concurrency: writes go through a pool of exactly one connection, so in-process writers queue
//! in the pool instead of spinning on `SQLITE_BUSY`, and every write transaction starts with
//! `BEGIN IMMEDIATE`, so a writer in another process waits (up to the busy timeout) for the
//! write lock instead of failing halfway through a read-then-write. Reads use a separate pool
//! and see a consistent snapshot without blocking the writer.
//!
//! Schema: `migrations/*.sql`, embedded with `include_str!` and applied at open by sqlx's
//! migrator (no `migrate!` macro, so nothing needs a database or `DATABASE_URL` at build time).
//! Queries use the runtime `sqlx::query` API for the same reason.

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::error::Error;
use crate::lock::{SessionGuard, SessionLocks};
use crate::model::{
    Content, Entry, EntryMeta, NewEntry, NewSession, ResponseLink, Seq, SeqRange, SessionId,
    SessionSummary, Timestamp,
};
use crate::rows::{EntryRow, ResponseRow, SessionRow, select_entries, select_sessions, to_i64};
use crate::{BoxFuture, SessionStore};

/// The database file name inside the state directory.
pub const DATABASE_FILE: &str = "hearth.sqlite";

/// The variable that overrides the state directory.
pub const STATE_DIR_ENV: &str = "HEARTH_STATE_DIR";

/// How long a write waits for another process's write lock before failing with a busy error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reader connections (writes always use one connection).
const MAX_READERS: u32 = 4;

/// Session keys are routing selectors, not documents.
const MAX_KEY_BYTES: usize = 1024;

/// A session store in one SQLite database file (or in memory, for tests).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    locks: SessionLocks,
    path: Option<PathBuf>,
}

/// The durability settings of the writer connection, as SQLite reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `wal` for a file database.
    pub journal_mode: String,
    /// `off`, `normal`, `full` or `extra`; `full` for a file database.
    pub synchronous: String,
    pub busy_timeout_ms: i64,
}

/// What a write transaction needs to know about the current session.
struct Current {
    key: String,
    row: SessionRow,
    session_id: SessionId,
}

/// Returns where the default database lives: `<state_dir>/hearth.sqlite` for an explicit
/// `state_dir`, else `$HEARTH_STATE_DIR/hearth.sqlite`, else `~/.hearth/state/hearth.sqlite`.
///
/// # Errors
///
/// `Error::NoStateDir` when no state directory is given and neither `HEARTH_STATE_DIR` nor a
/// home directory is known.
pub fn default_database_path(state_dir: Option<&Path>) -> Result<PathBuf, Error> {
    resolve_database_path(state_dir, std::env::var_os(STATE_DIR_ENV), std::env::home_dir())
}

fn resolve_database_path(
    state_dir: Option<&Path>,
    env_state_dir: Option<OsString>,
    home: Option<PathBuf>,
) -> Result<PathBuf, Error> {
    if let Some(dir) = state_dir {
        return Ok(dir.join(DATABASE_FILE));
    }
    if let Some(dir) = env_state_dir.filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join(DATABASE_FILE));
    }
    let home = home.filter(|home| !home.as_os_str().is_empty()).ok_or(Error::NoStateDir)?;
    Ok(home.join(".hearth").join("state").join(DATABASE_FILE))
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("sessions"),
        MigrationType::Simple,
        include_str!("../migrations/0001_sessions.sql").into_sql_str(),
        false,
    )])
}

fn check_key(key: &str) -> Result<(), Error> {
    let reason = if key.is_empty() {
        "empty"
    } else if key.len() > MAX_KEY_BYTES {
        "longer than 1024 bytes"
    } else if key.chars().any(char::is_control) {
        "contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey { key: key.chars().take(80).collect(), reason })
}

fn not_found(key: &str) -> Error {
    Error::SessionNotFound { key: key.to_owned() }
}

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the database at `path` and
    /// brings its schema up to date.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created, the file cannot be opened as SQLite, or a
    /// migration fails (including a database written by a newer hearth).
    pub async fn open(path: &Path) -> Result<Self, Error> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::CreateDir { path: parent.to_owned(), source })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Only macOS distinguishes fsync from a flush to stable storage; elsewhere a no-op.
            .pragma("fullfsync", "ON")
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // A local file does not drop connections: skip sqlx's ping before each acquire.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(Error::open(path.to_owned()))?;
        migrator().run(&writer).await.map_err(Error::migrate)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(MAX_READERS)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(Error::open(path.to_owned()))?;
        Ok(Self { writer, reader, locks: SessionLocks::new(), path: Some(path.to_owned()) })
    }

    /// Opens the default database (see `default_database_path`).
    ///
    /// # Errors
    ///
    /// As `default_database_path` and `open`.
    pub async fn open_default(state_dir: Option<&Path>) -> Result<Self, Error> {
        Self::open(&default_database_path(state_dir)?).await
    }

    /// A private in-memory database, gone when the store (and every clone) is dropped. One
    /// connection serves reads and writes, so nothing here is durable: for tests only.
    ///
    /// # Errors
    ///
    /// When SQLite cannot open a connection or the migrations fail.
    pub async fn in_memory() -> Result<Self, Error> {
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The database lives only as long as its connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(Error::open(PathBuf::from(":memory:")))?;
        migrator().run(&pool).await.map_err(Error::migrate)?;
        Ok(Self { writer: pool.clone(), reader: pool, locks: SessionLocks::new(), path: None })
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The per-session run locks of this store.
    pub fn locks(&self) -> &SessionLocks {
        &self.locks
    }

    /// Closes every connection, waiting for operations in flight. SQLite checkpoints the WAL
    /// into the main file when the last connection closes.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// Runs `PRAGMA integrity_check` and returns its lines (`["ok"]` when healthy).
    ///
    /// # Errors
    ///
    /// When the check cannot run.
    pub async fn integrity_check(&self) -> Result<Vec<String>, Error> {
        sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
            .fetch_all(&self.reader)
            .await
            .map_err(Error::db("integrity check"))
    }

    /// Reads the writer connection's journal mode, synchronous level and busy timeout.
    ///
    /// # Errors
    ///
    /// When the pragmas cannot be read.
    pub async fn durability(&self) -> Result<Durability, Error> {
        let mut conn = self.writer.acquire().await.map_err(Error::db("acquire"))?;
        let journal_mode = sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("reading pragmas"))?;
        let synchronous = sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("reading pragmas"))?;
        let busy_timeout_ms = sqlx::query_scalar::<_, i64>("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .map_err(Error::db("reading pragmas"))?;
        let synchronous = match synchronous {
            0 => "off",
            1 => "normal",
            2 => "full",
            3 => "extra",
            _ => "unknown",
        };
        Ok(Durability { journal_mode, synchronous: synchronous.to_owned(), busy_timeout_ms })
    }

    async fn current(conn: &mut SqliteConnection, key: &str) -> Result<Option<SessionRow>, Error> {
        let row = sqlx::query(select_sessions!("WHERE session_key = ? AND archived_at_ms IS NULL"))
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::db("reading a session"))?;
        row.as_ref().map(SessionRow::read).transpose().map_err(Error::db("reading a session"))
    }

    async fn current_for_write(conn: &mut SqliteConnection, key: &str) -> Result<Current, Error> {
        let row = Self::current(conn, key).await?.ok_or_else(|| not_found(key))?;
        Ok(Current { key: key.to_owned(), session_id: row.session_id()?, row })
    }

    /// Inserts `entries` after the current session's last entry and updates its counters.
    /// Runs inside the caller's transaction.
    async fn insert_entries(
        conn: &mut SqliteConnection,
        current: &Current,
        entries: Vec<NewEntry>,
    ) -> Result<Vec<Seq>, Error> {
        let row = &current.row;
        let mut seq = Seq::new(row.last_seq);
        let mut last_compaction_seq = row.last_compaction_seq;
        let mut compacted_through = row.compacted_through;
        let mut updated_at = row.updated_at_ms;
        let (mut compactions, mut input, mut output, mut cache_read, mut cache_write) =
            (0_i64, 0_i64, 0_i64, 0_i64, 0_i64);
        let (mut estimated, mut cost) = (0_i64, 0.0_f64);
        let mut seqs = Vec::with_capacity(entries.len());
        for entry in entries {
            seq = seq.next();
            if let Content::Compaction { replaces, .. } = &entry.content {
                check_compaction(&current.key, *replaces, seq, compacted_through)?;
                compactions += 1;
                last_compaction_seq = seq.get();
                compacted_through = replaces.last.get();
            }
            if let Some(usage) = entry.meta.usage {
                input = input.saturating_add(to_i64(usage.input_tokens));
                output = output.saturating_add(to_i64(usage.output_tokens));
                cache_read = cache_read.saturating_add(to_i64(usage.cache_read_tokens));
                cache_write = cache_write.saturating_add(to_i64(usage.cache_write_tokens));
            }
            estimated = estimated.saturating_add(entry.meta.token_estimate.map_or(0, to_i64));
            cost += entry.meta.cost_usd.unwrap_or(0.0);
            updated_at = updated_at.max(entry.created_at.as_unix_millis());
            EntryRow::from_new(current.session_id, seq, entry)
                .insert(&mut *conn)
                .await
                .map_err(Error::db("appending an entry"))?;
            seqs.push(seq);
        }
        sqlx::query(
            "UPDATE sessions SET last_seq = ?, entry_count = entry_count + ?, \
             compaction_count = compaction_count + ?, last_compaction_seq = ?, \
             compacted_through = ?, updated_at_ms = ?, input_tokens = input_tokens + ?, \
             output_tokens = output_tokens + ?, cache_read_tokens = cache_read_tokens + ?, \
             cache_write_tokens = cache_write_tokens + ?, \
             estimated_tokens = estimated_tokens + ?, cost_usd = cost_usd + ? \
             WHERE session_id = ?",
        )
        .bind(seq.get())
        .bind(i64::try_from(seqs.len()).unwrap_or(i64::MAX))
        .bind(compactions)
        .bind(last_compaction_seq)
        .bind(compacted_through)
        .bind(updated_at)
        .bind(input)
        .bind(output)
        .bind(cache_read)
        .bind(cache_write)
        .bind(estimated)
        .bind(cost)
        .bind(&row.session_id)
        .execute(&mut *conn)
        .await
        .map_err(Error::db("updating session counters"))?;
        Ok(seqs)
    }

    /// Runs an entry query whose parameters are `?1` session id and `?2` a seq.
    async fn select_entries(
        conn: &mut SqliteConnection,
        sql: &'static str,
        session_id: &str,
        seq: i64,
    ) -> Result<Vec<Entry>, Error> {
        let rows = sqlx::query(sql)
            .bind(session_id)
            .bind(seq)
            .fetch_all(&mut *conn)
            .await
            .map_err(Error::db("reading history"))?;
        rows.iter()
            .map(|row| {
                let row = EntryRow::read(row).map_err(Error::db("reading history"))?;
                Entry::try_from(row)
            })
            .collect()
    }

    async fn ensure_session_impl(&self, new: NewSession) -> Result<SessionSummary, Error> {
        check_key(&new.key)?;
        // Every turn calls this; the common case (the session exists) needs no write lock.
        if let Some(session) = self.get_session_impl(&new.key).await? {
            return Ok(session);
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(Error::db("begin"))?;
        if let Some(row) = Self::current(&mut tx, &new.key).await? {
            return SessionSummary::try_from(row);
        }
        insert_session(&mut tx, &new).await?;
        let row = Self::current(&mut tx, &new.key).await?.ok_or_else(|| not_found(&new.key))?;
        tx.commit().await.map_err(Error::db("commit"))?;
        SessionSummary::try_from(row)
    }

    async fn get_session_impl(&self, key: &str) -> Result<Option<SessionSummary>, Error> {
        let mut conn = self.reader.acquire().await.map_err(Error::db("acquire"))?;
        Self::current(&mut conn, key).await?.map(SessionSummary::try_from).transpose()
    }

    async fn list_sessions_impl(
        &self,
        agent_id: Option<&str>,
    ) -> Result<Vec<SessionSummary>, Error> {
        let rows = sqlx::query(select_sessions!(
            "WHERE archived_at_ms IS NULL AND (?1 IS NULL OR agent_id = ?1) ",
            "ORDER BY updated_at_ms DESC, session_key"
        ))
        .bind(agent_id)
        .fetch_all(&self.reader)
        .await
        .map_err(Error::db("listing sessions"))?;
        rows.iter()
            .map(|row| {
                let row = SessionRow::read(row).map_err(Error::db("listing sessions"))?;
                SessionSummary::try_from(row)
            })
            .collect()
    }

    async fn append_impl(&self, key: &str, entries: Vec<NewEntry>) -> Result<Vec<Seq>, Error> {
        check_key(key)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(Error::db("begin"))?;
        let current = Self::current_for_write(&mut tx, key).await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let seqs = Self::insert_entries(&mut tx, &current, entries).await?;
        // The acknowledgement point: with synchronous=FULL the commit returns after the fsync.
        tx.commit().await.map_err(Error::db("commit"))?;
        Ok(seqs)
    }

    async fn history_impl(
        &self,
        key: &str,
        since_last_compaction: bool,
    ) -> Result<Vec<Entry>, Error> {
        // One read transaction, so the session row and its entries are the same snapshot.
        let mut tx = self.reader.begin().await.map_err(Error::db("begin"))?;
        let row = Self::current(&mut tx, key).await?.ok_or_else(|| not_found(key))?;
        let all = select_entries!("WHERE session_id = ?1 AND seq > ?2 ORDER BY seq");
        if !since_last_compaction || row.last_compaction_seq == 0 {
            return Self::select_entries(&mut tx, all, &row.session_id, 0).await;
        }
        let summary = select_entries!("WHERE session_id = ?1 AND seq = ?2");
        let mut view =
            Self::select_entries(&mut tx, summary, &row.session_id, row.last_compaction_seq)
                .await?;
        let rest = select_entries!(
            "WHERE session_id = ?1 AND seq > ?2 AND kind <> 'compaction' ORDER BY seq"
        );
        view.extend(
            Self::select_entries(&mut tx, rest, &row.session_id, row.compacted_through).await?,
        );
        Ok(view)
    }

    async fn record_compaction_impl(
        &self,
        key: &str,
        summary: String,
        replaces_up_to: Seq,
        meta: EntryMeta,
        created_at: Timestamp,
    ) -> Result<Seq, Error> {
        check_key(key)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(Error::db("begin"))?;
        let current = Self::current_for_write(&mut tx, key).await?;
        if replaces_up_to.get() > current.row.last_seq {
            return Err(Error::InvalidCompaction {
                key: key.to_owned(),
                reason: format!(
                    "replaces up to {replaces_up_to}, past the newest entry {}",
                    current.row.last_seq
                ),
            });
        }
        let replaces = SeqRange {
            first: Seq::new(current.row.compacted_through).next(),
            last: replaces_up_to,
        };
        let entry =
            NewEntry { content: Content::Compaction { summary, replaces }, meta, created_at };
        let seqs = Self::insert_entries(&mut tx, &current, vec![entry]).await?;
        tx.commit().await.map_err(Error::db("commit"))?;
        seqs.first().copied().ok_or_else(|| Error::corrupt("compaction got no seq"))
    }

    async fn reset_impl(
        &self,
        key: &str,
        new_session_id: SessionId,
        at: Timestamp,
    ) -> Result<SessionSummary, Error> {
        check_key(key)?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(Error::db("begin"))?;
        let current = Self::current_for_write(&mut tx, key).await?;
        sqlx::query("UPDATE sessions SET archived_at_ms = ? WHERE session_id = ?")
            .bind(at.as_unix_millis())
            .bind(&current.row.session_id)
            .execute(&mut *tx)
            .await
            .map_err(Error::db("archiving a session"))?;
        let new = NewSession {
            key: key.to_owned(),
            agent_id: current.row.agent_id,
            session_id: new_session_id,
            created_at: at,
        };
        insert_session(&mut tx, &new).await?;
        let row = Self::current(&mut tx, key).await?.ok_or_else(|| not_found(key))?;
        tx.commit().await.map_err(Error::db("commit"))?;
        SessionSummary::try_from(row)
    }

    async fn link_response_impl(
        &self,
        response_id: &str,
        key: &str,
        at: Timestamp,
    ) -> Result<(), Error> {
        check_key(key)?;
        // One statement, so one transaction: the link names the session current right now.
        let done = sqlx::query(
            "INSERT INTO responses (response_id, session_key, session_id, created_at_ms) \
             SELECT ?1, session_key, session_id, ?2 FROM sessions \
             WHERE session_key = ?3 AND archived_at_ms IS NULL \
             ON CONFLICT (response_id) DO UPDATE SET session_key = excluded.session_key, \
             session_id = excluded.session_id, created_at_ms = excluded.created_at_ms",
        )
        .bind(response_id)
        .bind(at.as_unix_millis())
        .bind(key)
        .execute(&self.writer)
        .await
        .map_err(Error::db("linking a response"))?;
        if done.rows_affected() == 0 {
            return Err(not_found(key));
        }
        Ok(())
    }

    async fn response_session_impl(
        &self,
        response_id: &str,
    ) -> Result<Option<ResponseLink>, Error> {
        let row = sqlx::query(
            "SELECT response_id, session_key, session_id, created_at_ms FROM responses \
             WHERE response_id = ?",
        )
        .bind(response_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(Error::db("reading a response link"))?;
        row.as_ref()
            .map(ResponseRow::read)
            .transpose()
            .map_err(Error::db("reading a response link"))?
            .map(ResponseLink::try_from)
            .transpose()
    }
}

async fn insert_session(conn: &mut SqliteConnection, new: &NewSession) -> Result<(), Error> {
    let at = new.created_at.as_unix_millis();
    sqlx::query(
        "INSERT INTO sessions (session_id, session_key, agent_id, created_at_ms, updated_at_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(new.session_id.to_string())
    .bind(&new.key)
    .bind(&new.agent_id)
    .bind(at)
    .bind(at)
    .execute(&mut *conn)
    .await
    .map_err(Error::db("creating a session"))?;
    Ok(())
}

/// A compaction at `seq` may replace `replaces` when the range is well formed, ends before the
/// compaction itself, and reaches past everything the previous compaction replaced (so the
/// newest summary always stands for the whole prefix it hides).
fn check_compaction(
    key: &str,
    replaces: SeqRange,
    seq: Seq,
    compacted_through: i64,
) -> Result<(), Error> {
    let (first, last) = (replaces.first.get(), replaces.last.get());
    let reason = if last <= compacted_through {
        format!("nothing to compact: everything up to {compacted_through} already is")
    } else if first < 1 || first > last {
        format!("range {first}..={last} is empty or starts before 1")
    } else if last >= seq.get() {
        format!("range {first}..={last} does not end before the compaction's own seq {seq}")
    } else {
        return Ok(());
    };
    Err(Error::InvalidCompaction { key: key.to_owned(), reason })
}

impl SessionStore for SqliteStore {
    fn ensure_session(&self, new: NewSession) -> BoxFuture<'_, Result<SessionSummary, Error>> {
        Box::pin(self.ensure_session_impl(new))
    }

    fn get_session<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionSummary>, Error>> {
        Box::pin(self.get_session_impl(key))
    }

    fn list_sessions<'a>(
        &'a self,
        agent_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, Error>> {
        Box::pin(self.list_sessions_impl(agent_id))
    }

    fn append<'a>(
        &'a self,
        key: &'a str,
        entries: Vec<NewEntry>,
    ) -> BoxFuture<'a, Result<Vec<Seq>, Error>> {
        Box::pin(self.append_impl(key, entries))
    }

    fn history<'a>(
        &'a self,
        key: &'a str,
        since_last_compaction: bool,
    ) -> BoxFuture<'a, Result<Vec<Entry>, Error>> {
        Box::pin(self.history_impl(key, since_last_compaction))
    }

    fn record_compaction<'a>(
        &'a self,
        key: &'a str,
        summary: String,
        replaces_up_to: Seq,
        meta: EntryMeta,
        created_at: Timestamp,
    ) -> BoxFuture<'a, Result<Seq, Error>> {
        Box::pin(self.record_compaction_impl(key, summary, replaces_up_to, meta, created_at))
    }

    fn reset<'a>(
        &'a self,
        key: &'a str,
        new_session_id: SessionId,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<SessionSummary, Error>> {
        Box::pin(self.reset_impl(key, new_session_id, at))
    }

    fn link_response<'a>(
        &'a self,
        response_id: &'a str,
        key: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.link_response_impl(response_id, key, at))
    }

    fn response_session<'a>(
        &'a self,
        response_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<ResponseLink>, Error>> {
        Box::pin(self.response_session_impl(response_id))
    }

    fn lock_session<'a>(&'a self, key: &'a str) -> BoxFuture<'a, SessionGuard> {
        Box::pin(self.locks.lock(key))
    }

    fn try_lock_session(&self, key: &str) -> Option<SessionGuard> {
        self.locks.try_lock(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_path_prefers_explicit_then_env_then_home() {
        let explicit = resolve_database_path(
            Some(Path::new("/x")),
            Some("/env".into()),
            Some("/home/u".into()),
        );
        assert_eq!(explicit.unwrap(), Path::new("/x/hearth.sqlite"));
        let env = resolve_database_path(None, Some("/env".into()), Some("/home/u".into()));
        assert_eq!(env.unwrap(), Path::new("/env/hearth.sqlite"));
        let home = resolve_database_path(None, Some("".into()), Some("/home/u".into()));
        assert_eq!(home.unwrap(), Path::new("/home/u/.hearth/state/hearth.sqlite"));
        let none = resolve_database_path(None, None, None);
        assert!(matches!(none, Err(Error::NoStateDir)));
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("agent:main:main").is_ok());
        assert!(matches!(check_key(""), Err(Error::InvalidKey { .. })));
        assert!(matches!(check_key("a\nb"), Err(Error::InvalidKey { .. })));
        assert!(matches!(check_key(&"k".repeat(2000)), Err(Error::InvalidKey { .. })));
    }

    #[test]
    fn compaction_ranges_are_checked() {
        let range = |first, last| SeqRange { first: Seq::new(first), last: Seq::new(last) };
        assert!(check_compaction("k", range(1, 4), Seq::new(5), 0).is_ok());
        assert!(check_compaction("k", range(0, 4), Seq::new(5), 0).is_err());
        assert!(check_compaction("k", range(3, 2), Seq::new(5), 0).is_err());
        assert!(check_compaction("k", range(1, 5), Seq::new(5), 0).is_err());
        assert!(check_compaction("k", range(1, 4), Seq::new(9), 4).is_err());
        assert!(check_compaction("k", range(5, 8), Seq::new(9), 4).is_ok());
    }
}
