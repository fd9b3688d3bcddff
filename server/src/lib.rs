//! The `marain` server: CLI, REST API, SSE, and the Leptos dashboard, wired to the
//! engine. The binary's `main` only parses arguments and calls [`run`].

pub mod api;
pub mod check;
pub mod cli;
pub mod content_api;
pub mod history_cmd;
pub mod plan_cmd;
pub mod serve;
pub mod sse;

use std::future::Future;
use std::process::ExitCode;

use cli::{Cli, Command};

/// Runs the command `cli` names until it finishes or `shutdown` resolves.
pub async fn run(cli: Cli, shutdown: impl Future<Output = ()> + Send + 'static) -> ExitCode {
    init_tracing();
    match cli.command {
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Plan(args)) => plan_cmd::run(&args),
        Some(Command::History(args)) => history_cmd::run(&args).await,
        Some(Command::Serve(args)) => serve::run(args, shutdown).await,
        None => serve::run(cli.serve, shutdown).await,
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // A second call (tests start several servers in one process) keeps the first.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
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
