//! The certificate actor: decides when the TLS certificates are read
//! again, and has the HTTP core read, check and publish them
//! ([`Certificates::reload`]).
//!
//! A reload is triggered by a change to a certificate, key or client CA
//! file (notify, debounced; the files' directories are watched, so a new file
//! renamed over the old one is seen), by SIGHUP, or by the admin API. One
//! runs at a time, since this actor takes one message at a time. The
//! handshake never messages it: it reads the published store with one
//! atomic load, so a reload changes the certificate of the next handshakes
//! and open connections go on with theirs.
//!
//! After a config reload the config actor sends [`CertsMsg::Rewatch`]:
//! the config may name other files now.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::{config::Trigger, seams::Certificates, watch::FileWatch};

/// The actor's display name in the tree.
pub const NAME: &str = "certs";

/// The certificate actor.
#[derive(Default)]
pub struct CertsActor;

/// Messages the certificate actor takes.
pub enum CertsMsg {
    /// Read every certificate again; replies with what was reloaded, or
    /// the files refused and why.
    Reload {
        /// What asked for it.
        trigger: Trigger,
        /// Where the outcome goes, if anyone waits for it.
        reply: Option<RpcReplyPort<Result<String, String>>>,
    },
    /// The set of files may have changed (a config reload): watch again.
    Rewatch,
}

/// What the certificate actor starts with.
#[derive(Clone)]
pub struct CertsArgs {
    /// Reads, checks and publishes the certificates.
    pub source: Arc<dyn Certificates>,
}

/// The certificate actor's state.
pub struct CertsState {
    source: Arc<dyn Certificates>,
    /// Dropping it stops the watch.
    watcher: Option<FileWatch>,
}

/// Watches the certificate files of `source`, reloading on a change.
fn watch(me: &ActorRef<CertsMsg>, source: &dyn Certificates) -> Option<FileWatch> {
    let me = me.clone();
    FileWatch::new(&source.watched(), "the certificate files", move |path| {
        tracing::info!(file = %path.display(), "certificate file changed; reloading the certificates");
        let _ = me.cast(CertsMsg::Reload {
            trigger: Trigger::Watch,
            reply: None,
        });
    })
}

impl Actor for CertsActor {
    type Msg = CertsMsg;
    type State = CertsState;
    type Arguments = CertsArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: CertsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let watcher = watch(&me, &*args.source);
        Ok(CertsState {
            source: args.source,
            watcher,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CertsMsg::Rewatch => match &mut st.watcher {
                Some(w) => w.set(&st.source.watched()),
                None => st.watcher = watch(&me, &*st.source),
            },
            CertsMsg::Reload { trigger, reply } => {
                let result = st.source.reload(trigger.as_str()).await;
                match &result {
                    Ok(what) => tracing::info!(
                        trigger = trigger.as_str(),
                        %what,
                        "certificates reloaded"
                    ),
                    Err(error) => tracing::error!(
                        trigger = trigger.as_str(),
                        %error,
                        "certificate reload refused; the old certificates keep serving"
                    ),
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
        }
        Ok(())
    }
}
