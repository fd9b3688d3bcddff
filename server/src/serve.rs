//! `marain serve`: the engine plus the HTTP server, with graceful shutdown.

use std::future::{Future, IntoFuture};
use std::process::ExitCode;

use axum::routing::{get, post};

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use marain::engine::{Coordinator, EngineConfig};
use marain_app::{shell, App};
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::state::AppState;

pub async fn run(
    args: ServeArgs,
    log: Option<crate::log_level::LogControl>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    match serve_logged(listener, args, log, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves on an already-bound `listener` (tests bind port 0 and read it back).
pub async fn serve(
    listener: tokio::net::TcpListener,
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    serve_logged(listener, args, None, shutdown).await
}

/// [`serve`], with the process's log filter following `system.logging.level`.
pub async fn serve_logged(
    listener: tokio::net::TcpListener,
    args: ServeArgs,
    log: Option<crate::log_level::LogControl>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if !args.site.is_dir() {
        return Err(format!("site directory {} does not exist", args.site.display()));
    }
    ensure_sqlite_parent(&args.database)?;
    // Before the engine starts: what it counts from the start-up on is kept.
    crate::metrics_export::handle();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut config = EngineConfig::new(&args.site, &args.database);
    config.direct_database_url = args.direct_database.clone();
    config.debounce = std::time::Duration::from_millis(args.debounce_ms);
    config.event_buffer = args.event_buffer.max(1);
    config.sync_poll = std::time::Duration::from_millis(args.sync_poll_ms);
    config.lock_timeout = std::time::Duration::from_millis(args.lock_timeout_ms);
    if let Some(name) = &args.instance_name {
        config.instance_name = name.clone();
    }
    config.site_layout = match args.site_layout {
        crate::cli::SiteLayoutArg::Shared => marain::engine::SiteLayout::Shared,
        crate::cli::SiteLayoutArg::PerInstance => marain::engine::SiteLayout::PerInstance,
    };
    config.env = args.env.clone();
    config.secure_log = args.secure_log.clone();
    config.secret_sources = marain::engine::secret_refs::SecretSources {
        dir: args.secrets_dir.clone(),
        env_prefix: args.secret_env_prefix.clone(),
    };
    let engine_stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    // The listener answers from now on: probes and pages say what the start
    // is waiting for until the engine runs (`starting.rs`). Its cap is the
    // default until the applied `api.max_connections` is known.
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let starting = std::sync::Arc::new(marain::engine::health::Starting::default());
    let started: crate::starting::Started = std::sync::Arc::default();
    let (listener, cap) =
        crate::connections::CappedListener::new(listener, crate::connections::DEFAULT_MAX_CONNECTIONS);
    let (engine_gone_tx, engine_gone) = tokio::sync::oneshot::channel::<String>();
    let stopping = stop_tx.subscribe();
    let gate = crate::starting::router(started.clone(), starting.clone(), sign_in_page(&args, addr));
    let mut server = tokio::spawn(
        axum::serve(listener, gate.into_make_service_with_connect_info::<crate::connections::Peer>())
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = engine_gone => {}
                }
                let _ = stop_tx.send(true);
            })
            .into_future(),
    );
    println!("marain: listening on http://{addr}/ (starting)");

    let started_engine = Coordinator::start_observed(config, engine_stop, starting).await;
    let (engine, engine_task) = match started_engine {
        Ok(started) => started,
        Err(e) => {
            let _ = engine_gone_tx.send(e.to_string());
            let _ = server.await;
            return Err(e.to_string());
        }
    };
    let set_up = async {
        match engine.store().accounts().ensure_admin(args.admin_password.as_deref()).await {
            Ok(Some(password)) if args.admin_password.is_none() => println!(
                "marain: first start: account `admin` (approver) created with the one-time password: {password}\n\
                 marain: sign in and replace it with `marain admin add --username admin --role approver --replace`"
            ),
            Ok(Some(_)) => {
                println!("marain: first start: account `admin` (approver) created from MARAIN_ADMIN_PASSWORD")
            }
            Ok(None) => {}
            Err(e) => return Err(format!("cannot create the first account: {e}")),
        }
        if let Some(control) = log {
            tokio::spawn(crate::log_level::follow(engine.clone(), control, stop_rx.clone()));
        }
        tokio::spawn(crate::webhooks::deliver(engine.clone(), stop_rx.clone()));
        let sessions = crate::sessions::layer(engine.store(), args.secure_cookies, stop_rx.clone()).await?;
        let (streams, event_stream_limit) = snapshot_streams(&engine);
        let state =
            AppState { engine: engine.clone(), shutdown: stop_rx.clone(), event_streams: streams, event_stream_limit };
        Ok(router(state, &args, addr, sessions))
    };
    let app = match set_up.await {
        Ok(app) => app,
        Err(e) => {
            let _ = engine_gone_tx.send(e.clone());
            let _ = server.await;
            let _ = engine_task.await;
            engine.store().close().await;
            return Err(e);
        }
    };
    let max_connections = engine.snapshot().settings.max_connections.map(|n| n as usize);
    cap.set(max_connections.unwrap_or(crate::connections::DEFAULT_MAX_CONNECTIONS));
    let _ = started.set(app);

    let snapshot = engine.snapshot();
    println!("marain: dashboard on http://{addr}/");
    println!(
        "marain: site {} ({}) · {} and {} applied · {} pending · {} rejected",
        args.site.display(),
        args.env,
        marain::plural::count(snapshot.applied.schema_count() as i64, "schema", "schemas"),
        marain::plural::count(snapshot.applied.configs().count() as i64, "config file", "config files"),
        snapshot.pending.len(),
        snapshot.rejected.len()
    );

    let mut engine_task = engine_task;
    tokio::select! {
        served = &mut server => {
            served.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            engine_task.await.map_err(|e| e.to_string())?;
        }
        // The engine ended while the server runs: a panic in the worker. Serving
        // on would answer with a state that no longer moves; stop, loudly, so a
        // supervisor restarts the process.
        ended = &mut engine_task => {
            if *stopping.borrow() {
                // The engine stops first on an ordinary shutdown.
                ended.map_err(|e| e.to_string())?;
                let _ = server.await;
                engine.store().close().await;
                return Ok(());
            }
            let why = match ended {
                Err(e) if e.is_panic() => "its worker panicked".to_string(),
                Err(e) => e.to_string(),
                Ok(()) => "its worker returned".to_string(),
            };
            tracing::error!(%why, "the engine stopped unexpectedly; the server stops");
            let _ = engine_gone_tx.send(why.clone());
            let _ = server.await;
            engine.store().close().await;
            return Err(format!("the engine stopped unexpectedly ({why}); restart the server"));
        }
    }
    engine.store().close().await;
    Ok(())
}

/// The event streams `api.max_event_streams` allows, as applied at start-up: by
/// default half the connections, so streams never take them all.
fn snapshot_streams(engine: &Coordinator) -> (std::sync::Arc<tokio::sync::Semaphore>, usize) {
    let settings = engine.snapshot().settings.clone();
    let connections = settings.max_connections.map_or(crate::connections::DEFAULT_MAX_CONNECTIONS, |n| n as usize);
    let max = settings.max_event_streams.map_or(connections / 2, |n| n as usize).max(1);
    (std::sync::Arc::new(tokio::sync::Semaphore::new(max)), max)
}

/// `sqlite://data/marain.db` needs `data/` to exist before SQLite can create the file.
fn ensure_sqlite_parent(url: &str) -> Result<(), String> {
    let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else { return Ok(()) };
    let path = path.split('?').next().unwrap_or(path);
    match std::path::Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() && path != ":memory:" => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The pages' Leptos settings. Built by `cargo xtask build`, the files carry
/// their content's hash in their names and `hash.txt` says which (Leptos
/// reads it for the page's script tags, the shell for its stylesheet). Assets
/// built otherwise (`cargo leptos watch`) have plain names.
fn page_options(args: &ServeArgs, addr: std::net::SocketAddr) -> LeptosOptions {
    let manifest = crate::assets::manifest(&args.assets);
    LeptosOptions::builder()
        .output_name("marain")
        .site_root(args.assets.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .hash_files(manifest.is_some())
        .hash_file(std::sync::Arc::<str>::from(
            manifest.map_or_else(|| "hash.txt".to_string(), |p| p.to_string_lossy().to_string()),
        ))
        .build()
}

/// What serves the sign-in page and its files while the engine starts: the
/// page needs no engine, and a person can type while a big site reconciles.
fn sign_in_page(args: &ServeArgs, addr: std::net::SocketAddr) -> Router {
    let options = page_options(args, addr);
    let login = generate_route_list(App).into_iter().filter(|route| route.path() == "/login").collect::<Vec<_>>();
    let [headers_a, headers_b, headers_c] = crate::headers::layers();
    Router::new()
        .leptos_routes_with_context(&options, login, crate::headers::set_page_policy, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .with_state(options)
        .layer(axum::middleware::from_fn(crate::assets::page_validators))
        .merge(crate::assets::pkg_routes(&args.assets))
        .layer(headers_a)
        .layer(headers_b)
        .layer(headers_c)
}

pub fn router(
    state: AppState,
    args: &ServeArgs,
    addr: std::net::SocketAddr,
    sessions: tower_sessions::SessionManagerLayer<crate::sessions::SessionRows>,
) -> Router {
    let leptos_options = page_options(args, addr);
    // The content API is the public one: `api.rate_limit` applies to it (the
    // operator's own endpoints never lock the operator out). Every answer is
    // counted for `/metrics`.
    let content = crate::openapi::content_routes()
        .layer(axum::middleware::from_fn_with_state(
            crate::rate_limit::LiveRateLimit::new(state.engine.clone()),
            crate::rate_limit::limit,
        ))
        .layer(axum::middleware::from_fn(crate::metrics_export::count_content));
    let api = crate::openapi::finish(crate::openapi::operator_routes().merge(content), state.clone())
        .route("/api/{*rest}", get(crate::api::not_found).post(crate::api::not_found))
        .layer(crate::cors::layer(state.engine.clone()));
    let engine = state.engine.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &leptos_options,
            generate_route_list(App),
            move || {
                provide_context(engine.clone());
                crate::headers::set_page_policy();
            },
            {
                let options = leptos_options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options)
        .layer(axum::middleware::from_fn(crate::assets::page_validators));
    let auth = crate::auth::Auth::new(state.engine.clone());
    let sign_in = Router::new()
        .route("/login", post(crate::auth::login))
        .route("/logout", post(crate::auth::logout))
        .with_state(auth.clone());
    let [headers_a, headers_b, headers_c] = crate::headers::layers();
    pages
        .merge(crate::assets::pkg_routes(&args.assets))
        .merge(api)
        .merge(sign_in)
        .layer(axum::middleware::from_fn(crate::server_fn_errors::statuses))
        .layer(axum::middleware::from_fn_with_state(auth, crate::auth::require_identity))
        .layer(sessions)
        // Every route, server functions and sign-in included: no body over 1 MiB
        // is read (content records and approvals are far smaller).
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(headers_a)
        .layer(headers_b)
        .layer(headers_c)
}

/// The largest request body any route reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
