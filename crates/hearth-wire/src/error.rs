//! The crate's one error type, reported by the stream decoders as an item, never as a panic.

/// A bounded decoder refused part of its input.
///
/// The decoder that reports it keeps going: the offending line or event is dropped and decoding
/// resumes at the next line (NDJSON) or the next event (SSE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// One line was longer than the decoder's limit.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// One SSE event's fields (data, event name, id) added up to more than the limit.
    #[error("event larger than {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}
