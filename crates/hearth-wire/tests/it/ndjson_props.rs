//! Property tests: chunking never changes what the NDJSON decoder produces.

use hearth_wire::ndjson::{NdjsonDecoder, NdjsonItem};
use proptest::prelude::*;

fn decode(decoder: &NdjsonDecoder, chunks: &[&[u8]]) -> Vec<NdjsonItem> {
    let mut decoder = decoder.clone();
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut items);
    }
    decoder.finish(&mut items);
    items
}

proptest! {
    #[test]
    fn lines_survive_any_split(
        lines in proptest::collection::vec(("\\{[^\r\n]{0,24}\\}", any::<bool>()), 0..8),
        trailing_newline in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        for (idx, (line, crlf)) in lines.iter().enumerate() {
            wire.extend_from_slice(line.as_bytes());
            if idx + 1 < lines.len() || trailing_newline {
                wire.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            }
        }
        let expected: Vec<NdjsonItem> =
            lines.into_iter().map(|(line, _)| NdjsonItem::Line(line)).collect();
        let decoder = NdjsonDecoder::new();
        for at in 0..=wire.len() {
            let (head, tail) = wire.split_at(at);
            prop_assert_eq!(&decode(&decoder, &[head, tail]), &expected, "split at {}", at);
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        prop_assert_eq!(&decode(&decoder, &bytes), &expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_splits_agree(
        input in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), any::<u8>()],
            0..512,
        ),
        at in any::<prop::sample::Index>(),
        max in 1usize..64,
    ) {
        let decoder = NdjsonDecoder::with_max_line_bytes(max);
        let whole = decode(&decoder, &[&input]);
        let (head, tail) = input.split_at(at.index(input.len() + 1));
        prop_assert_eq!(&decode(&decoder, &[head, tail]), &whole);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        prop_assert_eq!(&decode(&decoder, &bytes), &whole);
    }
}
