//! [`Generation`]: one config generation, everything the request path and
//! the admin API read, published with one store.
//!
//! A config compiles into one immutable `Generation`: its routes, its
//! connection settings, the parsed file and its modules (each with the
//! slot its routes read). The router actor swaps the published
//! `Arc<Generation>` whole, so a request, a new connection and the admin
//! API always see the parts of one generation together: `/routes` and
//! `/config` never disagree, and a module looked up by name is the one
//! the routes call. A request loads it once and keeps it to its end.

use std::{path::PathBuf, sync::Arc};

use crate::{
    config::{Config, Loaded},
    conn::settings::ConnConfig,
    modules::ModuleEntry,
    pipeline::snapshot::Snapshot,
};

/// One compiled config, as published.
#[derive(Debug)]
pub struct Generation {
    /// The routes and per-request limits: what the request path reads.
    pub snapshot: Snapshot,
    /// The connection settings; a connection keeps the ones it started with.
    pub conn: Arc<ConnConfig>,
    /// The parsed file.
    pub config: Config,
    /// Its modules, each with the slot its routes read.
    pub modules: Vec<Arc<ModuleEntry>>,
    /// The file it came from.
    pub path: PathBuf,
    /// The directory relative paths start at.
    pub base: PathBuf,
}

impl Generation {
    /// The generation a checked config makes (its admin section and the
    /// uses of its modules are the caller's).
    pub fn new(loaded: Loaded) -> Self {
        let Loaded {
            config,
            snapshot,
            modules,
            path,
            base,
            admin: _,
            uses: _,
        } = loaded;
        Self {
            snapshot,
            conn: Arc::new(ConnConfig::new(&config.limits)),
            config,
            modules,
            path,
            base,
        }
    }

    /// The module called `name`.
    pub fn module(&self, name: &str) -> Option<&Arc<ModuleEntry>> {
        self.modules.iter().find(|m| m.name == name)
    }
}
