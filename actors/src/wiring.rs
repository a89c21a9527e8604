//! Who reaches whom: the typed references that wire one tree, and
//! [`TreeHandle`], the control handle built on them.
//!
//! No actor is looked up by a global name. A supervisor keeps each
//! child's current cell in its restart table ([`crate::children`]) and
//! reaches its children through it. An actor that must reach a sibling
//! (the config actor calls the router, the modules and the listeners
//! supervisors; the admin API, through the handle, calls the config actor
//! and the modules supervisor)
//! goes through a `Slot` (`slot.rs`): one `ArcSwapOption<ActorRef<M>>`
//! per sibling, kept in a `Wiring` made once per tree. The child's start function writes
//! its new reference into the slot on every (re)start, run by the
//! supervisor, so a reader always gets the current incarnation (or, in
//! the moment between a crash and its restart, a stopped one, whose call
//! fails at once like a call to an actor that stopped mid-way).
//!
//! The `Wiring` exists before the tree: [`TreeHandle::new`] makes it, and
//! [`crate::TreeSpec`] takes the handle, so whoever needs the handle (the
//! admin API) gets it before anything is spawned, with no "not started
//! yet" state to handle.

use std::{sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use ractor::{ActorCell, ActorStatus};

use crate::{
    acme::AcmeMsg,
    certs::CertsMsg,
    config::{Applied, ConfigMsg, ReloadStatus, Trigger},
    listeners::ListenersMsg,
    metrics::MetricsMsg,
    modules::ModulesMsg,
    slot::Slot,
    tree::{self, Labels, Node},
};

/// The shared per-tree table: display names and the references that
/// siblings and the [`TreeHandle`] reach actors through. The router's slot
/// is not here: its message type carries the snapshot type, which the
/// handle does not know, so the root hands it to the config actor alone.
pub(crate) struct Wiring {
    pub(crate) labels: Arc<Labels>,
    /// The root, set first thing in its `pre_start` (it is never restarted).
    pub(crate) root: ArcSwapOption<ActorCell>,
    pub(crate) config: Arc<Slot<ConfigMsg>>,
    pub(crate) modules: Arc<Slot<ModulesMsg>>,
    pub(crate) listeners: Arc<Slot<ListenersMsg>>,
    pub(crate) metrics: Arc<Slot<MetricsMsg>>,
    pub(crate) certs: Arc<Slot<CertsMsg>>,
    pub(crate) acme: Arc<Slot<AcmeMsg>>,
}

impl Default for Wiring {
    fn default() -> Self {
        Self {
            labels: Arc::default(),
            root: ArcSwapOption::empty(),
            config: Arc::new(Slot::new("config")),
            modules: Arc::new(Slot::new(crate::modules::NAME)),
            listeners: Arc::new(Slot::new(crate::listeners::NAME)),
            metrics: Arc::new(Slot::new("metrics")),
            certs: Arc::new(Slot::new(crate::certs::NAME)),
            acme: Arc::new(Slot::new(crate::acme::NAME)),
        }
    }
}

impl Wiring {
    pub(crate) fn root(&self) -> Option<ActorCell> {
        self.root.load_full().map(|r| (*r).clone())
    }

    /// Whether a tree spawned with this wiring is still up.
    pub(crate) fn in_use(&self) -> bool {
        self.root()
            .is_some_and(|r| r.get_status() < ActorStatus::Stopping)
    }

    /// Logs the tree, if it is up.
    pub(crate) async fn log(&self) {
        if let Some(root) = self.root() {
            tree::log(&self.labels, &root).await;
        }
    }
}

/// Control calls into one tree: reload the config or a module, read the
/// config status, walk or render the live tree. Made before the tree
/// ([`TreeHandle::new`], then given to [`crate::TreeSpec`]), cheap to
/// clone and to keep. Calls made before the tree is spawned, or after it
/// stopped, fail as a call to a stopped actor does.
#[derive(Clone, Default)]
pub struct TreeHandle {
    pub(crate) wiring: Arc<Wiring>,
}

impl std::fmt::Debug for TreeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeHandle")
            .field("running", &self.wiring.in_use())
            .finish()
    }
}

impl TreeHandle {
    /// A handle for a tree yet to be spawned with it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reloads the config file (see the config actor): applied in full,
    /// or refused with the reason and nothing changed.
    pub async fn reload_config(&self, trigger: Trigger) -> Result<Applied, String> {
        self.wiring
            .config
            .ask(
                |reply| ConfigMsg::Reload {
                    trigger,
                    reply: Some(reply),
                },
                Duration::from_secs(120),
                || "the config actor stopped during the reload".into(),
            )
            .await?
    }

    /// Reads the TLS certificates again (see the certificate actor): each
    /// usable one is published for new handshakes; the `Err` names every
    /// file refused, and why (its server keeps its old certificate).
    pub async fn reload_certs(&self, trigger: Trigger) -> Result<String, String> {
        self.wiring
            .certs
            .ask(
                |reply| CertsMsg::Reload {
                    trigger,
                    reply: Some(reply),
                },
                Duration::from_secs(60),
                || "the certificate actor stopped during the reload".into(),
            )
            .await?
    }

    /// Hands a counter that a module host outside the server's process
    /// counted to the metrics actor, without waiting. `false` if it is not
    /// running (between a crash and its restart): the caller counts it
    /// itself.
    pub fn count(&self, module: &str, name: &str, by: u64) -> bool {
        self.wiring.metrics.get().is_some_and(|metrics| {
            metrics
                .cast(MetricsMsg::Count {
                    module: module.into(),
                    name: name.to_owned(),
                    by,
                })
                .is_ok()
        })
    }

    /// The config generation in force and the last reload's outcome.
    pub async fn config_status(&self) -> Option<ReloadStatus> {
        self.wiring
            .config
            .ask(ConfigMsg::Status, Duration::from_secs(5), String::new)
            .await
            .ok()
    }

    /// Reloads one module: a new instance is loaded and swapped in while
    /// requests in flight finish on the old one. On failure the old
    /// instance keeps serving and the reason is returned.
    pub async fn reload_module(&self, module: &str) -> Result<(), String> {
        let name = module.to_owned();
        // The host stopped before answering: its load failed.
        let stopped = || format!("module `{module}` failed to load (see the log)");
        let result = self
            .wiring
            .modules
            .ask(
                |reply| ModulesMsg::Reload(name, reply),
                Duration::from_secs(30),
                stopped,
            )
            .await?;
        if result.is_ok() {
            self.wiring.log().await;
        }
        result
    }

    /// The live tree, root first. Before the tree is spawned, a root
    /// alone, `Unstarted`.
    pub fn walk(&self) -> Node {
        match self.wiring.root() {
            Some(root) => self.wiring.labels.walk(&root),
            None => Node {
                name: "troupe".into(),
                status: ActorStatus::Unstarted,
                children: Vec::new(),
            },
        }
    }

    /// The tree rendered one actor per line, children indented.
    pub fn render(&self) -> String {
        match self.wiring.root() {
            Some(root) => self.wiring.labels.render(&root),
            None => "troupe [Unstarted]\n".into(),
        }
    }

    /// The display name of an actor of this tree (`router`,
    /// `listener.127.0.0.1:8080`), for tools and tests that walk
    /// [`crate::Tree::root`] themselves.
    pub fn name_of(&self, actor: &ActorCell) -> Option<String> {
        self.wiring.labels.get(actor)
    }
}
