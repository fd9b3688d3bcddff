//! `marain serve` instances of one system, on one shared PostgreSQL database
//! (the multi-instance tests: `cluster.rs`, `proxies.rs`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::Running;

/// One instance: its process and its API base.
pub struct Instance {
    pub name: &'static str,
    pub process: Running,
    pub base: String,
}

impl Instance {
    /// `marain serve` on `site` and `db`, with its own secure log, and a sync
    /// poll slow enough that only notifications (or a reconnect) can explain
    /// a prompt catch-up.
    pub fn start(name: &'static str, dir: &Path, db: &str) -> Instance {
        Self::start_on(name, dir, &dir.join("site"), db, "shared")
    }

    /// [`Instance::start`] on its own `site` directory, with `--site-layout layout`.
    pub fn start_on(name: &'static str, dir: &Path, site: &Path, db: &str, layout: &str) -> Instance {
        Self::start_with(name, dir, site, db, layout, &[], &[])
    }

    /// [`Instance::start_on`] with more environment (a failpoint) and more
    /// arguments (`--direct-database …`).
    pub fn start_with(
        name: &'static str,
        dir: &Path,
        site: &Path,
        db: &str,
        layout: &str,
        env: &[(&str, String)],
        args: &[String],
    ) -> Instance {
        // The sync poll is slow unless asked otherwise: only notifications (or
        // a reconnect) can explain a prompt catch-up.
        let poll = env.iter().find(|(k, _)| *k == "MARAIN_SYNC_POLL_MS").map_or("60000", |(_, v)| v.as_str());
        let mut command = Command::new(env!("CARGO_BIN_EXE_marain"));
        command
            .args(["serve", "--site"])
            .arg(site)
            .args(["--site-layout", layout, "--instance-name", name])
            .args(["--database", db, "--addr", "127.0.0.1:0", "--debounce-ms", "10", "--sync-poll-ms", poll])
            .arg("--secure-log")
            .arg(dir.join(format!("secure-{name}.log")))
            .arg("--assets")
            .arg(dir.join("assets"))
            .env("MARAIN_ADMIN_PASSWORD", "correct horse battery staple")
            .env_remove("MARAIN_FAILPOINT");
        command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        let process = Running::spawn(command);
        let base = format!("http://{}/api/v1/hot-reload", process.addr);
        Instance { name, process, base }
    }

    pub async fn status(&self, client: &reqwest::Client) -> Value {
        client.get(format!("{}/status", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// Polls the status until `done` holds; fails after 10 s naming the instance.
    pub async fn wait_status(&self, client: &reqwest::Client, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let status = self.status(client).await;
            if done(&status) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("instance {} never reached the expected state: {}", self.name, self.status(client).await);
    }

    /// This instance's id of its one pending change, once it has one.
    pub async fn pending_id(&self, client: &reqwest::Client) -> u64 {
        let status = self.wait_status(client, |s| s["pending"].as_array().is_some_and(|p| p.len() == 1)).await;
        status["pending"][0]["id"].as_u64().unwrap()
    }

    pub async fn approve(&self, client: &reqwest::Client, id: u64, confirm: &str) -> (u16, Value) {
        let resp = client
            .post(format!("{}/changes/{id}/approve", self.base))
            .json(&json!({"reason": "cluster test", "confirm": confirm}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

/// A client carrying the API token of an approver named [`APPROVER`], made
/// in the database the instances open.
pub async fn approver_client(db: &str) -> reqwest::Client {
    let token = super::in_process::token(db, APPROVER, marain::engine::accounts::Role::Approver).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers).build().unwrap()
}

/// Who [`approver_client`] acts as, in history rows and messages.
pub const APPROVER: &str = "cluster-test";
