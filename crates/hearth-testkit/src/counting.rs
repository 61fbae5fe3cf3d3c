//! `CountingListener`: a TCP listener on 127.0.0.1 that counts the connections it gets, reads a
//! little of each and closes it. It stands in for a proxy or a hosted host a test must prove
//! hearth never (or does) connect to.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct CountingListener {
    port: u16,
    count: Arc<AtomicUsize>,
}

impl CountingListener {
    /// Starts on a free port (a thread accepts until the process ends).
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf);
            }
        });
        Ok(CountingListener { port, count })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}
