//! Shared set-up for engine tests: a temp site, a real database (a SQLite file,
//! or a database on the test binary's throw-away PostgreSQL server), the real
//! watcher. [`backend_tests!`] runs one test body on each backend.

#![allow(dead_code)]

pub mod backend;
pub mod case_db;
pub mod conversion;
pub mod fixtures;
pub mod generated;
pub mod kept;
pub mod pg_server;
pub mod postgres_harness;
pub mod sqlite_harness;

use std::path::PathBuf;
use std::time::Duration;

pub use backend::Backend;
use marain::engine::{Coordinator, EngineConfig, EngineEvent, EventKind};
use tokio::sync::{broadcast, oneshot};

pub struct TestSite {
    pub dir: tempfile::TempDir,
    pub coordinator: Coordinator,
    pub events: broadcast::Receiver<EngineEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestSite {
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// Starts the engine on `dir/site` (which the caller may have filled), on
    /// the database `dir` already has, or a new SQLite file.
    pub async fn start_in(dir: tempfile::TempDir) -> TestSite {
        Self::start_on(dir, Backend::Sqlite).await
    }

    /// Starts the engine on `dir/site`, on the database `dir` already has or a
    /// new one of `backend`.
    pub async fn start_on(dir: tempfile::TempDir, backend: Backend) -> TestSite {
        Self::start_with(dir, backend, |_| {}).await
    }

    /// [`TestSite::start_on`] with the engine's configuration adjusted first.
    pub async fn start_with(
        dir: tempfile::TempDir,
        backend: Backend,
        adjust: impl FnOnce(&mut EngineConfig),
    ) -> TestSite {
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("schemas")).unwrap();
        let url = backend.prepare(dir.path()).await;
        let (stop, stopped) = oneshot::channel::<()>();
        let mut config = EngineConfig::new(&site, url);
        config.secure_log = Some(dir.path().join("secure.log"));
        adjust(&mut config);
        let (coordinator, task) = Coordinator::start(config, async move {
            let _ = stopped.await;
        })
        .await
        .expect("engine starts");
        let events = coordinator.subscribe();
        TestSite { dir, coordinator, events, stop: Some(stop), task: Some(task) }
    }

    pub async fn start(backend: Backend) -> TestSite {
        Self::start_on(tempfile::tempdir().unwrap(), backend).await
    }

    /// Runs one statement on the site's database.
    pub async fn exec(&self, sql: &str) {
        self.coordinator.store().pool().execute(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The one integer `sql` selects.
    pub async fn count(&self, sql: &str) -> i64 {
        let (n,): (i64,) =
            self.coordinator.store().pool().fetch_one(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        n
    }

    /// The text column `sql` selects, row by row (NULL as `None`).
    pub async fn texts(&self, sql: &str) -> Vec<Option<String>> {
        let rows: Vec<(Option<String>,)> =
            self.coordinator.store().pool().fetch_all(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter().map(|(t,)| t).collect()
    }

    /// The one text `sql` selects.
    pub async fn text(&self, sql: &str) -> String {
        self.texts(sql).await.into_iter().next().flatten().unwrap_or_else(|| panic!("{sql}: no text"))
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Waits for the next event of `kind` on `file`; panics after 10 s so a
    /// missing event fails the test instead of hanging it.
    pub async fn wait_for(&mut self, kind: EventKind, file: &str) -> EngineEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match next {
                Ok(Ok(e)) if e.kind == kind && e.file == file => return e,
                Ok(Ok(e)) => {
                    if std::env::var_os("DBG_EVENTS").is_some() {
                        eprintln!("event {:?} {} {}", e.kind, e.file, e.message);
                    }
                    continue;
                }
                Ok(Err(e)) => panic!("event stream broke: {e}"),
                Err(_) => panic!("no {kind:?} event for {file} within 10 s"),
            }
        }
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.coordinator.store().close().await;
        self.dir
    }
}

pub const USER: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n";

pub const ARTICLE: &str = "id: article\nname: Article\nfields:\n  - id: title\n    type: text\n    required: true\n  - id: body\n    type: long_text\n  - id: author\n    type: entity_reference\n    target_entity: user\n";
