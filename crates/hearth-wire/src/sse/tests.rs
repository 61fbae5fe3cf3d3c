use super::*;

fn decode_chunks(decoder: &SseDecoder, chunks: &[&[u8]]) -> Vec<SseItem> {
    let mut decoder = decoder.clone();
    let mut items = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk, &mut items);
    }
    decoder.finish(&mut items);
    items
}

/// The single place that exercises the decoder; every split of `input` must agree.
#[track_caller]
fn check_items(decoder: SseDecoder, input: &[u8], expected: &[SseItem]) {
    assert_eq!(decode_chunks(&decoder, &[input]), expected, "whole");
    for at in 0..=input.len() {
        let (head, tail) = input.split_at(at);
        assert_eq!(decode_chunks(&decoder, &[head, tail]), expected, "split at {at}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_chunks(&decoder, &bytes), expected, "byte by byte");
}

/// Checks a stream whose items are all unnamed events with the given data.
#[track_caller]
fn check(input: &[u8], expected: &[&str]) {
    let expected: Vec<SseItem> =
        expected.iter().map(|data| SseItem::Event(SseEvent::data(*data))).collect();
    check_items(SseDecoder::new(), input, &expected);
}

fn named(event: &str, data: &str) -> SseItem {
    SseItem::Event(SseEvent { event: Some(event.to_owned()), ..SseEvent::data(data) })
}

fn unnamed(data: &str) -> SseItem {
    SseItem::Event(SseEvent::data(data))
}

#[test]
fn lf_line_endings() {
    check(b"data: x\n\ndata: y\n\n", &["x", "y"]);
}

#[test]
fn crlf_line_endings() {
    check(b"data: x\r\n\r\ndata: y\r\n\r\n", &["x", "y"]);
}

#[test]
fn cr_line_endings() {
    check(b"data: x\r\rdata: y\r\r", &["x", "y"]);
}

#[test]
fn mixed_line_endings() {
    check(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r\n", &["a\nb\nc", "d"]);
}

#[test]
fn crlf_split_across_chunks_is_one_line_end() {
    // `check` already splits everywhere; this names the case that matters.
    let items = decode_chunks(&SseDecoder::new(), &[b"data: x\r", b"\ndata: y\r", b"\n\r", b"\n"]);
    assert_eq!(items, [unnamed("x\ny")]);
}

#[test]
fn leading_bom_is_ignored() {
    check("\u{FEFF}data: x\n\n".as_bytes(), &["x"]);
}

#[test]
fn bom_after_the_start_is_content() {
    // A second BOM starts a line whose field name is "\u{FEFF}data", which is unknown.
    check("\u{FEFF}\u{FEFF}data: x\n\ndata: y\n\n".as_bytes(), &["y"]);
}

#[test]
fn comments_are_ignored_and_counted() {
    let input = b": keepalive 1024/8000\n\n:ping\ndata: x\n: inside\n\n";
    check(input, &["x"]);
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    decoder.feed(input, &mut items);
    assert_eq!(decoder.comments_seen(), 3);
}

#[test]
fn comments_can_be_emitted() {
    let decoder = SseDecoder::new().emit_comments(true);
    check_items(
        decoder,
        b": keepalive 1024/8000\n:ping\ndata: x\n\n",
        &[
            SseItem::Comment("keepalive 1024/8000".to_owned()),
            SseItem::Comment("ping".to_owned()),
            unnamed("x"),
        ],
    );
}

#[test]
fn event_names() {
    let input = b"event: response.output_text.delta\ndata: {\"delta\":\"Hel\"}\n\n\
        event: ping\ndata: {\"type\":\"ping\"}\n\ndata: plain\n\n";
    check_items(
        SseDecoder::new(),
        input,
        &[
            named("response.output_text.delta", "{\"delta\":\"Hel\"}"),
            named("ping", "{\"type\":\"ping\"}"),
            unnamed("plain"),
        ],
    );
}

#[test]
fn empty_event_name_is_none() {
    check(b"event:\ndata: x\n\n", &["x"]);
}

#[test]
fn event_name_does_not_leak_into_the_next_event() {
    check_items(
        SseDecoder::new(),
        b"event: a\n\ndata: x\n\nevent: b\ndata: y\n\n",
        &[unnamed("x"), named("b", "y")],
    );
}

#[test]
fn multi_line_data_is_joined_with_lf() {
    check(b"data: a\ndata: b\ndata:\ndata: c\n\n", &["a\nb\n\nc"]);
}

#[test]
fn one_space_after_the_colon_is_stripped() {
    check(b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n", &["x", "x", " x", "\tx"]);
}

#[test]
fn field_without_colon_has_empty_value() {
    check(b"data\n\ndata\ndata\n\n", &["", "\n"]);
}

#[test]
fn event_without_data_is_not_dispatched() {
    check(b"event: ping\n\nid: 7\n\nretry: 10\n\n", &[]);
}

#[test]
fn unknown_fields_are_ignored() {
    check(b"foo: bar\ndata: x\nDATA: y\nData: z\n\n", &["x"]);
}

#[test]
fn id_and_retry_are_reported() {
    let input = b"id: 1\nretry: 2500\ndata: x\n\ndata: y\n\nid: a\0b\nretry: 1x\ndata: z\n\n";
    check_items(
        SseDecoder::new(),
        input,
        &[
            SseItem::Event(SseEvent {
                id: Some("1".to_owned()),
                retry: Some(2500),
                ..SseEvent::data("x")
            }),
            unnamed("y"),
            unnamed("z"),
        ],
    );
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    decoder.feed(input, &mut items);
    assert_eq!(decoder.last_event_id(), "1");
    assert_eq!(decoder.reconnection_time(), Some(2500));
}

#[test]
fn empty_id_resets_the_last_event_id() {
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    decoder.feed(b"id: 1\ndata: x\n\nid\ndata: y\n\n", &mut items);
    assert_eq!(decoder.last_event_id(), "");
    assert_eq!(items.len(), 2);
}

#[test]
fn llama_cpp_error_field_becomes_an_error_event() {
    let input = b"data: {\"choices\":[]}\n\nerror: {\"code\":400,\"message\":\"the request exceeds the available context size\",\"type\":\"invalid_request_error\"}\n\n";
    let items = decode_chunks(&SseDecoder::new(), &[input]);
    check_items(
        SseDecoder::new(),
        input,
        &[
            unnamed("{\"choices\":[]}"),
            named(
                "error",
                "{\"code\":400,\"message\":\"the request exceeds the available context size\",\"type\":\"invalid_request_error\"}",
            ),
        ],
    );
    assert!(matches!(&items[1], SseItem::Event(event) if event.is_error()));
}

#[test]
fn last_event_without_trailing_blank_line_is_flushed() {
    check(b"data: x\n\ndata: [DONE]\n", &["x", "[DONE]"]);
    check(b"data: x\n\ndata: [DONE]", &["x", "[DONE]"]);
    check(b"data: x\r\n\r\ndata: [DONE]\r", &["x", "[DONE]"]);
}

#[test]
fn stream_without_done_is_fine() {
    check(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", &["{\"a\":1}", "{\"b\":2}"]);
}

#[test]
fn done_helper() {
    let items = decode_chunks(&SseDecoder::new(), &[b"data: [DONE]\n\ndata: [DONE] \n\n"]);
    let done: Vec<bool> =
        items.iter().map(|item| matches!(item, SseItem::Event(event) if event.is_done())).collect();
    assert_eq!(done, [true, false]);
}

#[test]
fn empty_input_yields_nothing() {
    check(b"", &[]);
    check(b"\n\n\r\n", &[]);
}

#[test]
fn invalid_utf8_is_replaced() {
    check(b"data: a\xFFb\xE2\x82\n\n", &["a\u{FFFD}b\u{FFFD}"]);
}

#[test]
fn utf8_character_split_across_chunks_is_kept() {
    check("data: héllo → 世界 🎉\n\n".as_bytes(), &["héllo → 世界 🎉"]);
}

#[test]
fn oversized_line_yields_an_error_and_drops_its_event() {
    let too_long = DecodeError::LineTooLong { limit: 16 };
    let input = b"data: ok\n\ndata: 0123456789abcdef\ndata: tail\n\ndata: next\n\n";
    check_items(
        SseDecoder::with_max_bytes(16),
        input,
        &[unnamed("ok"), SseItem::Error(too_long.clone()), unnamed("next")],
    );
    // Unterminated at the end of the stream.
    check_items(
        SseDecoder::with_max_bytes(16),
        b"data: ok\n\ndata: 0123456789abcdef",
        &[unnamed("ok"), SseItem::Error(too_long)],
    );
}

#[test]
fn oversized_event_yields_an_error_and_drops_the_event() {
    let input = b"data: 0123456789\ndata: 0123456789\n\ndata: next\n\n";
    check_items(
        SseDecoder::with_max_bytes(16),
        input,
        &[SseItem::Error(DecodeError::EventTooLarge { limit: 16 }), unnamed("next")],
    );
}

#[test]
fn arbitrary_garbage_does_not_panic() {
    let input: Vec<u8> = (0..=255u8).cycle().take(2048).collect();
    let items = decode_chunks(&SseDecoder::with_max_bytes(64), &[&input]);
    let split = decode_chunks(&SseDecoder::with_max_bytes(64), &[&input[..1000], &input[1000..]]);
    assert_eq!(items, split);
}

#[test]
fn finish_resets_for_a_new_stream() {
    let mut decoder = SseDecoder::new();
    let mut items = Vec::new();
    decoder.feed(b"id: 1\nevent: a\ndata: x", &mut items);
    decoder.finish(&mut items);
    decoder.feed("\u{FEFF}data: y\n\n".as_bytes(), &mut items);
    decoder.finish(&mut items);
    assert_eq!(
        items,
        [
            SseItem::Event(SseEvent {
                event: Some("a".to_owned()),
                id: Some("1".to_owned()),
                ..SseEvent::data("x")
            }),
            unnamed("y"),
        ]
    );
    assert_eq!(decoder.last_event_id(), "");
}

#[test]
fn write_event_frames_multi_line_data() {
    let mut buf = Vec::new();
    write_event(&mut buf, Some("message_start"), "{\"a\":1}");
    write_event(&mut buf, None, "line 1\nline 2\r\n\rlast");
    write_event(&mut buf, Some("bad\nname"), "");
    write_comment(&mut buf, "keep-alive");
    write_done(&mut buf);
    let text = String::from_utf8(buf.clone()).unwrap();
    assert_eq!(
        text,
        "event: message_start\ndata: {\"a\":1}\n\n\
         data: line 1\ndata: line 2\ndata:\ndata: last\n\n\
         event: badname\ndata:\n\n\
         : keep-alive\n\
         data: [DONE]\n\n"
    );
    let items = decode_chunks(&SseDecoder::new(), &[&buf]);
    assert_eq!(
        items,
        [
            named("message_start", "{\"a\":1}"),
            unnamed("line 1\nline 2\n\nlast"),
            named("badname", ""),
            unnamed("[DONE]"),
        ]
    );
}

#[test]
fn write_to_round_trips_every_field() {
    let event = SseEvent {
        event: Some("update".to_owned()),
        data: " leading space\n\ntrailing\n".to_owned(),
        id: Some("42".to_owned()),
        retry: Some(3000),
    };
    let mut buf = Vec::new();
    event.write_to(&mut buf);
    let items = decode_chunks(&SseDecoder::new(), &[&buf]);
    assert_eq!(items, [SseItem::Event(event)]);
}
