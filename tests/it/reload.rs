//! Config reload (issue 5, P3.4–P3.6): only the difference is applied
//! (unchanged modules keep their instance, changed ones reload, removed
//! ones shut down, listeners open and close), a bad config is refused with
//! its position while the old one serves, and every trigger works: the
//! admin API, SIGHUP / `troupe -s reload`, and editing a watched file.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use http::StatusCode;
use serde_json::Value;
use troupe::{Trigger, modules::slot::Published};

use crate::support::{
    client,
    daemon::{Daemon, bin},
    eventually, eventually_sync,
    modules::lib,
    reload::{config, lua_echo, save},
    server::TestServer,
};

fn instance(srv: &TestServer, module: &str) -> *const () {
    let slot = srv.running().module(module).expect("module");
    let published = slot.load();
    match &**published {
        Published::Ready(i) => Arc::as_ptr(i) as *const (),
        _ => panic!("{module} is not ready ({})", slot.status()),
    }
}

async fn body(srv: &TestServer, path: &str) -> (StatusCode, String) {
    let resp = client::get(&srv.url(path)).await;
    (resp.status, resp.text())
}

async fn all_ready(srv: &TestServer, modules: &[&str]) {
    for m in modules {
        crate::support::modules::ready(srv, m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c"] {
        lua_echo(dir.path(), name);
    }
    let marker = dir.path().join("shutdown.txt");
    let gone = format!(
        r#"(name: "gone", source: Native({}), config: {:?})"#,
        lib("crashy"),
        marker.display().to_string()
    );
    let v1 = config(
        "watch: false,",
        &format!(
            r#"(name: "a", source: Lua("a.lua"), config: "one"),
               (name: "b", source: Lua("b.lua"), config: "one"), {gone}"#
        ),
        r#"(path: "/a", handler: Module("a")), (path: "/b", handler: Module("b")),
           (path: "/gone", handler: Module("gone"))"#,
        "v1",
    );
    let srv = TestServer::start_in(dir, &v1).await;
    all_ready(&srv, &["a", "b", "gone"]).await;
    assert_eq!(body(&srv, "/a").await.1, "a one\n");
    assert_eq!(body(&srv, "/gone").await.0, StatusCode::OK);
    let a_slot = srv.running().module("a").unwrap();
    let a_instance = instance(&srv, "a");
    let b_loads = srv.running().module("b").unwrap().loads();
    // An operator switched b off; a reload that changes b keeps it off.
    assert!(srv.running().module("b").unwrap().disable());

    let v2 = config(
        "watch: false,",
        r#"(name: "a", source: Lua("a.lua"), config: "one"),
           (name: "b", source: Lua("b.lua"), config: "two"),
           (name: "c", source: Lua("c.lua"), config: "new")"#,
        r#"(path: "/a", handler: Module("a")), (path: "/b", handler: Module("b")),
           (path: "/c", handler: Module("c"))"#,
        "v2",
    );
    std::fs::write(srv.dir.path().join("config.ron"), v2).unwrap();
    let applied = srv
        .running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert_eq!(applied.generation, 2);
    let mut changes = applied.changes.clone();
    changes.sort();
    assert_eq!(
        changes,
        [
            "module `b` changed",
            "module `c` added",
            "module `gone` removed",
            "routes changed"
        ],
        "{:?}",
        applied.changes
    );

    // Unchanged: the very same slot and instance.
    assert!(Arc::ptr_eq(&a_slot, &srv.running().module("a").unwrap()));
    assert_eq!(instance(&srv, "a"), a_instance);
    assert_eq!(body(&srv, "/a").await.1, "a one\n");
    // Changed: a new instance, still switched off, and the generation
    // counts on.
    let b = srv.running().module("b").unwrap();
    assert_eq!(b.status(), "disabled");
    assert_eq!(body(&srv, "/b").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b.enable());
    assert_eq!(body(&srv, "/b").await.1, "b two\n");
    assert_eq!(srv.running().module("b").unwrap().loads(), b_loads + 1);
    // Added and removed.
    assert_eq!(body(&srv, "/c").await.1, "c new\n");
    assert_eq!(body(&srv, "/gone").await.0, StatusCode::NOT_FOUND);
    assert!(srv.running().module("gone").is_none());
    assert!(
        eventually(Duration::from_secs(5), || async {
            std::fs::read_to_string(&marker).unwrap_or_default() == "shutdown\n"
        })
        .await,
        "the removed module's shutdown hook did not run"
    );
    assert_eq!(body(&srv, "/hello").await.1, "v2");
    // The tree follows: a host for c, none for gone.
    let tree = srv.running().tree().render();
    assert!(tree.contains("plugin.c"), "{tree}");
    assert!(!tree.contains("plugin.gone"), "{tree}");

    let status = srv.running().config_status().await.unwrap();
    assert_eq!(
        (status.generation, status.applied, status.refused),
        (2, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_with_its_position_and_the_old_one_serves() {
    let dir = tempfile::tempdir().unwrap();
    lua_echo(dir.path(), "b");
    let admin = r#"watch: false, admin: (listen: "127.0.0.1:0"),"#;
    let modules =
        |b: &str, more: &str| format!(r#"(name: "b", source: Lua("b.lua"), config: "{b}") {more}"#);
    let routes = r#"(path: "/b", handler: Module("b"))"#;
    let v1 = config(admin, &modules("one", ""), routes, "v1");
    let srv = TestServer::start_in(dir, &v1).await;
    all_ready(&srv, &["b"]).await;
    let api = format!("http://{}", srv.running().admin_addr().unwrap());
    let path = srv.dir.path().join("config.ron");
    let post = |url: String| async move {
        let req = http::Request::post(url)
            .header("content-type", "application/json")
            .body(Default::default())
            .unwrap();
        client::send(&client::h1(), req).await
    };

    // A syntax error: 422 with file:line:col, nothing changes.
    std::fs::write(&path, v1.replace("servers: [(", "servers: [(( ")).unwrap();
    let resp = post(format!("{api}/config/reload")).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer: Value = serde_json::from_slice(&resp.body).unwrap();
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{}:6:16:", path.display())),
        "{error}"
    );
    assert_eq!(body(&srv, "/b").await.1, "b one\n");

    // A module that does not load (its init fails) refuses the whole
    // reload, also the change to `b` that did load.
    let b_loads = srv.running().module("b").unwrap().loads();
    let broken = format!(
        r#", (name: "logger", source: Native({}), config: "")"#,
        lib("request_logger")
    );
    std::fs::write(&path, config(admin, &modules("two", &broken), routes, "v2")).unwrap();
    let resp = post(format!("{api}/config/reload")).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    let answer: Value = serde_json::from_slice(&resp.body).unwrap();
    // It names the module, where it is declared, and why it failed.
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("module `logger`: {}:5:", path.display()))
            && error.ends_with("the module's init hook returned -1"),
        "{error}"
    );
    assert_eq!(body(&srv, "/b").await.1, "b one\n");
    assert_eq!(body(&srv, "/hello").await.1, "v1");
    assert_eq!(srv.running().module("b").unwrap().loads(), b_loads);
    assert!(srv.running().module("logger").is_none());
    assert!(!srv.running().tree().render().contains("plugin.logger"));

    // Shown by the admin API and counted.
    let status = client::get(&format!("{api}/config/status")).await;
    let status: Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["generation"], 1);
    assert_eq!(status["failures"], 2);
    assert_eq!(status["last"]["ok"], false);
    assert_eq!(status["last"]["trigger"], "admin");
    assert!(status["last"]["error"].as_str().unwrap().contains("logger"));
    let metrics = client::get(&format!("{api}/metrics")).await.text();
    assert!(
        metrics.contains("troupe_config_reload_failures_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains("troupe_config_generation 1"), "{metrics}");

    // Fixed: applied; the API reports it and the new config.
    std::fs::write(&path, config(admin, &modules("two", ""), routes, "v2")).unwrap();
    let resp = post(format!("{api}/config/reload")).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
    let answer: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(answer["generation"], 2);
    assert_eq!(body(&srv, "/b").await.1, "b two\n");
    let shown: Value =
        serde_json::from_slice(&client::get(&format!("{api}/config")).await.body).unwrap();
    assert_eq!(
        shown["servers"][0]["routes"][0]["handler"]["Return"]["body"],
        "v2"
    );
    let metrics = client::get(&format!("{api}/metrics")).await.text();
    assert!(
        metrics.contains("troupe_config_reloads_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("troupe_config_generation 2"), "{metrics}");
    // The wrong method is a 405, not a reload.
    let get = client::get(&format!("{api}/config/reload")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_the_config_file_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let v = |hello: &str| config("", "", "", hello);
    let srv = TestServer::start_in(dir, &v("v1")).await;
    let path = srv.dir.path().join("config.ron");
    // An editor's save: a temp file renamed over the config.
    save(&path, &v("v2"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            body(&srv, "/hello").await.1 == "v2"
        })
        .await
    );
    // A write in place, too.
    std::fs::write(&path, v("v3")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            body(&srv, "/hello").await.1 == "v3"
        })
        .await
    );
    // A broken save is refused; the last good config serves on. (A write
    // in place is not atomic: a reload may already have read it half
    // written and been refused, so count from here.)
    let before = srv.running().config_status().await.unwrap().refused;
    std::fs::write(&path, "Config(").unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let status = srv.running().config_status().await.unwrap();
            status.refused > before
                && status.last.is_some_and(|last| {
                    last.trigger == Trigger::Watch
                        && last
                            .result
                            .is_err_and(|e| e.contains("config.ron:1:") && e.contains("end of RON"))
                })
        })
        .await
    );
    assert_eq!(body(&srv, "/hello").await.1, "v3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_module_reloads_when_its_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let script = lua_echo(dir.path(), "w");
    let ron = config(
        "watch: false,",
        r#"(name: "w", source: Lua("w.lua"), config: "x", watch: true)"#,
        r#"(path: "/w", handler: Module("w"))"#,
        "v1",
    );
    let srv = TestServer::start_in(dir, &ron).await;
    all_ready(&srv, &["w"]).await;
    assert_eq!(body(&srv, "/w").await.1, "w x\n");
    save(
        &script,
        "function handle(req) return \"edited \" .. troupe.config .. \"\\n\" end\n",
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            body(&srv, "/w").await.1 == "edited x\n"
        })
        .await
    );
    assert_eq!(srv.running().module("w").unwrap().loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modules_dir_files_are_modules_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mods = dir.path().join("mods");
    std::fs::create_dir(&mods).unwrap();
    lua_echo(&mods, "one");
    let v = |routes: &str| config(r#"watch: false, modules_dir: "mods","#, "", routes, "hi");
    let srv = TestServer::start_in(dir, &v(r#"(path: "/one", handler: Module("one"))"#)).await;
    all_ready(&srv, &["one"]).await;
    assert_eq!(body(&srv, "/one").await.1, "one \n");

    // A file dropped in the directory is a module after the next reload
    // (the directory is watched too).
    lua_echo(&mods, "two");
    assert!(
        eventually(Duration::from_secs(10), || async {
            srv.running()
                .module("two")
                .is_some_and(|s| s.status() == "ready")
        })
        .await
    );
    let path = srv.dir.path().join("config.ron");
    std::fs::write(
        &path,
        v(r#"(path: "/one", handler: Module("one")), (path: "/two", handler: Module("two"))"#),
    )
    .unwrap();
    srv.running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert_eq!(body(&srv, "/two").await.1, "two \n");

    // Removing a file that a route still names is refused, by name.
    std::fs::remove_file(mods.join("two.lua")).unwrap();
    let refused = srv
        .running()
        .reload_config(Trigger::Admin)
        .await
        .unwrap_err();
    assert!(refused.contains("no module named `two`"), "{refused}");
    assert_eq!(body(&srv, "/two").await.1, "two \n");
    std::fs::write(&path, v(r#"(path: "/one", handler: Module("one"))"#)).unwrap();
    let applied = srv
        .running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert!(
        applied.changes.contains(&"module `two` removed".to_owned()),
        "{:?}",
        applied.changes
    );
    assert_eq!(body(&srv, "/two").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_open_and_close_and_others_keep_their_connections() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let second = free.local_addr().unwrap();
    drop(free);
    let v = |listen: &str| {
        config("watch: false,", "", "", "hi")
            .replace(r#"listen: ["127.0.0.1:0"]"#, &format!("listen: [{listen}]"))
    };
    let srv = TestServer::start(&v(r#""127.0.0.1:0""#)).await;
    // One keep-alive connection to the first listener, kept throughout.
    let stream = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let (mut conn, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let driven = tokio::spawn(driver);
    let mut ask = async move || {
        let req = http::Request::get("/hello")
            .header("host", "x")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        conn.send_request(req).await.map(|r| r.status())
    };
    assert_eq!(ask().await.unwrap(), StatusCode::OK);

    let path = srv.dir.path().join("config.ron");
    std::fs::write(&path, v(&format!(r#""127.0.0.1:0", "{second}""#))).unwrap();
    let applied = srv
        .running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert_eq!(applied.changes, [format!("listening on {second}")]);
    let resp = client::get(&format!("http://{second}/hello")).await;
    assert_eq!(resp.status, StatusCode::OK);
    // The connection on the unchanged listener did not notice.
    assert_eq!(ask().await.unwrap(), StatusCode::OK);

    // The address the connection came in on leaves the config: no new
    // connections there, and the open one is drained (closed once idle).
    std::fs::write(&path, v(&format!(r#""{second}""#))).unwrap();
    srv.running()
        .reload_config(Trigger::Admin)
        .await
        .expect("reload");
    assert!(
        eventually(Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(srv.addr).await.is_err()
        })
        .await,
        "the removed listener still accepts"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(5), driven)
            .await
            .is_ok(),
        "the idle connection on the removed listener was not closed"
    );
    assert_eq!(
        client::get(&format!("http://{second}/hello")).await.status,
        StatusCode::OK
    );
}

/// A config for the real binary: a pid file, and `/hello` answering
/// `hello`; the config file is not watched, so only signals reload it.
fn daemon_config(dir: &Path, modules: &str, routes: &str, hello: &str) -> PathBuf {
    let path = dir.join("config.ron");
    std::fs::write(
        &path,
        config(
            r#"watch: false, pid_file: "troupe.pid","#,
            modules,
            routes,
            hello,
        ),
    )
    .unwrap();
    path
}

fn reload_by_cli(config: &Path) -> std::process::Output {
    std::process::Command::new(bin())
        .arg("-c")
        .arg(config)
        .args(["-s", "reload"])
        .output()
        .unwrap()
}

#[test]
fn sighup_and_s_reload_apply_a_new_config_and_log_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    lua_echo(dir.path(), "kept");
    lua_echo(dir.path(), "changed");
    lua_echo(dir.path(), "added");
    let modules = |changed: &str, added: bool| {
        let mut m = format!(
            r#"(name: "kept", source: Lua("kept.lua")),
               (name: "changed", source: Lua("changed.lua"), config: "{changed}")"#
        );
        if added {
            m.push_str(r#", (name: "added", source: Lua("added.lua"))"#);
        }
        m
    };
    let cfg = daemon_config(dir.path(), &modules("1", false), "", "v1");
    let d = Daemon::start(&cfg);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let get = |path: &str| {
        let url = format!("http://{}{path}", d.addr);
        rt.block_on(async move { client::get(&url).await.text() })
    };
    assert_eq!(get("/hello"), "v1");

    // `troupe -s reload` (SIGHUP through the pid file).
    daemon_config(dir.path(), &modules("2", true), "", "v2");
    let out = reload_by_cli(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(eventually_sync(Duration::from_secs(10), || get("/hello") == "v2"));
    assert!(d.wait_for_log("config reloaded", Duration::from_secs(5)));
    let logs = d.logs();
    // The tree, logged at start-up and again after the reload.
    assert_eq!(logs.matches("supervision tree:").count(), 2, "{logs}");
    for line in [
        // Supervision events: one line each, with the actor's path.
        "started actor=troupe/modules/plugin.kept",
        "started actor=troupe/listeners/listener.",
        "trigger=\"signal\" generation=2",
        "reloaded (its config or file changed) actor=troupe/modules/plugin.changed",
        "started (the module joined the config) actor=troupe/modules/plugin.added",
    ] {
        assert!(logs.contains(line), "no {line:?} in\n{logs}");
    }

    // A config with an error: `-s reload` reports it with its position
    // and does not signal; a bare SIGHUP is refused by the server.
    std::fs::write(
        &cfg,
        "Config(listen: [\"127.0.0.1:0\"], servers: [(routes: [(path: 5)])])",
    )
    .unwrap();
    let out = reload_by_cli(&cfg);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:1:", cfg.display())), "{err}");
    assert!(err.contains("keeps its config"), "{err}");
    d.signal(libc::SIGHUP);
    assert!(d.wait_for_log("config reload refused", Duration::from_secs(5)));
    assert_eq!(get("/hello"), "v2");

    // A module removed: its host stops, logged with its path.
    daemon_config(dir.path(), &modules("2", false), "", "v3");
    d.signal(libc::SIGHUP);
    assert!(eventually_sync(Duration::from_secs(10), || get("/hello") == "v3"));
    assert!(d.wait_for_log(
        "stopped (the module left the config) actor=troupe/modules/plugin.added",
        Duration::from_secs(5)
    ));
}
