//! What a connection would cost as an actor, against the tracked task it is.
//!
//! Connections are tasks in their listener's `TaskTracker`, with panics
//! reported to the listener (actors/src/listener.rs). This measures the
//! alternative: one ractor actor spawned and stopped per connection. It
//! also measures the one mailbox hop a request would pay if it went
//! through an actor, against the `ArcSwap` load it does instead.
//!
//! `cargo bench --bench supervision`

use std::{hint::black_box, panic::AssertUnwindSafe, sync::Arc};

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

fn connection_cost(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("connection");
    g.bench_function("actor_spawn_stop", |b| {
        b.to_async(&rt).iter(|| async {
            let (a, h) = Actor::spawn(None, Conn, ()).await.expect("spawn");
            a.stop(None);
            h.await.expect("join");
        })
    });
    let tracker = TaskTracker::new();
    g.bench_function("tracked_task_spawn_join", |b| {
        b.to_async(&rt).iter(|| async {
            let h = tracker.spawn(async {
                let _ = AssertUnwindSafe(async { black_box(1) })
                    .catch_unwind()
                    .await;
            });
            h.await.expect("join");
        })
    });
    g.finish();

    let mut g = c.benchmark_group("per_request_state");
    let (router, _) = rt
        .block_on(Actor::spawn(None, Router, ()))
        .expect("spawn router");
    g.bench_function("actor_call", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(router.call(|r| r, None).await.expect("call")) })
    });
    let slot = Arc::new(ArcSwap::from_pointee(7u64));
    g.bench_function("arcswap_load_full", |b| {
        b.iter(|| black_box(slot.load_full()))
    });
    g.finish();
}

criterion_group!(benches, connection_cost);
criterion_main!(benches);
