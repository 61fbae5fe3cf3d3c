//! Invariant 6: an acknowledged entry survives `kill -9`.
//!
//! The parent test re-runs this test binary as a child (`crash::child_appends_until_killed`,
//! selected with `--exact` and given the database path in `CHILD_DB_ENV`). The child appends
//! batches in a loop and prints `ACK <seq> <text>` for each entry only after `append` returned
//! `Ok`. The parent sends SIGKILL after some acknowledgements, three times over, then reopens
//! the database and checks that every acknowledged entry is there, that batches were all or
//! nothing, and that `PRAGMA integrity_check` says `ok`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hearth_store::{
    Content, NewEntry, NewSession, SessionId, SessionStore, SqliteStore, Timestamp,
};

const CHILD_DB_ENV: &str = "HEARTH_STORE_CRASH_CHILD_DB";
const CHILD_ROUND_ENV: &str = "HEARTH_STORE_CRASH_CHILD_ROUND";
const KEY: &str = "agent:main:main";
const BATCH: usize = 3;
const ACKS_BEFORE_KILL: usize = 60;
const ROUNDS: usize = 3;

/// The child's entry point. In an ordinary test run the variable is unset and it returns at
/// once; only the crash test starts it with a database path.
#[test]
fn child_appends_until_killed() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else { return };
    let round = std::env::var(CHILD_ROUND_ENV).unwrap();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open(Path::new(&path)).await.unwrap();
        store
            .ensure_session(NewSession {
                key: KEY.to_owned(),
                agent_id: "main".to_owned(),
                session_id: SessionId::now_v7(),
                created_at: Timestamp::now(),
            })
            .await
            .unwrap();
        let mut stdout = std::io::stdout().lock();
        for batch in 0.. {
            let texts: Vec<String> =
                (0..BATCH).map(|item| format!("r{round}-b{batch}-i{item}")).collect();
            let entries =
                texts.iter().map(|t| NewEntry::user(t.clone(), Timestamp::now())).collect();
            let seqs = store.append(KEY, entries).await.unwrap();
            // Acknowledged: only now may anyone be told.
            for (seq, text) in seqs.iter().zip(&texts) {
                writeln!(stdout, "ACK {seq} {text}").unwrap();
            }
            stdout.flush().unwrap();
        }
    });
}

/// Runs one child until `ACKS_BEFORE_KILL` acknowledgements, kills it with SIGKILL, and returns
/// every acknowledgement it printed (including those still in the pipe when it died).
fn run_child_and_kill(db: &Path, round: usize) -> Vec<(i64, String)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash::child_appends_until_killed", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB_ENV, db)
        .env(CHILD_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acks = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(rest) = line.strip_prefix("ACK ") else { continue };
        let (seq, text) = rest.split_once(' ').unwrap();
        acks.push((seq.parse().unwrap(), text.to_owned()));
        if acks.len() >= ACKS_BEFORE_KILL && !killed {
            // `Child::kill` is SIGKILL on Unix: no destructors, no checkpoint, no clean close.
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(killed, "child exited before {ACKS_BEFORE_KILL} acknowledgements: {status}");
    assert_eq!(status.signal(), Some(9), "child was not killed by SIGKILL: {status}");
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("state").join("hearth.sqlite");
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    for round in 0..ROUNDS {
        let db = db.clone();
        let acks =
            tokio::task::spawn_blocking(move || run_child_and_kill(&db, round)).await.unwrap();
        assert!(acks.len() >= ACKS_BEFORE_KILL);
        for (seq, text) in acks {
            assert!(acked.insert(seq, text).is_none(), "seq {seq} acknowledged twice");
        }
    }

    let store = SqliteStore::open(&db).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), ["ok"]);
    let history = store.history(KEY, false).await.unwrap();
    let stored: BTreeMap<i64, String> = history
        .iter()
        .map(|entry| {
            let Content::User { text } = &entry.content else { panic!("{entry:?}") };
            (entry.seq.get(), text.clone())
        })
        .collect();
    for (seq, text) in &acked {
        assert_eq!(stored.get(seq), Some(text), "acknowledged entry {seq} lost");
    }
    // No gaps, and whole batches only: a batch killed mid-transaction left nothing.
    let seqs: Vec<i64> = stored.keys().copied().collect();
    assert_eq!(seqs, (1..=i64::try_from(seqs.len()).unwrap()).collect::<Vec<_>>());
    assert_eq!(stored.len() % BATCH, 0, "a partial batch was stored");
    for chunk in history.chunks(BATCH) {
        let batches: Vec<&str> = chunk
            .iter()
            .map(|e| match &e.content {
                Content::User { text } => text.rsplit_once("-i").unwrap().0,
                _ => unreachable!(),
            })
            .collect();
        assert!(batches.iter().all(|b| *b == batches[0]), "batch split: {batches:?}");
    }
    eprintln!("acknowledged {} entries in {ROUNDS} kills; {} stored", acked.len(), stored.len());
    let summary = store.get_session(KEY).await.unwrap().unwrap();
    assert_eq!(summary.entry_count, u64::try_from(stored.len()).unwrap());
}
