//! Integration tests of the session store: one conformance suite run against every
//! implementation (SQLite on a file and in memory), plus the process-level crash test.
#![expect(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers may unwrap, and name the store under test on stderr"
)]

mod crash;
mod locks;
mod suite;

use std::future::Future;
use std::sync::Arc;

use hearth_store::{
    NewEntry, NewSession, SessionId, SessionStore, SessionSummary, SqliteStore, Timestamp,
};

/// A fixed clock: `at(n)` is `n` milliseconds after a fixed instant.
pub(crate) fn at(n: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_750_000_000_000 + n)
}

/// A store under test, with the directory that keeps its file alive.
pub(crate) struct TestStore {
    pub(crate) name: &'static str,
    pub(crate) store: Arc<dyn SessionStore>,
    _dir: Option<tempfile::TempDir>,
}

pub(crate) async fn file_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("state").join("hearth.sqlite")).await.unwrap();
    (store, dir)
}

/// Every implementation, each fresh.
pub(crate) async fn stores() -> Vec<TestStore> {
    let (file, dir) = file_store().await;
    vec![
        TestStore { name: "sqlite-file", store: Arc::new(file), _dir: Some(dir) },
        TestStore {
            name: "sqlite-memory",
            store: Arc::new(SqliteStore::in_memory().await.unwrap()),
            _dir: None,
        },
    ]
}

/// Runs `check` against every implementation.
pub(crate) async fn each_store<F, Fut>(check: F)
where
    F: Fn(Arc<dyn SessionStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    for test_store in stores().await {
        eprintln!("store: {}", test_store.name);
        check(Arc::clone(&test_store.store)).await;
    }
}

pub(crate) async fn new_session(
    store: &dyn SessionStore,
    key: &str,
    agent_id: &str,
) -> SessionSummary {
    store
        .ensure_session(NewSession {
            key: key.to_owned(),
            agent_id: agent_id.to_owned(),
            session_id: SessionId::now_v7(),
            created_at: at(0),
        })
        .await
        .unwrap()
}

pub(crate) fn user(text: &str, n: i64) -> NewEntry {
    NewEntry::user(text, at(n))
}
