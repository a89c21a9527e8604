//! The one wasmtime engine, shared by every WebAssembly module, and the
//! thread that advances its epoch (what time limits are counted in).

use std::{sync::OnceLock, time::Duration};

use wasmtime::{Config, Engine};

/// How often the epoch advances: the resolution of time limits.
pub const TICK: Duration = Duration::from_millis(10);

/// The engine, made (with its ticker thread) on first use.
pub fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            config.wasm_component_model(true);
            let engine = Engine::new(&config).map_err(|e| e.to_string())?;
            let ticking = engine.clone();
            std::thread::Builder::new()
                .name("troupe-wasm-epoch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(TICK);
                        ticking.increment_epoch();
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}
