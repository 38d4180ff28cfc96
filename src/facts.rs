//! The compact facts that ingest derives from accepted events: the dataflow's input vocabulary.

use serde::{Deserialize, Serialize};

use crate::metric::{Group, Key, Value};
use crate::time::{Day, Hour};

/// An interned identity `(type, value)`.
pub type Ident = u32;
/// A person: the smallest identity of a connected component.
pub type Person = u32;
/// An interned channel; `NO_CHANNEL` stands for `(none)`.
pub type ChannelId = u32;
/// An event name that some funnel or ratio refers to.
pub type NameId = u16;

/// Channel id of events without a channel.
pub const NO_CHANNEL: ChannelId = 0;

/// An identity's earliest active event: `(ts, id)` orders, `channel` is carried along.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct First {
    pub ts: i64,
    pub id: String,
    pub channel: ChannelId,
}

/// An event that is a step of some funnel.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Step {
    pub ts: i64,
    /// Shared, like rule texts: the step's arrangements hold reference counts, not copies.
    pub id: Text,
    pub name: NameId,
}

/// A rule, by its index in the configuration.
pub type RuleId = u16;

/// Text that rule facts carry (event ids and `match` keys): shared, so that the dataflow's
/// many copies of a fact are reference counts, not copies of the text.
pub type Text = std::sync::Arc<str>;

/// An event that triggers a rule: `key` is its `match` text, or its id without `match`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Trigger {
    pub rule: RuleId,
    pub key: Text,
    pub ts: i64,
    pub id: Text,
}

/// Where a rule's cancel and goal events meet its trigger: the shared `match` text, or the
/// person (at ingest: the event's identity, resolved to its person in the dataflow).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope<P> {
    Key(Text),
    Person(P),
}

/// What a rule's cancel and goal events leave: each cancel, and per bucket of time the first
/// and last goal events (a goal window spans at least one bucket, so that is enough to tell
/// whether a goal fell in it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mark {
    /// An event named `unless`: its time and id.
    Cancel { rule: RuleId, ts: i64, id: Text },
    /// The first and last events named `goal`, `(time, id)`, in one bucket of the rule's goal
    /// buckets (`goal_bucket_ms`).
    Goals {
        rule: RuleId,
        bucket: i64,
        first: (i64, Text),
        last: (i64, Text),
    },
}

/// The goal buckets of a rule whose goal window is `goal_within_ms`: as wide as the window, so
/// that every window ends in a later bucket than it starts, and a person's goal events leave one
/// mark per window's length of time rather than one per event.
pub fn goal_bucket_ms(goal_within_ms: i64) -> i64 {
    goal_within_ms.max(1)
}

/// A change to the earliest active time of an identity on a day.
pub type DayFirstChange = ((Ident, (Day, i64)), isize);

/// A firing already sent when its person was erased: it stays in the campaign rows as
/// `(rule, release time, group, converted)`, under no identity.
pub type SentFiring = (RuleId, i64, Group, bool);

/// A retired firing that later triggers' caps still count (`ingest::retire_rules`): rule,
/// release time and trigger id, under the identity of its trigger event.
pub type CapFiring = (RuleId, i64, Text);

/// Everything one batch of accepted events changes, as differential updates.
#[derive(Clone, Debug, Default)]
pub struct FactBatch {
    /// Identities seen for the first time.
    pub idents: Vec<Ident>,
    /// Links between identities that appeared in one event.
    pub edges: Vec<(Ident, Ident)>,
    /// `(identity, local hour)` of active events, each pair once (only whether it occurred matters).
    pub hours: Vec<(Ident, Hour)>,
    /// Changes to each identity's earliest active event.
    pub firsts: Vec<((Ident, First), isize)>,
    /// `(identity, (day, name))` of events a ratio refers to, each once.
    pub named: Vec<(Ident, (Day, NameId))>,
    /// Events a funnel refers to.
    pub steps: Vec<(Ident, Step)>,
    /// Purchase amounts in cents, by identity and day.
    pub purchases: Vec<((Ident, Day), i64)>,
    /// Spend amounts in cents, by day and channel.
    pub spend: Vec<((Day, ChannelId), i64)>,
    /// The clock moved: `(previous, new)` largest event time (none once erasure took every
    /// event away).
    pub clock: Option<(Option<i64>, Option<i64>)>,
    /// The clock of rules and alerts moved: `(previous, new)`. It is the event clock, or in
    /// `serve` the later of the event clock and the wall clock.
    pub now: Option<(Option<i64>, Option<i64>)>,
    /// The earliest accepted event time moved: `(previous, new)`.
    pub earliest: Option<(Option<i64>, Option<i64>)>,
    /// Rule triggers, by the identity of their event.
    pub triggers: Vec<(Ident, Trigger)>,
    /// Changes to rule cancel and goal marks, by where they meet triggers.
    pub marks: Vec<((Scope<Ident>, Mark), isize)>,
    /// Purchases with their time and cents, for rules that read revenue.
    pub paid: Vec<(Ident, (i64, i64))>,
    /// Changes to the earliest active event time of each identity and day, for rules that read
    /// active days.
    pub day_firsts: Vec<DayFirstChange>,
    /// Live use: `(identity, hour)` facts retired beyond the horizon (see `ingest::retire`).
    pub hours_gone: Vec<(Ident, Hour)>,
    /// Live use: ratio facts retired beyond the horizon.
    pub named_gone: Vec<(Ident, (Day, NameId))>,
    /// Live use: funnel steps retired beyond the horizon.
    pub steps_gone: Vec<(Ident, Step)>,
    /// Live use: the sealed day moved, `(previous, new)`: rows of days before it are final.
    pub seal: Option<(Option<Day>, Day)>,
    /// Final rows read back from a checkpoint (only in the batch that restores one).
    pub frozen: Vec<(Key, Value)>,
    /// Erasure of a person (see `ingest::erase`): identities, links, triggers and purchases
    /// taken back (their other facts go through the fields above, with negative changes).
    pub idents_gone: Vec<Ident>,
    pub edges_gone: Vec<(Ident, Ident)>,
    pub triggers_gone: Vec<(Ident, Trigger)>,
    pub paid_gone: Vec<(Ident, (i64, i64))>,
    /// Firings that stay in the campaign rows under no identity: those of erased persons that
    /// had been sent, and retired ones (`ingest::retire_rules`, one per day of release).
    pub sent_firings: Vec<(SentFiring, isize)>,
    /// Changes to retired firings that later triggers' caps still count.
    pub cap_firings: Vec<((Ident, CapFiring), isize)>,
    /// In a cluster that serves rows at every process: what the rows of this batch stand
    /// beside (channel names, ingest's counts), sent to every process. No fact.
    pub notes: Vec<crate::engine::Note>,
}

impl FactBatch {
    /// True when the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.idents.is_empty()
            && self.edges.is_empty()
            && self.hours.is_empty()
            && self.firsts.is_empty()
            && self.named.is_empty()
            && self.steps.is_empty()
            && self.purchases.is_empty()
            && self.spend.is_empty()
            && self.clock.is_none()
            && self.now.is_none()
            && self.earliest.is_none()
            && self.triggers.is_empty()
            && self.marks.is_empty()
            && self.paid.is_empty()
            && self.day_firsts.is_empty()
            && self.hours_gone.is_empty()
            && self.named_gone.is_empty()
            && self.steps_gone.is_empty()
            && self.seal.is_none()
            && self.frozen.is_empty()
            && self.idents_gone.is_empty()
            && self.edges_gone.is_empty()
            && self.triggers_gone.is_empty()
            && self.paid_gone.is_empty()
            && self.sent_firings.is_empty()
            && self.cap_firings.is_empty()
    }
}
