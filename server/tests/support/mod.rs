//! A real `marain serve` process for the tests that need one: started on port 0,
//! its address read from its own `dashboard on http://…/` line (no port probed
//! and released), its stdout and stderr lines readable as they come, and killed
//! when dropped, so a failed assertion leaves no process behind.

#![allow(dead_code)]

#[path = "../../../tests/support/backend.rs"]
pub mod backend;
pub mod event_reader;
pub mod in_process;
pub mod instance;
pub mod nginx;
#[path = "../../../tests/support/pg_server.rs"]
pub mod pg_server;
pub mod pooler;

#[allow(unused_imports)]
pub use backend::Backend;
#[allow(unused_imports)]
pub use event_reader::EventReader;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Running {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Every line the process prints, stdout and stderr together.
    pub lines: mpsc::Receiver<String>,
}

impl Running {
    /// Spawns `command`, which must serve on `--addr 127.0.0.1:0`, and waits for it
    /// to report where it listens.
    pub fn spawn(command: Command) -> Running {
        Self::spawn_until(command, "dashboard on http://")
    }

    /// [`Running::spawn`], back as soon as the process prints `marker`
    /// followed by its address (`listening on http://`: the engine may still
    /// be starting).
    pub fn spawn_until(mut command: Command, marker: &str) -> Running {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for pipe in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut running = Running { child, addr: String::new(), lines };
        let line = running.wait_line(marker, Duration::from_secs(20));
        let addr = line.split(marker).nth(1).unwrap();
        running.addr = addr.split_whitespace().next().unwrap().trim_end_matches('/').to_string();
        running
    }

    /// Waits for a line containing `needle` and returns it; fails after `within`.
    pub fn wait_line(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut last = std::collections::VecDeque::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => {
                    last.push_back(line);
                    if last.len() > 20 {
                        last.pop_front();
                    }
                }
                Err(_) => break,
            }
        }
        let last: Vec<_> = last.into();
        panic!("the server never printed `{needle}`; its last lines:\n{}", last.join("\n"));
    }

    /// Every line printed since the last look, for a failure message.
    pub fn printed(&self) -> String {
        self.lines.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Waits for the process to exit by itself; fails after `within`.
    pub fn wait_exit(mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (what an orchestrator sends first), leaving the process to exit.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
