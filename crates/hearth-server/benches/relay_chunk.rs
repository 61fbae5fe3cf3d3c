//! Micro-benchmark: relaying one chunk of a chat stream (issue 7).
//!
//! The path of one upstream `chat.completion.chunk` through a direct-mode stream:
//! SSE decode (`hearth_wire::sse`) → canonical event (`hearth_upstream::decode::Decoder`) →
//! `chat.completion.chunk` frame (`ChatRender`, as `sse::respond` drives it: into the stream's
//! reused `sse::Frames`, leaving as `Bytes`). Run with
//! `cargo bench -p hearth-server --bench relay_chunk`; divan's `AllocProfiler` counts the
//! allocations per iteration, i.e. per relayed chunk.
#![expect(clippy::unwrap_used, reason = "benchmark")]

use bytes::Bytes;
use divan::{AllocProfiler, Bencher, black_box};
use hearth_config::Api;
use hearth_server::chat::ChatRender;
use hearth_server::sse::{Frames, Render};
use hearth_upstream::Event;
use hearth_upstream::decode::Decoder;
use hearth_wire::sse::{SseDecoder, SseItem};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

const FRAME: &[u8] = b"data: {\"id\":\"chatcmpl-bench0000000000000000\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok42 \"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";

fn started_render() -> ChatRender {
    let mut render = ChatRender::new("up/m".to_owned(), true);
    let mut out = Vec::new();
    render.start(&mut out);
    render
}

/// Rendering only, into a buffer that is reused: the cost of the frame writer itself.
#[divan::bench]
fn render_into_reused_buffer(bencher: Bencher) {
    let mut render = started_render();
    let mut out = Vec::with_capacity(256);
    bencher.with_inputs(|| Event::TextDelta("tok42 ".to_owned())).bench_local_values(|event| {
        out.clear();
        render.event(event, &mut out);
        black_box(&out);
    });
}

/// What `sse::respond` does per event: render into the stream's `Frames`, take the frame as
/// `Bytes` (dropped before the next one, as hyper does once it has written it).
#[divan::bench]
fn render_as_relayed(bencher: Bencher) {
    let mut render = started_render();
    let mut frames = Frames::new();
    bencher.with_inputs(|| Event::TextDelta("tok42 ".to_owned())).bench_local_values(|event| {
        render.event(event, frames.out());
        let frame: Bytes = frames.take();
        black_box(&frame);
    });
}

/// Upstream side only: one SSE event decoded into canonical events.
#[divan::bench]
fn upstream_decode(bencher: Bencher) {
    let mut sse = SseDecoder::new();
    let mut items = Vec::new();
    sse.feed(FRAME, &mut items);
    let Some(SseItem::Event(event)) = items.pop() else { unreachable!() };
    let mut decoder = Decoder::new(Api::OpenaiCompletions, false, 0);
    let mut events = Vec::with_capacity(4);
    bencher.bench_local(|| {
        events.clear();
        decoder.sse(black_box(&event), &mut events);
        black_box(&events);
    });
}

/// The whole relay of one chunk: bytes in, frame bytes out.
#[divan::bench]
fn relay_one_chunk(bencher: Bencher) {
    let mut sse = SseDecoder::new();
    let mut decoder = Decoder::new(Api::OpenaiCompletions, false, 0);
    let mut render = started_render();
    let mut frames = Frames::new();
    let mut items = Vec::with_capacity(4);
    let mut events = Vec::with_capacity(4);
    bencher.bench_local(|| {
        items.clear();
        sse.feed(black_box(FRAME), &mut items);
        let mut frame = None;
        for item in items.drain(..) {
            if let SseItem::Event(event) = item {
                decoder.sse(&event, &mut events);
            }
        }
        for event in events.drain(..) {
            render.event(event, frames.out());
        }
        frame.replace(frames.take());
        black_box(frame.unwrap().len())
    });
}
