//! A throw-away PostgreSQL server started from the installed `initdb`/`pg_ctl`,
//! listening only on a Unix socket in its own temporary directory. Shared by the
//! core's tests and the server's (`#[path]`), so it depends on sqlx alone.
//!
//! PostgreSQL refuses to run as root; when the tests run as root the cluster is
//! owned by, and started as, the `postgres` system user.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, PgConnection};

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<String>,
}

/// The newest installed server's binaries, or `MARAIN_PG_BIN`.
pub fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("MARAIN_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

impl PgServer {
    /// Starts a server listening only on a Unix socket in its own temporary
    /// directory (no TCP port to race for). PostgreSQL's binaries are part of
    /// the test set-up (`scripts/setup.sh --test` installs them), so a missing
    /// installation fails the test: a skip could only hide a broken install.
    pub fn start() -> PgServer {
        Self::start_with(&[])
    }

    /// [`PgServer::start`] with more server options (`-c name=value` pairs).
    pub fn start_with(extra: &[&str]) -> PgServer {
        let bin = pg_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL's server binaries (initdb, pg_ctl) are not under /usr/lib/postgresql/*/bin: \
                 run `scripts/setup.sh --test`, or point MARAIN_PG_BIN at them"
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let run_as = is_root().then(|| "postgres".to_string());
        if let Some(user) = &run_as {
            chmod(dir.path(), 0o777);
            let status = Command::new("chown").arg(user).arg(dir.path()).status().unwrap();
            assert!(status.success(), "chown {user} {}", dir.path().display());
        }
        // The socket file is `<dir>/.s.PGSQL.<port>`; the directory is ours alone.
        let port = 5432;
        let server = PgServer { dir, bin, port, run_as };
        let data = server.data_dir();
        server.run(
            "initdb",
            &["-D", data.to_str().unwrap(), "-U", "marain", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off {}",
            server.dir.path().display(),
            extra.join(" ")
        );
        let log = server.dir.path().join("server.log");
        server
            .run("pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "start"]);
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let output = match &self.run_as {
            Some(user) => Command::new("runuser").args(["-u", user, "--"]).arg(&exe).args(args).output(),
            None => Command::new(&exe).args(args).output(),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        assert!(
            output.status.success(),
            "{tool} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The directory of the server's Unix socket, and its port (part of the
    /// socket's name), for a program that connects to it (PgBouncer).
    pub fn socket(&self) -> (&std::path::Path, u16) {
        (self.dir.path(), self.port)
    }

    /// The user the server's processes run as, when the tests run as root.
    pub fn run_as(&self) -> Option<&str> {
        self.run_as.as_deref()
    }

    /// The URL of `database`, over the server's Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://marain@localhost:{}/{database}?host={}", self.port, self.dir.path().display())
    }

    /// A new, empty database.
    pub async fn database(&self, name: &str) -> PgConnection {
        let mut admin = PgConnection::connect(&self.url("postgres")).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
        PgConnection::connect(&self.url(name)).await.unwrap()
    }
}

static SHARED: std::sync::OnceLock<PgServer> = std::sync::OnceLock::new();
static DATABASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn stop_shared() {
    if let Some(server) = SHARED.get() {
        server.stop();
    }
}

impl PgServer {
    /// One server for the whole test binary, stopped when the binary exits
    /// (a `static` is never dropped, so the stop is registered with `atexit`).
    pub fn shared() -> &'static PgServer {
        SHARED.get_or_init(|| {
            let server = PgServer::start();
            // SAFETY: registers a plain `extern "C"` function that only runs `pg_ctl`.
            unsafe { atexit(stop_shared) };
            server
        })
    }

    /// The URL of a new, empty database on this server, unique in this process.
    pub async fn fresh_database(&self) -> String {
        let n = DATABASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("site{n}");
        self.database(&name).await.close().await.unwrap();
        self.url(&name)
    }

    fn stop(&self) {
        let data = self.data_dir();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"];
        let _ = match &self.run_as {
            Some(user) => Command::new("runuser").args(["-u", user, "--"]).arg(&exe).args(args).output(),
            None => Command::new(&exe).args(args).output(),
        };
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
