-- Sessions and their transcripts.
--
-- A session key (`agent:main:main`, `hook:<uuid>`, ...) names a conversation; a session id
-- (UUID v7, TEXT) names one transcript under it. `reset` archives the current row and inserts
-- a new one under the same key, so at most one row per key has `archived_at_ms IS NULL`.
-- Timestamps are unix milliseconds. Counters on the session row are kept in step with
-- `entries` inside the same transaction as each append.
CREATE TABLE sessions (
    session_id         TEXT    NOT NULL PRIMARY KEY,
    session_key        TEXT    NOT NULL,
    agent_id           TEXT    NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    updated_at_ms      INTEGER NOT NULL,
    archived_at_ms     INTEGER,
    last_seq           INTEGER NOT NULL DEFAULT 0,
    entry_count        INTEGER NOT NULL DEFAULT 0,
    compaction_count   INTEGER NOT NULL DEFAULT 0,
    -- The seq of the newest compaction entry and its `replaces_last_seq`; 0 when there is none.
    last_compaction_seq INTEGER NOT NULL DEFAULT 0,
    compacted_through  INTEGER NOT NULL DEFAULT 0,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    estimated_tokens   INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL    NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX sessions_current_key ON sessions (session_key) WHERE archived_at_ms IS NULL;
CREATE INDEX sessions_key ON sessions (session_key, created_at_ms);
CREATE INDEX sessions_agent ON sessions (agent_id, updated_at_ms);

-- One row per transcript entry; `seq` counts from 1 within a session id. A rowid table, not
-- WITHOUT ROWID: entries can be large, and the (session_id, seq) index keeps lookups ordered.
-- `kind` is one of user, assistant, reasoning, tool_call, tool_result, compaction, system_note.
CREATE TABLE entries (
    session_id          TEXT    NOT NULL REFERENCES sessions (session_id),
    seq                 INTEGER NOT NULL,
    kind                TEXT    NOT NULL,
    -- Message text, reasoning text, tool result content, compaction summary or note.
    body                TEXT,
    tool_call_id        TEXT,
    tool_name           TEXT,
    -- Tool call arguments as the model sent them (JSON text, not validated).
    tool_arguments      TEXT,
    tool_is_error       INTEGER,
    replaces_first_seq  INTEGER,
    replaces_last_seq   INTEGER,
    model               TEXT,
    attempts_json       TEXT,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    cache_read_tokens   INTEGER,
    cache_write_tokens  INTEGER,
    usage_estimated     INTEGER,
    cost_usd            REAL,
    token_estimate      INTEGER,
    created_at_ms       INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT;

-- `previous_response_id` continuation: which session key (and which transcript) a response
-- id belongs to.
CREATE TABLE responses (
    response_id   TEXT    NOT NULL PRIMARY KEY,
    session_key   TEXT    NOT NULL,
    session_id    TEXT    NOT NULL REFERENCES sessions (session_id),
    created_at_ms INTEGER NOT NULL
) STRICT;
