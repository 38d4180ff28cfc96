//! Time spent in each dataflow operator, and the updates each arrangement holds, when
//! `TIDEMARK_PROFILE` is set (to the number of operators to list, 40 unless a number): printed
//! to standard error as a worker ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;

/// How many operators the report lists, unless `TIDEMARK_PROFILE` is a number.
const SHOWN: usize = 40;

#[derive(Default)]
struct Tally {
    /// Operator id -> name and address.
    names: HashMap<usize, String>,
    /// Operator id -> when its current run started.
    started: HashMap<usize, Duration>,
    /// Operator id -> time spent in it.
    spent: HashMap<usize, Duration>,
    /// Arranging operator id -> updates its trace holds now, and at most.
    held: HashMap<usize, (isize, isize)>,
}

impl Tally {
    /// Adds `delta` updates to what an arrangement holds.
    fn hold(&mut self, operator: usize, delta: isize) {
        let (now, peak) = self.held.entry(operator).or_default();
        *now += delta;
        *peak = (*peak).max(*now);
    }
}

/// The tally of one worker; `finish` prints it.
pub struct Report {
    worker: usize,
    shown: usize,
    tally: Rc<RefCell<Tally>>,
}

/// Starts counting operator time on `worker` when `TIDEMARK_PROFILE` is set.
pub fn install(worker: &mut Worker) -> Option<Report> {
    let shown = std::env::var("TIDEMARK_PROFILE")
        .ok()?
        .parse()
        .unwrap_or(SHOWN);
    let tally = Rc::new(RefCell::new(Tally::default()));
    let kept = tally.clone();
    worker
        .log_register()?
        .insert::<TimelyEventBuilder, _>("timely", move |_time, data| {
            let Some(data) = data else { return };
            let mut t = kept.borrow_mut();
            for (at, event) in data.iter() {
                match event {
                    TimelyEvent::Operates(o) => {
                        t.names.insert(o.id, format!("{} {:?}", o.name, o.addr));
                    }
                    TimelyEvent::Schedule(s) => match s.start_stop {
                        StartStop::Start => {
                            t.started.insert(s.id, *at);
                        }
                        StartStop::Stop => {
                            if let Some(from) = t.started.remove(&s.id) {
                                *t.spent.entry(s.id).or_default() += at.saturating_sub(from);
                            }
                        }
                    },
                    _ => {}
                }
            }
        });
    let kept = tally.clone();
    worker
        .log_register()?
        .insert::<DifferentialEventBuilder, _>("differential/arrange", move |_time, data| {
            let Some(data) = data else { return };
            let mut t = kept.borrow_mut();
            for (_, event) in data.iter() {
                match event {
                    DifferentialEvent::Batch(b) => t.hold(b.operator, b.length as isize),
                    DifferentialEvent::Merge(m) => {
                        if let Some(merged) = m.complete {
                            let before = (m.length1 + m.length2) as isize;
                            t.hold(m.operator, merged as isize - before);
                        }
                    }
                    DifferentialEvent::Drop(d) => t.hold(d.operator, -(d.length as isize)),
                    _ => {}
                }
            }
        });
    Some(Report {
        worker: worker.index(),
        shown,
        tally,
    })
}

impl Report {
    /// Takes in the worker's last logged events and prints the tally to standard error.
    pub fn finish(self, worker: &mut Worker) {
        if let Some(mut registry) = worker.log_register() {
            registry.flush();
        }
        let t = self.tally.borrow();
        let mut spent: Vec<(&usize, &Duration)> = t.spent.iter().collect();
        spent.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut text = format!(
            "tidemark profile, worker {}: time in each operator (the dataflow itself includes the rest)\n",
            self.worker
        );
        for (id, d) in spent.into_iter().take(self.shown) {
            let name = t.names.get(id).map_or("?", String::as_str);
            text.push_str(&format!("{:>10.1} ms  {name}\n", d.as_secs_f64() * 1e3));
        }
        let mut held: Vec<(&usize, &(isize, isize))> = t.held.iter().collect();
        held.sort_by(|a, b| (b.1).1.cmp(&(a.1).1).then(a.0.cmp(b.0)));
        text.push_str("updates held by each arrangement: at the end, and at most\n");
        for (id, (now, peak)) in held.into_iter().take(self.shown) {
            let name = t.names.get(id).map_or("?", String::as_str);
            text.push_str(&format!("{now:>12} {peak:>12}  {name}\n"));
        }
        // Standard error may be closed; the profile is not worth a panic.
        let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
    }
}
