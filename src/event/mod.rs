//! The event model at the edge: what an accepted event is, and why a rejected one was refused.

mod amount;
pub mod batch;
mod dead_letter;
mod parse;
#[cfg(test)]
mod proptests;
pub mod pseudonym;
mod wire;

pub use amount::{format_cents, parse_amount, AmountError, MAX_CENTS};
pub use dead_letter::DeadLetters;
pub use parse::{parse_event, Limits};

use std::borrow::Cow;

/// Largest accepted event object, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Why an input line was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Reason {
    /// The line is not one JSON object.
    MalformedJson,
    /// The bytes are not UTF-8.
    BadEncoding,
    /// A required field is missing.
    MissingField,
    /// A field has the wrong JSON type.
    BadType,
    /// `ts` is not a timestamp EVENTS.md accepts.
    BadTimestamp,
    /// `props.amount` is not an amount EVENTS.md accepts.
    BadAmount,
    /// The event is larger than the limit.
    TooLarge,
    /// The event names no identity.
    NoIdentity,
    /// Live use only: stamped further ahead of the wall clock than `serve.max_future`.
    FutureTimestamp,
    /// Live use only: stamped earlier than the event clock minus `serve.horizon`.
    BeyondHorizon,
}

impl Reason {
    /// Every reason, in a fixed order.
    pub const ALL: [Reason; 10] = [
        Reason::MalformedJson,
        Reason::BadEncoding,
        Reason::MissingField,
        Reason::BadType,
        Reason::BadTimestamp,
        Reason::BadAmount,
        Reason::TooLarge,
        Reason::NoIdentity,
        Reason::FutureTimestamp,
        Reason::BeyondHorizon,
    ];

    /// The reason's name as it appears in counts and dead-letter records.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedJson => "malformed_json",
            Reason::BadEncoding => "bad_encoding",
            Reason::MissingField => "missing_field",
            Reason::BadType => "bad_type",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadAmount => "bad_amount",
            Reason::TooLarge => "too_large",
            Reason::NoIdentity => "no_identity",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::BeyondHorizon => "beyond_horizon",
        }
    }
}

/// A rejection: the reason class and a sentence for the operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rejection {
    /// The reason's class, as counted.
    pub reason: Reason,
    /// What was wrong and what to do about it.
    pub detail: String,
}

impl Rejection {
    /// A rejection for `reason`, explained by `detail`.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }

    /// The dead-letter record of this rejection: input `index` (1-based) of `source`.
    pub fn dead_letter<'a>(&'a self, source: &'a str, index: u64, input: &'a str) -> DeadLetter<'a> {
        DeadLetter {
            source,
            index,
            reason: self.reason.as_str(),
            detail: &self.detail,
            input,
        }
    }
}

/// A rejected input kept for the operator: where it came from, why, and the text itself; it
/// serialises as one line of a dead-letter file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeadLetter<'a> {
    /// Where the input came from (a file name, `http`, `mqtt`).
    pub source: &'a str,
    /// The input's place in its source, from 1.
    pub index: u64,
    /// The reason's name.
    pub reason: &'static str,
    /// What was wrong.
    pub detail: &'a str,
    /// The input as it came (lossily decoded when it was not UTF-8).
    pub input: &'a str,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

/// A validated event, borrowing from the input text where it can.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub id: Cow<'a, str>,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    pub name: Cow<'a, str>,
    /// Identities `(type, value)` this event carries; "unknown" values are already removed.
    pub ids: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub channel: Option<Cow<'a, str>>,
    /// `props.amount` in cents, `0..=MAX_CENTS`.
    pub amount: Option<i64>,
    /// Props that rules compare, as text (a string is itself, a number its JSON text); only
    /// the keys some rule names are kept.
    pub props: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl Event<'_> {
    /// The text of a kept props value.
    pub fn prop(&self, key: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }
}
