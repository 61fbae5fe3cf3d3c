//! The conformance suite: behavior every `SessionStore` must have.

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_store::{
    Content, EntryKind, EntryMeta, Error, NewEntry, Seq, SeqRange, SessionId, SessionStore,
    SqliteStore, Usage,
};
use tokio::task::JoinSet;

use crate::{at, each_store, file_store, new_session, user};

const KEY: &str = "agent:main:main";

fn every_kind() -> Vec<NewEntry> {
    let answered = EntryMeta {
        model: Some("lmstudio/minimax-m2.1-gs32".to_owned()),
        attempts_json: Some(
            r#"[{"model":"local/a","error":"connect"},{"model":"lmstudio/minimax-m2.1-gs32"}]"#
                .to_owned(),
        ),
        usage: Some(Usage {
            input_tokens: 120,
            output_tokens: 30,
            cache_read_tokens: 100,
            cache_write_tokens: 7,
            estimated: false,
        }),
        cost_usd: Some(0.0125),
        token_estimate: Some(31),
    };
    let estimated = EntryMeta {
        usage: Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            estimated: true,
            ..Usage::default()
        }),
        token_estimate: Some(9),
        ..EntryMeta::default()
    };
    vec![
        NewEntry::user("What is the weather? ünïcödé 🌧", at(1))
            .with_meta(EntryMeta { token_estimate: Some(8), ..EntryMeta::default() }),
        NewEntry::new(Content::Reasoning { text: "The user wants weather.".to_owned() }, at(2)),
        NewEntry::new(
            Content::ToolCall {
                id: "call_1".to_owned(),
                name: "get_weather".to_owned(),
                // Stored byte for byte, broken JSON included.
                arguments: r#"{"city": "Oslo", "unit": "#.to_owned(),
            },
            at(3),
        )
        .with_meta(estimated),
        NewEntry::new(
            Content::ToolResult {
                call_id: "call_1".to_owned(),
                content: "rain, 4°C".to_owned(),
                is_error: false,
            },
            at(4),
        ),
        NewEntry::new(
            Content::ToolResult {
                call_id: "call_2".to_owned(),
                content: "timeout".to_owned(),
                is_error: true,
            },
            at(5),
        ),
        NewEntry::assistant("Rainy, 4°C in Oslo.", at(6)).with_meta(answered),
        NewEntry::new(
            Content::Compaction {
                summary: "User asked about Oslo weather.".to_owned(),
                replaces: SeqRange { first: Seq::new(1), last: Seq::new(6) },
            },
            at(7),
        ),
        NewEntry::new(
            Content::SystemNote {
                text: "↪️ Model Fallback: lmstudio/minimax-m2.1-gs32".to_owned(),
            },
            at(8),
        ),
        NewEntry::new(Content::User { text: String::new() }, at(9)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_kind_round_trips() {
    each_store(|store| async move {
        let session = new_session(&*store, KEY, "main").await;
        let entries = every_kind();
        let seqs = store.append(KEY, entries.clone()).await.unwrap();
        assert_eq!(seqs, (1..=9).map(Seq::new).collect::<Vec<_>>());

        let history = store.history(KEY, false).await.unwrap();
        assert_eq!(history.len(), entries.len());
        for ((stored, sent), seq) in history.iter().zip(&entries).zip(&seqs) {
            assert_eq!(stored.seq, *seq);
            assert_eq!(stored.session_id, session.session_id);
            assert_eq!(stored.content, sent.content);
            assert_eq!(stored.meta, sent.meta);
            assert_eq!(stored.created_at, sent.created_at);
        }
        let kinds: Vec<EntryKind> = history.iter().map(|e| e.content.kind()).collect();
        for kind in EntryKind::ALL {
            assert!(kinds.contains(&kind), "{kind} missing");
        }

        // A compaction appended directly (not through `record_compaction`) sets the view too.
        let view = store.history(KEY, true).await.unwrap();
        let view_seqs: Vec<i64> = view.iter().map(|e| e.seq.get()).collect();
        assert_eq!(view_seqs, [7, 8, 9]);

        let summary = store.get_session(KEY).await.unwrap().unwrap();
        assert_eq!(summary.last_seq, Seq::new(9));
        assert_eq!(summary.entry_count, 9);
        assert_eq!(summary.compaction_count, 1);
        assert_eq!(summary.updated_at, at(9));
        assert_eq!(summary.totals.input_tokens, 130);
        assert_eq!(summary.totals.output_tokens, 35);
        assert_eq!(summary.totals.cache_read_tokens, 100);
        assert_eq!(summary.totals.cache_write_tokens, 7);
        assert_eq!(summary.totals.total_tokens(), 165);
        assert_eq!(summary.totals.estimated_tokens, 8 + 9 + 31);
        assert!((summary.totals.cost_usd - 0.0125).abs() < 1e-12);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_is_all_or_nothing() {
    each_store(|store| async move {
        new_session(&*store, KEY, "main").await;
        store.append(KEY, vec![user("one", 1), user("two", 2)]).await.unwrap();
        // The third entry's compaction range ends at its own seq: the whole batch is refused.
        let bad = vec![
            user("three", 3),
            user("four", 4),
            NewEntry::new(
                Content::Compaction {
                    summary: "s".to_owned(),
                    replaces: SeqRange { first: Seq::new(1), last: Seq::new(5) },
                },
                at(5),
            ),
        ];
        let err = store.append(KEY, bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidCompaction { .. }), "{err:?}");
        let history = store.history(KEY, false).await.unwrap();
        assert_eq!(history.len(), 2);
        let summary = store.get_session(KEY).await.unwrap().unwrap();
        assert_eq!((summary.last_seq, summary.entry_count), (Seq::new(2), 2));
        // Numbering continues without a gap.
        assert_eq!(store.append(KEY, vec![user("three", 3)]).await.unwrap(), [Seq::new(3)]);
        assert_eq!(store.append(KEY, Vec::new()).await.unwrap(), []);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_invalid_keys_are_errors() {
    each_store(|store| async move {
        let err = store.append("agent:nobody:main", vec![user("x", 1)]).await.unwrap_err();
        assert!(matches!(err, Error::SessionNotFound { .. }), "{err:?}");
        assert_eq!(err.kind_label(), "session_not_found");
        assert!(matches!(
            store.history("agent:nobody:main", true).await,
            Err(Error::SessionNotFound { .. })
        ));
        assert!(store.get_session("agent:nobody:main").await.unwrap().is_none());
        assert!(matches!(
            store.append("", vec![user("x", 1)]).await,
            Err(Error::InvalidKey { .. })
        ));
        assert!(matches!(
            store.reset("agent:nobody:main", SessionId::now_v7(), at(1)).await,
            Err(Error::SessionNotFound { .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_session_returns_the_existing_session() {
    each_store(|store| async move {
        let first = new_session(&*store, KEY, "main").await;
        store.append(KEY, vec![user("hi", 1)]).await.unwrap();
        let second = new_session(&*store, KEY, "main").await;
        assert_eq!(first.session_id, second.session_id);
        assert_eq!(second.entry_count, 1);
        assert_eq!(first.last_seq, Seq::ZERO);
    })
    .await;
}

/// 50 tasks append 2-entry batches to one session at once: every batch gets two consecutive
/// seqs, and the transcript is numbered 1..=100 with no gap or duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_one_session_are_ordered() {
    each_store(|store| async move {
        new_session(&*store, KEY, "main").await;
        let mut tasks = JoinSet::new();
        for task in 0..50 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let batch =
                    vec![user(&format!("{task}/a"), task), user(&format!("{task}/b"), task)];
                (task, store.append(KEY, batch).await.unwrap())
            });
        }
        let mut owner = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (task, seqs) = joined.unwrap();
            assert_eq!(seqs.len(), 2);
            assert_eq!(seqs[1].get(), seqs[0].get() + 1, "a batch is contiguous");
            owner.insert(seqs[0].get(), format!("{task}/a"));
            owner.insert(seqs[1].get(), format!("{task}/b"));
        }
        let history = store.history(KEY, false).await.unwrap();
        let seqs: Vec<i64> = history.iter().map(|e| e.seq.get()).collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        for entry in &history {
            let Content::User { text } = &entry.content else { panic!("{entry:?}") };
            assert_eq!(Some(text), owner.get(&entry.seq.get()));
        }
        assert_eq!(store.get_session(KEY).await.unwrap().unwrap().entry_count, 100);
    })
    .await;
}

/// 50 tasks over 10 sessions, each appending 3 single entries: each session ends numbered
/// 1..=15, each task's own appends in the order it made them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_to_many_sessions_are_ordered() {
    each_store(|store| async move {
        for session in 0..10 {
            new_session(&*store, &format!("agent:main:s{session}"), "main").await;
        }
        let mut tasks = JoinSet::new();
        for task in 0..50 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let key = format!("agent:main:s{}", task % 10);
                let mut last = Seq::ZERO;
                for step in 0..3 {
                    let seqs =
                        store.append(&key, vec![user(&format!("{task}:{step}"), step)]).await;
                    let seq = seqs.unwrap()[0];
                    assert!(seq > last, "seq is monotonic within a session");
                    last = seq;
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
        for session in 0..10 {
            let history = store.history(&format!("agent:main:s{session}"), false).await.unwrap();
            let seqs: Vec<i64> = history.iter().map(|e| e.seq.get()).collect();
            assert_eq!(seqs, (1..=15).collect::<Vec<_>>());
            let mut per_task: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for entry in &history {
                let Content::User { text } = &entry.content else { panic!("{entry:?}") };
                let (task, step) = text.split_once(':').unwrap();
                assert_eq!(task.parse::<i64>().unwrap() % 10, session);
                per_task.entry(task.to_owned()).or_default().push(step.to_owned());
            }
            assert_eq!(per_task.len(), 5);
            assert!(per_task.values().all(|steps| steps == &["0", "1", "2"]));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_view_starts_at_the_newest_summary() {
    each_store(|store| async move {
        new_session(&*store, KEY, "main").await;
        let texts = ["u1", "a2", "u3", "a4", "u5", "a6"];
        let batch = texts.iter().zip(1..).map(|(t, n)| user(t, n)).collect();
        store.append(KEY, batch).await.unwrap();
        let view = |store: Arc<dyn SessionStore>| async move {
            let history = store.history(KEY, true).await.unwrap();
            history
                .iter()
                .map(|e| match &e.content {
                    Content::User { text } => text.clone(),
                    Content::Compaction { summary, replaces } => {
                        format!("[{summary} {}..={}]", replaces.first, replaces.last)
                    }
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        // Without a compaction the view is the whole transcript.
        assert_eq!(view(Arc::clone(&store)).await, texts);

        // Summarize 1..=4, keep u5 and a6.
        let meta = EntryMeta { token_estimate: Some(12), ..EntryMeta::default() };
        let c1 = store.record_compaction(KEY, "S1".to_owned(), Seq::new(4), meta, at(7)).await;
        assert_eq!(c1.unwrap(), Seq::new(7));
        assert_eq!(view(Arc::clone(&store)).await, ["[S1 1..=4]", "u5", "a6"]);
        store.append(KEY, vec![user("u8", 8)]).await.unwrap();
        assert_eq!(view(Arc::clone(&store)).await, ["[S1 1..=4]", "u5", "a6", "u8"]);

        // Nothing new to compact, or past the newest entry: refused.
        let stale =
            store.record_compaction(KEY, "x".into(), Seq::new(4), EntryMeta::default(), at(9));
        assert!(matches!(stale.await, Err(Error::InvalidCompaction { .. })));
        let future =
            store.record_compaction(KEY, "x".into(), Seq::new(99), EntryMeta::default(), at(9));
        assert!(matches!(future.await, Err(Error::InvalidCompaction { .. })));

        // The second summary replaces the first one too, and the old compaction entry (seq 7)
        // never shows again.
        let c2 =
            store.record_compaction(KEY, "S2".into(), Seq::new(8), EntryMeta::default(), at(9));
        assert_eq!(c2.await.unwrap(), Seq::new(9));
        assert_eq!(view(Arc::clone(&store)).await, ["[S2 5..=8]"]);
        store.append(KEY, vec![user("u10", 10)]).await.unwrap();
        assert_eq!(view(Arc::clone(&store)).await, ["[S2 5..=8]", "u10"]);

        // The full transcript keeps everything.
        let all = store.history(KEY, false).await.unwrap();
        assert_eq!(all.len(), 10);
        let summary = store.get_session(KEY).await.unwrap().unwrap();
        assert_eq!(summary.compaction_count, 2);
        assert_eq!(summary.totals.estimated_tokens, 12);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_starts_a_new_transcript_under_the_same_key() {
    each_store(|store| async move {
        let old = new_session(&*store, KEY, "main").await;
        store.append(KEY, vec![user("before", 1)]).await.unwrap();
        store.link_response("resp_old", KEY, at(1)).await.unwrap();

        let new_id = SessionId::now_v7();
        let new = store.reset(KEY, new_id, at(5)).await.unwrap();
        assert_eq!(new.session_id, new_id);
        assert_ne!(new.session_id, old.session_id);
        assert_eq!((new.key.as_str(), new.agent_id.as_str()), (KEY, "main"));
        assert_eq!((new.last_seq, new.entry_count), (Seq::ZERO, 0));
        assert_eq!(new.created_at, at(5));
        assert!(store.history(KEY, false).await.unwrap().is_empty());

        // Numbering restarts for the new transcript.
        assert_eq!(store.append(KEY, vec![user("after", 6)]).await.unwrap(), [Seq::new(1)]);
        let history = store.history(KEY, false).await.unwrap();
        assert_eq!(history[0].session_id, new_id);
        let listed = store.list_sessions(None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].session_id, new_id);
        // The old transcript is still on disk: its response link names it.
        let link = store.response_session("resp_old").await.unwrap().unwrap();
        assert_eq!(link.session_id, old.session_id);
        assert_eq!(link.session_key, KEY);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sessions_filters_by_agent_and_orders_by_activity() {
    each_store(|store| async move {
        for (key, agent) in [("agent:a:main", "a"), ("agent:a:other", "a"), ("agent:b:main", "b")] {
            new_session(&*store, key, agent).await;
        }
        store.append("agent:a:other", vec![user("x", 10), user("y", 11)]).await.unwrap();
        let priced = NewEntry::assistant("z", at(20)).with_meta(EntryMeta {
            usage: Some(Usage { input_tokens: 5, output_tokens: 6, ..Usage::default() }),
            cost_usd: Some(0.5),
            ..EntryMeta::default()
        });
        store.append("agent:b:main", vec![priced]).await.unwrap();

        let all = store.list_sessions(None).await.unwrap();
        let keys: Vec<&str> = all.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["agent:b:main", "agent:a:other", "agent:a:main"]);
        assert_eq!(all[0].totals.total_tokens(), 11);
        assert!((all[0].totals.cost_usd - 0.5).abs() < 1e-12);
        assert_eq!(all[1].entry_count, 2);
        assert_eq!(all[1].updated_at, at(11));
        assert_eq!(all[2].entry_count, 0);

        let a = store.list_sessions(Some("a")).await.unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|s| s.agent_id == "a"));
        assert!(store.list_sessions(Some("nobody")).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_link_to_sessions() {
    each_store(|store| async move {
        let a = new_session(&*store, "agent:main:a", "main").await;
        let b = new_session(&*store, "agent:main:b", "main").await;
        assert!(store.response_session("resp_1").await.unwrap().is_none());
        store.link_response("resp_1", "agent:main:a", at(1)).await.unwrap();
        let link = store.response_session("resp_1").await.unwrap().unwrap();
        assert_eq!(link.response_id, "resp_1");
        assert_eq!(link.session_key, "agent:main:a");
        assert_eq!(link.session_id, a.session_id);
        assert_eq!(link.created_at, at(1));

        // Linking again moves the id.
        store.link_response("resp_1", "agent:main:b", at(2)).await.unwrap();
        let link = store.response_session("resp_1").await.unwrap().unwrap();
        assert_eq!((link.session_key.as_str(), link.session_id), ("agent:main:b", b.session_id));

        let missing = store.link_response("resp_2", "agent:main:none", at(3)).await;
        assert!(matches!(missing, Err(Error::SessionNotFound { .. })), "{missing:?}");
        assert!(store.response_session("resp_2").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_reopening() {
    let (store, dir) = file_store().await;
    let path = store.path().unwrap().to_owned();
    new_session(&store, KEY, "main").await;
    store.append(KEY, every_kind()).await.unwrap();
    let before = store.history(KEY, false).await.unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.history(KEY, false).await.unwrap(), before);
    assert_eq!(store.integrity_check().await.unwrap(), ["ok"]);
    // The settings that the durability invariant rests on, as the writer connection sees them.
    let durability = store.durability().await.unwrap();
    assert_eq!(durability.journal_mode, "wal");
    assert_eq!(durability.synchronous, "full");
    assert!(durability.busy_timeout_ms >= 1000);
    drop(dir);
}

#[tokio::test]
async fn open_default_honors_an_explicit_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nested").join("state");
    let store = SqliteStore::open_default(Some(&state)).await.unwrap();
    assert_eq!(store.path().unwrap(), state.join("hearth.sqlite"));
    assert!(state.join("hearth.sqlite").exists());
}
