//! How far the engine is behind its input, for sources that push back: the age of the oldest
//! accepted event not yet in the rows, or of the oldest ingest request not yet taken.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Shared between the engine's thread, which notes what waits, and its sources, which ask.
#[derive(Debug)]
pub struct Pressure {
    epoch: Instant,
    /// Milliseconds from `epoch` to when the oldest waiting event was accepted, plus one
    /// (0: nothing waits). Read against the clock, it keeps growing while the engine's thread
    /// is stuck.
    oldest: AtomicU64,
    /// How long the last ingest request taken had waited for the engine's thread (0 once its
    /// queue is empty), in milliseconds.
    queued_ms: AtomicU64,
    /// Ingest requests turned away so far.
    pushed_back: AtomicU64,
    /// Microseconds sources spent taking nothing because the engine was behind.
    held_back_us: AtomicU64,
    max_lag_ms: Option<u64>,
}

impl Pressure {
    /// No lag yet; sources push back beyond `max_lag_ms` (never without one).
    pub fn new(max_lag_ms: Option<u64>) -> Self {
        Pressure {
            epoch: Instant::now(),
            oldest: AtomicU64::new(0),
            queued_ms: AtomicU64::new(0),
            pushed_back: AtomicU64::new(0),
            held_back_us: AtomicU64::new(0),
            max_lag_ms,
        }
    }

    fn ms_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// The engine's thread: the oldest accepted event not yet in the rows was accepted at
    /// `at` (none waits: `None`).
    pub(crate) fn set_oldest(&self, at: Option<Instant>) {
        let v = at.map_or(0, |t| self.ms_since_epoch(t).saturating_add(1));
        self.oldest.store(v, Relaxed);
    }

    /// The engine's thread: the request it took had waited `waited` (zero once none waits).
    pub(crate) fn set_queued(&self, waited: Duration) {
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        self.queued_ms.store(ms, Relaxed);
    }

    /// How far behind the engine is now, in milliseconds.
    pub fn lag_ms(&self) -> u64 {
        let oldest = match self.oldest.load(Relaxed) {
            0 => 0,
            v => self.ms_since_epoch(Instant::now()).saturating_sub(v - 1),
        };
        oldest.max(self.queued_ms.load(Relaxed))
    }

    /// The lag, when it is beyond `serve.max_lag` and a source should push back.
    pub fn busy(&self) -> Option<u64> {
        let max = self.max_lag_ms?;
        let lag = self.lag_ms();
        (lag > max).then_some(lag)
    }

    /// Counts an ingest request turned away.
    pub fn pushed_back(&self) {
        self.pushed_back.fetch_add(1, Relaxed);
    }

    /// Ingest requests turned away so far.
    pub fn pushed_back_total(&self) -> u64 {
        self.pushed_back.load(Relaxed)
    }

    /// Counts time a source spent taking nothing because the engine was behind.
    pub fn held_back(&self, waited: Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.held_back_us.fetch_add(us, Relaxed);
    }

    /// Milliseconds sources spent held back so far.
    pub fn held_back_ms_total(&self) -> u64 {
        self.held_back_us.load(Relaxed) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_older_of_waiting_events_and_queued_requests() {
        let p = Pressure::new(Some(50));
        assert_eq!((p.lag_ms(), p.busy()), (0, None));
        p.set_oldest(Some(Instant::now()));
        std::thread::sleep(Duration::from_millis(60));
        // Nothing was noted since, and the lag grew with the clock.
        assert!(p.lag_ms() >= 60, "{}", p.lag_ms());
        assert!(p.busy().is_some());
        p.set_oldest(None);
        p.set_queued(Duration::from_millis(80));
        assert_eq!(p.busy(), Some(80));
        p.set_queued(Duration::ZERO);
        assert_eq!(p.busy(), None);
        let never = Pressure::new(None);
        never.set_queued(Duration::from_secs(10));
        assert_eq!(never.busy(), None);
    }

    #[test]
    fn held_back_time_adds_up_below_a_millisecond() {
        let p = Pressure::new(Some(1));
        for _ in 0..4 {
            p.held_back(Duration::from_micros(600));
        }
        assert_eq!(p.held_back_ms_total(), 2);
    }
}
