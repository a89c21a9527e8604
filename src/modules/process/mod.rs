//! `Process` isolation (P2.9, P7.4): a native module in a child process.
//!
//! - `ProcessRuntime`: the runtime: a child per loaded instance.
//! - `wire`: the frames (postcard in a length-delimited codec).
//! - `client`: the server's side: spawn, multiplex, timeouts, 502/504.
//! - [`child`]: `troupe module-host`, the child's side.
//! - `services`: the host API the child's calls reach (counters go to
//!   the metrics actor).

pub mod child;
pub(crate) mod client;
mod instance;
pub(crate) mod services;
pub(crate) mod wire;

use std::{path::Path, sync::Arc};

use super::{
    entry::ModuleEntry,
    instance::Hooks,
    native,
    runtime::{LoadCx, Loaded, Refused, Runtime, no_outbound},
};
use crate::{config::schema::ModuleSpec, handler::BoxFuture};
use client::{Client, Spawn};

/// The runtime of `source: Native(..), isolation: Process` modules.
pub(crate) struct ProcessRuntime;

impl Runtime for ProcessRuntime {
    fn file_word(&self) -> &'static str {
        "library"
    }

    fn check(&self, spec: &ModuleSpec, _file: &Path) -> Result<Option<Hooks>, Refused> {
        no_outbound(spec)?;
        Ok(None)
    }

    fn probe(&self, entry: &ModuleEntry) -> Result<Hooks, String> {
        native::probe(&entry.path)
    }

    fn load(
        &self,
        entry: Arc<ModuleEntry>,
        cx: LoadCx,
    ) -> BoxFuture<'static, Result<Loaded, String>> {
        Box::pin(async move {
            let client = Client::spawn(Spawn {
                exe: &cx.module_host,
                library: &entry.path,
                module: &entry.name,
                config: &entry.config,
                timeout: entry.spec.timeout,
                services: cx.child_services,
                failures: cx.failures,
            })
            .await
            .map_err(|e| format!("{}: {e}", entry.path.display()))?;
            Ok(Loaded {
                instance: Arc::new(client),
                read_file: true,
            })
        })
    }
}
