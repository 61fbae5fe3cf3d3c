//! Gateway authentication: a shared token or password in `Authorization: Bearer` (or
//! `x-api-key`, for Anthropic clients), compared in constant time, with failed attempts limited
//! per client address.
//!
//! Invariant: only *wrong* credentials count toward the limit (a missing header does not); a
//! locked-out address gets 429 with `Retry-After` before its credential is even looked at.
//! Every address counts, loopback included (a reverse proxy on the same host would otherwise
//! give the whole network unlimited guesses); loopback gets a higher limit. Addresses are
//! counted apart (IPv4-mapped IPv6 addresses as their IPv4 address), so failures from one
//! address never lock out another.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth_config::raw::AuthMode;
use hearth_config::{Config, Env, SecretString};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::{ApiError, Shape};

/// Failed attempts allowed per window before a lockout.
pub const MAX_FAILURES: usize = 10;
/// The same for loopback addresses (a local user's scripts retry more; a local attacker is
/// still slowed to this many guesses per window).
pub const MAX_FAILURES_LOOPBACK: usize = 100;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
pub const LOCKOUT: Duration = Duration::from_secs(300);
/// Addresses tracked at most; beyond it, expired entries are dropped first, then the oldest.
const MAX_TRACKED: usize = 10_000;

/// The gateway's resolved auth settings.
#[derive(Clone)]
pub enum Auth {
    None,
    Token(SecretString),
    Password(SecretString),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mode())
    }
}

/// Why the auth settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("gateway.auth.mode is `{0}` but no gateway.auth.{0} is set (or HEARTH_GATEWAY_{1})")]
    MissingSecret(&'static str, &'static str),
    #[error("gateway.auth.{0}: {1}")]
    Secret(&'static str, String),
    #[error(
        "gateway.auth.{0} is blank or starts or ends with whitespace: no client could ever send it (clients' credentials are trimmed)"
    )]
    Blank(&'static str),
}

impl Auth {
    /// From `gateway.auth`: the explicit mode, else token when a token is set, else password when
    /// a password is set, else none. `HEARTH_GATEWAY_TOKEN` / `HEARTH_GATEWAY_PASSWORD` (and the
    /// `OPENCLAW_` spellings) stand in for a missing secret.
    pub fn from_config(config: &Config, env: &dyn Env) -> Result<Auth, AuthConfigError> {
        let resolve = |secret: &Option<hearth_config::Secret>,
                       name: &'static str,
                       var: &'static str|
         -> Result<Option<SecretString>, AuthConfigError> {
            if let Some(s) = secret {
                return s.resolve(env).map_err(|e| AuthConfigError::Secret(name, e.to_string()));
            }
            Ok(env
                .var(&format!("HEARTH_GATEWAY_{var}"))
                .or_else(|| env.var(&format!("OPENCLAW_GATEWAY_{var}")))
                .filter(|v| !v.is_empty())
                .map(SecretString::registered))
        };
        let usable = |value: Option<SecretString>, name: &'static str| match value {
            Some(v) if v.expose().trim().is_empty() || v.expose().trim() != v.expose() => {
                Err(AuthConfigError::Blank(name))
            }
            other => Ok(other),
        };
        let token = usable(resolve(&config.gateway.token, "token", "TOKEN")?, "token")?;
        let password =
            usable(resolve(&config.gateway.password, "password", "PASSWORD")?, "password")?;
        match config.gateway.auth_mode {
            Some(AuthMode::None) => Ok(Auth::None),
            Some(AuthMode::Token) => {
                token.map(Auth::Token).ok_or(AuthConfigError::MissingSecret("token", "TOKEN"))
            }
            Some(AuthMode::Password) => password
                .map(Auth::Password)
                .ok_or(AuthConfigError::MissingSecret("password", "PASSWORD")),
            None => Ok(match (token, password) {
                (Some(t), _) => Auth::Token(t),
                (None, Some(p)) => Auth::Password(p),
                (None, None) => Auth::None,
            }),
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Token(_) => "token",
            Auth::Password(_) => "password",
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Auth::None)
    }

    /// The bearer credential a client of this gateway sends (`hearth models status` asking a
    /// running gateway for its cooldowns).
    pub fn bearer(&self) -> Option<&str> {
        match self {
            Auth::None => None,
            Auth::Token(s) | Auth::Password(s) => Some(s.expose()),
        }
    }

    fn secret(&self) -> Option<&SecretString> {
        match self {
            Auth::None => None,
            Auth::Token(s) | Auth::Password(s) => Some(s),
        }
    }
}

/// Constant-time comparison (the length of the secret is not hidden).
fn same(given: &str, secret: &SecretString) -> bool {
    bool::from(given.as_bytes().ct_eq(secret.expose().as_bytes()))
}

#[derive(Debug, Default)]
struct Entry {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Failed-attempt limiter, per client address.
#[derive(Debug, Default)]
pub struct Limiter {
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Limiter {
    /// `Some(remaining)` when `ip` is locked out.
    pub fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().ok()?;
        let until = entries.get(&ip)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a wrong credential; returns the lockout it started, if any.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let limit = if ip.is_loopback() { MAX_FAILURES_LOOPBACK } else { MAX_FAILURES };
        let mut entries = self.entries.lock().ok()?;
        if entries.len() >= MAX_TRACKED && !entries.contains_key(&ip) {
            entries.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || e.failures.iter().any(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
            if entries.len() >= MAX_TRACKED {
                // The entry active longest ago goes; a lockout counts as activity until it
                // ends, so flooding the table with new addresses cannot lift one.
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.failures.last().copied().max(e.locked_until))
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        let entry = entries.entry(ip).or_default();
        entry.failures.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
        entry.failures.push(now);
        if entry.failures.len() >= limit {
            entry.failures.clear();
            entry.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    pub fn succeed(&self, ip: IpAddr) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&ip);
        }
    }
}

/// The credential a request carries: `Authorization: Bearer X` (the scheme in any case),
/// else `x-api-key: X`.
fn credential(request: &Request) -> Option<&str> {
    let headers = request.headers();
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let token = match v.split_once(char::is_whitespace) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest,
            _ => v,
        };
        return Some(token.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

pub(crate) fn shape_of(path: &str) -> Shape {
    if path.starts_with("/v1/messages") { Shape::Anthropic } else { Shape::OpenAi }
}

/// The error shape of a request: Anthropic's on `/v1/messages*`, and for any request that
/// carries `anthropic-version` (an Anthropic client listing models, say); else OpenAI's.
pub(crate) fn shape_of_request(request: &Request) -> Shape {
    if speaks_anthropic(request.headers()) {
        Shape::Anthropic
    } else {
        shape_of(request.uri().path())
    }
}

/// Whether the caller speaks Anthropic's API (its SDKs send `anthropic-version` on every
/// request).
pub(crate) fn speaks_anthropic(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

/// The client address of a request (its connect info; loopback when there is none, as for an
/// app served without connect info).
/// IPv4-mapped IPv6 addresses (a dual-stack listener's IPv4 clients) are their IPv4 address.
pub(crate) fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| extensions.get::<MockConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
        .to_canonical()
}

/// What a presented credential is worth, with the failed-attempt limiter applied. The HTTP
/// middleware and the WebSocket `connect` share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No auth is configured, or the credential matches.
    Allowed,
    /// No credential was presented (does not count toward the limit).
    Missing,
    /// A wrong credential (counted).
    Mismatch,
    /// Locked out, before this attempt or by it, for this much longer.
    Locked(Duration),
}

/// The address failures are counted under: IPv4-mapped addresses as IPv4, other IPv6
/// addresses by their /64 (one LAN host holds a whole /64 and could otherwise rotate through it).
fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if !v6.is_loopback() => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        other => other,
    }
}

/// Checks `given` from `ip` against the gateway's secret in constant time, with the
/// failed-attempt limiter of `ip` (see the module doc).
pub(crate) fn verify(auth: &Auth, limiter: &Limiter, ip: IpAddr, given: Option<&str>) -> Verdict {
    let Some(secret) = auth.secret() else { return Verdict::Allowed };
    let client = ip;
    let ip = limiter_key(ip);
    let now = Instant::now();
    if let Some(remaining) = limiter.locked(ip, now) {
        tracing::debug!(client = %client, retry_after_s = remaining.as_secs(), "Refused: the address is locked out.");
        return Verdict::Locked(remaining);
    }
    // Never the presented credential: only who sent it and what happened.
    match given {
        None => {
            tracing::info!(client = %client, mode = auth.mode(), "Authentication failed: no credential.");
            Verdict::Missing
        }
        Some(given) if same(given, secret) => {
            limiter.succeed(ip);
            Verdict::Allowed
        }
        Some(_) => match limiter.fail(ip, now) {
            None => {
                tracing::warn!(client = %client, mode = auth.mode(), "Authentication failed: wrong credential.");
                Verdict::Mismatch
            }
            Some(lockout) => {
                tracing::warn!(client = %client, lockout_s = lockout.as_secs(), "Authentication failed too often: the address is locked out.");
                Verdict::Locked(lockout)
            }
        },
    }
}

/// Marks a request whose credential [`refusal`] already accepted (the limits run it before they
/// read a body, so that no stranger can make the gateway hold request bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authenticated;

/// The auth check of `request`: `None` when it may pass (and it is marked [`Authenticated`]),
/// else the refusal in the caller's shape. Counts a wrong credential once per request.
pub(crate) fn refusal(app: &AppState, request: &mut Request) -> Option<Response> {
    if request.extensions().get::<Authenticated>().is_some() {
        return None;
    }
    let shape = shape_of_request(request);
    let ip = client_ip(request.extensions());
    if let (Some(key), Some(given)) = (&app.local_key, credential(request))
        && request.uri().path().starts_with("/hearth/")
        && same(given, key)
    {
        request.extensions_mut().insert(Authenticated);
        return None;
    }
    let refusal = match verify(&app.auth, &app.limiter, ip, credential(request)) {
        Verdict::Allowed => {
            request.extensions_mut().insert(Authenticated);
            return None;
        }
        Verdict::Locked(remaining) => {
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "too many failed authentication attempts; retry later",
            )
            .with_code("auth_rate_limited")
            .shaped(shape);
            err.retry_after = Some(remaining);
            err
        }
        Verdict::Missing => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            format!(
                "missing credential: send the gateway {} as `Authorization: Bearer <{0}>`",
                app.auth.mode()
            ),
        )
        .with_code("missing_api_key")
        .shaped(shape),
        Verdict::Mismatch => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            format!("invalid gateway {}", app.auth.mode()),
        )
        .with_code("invalid_api_key")
        .shaped(shape),
    };
    Some(refusal.into_response())
}

/// Middleware on every route that needs auth.
pub async fn require(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    match refusal(&app, &mut request) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}
