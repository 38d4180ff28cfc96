//! The integration tests of tidemark, one module per area, built as one test binary
//! (`cargo test --release --test integration`); `common` and `mqtt_support` are their shared parts.

mod common;
mod mqtt_support;

mod actions;
mod alerts;
mod browser;
mod cli;
mod cluster;
mod crash;
mod durable;
mod engine;
mod erase;
mod examples;
mod explain;
mod future;
mod golden;
mod horizon;
mod hostile;
mod hub;
mod identity;
mod library;
mod money;
mod mqtt;
mod properties;
mod readme;
mod replay;
mod serve;
mod split;
mod wal;
