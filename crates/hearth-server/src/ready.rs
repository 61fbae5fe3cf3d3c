//! Whether the gateway can answer a request that names no model (`GET /ready`, the WebSocket
//! `health` method).
//!
//! "Can answer" is decided from the config, never by probing on a `/ready` call: the default
//! agent's chain has a candidate that resolves in the catalog and whose provider has its key (a
//! local server needs none; a hosted one's configured key must be set, by the same
//! `Provider::key_state` the startup lines and `hearth doctor` read). It is computed once per
//! config snapshot, when the state is built. Cooldowns do not change it: they end by themselves,
//! and an orchestrator that took a cooling gateway out of rotation (or restarted it) would make
//! things worse, not better.

use hearth_config::{Config, Env, RefError};

/// Why no model of the default chain can answer, or `None` when one can.
pub fn not_ready_reason(config: &Config, env: &dyn Env) -> Option<String> {
    let agent = config.default_agent().map(|a| a.id.as_str());
    let chain = match config.candidate_chain(agent, None, false) {
        Ok(chain) => chain,
        Err(RefError::NoDefault) => {
            return Some(
                "no model configured: set agents.defaults.model.primary (requests that name a \
                 model are still served)"
                    .to_owned(),
            );
        }
        Err(e) => return Some(format!("no default chain: {e}")),
    };
    let mut problems = Vec::new();
    for candidate in &chain.candidates {
        match config.resolve_model_ref(candidate) {
            Ok(resolved) => {
                let provider = resolved.provider;
                match provider.key_state(env).problem().filter(|_| !provider.is_local()) {
                    None => return None,
                    Some(problem) => problems.push(format!("{candidate}: {problem}")),
                }
            }
            Err(e) => problems.push(format!("{candidate}: {e}")),
        }
    }
    Some(format!("no model of the default chain can answer: {}", problems.join("; ")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::not_ready_reason;

    #[track_caller]
    fn check(text: &str, env: &[(&str, &str)], expected: Option<&str>) {
        let env: BTreeMap<String, String> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let loaded = hearth_config::load_str("t.json5", text, &env);
        let config = loaded.config.unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
        assert_eq!(not_ready_reason(&config, &env).as_deref(), expected);
    }

    const HOSTED: &str = r#"{models: {mode: "replace", providers: {
        h: {baseUrl: "https://h.example/v1", apiKey: "${H_KEY}", models: [{id: "m"}]},
        l: {baseUrl: "http://127.0.0.1:9/v1", models: [{id: "m"}]}}}"#;

    #[test]
    fn no_model_configured() {
        check(
            "{}",
            &[],
            Some(
                "no model configured: set agents.defaults.model.primary (requests that name a \
                 model are still served)",
            ),
        );
    }

    #[test]
    fn a_hosted_chain_without_its_key_cannot_answer() {
        let text = format!(r#"{HOSTED}, agents: {{defaults: {{model: "h/m"}}}}}}"#);
        check(&text, &[], Some("no model of the default chain can answer: h/m: H_KEY is not set"));
        check(&text, &[("H_KEY", "sk-test-123456")], None);
    }

    #[test]
    fn a_local_fallback_can_answer() {
        let text = format!(
            r#"{HOSTED}, agents: {{defaults: {{model: {{primary: "h/m", fallbacks: ["l/m"]}}}}}}}}"#
        );
        check(&text, &[], None);
    }
}
