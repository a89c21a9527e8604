//! Configs and files for the reload tests: a config with a `/hello` to
//! tell generations apart, Lua handlers that echo their config, and a save
//! the way editors do it.

use std::path::{Path, PathBuf};

/// A config around `modules` and `routes` (RON list items), with `/hello`
/// answering `hello` and `extra` fields at the top.
pub fn config(extra: &str, modules: &str, routes: &str, hello: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    {extra}
    modules: [ {modules} ],
    servers: [( routes: [
        (path: "/hello", handler: Return(body: "{hello}")),
        {routes}
    ] )],
)"#
    )
}

/// Writes a Lua handler answering `<name> <config>` to `dir/<name>.lua`.
pub fn lua_echo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(
        &path,
        format!("function handle(req) return \"{name} \" .. troupe.config .. \"\\n\" end\n"),
    )
    .unwrap();
    path
}

/// Replaces `path` the way editors save: a temp file renamed over it.
pub fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
