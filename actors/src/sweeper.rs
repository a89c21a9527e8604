//! A sweeper actor: calls [`Sweep::sweep`] on a timer. Two run in the
//! tree, each over its own state:
//!
//! - `limits` sweeps the rate-limit zones (forgets the keys whose arrival
//!   time has passed, refreshes the key-count gauges);
//! - `cache` sweeps the cache zones' disk tiers (its first sweep rebuilds
//!   each tier's index from the files, as nginx's cache loader does; the
//!   next ones enforce `max_bytes` and `inactive`, as its cache manager
//!   does).
//!
//! What it sweeps is reached through the seam, not sent in messages: the
//! state of every generation in force is found by the HTTP core's
//! registry, so a config reload needs no message here. The first sweep
//! runs at start. A sweep that may touch the disk ([`Sweep::blocks`])
//! runs on a blocking thread. A panic in a sweep restarts this actor
//! alone, and the request path, which never waits on it, does not
//! notice.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::seams::Sweep;

/// The rate-limit zones' sweeper, by its name in the tree.
pub(crate) const LIMITS: &str = "limits";
/// The cache zones' sweeper, by its name in the tree.
pub(crate) const CACHE: &str = "cache";

/// The sweeper actor.
#[derive(Default)]
pub struct Sweeper;

/// Messages it takes.
pub enum SweeperMsg {
    /// Sweep now; sent to itself at start, then every [`Sweep::every`].
    Sweep,
}

/// What it starts with.
#[derive(Clone)]
pub struct SweeperArgs {
    /// What it sweeps.
    pub state: Arc<dyn Sweep>,
}

impl Actor for Sweeper {
    type Msg = SweeperMsg;
    type State = Arc<dyn Sweep>;
    type Arguments = SweeperArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: SweeperArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_message(SweeperMsg::Sweep)?;
        Ok(args.state)
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: SweeperMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SweeperMsg::Sweep => {
                if state.blocks() {
                    let swept = state.clone();
                    tokio::task::spawn_blocking(move || swept.sweep()).await?;
                } else {
                    state.sweep();
                }
                me.send_after(state.every(), || SweeperMsg::Sweep);
            }
        }
        Ok(())
    }
}
