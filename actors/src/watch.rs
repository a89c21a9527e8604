//! Watching files for the actors that reload on a change (the config
//! actor and the certificate actor): one debounced notify watcher per
//! actor, kept for the actor's life, whose set of files is updated in
//! place after each reload.
//!
//! The watcher is updated rather than replaced because a replaced watcher
//! loses what it saw but had not yet reported: a file written just after a
//! reload (while the old watcher was debouncing it, or before the new one
//! was set up) would never reload. Directories in both sets stay watched
//! throughout.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use notify_debouncer_full::{
    DebounceEventResult, Debouncer, RecommendedCache, new_debouncer,
    notify::{EventKind, RecommendedWatcher, RecursiveMode},
};

/// How long file events settle before a reload: one editor save is
/// several events.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// A watched file, or a directory in which any file counts.
struct Target {
    path: PathBuf,
    is_dir: bool,
}

/// Watches a set of files by their directories, since editors and
/// certificate tools replace a file by renaming a new one over it. Dropping
/// it stops the watch.
pub(crate) struct FileWatch {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    targets: Arc<Mutex<Vec<Target>>>,
    /// The directories watched now.
    dirs: Vec<PathBuf>,
    /// Names the files in warnings ("the config file").
    what: &'static str,
}

impl FileWatch {
    /// Watches `files` (a directory itself when one is listed: any file in
    /// it counts) and calls `changed` with the first changed file of each
    /// debounced batch. `None` when no watcher can be made, which is
    /// logged; SIGHUP and the admin API still work.
    pub(crate) fn new(
        files: &[PathBuf],
        what: &'static str,
        changed: impl Fn(&Path) + Send + 'static,
    ) -> Option<Self> {
        let targets: Arc<Mutex<Vec<Target>>> = Arc::default();
        let seen = targets.clone();
        let handler = move |events: DebounceEventResult| {
            let Ok(events) = events else { return };
            let targets = seen.lock().unwrap_or_else(PoisonError::into_inner);
            let hit = events
                .iter()
                .filter(|e| changes_content(&e.kind))
                .flat_map(|e| e.paths.iter())
                .find(|p| {
                    targets.iter().any(|t| {
                        *p == &t.path || (t.is_dir && p.parent() == Some(t.path.as_path()))
                    })
                })
                .cloned();
            drop(targets);
            if let Some(path) = hit {
                changed(&path);
            }
        };
        let debouncer = match new_debouncer(DEBOUNCE, None, handler) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch {what}; reload with SIGHUP or the admin API");
                return None;
            }
        };
        let mut watch = FileWatch {
            debouncer,
            targets,
            dirs: Vec::new(),
            what,
        };
        watch.set(files);
        Some(watch)
    }

    /// Watches `files` from now on: directories no longer needed are let
    /// go, new ones watched, and the ones in both stay watched.
    pub(crate) fn set(&mut self, files: &[PathBuf]) {
        let targets: Vec<Target> = files
            .iter()
            .map(|f| {
                let path = absolute(f);
                let is_dir = path.is_dir();
                Target { path, is_dir }
            })
            .collect();
        let mut dirs: Vec<PathBuf> = targets
            .iter()
            .map(|t| match (t.is_dir, t.path.parent()) {
                (true, _) | (false, None) => t.path.clone(),
                (false, Some(parent)) => parent.to_owned(),
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        // Watch the new directories before the old targets are replaced,
        // so no moment has neither. One that cannot be watched (it does
        // not exist yet) is tried again at the next `set`.
        let mut watched = Vec::with_capacity(dirs.len());
        for dir in dirs {
            if self.dirs.contains(&dir) {
                watched.push(dir);
                continue;
            }
            match self.debouncer.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => watched.push(dir),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a directory for {}; its files reload with SIGHUP or the admin API only", self.what)
                }
            }
        }
        *self.targets.lock().unwrap_or_else(PoisonError::into_inner) = targets;
        for gone in self.dirs.iter().filter(|d| !watched.contains(d)) {
            // A directory that was removed is no longer watched anyway.
            let _ = self.debouncer.unwatch(gone);
        }
        self.dirs = watched;
    }
}

/// Whether an event can mean new content. Reading a file (which the
/// server itself does when it loads a module) is not one.
fn changes_content(kind: &EventKind) -> bool {
    use notify_debouncer_full::notify::event::{MetadataKind, ModifyKind};
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(ModifyKind::Metadata(m)) => {
            matches!(m, MetadataKind::WriteTime | MetadataKind::Any)
        }
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

/// `path` made absolute, its directory without `.`, `..` or symlinks, so
/// it compares equal to the paths notify reports. A file's own name is
/// kept: a config that is a symlink (as Kubernetes mounts them) is watched
/// where it is named, not where it points.
fn absolute(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.canonicalize().unwrap_or_else(|_| path.to_owned());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (dir.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_owned(),
    }
}
