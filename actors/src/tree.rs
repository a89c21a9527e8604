//! The live supervision tree: actor names and paths, and the dump the
//! logs show at start-up and after every config reload.

use std::fmt::Write as _;

use ractor::ActorCell;

/// The actor's path in the tree, root first: `troupe/listener.127.0.0.1:8080`.
pub fn path_of(cell: &ActorCell) -> String {
    let mut names = vec![display_name(cell)];
    let mut parent = cell.try_get_supervisor();
    while let Some(p) = parent {
        names.push(display_name(&p));
        parent = p.try_get_supervisor();
    }
    names.reverse();
    names.join("/")
}

fn display_name(cell: &ActorCell) -> String {
    cell.get_name()
        .unwrap_or_else(|| format!("<{}>", cell.get_id()))
}

/// One line per actor, children indented under their supervisor:
///
/// ```text
/// troupe [Running]
/// ├── config [Running]
/// └── listener.127.0.0.1:8080 [Running]
/// ```
pub fn render(root: &ActorCell) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} [{:?}]", display_name(root), root.get_status());
    render_children(root, "", &mut out);
    out
}

fn render_children(cell: &ActorCell, prefix: &str, out: &mut String) {
    let mut children = cell.get_children();
    // Start order is not kept by ractor; sort so the dump is stable.
    children.sort_by_key(display_name);
    let last = children.len().saturating_sub(1);
    for (i, child) in children.iter().enumerate() {
        let (branch, indent) = if i == last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let _ = writeln!(
            out,
            "{prefix}{branch}{} [{:?}]",
            display_name(child),
            child.get_status()
        );
        render_children(child, &format!("{prefix}{indent}"), out);
    }
}

/// Logs the whole tree, once its actors have settled (at start-up and
/// after every reload).
pub async fn log(root: &ActorCell) {
    settle(root, std::time::Duration::from_secs(1)).await;
    tracing::info!("supervision tree:\n{}", render(root).trim_end());
}

/// Waits (bounded) until no actor in the tree is still starting, so the
/// start-up dump shows settled statuses.
pub async fn settle(root: &ActorCell, within: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while any_starting(root) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

fn any_starting(cell: &ActorCell) -> bool {
    matches!(
        cell.get_status(),
        ractor::ActorStatus::Starting | ractor::ActorStatus::Unstarted
    ) || cell.get_children().iter().any(any_starting)
}

/// Registered names are process-wide in ractor, so a second tree in the same
/// process (tests run several) gets a `#N` suffix on every name.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub(crate) suffix: String,
}

impl Names {
    pub(crate) fn next() -> Self {
        static TREES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = TREES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("#{n}")
        };
        Self { suffix }
    }

    /// The registered name of the actor called `base` in this tree.
    pub(crate) fn of(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }
}

/// One call into an actor of the tree, its failure as a message: `stopped`
/// says what it means when the actor stops instead of answering (for a
/// plugin host, that its load failed).
pub(crate) async fn ask<M: ractor::Message, T: Send + 'static>(
    actor: &ractor::ActorRef<M>,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
    within: std::time::Duration,
    stopped: impl FnOnce() -> String,
) -> Result<T, String> {
    use ractor::rpc::CallResult;
    match actor.call(msg, Some(within)).await {
        Ok(CallResult::Success(t)) => Ok(t),
        Ok(CallResult::Timeout) => Err(format!(
            "{} did not answer within {within:?}",
            actor.get_name().unwrap_or_default()
        )),
        Ok(CallResult::SenderError) | Err(_) => Err(stopped()),
    }
}
