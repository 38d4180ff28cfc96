//! Metric rows as the dataflow produces them, and their JSON form of OUTPUT.md.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::facts::ChannelId;
use crate::ingest::Dictionary;
use crate::plan::Plan;
use crate::time::{day_label, hour_label, month_label, Day, Hour, Month};

macro_rules! metrics {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every metric tidemark maintains.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Metric { $(#[doc = concat!("`", $name, "`, as METRICS.md defines it.")] $variant),* }

        impl Metric {
            /// The metric's name in rows.
            pub fn name(self) -> &'static str {
                match self { $(Metric::$variant => $name),* }
            }

            /// The metric of a name in rows.
            pub fn from_name(name: &str) -> Option<Metric> {
                match name { $($name => Some(Metric::$variant),)* _ => None }
            }
        }
    };
}

metrics! {
    Dau => "dau", Wau => "wau", Mau => "mau", Stickiness => "stickiness", Hau => "hau",
    NewUsers => "new_users", NewUsersWeekly => "new_users_weekly",
    NewUserGrowthWeekly => "new_user_growth_weekly", Lifecycle => "lifecycle",
    Retention => "retention", RetentionRate => "retention_rate",
    RetentionUnbounded => "retention_unbounded", MonthlyRetention => "monthly_retention",
    MonthlyRetentionRate => "monthly_retention_rate",
    SlidingRetentionBase => "sliding_retention_base", SlidingRetentionKept => "sliding_retention_kept",
    SlidingRetention => "sliding_retention",
    Funnel => "funnel", FunnelConversion => "funnel_conversion",
    FunnelOpen => "funnel_open", FunnelDropped => "funnel_dropped",
    NewUsersByChannel => "new_users_by_channel", Spend => "spend", Cac => "cac", CacTotal => "cac_total",
    Revenue => "revenue", RevenueByChannel => "revenue_by_channel", RoasTotal => "roas_total",
    Ratio => "ratio", RatioNumerator => "ratio_numerator", RatioDenominator => "ratio_denominator",
    TriggerFired => "trigger_fired", TriggerConverted => "trigger_converted",
    TriggerConversionRate => "trigger_conversion_rate", TriggerLift => "trigger_lift",
    TriggerPending => "trigger_pending",
}

impl Metric {
    /// Metrics beyond METRICS.md; snapshots list them apart, under `extensions`.
    pub fn is_extension(self) -> bool {
        matches!(
            self,
            Metric::FunnelOpen | Metric::FunnelDropped | Metric::TriggerPending
        )
    }
}

/// Lifecycle states of METRICS.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum State {
    New,
    Returning,
    Resurrecting,
    Dormant,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::New => "new",
            State::Returning => "returning",
            State::Resurrecting => "resurrecting",
            State::Dormant => "dormant",
        }
    }
}

/// The group of a rule's firing: actions run for `Treatment` only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Group {
    Treatment,
    Holdout,
}

impl Group {
    pub fn name(self) -> &'static str {
        match self {
            Group::Treatment => "treatment",
            Group::Holdout => "holdout",
        }
    }
}

/// A row's dimensions, in the dataflow's compact form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dims {
    Day(Day),
    Hour(Hour),
    Week(Day),
    DayState(Day, State),
    CohortDayN(Day, u16),
    CohortMonthN(Month, u16),
    DayWindow(Day, u16),
    FunnelDayStep(u16, Day, u16),
    FunnelDay(u16, Day),
    DayChannel(Day, ChannelId),
    Channel(ChannelId),
    NameDay(u16, Day),
    RuleDayGroup(u16, Day, Group),
    RuleGroup(u16, Group),
    Rule(u16),
}

impl Dims {
    /// The day a row is of, for dims that name one day.
    pub fn day(self) -> Option<Day> {
        match self {
            Dims::Day(d)
            | Dims::DayState(d, _)
            | Dims::DayWindow(d, _)
            | Dims::FunnelDayStep(_, d, _)
            | Dims::FunnelDay(_, d)
            | Dims::DayChannel(d, _)
            | Dims::NameDay(_, d)
            | Dims::RuleDayGroup(_, d, _) => Some(d),
            _ => None,
        }
    }
}

/// A row's value: exact until it is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    Count(i64),
    /// Cents.
    Money(i64),
    /// `numerator / denominator`, printed as a float.
    Rate(i64, i64),
}

impl Value {
    /// The JSON number of OUTPUT.md.
    pub fn to_json(self) -> Json {
        match self {
            Value::Count(n) => json!(n),
            // Ingest keeps every total within MAX_CENTS, where the double prints the exact
            // decimal; anything beyond would print as an exact decimal string, never rounded.
            Value::Money(c) if c.unsigned_abs() <= crate::event::MAX_CENTS as u64 => {
                json!(c as f64 / 100.0)
            }
            Value::Money(c) => json!(crate::event::format_cents(c)),
            Value::Rate(n, d) => json!(n as f64 / d as f64),
        }
    }
}

/// A metric row's identity.
pub type Key = (Metric, Dims);

/// True when a row is final once every day before `seal` is sealed (no event can land on
/// those days any more): it is counted from per-day activity, funnel steps, ratio events or
/// purchases of sealed days only, which `serve` retires beyond its horizon. Rows counted from
/// first events, spend, whole lifetimes (`retention_unbounded`, month cohorts, totals) or
/// rules stay live.
pub fn sealed(key: &Key, seal: Day) -> bool {
    use Metric::*;
    match (key.0, key.1) {
        (Hau, Dims::Hour(h)) => crate::time::hour_day(h) < seal,
        (Retention | RetentionRate, Dims::CohortDayN(c, n)) => c + (n as Day) < seal,
        (
            Dau | Wau | Mau | Stickiness | Lifecycle | SlidingRetentionBase | SlidingRetentionKept
            | SlidingRetention | Funnel | FunnelConversion | FunnelOpen | FunnelDropped | Revenue
            | RevenueByChannel | Ratio | RatioNumerator | RatioDenominator,
            dims,
        ) => dims.day().is_some_and(|d| d < seal),
        _ => false,
    }
}

/// Turns compact keys into JSON rows, resolving names of channels, funnels and ratios.
pub struct Labeler<'a> {
    pub plan: &'a Plan,
    pub dict: &'a Dictionary,
}

impl Labeler<'_> {
    /// The `dims` object, keys in the order of METRICS.md.
    pub fn dims(&self, dims: &Dims) -> Map<String, Json> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Json| {
            m.insert(k.to_string(), v);
        };
        match *dims {
            Dims::Day(d) => put("day", json!(day_label(d))),
            Dims::Hour(h) => put("hour", json!(hour_label(h))),
            Dims::Week(w) => put("week", json!(day_label(w))),
            Dims::DayState(d, s) => {
                put("day", json!(day_label(d)));
                put("state", json!(s.name()));
            }
            Dims::CohortDayN(d, n) => {
                put("cohort_day", json!(day_label(d)));
                put("n", json!(n));
            }
            Dims::CohortMonthN(mo, n) => {
                put("cohort_month", json!(month_label(mo)));
                put("n", json!(n));
            }
            Dims::DayWindow(d, w) => {
                put("day", json!(day_label(d)));
                put("window", json!(w));
            }
            Dims::FunnelDayStep(f, d, s) => {
                put("funnel", json!(self.plan.funnels[f as usize].name));
                put("day", json!(day_label(d)));
                put("step", json!(s));
            }
            Dims::FunnelDay(f, d) => {
                put("funnel", json!(self.plan.funnels[f as usize].name));
                put("day", json!(day_label(d)));
            }
            Dims::DayChannel(d, c) => {
                put("day", json!(day_label(d)));
                put("channel", json!(self.dict.channel(c)));
            }
            Dims::Channel(c) => put("channel", json!(self.dict.channel(c))),
            Dims::NameDay(r, d) => {
                put("name", json!(self.plan.ratios[r as usize].name));
                put("day", json!(day_label(d)));
            }
            Dims::RuleDayGroup(r, d, g) => {
                put("rule", json!(self.plan.config.rules[r as usize].name));
                put("day", json!(day_label(d)));
                put("group", json!(g.name()));
            }
            Dims::RuleGroup(r, g) => {
                put("rule", json!(self.plan.config.rules[r as usize].name));
                put("group", json!(g.name()));
            }
            Dims::Rule(r) => put("rule", json!(self.plan.config.rules[r as usize].name)),
        }
        m
    }

    /// The whole row object.
    pub fn row(&self, key: &Key, value: Value) -> Json {
        json!({"metric": key.0.name(), "dims": self.dims(&key.1), "value": value.to_json()})
    }
}
