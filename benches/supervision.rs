//! What a connection would cost as an actor, against the tracked task it is.
//!
//! Connections are tasks in their listener's `TaskTracker`, with panics
//! reported to the listener (actors/src/listener.rs). This measures the
//! alternative: one ractor actor spawned and stopped per connection. It
//! also measures the one mailbox hop a request would pay if it went
//! through an actor, against the `ArcSwap` load it does instead.
//!
//! `cargo bench --bench supervision`

use std::{
    hint::black_box,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio_util::task::TaskTracker;

struct Conn;

impl Actor for Conn {
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

struct Router;

impl Actor for Router {
    type Msg = RpcReplyPort<u64>;
    type State = u64;
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(7)
    }
    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        reply: Self::Msg,
        st: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(*st);
        Ok(())
    }
}

/// Times `iters` runs of `one` inside a task on a runtime worker, as a
/// listener's accept loop runs: from `block_on`'s thread every join would
/// also pay a cross-thread wake-up (~30 µs here), drowning the figure.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, one: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                one().await;
            }
            start.elapsed()
        })
        .await
        .expect("bench task")
    })
}

fn connection_cost(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("connection");
    g.bench_function("actor_spawn_stop", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || async {
                let (a, h) = Actor::spawn(None, Conn, ()).await.expect("spawn");
                a.stop(None);
                h.await.expect("join");
            })
        })
    });
    let tracker = TaskTracker::new();
    g.bench_function("tracked_task_spawn_join", |b| {
        b.iter_custom(|iters| {
            let tracker = tracker.clone();
            timed(&rt, iters, move || {
                let tracker = tracker.clone();
                async move {
                    let h = tracker.spawn(async {
                        let _ = AssertUnwindSafe(async { black_box(1) })
                            .catch_unwind()
                            .await;
                    });
                    h.await.expect("join");
                }
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("per_request_state");
    let (router, _) = rt
        .block_on(Actor::spawn(None, Router, ()))
        .expect("spawn router");
    g.bench_function("actor_call", |b| {
        b.iter_custom(|iters| {
            let router = router.clone();
            timed(&rt, iters, move || {
                let router = router.clone();
                async move {
                    black_box(router.call(|r| r, None).await.expect("call"));
                }
            })
        })
    });
    let slot = Arc::new(ArcSwap::from_pointee(7u64));
    g.bench_function("arcswap_load", |b| b.iter(|| black_box(**slot.load())));
    g.finish();
}

criterion_group!(benches, connection_cost);
criterion_main!(benches);
