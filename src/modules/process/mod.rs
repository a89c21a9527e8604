//! `Process` isolation (P2.9, P7.4): a native module in a child process.
//!
//! - `ProcessRuntime`: the runtime: an instance per load, which a restart
//!   takes over (see `children`).
//! - `children`: an instance: the active child and a spare that takes over
//!   at once after a crash.
//! - `wire`: the frames (postcard in a length-delimited codec).
//! - `client`: the server's side of one child: spawn, limits, multiplex,
//!   timeouts, 502/504.
//! - [`child`]: `troupe module-host`, the child's side.
//! - `services`: the host API the child's calls reach (counters go to
//!   the metrics actor).

pub mod child;
mod children;
pub(crate) mod client;
mod instance;
#[cfg(feature = "fuzzing")]
pub(crate) use instance::call_frame;
pub(crate) mod services;
pub(crate) mod wire;

use std::{
    path::Path,
    sync::{Arc, Weak},
};

use super::{
    entry::ModuleEntry,
    instance::Hooks,
    native,
    runtime::{LoadCx, Loaded, Refused, Runtime, no_outbound},
};
use crate::{config::schema::ModuleSpec, handler::BoxFuture};
use children::{Children, Recipe};
use client::Limits;

/// The least `process.memory` a module host starts with (its runtime, its
/// threads' stacks, a frame buffer: a few MiB), with room for a module.
const MIN_MEMORY: u64 = 16 * 1024 * 1024;

/// The runtime of `source: Native(..), isolation: Process` modules.
pub(crate) struct ProcessRuntime;

impl Runtime for ProcessRuntime {
    fn file_word(&self) -> &'static str {
        "library"
    }

    fn check(&self, spec: &ModuleSpec, _file: &Path) -> Result<Option<Hooks>, Refused> {
        no_outbound(spec)?;
        // Lowering a nice value takes privileges the server should not have.
        if !(0..=19).contains(&spec.process.nice) {
            return Err(Refused::name(format!(
                "module `{}`: `process.nice` is {}; expected 0 (the server's priority) to 19 (the lowest)",
                spec.name, spec.process.nice
            )));
        }
        if spec.process.memory != 0 && spec.process.memory < MIN_MEMORY {
            return Err(Refused::name(format!(
                "module `{}`: `process.memory` is {} bytes, too little for the module host to start; expected 0 (no limit) or at least {MIN_MEMORY}",
                spec.name, spec.process.memory
            )));
        }
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
            let located = |e: String| format!("{}: {e}", entry.path.display());
            // A restart takes the running instance over: its spare serves
            // already, and only a new spare is started.
            let running = (!cx.reload)
                .then(|| cx.memo.get::<Weak<Children>>())
                .flatten()
                .and_then(|kept| kept.upgrade());
            if let Some(running) = running {
                let children = running.restart(cx.failures).await.map_err(located)?;
                return Ok(Loaded {
                    instance: children,
                    // The code running is what was read at an earlier load.
                    read_file: false,
                });
            }
            let recipe = Recipe {
                exe: cx.module_host,
                library: entry.path.clone(),
                module: entry.name.as_str().into(),
                config: entry.config.clone(),
                timeout: entry.spec.timeout,
                services: cx.child_services,
                limits: Limits {
                    memory: entry.spec.process.memory,
                    nice: entry.spec.process.nice,
                },
                spare: entry.spec.process.spare,
            };
            let children = Children::start(recipe, cx.failures)
                .await
                .map_err(located)?;
            cx.memo.set(Arc::new(Arc::downgrade(&children)));
            Ok(Loaded {
                instance: children,
                read_file: true,
            })
        })
    }
}
