//! Output order: each day sorted by time, a few lines written late, a few written twice.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, Write};

use super::record::{Ev, Renderer, AMOUNT_TEXT, TS_TEXT};
use super::rng::Rng;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const FLUSH_BYTES: usize = 1 << 16;

/// A line kept back until the output reaches its release time.
struct Held {
    release: i64,
    seq: u64,
    id: u64,
    ev: Ev,
}

impl Writer<Vec<u8>> {
    /// The lines written so far and not taken yet (held lines stay held).
    pub fn take_written(&mut self) -> Vec<u8> {
        self.out.append(&mut self.buf);
        std::mem::take(&mut self.out)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.release, self.seq).cmp(&(other.release, other.seq))
    }
}

/// Numbers events, decides their text style, and writes them in (almost) time order.
pub struct Writer<W: Write> {
    out: W,
    renderer: Renderer,
    /// Every written `ts` lies in `[range.0, range.1)`.
    range: (i64, i64),
    buf: Vec<u8>,
    held: BinaryHeap<Reverse<Held>>,
    ids: u64,
    seq: u64,
    lines: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, renderer: Renderer, range: (i64, i64)) -> Self {
        Writer {
            out,
            renderer,
            range,
            buf: Vec::with_capacity(2 * FLUSH_BYTES),
            held: BinaryHeap::new(),
            ids: 0,
            seq: 0,
            lines: 0,
        }
    }

    /// Writes one day's events (given in any order), leaving late lines held for later.
    pub fn day(&mut self, events: &mut Vec<Ev>, rng: &mut Rng) -> io::Result<()> {
        events.sort_by_key(|e| e.ts);
        for mut ev in events.drain(..) {
            self.release(ev.ts)?;
            if rng.chance(0.2) {
                ev.style |= TS_TEXT;
            }
            if rng.chance(0.15) {
                ev.style |= AMOUNT_TEXT;
            }
            self.ids += 1;
            let id = self.ids;
            let release = if rng.chance(0.005) {
                let delay = if rng.chance(0.35) {
                    rng.range(SECOND, 2 * MINUTE)
                } else {
                    rng.range(30 * MINUTE, 6 * HOUR)
                };
                self.hold(ev.ts + delay, id, ev);
                ev.ts + delay
            } else {
                self.write(&ev, id)?;
                ev.ts
            };
            if rng.chance(0.003) {
                let mut copy = ev;
                if rng.chance(0.15) {
                    let shift = rng.range(1, SECOND);
                    copy.ts = if ev.ts + shift < self.range.1 {
                        ev.ts + shift
                    } else {
                        ev.ts - shift
                    };
                }
                self.hold(release + rng.range(0, 2 * MINUTE), id, copy);
            }
        }
        Ok(())
    }

    /// Writes every held line and returns the number of lines written.
    pub fn finish(mut self) -> io::Result<u64> {
        self.release(i64::MAX)?;
        self.out.write_all(&self.buf)?;
        self.out.flush()?;
        Ok(self.lines)
    }

    fn hold(&mut self, release: i64, id: u64, ev: Ev) {
        self.seq += 1;
        self.held.push(Reverse(Held {
            release,
            seq: self.seq,
            id,
            ev,
        }));
    }

    /// Writes the held lines due at or before `now`.
    fn release(&mut self, now: i64) -> io::Result<()> {
        while self.held.peek().is_some_and(|h| h.0.release <= now) {
            if let Some(Reverse(h)) = self.held.pop() {
                self.write(&h.ev, h.id)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, ev: &Ev, id: u64) -> io::Result<()> {
        debug_assert!((self.range.0..self.range.1).contains(&ev.ts));
        self.renderer.line(ev, id, &mut self.buf);
        self.lines += 1;
        if self.buf.len() >= FLUSH_BYTES {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}
