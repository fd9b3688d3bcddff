//! Debian's PgBouncer in transaction mode in front of the tests' throw-away
//! PostgreSQL server, as docs/multi-instance.md configures it: what a client
//! of the pooler sees is a session per transaction, nothing more.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pg_server::PgServer;

pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// Where Debian installs it (`scripts/setup.sh --test`).
const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

impl PgBouncer {
    /// Starts PgBouncer on a loopback port in front of `server`; every
    /// database name maps to the same name on `server`.
    pub fn start(server: &PgServer) -> PgBouncer {
        assert!(
            Path::new(PGBOUNCER).is_file(),
            "{PGBOUNCER} is missing: run `scripts/setup.sh --test`, which installs Debian's pgbouncer"
        );
        let dir = tempfile::tempdir().unwrap();
        let (socket_dir, pg_port) = server.socket();
        let port = free_port();
        let config = format!(
            "[databases]\n\
             * = host={socket} port={pg_port} user=marain\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = any\n\
             pool_mode = transaction\n\
             default_pool_size = 20\n\
             max_client_conn = 500\n\
             ignore_startup_parameters = extra_float_digits\n\
             logfile = {log}\n",
            socket = socket_dir.display(),
            log = dir.path().join("pgbouncer.log").display(),
        );
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini, config).unwrap();
        let mut command = Command::new(PGBOUNCER);
        // PgBouncer refuses to run as root; as root it is told whom to become.
        if let Some(user) = server.run_as() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
            command.args(["-u", user]);
        }
        let child = command.arg(&ini).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let bouncer = PgBouncer { child, dir, port };
        bouncer.wait_listening();
        bouncer
    }

    /// The pooled URL of `database` (the direct one is `server.url(database)`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://marain@127.0.0.1:{}/{database}", self.port)
    }

    /// PgBouncer's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    fn wait_listening(&self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "pgbouncer did not listen:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free a moment ago, for a program that cannot report the
/// one it got (nginx, PgBouncer).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The database name in one of `PgServer`'s URLs.
pub fn database_name(url: &str) -> &str {
    let without_query = url.split('?').next().unwrap();
    without_query.rsplit('/').next().unwrap()
}
