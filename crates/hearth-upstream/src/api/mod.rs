//! One module per upstream API, each implementing [`Dialect`]: where a request goes, how it is
//! authenticated, its body (typed, from `hearth_wire`'s `out` types), how its answer is framed
//! and which decoder reads it, and whether it reports logprobs. Everything else (the transport,
//! the router, probes) asks [`of`] and never matches on [`Api`] itself. Adding a dialect is
//! adding a file here and a variant to `Api`.

mod anthropic;
mod ollama;
mod openai_chat;
mod openai_responses;

use hearth_config::Api;
use serde::Serialize;
use serde_json::Value;

use crate::decode::Decoder;
use crate::encode::{Target, merge_json};
use crate::event::Event;
use crate::prompt::Prompt;

/// How an answer's stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-Sent Events.
    Sse,
    /// Newline-delimited JSON (Ollama's native API).
    Ndjson,
}

/// One upstream API.
pub trait Dialect: Sync + std::fmt::Debug {
    /// The API this module speaks.
    fn api(&self) -> Api;

    /// The URL a request goes to, from the provider's base URL (no trailing slash).
    fn endpoint(&self, base: &str) -> String;

    /// The header that carries a credential, and its value.
    fn credential(&self, key: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {key}"))
    }

    /// Headers every request carries (Anthropic's `anthropic-version`).
    fn fixed_headers(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// How a stream is framed.
    fn framing(&self) -> Framing {
        Framing::Sse
    }

    /// Whether the API reports token logprobs (a caller's request for them is not sent where
    /// it does not; the server says so in `x-hearth-dropped`).
    fn has_logprobs(&self) -> bool {
        false
    }

    /// The request body, serialized ([`body`] applies `extra_body`).
    fn encode(&self, prompt: &Prompt, target: &Target<'_>) -> serde_json::Result<Vec<u8>>;

    /// One stream event (`name` is the SSE event name) on the typed, borrowing path; `false`
    /// when that path does not cover it and [`Dialect::stream_value`] must read it.
    fn stream_typed(
        &self,
        decoder: &mut Decoder,
        name: Option<&str>,
        data: &str,
        out: &mut Vec<Event>,
    ) -> bool;

    /// One stream event, as a JSON value.
    fn stream_value(
        &self,
        decoder: &mut Decoder,
        name: Option<&str>,
        value: &Value,
        out: &mut Vec<Event>,
    );

    /// A whole (non-streaming) answer body, as a JSON value.
    fn body_value(&self, decoder: &mut Decoder, value: &Value, out: &mut Vec<Event>);

    /// A whole answer body on the typed path; `false` when the value path must read it.
    fn body_typed(&self, _decoder: &mut Decoder, _data: &str, _out: &mut Vec<Event>) -> bool {
        false
    }
}

/// The module that speaks `api`.
pub fn of(api: Api) -> &'static dyn Dialect {
    match api {
        Api::OpenaiCompletions => &openai_chat::OpenAiChat,
        Api::OpenaiResponses => &openai_responses::OpenAiResponses,
        Api::AnthropicMessages => &anthropic::Anthropic,
        Api::Ollama => &ollama::Ollama,
    }
}

/// A typed body as bytes: serialized once, or, where the merged `params` have `extra_body` (or
/// `extraBody`), as a value with it deep-merged last.
pub(crate) fn body(
    body: &impl Serialize,
    params: &serde_json::Map<String, Value>,
) -> serde_json::Result<Vec<u8>> {
    match params.get("extra_body").or_else(|| params.get("extraBody")) {
        None => serde_json::to_vec(body),
        Some(extra) => {
            let mut value = serde_json::to_value(body)?;
            merge_json(&mut value, extra);
            serde_json::to_vec(&value)
        }
    }
}
