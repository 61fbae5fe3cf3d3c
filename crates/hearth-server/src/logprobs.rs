//! Token logprobs as OpenAI writes them, serialized straight from the canonical
//! [`TokenLogprob`]s (borrowed, no `Value`): chat `logprobs.content[]` and the Responses
//! `output_text` part's `logprobs[]` are `{token, logprob, bytes, top_logprobs: [{token,
//! logprob, bytes}]}`; the Responses stream events (`response.output_text.delta`, `.done`) carry
//! `{token, logprob, top_logprobs: [{token, logprob}]}`, without bytes.
//!
//! Chat allows `bytes: null` (no byte form known); the Responses part defines `bytes` as a list,
//! so there a token the upstream sent without bytes shows its text's UTF-8 bytes.

use hearth_upstream::{TokenLogprob, TopLogprob};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

/// The API whose shape is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Chat,
    /// The `output_text` content part.
    ResponsesPart,
    /// `response.output_text.delta` and `.done`.
    ResponsesEvent,
}

/// A list of token logprobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tokens<'a> {
    pub tokens: &'a [TokenLogprob],
    pub dialect: Dialect,
}

/// Chat's `logprobs` object: `{content: [...], refusal: null}`.
#[derive(Debug, Serialize)]
pub(crate) struct ChatLogprobs<'a> {
    pub content: Tokens<'a>,
    pub refusal: Option<()>,
}

impl<'a> ChatLogprobs<'a> {
    pub(crate) fn new(tokens: &'a [TokenLogprob]) -> Self {
        ChatLogprobs { content: Tokens { tokens, dialect: Dialect::Chat }, refusal: None }
    }
}

struct Bytes<'a> {
    bytes: Option<&'a [u8]>,
    token: &'a str,
    dialect: Dialect,
}

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.bytes, self.dialect) {
            (Some(bytes), _) => serializer.collect_seq(bytes),
            (None, Dialect::ResponsesPart | Dialect::ResponsesEvent) => {
                serializer.collect_seq(self.token.as_bytes())
            }
            (None, Dialect::Chat) => serializer.serialize_none(),
        }
    }
}

struct Top<'a> {
    top: &'a [TopLogprob],
    dialect: Dialect,
}

impl Serialize for Top<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.top.len()))?;
        for t in self.top {
            seq.serialize_element(&Entry {
                token: &t.token,
                logprob: t.logprob,
                bytes: t.bytes.as_deref(),
                top: None,
                dialect: self.dialect,
            })?;
        }
        seq.end()
    }
}

/// One token (`top: Some`) or one alternative (`top: None`, no `top_logprobs`).
struct Entry<'a> {
    token: &'a str,
    logprob: f64,
    bytes: Option<&'a [u8]>,
    top: Option<&'a [TopLogprob]>,
    dialect: Dialect,
}

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let with_bytes = self.dialect != Dialect::ResponsesEvent;
        let fields = 2 + usize::from(with_bytes) + usize::from(self.top.is_some());
        let mut s = serializer.serialize_struct("TokenLogprob", fields)?;
        s.serialize_field("token", self.token)?;
        s.serialize_field("logprob", &self.logprob)?;
        if with_bytes {
            s.serialize_field(
                "bytes",
                &Bytes { bytes: self.bytes, token: self.token, dialect: self.dialect },
            )?;
        }
        if let Some(top) = self.top {
            s.serialize_field("top_logprobs", &Top { top, dialect: self.dialect })?;
        }
        s.end()
    }
}

impl Serialize for Tokens<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.tokens.len()))?;
        for t in self.tokens {
            seq.serialize_element(&Entry {
                token: &t.token,
                logprob: t.logprob,
                bytes: t.bytes.as_deref(),
                top: Some(&t.top),
                dialect: self.dialect,
            })?;
        }
        seq.end()
    }
}

/// Adds `logprobs` to what was dropped when the caller asked for them and the answering
/// upstream's API has none (Anthropic Messages, Ollama): the answer came without them, never a
/// 400. The answering model is read from the response's `x-hearth-provider` and
/// `x-hearth-model`; a stream that started before it knew (late headers) is judged by the
/// chain's first candidate.
pub(crate) fn note_dropped(
    config: &hearth_config::Config,
    chain: &hearth_config::Chain,
    requested: bool,
    response: &axum::response::Response,
    dropped: &mut Vec<String>,
) {
    if !requested {
        return;
    }
    let headers = response.headers();
    let answered = match (
        headers.get(crate::relay::HEADER_PROVIDER).and_then(|v| v.to_str().ok()),
        headers.get(crate::relay::HEADER_MODEL).and_then(|v| v.to_str().ok()),
    ) {
        (Some(p), Some(m)) => Some(hearth_config::ModelRef::new(p, m)),
        _ => chain.candidates.first().cloned(),
    };
    let api = answered.and_then(|r| config.resolve_model_ref(&r).ok().map(|r| r.model.api));
    if api.is_some_and(|api| !hearth_upstream::encode::has_logprobs(api)) {
        dropped.push("logprobs".to_owned());
    }
}
