//! The modules supervisor: parent of one plugin-host actor per module.
//!
//! It holds no modules until the module hosts land; it already restarts its
//! children through the shared [`Children`] table, so a host that crashes
//! is restarted with backoff and never takes a sibling down.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::{children::Children, restart::RestartPolicy};

/// The modules supervisor.
#[derive(Default)]
pub struct Modules;

/// Messages the modules supervisor takes.
pub enum ModulesMsg {
    /// Restart a child whose backoff has elapsed.
    RestartChild(String),
}

/// The supervisor's state.
pub struct ModulesState {
    children: Children,
}

impl Actor for Modules {
    type Msg = ModulesMsg;
    type State = ModulesState;
    type Arguments = RestartPolicy;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        policy: RestartPolicy,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ModulesState {
            children: Children::new(policy),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModulesMsg::RestartChild(name) => {
                let retry = st.children.restart(&name, &me.get_cell()).await;
                if let Some(failed) = retry.schedule(&me, ModulesMsg::RestartChild) {
                    st.children.forget(&failed);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let event = st.children.on_event(&me.get_cell(), &evt, false);
        // One module failing for good must not take its siblings down: it
        // stays failed (its routes answer 503) until it is reloaded.
        if let Some(name) = event.schedule(&me, ModulesMsg::RestartChild) {
            st.children.forget(&name);
        }
        Ok(())
    }
}
