//! [`ModuleEntry`]: one module as the config declares it, with the slot
//! its routes read, and the [`FileStamp`] that tells when its file changed.

use std::{path::PathBuf, sync::Arc};

use super::{instance::Hooks, kind::RuntimeKind, slot::Slot};
use crate::config::schema::ModuleSpec;

/// A module as the config declares it, with the slot its routes read.
#[derive(Debug)]
pub struct ModuleEntry {
    /// Its name, as routes use it.
    pub name: String,
    /// What runs it.
    pub runtime: RuntimeKind,
    /// The library or script, resolved against the config's directory.
    pub path: PathBuf,
    /// Its config text.
    pub config: String,
    /// Its declaration as written: each runtime reads its own settings
    /// (limits, timeouts) from it.
    pub spec: ModuleSpec,
    /// Its hooks, when its runtime could tell without loading it.
    pub hooks: Option<Hooks>,
    /// Its restart budget.
    pub policy: troupe_actors::RestartPolicy,
    /// Reload the config when its file changes.
    pub watch: bool,
    /// Where its instance is published.
    pub slot: Arc<Slot>,
    /// Where it is declared in the config file (`file:line:col`), for errors.
    pub declared_at: String,
    /// The file as it was when the running instance was loaded from it.
    pub loaded_from: std::sync::Mutex<Option<FileStamp>>,
}

/// What tells a changed file from the one loaded: its modification time
/// and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
}

impl FileStamp {
    /// The stamp of `path` now, if it can be read.
    pub fn of(path: &std::path::Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

impl ModuleEntry {
    /// Whether the file differs from the one the running instance was
    /// loaded from (a file that cannot be read counts as unchanged: a
    /// reload would only fail).
    pub fn changed_on_disk(&self) -> bool {
        let Some(now) = FileStamp::of(&self.path) else {
            return false;
        };
        let loaded = *self.loaded_from.lock().unwrap_or_else(|e| e.into_inner());
        loaded != Some(now)
    }
}
