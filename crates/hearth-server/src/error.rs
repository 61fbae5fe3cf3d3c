//! The one place that maps errors to HTTP: every error response the gateway sends is an
//! [`ApiError`], rendered in the caller's API shape (OpenAI `{"error":{…}}` or Anthropic
//! `{"type":"error","error":{…}}`).
//!
//! Invariant: error bodies never carry secrets; upstream messages were already cut and masked
//! by `hearth-upstream::classify`, and [`ApiError::body`] passes the redactor again.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_config::RefError;
use hearth_upstream::{ErrorClass, Failure, Overflow, UpstreamError};
use serde_json::json;

/// Which API's error shape a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OpenAi,
    Anthropic,
}

/// An error answered to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI `type` (`invalid_request_error`, `authentication_error`, `api_error`, …).
    pub kind: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    pub retry_after: Option<Duration>,
    pub shape: Shape,
    /// The numbers of a context overflow, for the wording each API's own server uses.
    pub overflow: Option<Box<Overflow>>,
}

/// `x-should-retry`: Anthropic's and OpenAI's SDKs (and so Claude Code and Codex) follow it
/// before their own status rules.
pub const HEADER_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// Error messages are cut to this many bytes: a hostile request cannot make the gateway echo
/// megabytes back (a 1 MB model name, a huge invalid value in a JSON error).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes at a character boundary, with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            message = excerpt(&message, MAX_MESSAGE_BYTES).into_owned();
        }
        ApiError {
            status,
            kind,
            message,
            param: None,
            code: None,
            retry_after: None,
            shape: Shape::OpenAi,
            overflow: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 about one field.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        ApiError { param: Some(param.to_owned()), ..ApiError::invalid(message) }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn shaped(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// A request body that is not valid JSON, or does not have the request's shape.
    pub fn from_json(e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => ApiError::invalid(format!(
                "the request body is not valid JSON: {} (line {}, column {})",
                strip_position(&e.to_string()),
                e.line(),
                e.column()
            ))
            .with_code("invalid_json"),
            Category::Data | Category::Io => {
                let text = strip_position(&e.to_string());
                let param = text
                    .split('`')
                    .nth(1)
                    .filter(|_| text.starts_with("missing field"))
                    .map(str::to_owned);
                ApiError {
                    param,
                    ..ApiError::invalid(format!(
                        "invalid request: {text} (line {}, column {})",
                        e.line(),
                        e.column()
                    ))
                }
            }
        }
    }

    /// A model reference or agent that does not resolve.
    pub fn from_ref(e: &RefError) -> Self {
        match e {
            RefError::NoDefault => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                format!(
                    "no model configured for this request: {}; with no config, hearth expects LM Studio's server at http://127.0.0.1:1234/v1 (start it with `lms server start`) and a model named in the request as \"lmstudio/<model id>\"",
                    e.help().unwrap_or_default()
                ),
            )
            .with_code("no_model_configured"),
            RefError::NotAllowed { .. } => {
                let mut message = e.to_string();
                if let Some(help) = e.help() {
                    message.push_str(&format!(" ({help})"));
                }
                let mut err = ApiError::new(StatusCode::FORBIDDEN, "invalid_request_error", message)
                    .with_code("model_not_allowed");
                err.param = Some("model".to_owned());
                err
            }
            _ => {
                let mut message = e.to_string();
                if let Some(help) = e.help() {
                    message.push_str(&format!(" ({help})"));
                }
                let mut err = ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", message).with_code("model_not_found");
                err.param = Some("model".to_owned());
                err
            }
        }
    }

    /// No candidate answered: the status says why, the message lists every attempt.
    pub fn from_failure(failure: &Failure, hints: &[String]) -> Self {
        let mut message = failure.to_string();
        for hint in hints {
            message.push_str("; ");
            message.push_str(hint);
        }
        let all_skipped =
            !failure.attempts.is_empty() && failure.attempts.iter().all(|a| a.skipped);
        let mut err = match failure.last.class {
            ErrorClass::ContextOverflow => return ApiError::overflow(&failure.last),
            ErrorClass::Format => {
                ApiError::invalid(format!("the upstream rejected the request: {message}"))
                    .with_code("upstream_rejected")
            }
            ErrorClass::Timeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "api_error", message)
                .with_code("upstream_timeout"),
            ErrorClass::Overloaded | ErrorClass::RateLimit | ErrorClass::Loading => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
                    .with_code("upstream_unavailable")
            }
            _ if all_skipped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
                    .with_code("upstream_unavailable")
            }
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "api_error", message)
                .with_code("upstream_error"),
        };
        if err.status == StatusCode::SERVICE_UNAVAILABLE {
            err.retry_after = failure.retry_in.or(failure.last.retry_after);
        }
        err
    }

    /// An upstream failure after the model started answering (non-streaming responses only).
    pub fn from_upstream(e: &UpstreamError) -> Self {
        match e.class {
            ErrorClass::ContextOverflow => ApiError::overflow(e),
            ErrorClass::Timeout => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "api_error", e.to_string())
                    .with_code("upstream_timeout")
            }
            _ => ApiError::new(StatusCode::BAD_GATEWAY, "api_error", e.to_string())
                .with_code("upstream_error"),
        }
    }

    /// A context overflow in a direct run: 400 with the numbers.
    pub fn overflow(e: &UpstreamError) -> Self {
        let numbers = e.overflow.map(|o| {
            let mut parts = Vec::new();
            if let Some(p) = o.prompt_tokens {
                parts.push(format!("prompt {p} tokens"));
            }
            if let Some(c) = o.context_size {
                parts.push(format!("context window {c} tokens"));
            }
            if let Some(r) = o.requested_output {
                parts.push(format!("requested output {r} tokens"));
            }
            parts.join(", ")
        });
        let message = match numbers.filter(|n| !n.is_empty()) {
            Some(n) => {
                format!("the prompt does not fit the model's context window ({n}): {}", e.message)
            }
            None => format!("the prompt does not fit the model's context window: {}", e.message),
        };
        ApiError {
            overflow: Some(Box::new(e.overflow.unwrap_or_default())),
            ..ApiError::invalid_param("messages", message).with_code("context_length_exceeded")
        }
    }

    /// Whether a client should send the same request again: `Some(false)` for client errors
    /// that another try cannot fix (400, 401, 403, 404, 405, 413, 422), `Some(true)` for 429
    /// and 503 that say when (`Retry-After`), `None` (the client's own rules) otherwise.
    pub fn should_retry(&self) -> Option<bool> {
        match self.status.as_u16() {
            400 | 401 | 403 | 404 | 405 | 413 | 422 => Some(false),
            429 | 503 if self.retry_after.is_some() => Some(true),
            _ => None,
        }
    }

    /// The message as the caller's API words it. Anthropic's overflow wording is what Claude
    /// Code looks for: `prompt is too long: N tokens > M maximum`.
    fn worded(&self) -> String {
        match (self.shape, self.overflow.as_deref()) {
            (Shape::Anthropic, Some(o)) => match (o.prompt_tokens, o.context_size) {
                (Some(n), Some(m)) => format!("prompt is too long: {n} tokens > {m} maximum"),
                (Some(n), None) => format!("prompt is too long: {n} tokens ({})", self.message),
                (None, Some(m)) => {
                    format!("prompt is too long: more than {m} maximum ({})", self.message)
                }
                (None, None) => format!("prompt is too long ({})", self.message),
            },
            _ => self.message.clone(),
        }
    }

    /// The JSON body of this error, in its shape. The message passes the redactor once more
    /// (`hearth_config::redact`): upstream text was masked where it was read, and this second
    /// net keeps a future path that forgets from showing a secret.
    pub fn body(&self) -> serde_json::Value {
        let worded = self.worded();
        let message = hearth_config::redact::redact(&worded);
        match self.shape {
            Shape::OpenAi => json!({"error": {
                "message": message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }}),
            Shape::Anthropic => {
                json!({"type": "error", "error": {"type": self.anthropic_kind(), "message": message}})
            }
        }
    }

    /// Anthropic's error `type` for this status.
    pub fn anthropic_kind(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 413 | 422 => {
                if self.status == StatusCode::PAYLOAD_TOO_LARGE {
                    "request_too_large"
                } else {
                    "invalid_request_error"
                }
            }
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        }
    }
}

fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(retry) = self.should_retry() {
            response.headers_mut().insert(
                HEADER_SHOULD_RETRY,
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_advice_follows_the_status() {
        let at = |status: u16, after: Option<u64>| {
            let mut e = ApiError::new(StatusCode::from_u16(status).unwrap(), "api_error", "x");
            e.retry_after = after.map(Duration::from_secs);
            let response = e.into_response();
            response.headers().get(HEADER_SHOULD_RETRY).map(|v| v.to_str().unwrap().to_owned())
        };
        for status in [400, 401, 403, 404, 405, 413, 422] {
            assert_eq!(at(status, None).as_deref(), Some("false"), "{status}");
        }
        assert_eq!(at(429, Some(3)).as_deref(), Some("true"));
        assert_eq!(at(503, Some(3)).as_deref(), Some("true"));
        for (status, after) in [(503, None), (429, None), (502, None), (504, None), (500, None)] {
            assert_eq!(at(status, after), None, "{status}: the client's own rules");
        }
    }

    #[test]
    fn bodies_are_masked_again() {
        hearth_config::redact::register("gsk_errorBodyTest0123456789");
        let err =
            ApiError::new(StatusCode::BAD_GATEWAY, "api_error", "echo gsk_errorBodyTest0123456789");
        for shape in [Shape::OpenAi, Shape::Anthropic] {
            let body = err.clone().shaped(shape).body().to_string();
            assert!(body.contains("echo ***") && !body.contains("gsk_"), "{body}");
        }
    }
}
