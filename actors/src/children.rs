//! Child specs and restarts, shared by every supervisor in the tree.
//!
//! A ractor child cannot be restarted in place: a restart spawns a new
//! actor. So a supervisor keeps a [`Children`] table of spawn functions,
//! failure histories and each child's current cell, updated on every
//! (re)start, and feeds it every supervision event. Events are matched to
//! a child by actor id, so an event of an incarnation already replaced is
//! never taken for the current one's.

use std::{fmt, sync::Arc, time::Duration};

use ractor::{ActorCell, ActorStatus, SpawnErr, SupervisionEvent};
use tokio::time::Instant;

use crate::{
    restart::{Decision, RestartPolicy, RestartTracker},
    seams::BoxFuture,
    slot::Slot,
    tree::{self, Labels},
};

/// Spawns one child linked to the given supervisor cell.
pub type StartFn =
    Arc<dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// The [`StartFn`] of an actor named `name` in `labels`, spawned with
/// arguments made by `make` (ractor arguments are not `Clone`, so each
/// start makes fresh ones). Each new incarnation's reference goes into
/// `slot`, if the actor has siblings that reach it.
pub(crate) fn start_fn<T, F>(
    labels: &Arc<Labels>,
    name: &str,
    slot: Option<Arc<Slot<T::Msg>>>,
    make: F,
) -> StartFn
where
    T: ractor::Actor,
    F: Fn() -> (T, T::Arguments) + Send + Sync + 'static,
{
    let (labels, name) = (labels.clone(), name.to_owned());
    Arc::new(move |sup: ActorCell| {
        let (labels, name, slot) = (labels.clone(), name.clone(), slot.clone());
        let (actor, args) = make();
        Box::pin(async move {
            let r = tree::spawn_linked(&labels, &name, actor, args, sup).await?;
            if let Some(slot) = slot {
                slot.set(r.clone());
            }
            Ok(r.get_cell())
        })
    })
}

/// Whether an actor has not begun to stop.
fn alive(cell: &ActorCell) -> bool {
    cell.get_status() < ActorStatus::Stopping
}

struct ChildSpec {
    name: String,
    start: StartFn,
    tracker: RestartTracker,
    /// The latest incarnation.
    current: ActorCell,
}

/// What a supervisor should do after a supervision event.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildEvent {
    /// Nothing: a start, an expected stop, or an actor we do not supervise.
    Ignored,
    /// Restart the named child after the delay.
    Restart {
        /// The child's name.
        name: String,
        /// Backoff delay.
        after: Duration,
    },
    /// The child failed too often: the supervisor should fail too.
    Escalate {
        /// The child's name.
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
    labels: Arc<Labels>,
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
    /// An empty table whose children restart under `policy`, with paths
    /// in logs read from `labels`.
    pub fn new(policy: RestartPolicy, labels: Arc<Labels>) -> Self {
        Self {
            policy,
            labels,
            specs: Vec::new(),
        }
    }

    fn spec(&mut self, name: &str) -> Option<&mut ChildSpec> {
        self.specs.iter_mut().find(|s| s.name == name)
    }

    /// The child's current incarnation, unless it has stopped (it failed
    /// and waits for its restart, or it was never restarted).
    pub fn running(&self, name: &str) -> Option<ActorCell> {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.current.clone())
            .filter(alive)
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
        let current = start(supervisor.clone()).await?;
        self.specs.push(ChildSpec {
            name,
            start,
            tracker: RestartTracker::new(policy),
            current: current.clone(),
        });
        Ok(current)
    }

    /// Supervises `current`, a child started outside this table (by a
    /// config reload), restarted with `start` from now on; it replaces the
    /// child of that name, if any. Its failure history starts afresh.
    pub fn adopt(
        &mut self,
        name: impl Into<String>,
        start: StartFn,
        policy: RestartPolicy,
        current: ActorCell,
    ) {
        let spec = ChildSpec {
            name: name.into(),
            start,
            tracker: RestartTracker::new(policy),
            current,
        };
        match self.spec(&spec.name) {
            Some(old) => *old = spec,
            None => self.specs.push(spec),
        }
    }

    /// Restarts the child `name` with `start` under `policy` from now on;
    /// its running incarnation goes on. Its failure history starts afresh.
    pub fn respec(&mut self, name: &str, start: StartFn, policy: RestartPolicy) {
        if let Some(spec) = self.spec(name) {
            spec.start = start;
            spec.tracker = RestartTracker::new(policy);
        }
    }

    /// Makes `current` the incarnation of the known child `name`, still
    /// restarted by its own start function: its exit counts as that
    /// child's failure, and no restart runs while it lives. Returns
    /// whether the table knows the name.
    pub fn stand_in(&mut self, name: &str, current: ActorCell) -> bool {
        match self.spec(name) {
            Some(spec) => {
                spec.current = current;
                true
            }
            None => false,
        }
    }

    /// Forgets a child's failures, as after a reload.
    pub fn reset(&mut self, name: &str) {
        if let Some(spec) = self.spec(name) {
            spec.tracker = RestartTracker::new(spec.tracker.policy());
        }
    }

    /// Forgets a child so that its next exit is not restarted; returns
    /// its current incarnation, if still alive.
    pub fn forget(&mut self, name: &str) -> Option<ActorCell> {
        let at = self.specs.iter().position(|s| s.name == name)?;
        Some(self.specs.remove(at).current).filter(alive)
    }

    /// Forgets every child; returns those still alive.
    pub fn forget_all(&mut self) -> Vec<(String, ActorCell)> {
        self.specs
            .drain(..)
            .filter(|s| alive(&s.current))
            .map(|s| (s.name, s.current))
            .collect()
    }

    /// Restarts a child after its backoff, logging the outcome. A restart
    /// that fails counts as another failure: the returned event says when
    /// to try again, or that the child must escalate.
    pub async fn restart(&mut self, name: &str, supervisor: &ActorCell) -> ChildEvent {
        let sup_path = self.labels.path_of(supervisor);
        let Some(spec) = self.spec(name) else {
            return ChildEvent::Ignored;
        };
        // Already running again (a reload got there first): nothing to do.
        if alive(&spec.current) {
            return ChildEvent::Ignored;
        }
        let path = format!("{sup_path}/{name}");
        let err = match (spec.start)(supervisor.clone()).await {
            Ok(cell) => {
                spec.current = cell;
                tracing::info!(actor = %path, "restarted");
                return ChildEvent::Ignored;
            }
            Err(err) => err,
        };
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
    /// `supervisor` is the cell receiving the event. `stopping` is true
    /// while the supervisor itself shuts down: exits are then expected and
    /// nothing is restarted.
    pub fn on_event(
        &mut self,
        supervisor: &ActorCell,
        evt: &SupervisionEvent,
        stopping: bool,
    ) -> ChildEvent {
        let sup_path = self.labels.path_of(supervisor);
        let (cell, failure) = match evt {
            SupervisionEvent::ActorStarted(cell) => (cell, None),
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, ..) => (cell, None),
            _ => return ChildEvent::Ignored,
        };
        let id = cell.get_id();
        let labels = self.labels.clone();
        let spec = self.specs.iter_mut().find(|s| s.current.get_id() == id);
        // A child that has died is already unlinked: its path is built
        // from the supervisor's, and its name from the table.
        let name = match &spec {
            Some(s) => s.name.clone(),
            None => labels.name_of(cell),
        };
        let path = format!("{sup_path}/{name}");
        match evt {
            SupervisionEvent::ActorStarted(_) => {
                tracing::info!(actor = %path, "started");
                return ChildEvent::Ignored;
            }
            SupervisionEvent::ActorTerminated(_, _, reason) if stopping => {
                tracing::info!(actor = %path, ?reason, "stopped");
                return ChildEvent::Ignored;
            }
            _ => {}
        }
        let Some(spec) = spec else {
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
