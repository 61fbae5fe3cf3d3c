//! Thinking levels, translated for each server.
//!
//! The level in force for one call ([`resolve`]): the caller's (chat `reasoning_effort`,
//! Responses `reasoning.effort`, Anthropic `thinking`), else `params.thinking` (any params
//! layer: provider < model entry < agent settings), else the agent's `thinkingDefault`, else
//! none: the server's own default, nothing sent.
//!
//! [`plan`] turns it into the fields of the upstream's dialect and server kind
//! (docs/local-models.md, "Thinking levels"): llama.cpp `chat_template_kwargs.enable_thinking`
//! with `reasoning_effort` and `reasoning_budget_tokens`; vLLM, SGLang and other local servers
//! `chat_template_kwargs.enable_thinking` (or `compat.thinkingFormat`'s fields); Ollama `think`;
//! LM Studio, OpenAI and OpenRouter their effort fields; Anthropic `thinking` with a budget
//! or adaptive. `compat.reasoningEffortMap` renames a level, `compat.supportedReasoningEfforts`
//! limits them. A level a server cannot take is degraded to the nearest it can, or left out,
//! with a notice, never refused. With the level `off`, reasoning a server sends anyway is not
//! relayed ([`Plan::hide_reasoning`]).

use hearth_config::{Api, ThinkingLevel};
use serde_json::{Map, Value, json};

use crate::encode::Target;
use crate::probe::ServerKind;
use crate::prompt::{Prompt, ToolChoice};

/// Where the level in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The caller's request.
    Request,
    /// `params.thinking`.
    Params,
    /// The agent's `thinkingDefault`.
    AgentDefault,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Request => "request",
            Source::Params => "params.thinking",
            Source::AgentDefault => "thinkingDefault",
        }
    }
}

/// The level in force for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub level: ThinkingLevel,
    /// A token budget the caller or config named (Anthropic `budget_tokens`).
    pub budget: Option<u64>,
    pub source: Source,
}

/// The level in force: the caller's, else `params.thinking`, else `params.thinkingDefault`
/// (the agent's `thinkingDefault`, which `Config::params_for` adds). `params` are the merged
/// params of the target ([`Target::all_params`]).
pub fn resolve(prompt: &Prompt, params: &Map<String, Value>) -> Option<Resolved> {
    if let Some(t) = prompt.thinking {
        return Some(Resolved { level: t.level, budget: t.budget, source: Source::Request });
    }
    if let Some((level, budget)) = params.get("thinking").and_then(configured) {
        return Some(Resolved { level, budget, source: Source::Params });
    }
    params.get("thinkingDefault").and_then(ThinkingLevel::from_value).map(|level| Resolved {
        level,
        budget: None,
        source: Source::AgentDefault,
    })
}

/// Whether a thinking level may be in force for this call: the request sets one, or a params
/// layer names `thinking` or `thinkingDefault`. Cheap: the merged params are not built.
pub fn applies(prompt: &Prompt, target: &Target<'_>) -> bool {
    if prompt.thinking.is_some() {
        return true;
    }
    let layers = [target.provider.params.as_ref(), target.model.params.as_ref()];
    let mut maps = layers.into_iter().flatten().filter_map(Value::as_object).chain(target.params);
    maps.any(|map| map.contains_key("thinking") || map.contains_key("thinkingDefault"))
}

/// Whether the level in force for this call is `off` (the decoder then relays no reasoning).
pub fn is_off(prompt: &Prompt, target: &Target<'_>) -> bool {
    if let Some(t) = prompt.thinking {
        return t.level == ThinkingLevel::Off;
    }
    applies(prompt, target)
        && resolve(prompt, &target.all_params()).is_some_and(|r| r.level == ThinkingLevel::Off)
}

/// [`plan`] for a call, building the merged params only when a level may be in force (the
/// router's notice and reasoning filter, off the request's hot path otherwise).
pub fn plan_for(prompt: &Prompt, target: &Target<'_>) -> Plan {
    if applies(prompt, target) {
        plan(prompt, target, &target.all_params())
    } else {
        Plan::default()
    }
}

/// A configured `thinking`: a level name, a boolean, or Anthropic's object
/// (`{"type": "enabled", "budget_tokens": N}`, `{"type": "adaptive"}`, `{"type": "disabled"}`).
fn configured(value: &Value) -> Option<(ThinkingLevel, Option<u64>)> {
    if let Some(level) = ThinkingLevel::from_value(value) {
        return Some((level, None));
    }
    anthropic_request(value).map(|t| (t.level, t.budget))
}

/// An Anthropic request's `thinking` object as a canonical request.
pub fn anthropic_request(value: &Value) -> Option<crate::prompt::Thinking> {
    let kind = value.get("type").and_then(Value::as_str)?;
    Some(match kind {
        "enabled" => {
            let budget = value.get("budget_tokens").and_then(Value::as_u64);
            crate::prompt::Thinking {
                level: budget.map_or(ThinkingLevel::Medium, ThinkingLevel::for_budget),
                budget,
            }
        }
        "adaptive" => crate::prompt::Thinking::level(ThinkingLevel::Adaptive),
        "disabled" => crate::prompt::Thinking::level(ThinkingLevel::Off),
        _ => return None,
    })
}

/// What one call sends for its thinking level, in the upstream's own fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The level in force, when any.
    pub resolved: Option<Resolved>,
    /// Top-level body fields (chat `reasoning_effort`, `enable_thinking`, `reasoning`, …;
    /// Responses `reasoning`; Anthropic `thinking`; Ollama `think`).
    pub fields: Vec<(&'static str, Value)>,
    /// Keys merged into `chat_template_kwargs` (`enable_thinking`).
    pub template_kwargs: Vec<(&'static str, Value)>,
    /// Anthropic takes no `temperature` (nor a `top_p` below 0.95) with thinking on.
    pub drop_sampling: bool,
    /// What was degraded or left out, for the caller (`x-hearth-notice`).
    pub notice: Option<String>,
    /// The level is `off`: reasoning the server sends anyway is not relayed.
    pub hide_reasoning: bool,
}

/// How an OpenAI-compatible server takes a thinking level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// llama-server: `chat_template_kwargs.enable_thinking`, `reasoning_effort` (into the
    /// template) and `reasoning_budget_tokens`.
    LlamaCpp,
    /// vLLM, SGLang, MLX and other local servers: `chat_template_kwargs.enable_thinking`, and
    /// `reasoning_effort` for templates that read it (gpt-oss).
    TemplateKwargs,
    /// `thinkingFormat: "qwen"`: top-level `enable_thinking`.
    QwenTop,
    /// `thinkingFormat: "qwen-chat-template"`: `chat_template_kwargs.enable_thinking` only.
    QwenTemplate,
    /// `thinkingFormat: "together"`: `reasoning: {enabled}`.
    Together,
    /// `thinkingFormat: "deepseek"`: `thinking: {type}` and `reasoning_effort` high|max.
    DeepSeek,
    /// Ollama's `/v1`: `reasoning_effort` none|low|medium|high.
    OllamaCompat,
    /// LM Studio, OpenAI and other hosted OpenAI-compatible APIs: `reasoning_effort`.
    Effort { none: bool },
    /// OpenRouter: `reasoning: {effort}` (or `{max_tokens}` for a budget).
    OpenRouter,
}

/// Effort labels OpenAI's API (and LM Studio, OpenRouter) know, lowest first.
const OPENAI_EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];
/// Ollama's: `minimal` is `low`, nothing above `high` outside its cloud models.
const OLLAMA_EFFORTS: &[&str] = &["none", "low", "medium", "high"];
/// What chat templates read as `reasoning_effort` (gpt-oss: low, medium, high).
const TEMPLATE_EFFORTS: &[&str] = &["low", "medium", "high"];
/// Anthropic's smallest thinking budget.
const ANTHROPIC_MIN_BUDGET: u64 = 1024;
/// The budget `max` stands for on Anthropic, before the output cap cuts it.
const ANTHROPIC_MAX_BUDGET: u64 = 64_000;

/// The fields `target`'s dialect and server take for the level in force (`params`: the
/// merged params, [`Target::all_params`]).
pub fn plan(prompt: &Prompt, target: &Target<'_>, params: &Map<String, Value>) -> Plan {
    let Some(resolved) = resolve(prompt, params) else {
        return Plan::default();
    };
    let mut plan = Plan {
        resolved: Some(resolved),
        hide_reasoning: resolved.level == ThinkingLevel::Off,
        ..Plan::default()
    };
    match target.model.api {
        Api::OpenaiCompletions => chat(&mut plan, resolved, target),
        Api::OpenaiResponses => responses(&mut plan, resolved, target),
        Api::AnthropicMessages => anthropic(&mut plan, resolved, prompt, target),
        Api::Ollama => ollama(&mut plan, resolved, target, params),
    }
    plan
}

fn flavor(target: &Target<'_>) -> Flavor {
    match target.model.compat.thinking_format.as_deref() {
        Some("qwen") => return Flavor::QwenTop,
        Some("qwen-chat-template") => return Flavor::QwenTemplate,
        Some("together") => return Flavor::Together,
        Some("deepseek") => return Flavor::DeepSeek,
        _ => {}
    }
    let provider = target.provider;
    if target.is_native_openai() {
        return Flavor::Effort { none: true };
    }
    if provider.id == "openrouter" || provider.base_url.host_str() == Some("openrouter.ai") {
        return Flavor::OpenRouter;
    }
    if crate::encode::is_ollama_compat(provider) {
        return Flavor::OllamaCompat;
    }
    match crate::probe::kind_hint(provider) {
        Some(ServerKind::LlamaCpp) => Flavor::LlamaCpp,
        Some(ServerKind::LmStudio) => Flavor::Effort { none: true },
        Some(ServerKind::Vllm | ServerKind::Sglang) => Flavor::TemplateKwargs,
        _ if provider.is_local() && provider.base_url.port() == Some(8080) => Flavor::LlamaCpp,
        _ if provider.is_local() => Flavor::TemplateKwargs,
        // A hosted OpenAI-compatible API: the standard field; `none` is not known to all.
        _ => Flavor::Effort { none: false },
    }
}

fn chat(plan: &mut Plan, r: Resolved, target: &Target<'_>) {
    let on = r.level != ThinkingLevel::Off;
    let effort_allowed = target.model.compat.supports_reasoning_effort != Some(false);
    match flavor(target) {
        Flavor::LlamaCpp => {
            plan.template_kwargs.push(("enable_thinking", Value::Bool(on)));
            if on {
                if effort_allowed {
                    let label = effort(plan, r.level, target, TEMPLATE_EFFORTS, false);
                    push_label(plan, "reasoning_effort", label);
                }
                if let Some(budget) = r.budget.or_else(|| r.level.budget()) {
                    plan.fields.push(("reasoning_budget_tokens", Value::from(budget)));
                }
            }
        }
        Flavor::TemplateKwargs => {
            plan.template_kwargs.push(("enable_thinking", Value::Bool(on)));
            if on && effort_allowed {
                let label = effort(plan, r.level, target, TEMPLATE_EFFORTS, true);
                push_label(plan, "reasoning_effort", label);
            }
        }
        Flavor::QwenTop => plan.fields.push(("enable_thinking", Value::Bool(on))),
        Flavor::QwenTemplate => plan.template_kwargs.push(("enable_thinking", Value::Bool(on))),
        Flavor::Together => plan.fields.push(("reasoning", json!({ "enabled": on }))),
        Flavor::DeepSeek => {
            let kind = if on { "enabled" } else { "disabled" };
            plan.fields.push(("thinking", json!({ "type": kind })));
            if on && effort_allowed {
                let compat = &target.model.compat;
                let label = if compat.reasoning_effort_map.is_some()
                    || compat.supported_reasoning_efforts.is_some()
                {
                    effort(plan, r.level, target, &["high", "max"], true)
                } else {
                    // DeepSeek's own two: `max` for the top levels, `high` for the rest.
                    let top = r.level.rank() >= ThinkingLevel::XHigh.rank();
                    Some(if top { "max" } else { "high" }.to_owned())
                };
                push_label(plan, "reasoning_effort", label);
            }
        }
        Flavor::OllamaCompat => {
            if effort_allowed {
                let label = effort(plan, r.level, target, OLLAMA_EFFORTS, true);
                push_label(plan, "reasoning_effort", label);
            } else {
                unsendable(plan, r.level, target, "compat.supportsReasoningEffort is false");
            }
        }
        Flavor::Effort { none } => {
            let known: &[&str] = if none { OPENAI_EFFORTS } else { &OPENAI_EFFORTS[1..] };
            if effort_allowed {
                let label = effort(plan, r.level, target, known, true);
                push_label(plan, "reasoning_effort", label);
            } else {
                unsendable(plan, r.level, target, "compat.supportsReasoningEffort is false");
            }
        }
        Flavor::OpenRouter => match r.budget {
            Some(budget) if on => {
                plan.fields.push(("reasoning", json!({ "max_tokens": budget })));
            }
            _ => {
                if let Some(label) = effort(plan, r.level, target, OPENAI_EFFORTS, true) {
                    plan.fields.push(("reasoning", json!({ "effort": label })));
                }
            }
        },
    }
}

fn responses(plan: &mut Plan, r: Resolved, target: &Target<'_>) {
    if target.model.compat.supports_reasoning_effort == Some(false) {
        unsendable(plan, r.level, target, "compat.supportsReasoningEffort is false");
        return;
    }
    if let Some(label) = effort(plan, r.level, target, OPENAI_EFFORTS, true) {
        plan.fields.push(("reasoning", json!({ "effort": label })));
    }
}

fn anthropic(plan: &mut Plan, r: Resolved, prompt: &Prompt, target: &Target<'_>) {
    let thinking = match r.level {
        // Anthropic's default is no thinking: nothing to send.
        ThinkingLevel::Off => return,
        ThinkingLevel::Adaptive => json!({ "type": "adaptive" }),
        level => {
            let cap = target.output_cap(prompt);
            let wanted = r.budget.or_else(|| level.budget()).unwrap_or(ANTHROPIC_MAX_BUDGET);
            // The budget counts against `max_tokens` and must stay below it, leaving the
            // answer a quarter of the cap (at least 1024 tokens).
            let budget = wanted.min(cap.saturating_sub((cap / 4).max(1024)));
            if budget < ANTHROPIC_MIN_BUDGET {
                plan.notice = Some(format!(
                    "thinking level `{level}` was not sent to {}: Anthropic needs a thinking \
                     budget of at least {ANTHROPIC_MIN_BUDGET} tokens and room for the \
                     answer below the output cap ({cap}); raise max_tokens to think",
                    model_name(target)
                ));
                return;
            }
            json!({ "type": "enabled", "budget_tokens": budget })
        }
    };
    if matches!(prompt.tool_choice, Some(ToolChoice::Required | ToolChoice::Function(_))) {
        plan.notice = Some(format!(
            "thinking level `{}` was not sent to {}: Anthropic does not think when a tool \
             call is forced (tool_choice)",
            r.level,
            model_name(target)
        ));
        return;
    }
    plan.fields.push(("thinking", thinking));
    if prompt.temperature.is_some() || prompt.top_p.is_some_and(|p| p < 0.95) {
        plan.drop_sampling = true;
        plan.notice = Some(format!(
            "temperature/top_p were not sent to {}: Anthropic takes no temperature (and no \
             top_p below 0.95) with thinking on",
            model_name(target)
        ));
    }
}

fn ollama(plan: &mut Plan, r: Resolved, target: &Target<'_>, params: &Map<String, Value>) {
    // An explicitly configured `think` is kept unless the caller asked for a level.
    if r.source != Source::Request && params.contains_key("think") {
        return;
    }
    if r.level == ThinkingLevel::Off {
        plan.fields.push(("think", Value::Bool(false)));
        return;
    }
    if !target.model.reasoning {
        plan.notice = Some(format!(
            "thinking level `{}` was not sent to {}: the model entry is not marked \
             `reasoning: true`, and Ollama refuses thinking for a model without it",
            r.level,
            model_name(target)
        ));
        return;
    }
    // gpt-oss takes an effort; other thinking models take on/off.
    if target.model.id.contains("gpt-oss") {
        let label = effort(plan, r.level, target, &OLLAMA_EFFORTS[1..], true);
        push_label(plan, "think", label);
    } else {
        plan.fields.push(("think", Value::Bool(true)));
    }
}

/// The effort label for `level` on a server whose labels are `known` (lowest first; `none`
/// among them when the server takes "no thinking" as an effort): `compat.reasoningEffortMap`
/// first, then the nearest label `compat.supportedReasoningEfforts` (else `known`) allows.
/// `notify`: a level above `high` folded into a lower one is worth a notice (not on servers
/// where a budget carries the difference). `None`: nothing can express the level.
fn effort(
    plan: &mut Plan,
    level: ThinkingLevel,
    target: &Target<'_>,
    known: &[&str],
    notify: bool,
) -> Option<String> {
    let compat = &target.model.compat;
    let base = match level {
        ThinkingLevel::Off => "none",
        ThinkingLevel::Adaptive => "medium",
        other => other.as_str(),
    };
    if let Some(mapped) = compat
        .reasoning_effort_map
        .as_ref()
        .and_then(|m| m.get(level.as_str()).or_else(|| m.get(base)))
    {
        return Some(mapped.clone());
    }
    let supported: Vec<&str> = match &compat.supported_reasoning_efforts {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => known.to_vec(),
    };
    if supported.contains(&base) {
        return Some(base.to_owned());
    }
    if level == ThinkingLevel::Off {
        // No way to say "none": leave the field out; the reasoning is not relayed.
        if compat.supported_reasoning_efforts.is_some() {
            plan.notice = Some(format!(
                "thinking off cannot be sent to {} (efforts: {}): its reasoning, if any, is \
                 not relayed",
                model_name(target),
                supported.join(", ")
            ));
        }
        return None;
    }
    let rank = level.rank();
    let ranked: Vec<(u8, &str)> = supported
        .iter()
        .filter_map(|s| ThinkingLevel::parse(s).map(|l| (l.rank(), *s)))
        .filter(|(r, _)| *r > 0)
        .collect();
    let below = ranked.iter().filter(|(r, _)| *r <= rank).max_by_key(|(r, _)| *r);
    let above = ranked.iter().filter(|(r, _)| *r > rank).min_by_key(|(r, _)| *r);
    let Some((_, label)) = below.or(above) else {
        unsendable(plan, level, target, "no supported reasoning effort");
        return None;
    };
    // Levels folded together up to `high` (minimal as low) are not worth a notice; a level
    // above what the server has, or outside a configured list, is.
    if compat.supported_reasoning_efforts.is_some() || (notify && rank > ThinkingLevel::High.rank())
    {
        plan.notice = Some(format!(
            "thinking level `{level}` is not supported by {} (efforts: {}): sent `{label}`",
            model_name(target),
            supported.join(", ")
        ));
    }
    Some((*label).to_owned())
}

fn push_label(plan: &mut Plan, field: &'static str, label: Option<String>) {
    if let Some(label) = label {
        plan.fields.push((field, Value::String(label)));
    }
}

fn unsendable(plan: &mut Plan, level: ThinkingLevel, target: &Target<'_>, why: &str) {
    if level != ThinkingLevel::Off {
        plan.notice = Some(format!(
            "thinking level `{level}` was not sent to {} ({why}): the server's default applies",
            model_name(target)
        ));
    }
}

fn model_name(target: &Target<'_>) -> String {
    format!("{}/{}", target.provider.id, target.model.id)
}

#[cfg(test)]
mod tests;
