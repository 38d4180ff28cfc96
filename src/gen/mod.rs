//! Deterministic synthetic event log: persons arriving through channels, their sessions, orders, identity links and ad spend, as NDJSON.
//!
//! The simulation runs one local day at a time. Persons arrive (more of them as the days go by,
//! unless `growth` is 0, and on weekends), each through a channel named on their first event;
//! they come back with a chance that decays with the days since arrival (a few loyal ones keep
//! coming, for at most `lifetime` days when one is set). Some register, linking
//! their openid to an account id (`ids.uid` or the `user` shorthand) and often a phone; some also
//! link a WeChat unionid or a second device. Paid channels spend 1-4 times a day. About 20% of
//! `ts` values are RFC 3339 strings in the zone's offset, ~0.5% of lines are written late and
//! ~0.3% are written twice with the same `id`. Output depends only on the options.

mod json;
mod model;
mod order;
mod record;
mod rng;
mod session;
#[cfg(test)]
mod tests;

use std::io::{self, Write};

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

pub use model::{Preset, Sessions, Shape};
use model::{Profile, Retention, CHANNELS, PAID_CHANNELS};
use order::Writer;
use record::{Ev, Kind, Renderer};
use rng::{hash, unit, Rng};
use session::{person_day, Day, Visitor};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Number of persons arriving over the whole period.
    pub persons: u64,
    /// Number of local days.
    pub days: u32,
    /// Seed of the random choices: the same seed and options give the same log.
    pub seed: u64,
    /// First local day.
    pub start: Date,
    /// Days are local days in this zone.
    pub timezone: TimeZone,
    /// Whether persons' identities are linked by events (register, login); without links each
    /// person appears under one openid only.
    pub links: bool,
    /// How many percent more persons arrive on the last day than on the first (0: as many
    /// every day).
    pub growth: u32,
    /// Days after arrival after which nobody comes back (`None`: loyal persons keep coming).
    /// With `growth: 0`, a lifetime makes a steady stream: as many active persons and events
    /// each day once the first lifetime has passed.
    pub lifetime: Option<u32>,
    /// Persons arrive over the first this many days only (`None`: over every day). With
    /// loyal persons coming back, the days after make a stream of a fixed population.
    pub arrival_days: Option<u32>,
    /// How persons come back.
    pub shape: Shape,
    /// How long each active day is.
    pub sessions: Sessions,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            persons: 1_000,
            days: 30,
            seed: 1,
            start: jiff::civil::date(2026, 10, 1),
            timezone: TimeZone::UTC,
            links: true,
            growth: 150,
            lifetime: None,
            arrival_days: None,
            shape: Preset::Real.shape(),
            sessions: Preset::Real.sessions(),
        }
    }
}

/// Writes NDJSON events (one JSON object per line) to `out`, returns the number of lines written.
pub fn generate<W: Write>(opts: &GenOptions, out: &mut W) -> io::Result<u64> {
    if opts.days == 0 {
        return Ok(0);
    }
    let mut days = DayStream::writing(opts, out, true)?;
    for _ in 0..opts.days {
        days.write_day()?;
    }
    days.writer.finish()
}

/// The simulation written day after day: `generate` writes its period through one; without
/// end (`DayStream::new`), the days after the period come with the arrival rate of its last
/// day, so that new persons keep arriving and earlier ones keep coming back. Its first
/// `opts.days` days are written exactly as `generate` writes them (but for the lines held late
/// past a day's end, which come with a later day).
pub struct DayStream<W: Write = Vec<u8>> {
    sim: Simulation,
    writer: Writer<W>,
    seed: u64,
    next: u32,
    events: Vec<Ev>,
}

impl DayStream {
    /// A stream without end, each day's lines taken with `next_day`.
    pub fn new(opts: &GenOptions) -> io::Result<Self> {
        if opts.days == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a day stream needs a period of at least one day",
            ));
        }
        DayStream::writing(opts, Vec::new(), false)
    }

    /// The lines of the next local day (and those held late from earlier days that come due
    /// on it), with the epoch millisecond the day ends at.
    pub fn next_day(&mut self) -> io::Result<(Vec<u8>, i64)> {
        let end = self.write_day()?;
        Ok((self.writer.take_written(), end))
    }
}

impl<W: Write> DayStream<W> {
    /// Writes to `out`; every event lies in the period when `bounded` (`opts.days >= 1`).
    fn writing(opts: &GenOptions, out: W, bounded: bool) -> io::Result<Self> {
        let sim = Simulation::new(opts)?;
        let (start, end) = sim.range();
        let range = (start, if bounded { end } else { i64::MAX });
        let renderer = Renderer::new(opts.seed, opts.timezone.clone()).with_links(opts.links);
        Ok(DayStream {
            sim,
            writer: Writer::new(out, renderer, range),
            seed: opts.seed,
            next: 0,
            events: Vec::new(),
        })
    }

    /// Simulates and writes the next day; returns the epoch millisecond it ends at.
    fn write_day(&mut self) -> io::Result<i64> {
        let d = self.next;
        self.next += 1;
        let end = self.sim.day(d, &mut self.events)?;
        let mut rng = Rng::new(self.seed, &[0x0D7, u64::from(d)]);
        self.writer.day(&mut self.events, &mut rng)?;
        Ok(end)
    }
}

/// The persons of the simulation and what it keeps of them between days.
struct Simulation {
    opts: GenOptions,
    /// Local dates from the start, each with the epoch millisecond of its local midnight.
    days: Vec<(Date, i64)>,
    /// Person numbers arriving on day `d` are `bounds[d]..bounds[d + 1]`.
    bounds: Vec<u64>,
    /// Arrivals on each weekday and each weekend day after the period: those of its last day,
    /// with the weekend's 20% more or less.
    after: [u64; 2],
    state: Vec<u8>,
    orders: u64,
    retention: Retention,
}

impl Simulation {
    fn new(opts: &GenOptions) -> io::Result<Self> {
        let days = local_days(opts)?;
        let weights = arrival_weights(&days, opts.growth, opts.arrival_days);
        let total: u128 = weights.iter().sum();
        let bounds = bounds_of(opts.persons, &weights, total);
        let last = weights.last().copied().unwrap_or(0);
        let last_weekend = weights
            .len()
            .checked_sub(1)
            .is_some_and(|d| is_weekend(days[d].0));
        let (weekday, weekend) = if last_weekend {
            (last * 5 / 6, last)
        } else {
            (last, last * 6 / 5)
        };
        let arriving = |w: u128| u64::try_from(u128::from(opts.persons) * w / total.max(1));
        Ok(Simulation {
            opts: opts.clone(),
            state: vec![0u8; usize::try_from(opts.persons).map_err(invalid)?],
            days,
            bounds,
            after: [
                arriving(weekday).map_err(invalid)?,
                arriving(weekend).map_err(invalid)?,
            ],
            orders: 0,
            retention: Retention::new(opts.days, opts.shape),
        })
    }

    /// The times every event of the period lies in (a period of at least one day).
    fn range(&self) -> (i64, i64) {
        (self.days[0].1, self.days[self.days.len() - 1].1)
    }

    /// Makes sure day `d` and its end are known, past the period too.
    fn extend_to(&mut self, d: usize) -> io::Result<()> {
        while self.days.len() < d + 2 {
            let (date, _) = self.days[self.days.len() - 1];
            let next = date.tomorrow().map_err(invalid)?;
            let midnight = next.to_zoned(self.opts.timezone.clone()).map_err(invalid)?;
            self.days
                .push((next, midnight.timestamp().as_millisecond()));
        }
        while self.bounds.len() < d + 2 {
            let day = self.bounds.len() - 1;
            let arriving = self.after[usize::from(is_weekend(self.days[day].0))];
            self.bounds.push(self.bounds[day] + arriving);
        }
        let persons = usize::try_from(self.bounds[d + 1]).map_err(invalid)?;
        if persons > self.state.len() {
            self.state.resize(persons, 0);
        }
        Ok(())
    }

    /// Simulates day `d` into `events`; returns the epoch millisecond the day ends at.
    fn day(&mut self, d: u32, events: &mut Vec<Ev>) -> io::Result<i64> {
        let (index, d) = (d, d as usize);
        self.extend_to(d)?;
        let opts = &self.opts;
        let (w0, w1) = (self.days[d], self.days[d + 1]);
        let day = Day {
            seed: opts.seed,
            index,
            start_ms: w0.1,
            len_ms: w1.1 - w0.1,
        };
        let bounds = &self.bounds;
        let busier = if is_weekend(w0.0) { 1.1 } else { 1.0 };
        ad_spend(&day, bounds[d + 1] - bounds[d], events);
        let oldest = opts.lifetime.map_or(0, |l| d.saturating_sub(l as usize));
        for a in oldest..=d {
            for n in bounds[a]..bounds[a + 1] {
                let arriving = a == d;
                let draw = unit(hash(opts.seed, &[0xAC71, n, d as u64]));
                if !arriving && draw >= self.retention.max_chance() * busier {
                    continue;
                }
                let profile = Profile::of(opts.seed, n, opts.shape.regulars);
                let age = u32::try_from(d - a).expect("at most d, which came as a u32");
                if !arriving && draw >= self.retention.chance(&profile, age) * busier {
                    continue;
                }
                let who = Visitor {
                    index: n,
                    profile,
                    arriving,
                    sessions: &opts.sessions,
                };
                let person = usize::try_from(n).expect("below bounds[d + 1], which extend_to fit");
                person_day(
                    &day,
                    &who,
                    &mut self.state[person],
                    &mut self.orders,
                    events,
                );
            }
        }
        Ok(w1.1)
    }
}

fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// The `days + 1` local dates from `start`, each with the epoch millisecond of its local midnight.
fn local_days(opts: &GenOptions) -> io::Result<Vec<(Date, i64)>> {
    if opts.days == 0 {
        return Ok(Vec::new());
    }
    let mut date = opts.start;
    let mut days = Vec::with_capacity(opts.days as usize + 1);
    for d in 0..=opts.days {
        if d > 0 {
            date = date.tomorrow().map_err(invalid)?;
        }
        let midnight = date.to_zoned(opts.timezone.clone()).map_err(invalid)?;
        days.push((date, midnight.timestamp().as_millisecond()));
    }
    Ok(days)
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// Relative arrivals on each day: they grow by `growth` percent over the period (2.5x by
/// default) and are 20% higher on weekends; nobody arrives on or after day `until`, when given.
fn arrival_weights(days: &[(Date, i64)], growth: u32, until: Option<u32>) -> Vec<u128> {
    let n = days.len().saturating_sub(1);
    (0..n)
        .map(|d| {
            if until.is_some_and(|u| d as u64 >= u64::from(u)) {
                return 0;
            }
            let growth = 100 + u128::from(growth) * d as u128 / (n.max(2) - 1) as u128;
            growth * if is_weekend(days[d].0) { 6 } else { 5 }
        })
        .collect()
}

/// Person numbers arriving on day `d` are `bounds[d]..bounds[d + 1]`: `persons` split by the
/// weights.
fn bounds_of(persons: u64, weights: &[u128], total: u128) -> Vec<u64> {
    let mut bounds = vec![0u64];
    let mut cumulative = 0;
    for w in weights {
        cumulative += w;
        let bound = u128::from(persons) * cumulative / total.max(1);
        bounds.push(u64::try_from(bound).expect("cumulative <= total: at most persons"));
    }
    bounds
}

/// 1-4 spend events per paid channel, adding up to about the day's expected arrivals times the channel's CAC.
fn ad_spend(day: &Day, arrivals: u64, events: &mut Vec<Ev>) {
    let mut rng = Rng::new(day.seed, &[0x5BE4D, u64::from(day.index)]);
    for (c, ch) in CHANNELS[..PAID_CHANNELS].iter().enumerate() {
        let expected = arrivals as f64 * f64::from(ch.share) / 1_000.0;
        // Whole cents: `as` drops the fraction (and saturates).
        #[allow(clippy::cast_possible_truncation)]
        let budget = (expected * ch.cac_cents as f64 * (0.75 + 0.5 * unit(rng.next_u64()))) as i64
            + rng.range(30_000, 80_000);
        // 1-4 parts, fewer for small budgets and more for big ones: each a few hundred to a few thousand.
        let parts = (1 + rng.range(0, 4))
            .min((budget / 25_000).max(1))
            .max(budget / 600_000 + 1)
            .min(4);
        for _ in 0..parts {
            let cents = budget / parts * rng.range(70, 130) / 100 + rng.range(0, 100);
            let ts = day.start_ms + rng.range(0, day.len_ms);
            events.push(Ev {
                ts,
                person: 0,
                arg: 0,
                cents,
                kind: Kind::AdSpend,
                ids: 0,
                channel: Some(u8::try_from(c).expect("one of the 7 CHANNELS")),
                style: 0,
            });
        }
    }
}
