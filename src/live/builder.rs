//! How an [`Engine`] is made: a configuration, then workers, a data directory and a sink for
//! the rules' actions, each optional.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Engine, EngineError, EngineOptions};
use crate::config::Config;
use crate::io::actions::ActionSink;
use crate::output::ActionEvent;
use crate::plan::Plan;

/// Makes an [`Engine`]; see [`Engine::builder`].
#[must_use = "a builder does nothing until `start`"]
pub struct EngineBuilder {
    config: Config,
    workers: usize,
    data_dir: Option<PathBuf>,
    options: Option<EngineOptions>,
    actions: Option<ActionSink>,
    data: Option<crate::durable::DataDir>,
}

impl EngineBuilder {
    pub(super) fn new(config: Config) -> Self {
        EngineBuilder {
            config,
            workers: 1,
            data_dir: None,
            options: None,
            actions: None,
            data: None,
        }
    }

    /// Dataflow worker threads (default 1).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Keeps every accepted event in `dir` before answering: a restart on the same directory
    /// reads it back and answers exactly as before the stop. The directory is created when
    /// missing, and one engine at a time may use it.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Options beyond the configuration's `[serve]` section (the server sets its own).
    pub(crate) fn options(mut self, options: EngineOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Where firings and alert transitions go (the server's webhook and MQTT actions).
    pub(crate) fn actions(mut self, sink: Option<ActionSink>) -> Self {
        self.actions = sink;
        self
    }

    /// Sends every firing, retraction and alert transition to `tx` once it is decided, for
    /// every rule and alert (with or without configured actions): the messages the server
    /// hands to actions, in decision order. Persons held out (`holdout`) get no message; a
    /// retraction takes back a firing whose trigger was cancelled late. Each message carries
    /// an `id` that stays the same for the same decision; after a restart on a data directory
    /// one may come again, so a receiver that acts on them dedupes on `(id, kind)` (the
    /// server's delivery log does that for its targets).
    pub fn actions_to(mut self, tx: tokio::sync::mpsc::UnboundedSender<ActionEvent>) -> Self {
        self.actions = Some(ActionSink::channel(tx));
        self
    }

    /// A data directory already opened (the server opens it first, to check its lock early).
    pub(crate) fn data(mut self, data: Option<crate::durable::DataDir>) -> Self {
        self.data = data;
        self
    }

    /// Starts the engine's thread and its dataflow workers, after reading the data directory
    /// back when there is one. Call inside a Tokio runtime when rules send webhooks.
    pub fn start(self) -> Result<Engine, EngineError> {
        let options = match self.options {
            Some(o) => o,
            None => {
                let mut o = EngineOptions::from_config(&self.config.serve, self.workers);
                if let Some(dir) = &self.data_dir {
                    o.identity_key = crate::server::identity_key(&self.config.serve, dir)?;
                }
                o
            }
        };
        let data = match (self.data, &self.data_dir) {
            (Some(d), _) => Some(d),
            (None, Some(dir)) => Some(crate::durable::DataDir::open(dir, &self.config)?),
            (None, None) => None,
        };
        Engine::start(Arc::new(Plan::new(self.config)), options, self.actions, data)
    }
}
