//! Test support: a scriptable upstream for faults real servers cannot be made to produce, a
//! launcher for the real llama.cpp test server, a `hearth gateway run` process, and a local
//! Telegram Bot API server (`telegram::BotApi`).

pub mod counting;
pub mod gateway;
pub mod llama;
pub mod synapse;
pub mod telegram;
pub mod upstream;

pub use counting::CountingListener;
pub use gateway::GatewayProcess;
pub use llama::LlamaServer;
pub use synapse::Synapse;
pub use upstream::{End, FakeUpstream, Recorded, Reply, Step};
