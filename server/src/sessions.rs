//! Sign-in sessions, kept in the database (`marain_sessions`, through the
//! tower-sessions sqlx store) rather than in the process: a restart keeps
//! everyone signed in. The cookie is HttpOnly and SameSite=Strict, and the
//! session ends after 8 hours without use; expired rows are deleted every minute.

use std::time::Duration;

use marain::engine::Store;
use tokio::sync::watch;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

/// The session layer on `store`'s database; `secure` marks the cookie for HTTPS
/// only. The clean-up task stops when `shutdown` flips.
pub async fn layer(
    store: &Store,
    secure: bool,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SessionManagerLayer<SqliteStore>, String> {
    let sessions = SqliteStore::new(store.pool().clone())
        .with_table_name("marain_sessions")
        .map_err(|e| format!("session table: {e}"))?;
    sessions.migrate().await.map_err(|e| format!("cannot create the session table: {e}"))?;
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
