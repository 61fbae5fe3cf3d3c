//! One run per session: the per-key lock serializes one key and lets different keys overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hearth_store::{SessionLocks, SessionStore, SqliteStore};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

/// Eight tasks take the same key; the number inside the critical section never exceeds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_never_runs_twice_at_once() {
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let (store, inside, max_inside, runs) =
            (Arc::clone(&store), Arc::clone(&inside), Arc::clone(&max_inside), Arc::clone(&runs));
        tasks.spawn(async move {
            for _ in 0..5 {
                let _guard = store.lock_session("agent:main:main").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_inside.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                runs.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 40);
    assert_eq!(max_inside.load(Ordering::SeqCst), 1);
}

/// Two keys held at once: both tasks reach a two-party barrier while holding their locks,
/// which could never happen if different keys serialized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_run_concurrently() {
    let store: Arc<dyn SessionStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let barrier = Arc::new(Barrier::new(2));
    let inside = Arc::new(AtomicUsize::new(0));
    let max_inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for key in ["agent:main:a", "agent:main:b"] {
        let (store, barrier, inside, max_inside) = (
            Arc::clone(&store),
            Arc::clone(&barrier),
            Arc::clone(&inside),
            Arc::clone(&max_inside),
        );
        tasks.spawn(async move {
            let _guard = store.lock_session(key).await;
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            max_inside.fetch_max(now, Ordering::SeqCst);
            barrier.wait().await;
            inside.fetch_sub(1, Ordering::SeqCst);
        });
    }
    let all = async {
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all).await.expect("different keys deadlocked");
    assert_eq!(max_inside.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn try_lock_fails_while_held_and_the_map_empties() {
    let locks = SessionLocks::new();
    let guard = locks.lock("k").await;
    assert_eq!(guard.key(), "k");
    assert!(locks.try_lock("k").is_none());
    let other = locks.try_lock("other").unwrap();
    assert_eq!(locks.active_keys(), 2);
    drop(guard);
    drop(other);
    assert_eq!(locks.active_keys(), 0);
    assert!(locks.try_lock("k").is_some());

    // A waiter that gives up (its future dropped) leaves nothing behind for long.
    let held = locks.lock("k").await;
    let waiting = tokio::time::timeout(Duration::from_millis(10), locks.lock("k")).await;
    assert!(waiting.is_err());
    drop(held);
    assert_eq!(locks.active_keys(), 0);
}
