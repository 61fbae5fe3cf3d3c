//! Storage rows and their explicit conversions to and from the domain types.
//!
//! Every column is read by name with a checked type; a row that does not convert (an unknown
//! kind, a missing field for its kind, a malformed id) is `Error::Corrupt`, never a panic.

use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use crate::error::Error;
use crate::model::{
    Content, Entry, EntryKind, EntryMeta, NewEntry, ResponseLink, Seq, SeqRange, SessionId,
    SessionSummary, Timestamp, Totals, Usage,
};

/// `SELECT <every entries column> FROM entries` followed by the given SQL, as a literal.
macro_rules! select_entries {
    ($($rest:literal),*) => {
        concat!(
            "SELECT session_id, seq, kind, body, tool_call_id, tool_name, tool_arguments, \
             tool_is_error, replaces_first_seq, replaces_last_seq, model, attempts_json, \
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             usage_estimated, cost_usd, token_estimate, created_at_ms FROM entries ",
            $($rest),*
        )
    };
}

/// `SELECT <every sessions column> FROM sessions` followed by the given SQL, as a literal.
macro_rules! select_sessions {
    ($($rest:literal),*) => {
        concat!(
            "SELECT session_id, session_key, agent_id, created_at_ms, updated_at_ms, last_seq, \
             entry_count, compaction_count, last_compaction_seq, compacted_through, \
             input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             estimated_tokens, cost_usd FROM sessions ",
            $($rest),*
        )
    };
}

pub(crate) use {select_entries, select_sessions};

/// One row of `entries`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct EntryRow {
    pub(crate) session_id: String,
    pub(crate) seq: i64,
    pub(crate) kind: String,
    pub(crate) body: Option<String>,
    pub(crate) tool_call_id: Option<String>,
    pub(crate) tool_name: Option<String>,
    pub(crate) tool_arguments: Option<String>,
    pub(crate) tool_is_error: Option<i64>,
    pub(crate) replaces_first_seq: Option<i64>,
    pub(crate) replaces_last_seq: Option<i64>,
    pub(crate) model: Option<String>,
    pub(crate) attempts_json: Option<String>,
    pub(crate) input_tokens: Option<i64>,
    pub(crate) output_tokens: Option<i64>,
    pub(crate) cache_read_tokens: Option<i64>,
    pub(crate) cache_write_tokens: Option<i64>,
    pub(crate) usage_estimated: Option<i64>,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) token_estimate: Option<i64>,
    pub(crate) created_at_ms: i64,
}

/// One row of `sessions`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct SessionRow {
    pub(crate) session_id: String,
    pub(crate) session_key: String,
    pub(crate) agent_id: String,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    pub(crate) last_seq: i64,
    pub(crate) entry_count: i64,
    pub(crate) compaction_count: i64,
    pub(crate) last_compaction_seq: i64,
    pub(crate) compacted_through: i64,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
    pub(crate) cache_read_tokens: i64,
    pub(crate) cache_write_tokens: i64,
    pub(crate) estimated_tokens: i64,
    pub(crate) cost_usd: f64,
}

/// One row of `responses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseRow {
    pub(crate) response_id: String,
    pub(crate) session_key: String,
    pub(crate) session_id: String,
    pub(crate) created_at_ms: i64,
}

/// Counts stored as INTEGER: saturate rather than wrap at `i64::MAX`.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Counts read back: a negative value (only from a hand-edited database) reads as 0.
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

// === impl EntryRow ===

impl EntryRow {
    pub(crate) fn from_new(session_id: SessionId, seq: Seq, entry: NewEntry) -> Self {
        let NewEntry { content, meta, created_at } = entry;
        let mut row = EntryRow {
            session_id: session_id.to_string(),
            seq: seq.get(),
            kind: content.kind().as_str().to_owned(),
            model: meta.model,
            // Attempts quote upstream error text: masked once more before it is written
            // (Invariant 5; the messages were masked where they were read).
            attempts_json: meta
                .attempts_json
                .map(|json| hearth_config::redact::redact(&json).into_owned()),
            cost_usd: meta.cost_usd,
            token_estimate: meta.token_estimate.map(to_i64),
            created_at_ms: created_at.as_unix_millis(),
            ..EntryRow::default()
        };
        if let Some(usage) = meta.usage {
            row.input_tokens = Some(to_i64(usage.input_tokens));
            row.output_tokens = Some(to_i64(usage.output_tokens));
            row.cache_read_tokens = Some(to_i64(usage.cache_read_tokens));
            row.cache_write_tokens = Some(to_i64(usage.cache_write_tokens));
            row.usage_estimated = Some(i64::from(usage.estimated));
        }
        match content {
            Content::User { text }
            | Content::Assistant { text }
            | Content::Reasoning { text }
            | Content::SystemNote { text } => row.body = Some(text),
            Content::ToolCall { id, name, arguments } => {
                row.tool_call_id = Some(id);
                row.tool_name = Some(name);
                row.tool_arguments = Some(arguments);
            }
            Content::ToolResult { call_id, content, is_error } => {
                row.tool_call_id = Some(call_id);
                row.body = Some(content);
                row.tool_is_error = Some(i64::from(is_error));
            }
            Content::Compaction { summary, replaces } => {
                row.body = Some(summary);
                row.replaces_first_seq = Some(replaces.first.get());
                row.replaces_last_seq = Some(replaces.last.get());
            }
        }
        row
    }

    pub(crate) fn read(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(EntryRow {
            session_id: row.try_get("session_id")?,
            seq: row.try_get("seq")?,
            kind: row.try_get("kind")?,
            body: row.try_get("body")?,
            tool_call_id: row.try_get("tool_call_id")?,
            tool_name: row.try_get("tool_name")?,
            tool_arguments: row.try_get("tool_arguments")?,
            tool_is_error: row.try_get("tool_is_error")?,
            replaces_first_seq: row.try_get("replaces_first_seq")?,
            replaces_last_seq: row.try_get("replaces_last_seq")?,
            model: row.try_get("model")?,
            attempts_json: row.try_get("attempts_json")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cache_read_tokens: row.try_get("cache_read_tokens")?,
            cache_write_tokens: row.try_get("cache_write_tokens")?,
            usage_estimated: row.try_get("usage_estimated")?,
            cost_usd: row.try_get("cost_usd")?,
            token_estimate: row.try_get("token_estimate")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }

    pub(crate) async fn insert(self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO entries (session_id, seq, kind, body, tool_call_id, tool_name, \
             tool_arguments, tool_is_error, replaces_first_seq, replaces_last_seq, model, \
             attempts_json, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
             usage_estimated, cost_usd, token_estimate, created_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.session_id)
        .bind(self.seq)
        .bind(self.kind)
        .bind(self.body)
        .bind(self.tool_call_id)
        .bind(self.tool_name)
        .bind(self.tool_arguments)
        .bind(self.tool_is_error)
        .bind(self.replaces_first_seq)
        .bind(self.replaces_last_seq)
        .bind(self.model)
        .bind(self.attempts_json)
        .bind(self.input_tokens)
        .bind(self.output_tokens)
        .bind(self.cache_read_tokens)
        .bind(self.cache_write_tokens)
        .bind(self.usage_estimated)
        .bind(self.cost_usd)
        .bind(self.token_estimate)
        .bind(self.created_at_ms)
        .execute(conn)
        .await
        .map(|_| ())
    }
}

impl TryFrom<EntryRow> for Entry {
    type Error = Error;

    fn try_from(row: EntryRow) -> Result<Self, Error> {
        let seq = row.seq;
        let missing =
            |field: &str| Error::corrupt(format!("entry {seq} ({}) has no {field}", row.kind));
        let kind: EntryKind =
            row.kind.parse().map_err(|e| Error::corrupt(format!("entry {seq}: {e}")))?;
        let body = row.body.clone().ok_or_else(|| missing("body"));
        let content = match kind {
            EntryKind::User => Content::User { text: body? },
            EntryKind::Assistant => Content::Assistant { text: body? },
            EntryKind::Reasoning => Content::Reasoning { text: body? },
            EntryKind::SystemNote => Content::SystemNote { text: body? },
            EntryKind::ToolCall => Content::ToolCall {
                id: row.tool_call_id.clone().ok_or_else(|| missing("tool_call_id"))?,
                name: row.tool_name.clone().ok_or_else(|| missing("tool_name"))?,
                arguments: row.tool_arguments.clone().ok_or_else(|| missing("tool_arguments"))?,
            },
            EntryKind::ToolResult => Content::ToolResult {
                call_id: row.tool_call_id.clone().ok_or_else(|| missing("tool_call_id"))?,
                content: body?,
                is_error: row.tool_is_error.is_some_and(|flag| flag != 0),
            },
            EntryKind::Compaction => Content::Compaction {
                summary: body?,
                replaces: SeqRange {
                    first: Seq::new(
                        row.replaces_first_seq.ok_or_else(|| missing("replaces_first_seq"))?,
                    ),
                    last: Seq::new(
                        row.replaces_last_seq.ok_or_else(|| missing("replaces_last_seq"))?,
                    ),
                },
            },
        };
        let usage = row.usage_estimated.map(|estimated| Usage {
            input_tokens: row.input_tokens.map_or(0, to_u64),
            output_tokens: row.output_tokens.map_or(0, to_u64),
            cache_read_tokens: row.cache_read_tokens.map_or(0, to_u64),
            cache_write_tokens: row.cache_write_tokens.map_or(0, to_u64),
            estimated: estimated != 0,
        });
        Ok(Entry {
            session_id: parse_session_id(&row.session_id)?,
            seq: Seq::new(row.seq),
            content,
            meta: EntryMeta {
                model: row.model,
                attempts_json: row.attempts_json,
                usage,
                cost_usd: row.cost_usd,
                token_estimate: row.token_estimate.map(to_u64),
            },
            created_at: Timestamp::from_unix_millis(row.created_at_ms),
        })
    }
}

// === impl SessionRow ===

impl SessionRow {
    pub(crate) fn read(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(SessionRow {
            session_id: row.try_get("session_id")?,
            session_key: row.try_get("session_key")?,
            agent_id: row.try_get("agent_id")?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            last_seq: row.try_get("last_seq")?,
            entry_count: row.try_get("entry_count")?,
            compaction_count: row.try_get("compaction_count")?,
            last_compaction_seq: row.try_get("last_compaction_seq")?,
            compacted_through: row.try_get("compacted_through")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cache_read_tokens: row.try_get("cache_read_tokens")?,
            cache_write_tokens: row.try_get("cache_write_tokens")?,
            estimated_tokens: row.try_get("estimated_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
        })
    }

    pub(crate) fn session_id(&self) -> Result<SessionId, Error> {
        parse_session_id(&self.session_id)
    }
}

impl TryFrom<SessionRow> for SessionSummary {
    type Error = Error;

    fn try_from(row: SessionRow) -> Result<Self, Error> {
        Ok(SessionSummary {
            session_id: row.session_id()?,
            key: row.session_key,
            agent_id: row.agent_id,
            created_at: Timestamp::from_unix_millis(row.created_at_ms),
            updated_at: Timestamp::from_unix_millis(row.updated_at_ms),
            last_seq: Seq::new(row.last_seq),
            entry_count: to_u64(row.entry_count),
            compaction_count: to_u64(row.compaction_count),
            totals: Totals {
                input_tokens: to_u64(row.input_tokens),
                output_tokens: to_u64(row.output_tokens),
                cache_read_tokens: to_u64(row.cache_read_tokens),
                cache_write_tokens: to_u64(row.cache_write_tokens),
                estimated_tokens: to_u64(row.estimated_tokens),
                cost_usd: row.cost_usd,
            },
        })
    }
}

// === impl ResponseRow ===

impl ResponseRow {
    pub(crate) fn read(row: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(ResponseRow {
            response_id: row.try_get("response_id")?,
            session_key: row.try_get("session_key")?,
            session_id: row.try_get("session_id")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

impl TryFrom<ResponseRow> for ResponseLink {
    type Error = Error;

    fn try_from(row: ResponseRow) -> Result<Self, Error> {
        Ok(ResponseLink {
            session_id: parse_session_id(&row.session_id)?,
            response_id: row.response_id,
            session_key: row.session_key,
            created_at: Timestamp::from_unix_millis(row.created_at_ms),
        })
    }
}

fn parse_session_id(text: &str) -> Result<SessionId, Error> {
    text.parse().map_err(|e| Error::corrupt(format!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_masked_before_they_are_written() {
        hearth_config::redact::register("gsk_rowsTest0123456789");
        let meta = EntryMeta {
            attempts_json: Some(r#"{"terminalError":"bad key gsk_rowsTest0123456789"}"#.into()),
            ..EntryMeta::default()
        };
        let entry = NewEntry::user("hi", Timestamp::now()).with_meta(meta);
        let row = EntryRow::from_new(SessionId::now_v7(), Seq::new(1), entry);
        assert_eq!(row.attempts_json.as_deref(), Some(r#"{"terminalError":"bad key ***"}"#));
    }
}
