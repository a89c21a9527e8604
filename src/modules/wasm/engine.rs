//! The one wasmtime engine, shared by every WebAssembly module, and the
//! thread that advances its epoch (what time limits are counted in).
//!
//! The epoch only matters while guest code may run, so the ticker parks
//! whenever no [`Ticking`] guard is alive: a server that has a module
//! loaded but is serving other routes pays no wake-up a millisecond
//! (1.3–1.4% of the samples of every profile, `Return` included, when it
//! ticked regardless).

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    thread::Thread,
    time::Duration,
};

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
            let ticker = std::thread::Builder::new()
                .name("troupe-wasm-epoch".into())
                .spawn(move || {
                    loop {
                        // A guard made after this load unparks the thread,
                        // and an unpark before `park` makes it return.
                        // Woken, it ticks at least once before it looks
                        // again: under load most calls start and end
                        // between two ticks, and looking right away would
                        // park and wake it on every call (5% of the
                        // samples of a fresh-instance load, measured).
                        if ACTIVE.load(Ordering::Acquire) == 0 {
                            std::thread::park();
                        }
                        std::thread::sleep(TICK);
                        ticking.increment_epoch();
                    }
                })
                .map_err(|e| e.to_string())?;
            let _ = TICKER.set(ticker.thread().clone());
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Guards alive: calls that may run guest code.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The ticker thread, to wake when the first guard is made.
static TICKER: OnceLock<Thread> = OnceLock::new();

/// Keeps the epoch advancing while it lives: held by a call from before
/// its instance is made (start-up code counts against its time) until the
/// guest returns, wherever it runs by then.
#[derive(Debug)]
pub struct Ticking(());

impl Ticking {
    /// Starts the ticker if it was parked. One atomic add per call; the
    /// unpark (a futex wake only if the thread is parked) only when no
    /// other call was running.
    pub fn start() -> Self {
        if ACTIVE.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(ticker) = TICKER.get()
        {
            ticker.unpark();
        }
        Ticking(())
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
    }
}
