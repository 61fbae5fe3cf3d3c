//! The model endpoints: `/v1/chat/completions` (`chat`), `/v1/responses` (`responses`) and
//! `/v1/messages` (`messages`, with `/v1/messages/count_tokens`).

pub mod chat;
pub mod messages;
pub mod responses;
