//! Which models a request may use: an agent target (`hearth`, `hearth/<agentId>`,
//! `openclaw…`, `agent:<id>`) runs the agent's chain; a model ref or alias runs directly
//! through the router with the configured fallbacks.
//!
//! Agent runs use sessions (`relay::start` hands them to `hearth_agent`); a session key comes from
//! `x-hearth-session-key`, else the request's `user`, else a fresh one per request.

use axum::http::HeaderMap;
use hearth_config::{Chain, Config, RefError};

use crate::error::ApiError;

/// Session keys in these namespaces belong to hearth itself.
pub const RESERVED_SESSION_PREFIXES: &[&str] = &["subagent:", "cron:", "acp:"];
/// Model names and refs are at most this long (the longest real ids are about 100 bytes).
pub const MAX_MODEL_BYTES: usize = 256;
/// Session keys (header, `user`, WebSocket `sessionKey`) are at most this long.
pub const MAX_SESSION_KEY_BYTES: usize = 1024;

/// Why a caller's session key is refused, or `None` when it may be used. `agent:<id>:<rest>`
/// is checked on `<rest>` too, so a reserved namespace cannot be reached through an agent
/// prefix.
pub fn session_key_problem(key: &str) -> Option<String> {
    if key.len() > MAX_SESSION_KEY_BYTES {
        return Some(format!(
            "session keys are at most {MAX_SESSION_KEY_BYTES} bytes (this one has {})",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return Some(
            "session keys cannot contain control characters (NUL, CR, LF, tab, …)".to_owned(),
        );
    }
    let lower = key.trim().to_ascii_lowercase();
    let mut rest = lower.as_str();
    loop {
        if let Some(prefix) = RESERVED_SESSION_PREFIXES.iter().find(|p| rest.starts_with(**p)) {
            return Some(format!(
                "session keys in the `{prefix}` namespace are reserved for hearth's own sessions"
            ));
        }
        match rest.strip_prefix("agent:").and_then(|r| r.split_once(':')) {
            Some((_, inner)) => rest = inner,
            None => return None,
        }
    }
}

/// [`session_key_problem`] as the API's 400 about `param`.
pub fn check_session_key(param: &str, key: &str) -> Result<(), ApiError> {
    match session_key_problem(key) {
        Some(problem) => {
            Err(ApiError::invalid_param(param, problem).with_code("invalid_session_key"))
        }
        None => Ok(()),
    }
}

/// A model name within [`MAX_MODEL_BYTES`], checked before any lookup.
pub fn check_model_name(param: &str, model: &str) -> Result<(), ApiError> {
    if model.len() > MAX_MODEL_BYTES {
        return Err(ApiError::invalid_param(
            param,
            format!(
                "model names are at most {MAX_MODEL_BYTES} bytes (this one has {}, starting `{}`)",
                model.len(),
                crate::error::excerpt(model, 40)
            ),
        )
        .with_code("model_not_found"));
    }
    Ok(())
}

/// How one request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub chain: Chain,
    /// `Some` for an agent run.
    pub agent: Option<String>,
    /// The id the response reports as `model` (what the caller asked for).
    pub requested: String,
    /// An agent target (`hearth`, `hearth/<id>`, …): runs as an agent turn.
    pub agent_run: bool,
    /// `x-hearth-session-key`, when given.
    pub session_key: Option<String>,
    /// An explicit model override (`x-hearth-model`) for an agent run: strict.
    pub model_override: Option<String>,
}

/// An agent target: `Some(None)` is the default agent.
pub fn agent_target(model: &str) -> Option<Option<&str>> {
    let model = model.trim();
    if model.eq_ignore_ascii_case("hearth") || model.eq_ignore_ascii_case("openclaw") {
        return Some(None);
    }
    let id =
        ["hearth/", "openclaw/", "openclaw:", "hearth:", "agent:"].iter().find_map(|prefix| {
            model
                .get(..prefix.len())
                .filter(|p| p.eq_ignore_ascii_case(prefix))
                .map(|_| &model[prefix.len()..])
        })?;
    if id.is_empty() || id.eq_ignore_ascii_case("default") { Some(None) } else { Some(Some(id)) }
}

/// The value of the `x-hearth-<suffix>` header, else of its `x-openclaw-<suffix>` spelling: one
/// pass over the headers, no name built per lookup.
fn prefixed<'h>(headers: &'h HeaderMap, suffix: &str) -> Option<&'h axum::http::HeaderValue> {
    let mut openclaw = None;
    for (name, value) in headers {
        let name = name.as_str();
        if name.strip_prefix("x-hearth-") == Some(suffix) {
            return Some(value);
        }
        if openclaw.is_none() && name.strip_prefix("x-openclaw-") == Some(suffix) {
            openclaw = Some(value);
        }
    }
    openclaw
}

/// A header by its `x-hearth-*` name, else its `x-openclaw-*` spelling.
pub fn header<'h>(headers: &'h HeaderMap, suffix: &str) -> Option<&'h str> {
    prefixed(headers, suffix).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// A header's raw value (not trimmed; a value that is not visible ASCII is `"\0"`, which every
/// check refuses).
fn raw_header<'h>(headers: &'h HeaderMap, suffix: &str) -> Option<&'h str> {
    prefixed(headers, suffix).map(|v| v.to_str().unwrap_or("\0"))
}

/// Plans a request whose body says `model`.
pub fn plan(config: &Config, model: &str, headers: &HeaderMap) -> Result<Plan, ApiError> {
    check_model_name("model", model)?;
    if let Some(key) = raw_header(headers, "session-key") {
        check_session_key("x-hearth-session-key", key)?;
    }
    let override_model = header(headers, "model");
    if let Some(m) = override_model {
        check_model_name("x-hearth-model", m)?;
    }
    let header_agent = header(headers, "agent-id");
    if model.trim().is_empty() && override_model.is_none() {
        return Err(ApiError::invalid_param(
            "model",
            "`model` is required: an agent target (`hearth`, `hearth/<agentId>`) or a model ref (`provider/model`) or alias",
        ));
    }
    match agent_target(model) {
        Some(target_agent) => {
            let wanted = target_agent.or(header_agent);
            let agent = match wanted {
                Some(id) if config.agents.contains_key(id) => Some(id.to_owned()),
                // With no agents configured, OpenClaw's implicit agent is `main`.
                Some(id) if config.agents.is_empty() && id.eq_ignore_ascii_case("main") => None,
                Some(id) => return Err(ApiError::from_ref(&RefError::UnknownAgent(id.to_owned()))),
                None => config.default_agent().map(|a| a.id.clone()),
            };
            // The chain comes filtered by the agent's model policy.
            let chain = config
                .candidate_chain(agent.as_deref(), override_model, false)
                .map_err(|e| ApiError::from_ref(&e))?;
            Ok(Plan {
                chain,
                agent,
                requested: model.trim().to_owned(),
                agent_run: true,
                session_key: header(headers, "session-key").map(str::to_owned),
                model_override: override_model.map(str::to_owned),
            })
        }
        None => {
            let requested = override_model.unwrap_or(model);
            let chain = config
                .candidate_chain(None, Some(requested), false)
                .map_err(|e| ApiError::from_ref(&e))?;
            Ok(Plan {
                chain,
                agent: None,
                requested: model.trim().to_owned(),
                agent_run: false,
                session_key: None,
                model_override: None,
            })
        }
    }
}

/// Whether a request carries images (in a user message or a tool result).
pub fn has_images(prompt: &hearth_upstream::Prompt) -> bool {
    prompt
        .messages
        .iter()
        .any(|m| m.content.iter().any(|p| matches!(p, hearth_upstream::Part::Image { .. })))
}

/// Routes a request by what it carries (issue 15, `docs/local-models.md`): a request with
/// images goes only to models whose entry takes images (`input: ["text", "image"]`), never
/// silently to a text-only one. When the first candidate takes text only, the agent's
/// `imageModel` chain answers instead, where one is configured; else the chain keeps its
/// image-capable candidates, in order. None left: a 400 that says which model took text only
/// and what to change. Returns what it did, for the log, when it changed the chain.
pub fn route_by_input(
    config: &Config,
    plan: &mut Plan,
    prompt: &hearth_upstream::Prompt,
) -> Result<Option<String>, ApiError> {
    if !has_images(prompt) {
        return Ok(None);
    }
    let takes_images = |r: &hearth_config::ModelRef| {
        config.resolve_model_ref(r).is_ok_and(|resolved| resolved.model.takes_images())
    };
    let Some(first) = plan.chain.candidates.first().cloned() else { return Ok(None) };
    if takes_images(&first) {
        let before = plan.chain.candidates.len();
        plan.chain.candidates.retain(|r| takes_images(r));
        return Ok((plan.chain.candidates.len() < before)
            .then(|| "images: text-only fallbacks left out of the chain".to_owned()));
    }
    if let Some(chain) = config.image_chain(plan.agent.as_deref()) {
        let note = format!(
            "images: {first} takes text only; answered by imageModel ({})",
            chain.candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
        plan.chain = chain;
        return Ok(Some(note));
    }
    let capable: Vec<_> =
        plan.chain.candidates.iter().filter(|r| takes_images(r)).cloned().collect();
    if capable.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            format!(
                "`{first}` takes text only (its model entry's `input` has no \"image\"), and the request has images; send text only, use a model whose entry says `input: [\"text\", \"image\"]`, or set agents.defaults.imageModel"
            ),
        )
        .with_code("model_does_not_take_images"));
    }
    let note = format!("images: {first} takes text only; answered by its image-capable fallbacks");
    plan.chain.candidates = capable;
    Ok(Some(note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys() {
        for ok in ["demo", "user:ada", "agent:main:demo", "agent:coder:agent:main:x", "crony"] {
            assert_eq!(session_key_problem(ok), None, "{ok}");
        }
        for bad in [
            "cron:x",
            "CRON:x",
            "agent:main:cron:x",
            "agent:main:agent:x:subagent:y",
            "a\0b",
            "a\r\nb",
            &"k".repeat(1025),
        ] {
            assert!(session_key_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn agent_targets() {
        assert_eq!(agent_target("hearth"), Some(None));
        assert_eq!(agent_target("openclaw"), Some(None));
        assert_eq!(agent_target("openclaw/default"), Some(None));
        assert_eq!(agent_target("hearth/coder"), Some(Some("coder")));
        assert_eq!(agent_target("openclaw:coder"), Some(Some("coder")));
        assert_eq!(agent_target("agent:coder"), Some(Some("coder")));
        assert_eq!(agent_target("lmstudio/minimax"), None);
        assert_eq!(agent_target("Minimax"), None);
    }
}
