//! [`Pool`]: values a runtime keeps for reuse between calls (Lua VMs, warm
//! WebAssembly instances). The one pool type; a cap on calls in progress
//! is `bulkhead::Admission` instead.

use std::sync::Mutex;

/// A stack of reusable values. The lock is held only to push or pop: a
/// value is used outside it, by one call at a time.
pub(crate) struct Pool<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Pool<T> {
    /// The value used last (the one most likely still in cache), if any.
    pub(crate) fn take(&self) -> Option<T> {
        self.items.lock().ok()?.pop()
    }

    /// Gives a value back for the next call. A poisoned pool drops it.
    pub(crate) fn put(&self, item: T) {
        if let Ok(mut items) = self.items.lock() {
            items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn the_value_put_back_last_is_taken_first() {
        let pool = Pool::default();
        assert_eq!(pool.take(), None::<u8>);
        pool.put(1);
        pool.put(2);
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
    }
}
