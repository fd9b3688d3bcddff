//! How long content requests have taken lately: an exponentially weighted
//! mean, lock-free, that every content request feeds and that online phases
//! read between batches to slow down when the site does
//! (docs/online-changes.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The weight of the newest request in the mean.
const WEIGHT: f64 = 0.1;

/// The mean request time, in microseconds, stored as an `f64`'s bits.
#[derive(Debug, Default)]
pub struct ContentLatency {
    micros: AtomicU64,
}

impl ContentLatency {
    /// Counts one request that took `took`.
    pub fn record(&self, took: Duration) {
        let sample = took.as_secs_f64() * 1e6;
        let _ = self.micros.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
            let mean = f64::from_bits(bits);
            let next = if mean == 0.0 { sample } else { mean + WEIGHT * (sample - mean) };
            Some(next.to_bits())
        });
    }

    /// The mean of recent requests (zero before the first).
    pub fn recent(&self) -> Duration {
        Duration::from_secs_f64(f64::from_bits(self.micros.load(Ordering::Relaxed)) / 1e6)
    }

    /// Times a request until the guard is dropped.
    pub fn time(&self) -> Timing<'_> {
        Timing { latency: self, started: Instant::now() }
    }
}

/// Records the time since it was made when dropped.
pub struct Timing<'a> {
    latency: &'a ContentLatency,
    started: Instant,
}

impl Drop for Timing<'_> {
    fn drop(&mut self) {
        self.latency.record(self.started.elapsed());
    }
}

/// How much longer than asked the batches of an online phase rest, when
/// content requests take `now` on average against `before` as the phases
/// began: none while they are within twice that (and 20 ms of it), else as
/// long as the last batch took (so the phase's share of the database halves),
/// at most a second.
pub fn slow_down(before: Duration, now: Duration, batch: Duration) -> Option<Duration> {
    let limit = (before * 2).max(before + Duration::from_millis(20));
    (now > limit).then(|| batch.min(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_follows_requests_and_slows_the_batches_when_they_slow() {
        let latency = ContentLatency::default();
        assert_eq!(latency.recent(), Duration::ZERO);
        for _ in 0..50 {
            latency.record(Duration::from_millis(4));
        }
        let before = latency.recent();
        assert!((3900..=4100).contains(&before.as_micros()), "{before:?}");
        let batch = Duration::from_millis(80);
        assert_eq!(slow_down(before, latency.recent(), batch), None);
        for _ in 0..30 {
            latency.record(Duration::from_millis(60));
        }
        assert!(latency.recent() > Duration::from_millis(40), "{:?}", latency.recent());
        assert_eq!(slow_down(before, latency.recent(), batch), Some(batch));
        assert_eq!(slow_down(before, latency.recent(), Duration::from_secs(5)), Some(Duration::from_secs(1)));
    }
}
