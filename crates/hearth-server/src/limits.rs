//! Bounded work per request, before any expensive step: a cap on requests in flight, on
//! request-body bytes held in memory, on how slowly a body may arrive, and no new model work
//! while draining. Everything refused here is answered in the caller's API shape with
//! `Retry-After` where waiting helps.
//!
//! Invariant: a request body reaches a handler only whole, within `maxBodyBytes`, read at no
//! less than the minimum rate, and counted against `maxInflightBodyBytes` until the handler
//! has answered; `/health` and `/ready` bypass the caps so they answer under any load.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;
use crate::auth::shape_of;
use crate::error::ApiError;

/// Body bytes are counted in units of this size (a semaphore holds at most `u32::MAX` permits).
const UNIT: usize = 1024;

/// The shared budgets, sized from `gateway.limits` when the state is built.
#[derive(Debug)]
pub struct Budgets {
    requests: Arc<Semaphore>,
    body_units: Arc<Semaphore>,
    max_body_units: usize,
}

impl Budgets {
    pub fn new(limits: &hearth_config::GatewayLimits) -> Self {
        let units = limits.max_inflight_body_bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Budgets {
            requests: Arc::new(Semaphore::new(
                limits.max_concurrent_requests.clamp(1, Semaphore::MAX_PERMITS),
            )),
            body_units: Arc::new(Semaphore::new(units)),
            max_body_units: units,
        }
    }
}

fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/healthz" | "/ready" | "/readyz")
}

fn busy(shape: crate::Shape, message: &str, code: &'static str) -> Response {
    let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "api_error", message)
        .with_code(code)
        .shaped(shape);
    err.retry_after = Some(Duration::from_secs(1));
    err.into_response()
}

/// Middleware on every route.
/// The limits of `request` (draining, requests in flight, auth on the headers, the body read
/// within its byte, time and rate limits), then `next`.
pub(crate) async fn admit(app: &AppState, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if exempt(path) {
        return next.run(request).await;
    }
    let shape = shape_of(path);
    // The webhook channel's requests carry their own signature (checked by the channel).
    let channel_hook = path.starts_with(crate::CHANNEL_WEBHOOK_PREFIX);
    if app.draining.load(Ordering::SeqCst) && request.method() != Method::GET {
        let mut response = busy(
            shape,
            "the gateway is shutting down and takes no new requests; retry shortly",
            "gateway_draining",
        );
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let Ok(request_permit) = Arc::clone(&app.budgets.requests).try_acquire_owned() else {
        let mut response = busy(
            shape,
            "the gateway is at its limit of requests in flight (gateway.limits.maxConcurrentRequests); retry shortly",
            "gateway_busy",
        );
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let mut request = request;
    // A body is read only for a client that may send one: a stranger's POST is refused on its
    // headers, before it can make the gateway hold (or wait for) any request bytes.
    if request.method() == Method::POST
        && !channel_hook
        && let Some(mut refusal) = crate::auth::refusal(app, &mut request)
    {
        refusal.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return refusal;
    }
    let (request, body_permit) = if request.method() == Method::POST {
        match buffer(app, request).await {
            Ok(pair) => pair,
            Err(e) => {
                let mut response = e.shaped(shape).into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        }
    } else {
        (request, None)
    };
    let response = next.run(request).await;
    drop(body_permit);
    // A streaming answer holds its request slot until the stream ends.
    response.map(|body| Body::new(Holding { body, _guard: request_permit }))
}

/// Reads the whole body within the limits; returns the request with the buffered body and the
/// budget it holds.
async fn buffer(
    app: &AppState,
    request: Request,
) -> Result<(Request, Option<OwnedSemaphorePermit>), ApiError> {
    let mut limits = app.config.load().gateway.limits.clone();
    if request.uri().path().starts_with(crate::CHANNEL_WEBHOOK_PREFIX) {
        limits.max_body_bytes = limits.max_body_bytes.min(hearth_channels::webhook::MAX_BODY_BYTES);
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "the request body is larger than {} bytes (gateway.limits.maxBodyBytes)",
                limits.max_body_bytes
            ),
        )
        .with_code("request_too_large")
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limits.max_body_bytes as u64) {
        // Read (and drop) a body that is not too far over, so the client that is still
        // sending it sees the 413 instead of a reset connection (nginx's lingering close).
        if n <= (limits.max_body_bytes as u64).saturating_mul(LINGER_FACTOR) {
            drain(request.into_body(), &limits).await;
        }
        return Err(too_large());
    }
    let budget_full = || {
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "the gateway holds as many request bytes as it may (gateway.limits.maxInflightBodyBytes); retry shortly",
        )
        .with_code("gateway_busy");
        err.retry_after = Some(Duration::from_secs(1));
        err
    };
    let units = |n: usize| u32::try_from(n.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
    // With a declared length the whole budget is taken up front; otherwise it grows per chunk.
    let mut permit = match declared {
        Some(n) => {
            let want = units(usize::try_from(n).unwrap_or(usize::MAX));
            if want as usize > app.budgets.max_body_units {
                return Err(too_large());
            }
            match Arc::clone(&app.budgets.body_units).try_acquire_many_owned(want) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    // Read and drop it (the length is within maxBodyBytes), so the client
                    // sees the 503 and its Retry-After instead of a reset connection.
                    drain(request.into_body(), &limits).await;
                    return Err(budget_full());
                }
            }
        }
        None => None,
    };
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(
        declared.map_or(0, |n| usize::try_from(n).unwrap_or(0)).min(limits.max_body_bytes),
    );
    let started = Instant::now();
    let slow = |received: usize, elapsed: Duration| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "the request body arrived too slowly ({received} bytes in {:.1} s; hearth waits at most {} ms between pieces and needs {} bytes/s after that): gateway.limits",
                elapsed.as_secs_f64(),
                limits.body_timeout.as_millis(),
                limits.min_body_bytes_per_second
            ),
        )
        .with_code("request_timeout")
    };
    loop {
        let next = match tokio::time::timeout(limits.body_timeout, stream.next()).await {
            Ok(next) => next,
            Err(_) => return Err(slow(buf.len(), started.elapsed())),
        };
        match next {
            None => break,
            Some(Ok(chunk)) => {
                if buf.len() + chunk.len() > limits.max_body_bytes {
                    drop(buf);
                    drain_stream(stream, limits.max_body_bytes * LINGER_FACTOR as usize, &limits)
                        .await;
                    return Err(too_large());
                }
                if declared.is_none() {
                    let held = permit.as_ref().map_or(0, |p| p.num_permits());
                    let need = units(buf.len() + chunk.len()) as usize;
                    if need > held {
                        let Ok(more) = Arc::clone(&app.budgets.body_units)
                            .try_acquire_many_owned(u32::try_from(need - held).unwrap_or(u32::MAX))
                        else {
                            drop(buf);
                            drain_stream(
                                stream,
                                limits.max_body_bytes * LINGER_FACTOR as usize,
                                &limits,
                            )
                            .await;
                            return Err(budget_full());
                        };
                        match &mut permit {
                            Some(p) => p.merge(more),
                            None => permit = Some(more),
                        }
                    }
                }
                buf.extend_from_slice(&chunk);
                let elapsed = started.elapsed();
                if elapsed > limits.body_timeout
                    && (buf.len() as f64)
                        < limits.min_body_bytes_per_second as f64 * elapsed.as_secs_f64()
                {
                    return Err(slow(buf.len(), elapsed));
                }
            }
            Some(Err(e)) => {
                return Err(ApiError::invalid(format!("cannot read the request body: {e}")));
            }
        }
    }
    Ok((Request::from_parts(parts, Body::from(Bytes::from(buf))), permit))
}

/// A body over the limit by at most this factor is read and dropped before the 413.
const LINGER_FACTOR: u64 = 4;

async fn drain(body: Body, limits: &hearth_config::GatewayLimits) {
    drain_stream(body.into_data_stream(), usize::MAX, limits).await;
}

/// Reads and drops up to `max` bytes, each piece within `bodyTimeoutMs`, at the minimum rate
/// after the first `bodyTimeoutMs`, and for at most twice `bodyTimeoutMs` more than the minimum
/// rate needs: a refused body costs bounded time, however slowly it comes.
async fn drain_stream(
    mut stream: axum::body::BodyDataStream,
    max: usize,
    limits: &hearth_config::GatewayLimits,
) {
    let started = Instant::now();
    let mut seen = 0usize;
    while seen < max {
        match tokio::time::timeout(limits.body_timeout, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen += chunk.len(),
            _ => return,
        }
        let elapsed = started.elapsed();
        if elapsed > limits.body_timeout * 2
            && (seen as f64) < limits.min_body_bytes_per_second as f64 * elapsed.as_secs_f64()
        {
            return;
        }
    }
}

/// A response body that holds `guard` (a request slot, a connection's busy mark) until the
/// body is done or dropped.
pub(crate) struct Holding<G> {
    pub(crate) body: Body,
    pub(crate) _guard: G,
}

impl<G: Send + Unpin + 'static> HttpBody for Holding<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
