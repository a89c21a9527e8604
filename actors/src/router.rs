//! The router actor: owns the request-path snapshot and swaps in new ones.
//!
//! Connection tasks never message this actor. They `load_full()` the shared
//! [`ArcSwap`] once per request, so a swap is seen by the next request while
//! in-flight requests finish on the generation they started with.

use std::{marker::PhantomData, sync::Arc};

use arc_swap::ArcSwap;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The router actor, generic over the snapshot type it publishes.
pub struct Router<S>(PhantomData<fn() -> S>);

impl<S> Default for Router<S> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// Messages the router takes.
pub enum RouterMsg<S> {
    /// Publish a new snapshot; replies with its generation number.
    Install(Arc<S>, RpcReplyPort<u64>),
}

/// The slot the router writes and requests read.
pub struct RouterArgs<S> {
    /// Shared with the HTTP core, which only reads it.
    pub slot: Arc<ArcSwap<S>>,
}

/// The router's state.
pub struct RouterState<S> {
    slot: Arc<ArcSwap<S>>,
    generation: u64,
}

impl<S: Send + Sync + 'static> Actor for Router<S> {
    type Msg = RouterMsg<S>;
    type State = RouterState<S>;
    type Arguments = RouterArgs<S>;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The slot already holds the generation loaded at start-up.
        Ok(RouterState {
            slot: args.slot,
            generation: 1,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Install(snapshot, reply) => {
                st.slot.store(snapshot);
                st.generation += 1;
                tracing::info!(generation = st.generation, "routes published");
                let _ = reply.send(st.generation);
            }
        }
        Ok(())
    }
}
