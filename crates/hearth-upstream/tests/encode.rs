//! Request shaping through the public encoder: no field is ever sent as `null`, and structured
//! output keeps its meaning in every upstream API.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use hearth_config::load_str;
use hearth_upstream::encode::{JSON_OBJECT_INSTRUCTION, encode_json};
use hearth_upstream::{OutputFormat, Prompt, Target, Tool};
use serde_json::{Value, json};

const APIS: &[(&str, &str)] = &[
    ("openai-completions", "http://127.0.0.1:1/v1"),
    ("openai-responses", "http://127.0.0.1:1/v1"),
    ("anthropic-messages", "http://127.0.0.1:1"),
    ("ollama", "http://127.0.0.1:11434"),
];

fn body(api: &str, base: &str, prompt: &Prompt) -> Value {
    let text = format!(
        r#"{{models: {{mode: "replace", providers: {{p: {{baseUrl: "{base}", api: "{api}", models: [{{id: "m", maxTokens: 64}}]}}}}}}}}"#
    );
    let loaded = load_str("t.json5", &text, &BTreeMap::<String, String>::new());
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    let provider = &config.providers["p"];
    encode_json(
        prompt,
        &Target { provider, model: &provider.models[0], params: None, served_max: None },
    )
    .unwrap()
}

/// Every `null` anywhere in the body, by path.
fn nulls(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(at.to_owned()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                nulls(item, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                nulls(item, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

fn tools_prompt() -> Prompt {
    let mut prompt = Prompt::text(None, "list files");
    prompt.tools.push(Tool {
        name: "ls".into(),
        description: None,
        parameters: json!({"type": "object", "properties": {}}),
    });
    prompt.tools.push(Tool {
        name: "cat".into(),
        description: Some("Print a file".into()),
        parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    });
    prompt
}

#[test]
fn a_tool_without_description_sends_no_null_in_any_api() {
    let prompt = tools_prompt();
    for (api, base) in APIS {
        let b = body(api, base, &prompt);
        let mut found = Vec::new();
        nulls(&b, "", &mut found);
        assert!(found.is_empty(), "{api}: null at {found:?} in {b}");
        let tools = b["tools"].as_array().unwrap();
        let (ls, cat) = match *api {
            "openai-completions" | "ollama" => (&tools[0]["function"], &tools[1]["function"]),
            _ => (&tools[0], &tools[1]),
        };
        assert_eq!(ls["name"], "ls", "{api}");
        assert!(ls.get("description").is_none(), "{api}: absent, not null: {ls}");
        assert_eq!(cat["description"], "Print a file", "{api}: a description still goes up");
    }
}

fn schema_format() -> OutputFormat {
    OutputFormat::JsonSchema {
        name: "city".into(),
        description: None,
        schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        strict: Some(true),
    }
}

#[test]
fn structured_output_maps_to_each_api() {
    let mut prompt = Prompt::text(None, "a city");
    prompt.output_format = Some(schema_format());
    let schema =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});

    let chat = body("openai-completions", APIS[0].1, &prompt);
    assert_eq!(
        chat["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}})
    );
    let responses = body("openai-responses", APIS[1].1, &prompt);
    assert_eq!(
        responses["text"],
        json!({"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": true}})
    );
    assert!(responses.get("response_format").is_none(), "Responses has no response_format");
    let anthropic = body("anthropic-messages", APIS[2].1, &prompt);
    assert_eq!(
        anthropic["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
    let ollama = body("ollama", APIS[3].1, &prompt);
    assert_eq!(ollama["format"], schema);

    prompt.output_format = Some(OutputFormat::JsonObject);
    prompt.system.push("be brief".into());
    assert_eq!(
        body("openai-completions", APIS[0].1, &prompt)["response_format"],
        json!({"type": "json_object"})
    );
    assert_eq!(
        body("openai-responses", APIS[1].1, &prompt)["text"],
        json!({"format": {"type": "json_object"}})
    );
    let anthropic = body("anthropic-messages", APIS[2].1, &prompt);
    assert_eq!(anthropic["system"], format!("be brief\n\n{JSON_OBJECT_INSTRUCTION}"));
    assert!(anthropic.get("output_config").is_none());
    assert_eq!(body("ollama", APIS[3].1, &prompt)["format"], "json");

    // Plain text asks for nothing anywhere.
    prompt.output_format = None;
    for (api, base) in APIS {
        let b = body(api, base, &prompt);
        for key in ["response_format", "text", "output_config", "format"] {
            assert!(b.get(key).is_none(), "{api}: {key} in {b}");
        }
    }
}

#[test]
fn a_chat_response_format_from_params_becomes_text_format_for_responses() {
    let text = r#"{models: {mode: "replace", providers: {p: {baseUrl: "http://127.0.0.1:1/v1", api: "openai-responses",
        models: [{id: "m", maxTokens: 64, params: {response_format: {type: "json_object"}}}]}}}}"#;
    let loaded = load_str("t.json5", text, &BTreeMap::<String, String>::new());
    let config = loaded.config.unwrap();
    let provider = &config.providers["p"];
    let b = encode_json(
        &Prompt::text(None, "hi"),
        &Target { provider, model: &provider.models[0], params: None, served_max: None },
    )
    .unwrap();
    assert!(b.get("response_format").is_none(), "{b}");
    assert_eq!(b["text"], json!({"format": {"type": "json_object"}}));
}

#[test]
fn formats_parse_from_chat_and_responses_alike() {
    let chat = json!({"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}, "strict": true}});
    let responses = json!({"type": "json_schema", "name": "city", "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}, "strict": true});
    assert_eq!(OutputFormat::from_chat(&chat).unwrap(), schema_format());
    assert_eq!(OutputFormat::from_responses(&responses).unwrap(), schema_format());
    assert_eq!(schema_format().to_chat(), chat);
    assert_eq!(schema_format().to_responses(), responses);
    let (at, _) =
        OutputFormat::from_chat(&json!({"type": "json_schema", "json_schema": {"name": "x"}}))
            .unwrap_err();
    assert_eq!(at, ".json_schema.schema");
    let (at, _) = OutputFormat::from_responses(&json!({"type": "xml"})).unwrap_err();
    assert_eq!(at, ".type");
}

#[test]
fn chat_only_fields_do_not_reach_a_responses_upstream() {
    let mut prompt = Prompt::text(None, "hi");
    prompt.passthrough.insert("logprobs".into(), json!(true));
    prompt.passthrough.insert("top_logprobs".into(), json!(3));
    let responses = body("openai-responses", APIS[1].1, &prompt);
    assert!(responses.get("logprobs").is_none(), "{responses}");
    assert_eq!(responses["top_logprobs"], 3);
    let chat = body("openai-completions", APIS[0].1, &prompt);
    assert_eq!((chat["logprobs"].as_bool(), chat["top_logprobs"].as_u64()), (Some(true), Some(3)));
}

/// Reads JSON and fails on an object that names a key twice (serde_json's `Value` keeps the
/// last one silently; a server may keep the first).
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NoDuplicateKeys, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NoDuplicateKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("key `{key}` twice")));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(V)
    }
}

/// Configured `params` and a caller's pass-through fields that collide with fields the encoder
/// writes itself: each key goes up once, the configured value winning over the caller's
/// sampling value, and a pass-through field never replacing one hearth owns.
#[test]
fn params_and_passthrough_never_write_a_key_twice() {
    assert!(serde_json::from_str::<NoDuplicateKeys>(r#"{"a": {"b": 1, "b": 2}}"#).is_err());
    for (api, base) in APIS {
        let text = format!(
            r#"{{models: {{mode: "replace", providers: {{p: {{baseUrl: "{base}", api: "{api}",
            models: [{{id: "m", maxTokens: 64, params: {{temperature: 0.1, top_p: 0.5, stop: ["X"],
              top_k: 7, response_format: {{type: "json_object"}}}}}}]}}}}}}}}"#
        );
        let loaded = load_str("t.json5", &text, &BTreeMap::<String, String>::new());
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let config = loaded.config.unwrap();
        let provider = &config.providers["p"];
        let target =
            Target { provider, model: &provider.models[0], params: None, served_max: None };
        let mut prompt = tools_prompt();
        prompt.temperature = Some(0.9);
        prompt.top_p = Some(0.9);
        prompt.stop = vec!["Y".into()];
        prompt.stream = true;
        prompt.logprobs = Some(2);
        for (k, v) in [
            ("temperature", json!(2)),
            ("stream", json!(false)),
            ("model", json!("other")),
            ("tools", json!([])),
            ("include", json!(["reasoning.encrypted_content"])),
            ("seed", json!(42)),
        ] {
            prompt.passthrough.insert(k.into(), v);
        }
        let bytes = hearth_upstream::encode::encode(&prompt, &target).unwrap();
        if let Err(e) = serde_json::from_slice::<NoDuplicateKeys>(&bytes) {
            panic!("{api}: {e}: {}", String::from_utf8_lossy(&bytes));
        }
        let b: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(b["model"], "m", "{api}");
        assert_eq!(b["stream"], true, "{api}");
        assert_eq!(b["tools"].as_array().map(Vec::len), Some(2), "{api}");
        match *api {
            "openai-completions" => {
                assert_eq!(
                    (b["temperature"].clone(), b["top_p"].clone()),
                    (json!(0.1), json!(0.5))
                );
                assert_eq!(b["stop"], json!(["X"]));
                assert_eq!(b["top_k"], 7);
                assert_eq!(b["seed"], 42, "a field hearth does not own passes through");
            }
            "openai-responses" => {
                assert_eq!(b["temperature"], json!(0.1));
                assert_eq!(
                    b["include"],
                    json!(["reasoning.encrypted_content", "message.output_text.logprobs"])
                );
                assert!(b.get("response_format").is_none() && b.get("logprobs").is_none());
            }
            "ollama" => {
                assert_eq!(b["options"]["temperature"], json!(0.9), "the caller's, as before");
                assert_eq!(b["options"]["top_k"], 7);
            }
            _ => assert_eq!(b["temperature"], json!(0.9)),
        }
    }
}

/// An image a tool returned reaches every upstream API that can carry one with the result.
#[test]
fn tool_result_images_reach_responses_and_ollama() {
    let png = "data:image/png;base64,iVBORw0KGgo=";
    let mut prompt = Prompt::text(None, "look");
    prompt.messages.push(hearth_upstream::Message {
        tool_calls: vec![hearth_upstream::ToolCall {
            id: "call_1".into(),
            name: "shot".into(),
            arguments: "{}".into(),
        }],
        ..hearth_upstream::Message::assistant("")
    });
    prompt.messages.push(hearth_upstream::Message {
        role: hearth_upstream::Role::Tool,
        tool_call_id: Some("call_1".into()),
        name: Some("shot".into()),
        content: vec![
            hearth_upstream::Part::Text("the screen".into()),
            hearth_upstream::Part::Image { url: png.into() },
        ],
        ..hearth_upstream::Message::user("")
    });
    let responses = body("openai-responses", "http://127.0.0.1:1/v1", &prompt);
    let output = &responses["input"][2];
    assert_eq!(output["type"], "function_call_output");
    assert_eq!(
        output["output"],
        json!([{"type": "input_text", "text": "the screen"}, {"type": "input_image", "image_url": png}])
    );
    let ollama = body("ollama", "http://127.0.0.1:11434", &prompt);
    let tool = &ollama["messages"][2];
    assert_eq!(tool["role"], "tool");
    assert_eq!(tool["content"], "the screen");
    assert_eq!(tool["images"], json!(["iVBORw0KGgo="]));
}
