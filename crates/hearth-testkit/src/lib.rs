//! Test support: a scriptable upstream for faults real servers cannot be made to produce, and a
//! launcher for the real llama.cpp test server.

pub mod llama;
pub mod upstream;

pub use llama::LlamaServer;
pub use upstream::{End, FakeUpstream, Recorded, Reply, Step};
