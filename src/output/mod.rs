//! The output side: current metric rows, deltas between states, and the snapshot document.

pub mod actions;
pub mod explain;
mod hub;
mod identities;
mod message;
mod snapshot;
mod state;
mod table;

pub use hub::{Feed, Filter, Hub, HubStats, SLOW_SUBSCRIBER};
pub use identities::IdentityIndex;
pub use message::{Upsert, WireMessage};
pub use snapshot::{snapshot_json, sorted_rows, SnapshotMeta};
pub use state::{ActionChanges, FiringKey, Output, SUBSCRIBER_QUEUE};
pub use table::{Change, Delta, Table, Versioned};
