//! tidemark: exact, live, self-correcting growth metrics on timely and differential dataflow.

pub mod config;
pub mod console;
pub mod dataflow;
pub mod durable;
pub mod engine;
pub mod event;
pub mod facts;
pub mod gen;
pub mod ingest;
pub mod io;
pub mod live;
pub mod metric;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod server;
pub mod store;
pub mod time;
