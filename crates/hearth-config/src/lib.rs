//! hearth's configuration: OpenClaw-compatible JSON5, loaded with every diagnostic at once and
//! resolved into the model catalog the rest of hearth routes with.
//!
//! Pipeline: [`load::locate`] picks the file, [`json5`] parses it with spans, `$include` is
//! expanded, [`decode`] reads the [`raw`] types (collecting every problem), and [`resolve`]
//! merges the built-in catalog, applies defaults and checks references.

pub mod decode;
pub mod diag;
pub mod json5;
pub mod load;
pub mod model_ref;
pub mod provider_routing;
pub mod raw;
pub mod redact;
pub mod resolve;
pub mod secret;
pub mod source;
pub mod thinking;

pub use decode::{Env, ProcessEnv};
pub use diag::{Diagnostic, Severity};
pub use load::{ConfigSource, Loaded, load, load_file, load_str, locate};
pub use model_ref::{Chain, ModelRef, ModelSelection, RefError};
pub use raw::{Api, DmPolicy, DmScope, GroupPolicy, InputKind, ModelsMode, RawAutoJoin};
pub use resolve::{
    Agent, ChannelAccess, ChannelAccount, ChannelKind, ChannelSettings, Channels, Config, Cost,
    GatewayLimits, GroupRule, KeyState, MatrixAccount, Model, Origin, Provider, Routing, Session,
    TelegramAccount, ToolPolicy, WebhookAccount,
};
pub use secret::{Secret, SecretString};
pub use thinking::ThinkingLevel;

/// The JSON Schema of the config file format (`hearth config schema`).
pub fn schema() -> serde_json::Value {
    let schema = schemars::schema_for!(raw::RawConfig);
    serde_json::to_value(&schema).unwrap_or(serde_json::Value::Null)
}
