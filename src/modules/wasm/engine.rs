//! The one wasmtime engine, shared by every WebAssembly module, and the
//! thread that advances its epoch (what time limits are counted in).

use std::{sync::OnceLock, time::Duration};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the resolution of time limits, and the
/// longest a call runs on the request's thread before it moves to the
/// module pool (`modules::bulkhead`).
pub const TICK: Duration = Duration::from_millis(1);

/// The largest memory an instance may have (each module's `sandbox.memory`
/// must fit): the size of a slot in the pooling allocator.
pub const MAX_MEMORY: usize = 1 << 30;

/// Linear memories in the pool, across every module: each reserves address
/// space (not memory) up front.
const MEMORIES: u32 = 256;

/// The engine, made (with its ticker thread) on first use.
pub fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            config.epoch_interruption(true);
            config.wasm_component_model(true);
            // An instance per request: allocating each from a warm pool
            // instead of mmap/munmap cut the kernel's share (perf: 22% in
            // page-table locks before).
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(MEMORIES)
                .total_core_instances(MEMORIES * 4)
                .total_memories(MEMORIES)
                .total_tables(MEMORIES * 2)
                .total_stacks(MEMORIES)
                .max_memory_size(MAX_MEMORY)
                .max_unused_warm_slots(64)
                // Reset a used slot by clearing its dirty pages (found with
                // PAGEMAP_SCAN where the kernel has it) instead of madvise,
                // whose TLB shootdowns interrupt every core.
                .linear_memory_keep_resident(4 << 20)
                .table_keep_resident(1 << 20)
                .pagemap_scan(wasmtime::Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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
