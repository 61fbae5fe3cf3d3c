//! Property tests of the JSON5 parser: agreement with the `json5` crate as an oracle, and no
//! panic on any input.
#![expect(clippy::unwrap_used, reason = "test helpers may unwrap")]

use hearth_config::json5::parse;
use hearth_config::source::FileId;
use proptest::prelude::*;

/// A JSON value without floats (float formatting differs between writers, not parsers).
fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|i| serde_json::Value::from(i64::from(i))),
        "[a-zA-Z0-9 _/:.'\"\\\\é😀-]{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-zA-Z_$][a-zA-Z0-9_]{0,6}|[a-z/.-]{1,8}", inner), 0..5)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Writes `v` as JSON5 with the syntax's freedoms chosen by `style`.
fn write_json5(v: &serde_json::Value, style: u64, out: &mut String) {
    let pick = |n: u64| (style >> (n % 60)) & 1 == 1;
    match v {
        serde_json::Value::String(s) => {
            if pick(1) {
                out.push('\'');
                for c in s.chars() {
                    match c {
                        '\'' => out.push_str("\\'"),
                        '\\' => out.push_str("\\\\"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
            } else {
                out.push_str(&serde_json::to_string(s).unwrap());
            }
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if pick(i as u64 + 7) {
                    out.push_str(" /* c */ ");
                }
                write_json5(item, style.rotate_left(3), out);
                if i + 1 < items.len() || pick(2) {
                    out.push(',');
                }
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            out.push_str("{\n");
            for (i, (k, item)) in map.iter().enumerate() {
                let ident = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if ident && pick(3) {
                    out.push_str(k);
                } else {
                    out.push_str(&serde_json::to_string(k).unwrap());
                }
                out.push_str(": ");
                write_json5(item, style.rotate_left(5), out);
                if i + 1 < map.len() || pick(4) {
                    out.push(',');
                }
                if pick(i as u64 + 11) {
                    out.push_str(" // comment");
                }
                out.push('\n');
            }
            out.push('}');
        }
        serde_json::Value::Number(n) if pick(5) && n.as_i64().is_some_and(|i| i >= 0) => {
            out.push_str(&format!("0x{:X}", n.as_i64().unwrap()));
        }
        other => out.push_str(&other.to_string()),
    }
}

proptest! {
    #[test]
    fn agrees_with_the_json5_crate(v in value(), style in any::<u64>()) {
        let mut text = String::new();
        write_json5(&v, style, &mut text);
        let ours = parse(&text, FileId(0)).map(|n| n.to_json());
        let oracle: Result<serde_json::Value, _> = json5::from_str(&text);
        prop_assert_eq!(ours.as_ref().ok(), Some(&v), "{}", text);
        prop_assert_eq!(ours.ok(), oracle.ok(), "{}", text);
    }

    #[test]
    fn never_panics(text in "\\PC{0,64}") {
        let _ = parse(&text, FileId(0));
        let env = std::collections::BTreeMap::<String, String>::new();
        let _ = hearth_config::load_str("p.json5", &text, &env);
    }

    #[test]
    fn never_panics_on_json5ish_noise(text in "[{}\\[\\]:,'\"\\\\/*a-z0-9 \n.+-]{0,80}") {
        let ours = parse(&text, FileId(0));
        let oracle: Result<serde_json::Value, _> = json5::from_str(&text);
        // Both accept or both reject, except for the oracle's looser spots documented in json5.rs.
        if let (Ok(a), Ok(b)) = (&ours, &oracle) {
            prop_assert_eq!(&a.to_json(), b);
        }
    }
}
