//! The metrics actor: owns the Prometheus registry, and gathers what the
//! module hosts outside the server's process count.
//!
//! Request-path series are plain handles registered once and updated
//! without any message, and the admin API encodes the registry itself. A
//! `Process` module's counters arrive differently: its child sends each
//! `troupe.metric` call over its socket, and the reader of that socket
//! hands it here ([`MetricsMsg::Count`], a cast: the reader never waits),
//! so a child that floods counters backs up in this mailbox, not in a
//! request. In-process modules add to the same family directly.

use prometheus::{IntCounterVec, Registry};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// The metrics actor.
#[derive(Default)]
pub struct Metrics;

/// Messages the metrics actor takes.
pub enum MetricsMsg {
    /// Adds `by` to the counter `name` of `module`, as counted by a module
    /// host outside the server's process.
    Count {
        /// The module.
        module: String,
        /// The counter.
        name: String,
        /// How much.
        by: u64,
    },
}

/// What the metrics actor starts with.
#[derive(Clone)]
pub struct MetricsArgs {
    /// Every series of the server is registered here.
    pub registry: Registry,
    /// The family modules count into, labelled `module` and `name`.
    pub module_counters: IntCounterVec,
}

/// The metrics actor's state.
pub struct MetricsState {
    _registry: Registry,
    module_counters: IntCounterVec,
}

impl Actor for Metrics {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = MetricsArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        args: MetricsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(MetricsState {
            _registry: args.registry,
            module_counters: args.module_counters,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetricsMsg::Count { module, name, by } => st
                .module_counters
                .with_label_values(&[&*module, &name])
                .inc_by(by),
        }
        Ok(())
    }
}
