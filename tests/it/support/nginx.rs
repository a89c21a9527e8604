//! The local nginx, for tests that compare Troupe with it: found or
//! installed from Debian (`nginx-light`), and run in the foreground as
//! one process on a config the test writes.

use std::{
    net::{SocketAddr, TcpListener},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

/// The nginx binary: in /usr/sbin (or elsewhere usual), else Debian's
/// nginx-light installed now (CI runs as root); `None` when that fails
/// too. Blocking: call it from `spawn_blocking`.
pub fn binary() -> Option<String> {
    let find = || {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .map(str::to_owned)
    };
    if let Some(found) = find() {
        return Some(found);
    }
    super::apt_install("nginx-light");
    find()
}

/// A free loopback address (another binder could race for it: nginx then
/// fails to start and [`Nginx::start`] says so).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// nginx running, killed on drop.
pub struct Nginx {
    child: Child,
    /// Its directory: config, logs, temp files, and whatever the test
    /// puts there (a root to serve).
    pub dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts `bin` with what `http` returns (given nginx's directory,
    /// which it may fill, e.g. with a root to serve) as the body of its
    /// `http {}` block; returns once `ready` accepts connections.
    pub fn start(bin: &str, http: impl FnOnce(&Path) -> String, ready: SocketAddr) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let http = http(dir.path());
        // One process (no master and worker): killing it leaves nothing
        // behind holding the port, or the descriptors it inherited.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n{http}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let mut cmd = Command::new(bin);
        cmd.arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // If the test process dies without dropping `Nginx`, nginx goes too.
        // SAFETY: one async-signal-safe system call between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let nginx = Nginx {
            child: cmd.spawn().expect("spawn nginx"),
            dir,
        };
        assert!(
            super::eventually_sync(Duration::from_secs(10), || {
                std::net::TcpStream::connect(ready).is_ok()
            }),
            "nginx did not start: {}",
            std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
        );
        nginx
    }
}
