//! The benchmark upstream: a fixed-response OpenAI chat completions server, the same for the
//! direct baseline, hearth and LiteLLM. It answers from precomputed bytes (no JSON work per
//! request), keeps connections alive, sets TCP_NODELAY, and serves each connection on its own
//! small-stack thread (blocking IO: the lowest latency at concurrency 1; 10,000 held streams
//! cost about 10,000 sleeping threads). std only. Pin it with `taskset`.
//!
//! - `POST …/chat/completions`: a `chat.completion` (about 450 bytes), or with `"stream": true`
//!   an SSE stream of `--chunks` content chunks (default 200), a finish chunk, a usage chunk and
//!   `data: [DONE]`, all in one write (chunked transfer encoding, one HTTP chunk per event).
//! - `POST /paced/<ms>/<n>/…/chat/completions` with `"stream": true`: `n` content chunks, one
//!   every `<ms>` milliseconds (held-open streams).
//! - `GET /health`, `GET …/models`: small JSON.
//!
//! Usage: bench-upstream [--port P] [--chunks N]; prints `listening on PORT`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use hearth_bench_tools::http::Reader;
use hearth_bench_tools::wants_stream;

const CREATED: u64 = 1_700_000_000;

fn completion_body() -> Vec<u8> {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-bench0000000000000000","object":"chat.completion","created":{},"#,
            r#""model":"m","choices":[{{"index":0,"message":{{"role":"assistant","#,
            r#""content":"Hello! This is a fixed answer from the benchmark upstream, about as long as a short reply.","#,
            r#""refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}},"system_fingerprint":null}}"#
        ),
        CREATED
    )
    .into_bytes()
}

fn sse_event(delta: &str, finish: Option<&str>) -> String {
    let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
    format!(
        "data: {{\"id\":\"chatcmpl-bench0000000000000000\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
    )
}

fn usage_event(n: usize) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-bench0000000000000000\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"m\",\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n",
        12 + n
    )
}

/// One HTTP chunk holding `event`.
fn http_chunk(out: &mut Vec<u8>, event: &str) {
    out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The `i`-th content event (0 carries the role).
fn content_event(i: usize) -> String {
    if i == 0 {
        sse_event(r#"{"role":"assistant","content":"tok0 "}"#, None)
    } else {
        sse_event(&format!(r#"{{"content":"tok{i} "}}"#), None)
    }
}

fn stream_tail(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    http_chunk(&mut out, &sse_event("{}", Some("stop")));
    http_chunk(&mut out, &usage_event(n));
    http_chunk(&mut out, "data: [DONE]\n\n");
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";

struct Fixed {
    json: Vec<u8>,
    stream: Vec<u8>,
    health: Vec<u8>,
    models: Vec<u8>,
}

fn json_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn fixed(chunks: usize) -> Fixed {
    let mut stream = SSE_HEAD.to_vec();
    for i in 0..chunks {
        http_chunk(&mut stream, &content_event(i));
    }
    stream.extend_from_slice(&stream_tail(chunks));
    Fixed {
        json: json_response(&completion_body()),
        stream,
        health: json_response(br#"{"status":"ok"}"#),
        models: json_response(
            br#"{"object":"list","data":[{"id":"m","object":"model","created":1700000000,"owned_by":"bench"}]}"#,
        ),
    }
}

/// `/paced/<ms>/<n>/…` → (interval, count).
fn paced(path: &str) -> Option<(Duration, usize)> {
    let rest = path.strip_prefix("/paced/")?;
    let mut it = rest.split('/');
    let ms: u64 = it.next()?.parse().ok()?;
    let n: usize = it.next()?.parse().ok()?;
    Some((Duration::from_millis(ms), n))
}

fn serve(stream: TcpStream, fixed: Arc<Fixed>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = Reader::new(stream);
    let mut body = Vec::new();
    while let Some(head) = reader.head()? {
        reader.body(&head, &mut body)?;
        let path = head.path.split('?').next().unwrap_or("");
        if head.method == "POST" && path.ends_with("/chat/completions") {
            if wants_stream(&body) {
                if let Some((every, n)) = paced(path) {
                    reader.io.write_all(SSE_HEAD)?;
                    let mut out = Vec::with_capacity(512);
                    for i in 0..n {
                        if i > 0 {
                            std::thread::sleep(every);
                        }
                        out.clear();
                        http_chunk(&mut out, &content_event(i));
                        reader.io.write_all(&out)?;
                    }
                    reader.io.write_all(&stream_tail(n))?;
                } else {
                    reader.io.write_all(&fixed.stream)?;
                }
            } else {
                reader.io.write_all(&fixed.json)?;
            }
        } else if head.method == "GET" && (path == "/health" || path.ends_with("/health")) {
            reader.io.write_all(&fixed.health)?;
        } else if head.method == "GET" && path.ends_with("/models") {
            reader.io.write_all(&fixed.models)?;
        } else {
            reader
                .io
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 21\r\n\r\n{\"error\":\"not found\"}")
                ?;
        }
        if head.close {
            break;
        }
    }
    Ok(())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port").and_then(|p| p.parse().ok()).unwrap_or(0);
    let chunks: usize = arg(&args, "--chunks").and_then(|p| p.parse().ok()).unwrap_or(200);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on {}", listener.local_addr()?.port());
    let fixed = Arc::new(fixed(chunks));
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                eprintln!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let fixed = Arc::clone(&fixed);
        let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            let _ = serve(stream, fixed);
        });
        if let Err(e) = spawned {
            eprintln!("spawn: {e}");
        }
    }
}
