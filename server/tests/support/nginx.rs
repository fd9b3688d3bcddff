//! Debian's nginx as a round-robin load balancer in front of several
//! instances, with the configuration docs/multi-instance.md gives (the test
//! reads it from there, so the documented one is the one tested).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pooler::free_port;

pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

/// Where Debian installs it (`scripts/setup.sh --test`).
const NGINX: &str = "/usr/sbin/nginx";

/// The `upstream` and `server` blocks between these lines of
/// docs/multi-instance.md are the configuration under test.
const BEGIN: &str = "# --- begin: the load balancer of the tests ---";
const END: &str = "# --- end ---";

impl Nginx {
    /// nginx on a loopback port, balancing over `upstreams` (`127.0.0.1:port`).
    pub fn start(upstreams: &[&str]) -> Nginx {
        assert!(Path::new(NGINX).is_file(), "{NGINX} is missing: run `scripts/setup.sh --test`, which installs it");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = upstreams.iter().map(|u| format!("    server {u};\n")).collect();
        let documented = documented_blocks()
            .replace("    server 10.0.0.11:3000;\n    server 10.0.0.12:3000;\n", &servers)
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        let d = dir.path().display();
        // What a packaged nginx has in its main file, kept inside the test's
        // directory: one process, no daemon, logs and buffers here.
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             log_format upstream '$remote_addr \"$request\" $status $upstream_addr';\n\
             access_log {d}/access.log upstream;\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             {documented}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let nginx = Nginx { child, dir, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nginx did not listen:\n{}", nginx.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `<client> "<request line>" <status> <upstream>` per request so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The documented `upstream` and `server` blocks.
fn documented_blocks() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/multi-instance.md")).unwrap();
    let start = doc.find(BEGIN).expect("docs/multi-instance.md has the tests' nginx configuration") + BEGIN.len();
    let end = start + doc[start..].find(END).expect("the configuration ends");
    doc[start..end].to_string()
}
