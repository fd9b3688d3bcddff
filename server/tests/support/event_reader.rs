//! A client of a server's event stream (`GET …/events`, server-sent events) that
//! reads the `data:` lines as JSON, as a browser's `EventSource` would.

use std::time::Duration;

use serde_json::Value;

pub struct EventReader {
    resp: reqwest::Response,
    pending: String,
}

impl EventReader {
    /// Opens `<base>/events` with `client` (which carries the credentials).
    pub async fn open(client: &reqwest::Client, base: &str) -> EventReader {
        let resp = client.get(format!("{base}/events")).send().await.unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        EventReader { resp, pending: String::new() }
    }

    /// Events until `stop` holds for one (that one included); fails after 10 s.
    pub async fn until(&mut self, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                while let Some(end) = self.pending.find('\n') {
                    let line: String = self.pending.drain(..=end).collect();
                    if let Some(data) = line.strip_prefix("data:") {
                        let event: Value = serde_json::from_str(data.trim()).unwrap();
                        let done = stop(&event);
                        events.push(event);
                        if done {
                            return;
                        }
                    }
                }
                let chunk = self.resp.chunk().await.unwrap().expect("the stream ended");
                self.pending.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no such event within 10 s; got {events:#?}"));
        events
    }
}
