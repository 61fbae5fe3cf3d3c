//! OpenRouter's provider routing (`params.provider`) is checked at load wherever `params` may
//! carry it, merged key by key, and said to be useless on any provider but OpenRouter.
//! See: #15 (item 7, region-pinned hosted routing).

use std::collections::BTreeMap;

use hearth_config::{Diagnostic, ModelRef, Severity, load_str};
use serde_json::json;

fn load(text: &str) -> hearth_config::Loaded {
    load_str("test.json5", text, &BTreeMap::<String, String>::new())
}

fn errors(text: &str) -> Vec<String> {
    let loaded = load(text);
    assert!(loaded.config.is_none(), "expected errors: {:#?}", loaded.diagnostics);
    loaded.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect()
}

fn warnings(text: &str) -> Vec<Diagnostic> {
    let loaded = load(text);
    assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
    loaded.diagnostics.into_iter().filter(|d| d.severity == Severity::Warning).collect()
}

#[track_caller]
fn has(errs: &[String], needles: &[&str]) {
    assert!(
        errs.iter().any(|e| needles.iter().all(|n| e.contains(n))),
        "no error with {needles:?} in {errs:#?}"
    );
}

/// Every key of OpenRouter's schema, in every form its docs give, loads without a word.
#[test]
fn the_whole_schema_loads_quietly() {
    let loaded = load(
        r#"{models: {providers: {openrouter: {apiKey: "k", params: {provider: {
            order: ["deepinfra/fp8", "together"], only: ["deepinfra"], ignore: ["nextbit"],
            allow_fallbacks: false, require_parameters: true, zdr: true, enforce_distillable_text: false,
            data_collection: "deny", quantizations: ["fp8", "bf16", "unknown"],
            sort: {by: "throughput", partition: "none"},
            max_price: {prompt: 1, completion: "2.5", image: 0, audio: 0.1, request: 0},
            preferred_max_latency: {p50: 1.5, p90: 3}, preferred_min_throughput: 40}},
            models: [{id: "moonshotai/kimi-k2", params: {provider: {sort: "latency", preferred_max_latency: 2,
              preferred_min_throughput: {p75: 20}}}}]}}}}"#,
    );
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
}

/// A misspelled key or value is an error with its path, its place in the file and the closest
/// spelling; a wrong type names what was expected.
#[test]
fn mistakes_name_the_path_and_the_fix() {
    let text = r#"{models: {providers: {openrouter: {params: {provider: {
  allow_fallback: false,
  data_collection: "deni",
  quantizations: ["fp80"],
  sort: {by: "throughtput"},
  max_price: {promt: 1},
  only: "deepinfra",
  zdr: "yes",
  preferred_max_latency: -1,
}}}}}}"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 8, "{errs:#?}");
    let at = "models.providers.openrouter.params.provider";
    has(
        &errs,
        &[
            &format!("unknown key `allow_fallback` at `{at}.allow_fallback`"),
            "test.json5:2:3",
            "did you mean `allow_fallbacks`?",
        ],
    );
    has(&errs, &[&format!("{at}.data_collection: unknown value `deni`"), "did you mean `deny`?"]);
    has(&errs, &[&format!("{at}.quantizations[0]: unknown value `fp80`"), "did you mean `fp8`?"]);
    has(&errs, &[&format!("{at}.sort.by: unknown value `throughtput`"), "`throughput`"]);
    has(&errs, &[&format!("`{at}.max_price.promt`"), "did you mean `prompt`?"]);
    has(&errs, &[&format!("{at}.only: expected array of provider slugs, found string")]);
    has(&errs, &[&format!("{at}.zdr: expected boolean"), "test.json5:8:8"]);
    has(&errs, &[&format!("{at}.preferred_max_latency: expected a number, 0 or more")]);
}

/// A key far from every known one still fails (OpenRouter would not apply it), naming the keys
/// hearth knows.
#[test]
fn an_unknown_key_lists_the_known_ones() {
    let errs =
        errors(r#"{models: {providers: {openrouter: {params: {provider: {region: "us"}}}}}}"#);
    has(&errs, &["unknown key `region`", "allow_fallbacks", "data_collection", "zdr"]);
}

/// Every `params` that may carry `provider` is checked: a provider's, a model entry's,
/// `agents.defaults.params`, `agents.defaults.models[ref].params`, an agent's and its own
/// `models[ref].params`.
#[test]
fn every_params_object_is_checked() {
    let errs = errors(
        r#"{
  models: {providers: {openrouter: {
    params: {provider: {ordr: ["a"]}},
    models: [{id: "z-ai/glm-4.6", params: {provider: {zrd: true}}}]}}},
  agents: {
    defaults: {
      params: {provider: {onyl: ["a"]}},
      models: {"openrouter/z-ai/glm-4.6": {params: {provider: {sorts: "price"}}}}},
    entries: {work: {
      params: {provider: {ignor: ["b"]}},
      models: {"openrouter/z-ai/glm-4.6": {params: {provider: {data_colection: "deny"}}}}}}},
}"#,
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
    has(&errs, &["`models.providers.openrouter.params.provider.ordr`", "did you mean `order`?"]);
    has(
        &errs,
        &["`models.providers.openrouter.models[0].params.provider.zrd`", "did you mean `zdr`?"],
    );
    has(&errs, &["`agents.defaults.params.provider.onyl`", "did you mean `only`?"]);
    has(
        &errs,
        &[
            r#"`agents.defaults.models["openrouter/z-ai/glm-4.6"].params.provider.sorts`"#,
            "did you mean `sort`?",
        ],
    );
    has(&errs, &["`agents.entries.work.params.provider.ignor`", "did you mean `ignore`?"]);
    has(
        &errs,
        &[
            r#"`agents.entries.work.models["openrouter/z-ai/glm-4.6"].params.provider.data_colection`"#,
            "did you mean `data_collection`?",
        ],
    );
}

/// `params.provider` on a provider that is not OpenRouter (by id, or by a host on openrouter.ai)
/// is a warning that says it is only sent to OpenRouter; OpenRouter's in-region hosts count.
#[test]
fn routing_for_another_provider_warns_that_it_is_not_sent() {
    let found = warnings(
        r#"{models: {mode: "replace", providers: {
            lmstudio: {baseUrl: "http://127.0.0.1:1234/v1", params: {provider: {zdr: true}},
              models: [{id: "m", params: {provider: {only: ["x"]}}}]},
            "or-us": {baseUrl: "https://us.openrouter.ai/api/v1", params: {provider: {zdr: true}}},
            openrouter: {baseUrl: "http://127.0.0.1:9/v1", params: {provider: {zdr: true}}},
            evil: {baseUrl: "https://openrouter.ai.example.com/v1", params: {provider: {zdr: true}}}}},
          agents: {defaults: {models: {
            "lmstudio/m": {params: {provider: {sort: "price"}}},
            "or-us/x": {params: {provider: {sort: "price"}}}}}}}"#,
    );
    let not_sent: Vec<(&str, &str)> = found
        .iter()
        .filter(|d| d.code == "routing-not-sent")
        .map(|d| (d.path.as_deref().unwrap(), d.message.as_str()))
        .collect();
    let paths: Vec<&str> = not_sent.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        paths,
        [
            "models.providers.lmstudio.params.provider",
            "models.providers.lmstudio.models[0].params.provider",
            "models.providers.evil.params.provider",
            r#"agents.defaults.models["lmstudio/m"].params.provider"#,
        ],
        "{found:#?}"
    );
    assert!(not_sent[0].1.contains("only sent to OpenRouter"), "{not_sent:?}");
    assert!(not_sent[0].1.contains("`lmstudio` is not OpenRouter"), "{not_sent:?}");
}

/// A more specific `params.provider` replaces the keys it names and keeps the others.
#[test]
fn layers_merge_key_by_key() {
    let loaded = load(
        r#"{agents: {
            defaults: {params: {provider: {only: ["deepinfra"], zdr: true}, temperature: 0.2},
              models: {"openrouter/minimax/minimax-m2": {params: {provider: {only: ["fireworks"], sort: "price"}}}}},
            entries: {eu: {params: {provider: {data_collection: "deny"}}}}}}"#,
    );
    assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
    let config = loaded.config.unwrap();
    let model_ref: ModelRef = "openrouter/minimax/minimax-m2".parse().unwrap();
    let params = serde_json::Value::Object(config.params_for(Some("eu"), &model_ref).unwrap());
    assert_eq!(
        params,
        json!({
            "provider": {"only": ["fireworks"], "zdr": true, "sort": "price", "data_collection": "deny"},
            "temperature": 0.2
        })
    );
}
