//! tidemark: exact, live, self-correcting growth metrics on timely and differential dataflow.
//!
//! tidemark keeps growth metrics (DAU/WAU/MAU, new users, retention, funnels, acquisition cost
//! and revenue, conversion ratios) exact while events stream in. A late event, a duplicate or
//! an identity merge corrects every row it touches, and every change reaches subscribers.
//!
//! # Two ways to run it
//!
//! - [`Engine`] is the live service: a thread owns the dataflow, and a cloneable async handle
//!   ingests events, answers reads once they reflect every event accepted before them, and
//!   streams row changes to subscribers. `tidemark serve` is an [`Engine`] behind HTTP, SSE,
//!   WebSocket and MQTT.
//! - [`Pipeline`] drives the same dataflow on the caller's thread, line by line, for a whole log
//!   read at once. `tidemark compute` is a [`Pipeline`] over a file.
//!
//! Both take a [`Config`](config::Config): the TOML of `tidemark compute --config`, parsed by
//! [`Config::from_toml`](config::Config::from_toml).
//!
//! # From `ingest` to a subscriber
//!
//! An event is one JSON object (EVENTS.md). [`Engine::ingest`] checks it at the edge: a
//! malformed or impossible event is rejected with a reason in the answer and goes no further;
//! an event whose id was seen before is counted as a duplicate. An accepted event joins a
//! batch, the batch goes to the dataflow workers, and the workers update every metric the event
//! touches. Each changed row leaves the dataflow as an [`Upsert`](output::Upsert) (its new and
//! previous value), and a progress mark follows once every change up to a time has been sent.
//!
//! ```
//! use futures_util::StreamExt;
//! use tidemark::config::Config;
//! use tidemark::output::{Feed, Filter};
//! use tidemark::Engine;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::builder(Config::from_toml("").unwrap()).start().unwrap();
//! let mut dau = engine.subscribe(Filter::metrics(["dau"])).await.unwrap();
//! assert!(matches!(dau.next().await, Some(Feed::Progress(_)))); // no rows yet
//!
//! let answer = engine
//!     .ingest(vec![r#"{"id":"e1","ts":"2026-03-02T09:00:00Z","event":"page_view","ids":{"openid":"o-1"}}"#.into()])
//!     .await
//!     .unwrap();
//! assert_eq!(answer.accepted, 1);
//!
//! // The change of DAU on 2026-03-02, then the progress mark that covers it.
//! let Some(Feed::Upsert(row)) = dau.next().await else { panic!("an upsert comes first") };
//! assert_eq!((row.metric.name(), row.value.as_ref().and_then(|v| v.as_i64())), ("dau", Some(1)));
//! engine.shutdown().await.unwrap();
//! # });
//! ```
//!
//! # Features
//!
//! `cli` (default) builds the `tidemark` command and what only it needs: the event-log
//! generator ([`gen`]), the load-test client ([`replay`]) and the demo source ([`demo`]).
//! With `default-features = false` the library is the engine, its server and its sinks.

// The internals feature makes the engine's inside public for tidemark's own tests; the API
// (a build without it, as CI lints it) documents every public item.
#![cfg_attr(feature = "internals", allow(missing_docs))]

pub mod config;
pub mod console;
pub mod output;
pub mod server;

#[cfg(feature = "cli")]
pub mod gen;
#[cfg(feature = "cli")]
pub use io::{demo, replay};

pub use engine::Cluster;
pub use event::{Reason, Rejection};
pub use ingest::{Counts, Erased, Outcome};
pub use live::{
    Engine, EngineBuilder, EngineError, ErasedPerson, Erasure, IngestReport, Pressure, Status,
    Stopped,
};
pub use pipeline::{DataflowError, ReadBack};
pub use pipeline::{Finished, Pipeline, PipelineOptions};
pub use pipeline::{Part, Parts, PartsError, PART_LINES};
pub use store::{repair, DirLock, RepairReport};

/// Declares the modules that are the engine's inside: `pub(crate)`, except with the
/// `internals` feature, which tidemark's own tests and benches turn on to reach them. They are
/// not part of the API.
macro_rules! internal {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        pub(crate) mod $name;
    )*};
}

internal!(
    dataflow, durable, engine, event, facts, ingest, io, live, metric, pipeline, plan, profile,
    store, time
);
