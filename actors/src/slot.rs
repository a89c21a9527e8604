//! [`Slot`]: the current reference to one actor of a tree, which its
//! supervisor replaces on every (re)start, so whoever calls through it
//! reaches the live incarnation. Siblings hold slots instead of looking
//! actors up by name.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use ractor::{ActorRef, RpcReplyPort};

use crate::tree;

/// The current reference to one actor of a tree, replaced on each restart.
pub(crate) struct Slot<M> {
    /// The actor's display name, for errors.
    name: &'static str,
    current: ArcSwapOption<ActorRef<M>>,
}

impl<M: ractor::Message> Slot<M> {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            current: ArcSwapOption::empty(),
        }
    }

    /// The actor's display name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Called by the supervisor each time it (re)starts the actor.
    pub(crate) fn set(&self, actor: ActorRef<M>) {
        self.current.store(Some(Arc::new(actor)));
    }

    /// The latest incarnation, if the actor was ever started.
    pub(crate) fn get(&self) -> Option<ActorRef<M>> {
        self.current.load_full().map(|a| (*a).clone())
    }

    /// Calls the current incarnation; `stopped` explains an actor that
    /// stopped instead of answering (or was never started).
    pub(crate) async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> M,
        within: Duration,
        stopped: impl FnOnce() -> String,
    ) -> Result<T, String> {
        match self.get() {
            Some(actor) => tree::ask(&actor, self.name, msg, within, stopped).await,
            None => Err(stopped()),
        }
    }
}
