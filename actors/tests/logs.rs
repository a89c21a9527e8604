//! What the tree logs, with each actor's path: the start-up dump,
//! supervision events under their supervisor, and the shutdown. A test
//! binary of its own, since it installs the process-wide subscriber.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;
use troupe_actors::{
    App, BoxFuture, ConnShutdown, Plan, Reconfigure, RestartPolicy, TreeHandle, TreeSpec,
    spawn_tree,
};

struct Null;

impl App for Null {
    type Snapshot = ();

    fn serve(
        &self,
        _conn: troupe_actors::Accepted,
        _listen: &troupe_actors::ListenAddr,
        _shutdown: ConnShutdown,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

struct Refuse;

impl Reconfigure for Refuse {
    type Snapshot = ();

    fn watched(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }

    fn plan(&self) -> BoxFuture<'static, Result<Plan<()>, String>> {
        Box::pin(async { Err("no config here".into()) })
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_logged_with_the_actor_path() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .init();

    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let tree = spawn_tree(TreeSpec {
        handle: TreeHandle::new(),
        app: Arc::new(Null),
        config: Arc::new(Refuse),
        snapshot: Arc::new(ArcSwap::from_pointee(())),
        listeners: vec![(addr.into(), socket.into())],
        policy: RestartPolicy {
            backoff_base: Duration::from_millis(5),
            ..RestartPolicy::default()
        },
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
    .await
    .unwrap();
    let router = tree
        .root()
        .get_children()
        .into_iter()
        .find(|c| tree.name_of(c).as_deref() == Some("router"))
        .unwrap();
    router.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !logs.text().contains("restarted actor=troupe/router")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tree.shutdown(Duration::from_secs(1)).await;

    let text = logs.text();
    for line in [
        format!("started actor=troupe/listeners/listener.{addr}"),
        format!("listening addr={addr}"),
        "started actor=troupe/config".into(),
        "supervision tree:\ntroupe [Running]\n├── acme [Running]\n├── cache [Running]\n├── certs [Running]\n├── config [Running]\n├── limits [Running]\n├── listeners [Running]".into(),
        "child failed; restarting actor=troupe/router".into(),
        "restarted actor=troupe/router".into(),
        format!("draining connections actor=troupe/listeners/listener.{addr}"),
        format!("stopped actor=troupe/listeners/listener.{addr}"),
    ] {
        assert!(text.contains(&line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains('#'), "{text}");
}

/// A module-counter family, as the server registers one.
fn counters() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(prometheus::Opts::new("c", "c"), &["module", "name"]).unwrap()
}
