//! Shared set-up for engine tests: a temp site, a real SQLite file, the real watcher.

#![allow(dead_code)]

pub mod case_db;
pub mod fixtures;
pub mod postgres_harness;
pub mod sqlite_harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

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

    pub fn db_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("marain.db").display())
    }

    /// Starts the engine on `dir/site` (which the caller may have filled).
    pub async fn start_in(dir: tempfile::TempDir) -> TestSite {
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("schemas")).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut config = EngineConfig::new(&site, Self::db_url(dir.path()));
        config.secure_log = Some(dir.path().join("secure.log"));
        let (coordinator, task) = Coordinator::start(config, async move {
            let _ = stopped.await;
        })
        .await
        .expect("engine starts");
        let events = coordinator.subscribe();
        TestSite { dir, coordinator, events, stop: Some(stop), task: Some(task) }
    }

    pub async fn start() -> TestSite {
        Self::start_in(tempfile::tempdir().unwrap()).await
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
                Ok(Ok(_)) => continue,
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
