//! Not yet implemented: see `docs/ARCHITECTURE.md` for this crate's boundary and the issue that builds it.
