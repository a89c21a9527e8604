//! [`Hosted`]: one module as its plugin-host actor drives it
//! ([`troupe_actors::ModuleHost`]): load an instance through the module's
//! runtime, publish it, retire it. Nothing here knows any one runtime.

use std::{path::PathBuf, sync::Arc};

use troupe_actors::{BoxFuture, Failures, ModuleHost, RestartPolicy, Retired};

use super::{
    entry::{FileStamp, ModuleEntry},
    hostapi::{LocalServices, Services},
    runtime::{LoadCx, Memo},
    slot::Published,
};

/// What every module host shares.
pub struct Env {
    /// The host API's services: one store and one set of counters.
    pub services: Arc<LocalServices>,
    /// The same, as out-of-process module hosts reach them.
    pub child_services: Arc<dyn Services>,
    /// The executable run as `module-host` for `Process` modules.
    pub module_host: PathBuf,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("module_host", &self.module_host)
            .finish_non_exhaustive()
    }
}

/// One module and the environment it runs in.
#[derive(Debug)]
pub struct Hosted {
    entry: Arc<ModuleEntry>,
    env: Arc<Env>,
    /// What the module's runtime keeps between its loads.
    memo: Memo,
}

impl Hosted {
    /// The host of `entry`.
    pub fn new(entry: Arc<ModuleEntry>, env: Arc<Env>) -> Self {
        Self {
            entry,
            env,
            memo: Memo::default(),
        }
    }
}

impl ModuleHost for Hosted {
    fn name(&self) -> &str {
        &self.entry.name
    }

    fn policy(&self) -> RestartPolicy {
        self.entry.policy
    }

    fn load(&self, failures: Failures, reload: bool) -> BoxFuture<'static, Result<(), String>> {
        let entry = self.entry.clone();
        let services = self.env.services.clone();
        let cx = LoadCx {
            failures,
            reload,
            services: self.env.services.clone() as Arc<dyn Services>,
            child_services: self.env.child_services.clone(),
            module_host: self.env.module_host.clone(),
            memo: self.memo.clone(),
        };
        // Where the module is declared, so a refused reload points at it.
        let at = entry.declared_at.clone();
        let located = move |e: String| {
            if at.is_empty() {
                e
            } else {
                format!("{at}: {e}")
            }
        };
        Box::pin(async move {
            // A load that is not the first and not asked for is a restart.
            if !reload
                && entry.slot.loads() > 0
                && let Some(m) = entry.slot.metrics()
            {
                m.restarts.inc();
            }
            // Taken before the file is read, so an edit during the load
            // counts as a change next time.
            let stamp = FileStamp::of(&entry.path);
            // Before the instance can write: its share of the store is
            // the one its config gives now.
            services.set_kv_quota(&entry.name, entry.spec.kv);
            let runtime = entry.runtime.runtime().map_err(&located)?;
            let loaded = runtime.load(entry.clone(), cx).await.map_err(&located)?;
            entry.slot.publish(loaded.instance);
            tracing::info!(module = %entry.name, runtime = ?entry.runtime, "module loaded");
            let mut from = entry.loaded_from.lock().unwrap_or_else(|e| e.into_inner());
            if loaded.read_file || from.is_none() {
                *from = stamp;
            }
            Ok(())
        })
    }

    fn superseded(&self) {
        self.entry.slot.supersede();
    }

    fn retire(&self, why: Retired) {
        self.entry.slot.retire(match why {
            Retired::Failed(reason) => Published::Failed(reason),
            Retired::Stopped => Published::Stopped,
        });
    }
}
