//! Webhooks (`hot_reload.webhooks`): every engine event is POSTed as JSON to each
//! configured URL, signed `X-Marain-Signature: sha256=<hex HMAC-SHA256 of the
//! body>` when the hook has a secret, and retried with backoff. The list is read
//! from the live snapshot, so a config edit takes effect at once.
//!
//! Deliveries go through an outbox in the database (`engine::deliveries`). With
//! several instances each sees the same events (an applied version arrives on
//! every instance: applied here, or synced from another) and adds its delivery
//! under one key ([`delivery_key`]), so there is one row per event and hook.
//! Every instance's dispatcher leases due rows, at most [`IN_FLIGHT`] at a
//! time, sends them and records the outcome; a lease outlives an attempt's
//! timeout, and when it runs out (the instance died, or hangs) another instance
//! takes the row. A hook hears each event once, unless an instance dies
//! between the hook's answer and the record of it: then it hears it again,
//! with the same `X-Marain-Delivery`.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use marain::engine::deliveries::Delivery;
use marain::engine::{Coordinator, EngineEvent, EventKind};
use marain::live_config::Webhook;
use marain::secrets::url_for_logs;
use sha2::Sha256;
use tokio::sync::{broadcast, watch, Notify, Semaphore};

/// Deliveries one instance has on the way at once.
pub const IN_FLIGHT: usize = 8;

/// Milliseconds before the second, third and fourth attempt; after the fourth
/// the delivery is given up.
const RETRY_MS: [i64; 3] = [200, 1000, 5000];

/// How long one attempt may take unless `hot_reload.webhook_timeout_ms` says.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How often the dispatcher looks for deliveries due (other instances' rows,
/// retries), besides being woken by this instance's own.
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What makes two instances' events the same delivery: an applied version is
/// one file's version wherever it is announced; any other event is its kind,
/// file and words (the same edit seen on every instance of a shared site).
pub fn delivery_key(hook: &Webhook, event: &EngineEvent) -> String {
    let what = match (event.kind, event.version) {
        (EventKind::Applied | EventKind::RolledBack, Some(version)) => version.to_string(),
        _ => event.message.clone(),
    };
    marain::hash::sha256_hex(format!("{}\n{}\n{}\n{what}", hook.url, event.kind.as_str(), event.file).as_bytes())
}

/// Adds every event's deliveries to the outbox, and runs this instance's
/// dispatcher, until shutdown.
pub async fn deliver(engine: Coordinator, mut shutdown: watch::Receiver<bool>) {
    let wake = Arc::new(Notify::new());
    let dispatcher = tokio::spawn(dispatch(engine.clone(), shutdown.clone(), wake.clone()));
    let mut events = engine.subscribe();
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = prune.tick() => None,
            event = events.recv() => Some(event),
        };
        let Some(event) = event else {
            if let Err(e) = engine.prune_deliveries().await {
                tracing::warn!(error = %e, "could not delete old webhook deliveries");
            }
            continue;
        };
        let event = match event {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "webhooks fell behind; some events were not delivered");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let body = serde_json::to_string(&event).expect("events serialise");
        for hook in engine.snapshot().settings.webhooks.iter() {
            let key = delivery_key(hook, &event);
            match engine.enqueue_delivery(&key, &hook.url, event.kind.as_str(), &body).await {
                Ok(true) => wake.notify_one(),
                Ok(false) => tracing::debug!(url = %url_for_logs(&hook.url), "another instance added this delivery"),
                Err(e) => {
                    tracing::error!(url = %url_for_logs(&hook.url), error = %e, "cannot add a webhook delivery; not sent")
                }
            }
        }
    }
    dispatcher.abort();
}

/// Leases due deliveries while there is room for them, and sends each.
async fn dispatch(engine: Coordinator, mut shutdown: watch::Receiver<bool>, wake: Arc<Notify>) {
    let room = Arc::new(Semaphore::new(IN_FLIGHT));
    // One client for every attempt (its connections are reused); the timeout,
    // live from the settings, is set per request.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a TLS-less client builds");
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
        let free = room.available_permits();
        if free == 0 {
            continue;
        }
        let timeout = timeout(&engine);
        let lease_ms = (timeout * 3).as_millis() as i64;
        let due = match engine.lease_deliveries(free as i64, lease_ms).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot lease webhook deliveries; trying again");
                continue;
            }
        };
        for delivery in due {
            let Ok(permit) = room.clone().try_acquire_owned() else { break };
            let (engine, client) = (engine.clone(), client.clone());
            tokio::spawn(async move {
                send(&engine, &client, delivery, timeout).await;
                drop(permit);
            });
        }
    }
}

fn timeout(engine: &Coordinator) -> Duration {
    engine.snapshot().settings.webhook_timeout_ms.map(Duration::from_millis).unwrap_or(TIMEOUT)
}

/// One attempt of `delivery`, and its outcome in the outbox.
async fn send(engine: &Coordinator, client: &reqwest::Client, delivery: Delivery, timeout: Duration) {
    let url = url_for_logs(&delivery.url);
    let hook = engine.snapshot().settings.webhooks.iter().find(|h| h.url == delivery.url).cloned();
    let Some(hook) = hook else {
        tracing::warn!(url = %url, "the webhook is no longer configured; its delivery is dropped");
        record(&delivery.key, engine.delivery_failed(&delivery.key, None).await);
        return;
    };
    let mut request = client
        .post(&hook.url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("x-marain-event", &delivery.kind)
        .header("x-marain-delivery", &delivery.key);
    if let Some(secret) = &hook.secret {
        request = request.header("x-marain-signature", signature(secret, delivery.body.as_bytes()));
    }
    let attempt = delivery.attempts + 1;
    match request.body(delivery.body.clone()).send().await {
        Ok(resp) if resp.status().is_success() => {
            crate::metrics_export::webhook_attempt(crate::metrics_export::Delivery::Delivered);
            record(&delivery.key, engine.delivered(&delivery.key).await);
            return;
        }
        Ok(resp) => tracing::warn!(url = %url, status = %resp.status(), attempt, "webhook refused"),
        Err(e) => tracing::warn!(url = %url, error = %e.without_url(), attempt, "webhook unreachable"),
    }
    crate::metrics_export::webhook_attempt(crate::metrics_export::Delivery::Failed);
    let retry = RETRY_MS.get(delivery.attempts as usize).copied();
    if retry.is_none() {
        crate::metrics_export::webhook_attempt(crate::metrics_export::Delivery::GivenUp);
        tracing::error!(url = %url, key = %delivery.key, "webhook given up after retries");
    }
    record(&delivery.key, engine.delivery_failed(&delivery.key, retry).await);
}

/// Logs an outcome that could not be recorded: the lease runs out and the
/// delivery is tried again.
fn record(key: &str, result: Result<(), marain::engine::EngineError>) {
    if let Err(e) = result {
        tracing::warn!(key, error = %e, "cannot record a webhook delivery's outcome; it will be tried again");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            super::signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
