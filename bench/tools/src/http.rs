//! A minimal blocking HTTP/1.1 reader shared by the upstream and the client: request/response
//! heads, Content-Length and chunked bodies. Only what the benchmark needs; std only, so the
//! tools build in seconds with no registry access.

use std::io::{self, Read};

/// A connection's read buffer.
pub struct Reader<R> {
    pub io: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A parsed head: status code (responses) or method+path (requests), body framing.
#[derive(Debug, Default, Clone)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub close: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl<R: Read> Reader<R> {
    pub fn new(io: R) -> Self {
        Reader { io, buf: vec![0; 16 * 1024], start: 0, end: 0 }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.io.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Reads a head; `None` on a clean EOF before any byte.
    pub fn head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some(pos) = find(self.pending(), b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&self.pending()[..pos]).into_owned();
                self.start += pos + 4;
                return Ok(Some(parse_head(&text)));
            }
            if self.fill()? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof inside a head"));
            }
        }
    }

    /// Reads the whole body into `out` (cleared first).
    pub fn body(&mut self, head: &Head, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        self.body_each(head, |b| out.extend_from_slice(b))
    }

    /// Reads the body, calling `each` with every piece as it arrives.
    pub fn body_each(&mut self, head: &Head, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        if head.chunked {
            loop {
                let size = loop {
                    if let Some(pos) = find(self.pending(), b"\r\n") {
                        let line = String::from_utf8_lossy(&self.pending()[..pos]).into_owned();
                        self.start += pos + 2;
                        let hex = line.split(';').next().unwrap_or("").trim();
                        break usize::from_str_radix(hex, 16).map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                        })?;
                    }
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "eof in chunk size",
                        ));
                    }
                };
                if size == 0 {
                    // trailers end with an empty line
                    loop {
                        if let Some(pos) = find(self.pending(), b"\r\n") {
                            self.start += pos + 2;
                            if pos == 0 {
                                return Ok(());
                            }
                            continue;
                        }
                        if self.fill()? == 0 {
                            return Ok(());
                        }
                    }
                }
                let mut left = size;
                while left > 0 {
                    if self.start == self.end && self.fill()? == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in chunk"));
                    }
                    let n = left.min(self.end - self.start);
                    each(&self.buf[self.start..self.start + n]);
                    self.start += n;
                    left -= n;
                }
                while self.end - self.start < 2 {
                    if self.fill()? == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "eof after chunk",
                        ));
                    }
                }
                self.start += 2;
            }
        } else if let Some(len) = head.content_length {
            let mut left = len;
            while left > 0 {
                if self.start == self.end && self.fill()? == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in body"));
                }
                let n = left.min(self.end - self.start);
                each(&self.buf[self.start..self.start + n]);
                self.start += n;
                left -= n;
            }
            Ok(())
        } else if head.status != 0 && head.status != 204 && head.status != 304 {
            // a response without framing: read to EOF
            loop {
                if self.start < self.end {
                    each(&self.buf[self.start..self.end]);
                    self.start = self.end;
                }
                if self.fill()? == 0 {
                    return Ok(());
                }
            }
        } else {
            Ok(())
        }
    }
}

fn parse_head(text: &str) -> Head {
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut head = Head::default();
    let mut parts = first.split(' ');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    if a.starts_with("HTTP/") {
        head.status = b.parse().unwrap_or(0);
        head.close = a == "HTTP/1.0";
    } else {
        head.method = a.to_owned();
        head.path = b.to_owned();
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.close = true;
            } else if v.contains("keep-alive") {
                head.close = false;
            }
        }
    }
    head
}
