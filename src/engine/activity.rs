//! What the engine still has to do about the files, as far as it can know: the
//! watcher's signals sent and not yet taken in, the timers of paths removed or of
//! a site directory being refilled, and when the watcher last saw the disk move.
//! [`Coordinator::quiet`](super::Coordinator::quiet) waits on it: "nothing more
//! will come of what was written", which is what a test (or a deploy script)
//! means by "wait a little", without guessing how long.
//!
//! The watcher's debouncer keeps events to itself until a path has been quiet for
//! the debounce, so nothing outside it can tell that it holds one; the last raw
//! event plus the debounce and the debouncer's tick bounds when it lets go. The
//! rest is counted exactly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters the watcher's callbacks and the worker's loop keep; see the module.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Signals sent to the worker, and signals it has handled.
    sent: AtomicU64,
    handled: AtomicU64,
    /// Microseconds since `epoch` of the last raw file-system event.
    last_event_us: AtomicU64,
    /// The debounce the running watcher uses, in microseconds.
    debounce_us: AtomicU64,
    /// Paths removed wait out the debounce, or a returned directory settles.
    timers: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            sent: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            last_event_us: AtomicU64::new(0),
            debounce_us: AtomicU64::new(0),
            timers: AtomicBool::new(false),
        }
    }
}

impl Activity {
    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// A raw event from the disk: the debouncer holds it for a while.
    pub fn saw_event(&self) {
        self.last_event_us.fetch_max(self.micros(Instant::now()), Ordering::SeqCst);
    }

    /// The watcher (re)started with `debounce`.
    pub fn watching_with(&self, debounce: Duration) {
        self.debounce_us.store(debounce.as_micros() as u64, Ordering::SeqCst);
    }

    /// The debounce of the running watcher.
    pub fn debounce(&self) -> Duration {
        Duration::from_micros(self.debounce_us.load(Ordering::SeqCst))
    }

    /// The watcher sent the worker a signal.
    pub fn sent(&self) {
        self.sent.fetch_add(1, Ordering::SeqCst);
    }

    /// The worker took in and handled `n` signals.
    pub fn handled(&self, n: u64) {
        self.handled.fetch_add(n, Ordering::SeqCst);
    }

    /// Whether paths gone or a settling directory are waiting on a timer.
    pub fn set_timers(&self, pending: bool) {
        self.timers.store(pending, Ordering::SeqCst);
    }

    /// How long after its last raw event the debouncer has surely let go: the
    /// debounce, two of its ticks (see `watcher.rs`), and a margin for the
    /// thread that delivers the raw events.
    fn window(&self) -> Duration {
        let debounce = self.debounce();
        debounce + 2 * (debounce / 8).max(Duration::from_millis(1)) + Duration::from_millis(10)
    }

    /// `None` when quiet at `now` for a wait that began at `since`; otherwise
    /// when to look again.
    pub fn quiet_at(&self, since: Instant, now: Instant) -> Option<Instant> {
        let window = self.window();
        let last_event = self.epoch + Duration::from_micros(self.last_event_us.load(Ordering::SeqCst));
        let settled_at = last_event.max(since) + window;
        if settled_at > now {
            return Some(settled_at);
        }
        let busy = self.sent.load(Ordering::SeqCst) != self.handled.load(Ordering::SeqCst)
            || self.timers.load(Ordering::SeqCst);
        busy.then(|| now + Duration::from_millis(5))
    }
}
