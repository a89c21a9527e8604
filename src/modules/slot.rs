//! Where a module's current instance is published for the request path.
//!
//! A route holds the module's [`Slot`]; its plugin-host actor stores each
//! new instance there. A request loads the slot once (an `ArcSwap` read,
//! no lock, no mailbox) and calls the instance directly; a restart or
//! reload swaps the slot while requests in flight keep the old instance.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use arc_swap::{ArcSwap, Guard};

use super::instance::Instance;
use crate::error::HttpError;
use crate::observe::metrics::ModuleMetrics;

/// What a module's routes see.
pub enum Published {
    /// Not loaded yet (start-up, or a load that failed and is being retried).
    Loading,
    /// Serving.
    Ready(Arc<dyn Instance>),
    /// Failed too often: 503 until it recovers or is reloaded.
    Failed(String),
    /// The server is stopping.
    Stopped,
    /// Turned off by the operator: 503 until enabled. Keeps what was
    /// published meanwhile, to put back on enable.
    Disabled(Arc<Published>),
}

/// One module's published state.
pub struct Slot {
    name: Arc<str>,
    state: ArcSwap<Published>,
    loads: AtomicU64,
    /// A config reload gave the module another slot (its declaration or
    /// file changed) or removed it: nothing new is published here, and
    /// what outlives a request on this slot (a WebSocket) must move on.
    superseded: AtomicBool,
    /// Its series, set once the server's registry exists.
    metrics: std::sync::OnceLock<ModuleMetrics>,
    /// Serializes the writers (the host, enable/disable) so a publish
    /// cannot undo a disable; requests only read `state`.
    writers: Mutex<()>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("name", &self.name)
            .field("status", &self.status())
            .finish()
    }
}

impl Slot {
    /// An empty slot for the module `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            state: ArcSwap::from_pointee(Published::Loading),
            loads: AtomicU64::new(0),
            superseded: AtomicBool::new(false),
            metrics: std::sync::OnceLock::new(),
            writers: Mutex::new(()),
        }
    }

    /// The slot of a module that a config reload changed: it counts on
    /// from `old`'s instances (so the generation keeps rising) and starts
    /// disabled if `old` was.
    pub fn after(old: &Slot) -> Self {
        let slot = Self::new(&old.name);
        slot.loads.store(old.loads(), Ordering::Relaxed);
        if matches!(**old.state.load(), Published::Disabled(_)) {
            slot.disable();
        }
        slot
    }

    /// The module's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The current state, for one request.
    pub fn load(&self) -> Guard<Arc<Published>> {
        self.state.load()
    }

    /// Gives the slot its series (the server does, at start-up).
    pub fn set_metrics(&self, metrics: ModuleMetrics) {
        metrics.generation.set(self.loads() as i64);
        let _ = self.metrics.set(metrics);
    }

    /// Its series, once set.
    pub fn metrics(&self) -> Option<&ModuleMetrics> {
        self.metrics.get()
    }

    /// Publishes a new instance (kept aside while the module is disabled).
    pub fn publish(&self, instance: Arc<dyn Instance>) {
        let loads = self.loads.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(m) = self.metrics.get() {
            m.generation.set(loads as i64);
        }
        self.store(Published::Ready(instance));
    }

    /// Replaces the instance with a state that answers 503.
    pub fn retire(&self, state: Published) {
        self.store(state);
    }

    fn store(&self, state: Published) {
        let _writing = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let state = match &**self.state.load() {
            Published::Disabled(_) => Published::Disabled(Arc::new(state)),
            _ => state,
        };
        self.state.store(Arc::new(state));
    }

    /// Turns the module off: its routes answer 503 until [`Slot::enable`].
    /// Returns false if it was already off.
    pub fn disable(&self) -> bool {
        let _writing = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.state.load_full();
        if matches!(*now, Published::Disabled(_)) {
            return false;
        }
        self.state.store(Arc::new(Published::Disabled(now)));
        true
    }

    /// Turns the module back on with what its host last published.
    /// Returns false if it was not off.
    pub fn enable(&self) -> bool {
        let _writing = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let Published::Disabled(kept) = &**self.state.load() else {
            return false;
        };
        self.state.store(kept.clone());
        true
    }

    /// Instances loaded so far: the first, then one per restart or reload.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Marks the slot as left behind by a config reload (see
    /// [`Slot::superseded`]). What it publishes stays: requests that
    /// loaded the old generation still finish on its instance.
    pub fn supersede(&self) {
        self.superseded.store(true, Ordering::Relaxed);
    }

    /// Whether a config reload has given the module another slot, or
    /// removed it.
    pub fn superseded(&self) -> bool {
        self.superseded.load(Ordering::Relaxed)
    }

    /// A word for the state: `loading`, `ready`, `failed`, `stopped` or
    /// `disabled`.
    pub fn status(&self) -> &'static str {
        match &**self.state.load() {
            Published::Loading => "loading",
            Published::Ready(_) => "ready",
            Published::Failed(_) => "failed",
            Published::Stopped => "stopped",
            Published::Disabled(_) => "disabled",
        }
    }
}

impl crate::pipeline::routes::CountedModule for Slot {
    fn metrics(&self) -> Option<&ModuleMetrics> {
        self.metrics.get()
    }
}

impl Published {
    /// The instance, or the 503 its routes answer with.
    pub fn instance(&self) -> Result<&Arc<dyn Instance>, HttpError> {
        match self {
            Published::Ready(i) => Ok(i),
            Published::Loading => Err(HttpError::Unavailable("module is starting")),
            Published::Failed(_) => Err(HttpError::Unavailable("module failed")),
            Published::Stopped => Err(HttpError::Unavailable("module stopped")),
            Published::Disabled(_) => Err(HttpError::Unavailable("module disabled")),
        }
    }
}
