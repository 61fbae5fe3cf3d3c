//! The canonical event stream: every adapter turns its wire format into these, and every
//! downstream endpoint renders from them (Invariant 2).

use std::time::Duration;

/// One event of a model's answer, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Answer text. Never contains reasoning.
    TextDelta(String),
    /// Log probabilities of the upstream's answer tokens, sent just before the text they belong
    /// to (the `TextDelta`s that follow carry those tokens' text), so a stream renderer can put
    /// them on the chunk of that text without looking ahead. Only when the caller asked and the
    /// upstream reported them: nothing is allocated otherwise. The tokens are the upstream's
    /// content tokens, so where hearth moved inline think tags into reasoning they cover those
    /// too (docs/upstream.md, "Logprobs").
    Logprobs(Vec<TokenLogprob>),
    /// Reasoning ("thinking") text, kept apart from the answer.
    ReasoningDelta(String),
    /// An Anthropic thinking-block signature (or Responses encrypted reasoning), kept for
    /// replaying the reasoning in later turns.
    ReasoningSignature(String),
    /// A piece of a tool call. `index` orders parallel calls; `id` and `name` arrive once,
    /// `arguments` in pieces of a JSON string.
    ToolCallDelta { index: u32, id: Option<String>, name: Option<String>, arguments: String },
    /// Token counts (may arrive more than once; the last one wins).
    Usage(Usage),
    /// A content block of the upstream's own API that no event above holds (Anthropic
    /// `server_tool_use`, `web_search_tool_result` and the other server-tool results,
    /// `redacted_thinking`, …), whole and as the upstream sent it (streamed input deltas
    /// joined), in its place among the other events. Only a caller that speaks the same API (the
    /// Messages surface for an Anthropic upstream) gets it back; others leave it out.
    Native(Box<serde_json::Value>),
    /// The server is reading the prompt (llama-server's `prompt_progress`): alive, no answer
    /// yet. Never the answer's beginning: the router hands these to
    /// [`RunOptions::on_progress`](crate::RunOptions) while it waits and leaves them out of the
    /// answer's stream (`docs/local-models.md`, "Cold loads and slow prompts").
    Progress(Progress),
    /// The model stopped.
    Finish(FinishReason),
    /// The upstream failed; terminal.
    Error(UpstreamError),
}

/// One answer token with its log probability and the most likely alternatives at its position
/// (OpenAI chat `logprobs.content[]`, Responses `output_text.logprobs[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    /// The token's UTF-8 bytes, when the upstream sent them (a token may be part of a
    /// character).
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position, most likely first (as many as the upstream
    /// gave, up to the requested count).
    pub top: Vec<TopLogprob>,
}

/// An alternative token at one position.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Option<Vec<u8>>,
}

/// How far a server has read the prompt, as it reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Prompt tokens in the server's context so far (cached ones included).
    pub processed: u64,
    /// Prompt tokens to read in all.
    pub total: u64,
    /// Of `total`, the tokens the server had in its cache (read at once).
    pub cached: u64,
    /// Time the server has spent on the prompt so far.
    pub elapsed: Duration,
}

impl Progress {
    /// Whether the whole prompt has been read.
    pub fn is_complete(&self) -> bool {
        self.total > 0 && self.processed >= self.total
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other(String),
}

impl FinishReason {
    /// OpenAI's spelling (`stop`, `length`, `tool_calls`, `content_filter`).
    pub fn as_openai(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(s) => s,
        }
    }
}

/// Token counts, normalized across APIs. `input_tokens` counts every prompt token, cached or
/// not (Anthropic's `input_tokens` excludes cache reads and writes; adapters add them back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache (part of `input_tokens`).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's cache (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (part of `output_tokens`), when reported.
    pub reasoning_tokens: Option<u64>,
    /// Counted by hearth (or from server timings), not reported as usage by the provider.
    pub estimated: bool,
}

/// What kind of failure, for the router's decision (`DESIGN.md`, failure taxonomy). Serialized
/// as its [`ErrorClass::as_str`] label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Refused, DNS, TLS: the server is not there.
    Connect,
    /// The server is loading the model (llama.cpp 503 "Loading model", LM Studio JIT load).
    Loading,
    /// No first byte in time, or idle mid-stream.
    Timeout,
    /// 429, "too many concurrent requests", usage-window 402.
    RateLimit,
    /// 503/529 overloaded.
    Overloaded,
    /// 401/403.
    Auth,
    /// 402 insufficient credits.
    Billing,
    /// The prompt does not fit the context window.
    ContextOverflow,
    /// The model id is unknown to the server (404 / model_not_found).
    ModelNotFound,
    /// Any other 4xx: the request is wrong; terminal.
    Format,
    /// 500, finish_reason error, a stream cut short.
    ServerError,
    /// A 200 with nothing usable: no text, no tool call (possibly reasoning only).
    EmptyResponse,
}

impl ErrorClass {
    /// Low-cardinality label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Loading => "loading",
            ErrorClass::Timeout => "timeout",
            ErrorClass::RateLimit => "rate_limit",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Auth => "auth",
            ErrorClass::Billing => "billing",
            ErrorClass::ContextOverflow => "context_overflow",
            ErrorClass::ModelNotFound => "model_not_found",
            ErrorClass::Format => "format",
            ErrorClass::ServerError => "server_error",
            ErrorClass::EmptyResponse => "empty_response",
        }
    }

    /// Whether another candidate may be tried (before anything was relayed).
    pub fn is_failover_eligible(self) -> bool {
        !matches!(self, ErrorClass::ContextOverflow | ErrorClass::Format)
    }
}

/// Numbers from a context-overflow message, when the server gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Tokens in the prompt (a lower bound when the server stopped counting).
    pub prompt_tokens: Option<u64>,
    /// The context window the server enforces.
    pub context_size: Option<u64>,
    /// Output tokens requested, when the message says.
    pub requested_output: Option<u64>,
}

/// A classified upstream failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{class_label}: {message}", class_label = .class.as_str())]
pub struct UpstreamError {
    pub class: ErrorClass,
    /// HTTP status, when the failure came with one.
    pub status: Option<u16>,
    /// What the server said (trimmed, secrets never included).
    pub message: String,
    /// `Retry-After`, when given.
    pub retry_after: Option<Duration>,
    pub overflow: Option<Overflow>,
}

impl UpstreamError {
    /// An error with `message`, every registered secret value in it masked
    /// (`hearth_config::redact`): messages built here often quote upstream bytes or URLs.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        let mut message = message.into();
        hearth_config::redact::redact_string(&mut message);
        UpstreamError { class, status: None, message, retry_after: None, overflow: None }
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass;

    #[test]
    fn serde_labels_are_the_as_str_labels() {
        let all = [
            ErrorClass::Connect,
            ErrorClass::Loading,
            ErrorClass::Timeout,
            ErrorClass::RateLimit,
            ErrorClass::Overloaded,
            ErrorClass::Auth,
            ErrorClass::Billing,
            ErrorClass::ContextOverflow,
            ErrorClass::ModelNotFound,
            ErrorClass::Format,
            ErrorClass::ServerError,
            ErrorClass::EmptyResponse,
        ];
        for class in all {
            let json = serde_json::to_value(class).ok();
            assert_eq!(json.as_ref().and_then(|v| v.as_str()), Some(class.as_str()));
            let back: Option<ErrorClass> = json.and_then(|v| serde_json::from_value(v).ok());
            assert_eq!(back, Some(class));
        }
    }
}
