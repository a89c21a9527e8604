//! The real server, in-process, on an ephemeral loopback port.

use std::{net::SocketAddr, path::Path};

use tempfile::TempDir;

/// A running in-process server and the temp dir its config lives in.
pub struct TestServer {
    pub addr: SocketAddr,
    running: Option<troupe::Running>,
    pub dir: TempDir,
}

impl TestServer {
    /// Writes `ron` to `config.ron` in a fresh temp dir and starts it.
    pub async fn start(ron: &str) -> Self {
        Self::start_in(TempDir::new().expect("temp dir"), ron).await
    }

    /// Like [`TestServer::start`], in a temp dir the test has filled.
    pub async fn start_in(dir: TempDir, ron: &str) -> Self {
        let path = dir.path().join("config.ron");
        std::fs::write(&path, ron).expect("write config");
        let loaded = troupe::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
        Self::launch(dir, loaded).await
    }

    /// Starts a config file from disk (e.g. the shipped one), access log off.
    pub async fn start_file(path: &Path) -> Self {
        super::modules::dir();
        let mut loaded = troupe::config::load(path).unwrap_or_else(|e| panic!("config: {e}"));
        loaded.config.log.access = troupe::config::schema::AccessTarget::Off;
        // Tests run at once: none may take the shipped admin port.
        if let Some(admin) = &mut loaded.admin {
            admin.listen.set_port(0);
        }
        Self::launch(TempDir::new().expect("temp dir"), loaded).await
    }

    async fn launch(dir: TempDir, loaded: troupe::config::Loaded) -> Self {
        init_logs();
        let listeners = troupe::bind(&["127.0.0.1:0".parse().expect("addr")]).expect("bind");
        let options = troupe::Options {
            module_host: super::daemon::bin().into(),
        };
        let running = troupe::start_with(loaded, listeners, options)
            .await
            .expect("start");
        Self {
            addr: running.addrs()[0],
            running: Some(running),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn running(&self) -> &troupe::Running {
        self.running.as_ref().expect("running")
    }

    /// Graceful shutdown; returns the number of connections cut.
    pub async fn stop(mut self) -> usize {
        self.running.take().expect("running").shutdown().await
    }
}

fn init_logs() {
    troupe::observe::logging::init_error_log("warn");
}

/// A minimal config around `routes` (RON text of a route list).
pub fn config_with_routes(routes: &str) -> String {
    format!(
        r#"Config(
    listen: ["127.0.0.1:0"],
    log: (access: Off),
    servers: [( routes: [ {routes} ] )],
)"#
    )
}
