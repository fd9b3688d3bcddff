//! `GET /metrics`: the Prometheus text exposition.
//!
//! Counters and histograms go through the `metrics` facade into one
//! Prometheus recorder per process (the engine's are in
//! `marain::engine::telemetry`; content requests and webhook deliveries are
//! counted here). Gauges of state (pending changes, rejected files, drift,
//! open event streams, readiness) are read from this server's engine when
//! scraped, so they are exact and never stale. Names, labels and who may
//! scrape are in `docs/operating.md`.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

const CONTENT_REQUESTS: &str = "marain_content_requests_total";
const CONTENT_SECONDS: &str = "marain_content_request_seconds";
const WEBHOOK_DELIVERIES: &str = "marain_webhook_deliveries_total";

/// Buckets for latencies, in seconds: from a cached read (1 ms) to a change
/// that waited for approval (an hour).
const BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0];

/// The process's recorder, installed on first use; `None` when another
/// recorder was installed first (an embedding program's own).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    marain::engine::telemetry::describe();
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed; /metrics shows only the state gauges");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(CONTENT_REQUESTS, "Content API requests answered, by method and status");
    metrics::describe_histogram!(CONTENT_SECONDS, metrics::Unit::Seconds, "Content API request durations, by method");
    metrics::describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts: delivered, failed (retried later), given_up (after the last retry)"
    );
}

/// Counts every content API answer by method and status.
pub async fn count_content(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(CONTENT_REQUESTS, "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!(CONTENT_SECONDS, "method" => method).record(started.elapsed().as_secs_f64());
    response
}

/// How one webhook attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    Delivered,
    Failed,
    GivenUp,
}

pub fn webhook_attempt(outcome: Delivery) {
    let outcome = match outcome {
        Delivery::Delivered => "delivered",
        Delivery::Failed => "failed",
        Delivery::GivenUp => "given_up",
    };
    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// The Prometheus text exposition (any role's token, or an `api.metrics_from` address).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
        (status = 401, body = crate::error::ErrorBody)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = handle().map(PrometheusHandle::render).unwrap_or_default();
    body.push_str(&gauges(&state).await);
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// This server's state, as gauges.
async fn gauges(state: &AppState) -> String {
    let snapshot = state.engine.snapshot();
    let readiness = state.engine.readiness().await;
    let streams = state.event_stream_limit.saturating_sub(state.event_streams.available_permits());
    let since_sync = snapshot.last_sync.as_deref().and_then(seconds_since);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    };
    gauge("marain_pending_changes", "Changes waiting for approval", snapshot.pending.len() as f64);
    gauge("marain_rejected_files", "Files whose newest content is rejected (the last good version stays live)", {
        let files: std::collections::BTreeSet<&str> = snapshot.rejected.iter().map(|e| e.file.as_str()).collect();
        files.len() as f64
    });
    gauge("marain_failed_files", "Files whose approved change failed to apply", snapshot.failed.len() as f64);
    gauge("marain_drift", "Places where the database differs from the applied files", snapshot.drift.len() as f64);
    gauge(
        "marain_files_behind",
        "Files whose copy here is older than the applied version",
        snapshot.behind.len() as f64,
    );
    gauge(
        "marain_seconds_since_last_sync",
        "Since the files were last compared with the applied state (-1: not yet)",
        since_sync.unwrap_or(-1.0),
    );
    gauge("marain_event_streams", "Open event streams (dashboards and other SSE clients)", streams as f64);
    gauge("marain_ready", "1 when /readyz answers ready", f64::from(u8::from(readiness.ready())));
    gauge("marain_watching", "1 while the watcher watches the site directory", f64::from(u8::from(readiness.watching)));
    gauge("marain_database_up", "1 when the database answered this scrape", f64::from(u8::from(readiness.database)));
    let _ = write!(
        out,
        "# HELP marain_build_info The running build\n# TYPE marain_build_info gauge\nmarain_build_info{{version=\"{}\",commit=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION"),
        crate::version::COMMIT
    );
    out
}

fn seconds_since(rfc3339: &str) -> Option<f64> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    Some((time::OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0))
}
