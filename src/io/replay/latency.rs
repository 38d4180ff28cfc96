//! End-to-end latency: matches acknowledged batches (with the time at which the server reflects
//! them) to the first progress mark at or past that time, and records send-to-mark durations.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Progress marks older than this are forgotten (an acknowledgement never comes later).
const MARK_MEMORY: Duration = Duration::from_secs(300);

/// Acknowledged batches and the progress marks seen, kept behind one lock.
pub struct Tracker {
    /// Progress marks in arrival order (their times only grow).
    marks: VecDeque<(u64, Instant)>,
    /// Acknowledged batches not yet reflected: reflect time -> (sent at, events, recorded).
    pending: BTreeMap<u64, Vec<(Instant, u64, bool)>>,
    pending_events: u64,
    /// Send-to-reflection latency of recorded events, microseconds.
    pub histogram: Histogram<u64>,
    /// Events sent before this instant are not recorded.
    pub record_from: Instant,
}

impl Tracker {
    pub fn new(record_from: Instant) -> Tracker {
        Tracker {
            marks: VecDeque::new(),
            pending: BTreeMap::new(),
            pending_events: 0,
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            record_from,
        }
    }

    /// The latest progress mark, if any came.
    pub fn progress(&self) -> Option<u64> {
        self.marks.back().map(|m| m.0)
    }

    /// Acknowledged events whose progress mark has not come yet.
    pub fn pending_events(&self) -> u64 {
        self.pending_events
    }

    /// A batch of `events` sent at `sent` was acknowledged; subscribers see it at `time`.
    pub fn acknowledged(&mut self, time: u64, sent: Instant, events: u64) {
        let record = sent >= self.record_from;
        self.acknowledged_as(time, sent, events, record);
    }

    fn acknowledged_as(&mut self, time: u64, sent: Instant, events: u64, record: bool) {
        if self.progress().is_some_and(|p| p >= time) {
            // The mark came before the answer: find the first one at or past `time`.
            let i = self.marks.partition_point(|(p, _)| *p < time);
            let at = self.marks[i].1;
            self.record(record, at.saturating_duration_since(sent), events);
        } else {
            self.pending
                .entry(time)
                .or_default()
                .push((sent, events, record));
            self.pending_events += events;
        }
    }

    /// A progress mark `time` arrived at `at`: every batch reflected by then is done.
    pub fn mark(&mut self, time: u64, at: Instant) {
        if self.progress().is_some_and(|p| p >= time) {
            return;
        }
        self.marks.push_back((time, at));
        while self
            .marks
            .front()
            .is_some_and(|(_, t)| at.saturating_duration_since(*t) > MARK_MEMORY)
        {
            self.marks.pop_front();
        }
        let later = self.pending.split_off(&(time + 1));
        let done = std::mem::replace(&mut self.pending, later);
        for (sent, events, record) in done.into_values().flatten() {
            self.pending_events -= events;
            self.record(record, at.saturating_duration_since(sent), events);
        }
    }

    /// Everything acknowledged so far is known to be reflected at `time`: batches waiting for a
    /// later time wait for `time` instead (an upper bound on when they were reflected).
    pub fn reflected_by(&mut self, time: u64) {
        let later = self.pending.split_off(&(time + 1));
        for (sent, events, record) in later.into_values().flatten() {
            self.pending_events -= events;
            self.acknowledged_as(time, sent, events, record);
        }
    }

    fn record(&mut self, record: bool, latency: Duration, events: u64) {
        if record && events > 0 {
            let micros = crate::time::micros(latency).max(1);
            let _ = self.histogram.record_n(micros, events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_runs_from_send_to_the_first_mark_at_or_past_the_answer_time() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut tr = Tracker::new(ms(5));
        // Sent during warm-up: tracked, not recorded.
        tr.acknowledged(100, ms(0), 3);
        tr.acknowledged(120, ms(10), 2);
        assert_eq!(tr.pending_events(), 5);
        tr.mark(110, ms(30));
        assert_eq!(tr.pending_events(), 2);
        assert_eq!(tr.histogram.len(), 0);
        tr.mark(125, ms(40));
        assert_eq!(tr.pending_events(), 0);
        assert_eq!(tr.histogram.len(), 2);
        let got = tr.histogram.value_at_quantile(1.0);
        assert!(tr.histogram.equivalent(got, 30_000), "{got}");
        // An answer that comes after its mark uses the mark's arrival, not the answer's.
        tr.acknowledged(111, ms(20), 4);
        assert_eq!(tr.histogram.len(), 6);
        assert!(tr
            .histogram
            .equivalent(tr.histogram.value_at_quantile(0.5), 20_000));
        // Older marks than the latest are ignored.
        tr.mark(50, ms(50));
        assert_eq!(tr.progress(), Some(125));
        // Known to be reflected by 125: a batch waiting for 900 takes the mark of 125.
        tr.acknowledged(900, ms(35), 1);
        assert_eq!(tr.pending_events(), 1);
        tr.reflected_by(125);
        assert_eq!(tr.pending_events(), 0);
        assert!(tr.histogram.equivalent(tr.histogram.min(), 5_000));
    }
}
