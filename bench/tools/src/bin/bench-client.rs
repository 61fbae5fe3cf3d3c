//! The benchmark's own client, for what wrk cannot measure:
//!
//! - `wait-ready --url URL --t0 EPOCHREALTIME [--pid P] [--timeout-s T]`: polls URL every
//!   200 µs until it answers 200; prints `{"ready_ms":…}`, the time since `t0` (bash's
//!   `$EPOCHREALTIME` taken just before the server was started).
//! - `stream --url URL --model M --n N [--warmup W]`: N streamed chat completions one after the
//!   other on one keep-alive connection; time to first chunk, total, chunks, per-chunk time.
//! - `hold --url URL --model M --n N --expect K [--stall-ms S] [--timeout-s T] [--pids P,…]`:
//!   N streams at once; counts streams completed whole (status 200, ≥ K events, `[DONE]`),
//!   peak concurrently open, longest gap between events, stalls, peak RSS of the given pids.
//! - `once --url URL --model M`: one request on a fresh connection; prints the microseconds.
//! - `rss --pids P,… --duration-s D`: peak and mean RSS (kB) of the pids, summed.
//!
//! Every result is one JSON line on stdout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hearth_bench_tools::http::Reader;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    arg(args, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `http://host:port/path` → (host:port, path).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

fn request(host: &str, path: &str, model: &str, stream: bool) -> Vec<u8> {
    let body = if stream {
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello"}}],"stream":true,"stream_options":{{"include_usage":true}}}}"#
        )
    } else {
        format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello"}}],"max_tokens":16}}"#
        )
    };
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\naccept: */*\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, mut v: Vec<f64>) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    format!(
        r#""{name}":{{"p50":{:.1},"p90":{:.1},"p99":{:.1},"p999":{:.1},"mean":{:.1},"max":{:.1}}}"#,
        pct(&v, 50.0),
        pct(&v, 90.0),
        pct(&v, 99.0),
        pct(&v, 99.9),
        mean,
        v.last().copied().unwrap_or(f64::NAN)
    )
}

fn rss_kb(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn pids(args: &[String]) -> Vec<u32> {
    arg(args, "--pids")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Counts `data: ` lines in a piece, carrying a partial match across pieces.
struct Counter {
    events: usize,
    done: bool,
    tail: Vec<u8>,
}

impl Counter {
    fn new() -> Self {
        Counter { events: 0, done: false, tail: Vec::with_capacity(32) }
    }
    fn feed(&mut self, piece: &[u8]) {
        if self.tail.is_empty() {
            self.scan(piece);
        } else {
            let mut joined = std::mem::take(&mut self.tail);
            joined.extend_from_slice(piece);
            self.scan(&joined);
        }
    }
    fn scan(&mut self, data: &[u8]) {
        const NEEDLE: &[u8] = b"data: ";
        const DONE: &[u8] = b"[DONE]";
        let mut i = 0;
        while i + NEEDLE.len() <= data.len() {
            if &data[i..i + NEEDLE.len()] == NEEDLE {
                let rest = &data[i + NEEDLE.len()..];
                if rest.len() < DONE.len() && DONE.starts_with(rest) {
                    // cannot tell `[DONE]` from an event yet: decide with the next piece
                    self.tail.extend_from_slice(&data[i..]);
                    return;
                }
                if rest.starts_with(DONE) {
                    self.done = true;
                } else {
                    self.events += 1;
                }
                i += NEEDLE.len();
            } else {
                i += 1;
            }
        }
        // a marker may start in the last bytes: keep the longest suffix that begins it
        let from = data.len().saturating_sub(NEEDLE.len() - 1).max(i.min(data.len()));
        for start in from..data.len() {
            if NEEDLE.starts_with(&data[start..]) {
                self.tail.extend_from_slice(&data[start..]);
                return;
            }
        }
    }
}

fn cmd_stream(args: &[String]) -> std::io::Result<()> {
    let (host, path) = split_url(&arg(args, "--url").unwrap_or_default());
    let model = arg(args, "--model").unwrap_or_else(|| "up/m".into());
    let n: usize = num(args, "--n", 100);
    let warmup: usize = num(args, "--warmup", 20);
    let req = request(&host, &path, &model, true);
    let mut conn = connect(&host)?;
    let (mut ttfc, mut total, mut per_chunk) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunks = 0;
    let mut errors = 0;
    for i in 0..warmup + n {
        let t0 = Instant::now();
        let result = (|| {
            conn.io.write_all(&req)?;
            let head = conn.head()?.ok_or_else(|| std::io::Error::other("eof"))?;
            let mut first: Option<Duration> = None;
            let mut counter = Counter::new();
            conn.body_each(&head, |piece| {
                if first.is_none() && !piece.is_empty() {
                    first = Some(t0.elapsed());
                }
                counter.feed(piece);
            })?;
            Ok::<_, std::io::Error>((head, first, counter, t0.elapsed()))
        })();
        match result {
            Ok((head, Some(first), counter, end)) if head.status == 200 && counter.done => {
                if i >= warmup {
                    ttfc.push(first.as_secs_f64() * 1e6);
                    total.push(end.as_secs_f64() * 1e6);
                    chunks = counter.events;
                    if counter.events > 1 {
                        per_chunk
                            .push((end - first).as_secs_f64() * 1e6 / (counter.events - 1) as f64);
                    }
                }
                if head.close {
                    conn = connect(&host)?;
                }
            }
            _ => {
                errors += 1;
                conn = connect(&host)?;
            }
        }
    }
    println!(
        "{{\"n\":{n},\"errors\":{errors},\"events\":{chunks},{},{},{}}}",
        summary("ttfc_us", ttfc),
        summary("total_us", total),
        summary("per_chunk_us", per_chunk)
    );
    Ok(())
}

fn connect(host: &str) -> std::io::Result<Reader<TcpStream>> {
    let s = TcpStream::connect(host)?;
    s.set_nodelay(true)?;
    Ok(Reader::new(s))
}

#[derive(Default)]
struct HoldStats {
    open: AtomicUsize,
    peak_open: AtomicUsize,
    ok: AtomicUsize,
    connect_err: AtomicUsize,
    status_err: AtomicUsize,
    truncated: AtomicUsize,
    timed_out: AtomicUsize,
    stalls: AtomicUsize,
    max_gap_us: AtomicU64,
}

/// A counting semaphore: at most N streams between connect and response head.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }
    fn release(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_one();
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

fn hold_one(
    host: &str,
    req: &[u8],
    expect: usize,
    stall: Duration,
    deadline: Instant,
    stats: &HoldStats,
    gate: &Gate,
) -> Option<f64> {
    gate.acquire();
    let t0 = Instant::now();
    // One deadline for the whole run: a stream still waiting to start when it passes has failed.
    let Some(timeout) = deadline.checked_duration_since(t0).filter(|d| !d.is_zero()) else {
        gate.release();
        stats.timed_out.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let mut conn = match connect(host) {
        Ok(c) => c,
        Err(_) => {
            gate.release();
            stats.connect_err.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    let _ = conn.io.set_read_timeout(Some(timeout));
    if conn.io.write_all(req).is_err() {
        gate.release();
        stats.connect_err.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let head = conn.head();
    gate.release();
    let head = match head {
        Ok(Some(h)) if h.status == 200 => h,
        Err(e) if is_timeout(&e) => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        _ => {
            stats.status_err.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    let open = stats.open.fetch_add(1, Ordering::SeqCst) + 1;
    stats.peak_open.fetch_max(open, Ordering::SeqCst);
    let mut counter = Counter::new();
    let mut last: Option<Instant> = None;
    let mut first: Option<f64> = None;
    let mut max_gap = Duration::ZERO;
    let result = conn.body_each(&head, |piece| {
        let now = Instant::now();
        let before = counter.events;
        counter.feed(piece);
        if counter.events > before || counter.done {
            if let Some(l) = last {
                max_gap = max_gap.max(now - l);
            } else {
                first = Some((now - t0).as_secs_f64() * 1e6);
            }
            last = Some(now);
        }
    });
    stats.open.fetch_sub(1, Ordering::SeqCst);
    stats.max_gap_us.fetch_max(max_gap.as_micros() as u64, Ordering::Relaxed);
    if max_gap > stall {
        stats.stalls.fetch_add(1, Ordering::Relaxed);
    }
    match result {
        Ok(()) if counter.done && counter.events >= expect => {
            stats.ok.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) if is_timeout(&e) => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            stats.truncated.fetch_add(1, Ordering::Relaxed);
        }
    }
    first
}

fn cmd_hold(args: &[String]) -> std::io::Result<()> {
    let (host, path) = split_url(&arg(args, "--url").unwrap_or_default());
    let model = arg(args, "--model").unwrap_or_else(|| "held/m".into());
    let n: usize = num(args, "--n", 1000);
    let expect: usize = num(args, "--expect", 1);
    let stall = Duration::from_millis(num(args, "--stall-ms", 2000));
    let timeout = Duration::from_secs(num(args, "--timeout-s", 60));
    let gate = Arc::new(Gate {
        free: Mutex::new(num(args, "--connect-concurrency", 64)),
        cv: Condvar::new(),
    });
    let pids = pids(args);
    let req = Arc::new(request(&host, &path, &model, true));
    let host = Arc::new(host);
    let stats = Arc::new(HoldStats::default());
    let rss_before = rss_kb(&pids);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (stats, pids, stop) = (Arc::clone(&stats), pids.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (mut peak_rss, mut rss_at_peak_open, mut best_open) = (0u64, 0u64, 0usize);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let rss = rss_kb(&pids);
                peak_rss = peak_rss.max(rss);
                let open = stats.open.load(Ordering::Relaxed);
                if open >= best_open && open > 0 {
                    best_open = open;
                    rss_at_peak_open = rss;
                }
            }
            (peak_rss, rss_at_peak_open)
        })
    };
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let mut handles = Vec::with_capacity(n);
    let mut spawn_err = 0usize;
    for _ in 0..n {
        let (host, req, stats, gate) =
            (Arc::clone(&host), Arc::clone(&req), Arc::clone(&stats), Arc::clone(&gate));
        match std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || hold_one(&host, &req, expect, stall, deadline, &stats, &gate))
        {
            Ok(h) => handles.push(h),
            Err(_) => spawn_err += 1,
        }
    }
    let firsts: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok().flatten()).collect();
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (peak_rss, rss_at_peak_open) = sampler.join().unwrap_or((0, 0));
    let s = &stats;
    println!(
        "{{\"n\":{n},\"ok\":{},\"connect_err\":{},\"status_err\":{},\"truncated\":{},\"timed_out\":{},\"client_spawn_err\":{spawn_err},\"stalls\":{},\"peak_open\":{},\"max_gap_ms\":{:.1},\"rss_before_kb\":{rss_before},\"rss_peak_kb\":{},\"rss_at_peak_open_kb\":{},\"elapsed_s\":{elapsed:.2},{}}}",
        s.ok.load(Ordering::Relaxed),
        s.connect_err.load(Ordering::Relaxed),
        s.status_err.load(Ordering::Relaxed),
        s.truncated.load(Ordering::Relaxed),
        s.timed_out.load(Ordering::Relaxed),
        s.stalls.load(Ordering::Relaxed),
        s.peak_open.load(Ordering::Relaxed),
        s.max_gap_us.load(Ordering::Relaxed) as f64 / 1000.0,
        peak_rss.max(rss_before),
        rss_at_peak_open,
        summary("first_event_us", firsts)
    );
    Ok(())
}

fn cmd_once(args: &[String]) -> std::io::Result<()> {
    let (host, path) = split_url(&arg(args, "--url").unwrap_or_default());
    let model = arg(args, "--model").unwrap_or_else(|| "up/m".into());
    let stream = arg(args, "--stream").is_some_and(|v| v == "true");
    let req = request(&host, &path, &model, stream);
    let t0 = Instant::now();
    let mut conn = connect(&host)?;
    conn.io.write_all(&req)?;
    let head = conn.head()?.ok_or_else(|| std::io::Error::other("eof"))?;
    let mut body = Vec::new();
    conn.body(&head, &mut body)?;
    let us = t0.elapsed().as_secs_f64() * 1e6;
    println!("{{\"status\":{},\"us\":{us:.1},\"bytes\":{}}}", head.status, body.len());
    Ok(())
}

/// One blocking GET; true on a 200.
fn get_ok(host: &str, path: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(host) else { return false };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = 0;
    while got < 12 {
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200")
}

fn cmd_wait_ready(args: &[String]) -> std::io::Result<()> {
    let (host, path) = split_url(&arg(args, "--url").unwrap_or_default());
    let timeout = Duration::from_secs_f64(num(args, "--timeout-s", 120.0));
    let pid: Option<u32> = arg(args, "--pid").and_then(|p| p.parse().ok());
    let t0: f64 = num(args, "--t0", f64::NAN);
    let started = Instant::now();
    loop {
        if get_ok(&host, &path) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(f64::NAN);
            println!("{{\"ready_ms\":{:.2}}}", (now - t0) * 1e3);
            return Ok(());
        }
        if let Some(pid) = pid {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = state.rsplit(')').next().unwrap_or("").trim_start().chars().next();
            if matches!(state, None | Some('Z') | Some('X')) {
                return Err(std::io::Error::other(format!(
                    "process {pid} exited before {path} answered"
                )));
            }
        }
        if started.elapsed() > timeout {
            return Err(std::io::Error::other(format!("{host}{path} not ready after {timeout:?}")));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn cmd_rss(args: &[String]) {
    let pids = pids(args);
    let until = Instant::now() + Duration::from_secs_f64(num(args, "--duration-s", 5.0));
    let (mut peak, mut sum, mut count) = (0u64, 0u64, 0u64);
    while Instant::now() < until {
        let r = rss_kb(&pids);
        peak = peak.max(r);
        sum += r;
        count += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{{\"rss_peak_kb\":{peak},\"rss_mean_kb\":{}}}", sum.checked_div(count).unwrap_or(0));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("wait-ready") => cmd_wait_ready(&args),
        Some("rss") => {
            cmd_rss(&args);
            Ok(())
        }
        Some("stream") => cmd_stream(&args),
        Some("hold") => cmd_hold(&args),
        Some("once") => cmd_once(&args),
        _ => Err(std::io::Error::other("usage: bench-client wait-ready|stream|hold|once|rss …")),
    };
    if let Err(e) = result {
        eprintln!("bench-client: {e}");
        std::process::exit(1);
    }
}
