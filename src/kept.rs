//! [`Kept`]: state that outlives one config generation (rate-limit zones,
//! cache zones), found again by name and parameters.
//!
//! A reload asks for each item by name and parameters; an item that a
//! generation in force already has with the same parameters is handed
//! back as it is, state and all. Items are held weakly: one lives as long
//! as a generation's routes use it.

use std::sync::{Arc, Mutex, Weak};

/// What a [`Kept`] item is found by.
pub trait Named {
    /// What must be equal for the item to be kept.
    type Params: PartialEq;
    /// Its name in the config.
    fn name(&self) -> &str;
    /// Its parameters.
    fn params(&self) -> &Self::Params;
}

/// The items of one kind in force.
#[derive(Debug)]
pub struct Kept<T> {
    live: Mutex<Vec<Weak<T>>>,
}

impl<T> Default for Kept<T> {
    fn default() -> Self {
        Self {
            live: Mutex::default(),
        }
    }
}

impl<T: Named> Kept<T> {
    /// The item `name` with `params`: the one in force if it has them,
    /// else the one `make` makes.
    pub fn get_or(&self, name: &str, params: &T::Params, make: impl FnOnce() -> T) -> Arc<T> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|z| z.strong_count() > 0);
        if let Some(kept) = live
            .iter()
            .filter_map(Weak::upgrade)
            .find(|z| z.name() == name && z.params() == params)
        {
            return kept;
        }
        let made = Arc::new(make());
        live.push(Arc::downgrade(&made));
        made
    }

    /// The items in force.
    pub fn live(&self) -> Vec<Arc<T>> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.iter().filter_map(Weak::upgrade).collect()
    }
}
