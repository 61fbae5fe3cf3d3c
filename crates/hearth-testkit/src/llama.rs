//! The real llama.cpp `llama-server`, started on a free loopback port with the tiny generated
//! model (`scripts/testbed/setup.sh` builds and caches both). Dropping a [`LlamaServer`] stops
//! exactly the process it started.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The llama-cpp-python release whose vendored llama.cpp the test bed builds.
pub const LLAMA_CPP_PYTHON_VERSION: &str = "0.3.36";
/// The tiny model's generator version (see `scripts/testbed/make_tiny_gguf.py`).
pub const TINY_MODEL_FILE: &str = "tiny-v1.gguf";
/// The model id the server is started with (`--alias`).
pub const MODEL_ALIAS: &str = "tiny";

fn cache_dir() -> PathBuf {
    let home =
        std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("hearth-testbed")
}

fn setup_hint() -> String {
    "run `bash scripts/testbed/setup.sh` (it builds llama-server and the tiny model, then caches them)".to_owned()
}

/// Path of the `llama-server` binary: `HEARTH_LLAMA_SERVER`, else the test bed's cache.
pub fn binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("HEARTH_LLAMA_SERVER").map(PathBuf::from).unwrap_or_else(|| {
        cache_dir()
            .join(format!("llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}"))
            .join("llama-server")
    });
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("llama-server not found at {}: {}", path.display(), setup_hint()))
    }
}

/// Path of the tiny GGUF model: `HEARTH_TINY_GGUF`, else the test bed's cache.
pub fn model() -> Result<PathBuf, String> {
    let path = std::env::var_os("HEARTH_TINY_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join(TINY_MODEL_FILE));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("tiny model not found at {}: {}", path.display(), setup_hint()))
    }
}

/// A running `llama-server`.
#[derive(Debug)]
pub struct LlamaServer {
    child: Child,
    pub port: u16,
    pub ctx_size: u32,
}

impl LlamaServer {
    /// Starts the server with `--ctx-size ctx_size` and waits until `/health` answers 200.
    pub fn start(ctx_size: u32) -> Result<Self, String> {
        Self::start_with(ctx_size, &[])
    }

    /// [`LlamaServer::start`] with more command-line arguments (`--chat-template-file`,
    /// `--batch-size 16`: prompt progress every 16 tokens, …).
    pub fn start_with(ctx_size: u32, extra: &[&str]) -> Result<Self, String> {
        let binary = binary()?;
        let model = model()?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new(&binary)
            .args(["--model"])
            .arg(&model)
            .args(["--alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args([
                "--ctx-size",
                &ctx_size.to_string(),
                "--threads",
                "1",
                "--parallel",
                "1",
                "--no-webui",
                "--jinja",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut server = LlamaServer { child, port, ctx_size };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("llama-server exited during startup: {status}"));
            }
            if server.get("/health").is_ok_and(|(code, _)| code == 200) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("llama-server did not become ready within 60 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A blocking `GET path`: (status, body).
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
