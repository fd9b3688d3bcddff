//! The site directory itself. A watch follows a directory, so a site directory
//! removed, moved away or replaced leaves the watcher watching nothing. Each
//! second the worker checks it is still the one watched; while it is gone,
//! readiness says so and nothing is planned (a missing directory is not every
//! file deleted); once a directory is back at the path, a fresh watcher starts
//! and a rescan takes in whatever it holds once it has been quiet for a
//! moment ([`settle_period`]): a directory recreated by a checkout or a
//! redeploy is taken in when it is full, not while it is being written.
//!
//! A directory that comes back holding no site files at all, while files are
//! applied, is one being replaced: it is watched, but taken in only once it
//! holds files again (not every file deleted).

use std::time::Duration;

use super::{Turn, Watching, Worker};
use crate::engine::scan::list_site_files;
use crate::engine::watcher::SiteWatcher;

/// How often the site directory is checked.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a directory that came back must be quiet before it is taken in.
pub(super) fn settle_period(debounce: Duration) -> Duration {
    (debounce * 2).max(Duration::from_secs(1))
}

impl Worker {
    /// Restarts the watcher on a directory that came back; marks the watcher
    /// down while there is none.
    pub(super) async fn check_root(&mut self, watching: &mut Watching) {
        if watching.watcher.intact(&self.config.site_root) && watching.watcher.blind_opened() {
            // A directory it could not look into opens: watched from now on,
            // and its files read again.
            match SiteWatcher::start(&self.config.site_root, watching.debounce, watching.signals.clone()) {
                Ok(fresh) => {
                    watching.watcher = fresh;
                    tracing::info!(site = %self.config.site_root.display(), "a directory of the site can be read again");
                    let mut turn = Turn::default();
                    self.rescan(&mut turn).await;
                    self.end(turn).await;
                }
                Err(e) => tracing::error!(error = %e, "cannot watch the site directory again; trying each second"),
            }
            return;
        }
        if watching.watcher.intact(&self.config.site_root) {
            // A directory that came back is watched once it has settled.
            if watching.settling.is_none() {
                self.shared.health.set_watching(true);
            }
            return;
        }
        watching.settling = None;
        let was_watching = self.shared.health.watching();
        self.shared.health.set_watching(false);
        if let Err(why) = std::fs::metadata(&self.config.site_root) {
            if was_watching {
                // Gone, or a directory above it no longer lets this process
                // in: either way no file is taken for deleted meanwhile.
                tracing::error!(
                    site = %self.config.site_root.display(),
                    error = %why,
                    "the site directory cannot be reached; nothing is planned until it can"
                );
            }
            return;
        }
        if !self.config.site_root.is_dir() {
            return;
        }
        match SiteWatcher::start(&self.config.site_root, watching.debounce, watching.signals.clone()) {
            Ok(fresh) => {
                watching.watcher = fresh;
                tracing::warn!(
                    site = %self.config.site_root.display(),
                    "the site directory is back; taking it in once it is quiet"
                );
                watching.settling = Some(tokio::time::Instant::now() + settle_period(watching.debounce));
            }
            Err(e) => tracing::error!(error = %e, "cannot watch the site directory again; trying each second"),
        }
    }

    /// The directory that came back has been quiet: watched again, and taken
    /// in, unless it is still empty.
    pub(super) async fn settled(&mut self, watching: &mut Watching) {
        if !self.applied.is_empty() && list_site_files(&self.config.site_root).is_empty() {
            tracing::warn!(
                site = %self.config.site_root.display(),
                "the site directory came back empty; nothing is planned until it holds files"
            );
            watching.settling = Some(tokio::time::Instant::now() + settle_period(watching.debounce));
            self.shared.health.set_watching(true);
            return;
        }
        watching.settling = None;
        let mut turn = Turn::default();
        self.rescan(&mut turn).await;
        self.end(turn).await;
        // Said after the rescan is published: whoever waits for it sees it.
        self.shared.health.set_watching(true);
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
