//! The output side: row changes as typed messages for subscribers, and (inside the crate) the
//! current rows, deltas between states and the snapshot document.

#[cfg(feature = "internals")]
pub mod actions;
#[cfg(not(feature = "internals"))]
pub(crate) mod actions;
#[cfg(feature = "internals")]
pub mod explain;
#[cfg(not(feature = "internals"))]
pub(crate) mod explain;
mod hub;
mod identities;
mod message;
mod snapshot;
mod state;
mod subscription;
mod table;

pub use crate::metric::Metric;
pub use actions::ActionEvent;
pub use hub::{Feed, Filter, HubStats, SLOW_SUBSCRIBER};
pub use message::{Upsert, WireMessage};
pub use subscription::Subscription;

#[cfg(feature = "internals")]
pub use {
    hub::Hub,
    identities::IdentityIndex,
    snapshot::{snapshot_json, sorted_rows, SnapshotMeta},
    state::{ActionChanges, FiringKey, Output},
    table::{Change, Delta, Table, Versioned},
};
#[cfg(not(feature = "internals"))]
pub(crate) use {
    hub::Hub,
    identities::IdentityIndex,
    snapshot::{snapshot_json, sorted_rows, SnapshotMeta},
    state::{ActionChanges, FiringKey, Output},
    table::{Change, Delta, Table, Versioned},
};
