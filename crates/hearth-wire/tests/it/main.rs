//! Integration tests for hearth-wire: property tests, realistic transcripts and wire samples.

mod ndjson_props;
mod sse_props;
mod transcripts;
mod wire_types;
