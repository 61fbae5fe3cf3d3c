//! The accept loop: every TCP connection the gateway holds, with the limits that keep a slow or
//! hostile client from holding it (`gateway.limits`, defaults in `docs/security.md`).
//!
//! Invariants:
//! - A connection with no request in flight is closed `idleTimeout` after its last response
//!   (or after it opened), and a request head must arrive whole within `headerTimeout` of its
//!   first byte, so slow headers and idle sockets cost at most those timeouts.
//! - At most `maxConnections` connections are open, and never more than the open-files limit
//!   leaves room for (half of it, less a reserve: every proxied request needs an upstream socket
//!   too). At the cap, the oldest idle connection is closed to make room; when every connection
//!   is busy, the newcomer gets a 503 with `Retry-After` and is closed.
//! - Draining (SIGTERM): `/ready` still answers (503) because the loop keeps accepting; idle
//!   connections close at once and busy ones after their response; at the drain deadline every
//!   stream still open is told to end with its API's terminal error event.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router as AxumRouter;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hearth_config::GatewayLimits;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tower::ServiceExt;

use crate::AppState;
use crate::limits::Holding;

/// Open files kept free beyond the connections (the store, logs, local services).
const FD_RESERVE: usize = 128;
/// A stream gets this long to write its terminal error after the drain deadline.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// Binds `addr` with `backlog` (IPv6 addresses are dual-stack where the OS allows it).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The connection cap in force: `configured`, kept under the open-files limit.
pub fn effective_max_connections(configured: usize) -> usize {
    match open_files_limit() {
        Some(soft) => configured.min(soft.saturating_sub(FD_RESERVE) / 2).max(1),
        None => configured,
    }
}

/// The soft open-files limit, from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_files_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What the accept loop and each connection's watchdog share about one connection.
#[derive(Debug)]
struct Conn {
    /// Requests in flight (a response body still being written counts).
    busy: AtomicUsize,
    /// When the connection last went idle (or opened), in [`now_ms`] milliseconds.
    idle_since_ms: AtomicU64,
    /// When the first byte was read while idle (0: none yet).
    head_started_ms: AtomicU64,
    /// Since when a write has been blocked (0: writes flow).
    write_blocked_ms: AtomicU64,
    /// Wakes the watchdog: state changed, or the loop wants the connection closed.
    wake: Notify,
    close: std::sync::atomic::AtomicBool,
}

impl Conn {
    fn new() -> Self {
        Conn {
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(now_ms()),
            head_started_ms: AtomicU64::new(0),
            write_blocked_ms: AtomicU64::new(0),
            wake: Notify::new(),
            close: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        self.head_started_ms.store(0, Ordering::SeqCst);
    }

    fn request_ended(&self) {
        if self.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle_since_ms.store(self.now_ms(), Ordering::SeqCst);
            self.wake.notify_one();
        }
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }

    /// A write that could not go out starts the stall clock; one that did stops it.
    fn note_write(&self, result: &Poll<std::io::Result<usize>>) {
        match result {
            Poll::Pending => {
                if self.write_blocked_ms.load(Ordering::Relaxed) == 0 {
                    self.write_blocked_ms.store(self.now_ms(), Ordering::SeqCst);
                    self.wake.notify_one();
                }
            }
            Poll::Ready(Ok(n)) if *n > 0 => {
                if self.write_blocked_ms.load(Ordering::Relaxed) != 0 {
                    self.write_blocked_ms.store(0, Ordering::SeqCst);
                }
            }
            Poll::Ready(_) => {}
        }
    }

    fn ask_close(&self) {
        self.close.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// When the watchdog must act, if nothing changes before: `None` while busy.
    fn deadline(&self, limits: &GatewayLimits) -> Option<Instant> {
        if !self.is_idle() {
            // Busy: only a client that stopped reading (a write blocked that long) is cut.
            let blocked = self.write_blocked_ms.load(Ordering::SeqCst);
            return (blocked > 0).then(|| at_ms(blocked) + limits.idle_timeout);
        }
        let head = self.head_started_ms.load(Ordering::SeqCst);
        let (from_ms, timeout) = if head > 0 {
            (head, limits.header_timeout)
        } else {
            (self.idle_since_ms.load(Ordering::SeqCst), limits.idle_timeout)
        };
        Some(at_ms(from_ms) + timeout)
    }
}

/// Every open connection, for the cap and the drain.
#[derive(Debug, Default)]
struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    emptied: Notify,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn busy(&self) -> usize {
        self.conns.lock().map(|c| c.values().filter(|c| !c.is_idle()).count()).unwrap_or(0)
    }

    fn add(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, conn);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
            if conns.values().all(|c| c.is_idle()) {
                self.emptied.notify_waiters();
            }
        }
    }

    /// Asks the oldest idle connection to close; false when every connection is busy.
    fn evict_oldest_idle(&self) -> bool {
        let Ok(conns) = self.conns.lock() else { return false };
        let oldest = conns
            .values()
            .filter(|c| c.is_idle() && !c.close.load(Ordering::SeqCst))
            .min_by_key(|c| c.idle_since_ms.load(Ordering::SeqCst));
        match oldest {
            Some(conn) => {
                conn.ask_close();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        if let Ok(conns) = self.conns.lock() {
            for conn in conns.values() {
                conn.ask_close();
            }
        }
    }
}

/// The clock every connection's times are kept on, so they compare across connections.
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Milliseconds since [`EPOCH`], at least 1 (0 means "not set" in the atomics).
fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
}

fn at_ms(ms: u64) -> Instant {
    *EPOCH + Duration::from_millis(ms)
}

/// Serves `app` on `listener` until `shutdown`, then drains (see the module doc).
pub(crate) async fn run(
    listener: TcpListener,
    app: AxumRouter,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.load().gateway.limits.clone();
    let cap = effective_max_connections(limits.max_connections);
    let registry = Arc::new(Registry::default());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown, if drain_deadline.is_none() => {
                state.draining.store(true, Ordering::SeqCst);
                state.ws.shutdown();
                registry.close_all();
                drain_deadline = Some(tokio::time::Instant::now() + limits.drain_timeout);
                continue;
            }
            () = drained(&registry), if drain_deadline.is_some() => break,
            () = sleep_until_opt(drain_deadline) => {
                // Streams still open now end with their API's terminal error event.
                let _ = state.stop_streams.send(true);
                let flushed = tokio::time::Instant::now() + FINAL_FLUSH;
                while registry.busy() > 0 && tokio::time::Instant::now() < flushed {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                break;
            }
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            // Out of file descriptors or a connection reset before accept: keep serving.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // Upgraded (WebSocket) connections left the registry but still hold a socket.
        if registry.len() + state.ws.connections() >= cap && !registry.evict_oldest_idle() {
            tokio::spawn(refuse_busy(tcp));
            continue;
        }
        let conn = Arc::new(Conn::new());
        let id = registry.add(Arc::clone(&conn));
        // While draining, a new connection still gets its one answer (`/ready`: 503), then
        // closes (no keep-alive).
        let draining = drain_deadline.is_some();
        tokio::spawn(serve_one(
            tcp,
            peer,
            app.clone(),
            conn,
            limits.clone(),
            Arc::clone(&registry),
            id,
            draining,
        ));
    }
    // Upgraded connections outlive the accept loop: wait until every WebSocket client got its
    // `shutdown` event and every agent run stored its answer (the binary stops waiting
    // `DRAIN_GRACE` after the drain deadline; a non-streaming request still waiting for its
    // model then is cut without an answer).
    state.ws.idle().await;
    Ok(())
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once no connection has a request in flight.
async fn drained(registry: &Registry) {
    loop {
        let notified = registry.emptied.notified();
        if registry.busy() == 0 {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}

/// Every connection is busy: a short 503 instead of a silent queue.
async fn refuse_busy(mut tcp: TcpStream) {
    const BODY: &str = r#"{"error":{"message":"the gateway is at its connection limit (gateway.limits.maxConnections); retry shortly","type":"api_error","param":null,"code":"gateway_busy"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    // Read what already came (the request head), so closing does not reset the connection and
    // take the answer with it.
    let mut head = [0u8; 8192];
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut head),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(response.as_bytes())).await;
    let _ = tcp.shutdown().await;
}

#[expect(clippy::too_many_arguments, reason = "one connection's whole context")]
async fn serve_one(
    tcp: TcpStream,
    peer: SocketAddr,
    app: AxumRouter,
    conn: Arc<Conn>,
    limits: GatewayLimits,
    registry: Arc<Registry>,
    id: u64,
    draining: bool,
) {
    let io = TokioIo::new(Watched { inner: tcp, conn: Arc::clone(&conn) });
    let service_conn = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        service_conn.request_started();
        let guard = BusyGuard(Arc::clone(&service_conn));
        let app = app.clone();
        async move {
            let response = match app.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| Body::new(Holding { body, _guard: guard })))
        }
    });
    // The registry entry goes with this task, however it ends.
    let _slot = Slot { registry, id };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(None).keep_alive(!draining);
    let connection = builder.serve_connection(io, service).with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let mut shutting_down = false;
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            _ = connection.as_mut() => break,
            () = conn.wake.notified() => {}
            () = sleep_until_opt(deadline.map(tokio::time::Instant::from_std)) => {
                // Re-checked: a request may have started while the timer fired.
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    break;
                }
            }
        }
        if conn.close.load(Ordering::SeqCst) {
            // An idle connection (maybe with half a request head) is dropped now; a busy one
            // finishes its response first.
            if conn.is_idle() {
                break;
            }
            if !shutting_down {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Removes a connection from the registry when its task ends (normally or not).
struct Slot {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Marks the end of a request when its response body is done (or dropped).
#[derive(Debug)]
struct BusyGuard(Arc<Conn>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// The socket, noting when the first byte of a request head arrives on an idle connection.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && this.conn.is_idle()
            && this.conn.head_started_ms.load(Ordering::Relaxed) == 0
        {
            this.conn.head_started_ms.store(this.conn.now_ms(), Ordering::SeqCst);
            this.conn.wake.notify_one();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.conn.note_write(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.conn.note_write(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
