//! `troupe module-host <library>`: the child process of a `Process` module.
//!
//! Its stdin is a unix socket to the server. Two threads: the runtime's
//! (reading frames, writing replies in batches, answering the module's
//! pending store reads) and one call thread that runs `init` and then every
//! hook in order. Under load the call thread never sleeps between calls,
//! which matters: a thread wake-up per call (tokio's blocking pool) cost
//! more than the call itself. A stuck call stalls the module's other calls
//! until the server's timeout replaces the process. Host-API calls travel
//! back to the server, so the shared store and the counters are the
//! server's own. On `Close` the call thread finishes its queue and drops
//! the module (running its `shutdown`), and the process exits; on EOF (the
//! server is gone) it exits at once.

use std::{
    os::fd::AsFd,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use dashmap::DashMap;
use http::HeaderMap;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use troupe_abi as abi;

use super::wire::{self, Hook, ToChild, ToServer, WireError, WireRequest, WireResponse};
use crate::modules::{
    hostapi::{Builder, KvRefused, Services},
    native::{Library, Native, RequestParts, with_raw_request},
};

/// How long a host-API read or write waits for the server.
const KV_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the module's `shutdown` may take once the server hangs up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the module host until the server hangs up.
pub fn main(library: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("troupe module-host: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(library.to_owned()))
}

async fn serve(library: PathBuf) -> ExitCode {
    let socket = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::os::unix::net::UnixStream::from)
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(s)
        });
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            eprintln!("troupe module-host: stdin is not the server's socket: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (read, write) = socket.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(wire::write_frames(rx, write));
    let remote = Arc::new(Remote {
        tx: tx.clone(),
        waiting: DashMap::new(),
        next: AtomicU64::new(1),
    });
    let (calls, queue) = std::sync::mpsc::channel::<Bytes>();
    let (done, mut finished) = tokio::sync::oneshot::channel::<()>();
    let caller = {
        let remote = remote.clone();
        std::thread::Builder::new()
            .name("troupe-module-call".into())
            .spawn(move || {
                run_calls(&library, queue, remote, tx);
                let _ = done.send(());
            })
    };
    if let Err(e) = caller {
        eprintln!("troupe module-host: cannot start the call thread: {e}");
        return ExitCode::FAILURE;
    }
    let mut calls = Some(calls);
    let mut frames = FramedRead::new(read, wire::codec());
    loop {
        let frame = tokio::select! {
            frame = wire::next_frame(&mut frames) => frame,
            // The call thread is done (after Close, or init failed).
            _ = &mut finished => break,
        };
        // EOF: the server is gone; nobody wants the replies.
        let Some(frame) = frame else { break };
        let frame = frame.freeze();
        match postcard::from_bytes::<ToChild>(&frame) {
            // Answered here: the call thread is waiting for it.
            Ok(ToChild::KvValue { id, value }) => {
                if let Some((_, waiter)) = remote.waiting.remove(&id) {
                    let _ = waiter.send(Answer::Value(value.map(Bytes::copy_from_slice)));
                }
            }
            Ok(ToChild::KvStored { id, result }) => {
                if let Some((_, waiter)) = remote.waiting.remove(&id) {
                    let _ = waiter.send(Answer::Stored(result));
                }
            }
            // The call thread drains its queue, then drops the module
            // (running `shutdown`) and finishes; store reads are still
            // answered until then.
            Ok(ToChild::Close) => calls = None,
            Ok(_) => {
                if let Some(calls) = &calls {
                    let _ = calls.send(frame);
                }
            }
            Err(_) => {
                eprintln!("troupe module-host: invalid frame from the server");
                return ExitCode::FAILURE;
            }
        }
    }
    drop(calls);
    drop(remote);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, writer).await;
    ExitCode::SUCCESS
}

/// The call thread: `init` first, then each call in order.
fn run_calls(
    library: &Path,
    queue: std::sync::mpsc::Receiver<Bytes>,
    remote: Arc<Remote>,
    tx: mpsc::UnboundedSender<Bytes>,
) {
    let Ok(first) = queue.recv() else { return };
    let Ok(ToChild::Init { module, config }) = postcard::from_bytes::<ToChild>(&first) else {
        let _ = tx.send(wire::encode(&ToServer::InitFailed(
            "the first frame was not Init".into(),
        )));
        return;
    };
    let native = Library::open(library)
        .map_err(|e| e.to_string())
        .and_then(|lib| {
            Native::init(Arc::new(lib), module.into(), config, remote).map_err(|e| e.to_string())
        });
    let native = match native {
        Ok(native) => {
            let _ = tx.send(wire::encode(&ToServer::Ready(native.hooks())));
            native
        }
        Err(why) => {
            let _ = tx.send(wire::encode(&ToServer::InitFailed(why)));
            return;
        }
    };
    while let Ok(frame) = queue.recv() {
        run(&native, &frame, &tx);
    }
}

/// Runs one call frame and sends its reply.
fn run(native: &Native, frame: &[u8], tx: &mpsc::UnboundedSender<Bytes>) {
    let Ok(msg) = postcard::from_bytes::<ToChild>(frame) else {
        return;
    };
    let (id, result) = match msg {
        ToChild::Call { id, hook, req } => {
            let result = with_wire_request(&req, |raw| match hook {
                Hook::Handle => native.handle(raw).map(|b| to_wire(b, false)),
                Hook::RequestFilter => native
                    .request_filter(raw)
                    .map(|(respond, b)| to_wire(b, respond)),
            });
            (id, result)
        }
        ToChild::ResponseFilter {
            id,
            status,
            headers,
        } => {
            let mut map = HeaderMap::new();
            for (n, v) in headers {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(n.as_bytes()),
                    http::HeaderValue::from_bytes(v),
                ) {
                    let _ = map.try_append(n, v);
                }
            }
            let result = native
                .response_filter(Builder::head(status, map))
                .map(|b| to_wire(b, false));
            (id, result)
        }
        ToChild::Log(l) => {
            native.log(&abi::LogEntry {
                method: abi::Str::new(l.method.as_bytes()),
                path: abi::Str::new(l.path.as_bytes()),
                query: abi::Str::new(l.query.as_bytes()),
                peer: abi::Str::new(l.peer.as_bytes()),
                status: l.status,
                bytes: l.bytes,
                duration_us: l.duration_us,
            });
            return;
        }
        ToChild::Init { .. }
        | ToChild::KvValue { .. }
        | ToChild::KvStored { .. }
        | ToChild::Close => return,
    };
    let result = match result {
        Ok(r) if r.body.len() > wire::MAX_BODY => Err(WireError {
            why: format!(
                "the response body ({} bytes) is larger than a frame may carry",
                r.body.len()
            ),
            restart: false,
        }),
        Ok(r) => Ok(r),
        Err(e) => Err(WireError {
            why: e.to_string(),
            restart: e.restarts(),
        }),
    };
    let hint = 256 + result.as_ref().map_or(0, |r| r.body.len());
    let _ = tx.send(wire::encode_sized(&ToServer::Reply { id, result }, hint));
}

/// Calls `f` with a request from the server in the ABI's shape, as the
/// module's hooks get it.
pub(crate) fn with_wire_request<R>(req: &WireRequest<'_>, f: impl FnOnce(&abi::Request) -> R) -> R {
    let parts = RequestParts {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: req.headers.iter().map(|(n, v)| (n.as_bytes(), *v)),
        params: req.params.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        body: req.body,
        peer: req.peer,
    };
    with_raw_request(parts, f)
}

fn to_wire(b: Builder, respond: bool) -> WireResponse {
    WireResponse {
        status: b.status,
        headers: b
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: b.body,
        respond,
        upstream: b.upstream,
        rate_key: b.rate_key,
    }
}

/// The host API in the child: every call goes to the server.
struct Remote {
    tx: mpsc::UnboundedSender<Bytes>,
    /// Store calls waiting for the server's answer, by id.
    waiting: DashMap<u64, std::sync::mpsc::Sender<Answer>>,
    next: AtomicU64,
}

/// The server's answer to a store call.
enum Answer {
    /// To a read.
    Value(Option<Bytes>),
    /// To a write.
    Stored(Result<(), KvRefused>),
}

impl Remote {
    /// Sends the frame `ask(id)` makes and waits for its answer, up to
    /// [`KV_TIMEOUT`] (`None` past it, or if the server is gone).
    fn ask(&self, ask: impl FnOnce(u64) -> Bytes) -> Option<Answer> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        self.waiting.insert(id, tx);
        let _ = self.tx.send(ask(id));
        let answer = rx.recv_timeout(KV_TIMEOUT).ok();
        self.waiting.remove(&id);
        answer
    }
}

impl Services for Remote {
    fn log(&self, _module: &str, level: u32, msg: &str) {
        let _ = self.tx.send(wire::encode(&ToServer::Log { level, msg }));
    }

    fn kv_get(&self, key: &str) -> Option<Bytes> {
        match self.ask(|id| wire::encode(&ToServer::KvGet { id, key })) {
            Some(Answer::Value(value)) => value,
            _ => None,
        }
    }

    /// A round trip, like a read: the quota is the server's to check, and
    /// the module must learn the outcome. (`module` is not sent: the server
    /// charges the module whose socket the write came on.)
    fn kv_set(&self, _module: &str, key: &str, value: Bytes) -> Result<(), KvRefused> {
        let hint = 64 + key.len() + value.len();
        let ask = |id| {
            wire::encode_sized(
                &ToServer::KvSet {
                    id,
                    key,
                    value: &value,
                },
                hint,
            )
        };
        match self.ask(ask) {
            Some(Answer::Stored(result)) => result,
            _ => Err(KvRefused::Unavailable(format!(
                "the server did not answer the write within {KV_TIMEOUT:?}"
            ))),
        }
    }

    fn kv_delete(&self, key: &str) {
        let _ = self.tx.send(wire::encode(&ToServer::KvDelete(key)));
    }

    fn metric(&self, _module: &str, name: &str, by: u64) {
        let _ = self.tx.send(wire::encode(&ToServer::Metric { name, by }));
    }
}
