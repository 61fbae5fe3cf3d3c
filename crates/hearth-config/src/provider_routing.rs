//! OpenRouter's provider routing (`params.provider`): the keys hearth checks at load, the rule
//! that merges layers of `params` (the `provider` object key by key), and which providers it
//! is sent to.
//!
//! OpenRouter reads a `provider` object in the request body (`order`, `only`, `ignore`,
//! `allow_fallbacks`, `data_collection`, `zdr`, ...) to choose the endpoint that serves a model.
//! It is what keeps a hosted fallback in a chosen jurisdiction, or away from providers that keep
//! prompts, so a misspelled key must never load quietly: every key and value is checked against
//! OpenRouter's documented schema, with the path and a suggestion. A key OpenRouter adds later
//! can be sent through `params.extra_body.provider`, which is not checked.
//!
//! Invariant: `provider` reaches OpenRouter only ([`Provider::is_openrouter`]); another server
//! would read it as something else, or refuse it.

use serde_json::{Map, Value as Json};

use crate::decode::{Cx, Obj, Unknown, decode_enum};
use crate::diag::Severity;
use crate::json5::{Node, Value};
use crate::raw::RawProvider;
use crate::resolve::Provider;

/// The `params` key OpenRouter's provider routing is written under (and sent as).
pub const PARAMS_KEY: &str = "provider";

/// The built-in id of OpenRouter.
const OPENROUTER_ID: &str = "openrouter";
/// OpenRouter's host; its in-region hosts (`eu.openrouter.ai`, `us.openrouter.ai`) are under it.
const OPENROUTER_HOST: &str = "openrouter.ai";

/// Lists of provider slugs.
const SLUG_LISTS: &[&str] = &["order", "only", "ignore"];
const FLAGS: &[&str] =
    &["allow_fallbacks", "require_parameters", "zdr", "enforce_distillable_text"];
const DATA_COLLECTION: &[&str] = &["allow", "deny"];
const QUANTIZATIONS: &[&str] =
    &["int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"];
/// `sort` (or `sort.by`); `exacto` is in OpenRouter's SDKs beside the three its guide names.
const SORT_BY: &[&str] = &["price", "throughput", "latency", "exacto"];
const SORT_PARTITION: &[&str] = &["model", "none"];
/// `max_price`: USD per million tokens (prompt, completion), per image, audio unit or request.
const MAX_PRICE: &[&str] = &["prompt", "completion", "image", "audio", "request"];
/// `preferred_max_latency` (seconds) and `preferred_min_throughput` (tokens per second): a
/// number (the p50) or cutoffs per percentile.
const PERCENTILES: &[&str] = &["p50", "p75", "p90", "p99"];
const PREFERENCES: &[&str] = &["preferred_max_latency", "preferred_min_throughput"];

/// Merges one layer of `params` over `into`: each key replaces the one below, except
/// `provider`, whose keys replace the ones below one by one (OpenClaw's rule: a model's
/// `params.provider: {sort: "price"}` keeps the provider-wide `only`).
pub fn merge_params(into: &mut Map<String, Json>, layer: &Map<String, Json>) {
    for (key, value) in layer {
        match (into.get_mut(key), value) {
            (Some(Json::Object(below)), Json::Object(over)) if key == PARAMS_KEY => {
                for (k, v) in over {
                    below.insert(k.clone(), v.clone());
                }
            }
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Whether provider `id` at `base_url` is OpenRouter: the id `openrouter`, or a host that is
/// `openrouter.ai` or under it.
pub fn is_openrouter(id: &str, base_url: &url::Url) -> bool {
    id.eq_ignore_ascii_case(OPENROUTER_ID)
        || base_url.host_str().is_some_and(|host| {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == OPENROUTER_HOST
                || host.strip_suffix(OPENROUTER_HOST).is_some_and(|sub| sub.ends_with('.'))
        })
}

// === impl Provider ===

impl Provider {
    /// Whether this provider is OpenRouter ([`is_openrouter`]): the only one `params.provider`
    /// is sent to.
    pub fn is_openrouter(&self) -> bool {
        is_openrouter(&self.id, &self.base_url)
    }
}

/// Checks `provider` in a `params` object (the current path is the `params` key).
pub(crate) fn check_params(params: &Node, cx: &mut Cx<'_>) {
    let Value::Object(members) = &params.value else {
        return;
    };
    // The last one wins, as everywhere (the decoder warns about the duplicate).
    if let Some(member) = members.iter().rev().find(|m| m.key == PARAMS_KEY) {
        cx.push_key(PARAMS_KEY);
        check_routing(&member.value, cx);
        cx.pop();
    }
}

/// Warns about `params.provider` written for a configured provider that is not OpenRouter, or
/// for a model of it: hearth does not send it there.
pub(crate) fn check_provider(provider: &Provider, raw: &RawProvider, cx: &mut Cx<'_>) {
    if provider.is_openrouter() {
        return;
    }
    check_target(provider, raw.params.as_ref(), cx);
    for (idx, model) in raw.models.iter().flatten().enumerate() {
        cx.push_key("models");
        cx.push_index(idx);
        check_target(provider, model.params.as_ref(), cx);
        cx.pop();
        cx.pop();
    }
}

/// Warns when `params` (of a model of `provider`) carry `provider` and `provider` is not
/// OpenRouter (the current path is the object holding `params`).
pub(crate) fn check_target(provider: &Provider, params: Option<&Json>, cx: &mut Cx<'_>) {
    if provider.is_openrouter() || params.and_then(|p| p.get(PARAMS_KEY)).is_none() {
        return;
    }
    cx.push_key("params");
    cx.push_key(PARAMS_KEY);
    let path = cx.path_string();
    cx.report(
        Severity::Warning,
        "routing-not-sent",
        None,
        format!(
            "`{path}` is OpenRouter's provider routing and is only sent to OpenRouter; `{}` is not OpenRouter, so hearth does not send it",
            provider.id
        ),
        Some(
            "write it under the `openrouter` provider (or one whose baseUrl is on openrouter.ai), or remove it"
                .to_owned(),
        ),
    );
    cx.pop();
    cx.pop();
}

fn check_routing(node: &Node, cx: &mut Cx<'_>) {
    let Some(mut obj) = Obj::new(node, cx) else {
        return;
    };
    for &key in SLUG_LISTS {
        if let Some(list) = obj.node(key, cx) {
            cx.push_key(key);
            slugs(list, cx);
            cx.pop();
        }
    }
    for &key in FLAGS {
        let _: Option<bool> = obj.get(key, cx);
    }
    if let Some(value) = obj.node("data_collection", cx) {
        cx.push_key("data_collection");
        choice(value, cx, DATA_COLLECTION);
        cx.pop();
    }
    if let Some(list) = obj.node("quantizations", cx) {
        cx.push_key("quantizations");
        if let Value::Array(items) = &list.value {
            for (idx, item) in items.iter().enumerate() {
                cx.push_index(idx);
                choice(item, cx, QUANTIZATIONS);
                cx.pop();
            }
        } else {
            cx.type_error(list, "array of quantization levels");
        }
        cx.pop();
    }
    if let Some(sort) = obj.node("sort", cx) {
        cx.push_key("sort");
        check_sort(sort, cx);
        cx.pop();
    }
    if let Some(max_price) = obj.node("max_price", cx) {
        cx.push_key("max_price");
        if let Some(mut prices) = Obj::new(max_price, cx) {
            for &key in MAX_PRICE {
                if let Some(price) = prices.node(key, cx) {
                    cx.push_key(key);
                    amount(price, cx, true);
                    cx.pop();
                }
            }
            prices.finish(cx, Unknown::Error);
        }
        cx.pop();
    }
    for &key in PREFERENCES {
        if let Some(preference) = obj.node(key, cx) {
            cx.push_key(key);
            check_preference(preference, cx);
            cx.pop();
        }
    }
    obj.finish(cx, Unknown::Error);
}

/// `sort`: `"price"` (a strategy) or `{by, partition}`.
fn check_sort(node: &Node, cx: &mut Cx<'_>) {
    match &node.value {
        Value::String(_) => choice(node, cx, SORT_BY),
        Value::Object(_) => {
            let Some(mut obj) = Obj::new(node, cx) else {
                return;
            };
            if let Some(by) = obj.node("by", cx) {
                cx.push_key("by");
                choice(by, cx, SORT_BY);
                cx.pop();
            }
            if let Some(partition) = obj.node("partition", cx) {
                cx.push_key("partition");
                choice(partition, cx, SORT_PARTITION);
                cx.pop();
            }
            obj.finish(cx, Unknown::Error);
        }
        _ => cx.type_error(node, "\"price\", \"throughput\" or \"latency\", or {by, partition}"),
    }
}

/// A preferred latency or throughput: a number (the p50) or `{p50, p75, p90, p99}`.
fn check_preference(node: &Node, cx: &mut Cx<'_>) {
    match &node.value {
        Value::Object(_) => {
            let Some(mut obj) = Obj::new(node, cx) else {
                return;
            };
            for &key in PERCENTILES {
                if let Some(cutoff) = obj.node(key, cx) {
                    cx.push_key(key);
                    amount(cutoff, cx, false);
                    cx.pop();
                }
            }
            obj.finish(cx, Unknown::Error);
        }
        _ => amount(node, cx, false),
    }
}

/// An array of provider slugs (`"deepinfra"`, `"deepinfra/fp8"`).
fn slugs(node: &Node, cx: &mut Cx<'_>) {
    let Value::Array(items) = &node.value else {
        cx.type_error(node, "array of provider slugs");
        return;
    };
    for (idx, item) in items.iter().enumerate() {
        cx.push_index(idx);
        match &item.value {
            Value::String(slug) if !slug.trim().is_empty() => {}
            Value::String(_) => {
                let path = cx.path_string();
                cx.error(
                    "invalid-value",
                    item.span,
                    format!("{path}: a provider slug cannot be empty"),
                    Some("write OpenRouter's slug, e.g. \"deepinfra\" or \"deepinfra/fp8\"".into()),
                );
            }
            _ => cx.type_error(item, "provider slug (string)"),
        }
        cx.pop();
    }
}

/// One of `names`, with a suggestion on a miss.
fn choice(node: &Node, cx: &mut Cx<'_>, names: &[&'static str]) {
    let pairs: Vec<(&'static str, ())> = names.iter().map(|n| (*n, ())).collect();
    let _ = decode_enum(node, cx, &pairs);
}

/// A number, 0 or more (prices may be written as strings, as OpenRouter's API takes them).
fn amount(node: &Node, cx: &mut Cx<'_>, strings_too: bool) {
    let value = match &node.value {
        Value::String(s) if strings_too => s.trim().parse::<f64>().ok(),
        Value::Number(n) => Some(n.as_f64()),
        _ => {
            cx.type_error(node, if strings_too { "number (or numeric string)" } else { "number" });
            return;
        }
    };
    if value.is_none_or(|v| !v.is_finite() || v < 0.0) {
        let path = cx.path_string();
        cx.error("range", node.span, format!("{path}: expected a number, 0 or more"), None);
    }
}
