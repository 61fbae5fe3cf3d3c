//! One run per session: an in-process async mutex per session key.
//!
//! Concurrent turns on one key queue behind each other (tokio's mutex is fair, so they run in
//! arrival order); different keys never wait on each other. The map holds weak references: a
//! key's mutex lives only while some task holds or waits for it, the last guard removes its
//! entry, and entries left by cancelled waiters are pruned as the map grows, so it does not
//! grow with the number of sessions ever seen.
//!
//! This serializes runs inside one gateway process only. Across processes (two gateways, or
//! `hearth agent` beside a gateway on the same state directory) SQLite's own locking keeps the
//! database consistent: every append is one `BEGIN IMMEDIATE` transaction, so sequence
//! numbers never collide, but two processes may interleave whole turns on one session.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// The per-key locks of one store.
#[derive(Debug, Clone, Default)]
pub struct SessionLocks {
    inner: Arc<Mutex<LockMap>>,
}

/// Held while a run owns its session; dropping it lets the next run on that key go.
#[must_use = "the session is unlocked as soon as the guard is dropped"]
pub struct SessionGuard {
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
    locks: SessionLocks,
}

#[derive(Debug, Default)]
struct LockMap {
    mutexes: HashMap<String, Weak<AsyncMutex<()>>>,
    /// Prune dead entries when the map grows past this size.
    prune_at: usize,
}

// === impl SessionLocks ===

impl SessionLocks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no other run holds `key`, then holds it until the guard is dropped.
    pub async fn lock(&self, key: &str) -> SessionGuard {
        let mutex = self.mutex_for(key);
        let guard = mutex.lock_owned().await;
        SessionGuard { key: key.to_owned(), guard: Some(guard), locks: self.clone() }
    }

    /// Holds `key` if no other run does, without waiting.
    pub fn try_lock(&self, key: &str) -> Option<SessionGuard> {
        let guard = self.mutex_for(key).try_lock_owned().ok()?;
        Some(SessionGuard { key: key.to_owned(), guard: Some(guard), locks: self.clone() })
    }

    /// How many keys are locked or awaited right now (entries that may still be in use).
    pub fn active_keys(&self) -> usize {
        self.map().mutexes.values().filter(|mutex| mutex.strong_count() > 0).count()
    }

    fn mutex_for(&self, key: &str) -> Arc<AsyncMutex<()>> {
        let mut map = self.map();
        if let Some(mutex) = map.mutexes.get(key).and_then(Weak::upgrade) {
            return mutex;
        }
        if map.mutexes.len() >= map.prune_at {
            map.mutexes.retain(|_, mutex| mutex.strong_count() > 0);
            map.prune_at = (map.mutexes.len() * 2).max(64);
        }
        let mutex = Arc::new(AsyncMutex::new(()));
        map.mutexes.insert(key.to_owned(), Arc::downgrade(&mutex));
        mutex
    }

    /// Forgets `key`'s mutex when no task holds or awaits it any more. Upgrades happen under
    /// the map lock, so a waiter that is about to wait is always counted.
    fn release(&self, key: &str) {
        let mut map = self.map();
        if map.mutexes.get(key).is_some_and(|mutex| mutex.strong_count() == 0) {
            map.mutexes.remove(key);
        }
    }

    fn map(&self) -> MutexGuard<'_, LockMap> {
        // Every update is a single call that cannot panic halfway, so a poisoned map is still
        // consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl SessionGuard ===

impl SessionGuard {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        // Unlock first, so this guard's reference is gone before the count is checked.
        drop(self.guard.take());
        self.locks.release(&self.key);
    }
}

impl fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGuard").field("key", &self.key).finish_non_exhaustive()
    }
}
