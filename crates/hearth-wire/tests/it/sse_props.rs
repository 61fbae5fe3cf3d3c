//! Property tests: chunking never changes what the SSE decoder produces, and the encoder's
//! output decodes back to the events it was given.

use hearth_wire::sse::{SseDecoder, SseEvent, SseItem, write_event};
use proptest::prelude::*;

fn decode(decoder: &SseDecoder, chunks: &[&[u8]]) -> Vec<SseItem> {
    let mut decoder = decoder.clone();
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut items);
    }
    decoder.finish(&mut items);
    items
}

#[derive(Debug, Clone, Copy)]
enum LineEnd {
    Lf,
    Cr,
    CrLf,
}

impl LineEnd {
    fn bytes(self) -> &'static [u8] {
        match self {
            LineEnd::Lf => b"\n",
            LineEnd::Cr => b"\r",
            LineEnd::CrLf => b"\r\n",
        }
    }
}

/// One generated event, written by hand (not by the encoder) with its own line ends.
#[derive(Debug, Clone)]
struct WireEvent {
    comment: Option<String>,
    event: Option<String>,
    data_lines: Vec<String>,
    /// Line ends for each line written, the blank line last.
    ends: Vec<LineEnd>,
}

fn line_end() -> impl Strategy<Value = LineEnd> {
    prop_oneof![Just(LineEnd::Lf), Just(LineEnd::Cr), Just(LineEnd::CrLf)]
}

fn wire_event() -> impl Strategy<Value = WireEvent> {
    (
        proptest::option::of("[^\r\n]{0,12}"),
        proptest::option::of("[a-z_.]{1,12}|[^\r\n]{1,8}"),
        proptest::collection::vec("[^\r\n]{0,16}", 1..4),
        proptest::collection::vec(line_end(), 6),
    )
        .prop_map(|(comment, event, data_lines, ends)| WireEvent {
            comment,
            event,
            data_lines,
            ends,
        })
}

/// Writes events the way different servers do, and returns the events a decoder must produce.
fn render(events: &[WireEvent]) -> (Vec<u8>, Vec<SseItem>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut previous_end = LineEnd::Lf;
    for generated in events {
        let mut lines: Vec<String> = Vec::new();
        if let Some(comment) = &generated.comment {
            lines.push(format!(":{comment}"));
        }
        if let Some(event) = &generated.event {
            lines.push(format!("event: {event}"));
        }
        for line in &generated.data_lines {
            lines.push(format!("data: {line}"));
        }
        lines.push(String::new());
        for (idx, line) in lines.iter().enumerate() {
            let mut end = generated.ends.get(idx).copied().unwrap_or(LineEnd::Lf);
            // An empty line ending in LF right after a CR would merge into one CRLF line end.
            if line.is_empty() && matches!(previous_end, LineEnd::Cr) && matches!(end, LineEnd::Lf)
            {
                end = LineEnd::CrLf;
            }
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(end.bytes());
            previous_end = end;
        }
        expected.push(SseItem::Event(SseEvent {
            event: generated.event.clone().filter(|name| !name.is_empty()),
            data: generated.data_lines.join("\n"),
            id: None,
            retry: None,
        }));
    }
    (wire, expected)
}

/// Bytes that exercise the grammar more than uniform noise does.
fn sse_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data:".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"error: ".to_vec()),
        Just(b"id: ".to_vec()),
        Just(b"retry: 12".to_vec()),
        Just(b":".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(vec![0xEF, 0xBB, 0xBF]),
        Just(vec![0xE2, 0x82]),
        Just(b"[DONE]".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(token, 0..48).prop_map(|tokens| tokens.concat())
}

proptest! {
    #[test]
    fn every_two_way_split_matches_whole((wire, expected) in proptest::collection::vec(wire_event(), 0..6).prop_map(|events| render(&events))) {
        let decoder = SseDecoder::new();
        let whole = decode(&decoder, &[&wire]);
        prop_assert_eq!(&whole, &expected);
        for at in 0..=wire.len() {
            let (head, tail) = wire.split_at(at);
            prop_assert_eq!(&decode(&decoder, &[head, tail]), &expected, "split at {}", at);
        }
    }

    #[test]
    fn byte_by_byte_matches_whole((wire, expected) in proptest::collection::vec(wire_event(), 0..6).prop_map(|events| render(&events))) {
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        prop_assert_eq!(decode(&SseDecoder::new(), &bytes), expected);
    }

    #[test]
    fn encoder_output_decodes_to_the_same_events(
        events in proptest::collection::vec(
            (proptest::option::of("[^\r\n]{1,12}"), "[^\r]{0,40}"),
            0..8,
        )
    ) {
        let mut wire = Vec::new();
        for (event, data) in &events {
            write_event(&mut wire, event.as_deref(), data);
        }
        let expected: Vec<SseItem> = events
            .into_iter()
            .map(|(event, data)| SseItem::Event(SseEvent { event, data, id: None, retry: None }))
            .collect();
        prop_assert_eq!(decode(&SseDecoder::new(), &[&wire]), expected);
    }

    #[test]
    fn write_to_round_trips_id_and_retry(
        events in proptest::collection::vec(
            (
                proptest::option::of("[^\r\n]{1,12}"),
                "[^\r]{0,24}",
                proptest::option::of("[^\r\n\0]{0,8}"),
                proptest::option::of(any::<u64>()),
            ),
            0..6,
        )
    ) {
        let events: Vec<SseEvent> = events
            .into_iter()
            .map(|(event, data, id, retry)| SseEvent { event, data, id, retry })
            .collect();
        let mut wire = Vec::new();
        for event in &events {
            event.write_to(&mut wire);
        }
        let expected: Vec<SseItem> = events.into_iter().map(SseItem::Event).collect();
        prop_assert_eq!(decode(&SseDecoder::new(), &[&wire]), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_splits_agree(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        at in any::<prop::sample::Index>(),
        max in 1usize..64,
    ) {
        let decoder = SseDecoder::with_max_bytes(max).emit_comments(true);
        let whole = decode(&decoder, &[&input]);
        let (head, tail) = input.split_at(at.index(input.len() + 1));
        prop_assert_eq!(&decode(&decoder, &[head, tail]), &whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&decode(&decoder, &bytes), &whole);
    }

    #[test]
    fn sse_like_bytes_agree_across_splits(
        input in sse_ish_bytes(),
        max in prop_oneof![Just(8usize), Just(32), Just(1 << 20)],
    ) {
        let decoder = SseDecoder::with_max_bytes(max).emit_comments(true);
        let whole = decode(&decoder, &[&input]);
        for at in 0..=input.len() {
            let (head, tail) = input.split_at(at);
            prop_assert_eq!(&decode(&decoder, &[head, tail]), &whole, "split at {}", at);
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&decode(&decoder, &bytes), &whole);
    }
}
