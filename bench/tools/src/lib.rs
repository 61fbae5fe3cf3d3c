//! Shared pieces of the benchmark tools.
pub mod http;

/// Whether a JSON request body asks for a stream (`"stream": true`, any spacing).
pub fn wants_stream(body: &[u8]) -> bool {
    let key = b"\"stream\"";
    let mut i = 0;
    while let Some(pos) = body[i..].windows(key.len()).position(|w| w == key) {
        let mut j = i + pos + key.len();
        while j < body.len() && body[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < body.len() && body[j] == b':' {
            j += 1;
            while j < body.len() && body[j].is_ascii_whitespace() {
                j += 1;
            }
            return body[j..].starts_with(b"true");
        }
        i = j;
    }
    false
}
