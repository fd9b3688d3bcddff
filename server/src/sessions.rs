//! Sign-in sessions, kept in the database (`marain_sessions`, through the
//! tower-sessions sqlx stores) rather than in the process: a restart, or another
//! instance on the same database, keeps everyone signed in. The cookie is
//! HttpOnly and SameSite=Strict, and the session ends after 8 hours without use;
//! expired rows are deleted every minute. When a session ends is stamped and
//! checked by the database's clock (see [`Clock`]), so instances whose clocks
//! differ agree on it.
//!
//! A row is kept under a hash of the session's id ([`stored`]), never the id
//! itself: a copy of the database (a backup) holds nothing a browser could
//! send to be signed in (docs/security.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marain::engine::accounts::Identity;
use marain::engine::database::Pool;
use marain::engine::signed_in::{SessionStart, RENEW_EVERY_SECS};
use marain::engine::Store;
use tokio::sync::watch;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

const TABLE: &str = "marain_sessions";

/// A session ends after this many hours without use.
const SESSION_HOURS: i64 = 8;

/// Where a session keeps the signed-in identity.
pub const IDENTITY_KEY: &str = "identity";
/// Where a session keeps the address and browser it signed in from.
pub const CLIENT_KEY: &str = "client";

/// The session rows, in whichever database the site uses, and who is signed in
/// (`marain_signed_in`, see `marain::engine::signed_in`) kept beside them.
#[derive(Clone)]
pub struct SessionRows {
    rows: Rows,
    store: Store,
    /// When this instance last renewed each session's row (unix seconds): a
    /// session used many times a minute renews it once, not on every request.
    renewed: Arc<Mutex<HashMap<String, i64>>>,
    clock: Arc<Clock>,
}

/// How often the database's clock is read again.
const MEASURE_EVERY: Duration = Duration::from_secs(60);

/// The database's clock, without a query per request: how far it is ahead of
/// this host's, measured at most once a [`MEASURE_EVERY`].
#[derive(Default)]
struct Clock {
    offset: Mutex<Option<(std::time::Instant, OffsetDuration)>>,
}

type OffsetDuration = tower_sessions::cookie::time::Duration;
type Moment = tower_sessions::cookie::time::OffsetDateTime;

impl Clock {
    async fn now(&self, store: &Store) -> Moment {
        let fresh = *self.offset.lock().expect("the clock is never poisoned");
        if let Some((_, offset)) = fresh.filter(|(at, _)| at.elapsed() < MEASURE_EVERY) {
            return Moment::now_utc() + offset;
        }
        let offset = match store.database_now().await {
            Ok(db) => OffsetDuration::seconds(db.unix_timestamp() - Moment::now_utc().unix_timestamp()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the database's clock; sessions go by this host's");
                fresh.map(|(_, o)| o).unwrap_or_default()
            }
        };
        *self.offset.lock().expect("the clock is never poisoned") = Some((std::time::Instant::now(), offset));
        Moment::now_utc() + offset
    }
}

impl std::fmt::Debug for SessionRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRows").field("rows", &self.rows).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum Rows {
    Sqlite(SqliteStore),
    /// In the schema `tower_sessions`, which the store creates.
    Postgres(PostgresStore),
}

impl SessionRows {
    fn on(store: &Store) -> Result<Self, String> {
        let named = |e: String| format!("session table: {e}");
        // The session store's own statements are kept prepared (sqlx's
        // default), which a pooler in transaction mode cannot carry: behind
        // one, the store reads and writes through the direct connections.
        let pool = if store.behind_pooler() { store.direct() } else { store.pool() };
        let rows = match pool {
            Pool::Sqlite(p) => Rows::Sqlite(SqliteStore::new(p.clone()).with_table_name(TABLE).map_err(named)?),
            Pool::Postgres(p, _) => {
                Rows::Postgres(PostgresStore::new(p.clone()).with_table_name(TABLE).map_err(named)?)
            }
        };
        Ok(SessionRows { rows, store: store.clone(), renewed: Arc::default(), clock: Arc::default() })
    }

    /// When a session used now ends: [`SESSION_HOURS`] after now by the
    /// database's clock.
    async fn ends(&self) -> Moment {
        self.clock.now(&self.store).await + OffsetDuration::hours(SESSION_HOURS)
    }

    /// The row kept under `stored` (see [`stored`]).
    async fn load_stored(&self, stored: &Id) -> session_store::Result<Option<Record>> {
        match &self.rows {
            Rows::Sqlite(s) => s.load(stored).await,
            Rows::Postgres(s) => s.load(stored).await,
        }
    }

    /// Writes `record`, whose id is already the stored one.
    async fn save_stored(&self, record: &Record) -> session_store::Result<()> {
        match &self.rows {
            Rows::Sqlite(s) => s.save(record).await,
            Rows::Postgres(s) => s.save(record).await,
        }
    }

    async fn migrate(&self) -> Result<(), String> {
        match &self.rows {
            Rows::Sqlite(s) => s.migrate().await,
            Rows::Postgres(s) => s.migrate().await,
        }
        .map_err(|e| e.to_string())
    }
}

/// The id a session's row is kept under: the first 128 bits of the SHA-256 of
/// the id the cookie carries. The row alone does not give the id back.
fn stored(id: &Id) -> Id {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.to_string().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(bytes))
}

/// A store failure as the session layer reports it (the text stays in the log).
fn backend(e: marain::engine::store::StoreError) -> session_store::Error {
    tracing::error!(error = %e, "the signed-in list cannot be written");
    session_store::Error::Backend("the signed-in list cannot be written".into())
}

#[async_trait::async_trait]
impl SessionStore for SessionRows {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        record.expiry_date = self.ends().await;
        // A new id whose row is not taken (as the stores' own `create` does,
        // on the stored id).
        while self.load_stored(&stored(&record.id)).await?.is_some() {
            record.id = Id::default();
        }
        self.save_stored(&Record { id: stored(&record.id), ..record.clone() }).await?;
        // A session is created at sign-in (a new id every time): list it.
        let identity = record.data.get(IDENTITY_KEY).and_then(|v| serde_json::from_value::<Identity>(v.clone()).ok());
        if let Some(identity) = identity {
            let client = record.data.get(CLIENT_KEY).and_then(|v| serde_json::from_value(v.clone()).ok());
            let id = record.id.to_string();
            let start = SessionStart {
                session_id: &id,
                username: &identity.name,
                epoch: identity.epoch,
                client: client.unwrap_or_default(),
                expires_at: record.expiry_date.unix_timestamp(),
            };
            self.store.accounts().session_started(start).await.map_err(backend)?;
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let record = &Record { expiry_date: self.ends().await, ..record.clone() };
        self.save_stored(&Record { id: stored(&record.id), ..record.clone() }).await?;
        if record.data.contains_key(IDENTITY_KEY) {
            let id = record.id.to_string();
            let now = marain::engine::now_unix();
            let due = {
                let mut renewed = self.renewed.lock().expect("the renewal map is never poisoned");
                let due = renewed.get(&id).is_none_or(|at| now - at >= RENEW_EVERY_SECS);
                if due {
                    renewed.insert(id.clone(), now);
                }
                due
            };
            if due {
                self.store.accounts().session_seen(&id, record.expiry_date.unix_timestamp()).await.map_err(backend)?;
            }
        }
        Ok(())
    }

    /// The row's own query compares with this host's clock; what it returns
    /// is checked again by the database's.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let record = self.load_stored(&stored(id)).await?;
        let now = self.clock.now(&self.store).await;
        Ok(record.filter(|r| r.expiry_date > now).map(|r| Record { id: *id, ..r }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match &self.rows {
            Rows::Sqlite(s) => s.delete(&stored(id)).await?,
            Rows::Postgres(s) => s.delete(&stored(id)).await?,
        }
        let id = id.to_string();
        self.renewed.lock().expect("the renewal map is never poisoned").remove(&id);
        self.store.accounts().session_deleted(&id).await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for SessionRows {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match &self.rows {
            Rows::Sqlite(s) => s.delete_expired().await?,
            Rows::Postgres(s) => s.delete_expired().await?,
        }
        self.store.accounts().prune_signed_in().await.map_err(backend)?;
        let now = marain::engine::now_unix();
        let idle = SESSION_HOURS * 3600;
        self.renewed.lock().expect("the renewal map is never poisoned").retain(|_, at| now - *at < idle);
        Ok(())
    }
}

/// The session layer on `store`'s database; `secure` marks the cookie for HTTPS
/// only. The clean-up task stops when `shutdown` flips.
pub async fn layer(
    store: &Store,
    secure: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SessionManagerLayer<SessionRows>, String> {
    let sessions = SessionRows::on(store)?;
    // Instances starting together on one PostgreSQL database race to create the
    // table (`CREATE … IF NOT EXISTS` is not safe against a concurrent twin):
    // the loser tries again once the winner's table is there.
    let mut attempt = 0;
    while let Err(e) = sessions.migrate().await {
        attempt += 1;
        if attempt >= 5 {
            return Err(format!("cannot create the session table: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
    }
    let cleaner = sessions.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.wait_for(|stopped| *stopped) => {}
            result = cleaner.continuously_delete_expired(Duration::from_secs(60)) => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "deleting expired sessions failed");
                }
            }
        }
    });
    Ok(SessionManagerLayer::new(sessions)
        .with_name("marain_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::hours(SESSION_HOURS))))
}
