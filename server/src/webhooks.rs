//! Webhooks (`hot_reload.webhooks`): every engine event is POSTed as JSON to each
//! configured URL, signed `X-Marain-Signature: sha256=<hex HMAC-SHA256 of the
//! body>` when the hook has a secret, and retried with backoff. The list is read
//! from the live snapshot per event, so a config edit takes effect at once.
//!
//! With several instances, each sees the same events (an applied version arrives
//! on every instance: applied here, or synced from another). Each delivery is
//! claimed in the database first ([`delivery_key`]); only the instance whose
//! claim lands sends it, so a hook hears each event once.

use std::time::Duration;

use hmac::{Hmac, Mac};
use marain::engine::{Coordinator, EngineEvent, EventKind};
use marain::live_config::Webhook;
use sha2::Sha256;
use tokio::sync::{broadcast, watch};

/// Delays before the second, third and fourth attempt.
const BACKOFF: [Duration; 3] = [Duration::from_millis(200), Duration::from_secs(1), Duration::from_secs(5)];

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

pub async fn deliver(engine: Coordinator, mut shutdown: watch::Receiver<bool>) {
    let mut events = engine.subscribe();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a TLS-less client builds");
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            _ = prune.tick() => None,
            event = events.recv() => Some(event),
        };
        let Some(event) = event else {
            if let Err(e) = engine.prune_delivery_claims().await {
                tracing::warn!(error = %e, "could not delete old webhook claims");
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
        for hook in engine.snapshot().settings.webhooks.iter().cloned() {
            let key = delivery_key(&hook, &event);
            match engine.claim_delivery(&key).await {
                Ok(true) => {
                    tokio::spawn(send(client.clone(), hook, key, event.clone()));
                }
                Ok(false) => tracing::debug!(url = %hook.url, "another instance delivers this event"),
                Err(e) => tracing::error!(url = %hook.url, error = %e, "cannot claim a webhook delivery; not sent"),
            }
        }
    }
}

async fn send(client: reqwest::Client, hook: Webhook, delivery: String, event: EngineEvent) {
    let body = serde_json::to_vec(&event).expect("events serialise");
    for attempt in 0..=BACKOFF.len() {
        let mut request = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-marain-event", event.kind.as_str())
            .header("x-marain-delivery", &delivery);
        if let Some(secret) = &hook.secret {
            request = request.header("x-marain-signature", signature(secret, &body));
        }
        match request.body(body.clone()).send().await {
            Ok(resp) if resp.status().is_success() => {
                crate::metrics_export::webhook_attempt(crate::metrics_export::Delivery::Delivered);
                return;
            }
            Ok(resp) => tracing::warn!(url = %hook.url, status = %resp.status(), attempt, "webhook refused"),
            Err(e) => tracing::warn!(url = %hook.url, error = %e, attempt, "webhook unreachable"),
        }
        crate::metrics_export::webhook_attempt(crate::metrics_export::Delivery::Failed);
        match BACKOFF.get(attempt) {
            Some(delay) => tokio::time::sleep(*delay).await,
            None => {
                crate::metrics_export::webhook_attempt(crate::metrics_export::Delivery::GivenUp);
                tracing::error!(url = %hook.url, seq = event.seq, "webhook given up after retries")
            }
        }
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
