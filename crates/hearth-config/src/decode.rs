//! Decoding the span-carrying JSON5 tree into the raw config types, collecting every problem.
//!
//! Serde stops at the first error and loses positions; this decoder keeps going, so a file with
//! three mistakes reports three diagnostics, each with a path and a `file:line:col`.

use std::collections::BTreeMap;

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Severity, suggest};
use crate::json5::{Node, Number, Value};
use crate::source::{SourceMap, Span};

/// Reads environment variables (a trait so tests do not touch the process environment).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// What an unknown key means where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// A section hearth owns whole (`models`): every unknown key is an error.
    Error,
    /// A section shared with OpenClaw: unknown keys warn (OpenClaw has many hearth does not
    /// implement), but a near miss of a key hearth implements is an error.
    Warn,
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Decoding context: the environment, the source map and the diagnostics collected so far.
pub struct Cx<'a> {
    pub sources: &'a SourceMap,
    env: &'a dyn Env,
    path: Vec<Seg>,
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Debug for Cx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cx").field("path", &self.path_string()).finish_non_exhaustive()
    }
}

impl<'a> Cx<'a> {
    pub fn new(sources: &'a SourceMap, env: &'a dyn Env) -> Self {
        Cx { sources, env, path: Vec::new(), diagnostics: Vec::new() }
    }

    pub fn env(&self) -> &dyn Env {
        self.env
    }

    /// The current JSON path in the dotted form users write (`a.b[0]["x/y"]`).
    pub fn path_string(&self) -> String {
        render_path(&self.path)
    }

    pub fn push_key(&mut self, key: &str) {
        self.path.push(Seg::Key(key.to_owned()));
    }

    pub fn push_index(&mut self, index: usize) {
        self.path.push(Seg::Index(index));
    }

    pub fn pop(&mut self) {
        self.path.pop();
    }

    pub fn report(
        &mut self,
        severity: Severity,
        code: &'static str,
        span: Option<Span>,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let path = self.path_string();
        self.diagnostics.push(Diagnostic {
            severity,
            code,
            message: message.into(),
            path: (!path.is_empty()).then_some(path),
            location: span.and_then(|s| self.sources.locate(s)),
            help,
        });
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.report(Severity::Error, code, Some(span), message, help);
    }

    pub fn warn(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        self.report(Severity::Warning, code, Some(span), message, help);
    }

    pub fn type_error(&mut self, node: &Node, expected: &str) {
        let path = self.path_string();
        let found = node.kind();
        self.error("type", node.span, format!("{path}: expected {expected}, found {found}"), None);
    }

    /// Decodes `node` as `T` with `key` pushed on the path.
    pub fn field<T: Decode>(&mut self, key: &str, node: &Node) -> Option<T> {
        self.push_key(key);
        let value = T::decode(node, self);
        self.pop();
        value
    }

    /// Substitutes `${VAR}` in a config string. `$${` is a literal `${`. Names are
    /// `[A-Z_][A-Z0-9_]*`; anything else is left as written.
    pub fn substitute(&mut self, raw: &str, span: Span) -> Option<String> {
        let (out, missing) = expand_vars(raw, self.env);
        for name in &missing {
            self.error(
                "missing-env",
                span,
                format!("environment variable `{name}` is not set"),
                Some(format!(
                    "export {name}=... before starting hearth, or write `$${{{name}}}` for a literal `${{{name}}}`"
                )),
            );
        }
        missing.is_empty().then_some(out)
    }
}

/// Expands `${VAR}` from `env` (`$${` is a literal `${`; names other than `[A-Z_][A-Z0-9_]*`
/// stay as written). Returns the text and the variables that were missing or empty. The one
/// implementation behind config strings and `${VAR}` secrets.
pub(crate) fn expand_vars(raw: &str, env: &dyn Env) -> (String, Vec<String>) {
    let mut missing = Vec::new();
    if !raw.contains("${") {
        return (raw.to_owned(), missing);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(idx) = rest.find('$') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) if is_env_name(&tail[..end]) => {
                    let name = &tail[..end];
                    match env.var(name).filter(|v| !v.is_empty()) {
                        Some(value) => out.push_str(&value),
                        None => missing.push(name.to_owned()),
                    }
                    rest = &tail[end + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    (out, missing)
}

/// `[A-Z_][A-Z0-9_]*`: the variable names `${...}` substitutes.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                let plain = key
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                } else {
                    out.push_str(&format!("[{}]", serde_json::Value::String(key.clone())));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A value decoded from the config tree. `None` means a diagnostic was recorded.
pub trait Decode: Sized {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self>;
}

/// A decoded value together with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Decode> Decode for Spanned<T> {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        T::decode(node, cx).map(|value| Spanned { value, span: node.span })
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl Decode for String {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::String(s) => cx.substitute(s, node.span),
            _ => {
                cx.type_error(node, "string");
                None
            }
        }
    }
}

impl Decode for bool {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            _ => {
                cx.type_error(node, "boolean (true or false)");
                None
            }
        }
    }
}

impl Decode for u64 {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::Number(Number::Int(i)) if *i >= 0 => Some(*i as u64),
            Value::Number(Number::Float(f)) if f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15 => {
                Some(*f as u64)
            }
            Value::Number(_) => {
                let path = cx.path_string();
                cx.error(
                    "range",
                    node.span,
                    format!("{path}: expected a non-negative integer"),
                    None,
                );
                None
            }
            _ => {
                cx.type_error(node, "integer");
                None
            }
        }
    }
}

impl Decode for u16 {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let value = u64::decode(node, cx)?;
        match u16::try_from(value) {
            Ok(v) => Some(v),
            Err(_) => {
                let path = cx.path_string();
                cx.error(
                    "range",
                    node.span,
                    format!("{path}: {value} is out of range (0 to 65535)"),
                    None,
                );
                None
            }
        }
    }
}

impl Decode for f64 {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::Number(n) if n.as_f64().is_finite() => Some(n.as_f64()),
            Value::Number(_) => {
                let path = cx.path_string();
                cx.error("range", node.span, format!("{path}: expected a finite number"), None);
                None
            }
            _ => {
                cx.type_error(node, "number");
                None
            }
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let Value::Array(items) = &node.value else {
            cx.type_error(node, "array");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (idx, item) in items.iter().enumerate() {
            cx.push_index(idx);
            match T::decode(item, cx) {
                Some(v) => out.push(v),
                None => ok = false,
            }
            cx.pop();
        }
        ok.then_some(out)
    }
}

impl<T: Decode> Decode for IndexMap<String, T> {
    fn decode(node: &Node, cx: &mut Cx<'_>) -> Option<Self> {
        let Value::Object(members) = &node.value else {
            cx.type_error(node, "object");
            return None;
        };
        let mut out = IndexMap::with_capacity(members.len());
        for member in members {
            if let Some(v) = cx.field::<T>(&member.key, &member.value)
                && out.insert(member.key.clone(), v).is_some()
            {
                duplicate_warning(cx, &member.key, member.key_span);
            }
        }
        Some(out)
    }
}

impl Decode for serde_json::Value {
    fn decode(node: &Node, _cx: &mut Cx<'_>) -> Option<Self> {
        Some(node.to_json())
    }
}

fn duplicate_warning(cx: &mut Cx<'_>, key: &str, span: Span) {
    cx.warn("duplicate-key", span, format!("key `{key}` appears twice; the last one wins"), None);
}

/// Walks one object, handing out its members by name and reporting what was never asked for.
#[derive(Debug)]
pub struct Obj<'n> {
    node: &'n Node,
    members: &'n [crate::json5::Member],
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'n> Obj<'n> {
    /// `None` (after a diagnostic) when `node` is not an object.
    pub fn new(node: &'n Node, cx: &mut Cx<'_>) -> Option<Self> {
        match &node.value {
            Value::Object(members) => {
                Some(Obj { node, members, used: vec![false; members.len()], known: Vec::new() })
            }
            _ => {
                cx.type_error(node, "object");
                None
            }
        }
    }

    pub fn span(&self) -> Span {
        self.node.span
    }

    /// The node under `key` (the last one when duplicated, with a warning), marked as known.
    pub fn node(&mut self, key: &'static str, cx: &mut Cx<'_>) -> Option<&'n Node> {
        self.known.push(key);
        let mut found: Option<&'n Node> = None;
        for (idx, member) in self.members.iter().enumerate() {
            if member.key == key {
                if found.is_some() {
                    cx.push_key(key);
                    duplicate_warning(cx, key, member.key_span);
                    cx.pop();
                }
                self.used[idx] = true;
                found = Some(&member.value);
            }
        }
        found
    }

    /// Decodes the member `key`, if present.
    pub fn get<T: Decode>(&mut self, key: &'static str, cx: &mut Cx<'_>) -> Option<T> {
        let node = self.node(key, cx)?;
        cx.field(key, node)
    }

    /// Like [`Obj::get`], also accepting alternative spellings (the first key is canonical).
    pub fn get_any<T: Decode>(&mut self, keys: &[&'static str], cx: &mut Cx<'_>) -> Option<T> {
        let mut out = None;
        for key in keys {
            if let Some(v) = self.get(key, cx) {
                out = Some(v);
            }
        }
        out
    }

    /// Members not asked for by name, for maps embedded in structs.
    pub fn rest(&self) -> impl Iterator<Item = &'n crate::json5::Member> + '_ {
        self.members.iter().zip(&self.used).filter(|(_, used)| !**used).map(|(m, _)| m)
    }

    /// Reports the members nobody asked for.
    pub fn finish(self, cx: &mut Cx<'_>, unknown: Unknown) {
        self.finish_with(cx, unknown, &[]);
    }

    /// Like [`Obj::finish`]; `ignored` lists OpenClaw keys that are accepted and ignored with a
    /// specific note, even where unknown keys are errors.
    pub fn finish_with(self, cx: &mut Cx<'_>, unknown: Unknown, ignored: &[(&str, &str)]) {
        for (member, used) in self.members.iter().zip(&self.used) {
            if *used || (member.key == "$schema" && cx.path.is_empty()) {
                continue;
            }
            cx.push_key(&member.key);
            let path = cx.path_string();
            if let Some((_, note)) = ignored.iter().find(|(k, _)| *k == member.key) {
                cx.warn(
                    "ignored-key",
                    member.key_span,
                    format!("`{path}` is ignored: {note}"),
                    None,
                );
            } else {
                let near = suggest(&member.key, self.known.iter().copied());
                match (unknown, near) {
                    (_, Some(near)) => cx.error(
                        "unknown-key",
                        member.key_span,
                        format!("unknown key `{}` at `{path}`", member.key),
                        Some(format!("did you mean `{near}`?")),
                    ),
                    (Unknown::Error, None) => {
                        let mut known = self.known.clone();
                        known.sort_unstable();
                        known.dedup();
                        cx.error(
                            "unknown-key",
                            member.key_span,
                            format!("unknown key `{}` at `{path}`", member.key),
                            Some(format!("known keys here: {}", known.join(", "))),
                        );
                    }
                    (Unknown::Warn, None) => cx.warn(
                        "unsupported-key",
                        member.key_span,
                        format!("`{path}` is not implemented by hearth and is ignored"),
                        Some(
                            "it stays in the file for OpenClaw; see docs/config-compat.md"
                                .to_owned(),
                        ),
                    ),
                }
            }
            cx.pop();
        }
    }
}

/// Decodes a string into one of a fixed set of spellings, with a suggestion on a miss.
pub fn decode_enum<T: Copy>(
    node: &Node,
    cx: &mut Cx<'_>,
    variants: &[(&'static str, T)],
) -> Option<T> {
    let raw = String::decode(node, cx)?;
    if let Some((_, v)) = variants.iter().find(|(name, _)| *name == raw) {
        return Some(*v);
    }
    let names: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
    let path = cx.path_string();
    let help = match suggest(&raw, names.iter().copied()) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("expected one of: {}", names.join(", ")),
    };
    cx.error("invalid-value", node.span, format!("{path}: unknown value `{raw}`"), Some(help));
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    #[test]
    fn paths_render_like_users_write_them() {
        let path = vec![
            Seg::Key("agents".into()),
            Seg::Key("defaults".into()),
            Seg::Key("models".into()),
            Seg::Key("lmstudio/minimax-m2.1-gs32".into()),
            Seg::Key("alias".into()),
        ];
        assert_eq!(
            render_path(&path),
            r#"agents.defaults.models["lmstudio/minimax-m2.1-gs32"].alias"#
        );
        let path = vec![Seg::Key("models".into()), Seg::Key("providers".into()), Seg::Index(0)];
        assert_eq!(render_path(&path), "models.providers[0]");
    }

    #[test]
    fn env_substitution() {
        let sources = SourceMap::default();
        let env: BTreeMap<String, String> = [("KEY".to_owned(), "secret".to_owned())].into();
        let mut cx = Cx::new(&sources, &env);
        let span = Span::new(FileId(0), 0, 0);
        assert_eq!(cx.substitute("a${KEY}b", span).as_deref(), Some("asecretb"));
        assert_eq!(cx.substitute("$${KEY}", span).as_deref(), Some("${KEY}"));
        assert_eq!(cx.substitute("${lower} $5 ${", span).as_deref(), Some("${lower} $5 ${"));
        assert!(cx.diagnostics.is_empty());
        assert_eq!(cx.substitute("${MISSING_ONE}", span), None);
        assert_eq!(cx.diagnostics.len(), 1);
        assert!(cx.diagnostics[0].message.contains("MISSING_ONE"));
    }
}
