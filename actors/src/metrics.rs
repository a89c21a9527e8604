//! The metrics actor: owns the Prometheus registry.
//!
//! Request-path counters are plain handles registered once and updated
//! without any message, and the admin API encodes the registry itself, so
//! nothing messages this actor: it holds the registry for the tree's
//! lifetime, and [`MetricsMsg`] has no variant.

use prometheus::Registry;
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// The metrics actor.
#[derive(Default)]
pub struct Metrics;

/// Messages the metrics actor takes: none yet (see the module doc).
pub enum MetricsMsg {}

/// The metrics actor's state.
pub struct MetricsState {
    _registry: Registry,
}

impl Actor for Metrics {
    type Msg = MetricsMsg;
    type State = MetricsState;
    type Arguments = Registry;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        registry: Registry,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(MetricsState {
            _registry: registry,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        _st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {}
    }
}
