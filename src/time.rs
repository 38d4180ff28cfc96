//! Calendar arithmetic in the configured zone: local day/hour/week/month buckets and their labels.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Local civil day, counted in days since 1970-01-01.
pub type Day = i32;
/// Local civil hour, counted as `day * 24 + hour_of_day`.
pub type Hour = i32;
/// Local civil month, counted as `year * 12 + (month - 1)`.
pub type Month = i32;

/// Maps instants to calendar buckets of one IANA zone (DST included).
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: TimeZone,
    name: String,
}

impl Calendar {
    /// Looks the zone up in the bundled time-zone database.
    pub fn new(name: &str) -> Result<Self, jiff::Error> {
        let tz = TimeZone::get(name)?;
        Ok(Calendar {
            tz,
            name: name.to_string(),
        })
    }

    /// The zone.
    pub fn zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The zone's IANA name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Local hour bucket of an instant given in epoch milliseconds.
    pub fn hour(&self, ts_ms: i64) -> Hour {
        let local_secs = self.local_seconds(ts_ms);
        clamp_i32(local_secs.div_euclid(3600))
    }

    /// Local day bucket of an instant given in epoch milliseconds.
    pub fn day(&self, ts_ms: i64) -> Day {
        hour_day(self.hour(ts_ms))
    }

    fn local_seconds(&self, ts_ms: i64) -> i64 {
        let secs = ts_ms.div_euclid(1000);
        let offset = match Timestamp::from_second(secs) {
            Ok(t) => self.tz.to_offset(t).seconds() as i64,
            Err(_) => 0,
        };
        secs + offset
    }

    /// RFC 3339 text of an instant in this zone, with milliseconds and numeric offset.
    pub fn format_instant(&self, ts_ms: i64) -> String {
        match Timestamp::from_millisecond(ts_ms) {
            Ok(t) => t
                .to_zoned(self.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string(),
            Err(_) => ts_ms.to_string(),
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

impl Calendar {
    /// Milliseconds since local midnight of an instant.
    pub fn time_of_day_ms(&self, ts_ms: i64) -> i64 {
        let offset = self.offset_seconds(ts_ms);
        (ts_ms + offset * 1000).rem_euclid(DAY_MS)
    }

    fn offset_seconds(&self, ts_ms: i64) -> i64 {
        match Timestamp::from_second(ts_ms.div_euclid(1000)) {
            Ok(t) => self.tz.to_offset(t).seconds() as i64,
            Err(_) => 0,
        }
    }

    /// The instants at which the local wall clock reads `local_ms` (milliseconds since
    /// 1970-01-01T00:00 local): one, two in a fold, none in a gap.
    fn instants(&self, local_ms: i64) -> Local {
        use jiff::tz::AmbiguousOffset;
        let Ok(dt) =
            Timestamp::from_millisecond(local_ms).map(|t| t.to_zoned(TimeZone::UTC).datetime())
        else {
            return Local::One(local_ms);
        };
        match self.tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                Local::One(local_ms - offset.seconds() as i64 * 1000)
            }
            AmbiguousOffset::Gap { before, .. } => {
                Local::Gap(local_ms - before.seconds() as i64 * 1000)
            }
            AmbiguousOffset::Fold { before, after } => Local::Two(
                local_ms - before.seconds() as i64 * 1000,
                local_ms - after.seconds() as i64 * 1000,
            ),
        }
    }

    /// The first instant at which the local wall clock reads `local_ms`, or, in a gap, the
    /// instant it would read it had the clock not jumped (the wall time moved forward by the
    /// gap's length).
    fn first_instant(&self, local_ms: i64) -> i64 {
        match self.instants(local_ms) {
            Local::One(t) | Local::Gap(t) | Local::Two(t, _) => t,
        }
    }

    /// When an hour bucket ends: the instant its next local hour begins.
    pub fn hour_end(&self, hour: Hour) -> i64 {
        self.first_instant((hour as i64 + 1) * HOUR_MS)
    }

    /// When a day bucket ends: the instant the next local day begins.
    pub fn day_end(&self, day: Day) -> i64 {
        self.first_instant((day as i64 + 1) * DAY_MS)
    }

    /// Whether a local hour label exists (it does not inside a daylight-saving gap).
    pub fn hour_exists(&self, hour: Hour) -> bool {
        !matches!(self.instants(hour as i64 * HOUR_MS), Local::Gap(_))
    }

    /// The release time of a deadline under quiet hours `[from, to)` (milliseconds after local
    /// midnight, wrapping midnight when `from > to`): the deadline itself outside quiet hours,
    /// else the earliest instant after it at which the local clock reads `to`. Where `to` does
    /// not exist (a gap) the instant `to` moved forward by the gap stands in; where it exists
    /// twice, both count.
    pub fn release(&self, deadline: i64, from_ms: i64, to_ms: i64) -> i64 {
        let tod = self.time_of_day_ms(deadline);
        let quiet = if from_ms <= to_ms {
            from_ms <= tod && tod < to_ms
        } else {
            tod >= from_ms || tod < to_ms
        };
        if !quiet {
            return deadline;
        }
        let local_day = (deadline + self.offset_seconds(deadline) * 1000).div_euclid(DAY_MS);
        let mut best = i64::MAX;
        for day in [local_day, local_day + 1, local_day + 2] {
            let candidates = match self.instants(day * DAY_MS + to_ms) {
                Local::One(t) | Local::Gap(t) => [Some(t), None],
                Local::Two(a, b) => [Some(a), Some(b)],
            };
            for t in candidates.into_iter().flatten() {
                if t > deadline && t < best {
                    best = t;
                }
            }
        }
        best
    }
}

/// The instants a local wall-clock reading stands for.
enum Local {
    One(i64),
    /// The reading does not exist; the instant is the stand-in moved forward by the gap.
    Gap(i64),
    Two(i64, i64),
}

/// The day an hour bucket belongs to.
pub fn hour_day(hour: Hour) -> Day {
    hour.div_euclid(24)
}

/// Monday (as a day bucket) of the ISO week containing `day`.
pub fn week_of(day: Day) -> Day {
    // 1970-01-01 was a Thursday: Monday-based weekday index 3.
    day - (day + 3).rem_euclid(7)
}

/// Month bucket of a day.
pub fn month_of(day: Day) -> Month {
    let (y, m, _) = civil_from_days(day);
    y * 12 + (m as i32 - 1)
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(z: Day) -> (i32, u32, u32) {
    let z = z as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Bounded for every `z`: d in 1..=31, m in 1..=12, |y| below 6 million.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("day of month");
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("month");
    let y = i32::try_from(if m <= 2 { y + 1 } else { y }).expect("year of an i32 day");
    (y, m, d)
}

/// Day count since 1970-01-01 of a civil date.
#[cfg(any(test, feature = "internals"))]
pub fn days_from_civil(y: i32, m: u32, d: u32) -> Day {
    let y = if m <= 2 { y as i64 - 1 } else { y as i64 };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    clamp_i32(era * 146_097 + doe - 719_468)
}

/// `x` as an `i32`, clamped to its range (a bucket of an instant or date beyond it).
fn clamp_i32(x: i64) -> i32 {
    i32::try_from(x).unwrap_or(if x < 0 { i32::MIN } else { i32::MAX })
}

/// Whole milliseconds of a duration, saturating at `u64::MAX` (585 million years).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole microseconds of a duration, saturating at `u64::MAX` (585 thousand years).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Whole nanoseconds of a duration, saturating at `u64::MAX` (584 years). Only the load-test
/// client (`cli`) reads time so finely.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `YYYY-MM-DD` label of a day bucket.
pub fn day_label(day: Day) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH` label of an hour bucket.
pub fn hour_label(hour: Hour) -> String {
    format!("{}T{:02}", day_label(hour_day(hour)), hour.rem_euclid(24))
}

/// `YYYY-MM` label of a month bucket.
pub fn month_label(month: Month) -> String {
    format!(
        "{:04}-{:02}",
        month.div_euclid(12),
        month.rem_euclid(12) + 1
    )
}

/// Parses a `YYYY-MM-DD` label back into a day bucket.
#[cfg(any(test, feature = "internals"))]
pub fn parse_day(s: &str) -> Option<Day> {
    let d: jiff::civil::Date = s.parse().ok()?;
    Some(days_from_civil(
        d.year() as i32,
        d.month() as u32,
        d.day() as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_matches_jiff() {
        for day in (-1000..40000).step_by(7) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            let j = jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(day as i64))
                .unwrap();
            assert_eq!(
                (j.year() as i32, j.month() as u32, j.day() as u32),
                (y, m, d)
            );
        }
    }

    #[test]
    fn buckets_and_durations_beyond_range_saturate() {
        let cal = Calendar::new("UTC").unwrap();
        assert_eq!(cal.hour(i64::MAX), Hour::MAX);
        assert_eq!(cal.hour(i64::MIN), Hour::MIN);
        assert_eq!(days_from_civil(i32::MAX, 1, 1), Day::MAX);
        assert_eq!(days_from_civil(i32::MIN, 1, 1), Day::MIN);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(micros(Duration::from_millis(3)), 3_000);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn weeks_start_on_monday() {
        let monday = parse_day("2026-11-02").unwrap();
        for k in 0..7 {
            assert_eq!(week_of(monday + k), monday);
        }
        assert_eq!(week_of(monday - 1), monday - 7);
    }

    #[test]
    fn dst_fall_back_hour_repeats_label() {
        let cal = Calendar::new("America/New_York").unwrap();
        // 05:30Z and 06:30Z on 2026-11-01 are both 01:30 local (EDT, then EST).
        let a = cal.hour(1_793_511_000_000);
        let b = cal.hour(1_793_514_600_000);
        assert_eq!(a, b);
        assert_eq!(hour_label(a), "2026-11-01T01");
        assert_eq!(
            cal.format_instant(1_793_894_400_000),
            "2026-11-05T11:00:00.000-05:00"
        );
    }

    #[test]
    fn quiet_hours_release_across_daylight_saving() {
        let cal = Calendar::new("Europe/Berlin").unwrap();
        let ms = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
        let (from, to) = (3_600_000, 9_000_000); // 01:00 .. 02:30
                                                 // Outside quiet hours, and exactly at `to`: the deadline itself.
        let d = ms("2026-10-20T02:30:00+02:00");
        assert_eq!(cal.release(d, from, to), d);
        assert_eq!(
            cal.release(ms("2026-10-20T02:29:59.999+02:00"), from, to),
            d
        );
        // 02:30 does not exist on 2026-03-29: it moves forward by the hour-long gap.
        assert_eq!(
            cal.release(ms("2026-03-29T01:45:00+01:00"), from, to),
            ms("2026-03-29T03:30:00+02:00")
        );
        // 02:30 exists twice on 2026-10-25: the first one after the deadline.
        assert_eq!(
            cal.release(ms("2026-10-25T01:10:00+02:00"), from, to),
            ms("2026-10-25T02:30:00+02:00")
        );
        assert_eq!(
            cal.release(ms("2026-10-25T02:10:00+01:00"), from, to),
            ms("2026-10-25T02:30:00+01:00")
        );
        // Wrapping midnight: 22:00 .. 08:00.
        assert_eq!(
            cal.release(ms("2026-10-20T23:00:00+02:00"), 79_200_000, 28_800_000),
            ms("2026-10-21T08:00:00+02:00")
        );
    }

    #[test]
    fn bucket_ends_and_gap_hours() {
        let cal = Calendar::new("Europe/Berlin").unwrap();
        let ms = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
        let t01 = cal.hour(ms("2026-03-29T01:30:00+01:00"));
        assert_eq!(cal.hour_end(t01), ms("2026-03-29T03:00:00+02:00"));
        assert!(!cal.hour_exists(t01 + 1));
        assert!(cal.hour_exists(t01 + 2));
        let fold = cal.hour(ms("2026-10-25T02:30:00+02:00"));
        assert_eq!(cal.hour_end(fold - 1), ms("2026-10-25T02:00:00+02:00"));
        assert_eq!(cal.hour_end(fold), ms("2026-10-25T03:00:00+01:00"));
        let day = cal.day(ms("2026-10-25T12:00:00+01:00"));
        assert_eq!(cal.day_end(day), ms("2026-10-26T00:00:00+01:00"));
    }

    #[test]
    fn months_and_labels() {
        let d = parse_day("2026-12-31").unwrap();
        assert_eq!(month_label(month_of(d)), "2026-12");
        assert_eq!(month_label(month_of(d + 1)), "2027-01");
        assert_eq!(day_label(d), "2026-12-31");
    }
}
