//! The executor hyper's HTTP/2 server spawns each stream on.
//!
//! hyper spawns one task per HTTP/2 stream. Most of ours finish on their
//! first poll: the handler already ran inside hyper's service call (see
//! `respond`), so the stream only has to hand a ready response to h2. A
//! task spawn, a run-queue round trip and a wake-up per request are then
//! pure overhead.
//!
//! [`Deferring`] therefore does not spawn a stream while the connection
//! driver is polling hyper: it queues it, and the driver polls the queue
//! right after hyper returns ([`run_deferred`]). Polling them there, not
//! inside `execute`, matters: h2 flushes whenever it accepts the next
//! stream, so answering each stream the moment it is accepted cost one
//! `writev` per request, where a batch of answers goes out in one.
//! A stream that is not done after that first poll is spawned on tokio.
//!
//! Polling with a no-op waker is sound: a future that returns `Pending` is
//! spawned at once, and the task's first poll registers the real waker and
//! re-checks readiness, so no wake-up is lost.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    panic::{self, AssertUnwindSafe},
    pin::Pin,
    task::{Context, Poll, Waker},
};

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// Streams queued by `execute` during the current driver poll.
    static QUEUE: RefCell<Vec<Task>> = const { RefCell::new(Vec::new()) };
    /// Whether a connection driver is polling hyper on this thread.
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

/// Queues futures spawned while a connection driver polls hyper; spawns
/// any other future on tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deferring;

impl<F> hyper::rt::Executor<F> for Deferring
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        if DRIVING.get() {
            let task: Task = Box::pin(async move {
                fut.await;
            });
            QUEUE.with_borrow_mut(|q| q.push(task));
        } else {
            tokio::spawn(fut);
        }
    }
}

/// Marks this thread as driving a connection for the guard's lifetime.
pub(super) struct Driving(());

impl Driving {
    pub fn enter() -> Self {
        DRIVING.set(true);
        Driving(())
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.set(false);
    }
}

/// Polls every stream queued during the last driver poll once; spawns the
/// ones that are not finished. Returns whether any ran (then the
/// connection has answers to flush).
pub(super) fn run_deferred() -> bool {
    if QUEUE.with_borrow(Vec::is_empty) {
        return false;
    }
    let mut tasks = QUEUE.with_borrow_mut(std::mem::take);
    let mut cx = Context::from_waker(Waker::noop());
    for mut task in tasks.drain(..) {
        // A spawned stream that panics takes only its own task down; keep
        // it that way here (dropping the stream resets it).
        match panic::catch_unwind(AssertUnwindSafe(|| task.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => {
                tokio::spawn(task);
            }
            Ok(Poll::Ready(())) => {}
            Err(_) => tracing::error!("an HTTP/2 stream panicked; stream reset"),
        }
    }
    // Hand the (empty) allocation back for the next batch.
    QUEUE.with_borrow_mut(|q| {
        if q.is_empty() {
            *q = tasks;
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    #[tokio::test]
    async fn queued_while_driving_and_run_after() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        {
            let _driving = Driving::enter();
            Deferring.execute(async move { flag.store(true, Ordering::SeqCst) });
            assert!(!done.load(Ordering::SeqCst), "ran inside execute");
        }
        assert!(run_deferred());
        assert!(done.load(Ordering::SeqCst), "not run by run_deferred");
        assert!(!run_deferred());
    }

    #[tokio::test]
    async fn a_pending_stream_is_spawned_and_completes() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        {
            let _driving = Driving::enter();
            Deferring.execute(async move {
                let _ = go_rx.await;
                let _ = tx.send(42);
            });
        }
        run_deferred();
        let _ = go_tx.send(());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await;
        assert_eq!(got.ok().and_then(Result::ok), Some(42));
    }

    #[tokio::test]
    async fn outside_a_driver_it_spawns() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        Deferring.execute(async move {
            let _ = tx.send(7);
        });
        assert!(!run_deferred());
        assert_eq!(rx.await.ok(), Some(7));
    }
}
