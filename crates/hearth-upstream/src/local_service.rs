//! On-demand local model servers (`models.providers.<id>.localService`,
//! `openclaw-models-spec.md` §10).
//!
//! Per request to a provider with a `localService`:
//! 1. [`LocalServices::acquire`] probes `healthUrl`. A healthy server is used as it is, even
//!    one hearth did not start: it is reused **without adopting** and never stopped by hearth.
//! 2. Otherwise `command args` is started (absolute path, no shell, `cwd`, `env` merged over
//!    hearth's environment, in its own process group) **once**, however many requests arrive
//!    together: starts are serialized per (provider id, command, args, cwd, env). Health is
//!    polled until `readyTimeoutMs`.
//! 3. The caller holds the returned [`Lease`] until the response is handled. When the last
//!    lease of a server hearth started is dropped and `idleStopMs` is set, the server is
//!    stopped after that long without leases (a new lease cancels the stop).
//!
//! A server is stopped with SIGTERM to its process group, then SIGKILL after
//! [`STOP_GRACE`]. Dropping [`LocalServices`] stops every server it started.
//!
//! Failures (the command cannot be started, exits early, is not ready in time) are
//! [`ErrorClass::Connect`]: the router moves on to the next candidate. Their message carries
//! the last lines of the child's output, redacted: values of `localService.env`, values of
//! key-like arguments and anything that looks like a key or token are masked.
//!
//! Health results of a server hearth did not start are reused for [`EXTERNAL_HEALTH_TTL`], so
//! a request does not pay for a health check each time; a server hearth started is known to be
//! up while its process runs. [`LocalServices::mark_unhealthy`] forces a new check (call it
//! when a request to the provider could not connect).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use hearth_config::Provider;
use hearth_config::resolve::LocalService;
use regex::Regex;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use crate::event::{ErrorClass, UpstreamError};

/// Limit of the first health check of an acquire.
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);
/// A healthy server hearth did not start is trusted this long without a new check.
pub const EXTERNAL_HEALTH_TTL: Duration = Duration::from_secs(5);
/// After SIGTERM, how long a server has to exit before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Bytes of child output kept (the most recent ones).
pub const OUTPUT_TAIL_BYTES: usize = 16 * 1024;
/// Lines of child output put into an error message.
const ERROR_TAIL_LINES: usize = 20;
/// Health polling while a server starts: first and longest delay.
const POLL_FIRST: Duration = Duration::from_millis(50);
const POLL_MAX: Duration = Duration::from_millis(500);

/// The servers one gateway manages. `Send + Sync`; share it behind an `Arc`.
#[derive(Default)]
pub struct LocalServices {
    services: Mutex<HashMap<String, Arc<Service>>>,
}

impl std::fmt::Debug for LocalServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No env values, no args: they may carry secrets.
        f.debug_struct("LocalServices").field("services", &self.status()).finish()
    }
}

/// The state of one managed server, for `models status` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub provider: String,
    pub command: std::path::PathBuf,
    /// Process id of the server hearth started and that still runs.
    pub pid: Option<u32>,
    /// A healthy server hearth did not start is being used.
    pub external: bool,
    pub leases: usize,
    /// How many times hearth started it.
    pub starts: u32,
    /// How many times hearth stopped it for being idle.
    pub idle_stops: u32,
}

struct Service {
    provider: String,
    spec: LocalService,
    http: reqwest::Client,
    /// Serializes starts, health checks after a failure, and stops.
    start: tokio::sync::Mutex<()>,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    leases: usize,
    /// Bumped by every acquire: an idle stop scheduled before is void.
    epoch: u64,
    child: Option<tokio::process::Child>,
    /// The child answered its health check.
    ready: bool,
    /// A server hearth did not start was healthy; trusted until then.
    external_until: Option<Instant>,
    starts: u32,
    idle_stops: u32,
    /// The pid of a child being stopped: reported as running until it is reaped.
    stopping: Option<u32>,
}

/// The most recent output of a child, bounded.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > OUTPUT_TAIL_BYTES {
            let cut = self.bytes.len() - OUTPUT_TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }

    fn last_lines(&self, n: usize) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A started child's output and the tasks that read it.
type Spawned = (Arc<Mutex<Tail>>, Vec<tokio::task::JoinHandle<()>>);

/// Held for the duration of one request; see the module docs.
#[must_use = "the server may be stopped as soon as the lease is dropped"]
pub struct Lease {
    service: Option<Arc<Service>>,
    started: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("provider", &self.service.as_ref().map(|s| s.provider.as_str()))
            .field("started", &self.started)
            .finish()
    }
}

impl Lease {
    /// A lease for a provider without `localService`: holds nothing.
    pub fn none() -> Self {
        Lease { service: None, started: false }
    }

    /// Whether this acquire started the server.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether the provider has a `localService` at all.
    pub fn is_managed(&self) -> bool {
        self.service.is_some()
    }

    fn new(service: Arc<Service>) -> Self {
        if let Ok(mut slot) = service.slot.lock() {
            slot.leases += 1;
            slot.epoch += 1;
        }
        Lease { service: Some(service), started: false }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(service) = self.service.take() else { return };
        let Some(idle) = service.spec.idle_stop else {
            if let Ok(mut slot) = service.slot.lock() {
                slot.leases = slot.leases.saturating_sub(1);
            }
            return;
        };
        let epoch = {
            let Ok(mut slot) = service.slot.lock() else { return };
            slot.leases = slot.leases.saturating_sub(1);
            if slot.leases > 0 || slot.child.is_none() {
                return;
            }
            slot.epoch
        };
        // Without a runtime (a lease dropped at process exit) the server stays until
        // `LocalServices` is dropped.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::time::sleep(idle).await;
                service.stop_if_idle(epoch).await;
            });
        }
    }
}

impl LocalServices {
    pub fn new() -> Self {
        LocalServices::default()
    }

    /// Makes sure the provider's server answers, starting it if needed, and returns a lease to
    /// hold while the request runs. A provider without `localService` gets an empty lease at
    /// once.
    pub async fn acquire(&self, provider: &Provider) -> Result<Lease, UpstreamError> {
        let Some(spec) = &provider.local_service else { return Ok(Lease::none()) };
        let service = self.service(provider, spec)?;
        let mut lease = Lease::new(Arc::clone(&service));
        if service.ready_now() {
            return Ok(lease);
        }
        let _start = service.start.lock().await;
        if service.ready_now() {
            return Ok(lease);
        }
        if service.healthy(HEALTH_TIMEOUT).await {
            service.mark_healthy();
            return Ok(lease);
        }
        service.start_and_wait().await?;
        lease.started = true;
        Ok(lease)
    }

    /// Forgets that the provider's server was healthy: the next acquire checks again (and
    /// restarts a server hearth started that stopped answering).
    pub fn mark_unhealthy(&self, provider: &Provider) {
        let Ok(services) = self.services.lock() else { return };
        for service in services.values().filter(|s| s.provider == provider.id) {
            if let Ok(mut slot) = service.slot.lock() {
                slot.ready = false;
                slot.external_until = None;
            }
        }
    }

    /// Every managed server.
    pub fn status(&self) -> Vec<ServiceView> {
        let Ok(services) = self.services.lock() else { return Vec::new() };
        let mut out: Vec<ServiceView> = services
            .values()
            .filter_map(|s| {
                let mut slot = s.slot.lock().ok()?;
                let running = slot.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
                Some(ServiceView {
                    provider: s.provider.clone(),
                    command: s.spec.command.clone(),
                    pid: if running {
                        slot.child.as_ref().and_then(|c| c.id())
                    } else {
                        slot.stopping
                    },
                    external: slot.external_until.is_some_and(|t| t > Instant::now()),
                    leases: slot.leases,
                    starts: slot.starts,
                    idle_stops: slot.idle_stops,
                })
            })
            .collect();
        out.sort_by(|a, b| a.provider.cmp(&b.provider));
        out
    }

    /// The state of the provider's server, if hearth manages one.
    pub fn status_of(&self, provider: &Provider) -> Option<ServiceView> {
        self.status().into_iter().find(|v| v.provider == provider.id)
    }

    fn service(
        &self,
        provider: &Provider,
        spec: &LocalService,
    ) -> Result<Arc<Service>, UpstreamError> {
        // Starts are shared per provider and exact command line; a provider whose localService
        // changed (config reload) gets a new service.
        let mut env = spec.env.clone();
        env.sort();
        let key = format!(
            "{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            provider.id,
            spec.command.display(),
            spec.args,
            spec.cwd,
            env
        );
        let mut services = self.services.lock().map_err(|_| {
            UpstreamError::new(ErrorClass::Connect, "local service state is poisoned")
        })?;
        if let Some(s) = services.get(&key) {
            return Ok(Arc::clone(s));
        }
        crate::client::install_crypto();
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                UpstreamError::new(ErrorClass::Connect, format!("cannot build HTTP client: {e}"))
            })?;
        let service = Arc::new(Service {
            provider: provider.id.clone(),
            spec: spec.clone(),
            http,
            start: tokio::sync::Mutex::new(()),
            slot: Mutex::new(Slot::default()),
        });
        services.insert(key, Arc::clone(&service));
        Ok(service)
    }
}

impl Drop for LocalServices {
    fn drop(&mut self) {
        let services: Vec<Arc<Service>> = match self.services.lock() {
            Ok(s) => s.values().cloned().collect(),
            Err(_) => return,
        };
        let mut children: Vec<tokio::process::Child> = services
            .iter()
            .filter_map(|s| {
                s.slot.lock().ok().and_then(|mut slot| {
                    slot.ready = false;
                    slot.child.take()
                })
            })
            .collect();
        for child in &mut children {
            if matches!(child.try_wait(), Ok(None)) {
                signal(child, Signal::Term);
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline
            && children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for child in &mut children {
            if matches!(child.try_wait(), Ok(None)) {
                signal(child, Signal::Kill);
                let _ = child.try_wait();
            }
        }
    }
}

impl Service {
    /// Whether the server may be used without a health check.
    fn ready_now(&self) -> bool {
        let Ok(mut slot) = self.slot.lock() else { return false };
        if let Some(child) = slot.child.as_mut() {
            match child.try_wait() {
                Ok(None) => return slot.ready,
                // It exited (or cannot be observed): forget it.
                Ok(Some(_)) | Err(_) => {
                    slot.child = None;
                    slot.ready = false;
                }
            }
        }
        slot.external_until.is_some_and(|t| t > Instant::now())
    }

    fn mark_healthy(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            if slot.child.is_some() {
                slot.ready = true;
            } else {
                slot.external_until = Some(Instant::now() + EXTERNAL_HEALTH_TTL);
            }
        }
    }

    /// `GET healthUrl`: 2xx is healthy; 401/403 too (the server is up and wants a key, and
    /// starting another one on its port could only fail).
    async fn healthy(&self, timeout: Duration) -> bool {
        let request = self.http.get(&self.spec.health_url).timeout(timeout).send();
        match request.await {
            Ok(r) => r.status().is_success() || matches!(r.status().as_u16(), 401 | 403),
            Err(_) => false,
        }
    }

    /// Starts the command (stopping a child of ours that stopped answering first) and waits
    /// until it is healthy. Called with the start lock held.
    async fn start_and_wait(&self) -> Result<(), UpstreamError> {
        let stale = self.slot.lock().ok().and_then(|mut s| {
            s.ready = false;
            s.external_until = None;
            s.child.take()
        });
        if let Some(child) = stale {
            tracing::info!(provider = %self.provider, "Local service stopped answering; restarting it.");
            terminate(child).await;
        }
        let (output, readers) = self.spawn()?;
        let spawned = Instant::now();
        let deadline = spawned + self.spec.ready_timeout;
        let mut delay = POLL_FIRST;
        loop {
            let exited = {
                let Ok(mut slot) = self.slot.lock() else {
                    return Err(UpstreamError::new(
                        ErrorClass::Connect,
                        "local service state is poisoned",
                    ));
                };
                match slot.child.as_mut().map(|c| c.try_wait()) {
                    Some(Ok(None)) => None,
                    Some(Ok(Some(status))) => {
                        slot.child = None;
                        Some(status.to_string())
                    }
                    Some(Err(e)) => {
                        slot.child = None;
                        Some(e.to_string())
                    }
                    None => Some("it was stopped".to_owned()),
                }
            };
            if let Some(status) = exited {
                // Let the readers drain what the child wrote before it died.
                for reader in readers {
                    let _ = tokio::time::timeout(Duration::from_millis(500), reader).await;
                }
                return Err(
                    self.failure(&format!("exited ({status}) before it was ready"), &output)
                );
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if self
                .healthy(remaining.clamp(Duration::from_millis(100), Duration::from_secs(2)))
                .await
            {
                self.mark_healthy();
                tracing::info!(provider = %self.provider, ready_ms = spawned.elapsed().as_millis() as u64, "Local service ready.");
                return Ok(());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let child = self.slot.lock().ok().and_then(|mut s| s.child.take());
                if let Some(child) = child {
                    terminate(child).await;
                }
                let what = format!(
                    "did not become ready at {} within {} ms (raise localService.readyTimeoutMs, or check healthUrl)",
                    self.spec.health_url,
                    self.spec.ready_timeout.as_millis()
                );
                return Err(self.failure(&what, &output));
            }
            tokio::time::sleep(delay.min(remaining)).await;
            delay = (delay * 2).min(POLL_MAX);
        }
    }

    fn spawn(&self) -> Result<Spawned, UpstreamError> {
        let spec = &self.spec;
        let mut command = tokio::process::Command::new(&spec.command);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(|e| {
            UpstreamError::new(
                ErrorClass::Connect,
                format!(
                    "{}: cannot start localService {}: {e}",
                    self.provider,
                    spec.command.display()
                ),
            )
        })?;
        let output = Arc::new(Mutex::new(Tail::default()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(drain(stdout, Arc::clone(&output))));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(drain(stderr, Arc::clone(&output))));
        }
        let mut slot = self.slot.lock().map_err(|_| {
            UpstreamError::new(ErrorClass::Connect, "local service state is poisoned")
        })?;
        tracing::info!(provider = %self.provider, command = %spec.command.display(), pid = child.id(), "Local service started.");
        slot.child = Some(child);
        slot.ready = false;
        slot.starts += 1;
        Ok((output, readers))
    }

    fn failure(&self, what: &str, output: &Mutex<Tail>) -> UpstreamError {
        let tail = output.lock().map(|t| t.last_lines(ERROR_TAIL_LINES)).unwrap_or_default();
        let tail = redact(&tail, &self.spec);
        let mut message =
            format!("{}: localService {} {what}", self.provider, self.spec.command.display());
        if tail.is_empty() {
            message.push_str("; it wrote nothing");
        } else {
            message.push_str("; its last output:\n");
            message.push_str(&tail);
        }
        UpstreamError::new(ErrorClass::Connect, message)
    }

    /// The idle timer of the lease dropped at `epoch` ran out: stop the child unless a lease
    /// came since.
    async fn stop_if_idle(&self, epoch: u64) {
        let _start = self.start.lock().await;
        let child = {
            let Ok(mut slot) = self.slot.lock() else { return };
            if slot.leases > 0 || slot.epoch != epoch {
                return;
            }
            slot.ready = false;
            let child = slot.child.take();
            slot.stopping = child.as_ref().and_then(tokio::process::Child::id);
            child
        };
        if let Some(child) = child {
            terminate(child).await;
            // Reported stopped only once reaped: a status that says stopped means gone.
            if let Ok(mut slot) = self.slot.lock() {
                slot.stopping = None;
                slot.idle_stops += 1;
            }
            tracing::info!(provider = %self.provider, "Local service stopped: idle.");
        }
    }
}

async fn drain(mut pipe: impl tokio::io::AsyncRead + Unpin, output: Arc<Mutex<Tail>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut tail) = output.lock() {
                    tail.push(&buf[..n]);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// Signals the child's process group (it was started as a group leader), so helper processes
/// a server spawned (vLLM's engine workers) go too.
fn signal(child: &mut tokio::process::Child, sig: Signal) {
    #[cfg(unix)]
    if let Some(pid) =
        child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw)
    {
        let sig = match sig {
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        };
        if rustix::process::kill_process_group(pid, sig).is_ok() {
            return;
        }
    }
    let _ = sig;
    let _ = child.start_kill();
}

/// SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL; the child is reaped.
async fn terminate(mut child: tokio::process::Child) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    signal(&mut child, Signal::Term);
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        signal(&mut child, Signal::Kill);
        let _ = child.wait().await;
    }
}

static SECRET_PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{8,}", "$1-***"),
        (r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{6,}", "${1}***"),
        (
            r#"(?i)((?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd|authorization)["']?\s*[:=]\s*["']?)[^\s"',;]{3,}"#,
            "${1}***",
        ),
        (r"(?i)(--?(?:api[_-]?key|token|secret|password)[= ])\S+", "${1}***"),
        (r"\b(?:hf|ghp|gho|ghs|github_pat|xoxb|xoxp)_[A-Za-z0-9_]{10,}", "***"),
        (r"\bAIza[0-9A-Za-z\-_]{20,}", "***"),
    ]
    .into_iter()
    .filter_map(|(re, rep)| Regex::new(re).ok().map(|re| (re, rep)))
    .collect()
});

/// Masks, in child output: the values of `localService.env`, the values of key-like
/// arguments (`--api-key X`, `--token=X`), and anything that looks like a key or token.
pub fn redact(text: &str, spec: &LocalService) -> String {
    let mut values: Vec<&str> =
        spec.env.iter().map(|(_, v)| v.trim()).filter(|v| v.len() >= 3).collect();
    let mut args = spec.args.iter().peekable();
    while let Some(arg) = args.next() {
        let lower = arg.to_ascii_lowercase();
        let key_like = ["key", "token", "secret", "password"].iter().any(|k| lower.contains(k));
        if !key_like || !arg.starts_with('-') {
            continue;
        }
        match arg.split_once('=') {
            Some((_, v)) if v.len() >= 3 => values.push(v),
            Some(_) => {}
            None => {
                if let Some(next) = args.peek().filter(|n| !n.starts_with('-') && n.len() >= 3) {
                    values.push(next);
                }
            }
        }
    }
    // Longest first, so a value containing another is masked whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_owned();
    for v in values {
        out = out.replace(v, "***");
    }
    for (re, rep) in SECRET_PATTERNS.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *rep).into_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str], env: &[(&str, &str)]) -> LocalService {
        LocalService {
            command: "/bin/true".into(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            cwd: None,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            health_url: "http://127.0.0.1:1/health".into(),
            ready_timeout: Duration::from_secs(1),
            idle_stop: None,
        }
    }

    #[test]
    fn redaction() {
        let s = spec(
            &["--api-key", "hunter2-xyz", "--port", "8000", "--token=abcdef"],
            &[("HF_TOKEN", "plainvalue")],
        );
        let text = "loading with key hunter2-xyz and abcdef\nenv plainvalue\nAuthorization: Bearer abc.def.ghi\nOPENAI_API_KEY=sk-proj-1234567890abcdef\napi_key: \"zzzz1234\"\nport 8000";
        let out = redact(text, &s);
        for secret in [
            "hunter2-xyz",
            "abcdef",
            "plainvalue",
            "abc.def.ghi",
            "sk-proj-1234567890abcdef",
            "zzzz1234",
        ] {
            assert!(!out.contains(secret), "{secret} leaked in {out}");
        }
        assert!(out.contains("port 8000"), "{out}");
    }

    #[test]
    fn tail_is_bounded() {
        let mut t = Tail::default();
        for i in 0..10_000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        assert!(t.bytes.len() <= OUTPUT_TAIL_BYTES);
        assert!(t.last_lines(2).ends_with("line 9999"));
    }
}
