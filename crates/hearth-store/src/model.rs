//! Domain types of the session store: ids, sequence numbers, timestamps, transcript entries and
//! session summaries.
//!
//! These types carry no serde derives: rows convert explicitly (`rows.rs`), and whatever
//! renders them for the CLI or the HTTP API converts them there.
//! The caller owns ids and time: it creates `SessionId::now_v7()` and each entry's
//! `created_at`; the store writes them as given and only assigns `seq`.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

/// The identity of one transcript under a session key (a UUID v7, so ids sort by creation).
///
/// A key keeps the same id until `reset`, which starts a new transcript under a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(Uuid);

/// The position of an entry in its transcript: 1, 2, 3, ... with no gaps, per session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(i64);

/// Wall-clock time in unix milliseconds, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Token usage reported by the server (or estimated by hearth when `estimated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// True when hearth estimated the numbers because the server reported none.
    pub estimated: bool,
}

/// The kind of a transcript entry, as stored in the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    User,
    Assistant,
    Reasoning,
    ToolCall,
    ToolResult,
    Compaction,
    SystemNote,
}

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqRange {
    pub first: Seq,
    pub last: Seq,
}

/// What a transcript entry says.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A user message.
    User { text: String },
    /// The assistant's final text (never reasoning: that is a separate `Reasoning` entry).
    Assistant { text: String },
    /// Reasoning the model produced for the following assistant entry, stored apart from it.
    Reasoning { text: String },
    /// A tool call. `arguments` is the JSON text the model produced, kept byte for byte and not
    /// validated: models do emit broken JSON, and the transcript records what happened.
    ToolCall { id: String, name: String, arguments: String },
    /// The result of the tool call `call_id`.
    ToolResult { call_id: String, content: String, is_error: bool },
    /// A summary that stands in for the raw entries `replaces` (and for any earlier compaction
    /// summary). See `SessionStore::history` for the view it produces.
    Compaction { summary: String, replaces: SeqRange },
    /// A note hearth adds to the transcript (a fallback notice, an operator note).
    SystemNote { text: String },
}

/// What a transcript entry records beside its content. Every field is optional.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntryMeta {
    /// The model that answered, as `provider/model`.
    pub model: Option<String>,
    /// The router's attempts for this answer, as JSON text (the agent owns its shape).
    pub attempts_json: Option<String>,
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    /// hearth's token estimate of the entry itself, for context budgeting.
    pub token_estimate: Option<u64>,
}

/// An entry to append; the store assigns its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub content: Content,
    pub meta: EntryMeta,
    pub created_at: Timestamp,
}

/// A stored transcript entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub session_id: SessionId,
    pub seq: Seq,
    pub content: Content,
    pub meta: EntryMeta,
    pub created_at: Timestamp,
}

/// A session to create when its key has no current session yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub key: String,
    pub agent_id: String,
    pub session_id: SessionId,
    pub created_at: Timestamp,
}

/// Sums over a session's entries, kept up to date by each append.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Totals {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// The sum of the entries' `token_estimate`s.
    pub estimated_tokens: u64,
    pub cost_usd: f64,
}

/// The current session under a key, with its counters.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub key: String,
    pub session_id: SessionId,
    pub agent_id: String,
    pub created_at: Timestamp,
    /// The time of the newest entry (or of creation when there is none).
    pub updated_at: Timestamp,
    /// The newest entry's seq; `Seq::ZERO` when the transcript is empty.
    pub last_seq: Seq,
    pub entry_count: u64,
    pub compaction_count: u64,
    pub totals: Totals,
}

/// Which session a response id continues (`previous_response_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseLink {
    pub response_id: String,
    pub session_key: String,
    /// The session id that was current under `session_key` when the response was linked. It may
    /// have been reset since; the caller decides whether that still counts as a continuation.
    pub session_id: SessionId,
    pub created_at: Timestamp,
}

/// A `SessionId` or `EntryKind` string that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {value:?}")]
pub struct ParseError {
    what: &'static str,
    value: String,
}

// === impl SessionId ===

impl SessionId {
    /// A fresh UUID v7 from the current time.
    pub fn now_v7() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for SessionId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s)
            .map(Self)
            .map_err(|_| ParseError { what: "session id", value: s.to_owned() })
    }
}

// === impl Seq ===

impl Seq {
    /// Before the first entry.
    pub const ZERO: Seq = Seq(0);

    pub const fn new(seq: i64) -> Self {
        Self(seq)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub(crate) const fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

// === impl Timestamp ===

impl Timestamp {
    /// The current wall-clock time (0 if the clock is before 1970).
    pub fn now() -> Self {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Self(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn as_unix_millis(self) -> i64 {
        self.0
    }
}

// === impl Usage ===

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

// === impl EntryKind ===

impl EntryKind {
    pub const ALL: [EntryKind; 7] = [
        EntryKind::User,
        EntryKind::Assistant,
        EntryKind::Reasoning,
        EntryKind::ToolCall,
        EntryKind::ToolResult,
        EntryKind::Compaction,
        EntryKind::SystemNote,
    ];

    /// The stored name: `user`, `assistant`, `reasoning`, `tool_call`, `tool_result`,
    /// `compaction`, `system_note`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::User => "user",
            EntryKind::Assistant => "assistant",
            EntryKind::Reasoning => "reasoning",
            EntryKind::ToolCall => "tool_call",
            EntryKind::ToolResult => "tool_result",
            EntryKind::Compaction => "compaction",
            EntryKind::SystemNote => "system_note",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| ParseError { what: "entry kind", value: s.to_owned() })
    }
}

// === impl Content ===

impl Content {
    pub fn kind(&self) -> EntryKind {
        match self {
            Content::User { .. } => EntryKind::User,
            Content::Assistant { .. } => EntryKind::Assistant,
            Content::Reasoning { .. } => EntryKind::Reasoning,
            Content::ToolCall { .. } => EntryKind::ToolCall,
            Content::ToolResult { .. } => EntryKind::ToolResult,
            Content::Compaction { .. } => EntryKind::Compaction,
            Content::SystemNote { .. } => EntryKind::SystemNote,
        }
    }
}

// === impl NewEntry ===

impl NewEntry {
    /// An entry with no metadata.
    pub fn new(content: Content, created_at: Timestamp) -> Self {
        Self { content, meta: EntryMeta::default(), created_at }
    }

    pub fn user(text: impl Into<String>, created_at: Timestamp) -> Self {
        Self::new(Content::User { text: text.into() }, created_at)
    }

    pub fn assistant(text: impl Into<String>, created_at: Timestamp) -> Self {
        Self::new(Content::Assistant { text: text.into() }, created_at)
    }

    pub fn with_meta(mut self, meta: EntryMeta) -> Self {
        self.meta = meta;
        self
    }
}

// === impl Totals ===

impl Totals {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}
