//! Token budgets: estimating prompt size, the context preflight, and what fits.

/// Below this many tokens of window a turn warns.
pub const WARN_BELOW: u64 = 8_000;
/// Below this many tokens of window a turn is refused.
pub const REFUSE_BELOW: u64 = 4_000;

/// A fast token estimate: about four characters a token for prose, with words and punctuation
/// counted so that code and non-Latin text are not underestimated. Errs high, never low by
/// much, so a request the budget accepts fits the real window.
pub fn estimate_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let chars = text.chars().count() as u64;
    let non_ascii = text.chars().filter(|c| !c.is_ascii()).count() as u64;
    let words = text.split_whitespace().count() as u64;
    let punct = text.chars().filter(|c| c.is_ascii_punctuation()).count() as u64;
    let by_chars = (chars - non_ascii).div_ceil(4) + non_ascii;
    by_chars.max(words + punct) + 1
}

/// Per-message framing overhead of chat templates (role markers).
pub const MESSAGE_OVERHEAD: u64 = 4;

/// Where the window number came from, for messages that say which setting to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSource {
    /// What the running server reported.
    Server,
    /// `contextTokens` of the model entry.
    ContextTokens,
    /// `contextWindow` of the model entry.
    ContextWindow,
    /// Nothing known: hearth's default.
    Default,
}

impl WindowSource {
    fn setting(self) -> &'static str {
        match self {
            WindowSource::Server => {
                "the server's context size (e.g. llama-server --ctx-size, Ollama num_ctx)"
            }
            WindowSource::ContextTokens => "contextTokens of the model entry",
            WindowSource::ContextWindow => {
                "contextWindow of the model entry (or the server's context size)"
            }
            WindowSource::Default => "contextWindow of the model entry",
        }
    }
}

/// The outcome of the preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    Ok,
    Warn(String),
    Refuse(String),
}

/// OpenClaw's guard: warn under 8,000 tokens of window (or under 20 % of the native window when
/// a smaller cap applies), refuse under 4,000.
pub fn preflight(
    model_ref: &str,
    window: u64,
    native: Option<u64>,
    source: WindowSource,
) -> Preflight {
    let warn_below = native.map_or(WARN_BELOW, |n| WARN_BELOW.max(n / 5));
    if window < REFUSE_BELOW {
        return Preflight::Refuse(format!(
            "model context window too small for {model_ref}: {window} tokens; the minimum is {REFUSE_BELOW}. Raise {}.",
            source.setting()
        ));
    }
    if window < warn_below {
        return Preflight::Warn(format!(
            "low context window for {model_ref}: {window} tokens (warning below {warn_below}); consider raising {}",
            source.setting()
        ));
    }
    Preflight::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_err_high() {
        assert_eq!(estimate_tokens(""), 0);
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(10);
        let t = estimate_tokens(&prose);
        assert!((100..=140).contains(&t), "{t}");
        assert!(estimate_tokens("日本語のテキスト") >= 8);
        assert!(estimate_tokens("a.b(c)[d]{e};") >= 7);
    }

    #[test]
    fn preflight_thresholds() {
        assert!(
            matches!(preflight("p/m", 3000, None, WindowSource::ContextTokens), Preflight::Refuse(m) if m.contains("contextTokens"))
        );
        assert!(matches!(
            preflight("p/m", 6000, None, WindowSource::ContextTokens),
            Preflight::Warn(_)
        ));
        assert_eq!(preflight("p/m", 8000, None, WindowSource::ContextTokens), Preflight::Ok);
        assert!(
            matches!(
                preflight("p/m", 16000, Some(200_000), WindowSource::ContextTokens),
                Preflight::Warn(_)
            ),
            "cap far below native"
        );
    }
}
