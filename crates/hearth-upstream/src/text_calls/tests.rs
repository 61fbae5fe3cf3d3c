use proptest::prelude::*;

use super::*;

fn tools() -> Vec<String> {
    vec!["get_weather".to_owned(), "search".to_owned()]
}

fn text(s: &str) -> Found {
    Found::Text(s.to_owned())
}

fn reasoning(s: &str) -> Found {
    Found::Reasoning(s.to_owned())
}

fn call(name: &str, arguments: &str) -> Found {
    Found::Call { name: name.to_owned(), arguments: arguments.to_owned() }
}

/// Appends `found` to `all`, merging text into text and reasoning into reasoning.
fn merge(all: &mut Vec<Found>, found: Vec<Found>) {
    for f in found {
        match (all.last_mut(), f) {
            (Some(Found::Text(a)), Found::Text(b)) => a.push_str(&b),
            (Some(Found::Reasoning(a)), Found::Reasoning(b)) => a.push_str(&b),
            (_, f) => all.push(f),
        }
    }
}

/// Feeds `chunks` to `scanner` (a fresh output vector per chunk, as the decoder drains it).
fn feed(mut scanner: TextCalls, chunks: &[&str]) -> Vec<Found> {
    let mut all = Vec::new();
    for c in chunks {
        let mut out = Vec::new();
        scanner.push(c, &mut out);
        merge(&mut all, out);
    }
    let mut out = Vec::new();
    scanner.finish(&mut out);
    merge(&mut all, out);
    all
}

fn run(chunks: &[&str]) -> Vec<Found> {
    feed(TextCalls::new(tools()), chunks)
}

/// Every char-boundary position in `s`, ends included.
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

/// Every 2-way split of `s`, and feeding it char by char, give `want`.
fn check_splits(
    make: &dyn Fn() -> TextCalls,
    s: &str,
    want: &[Found],
) -> Result<(), TestCaseError> {
    for i in boundaries(s) {
        let (a, b) = s.split_at(i);
        prop_assert_eq!(&feed(make(), &[a, b]), want, "split at {} of {:?}", i, s);
    }
    let chars: Vec<String> = s.chars().map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    prop_assert_eq!(&feed(make(), &chars), want, "char by char: {:?}", s);
    Ok(())
}

#[track_caller]
fn check(s: &str, want: &[Found]) {
    let make = || TextCalls::new(tools());
    if let Err(e) = check_splits(&make, s, want) {
        panic!("{e}");
    }
}

// ---- Hermes / Qwen ------------------------------------------------------------------------

#[test]
fn hermes_single_call() {
    check(
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
        &[call("get_weather", r#"{"city": "Paris"}"#)],
    );
}

#[test]
fn hermes_text_before_and_after_stays_text() {
    check(
        "Let me look.\n<tool_call>{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}</tool_call>\nDone.",
        &[text("Let me look.\n"), call("search", r#"{"q": "x"}"#), text("\nDone.")],
    );
}

#[test]
fn hermes_several_in_a_row_drop_whitespace_between() {
    check(
        "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n\
         <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>\n",
        &[call("get_weather", r#"{"city": "Paris"}"#), call("get_weather", r#"{"city": "Rome"}"#)],
    );
}

#[test]
fn hermes_arguments_as_a_string_and_absent() {
    check(
        r#"<tool_call>{"name": "search", "arguments": "{\"q\": \"a\"}"}</tool_call>"#,
        &[call("search", r#"{"q": "a"}"#)],
    );
    check(r#"<tool_call>{"name": "search"}</tool_call>"#, &[call("search", "{}")]);
    check(
        r#"<tool_call>{"type": "function", "name": "search", "parameters": {}}</tool_call>"#,
        &[call("search", "{}")],
    );
}

#[test]
fn hermes_a_closing_tag_inside_a_string_does_not_end_the_call() {
    check(
        r#"<tool_call>{"name": "search", "arguments": {"q": "</tool_call>"}}</tool_call>"#,
        &[call("search", r#"{"q": "</tool_call>"}"#)],
    );
}

#[test]
fn hermes_not_a_call_passes_unchanged() {
    for s in [
        // A tool the request did not offer.
        r#"<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>"#,
        // Broken JSON, arguments that are not an object, unknown keys.
        r#"<tool_call>{"name": "search", "arguments": {"q": }}</tool_call>"#,
        r#"<tool_call>{"name": "search", "arguments": [1]}</tool_call>"#,
        r#"<tool_call>{"name": "search", "arguments": {}, "extra": 1}</tool_call>"#,
        // Not closed.
        r#"<tool_call>{"name": "search", "arguments": {}}"#,
        r#"<tool_call>{"name": "search", "arguments": {}} and more</tool_call>"#,
        // Prose.
        "Wrap each call in <tool_call> tags.",
        "<tool_call",
    ] {
        check(s, &[text(s)]);
    }
}

// ---- Mistral --------------------------------------------------------------------------------

#[test]
fn mistral_array() {
    check(
        r#"[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "search", "arguments": {"q": "x"}, "id": "abc123456"}]"#,
        &[call("get_weather", r#"{"city": "Paris"}"#), call("search", r#"{"q": "x"}"#)],
    );
    check(
        r#"Hello[TOOL_CALLS][{"name": "search", "arguments": {"q": "x"}}]"#,
        &[text("Hello"), call("search", r#"{"q": "x"}"#)],
    );
}

#[test]
fn mistral_named_forms() {
    check(
        r#"[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}"#,
        &[call("get_weather", r#"{"city": "Paris"}"#)],
    );
    check(
        r#"[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{"city": "Paris"}"#,
        &[call("get_weather", r#"{"city": "Paris"}"#)],
    );
    // `[ARGS]` removed as a special token by the server.
    check(r#"[TOOL_CALLS]search{"q": "x"}"#, &[call("search", r#"{"q": "x"}"#)]);
    check(
        r#"[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]search[ARGS]{"q": "x"}"#,
        &[call("get_weather", r#"{"city": "Paris"}"#), call("search", r#"{"q": "x"}"#)],
    );
}

#[test]
fn mistral_not_a_call_passes_unchanged() {
    for s in [
        r#"[TOOL_CALLS]rm_rf[ARGS]{"path": "/"}"#,
        r#"[TOOL_CALLS][{"name": "rm_rf", "arguments": {}}]"#,
        r#"[TOOL_CALLS][{"name": "search", "arguments": {}}, {"name": "rm_rf", "arguments": {}}]"#,
        r#"[TOOL_CALLS][]"#,
        r#"[TOOL_CALLS]search[ARGS]["q"]"#,
        "The [TOOL_CALLS] token starts a call.",
        "[TOOL_CALLS] not json at all",
    ] {
        check(s, &[text(s)]);
    }
}

// ---- Llama 3 --------------------------------------------------------------------------------

#[test]
fn llama_whole_answer_json() {
    check(
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
        &[call("get_weather", r#"{"city": "Paris"}"#)],
    );
    check(
        "\n  {\"type\": \"function\", \"name\": \"search\", \"parameters\": {\"q\": \"x\"}}\n",
        &[call("search", r#"{"q": "x"}"#)],
    );
    check(
        "<|python_tag|>{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}",
        &[call("search", r#"{"q": "x"}"#)],
    );
}

#[test]
fn llama_json_that_is_not_the_whole_answer_passes_unchanged() {
    for s in [
        r#"{"name": "get_weather", "parameters": {"city": "Paris"}} is what I would send."#,
        r#"Call: {"name": "get_weather", "parameters": {"city": "Paris"}}"#,
        r#"{"name": "rm_rf", "parameters": {}}"#,
        r#"{"name": "get_weather"}"#,
        r#"{"answer": 42}"#,
        r#"{"name": "get_weather", "parameters": {"city": "Paris"}"#,
        "<|python_tag|>print('hi')",
        "I could call get_weather with {\"city\": \"Paris\"} but won't",
    ] {
        check(s, &[text(s)]);
    }
}

#[test]
fn llama_bare_json_off_for_json_output() {
    let s = r#"{"name": "get_weather", "parameters": {"city": "Paris"}}"#;
    let out = feed(TextCalls::new(tools()).with_bare_json(false), &[s]);
    assert_eq!(out, [text(s)]);
}

// ---- Harmony ----------------------------------------------------------------------------------

#[test]
fn harmony_analysis_is_reasoning_and_final_is_text() {
    check(
        "<|channel|>analysis<|message|>User wants a joke.<|end|><|start|>assistant<|channel|>final<|message|>Why did the chicken…",
        &[reasoning("User wants a joke."), text("Why did the chicken…")],
    );
    check(
        "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Done.<|return|>",
        &[reasoning("Think."), text("Done.")],
    );
}

#[test]
fn harmony_call() {
    check(
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>",
        &[reasoning("Need the weather."), call("get_weather", r#"{"city":"Paris"}"#)],
    );
    // The recipient in the role section; the stop token left out by the server.
    check(
        "<|start|>assistant to=functions.search<|channel|>commentary json<|message|>{\"q\": \"x\"}",
        &[call("search", r#"{"q": "x"}"#)],
    );
    check(
        "<|channel|>commentary to=functions.search<|constrain|>json<|message|>{\"q\": \"x\"}<|call|>",
        &[call("search", r#"{"q": "x"}"#)],
    );
}

#[test]
fn harmony_not_a_call_passes_unchanged() {
    for s in [
        "<|channel|>commentary to=functions.rm_rf <|constrain|>json<|message|>{}<|call|>",
        "<|channel|>commentary to=browser.search<|message|>{\"q\": \"x\"}<|call|>",
        "The <|channel|> token opens a header.",
        "<|start|>user<|message|>hi",
    ] {
        check(s, &[text(s)]);
    }
    // Broken arguments to an offered function: the message as it was.
    let s =
        "<|channel|>commentary to=functions.search <|constrain|>json<|message|>{\"q\": }<|call|>";
    check(s, &[text(s)]);
}

#[test]
fn harmony_needs_no_tools() {
    let s =
        "<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant<|channel|>final<|message|>Hi.";
    assert_eq!(feed(TextCalls::new(Vec::new()), &[s]), [reasoning("Hmm."), text("Hi.")]);
}

// ---- DeepSeek ---------------------------------------------------------------------------------

#[test]
fn deepseek_v3() {
    check(
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        &[call("get_weather", r#"{"city": "Paris"}"#)],
    );
    check(
        "Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>search\n```json\n{\"q\": \"x\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        &[
            text("Checking."),
            call("get_weather", r#"{"city": "Paris"}"#),
            call("search", r#"{"q": "x"}"#),
        ],
    );
}

#[test]
fn deepseek_v31() {
    check(
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": \"Paris\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        &[call("get_weather", r#"{"city": "Paris"}"#), call("search", r#"{"q": "x"}"#)],
    );
    // A lone call, and a block cut before its closing marker.
    check(
        "<｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}<｜tool▁call▁end｜>",
        &[call("search", r#"{"q": "x"}"#)],
    );
    check(
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}<｜tool▁call▁end｜>",
        &[call("search", r#"{"q": "x"}"#)],
    );
}

#[test]
fn deepseek_not_a_call_passes_unchanged() {
    for s in [
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>rm_rf<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}<｜tool▁call▁end｜><｜tool▁call▁begin｜>rm_rf<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
        "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>",
        "<｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"x\"}",
    ] {
        check(s, &[text(s)]);
    }
}

// ---- the rules ------------------------------------------------------------------------------

#[test]
fn prose_mentioning_a_tool_is_text() {
    for s in [
        "I could call get_weather with {\"city\": \"Paris\"} but won't",
        "Use `<tool_call>{\"name\": \"search\"}` like that",
        "Here: ```json\n{\"name\": \"search\", \"parameters\": {}}\n```",
    ] {
        check(s, &[text(s)]);
    }
}

#[test]
fn no_tools_no_calls() {
    let s = r#"<tool_call>{"name": "search", "arguments": {}}</tool_call>"#;
    assert_eq!(feed(TextCalls::new(Vec::new()), &[s]), [text(s)]);
}

#[test]
fn a_call_that_does_not_close_within_the_limit_goes_out_as_text() {
    let s = r#"<tool_call>{"name": "search", "arguments": {"q": "a long query"}}</tool_call>"#;
    let mut scanner = TextCalls::new(tools()).with_hold_limit(24);
    let mut out = Vec::new();
    scanner.push(&s[..30], &mut out);
    // Past the limit the marker is given up at once, and what follows flows as text.
    assert_eq!(out, [text(&s[..30])]);
    scanner.push(&s[30..], &mut out);
    scanner.finish(&mut out);
    assert_eq!(out, [text(s)]);
    // Held text that may be a call waits only for what decides it.
    let mut scanner = TextCalls::new(tools());
    let mut out = Vec::new();
    scanner.push("Sure <tool_ca", &mut out);
    assert_eq!(out, [text("Sure ")]);
    scanner.push("t", &mut out);
    assert_eq!(out, [text("Sure <tool_cat")]);
}

#[test]
fn whitespace_only_answer_is_kept() {
    check("\n\n", &[text("\n\n")]);
    check("", &[]);
}

// ---- property tests ---------------------------------------------------------------------------

/// A JSON string's inside, without quotes or backslashes (may hold markers and braces).
fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 {}\\[\\]<>|:,.é]{0,12}"
}

/// Each format written around `name` and `args`.
fn formats(name: &str, args: &str) -> Vec<String> {
    vec![
        format!("<tool_call>\n{{\"name\": \"{name}\", \"arguments\": {args}}}\n</tool_call>"),
        format!("[TOOL_CALLS][{{\"name\": \"{name}\", \"arguments\": {args}}}]"),
        format!("[TOOL_CALLS]{name}[ARGS]{args}"),
        format!("{{\"name\": \"{name}\", \"parameters\": {args}}}"),
        format!("<|python_tag|>{{\"name\": \"{name}\", \"parameters\": {args}}}"),
        format!(
            "<|channel|>commentary to=functions.{name} <|constrain|>json<|message|>{args}<|call|>"
        ),
        format!(
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{args}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
        ),
        format!(
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{args}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
        ),
    ]
}

/// Splits `s` at the given cuts (indices into its char boundaries).
fn cut<'s>(s: &'s str, cuts: &[prop::sample::Index]) -> Vec<&'s str> {
    let bounds = boundaries(s);
    let mut at: Vec<usize> = cuts.iter().map(|i| bounds[i.index(bounds.len())]).collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut prev = 0;
    for c in at {
        chunks.push(&s[prev..c]);
        prev = c;
    }
    chunks.push(&s[prev..]);
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every format, split at every boundary and fed char by char, gives the same call.
    #[test]
    fn prop_every_format_at_every_split(city in value(), n in 0u32..1000) {
        let args = format!("{{\"city\": \"{city}\", \"n\": {n}}}");
        let make = || TextCalls::new(tools());
        for s in formats("get_weather", &args) {
            check_splits(&make, &s, &[call("get_weather", &args)])?;
        }
    }

    /// With text before (a Llama 3 object is then not the whole answer), every format but
    /// that one keeps the text and gives the call, at any random split.
    #[test]
    fn prop_text_before_and_random_splits(
        before in "[a-zA-Z.,!][a-zA-Z .,!]{0,15}",
        city in value(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let args = format!("{{\"city\": \"{city}\"}}");
        for (i, body) in formats("get_weather", &args).into_iter().enumerate() {
            let s = format!("{before}{body}");
            let got = run(&cut(&s, &cuts));
            if i == 3 || i == 4 {
                prop_assert_eq!(got, vec![text(&s)]);
            } else {
                prop_assert_eq!(got, vec![text(&before), call("get_weather", &args)]);
            }
        }
    }

    /// The same calls to a tool the request did not offer pass through unchanged.
    #[test]
    fn prop_unknown_names_pass_unchanged(city in value()) {
        let args = format!("{{\"city\": \"{city}\"}}");
        let make = || TextCalls::new(tools());
        for s in formats("get_forecast", &args) {
            check_splits(&make, &s, &[text(&s)])?;
        }
    }

    /// Prose that mentions a tool and shows its arguments is text, whatever the split.
    #[test]
    fn prop_prose_is_text(
        city in value(),
        lead in "[A-Za-z ]{1,12}",
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let s = format!("{lead} I could call get_weather with {{\"city\": \"{city}\"}} but won't");
        prop_assert_eq!(run(&cut(&s, &cuts)), vec![text(&s)]);
    }

    /// Any soup of marker pieces: random chunking (and any hold limit) never changes the
    /// outcome, and where no call or Harmony message came out, the text is the input.
    #[test]
    fn prop_random_chunking_is_invisible(
        parts in proptest::collection::vec(prop_oneof![
            Just("<tool_call>"), Just("</tool_call>"), Just("[TOOL_CALLS]"), Just("[ARGS]"),
            Just("<|channel|>"), Just("<|message|>"), Just("<|start|>"), Just("<|end|>"),
            Just("<|call|>"), Just("<|constrain|>"), Just("<|python_tag|>"),
            Just("<｜tool▁calls▁begin｜>"), Just("<｜tool▁call▁begin｜>"), Just("<｜tool▁sep｜>"),
            Just("<｜tool▁call▁end｜>"), Just("<｜tool▁calls▁end｜>"),
            Just("analysis"), Just("commentary to=functions.search "), Just("final"),
            Just("assistant"), Just("function"), Just("search"), Just("get_weather"),
            Just("{\"name\": \"search\", \"arguments\": {}}"), Just("{\"q\": \"}\"}"),
            Just("{"), Just("}"), Just("\""), Just(" "), Just("\n"), Just("\n```json\n"),
            Just("```"), Just("<"), Just("["), Just("|"), Just("x"),
            Just("<tool_call>{\"name\": \"search\", \"arguments\": {}}</tool_call>"),
            Just("[TOOL_CALLS]search[ARGS]{}"), Just("<|channel|>analysis<|message|>"),
            Just("<|start|>assistant<|channel|>final<|message|>"),
            Just("<|channel|>commentary to=functions.search <|constrain|>json<|message|>"),
            Just("<｜tool▁call▁begin｜>search<｜tool▁sep｜>{}<｜tool▁call▁end｜>"),
        ], 0..14),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        limit in prop_oneof![Just(usize::MAX), 0usize..64],
    ) {
        let s: String = parts.concat();
        let make = || TextCalls::new(tools()).with_hold_limit(limit);
        let whole = feed(make(), &[&s]);
        prop_assert_eq!(&feed(make(), &cut(&s, &cuts)), &whole, "{:?}", s);
        let chars: Vec<String> = s.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        prop_assert_eq!(&feed(make(), &chars), &whole, "char by char: {:?}", s);
        let changed = whole.iter().any(|f| !matches!(f, Found::Text(_)));
        if !changed && !s.contains("<|channel|>") && !s.contains("<|start|>") {
            let out: String = whole.iter().map(|f| match f {
                Found::Text(t) => t.as_str(),
                _ => "",
            }).collect();
            prop_assert_eq!(out, s);
        }
        for f in &whole {
            if let Found::Call { name, arguments } = f {
                prop_assert!(tools().contains(name));
                prop_assert!(is_object(arguments));
            }
        }
    }
}

// ---- through the decoder --------------------------------------------------------------------

mod decoder {
    use hearth_config::Api;
    use hearth_wire::sse::SseEvent;
    use proptest::prelude::*;
    use serde_json::json;

    use super::{cut, tools};
    use crate::decode::Decoder;
    use crate::event::{Event, FinishReason};
    use crate::text_calls::TextCalls;

    const HERMES: &str = "Checking.<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}</tool_call>";

    fn decoder(api: Api) -> Decoder {
        Decoder::new(api, false, 10).with_text_calls(TextCalls::new(tools()))
    }

    /// A chat stream carrying `chunks` as content, ending with `finish_reason: stop`.
    fn chat_stream(mut decoder: Decoder, chunks: &[&str]) -> Vec<Event> {
        let mut out = Vec::new();
        for c in chunks {
            let data = json!({"choices": [{"index": 0, "delta": {"content": c}}]}).to_string();
            decoder.sse(&SseEvent { data, ..SseEvent::default() }, &mut out);
        }
        let end = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        decoder.sse(&SseEvent { data: end.to_string(), ..SseEvent::default() }, &mut out);
        decoder.sse(&SseEvent { data: "[DONE]".into(), ..SseEvent::default() }, &mut out);
        decoder.finish(&mut out);
        out
    }

    /// The events with ids replaced by `ID` (they are random), and text merged.
    fn normalized(events: Vec<Event>) -> Vec<Event> {
        let mut all: Vec<Event> = Vec::new();
        for e in events {
            match (all.last_mut(), e) {
                (Some(Event::TextDelta(a)), Event::TextDelta(b)) => a.push_str(&b),
                (Some(Event::ReasoningDelta(a)), Event::ReasoningDelta(b)) => a.push_str(&b),
                (_, Event::ToolCallDelta { index, id, name, arguments }) => {
                    all.push(Event::ToolCallDelta {
                        index,
                        id: id.map(|_| "ID".to_owned()),
                        name,
                        arguments,
                    });
                }
                (_, Event::Usage(_)) => {}
                (_, e) => all.push(e),
            }
        }
        all
    }

    fn weather_call(index: u32) -> Event {
        Event::ToolCallDelta {
            index,
            id: Some("ID".to_owned()),
            name: Some("get_weather".to_owned()),
            arguments: r#"{"city": "Paris"}"#.to_owned(),
        }
    }

    fn expected() -> Vec<Event> {
        vec![
            Event::TextDelta("Checking.".to_owned()),
            weather_call(0),
            Event::Finish(FinishReason::ToolCalls),
        ]
    }

    #[test]
    fn a_chat_stream_gets_a_structured_call_with_a_fresh_id() {
        let events = chat_stream(decoder(Api::OpenaiCompletions), &[HERMES]);
        let ids: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::ToolCallDelta { id, .. } => id.as_deref(),
                _ => None,
            })
            .collect();
        assert_eq!(ids.len(), 1);
        assert!(ids[0].starts_with("call_") && ids[0].len() == 29, "{ids:?}");
        assert_eq!(normalized(events), expected());
        // Off: the text as it came.
        let events = chat_stream(Decoder::new(Api::OpenaiCompletions, false, 10), &[HERMES]);
        assert_eq!(
            normalized(events),
            [Event::TextDelta(HERMES.to_owned()), Event::Finish(FinishReason::Stop)]
        );
    }

    #[test]
    fn think_tags_are_split_first_and_a_length_finish_stays() {
        let text = format!("<think>Paris, then.</think>\n\n{HERMES}");
        let events = normalized(chat_stream(decoder(Api::OpenaiCompletions), &[&text]));
        let mut want = vec![Event::ReasoningDelta("Paris, then.".to_owned())];
        want.extend(expected());
        assert_eq!(events, want);
        // A structured call before: the recovered one comes after it.
        let mut d = decoder(Api::OpenaiCompletions);
        let mut out = Vec::new();
        let structured = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_x", "function": {"name": "search", "arguments": "{}"}}
        ]}}]});
        d.sse(&SseEvent { data: structured.to_string(), ..SseEvent::default() }, &mut out);
        let events = normalized(chat_stream(d, &[HERMES]));
        assert!(events.contains(&weather_call(1)), "{events:?}");
    }

    #[test]
    fn ollama_and_responses_streams_and_a_whole_body() {
        // Ollama: the text in `message.content`, `done_reason: stop`.
        let mut d = decoder(Api::Ollama);
        let mut out = Vec::new();
        for piece in [
            "Checking.<tool_call>{\"name\": \"get_weather\", ",
            "\"arguments\": {\"city\": \"Paris\"}}</tool_call>",
        ] {
            let line = json!({"message": {"role": "assistant", "content": piece}, "done": false});
            d.ndjson(&line.to_string(), &mut out);
        }
        let done = json!({"message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"});
        d.ndjson(&done.to_string(), &mut out);
        d.finish(&mut out);
        assert_eq!(normalized(out), expected());

        // Responses: output_text deltas, then `response.completed` with the same output.
        let mut d = decoder(Api::OpenaiResponses);
        let mut out = Vec::new();
        let delta = json!({"type": "response.output_text.delta", "delta": HERMES});
        d.sse(&SseEvent { data: delta.to_string(), ..SseEvent::default() }, &mut out);
        let completed = json!({"type": "response.completed", "response": {"status": "completed",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": HERMES}]}]}});
        d.sse(&SseEvent { data: completed.to_string(), ..SseEvent::default() }, &mut out);
        d.finish(&mut out);
        assert_eq!(normalized(out), expected());

        // A whole chat body: a bare JSON answer.
        let body = json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
            "content": "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"}}]});
        let mut d = decoder(Api::OpenaiCompletions).for_whole_body();
        let mut out = Vec::new();
        d.body_bytes(body.to_string().as_bytes(), &mut out).unwrap();
        d.finish(&mut out);
        assert_eq!(normalized(out), [weather_call(0), Event::Finish(FinishReason::ToolCalls)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any split of the upstream text into chat chunks gives the same events.
        #[test]
        fn prop_chat_chunks_split_anywhere(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let events = normalized(chat_stream(decoder(Api::OpenaiCompletions), &cut(HERMES, &cuts)));
            prop_assert_eq!(events, expected());
        }
    }
}
