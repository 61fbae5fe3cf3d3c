//! Talking to model servers: adapters for each upstream API, turned into one canonical event
//! stream; reasoning kept apart; usage and cost; error classification. The only crate that
//! knows reqwest and upstream wire quirks.

pub mod classify;
pub mod client;
pub mod decode;
pub mod encode;
pub mod event;
pub mod prompt;
pub mod reasoning;
pub mod usage;

pub use client::{Client, EventStream};
pub use encode::Target;
pub use event::{ErrorClass, Event, FinishReason, Overflow, UpstreamError, Usage};
pub use prompt::{Message, Part, Prompt, Role, Tool, ToolCall, ToolChoice};
