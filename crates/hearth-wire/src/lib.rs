//! Wire types and codecs for the APIs hearth speaks and relays. serde only: no IO, no tokio.
//!
//! - [`sse`]: incremental Server-Sent-Events decoder and encoder.
//! - [`ndjson`]: incremental newline-delimited JSON line decoder (Ollama native streams).
//! - [`openai_chat`], [`openai_responses`], [`anthropic`], [`ollama`]: typed request,
//!   response and stream-event bodies. Every struct keeps unknown fields in `extra`, so they
//!   serialize back out; unknown variants are kept whole in `Other`. Each also has an `out`
//!   module: the request body as hearth sends it, borrowed from the canonical request and
//!   serialized once ([`Fields`] holds the members its structs do not name).
//!
//! The decoders share one contract: they never panic on any byte sequence, they bound the memory
//! they buffer (an overflow is reported as a [`DecodeError`] item), and their output depends only
//! on the bytes, never on how the bytes were split into chunks.
#![warn(missing_docs, unreachable_pub)]

mod error;
mod fields;
mod lines;

pub mod anthropic;
pub mod ndjson;
pub mod ollama;
pub mod openai_chat;
pub mod openai_responses;
pub mod sse;

pub use error::DecodeError;
pub use fields::Fields;

/// The fields of a JSON object that a wire struct does not name, in their original order.
pub type Extra = serde_json::Map<String, serde_json::Value>;
