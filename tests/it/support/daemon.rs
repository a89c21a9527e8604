//! The real `troupe` binary as a child process.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// A running `troupe -c FILE` and everything it has logged so far.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_troupe")
}

/// Runs `troupe -t -c config`: its exit code and what it printed on stderr.
pub fn check(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .arg("-t")
        .arg("-c")
        .arg(config)
        .output()
        .expect("run troupe -t");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Daemon {
    /// Starts the binary and waits until it has started (its `listening`
    /// and `troupe started` lines).
    pub fn start(config: &Path) -> Self {
        Self::start_logging(config, "info")
    }

    /// [`Daemon::start`] with an error-log filter (`RUST_LOG` syntax).
    pub fn start_logging(config: &Path, filter: &str) -> Self {
        let mut child = Command::new(bin())
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn troupe");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let text = logs.lock().expect("log lock").clone();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.split("listening addr=").nth(1))
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                // Start-up is done (signal handlers set, pid file written).
                && text.contains("troupe started")
            {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("troupe exited early ({status}):\n{text}");
            }
            assert!(Instant::now() < deadline, "troupe did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, addr, logs }
    }

    /// Every address it listens on (port 0 resolved), in the order logged.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.logs()
            .lines()
            .filter_map(|l| l.split("listening addr=").nth(1))
            .filter_map(|a| a.split_whitespace().next()?.parse().ok())
            .collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("log lock").clone()
    }

    /// The admin API's address, once its start is logged (up to 10 s).
    pub fn admin_addr(&self) -> String {
        assert!(
            self.wait_for_log("admin API started", Duration::from_secs(10)),
            "{}",
            self.logs()
        );
        self.logs()
            .lines()
            .find_map(|l| l.split("admin API started addr=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .map(str::to_owned)
            .expect("the admin address in the log")
    }

    /// Waits up to `within` for `needle` to appear in the logs.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for exit, up to `within`; kills it past that.
    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
