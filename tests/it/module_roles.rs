//! Issue 10 §6: a module used in a role it cannot take is a config error
//! with the file, line and column of the use: at `troupe -t`, and (when
//! the runtime knows the module's hooks without loading it) at start-up
//! and reload too, instead of a 500 for every request.

use std::process::Command;

use crate::support::{
    daemon::bin,
    modules::config,
    modules::{lib, lua, wasm},
};

/// `config` in `dir/c.ron`, as `troupe -t -c` judges it: (exit code, stderr).
fn dash_t(dir: &std::path::Path, text: &str) -> (Option<i32>, String) {
    let path = dir.join("c.ron");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin())
        .args(["-t", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_lua_module_without_handle_is_no_handler() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &format!(
            r#"(name: "key", source: Lua({}))"#,
            lua("examples/api_key.lua")
        ),
        r#"(path: "/k", handler: Module("key"))"#,
    );
    // Refused where every config is read, not only at `-t`.
    let err = troupe::config::load_str(&text, &dir.path().join("c.ron"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.ron:7:16: "), "{err}");
    assert!(
        err.contains("module `key` is used as a handler but has no `handle` hook"),
        "{err}"
    );
    let (code, stderr) = dash_t(dir.path(), &text);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("c.ron:7:16: module `key`"), "{stderr}");
}

/// A component may be a handler or middleware (`troupe:host/api` `pass`),
/// never a logger.
#[test]
fn a_webassembly_module_is_no_logger() {
    let dir = tempfile::tempdir().unwrap();
    let module = format!(r#"(name: "w", source: Wasm({}))"#, wasm("hello"));
    let text = config(
        &module,
        r#"(path: "/w", handler: Return(body: "x"), middleware: [Module("w")])"#,
    );
    troupe::config::load_str(&text, &dir.path().join("c.ron")).expect("middleware is a role");
    let logger = format!(
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    modules: [{module}],\n    servers: [(\n        loggers: [\"w\"],\n        routes: [(path: \"/\", handler: Module(\"w\"))],\n    )],\n)\n"
    );
    let (code, stderr) = dash_t(dir.path(), &logger);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("c.ron:5:9: "), "{stderr}");
    assert!(
        stderr.contains("module `w` cannot be used as a logger"),
        "{stderr}"
    );
}

#[test]
fn dash_t_loads_a_native_library_to_check_its_hooks() {
    let dir = tempfile::tempdir().unwrap();
    // The request logger has a log hook only.
    let module = format!(r#"(name: "rl", source: Native({}))"#, lib("request_logger"));
    let misused = config(&module, r#"(path: "/rl", handler: Module("rl"))"#);
    let (code, stderr) = dash_t(dir.path(), &misused);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("c.ron:7:16: module `rl` is used as a handler but has no `handle` hook"),
        "{stderr}"
    );
    // The same module where it belongs passes.
    let fine = format!(
        "Config(\n    listen: [\"127.0.0.1:0\"],\n    modules: [{module}],\n    servers: [(\n        loggers: [\"rl\"],\n        routes: [(path: \"/\", handler: Return(body: \"x\"))],\n    )],\n)\n"
    );
    let (code, stderr) = dash_t(dir.path(), &fine);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn dash_t_runs_a_scripts_top_level_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    // A top level that needs its config: the check every config read makes
    // cannot tell its hooks, `-t` runs it with the config it is given.
    let script = dir.path().join("greet.lua");
    std::fs::write(
        &script,
        "local greeting = troupe.config:match(\"^greeting=(%a+)$\") or error(\"no greeting in the config\")\n\
         function handle(req) return greeting .. \"\\n\" end\n",
    )
    .unwrap();
    let with = |config: &str| {
        config_of(&format!(
            r#"(name: "greet", source: Lua({:?}), config: "{config}")"#,
            script.display().to_string()
        ))
    };
    let (code, stderr) = dash_t(dir.path(), &with("greeting=hi"));
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = dash_t(dir.path(), &with("nothing"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no greeting in the config"), "{stderr}");
}

fn config_of(module: &str) -> String {
    config(module, r#"(path: "/g", handler: Module("greet"))"#)
}
