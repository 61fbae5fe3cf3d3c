//! Thinking levels: how much a reasoning model may think before it answers, in OpenClaw's
//! words (`off | minimal | low | medium | high | xhigh | max | adaptive`). One scale for every
//! source (`agents.*.thinkingDefault`, `params.thinking`, a request's `reasoning_effort`,
//! `reasoning.effort` or Anthropic `thinking`); each upstream dialect translates it into its
//! own fields (`hearth_upstream::thinking`, docs/local-models.md "Thinking levels").

use std::fmt;

/// A thinking level, from none to the most the model allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ThinkingLevel {
    /// No thinking.
    Off,
    Minimal,
    Low,
    Medium,
    High,
    /// OpenAI's `xhigh`.
    XHigh,
    /// The most the model allows (`max`, `ultra`).
    Max,
    /// The model decides how much to think (Anthropic's adaptive thinking); sent as `medium`
    /// where a server has no such mode.
    Adaptive,
}

impl ThinkingLevel {
    /// The levels, as config and requests spell them.
    pub const NAMES: &'static [&'static str] =
        &["off", "minimal", "low", "medium", "high", "xhigh", "max", "adaptive"];

    /// Parses a level, with OpenClaw's aliases (`none`/`disabled` → off, `x-high`,
    /// `extra-high`, … → xhigh, `ultra` → max, `on`/`enabled` → medium), case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        let key: String = text.trim().to_ascii_lowercase().replace(['-', '_', ' '], "");
        Some(match key.as_str() {
            "off" | "none" | "disabled" | "false" => ThinkingLevel::Off,
            "minimal" => ThinkingLevel::Minimal,
            "low" => ThinkingLevel::Low,
            "medium" | "on" | "enabled" | "true" => ThinkingLevel::Medium,
            "high" => ThinkingLevel::High,
            "xhigh" | "extrahigh" => ThinkingLevel::XHigh,
            "max" | "ultra" => ThinkingLevel::Max,
            "adaptive" | "auto" => ThinkingLevel::Adaptive,
            _ => return None,
        })
    }

    /// The level from a config value: a name, or a boolean (`true` is medium).
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Bool(true) => Some(ThinkingLevel::Medium),
            serde_json::Value::Bool(false) => Some(ThinkingLevel::Off),
            _ => None,
        }
    }

    /// The level's name (`off`, …, `adaptive`).
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingLevel::Off => "off",
            ThinkingLevel::Minimal => "minimal",
            ThinkingLevel::Low => "low",
            ThinkingLevel::Medium => "medium",
            ThinkingLevel::High => "high",
            ThinkingLevel::XHigh => "xhigh",
            ThinkingLevel::Max => "max",
            ThinkingLevel::Adaptive => "adaptive",
        }
    }

    /// Rank on the off..max scale (adaptive ranks as medium), for choosing the nearest level
    /// a server supports.
    pub fn rank(self) -> u8 {
        match self {
            ThinkingLevel::Off => 0,
            ThinkingLevel::Minimal => 1,
            ThinkingLevel::Low => 2,
            ThinkingLevel::Medium | ThinkingLevel::Adaptive => 3,
            ThinkingLevel::High => 4,
            ThinkingLevel::XHigh => 5,
            ThinkingLevel::Max => 6,
        }
    }

    /// The thinking-token budget a level stands for where a server takes a budget (Anthropic
    /// `budget_tokens`, llama.cpp `reasoning_budget_tokens`); `None` for off, max and adaptive
    /// (no cap).
    pub fn budget(self) -> Option<u64> {
        match self {
            ThinkingLevel::Minimal => Some(1024),
            ThinkingLevel::Low => Some(4096),
            ThinkingLevel::Medium => Some(10_000),
            ThinkingLevel::High => Some(16_000),
            ThinkingLevel::XHigh => Some(32_000),
            ThinkingLevel::Off | ThinkingLevel::Max | ThinkingLevel::Adaptive => None,
        }
    }

    /// The level a token budget stands for (an Anthropic caller's `budget_tokens`).
    pub fn for_budget(tokens: u64) -> Self {
        match tokens {
            0 => ThinkingLevel::Off,
            1..=1024 => ThinkingLevel::Minimal,
            1025..=4096 => ThinkingLevel::Low,
            4097..=10_000 => ThinkingLevel::Medium,
            10_001..=16_000 => ThinkingLevel::High,
            16_001..=32_000 => ThinkingLevel::XHigh,
            _ => ThinkingLevel::Max,
        }
    }
}

impl fmt::Display for ThinkingLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_parse() {
        for name in ThinkingLevel::NAMES {
            let level = ThinkingLevel::parse(name).unwrap();
            assert_eq!(level.as_str(), *name);
        }
        for (alias, level) in [
            ("none", ThinkingLevel::Off),
            ("X-High", ThinkingLevel::XHigh),
            ("extra high", ThinkingLevel::XHigh),
            ("extra_high", ThinkingLevel::XHigh),
            ("ultra", ThinkingLevel::Max),
            ("on", ThinkingLevel::Medium),
        ] {
            assert_eq!(ThinkingLevel::parse(alias), Some(level), "{alias}");
        }
        assert_eq!(ThinkingLevel::parse("hihg"), None);
        assert_eq!(ThinkingLevel::from_value(&serde_json::json!(false)), Some(ThinkingLevel::Off));
        assert_eq!(ThinkingLevel::from_value(&serde_json::json!(3)), None);
    }

    #[test]
    fn budgets_round_trip_to_their_level() {
        for name in ThinkingLevel::NAMES {
            let level = ThinkingLevel::parse(name).unwrap();
            if let Some(budget) = level.budget() {
                assert_eq!(ThinkingLevel::for_budget(budget), level);
            }
        }
        assert_eq!(ThinkingLevel::for_budget(100_000), ThinkingLevel::Max);
    }
}
