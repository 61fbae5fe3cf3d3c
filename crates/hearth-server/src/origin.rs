//! Browser-origin defence: what a web page in the user's own browser may make the gateway do.
//!
//! A page on any site can send requests to `http://127.0.0.1:18789`; the browser attaches an
//! `Origin` header to every cross-origin request and WebSocket, but it does not need the
//! server's consent to *send* a "simple" request (a `text/plain` POST) — only to read the
//! answer. So, for HTTP and WebSocket alike:
//! - **`Host`**: while bound to loopback, only loopback names (`localhost`, `*.localhost`), IP
//!   literals and `gateway.allowedHosts` (plus the hosts of `gateway.controlUi.allowedOrigins`)
//!   are served. A DNS-rebinding page (`rebind.evil.example` resolving to 127.0.0.1) is refused.
//! - **`Origin`**: a request that carries one must come from the gateway's own origin (same
//!   host and port as `Host`) or from `gateway.controlUi.allowedOrigins` (`"*"`: any). `null`
//!   (sandboxed frames, `file:` pages) is refused. Clients that are not browsers send no
//!   `Origin` and are unaffected.
//! - **`Content-Type`**: a POST must say `application/json`, which no page can send across
//!   origins without a CORS preflight that this module answers only for allowed origins. A
//!   POST with no `Content-Type` and no `Origin` (curl, scripts) is accepted: it is not a
//!   browser's.
//!
//! Invariant: these checks run before authentication, routing and any body is read.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_config::Config;

use crate::AppState;
use crate::auth::shape_of;
use crate::error::ApiError;

/// Request headers a cross-origin page may send (the preflight's answer).
const ALLOW_HEADERS: &str = "authorization, content-type, x-api-key, anthropic-version, anthropic-beta, openai-organization, openai-project, x-stainless-lang, x-stainless-package-version, x-hearth-session-key, x-hearth-model, x-hearth-agent-id, x-openclaw-session-key, x-openclaw-model, x-openclaw-agent-id";
/// Response headers a cross-origin page may read.
const EXPOSE_HEADERS: &str = "x-hearth-provider, x-hearth-model, x-hearth-attempts, retry-after";
/// At most this much of a refused header is echoed back.
const ECHO_MAX: usize = 80;

/// Who may talk to the gateway from a browser; built from the config and the bound address.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Bound to a loopback address: `Host` is checked.
    pub check_host: bool,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub any_origin: bool,
}

impl Policy {
    pub fn new(config: &Config, bound_loopback: bool) -> Self {
        let mut allowed_hosts = config.gateway.allowed_hosts.clone();
        for origin in &config.gateway.allowed_origins {
            if let Ok(url) = url::Url::parse(origin)
                && let Some(host) = url.host_str()
            {
                allowed_hosts.push(host.to_ascii_lowercase());
            }
        }
        Policy {
            check_host: bound_loopback,
            allowed_hosts,
            allowed_origins: config
                .gateway
                .allowed_origins
                .iter()
                .filter(|o| o.as_str() != "*")
                .cloned()
                .collect(),
            any_origin: config.gateway.allowed_origins.iter().any(|o| o == "*"),
        }
    }

    /// Whether `host` (a `Host` header value, port included) may be served.
    pub fn host_allowed(&self, host: &str) -> bool {
        if !self.check_host {
            return true;
        }
        let name = host_name(host);
        if name.is_empty() {
            return false;
        }
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.allowed_hosts.contains(&name)
    }

    /// Same origin (the page the gateway itself serves), or an allowed one.
    fn origin_verdict(&self, origin: &str, host: Option<&str>) -> Verdict {
        let Some(normalized) = hearth_config::resolve::normalize_origin(origin) else {
            return Verdict::Refused;
        };
        if let Some(host) = host
            && same_authority(&normalized, host)
        {
            return Verdict::SameOrigin;
        }
        if self.any_origin || self.allowed_origins.contains(&normalized) {
            Verdict::Cross(normalized)
        } else {
            Verdict::Refused
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    SameOrigin,
    Cross(String),
    Refused,
}

/// The host part of a `Host` value, lowercased, without port or brackets.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) { name } else { host }
        })
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a normalized origin names the same host and port as `host`.
fn same_authority(origin: &str, host: &str) -> bool {
    let (scheme, authority) = origin.split_once("://").unwrap_or(("http", origin));
    let host = host.trim().to_ascii_lowercase();
    let default = if scheme == "https" { ":443" } else { ":80" };
    let host = host.strip_suffix(default).unwrap_or(&host);
    authority == host
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(ECHO_MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn refuse(path: &str, status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, "invalid_request_error", message)
        .with_code(code)
        .shaped(shape_of(path))
        .into_response()
}

/// Whether a POST says its body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The origin checks of `request`, before anything else reads it: `Err` is the answer (a
/// refusal, or a CORS preflight's); `Ok` names the allowed foreign origin, if any, whose CORS
/// headers [`decorate`] adds to the response.
pub(crate) fn screen(app: &AppState, request: &Request) -> Result<Option<String>, Box<Response>> {
    let path = request.uri().path();
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host
        && !app.origin.host_allowed(host)
    {
        return Err(Box::new(refuse(
            path,
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "host not allowed: `{}`; a gateway on loopback answers only to localhost and IP addresses (add the name to gateway.allowedHosts)",
                cut(host)
            ),
        )));
    }
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("null").to_owned());
    let cross = match &origin {
        None => None,
        Some(origin) => match app.origin.origin_verdict(origin, host) {
            Verdict::SameOrigin => None,
            Verdict::Cross(origin) => Some(origin),
            Verdict::Refused => {
                return Err(Box::new(refuse(
                    path,
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    format!(
                        "origin not allowed: `{}`; add it to gateway.controlUi.allowedOrigins to let that page use the gateway",
                        cut(origin)
                    ),
                )));
            }
        },
    };
    if request.method() == Method::OPTIONS
        && let Some(origin) = &cross
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return Err(Box::new(preflight(origin)));
    }
    // A body without a Content-Type is fine from a client that is not a browser (no
    // `Origin`); a page cannot send a POST without one across origins anyway.
    let untyped_ok = origin.is_none() && !headers.contains_key(header::CONTENT_TYPE);
    if request.method() == Method::POST && !untyped_ok && !is_json(headers) {
        let given = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?").to_owned())
            .unwrap_or_else(|| "none".to_owned());
        return Err(Box::new(refuse(
            path,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Content-Type must be application/json (got `{}`)", cut(&given)),
        )));
    }
    Ok(cross)
}

/// The CORS headers of an answer to the allowed foreign `cross` origin ([`screen`]).
pub(crate) fn decorate(response: &mut Response, cross: Option<String>) {
    if let Some(origin) = cross
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

fn preflight(origin: &str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    h.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], hosts: &[&str]) -> Policy {
        Policy {
            check_host: true,
            allowed_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            any_origin: false,
        }
    }

    #[test]
    fn hosts() {
        let p = policy(&[], &["mybox.lan"]);
        for ok in [
            "127.0.0.1:18789",
            "localhost:18789",
            "LOCALHOST",
            "[::1]:18789",
            "a.localhost",
            "mybox.lan:1",
            "10.0.0.2",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in
            ["rebind.evil.example:18789", "evil.example", "localhost.evil.example", "", ":18789"]
        {
            assert!(!p.host_allowed(bad), "{bad}");
        }
        assert!(Policy { check_host: false, ..p }.host_allowed("anything.example"));
    }

    #[test]
    fn origins() {
        let p = policy(&["https://chat.example.com"], &[]);
        let host = Some("127.0.0.1:18789");
        assert_eq!(p.origin_verdict("http://127.0.0.1:18789", host), Verdict::SameOrigin);
        assert_eq!(p.origin_verdict("http://127.0.0.1:1234", host), Verdict::Refused);
        assert_eq!(p.origin_verdict("http://evil.example", host), Verdict::Refused);
        assert_eq!(p.origin_verdict("null", host), Verdict::Refused);
        assert_eq!(
            p.origin_verdict("https://CHAT.example.com:443", host),
            Verdict::Cross("https://chat.example.com".to_owned())
        );
        assert_eq!(p.origin_verdict("http://localhost", Some("localhost:80")), Verdict::SameOrigin);
        let any = Policy { any_origin: true, ..p };
        assert!(matches!(any.origin_verdict("http://evil.example", host), Verdict::Cross(_)));
    }
}
