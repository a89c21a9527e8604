//! [`Hosted`]: one module as its plugin-host actor drives it
//! ([`troupe_actors::ModuleHost`]): load an instance where the config says
//! it runs, publish it, retire it.

use std::{path::PathBuf, sync::Arc};

use troupe_actors::{BoxFuture, Failures, ModuleHost, RestartPolicy, Retired};

use super::{
    Kind, ModuleEntry,
    hostapi::{LocalServices, Services},
    inprocess::InProcess,
    lua::LuaModule,
    native::{Library, Native},
    process::client::{Client, Spawn},
    slot::Published,
    wasm::WasmModule,
};
use crate::config::schema::Isolation;

/// What every module host shares.
#[derive(Debug)]
pub struct Env {
    /// The host API's services: one store and one set of counters.
    pub services: Arc<LocalServices>,
    /// The executable run as `module-host` for `Process` modules.
    pub module_host: PathBuf,
}

/// One module and the environment it runs in.
#[derive(Debug)]
pub struct Hosted {
    entry: Arc<ModuleEntry>,
    env: Arc<Env>,
    /// The library an `InProcess` module was last loaded from. A restart
    /// initialises a new instance from it; only a reload maps a new copy,
    /// since a Rust library is never unmapped and each copy stays in memory.
    library: Arc<std::sync::Mutex<Option<Arc<Library>>>>,
}

impl Hosted {
    /// The host of `entry`.
    pub fn new(entry: Arc<ModuleEntry>, env: Arc<Env>) -> Self {
        Self {
            entry,
            env,
            library: Arc::default(),
        }
    }
}

/// The library to initialise from: the one loaded before, unless this is
/// a reload (or the first load). Blocking: copies the file and `dlopen`s it.
fn library(
    cache: &std::sync::Mutex<Option<Arc<Library>>>,
    file: &std::path::Path,
    reload: bool,
) -> Result<Arc<Library>, String> {
    let mut cached = cache.lock().map_err(|e| e.to_string())?;
    match &*cached {
        Some(lib) if !reload => Ok(lib.clone()),
        _ => {
            let lib = Arc::new(Library::open(file).map_err(|e| e.to_string())?);
            *cached = Some(lib.clone());
            Ok(lib)
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
        let (entry, env, cache) = (self.entry.clone(), self.env.clone(), self.library.clone());
        let at = self.entry.declared_at.clone();
        // Where the module is declared, so a refused reload points at it.
        let located = move |e: String| {
            if at.is_empty() {
                e
            } else {
                format!("{at}: {e}")
            }
        };
        let load = Box::pin(async move {
            // A load that is not the first and not asked for is a restart.
            if !reload
                && entry.slot.loads() > 0
                && let Some(m) = entry.slot.metrics()
            {
                m.restarts.inc();
            }
            // Taken before the file is read, so an edit during the load
            // counts as a change next time.
            let stamp = super::FileStamp::of(&entry.path);
            let services: Arc<dyn Services> = env.services.clone();
            match (entry.kind, entry.isolation) {
                (Kind::Lua, _) => {
                    let e = entry.clone();
                    // Reads the script and compiles it into a first VM.
                    let module = tokio::task::spawn_blocking(move || LuaModule::new(&e, services))
                        .await
                        .map_err(|e| e.to_string())??;
                    entry.slot.publish(Arc::new(module));
                }
                (Kind::Wasm, _) => {
                    let e = entry.clone();
                    // Compiling a component takes tens of milliseconds.
                    let module = tokio::task::spawn_blocking(move || WasmModule::new(&e, services))
                        .await
                        .map_err(|e| e.to_string())??;
                    entry.slot.publish(Arc::new(module));
                }
                (Kind::Native, Isolation::InProcess) => {
                    let e = entry.clone();
                    // dlopen and init may block: off the runtime's threads.
                    let native = tokio::task::spawn_blocking(move || {
                        let lib = library(&cache, &e.path, reload)?;
                        Native::init(lib, e.slot.name().clone(), &e.config, services)
                            .map_err(|err| format!("{}: {err}", e.path.display()))
                    })
                    .await
                    .map_err(|e| e.to_string())??;
                    entry
                        .slot
                        .publish(Arc::new(InProcess::new(native, failures, entry.blocking)));
                }
                (Kind::Native, Isolation::Process) => {
                    let client = Client::spawn(Spawn {
                        exe: &env.module_host,
                        library: &entry.path,
                        module: &entry.name,
                        config: &entry.config,
                        timeout: entry.timeout,
                        services,
                        failures,
                    })
                    .await
                    .map_err(|e| format!("{}: {e}", entry.path.display()))?;
                    entry.slot.publish(Arc::new(client));
                }
            }
            tracing::info!(module = %entry.name, isolation = ?entry.isolation, "module loaded");
            // An in-process library restarts from the copy already mapped
            // (unless reloading): the file read last is still the one running.
            let reread =
                reload || !(entry.kind == Kind::Native && entry.isolation == Isolation::InProcess);
            let mut loaded = entry.loaded_from.lock().unwrap_or_else(|e| e.into_inner());
            if reread || loaded.is_none() {
                *loaded = stamp;
            }
            Ok(())
        });
        Box::pin(async move { load.await.map_err(located) })
    }

    fn retire(&self, why: Retired) {
        self.entry.slot.retire(match why {
            Retired::Failed(reason) => Published::Failed(reason),
            Retired::Stopped => Published::Stopped,
        });
    }
}
