//! The live supervision tree as people see it: each actor's display name
//! (a per-tree [`Labels`] table), its path, and the dump the logs show at
//! start-up and after every config reload.
//!
//! Actors are spawned unnamed: ractor enters every named actor in one
//! process-wide registry that refuses a second actor of the same name, so
//! two trees in one process (tests run several) could not both have a
//! `config`. The names live in the tree's own [`Labels`] instead, written
//! by whoever spawns the actor, before anyone else holds its reference.

use std::{collections::HashMap, fmt::Write as _, sync::Mutex, time::Duration};

use ractor::{Actor, ActorCell, ActorId, ActorRef, ActorStatus, SpawnErr};

/// The display names of one tree's actors.
///
/// An entry keeps the actor's cell so that entries of stopped actors can
/// be dropped (an id alone cannot tell whether its actor is gone).
#[derive(Default)]
pub struct Labels {
    names: Mutex<HashMap<ActorId, (String, ActorCell)>>,
}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Labels")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl Labels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ActorId, (String, ActorCell)>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names `cell`. Entries of actors that have stopped since are dropped
    /// here, so the table holds about as many entries as live actors (a
    /// supervisor names an exited child from its own restart table, not
    /// from here).
    pub(crate) fn set(&self, cell: &ActorCell, name: &str) {
        let mut names = self.lock();
        names.retain(|_, (_, c)| c.get_status() != ActorStatus::Stopped);
        names.insert(cell.get_id(), (name.to_owned(), cell.clone()));
    }

    /// The actor's display name, if this tree named it.
    pub fn get(&self, cell: &ActorCell) -> Option<String> {
        self.lock().get(&cell.get_id()).map(|(n, _)| n.clone())
    }

    /// The actor's display name, or `<id>` for an actor this tree did not
    /// name.
    pub fn name_of(&self, cell: &ActorCell) -> String {
        self.get(cell)
            .unwrap_or_else(|| format!("<{}>", cell.get_id()))
    }

    /// The actor's path in the tree, root first:
    /// `troupe/listeners/listener.127.0.0.1:8080`.
    pub fn path_of(&self, cell: &ActorCell) -> String {
        let mut names = vec![self.name_of(cell)];
        let mut parent = cell.try_get_supervisor();
        while let Some(p) = parent {
            names.push(self.name_of(&p));
            parent = p.try_get_supervisor();
        }
        names.reverse();
        names.join("/")
    }

    /// One line per actor, children indented under their supervisor:
    ///
    /// ```text
    /// troupe [Running]
    /// ├── config [Running]
    /// └── listeners [Running]
    ///     └── listener.127.0.0.1:8080 [Running]
    /// ```
    pub fn render(&self, root: &ActorCell) -> String {
        let node = self.walk(root);
        let mut out = String::new();
        let _ = writeln!(out, "{} [{:?}]", node.name, node.status);
        render_children(&node, "", &mut out);
        out
    }

    /// The live tree under `root`, children sorted by name (ractor keeps
    /// no start order) so that every dump of one tree reads the same.
    pub fn walk(&self, root: &ActorCell) -> Node {
        let mut children: Vec<Node> = root.get_children().iter().map(|c| self.walk(c)).collect();
        children.sort_by(|a, b| a.name.cmp(&b.name));
        Node {
            name: self.name_of(root),
            status: root.get_status(),
            children,
        }
    }
}

/// One actor of a live tree and its children, as [`Labels::walk`] and
/// [`crate::TreeHandle::walk`] return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Its display name: `config`, `plugin.hello_c`, `listener.127.0.0.1:8080`.
    pub name: String,
    /// Its lifecycle status when the tree was walked.
    pub status: ActorStatus,
    /// Its children, sorted by name.
    pub children: Vec<Node>,
}

fn render_children(node: &Node, prefix: &str, out: &mut String) {
    let last = node.children.len().saturating_sub(1);
    for (i, child) in node.children.iter().enumerate() {
        let (branch, indent) = if i == last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let _ = writeln!(out, "{prefix}{branch}{} [{:?}]", child.name, child.status);
        render_children(child, &format!("{prefix}{indent}"), out);
    }
}

/// Spawns `actor` unnamed under `supervisor` and names it `name` in
/// `labels` before handing its reference to anyone.
pub(crate) async fn spawn_linked<T: Actor>(
    labels: &Labels,
    name: &str,
    actor: T,
    args: T::Arguments,
    supervisor: ActorCell,
) -> Result<ActorRef<T::Msg>, SpawnErr> {
    let (r, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
    labels.set(&r.get_cell(), name);
    Ok(r)
}

/// Logs the whole tree, once its actors have settled (at start-up and
/// after every reload).
pub async fn log(labels: &Labels, root: &ActorCell) {
    settle(root, Duration::from_secs(1)).await;
    tracing::info!("supervision tree:\n{}", labels.render(root).trim_end());
}

/// Waits (bounded) until no actor in the tree is still starting, so the
/// start-up dump shows settled statuses.
pub async fn settle(root: &ActorCell, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while any_starting(root) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn any_starting(cell: &ActorCell) -> bool {
    matches!(
        cell.get_status(),
        ActorStatus::Starting | ActorStatus::Unstarted
    ) || cell.get_children().iter().any(any_starting)
}

/// One call into an actor of the tree (called `name` in messages), its
/// failure as a message: `stopped` says what it means when the actor
/// stops instead of answering (for a plugin host, that its load failed).
pub(crate) async fn ask<M: ractor::Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    name: &str,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
    within: Duration,
    stopped: impl FnOnce() -> String,
) -> Result<T, String> {
    use ractor::rpc::CallResult;
    match actor.call(msg, Some(within)).await {
        Ok(CallResult::Success(t)) => Ok(t),
        Ok(CallResult::Timeout) => Err(format!("{name} did not answer within {within:?}")),
        Ok(CallResult::SenderError) | Err(_) => Err(stopped()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::ActorProcessingErr;

    struct Idle;

    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _me: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn paths_and_dumps_read_the_labels_and_stopped_actors_leave_them() {
        let labels = Labels::default();
        let (root, root_task) = Actor::spawn(None, Idle, ()).await.unwrap();
        labels.set(&root.get_cell(), "troupe");
        let b = spawn_linked(&labels, "b", Idle, (), root.get_cell())
            .await
            .unwrap();
        let a = spawn_linked(&labels, "a", Idle, (), root.get_cell())
            .await
            .unwrap();
        let leaf = spawn_linked(&labels, "leaf", Idle, (), a.get_cell())
            .await
            .unwrap();
        settle(&root.get_cell(), Duration::from_secs(1)).await;

        assert_eq!(labels.path_of(&leaf.get_cell()), "troupe/a/leaf");
        assert_eq!(
            labels.render(&root.get_cell()),
            "troupe [Running]\n├── a [Running]\n│   └── leaf [Running]\n└── b [Running]\n"
        );

        b.stop(None);
        b.wait(None).await.unwrap();
        labels.set(&root.get_cell(), "troupe");
        assert_eq!(labels.get(&b.get_cell()), None);
        assert_eq!(labels.name_of(&b.get_cell()), format!("<{}>", b.get_id()));

        root.stop(None);
        root_task.await.unwrap();
    }
}
