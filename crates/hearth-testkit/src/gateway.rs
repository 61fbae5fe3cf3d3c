//! [`GatewayProcess`]: a `hearth gateway run` process a test started, known once it listens,
//! with everything it wrote on stderr kept for assertions and diagnosis. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
