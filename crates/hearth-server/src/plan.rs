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

/// A header by its `x-hearth-*` name, else its `x-openclaw-*` spelling.
pub fn header<'h>(headers: &'h HeaderMap, suffix: &str) -> Option<&'h str> {
    ["x-hearth-", "x-openclaw-"]
        .iter()
        .find_map(|prefix| headers.get(format!("{prefix}{suffix}").as_str()))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Plans a request whose body says `model`.
pub fn plan(config: &Config, model: &str, headers: &HeaderMap) -> Result<Plan, ApiError> {
    if let Some(key) = header(headers, "session-key")
        && let Some(prefix) =
            RESERVED_SESSION_PREFIXES.iter().find(|p| key.to_ascii_lowercase().starts_with(**p))
    {
        return Err(ApiError::invalid_param(
            "x-hearth-session-key",
            format!("session keys starting with `{prefix}` are reserved for hearth's own sessions"),
        ));
    }
    let override_model = header(headers, "model");
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
            let mut chain = config
                .candidate_chain(agent.as_deref(), override_model, false)
                .map_err(|e| ApiError::from_ref(&e))?;
            chain.candidates.retain(|r| config.allows(agent.as_deref(), r));
            if chain.candidates.is_empty() {
                return Err(ApiError::invalid_param("model", "no candidate model is allowed by the agent's model policy (agents.defaults.models / allow)")
                    .with_code("model_not_allowed"));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
