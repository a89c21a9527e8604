//! Compiled components, cached: compiling takes tens of milliseconds (80
//! here), loading a compiled artifact a fraction of one. Artifacts are kept
//! in memory for the process (the config check and the host load the same
//! component) and on disk, keyed by a hash of the component's bytes and of
//! the engine's compatibility (wasmtime version and settings), in
//! `$TROUPE_CACHE_DIR`, else `$XDG_CACHE_HOME/troupe/wasm`, else
//! `~/.cache/troupe/wasm`; without any, only in memory.

#![allow(unsafe_code)]

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    io::Write,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use wasmtime::{Engine, component::Component};

fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("TROUPE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("troupe/wasm"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/troupe/wasm"))
        })?;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
        .ok()?;
    Some(base)
}

/// The component at `path`, compiled once per content and engine.
pub fn component(engine: &Engine, path: &Path) -> Result<Component, String> {
    static MEMORY: OnceLock<Mutex<HashMap<u64, Component>>> = OnceLock::new();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let key = hasher.finish();
    let memory = MEMORY.get_or_init(Mutex::default);
    if let Some(c) = memory.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(c);
    }
    let file = dir().map(|d| d.join(format!("{key:016x}-{}.cwasm", bytes.len())));
    let cached = file.as_ref().filter(|f| f.is_file()).and_then(|f| {
        // SAFETY: the file was written by `serialize` below into our own
        // 0700 cache directory, under the hash of the component and of this
        // engine's compatibility; wasmtime also checks its header.
        unsafe { Component::deserialize_file(engine, f) }.ok()
    });
    let component = match cached {
        Some(c) => c,
        None => {
            let c = Component::new(engine, &bytes).map_err(|e| format!("{e:#}"))?;
            if let (Some(file), Ok(artifact)) = (&file, c.serialize()) {
                store(file, &artifact);
            }
            c
        }
    };
    if let Ok(mut m) = memory.lock() {
        m.insert(key, component.clone());
    }
    Ok(component)
}

/// Writes an artifact atomically; a cache that cannot be written is skipped.
fn store(file: &Path, artifact: &[u8]) {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(artifact));
    if written.and_then(|()| std::fs::rename(&tmp, file)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
