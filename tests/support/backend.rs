//! Which database a test runs on, and [`backend_tests!`], which runs one test
//! body on each. Shared by the core's tests and the server's (`#[path]`).

use std::path::Path;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// For each named `async fn name(backend: Backend)`, a module `name` with the
/// tests `sqlite` and `postgres`: one test body, run on both backends. With
/// `multi_thread:` first, on a two-thread runtime (for tests that block a thread).
#[macro_export]
macro_rules! backend_tests {
    (multi_thread: $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )*};
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await
            }
        }
    )*};
}

/// Where the database URL of a test directory is kept, so a restart on the same
/// directory finds the same database.
const DATABASE_URL_FILE: &str = "database-url";

impl Backend {
    pub fn dialect(self) -> marain::plan::Dialect {
        match self {
            Backend::Sqlite => marain::plan::Dialect::Sqlite,
            Backend::Postgres => marain::plan::Dialect::Postgres,
        }
    }

    /// Gives `dir` a database of this backend (a SQLite file in it, or a new
    /// PostgreSQL database) unless it has one; returns its URL.
    pub async fn prepare(self, dir: &Path) -> String {
        let file = dir.join(DATABASE_URL_FILE);
        if let Ok(url) = std::fs::read_to_string(&file) {
            return url;
        }
        let url = match self {
            Backend::Sqlite => format!("sqlite://{}", dir.join("marain.db").display()),
            Backend::Postgres => super::pg_server::PgServer::shared().fresh_database().await,
        };
        std::fs::write(file, &url).unwrap();
        url
    }
}
