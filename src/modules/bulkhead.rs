//! The CPU bulkhead around module code (issue 11): a Lua or WebAssembly
//! call that runs long leaves the connection threads.
//!
//! A call starts on the request's own thread: nearly all answer within a
//! few microseconds, and a hop to another thread would cost more than the
//! call itself. A call still running at the end of its first slice (see
//! each runtime: Lua counts instructions, WebAssembly epoch ticks) yields,
//! and the rest of it runs on the **module pool**: a tokio runtime of its
//! own whose threads run at the lowest priority (nice [`NICE`]). The kernel
//! then hands the CPU to a connection thread whenever one has work, so a
//! module that spends its whole budget on every request slows itself and
//! the other long calls, not the routes beside it. Calls on the pool yield
//! at the end of every slice, so long calls of different modules share the
//! pool in turn.
//!
//! Measured (BENCHMARKS.md, "Fairness"): without the pool, three clients on
//! a Lua module that loops to its budget left `/hello` 4.6% of its quiet
//! throughput; with it at nice 19, 65–96% (and p99 within 2× of quiet).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use prometheus::IntCounter;
use tokio::{runtime::Runtime, task::JoinHandle};

/// The module pool's nice value: the kernel's weights (1024 against 15)
/// give the pool about 1.5% of a core that a connection thread also wants,
/// and all of an idle one. Not `SCHED_IDLE`, which measured as fair but
/// never ran the pool at all while other processes kept the CPU busy: a
/// moved call, its timeout's clean-up and its module's place then waited
/// for as long as they did.
pub(crate) const NICE: i32 = 19;

/// The module pool, started on first use.
fn pool() -> &'static Runtime {
    static POOL: OnceLock<Runtime> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("troupe-module")
            // A guest's outbound HTTP and timers run where it runs.
            .enable_all()
            .on_thread_start(lower_priority)
            .build()
            .unwrap_or_else(|e| panic!("cannot start the module pool: {e}"))
    })
}

/// Lowers the calling thread's priority: Linux keeps a nice value per
/// thread, so this leaves the connection threads as they are.
fn lower_priority() {
    let me = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(me), NICE) {
        tracing::warn!(error = %e, "cannot lower the module pool's priority");
    }
}

/// Ends a slice of a call on the module pool: gives the core back to the
/// kernel (`sched_yield`). A pool thread that the scheduler has picked over
/// a connection thread is otherwise switched out only at the next
/// scheduler tick (4 ms at `HZ=250`): a connection thread kept runnable
/// never wakes up to preempt it. With nothing else to run, this returns at
/// once.
pub(crate) fn end_of_slice() {
    std::thread::yield_now();
}

/// Runs `task` on the module pool.
pub(crate) fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pool().spawn(task)
}

/// One module's calls in progress, against its cap (`sandbox.instances`).
/// A call beyond the cap is refused at once (503), never queued, so a
/// counter is all it takes (a tokio `Semaphore` locks a mutex on every
/// release, on every call).
#[derive(Debug)]
pub(crate) struct Admission {
    running: AtomicUsize,
    cap: usize,
}

impl Admission {
    /// Room for `cap` calls at once.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            running: AtomicUsize::new(0),
            cap,
        }
    }

    /// A place for one call, if one is free: given back when the guard
    /// drops, or by [`Admission::leave`] after [`Entered::keep`].
    pub(crate) fn enter(&self) -> Option<Entered<'_>> {
        if self.running.fetch_add(1, Ordering::Acquire) >= self.cap {
            self.leave();
            return None;
        }
        Some(Entered(self))
    }

    /// Gives back a place that was kept.
    pub(crate) fn leave(&self) {
        self.running.fetch_sub(1, Ordering::Release);
    }

    /// A place for one call that owns its hold on the admission.
    pub(crate) fn enter_owned(self: &Arc<Self>) -> Option<Ticket> {
        self.enter().map(|entered| {
            entered.keep();
            Ticket(self.clone())
        })
    }
}

/// A call's place, given back on drop.
pub(crate) struct Entered<'a>(&'a Admission);

impl Entered<'_> {
    /// Keeps the place past this guard: the call goes on elsewhere, and
    /// whoever finishes it calls [`Admission::leave`].
    pub(crate) fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// A call's place that can travel with it, given back on drop.
pub(crate) struct Ticket(Arc<Admission>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// What a long call and the bulkhead know of each other: whether its
/// first slice ran out (it should move to the module pool the next time
/// it yields), and the CPU time it has used on the pool, counted across the
/// threads it ran on. A budget checked against that CPU time is not spent
/// while the call waits for the CPU behind the connection threads.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    leave: AtomicBool,
    moved: AtomicBool,
    /// Nanoseconds used: by the polls on the pool that ended, and on the
    /// request's thread before the call left.
    done: AtomicU64,
    /// The thread's CPU clock when the poll in progress started (0: none).
    poll_start: AtomicU64,
    /// On the request's thread: the thread's CPU clock at the last tick
    /// (0: none yet), and which thread that was.
    tick_cpu: AtomicU64,
    tick_thread: AtomicU64,
}

/// Whether a call seen at a tick on the request's thread should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slice {
    /// Not yet: it was not running for most of the last tick (this is its
    /// first tick seen, or its thread was preempted, or it waited).
    Stay,
    /// It ran for most of a tick: it should leave for the pool.
    Leave,
}

impl Meter {
    /// Called at each tick while the call runs on the request's thread:
    /// whether it used most of the last `tick` of this thread's CPU. A
    /// wall-clock tick alone would move a short call whose thread the
    /// kernel preempted; this reads the CPU clock, and only for calls that
    /// outlast a tick. A call that should leave is asked to, and the CPU
    /// it used since the last tick is charged to it.
    pub(crate) fn tick_here(&self, tick: Duration) -> Slice {
        let now = cpu_nanos();
        let thread = THREAD.with(|t| t as *const u8 as u64);
        let last = self.tick_cpu.swap(now, Ordering::Relaxed);
        let same = self.tick_thread.swap(thread, Ordering::Relaxed) == thread;
        let ran = now.saturating_sub(last);
        if last == 0 || !same || u128::from(ran) < tick.as_nanos() / 2 {
            return Slice::Stay;
        }
        self.done.fetch_add(ran, Ordering::Relaxed);
        self.leave.store(true, Ordering::Relaxed);
        Slice::Leave
    }

    /// Whether the call runs on the module pool.
    pub(crate) fn moved(&self) -> bool {
        self.moved.load(Ordering::Relaxed)
    }

    /// CPU time used on the pool so far, the poll in progress included
    /// (read from the thread it runs on: call it from inside the call).
    pub(crate) fn spent(&self) -> Duration {
        let done = self.done.load(Ordering::Relaxed);
        let start = self.poll_start.load(Ordering::Relaxed);
        let running = if start == 0 {
            0
        } else {
            cpu_nanos().saturating_sub(start)
        };
        Duration::from_nanos(done + running)
    }
}

/// A future polled where it is awaited until it yields with its
/// [`Meter`] asking it to leave, then driven to the end on the module pool,
/// its polls there timed. (Lua moves its calls itself: a Lua call is not
/// a future.)
pub(crate) struct Offload<F: Future> {
    state: State<F>,
    meter: Arc<Meter>,
    /// Counts the calls that moved (the module's series, once it has one).
    moved: Option<IntCounter>,
    /// Longest the call may take once moved (the module's `timeout`).
    ceiling: Duration,
}

enum State<F: Future> {
    Here(F),
    /// On the pool, with the end of its ceiling: a timer of the caller's
    /// runtime, since the pool's own run only when the CPU has room.
    Pool(JoinHandle<F::Output>, Pin<Box<tokio::time::Sleep>>),
    Moving,
}

impl<F> Offload<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    /// `task`, whose slices report to `meter`, stopped if it runs on the
    /// pool for longer than `ceiling` (wall-clock: the call's own budget
    /// counts CPU time, which a call starved of CPU does not spend).
    pub(crate) fn new(
        task: F,
        meter: Arc<Meter>,
        ceiling: Duration,
        moved: Option<IntCounter>,
    ) -> Self {
        Self {
            state: State::Here(task),
            meter,
            moved,
            ceiling,
        }
    }
}

/// How a moved call ended when it did not return.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Lost {
    /// It ran past its wall-clock ceiling.
    #[error("the module's call took longer than {0:?}")]
    TimedOut(Duration),
    /// It panicked.
    #[error("the module's call failed on the module pool: {0}")]
    Failed(String),
}

impl<F> Future for Offload<F>
where
    F: Future + Unpin + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = Result<F::Output, Lost>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let State::Here(task) = &mut this.state {
            match Pin::new(task).poll(cx) {
                Poll::Ready(out) => return Poll::Ready(Ok(out)),
                Poll::Pending if !this.meter.leave.swap(false, Ordering::Relaxed) => {
                    return Poll::Pending;
                }
                Poll::Pending => {
                    let State::Here(task) = std::mem::replace(&mut this.state, State::Moving)
                    else {
                        unreachable!("matched above")
                    };
                    this.meter.moved.store(true, Ordering::Relaxed);
                    if let Some(moved) = &this.moved {
                        moved.inc();
                    }
                    let metered = Metered {
                        task,
                        meter: this.meter.clone(),
                    };
                    let ceiling = Box::pin(tokio::time::sleep(this.ceiling));
                    this.state = State::Pool(spawn(metered), ceiling);
                }
            }
        }
        match &mut this.state {
            State::Pool(handle, ceiling) => {
                if let Poll::Ready(done) = Pin::new(&mut *handle).poll(cx) {
                    return Poll::Ready(done.map_err(|e| Lost::Failed(e.to_string())));
                }
                if ceiling.as_mut().poll(cx).is_ready() {
                    handle.abort();
                    return Poll::Ready(Err(Lost::TimedOut(this.ceiling)));
                }
                Poll::Pending
            }
            State::Here(_) | State::Moving => Poll::Pending,
        }
    }
}

impl<F: Future> Drop for Offload<F> {
    /// Nobody waits for the answer any more (the client left): the call
    /// stops at its next turn on the pool.
    fn drop(&mut self) {
        if let State::Pool(handle, _) = &self.state {
            handle.abort();
        }
    }
}

thread_local! {
    /// A byte per thread, whose address tells threads apart.
    static THREAD: u8 = const { 0 };
}

/// The calling thread's CPU clock, in nanoseconds (never 0).
fn cpu_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let nanos = u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
        + u64::try_from(t.tv_nsec).unwrap_or(0);
    nanos.max(1)
}

/// A task on the pool whose polls are timed on the thread's CPU clock.
struct Metered<F> {
    task: F,
    meter: Arc<Meter>,
}

impl<F: Future + Unpin> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = cpu_nanos();
        self.meter.poll_start.store(start, Ordering::Relaxed);
        let out = Pin::new(&mut self.task).poll(cx);
        self.meter.poll_start.store(0, Ordering::Relaxed);
        let used = cpu_nanos().saturating_sub(start);
        self.meter.done.fetch_add(used, Ordering::Relaxed);
        if out.is_pending() {
            end_of_slice();
        }
        out
    }
}
