//! The admin web page (issue 5, P8.7) in a real browser: headless Chromium
//! from Debian's packages, driven by playwright-core from npm
//! (`tests/ui/admin.cjs`; `tests/ui/setup.sh` installs both when missing),
//! against the real binary on the shipped config, with a token.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::support::{daemon::Daemon, modules::shipped_config, repo_root};

const TOKEN: &str = "ui-test-token";

/// The shipped modules, the one the page reloads first.
const MODULES: [&str; 6] = [
    "hello_lua",
    "hello_c",
    "hello_rust",
    "hello_wasm",
    "api_key",
    "request_logger",
];

#[test]
fn the_admin_page_shows_the_tree_reloads_a_module_and_moves_with_the_metrics() {
    let setup = Command::new(repo_root().join("tests/ui/setup.sh"))
        .output()
        .expect("run tests/ui/setup.sh");
    assert!(
        setup.status.success(),
        "tests/ui/setup.sh failed:\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let playwright = String::from_utf8_lossy(&setup.stdout).trim().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(r#"admin: (listen: "127.0.0.1:0")"#));
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    std::fs::write(
        &config,
        text.replace(
            r#"admin: (listen: "127.0.0.1:0")"#,
            r#"admin: (listen: "127.0.0.1:0", token_file: "admin.token")"#,
        ),
    )
    .unwrap();
    let d = Daemon::start(&config);
    let admin = d.admin_addr();

    // Traffic for the page's live numbers.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, addr) = (stop.clone(), d.addr);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                while !stop.load(Ordering::Relaxed) {
                    crate::support::client::get(&format!("http://{addr}/hello")).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        })
    };

    // Kept for a human to look at.
    let screenshot = repo_root().join("target/admin-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = Command::new("node")
        .arg(repo_root().join("tests/ui/admin.cjs"))
        .arg(&playwright)
        .arg(format!("http://{admin}/"))
        .arg(TOKEN)
        .arg(&screenshot)
        .args(MODULES)
        .output()
        .expect("run node");
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(
        out.status.success(),
        "{}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.logs()
    );
    assert!(screenshot.exists());
    // The click reached the server.
    assert!(
        d.logs().contains("admin API: module reloaded"),
        "{}",
        d.logs()
    );
}
