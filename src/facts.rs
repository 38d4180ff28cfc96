//! The compact facts that ingest derives from accepted events: the dataflow's input vocabulary.

use serde::{Deserialize, Serialize};

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
    pub id: String,
    pub name: NameId,
}

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
    /// The clock moved: `(previous, new)` largest event time.
    pub clock: Option<(Option<i64>, i64)>,
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
    }
}
