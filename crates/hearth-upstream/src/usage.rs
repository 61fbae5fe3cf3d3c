//! Token usage: reading each API's counters, estimating when none come, pricing.

use serde_json::Value;

use crate::event::Usage;
use hearth_config::Cost;

fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// OpenAI chat `usage` (also vLLM, SGLang, llama.cpp, Ollama `/v1`, LM Studio).
pub fn from_openai_chat(usage: &Value) -> Option<Usage> {
    let input = count(usage, "prompt_tokens")?;
    let output = count(usage, "completion_tokens").unwrap_or(0);
    Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: usage
            .pointer("/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: usage
            .pointer("/completion_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
        estimated: false,
    })
}

/// llama.cpp `timings` (`prompt_n` excludes the cached prefix `cache_n`).
pub fn from_llama_timings(timings: &Value) -> Option<Usage> {
    let prompt = count(timings, "prompt_n")?;
    let cached = count(timings, "cache_n").unwrap_or(0);
    Some(Usage {
        input_tokens: prompt.saturating_add(cached),
        output_tokens: count(timings, "predicted_n").unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: None,
        estimated: false,
    })
}

/// OpenAI Responses `usage`.
pub fn from_responses(usage: &Value) -> Option<Usage> {
    let input = count(usage, "input_tokens")?;
    Some(Usage {
        input_tokens: input,
        output_tokens: count(usage, "output_tokens").unwrap_or(0),
        cache_read_tokens: usage
            .pointer("/input_tokens_details/cached_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: usage
            .pointer("/output_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64),
        estimated: false,
    })
}

/// Anthropic `usage`: `input_tokens` excludes cache reads and writes, so they are added back.
pub fn from_anthropic(usage: &Value, previous: Option<Usage>) -> Usage {
    let prev = previous.unwrap_or_default();
    let read = count(usage, "cache_read_input_tokens");
    let write = count(usage, "cache_creation_input_tokens");
    let uncached = count(usage, "input_tokens");
    let cache_read = read.unwrap_or(prev.cache_read_tokens);
    let cache_write = write.unwrap_or(prev.cache_write_tokens);
    let input = match uncached {
        Some(n) => n.saturating_add(cache_read).saturating_add(cache_write),
        None => prev.input_tokens,
    };
    Usage {
        input_tokens: input,
        output_tokens: count(usage, "output_tokens").unwrap_or(prev.output_tokens),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: prev.reasoning_tokens,
        estimated: false,
    }
}

/// Ollama native counters (`prompt_eval_count`, `eval_count`).
pub fn from_ollama(chunk: &Value) -> Option<Usage> {
    let input = count(chunk, "prompt_eval_count");
    let output = count(chunk, "eval_count");
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        ..Usage::default()
    })
}

/// A rough count when the server reported nothing: about four characters a token.
pub fn estimate(prompt_chars: usize, output_chars: usize) -> Usage {
    let tokens = |chars: usize| (chars as u64).div_ceil(4).max(u64::from(chars > 0));
    Usage {
        input_tokens: tokens(prompt_chars),
        output_tokens: tokens(output_chars),
        estimated: true,
        ..Usage::default()
    }
}

/// Price of `usage` in USD, from prices per million tokens.
pub fn cost_usd(usage: &Usage, cost: &Cost) -> f64 {
    let cached = usage.cache_read_tokens + usage.cache_write_tokens;
    let fresh_input = usage.input_tokens.saturating_sub(cached);
    (fresh_input as f64 * cost.input
        + usage.cache_read_tokens as f64 * cost.cache_read
        + usage.cache_write_tokens as f64 * cost.cache_write
        + usage.output_tokens as f64 * cost.output)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anthropic_input_includes_cache() {
        let start = from_anthropic(
            &json!({"input_tokens": 10, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 50, "output_tokens": 1}),
            None,
        );
        assert_eq!(
            (start.input_tokens, start.cache_read_tokens, start.cache_write_tokens),
            (1060, 1000, 50)
        );
        let delta = from_anthropic(&json!({"output_tokens": 42}), Some(start));
        assert_eq!((delta.input_tokens, delta.output_tokens), (1060, 42));
    }

    #[test]
    fn openai_and_responses_and_timings() {
        let u = from_openai_chat(&json!({"prompt_tokens": 120, "completion_tokens": 30, "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 12}})).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.reasoning_tokens),
            (120, 30, 100, Some(12))
        );
        let u =
            from_llama_timings(&json!({"prompt_n": 120, "predicted_n": 30, "cache_n": 8})).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_tokens), (128, 30, 8));
        let u = from_responses(&json!({"input_tokens": 5, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3}})).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.reasoning_tokens), (5, 7, Some(3)));
        assert!(from_openai_chat(&json!({})).is_none());
    }

    #[test]
    fn estimates_are_marked_and_never_zero_for_text() {
        let u = estimate(9, 1);
        assert!(u.estimated);
        assert_eq!((u.input_tokens, u.output_tokens), (3, 1));
        assert_eq!(estimate(0, 0).input_tokens, 0);
    }

    #[test]
    fn pricing() {
        let cost = Cost { input: 3.0, output: 15.0, cache_read: 0.3, cache_write: 3.75 };
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 500_000,
            cache_write_tokens: 100_000,
            ..Usage::default()
        };
        let usd = cost_usd(&usage, &cost);
        // 400k fresh * 3 + 500k * 0.3 + 100k * 3.75 + 100k * 15, per million
        assert!((usd - (1.2 + 0.15 + 0.375 + 1.5)).abs() < 1e-9, "{usd}");
    }
}
