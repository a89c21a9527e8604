//! The config actor: holds the checked configuration now in force.
//!
//! Loading and checking happen in the HTTP core before anything starts; this
//! actor owns the result so that later reloads (file watch, SIGHUP, admin
//! call) have one place that decides which generation is active.

use std::{marker::PhantomData, sync::Arc};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The config actor, generic over the config type it holds.
pub struct ConfigActor<C>(PhantomData<fn() -> C>);

impl<C> Default for ConfigActor<C> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// Messages the config actor takes.
pub enum ConfigMsg<C> {
    /// Replies with the active config.
    Get(RpcReplyPort<Arc<C>>),
}

/// The config actor's state: the active config and its generation.
pub struct ConfigState<C> {
    active: Arc<C>,
}

impl<C: Send + Sync + 'static> Actor for ConfigActor<C> {
    type Msg = ConfigMsg<C>;
    type State = ConfigState<C>;
    type Arguments = Arc<C>;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        active: Arc<C>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ConfigState { active })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConfigMsg::Get(reply) => {
                let _ = reply.send(st.active.clone());
            }
        }
        Ok(())
    }
}
