//! The site directory itself. A watch follows a directory, so a site directory
//! removed, moved away or replaced leaves the watcher watching nothing. Each
//! second the worker checks it is still the one watched; while it is gone,
//! readiness says so and nothing is planned (a missing directory is not every
//! file deleted); once a directory is back at the path, a fresh watcher starts
//! and a rescan takes in whatever it holds.

use std::time::Duration;

use super::{Turn, Watching, Worker};
use crate::engine::watcher::SiteWatcher;

/// How often the site directory is checked.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);

impl Worker {
    /// Restarts the watcher on a directory that came back; marks the watcher
    /// down while there is none.
    pub(super) async fn check_root(&mut self, watching: &mut Watching) {
        if watching.watcher.intact(&self.config.site_root) {
            self.shared.health.set_watching(true);
            return;
        }
        self.shared.health.set_watching(false);
        if !self.config.site_root.is_dir() {
            return;
        }
        match SiteWatcher::start(&self.config.site_root, watching.debounce, watching.signals.clone()) {
            Ok(fresh) => {
                watching.watcher = fresh;
                tracing::warn!(site = %self.config.site_root.display(), "the site directory is back; watching it again");
                self.shared.health.set_watching(true);
                let mut turn = Turn::default();
                self.rescan(&mut turn).await;
                self.end(turn).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot watch the site directory again; trying each second"),
        }
    }

    /// The site directory exists; when it does not, the watcher is marked down
    /// and the caller plans nothing.
    pub(super) fn root_present(&self) -> bool {
        let present = self.config.site_root.is_dir();
        if !present {
            self.shared.health.set_watching(false);
        }
        present
    }
}
