//! Terminal and JSON rendering for the CLI.

use std::io::Write;

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use hearth_config::json5::{Node, Value};
use hearth_config::model_ref::{Resolved, ResolvedBy};
use hearth_config::{Chain, Config, Cost, Diagnostic, Model, ModelRef, Origin, Provider, RefError};
use serde_json::{Value as Json, json};

/// Renders diagnostics like a compiler: headline, location, source line, caret, help.
pub fn diagnostics(out: &mut impl Write, diagnostics: &[Diagnostic]) -> std::io::Result<()> {
    for d in diagnostics {
        writeln!(out, "{}[{}]: {}", d.severity.as_str(), d.code, d.message)?;
        if let Some(loc) = &d.location {
            let line_no = loc.line.to_string();
            let pad = " ".repeat(line_no.len());
            writeln!(out, "{pad}--> {loc}")?;
            if !loc.line_text.is_empty() {
                let text = loc.line_text.replace('\t', " ");
                writeln!(out, "{pad} |")?;
                writeln!(out, "{line_no} | {text}")?;
                let indent = " ".repeat(loc.column.saturating_sub(1));
                writeln!(out, "{pad} | {indent}{}", "^".repeat(loc.width.min(80)))?;
            }
            if let Some(path) = &d.path {
                writeln!(out, "{pad} = at: {path}")?;
            }
            if let Some(help) = &d.help {
                writeln!(out, "{pad} = help: {help}")?;
            }
        } else {
            if let Some(path) = &d.path {
                writeln!(out, "  = at: {path}")?;
            }
            if let Some(help) = &d.help {
                writeln!(out, "  = help: {help}")?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The one shape every command prints an error in with `--json`:
/// `{"ok": false, "error": {"code": …, "message": …, "help": …}}` on stdout (the diagnostics
/// stay on stderr). `code` is snake_case and stable; where the HTTP API reports the same
/// thing it is the same code (`model_not_found`, `model_not_allowed`), and an upstream
/// failure's code is its error class (`connect`, `auth`, …).
pub fn error_json(code: &str, message: &str, help: Option<&str>) -> serde_json::Value {
    let mut error = serde_json::Map::new();
    error.insert("code".into(), json!(code));
    error.insert("message".into(), json!(message));
    if let Some(help) = help {
        error.insert("help".into(), json!(help));
    }
    json!({"ok": false, "error": error})
}

/// Prints [`error_json`] on stdout.
pub fn print_error_json(code: &str, message: &str, help: Option<&str>) -> std::io::Result<()> {
    let value = error_json(code, message, help);
    let text = serde_json::to_string_pretty(&value).map_err(std::io::Error::other)?;
    writeln!(std::io::stdout().lock(), "{text}")
}

/// The [`error_json`] code of a model reference that did not resolve.
pub fn ref_error_code(e: &RefError) -> &'static str {
    match e {
        RefError::UnknownProvider { .. }
        | RefError::UnknownModel { .. }
        | RefError::NotInCatalog { .. } => "model_not_found",
        RefError::Ambiguous { .. } => "model_ambiguous",
        RefError::NoDefault => "no_default_model",
        RefError::UnknownAgent(_) => "agent_not_found",
        RefError::NotAllowed { .. } => "model_not_allowed",
    }
}

pub fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    json!({
        "severity": d.severity.as_str(),
        "code": d.code,
        "message": d.message,
        "path": d.path,
        "file": d.location.as_ref().map(|l| l.file.display().to_string()),
        "line": d.location.as_ref().map(|l| l.line),
        "column": d.location.as_ref().map(|l| l.column),
        "help": d.help,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl Segment {
    pub fn key(&self) -> Option<&str> {
        match self {
            Segment::Key(k) => Some(k),
            Segment::Index(_) => None,
        }
    }
}

/// Parses `a.b[0]["c/d"].e`.
pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Segment>| {
        if !word.is_empty() {
            out.push(Segment::Key(std::mem::take(word)));
        }
    };
    while i < chars.len() {
        match chars[i] {
            '.' => flush(&mut word, &mut out),
            '[' => {
                flush(&mut word, &mut out);
                let close = chars[i..].iter().position(|c| *c == ']').ok_or("unclosed `[`")? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(quoted) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    out.push(Segment::Key(quoted.to_owned()));
                } else {
                    out.push(Segment::Index(inner.parse().map_err(|_| {
                        format!("`[{inner}]` is neither an index nor a quoted key")
                    })?));
                }
                i = close;
            }
            c => word.push(c),
        }
        i += 1;
    }
    flush(&mut word, &mut out);
    if out.is_empty() {
        return Err("empty path".to_owned());
    }
    Ok(out)
}

pub fn lookup<'n>(node: &'n Node, path: &[Segment]) -> Option<&'n Node> {
    let mut current = node;
    for seg in path {
        current = match (seg, &current.value) {
            (Segment::Key(k), Value::Object(_)) => current.get(k)?,
            (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(current)
}

const SECRET_KEYS: &[&str] =
    &["apikey", "token", "password", "authorization", "x-api-key", "api-key", "secret"];

fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|s| lower == *s || lower.ends_with(s))
}

/// Replaces secret strings by `***`. Header maps are secret by value. Secret references
/// (`{source, id}`) say where a secret lives, not what it is, and are kept.
pub fn redact(value: serde_json::Value, key: Option<&str>) -> serde_json::Value {
    let secret_here = key.is_some_and(is_secret_key);
    match value {
        serde_json::Value::String(_) if secret_here => serde_json::Value::String("***".to_owned()),
        serde_json::Value::Object(map) => {
            let headers = key.is_some_and(|k| k == "headers");
            serde_json::Value::Object(
                map.into_iter()
                    .map(|(k, v)| {
                        let v = if headers && v.is_string() {
                            serde_json::Value::String("***".to_owned())
                        } else {
                            redact(v, Some(&k))
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(|v| redact(v, key)).collect())
        }
        other => other,
    }
}

pub struct ListView<'c> {
    pub rows: Vec<(ModelRef, &'c Provider, Model)>,
    pub notes: Vec<String>,
}

/// Which rows `models list` shows. Default: rows written in the config, rows of providers the
/// agents refer to, and referenced models no catalog lists; with nothing configured, everything.
pub fn list_view<'c>(config: &'c Config, all: bool, provider: Option<&str>) -> ListView<'c> {
    let rows = config.rows();
    let total = rows.len();
    let referenced_providers: Vec<String> = config
        .referenced()
        .iter()
        .filter_map(|r| config.resolve_ref(r).ok())
        .map(|r| r.model_ref.provider)
        .collect();
    let configured = rows.iter().any(|(_, _, m)| m.origin != Origin::Builtin)
        || !referenced_providers.is_empty();
    let provider = provider.map(str::to_ascii_lowercase);
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|(r, _, m)| match &provider {
            Some(p) => &r.provider == p,
            None => {
                all || !configured
                    || m.origin != Origin::Builtin
                    || referenced_providers.contains(&r.provider)
            }
        })
        .collect();
    let mut notes = Vec::new();
    if provider.is_none() && rows.len() < total {
        notes.push(format!("{} more built-in rows: hearth models list --all", total - rows.len()));
    }
    let empty: Vec<String> = config
        .providers
        .values()
        .filter(|p| p.models.is_empty() && provider.as_ref().is_none_or(|id| *id == p.id))
        .filter(|p| all || provider.is_some() || !configured || p.origin == Origin::Config)
        .map(|p| format!("{} ({})", p.id, p.base_url.as_str().trim_end_matches('/')))
        .collect();
    if !empty.is_empty() {
        notes.push(format!(
            "providers with no listed models (name one as provider/<model id>; the server serves it): {}",
            empty.join(", ")
        ));
    }
    ListView { rows, notes }
}

fn price(v: f64) -> String {
    if v == 0.0 { "$0".to_owned() } else { format!("${}", (v * 1000.0).round() / 1000.0) }
}

fn context(m: &Model) -> String {
    match (m.context_tokens, m.context_window) {
        (Some(t), Some(w)) if t != w => format!("{t}/{w}"),
        (Some(t), _) => t.to_string(),
        (None, Some(w)) => w.to_string(),
        (None, None) => "-".to_owned(),
    }
}

pub fn rows_table(config: &Config, rows: &[(ModelRef, &Provider, Model)]) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "REF", "ALIAS", "API", "CONTEXT", "MAX OUT", "INPUT", "$/M IN", "$/M OUT", "SOURCE",
    ]);
    for (model_ref, _, m) in rows {
        let (cost_in, cost_out) = match m.cost {
            Some(Cost { input, output, .. }) => (price(input), price(output)),
            None => ("?".to_owned(), "?".to_owned()),
        };
        table.add_row(vec![
            Cell::new(model_ref.to_string()),
            Cell::new(config.alias_of(model_ref).unwrap_or("")),
            Cell::new(m.api.as_str()),
            Cell::new(context(m)).set_alignment(CellAlignment::Right),
            Cell::new(m.max_tokens).set_alignment(CellAlignment::Right),
            Cell::new(m.input.iter().map(|i| i.as_str()).collect::<Vec<_>>().join("+")),
            Cell::new(cost_in).set_alignment(CellAlignment::Right),
            Cell::new(cost_out).set_alignment(CellAlignment::Right),
            Cell::new(m.origin.as_str()),
        ]);
    }
    table.to_string()
}

fn model_json(
    config: &Config,
    model_ref: &ModelRef,
    provider: &Provider,
    m: &Model,
) -> serde_json::Value {
    json!({
        "ref": model_ref.to_string(),
        "provider": model_ref.provider,
        "model": m.id,
        "name": m.name,
        "alias": config.alias_of(model_ref),
        "api": m.api.as_str(),
        "baseUrl": provider.base_url.as_str(),
        "contextWindow": m.context_window,
        "contextTokens": m.context_tokens,
        "contextBudget": m.context_budget(),
        "maxTokens": m.max_tokens,
        "input": m.input.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "reasoning": m.reasoning,
        "cost": m.cost.map(|c| json!({"input": c.input, "output": c.output, "cacheRead": c.cache_read, "cacheWrite": c.cache_write})),
        "local": provider.is_local(),
        "source": m.origin.as_str(),
    })
}

pub fn rows_json(config: &Config, rows: &[(ModelRef, &Provider, Model)]) -> serde_json::Value {
    serde_json::Value::Array(rows.iter().map(|(r, p, m)| model_json(config, r, p, m)).collect())
}

fn by_str(by: ResolvedBy) -> &'static str {
    match by {
        ResolvedBy::Alias => "alias",
        ResolvedBy::Ref => "ref",
        ResolvedBy::UniqueId => "unique model id",
    }
}

/// The provider routing a candidate is sent with for `agent`: OpenRouter's `params.provider`,
/// merged as the request body gets it (`None` for any other provider, which never gets it).
fn provider_routing(
    config: &Config,
    agent: Option<&str>,
    resolved: &Resolved<'_>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let params = config.params_for(agent, &resolved.model_ref);
    hearth_upstream::Target {
        provider: resolved.provider,
        model: &resolved.model,
        params: params.as_ref(),
        served_max: None,
    }
    .provider_routing()
}

/// One line for `models resolve`: `only [deepinfra/us] · fallbacks off · data collection deny
/// · zdr`, in the order the config wrote the keys.
fn provider_routing_text(routing: &serde_json::Map<String, Json>) -> String {
    fn plain(value: &Json) -> String {
        match value {
            Json::String(s) => s.clone(),
            Json::Array(items) => {
                format!("[{}]", items.iter().map(plain).collect::<Vec<_>>().join(", "))
            }
            Json::Object(map) => {
                map.iter().map(|(k, v)| format!("{k} {}", plain(v))).collect::<Vec<_>>().join(", ")
            }
            other => other.to_string(),
        }
    }
    fn on_off(on: bool) -> &'static str {
        if on { "on" } else { "off" }
    }
    let parts: Vec<String> = routing
        .iter()
        .map(|(key, value)| match (key.as_str(), value) {
            ("allow_fallbacks", Json::Bool(on)) => format!("fallbacks {}", on_off(*on)),
            ("zdr", Json::Bool(true)) => "zdr".to_owned(),
            ("require_parameters", Json::Bool(true)) => "require parameters".to_owned(),
            ("enforce_distillable_text", Json::Bool(true)) => "distillable text only".to_owned(),
            (_, Json::Bool(on)) => format!("{} {}", key.replace('_', " "), on_off(*on)),
            ("sort", Json::Object(sort)) => {
                let by = sort.get("by").map(plain).unwrap_or_default();
                match sort.get("partition") {
                    Some(partition) => format!("sort {by} (partition {})", plain(partition)),
                    None => format!("sort {by}"),
                }
            }
            ("preferred_max_latency" | "preferred_min_throughput", cutoffs) => {
                let unit = if key == "preferred_max_latency" { "s" } else { "tok/s" };
                let cutoffs = match cutoffs {
                    Json::Object(map) => map
                        .iter()
                        .map(|(p, v)| format!("{p} {} {unit}", plain(v)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => format!("{} {unit}", plain(other)),
                };
                format!("{} {cutoffs}", key.replace('_', " "))
            }
            _ => format!("{} {}", key.replace('_', " "), plain(value)),
        })
        .collect();
    parts.join(" · ")
}

pub fn resolve_json(
    config: &Config,
    agent: Option<&str>,
    input: Option<&str>,
    chain: &Chain,
) -> serde_json::Value {
    let resolved = input.and_then(|i| config.resolve_ref(i).ok());
    let candidates: Vec<serde_json::Value> = chain
        .candidates
        .iter()
        .filter_map(|r| config.resolve_ref(&r.to_string()).ok())
        .map(|r| {
            let mut v = model_json(config, &r.model_ref, r.provider, &r.model);
            if let serde_json::Value::Object(map) = &mut v {
                map.insert("allowed".into(), json!(config.allows(None, &r.model_ref)));
                map.insert("providerRouting".into(), json!(provider_routing(config, agent, &r)));
            }
            v
        })
        .collect();
    json!({
        "ok": true,
        "input": input,
        "resolved": resolved.as_ref().map(|r| r.model_ref.to_string()),
        "resolvedBy": resolved.as_ref().map(|r| by_str(r.by)),
        "strict": chain.strict,
        "chain": chain.candidates.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "candidates": candidates,
    })
}

pub fn resolve_text(
    config: &Config,
    agent: Option<&str>,
    input: Option<&str>,
    chain: &Chain,
) -> String {
    let mut out = String::new();
    match input.and_then(|i| config.resolve_ref(i).ok().map(|r| (i, r))) {
        Some((i, r)) => {
            out.push_str(&format!("{}\n", r.model_ref));
            if i.trim() != r.model_ref.to_string() {
                out.push_str(&format!("  `{}` resolved by {}\n", i.trim(), by_str(r.by)));
            }
        }
        None => out.push_str("default chain\n"),
    }
    let arrow: Vec<String> = chain.candidates.iter().map(ToString::to_string).collect();
    out.push_str(&format!(
        "chain: {}{}\n",
        arrow.join(" → "),
        if chain.strict { "  (strict: no fallback)" } else { "" }
    ));
    for (idx, model_ref) in chain.candidates.iter().enumerate() {
        if let Ok(r) = config.resolve_ref(&model_ref.to_string()) {
            let m = &r.model;
            let cost = m.cost.map_or("price unknown".to_owned(), |c| {
                format!("{} in / {} out per M", price(c.input), price(c.output))
            });
            let note = if m.origin == Origin::Synthetic {
                ", not in the catalog: the server decides"
            } else {
                ""
            };
            let blocked =
                if config.allows(None, model_ref) { "" } else { ", not in modelPolicy.allow" };
            out.push_str(&format!(
                "  {}. {}  {} {}  context {}  max out {}  {}{}{}\n",
                idx + 1,
                model_ref,
                m.api.as_str(),
                r.provider.base_url.as_str().trim_end_matches('/'),
                if m.context_window.is_none() && m.context_tokens.is_none() {
                    format!("{} (default)", m.context_budget())
                } else {
                    context(m)
                },
                m.max_tokens,
                cost,
                note,
                blocked,
            ));
            if let Some(routing) = provider_routing(config, agent, &r) {
                out.push_str(&format!("     routing: {}\n", provider_routing_text(&routing)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path(r#"agents.defaults.models["lmstudio/x"].alias"#).unwrap(),
            vec![
                Segment::Key("agents".into()),
                Segment::Key("defaults".into()),
                Segment::Key("models".into()),
                Segment::Key("lmstudio/x".into()),
                Segment::Key("alias".into())
            ]
        );
        assert_eq!(parse_path("a.b[2]").unwrap()[2], Segment::Index(2));
        assert!(parse_path("a[").is_err());
        assert!(parse_path("").is_err());
    }

    #[test]
    fn redaction() {
        let v = json!({"apiKey": "sk-1", "token": {"source": "env", "id": "T"}, "headers": {"X-Tenant": "t1"}, "baseUrl": "http://x"});
        let r = redact(v, None);
        assert_eq!(r["apiKey"], "***");
        assert_eq!(r["token"]["id"], "T");
        assert_eq!(r["headers"]["X-Tenant"], "***");
        assert_eq!(r["baseUrl"], "http://x");
        assert_eq!(redact(json!("sk-1"), Some("apiKey")), json!("***"));
    }
}
