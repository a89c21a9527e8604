//! `troupe module-host <library>`: the child process of a `Process` module.
//!
//! Its stdin is a unix socket to the server. It loads the library, runs
//! `init` when asked, and then runs each call on the blocking pool, so a
//! slow or stuck call never holds up the others, while a reader answers
//! frames as they come. Host-API calls travel back to the server, so the
//! shared store and the counters are the server's own. When the server
//! closes the socket, the module's `shutdown` runs and the process exits.

use std::{
    os::fd::AsFd,
    path::Path,
    process::ExitCode,
    sync::{
        Arc, OnceLock,
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

use super::wire::{self, Hook, ToChild, ToServer, WireResponse};
use crate::modules::{
    hostapi::{Builder, Services},
    native::{Library, Native, RawRequest},
};

/// How long a host-API read waits for the server.
const KV_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the module host until the server hangs up.
pub fn main(library: &Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("troupe-module")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("troupe module-host: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(library));
    // A call stuck in native code cannot be joined; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn serve(library: &Path) -> ExitCode {
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
    let module: Arc<OnceLock<Arc<Native>>> = Arc::new(OnceLock::new());
    let mut frames = FramedRead::new(read, wire::codec());
    while let Some(frame) = wire::next_frame(&mut frames).await {
        let frame = frame.freeze();
        let Ok(msg) = postcard::from_bytes::<ToChild>(&frame) else {
            eprintln!("troupe module-host: invalid frame from the server");
            return ExitCode::FAILURE;
        };
        match msg {
            ToChild::KvValue { id, value } => {
                if let Some((_, waiter)) = remote.waiting.remove(&id) {
                    let _ = waiter.send(value.map(Bytes::copy_from_slice));
                }
            }
            ToChild::Init {
                module: name,
                config,
            } => {
                let (name, config) = (Arc::<str>::from(name), config.to_owned());
                let (lib, slot, remote, tx) = (
                    library.to_owned(),
                    module.clone(),
                    remote.clone(),
                    tx.clone(),
                );
                // Off the reader, so that host-API calls made by `init`
                // (a store read, say) are answered.
                tokio::task::spawn_blocking(move || {
                    let reply = match Library::open(&lib) {
                        Err(e) => ToServer::InitFailed(e.to_string()),
                        Ok(lib) => match Native::init(Arc::new(lib), name, &config, remote) {
                            Err(e) => ToServer::InitFailed(e.to_string()),
                            Ok(native) => {
                                let hooks = native.hooks();
                                let _ = slot.set(Arc::new(native));
                                ToServer::Ready(hooks)
                            }
                        },
                    };
                    let _ = tx.send(wire::encode(&reply));
                });
            }
            _ => {
                let Some(native) = module.get().cloned() else {
                    continue;
                };
                let tx = tx.clone();
                tokio::task::spawn_blocking(move || run(&native, &frame, &tx));
            }
        }
    }
    // The server hung up: let the module shut down once its last call is
    // done (dropping the last `Native` runs `shutdown`).
    drop(module);
    drop(remote);
    drop(tx);
    let _ = writer.await;
    ExitCode::SUCCESS
}

/// Runs one call frame on a blocking thread and sends its reply.
fn run(native: &Native, frame: &[u8], tx: &mpsc::UnboundedSender<Bytes>) {
    let Ok(msg) = postcard::from_bytes::<ToChild>(frame) else {
        return;
    };
    let (id, result) = match msg {
        ToChild::Call { id, hook, req } => {
            let raw = RawRequest::new(
                req.method,
                req.path,
                req.query,
                req.headers.iter().map(|(n, v)| (n.as_bytes(), *v)),
                req.params.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                req.body,
                req.peer,
            );
            let result = match hook {
                Hook::Handle => native.handle(&raw.raw()).map(|b| to_wire(b, false)),
                Hook::RequestFilter => native
                    .request_filter(&raw.raw())
                    .map(|(respond, b)| to_wire(b, respond)),
            };
            (id, result)
        }
        ToChild::ResponseFilter {
            id,
            status,
            headers,
        } => {
            let mut map = HeaderMap::with_capacity(headers.len());
            for (n, v) in headers {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(n.as_bytes()),
                    http::HeaderValue::from_bytes(v),
                ) {
                    map.append(n, v);
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
        ToChild::Init { .. } | ToChild::KvValue { .. } => return,
    };
    let result = result.map_err(|e| e.to_string());
    let _ = tx.send(wire::encode(&ToServer::Reply { id, result }));
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
    }
}

/// The host API in the child: every call goes to the server.
struct Remote {
    tx: mpsc::UnboundedSender<Bytes>,
    waiting: DashMap<u64, std::sync::mpsc::Sender<Option<Bytes>>>,
    next: AtomicU64,
}

impl Services for Remote {
    fn log(&self, _module: &str, level: u32, msg: &str) {
        let _ = self.tx.send(wire::encode(&ToServer::Log { level, msg }));
    }

    fn kv_get(&self, key: &str) -> Option<Bytes> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        self.waiting.insert(id, tx);
        let _ = self.tx.send(wire::encode(&ToServer::KvGet { id, key }));
        let value = rx.recv_timeout(KV_TIMEOUT).ok().flatten();
        self.waiting.remove(&id);
        value
    }

    fn kv_set(&self, key: &str, value: Bytes) {
        let _ = self
            .tx
            .send(wire::encode(&ToServer::KvSet { key, value: &value }));
    }

    fn kv_delete(&self, key: &str) {
        let _ = self.tx.send(wire::encode(&ToServer::KvDelete(key)));
    }

    fn metric(&self, _module: &str, name: &str, by: u64) {
        let _ = self.tx.send(wire::encode(&ToServer::Metric { name, by }));
    }
}
