//! The I/O shell around the pure core: it watches the site, keeps the database and
//! history, and runs the one coordinator that turns file events into applied
//! changes. Everything that touches disk, database or clock lives here.

pub mod accounts;
mod activity;
pub mod arg;
pub mod backend;
pub mod content;
pub mod content_latency;
pub mod coordinator;
pub mod database;
pub mod declines;
pub mod deliveries;
pub mod drift;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod health;
mod index_names;
pub mod legacy;
mod legacy_feed;
pub mod proposals;
pub mod recovery;
pub mod rows;
pub mod scan;
mod schema_locks;
pub mod secret_refs;
pub mod secure_log;
mod shared;
pub mod sign_in;
pub mod signed_in;
pub mod snapshot;
mod start;
pub mod store;
mod sync;
mod takeover;
pub mod telemetry;
pub mod watcher;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use coordinator::Coordinator;
pub use error::EngineError;
pub use events::{EngineEvent, EventKind};
pub use secure_log::AuditFilter;
pub use snapshot::{Behind, FileState, FileStatus, LockWait, PendingChange, Snapshot};
pub use store::{AppliedVersion, Store, VersionRow, VersionStatus};

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub site_root: PathBuf,
    pub database_url: String,
    /// When `database_url` is a pooler's in transaction mode (PgBouncer): the
    /// same PostgreSQL database without the pooler, for what needs a session
    /// of its own (`LISTEN`, migrations, online changes' leases).
    pub direct_database_url: Option<String>,
    /// Quiet time after the last event on a path before it is processed; editors
    /// write a file in several steps, and this lets the last one land.
    pub debounce: Duration,
    /// Apply SAFE changes without a person; when false every change waits.
    pub auto_apply_safe: bool,
    /// How many events a subscriber may fall behind before it misses some (and
    /// is told so).
    pub event_buffer: usize,
    /// Selects `config.<id>.<env>.yaml` files; files of other environments are
    /// watched but not applied.
    pub env: String,
    /// Every event is appended here as one JSON line, for auditors and log
    /// shippers; `None` keeps events in memory only.
    pub secure_log: Option<PathBuf>,
    /// On PostgreSQL: how often the newest history id is read, to catch changes
    /// of other instances that no notification announced.
    pub sync_poll: Duration,
    /// On PostgreSQL: how long an apply waits for a table lock (`lock_timeout`)
    /// before it backs off and tries again.
    pub lock_timeout: Duration,
    /// Whether every instance watches one shared site directory, or each has a
    /// copy of its own (see [`SiteLayout`]).
    pub site_layout: SiteLayout,
    /// This instance's name in shared proposals (per-instance copies): stable
    /// across restarts, unique per copy. Defaults to `<host>:<site root>`.
    pub instance_name: String,
    /// What `${env:}` and `${file:}` references in config files may read.
    pub secret_sources: secret_refs::SecretSources,
}

/// How the site's files reach the instances that share one database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SiteLayout {
    /// One directory (or one instance): a file equal to an older applied
    /// version is an edit back to it, planned like any other.
    #[default]
    Shared,
    /// A copy per instance, rolled out host by host: the database is the
    /// arbiter, and a copy equal to an older applied version is *behind* (this
    /// host has not been updated yet), reported and never proposed.
    PerInstance,
}

impl EngineConfig {
    pub fn new(site_root: impl Into<PathBuf>, database_url: impl Into<String>) -> Self {
        let site_root: PathBuf = site_root.into();
        let instance_name = format!("{}:{}", host_name(), site_root.display());
        Self {
            instance_name,
            site_root,
            database_url: database_url.into(),
            direct_database_url: None,
            debounce: Duration::from_millis(25),
            auto_apply_safe: true,
            event_buffer: 1024,
            env: crate::site::DEFAULT_ENV.to_string(),
            secure_log: None,
            sync_poll: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(2),
            site_layout: SiteLayout::Shared,
            secret_sources: secret_refs::SecretSources::default(),
        }
    }
}

/// A person's decision to apply a pending change.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    pub actor: String,
    pub reason: Option<String>,
    /// For BREAKING changes: the entity id, typed by the approver.
    pub confirm: Option<String>,
}

/// This process's clock. Debug builds (what `cargo test` builds) shift it by
/// `MARAIN_CLOCK_SKEW_SECS`, for the tests of instances whose clocks differ:
/// what instances compare with each other (when a version was applied, when a
/// webhook was claimed) reads the database's clock instead (`Backend::now_sql`).
fn process_now() -> time::OffsetDateTime {
    static SKEW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let skew = *SKEW.get_or_init(|| match cfg!(debug_assertions) {
        true => std::env::var("MARAIN_CLOCK_SKEW_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        false => 0,
    });
    time::OffsetDateTime::now_utc() + time::Duration::seconds(skew)
}

/// Now, in seconds since the Unix epoch, by this process's clock.
/// This host's name (`HOSTNAME`, else `/etc/hostname`, else `localhost`).
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub fn now_unix() -> i64 {
    process_now().unix_timestamp()
}

/// Now, as RFC 3339 UTC, by this process's clock.
pub fn now_rfc3339() -> String {
    process_now().format(&time::format_description::well_known::Rfc3339).expect("a UTC timestamp formats")
}
