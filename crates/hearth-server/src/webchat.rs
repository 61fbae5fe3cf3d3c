//! The chat page (`gateway.controlUi`, on by default at `/`): three static files embedded in
//! the binary, served without auth (they hold no data) under a strict content security policy;
//! the page talks to the gateway over its own HTTP API with the token the user gives it
//! (docs/gateway.md, "The chat page"). A WebSocket upgrade on `/` is the control plane, as
//! before; a plain `GET` is the page.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

const INDEX: &str = include_str!("webchat/index.html");
const SCRIPT: &str = include_str!("webchat/app.js");
const STYLE: &str = include_str!("webchat/app.css");

/// Scripts and styles from the gateway only (no inline code, so injected markup cannot run),
/// API calls to the gateway only, never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The page's file for `request`, when the page is on and the path is one of its files.
pub fn serve(app: &AppState, request: &Request) -> Option<Response> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return None;
    }
    let config = app.config.load();
    let gateway = &config.gateway;
    if !gateway.control_ui {
        return None;
    }
    let base = gateway.control_ui_base.as_str();
    let path = request.uri().path();
    let rest = if path == base.trim_end_matches('/') && base != "/" {
        ""
    } else {
        path.strip_prefix(base)?
    };
    let (body, kind) = match rest {
        "" | "index.html" => (INDEX, "text/html; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    // `/chat` (no slash) would resolve the page's relative links against `/`.
    if rest.is_empty() && !path.ends_with('/') {
        return Some(
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, HeaderValue::from_str(base).ok()?)],
            )
                .into_response(),
        );
    }
    Some(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            body,
        )
            .into_response(),
    )
}
