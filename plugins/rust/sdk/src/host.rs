//! [`Host`]: the server functions a module may call (log, store, metrics).

use troupe_abi as abi;

/// A log level for [`Host::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// An error.
    Error,
    /// A warning.
    Warn,
    /// Information.
    Info,
    /// Debugging detail.
    Debug,
    /// Tracing detail.
    Trace,
}

/// Why [`Host::kv_set`] did not store the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvError {
    /// The module holds its quota of keys or bytes (`kv` in its config).
    Full,
    /// The write never reached the store (a `Process` module whose server
    /// did not answer in time).
    Unavailable,
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KvError::Full => "the module is at its store quota",
            KvError::Unavailable => "the store did not answer",
        })
    }
}

impl std::error::Error for KvError {}

/// The host API: the same functions WebAssembly and Lua modules see.
///
/// Cheap to copy; valid from `init` until the module is dropped.
#[derive(Clone, Copy)]
pub struct Host {
    table: &'static abi::Host,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}

// SAFETY: the host table is immutable and its functions are thread-safe
// (troupe_module.h: hooks run on any thread).
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl Host {
    /// Wraps the table passed to `init`.
    ///
    /// # Safety
    /// `table` must be the host table given to `init`; the module must not
    /// use the result after `shutdown`.
    #[doc(hidden)]
    pub unsafe fn from_raw(table: *const abi::Host) -> Self {
        // SAFETY: the host keeps the table alive until shutdown returns,
        // and the module is dropped in shutdown.
        Self {
            table: unsafe { &*table },
        }
    }

    pub(crate) fn table(&self) -> &'static abi::Host {
        self.table
    }

    /// Writes `msg` to the server's error log, tagged with the module.
    pub fn log(&self, level: Level, msg: &str) {
        let level = match level {
            Level::Error => abi::level::ERROR,
            Level::Warn => abi::level::WARN,
            Level::Info => abi::level::INFO,
            Level::Debug => abi::level::DEBUG,
            Level::Trace => abi::level::TRACE,
        };
        // SAFETY: the table's functions take borrowed strings for the call.
        unsafe { (self.table.log)(self.table.ctx, level, abi::Str::new(msg.as_bytes())) }
    }

    /// Reads a key of the store shared by every module.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: `buf` is writable for `buf.len()` bytes.
            let n = unsafe {
                (self.table.kv_get)(
                    self.table.ctx,
                    abi::Str::new(key.as_bytes()),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            let n = usize::try_from(n).ok()?;
            if n <= buf.len() {
                buf.truncate(n);
                return Some(buf);
            }
            // The value grew past the buffer: ask again with room for it.
            buf.resize(n, 0);
        }
    }

    /// Sets a key of the shared store, charged to this module: refused
    /// with [`KvError::Full`] once the module holds its quota (`kv` in its
    /// config); the server never drops other keys to make room.
    pub fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        // SAFETY: borrowed strings for the call.
        let code = unsafe {
            (self.table.kv_set)(
                self.table.ctx,
                abi::Str::new(key.as_bytes()),
                abi::Str::new(value),
            )
        };
        match code {
            abi::OK => Ok(()),
            abi::KV_FULL => Err(KvError::Full),
            _ => Err(KvError::Unavailable),
        }
    }

    /// Deletes a key of the shared store.
    pub fn kv_delete(&self, key: &str) {
        // SAFETY: borrowed strings for the call.
        unsafe { (self.table.kv_delete)(self.table.ctx, abi::Str::new(key.as_bytes())) }
    }

    /// Adds `by` to this module's counter `name`.
    pub fn metric(&self, name: &str, by: u64) {
        // SAFETY: borrowed strings for the call.
        unsafe { (self.table.metric_incr)(self.table.ctx, abi::Str::new(name.as_bytes()), by) }
    }
}
