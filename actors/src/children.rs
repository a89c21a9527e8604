//! Child specs and restarts, shared by every supervisor in the tree.
//!
//! A ractor child cannot be restarted in place: a restart spawns a new actor
//! under the same name. So a supervisor keeps a [`Children`] table of spawn
//! functions and failure histories, and feeds it every supervision event.

use std::{fmt, sync::Arc, time::Duration};

use ractor::{ActorCell, SpawnErr, SupervisionEvent};
use tokio::time::Instant;

use crate::{
    restart::{Decision, RestartPolicy, RestartTracker},
    seams::BoxFuture,
    tree::path_of,
};

/// Spawns one child linked to the given supervisor cell.
pub type StartFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// The [`StartFn`] of an actor spawned under `name` with arguments made by
/// `make` (ractor arguments are not `Clone`, so each start makes fresh ones).
pub fn start_fn<T, F>(name: String, make: F) -> StartFn
where
    T: ractor::Actor,
    F: Fn() -> (T, T::Arguments) + Send + Sync + 'static,
{
    Arc::new(move |sup: ActorCell| {
        let name = name.clone();
        let (actor, args) = make();
        Box::pin(async move {
            let (r, _) = ractor::Actor::spawn_linked(Some(name), actor, args, sup).await?;
            Ok(r.get_cell())
        })
    })
}

struct ChildSpec {
    name: String,
    start: StartFn,
    tracker: RestartTracker,
}

/// What a supervisor should do after a supervision event.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildEvent {
    /// Nothing: a start, an expected stop, or an actor we do not supervise.
    Ignored,
    /// Restart the named child after the delay.
    Restart {
        /// The child's registered name.
        name: String,
        /// Backoff delay.
        after: Duration,
    },
    /// The child failed too often: the supervisor should fail too.
    Escalate {
        /// The child's registered name.
        name: String,
    },
}

impl ChildEvent {
    /// Acts on the event for supervisor `me`: a restart is scheduled as the
    /// message `restart(name)` after its backoff. Returns the name of a
    /// child that failed too often, for the supervisor to decide about.
    pub fn schedule<M: ractor::Message>(
        self,
        me: &ractor::ActorRef<M>,
        restart: fn(String) -> M,
    ) -> Option<String> {
        match self {
            ChildEvent::Ignored => None,
            ChildEvent::Restart { name, after } => {
                me.send_after(after, move || restart(name));
                None
            }
            ChildEvent::Escalate { name } => Some(name),
        }
    }
}

/// The children of one supervisor, in start order.
pub struct Children {
    policy: RestartPolicy,
    specs: Vec<ChildSpec>,
}

impl fmt::Debug for Children {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.specs.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Children")
            .field("policy", &self.policy)
            .field("names", &names)
            .finish()
    }
}

impl Children {
    /// An empty table whose children restart under `policy`.
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            specs: Vec::new(),
        }
    }

    /// Starts a child now and remembers how to start it again.
    pub async fn start(
        &mut self,
        name: impl Into<String>,
        start: StartFn,
        supervisor: &ActorCell,
    ) -> Result<ActorCell, SpawnErr> {
        let policy = self.policy;
        self.start_with(name, start, policy, supervisor).await
    }

    /// Like [`Children::start`], with a restart policy of the child's own.
    pub async fn start_with(
        &mut self,
        name: impl Into<String>,
        start: StartFn,
        policy: RestartPolicy,
        supervisor: &ActorCell,
    ) -> Result<ActorCell, SpawnErr> {
        let name = name.into();
        let cell = start(supervisor.clone()).await?;
        self.specs.push(ChildSpec {
            name,
            start,
            tracker: RestartTracker::new(policy),
        });
        Ok(cell)
    }

    /// Supervises a child started outside this table (by a config reload),
    /// or restarts an existing one with `start` from now on. Its failure
    /// history starts afresh.
    pub fn adopt(&mut self, name: impl Into<String>, start: StartFn, policy: RestartPolicy) {
        let name = name.into();
        let spec = ChildSpec {
            name,
            start,
            tracker: RestartTracker::new(policy),
        };
        match self.specs.iter_mut().find(|s| s.name == spec.name) {
            Some(old) => *old = spec,
            None => self.specs.push(spec),
        }
    }

    /// Forgets a child's failures, as after a reload.
    pub fn reset(&mut self, name: &str) {
        if let Some(spec) = self.specs.iter_mut().find(|s| s.name == name) {
            spec.tracker = RestartTracker::new(spec.tracker.policy());
        }
    }

    /// Forgets a child so that its next exit is not restarted.
    pub fn forget(&mut self, name: &str) {
        self.specs.retain(|s| s.name != name);
    }

    /// Restarts a child after its backoff, logging the outcome. A restart
    /// that fails counts as another failure: the returned event says when
    /// to try again, or that the child must escalate.
    pub async fn restart(&mut self, name: &str, supervisor: &ActorCell) -> ChildEvent {
        let Some(spec) = self.specs.iter_mut().find(|s| s.name == name) else {
            return ChildEvent::Ignored;
        };
        // Already running again (a reload got there first): nothing to do.
        if ractor::registry::where_is(name).is_some() {
            return ChildEvent::Ignored;
        }
        let err = match (spec.start)(supervisor.clone()).await {
            Ok(cell) => {
                tracing::info!(actor = %path_of(&cell), "restarted");
                return ChildEvent::Ignored;
            }
            Err(err) => err,
        };
        let path = format!("{}/{name}", path_of(supervisor));
        match spec.tracker.on_failure(Instant::now()) {
            Decision::Restart { after, attempt } => {
                tracing::error!(actor = %path, %err, attempt, backoff_ms = after.as_millis() as u64, "restart failed; retrying");
                ChildEvent::Restart {
                    name: name.to_owned(),
                    after,
                }
            }
            Decision::GiveUp => {
                tracing::error!(actor = %path, %err, "restart failed too often; escalating");
                ChildEvent::Escalate {
                    name: name.to_owned(),
                }
            }
        }
    }

    /// Classifies a supervision event and logs it with the actor's path.
    ///
    /// `supervisor` is the cell receiving the event: a child that has died
    /// is already unlinked, so its path is built from its supervisor's.
    /// `stopping` is true while the supervisor itself shuts down: exits are
    /// then expected and nothing is restarted.
    pub fn on_event(
        &mut self,
        supervisor: &ActorCell,
        evt: &SupervisionEvent,
        stopping: bool,
    ) -> ChildEvent {
        let child_path = |cell: &ActorCell| {
            let name = cell.get_name().unwrap_or_else(|| cell.get_id().to_string());
            format!("{}/{name}", path_of(supervisor))
        };
        let (cell, failure) = match evt {
            SupervisionEvent::ActorStarted(cell) => {
                tracing::info!(actor = %child_path(cell), "started");
                return ChildEvent::Ignored;
            }
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if stopping {
                    tracing::info!(actor = %child_path(cell), ?reason, "stopped");
                    return ChildEvent::Ignored;
                }
                (cell, None)
            }
            _ => return ChildEvent::Ignored,
        };
        let Some(name) = cell.get_name() else {
            return ChildEvent::Ignored;
        };
        let path = child_path(cell);
        let Some(spec) = self.specs.iter_mut().find(|s| s.name == name) else {
            tracing::debug!(actor = %path, "unsupervised child exited");
            return ChildEvent::Ignored;
        };
        if stopping {
            tracing::warn!(actor = %path, error = failure.as_deref(), "failed while stopping");
            return ChildEvent::Ignored;
        }
        let error = failure.as_deref().unwrap_or("exited unexpectedly");
        match spec.tracker.on_failure(Instant::now()) {
            Decision::Restart { after, attempt } => {
                tracing::warn!(actor = %path, error, attempt, backoff_ms = after.as_millis() as u64, "child failed; restarting");
                ChildEvent::Restart { name, after }
            }
            Decision::GiveUp => {
                tracing::error!(actor = %path, error, "child failed too often; escalating");
                ChildEvent::Escalate { name }
            }
        }
    }
}
