//! Reading config files: which file, size and encoding checks, JSON5, `$include`.

use std::path::{Path, PathBuf};

use crate::decode::{Cx, Decode, Env};
use crate::diag::{Diagnostic, Severity};
use crate::json5::{self, Member, Node, Value};
use crate::raw::RawConfig;
use crate::resolve::{self, Config};
use crate::source::{SourceMap, Span};

/// Largest config file accepted (a hand-written config is a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Deepest `$include` chain accepted.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Where the config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config PATH`.
    Flag(PathBuf),
    /// `HEARTH_CONFIG`.
    EnvVar(PathBuf),
    /// `~/.hearth/hearth.json5`, which exists.
    DefaultPath(PathBuf),
    /// No file: built-in defaults. Carries the path that was looked for.
    Builtin(Option<PathBuf>),
}

impl ConfigSource {
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p) | ConfigSource::EnvVar(p) | ConfigSource::DefaultPath(p) => {
                Some(p)
            }
            ConfigSource::Builtin(_) => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ConfigSource::Flag(p) => format!("{} (--config)", p.display()),
            ConfigSource::EnvVar(p) => format!("{} (HEARTH_CONFIG)", p.display()),
            ConfigSource::DefaultPath(p) => p.display().to_string(),
            ConfigSource::Builtin(Some(p)) => {
                format!("built-in defaults ({} does not exist)", p.display())
            }
            ConfigSource::Builtin(None) => "built-in defaults".to_owned(),
        }
    }
}

/// Picks the config file: `--config PATH` > `HEARTH_CONFIG` > `~/.hearth/hearth.json5`.
/// An explicitly named file must exist (loading reports it); the default path may be absent.
pub fn locate(flag: Option<&Path>, env: &dyn Env) -> ConfigSource {
    if let Some(path) = flag {
        return ConfigSource::Flag(path.to_owned());
    }
    if let Some(path) = env.var("HEARTH_CONFIG").filter(|p| !p.is_empty()) {
        return ConfigSource::EnvVar(PathBuf::from(path));
    }
    let home = env.var("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    match home {
        Some(home) => {
            let path = home.join(".hearth").join("hearth.json5");
            if path.exists() {
                ConfigSource::DefaultPath(path)
            } else {
                ConfigSource::Builtin(Some(path))
            }
        }
        None => ConfigSource::Builtin(None),
    }
}

/// The result of loading: the config when no diagnostic is an error, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
    /// The merged tree after `$include` (for `config get`); `None` for built-in defaults.
    pub tree: Option<Node>,
    pub sources: SourceMap,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads the config from `source`.
pub fn load(source: &ConfigSource, env: &dyn Env) -> Loaded {
    match source.path() {
        Some(path) => load_file(path, env),
        None => finish(None, SourceMap::default(), Vec::new(), env),
    }
}

/// Loads one file (and what it includes).
pub fn load_file(path: &Path, env: &dyn Env) -> Loaded {
    let mut sources = SourceMap::default();
    let mut diagnostics = Vec::new();
    let root_dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .and_then(|p| p.canonicalize().ok());
    let tree = match read_source(path, &mut sources) {
        Ok(node) => {
            let mut includes =
                Includes { root_dir, stack: Vec::new(), diagnostics: &mut diagnostics };
            if let Ok(canonical) = path.canonicalize() {
                includes.stack.push(canonical);
            }
            Some(includes.expand(node, &mut sources))
        }
        Err(diagnostic) => {
            diagnostics.push(*diagnostic);
            None
        }
    };
    finish(tree, sources, diagnostics, env)
}

/// Loads config text that is not on disk (tests, fuzzing). `$include` resolves against the
/// current directory.
pub fn load_str(name: &str, text: &str, env: &dyn Env) -> Loaded {
    let mut sources = SourceMap::default();
    let mut diagnostics = Vec::new();
    let file = sources.add(Path::new(name), text.to_owned());
    let tree = match json5::parse(text, file) {
        Ok(node) => {
            let mut includes = Includes {
                root_dir: std::env::current_dir().ok(),
                stack: Vec::new(),
                diagnostics: &mut diagnostics,
            };
            Some(includes.expand(node, &mut sources))
        }
        Err(e) => {
            diagnostics.push(syntax_diagnostic(&sources, e));
            None
        }
    };
    finish(tree, sources, diagnostics, env)
}

fn finish(
    tree: Option<Node>,
    sources: SourceMap,
    mut diagnostics: Vec<Diagnostic>,
    env: &dyn Env,
) -> Loaded {
    let mut cx = Cx::new(&sources, env);
    let raw = match &tree {
        Some(node) => RawConfig::decode(node, &mut cx),
        None if diagnostics.is_empty() => Some(RawConfig::default()),
        None => None,
    };
    let config = raw.and_then(|raw| resolve::resolve(&raw, &mut cx));
    diagnostics.append(&mut cx.diagnostics);
    // Errors first, then warnings, each group in file order.
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            (d.severity, d.location.as_ref().map(|l| (l.file.clone(), l.line, l.column)))
        };
        key(a).cmp(&key(b))
    });
    let config = if diagnostics.iter().any(Diagnostic::is_error) { None } else { config };
    Loaded { config, diagnostics, tree, sources }
}

fn file_diagnostic(path: &Path, message: String, help: Option<String>) -> Box<Diagnostic> {
    Box::new(Diagnostic {
        severity: Severity::Error,
        code: "file",
        message,
        path: None,
        location: Some(crate::source::Location {
            file: path.to_owned(),
            line: 1,
            column: 1,
            line_text: String::new(),
            width: 1,
        }),
        help,
    })
}

fn syntax_diagnostic(sources: &SourceMap, error: json5::SyntaxError) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        code: "syntax",
        message: error.message,
        path: None,
        location: sources.locate(error.span),
        help: error.help,
    }
}

/// Reads, checks and parses one file into `sources`.
fn read_source(path: &Path, sources: &mut SourceMap) -> Result<Node, Box<Diagnostic>> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        let help = (e.kind() == std::io::ErrorKind::NotFound).then(|| {
            "check the path, or run without --config/HEARTH_CONFIG to use built-in defaults"
                .to_owned()
        });
        file_diagnostic(path, format!("cannot read config file: {e}"), help)
    })?;
    if metadata.is_dir() {
        return Err(file_diagnostic(
            path,
            "the config path is a directory".to_owned(),
            Some("name the file, e.g. ~/.hearth/hearth.json5".into()),
        ));
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(file_diagnostic(
            path,
            format!("config file is {} bytes; the limit is {MAX_FILE_BYTES}", metadata.len()),
            Some("a config is a few kilobytes; is this the right file?".to_owned()),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| file_diagnostic(path, format!("cannot read config file: {e}"), None))?;
    match String::from_utf8(bytes) {
        Ok(text) => {
            let file = sources.add(path, text);
            let text = sources.text(file).unwrap_or_default();
            json5::parse(text, file).map_err(|e| Box::new(syntax_diagnostic(sources, e)))
        }
        Err(e) => {
            let valid_up_to = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // Lossy decoding keeps the valid prefix byte for byte, so the offset still holds.
            let file = sources.add(path, lossy);
            Err(Box::new(Diagnostic {
                severity: Severity::Error,
                code: "encoding",
                message: "the config file is not valid UTF-8".to_owned(),
                path: None,
                location: sources.locate(Span::new(file, valid_up_to, valid_up_to + 1)),
                help: Some("save the file as UTF-8".to_owned()),
            }))
        }
    }
}

struct Includes<'d> {
    /// Includes must stay inside the main config's directory.
    root_dir: Option<PathBuf>,
    /// Canonical paths of the files being expanded, outermost first (cycle detection).
    stack: Vec<PathBuf>,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl Includes<'_> {
    /// Replaces every `{$include: ..., siblings...}` object by the included content with the
    /// siblings merged over it.
    fn expand(&mut self, node: Node, sources: &mut SourceMap) -> Node {
        match node.value {
            Value::Array(items) => {
                let items = items.into_iter().map(|n| self.expand(n, sources)).collect();
                Node { value: Value::Array(items), span: node.span }
            }
            Value::Object(members) => {
                let (includes, siblings): (Vec<Member>, Vec<Member>) =
                    members.into_iter().partition(|m| m.key == "$include");
                let siblings: Vec<Member> = siblings
                    .into_iter()
                    .map(|m| Member { value: self.expand(m.value, sources), ..m })
                    .collect();
                let Some(include) = includes.into_iter().last() else {
                    return Node { value: Value::Object(siblings), span: node.span };
                };
                let targets: Vec<&Node> = match &include.value.value {
                    Value::String(_) => vec![&include.value],
                    Value::Array(items) => items.iter().collect(),
                    _ => vec![],
                };
                let mut merged: Option<Node> = None;
                for target in targets {
                    let Value::String(rel) = &target.value else {
                        self.error(
                            sources,
                            target.span,
                            "`$include` takes a file path or an array of paths",
                            None,
                        );
                        continue;
                    };
                    if let Some(included) = self.include_one(rel, target.span, sources) {
                        merged = Some(match merged {
                            Some(base) => merge(base, included),
                            None => included,
                        });
                    }
                }
                if matches!(
                    include.value.value,
                    Value::Object(_) | Value::Null | Value::Bool(_) | Value::Number(_)
                ) {
                    self.error(
                        sources,
                        include.value.span,
                        "`$include` takes a file path or an array of paths",
                        None,
                    );
                }
                let own = Node { value: Value::Object(siblings), span: node.span };
                match merged {
                    None => own,
                    Some(included) => {
                        let own_is_empty = matches!(&own.value, Value::Object(m) if m.is_empty());
                        if own_is_empty {
                            included
                        } else if !matches!(included.value, Value::Object(_)) {
                            self.error(
                                sources,
                                include.key_span,
                                "the included file holds a non-object value, which cannot be merged with the keys beside `$include`",
                                Some("make the included file an object, or remove the sibling keys".into()),
                            );
                            own
                        } else {
                            merge(included, own)
                        }
                    }
                }
            }
            value => Node { value, span: node.span },
        }
    }

    fn error(&mut self, sources: &SourceMap, span: Span, message: &str, help: Option<String>) {
        self.diagnostics.push(Diagnostic {
            severity: Severity::Error,
            code: "include",
            message: message.to_owned(),
            path: None,
            location: sources.locate(span),
            help,
        });
    }

    fn include_one(&mut self, rel: &str, span: Span, sources: &mut SourceMap) -> Option<Node> {
        let base_dir = sources
            .path(span.file)
            .and_then(Path::parent)
            .map(
                |p| if p.as_os_str().is_empty() { Path::new(".").to_owned() } else { p.to_owned() },
            )
            .unwrap_or_else(|| PathBuf::from("."));
        let candidate = base_dir.join(rel);
        let canonical = match candidate.canonicalize() {
            Ok(p) => p,
            Err(e) => {
                self.error(
                    sources,
                    span,
                    &format!("cannot include `{rel}`: {e}"),
                    Some(format!("looked for {}", candidate.display())),
                );
                return None;
            }
        };
        if let Some(root) = &self.root_dir
            && !canonical.starts_with(root)
        {
            self.error(
                sources,
                span,
                &format!("`$include` of `{rel}` escapes the config directory"),
                Some(format!("included files must live under {}", root.display())),
            );
            return None;
        }
        if self.stack.contains(&canonical) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.display().to_string())
                .collect();
            self.error(
                sources,
                span,
                "`$include` cycle",
                Some(format!("the chain is {}", chain.join(" -> "))),
            );
            return None;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.error(
                sources,
                span,
                &format!("`$include` nested deeper than {MAX_INCLUDE_DEPTH} files"),
                None,
            );
            return None;
        }
        match read_source(&canonical, sources) {
            Ok(node) => {
                self.stack.push(canonical);
                let expanded = self.expand(node, sources);
                self.stack.pop();
                Some(expanded)
            }
            Err(diagnostic) => {
                self.diagnostics.push(*diagnostic);
                None
            }
        }
    }
}

/// Deep-merges `over` into `base`: objects merge key by key, anything else is replaced.
fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Object(mut base_members), Value::Object(over_members)) => {
            for member in over_members {
                match base_members.iter().position(|m| m.key == member.key) {
                    Some(idx) => {
                        let existing = base_members.remove(idx);
                        let value = merge(existing.value, member.value);
                        base_members.insert(idx, Member { value, ..member });
                    }
                    None => base_members.push(member),
                }
            }
            Node { value: Value::Object(base_members), span: over.span }
        }
        (_, value) => Node { value, span: over.span },
    }
}
