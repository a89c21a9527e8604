//! A plugin-host actor: the lifecycle of ONE module.
//!
//! It loads the module when it starts (a failed load is an actor failure,
//! so the modules supervisor retries it with backoff), takes failure
//! reports from the request path (each one fails the actor, which restarts
//! the module), reloads on request, and unpublishes the module when it
//! stops, which runs the module's shutdown once the last request is done.
//! A config reload that changes the module hands it a new host: prepared
//! beside the running one, committed once the new routes are published.
//! Requests never pass through its mailbox.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::{
    seams::{Failures, ModuleHost, Retired},
    tree::Labels,
};

/// The plugin-host actor.
#[derive(Default)]
pub struct PluginHost;

/// Messages a plugin host takes.
pub enum PluginHostMsg {
    /// The request path saw instance `generation` fail (a caught panic, an
    /// error code, a dead child process, a timeout): restart the module,
    /// unless that instance was already replaced by a reload.
    Failed {
        /// The instance that failed.
        generation: u64,
        /// What happened.
        reason: String,
    },
    /// Load a new instance and swap it in; the old one serves until then,
    /// and keeps serving if the new one fails to load.
    Reload(RpcReplyPort<Result<(), String>>),
    /// Replies once the module is loaded (messages wait for `post_start`);
    /// if the load fails the actor stops and the reply never comes.
    Started(RpcReplyPort<Result<(), String>>),
    /// A config reload changed the module: load an instance of the new
    /// host, published where only the new config's routes look. The
    /// running instance keeps serving.
    Prepare(Arc<dyn ModuleHost>, RpcReplyPort<Result<(), String>>),
    /// The new config is published: the prepared host is the module now.
    /// The old instance is let go, not retired: requests still on the old
    /// routes finish on it, and it shuts down after the last one.
    Commit,
    /// The reload was refused: drop the prepared host.
    Abort,
    /// The module left the config: stop, without retiring the instance
    /// (as for [`PluginHostMsg::Commit`], its last requests finish on it).
    Release,
}

/// What a plugin host starts with.
pub struct PluginHostArgs {
    /// The module.
    pub host: Arc<dyn ModuleHost>,
    /// Gets the outcome of the first load, if someone waits for it (a
    /// config reload adding the module does; a failed load also fails the
    /// actor, as always).
    pub loaded: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    /// The tree's display names, for its path in logs.
    pub labels: Arc<Labels>,
}

/// The plugin host's state.
pub struct PluginHostState {
    host: Arc<dyn ModuleHost>,
    loaded: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    /// The instance now published.
    generation: u64,
    /// The last instance number handed out: each load takes a new one, so
    /// a failure report names exactly one instance.
    issued: u64,
    /// A host prepared by a config reload, and its instance's number.
    pending: Option<(Arc<dyn ModuleHost>, u64)>,
    /// Stopping because the module left the config.
    released: bool,
    labels: Arc<Labels>,
}

impl PluginHostState {
    fn issue(&mut self) -> u64 {
        self.issued += 1;
        self.issued
    }
}

/// How the request path reports that instance `generation` failed: as a
/// [`PluginHostMsg::Failed`] tagged with it, so that a late report from an
/// instance already replaced is ignored.
fn failures(me: &ActorRef<PluginHostMsg>, generation: u64) -> Failures {
    let me = me.clone();
    Failures::to_fn(move |reason| {
        // An Err means the host is already restarting.
        let _ = me.cast(PluginHostMsg::Failed { generation, reason });
    })
}

impl Actor for PluginHost {
    type Msg = PluginHostMsg;
    type State = PluginHostState;
    type Arguments = PluginHostArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(PluginHostState {
            host: args.host,
            loaded: args.loaded,
            generation: 1,
            issued: 1,
            pending: None,
            released: false,
            labels: args.labels,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = st.host.load(failures(&me, st.generation), false).await;
        if let Some(waiting) = st.loaded.take() {
            let _ = waiting.send(result.clone());
        }
        result.map_err(|e| format!("cannot load module `{}`: {e}", st.host.name()).into())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PluginHostMsg::Failed { generation, reason } => {
                if generation != st.generation {
                    tracing::debug!(module = st.host.name(), %reason, "a replaced instance failed");
                    return Ok(());
                }
                Err(format!("module `{}` failed: {reason}", st.host.name()).into())
            }
            PluginHostMsg::Started(reply) => {
                let _ = reply.send(Ok(()));
                Ok(())
            }
            PluginHostMsg::Reload(reply) => {
                let next = st.issue();
                let result = st.host.load(failures(&me, next), true).await;
                match &result {
                    Ok(()) => {
                        st.generation = next;
                        tracing::info!(actor = %st.labels.path_of(&me.get_cell()), "reloaded")
                    }
                    Err(e) => {
                        tracing::error!(module = st.host.name(), error = %e, "reload refused; the old instance keeps serving")
                    }
                }
                let _ = reply.send(result);
                Ok(())
            }
            PluginHostMsg::Prepare(host, reply) => {
                let next = st.issue();
                let result = host.load(failures(&me, next), true).await;
                if result.is_ok() {
                    st.pending = Some((host, next));
                }
                let _ = reply.send(result);
                Ok(())
            }
            PluginHostMsg::Commit => {
                if let Some((host, generation)) = st.pending.take() {
                    st.host = host;
                    st.generation = generation;
                    tracing::info!(actor = %st.labels.path_of(&me.get_cell()), "reloaded (its config or file changed)");
                }
                Ok(())
            }
            PluginHostMsg::Abort => {
                if let Some((host, _)) = st.pending.take() {
                    host.retire(Retired::Stopped);
                }
                Ok(())
            }
            PluginHostMsg::Release => {
                st.released = true;
                tracing::info!(actor = %st.labels.path_of(&me.get_cell()), "stopped (the module left the config)");
                me.stop(None);
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((host, _)) = st.pending.take() {
            host.retire(Retired::Stopped);
        }
        if !st.released {
            st.host.retire(Retired::Stopped);
        }
        Ok(())
    }
}
