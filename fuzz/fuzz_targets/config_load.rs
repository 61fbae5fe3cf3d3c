//! The config loader never panics, whatever the bytes, and is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = std::collections::BTreeMap::<String, String>::new();
    let first = hearth_config::load_str("fuzz.json5", &text, &env);
    let second = hearth_config::load_str("fuzz.json5", &text, &env);
    assert_eq!(first.diagnostics, second.diagnostics);
    assert_eq!(first.config.is_some(), !first.has_errors());
});
