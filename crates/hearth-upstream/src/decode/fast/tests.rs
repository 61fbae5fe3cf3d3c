//! The typed path against the `Value` path: same events for every chunk.

use hearth_config::Api;
use hearth_wire::sse::SseEvent;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::*;

// ---- running both paths --------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Chunk {
    Sse { event: Option<String>, data: String },
    Line(String),
}

#[derive(Debug, Clone)]
struct Stream {
    api: Api,
    reasoning_model: bool,
    chunks: Vec<Chunk>,
}

fn decode(stream: &Stream, fast_path: bool) -> Vec<Event> {
    let mut decoder = Decoder::new(stream.api, stream.reasoning_model, 40);
    decoder.fast_path = fast_path;
    let mut out = Vec::new();
    for chunk in &stream.chunks {
        match chunk {
            Chunk::Sse { event, data } => {
                let event =
                    SseEvent { event: event.clone(), data: data.clone(), ..SseEvent::default() };
                decoder.sse(&event, &mut out);
            }
            Chunk::Line(line) => decoder.ndjson(line, &mut out),
        }
    }
    decoder.finish(&mut out);
    out
}

/// Whether the typed path takes the chunk (it decides before it changes anything, so a fresh
/// decoder tells).
fn takes(api: Api, chunk: &Chunk) -> bool {
    let mut decoder = Decoder::new(api, false, 0);
    let mut out = Vec::new();
    match chunk {
        Chunk::Sse { event, data } => {
            let event =
                SseEvent { event: event.clone(), data: data.clone(), ..SseEvent::default() };
            decoder.sse_fast(&event, &mut out)
        }
        Chunk::Line(line) => decoder.ollama_fast(line, &mut out),
    }
}

fn sse(data: &str) -> Chunk {
    Chunk::Sse { event: None, data: data.to_owned() }
}

// ---- JSON text, well-formed and not ----------------------------------------------------------

/// A JSON string literal: text with think tags, every escape form, and now and then what
/// serde_json refuses (unpaired surrogates, a bad escape, a raw control character).
fn json_string() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        3 => select(vec![
            "tok", "42", " ", "a", "é", "日本", "😀", "<think>", "</think>", "<thinking>",
            "</thinking>", "<thi", "nk>", "</", "<", "  ",
        ]),
        1 => select(vec![
            "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\b", "\\f", "\\r", "\\u00e9", "\\u00E9",
            "\\u003cthink\\u003e", "\\u003c/think\\u003e", "\\ud83d\\ude00", "\\uD83D\\uDE00",
            "\\u0000", "\\u2028", "\\u0020",
        ]),
    ];
    let refused = select(vec![
        "\\ud800",
        "\\udc00",
        "\\ud800\\u0041",
        "\\ud800x",
        "\\ud800\\n",
        "\\udbff\\udbff",
        "\\ud800\\ud800\\udc00",
        "\\x",
        "\\u12",
        "\n",
        "\u{1}",
    ]);
    prop_oneof![
        100 => vec(piece.clone(), 0..6).prop_map(|pieces| format!("\"{}\"", pieces.concat())),
        1 => (vec(piece.clone(), 0..3), refused, vec(piece, 0..3))
            .prop_map(|(a, bad, b)| format!("\"{}{bad}{}\"", a.concat(), b.concat())),
    ]
    .boxed()
}

fn json_scalar() -> BoxedStrategy<String> {
    prop_oneof![
        12 => select(vec![
            "null", "true", "false", "0", "5", "-1", "-0", "1.5", "5.0", "1e3", "1E+2", "2e-5",
            "18446744073709551615", "18446744073709551616",
        ])
        .prop_map(str::to_owned),
        8 => json_string(),
    ]
    .boxed()
}

/// What serde_json refuses, or `Value` reads specially, where nothing is read: a number out of
/// range, nesting too deep (or just not), the key of `raw_value`.
fn json_hostile() -> BoxedStrategy<String> {
    prop_oneof![
        Just("1e400".to_owned()),
        Just("-1e400".to_owned()),
        Just("9".repeat(310)),
        (124usize..129).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        json_scalar().prop_map(|v| format!("{{\"{RAW_VALUE_TOKEN}\":{v}}}")),
        Just(format!("{{\"{RAW_VALUE_TOKEN}\":\"[1]\"}}")),
    ]
    .boxed()
}

/// Any JSON value, with a few keys that are fields somewhere; rarely a hostile one.
fn json_any() -> BoxedStrategy<String> {
    let key = prop_oneof![
        6 => select(vec!["\"a\"", "\"id\"", "\"content\"", "\"text\"", "\"type\""])
            .prop_map(str::to_owned),
        1 => json_string(),
    ];
    let leaf = prop_oneof![100 => json_scalar(), 1 => json_hostile()];
    leaf.prop_recursive(3, 12, 3, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..3).prop_map(|items| format!("[{}]", items.join(","))),
            vec((key.clone(), inner), 0..3).prop_map(|fields| join_object(&fields)),
        ]
    })
    .boxed()
}

fn join_object(fields: &[(String, String)]) -> String {
    let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", fields.join(","))
}

/// An object of `fields` (each there or not, in any order), some unknown ones, now and then a
/// repeated or escaped known key; or, rarely, any other value.
fn object(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    object_with(vec![], fields)
}

/// [`object`] with `required` fields always there.
fn object_with(
    required: Vec<(&'static str, BoxedStrategy<String>)>,
    optional: Vec<(&'static str, BoxedStrategy<String>)>,
) -> BoxedStrategy<String> {
    let keys: Vec<&'static str> = required.iter().chain(&optional).map(|(k, _)| *k).collect();
    let field = |key: &'static str, value: BoxedStrategy<String>| {
        value.prop_map(move |v| (format!("\"{key}\""), v))
    };
    let required: Vec<_> =
        required.into_iter().map(|(k, v)| field(k, v).prop_map(Some).boxed()).collect();
    let optional: Vec<_> = optional
        .into_iter()
        .map(|(k, v)| prop::option::weighted(0.6, field(k, v)).boxed())
        .collect();
    let extra_key = prop_oneof![
        40 => select(vec!["id", "object", "model", "index", "logprobs", "role", "created", "x"])
            .prop_map(|k| format!("\"{k}\"")),
        1 => select(keys.clone()).prop_map(|k| format!("\"{k}\"")),
        1 => select(keys).prop_map(|k| {
            let mut chars = k.chars();
            let first = chars.next().map_or(0, u32::from);
            format!("\"\\u{first:04x}{}\"", chars.as_str())
        }),
    ];
    let extra = vec((extra_key, json_any()), 0..3);
    let shaped = (required, optional, extra)
        .prop_flat_map(|(required, optional, extra)| {
            let fields: Vec<(String, String)> =
                required.into_iter().chain(optional).flatten().chain(extra).collect();
            Just(fields).prop_shuffle()
        })
        .prop_map(|fields| join_object(&fields));
    prop_oneof![40 => shaped, 1 => json_any()].boxed()
}

fn array(item: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        30 => vec(item, 0..3).prop_map(|items| format!("[{}]", items.join(","))),
        1 => json_any(),
    ]
    .boxed()
}

/// A string field: mostly a string, sometimes `null`, another type or a hostile value.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        32 => json_string(),
        4 => Just("null".to_owned()),
        2 => json_any(),
        1 => json_hostile(),
    ]
    .boxed()
}

/// A token count: mostly a small integer, sometimes `null`, another scalar or a hostile value.
fn count() -> BoxedStrategy<String> {
    prop_oneof![
        32 => (0u64..100_000).prop_map(|n| n.to_string()),
        2 => Just("null".to_owned()),
        2 => json_scalar(),
        1 => json_hostile(),
    ]
    .boxed()
}

/// A tag field: mostly one of `values`.
fn tag(values: &[&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        20 => select(values.to_vec()).prop_map(|v| format!("\"{v}\"")),
        1 => text(),
    ]
    .boxed()
}

fn in_band_error() -> BoxedStrategy<String> {
    prop_oneof![
        8 => Just("null".to_owned()),
        1 => object(vec![("message", text()), ("code", count()), ("type", tag(&["server_error"]))]),
        1 => json_any(),
    ]
    .boxed()
}

/// A chunk that is no JSON object, or no JSON at all.
fn odd_data() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec!["", "  ", "{", "not json", "[DONE]", "{}", "[]", "{\"a\":1} x"])
            .prop_map(str::to_owned),
        json_any(),
    ]
    .boxed()
}

/// A log probability: mostly a negative float, sometimes another scalar.
fn logprob() -> BoxedStrategy<String> {
    prop_oneof![
        8 => (-2000i32..=0).prop_map(|n| format!("{:?}", f64::from(n) / 100.0)),
        1 => Just("-9999.0".to_owned()),
        1 => json_scalar(),
    ]
    .boxed()
}

/// A token's `bytes`: mostly a list of bytes (now and then one over 255), sometimes `null` or
/// anything else.
fn token_bytes() -> BoxedStrategy<String> {
    prop_oneof![
        6 => vec(0u16..300, 0..4).prop_map(|b| {
            let b: Vec<String> = b.iter().map(u16::to_string).collect();
            format!("[{}]", b.join(","))
        }),
        1 => Just("null".to_owned()),
        1 => json_any(),
    ]
    .boxed()
}

/// One entry of a logprobs list (chat `logprobs.content[]`, Responses `logprobs[]`).
fn token_logprob() -> BoxedStrategy<String> {
    let top = object(vec![("token", text()), ("logprob", logprob()), ("bytes", token_bytes())]);
    object(vec![
        ("id", count()),
        ("token", text()),
        ("logprob", logprob()),
        ("bytes", token_bytes()),
        ("top_logprobs", array(top)),
    ])
}

/// A chat choice's `logprobs`: mostly `null` (as when no caller asked), else `{content: [...],
/// refusal: null}` (which the typed path leaves to `Value`).
fn chat_logprobs() -> BoxedStrategy<String> {
    prop_oneof![
        8 => Just("null".to_owned()),
        1 => object(vec![
            ("content", prop_oneof![4 => array(token_logprob()), 1 => Just("null".to_owned())].boxed()),
            ("refusal", Just("null".to_owned()).boxed()),
        ]),
    ]
    .boxed()
}

// ---- chunks of each API ----------------------------------------------------------------------

fn chat_chunk() -> BoxedStrategy<String> {
    let function = object(vec![("name", text()), ("arguments", text())]);
    let tool_call = object(vec![
        ("index", count()),
        ("id", text()),
        ("type", tag(&["function"])),
        ("function", function),
    ]);
    let detail = object(vec![
        ("type", tag(&["reasoning.text", "reasoning.summary"])),
        ("text", text()),
        ("summary", text()),
    ]);
    let delta = object(vec![
        ("role", tag(&["assistant"])),
        ("content", text()),
        ("reasoning_content", text()),
        ("reasoning", text()),
        ("thinking", text()),
        ("reasoning_details", array(detail)),
        ("tool_calls", array(tool_call)),
    ]);
    let finish = tag(&[
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "error",
        "abort",
        "eos",
        "end_turn",
        "weird",
    ]);
    let choice = object(vec![
        ("index", count()),
        ("delta", prop_oneof![8 => delta, 1 => Just("null".to_owned())].boxed()),
        ("finish_reason", prop_oneof![2 => finish, 3 => Just("null".to_owned())].boxed()),
        ("logprobs", chat_logprobs()),
    ]);
    let usage = object(vec![
        ("prompt_tokens", count()),
        ("completion_tokens", count()),
        ("total_tokens", count()),
        ("prompt_tokens_details", object(vec![("cached_tokens", count())])),
        ("completion_tokens_details", object(vec![("reasoning_tokens", count())])),
    ]);
    let timings = object(vec![
        ("prompt_n", count()),
        ("cache_n", count()),
        ("predicted_n", count()),
        ("prompt_ms", Just("12.5".to_owned()).boxed()),
    ]);
    object(vec![
        ("choices", array(choice)),
        ("usage", prop_oneof![3 => Just("null".to_owned()), 2 => usage].boxed()),
        ("timings", timings),
        ("error", in_band_error()),
    ])
}

/// A whole chat body: `chat_chunk`'s shapes under `message`, with arguments that are now and
/// then an object or `null` (the `Value` path sends those as JSON text or nothing).
fn chat_body() -> BoxedStrategy<String> {
    let arguments = prop_oneof![
        4 => text(),
        1 => Just("{\"q\":1}".to_owned()),
        1 => Just("null".to_owned()),
        1 => json_scalar(),
    ];
    let function = object(vec![("name", text()), ("arguments", arguments.boxed())]);
    let tool_call =
        object(vec![("id", text()), ("type", tag(&["function"])), ("function", function)]);
    let message = object(vec![
        ("role", tag(&["assistant"])),
        ("content", text()),
        ("reasoning_content", text()),
        ("reasoning", text()),
        ("reasoning_details", array(object(vec![("text", text()), ("summary", text())]))),
        ("tool_calls", array(tool_call)),
    ]);
    let choice = object(vec![
        ("index", count()),
        ("message", prop_oneof![8 => message, 1 => Just("null".to_owned())].boxed()),
        ("finish_reason", tag(&["stop", "length", "tool_calls", "content_filter", "weird"])),
        ("logprobs", chat_logprobs()),
    ]);
    let usage = object(vec![
        ("prompt_tokens", count()),
        ("completion_tokens", count()),
        ("prompt_tokens_details", object(vec![("cached_tokens", count())])),
    ]);
    prop_oneof![
        12 => object(vec![
            ("choices", array(choice)),
            ("usage", usage),
            ("timings", object(vec![("prompt_n", count()), ("predicted_n", count())])),
            ("error", in_band_error()),
        ]),
        1 => odd_data(),
    ]
    .boxed()
}

fn decode_body(body: &str, reasoning_model: bool, fast_path: bool) -> Vec<Event> {
    let mut decoder = Decoder::new(Api::OpenaiCompletions, reasoning_model, 40).for_whole_body();
    decoder.fast_path = fast_path;
    let mut out = Vec::new();
    match decoder.body_bytes(body.as_bytes(), &mut out) {
        Ok(()) => decoder.finish(&mut out),
        Err(_) => out.push(Event::Error(crate::event::UpstreamError::new(
            crate::event::ErrorClass::ServerError,
            "not JSON",
        ))),
    }
    out
}

/// Responses event types, the deltas the typed path takes listed twice.
const RESPONSES_KINDS: [&str; 13] = [
    "response.output_text.delta",
    "response.output_text.delta",
    "response.refusal.delta",
    "response.refusal.delta",
    "response.reasoning_text.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning.delta",
    "response.reasoning.delta",
    "response.created",
    "response.completed",
    "response.function_call_arguments.delta",
];

fn responses_event() -> BoxedStrategy<Chunk> {
    let data = object_with(
        vec![("type", tag(&RESPONSES_KINDS))],
        vec![
            ("delta", text()),
            ("item_id", text()),
            ("output_index", count()),
            ("sequence_number", count()),
            (
                "logprobs",
                prop_oneof![8 => Just("[]".to_owned()), 1 => array(token_logprob())].boxed(),
            ),
        ],
    );
    (prop::option::of(select(RESPONSES_KINDS.to_vec())), data)
        .prop_map(|(event, data)| Chunk::Sse { event: event.map(str::to_owned), data })
        .boxed()
}

fn anthropic_event() -> BoxedStrategy<String> {
    let delta = object_with(
        vec![(
            "type",
            tag(&[
                "text_delta",
                "text_delta",
                "thinking_delta",
                "signature_delta",
                "input_json_delta",
            ]),
        )],
        vec![
            ("text", text()),
            ("thinking", text()),
            ("signature", text()),
            ("partial_json", text()),
        ],
    );
    prop_oneof![
        12 => object_with(
            vec![
                (
                    "type",
                    tag(&["content_block_delta", "content_block_delta", "message_delta", "ping"]),
                ),
                ("delta", delta),
            ],
            vec![("index", count())],
        ),
        1 => Just("{\"type\":\"message_stop\"}".to_owned()),
    ]
    .boxed()
}

fn ollama_line() -> BoxedStrategy<String> {
    let message = object(vec![
        ("role", tag(&["assistant"])),
        ("content", text()),
        ("thinking", text()),
        ("tool_calls", prop_oneof![3 => Just("null".to_owned()), 1 => json_any()].boxed()),
    ]);
    object(vec![
        ("model", text()),
        ("message", message),
        (
            "done",
            prop_oneof![
                12 => Just("false".to_owned()),
                1 => Just("true".to_owned()),
                1 => json_scalar(),
            ]
            .boxed(),
        ),
        ("done_reason", tag(&["stop", "length"])),
        ("prompt_eval_count", count()),
        ("eval_count", count()),
        ("error", in_band_error()),
    ])
}

fn chunk(api: Api, ndjson: bool) -> BoxedStrategy<Chunk> {
    let shaped = match api {
        Api::OpenaiCompletions => chat_chunk().prop_map(|d| sse(&d)).boxed(),
        Api::OpenaiResponses => responses_event(),
        Api::AnthropicMessages => anthropic_event().prop_map(|d| sse(&d)).boxed(),
        Api::Ollama if ndjson => ollama_line().prop_map(Chunk::Line).boxed(),
        Api::Ollama => ollama_line().prop_map(|d| sse(&d)).boxed(),
    };
    let odd = if ndjson {
        odd_data().prop_map(Chunk::Line).boxed()
    } else {
        odd_data().prop_map(|d| sse(&d)).boxed()
    };
    prop_oneof![20 => shaped, 1 => odd].boxed()
}

fn stream() -> impl Strategy<Value = Stream> {
    let api = select(vec![
        Api::OpenaiCompletions,
        Api::OpenaiCompletions,
        Api::OpenaiCompletions,
        Api::OpenaiResponses,
        Api::AnthropicMessages,
        Api::Ollama,
    ]);
    (api, any::<bool>(), any::<bool>()).prop_flat_map(|(api, reasoning_model, ndjson)| {
        let ndjson = ndjson && api == Api::Ollama;
        vec(chunk(api, ndjson), 1..6).prop_map(move |chunks| Stream {
            api,
            reasoning_model,
            chunks,
        })
    })
}

// ---- the properties --------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn typed_path_decodes_as_value_path(stream in stream()) {
        prop_assert_eq!(decode(&stream, true), decode(&stream, false));
    }

    #[test]
    fn typed_body_path_decodes_as_value_path(body in chat_body(), reasoning_model: bool) {
        prop_assert_eq!(decode_body(&body, reasoning_model, true), decode_body(&body, reasoning_model, false));
    }
}

/// The body generator feeds the typed path plenty, and a real llama-server body takes it.
#[test]
fn chat_bodies_take_the_typed_path() {
    let mut runner = TestRunner::deterministic();
    let strategy = chat_body();
    let (mut taken, mut total) = (0, 0);
    for _ in 0..2000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let mut decoder = Decoder::new(Api::OpenaiCompletions, false, 0);
        total += 1;
        taken += usize::from(decoder.chat_body_fast(&tree.current(), &mut Vec::new()));
    }
    assert!(taken * 100 >= total * 50, "typed path took {taken} of {total} bodies");
    let real = include_str!("../../../../../scripts/testbed/captures/chat.json");
    let mut decoder = Decoder::new(Api::OpenaiCompletions, false, 0);
    assert!(decoder.chat_body_fast(real, &mut Vec::new()), "{real}");
}

/// The generator feeds the typed path plenty, so the property above is not won by fallback.
#[test]
fn generated_chunks_mostly_take_the_typed_path() {
    let mut runner = TestRunner::deterministic();
    let strategy = stream();
    let (mut taken, mut total) = (0, 0);
    for _ in 0..2000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let stream = tree.current();
        for chunk in &stream.chunks {
            total += 1;
            taken += usize::from(takes(stream.api, chunk));
        }
    }
    assert!(taken * 100 >= total * 50, "typed path took {taken} of {total} chunks");
}

// ---- examples --------------------------------------------------------------------------------

#[test]
fn real_chunks_take_the_typed_path() {
    let chat = [
        // OpenAI, llama.cpp, vLLM, OpenRouter, LM Studio.
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tok42 "},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"line\nnext \"quoted\" \u00e9"}}],"created":1,"id":"c","model":"m","system_fingerprint":"b1","object":"chat.completion.chunk"}"#,
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Let me think"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"","reasoning":"hm","reasoning_details":[{"type":"reasoning.text","text":"hm","format":"unknown","index":0}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Paris\"}"}}]}}]}"#,
        r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"usage":{"completion_tokens":10,"prompt_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":2}},"timings":{"cache_n":2,"prompt_n":3,"prompt_ms":1.5,"prompt_per_token_ms":0.5,"prompt_per_second":2000.0,"predicted_n":10,"predicted_ms":20.25,"predicted_per_second":493.8}}"#,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"completion_tokens_details":{"reasoning_tokens":3}}}"#,
    ];
    for data in chat {
        assert!(takes(Api::OpenaiCompletions, &sse(data)), "{data}");
    }
    let responses = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[],"sequence_number":4}"#;
    assert!(takes(Api::OpenaiResponses, &sse(responses)));
    let anthropic =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#;
    assert!(takes(Api::AnthropicMessages, &sse(anthropic)));
    let ollama = r#"{"model":"qwen3","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"\u003cb\u003e","thinking":"x"},"done":false}"#;
    assert!(takes(Api::Ollama, &Chunk::Line(ollama.to_owned())));
}

#[test]
fn other_chunks_are_left_to_value() {
    let chat = [
        r#"{"error":{"message":"boom","type":"server_error"}}"#,
        r#"{"choices":[{"delta":{"content":{"text":"a"}}}]}"#,
        r#"{"choices":[{"delta":{"content":1.5}}]}"#,
        r#"{"choices":[{"delta":{"con\u0074ent":"a"}}]}"#,
        r#"{"choices":[{"delta":["content"]}]}"#,
        r#"{"choices":[{"delta":{"content":"\ud800"}}]}"#,
        r#"{"id":1e400,"choices":[]}"#,
        r#"{"$serde_json::private::RawValue":"{}"}"#,
    ];
    for data in chat {
        assert!(!takes(Api::OpenaiCompletions, &sse(data)), "{data}");
    }
    // A repeated key: the last wins, as in `Value`.
    let repeated =
        sse(r#"{"choices":[{"delta":{"content":"a"}}],"choices":[{"delta":{"content":"b"}}]}"#);
    let stream =
        Stream { api: Api::OpenaiCompletions, reasoning_model: false, chunks: vec![repeated] };
    assert_eq!(decode(&stream, true)[0], Event::TextDelta("b".to_owned()));
    assert!(!takes(
        Api::Ollama,
        &Chunk::Line(r#"{"message":{"content":""},"done":true}"#.to_owned())
    ));
}

#[test]
fn unescapes_as_serde_json_does() {
    let literals = [
        r#""plain""#,
        r#""a\nb\tc\r\"q\" \\ \/ \b\f""#,
        r#""\u00e9\u00E9\u2028\u0000""#,
        r#""\ud83d\ude00 \uD83D\uDE00""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud800\u0041""#,
        r#""\ud800\n""#,
        r#""\ud800\ud800\udc00""#,
    ];
    for literal in literals {
        let expected = serde_json::from_str::<String>(literal).ok();
        let raw = Raw(literal);
        let got = str_of(Some(raw)).and_then(|s| {
            let mut text = String::new();
            (!s.escaped || unescape(s.inner, |p| text.push_str(p)))
                .then(|| if s.escaped { text } else { s.inner.to_owned() })
        });
        assert_eq!(got, expected, "{literal}");
    }
}

/// Token logprobs (OpenAI chat chunks and bodies, Responses deltas) go the `Value` way, which
/// sends them just before the text they belong to; Responses' usual empty list stays typed.
#[test]
fn logprobs_go_the_value_way_before_their_text() {
    let chunk = r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":" last"},"logprobs":{"content":[{"id":650,"token":" last","bytes":[32,108,97,115,116],"logprob":-0.55,"top_logprobs":[{"id":650,"token":" last","bytes":[32,108,97,115,116],"logprob":-0.55},{"id":733,"token":" did","bytes":[32,100,105,100],"logprob":-3.04}]}]}}],"object":"chat.completion.chunk"}"#;
    assert!(!takes(Api::OpenaiCompletions, &sse(chunk)));
    let stream = Stream {
        api: Api::OpenaiCompletions,
        reasoning_model: false,
        chunks: vec![
            sse(chunk),
            sse(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#),
        ],
    };
    let events = decode(&stream, true);
    let expected = crate::event::TokenLogprob {
        token: " last".to_owned(),
        logprob: -0.55,
        bytes: Some(b" last".to_vec()),
        top: vec![
            crate::event::TopLogprob {
                token: " last".to_owned(),
                logprob: -0.55,
                bytes: Some(b" last".to_vec()),
            },
            crate::event::TopLogprob {
                token: " did".to_owned(),
                logprob: -3.04,
                bytes: Some(b" did".to_vec()),
            },
        ],
    };
    assert_eq!(events[0], Event::Logprobs(vec![expected.clone()]));
    assert_eq!(events[1], Event::TextDelta(" last".to_owned()));

    let body = r#"{"choices":[{"finish_reason":"stop","index":0,"message":{"role":"assistant","content":" last"},"logprobs":{"content":[{"token":" last","bytes":[32,108,97,115,116],"logprob":-0.55,"top_logprobs":[{"token":" last","bytes":[32,108,97,115,116],"logprob":-0.55},{"token":" did","bytes":[32,100,105,100],"logprob":-3.04}]}]}}]}"#;
    let mut decoder = Decoder::new(Api::OpenaiCompletions, false, 0);
    assert!(!decoder.chat_body_fast(body, &mut Vec::new()));
    let events = decode_body(body, false, true);
    assert_eq!(events[0], Event::Logprobs(vec![expected]));
    assert_eq!(events[1], Event::TextDelta(" last".to_owned()));

    let with = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","logprobs":[{"token":"Hi","logprob":-0.1,"top_logprobs":[{"token":"Hi","logprob":-0.1}]}],"sequence_number":4}"#;
    assert!(!takes(Api::OpenaiResponses, &sse(with)));
    let stream =
        Stream { api: Api::OpenaiResponses, reasoning_model: false, chunks: vec![sse(with)] };
    let events = decode(&stream, true);
    assert_eq!(
        events[0],
        Event::Logprobs(vec![crate::event::TokenLogprob {
            token: "Hi".to_owned(),
            logprob: -0.1,
            bytes: None,
            top: vec![crate::event::TopLogprob {
                token: "Hi".to_owned(),
                logprob: -0.1,
                bytes: None
            }],
        }])
    );
    assert_eq!(events[1], Event::TextDelta("Hi".to_owned()));
}
