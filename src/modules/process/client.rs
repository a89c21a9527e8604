//! The server's side of a `Process`-isolated module: one child process,
//! many requests in flight over one unix socket.
//!
//! The child is `troupe module-host <library>` with the socket as its
//! stdin. A writer task batches frames; a reader task matches replies to
//! waiting requests by id and answers the child's host-API calls. When the
//! child dies, every request in flight gets 502 at once and the failure is
//! reported (once per child) to the module's host actor, which restarts the
//! module; meanwhile `children.rs` serves the next request on its spare.
//! The child's memory limit and CPU priority are set from here, on its pid,
//! before it is told to load the module.

use std::{
    os::fd::OwnedFd,
    path::Path,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use dashmap::DashMap;
use rustix::process::{Pid, Resource, Rlimit, prlimit, setpriority_process};
use tokio::{
    net::UnixStream,
    process::{Child, Command},
    sync::{mpsc, oneshot},
};
use tokio_util::codec::FramedRead;
use troupe_actors::Failures;

use super::wire::{self, ToChild, ToServer, WireError, WireResponse};
use crate::{
    error::HttpError,
    modules::{hostapi::Services, instance::Hooks},
};

/// How long `init` may take in the child.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping child gets to run its shutdown hook.
const EXIT_GRACE: Duration = Duration::from_secs(2);

type Reply = Result<WireResponse, WireError>;

/// A call waiting for its reply, and when it was sent.
type Waiting = (Instant, oneshot::Sender<Reply>);

/// State shared by the client and its reader, writer and watchdog tasks.
struct Shared {
    pending: DashMap<u64, Waiting>,
    dead: AtomicBool,
    child: Mutex<Option<Child>>,
}

impl Shared {
    fn kill(&self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(child) = child.as_mut()
        {
            let _ = child.start_kill();
        }
    }
}

/// Where one child's failures go: to the instance it serves now (the
/// spare that takes over after a crash is adopted by the module's next
/// instance, so its reports must name that one), and only once: a timeout
/// kills the child, whose exit would otherwise be a second report.
pub(crate) struct Report {
    sent: AtomicBool,
    to: Mutex<Failures>,
}

impl Report {
    fn new(to: Failures) -> Arc<Self> {
        Arc::new(Self {
            sent: AtomicBool::new(false),
            to: Mutex::new(to),
        })
    }

    /// Reports the child's first failure; later ones are the same failure.
    fn send(&self, reason: String) {
        if self.sent.swap(true, Ordering::AcqRel) {
            tracing::debug!(%reason, "a module process failed again");
            return;
        }
        let to = self.to.lock().unwrap_or_else(|e| e.into_inner()).clone();
        to.report(reason);
    }
}

/// The limits a child runs under (`process: (..)` in the module's entry).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `RLIMIT_DATA` in bytes; 0 for none.
    pub memory: u64,
    /// Its nice value.
    pub nice: i32,
}

/// A running child process serving one module.
pub struct Client {
    tx: mpsc::UnboundedSender<Bytes>,
    shared: Arc<Shared>,
    next: AtomicU64,
    hooks: Hooks,
    timeout: Duration,
    report: Arc<Report>,
    stopping: Arc<AtomicBool>,
    pid: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("pid", &self.pid)
            .field("hooks", &self.hooks)
            .finish()
    }
}

/// What a child is started with.
pub struct Spawn<'a> {
    /// The executable that hosts modules (`troupe`, run as `troupe module-host`).
    pub exe: &'a Path,
    /// The module library.
    pub library: &'a Path,
    /// The module's name.
    pub module: &'a str,
    /// Its config text.
    pub config: &'a str,
    /// Longest a call may take.
    pub timeout: Duration,
    /// Where the child's host-API calls go.
    pub services: Arc<dyn Services>,
    /// Where failures are reported (see [`Client::rebind`]).
    pub failures: Failures,
    /// Its memory limit and priority.
    pub limits: Limits,
}

/// The child's mimalloc arena reservation (see [`Client::spawn`]).
const CHILD_ARENA_RESERVE: &str = "16MiB";

/// Puts a just-started child under `limits`. From the server's side, on
/// its pid (`prlimit`, `setpriority`), rather than in a `pre_exec` hook:
/// that would make every spawn a full `fork` of the server instead of a
/// `posix_spawn`. The child loads the module only once `Init` arrives,
/// which is sent after this, so the library never runs without them.
fn limit(pid: u32, limits: Limits) -> Result<(), String> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("invalid pid {pid}"))?;
    if limits.memory > 0 {
        let to = Some(limits.memory);
        let rlimit = Rlimit {
            current: to,
            maximum: to,
        };
        prlimit(Some(pid), Resource::Data, rlimit)
            .map_err(|e| format!("cannot limit the module process's memory: {e}"))?;
    }
    if limits.nice != 0 {
        setpriority_process(Some(pid), limits.nice)
            .map_err(|e| format!("cannot set the module process's priority: {e}"))?;
    }
    Ok(())
}

impl Client {
    /// Starts the child, runs the module's `init` in it, and starts serving.
    pub async fn spawn(s: Spawn<'_>) -> Result<Self, String> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| format!("cannot create a socket pair: {e}"))?;
        let child = Command::new(s.exe)
            .arg("module-host")
            .arg(s.library)
            // mimalloc (the binary's allocator) reserves a 1 GiB arena at
            // its first allocation, which counts against RLIMIT_DATA: a
            // child that got there before `limit` below would be over its
            // limit from then on, and fail its next allocation. A small
            // reservation keeps it under any sensible limit.
            .env("MIMALLOC_ARENA_RESERVE", CHILD_ARENA_RESERVE)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {} module-host: {e}", s.exe.display()))?;
        // Dropping `child` (kill_on_drop) ends it if this fails.
        let pid = child.id().ok_or("the module process ended at once")?;
        limit(pid, s.limits)?;
        ours.set_nonblocking(true)
            .map_err(|e| format!("socket: {e}"))?;
        let (read, write) = UnixStream::from_std(ours)
            .map_err(|e| format!("socket: {e}"))?
            .into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pending: DashMap::new(),
            dead: AtomicBool::new(false),
            child: Mutex::new(Some(child)),
        });
        let writing = shared.clone();
        tokio::spawn(async move {
            wire::write_frames(rx, write).await;
            // The writer only stops on its own when the socket broke: the
            // child cannot get calls any more, so it must be replaced.
            writing.dead.store(true, Ordering::Release);
            writing.kill();
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let report = Report::new(s.failures);
        let (ready, init) = oneshot::channel();
        tokio::spawn(read_replies(Reader {
            frames: FramedRead::new(read, wire::codec()),
            shared: shared.clone(),
            tx: tx.clone(),
            services: s.services,
            module: s.module.into(),
            report: report.clone(),
            stopping: stopping.clone(),
            ready: Some(ready),
        }));
        let _ = tx.send(wire::encode(&ToChild::Init {
            module: s.module,
            config: s.config,
        }));
        let failed = |why: String| {
            // This child never served: its exit is no one's failure but
            // the load's, which the caller reports.
            stopping.store(true, Ordering::Release);
            shared.kill();
            Err(why)
        };
        let hooks = match tokio::time::timeout(INIT_TIMEOUT, init).await {
            Ok(Ok(Ok(hooks))) => hooks,
            Ok(Ok(Err(why))) => return failed(why),
            Ok(Err(_)) => return failed("the module process ended during init".into()),
            Err(_) => return failed("the module's init did not finish within 10s".into()),
        };
        tokio::spawn(watch_calls(shared.clone(), s.timeout, report.clone()));
        Ok(Self {
            tx,
            shared,
            next: AtomicU64::new(1),
            hooks,
            timeout: s.timeout,
            report,
            stopping,
            pid,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child can no longer serve: it is gone, or it failed
    /// (a timeout, a hook's crash-like error) and is to be replaced.
    pub fn failed(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire) || self.report.sent.load(Ordering::Acquire)
    }

    /// From now on its failures go to `failures` (a new instance of the
    /// module took this child over).
    pub fn rebind(&self, failures: Failures) {
        *self.report.to.lock().unwrap_or_else(|e| e.into_inner()) = failures;
    }

    /// The hooks the module offers.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }

    /// Sends a frame that expects no reply (the log hook).
    pub fn notify(&self, frame: Bytes) {
        let _ = self.tx.send(frame);
    }

    /// Sends the frame `make(id)` and waits for its reply within the timeout.
    ///
    /// 502 if the child dies first (its failure is reported by the reader);
    /// 504 on timeout (the child is killed and the failure reported); 500
    /// if the hook itself failed (reported here).
    pub fn call(
        &self,
        make: impl FnOnce(u64) -> Bytes,
    ) -> impl Future<Output = Result<WireResponse, HttpError>> + Send + 'static {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let shared = self.shared.clone();
        let report = self.report.clone();
        let timeout = self.timeout;
        let sent = !shared.dead.load(Ordering::Acquire) && {
            shared.pending.insert(id, (Instant::now(), reply));
            // The reader may have drained `pending` just before the insert.
            !shared.dead.load(Ordering::Acquire) && self.tx.send(make(id)).is_ok()
        };
        async move {
            if !sent {
                shared.pending.remove(&id);
                return Err(HttpError::BadGateway("module process is down"));
            }
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(Ok(resp))) => Ok(resp),
                Ok(Ok(Err(e))) => {
                    if e.restart {
                        report.send(e.why.clone());
                    }
                    Err(HttpError::Internal(e.why))
                }
                Ok(Err(_)) => Err(HttpError::BadGateway("module process died")),
                Err(_) => {
                    shared.pending.remove(&id);
                    // Native code cannot be interrupted: replace the process.
                    shared.kill();
                    report.send(format!("a call took longer than {timeout:?}"));
                    Err(HttpError::GatewayTimeout("module timed out"))
                }
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Replaced or stopping: the child finishes the calls in flight
        // (their replies still arrive, and their store reads are still
        // answered), runs the module's shutdown, and exits; its exit is
        // then expected, not a failure. A child stuck in a call is killed
        // once the calls could have timed out.
        self.stopping.store(true, Ordering::Release);
        let _ = self.tx.send(wire::encode(&ToChild::Close));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (shared, grace) = (self.shared.clone(), self.timeout + EXIT_GRACE);
            runtime.spawn(async move {
                tokio::time::sleep(grace).await;
                shared.kill();
            });
        }
    }
}

/// Catches calls stuck in the child even when nobody waits for them any
/// more (a client that gave up drops the future that holds the timeout):
/// past the timeout, the child is killed and the failure reported.
async fn watch_calls(shared: Arc<Shared>, timeout: Duration, report: Arc<Report>) {
    let period = timeout.min(Duration::from_secs(1));
    // The waiting caller's own timer answers 504 first; this is the backstop.
    let limit = timeout + period;
    loop {
        tokio::time::sleep(period).await;
        if shared.dead.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let stuck = shared
            .pending
            .iter()
            .any(|entry| now.duration_since(entry.value().0) > limit);
        if stuck {
            shared.kill();
            report.send(format!("a call took longer than {timeout:?}"));
            return;
        }
    }
}

struct Reader {
    frames: wire::FrameStream,
    shared: Arc<Shared>,
    /// To answer store reads; dropped when the child exits, which ends
    /// the writer once the client is gone too.
    tx: mpsc::UnboundedSender<Bytes>,
    services: Arc<dyn Services>,
    module: Arc<str>,
    report: Arc<Report>,
    stopping: Arc<AtomicBool>,
    /// Until `init` has answered: where its outcome goes.
    ready: Option<oneshot::Sender<Result<Hooks, String>>>,
}

async fn read_replies(mut r: Reader) {
    while let Some(frame) = wire::next_frame(&mut r.frames).await {
        let Ok(msg) = postcard::from_bytes::<ToServer>(&frame) else {
            tracing::error!(module = %r.module, "module process sent an invalid frame");
            break;
        };
        match msg {
            ToServer::Reply { id, result } => {
                if let Some((_, (_, waiter))) = r.shared.pending.remove(&id) {
                    let _ = waiter.send(result);
                }
            }
            ToServer::KvGet { id, key } => {
                let value = r.services.kv_get(key);
                let _ = r.tx.send(wire::encode(&ToChild::KvValue {
                    id,
                    value: value.as_deref(),
                }));
            }
            ToServer::KvSet { id, key, value } => {
                let result = r
                    .services
                    .kv_set(&r.module, key, Bytes::copy_from_slice(value));
                let _ = r.tx.send(wire::encode(&ToChild::KvStored { id, result }));
            }
            ToServer::KvDelete(key) => r.services.kv_delete(key),
            ToServer::Metric { name, by } => r.services.metric(&r.module, name, by),
            ToServer::Log { level, msg } => r.services.log(&r.module, level, msg),
            ToServer::Ready(hooks) => {
                if let Some(ready) = r.ready.take() {
                    let _ = ready.send(Ok(hooks));
                }
            }
            ToServer::InitFailed(why) => {
                // The child exits now; that is the load's failure (a
                // spare's is only logged), not a crash to report.
                r.stopping.store(true, Ordering::Release);
                if let Some(ready) = r.ready.take() {
                    let _ = ready.send(Err(why));
                }
            }
        }
    }
    // EOF: the child is gone. Whether that was expected is decided now:
    // the spare taking over drops this client (marking it stopping) while
    // the exit status is awaited below.
    let expected = r.stopping.load(Ordering::Acquire);
    // Fail what is in flight at once (dropping the senders answers 502),
    // then find out why it ended.
    r.shared.dead.store(true, Ordering::Release);
    r.shared.pending.clear();
    let reason = exit_reason(&r.shared).await;
    if let Some(ready) = r.ready.take() {
        // Died during init: the load fails, which is reported already.
        let _ = ready.send(Err(reason));
    } else if expected {
        tracing::debug!(module = %r.module, %reason, "module process stopped");
    } else {
        tracing::error!(module = %r.module, %reason, "module process died");
        r.report.send(reason);
    }
}

/// Waits briefly for the child and describes how it ended.
async fn exit_reason(shared: &Shared) -> String {
    let child = shared.child.lock().ok().and_then(|mut c| c.take());
    let Some(mut child) = child else {
        return "the module process is gone".into();
    };
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => describe(status),
        _ => {
            let _ = child.start_kill();
            "the module process closed its socket".into()
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(sig)) => format!(
            "the module process was killed by signal {sig}{}",
            signal_name(sig)
        ),
        (Some(code), _) => format!("the module process exited with status {code}"),
        _ => "the module process ended".into(),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        15 => " (SIGTERM)",
        _ => "",
    }
}
