//! One JSON request to a running hearth gateway, answered with its status, headers and body:
//! what the CLI's `agent --gateway --json` needs to report who answered (`x-hearth-provider`,
//! `x-hearth-model`, `x-hearth-attempts`, `x-hearth-notice`), which a model call's event stream
//! does not carry. The gateway is reached as a provider (its `baseUrl`), through the same
//! client builder as every other request: network guard, proxy policy, TLS.

use std::time::Duration;

use hearth_config::{Provider, SecretString};

use crate::{ErrorClass, UpstreamError};

/// An answer body larger than this is refused.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A gateway's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Every header, names lowercase, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of the header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of the header `name` (lowercase).
    pub fn header_values<'r>(&'r self, name: &'r str) -> impl Iterator<Item = &'r str> + 'r {
        self.headers.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `<provider.baseUrl>/<path>` with `bearer` and the provider's own headers
/// (literal values only: this is the CLI's request, not a configured upstream's).
///
/// # Errors
///
/// When the request cannot be sent or its answer read within `timeout`.
pub async fn post_json(
    provider: &Provider,
    path: &str,
    bearer: Option<&SecretString>,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<Reply, UpstreamError> {
    let failed = |e: reqwest::Error| {
        let class = if e.is_timeout() {
            ErrorClass::Timeout
        } else if e.is_connect() {
            ErrorClass::Connect
        } else {
            ErrorClass::ServerError
        };
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        UpstreamError::new(class, format!("{}: {cause}", provider.base_url))
    };
    let http = crate::client::http_builder(provider).timeout(timeout).build().map_err(failed)?;
    let url = format!("{}/{}", provider.base_url.as_str().trim_end_matches('/'), path);
    let mut request = http.post(url).json(body);
    if let Some(key) = bearer {
        request = request.bearer_auth(key.expose());
    }
    for (name, value) in &provider.headers {
        if let hearth_config::Secret::Literal(v) = value {
            request = request.header(name.as_str(), v.expose());
        }
    }
    let response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(UpstreamError::new(
                ErrorClass::Format,
                format!("the answer of {} is larger than 16 MiB", provider.base_url),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply { status, headers, body })
}
