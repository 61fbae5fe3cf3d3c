//! Diagnostics: every problem found while loading, each with a place and a fix.

use crate::source::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding. Loading collects all of them; the config is usable only when none is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable, kebab-case identifier, e.g. `unknown-key`, `type`, `syntax`, `missing-env`.
    pub code: &'static str,
    pub message: String,
    /// JSON path of the offending value, e.g. `models.providers.lmstudio.models[0].maxTokens`.
    pub path: Option<String>,
    pub location: Option<Location>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]: {}", self.severity.as_str(), self.code, self.message)?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

/// The closest candidate to `input`, if it is close enough to be a likely typo.
pub fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let cand_lower = candidate.to_ascii_lowercase();
        let distance =
            if cand_lower == lower { 0 } else { strsim::damerau_levenshtein(&lower, &cand_lower) };
        // Short words need a close match; longer ones tolerate more edits.
        let limit = match candidate.len() {
            0..=3 => 1,
            4..=7 => 2,
            _ => 3,
        };
        let plural_or_prefix = candidate.len() >= 4
            && input.len() >= 4
            && (cand_lower.starts_with(&lower) || lower.starts_with(&cand_lower))
            && cand_lower.len().abs_diff(lower.len()) <= 2;
        if (distance <= limit || plural_or_prefix) && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["primary", "fallbacks"];
        assert_eq!(suggest("primry", keys), Some("primary"));
        assert_eq!(suggest("fallback", keys), Some("fallbacks"));
        assert_eq!(suggest("PRIMARY", keys), Some("primary"));
        assert_eq!(suggest("heartbeat", keys), None);
        assert_eq!(
            suggest("contextwindow", ["contextWindow", "contextTokens"]),
            Some("contextWindow")
        );
        assert_eq!(suggest("maxToken", ["maxTokens", "contextTokens"]), Some("maxTokens"));
        assert_eq!(suggest("id", ["id", "api"]), Some("id"));
        assert_eq!(suggest("channels", ["models", "agents", "gateway"]), None);
    }
}
