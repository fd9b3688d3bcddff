//! Starting the engine: the store opened, the state both sides share built,
//! the worker loaded and reconciled with the files, the watcher and the
//! followers of other instances started, and the handle returned. The one
//! module that knows both the handle ([`Coordinator`]) and the worker, so
//! that those two never import each other.

use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::content::ContentService;
use super::coordinator::Coordinator;
use super::shared::{Command, Shared};
use super::snapshot::Snapshot;
use super::store::Store;
use super::watcher::Signals;
use super::watcher::SiteWatcher;
use super::worker::{Inputs, Worker};
use super::{EngineConfig, EngineError};

impl Coordinator {
    /// Opens the store, reconciles the files on disk with the last applied
    /// versions (differences become changes, as if edited while the server was
    /// down), starts watching, and runs until `shutdown` resolves.
    pub async fn start(
        config: EngineConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(Coordinator, JoinHandle<()>), EngineError> {
        Self::start_observed(config, shutdown, Arc::default()).await
    }

    /// [`Coordinator::start`], saying in `starting` how far it has come, for
    /// a server that answers while the engine starts.
    pub async fn start_observed(
        config: EngineConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
        starting: Arc<super::health::Starting>,
    ) -> Result<(Coordinator, JoinHandle<()>), EngineError> {
        let store = Store::open_through(&config.database_url, config.direct_database_url.as_deref()).await?;
        starting.loading();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(config.event_buffer.max(1));
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let schema_locks = Arc::new(super::schema_locks::SchemaLocks::default());
        let content_latency = Arc::new(super::content_latency::ContentLatency::default());
        let shared = Arc::new(Shared {
            content: ContentService::new(
                store.clone(),
                snapshot.clone(),
                schema_locks.clone(),
                content_latency.clone(),
                {
                    let commands = commands.clone();
                    Arc::new(move |entity: &str| {
                        let _ = commands.send(Command::CheckRows { entity: entity.to_string() });
                    })
                },
            ),
            snapshot,
            secure_log: config.secure_log.clone(),
            schema_locks,
            events,
            commands,
            store: store.clone(),
            lock_waits: ArcSwap::default(),
            online_runs: ArcSwap::default(),
            content_latency,
            legacy_running: std::sync::atomic::AtomicBool::new(false),
            health: super::health::Health::default(),
            activity: Arc::default(),
            lease_holder: format!("{}/{}", config.instance_name, store.instance()),
        });
        let secure_log = match &config.secure_log {
            Some(path) => Some(
                super::secure_log::SecureLog::open(path)
                    .map_err(|source| EngineError::Io { path: path.display().to_string(), source })?,
            ),
            None => None,
        };
        if config.site_layout == super::SiteLayout::PerInstance {
            // What this copy proposes is looked at afresh below.
            store.cluster().withdraw_proposals(&config.instance_name).await?;
        }
        let mut worker = Worker::new(&config, store, shared.clone(), secure_log);
        worker.load_applied().await?;
        starting.reconciling(super::scan::list_site_files(&config.site_root).len());
        worker.reconcile().await;

        let (signal_tx, signals) = mpsc::unbounded_channel();
        let signal_tx = Signals::new(signal_tx, shared.activity.clone());
        let watcher = SiteWatcher::start(&config.site_root, worker.wanted_debounce(), signal_tx.clone())?;
        shared.health.set_watching(true);
        shared.health.set_reconciled();
        super::sync::follow(&shared.store, &shared.commands, shared.snapshot.clone(), config.sync_poll);
        super::legacy_feed::follow(&shared.store, &shared.commands);
        super::takeover::watch(&shared.store, &shared.commands);
        let inputs = Inputs { watcher, signal_tx, signals, commands: command_rx };
        let task = tokio::spawn(worker.run(inputs, shutdown));
        starting.started();
        Ok((Coordinator::new(shared), task))
    }
}
