//! Feeds arbitrary bytes to the SSE and NDJSON decoders, whole and split in two, and checks
//! that the split never changes the output.
//!
//! The first byte picks the split point and a small limit, so the overflow paths run too.

#![no_main]

use hearth_wire::ndjson::NdjsonDecoder;
use hearth_wire::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else { return };
    let split_at = usize::from(selector) * body.len() / 255;
    let (head, tail) = body.split_at(split_at.min(body.len()));
    let max_bytes = if selector % 2 == 0 { 16 } else { 1 << 20 };

    let decoder = SseDecoder::with_max_bytes(max_bytes).emit_comments(true);
    let mut whole = Vec::new();
    let mut whole_decoder = decoder.clone();
    whole_decoder.feed(body, &mut whole);
    whole_decoder.finish(&mut whole);
    let mut split = Vec::new();
    let mut split_decoder = decoder;
    split_decoder.feed(head, &mut split);
    split_decoder.feed(tail, &mut split);
    split_decoder.finish(&mut split);
    assert_eq!(whole, split, "SSE output changed when split at {split_at}");

    let decoder = NdjsonDecoder::with_max_line_bytes(max_bytes);
    let mut whole = Vec::new();
    let mut whole_decoder = decoder.clone();
    whole_decoder.feed(body, &mut whole);
    whole_decoder.finish(&mut whole);
    let mut split = Vec::new();
    let mut split_decoder = decoder;
    split_decoder.feed(head, &mut split);
    split_decoder.feed(tail, &mut split);
    split_decoder.finish(&mut split);
    assert_eq!(whole, split, "NDJSON output changed when split at {split_at}");
});
