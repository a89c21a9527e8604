//! The example and test modules, built from `plugins/` once per test run.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use std::time::Duration;

use super::{eventually, repo_root, server::TestServer};

/// Runs `plugins/build.sh` (C with cc, Rust with cargo) the first time it
/// is called, and returns the directory the libraries are in.
pub fn dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(repo_root().join("plugins/build.sh"))
            .status()
            .expect("run plugins/build.sh");
        assert!(status.success(), "plugins/build.sh failed: {status}");
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("modules")
    })
}

/// The absolute path of a Lua script under `plugins/lua/`, quoted for RON.
pub fn lua(rel: &str) -> String {
    format!(
        "{:?}",
        repo_root()
            .join("plugins/lua")
            .join(rel)
            .display()
            .to_string()
    )
}

/// The absolute path of the component built from `plugins/wasm/*/<name>.c`,
/// quoted for RON.
pub fn wasm(name: &str) -> String {
    format!(
        "{:?}",
        dir()
            .join(format!("{name}_wasm.wasm"))
            .display()
            .to_string()
    )
}

/// The absolute path of the component `plugins/wasm/<lang>/build.sh` builds
/// (`py` or `js`: componentize-py and componentize-js, installed from the
/// package registries on first use), quoted for RON.
pub fn scripted_wasm(lang: &str) -> String {
    let dir = match lang {
        "py" => "python",
        "js" => "js",
        other => panic!("no {other} example"),
    };
    let status = Command::new(repo_root().join("plugins/wasm").join(dir).join("build.sh"))
        .status()
        .expect("run the build script");
    assert!(
        status.success(),
        "plugins/wasm/{dir}/build.sh failed: {status}"
    );
    wasm(&format!("hello_{lang}"))
}

/// The absolute path of `lib<name>.so`, quoted for RON.
pub fn lib(name: &str) -> String {
    format!(
        "{:?}",
        dir().join(format!("lib{name}.so")).display().to_string()
    )
}

/// The shipped `config.ron`, rewritten into `dir`: port 0 (the TLS
/// address on 127.0.0.2, so the two stay apart), the repo's `www/`,
/// modules, localhost certificate and demo htpasswd, and the request
/// log inside `dir`.
pub fn shipped_config(dir: &Path) -> PathBuf {
    let modules = self::dir();
    let text = std::fs::read_to_string(repo_root().join("config.ron")).expect("config.ron");
    let www = repo_root().join("www");
    let tls = modules.parent().expect("target dir").join("tls");
    let text = text
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:8443 tls", "127.0.0.2:0 tls")
        .replace("\"target/tls/", &format!("\"{}/", tls.display()))
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace(
            "root: \"www\"",
            &format!("root: {:?}", www.display().to_string()),
        )
        .replace("\"target/modules/", &format!("\"{}/", modules.display()))
        .replace("\"conf.d/", &format!("\"{}/conf.d/", repo_root().display()))
        .replace(
            "\"plugins/",
            &format!("\"{}/plugins/", repo_root().display()),
        )
        .replace(
            "\"examples/",
            &format!("\"{}/examples/", repo_root().display()),
        )
        .replace(
            "\"target/troupe.pid\"",
            &format!("{:?}", dir.join("troupe.pid").display().to_string()),
        )
        .replace(
            "\"target/requests.log\"",
            &format!("{:?}", dir.join("requests.log").display().to_string()),
        );
    let path = dir.join("config.ron");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A config with `modules` (RON list items) and `routes`, plus `/hello`.
pub fn config(modules: &str, routes: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    modules: [ {modules} ],
    servers: [( routes: [
        (path: "/hello", handler: Return(body: "Hello, World!\n")),
        {routes}
    ] )],
)"#
    )
}

/// A server whose one module `name` (the rest of its entry in `entry`,
/// e.g. `source: Native(..)`) answers `path`, once the module is ready.
pub async fn one_module(name: &str, entry: &str, path: &str) -> TestServer {
    let srv = TestServer::start(&config(
        &format!(r#"(name: "{name}", {entry})"#),
        &format!(r#"(path: "{path}", handler: Module("{name}"))"#),
    ))
    .await;
    ready(&srv, name).await;
    srv
}

/// A module is served once its host has published it.
pub async fn ready(srv: &TestServer, module: &str) {
    let running = srv.running();
    assert!(
        eventually(Duration::from_secs(10), || async {
            running.module(module).map(|s| s.status()) == Some("ready")
        })
        .await,
        "module {module} never became ready"
    );
}
