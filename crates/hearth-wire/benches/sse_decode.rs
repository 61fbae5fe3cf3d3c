//! Micro-benchmark: SSE decode of a realistic chat stream (issue 7).
//!
//! The stream is what `bench/tools` upstream sends: a role chunk, 200 content chunks, a finish
//! chunk, a usage chunk and `data: [DONE]` (204 events with `[DONE]`, about 36 KB). Run with
//! `cargo bench -p hearth-wire --bench sse_decode`; the allocation columns come from divan's
//! `AllocProfiler` (per iteration: divide by the item count for per-event figures).
#![expect(clippy::unwrap_used, reason = "benchmark")]

use divan::counter::{BytesCount, ItemsCount};
use divan::{AllocProfiler, Bencher, black_box};
use hearth_wire::sse::{SseDecoder, SseItem};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

fn chunk(delta: &str, finish: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-bench0000000000000000\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
    )
}

fn stream() -> Vec<u8> {
    let mut s = chunk(r#"{"role":"assistant","content":""}"#, "null");
    for i in 0..200 {
        s.push_str(&chunk(&format!(r#"{{"content":"tok{i} "}}"#), "null"));
    }
    s.push_str(&chunk("{}", "\"stop\""));
    s.push_str("data: {\"id\":\"chatcmpl-bench0000000000000000\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":200,\"total_tokens\":212}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

const EVENTS: usize = 204;

/// The whole stream in pieces of `size` bytes (1,460 ≈ one TCP segment; 65,536 = all at once).
#[divan::bench(args = [1460, 65536])]
fn stream_204_events(bencher: Bencher, size: usize) {
    let body = stream();
    let mut items = Vec::with_capacity(EVENTS);
    bencher.counter(ItemsCount::new(EVENTS)).counter(BytesCount::new(body.len())).bench_local(
        || {
            let mut decoder = SseDecoder::new();
            items.clear();
            for piece in body.chunks(size) {
                decoder.feed(piece, &mut items);
            }
            decoder.finish(&mut items);
            assert_eq!(items.len(), EVENTS);
            black_box(&items);
        },
    );
}

/// One content event through a decoder that is already running (the steady state of a relay).
#[divan::bench]
fn one_event(bencher: Bencher) {
    let frame = chunk(r#"{"content":"tok42 "}"#, "null").into_bytes();
    let mut decoder = SseDecoder::new();
    let mut items = Vec::with_capacity(4);
    bencher.counter(ItemsCount::new(1usize)).bench_local(|| {
        items.clear();
        decoder.feed(black_box(&frame), &mut items);
        assert!(matches!(items.first(), Some(SseItem::Event(_))));
    });
    drop(items.pop().unwrap());
}
