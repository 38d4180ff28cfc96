//! Batches on their way to the dataflow: at most so many rounds open at once, the batches cut
//! meanwhile held and sent together as the next round.

use std::collections::VecDeque;
use std::sync::mpsc::SyncSender;

use crate::dataflow::Time;
use crate::engine::Round;
use crate::facts::FactBatch;

/// The engine has stopped taking rounds.
#[derive(Debug)]
pub(crate) struct Stopped;

/// Every round costs the dataflow a pass over the history of each person it touches, however
/// few events it holds. While the dataflow is behind, batches cut every few milliseconds (each
/// already logged, answered and stamped with its time) wait here and go as one round once an
/// open one completes: the dataflow then takes fewer, larger rounds instead of falling further
/// behind on small ones.
pub(crate) struct Rounds {
    /// Rounds that may be open at once; `None`: every batch goes at once, as its own round.
    limit: Option<usize>,
    /// The last time of each round sent and not complete when last looked, oldest first.
    open: VecDeque<Time>,
    /// Batches cut and not sent, each with its time, oldest first.
    held: Vec<(Time, FactBatch)>,
}

impl Rounds {
    pub(crate) fn new(limit: Option<usize>) -> Rounds {
        Rounds {
            limit: limit.map(|l| l.max(1)),
            open: VecDeque::new(),
            held: Vec::new(),
        }
    }

    /// Hands over a batch at `time` (later than every batch before): it goes now, or waits
    /// while `limit` rounds are open. A batch `alone` goes now in a round of its own (after
    /// those held): its changes are told apart by its time.
    pub(crate) fn push(
        &mut self,
        engine: &SyncSender<Round>,
        time: Time,
        batch: FactBatch,
        alone: bool,
        progress: Time,
    ) -> Result<(), Stopped> {
        if self.limit.is_none() {
            return send(engine, Round::one(time, batch));
        }
        if alone {
            self.release(engine, progress, true)?;
            self.open.push_back(time);
            return send(engine, Round::one(time, batch));
        }
        self.held.push((time, batch));
        self.release(engine, progress, false)
    }

    /// Sends what is held as one round, if fewer than `limit` rounds are open as of
    /// `progress`, or regardless with `force` (someone waits for those batches).
    pub(crate) fn release(
        &mut self,
        engine: &SyncSender<Round>,
        progress: Time,
        force: bool,
    ) -> Result<(), Stopped> {
        while self.open.front().is_some_and(|t| *t <= progress) {
            self.open.pop_front();
        }
        let full = self.limit.is_some_and(|l| self.open.len() >= l);
        if self.held.is_empty() || full && !force {
            return Ok(());
        }
        let at = self.held[0].0;
        let through = self.held[self.held.len() - 1].0;
        let batches = self.held.drain(..).map(|(_, b)| b).collect();
        self.open.push_back(through);
        send(
            engine,
            Round {
                at,
                through,
                batches,
            },
        )
    }

    /// Batches held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.len()
    }
}

fn send(engine: &SyncSender<Round>, round: Round) -> Result<(), Stopped> {
    engine.send(round).map_err(|_| Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{sync_channel, Receiver};

    /// Rounds with `limit`, after pushing empty batches `(time, alone)` with nothing complete.
    fn pushed(limit: Option<usize>, pushes: &[(Time, bool)]) -> (SyncSender<Round>, Receiver<Round>, Rounds) {
        let (tx, rx) = sync_channel(16);
        let mut r = Rounds::new(limit);
        for &(t, alone) in pushes {
            r.push(&tx, t, FactBatch::default(), alone, 0).unwrap();
        }
        (tx, rx, r)
    }

    /// `(at, through)` of each round sent so far.
    fn sent(rx: &Receiver<Round>) -> Vec<(Time, Time)> {
        rx.try_iter().map(|r| (r.at, r.through)).collect()
    }

    #[test]
    fn rounds_wait_while_the_limit_is_open_and_go_together() {
        let (tx, rx, mut r) = pushed(Some(1), &[(1, false), (2, false), (3, false)]);
        assert_eq!(r.held(), 2);
        assert_eq!(sent(&rx), vec![(1, 1)]);
        // Round 1 complete: 2 and 3 go as one round, fed at 2 and complete at 3.
        r.release(&tx, 1, false).unwrap();
        let next = rx.try_recv().unwrap();
        assert_eq!((next.at, next.through, next.batches.len()), (2, 3, 2));
        assert_eq!(r.held(), 0);
    }

    #[test]
    fn alone_and_forced_batches_go_at_once() {
        let (tx, rx, mut r) = pushed(Some(1), &[(1, false), (2, false), (3, true)]);
        assert_eq!(sent(&rx), vec![(1, 1), (2, 2), (3, 3)]);
        r.push(&tx, 4, FactBatch::default(), false, 0).unwrap();
        assert_eq!(r.held(), 1);
        r.release(&tx, 0, true).unwrap();
        assert_eq!(sent(&rx), vec![(4, 4)]);
    }

    #[test]
    fn without_a_limit_every_batch_is_its_own_round() {
        let (_tx, rx, _) = pushed(None, &[(1, false), (2, false), (3, false)]);
        assert_eq!(sent(&rx), vec![(1, 1), (2, 2), (3, 3)]);
    }
}
