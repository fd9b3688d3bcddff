//! `system.logging.level` and `system.logging.format`: the running tracing
//! filter and the log lines' format follow the applied config.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use marain::engine::Coordinator;
use marain::live_config::{LogFormat, LogLevel};
use tokio::sync::watch;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The handle on the process's filter, made when tracing is installed.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The filter used while no config sets a level (`RUST_LOG` or the default).
    fallback: String,
    /// Lines are JSON objects, not text.
    json: Arc<AtomicBool>,
}

impl LogControl {
    pub fn new(handle: reload::Handle<EnvFilter, Registry>, fallback: String, json: Arc<AtomicBool>) -> Self {
        LogControl { handle, fallback, json }
    }

    fn set_format(&self, format: Option<LogFormat>) {
        let json = format == Some(LogFormat::Json);
        if self.json.swap(json, Ordering::Relaxed) != json {
            tracing::warn!(format = if json { "json" } else { "text" }, "log format changed by system.logging.format");
        }
    }

    fn set(&self, level: Option<LogLevel>) {
        let directives = match level {
            Some(l) => format!("{},sqlx=warn", l.as_str()),
            None => self.fallback.clone(),
        };
        match self.handle.modify(|f| *f = EnvFilter::new(&directives)) {
            // Logged at warn, so it shows under whichever level was just set
            // (but error): an operator sees when and how their logs changed.
            Ok(()) => tracing::warn!(filter = %directives, "log filter changed by system.logging.level"),
            Err(e) => eprintln!("marain: could not change the log filter: {e}"),
        }
    }
}

/// Applies the configured level now and after every engine event that changes
/// it, until shutdown.
pub async fn follow(engine: Coordinator, control: LogControl, mut shutdown: watch::Receiver<bool>) {
    let mut events = engine.subscribe();
    let mut current = engine.snapshot().settings.log_level;
    if current.is_some() {
        control.set(current);
    }
    control.set_format(engine.snapshot().settings.log_format);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            event = events.recv() => {
                if matches!(event, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    break;
                }
                let settings = engine.snapshot().settings.clone();
                control.set_format(settings.log_format);
                let wanted = settings.log_level;
                if wanted != current {
                    control.set(wanted);
                    current = wanted;
                }
            }
        }
    }
}
