//! Turning an upstream failure (HTTP error, in-band stream error, error finish reason) into an
//! [`UpstreamError`] with a class for the router (`DESIGN.md`, failure taxonomy).
//!
//! The message is taken from every known error envelope (`reference/local-servers.md` §6.1):
//! OpenAI / llama.cpp / vLLM `{"error":{"message",…}}`, Anthropic
//! `{"type":"error","error":{…}}`, Ollama / LM Studio / mlx `{"error":"…"}`, flat
//! `{"object":"error","message":…}` (old vLLM, SGLang), FastAPI `{"detail":…}`, Responses
//! `response.failed`, plain text and HTML pages. Classification looks at the status and at the
//! text (message, `type`, `code`), in this order, first match wins:
//!
//! 1. usage-window text (`daily limit reached`, `weekly usage limit`, `spending limit`,
//!    budgets) → [`ErrorClass::RateLimit`], even on 402;
//! 2. billing text (`insufficient credits`, `credit balance too low`, `insufficient_quota`,
//!    `exceeded your current quota`, `key limit exceeded`) → [`ErrorClass::Billing`], on any
//!    status: OpenAI's 429 `insufficient_quota` is not a rate limit (retrying cannot help;
//!    the key needs money) and billing text on 401/403 is billing;
//! 3. 429 or rate-limit text (`rate limit`, `too many requests`, `quota`, TPM/RPM,
//!    `resource exhausted`, `throttl…`) → [`ErrorClass::RateLimit`]. This also excludes
//!    rate-limit messages that mention context sizes from step 5;
//! 4. 402 → [`ErrorClass::Billing`];
//! 5. 413 or context-overflow text (§6.2 regex, plus OpenClaw's wordings) →
//!    [`ErrorClass::ContextOverflow`], with the numbers when the message has them;
//! 6. 401/403 or auth text → [`ErrorClass::Auth`];
//! 7. 404 or model-not-found text (§6.3; includes `does not exist`, LM Studio load failures,
//!    Ollama `does not support chat`) → [`ErrorClass::ModelNotFound`]. An unknown route (404
//!    `{"detail":"Not Found"}`) lands here too: the candidate is unusable either way;
//! 8. loading text on 5xx or without a status → [`ErrorClass::Loading`];
//! 9. 503/529 or overload text → [`ErrorClass::Overloaded`];
//! 10. 408/504, or timeout text on 5xx or without a status → [`ErrorClass::Timeout`];
//! 11. any other 4xx → [`ErrorClass::Format`]; anything else → [`ErrorClass::ServerError`].
//!
//! In-band errors (a 200, or a stream event) take their status from a numeric JSON `code`
//! (vLLM, llama.cpp, LiteLLM's `"400"`), else from a well-known `type`
//! (`invalid_request_error` → 400, `overloaded_error` → 529, …) for classification only.
//! Messages are trimmed to [`MAX_MESSAGE_CHARS`] and API keys in them are masked ([`redact`]:
//! registered secret values, then key patterns).

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use crate::event::{ErrorClass, Overflow, UpstreamError};

/// Longest message kept in an [`UpstreamError`], in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Compiles a pattern written in this file.
#[expect(clippy::expect_used, reason = "literal patterns, every one compiled by the tests")]
fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid literal regex")
}

static USAGE_WINDOW_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)\b(?:hourly|daily|weekly|monthly|5-hour|five-hour)\b[^.\n]{0,40}\b(?:limit|quota",
        r"|cap)\b|usage limit|spend(?:ing)? limit|budget (?:has been )?exceeded|exceededbudget",
        r"|limit reached, resets|resets (?:tomorrow|at|in)\b",
    ))
});

static BILLING_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)insufficient[_ ](?:credits?|balance|funds|quota)|credit balance (?:is )?too low",
        r"|(?:out of|no remaining|not enough) credits|exceeded your current quota",
        r"|check your plan and billing|billing[_ ](?:hard[_ ])?limit|billing_not_active",
        r"|payment required|key limit exceeded",
    ))
});

static RATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)rate.?limit|too many requests|too many concurrent requests|concurrency limit",
        r"|tokens per min|requests per min|\bTPM\b|\bRPM\b|quota|resource.?exhausted|throttl",
    ))
});

/// §6.2 classification regex, plus OpenClaw's overflow wordings (`request_too_large`, `input
/// token count exceeds the maximum number of input tokens`, `input is too long for the model`,
/// `context length exceeded`) and vLLM's `cannot be greater than max_model_len`.
static OVERFLOW_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)context_length_exceeded|exceed_context_size_error|model_context_window_exceeded",
        r"|ContextWindowExceededError|maximum context length|context length (?:is|of) \d",
        r"|longer than the (?:model's context length|maximum model length)",
        r"|exceeds? the (?:available context size|max(?:imum)? context|context (?:window|length))",
        r"|larger than the max context size|prompt is too long",
        r"|input length and `?max_tokens`? exceed context limit",
        r"|input length exceeds the context length|prompt is longer than the context length",
        r"|tokens to keep from the initial prompt is greater than the context length",
        r"|when context the overflows|Context size has been exceeded",
        r"|exceeds the maximum allowed (?:input )?length|context window exceeds limit",
        r"|input tokens exceed|request_too_large|exceeds the maximum number of (?:input )?tokens",
        r"|input (?:is )?too long for the model|context length exceeded",
        r"|cannot be greater than max_model_len",
    ))
});

static AUTH_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)invalid_api_key|Incorrect API key|authentication_error|Invalid API Key",
        r"|Unauthorized|Invalid proxy server token|invalid x-api-key|permission_error",
        r"|\bauth_error\b|invalid authentication",
    ))
});

static MODEL_NOT_FOUND_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r#"(?i)model_not_found|not_found_error|does not exist|\bmodel\b[^.\n]{0,100}\bnot found"#,
        r#"|not found, try pulling|No models loaded|Invalid model (?:identifier|name)"#,
        r#"|Model is unloaded|Failed to load model|Error loading model|does not support (?:chat"#,
        r#"|generate|thinking|tools)"#,
    ))
});

static LOADING_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)loading model|model is (?:still |currently )?loading|loading the model",
        r"|\bis (?:still |currently )?loading\b",
    ))
});

static OVERLOAD_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?i)overloaded|server busy|maximum pending requests|no (?:free ",
        r"|available )?slots? (?:available|free)|ServiceUnavailable|service unavailable",
        r"|temporarily unavailable|not ready yet|ModelNotReadyException|unavailable_error",
    ))
});

static TIMEOUT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)timeout_error|timed out|\btimeout\b|deadline exceeded"));

static RETRY_TEXT_RE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)try again in (?:(\d+)m)?(\d+(?:\.\d+)?)\s*(ms|s|secs?|seconds?)\b"));

static SECRET_RES: LazyLock<[(Regex, &'static str); 4]> = LazyLock::new(|| {
    [
        (re(r"\b(sk|pk|rk)-[A-Za-z0-9_\-\*\.]{6,}"), "$1-***"),
        (re(r"\bAIza[0-9A-Za-z_\-]{20,}"), "***"),
        (re(r"(?i)\b(bearer\s+)[A-Za-z0-9_\-\.=\+/]{8,}"), "${1}***"),
        (re(r"(?i)\b((?:api[ _-]?key|key hash \(token\)|token)\s*[=:]\s*)[^\s,;]+"), "${1}***"),
    ]
});

static HTML_TITLE_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?is)<title[^>]*>(.*?)</title>"));
static HTML_TAG_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?s)<[^>]*>"));
static SPACES_RE: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));

/// Which number a capture group of an overflow message holds.
#[derive(Clone, Copy)]
enum Slot {
    /// Context window.
    W,
    /// Prompt tokens.
    P,
    /// Requested output tokens.
    M,
    /// Not kept.
    X,
}

/// §6.2 number extraction (first match wins), plus SGLang `Input length`, llama.cpp `input (N
/// tokens) is larger…`, vLLM `max_tokens=…` and gpt-oss `Reached context length of N`.
static EXTRACTORS: LazyLock<Vec<(Regex, &'static [Slot])>> = LazyLock::new(|| {
    use Slot::*;
    let table: [(&str, &'static [Slot]); 16] = [
        (
            r"maximum context length is (\d+) tokens\. However, you requested (\d+) output tokens and your prompt contains (?:at least )?(\d+) input tokens",
            &[W, M, P],
        ),
        (
            r"'max_tokens' or 'max_completion_tokens' is too large: (\d+)\. This model's maximum context length is (\d+) tokens and your request has (\d+) input tokens",
            &[M, W, P],
        ),
        (
            r"maximum context length is (\d+) tokens\. However, your request has (\d+) input tokens",
            &[W, P],
        ),
        (
            r"maximum context length is (\d+) tokens\. However, you requested (\d+) tokens \((\d+) in the messages, (\d+) in the completion\)",
            &[W, X, P, M],
        ),
        (r"prompt \(length (\d+)\) is longer than the maximum model length of (\d+)", &[P, W]),
        (r"max_tokens=(\d+) cannot be greater than max_model_len=(\d+)", &[M, W]),
        (
            r"The input \((\d+) tokens\) is longer than the model's context length \((\d+) tokens\)",
            &[P, W],
        ),
        (
            r"maximum context length of (\d+) tokens\. You requested a total of \d+ tokens: (\d+) tokens from the input messages and (\d+) tokens for the completion",
            &[W, P, M],
        ),
        (
            r"Input length \((\d+) tokens\) exceeds the maximum allowed length \((\d+) tokens\)",
            &[P, W],
        ),
        (r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)", &[P, W]),
        (r"input \((\d+) tokens\) is larger than the max context size \((\d+) tokens\)", &[P, W]),
        (r"Trying to keep the first (\d+) tokens .*context length of only (\d+) tokens", &[P, W]),
        (r"prompt is too long: (\d+) tokens > (\d+) maximum", &[P, W]),
        (r"exceed context limit: (\d+) \+ (\d+) > (\d+)", &[P, M, W]),
        (
            r"maximum context length is (\d+) tokens\. However, your messages resulted in (\d+) tokens",
            &[W, P],
        ),
        (r"Reached context length of (\d+) tokens", &[W]),
    ];
    table.into_iter().map(|(p, slots)| (re(&format!("(?i){p}")), slots)).collect()
});

/// What an error body says, whatever its envelope.
#[derive(Debug, Default)]
struct Parsed {
    message: String,
    kind: Option<String>,
    code: Option<String>,
    code_num: Option<u16>,
    n_prompt_tokens: Option<u64>,
    n_ctx: Option<u64>,
}

/// Classifies an HTTP error response: `status` (>= 400; a lower status means an in-band error
/// in a 2xx body), the `Retry-After` header value, and the body. The returned `status` is the
/// HTTP status when >= 400, else a numeric JSON `code`. `retry_after` comes from the header
/// (seconds), else, for rate-limit, overloaded and loading errors, from a `try again in 1.2s`
/// phrase in the message.
pub fn classify_http(status: u16, retry_after: Option<&str>, body: &str) -> UpstreamError {
    let parsed = parse_body(body);
    let status = if status >= 400 { Some(status) } else { parsed.code_num };
    build(status, &parsed, retry_after)
}

/// Classifies an in-band stream error: the data of llama.cpp's `error:` SSE field, an SGLang or
/// LiteLLM `data: {"error":{…}}` event after a 200, an Ollama `{"error":"…"}` NDJSON line, a
/// Responses `error` or `response.failed` event, an Anthropic `event: error`. A leading
/// `data:` or `error:` is ignored. The status is the JSON `code` when numeric.
pub fn classify_stream_error(data: &str) -> UpstreamError {
    let mut t = data.trim();
    for prefix in ["data:", "error:"] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim_start();
        }
    }
    let parsed = parse_body(t);
    build(parsed.code_num, &parsed, None)
}

/// Classifies a finish reason that means failure: `error` → [`ErrorClass::ServerError`];
/// `abort`/`aborted`, `network_error`, `malformed_response` → [`ErrorClass::Timeout`] (as
/// OpenClaw does: transport trouble, worth the next candidate). `None` for any other reason.
pub fn classify_finish_reason(reason: &str) -> Option<UpstreamError> {
    let class = match reason.trim().to_ascii_lowercase().as_str() {
        "error" => ErrorClass::ServerError,
        "abort" | "aborted" | "network_error" | "malformed_response" => ErrorClass::Timeout,
        _ => return None,
    };
    Some(UpstreamError::new(
        class,
        truncate(&redact(&format!("upstream finish_reason: {}", reason.trim()))),
    ))
}

/// Parses a `Retry-After` value given in seconds (`"30"`, `"1.5"`). HTTP dates and anything
/// else give `None`.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let secs: f64 = v.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// `try again in 1.2s` / `Try again in 5 seconds` / `in 20ms` / `in 1m30s` in a message.
fn retry_from_text(text: &str) -> Option<Duration> {
    let c = RETRY_TEXT_RE.captures(text)?;
    let minutes: f64 = match c.get(1) {
        Some(m) => m.as_str().parse().ok()?,
        None => 0.0,
    };
    let n: f64 = c.get(2)?.as_str().parse().ok()?;
    let unit = c.get(3)?.as_str().to_ascii_lowercase();
    let secs = if unit == "ms" { n / 1000.0 } else { n };
    Duration::try_from_secs_f64(minutes * 60.0 + secs).ok()
}

fn build(status: Option<u16>, p: &Parsed, retry_after: Option<&str>) -> UpstreamError {
    let kind = p.kind.as_deref().unwrap_or("");
    let code = p.code.as_deref().unwrap_or("");
    let hay = format!("{} {kind} {code}", p.message);
    let effective = status.or_else(|| p.kind.as_deref().and_then(status_for_type));
    let class = classify_text(effective, &hay, p);
    let overflow = if class == ErrorClass::ContextOverflow { extract_overflow(p) } else { None };
    let retry_after = retry_after.and_then(parse_retry_after).or_else(|| {
        matches!(class, ErrorClass::RateLimit | ErrorClass::Overloaded | ErrorClass::Loading)
            .then(|| retry_from_text(&p.message))
            .flatten()
    });
    let message = if p.message.trim().is_empty() {
        match status {
            Some(s) => format!("HTTP {s} without an error message"),
            None => "upstream error without a message".to_owned(),
        }
    } else {
        truncate(&redact(p.message.trim()))
    };
    UpstreamError { class, status, message, retry_after, overflow }
}

fn classify_text(status: Option<u16>, hay: &str, p: &Parsed) -> ErrorClass {
    let st = status.unwrap_or(0);
    let server_side = st == 0 || st >= 500;
    if USAGE_WINDOW_RE.is_match(hay) {
        ErrorClass::RateLimit
    } else if BILLING_RE.is_match(hay) {
        ErrorClass::Billing
    } else if st == 429 || RATE_RE.is_match(hay) {
        ErrorClass::RateLimit
    } else if st == 402 {
        ErrorClass::Billing
    } else if st == 413
        || OVERFLOW_RE.is_match(hay)
        || (p.n_prompt_tokens.is_some() && p.n_ctx.is_some())
    {
        ErrorClass::ContextOverflow
    } else if st == 401 || st == 403 || AUTH_RE.is_match(hay) {
        ErrorClass::Auth
    } else if st == 404 || MODEL_NOT_FOUND_RE.is_match(hay) {
        ErrorClass::ModelNotFound
    } else if server_side && LOADING_RE.is_match(hay) {
        ErrorClass::Loading
    } else if st == 503 || st == 529 || OVERLOAD_RE.is_match(hay) {
        ErrorClass::Overloaded
    } else if st == 408 || st == 504 || (server_side && TIMEOUT_RE.is_match(hay)) {
        ErrorClass::Timeout
    } else if (400..500).contains(&st) {
        ErrorClass::Format
    } else {
        ErrorClass::ServerError
    }
}

/// The status a well-known error `type` stands for, for in-band errors without a status.
fn status_for_type(kind: &str) -> Option<u16> {
    Some(match kind {
        "invalid_request_error" | "invalid_request" | "BadRequestError" => 400,
        "exceed_context_size_error" => 400,
        "authentication_error" | "auth_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" | "NotFoundError" | "model_not_found" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" | "server_error" | "InternalServerError" => 500,
        "not_supported_error" => 501,
        "unavailable_error" => 503,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => return None,
    })
}

fn extract_overflow(p: &Parsed) -> Option<Overflow> {
    let mut o =
        Overflow { prompt_tokens: p.n_prompt_tokens, context_size: p.n_ctx, ..Overflow::default() };
    if let Some((caps, slots)) =
        EXTRACTORS.iter().find_map(|(re, slots)| re.captures(&p.message).map(|c| (c, *slots)))
    {
        for (i, slot) in slots.iter().enumerate() {
            let n = caps.get(i + 1).and_then(|m| m.as_str().parse::<u64>().ok());
            let field = match slot {
                Slot::W => &mut o.context_size,
                Slot::P => &mut o.prompt_tokens,
                Slot::M => &mut o.requested_output,
                Slot::X => continue,
            };
            // JSON fields (llama.cpp) win over the text.
            if field.is_none() {
                *field = n;
            }
        }
    }
    (o != Overflow::default()).then_some(o)
}

fn parse_body(body: &str) -> Parsed {
    let t = body.trim();
    let mut p = Parsed::default();
    if t.is_empty() {
        return p;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(v) => {
            walk(&v, &mut p, 0);
            if p.message.trim().is_empty() {
                p.message = t.to_owned();
            }
        }
        Err(_) => p.message = plain_text(t),
    }
    p
}

/// Collects message, type, code and llama.cpp's token counts; inner `error` objects first.
fn walk(v: &Value, p: &mut Parsed, depth: usize) {
    if depth > 4 {
        return;
    }
    match v {
        Value::String(s) if p.message.is_empty() => p.message = s.clone(),
        Value::Array(items) => {
            if let Some(first) = items.first() {
                walk(first, p, depth + 1);
            }
        }
        Value::Object(m) => walk_object(m, p, depth),
        _ => {}
    }
}

fn walk_object(m: &Map<String, Value>, p: &mut Parsed, depth: usize) {
    if let Some(e) = m.get("error") {
        walk(e, p, depth + 1);
    }
    if let Some(e) = m.get("response").and_then(|r| r.get("error")) {
        walk(e, p, depth + 1);
    }
    if p.message.is_empty() {
        if let Some(s) = m.get("message").and_then(Value::as_str) {
            p.message = s.to_owned();
        } else if let Some(d) = m.get("detail") {
            p.message = detail_text(d);
        } else if let Some(s) = m.get("msg").and_then(Value::as_str) {
            p.message = s.to_owned();
        }
    }
    if p.kind.is_none()
        && let Some(k) = m.get("type").and_then(Value::as_str)
        && k != "error"
        && !k.starts_with("response.")
    {
        p.kind = Some(k.to_owned());
    }
    if p.code.is_none() {
        match m.get("code") {
            Some(Value::String(s)) => {
                p.code_num = status_code(s.trim().parse().ok());
                p.code = Some(s.clone());
            }
            Some(Value::Number(n)) => {
                p.code_num = status_code(n.as_u64());
                p.code = Some(n.to_string());
            }
            _ => {}
        }
    }
    if p.n_prompt_tokens.is_none() {
        p.n_prompt_tokens = m.get("n_prompt_tokens").and_then(Value::as_u64);
    }
    if p.n_ctx.is_none() {
        p.n_ctx = m.get("n_ctx").and_then(Value::as_u64);
    }
}

fn status_code(n: Option<u64>) -> Option<u16> {
    n.filter(|n| (400..=599).contains(n)).and_then(|n| u16::try_from(n).ok())
}

/// FastAPI `detail`: a string, or a list of validation errors with `msg`.
fn detail_text(d: &Value) -> String {
    match d {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let msgs: Vec<&str> =
                items.iter().filter_map(|i| i.get("msg").and_then(Value::as_str)).collect();
            if msgs.is_empty() { d.to_string() } else { msgs.join("; ") }
        }
        Value::Object(m) => match m.get("message").and_then(Value::as_str) {
            Some(s) => s.to_owned(),
            None => d.to_string(),
        },
        _ => d.to_string(),
    }
}

/// A non-JSON body: an HTML page's title (or its text), else the text itself.
fn plain_text(t: &str) -> String {
    let looks_html = t.starts_with('<') || t.get(..200).unwrap_or(t).contains("<html");
    if !looks_html {
        return t.to_owned();
    }
    if let Some(title) = HTML_TITLE_RE.captures(t).and_then(|c| c.get(1)) {
        let title = SPACES_RE.replace_all(title.as_str().trim(), " ");
        if !title.is_empty() {
            return title.into_owned();
        }
    }
    let text = HTML_TAG_RE.replace_all(t, " ");
    SPACES_RE.replace_all(text.trim(), " ").into_owned()
}

/// Masks API keys and tokens (Invariant 5): first every secret value hearth resolved (by
/// value, whatever the wording around it: `Incorrect API key provided: KEY`, a plain-text body,
/// a key shape no pattern knows), then key-looking patterns, for keys hearth never knew. Before
/// truncation, so a cut cannot leave part of a key.
pub fn redact(s: &str) -> String {
    let mut out = hearth_config::redact::redact(s).into_owned();
    for (re, rep) in SECRET_RES.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *rep).into_owned();
        }
    }
    out
}

/// At most [`MAX_MESSAGE_CHARS`] characters, the last being `…` when cut.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => s.to_owned(),
        Some(_) => {
            let cut = s.char_indices().nth(MAX_MESSAGE_CHARS - 1).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Nums = (Option<u64>, Option<u64>, Option<u64>);

    /// (status, body, class, (prompt, window, output)).
    fn check(status: u16, body: &str, class: ErrorClass, nums: Nums) {
        let e = classify_http(status, None, body);
        assert_eq!(e.class, class, "status {status}, body {body}");
        let got = e.overflow.map(|o| (o.prompt_tokens, o.context_size, o.requested_output));
        let want = (nums != (None, None, None)).then_some(nums);
        assert_eq!(got, want, "numbers of {body}");
        assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(!e.message.is_empty());
    }

    fn openai(msg: &str, code: &str) -> String {
        serde_json::json!({"error": {"message": msg, "type": "invalid_request_error",
            "param": "messages", "code": code}})
        .to_string()
    }
    fn flat(msg: &str) -> String {
        serde_json::json!({"object": "error", "message": msg, "type": "BadRequestError",
            "param": null, "code": 400})
        .to_string()
    }
    fn vllm(msg: &str) -> String {
        serde_json::json!({"error": {"message": msg, "type": "BadRequestError",
            "param": "input_tokens", "code": 400}})
        .to_string()
    }
    fn anthropic(kind: &str, msg: &str) -> String {
        serde_json::json!({"type": "error", "error": {"type": kind, "message": msg},
            "request_id": "req_011"})
        .to_string()
    }
    fn plain(msg: &str) -> String {
        serde_json::json!({"error": msg}).to_string()
    }

    const NO: Nums = (None, None, None);
    use ErrorClass::*;

    #[test]
    fn context_overflow_messages_of_every_server() {
        let cases: Vec<(u16, String, Nums)> = vec![
            // OpenAI chat
            (400, openai("This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.", "context_length_exceeded"), (Some(130000), Some(128000), None)),
            (400, openai("This model's maximum context length is 128000 tokens. However, you requested 140000 tokens (130000 in the messages, 10000 in the completion). Please reduce the length of the messages or completion.", "context_length_exceeded"), (Some(130000), Some(128000), Some(10000))),
            // OpenAI Responses
            (400, openai("Your input exceeds the context window of this model. Please adjust your input and try again.", "context_length_exceeded"), NO),
            // Anthropic
            (400, anthropic("invalid_request_error", "prompt is too long: 213462 tokens > 200000 maximum"), (Some(213462), Some(200000), None)),
            (400, anthropic("invalid_request_error", "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again"), (Some(188240), Some(200000), Some(21333))),
            (413, anthropic("request_too_large", "Request exceeds the maximum size"), NO),
            // vLLM current
            (400, vllm("This model's maximum context length is 40960 tokens. However, you requested 0 output tokens and your prompt contains at least 40961 input tokens, for a total of at least 40961 tokens. Please reduce the length of the input prompt or the number of requested output tokens. (parameter=input_tokens, value=40961)"), (Some(40961), Some(40960), Some(0))),
            (400, vllm("This model's maximum context length is 40960 tokens. However, you requested 1000 output tokens and your prompt contains 40000 input tokens, for a total of 41000 tokens. Please reduce the length of the input prompt or the number of requested output tokens. (parameter=input_tokens, value=40000)"), (Some(40000), Some(40960), Some(1000))),
            // vLLM ~0.10-0.11
            (400, vllm("This model's maximum context length is 32768 tokens. However, your request has 40000 input tokens. Please reduce the length of the input messages."), (Some(40000), Some(32768), None)),
            (400, vllm("'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's maximum context length is 4096 tokens and your request has 2778 input tokens (8000 > 4096 - 2778). None"), (Some(2778), Some(4096), Some(8000))),
            // vLLM legacy (flat envelope)
            (400, flat("This model's maximum context length is 8192 tokens. However, you requested 12000 tokens (10000 in the messages, 2000 in the completion). Please reduce the length of the messages or completion."), (Some(10000), Some(8192), Some(2000))),
            // vLLM engine
            (400, vllm("The decoder prompt (length 12324) is longer than the maximum model length of 8192. Make sure that `max_model_len` is no smaller than the number of text tokens plus multimodal tokens."), (Some(12324), Some(8192), None)),
            (400, vllm("max_tokens=200000 cannot be greater than max_model_len=100000. Please request fewer output tokens."), (None, Some(100000), Some(200000))),
            // SGLang
            (400, flat("The input (100500 tokens) is longer than the model's context length (100000 tokens)."), (Some(100500), Some(100000), None)),
            (400, flat("Requested token count exceeds the model's maximum context length of 64000 tokens. You requested a total of 71897 tokens: 7897 tokens from the input messages and 64000 tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit."), (Some(7897), Some(64000), Some(64000))),
            (400, flat("Input length (100500 tokens) exceeds the maximum allowed length (99999 tokens). Use a shorter input or enable --allow-auto-truncate."), (Some(100500), Some(99999), None)),
            // llama-server new
            (400, r#"{"error":{"code":400,"message":"request (13392 tokens) exceeds the available context size (8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":13392,"n_ctx":8192}}"#.to_owned(), (Some(13392), Some(8192), None)),
            // JSON fields win over (and stand without) the text.
            (400, r#"{"error":{"code":400,"message":"too big","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":4096}}"#.to_owned(), (Some(9000), Some(4096), None)),
            (400, r#"{"error":{"code":400,"message":"input (9000 tokens) is larger than the max context size (4096 tokens). skipping","type":"invalid_request_error"}}"#.to_owned(), (Some(9000), Some(4096), None)),
            // llama-server old
            (400, r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#.to_owned(), NO),
            // Ollama
            (400, plain("the input length exceeds the context length"), NO),
            (400, plain("the prompt is longer than the context length currently available to the model; shorten the prompt, adjust the context length in settings, or use a model with a longer context length"), NO),
            (400, plain("input exceeds maximum context length and cannot be truncated further"), NO),
            (500, plain("ollama error: context length exceeded"), NO),
            // LM Studio
            (400, plain("Trying to keep the first 15857 tokens when context the overflows. However, the model is loaded with context length of only 4096 tokens, which is not enough. Try to load the model with a larger context length, or provide a shorter input"), (Some(15857), Some(4096), None)),
            (400, openai("The number of tokens to keep from the initial prompt is greater than the context length", ""), NO),
            (400, plain("Context size has been exceeded."), NO),
            (400, plain("Reached context length of 32000 tokens with model (arch: gpt-oss) that does not currently support mid-generation context overflow. Try reloading with a larger context length or shortening the prompt/chat."), (None, Some(32000), None)),
            // LiteLLM
            (400, r#"{"error":{"message":"litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: Hosted_vllmException - This model's maximum context length is 32768 tokens. However, your request has 40000 input tokens. Please reduce the length of the input messages.","type":null,"param":null,"code":"400"}}"#.to_owned(), (Some(40000), Some(32768), None)),
            (400, r#"{"error":{"message":"litellm.ContextWindowExceededError: litellm._pre_call_checks: Context Window exceeded for given call. No models have context window large enough for this call.","type":null,"param":null,"code":"400"}}"#.to_owned(), NO),
            // OpenClaw wordings
            (400, plain("input token count exceeds the maximum number of input tokens"), NO),
            (400, plain("Input is too long for the model"), NO),
        ];
        for (status, body, nums) in &cases {
            check(*status, body, ContextOverflow, *nums);
        }
    }

    #[test]
    fn overflow_in_a_200_or_stream() {
        let e = classify_stream_error(
            r#"error: {"code":400,"message":"the request exceeds the available context size. try increasing the context size or enable context shift","type":"invalid_request_error"}"#,
        );
        assert_eq!((e.class, e.status), (ContextOverflow, Some(400)));
        let e = classify_http(
            200,
            None,
            r#"{"error":"Trying to keep the first 9000 tokens when context the overflows. However, the model is loaded with context length of only 8192 tokens, which is not enough."}"#,
        );
        assert_eq!((e.class, e.status), (ContextOverflow, None));
        assert_eq!(e.overflow.and_then(|o| o.prompt_tokens), Some(9000));
    }

    #[test]
    fn rate_limit_excludes_overflow() {
        // A 429 that talks about context is a rate limit.
        check(
            429,
            &openai(
                "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Requested 50000. The input or output tokens must be reduced in order to run successfully.",
                "rate_limit_exceeded",
            ),
            RateLimit,
            NO,
        );
        // Rate-limit text on a 400 beats overflow text.
        check(400, &plain("maximum context length is 8192 tokens; rate limit hit"), RateLimit, NO);
        check(400, &plain("input tokens exceed the quota for this minute"), RateLimit, NO);
        check(400, &plain("RPM exceeded; maximum context length is 1 tokens"), RateLimit, NO);
    }

    #[test]
    fn envelopes_and_classes() {
        let cases: Vec<(u16, String, ErrorClass)> = vec![
            // Rate limits
            (429, openai("Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in 1.2s.", "rate_limit_exceeded"), RateLimit),
            (429, anthropic("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), RateLimit),
            (400, plain("Too many concurrent requests"), RateLimit),
            (500, plain("ThrottlingException: Rate exceeded"), RateLimit),
            (429, r#"{"error":{"message":"No deployments available for selected model, Try again in 5 seconds. Passed model=x. pre-call-checks=False","type":"None","param":"None","code":"429"}}"#.to_owned(), RateLimit),
            (402, plain("weekly usage limit exhausted"), RateLimit),
            (402, plain("daily limit reached, resets tomorrow"), RateLimit),
            (402, plain("organization spending limit exceeded"), RateLimit),
            (400, plain("resource exhausted"), RateLimit),
            // Billing
            (402, plain("insufficient credits"), Billing),
            (402, plain("Payment Required"), Billing),
            (402, "".to_owned(), Billing),
            (400, anthropic("invalid_request_error", "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."), Billing),
            (429, openai("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota"), Billing),
            (403, plain("Key limit exceeded"), Billing),
            (401, plain("insufficient_credits"), Billing),
            // Auth
            (401, openai("Incorrect API key provided: sk-abc123*****wxyz. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_api_key"), Auth),
            (401, anthropic("authentication_error", "invalid x-api-key"), Auth),
            (403, anthropic("permission_error", "Your API key does not have permission to use the specified resource."), Auth),
            (401, r#"{"error":"Unauthorized"}"#.to_owned(), Auth),
            (401, r#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#.to_owned(), Auth),
            (401, r#"{"error":{"message":"Authentication Error, Invalid proxy server token passed. Received API Key = sk-1234567890, Key Hash (Token) =abcdef123","type":"auth_error","param":"None","code":"401"}}"#.to_owned(), Auth),
            // Model not found
            (404, openai("The model `gpt-x` does not exist or you do not have access to it.", "model_not_found"), ModelNotFound),
            (404, anthropic("not_found_error", "model: claude-x"), ModelNotFound),
            (404, r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model","code":404}}"#.to_owned(), ModelNotFound),
            (404, plain("model 'x' not found"), ModelNotFound),
            (404, plain("model \"x\" not found, try pulling it first"), ModelNotFound),
            (400, plain("\"llama3.2\" does not support thinking"), ModelNotFound),
            (404, r#"{"error":{"message":"model 'x' not found","type":"not_found_error","param":null,"code":null}}"#.to_owned(), ModelNotFound),
            (400, r#"{"error":{"message":"No models loaded. Please load a model in the developer page or use the `lms load` command.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#.to_owned(), ModelNotFound),
            (400, plain("Invalid model identifier \"o4-mini\". Please specify a valid downloaded model (e.g., qwen)."), ModelNotFound),
            (400, plain("Model \"x\" not found. Please specify a valid model."), ModelNotFound),
            (500, plain("Error loading model. (Exit code: 1)"), ModelNotFound),
            (400, plain("Invalid model name passed in model=x. Call `/v1/models` to view available models for your key."), ModelNotFound),
            (404, r#"{"detail":"Not Found"}"#.to_owned(), ModelNotFound),
            (404, "Not Found".to_owned(), ModelNotFound),
            // Loading / overloaded
            (503, r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#.to_owned(), Loading),
            (503, r#"{"error":{"code":503,"message":"Service Unavailable","type":"unavailable_error"}}"#.to_owned(), Overloaded),
            (503, plain("server busy, please try again.  maximum pending requests exceeded"), Overloaded),
            (529, anthropic("overloaded_error", "Overloaded"), Overloaded),
            (500, openai("The server is overloaded or not ready yet.", "server_error"), Overloaded),
            (503, "".to_owned(), Overloaded),
            // Timeout
            (504, anthropic("timeout_error", "Request timed out"), Timeout),
            (408, "".to_owned(), Timeout),
            (504, "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center><hr><center>nginx</center></body></html>".to_owned(), Timeout),
            (500, plain("upstream request timed out"), Timeout),
            // Format
            (400, openai("Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead.", "empty_array"), Format),
            (400, openai("Unrecognized request argument supplied: top_k", ""), Format),
            (422, r#"{"detail":[{"loc":["body","messages"],"msg":"Field required","type":"missing"}]}"#.to_owned(), Format),
            (405, r#"{"detail":"Method Not Allowed"}"#.to_owned(), Format),
            (400, plain("invalid value for timeout parameter"), Format),
            (400, "bad json".to_owned(), Format),
            // Server errors
            (500, anthropic("api_error", "Internal server error"), ServerError),
            (500, plain("EngineDeadError: EngineCore encountered an issue"), ServerError),
            (500, plain("The model crashed without additional information"), ServerError),
            (502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>".to_owned(), ServerError),
            (500, "".to_owned(), ServerError),
        ];
        for (status, body, class) in &cases {
            check(*status, body, *class, NO);
        }
    }

    #[test]
    fn messages_are_extracted() {
        let m = |s: u16, b: &str| classify_http(s, None, b).message;
        assert_eq!(m(400, &openai("bad thing", "x")), "bad thing");
        assert_eq!(m(400, &anthropic("invalid_request_error", "bad anthropic")), "bad anthropic");
        assert_eq!(m(400, &plain("bad ollama")), "bad ollama");
        assert_eq!(m(400, &flat("bad flat")), "bad flat");
        assert_eq!(m(400, r#"{"detail":"bad fastapi"}"#), "bad fastapi");
        assert_eq!(m(422, r#"{"detail":[{"msg":"a"},{"msg":"b"}]}"#), "a; b");
        assert_eq!(m(500, "  plain text  "), "plain text");
        assert_eq!(m(502, "<html><title> 502  Bad Gateway </title></html>"), "502 Bad Gateway");
        assert_eq!(m(502, "<html><body><h1>Oops</h1> broken</body></html>"), "Oops broken");
        assert_eq!(m(500, ""), "HTTP 500 without an error message");
        assert_eq!(m(500, r#"{"foo":1}"#), r#"{"foo":1}"#);
        let long = "x".repeat(2000);
        let msg = m(400, &plain(&long));
        assert_eq!(msg.chars().count(), MAX_MESSAGE_CHARS);
        assert!(msg.ends_with('…'));
        let exact = "é".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(m(400, &plain(&exact)), exact);
    }

    #[test]
    fn secrets_are_masked() {
        let e = classify_http(
            401,
            None,
            &openai(
                "Incorrect API key provided: sk-proj-abcdefghijklmnop. You can find…",
                "invalid_api_key",
            ),
        );
        assert!(!e.message.contains("abcdefghijklmnop"), "{}", e.message);
        let e = classify_http(
            401,
            None,
            r#"{"error":{"message":"Invalid proxy server token passed. Received API Key = sk-1234567890abc, Key Hash (Token) =deadbeefcafe","type":"auth_error","code":"401"}}"#,
        );
        assert!(!e.message.contains("1234567890abc"), "{}", e.message);
        assert!(!e.message.contains("deadbeefcafe"), "{}", e.message);
        let e =
            classify_http(500, None, "failed with Authorization: Bearer abcdefghijklmnopqrstuv");
        assert!(!e.message.contains("abcdefghijklmnopqrstuv"), "{}", e.message);
    }

    #[test]
    fn registered_secrets_are_masked_by_value() {
        // Shapes no pattern knows: a Groq key, a custom header value.
        let key = "gsk_classifyTest0123456789abcdef";
        let header = "hdr-classify-test-9876";
        hearth_config::redact::register(key);
        hearth_config::redact::register(header);
        let e = classify_http(
            401,
            None,
            &openai(&format!("Incorrect API key provided: {key}"), "invalid_api_key"),
        );
        assert_eq!(e.message, "Incorrect API key provided: ***");
        assert_eq!(e.class, Auth);
        let e = classify_http(500, None, &format!("credential {header} rejected"));
        assert_eq!(e.message, "credential *** rejected");
        let e = classify_stream_error(&format!(r#"data: {{"error":{{"message":"bad {key}"}}}}"#));
        assert_eq!(e.message, "bad ***");
        // Masked before the cut: a key across the 500th character leaves no prefix.
        let long = format!("{}{key}", "x".repeat(MAX_MESSAGE_CHARS - 10));
        let e = classify_http(500, None, &long);
        assert!(!e.message.contains("gsk_"), "{}", e.message);
        // Every other message built from upstream bytes or URLs.
        let e = UpstreamError::new(ErrorClass::Connect, format!("http://h/?key={key}: refused"));
        assert_eq!(e.message, "http://h/?key=***: refused");
    }

    #[test]
    fn status_reported() {
        assert_eq!(classify_http(429, None, "").status, Some(429));
        // In-band: the JSON code, when numeric.
        assert_eq!(classify_http(200, None, &vllm("x")).status, Some(400));
        assert_eq!(classify_http(200, None, &plain("x")).status, None);
        let e = classify_http(200, None, r#"{"error":{"message":"oops","code":"500"}}"#);
        assert_eq!((e.class, e.status), (ServerError, Some(500)));
    }

    #[test]
    fn retry_after() {
        let secs = |s: f64| Some(Duration::from_secs_f64(s));
        assert_eq!(parse_retry_after("30"), secs(30.0));
        assert_eq!(parse_retry_after(" 7 "), secs(7.0));
        assert_eq!(parse_retry_after("1.5"), secs(1.5));
        assert_eq!(parse_retry_after("0"), secs(0.0));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(parse_retry_after("abc"), None);
        assert_eq!(parse_retry_after("1e3"), None);
        assert_eq!(parse_retry_after("."), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after(&"9".repeat(400)), None);

        assert_eq!(classify_http(429, Some("12"), "").retry_after, secs(12.0));
        // Header wins over text.
        let body = openai("Rate limit reached. Please try again in 1.2s.", "rate_limit_exceeded");
        assert_eq!(classify_http(429, Some("3"), &body).retry_after, secs(3.0));
        assert_eq!(classify_http(429, None, &body).retry_after, secs(1.2));
        assert_eq!(
            classify_http(429, None, &plain("No deployments available. Try again in 5 seconds."))
                .retry_after,
            secs(5.0)
        );
        assert_eq!(classify_http(429, None, &plain("try again in 20ms")).retry_after, secs(0.02));
        assert_eq!(classify_http(429, None, &plain("try again in 1m30s")).retry_after, secs(90.0));
        // Text is only read for retryable classes.
        assert_eq!(classify_http(400, None, &plain("try again in 5s")).retry_after, None);
        // A header is kept whatever the class.
        assert_eq!(classify_http(503, Some("4"), "").retry_after, secs(4.0));
    }

    #[test]
    fn stream_errors() {
        let c = |d: &str| {
            let e = classify_stream_error(d);
            (e.class, e.status)
        };
        // llama.cpp `error:` field
        assert_eq!(
            c(r#"{"code":503,"message":"Loading model","type":"unavailable_error"}"#),
            (Loading, Some(503))
        );
        // SGLang after a 200
        assert_eq!(
            c(
                r#"data: {"error":{"message":"Out of memory even after retracting all other requests. Aborting","type":"InternalServerError","code":500}}"#
            ),
            (ServerError, Some(500))
        );
        // Ollama NDJSON
        assert_eq!(
            c(r#"{"error":"an error was encountered while running the model: unexpected EOF"}"#),
            (ServerError, None)
        );
        assert_eq!(c(r#"{"error":"model 'x' not found"}"#), (ModelNotFound, None));
        // Responses `error` event and `response.failed`
        assert_eq!(
            c(
                r#"{"type":"error","code":"rate_limit_exceeded","message":"Rate limit reached","param":null,"sequence_number":3}"#
            ),
            (RateLimit, None)
        );
        assert_eq!(
            c(
                r#"{"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"context_length_exceeded","message":"Your input exceeds the context window of this model. Please adjust your input and try again."}}}"#
            ),
            (ContextOverflow, None)
        );
        assert_eq!(
            c(
                r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"The model failed to generate a response."}}}"#
            ),
            (ServerError, None)
        );
        // Anthropic `event: error`: status from the type.
        assert_eq!(c(&anthropic("overloaded_error", "Overloaded")), (Overloaded, None));
        assert_eq!(c(&anthropic("invalid_request_error", "messages: bad")), (Format, None));
        assert_eq!(c(&anthropic("api_error", "Internal server error")), (ServerError, None));
        assert_eq!(c(&anthropic("authentication_error", "bad key")), (Auth, None));
        // LM Studio `/api/v1/chat` error event
        assert_eq!(
            c(
                r#"{"type":"error","error":{"type":"model_not_found","message":"Model x not found","code":"model_not_found","param":"model"}}"#
            ),
            (ModelNotFound, None)
        );
        // Nothing usable
        assert_eq!(c(""), (ServerError, None));
        assert_eq!(classify_stream_error("").message, "upstream error without a message");
        assert_eq!(c("garbage"), (ServerError, None));
    }

    #[test]
    fn finish_reasons() {
        let c = |r: &str| classify_finish_reason(r).map(|e| e.class);
        assert_eq!(c("error"), Some(ServerError));
        assert_eq!(c("abort"), Some(Timeout));
        assert_eq!(c("network_error"), Some(Timeout));
        assert_eq!(c("malformed_response"), Some(Timeout));
        assert_eq!(c("stop"), None);
        assert_eq!(c("length"), None);
        assert_eq!(c("tool_calls"), None);
        assert!(classify_finish_reason("error").is_some_and(|e| e.message.contains("error")));
    }

    #[test]
    fn all_patterns_compile() {
        for r in [
            &USAGE_WINDOW_RE,
            &BILLING_RE,
            &RATE_RE,
            &OVERFLOW_RE,
            &AUTH_RE,
            &MODEL_NOT_FOUND_RE,
            &LOADING_RE,
            &OVERLOAD_RE,
            &TIMEOUT_RE,
            &RETRY_TEXT_RE,
            &HTML_TITLE_RE,
            &HTML_TAG_RE,
            &SPACES_RE,
        ] {
            assert!(!r.as_str().is_empty());
        }
        assert_eq!(EXTRACTORS.len(), 16);
        assert_eq!(SECRET_RES.len(), 4);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(status in any::<u16>(), ra in proptest::option::of(".*"), body in ".*") {
            let e = classify_http(status, ra.as_deref(), &body);
            prop_assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
            let e = classify_stream_error(&body);
            prop_assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
            let _ = classify_finish_reason(&body);
            let _ = parse_retry_after(&body);
        }

        #[test]
        fn never_panics_on_json_shapes(
            status in 0u16..1000,
            msg in "[ -~]{0,80}",
            code in prop_oneof![Just("null".to_owned()), any::<i64>().prop_map(|n| n.to_string()), "\"[a-z0-9_]{0,12}\""],
            n in any::<u64>(),
            shape in 0usize..6,
        ) {
            let m = serde_json::Value::String(msg).to_string();
            let body = match shape {
                0 => format!(r#"{{"error":{{"message":{m},"code":{code},"n_prompt_tokens":{n},"n_ctx":{n}}}}}"#),
                1 => format!(r#"{{"object":"error","message":{m},"code":{code}}}"#),
                2 => format!(r#"{{"type":"error","error":{{"type":{m},"message":{m}}}}}"#),
                3 => format!(r#"{{"error":{m}}}"#),
                4 => format!(r#"{{"detail":[{{"msg":{m}}},{code}]}}"#),
                _ => format!(r#"[{{"error":{{"error":{{"error":{{"error":{{"error":{{"message":{m}}}}}}}}}}}}}]"#),
            };
            let e = classify_http(status, None, &body);
            prop_assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
        }

        #[test]
        fn overflow_numbers_round_trip(p in 1u64..10_000_000, w in 1u64..10_000_000) {
            let e = classify_http(400, None, &plain(&format!("request ({p} tokens) exceeds the available context size ({w} tokens), try increasing it")));
            prop_assert_eq!(e.class, ContextOverflow);
            prop_assert_eq!(e.overflow, Some(Overflow { prompt_tokens: Some(p), context_size: Some(w), requested_output: None }));
        }
    }
}
