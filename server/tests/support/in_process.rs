//! A `marain serve` in the test's own process, on a temp site (one schema,
//! `user`) and a database of the backend asked for, with an approver's API
//! token; for the HTTP tests that do not need a separate process.

use std::path::PathBuf;
use std::time::Duration;

use marain::engine::accounts::Role;
use marain_server::cli::ServeArgs;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::Backend;

pub const USER: &str = "id: user\nname: User\nfields:\n  - id: username\n    type: text\n    required: true\n  - id: bio\n    type: long_text\n";

pub struct Server {
    pub base: String,
    pub site: PathBuf,
    /// Sends an approver's API token with every request.
    pub client: reqwest::Client,
    /// Sends nothing: no session, no token.
    pub anonymous: reqwest::Client,
    pub db: String,
    pub backend: Backend,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    pub _dir: tempfile::TempDir,
}

/// A token made straight in the database, as `marain token create` makes one.
pub async fn token(db: &str, name: &str, role: Role) -> String {
    let store = marain::engine::Store::open(db).await.unwrap();
    let secret = store.accounts().create_token(name, role).await.unwrap();
    store.close().await;
    secret
}

pub fn client_with(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, |_| {}).await
    }

    /// [`Server::start`] with `adjust` applied to the command line first.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut ServeArgs)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("schemas")).unwrap();
        std::fs::write(site.join("schemas/user.schema.yaml"), USER).unwrap();
        Self::start_in(dir, backend, adjust, None).await
    }

    /// Stops the server and starts a new one on the same site and database, as
    /// a restart of the process would.
    pub async fn restart(mut self) -> Server {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        Self::start_in(dir, self.backend, |_| {}, Some(self.client.clone())).await
    }

    /// Serves the site in `dir`; `client` is the approver's client of a server
    /// that ran there before (its token is in the database already).
    pub async fn start_in(
        dir: tempfile::TempDir,
        backend: Backend,
        adjust: impl FnOnce(&mut ServeArgs),
        client: Option<reqwest::Client>,
    ) -> Server {
        let site = dir.path().join("site");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let db = backend.prepare(dir.path()).await;
        let client = match client {
            Some(client) => client,
            None => client_with(&token(&db, "tests", Role::Approver).await),
        };
        let args = ServeArgs {
            site: site.clone(),
            database: db.clone(),
            direct_database: None,
            addr,
            assets: dir.path().join("assets"),
            debounce_ms: 25,
            event_buffer: 1024,
            env: "dev".into(),
            secure_log: Some(dir.path().join("secure.log")),
            admin_password: Some("correct horse battery staple".into()),
            secure_cookies: false,
            sync_poll_ms: 5000,
            lock_timeout_ms: 2000,
            site_layout: marain_server::cli::SiteLayoutArg::Shared,
            instance_name: None,
            secrets_dir: None,
            secret_env_prefix: marain::engine::secret_refs::DEFAULT_ENV_PREFIX.into(),
        };
        let mut args = args;
        adjust(&mut args);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(marain_server::serve::serve(listener, args, async move {
            let _ = stopped.await;
        }));
        let server = Server {
            base: format!("http://{addr}/api/v1/hot-reload"),
            site,
            client,
            anonymous: reqwest::Client::new(),
            db,
            backend,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        server.wait_until(|s| s["in_sync"] == json!(true)).await;
        server
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// Writes `config/config.api.yaml` with `values` (YAML lines under
    /// `values:`) as its first version, and waits until it is applied.
    pub async fn apply_api_config(&self, values: &str) {
        std::fs::create_dir_all(self.site.join("config")).unwrap();
        std::fs::write(self.site.join("config/config.api.yaml"), format!("id: api\nvalues:\n{values}")).unwrap();
        self.wait_versions("config/config.api.yaml", 1).await;
    }

    /// Polls the history of `file` until it has `n` versions; fails after 10 s.
    pub async fn wait_versions(&self, file: &str, n: usize) {
        for _ in 0..200 {
            let (_, history) = self.get(&format!("/history?file_path={file}")).await;
            if history["versions"].as_array().map(Vec::len) == Some(n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{file} never reached {n} versions");
    }

    /// Polls the status until `done` holds; fails after 10 s.
    pub async fn wait_until(&self, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            // While the engine starts, the server answers 503 (`starting.rs`).
            let answer = self.client.get(format!("{}/status", self.base)).send().await;
            if let Ok(resp) = answer.and_then(|r| r.error_for_status()) {
                let status: Value = resp.json().await.unwrap();
                if done(&status) {
                    return status;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("status never reached the expected state");
    }

    /// Runs one statement on the server's database, beside the server.
    pub async fn exec(&self, sql: &str) {
        let store = marain::engine::Store::open(&self.db).await.unwrap();
        store.pool().execute(sql, &[]).await.unwrap();
        store.close().await;
    }

    /// The one integer `sql` selects from the server's database.
    pub async fn count(&self, sql: &str) -> i64 {
        let store = marain::engine::Store::open(&self.db).await.unwrap();
        let (n,): (i64,) = store.pool().fetch_one(sql, &[]).await.unwrap();
        store.close().await;
        n
    }

    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}
