//! Sign-in sessions, kept in the database (`marain_sessions`, through the
//! tower-sessions sqlx stores) rather than in the process: a restart, or another
//! instance on the same database, keeps everyone signed in. The cookie is
//! HttpOnly and SameSite=Strict, and the session ends after 8 hours without use;
//! expired rows are deleted every minute.

use std::time::Duration;

use marain::engine::database::Pool;
use marain::engine::Store;
use tokio::sync::watch;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

const TABLE: &str = "marain_sessions";

/// The session rows, in whichever database the site uses.
#[derive(Debug, Clone)]
pub enum SessionRows {
    Sqlite(SqliteStore),
    /// In the schema `tower_sessions`, which the store creates.
    Postgres(PostgresStore),
}

impl SessionRows {
    fn on(pool: &Pool) -> Result<Self, String> {
        let named = |e: String| format!("session table: {e}");
        Ok(match pool {
            Pool::Sqlite(p) => SessionRows::Sqlite(SqliteStore::new(p.clone()).with_table_name(TABLE).map_err(named)?),
            Pool::Postgres(p) => {
                SessionRows::Postgres(PostgresStore::new(p.clone()).with_table_name(TABLE).map_err(named)?)
            }
        })
    }

    async fn migrate(&self) -> Result<(), String> {
        match self {
            SessionRows::Sqlite(s) => s.migrate().await,
            SessionRows::Postgres(s) => s.migrate().await,
        }
        .map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl SessionStore for SessionRows {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionRows::Sqlite(s) => s.create(record).await,
            SessionRows::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionRows::Sqlite(s) => s.save(record).await,
            SessionRows::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionRows::Sqlite(s) => s.load(id).await,
            SessionRows::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionRows::Sqlite(s) => s.delete(id).await,
            SessionRows::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for SessionRows {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            SessionRows::Sqlite(s) => s.delete_expired().await,
            SessionRows::Postgres(s) => s.delete_expired().await,
        }
    }
}

/// The session layer on `store`'s database; `secure` marks the cookie for HTTPS
/// only. The clean-up task stops when `shutdown` flips.
pub async fn layer(
    store: &Store,
    secure: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SessionManagerLayer<SessionRows>, String> {
    let sessions = SessionRows::on(store.pool())?;
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
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::hours(8))))
}
