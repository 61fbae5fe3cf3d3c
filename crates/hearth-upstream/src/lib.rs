//! Talking to model servers: adapters for each upstream API, turned into one canonical event
//! stream; reasoning kept apart; usage and cost; error classification. The only crate that
//! knows reqwest and upstream wire quirks.

pub mod api;
pub mod classify;
pub mod client;
pub mod decode;
pub mod encode;
pub mod event;
pub mod guard;
pub mod local_service;
mod plain;
pub mod preload;
pub mod probe;
pub mod prompt;
pub mod reasoning;
pub mod remote;
pub mod router;
pub mod text_calls;
pub mod thinking;
pub mod transport;
pub mod usage;

pub use client::{Client, EventStream};
pub use encode::Target;
pub use event::{
    ErrorClass, Event, FinishReason, Overflow, Progress, TokenLogprob, TopLogprob, UpstreamError,
    Usage,
};
pub use prompt::{
    AnthropicNative, Message, OutputFormat, Part, Prompt, Role, Tool, ToolCall, ToolChoice,
};
pub use router::{Answer, Attempt, Failure, Router, RunOptions};
pub use transport::Transport;

use hearth_config::{Env, Model, ModelRef, Provider, Secret, SecretString};

/// The ref of a resolved row.
pub fn model_ref_of(provider: &Provider, model: &Model) -> ModelRef {
    ModelRef::new(&provider.id, &model.id)
}

/// A provider's credentials in rotation order: its `apiKey`, then, when that key comes from a
/// variable `VAR`, the keys listed in `VARS` (separated by commas, semicolons or spaces).
/// Duplicates are tried once. Empty when no key is available. Every key is registered with the
/// redactor (`hearth_config::redact`).
pub fn secret_keys(provider: &Provider, env: &dyn Env) -> Vec<SecretString> {
    let mut keys: Vec<SecretString> = Vec::new();
    let Some(secret) = &provider.api_key else { return keys };
    if let Ok(Some(key)) = secret.resolve(env) {
        keys.push(key);
    }
    if let Secret::Env(var) = secret
        && let Some(list) = env.var(&format!("{var}S"))
    {
        for key in list.split([',', ';', ' ', '\n', '\t']).map(str::trim).filter(|k| !k.is_empty())
        {
            if !keys.iter().any(|k| k.expose() == key) {
                keys.push(SecretString::registered(key.to_owned()));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    #[test]
    fn rotated_keys_are_registered() {
        let env: BTreeMap<String, String> = [
            ("ROT_TEST_KEY".to_owned(), "rot-key-primary-1".to_owned()),
            ("ROT_TEST_KEYS".to_owned(), "rot-key-second-2, rot-key-third-3".to_owned()),
        ]
        .into();
        let loaded = hearth_config::load_str(
            "t.json5",
            r#"{models: {mode: "replace", providers: {p: {baseUrl: "https://example.invalid/v1",
                apiKey: "${ROT_TEST_KEY}", models: [{id: "m"}]}}}}"#,
            &env,
        );
        let config = loaded.config.unwrap();
        let keys = super::secret_keys(&config.providers["p"], &env);
        assert_eq!(keys.len(), 3);
        assert_eq!(
            hearth_config::redact::redact("rot-key-primary-1 rot-key-second-2 rot-key-third-3"),
            "*** *** ***"
        );
    }
}
