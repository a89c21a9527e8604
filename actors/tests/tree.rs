//! The tree wired by typed handles, driven through its public API with a
//! fake HTTP core, config and modules: siblings reach a restarted actor's
//! new incarnation, a handle made before the tree drives it, two trees
//! with the same names share one process, listeners come and go by reload.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwap;
use ractor::{ActorCell, ActorStatus};
use troupe_actors::{
    AcmeRun, App, Authority, BoxFuture, Certificates, ConnShutdown, Failures, ListenAddr,
    ListenSocket, ModuleHost, Plan, Reconfigure, RestartPolicy, Retired, Tree, TreeHandle,
    TreeSpec, Trigger, UpstreamGroup, spawn_tree,
};

/// Serves nothing: closes each connection.
struct Null;

impl App for Null {
    type Snapshot = u64;

    fn serve(
        &self,
        _conn: troupe_actors::Accepted,
        _listen: &troupe_actors::ListenAddr,
        _shutdown: ConnShutdown,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// A config whose every reload plans the next generation number, and adds
/// or removes what the test queued.
#[derive(Default)]
struct Script {
    generation: Arc<AtomicU64>,
    add_listeners: Mutex<Vec<(ListenAddr, ListenSocket)>>,
    remove_listeners: Mutex<Vec<ListenAddr>>,
    add_modules: Mutex<Vec<Arc<dyn ModuleHost>>>,
    remove_modules: Mutex<Vec<String>>,
    /// The upstream groups of every next generation.
    upstreams: Mutex<Vec<Arc<dyn UpstreamGroup>>>,
}

impl Reconfigure for Script {
    type Snapshot = u64;

    fn watched(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    fn plan(&self) -> BoxFuture<'static, Result<Plan<u64>, String>> {
        let next = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let plan = Plan {
            snapshot: Arc::new(next),
            add_modules: std::mem::take(&mut *self.add_modules.lock().unwrap()),
            replace_modules: Vec::new(),
            remove_modules: std::mem::take(&mut *self.remove_modules.lock().unwrap()),
            add_listeners: std::mem::take(&mut *self.add_listeners.lock().unwrap()),
            remove_listeners: std::mem::take(&mut *self.remove_listeners.lock().unwrap()),
            drain: Duration::from_millis(100),
            changes: vec![format!("generation {next}")],
            upstreams: self.upstreams.lock().unwrap().clone(),
        };
        Box::pin(async move { Ok(plan) })
    }
}

/// A module that loads instantly and keeps the failure reporter of each
/// instance it loaded.
struct Module {
    name: &'static str,
    reporters: Mutex<Vec<Failures>>,
}

impl Module {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            reporters: Mutex::new(Vec::new()),
        })
    }

    fn loads(&self) -> usize {
        self.reporters.lock().unwrap().len()
    }

    fn reporter(&self, instance: usize) -> Failures {
        self.reporters.lock().unwrap()[instance].clone()
    }
}

impl ModuleHost for Module {
    fn name(&self) -> &str {
        self.name
    }

    fn policy(&self) -> RestartPolicy {
        fast_policy()
    }

    fn load(&self, failures: Failures, _reload: bool) -> BoxFuture<'static, Result<(), String>> {
        self.reporters.lock().unwrap().push(failures);
        Box::pin(async { Ok(()) })
    }

    fn retire(&self, _why: Retired) {}
}

fn fast_policy() -> RestartPolicy {
    RestartPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..RestartPolicy::default()
    }
}

fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

struct Fixture {
    tree: Tree,
    handle: TreeHandle,
    snapshot: Arc<ArcSwap<u64>>,
    script: Arc<Script>,
    addr: SocketAddr,
    module_counters: prometheus::IntCounterVec,
}

async fn start(handle: TreeHandle, modules: Vec<Arc<dyn ModuleHost>>) -> Fixture {
    start_with(
        handle,
        modules,
        Arc::new(troupe_actors::NoCertificates),
        Arc::new(troupe_actors::NoAuthority),
    )
    .await
}

async fn start_with(
    handle: TreeHandle,
    modules: Vec<Arc<dyn ModuleHost>>,
    certs: Arc<dyn Certificates>,
    acme: Arc<dyn Authority>,
) -> Fixture {
    let socket = bind();
    let addr = socket.local_addr().unwrap();
    let snapshot = Arc::new(ArcSwap::from_pointee(1));
    let script = Arc::new(Script::default());
    script.generation.store(1, Ordering::SeqCst);
    let module_counters = counters();
    let tree = spawn_tree(TreeSpec {
        handle: handle.clone(),
        app: Arc::new(Null),
        config: script.clone(),
        snapshot: snapshot.clone(),
        listeners: vec![(addr.into(), socket.into())],
        policy: fast_policy(),
        registry: prometheus::Registry::new(),
        module_counters: module_counters.clone(),
        modules,
        admin: None,
        certs,
        acme,
        upstreams: Vec::new(),
        limits: Arc::new(troupe_actors::NoSweep),
        caches: Arc::new(troupe_actors::NoSweep),
    })
    .await
    .unwrap();
    Fixture {
        tree,
        handle,
        snapshot,
        script,
        addr,
        module_counters,
    }
}

/// The actor called `name`, anywhere in the tree.
fn find(tree: &Tree, name: &str) -> Option<ActorCell> {
    let mut todo = vec![tree.root()];
    while let Some(cell) = todo.pop() {
        if tree.name_of(&cell).as_deref() == Some(name) {
            return Some(cell);
        }
        todo.extend(cell.get_children());
    }
    None
}

/// Kills the actor called `name` and waits until a new one runs.
async fn kill_and_await_restart(tree: &Tree, name: &str) {
    let old = find(tree, name).unwrap_or_else(|| panic!("no {name}"));
    old.kill();
    let restarted = eventually(|| {
        find(tree, name)
            .is_some_and(|c| c.get_id() != old.get_id() && c.get_status() == ActorStatus::Running)
    })
    .await;
    assert!(restarted, "{name} was not restarted:\n{}", tree.render());
}

async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_trees_with_the_same_names_share_one_process() {
    let one = start(TreeHandle::new(), vec![Module::new("hello")]).await;
    let two = start(TreeHandle::new(), vec![Module::new("hello")]).await;
    for f in [&one, &two] {
        assert_eq!(
            f.tree.render(),
            format!(
                "troupe [Running]\n\
                 ├── acme [Running]\n\
                 ├── cache [Running]\n\
                 ├── certs [Running]\n\
                 ├── config [Running]\n\
                 ├── limits [Running]\n\
                 ├── listeners [Running]\n\
                 │   └── listener.{} [Running]\n\
                 ├── metrics [Running]\n\
                 ├── modules [Running]\n\
                 │   └── plugin.hello [Running]\n\
                 ├── router [Running]\n\
                 └── upstreams [Running]\n",
                f.addr
            )
        );
    }
    // Each handle drives its own tree.
    one.handle.reload_config(Trigger::Admin).await.unwrap();
    assert_eq!(**one.snapshot.load(), 2);
    assert_eq!(**two.snapshot.load(), 1);
    one.tree.shutdown(Duration::from_secs(1)).await;
    two.tree.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_made_before_the_tree_drives_it() {
    let handle = TreeHandle::new();
    assert_eq!(handle.render(), "troupe [Unstarted]\n");
    assert!(handle.reload_config(Trigger::Admin).await.is_err());
    assert!(handle.config_status().await.is_none());
    assert!(handle.reload_certs(Trigger::Admin).await.is_err());

    let f = start(handle.clone(), Vec::new()).await;
    assert_eq!(
        handle.reload_certs(Trigger::Admin).await,
        Ok("no certificates".to_owned())
    );
    let applied = handle.reload_config(Trigger::Admin).await.unwrap();
    assert_eq!(applied.generation, 2);
    assert_eq!(**f.snapshot.load(), 2);
    assert_eq!(handle.config_status().await.unwrap().generation, 2);
    assert_eq!(handle.walk().children.len(), 10);
    assert_eq!(handle.render(), f.tree.render());

    // One handle drives one tree at a time.
    let again = spawn_tree(TreeSpec {
        handle: handle.clone(),
        app: Arc::new(Null),
        config: Arc::new(Script::default()),
        snapshot: Arc::new(ArcSwap::from_pointee(0)),
        listeners: Vec::new(),
        policy: fast_policy(),
        registry: prometheus::Registry::new(),
        module_counters: counters(),
        modules: Vec::new(),
        admin: None,
        certs: Arc::new(troupe_actors::NoCertificates),
        acme: Arc::new(troupe_actors::NoAuthority),
        upstreams: Vec::new(),
        limits: Arc::new(troupe_actors::NoSweep),
        caches: Arc::new(troupe_actors::NoSweep),
    })
    .await;
    assert!(again.is_err());
    f.tree.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_from_out_of_process_hosts_reach_the_metrics_actor() {
    let f = start(TreeHandle::new(), Vec::new()).await;
    assert!(f.handle.count("child", "hits", 2));
    assert!(f.handle.count("child", "hits", 3));
    let counter = f.module_counters.with_label_values(&["child", "hits"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while counter.get() < 5 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(counter.get(), 5);
    f.tree.shutdown(Duration::from_millis(100)).await;
    // Nothing takes counts once the tree is down: the caller keeps them.
    assert!(!f.handle.count("child", "hits", 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reaches_the_siblings_restarted_before_it() {
    let module = Module::new("m");
    let f = start(TreeHandle::new(), vec![module.clone()]).await;
    for sibling in ["router", "modules", "config"] {
        kill_and_await_restart(&f.tree, sibling).await;
    }
    // The config actor (itself restarted) reaches the new router...
    let applied = f.handle.reload_config(Trigger::Admin).await.unwrap();
    assert_eq!(applied.generation, 2);
    assert_eq!(**f.snapshot.load(), 2);
    // ...and the handle reaches the new modules supervisor, whose new
    // plugin host loads the module (once at the restart, once now).
    let loaded = eventually(|| {
        find(&f.tree, "plugin.m").is_some_and(|c| c.get_status() == ActorStatus::Running)
    });
    assert!(loaded.await);
    let before = module.loads();
    f.handle.reload_module("m").await.unwrap();
    assert_eq!(module.loads(), before + 1);
    assert!(f.handle.reload_module("nope").await.is_err());
    f.tree.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_come_and_go_by_reload_under_their_supervisor() {
    let f = start(TreeHandle::new(), Vec::new()).await;
    // Restarted: the listeners supervisor, and with it the listener, on
    // the same socket.
    kill_and_await_restart(&f.tree, "listeners").await;
    assert!(std::net::TcpStream::connect(f.addr).is_ok());

    let extra = bind();
    let extra_addr = extra.local_addr().unwrap();
    f.script
        .add_listeners
        .lock()
        .unwrap()
        .push((extra_addr.into(), extra.into()));
    // And a Unix socket, which leaves no file behind when it goes.
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.sock"), dir.path().join("two.sock"));
    for path in [&one, &two] {
        let socket = std::os::unix::net::UnixListener::bind(path).unwrap();
        let key = ListenAddr::Unix(path.clone());
        f.script
            .add_listeners
            .lock()
            .unwrap()
            .push((key, socket.into()));
    }
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    let name = format!("listener.{extra_addr}");
    let added = find(&f.tree, &name).expect("the added listener");
    let parent = added.try_get_supervisor().unwrap();
    assert_eq!(f.tree.name_of(&parent).as_deref(), Some("listeners"));
    assert!(std::net::TcpStream::connect(extra_addr).is_ok());
    let unix_name = format!("listener.unix:{}", one.display());
    assert!(find(&f.tree, &unix_name).is_some(), "{unix_name}");
    assert!(std::os::unix::net::UnixStream::connect(&one).is_ok());

    let removed = [extra_addr.into(), ListenAddr::Unix(one.clone())];
    f.script.remove_listeners.lock().unwrap().extend(removed);
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    assert!(eventually(|| find(&f.tree, &name).is_none()).await);
    assert!(eventually(|| find(&f.tree, &unix_name).is_none()).await);
    assert!(std::net::TcpStream::connect(extra_addr).is_err());
    assert!(!one.exists(), "a removed Unix listener's file is gone");
    assert!(std::os::unix::net::UnixStream::connect(&two).is_ok());

    // The shutdown drains the listeners, then stops the rest: the socket
    // refuses connections once it returns, and socket files are gone.
    assert_eq!(f.tree.shutdown(Duration::from_secs(1)).await, 0);
    assert!(std::net::TcpStream::connect(f.addr).is_err());
    assert!(!two.exists(), "the shutdown removes the socket files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_report_restarts_its_module_once_and_late_ones_are_ignored() {
    let module = Module::new("m");
    let f = start(TreeHandle::new(), vec![module.clone()]).await;
    assert_eq!(module.loads(), 1);
    let host = find(&f.tree, "plugin.m").unwrap();

    // A reload replaces instance 1: a late report from it changes nothing.
    f.handle.reload_module("m").await.unwrap();
    module.reporter(0).report("late".into());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(find(&f.tree, "plugin.m").unwrap().get_id(), host.get_id());

    // A report from the instance in force restarts the host.
    module.reporter(1).report("broken".into());
    assert!(
        eventually(|| {
            find(&f.tree, "plugin.m").is_some_and(|c| {
                c.get_id() != host.get_id() && c.get_status() == ActorStatus::Running
            })
        })
        .await
    );
    assert_eq!(module.loads(), 3);
    f.tree.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_added_by_reload_is_supervised_until_removed() {
    let f = start(TreeHandle::new(), Vec::new()).await;
    let module = Module::new("added");
    f.script.add_modules.lock().unwrap().push(module.clone());
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    let host = find(&f.tree, "plugin.added").expect("its host");
    assert_eq!(module.loads(), 1);

    // Adopted: its failure restarts it.
    module.reporter(0).report("broken".into());
    assert!(
        eventually(|| {
            find(&f.tree, "plugin.added").is_some_and(|c| {
                c.get_id() != host.get_id() && c.get_status() == ActorStatus::Running
            })
        })
        .await
    );
    assert_eq!(module.loads(), 2);

    f.script.remove_modules.lock().unwrap().push("added".into());
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    assert!(eventually(|| find(&f.tree, "plugin.added").is_none()).await);
    assert!(f.handle.reload_module("added").await.is_err());
    f.tree.shutdown(Duration::from_secs(1)).await;
}

/// A module-counter family, as the server registers one.
fn counters() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(prometheus::Opts::new("c", "c"), &["module", "name"]).unwrap()
}

/// An authority whose first run issues a certificate and asks to run
/// again soon; later runs issue nothing and ask for no more.
#[derive(Default)]
struct OneIssue {
    runs: AtomicU64,
}

impl Authority for OneIssue {
    fn run(&self) -> BoxFuture<'static, AcmeRun> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n == 0 {
                AcmeRun {
                    issued: vec!["a.test".into()],
                    next: Some(Duration::from_millis(20)),
                }
            } else {
                AcmeRun::default()
            }
        })
    }
}

/// Certificates that record each reload's trigger.
#[derive(Default)]
struct Reloads(Mutex<Vec<&'static str>>);

impl Certificates for Reloads {
    fn watched(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    fn reload(&self, trigger: &'static str) -> BoxFuture<'static, Result<String, String>> {
        self.0.lock().unwrap().push(trigger);
        Box::pin(async { Ok("reloaded".into()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acme_actor_runs_at_start_publishes_what_it_issued_and_runs_again_when_due() {
    let acme = Arc::new(OneIssue::default());
    let certs = Arc::new(Reloads::default());
    let f = start_with(TreeHandle::new(), Vec::new(), certs.clone(), acme.clone()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while acme.runs.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "ran once only");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The certificate actor published the issue, once; the second run
    // asked for nothing more.
    assert_eq!(*certs.0.lock().unwrap(), ["acme"]);
    // A config reload makes it check again.
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while acme.runs.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "no run after the reload"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(acme.runs.load(Ordering::SeqCst), 3);
    f.tree.shutdown(Duration::from_secs(1)).await;
}

/// An upstream group that counts its probes and upkeeps, and panics on
/// the probe numbered `panic_on`.
struct Group {
    name: &'static str,
    interval: Option<Duration>,
    checks: Arc<AtomicU64>,
    upkeeps: Arc<AtomicU64>,
    panic_on: u64,
}

impl Group {
    fn new(name: &'static str, interval: Option<Duration>, panic_on: u64) -> Arc<Self> {
        Arc::new(Self {
            name,
            interval,
            checks: Arc::default(),
            upkeeps: Arc::default(),
            panic_on,
        })
    }
}

impl UpstreamGroup for Group {
    fn name(&self) -> &str {
        self.name
    }

    fn interval(&self) -> Option<Duration> {
        self.interval
    }

    fn check(&self) -> BoxFuture<'static, ()> {
        let n = self.checks.fetch_add(1, Ordering::SeqCst) + 1;
        let panic_on = self.panic_on;
        Box::pin(async move {
            assert_ne!(n, panic_on, "a probe panicked on purpose");
        })
    }

    fn maintain(&self) {
        self.upkeeps.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_groups_get_health_actors_by_reload_that_survive_a_panic() {
    let f = start(TreeHandle::new(), Vec::new()).await;
    assert!(find(&f.tree, "upstreams").is_some(), "{}", f.tree.render());
    let checked = Group::new("app", Some(Duration::from_millis(20)), 3);
    let quiet = Group::new("quiet", None, 0);
    *f.script.upstreams.lock().unwrap() = vec![checked.clone(), quiet.clone()];
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    let first = find(&f.tree, "upstream.app").expect("its actor");
    // Only checked groups get an actor; every group gets its upkeep.
    assert!(find(&f.tree, "upstream.quiet").is_none());
    assert!(f.tree.render().contains("upstream.app [Running]"));

    // The third probe panics: a new incarnation goes on probing.
    assert!(eventually(|| checked.checks.load(Ordering::SeqCst) >= 6).await);
    let now = find(&f.tree, "upstream.app").expect("restarted");
    assert_ne!(now.get_id(), first.get_id());
    assert!(
        eventually(|| quiet.upkeeps.load(Ordering::SeqCst) >= 1).await,
        "no upkeep"
    );

    // A changed group is probed with its new settings; a group gone
    // loses its actor, and its probes stop.
    let slower = Group::new("app", Some(Duration::from_secs(60)), 0);
    *f.script.upstreams.lock().unwrap() = vec![slower.clone()];
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    // A tick of the old chain already queued when the settings changed
    // probes with the new ones too, so the change brings one probe or
    // two, and then none for a minute (not one every 20 ms).
    assert!(eventually(|| slower.checks.load(Ordering::SeqCst) >= 1).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let probes = slower.checks.load(Ordering::SeqCst);
    assert!(probes <= 2, "{probes} probes at a 60 s interval");
    let before = checked.checks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(checked.checks.load(Ordering::SeqCst), before);
    f.script.upstreams.lock().unwrap().clear();
    f.handle.reload_config(Trigger::Admin).await.unwrap();
    assert!(eventually(|| find(&f.tree, "upstream.app").is_none()).await);
    f.tree.shutdown(Duration::from_secs(1)).await;
}
