//! The `limits` actor: sweeps the rate-limit zones on a timer.
//!
//! Every [`Sweep::every`] it calls [`Sweep::sweep`], which forgets the
//! keys whose arrival time has passed (they are as good as new) and
//! refreshes the key-count gauges. What it sweeps is reached through the
//! seam, not sent in messages: the zones of every generation in force
//! are found by the HTTP core's registry, so a config reload needs no
//! message here. A panic in a sweep restarts this actor alone, and the
//! request path, which never waits on it, does not notice.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::seams::Sweep;

/// The actor's name in the tree.
pub(crate) const NAME: &str = "limits";

/// The limits actor.
#[derive(Default)]
pub struct Limits;

/// Messages it takes.
pub enum LimitsMsg {
    /// Sweep now; sent to itself every [`Sweep::every`].
    Sweep,
}

/// What it starts with.
#[derive(Clone)]
pub struct LimitsArgs {
    /// What it sweeps.
    pub zones: Arc<dyn Sweep>,
}

impl Actor for Limits {
    type Msg = LimitsMsg;
    type State = Arc<dyn Sweep>;
    type Arguments = LimitsArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: LimitsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_after(args.zones.every(), || LimitsMsg::Sweep);
        Ok(args.zones)
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: LimitsMsg,
        zones: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LimitsMsg::Sweep => {
                zones.sweep();
                me.send_after(zones.every(), || LimitsMsg::Sweep);
            }
        }
        Ok(())
    }
}
