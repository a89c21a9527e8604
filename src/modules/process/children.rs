//! [`Children`]: a `Process` module's instance, an active child and a
//! spare.
//!
//! The spare is started and initialised in the background and then waits,
//! idle. When the active child fails (it died, a call timed out, a hook
//! failed in a way that calls for a restart), the next request promotes
//! the spare, atomically, and is served by it without waiting for a new
//! process. The failure is still reported, so the plugin host restarts the
//! module with its backoff and restart budget: that restart (a load with
//! `reload` false) takes this instance over, the spare now active, and
//! starts a new spare. So the backoff applies to refilling the spare, and
//! a module that keeps crashing still runs out of restarts and answers 503.
//! A reload (or a config change) starts a new instance with two new
//! children; this one shuts its children down when its last request ends.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use arc_swap::{ArcSwap, Guard};
use troupe_actors::Failures;

use super::client::{Client, Limits, Spawn};
use crate::modules::{hostapi::Services, instance::Hooks};

/// What each child of the module is started with.
pub(crate) struct Recipe {
    /// The executable run as `troupe module-host`.
    pub exe: PathBuf,
    /// The module library.
    pub library: PathBuf,
    /// The module's name.
    pub module: Arc<str>,
    /// Its config text.
    pub config: String,
    /// Longest a call may take.
    pub timeout: Duration,
    /// Where the children's host-API calls go.
    pub services: Arc<dyn Services>,
    /// Their memory limit and priority.
    pub limits: Limits,
    /// Whether to keep a spare.
    pub spare: bool,
}

impl Recipe {
    async fn spawn(&self, failures: Failures) -> Result<Client, String> {
        Client::spawn(Spawn {
            exe: &self.exe,
            library: &self.library,
            module: &self.module,
            config: &self.config,
            timeout: self.timeout,
            services: self.services.clone(),
            failures,
            limits: self.limits,
        })
        .await
    }
}

/// The spare child, if any.
enum Spare {
    /// None, and none being started.
    Empty,
    /// One is being started.
    Starting,
    /// Initialised and idle.
    Ready(Arc<Client>),
}

/// A `Process` module's instance: the child serving it, and a spare.
pub(crate) struct Children {
    recipe: Arc<Recipe>,
    active: ArcSwap<Client>,
    /// Also serializes promotions.
    spare: Mutex<Spare>,
    /// Where the failures of the children go: the plugin host's sink for
    /// the instance that owns them now.
    failures: Mutex<Failures>,
    hooks: Hooks,
    me: Weak<Children>,
}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Children")
            .field("module", &self.recipe.module)
            .field("active", &self.active.load().pid())
            .finish_non_exhaustive()
    }
}

impl Children {
    /// Starts the active child (waiting for its `init`), then a spare in
    /// the background.
    pub(crate) async fn start(recipe: Recipe, failures: Failures) -> Result<Arc<Self>, String> {
        let active = recipe.spawn(failures.clone()).await?;
        let children = Arc::new_cyclic(|me| Self {
            recipe: Arc::new(recipe),
            hooks: active.hooks(),
            active: ArcSwap::from_pointee(active),
            spare: Mutex::new(Spare::Empty),
            failures: Mutex::new(failures),
            me: me.clone(),
        });
        children.refill();
        Ok(children)
    }

    /// A restart of the module (the plugin host's load after a failure):
    /// the children go on, reporting to the new instance's `failures`;
    /// the failed active child is replaced by the spare, or by a new child
    /// if there is no spare ready, and a new spare is started.
    pub(crate) async fn restart(self: Arc<Self>, failures: Failures) -> Result<Arc<Self>, String> {
        {
            let spare = self.lock_spare();
            *self.failures.lock().unwrap_or_else(|e| e.into_inner()) = failures.clone();
            // A failed child keeps reporting (if at all) to the instance
            // it failed in, which ignores it now.
            let active = self.active.load();
            if !active.failed() {
                active.rebind(failures.clone());
            }
            if let Spare::Ready(c) = &*spare {
                c.rebind(failures.clone());
            }
        }
        self.promote();
        if self.active.load().failed() {
            let fresh = Arc::new(self.recipe.spawn(failures).await?);
            let mut spare = self.lock_spare();
            if self.active.load().failed() {
                tracing::info!(module = %self.recipe.module, pid = fresh.pid(), "module process started");
                self.active.store(fresh);
            } else if matches!(*spare, Spare::Empty) {
                // A spare that was starting took over meanwhile.
                *spare = Spare::Ready(fresh);
            }
        }
        self.refill();
        Ok(self)
    }

    /// The module's name.
    pub(crate) fn module(&self) -> &Arc<str> {
        &self.recipe.module
    }

    /// The child to call: the active one, or the spare if the active one
    /// has failed (it then becomes the active one).
    pub(crate) fn current(&self) -> Guard<Arc<Client>> {
        let active = self.active.load();
        if !active.failed() {
            return active;
        }
        drop(active);
        self.promote();
        self.active.load()
    }

    /// The hooks the module offers.
    pub(crate) fn hooks(&self) -> Hooks {
        self.hooks
    }

    fn lock_spare(&self) -> std::sync::MutexGuard<'_, Spare> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces a failed active child with a ready spare.
    fn promote(&self) {
        let mut spare = self.lock_spare();
        // Checked under the lock: another request may have promoted it.
        if !self.active.load().failed() {
            return;
        }
        let Spare::Ready(ready) = &*spare else {
            return;
        };
        if ready.failed() {
            // The idle spare died too; its report restarts the module.
            *spare = Spare::Empty;
            return;
        }
        let failed = self.active.swap(ready.clone());
        tracing::info!(
            module = %self.recipe.module,
            pid = ready.pid(),
            failed = failed.pid(),
            "the spare module process took over"
        );
        *spare = Spare::Empty;
        // `failed` is dropped here or when its last call ends: a child
        // still running is told to finish and exit.
    }

    /// Starts a spare in the background, unless there is one (or the
    /// module runs without).
    fn refill(&self) {
        if !self.recipe.spare {
            return;
        }
        {
            let mut spare = self.lock_spare();
            match &*spare {
                Spare::Ready(c) if !c.failed() => return,
                Spare::Starting => return,
                _ => *spare = Spare::Starting,
            }
        }
        let (me, recipe) = (self.me.clone(), self.recipe.clone());
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tokio::spawn(async move {
            let started = recipe.spawn(failures).await;
            // The instance is gone (retired, replaced): so is the child,
            // dropped here, which tells it to exit.
            let Some(children) = me.upgrade() else { return };
            let mut spare = children.lock_spare();
            match started {
                Ok(child) => {
                    // Restarted meanwhile: report to the instance of now.
                    child.rebind(
                        children
                            .failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone(),
                    );
                    tracing::info!(module = %recipe.module, pid = child.pid(), "spare module process ready");
                    *spare = Spare::Ready(Arc::new(child));
                }
                Err(why) => {
                    // The module serves on; the next restart tries again.
                    tracing::warn!(module = %recipe.module, %why, "cannot start a spare module process");
                    *spare = Spare::Empty;
                }
            }
        });
    }
}
