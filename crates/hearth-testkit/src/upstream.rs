//! `FakeUpstream`: a real HTTP/1.1 server on 127.0.0.1 that answers each request with the next
//! scripted [`Reply`], byte for byte: chunk timing, disconnect mid-body, stall after headers,
//! any status and headers. Every request is recorded for assertions.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a scripted reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body completes (final chunk of the chunked encoding) and the connection closes.
    Complete,
    /// The connection is dropped after the last scripted chunk, without completing the body.
    Disconnect,
    /// Nothing more is sent, and the connection stays open until the test ends.
    Stall,
    /// Not even the status line is sent: the request is read and never answered.
    NoResponse,
}

/// A piece of a reply body, or a pause.
#[derive(Debug, Clone)]
pub enum Step {
    Bytes(Vec<u8>),
    Pause(Duration),
    /// A pause before the status line (a server loading a model before it answers); only
    /// where it leads the steps.
    HeadPause(Duration),
}

/// One scripted HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
    pub end: End,
}

impl Reply {
    /// A whole `chat.completion` whose final text is `text` and whose answer also carries
    /// reasoning three ways a surface must never relay: `reasoning_content` (`SECRET-REASONING`),
    /// a `<think>` block (`SECRET-THINK`) and a leaked `<tool_call>` residue.
    pub fn chat_with_reasoning(text: &str) -> Self {
        let content = format!(
            "<think>SECRET-THINK pondering</think>{text} <tool_call>{{\"name\": \"exec\", \"arguments\": {{\"cmd\": \"rm\"}}}}</tool_call>"
        );
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": content, "reasoning_content": "SECRET-REASONING"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        });
        Reply::json(200, &body.to_string())
    }

    /// A JSON body with `status`.
    pub fn json(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            steps: vec![Step::Bytes(body.as_bytes().to_vec())],
            end: End::Complete,
        }
    }

    /// An SSE body from raw text (events already framed), sent as one chunk.
    pub fn sse_raw(text: &str) -> Self {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            steps: vec![Step::Bytes(text.as_bytes().to_vec())],
            end: End::Complete,
        }
    }

    /// An SSE body of `data:` events, each followed by a blank line.
    pub fn sse(data: &[&str]) -> Self {
        let text: String = data.iter().map(|d| format!("data: {d}\n\n")).collect();
        Reply::sse_raw(&text)
    }

    /// An NDJSON body (Ollama).
    pub fn ndjson(lines: &[&str]) -> Self {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/x-ndjson".into())],
            steps: vec![Step::Bytes(text.into_bytes())],
            end: End::Complete,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn end(mut self, end: End) -> Self {
        self.end = end;
        self
    }

    fn body(&self) -> Vec<u8> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Bytes(b) => Some(b.as_slice()),
                Step::Pause(_) | Step::HeadPause(_) => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// Sends the body one byte per chunk.
    pub fn byte_by_byte(mut self) -> Self {
        self.steps = self.body().into_iter().map(|b| Step::Bytes(vec![b])).collect();
        self
    }

    /// Sends the body in two chunks split at `at`, with a pause between them.
    pub fn split_at(mut self, at: usize, pause: Duration) -> Self {
        let body = self.body();
        let at = at.min(body.len());
        self.steps = vec![
            Step::Bytes(body[..at].to_vec()),
            Step::Pause(pause),
            Step::Bytes(body[at..].to_vec()),
        ];
        self
    }

    /// Waits `pause` before the status line: a server that loads a model before it answers.
    pub fn headers_after(mut self, pause: Duration) -> Self {
        self.steps.insert(0, Step::HeadPause(pause));
        self
    }

    /// Reads the request and never answers (not even headers).
    pub fn stall_before_headers(mut self) -> Self {
        self.end = End::NoResponse;
        self
    }

    /// Sends only the first `n` body bytes, then drops the connection.
    pub fn disconnect_after(mut self, n: usize) -> Self {
        let body = self.body();
        self.steps = vec![Step::Bytes(body[..n.min(body.len())].to_vec())];
        self.end = End::Disconnect;
        self
    }
}

/// A request the fake upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Only POST requests (model calls) take scripted replies; others get a 404.
    posts_only: bool,
}

/// The scriptable upstream. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts on 127.0.0.1 with a free port. Requests beyond the script get a 500.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(false).await
    }

    /// Like [`FakeUpstream::start`], but only POST requests (model calls) take the scripted
    /// replies; GETs (health checks, model lists, probes) get a 404 and leave the script alone.
    pub async fn start_calls_only() -> std::io::Result<Self> {
        Self::start_with(true).await
    }

    async fn start_with(posts_only: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared { posts_only, ..Shared::default() });
        let task_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shared = Arc::clone(&task_shared);
                tokio::spawn(async move {
                    let _ = serve(socket, shared).await;
                });
            }
        });
        Ok(FakeUpstream { addr, shared, task })
    }

    /// Queues the reply for the next request.
    pub fn push(&self, reply: Reply) {
        if let Ok(mut q) = self.shared.replies.lock() {
            q.push_back(reply);
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn serve(mut socket: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    // Read the head.
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let is_post = method == "POST";
    if let Ok(mut r) = shared.requests.lock() {
        r.push(Recorded { method, path, headers, body });
    }
    let reply = if shared.posts_only && !is_post {
        Some(Reply::json(404, r#"{"error":{"message":"not scripted"}}"#))
    } else {
        None
    };
    let reply = match reply {
        Some(r) => r,
        None => shared.replies.lock().ok().and_then(|mut q| q.pop_front()).unwrap_or_else(|| {
            Reply::json(500, r#"{"error":{"message":"fake upstream: no reply scripted"}}"#)
        }),
    };

    if reply.end == End::NoResponse {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return Ok(());
    }
    for step in &reply.steps {
        match step {
            Step::HeadPause(d) => tokio::time::sleep(*d).await,
            _ => break,
        }
    }
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\ntransfer-encoding: chunked\r\nconnection: close\r\n",
        reply.status
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await?;
    for step in &reply.steps {
        match step {
            Step::Bytes(bytes) if !bytes.is_empty() => {
                socket.write_all(format!("{:x}\r\n", bytes.len()).as_bytes()).await?;
                socket.write_all(bytes).await?;
                socket.write_all(b"\r\n").await?;
                socket.flush().await?;
            }
            Step::Bytes(_) | Step::HeadPause(_) => {}
            Step::Pause(d) => tokio::time::sleep(*d).await,
        }
    }
    match reply.end {
        End::Complete => {
            socket.write_all(b"0\r\n\r\n").await?;
            socket.flush().await?;
        }
        End::Disconnect => {}
        End::Stall | End::NoResponse => tokio::time::sleep(Duration::from_secs(3600)).await,
    }
    Ok(())
}
