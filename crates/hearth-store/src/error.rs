//! The crate's one error type.
//!
//! sqlx stays behind `DbError`, an opaque source, so no other crate has to name sqlx types
//! (only `hearth-store` knows sqlx).

use std::fmt;
use std::path::PathBuf;

/// An error from the session store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("creating the state directory {} failed", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no state directory: HEARTH_STATE_DIR and HOME are both unset")]
    NoStateDir,
    #[error("opening the session database {} failed", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: DbError,
    },
    #[error("migrating the session database failed")]
    Migrate {
        #[source]
        source: DbError,
    },
    #[error("session store: {op} failed")]
    Database {
        op: &'static str,
        #[source]
        source: DbError,
    },
    #[error("no session with key {key:?}")]
    SessionNotFound { key: String },
    #[error("invalid session key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid compaction in session {key:?}: {reason}")]
    InvalidCompaction { key: String, reason: String },
    #[error("corrupt row in the session database: {detail}")]
    Corrupt { detail: String },
}

/// A database error, opaque outside this crate.
pub struct DbError(sqlx::Error);

// === impl Error ===

impl Error {
    /// Low-cardinality label for metrics and logs.
    pub fn kind_label(&self) -> &'static str {
        match self {
            Error::CreateDir { .. } => "create_dir",
            Error::NoStateDir => "no_state_dir",
            Error::Open { .. } => "open",
            Error::Migrate { .. } => "migrate",
            Error::Database { .. } => "database",
            Error::SessionNotFound { .. } => "session_not_found",
            Error::InvalidKey { .. } => "invalid_key",
            Error::InvalidCompaction { .. } => "invalid_compaction",
            Error::Corrupt { .. } => "corrupt",
        }
    }

    /// Whether the database was locked by another writer for longer than the busy timeout
    /// (worth a retry; nothing was written).
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Database { source, .. } | Error::Open { source, .. } => source.is_busy(),
            _ => false,
        }
    }

    pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Database { op, source: DbError(source) }
    }

    pub(crate) fn open(path: PathBuf) -> impl FnOnce(sqlx::Error) -> Error {
        move |source| Error::Open { path, source: DbError(source) }
    }

    pub(crate) fn migrate(source: sqlx::migrate::MigrateError) -> Error {
        Error::Migrate { source: DbError(sqlx::Error::Migrate(Box::new(source))) }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Error {
        Error::Corrupt { detail: detail.into() }
    }
}

// === impl DbError ===

impl DbError {
    fn is_busy(&self) -> bool {
        match &self.0 {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with or without extended codes.
            sqlx::Error::Database(db) => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
            _ => false,
        }
    }
}

impl fmt::Debug for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
