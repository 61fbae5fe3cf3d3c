//! The inbound journal: the message ids one channel account has seen, on disk before the
//! message is acknowledged, so a message redelivered after a crash (or a replayed webhook) is
//! dropped, never answered twice.
//!
//! An append-only file of JSON lines (`{"t": <unix seconds>, "id": "<message id>"}`), one
//! `fsync` per record. Bounded: ids older than [`RETENTION`] or beyond the newest [`MAX_IDS`]
//! are forgotten; the file is rewritten (temporary file and rename) when it holds twice as many
//! lines as are kept.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long an id is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Ids remembered at most.
pub const MAX_IDS: usize = 10_000;
/// Longest id recorded; a longer one is refused by the channels before it gets here.
pub const MAX_ID_BYTES: usize = 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    t: u64,
    id: String,
}

/// One channel account's journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    order: VecDeque<(u64, String)>,
    seen: HashSet<String>,
    lines_in_file: usize,
    max_ids: usize,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Journal {
    /// Opens (or creates) the journal at `path`, reading what it remembers. Lines that do not
    /// parse (a torn last write) are skipped.
    pub fn open(path: &Path, now: SystemTime) -> io::Result<Journal> {
        Journal::open_bounded(path, now, MAX_IDS)
    }

    /// [`Journal::open`] remembering at most `max_ids` ids.
    pub fn open_bounded(path: &Path, now: SystemTime, max_ids: usize) -> io::Result<Journal> {
        let max_ids = max_ids.max(1);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let text = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut order = VecDeque::new();
        let mut lines_in_file = 0;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            lines_in_file += 1;
            if let Ok(line) = serde_json::from_slice::<Line>(line) {
                order.push_back((line.t, line.id));
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            order,
            seen: HashSet::new(),
            lines_in_file,
            max_ids,
        };
        journal.prune(unix(now));
        journal.seen = journal.order.iter().map(|(_, id)| id.clone()).collect();
        if journal.lines_in_file > 2 * journal.order.len().max(max_ids / 2) {
            journal.rewrite()?;
        }
        Ok(journal)
    }

    /// Whether `id` was recorded (and not forgotten yet).
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Records `id` durably. `Ok(false)`: it was recorded before (a replay).
    pub fn record(&mut self, id: &str, now: SystemTime) -> io::Result<bool> {
        if self.seen.contains(id) {
            return Ok(false);
        }
        let now = unix(now);
        let mut line =
            serde_json::to_vec(&Line { t: now, id: id.to_owned() }).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.lines_in_file += 1;
        self.order.push_back((now, id.to_owned()));
        self.seen.insert(id.to_owned());
        self.prune(now);
        if self.lines_in_file > 2 * self.max_ids {
            self.rewrite()?;
        }
        Ok(true)
    }

    fn prune(&mut self, now: u64) {
        let oldest = now.saturating_sub(RETENTION.as_secs());
        while let Some((t, _)) = self.order.front() {
            if *t >= oldest && self.order.len() <= self.max_ids {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.seen.remove(&id);
            }
        }
    }

    /// Writes only what is remembered, atomically.
    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut out = OpenOptions::new().create(true).truncate(true).write(true).open(&tmp)?;
            let mut buf = Vec::new();
            for (t, id) in &self.order {
                serde_json::to_writer(&mut buf, &Line { t: *t, id: id.clone() })
                    .map_err(io::Error::other)?;
                buf.push(b'\n');
            }
            out.write_all(&buf)?;
            out.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines_in_file = self.order.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_recorded_id_survives_a_reopen_and_is_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut j = Journal::open(&path, at(1000)).unwrap();
        assert!(j.record("a\n\"odd\"", at(1000)).unwrap());
        assert!(!j.record("a\n\"odd\"", at(1001)).unwrap());
        drop(j);
        // A torn last line is skipped.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"t\":10").unwrap();
        let mut j = Journal::open(&path, at(1002)).unwrap();
        assert!(j.contains("a\n\"odd\""));
        assert!(!j.record("a\n\"odd\"", at(1003)).unwrap());
        assert!(j.record("b", at(1003)).unwrap());
    }

    #[test]
    fn old_ids_are_forgotten_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let max = 50;
        let mut j = Journal::open_bounded(&path, at(0), max).unwrap();
        j.record("old", at(0)).unwrap();
        j.record("new", at(RETENTION.as_secs())).unwrap();
        j.record("newer", at(RETENTION.as_secs() + 1)).unwrap();
        assert!(!j.contains("old"));
        assert!(j.contains("new"));
        for i in 0..(2 * max + 10) {
            j.record(&format!("id{i}"), at(RETENTION.as_secs() + 2)).unwrap();
        }
        assert!(j.order.len() <= max);
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * max, "{lines} lines");
        assert!(j.contains(&format!("id{}", 2 * max + 9)));
        assert!(!j.contains("id0"), "the oldest beyond the bound is forgotten");
        drop(j);
        let j = Journal::open_bounded(&path, at(RETENTION.as_secs() + 3), max).unwrap();
        assert!(j.contains(&format!("id{}", 2 * max + 9)));
    }
}
