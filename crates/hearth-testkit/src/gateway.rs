//! [`GatewayProcess`]: a `hearth gateway run` process a test started, known once it listens,
//! with everything it wrote on stderr kept for assertions and diagnosis. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `hearth` binary at `bin` (`env!("CARGO_BIN_EXE_hearth")`) with a clean environment:
/// no `HOME`, no colour, `state` as its state directory and `config` as its config.
pub fn hearth_command(bin: &str, config: &std::path::Path, state: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("HOME", "/nonexistent-hearth-home")
        .env("NO_COLOR", "1")
        .env("HEARTH_STATE_DIR", state)
        .arg("--config")
        .arg(config);
    cmd
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a gateway did not come up.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start the gateway: {0}")]
    Io(#[from] std::io::Error),
    #[error("the gateway exited before listening; it said:\n{0}")]
    Exited(String),
}

impl GatewayProcess {
    /// Spawns `command` (a `hearth … gateway run --port 0 …` command line, with its config and
    /// environment), and returns once the gateway says where it listens.
    ///
    /// # Errors
    ///
    /// When the process cannot start, or exits before it listens (its stderr is in the error).
    pub fn spawn(command: &mut Command) -> Result<Self, SpawnError> {
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
        let Some(pipe) = child.stderr.take() else {
            return Err(SpawnError::Exited(String::new()));
        };
        let mut reader = BufReader::new(pipe);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let said = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                let _ = child.wait();
                return Err(SpawnError::Exited(said));
            }
            if let Ok(mut s) = stderr.lock() {
                s.push_str(&line);
            }
            if let Some(addr) = line
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
            {
                break addr;
            }
        };
        // Keep reading, so the gateway never blocks on a full pipe.
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&line);
                }
                line.clear();
            }
        });
        Ok(GatewayProcess { child, addr, stderr })
    }

    /// `http://ADDR`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `GET /ready`'s JSON (a plain HTTP/1.1 request on a fresh connection).
    pub async fn ready(&self) -> Result<serde_json::Value, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let request =
            format!("GET /ready HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n", self.addr);
        socket.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&answer);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).map_err(|e| format!("/ready is not JSON ({e}): {text}"))
    }

    /// Waits until `/ready` reports every channel account connected; its last answer.
    pub async fn wait_channels_connected(
        &self,
        within: Duration,
    ) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + within;
        loop {
            let ready = self.ready().await?;
            let rows = ready["channels"].as_array().cloned().unwrap_or_default();
            if !rows.is_empty() && rows.iter().all(|c| c["connected"] == true) {
                return Ok(ready);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the channels never all connected within {within:?}: {ready}\n{}",
                    self.stderr()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to `within`) until stderr contains `text`; whether it did.
    pub fn wait_for_stderr(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.stderr().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stderr().contains(text)
    }

    /// Waits for the process to exit.
    ///
    /// # Errors
    ///
    /// As [`Child::wait`].
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait()
    }
}
