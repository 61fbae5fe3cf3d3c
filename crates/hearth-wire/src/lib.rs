//! Wire types and codecs. serde only: no IO, no tokio.
