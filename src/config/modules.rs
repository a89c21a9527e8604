//! Module declarations → [`ModuleEntry`]s: each one checked (name, file,
//! kind-specific limits, the script or component itself), the files of
//! `modules_dir` declared with defaults, and on a reload the entries of
//! unchanged modules reused, so their hosts, instances and state live on.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    locate::{Anchor, CompileError, err},
    schema::{self, Config, ModuleSpec},
};
use crate::modules::{ModuleEntry, RuntimeKind, Slot, runtime::Part};

/// Every module the config declares, in order: `modules`, then the files
/// of `modules_dir` not named there. An entry of `previous` (the running
/// config) is reused when its declaration and its file are unchanged;
/// a changed one gets a new slot that carries the old one's count of
/// instances and its disabled switch. `declared_at` gives the
/// `file:line:col` of a module's name.
pub(super) fn compile_modules(
    cfg: &Config,
    base: &Path,
    previous: &[Arc<ModuleEntry>],
    declared_at: &dyn Fn(&str) -> String,
) -> Result<Vec<Arc<ModuleEntry>>, CompileError> {
    let found = match &cfg.modules_dir {
        Some(dir) => scan(base, dir, cfg)?,
        None => Vec::new(),
    };
    let dir_anchor = Anchor::Key {
        key: "modules_dir",
        nth: 0,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(cfg.modules.len() + found.len());
    let declared = cfg.modules.iter().map(|m| (m, None));
    let scanned = found.iter().map(|m| (m, Some(&dir_anchor)));
    for (spec, from_dir) in declared.chain(scanned) {
        if !seen.insert(spec.name.as_str()) {
            return err(
                Anchor::Str {
                    value: spec.name.clone(),
                    nth: 1,
                },
                format!(
                    "two modules are named `{}` (expected each name once)",
                    spec.name
                ),
            );
        }
        let fresh = compile_module(spec, base).map_err(|e| match from_dir {
            // Its declaration is a file, not text in the config.
            Some(anchor) => CompileError {
                message: format!("{} (found in `modules_dir`)", e.message),
                anchor: anchor.clone(),
            },
            None => e,
        })?;
        let old = previous.iter().find(|p| p.name == fresh.name);
        match old {
            Some(old) if old.spec == fresh.spec && !old.changed_on_disk() => {
                out.push(old.clone());
            }
            _ => {
                let slot = match old {
                    Some(old) => Slot::after(&old.slot),
                    None => Slot::new(&fresh.name),
                };
                let declared_at = match from_dir {
                    Some(_) => fresh.path.display().to_string(),
                    None => declared_at(&fresh.name),
                };
                out.push(Arc::new(ModuleEntry {
                    slot: Arc::new(slot),
                    declared_at,
                    ..fresh
                }));
            }
        }
    }
    Ok(out)
}

/// The modules `modules_dir` declares: one per `.so`, `.wasm` or `.lua`
/// file, named after the file, unless `modules` has one of that name.
fn scan(base: &Path, given: &Path, cfg: &Config) -> Result<Vec<ModuleSpec>, CompileError> {
    let dir = base.join(given);
    let anchor = || Anchor::Key {
        key: "modules_dir",
        nth: 0,
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| CompileError {
        message: format!(
            "`modules_dir` {} cannot be read: {e} (expected a directory)",
            dir.display()
        ),
        anchor: anchor(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter_map(|p| p.file_name().map(|name| given.join(name)))
        .collect();
    // read_dir has no order; module order shows in logs and the admin API.
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let source = match ext {
            "so" => schema::ModuleSource::Native(path.clone()),
            "wasm" => schema::ModuleSource::Wasm(path.clone()),
            "lua" => schema::ModuleSource::Lua(path.clone()),
            _ => continue,
        };
        if cfg.modules.iter().any(|m| m.name == stem) {
            continue;
        }
        found.push(ModuleSpec::new(stem.to_owned(), source));
    }
    Ok(found)
}

/// Checks one declaration and builds its entry (with a placeholder slot:
/// the caller decides which slot it gets).
fn compile_module(m: &ModuleSpec, base: &Path) -> Result<ModuleEntry, CompileError> {
    let anchor = Anchor::str(&m.name);
    let valid = !m.name.is_empty()
        && m.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return err(
            anchor,
            format!(
                "invalid module name `{}` (expected letters, digits, `_` and `-`)",
                m.name
            ),
        );
    }
    let (kind, path) = RuntimeKind::of(m).map_err(|message| CompileError {
        message,
        anchor: anchor.clone(),
    })?;
    let path_anchor = Anchor::str(&path.to_string_lossy());
    let runtime = kind.runtime().map_err(|message| CompileError {
        message: format!("module `{}`: {message}", m.name),
        anchor: path_anchor.clone(),
    })?;
    let resolved = base.join(path);
    if !resolved.is_file() {
        return err(
            path_anchor,
            format!(
                "module {} `{}` does not exist (expected a file; relative paths start at {}; `plugins/build.sh` builds the examples)",
                runtime.file_word(),
                path.display(),
                base.display()
            ),
        );
    }
    let hooks = runtime
        .check(m, &resolved)
        .map_err(|refused| CompileError {
            message: refused.message,
            anchor: match refused.at {
                Part::Name => anchor.clone(),
                Part::File => path_anchor.clone(),
                Part::Value(v) => Anchor::str(&v),
            },
        })?;
    if m.timeout.is_zero() {
        return err(
            Anchor::Key {
                key: "timeout",
                nth: 0,
            },
            "a module `timeout` must be longer than zero",
        );
    }
    if let Err(why) = m.kv.check() {
        return err(
            Anchor::KeyAfter {
                after: Box::new(anchor.clone()),
                key: "kv",
            },
            format!("module `{}`: {why}", m.name),
        );
    }
    let config = match &m.config {
        None => String::new(),
        Some(ron::Value::String(s)) => s.clone(),
        Some(value) => serde_json::to_string(value).map_err(|e| CompileError {
            message: format!(
                "module `{}`: its `config` cannot be passed as JSON: {e}",
                m.name
            ),
            anchor: anchor.clone(),
        })?,
    };
    let policy = troupe_actors::RestartPolicy {
        max_restarts: m.restarts.max,
        window: m.restarts.within,
        ..troupe_actors::RestartPolicy::default()
    };
    Ok(ModuleEntry {
        name: m.name.clone(),
        runtime: kind,
        path: resolved,
        config,
        spec: m.clone(),
        hooks,
        policy,
        watch: m.watch,
        slot: Arc::new(Slot::new(&m.name)),
        declared_at: String::new(),
        loaded_from: Default::default(),
    })
}
