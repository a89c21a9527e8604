//! One upstream group's health actor (`upstream.<name>`): probes every
//! backend of its group at the group's interval, jittered, through
//! [`UpstreamGroup::check`], which records each verdict in the backend
//! where requests read it. The actor itself keeps nothing a restart
//! would lose: the rise and fall counts live with the verdicts.
//!
//! Its settings are the group in force, in a cell its supervisor
//! replaces on a config reload (then sends [`UpstreamMsg::Changed`]), so
//! a restart starts from the latest too.

use std::{
    hash::BuildHasher,
    sync::{Arc, Mutex},
    time::Instant,
};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::seams::UpstreamGroup;

/// The group in force, shared by the supervisor and the actor.
pub(crate) type Current = Arc<Mutex<Arc<dyn UpstreamGroup>>>;

/// A group's health actor.
pub struct UpstreamActor;

/// Messages a group's health actor takes.
pub enum UpstreamMsg {
    /// Time to probe (sent to itself). Carries the round it belongs to:
    /// a round replaced by [`UpstreamMsg::Changed`] is dropped, so one
    /// chain of timers runs at a time.
    Tick(u64),
    /// The group's settings changed (a reload): probe now, then at the
    /// new interval.
    Changed,
}

/// What a group's health actor is started with.
pub struct UpstreamArgs {
    /// The group in force.
    pub(crate) group: Current,
}

/// A group's health actor's state.
pub struct UpstreamState {
    group: Current,
    /// The current chain of ticks.
    round: u64,
}

impl UpstreamState {
    fn group(&self) -> Option<Arc<dyn UpstreamGroup>> {
        self.group.lock().ok().map(|g| g.clone())
    }

    /// Schedules the next probe of this round, `share` of the interval
    /// from now, give or take a tenth.
    fn next(&self, me: &ActorRef<UpstreamMsg>, share: f64) {
        let Some(interval) = self.group().and_then(|g| g.interval()) else {
            return;
        };
        let round = self.round;
        me.send_after(interval.mul_f64(share * jitter()), move || {
            UpstreamMsg::Tick(round)
        });
    }

    async fn probe(&self) {
        if let Some(group) = self.group() {
            group.check().await;
        }
    }
}

/// A factor in [0.9, 1.1): groups and restarts do not probe in step.
fn jitter() -> f64 {
    let x = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    0.9 + 0.2 * ((x >> 11) as f64 / (1u64 << 53) as f64)
}

impl Actor for UpstreamActor {
    type Msg = UpstreamMsg;
    type State = UpstreamState;
    type Arguments = UpstreamArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: UpstreamArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let st = UpstreamState {
            group: args.group,
            round: 0,
        };
        // The first probe soon, but not every group at the same instant.
        st.next(&me, 0.1);
        Ok(st)
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            UpstreamMsg::Tick(round) if round != st.round => {}
            UpstreamMsg::Tick(_) => {
                st.probe().await;
                st.next(&me, 1.0);
            }
            UpstreamMsg::Changed => {
                st.round += 1;
                st.probe().await;
                st.next(&me, 1.0);
            }
        }
        Ok(())
    }
}
