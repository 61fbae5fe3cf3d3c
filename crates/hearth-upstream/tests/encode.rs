//! Request shaping through the public encoder: no field is ever sent as `null`, and structured
//! output keeps its meaning in every upstream API.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;

use hearth_config::load_str;
use hearth_upstream::encode::{JSON_OBJECT_INSTRUCTION, encode};
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
    encode(prompt, &Target { provider, model: &provider.models[0], params: None })
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
    let b = encode(
        &Prompt::text(None, "hi"),
        &Target { provider, model: &provider.models[0], params: None },
    );
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
