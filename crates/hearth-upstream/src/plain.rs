//! The inference transport for a local provider reached over plain `http://` (llama-server,
//! LM Studio, Ollama, vLLM, MLX on this machine or the LAN): HTTP/1.1 straight on hyper's
//! connection API with a small pool of kept-alive connections.
//!
//! Why not reqwest here: for such a provider none of what reqwest adds applies (no TLS, no
//! proxy — a local provider never goes through `HTTP_PROXY`, no redirects followed on an
//! inference call that a local server never sends, no cookies), yet its layers cost about an
//! eighth of a request's CPU (the request and response URLs parsed again, the redirect and
//! retry layers; BENCHMARKS.md, "Where the per-request time goes"). Hosted providers, `https`
//! and anything that goes through a proxy keep reqwest.
//!
//! What stays the same as reqwest's path: the network guard (a host name is resolved through
//! [`GuardedResolver`]; an IP-literal origin was checked when the client was built), the
//! connect timeout, TCP_NODELAY, the error classes (a refused or timed-out connect is
//! `Connect`, a connection that breaks after the request went out is `ServerError`) and their
//! wording (`<provider> <url>: <cause>`, never a header). A request that a pooled connection
//! could not take (the server closed it while idle) goes out once more on a new connection.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::{BodyStream, Full};
use hyper::client::conn::http1::SendRequest;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::guard::GuardedResolver;
use crate::{ErrorClass, UpstreamError};

/// Idle connections kept at most (a proxy in front of one local server rarely needs more).
const MAX_IDLE: usize = 256;

/// One provider's plain-HTTP transport: one origin, its pool.
#[derive(Debug)]
pub(crate) struct Plain {
    provider: String,
    host: String,
    port: u16,
    /// `host[:port]` as the `Host` header carries it.
    authority: HeaderValue,
    resolver: GuardedResolver,
    connect_timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// What [`Plain::send`] answers: the status and headers, the body as a stream of chunks.
pub(crate) struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: BoxStream<'static, Result<Bytes, UpstreamError>>,
}

impl Plain {
    /// The plain transport for `url`, when it applies: an `http://` origin of a local
    /// provider (which never goes through a proxy).
    pub(crate) fn for_url(
        provider: &hearth_config::Provider,
        url: &url::Url,
        connect_timeout: Duration,
    ) -> Option<Plain> {
        if url.scheme() != "http" || !provider.is_local() {
            return None;
        }
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_or_known_default()?;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str()?),
            None => url.host_str()?.to_owned(),
        };
        Some(Plain {
            provider: provider.id.clone(),
            host,
            port,
            authority: HeaderValue::from_str(&authority).ok()?,
            resolver: GuardedResolver::new(provider),
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// POSTs `body` to `url` (of this origin) with `headers` (`Host` is added).
    pub(crate) async fn send(
        &self,
        url: &url::Url,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, UpstreamError> {
        headers.insert(reqwest::header::HOST, self.authority.clone());
        // What reqwest sends by default: the servers' view of a call is the same on both paths.
        headers.entry(reqwest::header::ACCEPT).or_insert(HeaderValue::from_static("*/*"));
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut request = hyper::Request::post(target)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.error(ErrorClass::Format, url, &e))?;
        *request.headers_mut() = headers;
        // A pooled connection first; if it could not take the request (closed while idle), a
        // new one. A request that went out is never sent twice.
        let mut request = Some(request);
        let mut fresh = false;
        loop {
            let (mut sender, is_new) = match self.checkout() {
                Some(sender) if !fresh => (sender, false),
                _ => (self.connect(url).await?, true),
            };
            let Some(req) = request.take() else {
                return Err(self.error(ErrorClass::ServerError, url, &"request lost"));
            };
            match sender.try_send_request(req).await {
                Ok(response) => {
                    self.checkin(sender);
                    let (parts, incoming) = response.into_parts();
                    let provider = self.provider.clone();
                    let shown = url.to_string();
                    let body = BodyStream::new(incoming)
                        .filter_map(move |frame| {
                            let out = match frame {
                                Ok(frame) => frame.into_data().ok().map(Ok),
                                Err(e) => Some(Err(UpstreamError::new(
                                    ErrorClass::ServerError,
                                    format!("{provider} {shown}: {}", root_cause(&e)),
                                ))),
                            };
                            futures::future::ready(out)
                        })
                        .boxed();
                    return Ok(Answer { status: parts.status, headers: parts.headers, body });
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !is_new => {
                        request = Some(unsent);
                        fresh = true;
                    }
                    _ => return Err(self.error(ErrorClass::ServerError, url, e.error())),
                },
            }
        }
    }

    /// A pooled connection that can take a request now; closed ones are dropped, busy ones
    /// (still reading an answer) stay.
    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].is_closed() {
                idle.swap_remove(i);
            } else if idle[i].is_ready() {
                return Some(idle.swap_remove(i));
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
        }
    }

    async fn connect(&self, url: &url::Url) -> Result<SendRequest<Full<Bytes>>, UpstreamError> {
        let addrs: Vec<std::net::SocketAddr> = match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![std::net::SocketAddr::new(ip, self.port)],
            Err(_) => self
                .resolver
                .lookup(&self.host)
                .await?
                .into_iter()
                .map(|a| std::net::SocketAddr::new(a.ip(), self.port))
                .collect(),
        };
        let connect = async {
            let mut last = None;
            for addr in &addrs {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.error(ErrorClass::Connect, url, &e)),
            Err(_) => {
                return Err(self.error(ErrorClass::Connect, url, &"connect timed out"));
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.error(ErrorClass::Connect, url, &e))?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the last sender is dropped.
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn error(&self, class: ErrorClass, url: &url::Url, e: &dyn std::fmt::Display) -> UpstreamError {
        UpstreamError::new(class, format!("{} {url}: {e}", self.provider))
    }
}

/// The innermost cause of an error ("Connection reset by peer"), as reqwest's path reports it.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
