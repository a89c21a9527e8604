//! The table of runtimes: the one file that knows every runtime, so that
//! none of them knows another. Also the checks that need the table: a
//! module's uses against its runtime and hooks, and `troupe -t`'s probe.

use std::sync::Arc;

use super::{
    entry::ModuleEntry,
    instance::Hooks,
    kind::RuntimeKind,
    runtime::{Role, Runtime},
};

impl RuntimeKind {
    /// The runtime itself, or why this build has none.
    pub(crate) fn runtime(self) -> Result<&'static dyn Runtime, String> {
        match self {
            Self::InProcess => Ok(&super::inprocess::InProcessRuntime),
            Self::Process => Ok(&super::process::ProcessRuntime),
            #[cfg(feature = "lua")]
            Self::Lua => Ok(&super::lua::LuaRuntime),
            #[cfg(feature = "wasm")]
            Self::Wasm => Ok(&super::wasm::WasmRuntime),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "{} modules are not compiled in (build with feature `{}`)",
                other.language(),
                other.feature()
            )),
        }
    }

    /// The cargo feature that compiles it in (the native ones always are).
    fn feature(self) -> &'static str {
        match self {
            Self::InProcess | Self::Process => "",
            Self::Lua => "lua",
            Self::Wasm => "wasm",
        }
    }
}

/// One place in the config that names a module in a role.
#[derive(Debug, Clone)]
pub struct ModuleUse {
    /// The module named.
    pub module: String,
    /// What it is used as.
    pub role: Role,
    /// Where (`file:line:col`).
    pub at: String,
}

impl ModuleUse {
    /// Why a module of `kind` with `hooks` (when known) cannot serve this
    /// use, if it cannot.
    pub(crate) fn problem(&self, kind: RuntimeKind, hooks: Option<Hooks>) -> Option<String> {
        let runtime = kind.runtime().ok()?;
        let (role, needs) = self.role.needs();
        if self.role == Role::WebSocket && !runtime.roles().contains(&self.role) {
            return Some(format!(
                "module `{}` cannot be used as a WebSocket handler: {} (expected a native module without `isolation: Process`, a Lua script or a WebAssembly component)",
                self.module,
                match kind {
                    RuntimeKind::Process =>
                        "WebSockets are not carried to a module's own process yet",
                    _ => "this runtime does not handle WebSockets",
                }
            ));
        }
        if !runtime.roles().contains(&self.role) {
            let can: Vec<&str> = runtime.roles().iter().map(|r| r.needs().0).collect();
            return Some(format!(
                "module `{}` cannot be used as {role}: a {} module can only be {}",
                self.module,
                kind.language(),
                can.join(" or ")
            ));
        }
        match hooks {
            Some(hooks) if !self.role.served_by(hooks) => Some(format!(
                "module `{}` is used as {role} but has no {needs}",
                self.module
            )),
            _ => None,
        }
    }
}

/// `troupe -t`: probes every module whose hooks the config check could
/// not tell, and checks each use of a module against its hooks. Returns
/// every error, each with its `file:line:col`.
pub fn probe(modules: &[Arc<ModuleEntry>], uses: &[ModuleUse]) -> Vec<String> {
    let mut errors = Vec::new();
    for m in modules {
        let hooks = match probe_one(m) {
            Ok(hooks) => hooks,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        errors.extend(uses.iter().filter(|u| u.module == m.name).filter_map(|u| {
            let problem = u.problem(m.runtime, Some(hooks))?;
            Some(format!("{}: {problem}", u.at))
        }));
    }
    errors
}

/// A module's hooks: known from the config check, or learnt by loading
/// its code once without serving.
fn probe_one(m: &ModuleEntry) -> Result<Hooks, String> {
    match m.hooks {
        Some(hooks) => Ok(hooks),
        None => m
            .runtime
            .runtime()
            .and_then(|r| r.probe(m))
            .map_err(|e| format!("{}: module `{}`: {e}", m.declared_at, m.name)),
    }
}
