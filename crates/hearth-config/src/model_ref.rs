//! Model references (`provider/model`), their resolution, and candidate chains.

use std::fmt;
use std::str::FromStr;

use crate::resolve::{Config, Model, Origin, Provider};

/// `provider/model`, split on the first `/` only. The provider id is lowercased; the model id
/// keeps its case (servers compare it verbatim).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl ModelRef {
    pub fn new(provider: &str, model: &str) -> Self {
        ModelRef { provider: provider.trim().to_ascii_lowercase(), model: model.trim().to_owned() }
    }

    /// `provider/*` keys match every model of that provider.
    pub fn is_wildcard(&self) -> bool {
        self.model == "*"
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefError {
    #[error("expected \"provider/model\"")]
    NoSlash,
    #[error("the provider part is empty")]
    EmptyProvider,
    #[error("the model part is empty")]
    EmptyModel,
}

impl FromStr for ModelRef {
    type Err = ModelRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (provider, model) = s.trim().split_once('/').ok_or(ModelRefError::NoSlash)?;
        if provider.trim().is_empty() {
            return Err(ModelRefError::EmptyProvider);
        }
        if model.trim().is_empty() {
            return Err(ModelRefError::EmptyModel);
        }
        Ok(ModelRef::new(provider, model))
    }
}

/// `model` of agents.defaults or an agent entry, as written (refs resolved on use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSelection {
    pub primary: String,
    /// `None`: the string form (or an object without `fallbacks`).
    pub fallbacks: Option<Vec<String>>,
}

/// Why a reference did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("unknown provider `{provider}` in `{input}`")]
    UnknownProvider { input: String, provider: String, suggestion: Option<String> },
    #[error("no model, alias or model id matches `{input}`")]
    UnknownModel {
        input: String,
        candidates: Vec<String>,
        /// The target of hearth's built-in alias of that name, when the input is one whose
        /// target is not a key of `agents.defaults.models` (so the alias is not enabled).
        builtin_target: Option<String>,
    },
    #[error("`{input}` is not in the catalog of provider `{provider}`")]
    NotInCatalog { input: String, provider: String, candidates: Vec<String> },
    #[error("`{input}` is ambiguous: it is a model id of several providers")]
    Ambiguous { input: String, candidates: Vec<String> },
    #[error("no model configured")]
    NoDefault,
    #[error("agent `{0}` is not configured")]
    UnknownAgent(String),
    #[error("no candidate model is allowed by the model policy{} (candidates: {})", if *local_only { " (local only)" } else { "" }, candidates.join(", "))]
    NotAllowed { candidates: Vec<String>, local_only: bool },
}

impl RefError {
    pub fn help(&self) -> Option<String> {
        match self {
            RefError::UnknownProvider { suggestion: Some(s), .. } => {
                Some(format!("did you mean `{s}`?"))
            }
            RefError::UnknownProvider { .. } => Some(
                "define it under models.providers, or see `hearth models list --all`".to_owned(),
            ),
            RefError::UnknownModel { input, builtin_target: Some(target), .. } => Some(format!(
                "`{}` is hearth's built-in alias of {target}, which applies once that ref is a key of agents.defaults.models: add \"{target}\": {{}} there (or {{alias: \"{input}\"}}), or write the full ref {target}",
                input.to_lowercase()
            )),
            RefError::UnknownModel { candidates, .. } if !candidates.is_empty() => {
                Some(format!("closest: {}", candidates.join(", ")))
            }
            RefError::UnknownModel { input, .. } => Some(format!(
                "write a full ref \"provider/model\" (`hearth models list --all` lists them), or give one a name under agents.defaults.models: \"<provider>/<model>\": {{alias: \"{input}\"}}"
            )),
            RefError::NotInCatalog { provider, candidates, .. } => {
                let mut help = format!("list it under models.providers.{provider}.models");
                if !candidates.is_empty() {
                    help.push_str(&format!(", or use one of: {}", candidates.join(", ")));
                }
                Some(help)
            }
            RefError::Ambiguous { candidates, .. } => {
                Some(format!("write the full ref, one of: {}", candidates.join(", ")))
            }
            RefError::NoDefault => Some(
                "set agents.defaults.model.primary, e.g. \"lmstudio/<model id>\", or name a model"
                    .to_owned(),
            ),
            RefError::UnknownAgent(_) => Some("agents are defined under agents.entries".to_owned()),
            RefError::NotAllowed { local_only: true, .. } => Some(
                "modelPolicy.localOnly admits only models of local providers (loopback or private hosts, or a localService); name one, or add a local fallback".to_owned(),
            ),
            RefError::NotAllowed { .. } => Some(
                "see modelPolicy.allow in agents.defaults or the agent's entry".to_owned(),
            ),
        }
    }
}

/// How a reference was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedBy {
    Alias,
    Ref,
    UniqueId,
}

/// A resolved reference with its catalog row.
#[derive(Debug, Clone)]
pub struct Resolved<'c> {
    pub model_ref: ModelRef,
    pub by: ResolvedBy,
    pub provider: &'c Provider,
    /// The catalog row, borrowed; owned only for a model a discovering provider does not list.
    pub model: std::borrow::Cow<'c, Model>,
}

/// Built-in shorthands, used only when their target is a key of `agents.defaults.models` and no
/// configured alias has the same name.
const BUILTIN_ALIASES: &[(&str, &str)] = &[
    ("opus", "anthropic/claude-opus-5"),
    ("sonnet", "anthropic/claude-sonnet-5"),
    ("gpt", "openai/gpt-5.4"),
    ("gpt-mini", "openai/gpt-5.4-mini"),
    ("gpt-nano", "openai/gpt-5.4-nano"),
];

/// Inputs longer than this are not searched for close matches (the search is quadratic in the
/// input's length) and are echoed only up to [`SHOWN_BYTES`].
pub const SEARCH_MAX_BYTES: usize = 64;
/// Error messages show at most this much of an input.
pub const SHOWN_BYTES: usize = 80;

/// `input` as an error message shows it: at most [`SHOWN_BYTES`], `…` when cut.
fn shown(input: &str) -> String {
    if input.len() <= SHOWN_BYTES {
        return input.to_owned();
    }
    let mut end = SHOWN_BYTES;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &input[..end])
}

/// Legacy provider ids that name a built-in provider.
const PROVIDER_RENAMES: &[(&str, &str)] = &[("llama-cpp", "llamacpp"), ("llama.cpp", "llamacpp")];

/// Up to five of `candidates` closest to `input`, best first; none for an input longer than
/// [`SEARCH_MAX_BYTES`] (a long name is no typo of a short one, and the search must stay cheap).
fn closest_of(input: &str, candidates: impl Iterator<Item = String>) -> Vec<String> {
    if input.len() > SEARCH_MAX_BYTES {
        return Vec::new();
    }
    let lower = input.to_lowercase();
    let mut scored: Vec<(f64, String)> = candidates
        .take(10_000)
        .map(|cand| {
            let c = cand.to_lowercase();
            let tail = c.rsplit('/').next().unwrap_or(&c).to_owned();
            let score = strsim::jaro_winkler(&lower, &c).max(strsim::jaro_winkler(&lower, &tail));
            (score, cand)
        })
        .filter(|(score, _)| *score > 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(5).map(|(_, c)| c).collect()
}

/// The ordered list of models to try for one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub candidates: Vec<ModelRef>,
    /// No fallback beyond the requested model.
    pub strict: bool,
}

impl Config {
    fn provider_for(&self, id: &str) -> Option<&Provider> {
        let lower = id.to_ascii_lowercase();
        self.providers.get(&lower).or_else(|| {
            PROVIDER_RENAMES
                .iter()
                .find(|(old, _)| *old == lower)
                .and_then(|(_, new)| self.providers.get(*new))
        })
    }

    /// [`Config::resolve_ref`] for `agent`: its own aliases (`agents.entries.<id>.models`)
    /// first.
    pub fn resolve_ref_for(
        &self,
        agent: Option<&str>,
        input: &str,
    ) -> Result<Resolved<'_>, RefError> {
        let own = agent
            .and_then(|id| self.agents.get(id))
            .and_then(|a| a.aliases.get(&input.trim().to_lowercase()));
        match own {
            Some((_, target)) => self.row(target, ResolvedBy::Alias, input),
            None => self.resolve_ref(input),
        }
    }

    /// Resolves a user-written reference: alias, then `provider/model`, then a model id that
    /// exactly one provider lists.
    /// [`Config::resolve_ref`] for a ref already parsed (a candidate of a chain): no formatting
    /// and parsing it again on the request path.
    pub fn resolve_model_ref(&self, model_ref: &ModelRef) -> Result<Resolved<'_>, RefError> {
        if self.provider_for(&model_ref.provider).is_some() {
            return self.row(model_ref, ResolvedBy::Ref, "");
        }
        self.resolve_ref(&model_ref.to_string())
    }

    pub fn resolve_ref(&self, input: &str) -> Result<Resolved<'_>, RefError> {
        let trimmed = input.trim();
        let lower = trimmed.to_lowercase();
        if let Some((_, target)) = self.aliases.get(&lower) {
            return self.row(target, ResolvedBy::Alias, input);
        }
        if let Some((_, target)) = BUILTIN_ALIASES.iter().find(|(alias, _)| *alias == lower)
            && let Ok(target) = target.parse::<ModelRef>()
            && self.model_settings.contains_key(&target)
        {
            return self.row(&target, ResolvedBy::Alias, input);
        }
        if let Ok(model_ref) = trimmed.parse::<ModelRef>()
            && self.provider_for(&model_ref.provider).is_some()
        {
            return self.row(&model_ref, ResolvedBy::Ref, input);
        }
        // A bare id that exactly one provider lists (exact case first, then any case).
        for exact in [true, false] {
            let matches: Vec<ModelRef> =
                self.providers
                    .values()
                    .flat_map(|p| p.models.iter().map(move |m| (p, m)))
                    .filter(|(_, m)| {
                        if exact { m.id == trimmed } else { m.id.eq_ignore_ascii_case(trimmed) }
                    })
                    .map(|(p, m)| ModelRef::new(&p.id, &m.id))
                    .collect();
            match matches.len() {
                0 => {}
                1 => return self.row(&matches[0], ResolvedBy::UniqueId, input),
                _ => {
                    return Err(RefError::Ambiguous {
                        input: shown(trimmed),
                        candidates: matches.iter().map(ToString::to_string).collect(),
                    });
                }
            }
        }
        if let Ok(model_ref) = trimmed.parse::<ModelRef>() {
            let suggestion = (model_ref.provider.len() <= SEARCH_MAX_BYTES)
                .then(|| {
                    crate::diag::suggest(
                        &model_ref.provider,
                        self.providers.keys().map(String::as_str),
                    )
                })
                .flatten()
                .map(str::to_owned);
            return Err(RefError::UnknownProvider {
                input: shown(trimmed),
                provider: shown(&model_ref.provider),
                suggestion,
            });
        }
        let builtin_target = BUILTIN_ALIASES
            .iter()
            .find(|(alias, _)| *alias == lower)
            .map(|(_, target)| (*target).to_owned());
        Err(RefError::UnknownModel {
            input: shown(trimmed),
            candidates: if builtin_target.is_some() { Vec::new() } else { self.closest(trimmed) },
            builtin_target,
        })
    }

    fn row(
        &self,
        model_ref: &ModelRef,
        by: ResolvedBy,
        input: &str,
    ) -> Result<Resolved<'_>, RefError> {
        // `input` is empty for a ref resolved as parsed: the ref itself is what was asked for.
        let shown_input =
            || if input.is_empty() { shown(&model_ref.to_string()) } else { shown(input.trim()) };
        let provider =
            self.provider_for(&model_ref.provider).ok_or_else(|| RefError::UnknownProvider {
                input: shown_input(),
                provider: shown(&model_ref.provider),
                suggestion: None,
            })?;
        let model = match provider.model(&model_ref.model) {
            Some(model) => std::borrow::Cow::Borrowed(model),
            None if provider.discovers_models() => {
                std::borrow::Cow::Owned(provider.synthetic_model(&model_ref.model))
            }
            None => {
                let refs = provider.models.iter().map(|m| format!("{}/{}", provider.id, m.id));
                return Err(RefError::NotInCatalog {
                    input: shown_input(),
                    provider: provider.id.clone(),
                    candidates: closest_of(&model_ref.to_string(), refs),
                });
            }
        };
        Ok(Resolved { model_ref: ModelRef::new(&provider.id, &model.id), by, provider, model })
    }

    /// Up to five refs or aliases closest to `input`, best first. A bare name (no `/`) is
    /// compared with aliases and model ids only, and a ref is offered for it only when its
    /// model id is close or contains the name: a short name is no typo of a provider's path
    /// (`Opus` once drew `openrouter/moonshotai/kimi-k3`).
    fn closest(&self, input: &str) -> Vec<String> {
        let aliases = self.aliases.values().map(|(alias, _)| alias.clone());
        let refs = self
            .providers
            .values()
            .flat_map(|p| p.models.iter().map(move |m| format!("{}/{}", p.id, m.id)));
        if input.contains('/') {
            return closest_of(input, aliases.chain(refs));
        }
        if input.len() > SEARCH_MAX_BYTES {
            return Vec::new();
        }
        let lower = input.to_lowercase();
        let mut scored: Vec<(f64, String)> = aliases
            .map(|alias| (strsim::jaro_winkler(&lower, &alias.to_lowercase()), alias))
            .chain(self.providers.values().flat_map(|p| {
                let lower = &lower;
                p.models.iter().map(move |m| {
                    let id = m.id.to_lowercase();
                    let score = if id.contains(lower.as_str()) {
                        0.9
                    } else {
                        strsim::jaro_winkler(lower, &id)
                    };
                    (score, format!("{}/{}", p.id, m.id))
                })
            }))
            .take(10_000)
            .filter(|(score, _)| *score > 0.85)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored.into_iter().take(5).map(|(_, c)| c).collect()
    }

    /// The agent a request without an agent id uses: the one marked `default`, else the first.
    pub fn default_agent(&self) -> Option<&crate::resolve::Agent> {
        self.agents.values().find(|a| a.is_default).or_else(|| self.agents.values().next())
    }

    /// The candidate chain for one turn (OpenClaw's rules):
    /// - no request: the configured primary, then its fallbacks;
    /// - an agent whose `model` is a string (or has no `fallbacks`): that model only;
    /// - a requested model, not strict: it, then the configured fallbacks, then the configured
    ///   primary (to settle back on the default), deduplicated;
    /// - a strict request (an explicit user selection): that model only.
    ///
    /// The chain is filtered by the model policy of `agent` (or of the defaults): this is the
    /// one place every path (HTTP, WebSocket, CLI, compaction) gets its candidates from, so a
    /// disallowed model is never tried. A chain the policy empties is [`RefError::NotAllowed`].
    pub fn candidate_chain(
        &self,
        agent: Option<&str>,
        requested: Option<&str>,
        strict: bool,
    ) -> Result<Chain, RefError> {
        let mut chain = self.unfiltered_chain(agent, requested, strict)?;
        let all = chain.candidates.clone();
        chain.candidates.retain(|r| self.allows(agent, r));
        if chain.candidates.is_empty() {
            return Err(RefError::NotAllowed {
                candidates: all.iter().map(ToString::to_string).collect(),
                local_only: self.local_only(agent),
            });
        }
        Ok(chain)
    }

    /// `imageModel` of `agent` (else of the defaults) as a chain: its primary, then its
    /// fallbacks, each resolved, allowed by the model policy and taking images. `None`: not
    /// configured, or nothing in it can answer.
    pub fn image_chain(&self, agent: Option<&str>) -> Option<Chain> {
        let selection = agent
            .and_then(|id| self.agents.get(id))
            .and_then(|a| a.image_model.as_ref())
            .or(self.defaults.image_model.as_ref())?;
        let mut candidates: Vec<ModelRef> = Vec::new();
        for name in std::iter::once(&selection.primary).chain(selection.fallbacks.iter().flatten())
        {
            if let Ok(resolved) = self.resolve_ref_for(agent, name)
                && resolved.model.takes_images()
                && self.allows(agent, &resolved.model_ref)
                && !candidates.contains(&resolved.model_ref)
            {
                candidates.push(resolved.model_ref);
            }
        }
        (!candidates.is_empty()).then_some(Chain { candidates, strict: false })
    }

    /// Whether `agent` (or the defaults) admits only local providers.
    pub fn local_only(&self, agent: Option<&str>) -> bool {
        agent
            .and_then(|id| self.agents.get(id))
            .and_then(|a| a.local_only)
            .unwrap_or(self.defaults.local_only)
    }

    fn unfiltered_chain(
        &self,
        agent: Option<&str>,
        requested: Option<&str>,
        strict: bool,
    ) -> Result<Chain, RefError> {
        let agent_selection = match agent {
            Some(id) => {
                let agent =
                    self.agents.get(id).ok_or_else(|| RefError::UnknownAgent(id.to_owned()))?;
                agent.model.as_ref()
            }
            None => None,
        };
        // An agent's own model: a string or an object without fallbacks is strict.
        let (selection, selection_strict) = match agent_selection {
            Some(sel) => (Some(sel), sel.fallbacks.as_ref().is_none_or(Vec::is_empty)),
            None => (self.defaults.model.as_ref(), false),
        };
        let resolve = |s: &str| self.resolve_ref_for(agent, s).map(|r| r.model_ref);
        let primary = selection.map(|s| resolve(&s.primary)).transpose()?;
        let fallbacks: Vec<ModelRef> = match selection.and_then(|s| s.fallbacks.as_ref()) {
            // A fallback that does not resolve is skipped here (`config validate` warns about it).
            Some(list) => list.iter().filter_map(|f| resolve(f).ok()).collect(),
            None => Vec::new(),
        };
        let mut candidates = Vec::new();
        let push = |list: &mut Vec<ModelRef>, r: ModelRef| {
            if !list.contains(&r) {
                list.push(r);
            }
        };
        match requested {
            Some(input) => {
                let requested = resolve(input)?;
                let strict = strict || (selection_strict && Some(&requested) == primary.as_ref());
                push(&mut candidates, requested);
                if strict {
                    return Ok(Chain { candidates, strict: true });
                }
                for f in fallbacks {
                    push(&mut candidates, f);
                }
                if let Some(p) = primary {
                    push(&mut candidates, p);
                }
                Ok(Chain { candidates, strict: false })
            }
            None => {
                let primary = primary.ok_or(RefError::NoDefault)?;
                push(&mut candidates, primary);
                if selection_strict {
                    return Ok(Chain { candidates, strict: true });
                }
                for f in fallbacks {
                    push(&mut candidates, f);
                }
                Ok(Chain { candidates, strict: false })
            }
        }
    }

    /// Whether `model_ref` passes the model policy of `agent` (or of the defaults).
    /// Entries are exact refs, aliases, or `prefix/*`; an empty list allows everything.
    /// With `localOnly`, the ref's provider must be local (loopback or private host, or a
    /// `localService`).
    pub fn allows(&self, agent: Option<&str>, model_ref: &ModelRef) -> bool {
        if self.local_only(agent)
            && !self
                .provider_for(&model_ref.provider)
                .is_some_and(|p| p.is_local() || p.local_service.is_some())
        {
            return false;
        }
        let allow = agent
            .and_then(|id| self.agents.get(id))
            .and_then(|a| a.allow.as_ref())
            .unwrap_or(&self.defaults.allow);
        if allow.is_empty() {
            return true;
        }
        let full = model_ref.to_string();
        allow.iter().any(|entry| {
            let entry = entry.trim();
            if let Some(prefix) = entry.strip_suffix("/*") {
                let prefix = prefix.to_ascii_lowercase();
                return full.to_ascii_lowercase().starts_with(&format!("{prefix}/"));
            }
            if let Some((_, target)) = self.aliases.get(&entry.to_lowercase()) {
                return target == model_ref;
            }
            entry.parse::<ModelRef>().is_ok_and(|r| &r == model_ref)
        })
    }

    /// Every catalog row, with the rows referenced from `agents` that no catalog lists.
    pub fn rows(&self) -> Vec<(ModelRef, &Provider, Model)> {
        let mut rows: Vec<(ModelRef, &Provider, Model)> = Vec::new();
        for provider in self.providers.values() {
            for model in &provider.models {
                rows.push((ModelRef::new(&provider.id, &model.id), provider, model.clone()));
            }
        }
        for input in self.referenced() {
            if let Ok(resolved) = self.resolve_ref(&input)
                && resolved.model.origin == Origin::Synthetic
                && !rows.iter().any(|(r, _, _)| *r == resolved.model_ref)
            {
                rows.push((resolved.model_ref, resolved.provider, resolved.model.into_owned()));
            }
        }
        rows
    }

    /// Every model reference written under `agents` (defaults, settings keys, agent models).
    pub fn referenced(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add_selection = |sel: &ModelSelection| {
            out.push(sel.primary.clone());
            out.extend(sel.fallbacks.iter().flatten().cloned());
        };
        if let Some(sel) = &self.defaults.model {
            add_selection(sel);
        }
        for agent in self.agents.values() {
            if let Some(sel) = &agent.model {
                add_selection(sel);
            }
        }
        out.extend(
            self.model_settings.keys().filter(|r| !r.is_wildcard()).map(ToString::to_string),
        );
        out.extend(self.defaults.compaction_model.iter().cloned());
        out
    }

    /// Request params for `model_ref`, merged by key: `agents.defaults.params` <
    /// `agents.defaults.models["provider/*"].params` < `agents.defaults.models[ref].params` <
    /// the agent's `params` < the agent's own `provider/*` and then `ref` settings (the most
    /// specific last). A `provider/*` key applies to every model of that provider, listed or
    /// discovered from its server. `provider` (OpenRouter's routing) merges key by key
    /// ([`crate::provider_routing::merge_params`]). The agent's `thinkingDefault` (else the
    /// defaults') rides along as `thinkingDefault`, below any `params.thinking`
    /// (`hearth_upstream::thinking`).
    pub fn params_for(
        &self,
        agent: Option<&str>,
        model_ref: &ModelRef,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let wildcard = ModelRef::new(&model_ref.provider, "*");
        let agent_entry = agent.and_then(|id| self.agents.get(id));
        let mut out = serde_json::Map::new();
        let thinking =
            agent_entry.and_then(|a| a.thinking_default).or(self.defaults.thinking_default);
        if let Some(level) = thinking {
            out.insert("thinkingDefault".to_owned(), level.as_str().into());
        }
        let layers = [
            self.defaults.params.as_ref(),
            self.model_settings.get(&wildcard).and_then(|s| s.params.as_ref()),
            self.model_settings.get(model_ref).and_then(|s| s.params.as_ref()),
            agent_entry.and_then(|a| a.params.as_ref()),
            agent_entry
                .and_then(|a| a.model_settings.get(&wildcard))
                .and_then(|s| s.params.as_ref()),
            agent_entry
                .and_then(|a| a.model_settings.get(model_ref))
                .and_then(|s| s.params.as_ref()),
        ];
        for layer in layers.into_iter().flatten() {
            if let serde_json::Value::Object(map) = layer {
                crate::provider_routing::merge_params(&mut out, map);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// The alias of a ref, if one is configured.
    pub fn alias_of(&self, model_ref: &ModelRef) -> Option<&str> {
        self.aliases
            .values()
            .find(|(_, target)| target == model_ref)
            .map(|(alias, _)| alias.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_slash_only() {
        let r: ModelRef = "mlx/mlx-community/Qwen3-30B-A3B-6bit".parse().unwrap();
        assert_eq!(r.provider, "mlx");
        assert_eq!(r.model, "mlx-community/Qwen3-30B-A3B-6bit");
        let r: ModelRef = " OpenRouter/openrouter/fusion ".parse().unwrap();
        assert_eq!((r.provider.as_str(), r.model.as_str()), ("openrouter", "openrouter/fusion"));
        assert_eq!("nomodel".parse::<ModelRef>(), Err(ModelRefError::NoSlash));
        assert_eq!("/x".parse::<ModelRef>(), Err(ModelRefError::EmptyProvider));
        assert_eq!("x/".parse::<ModelRef>(), Err(ModelRefError::EmptyModel));
        assert_eq!(r.to_string(), "openrouter/openrouter/fusion");
    }
}
