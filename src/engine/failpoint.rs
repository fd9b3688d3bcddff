//! Crash points for the `kill -9` tests: `MARAIN_FAILPOINT=<name>[@<n>]` makes the
//! process's `n`-th apply (default the first) announce point `<name>` on stderr
//! when it gets there, and stop until the test kills the process.
//!
//! `MARAIN_FAILPOINT=panic:<name>[@<n>]` panics there instead, for the test that
//! a dying worker takes the server down loudly; `pause:<name>[@<n>]` holds the
//! apply there for two seconds and goes on, for the test that a shutdown
//! finishes the apply in progress. `hold:<name>[@<n>]` stops the `n`-th apply
//! and every later one at `<name>` until the file named by
//! `MARAIN_FAILPOINT_RELEASE` appears (and removes it),
//! for the test that a second approval arrives while the first holds the lock.
//! `lose:commit_answer[@<n>]` makes the `n`-th apply act as if the database's
//! answer to its COMMIT had been lost on the way (the commit itself happens),
//! for the test that the instance finds out from the history what happened.
//! `full:apply[@<n>]` lets the `n`-th apply's database not grow (SQLite's
//! `max_page_count`), for the test of a full disk.
//!
//! Only debug builds (what `cargo test` builds) read the variable; in a release
//! build [`Failpoints::from_env`] is always inert, so production binaries cannot be
//! told to hang. Points, in apply order: on the online path `after_batch` (each
//! batch a phase copies), `after_phase` (each phase) and `before_cut_over` (the phases and the cut-over count as one
//! apply), then `after_backup`, `after_ddl`,
//! `before_history`, `before_commit`, `after_commit` (before the state swap),
//! and on the online path `after_cut_over` (committed and published, before
//! what the old shape left is cleared: SQLite's retired table);
//! in each batch of `marain legacy run` (counted like applies):
//! `legacy_before_commit`, `legacy_after_commit`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The armed point, if any. Cloned with the store; the count is shared.
#[derive(Clone, Default)]
pub struct Failpoints {
    armed: Option<Arc<Armed>>,
}

struct Armed {
    name: String,
    nth: usize,
    applies: AtomicUsize,
}

impl Failpoints {
    pub fn from_env() -> Self {
        if !cfg!(debug_assertions) {
            return Self::default();
        }
        let Ok(spec) = std::env::var("MARAIN_FAILPOINT") else { return Self::default() };
        let (name, nth) = match spec.split_once('@') {
            Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        Failpoints { armed: Some(Arc::new(Armed { name, nth, applies: AtomicUsize::new(0) })) }
    }

    /// Called as an apply starts.
    pub fn begin_apply(&self) {
        if let Some(armed) = &self.armed {
            armed.applies.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether what comes back at `name` is to be taken as lost (the armed
    /// point is `lose:<name>`, and this is its apply).
    pub fn lost(&self, name: &str) -> bool {
        let Some(armed) = &self.armed else { return false };
        armed.name.strip_prefix("lose:") == Some(name) && armed.applies.load(Ordering::SeqCst) == armed.nth
    }

    /// Whether the database may not grow during this apply (the armed point
    /// is `full:<name>`, and this is its apply).
    pub fn full(&self, name: &str) -> bool {
        let Some(armed) = &self.armed else { return false };
        armed.name.strip_prefix("full:") == Some(name) && armed.applies.load(Ordering::SeqCst) == armed.nth
    }

    /// Called at point `name`; returns at once unless it is the armed one.
    pub fn reach(&self, name: &str) {
        let Some(armed) = &self.armed else { return };
        if armed.name.strip_prefix("hold:") == Some(name) && armed.applies.load(Ordering::SeqCst) >= armed.nth {
            return hold(name);
        }
        if armed.applies.load(Ordering::SeqCst) != armed.nth {
            return;
        }
        if armed.name.strip_prefix("panic:") == Some(name) {
            panic!("failpoint {name}: panicking as asked");
        }
        if armed.name.strip_prefix("pause:") == Some(name) {
            eprintln!("failpoint {name} reached; pausing");
            std::thread::sleep(std::time::Duration::from_secs(2));
            return;
        }
        if armed.name != name {
            return;
        }
        eprintln!("failpoint {name} reached; waiting to be killed");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Waits at point `name` until the release file appears, then removes it.
fn hold(name: &str) {
    let Some(release) = std::env::var_os("MARAIN_FAILPOINT_RELEASE").map(std::path::PathBuf::from) else { return };
    eprintln!("failpoint {name} reached; holding until {} exists", release.display());
    while std::fs::remove_file(&release).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
