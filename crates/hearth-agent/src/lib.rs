//! One agent turn: prompt assembly, context budget and preflight, compaction, tool policy and
//! untrusted-content handling.

pub mod budget;
pub mod compaction;
pub mod containment;
pub mod turn;

pub use turn::{
    Agents, Collected, NoticeSink, ProgressSink, Turn, TurnError, TurnRequest, collect,
    run_timeout, session_key_for,
};
