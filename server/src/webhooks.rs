//! Webhooks (`hot_reload.webhooks`): every engine event is POSTed as JSON to each
//! configured URL, signed `X-Marain-Signature: sha256=<hex HMAC-SHA256 of the
//! body>` when the hook has a secret, and retried with backoff. The list is read
//! from the live snapshot per event, so a config edit takes effect at once.

use std::time::Duration;

use hmac::{Hmac, Mac};
use marain::engine::{Coordinator, EngineEvent};
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

pub async fn deliver(engine: Coordinator, mut shutdown: watch::Receiver<bool>) {
    let mut events = engine.subscribe();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a TLS-less client builds");
    loop {
        let event = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            event = events.recv() => event,
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
            tokio::spawn(send(client.clone(), hook, event.clone()));
        }
    }
}

async fn send(client: reqwest::Client, hook: Webhook, event: EngineEvent) {
    let body = serde_json::to_vec(&event).expect("events serialise");
    for attempt in 0..=BACKOFF.len() {
        let mut request = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-marain-event", event.kind.as_str())
            .header("x-marain-delivery", event.seq.to_string());
        if let Some(secret) = &hook.secret {
            request = request.header("x-marain-signature", signature(secret, &body));
        }
        match request.body(body.clone()).send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) => tracing::warn!(url = %hook.url, status = %resp.status(), attempt, "webhook refused"),
            Err(e) => tracing::warn!(url = %hook.url, error = %e, attempt, "webhook unreachable"),
        }
        match BACKOFF.get(attempt) {
            Some(delay) => tokio::time::sleep(*delay).await,
            None => tracing::error!(url = %hook.url, seq = event.seq, "webhook given up after retries"),
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
