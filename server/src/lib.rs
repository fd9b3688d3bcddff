//! The `marain` server: CLI, REST API, SSE, and the Leptos dashboard, wired to the
//! engine. The binary's `main` only parses arguments and calls [`run`].

pub mod accounts_cmd;
pub mod api;
pub mod assets;
pub mod auth;
pub mod backups_cmd;
pub mod check;
pub mod cli;
pub mod client;
pub mod connections;
pub mod content_api;
pub mod cors;
pub mod error;
pub mod headers;
pub mod health;
pub mod history_cmd;
pub mod json_body;
pub mod legacy_cmd;
pub mod log_level;
pub mod metrics_export;
pub mod openapi;
pub mod plan_cmd;
pub mod rate_limit;
pub mod rollback_cmd;
pub mod serve;
pub mod server_fn_errors;
pub mod sessions;
pub mod sse;
pub mod starting;
pub mod state;
pub mod store_cmd;
pub mod version;
pub mod webhooks;

use std::future::Future;
use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs the command `cli` names until it finishes or `shutdown` resolves.
pub async fn run(cli: Cli, shutdown: impl Future<Output = ()> + Send + 'static) -> ExitCode {
    let log = init_tracing();
    match cli.command {
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Plan(args)) => plan_cmd::run(&args),
        Some(Command::History(args)) => history_cmd::run(&args).await,
        Some(Command::Backups(args)) => backups_cmd::run(&args).await,
        Some(Command::Admin(args)) => accounts_cmd::admin(&args).await,
        Some(Command::Token(args)) => accounts_cmd::token(&args).await,
        Some(Command::Rollback(args)) => rollback_cmd::run(&args).await,
        Some(Command::Legacy(args)) => legacy_cmd::run(&args).await,
        Some(Command::Serve(args)) => serve::run(args, log, shutdown).await,
        None => serve::run(cli.serve, log, shutdown).await,
    }
}

/// Installs the process's tracing subscriber with a reloadable filter; `None`
/// when one is already installed (tests start several servers in one process).
fn init_tracing() -> Option<log_level::LogControl> {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let fallback = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_string());
    let (filter, handle) = tracing_subscriber::reload::Layer::new(tracing_subscriber::EnvFilter::new(&fallback));
    // Both formats are installed; a flag the applied config sets picks which one
    // writes (`system.logging.format`), checked per event.
    let json = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (to_json, to_text) = (json.clone(), json.clone());
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::filter_fn(move |_| {
            !to_text.load(std::sync::atomic::Ordering::Relaxed)
        })))
        .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(false).with_filter(
            tracing_subscriber::filter::filter_fn(move |_| to_json.load(std::sync::atomic::Ordering::Relaxed)),
        ))
        .try_init();
    installed.is_ok().then(|| log_level::LogControl::new(handle, fallback, json))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
