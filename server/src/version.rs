//! What `marain --version` says: the package version and the commit built.

/// The commit the binary was built from (see `build.rs`), or "unknown".
pub const COMMIT: &str = env!("MARAIN_COMMIT");

/// `0.1.0 (commit 1a2b3c4d5e6f)`.
pub const LONG: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("MARAIN_COMMIT"), ")");
