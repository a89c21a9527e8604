//! [`ChildServices`]: where a `Process` module's host-API calls go. The
//! store and the log are the server's own; counters are handed to the
//! metrics actor, which gathers what module hosts outside the server's
//! process count (the socket's reader never waits on it).

use std::sync::Arc;

use bytes::Bytes;
use troupe_actors::TreeHandle;

use crate::modules::hostapi::{KvRefused, LocalServices, Services};

/// The host API of out-of-process module hosts.
#[derive(Debug)]
pub struct ChildServices {
    local: Arc<LocalServices>,
    tree: TreeHandle,
}

impl ChildServices {
    /// Services over the server's own, counting through `tree`'s metrics
    /// actor.
    pub fn new(local: Arc<LocalServices>, tree: TreeHandle) -> Self {
        Self { local, tree }
    }
}

impl Services for ChildServices {
    fn log(&self, module: &str, level: u32, msg: &str) {
        self.local.log(module, level, msg);
    }

    fn kv_get(&self, key: &str) -> Option<Bytes> {
        self.local.kv_get(key)
    }

    fn kv_set(&self, module: &str, key: &str, value: Bytes) -> Result<(), KvRefused> {
        self.local.kv_set(module, key, value)
    }

    fn kv_delete(&self, key: &str) {
        self.local.kv_delete(key);
    }

    fn metric(&self, module: &str, name: &str, by: u64) {
        // Between a crash of the metrics actor and its restart, count here.
        if !self.tree.count(module, name, by) {
            self.local.metric(module, name, by);
        }
    }
}
