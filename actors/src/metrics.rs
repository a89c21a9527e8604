//! The metrics actor: owns the Prometheus registry.
//!
//! Request-path counters are plain handles registered here once; the actor
//! is only asked to render the registry, never messaged per request.

use prometheus::{Encoder, Registry, TextEncoder};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// The metrics actor.
#[derive(Default)]
pub struct Metrics;

/// Messages the metrics actor takes.
pub enum MetricsMsg {
    /// Replies with every series in the Prometheus text format.
    Gather(RpcReplyPort<String>),
}

/// The metrics actor's state.
pub struct MetricsState {
    registry: Registry,
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
        Ok(MetricsState { registry })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetricsMsg::Gather(reply) => {
                let mut buf = Vec::new();
                TextEncoder::new().encode(&st.registry.gather(), &mut buf)?;
                let _ = reply.send(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        Ok(())
    }
}
