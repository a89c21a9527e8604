//! The ACME actor: decides when certificates are ordered from an ACME CA,
//! and has the HTTP core place the orders ([`Authority::run`]).
//!
//! An order takes seconds (the CA validates a challenge over the network),
//! so it never runs inside `handle`: the actor spawns one run at a time as
//! a task it owns (aborted when it stops) and hears back with
//! [`AcmeMsg::Done`]. A run that got a new certificate asks the
//! certificate actor for a reload ([`CertsMsg::Reload`], trigger
//! [`Trigger::Acme`]), so an issued certificate is published exactly the
//! way a replaced file is: the store swaps, the `ServerConfig`s stay, open
//! connections and resumption survive. Then it sleeps until the run said
//! the next renewal (or retry) is due. The config actor sends
//! [`AcmeMsg::Check`] after a config reload, which may add ACME servers.
//!
//! The request path never messages it: the challenges it answers are read
//! from maps the HTTP core publishes.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use crate::{
    certs::CertsMsg,
    config::Trigger,
    seams::{AcmeRun, Authority},
    slot::Slot,
};

/// The actor's display name in the tree.
pub const NAME: &str = "acme";

/// The ACME actor.
#[derive(Default)]
pub struct AcmeActor;

/// Messages the ACME actor takes.
pub enum AcmeMsg {
    /// Run the orders that are due now (at start, when a renewal falls
    /// due, after a config reload). One run at a time: a check during a
    /// run makes another run right after it.
    Check,
    /// A run finished.
    Done(AcmeRun),
}

/// What the ACME actor starts with.
#[derive(Clone)]
pub struct AcmeArgs {
    /// Places the orders.
    pub authority: Arc<dyn Authority>,
    /// The certificate actor, told to publish what a run issued.
    pub(crate) certs: Arc<Slot<CertsMsg>>,
}

/// The ACME actor's state.
pub struct AcmeState {
    authority: Arc<dyn Authority>,
    certs: Arc<Slot<CertsMsg>>,
    /// The run in flight.
    running: Option<JoinHandle<()>>,
    /// A check came during the run: run again when it is done.
    again: bool,
    /// The next scheduled check (replaced, not added to, by each run).
    timer: Option<JoinHandle<Result<(), ractor::MessagingErr<AcmeMsg>>>>,
}

impl Actor for AcmeActor {
    type Msg = AcmeMsg;
    type State = AcmeState;
    type Arguments = AcmeArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: AcmeArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // The first run starts once the tree is up: a certificate on disk
        // that is still good places no order.
        me.cast(AcmeMsg::Check)?;
        Ok(AcmeState {
            authority: args.authority,
            certs: args.certs,
            running: None,
            again: false,
            timer: None,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AcmeMsg::Check => {
                if st.running.is_some() {
                    st.again = true;
                    return Ok(());
                }
                let (authority, me) = (st.authority.clone(), me.clone());
                st.running = Some(tokio::spawn(async move {
                    let run = authority.run().await;
                    let _ = me.cast(AcmeMsg::Done(run));
                }));
            }
            AcmeMsg::Done(run) => {
                st.running = None;
                if !run.issued.is_empty()
                    && let Some(certs) = st.certs.get()
                {
                    tracing::info!(servers = %run.issued.join(", "), "ACME certificates issued; publishing them");
                    let _ = certs.cast(CertsMsg::Reload {
                        trigger: Trigger::Acme,
                        reply: None,
                    });
                }
                if let Some(timer) = st.timer.take() {
                    timer.abort();
                }
                if std::mem::take(&mut st.again) {
                    me.cast(AcmeMsg::Check)?;
                } else if let Some(next) = run.next {
                    st.timer = Some(me.send_after(next, || AcmeMsg::Check));
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A restarted actor starts a run of its own; an order cut here is
        // placed again (the CA keeps a pending order's authorizations).
        if let Some(run) = st.running.take() {
            run.abort();
        }
        if let Some(timer) = st.timer.take() {
            timer.abort();
        }
        Ok(())
    }
}
