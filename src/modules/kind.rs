//! [`RuntimeKind`]: which runtime runs a module, read off its declaration.

use std::path::Path;

use crate::config::schema::{Isolation, ModuleSource, ModuleSpec};

/// What runs a module: one per runtime, whatever the config's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// A C-ABI library called on the request's thread.
    InProcess,
    /// A C-ABI library in a child process of its own.
    Process,
    /// A Lua script in a pool of sandboxed VMs.
    Lua,
    /// A `wasi:http` component on wasmtime.
    Wasm,
}

impl RuntimeKind {
    /// The runtime a declaration asks for, and the file it names. `Err`
    /// for a combination the config's syntax allows but no runtime runs.
    pub(crate) fn of(spec: &ModuleSpec) -> Result<(Self, &Path), String> {
        match (&spec.source, spec.isolation) {
            (ModuleSource::Native(p), Isolation::InProcess) => Ok((Self::InProcess, p)),
            (ModuleSource::Native(p), Isolation::Process) => Ok((Self::Process, p)),
            (ModuleSource::Lua(p), Isolation::InProcess) => Ok((Self::Lua, p)),
            (ModuleSource::Wasm(p), Isolation::InProcess) => Ok((Self::Wasm, p)),
            (ModuleSource::Lua(_) | ModuleSource::Wasm(_), Isolation::Process) => Err(format!(
                "module `{}`: Lua and WebAssembly run sandboxed in process (expected no `isolation: Process`)",
                spec.name
            )),
        }
    }

    /// The module's language, as the admin API reports it.
    pub fn language(self) -> &'static str {
        match self {
            Self::InProcess | Self::Process => "native",
            Self::Lua => "lua",
            Self::Wasm => "wasm",
        }
    }
}
