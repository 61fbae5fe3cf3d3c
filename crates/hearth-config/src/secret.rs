//! Credentials: where a secret comes from, resolved only when it is used, never printed.

use std::path::PathBuf;

use crate::decode::{Env, expand_vars, is_env_name};
use crate::raw::{RawSecret, SecretSource};

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: String) -> Self {
        SecretString(value)
    }

    /// A secret value that was just read, registered with the process-wide redactor
    /// ([`crate::redact`]) so that an upstream echoing it back cannot show it.
    pub fn registered(value: String) -> Self {
        crate::redact::register(&value);
        SecretString(value)
    }

    /// The secret itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Local markers: non-secret placeholders that local servers accept as a key.
const LOCAL_MARKERS: &[&str] =
    &["lmstudio", "ollama", "sk-local", "no-key", "none", "local", "sk-no-key-required"];

/// Whether a value is a local marker (see [`Secret::is_local_marker`]).
pub(crate) fn is_local_marker_value(value: &str) -> bool {
    LOCAL_MARKERS.contains(&value) || value.ends_with("-local")
}

/// Where a credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// Written in the config.
    Literal(SecretString),
    /// Read from an environment variable when used (`${VAR}`, `{source: "env"}`, or a bare
    /// variable name such as `"OPENAI_API_KEY"`).
    Env(String),
    /// A string with `${VAR}` parts, substituted when used.
    Template(String),
    /// Read from a file when used (trimmed).
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl Secret {
    pub fn from_raw(raw: &RawSecret) -> Secret {
        match raw {
            RawSecret::Ref(r) => match r.source {
                SecretSource::Env => Secret::Env(r.id.clone()),
                SecretSource::File => Secret::File(PathBuf::from(&r.id)),
            },
            RawSecret::Text(text) => {
                if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}'))
                    && is_env_name(name)
                {
                    Secret::Env(name.to_owned())
                } else if text.contains("${") {
                    Secret::Template(text.clone())
                } else if is_env_name(text) && text.contains('_') && text.len() >= 4 {
                    Secret::Env(text.clone())
                } else {
                    Secret::Literal(SecretString::new(text.clone()))
                }
            }
        }
    }

    /// The value, read now. `Ok(None)` only for an empty literal.
    ///
    /// A value read from the environment, a file or a template is registered with the
    /// redactor ([`crate::redact`]), and so is each variable a template substitutes. A literal
    /// is not: whether it is a credential depends on where it sits (an `apiKey` is, a header
    /// such as `X-Title: hearth` is not), so [`Secret::register_literal`] is called for the
    /// credential fields when the config is resolved.
    pub fn resolve(&self, env: &dyn Env) -> Result<Option<SecretString>, SecretError> {
        match self {
            Secret::Literal(s) => Ok((!s.expose().is_empty()).then(|| s.clone())),
            Secret::Env(name) => env
                .var(name)
                .filter(|v| !v.is_empty())
                .map(|v| Some(SecretString::registered(v)))
                .ok_or_else(|| SecretError::MissingEnv(name.clone())),
            Secret::Template(template) => {
                let (out, missing) = expand_vars(template, env);
                match missing.into_iter().next() {
                    Some(name) => Err(SecretError::MissingEnv(name)),
                    None => {
                        // `Bearer ${TOKEN}`: the token alone must be masked too.
                        for part in template.split("${").skip(1) {
                            if let Some((name, _)) = part.split_once('}')
                                && is_env_name(name)
                                && let Some(value) = env.var(name)
                            {
                                crate::redact::register(&value);
                            }
                        }
                        Ok(Some(SecretString::registered(out)))
                    }
                }
            }
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| Some(SecretString::registered(s.trim().to_owned())))
                .map_err(|e| SecretError::File { path: path.clone(), message: e.to_string() }),
        }
    }

    /// The variable that would be read and is not set, if any.
    pub fn missing_env(&self, env: &dyn Env) -> Option<String> {
        match self.resolve(env) {
            Err(SecretError::MissingEnv(name)) => Some(name),
            _ => None,
        }
    }

    /// Whether this is a non-secret local marker such as `"lmstudio"` or `"ollama-local"`.
    pub fn is_local_marker(&self) -> bool {
        match self {
            Secret::Literal(s) => is_local_marker_value(s.expose()),
            _ => false,
        }
    }

    /// Registers a literal credential (an `apiKey`, the gateway token or password written in
    /// the config) with the redactor; local markers and short values are ignored there. Other
    /// forms are registered when they are resolved.
    pub fn register_literal(&self) {
        if let Secret::Literal(s) = self {
            crate::redact::register(s.expose());
        }
    }

    /// A description safe to print: never the value itself.
    pub fn describe(&self) -> String {
        match self {
            Secret::Literal(s) if self.is_local_marker() => format!("marker({})", s.expose()),
            Secret::Literal(_) => "***".to_owned(),
            Secret::Env(name) => format!("env {name}"),
            Secret::Template(_) => "template (***)".to_owned(),
            Secret::File(path) => format!("file {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn text(s: &str) -> Secret {
        Secret::from_raw(&RawSecret::Text(s.to_owned()))
    }

    #[test]
    fn forms() {
        assert_eq!(text("${LM_API_TOKEN}"), Secret::Env("LM_API_TOKEN".into()));
        assert_eq!(text("OPENAI_API_KEY"), Secret::Env("OPENAI_API_KEY".into()));
        assert!(matches!(text("lmstudio"), Secret::Literal(_)));
        assert!(text("lmstudio").is_local_marker());
        assert!(text("ollama-local").is_local_marker());
        assert!(!text("sk-abc123").is_local_marker());
        assert!(matches!(text("Bearer ${TOKEN}"), Secret::Template(_)));
    }

    #[test]
    fn never_printed() {
        let s = text("sk-very-secret");
        assert_eq!(s.describe(), "***");
        assert!(!format!("{s:?}").contains("very-secret"));
        assert_eq!(text("lmstudio").describe(), "marker(lmstudio)");
    }

    #[test]
    fn resolved_values_are_registered() {
        use crate::redact::redact;
        let env: BTreeMap<String, String> = [
            ("REG_TEST_KEY".to_owned(), "envkey-0f9e8d7c".to_owned()),
            ("REG_TEST_TOKEN".to_owned(), "tmpl-tok-1a2b3c".to_owned()),
        ]
        .into();
        assert_eq!(redact("a envkey-0f9e8d7c"), "a envkey-0f9e8d7c");
        text("${REG_TEST_KEY}").resolve(&env).unwrap();
        assert_eq!(redact("a envkey-0f9e8d7c"), "a ***");
        // A template's variable is masked alone, not only inside the whole value.
        text("Bearer ${REG_TEST_TOKEN}").resolve(&env).unwrap();
        assert_eq!(redact("token was tmpl-tok-1a2b3c."), "token was ***.");
        // A literal is registered only where it is a credential.
        let literal = text("literal-header-value-q7");
        literal.resolve(&env).unwrap();
        assert_eq!(redact("literal-header-value-q7"), "literal-header-value-q7");
        literal.register_literal();
        assert_eq!(redact("literal-header-value-q7"), "***");
        // So is a file secret.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "file-secret-5e6f7a\n").unwrap();
        Secret::File(path).resolve(&env).unwrap();
        assert_eq!(redact("file-secret-5e6f7a"), "***");
        // Local markers never are.
        text("lmstudio").register_literal();
        assert_eq!(redact("lmstudio"), "lmstudio");
    }

    #[test]
    fn resolution() {
        let env: BTreeMap<String, String> = [("TOKEN".to_owned(), "abc".to_owned())].into();
        assert_eq!(text("Bearer ${TOKEN}").resolve(&env).unwrap().unwrap().expose(), "Bearer abc");
        assert_eq!(text("${TOKEN}").resolve(&env).unwrap().unwrap().expose(), "abc");
        assert_eq!(text("${NOPE}").resolve(&env), Err(SecretError::MissingEnv("NOPE".into())));
        assert_eq!(text("${NOPE}").missing_env(&env).as_deref(), Some("NOPE"));
        // Same rules as config strings: `$${` is a literal `${`.
        assert_eq!(
            text("a $${TOKEN} ${TOKEN}").resolve(&env).unwrap().unwrap().expose(),
            "a ${TOKEN} abc"
        );
    }
}
