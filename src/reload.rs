//! Config reload, the core's side (P3.4–P3.6): [`Reloader`] reads the
//! file again, checks it in full against the [`Generation`] in force, and
//! works out what applying it changes; the new generation is published
//! whole, with one store. The config actor (`troupe_actors::config`)
//! applies the result, in order.
//!
//! What a reload changes, and when:
//!
//! | part of the config            | on reload                                         |
//! |-------------------------------|---------------------------------------------------|
//! | `servers`, routes, middleware | the next request (requests in flight finish on the old) |
//! | `modules`, `modules_dir`      | added ones load, changed ones reload, removed ones stop; unchanged ones are untouched |
//! | `listen`                      | added addresses accept, removed ones drain; others are untouched (a `tls` mark: new connections) |
//! | `tls` certificates (the files too, read again) | new handshakes; resumption state is kept (the certificate actor also reads the files again on their own, without a config reload: `tls::LiveCerts`) |
//! | `limits`                      | body limits: the next request; the rest: new connections |
//! | `upstreams`, `trusted_proxies` | the next request; a backend the new config keeps keeps its state, its health verdict and pooled connections (`proxy::Registry`); health-check actors start, stop or take the new settings |
//! | `log`, `admin`, `pid_file`, `workers` | the next restart (the log line says so) |

use std::{path::PathBuf, sync::Arc};

use arc_swap::ArcSwap;
pub use troupe_actors::Trigger;
use troupe_actors::{BoxFuture, ListenAddr, ModuleHost, Plan, Reconfigure};

use crate::{
    config::{self, Loaded, schema::Listen},
    generation::Generation,
    modules::host::{Env, Hosted},
    observe::metrics::{ModuleSeries, UpstreamMetrics},
    proxy::health,
    tls::LiveCerts,
};

/// Reads and checks new configs against the one in force.
pub struct Reloader {
    /// The generation in force: what a new config is checked against.
    pub(crate) generation: Arc<ArcSwap<Generation>>,
    pub(crate) env: Arc<Env>,
    pub(crate) series: ModuleSeries,
    /// The upstream groups' series, for the groups of each new config.
    pub(crate) upstream_metrics: UpstreamMetrics,
    /// Gets each installed generation's certificates.
    pub(crate) certs: Arc<LiveCerts>,
}

impl Reconfigure for Reloader {
    type Snapshot = Generation;

    fn watched(&self) -> Vec<PathBuf> {
        let live = self.generation.load();
        let mut files = Vec::new();
        if live.config.watch {
            files.push(live.path.clone());
            files.extend(crate::config::htpasswd_files(&live.config, &live.base));
            files.extend(crate::config::error_page_files(&live.config, &live.base));
            files.extend(live.included.iter().cloned());
        }
        if let Some(dir) = &live.config.modules_dir {
            files.push(live.base.join(dir));
        }
        files.extend(
            live.modules
                .iter()
                .filter(|m| m.watch)
                .map(|m| m.path.clone()),
        );
        files
    }

    fn installed(&self, generation: &Arc<Generation>) {
        // Certificates were read and checked by `plan`; what is left (a
        // client-auth config's ticket keys) fails only without randomness.
        if let Err(error) = self.certs.install(&generation.certs) {
            tracing::error!(%error, "the new certificates could not be published; handshakes keep the old ones");
        }
        // Groups prune the backend series in their upkeep; with no group
        // left, nothing would.
        if generation.upstreams.groups.is_empty() {
            self.upstream_metrics.retain(&Arc::default());
        }
    }

    fn plan(&self) -> BoxFuture<'static, Result<Plan<Generation>, String>> {
        let (now, env, series, upstream_metrics) = (
            self.generation.load_full(),
            self.env.clone(),
            self.series.clone(),
            self.upstream_metrics.clone(),
        );
        Box::pin(async move {
            let (path, previous) = (now.path.clone(), now.modules.clone());
            let carry = config::Carry {
                upstreams: now.upstreams.registry.clone(),
                zones: now.zones.clone(),
                caches: now.caches.clone(),
            };
            // Checking compiles scripts and components: off the runtime.
            let loaded =
                tokio::task::spawn_blocking(move || config::reload(&path, &previous, &carry))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            let mut plan = plan(&now, loaded, &env, &series)?;
            plan.upstreams = health::groups(&plan.snapshot.upstreams, &upstream_metrics);
            Ok(plan)
        })
    }
}

/// What applying `next` over `now` changes; binds the added addresses
/// and sets the new mode of a kept Unix socket.
fn plan(
    now: &Generation,
    next: Loaded,
    env: &Arc<Env>,
    series: &ModuleSeries,
) -> Result<Plan<Generation>, String> {
    let mut changes = Vec::new();
    let (mut add_modules, mut replace_modules) = (Vec::new(), Vec::new());
    for m in &next.modules {
        let host = || {
            m.slot.set_metrics(series.module(m.slot.name()));
            Arc::new(Hosted::new(m.clone(), env.clone())) as Arc<dyn ModuleHost>
        };
        match now.module(&m.name) {
            Some(old) if Arc::ptr_eq(old, m) => {}
            Some(_) => {
                replace_modules.push(host());
                changes.push(format!("module `{}` changed", m.name));
            }
            None => {
                add_modules.push(host());
                changes.push(format!("module `{}` added", m.name));
            }
        }
    }
    let remove_modules: Vec<String> = now
        .modules
        .iter()
        .filter(|old| !next.modules.iter().any(|m| m.name == old.name))
        .map(|old| old.name.clone())
        .collect();
    changes.extend(
        remove_modules
            .iter()
            .map(|name| format!("module `{name}` removed")),
    );

    let (old, new) = (&now.config, &next.config);
    let added: Vec<Listen> = difference(&new.listen, &old.listen);
    let remove_listeners: Vec<ListenAddr> = difference(&old.listen, &new.listen)
        .into_iter()
        .map(|l| l.addr)
        .collect();
    let sockets = crate::listen::bind_all(&added).map_err(|e| e.to_string())?;
    changes.extend(added.iter().map(|l| format!("listening on {}", l.addr)));
    for l in &new.listen {
        if old
            .listen
            .iter()
            .any(|o| o.addr == l.addr && o.tls != l.tls)
        {
            let now = if l.tls { "TLS" } else { "plain HTTP" };
            changes.push(format!("{} speaks {now} (new connections)", l.addr));
        }
        // A kept socket keeps its file: only its bits change. One whose
        // `mode=` was dropped keeps the bits it has.
        if let (ListenAddr::Unix(path), Some(mode)) = (&l.addr, l.mode)
            && old
                .listen
                .iter()
                .any(|o| o.addr == l.addr && o.mode != l.mode)
        {
            crate::listen::set_mode(path, mode).map_err(|e| format!("{}: {e}", l.addr))?;
            changes.push(format!("{} has mode {mode:o}", l.addr));
        }
    }
    changes.extend(
        remove_listeners
            .iter()
            .map(|a| format!("no longer listening on {a}")),
    );

    if old.servers != new.servers {
        changes.push("routes changed".into());
    }
    if old.upstreams != new.upstreams || old.trusted_proxies != new.trusted_proxies {
        changes.push("upstreams changed (kept backends keep their connections)".into());
    }
    let limits_changed = old.limits != new.limits;
    if limits_changed {
        changes.push("limits changed (for new connections and requests)".into());
    }
    let at_restart = [
        ("log", old.log != new.log),
        ("admin", old.admin != new.admin),
        ("pid_file", old.pid_file != new.pid_file),
        ("workers", old.workers != new.workers),
    ];
    for (field, changed) in at_restart {
        if changed {
            changes.push(format!(
                "`{field}` changed: it takes effect at the next restart"
            ));
        }
    }

    let drain = new.limits.drain_timeout;
    let mut generation = Generation::new(next);
    generation.resolve_tls_port(|key| {
        let added = added
            .iter()
            .zip(&sockets)
            .find(|(l, _)| l.tcp() == Some(key));
        match added {
            Some((_, socket)) => socket.local().ok()?.tcp().map(|a| a.port()),
            None => now.tls_port_of(key),
        }
    });
    Ok(Plan {
        snapshot: Arc::new(generation),
        add_modules,
        replace_modules,
        remove_modules,
        add_listeners: added.into_iter().map(|l| l.addr).zip(sockets).collect(),
        remove_listeners,
        drain,
        changes,
        upstreams: Vec::new(),
    })
}

/// The listen entries of `a` whose address is not in `b`.
fn difference(a: &[Listen], b: &[Listen]) -> Vec<Listen> {
    a.iter()
        .filter(|x| !b.iter().any(|y| y.addr == x.addr))
        .cloned()
        .collect()
}
