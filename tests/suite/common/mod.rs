//! Helpers shared by the integration tests: a counting waker for polling by
//! hand, `Rt`, which runs one test body on every supported runtime, and
//! `take_order` and friends, which find the order in which a manager takes
//! the keys of a multi-key request; `soak` drives the randomized stress
//! tests. (The loom models have their
//! own, in tests/loom/common.rs.)

pub mod soak;

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::future::{BoxFuture, Either, FutureExt};
use futures::task::SpawnExt;
use lock_manager::LockManager;

/// A waker that counts how often it was woken.
#[derive(Debug, Default)]
pub struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A task polled by hand: a waker plus the count of its wake-ups.
#[derive(Debug, Clone)]
pub struct Task {
    counter: Arc<CountingWaker>,
    waker: Waker,
}

impl Task {
    pub fn new() -> Self {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        Self { counter, waker }
    }

    pub fn wakes(&self) -> usize {
        self.counter.0.load(Ordering::SeqCst)
    }

    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Polls `fut` once with this task's waker.
    pub fn poll<F: Future + Unpin>(&self, fut: &mut F) -> Poll<F::Output> {
        Pin::new(fut).poll(&mut Context::from_waker(&self.waker))
    }
}

/// The runtimes every behavioural test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    /// tokio's multi-thread scheduler, two workers.
    Tokio,
    AsyncStd,
    /// A `smol::Executor` driven by two threads.
    Smol,
    /// `futures::executor::block_on`, spawning onto a two-thread `ThreadPool`.
    Futures,
}

impl Rt {
    /// Runs `fut` to completion on this runtime. Tasks it spawns through
    /// [`Rt::spawn`] run on the runtime's worker threads.
    pub fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            Rt::Tokio => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut),
            Rt::AsyncStd => async_std::task::block_on(fut),
            Rt::Smol => smol::block_on(smol_executor().run(fut)),
            Rt::Futures => futures::executor::block_on(fut),
        }
    }

    /// Spawns `fut`; the returned future resolves to its output and
    /// re-raises its panic.
    pub fn spawn<T: Send + 'static>(
        self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> BoxFuture<'static, T> {
        match self {
            Rt::Tokio => tokio::spawn(fut)
                .map(|joined| joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
                .boxed(),
            Rt::AsyncStd => async_std::task::spawn(fut).boxed(),
            Rt::Smol => smol_executor().spawn(fut).boxed(),
            Rt::Futures => thread_pool()
                .spawn_with_handle(fut)
                .expect("spawn on the thread pool")
                .boxed(),
        }
    }

    /// This runtime's own timer.
    pub async fn sleep(self, duration: Duration) {
        match self {
            Rt::Tokio => tokio::time::sleep(duration).await,
            Rt::AsyncStd => async_std::task::sleep(duration).await,
            // smol's timer (async-io) works on any executor.
            Rt::Smol | Rt::Futures => {
                smol::Timer::after(duration).await;
            }
        }
    }

    /// This runtime's own timeout: `None` when `fut` did not finish in time
    /// (and was dropped).
    pub async fn timeout<F: Future>(self, duration: Duration, fut: F) -> Option<F::Output> {
        match self {
            Rt::Tokio => tokio::time::timeout(duration, fut).await.ok(),
            Rt::AsyncStd => async_std::future::timeout(duration, fut).await.ok(),
            Rt::Smol | Rt::Futures => {
                let timer = smol::Timer::after(duration);
                match futures::future::select(std::pin::pin!(fut), timer).await {
                    Either::Left((output, _)) => Some(output),
                    Either::Right(_) => None,
                }
            }
        }
    }

    /// Yields to the scheduler once.
    pub async fn yield_now(self) {
        match self {
            Rt::Tokio => tokio::task::yield_now().await,
            Rt::AsyncStd => async_std::task::yield_now().await,
            Rt::Smol | Rt::Futures => smol::future::yield_now().await,
        }
    }
}

fn smol_executor() -> &'static smol::Executor<'static> {
    static EXECUTOR: OnceLock<&'static smol::Executor<'static>> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let executor: &'static smol::Executor<'static> = Box::leak(Box::default());
        for _ in 0..2 {
            std::thread::spawn(|| smol::block_on(executor.run(futures::future::pending::<()>())));
        }
        executor
    })
}

fn thread_pool() -> &'static futures::executor::ThreadPool {
    static POOL: OnceLock<futures::executor::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        futures::executor::ThreadPool::builder()
            .pool_size(2)
            .create()
            .expect("thread pool")
    })
}

/// Generates one `#[test]` per runtime for each named `async fn(Rt)`: the
/// tests for `fifo` are `fifo::tokio`, `fifo::async_std`, `fifo::smol` and
/// `fifo::futures`.
#[macro_export]
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::common::Rt;

            #[test]
            fn tokio() {
                Rt::Tokio.block_on(super::$name(Rt::Tokio));
            }

            #[test]
            fn async_std() {
                Rt::AsyncStd.block_on(super::$name(Rt::AsyncStd));
            }

            #[test]
            fn smol() {
                Rt::Smol.block_on(super::$name(Rt::Smol));
            }

            #[test]
            fn futures() {
                Rt::Futures.block_on(super::$name(Rt::Futures));
            }
        }
    )*};
}

/// Generates the top-level tests `tokio`, `async_std`, `smol` and `futures`,
/// each calling `$run` (a function of [`Rt`]) with its runtime: for a test
/// binary that runs one workload per runtime.
#[macro_export]
macro_rules! runtime_tests {
    ($run:expr) => {
        #[test]
        fn tokio() {
            ($run)($crate::common::Rt::Tokio);
        }

        #[test]
        fn async_std() {
            ($run)($crate::common::Rt::AsyncStd);
        }

        #[test]
        fn smol() {
            ($run)($crate::common::Rt::Smol);
        }

        #[test]
        fn futures() {
            ($run)($crate::common::Rt::Futures);
        }
    };
}

/// SplitMix64: deterministic per seed, no dependencies, and any seed (zero
/// included) gives a full-period sequence. For the randomized stress tests.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `body` on its own thread and returns its result, so that even a
/// runtime wedged beyond its own timers fails the test (naming `what`)
/// instead of hanging it. A panic in `body` is re-raised here.
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, wait) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(body());
    });
    match wait.recv_timeout(limit) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{what} hung"),
    }
}

/// Waits (sleeping a millisecond at a time) until `done` holds, failing
/// after 10 s, naming `what`.
pub fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// No key held and no waiter left, by the counts and by `Debug`.
pub fn assert_empty<K, S>(locks: &lock_manager::LockManager<K, S>, seed: u64) {
    assert_eq!(locks.locked_count(), 0, "seed {seed}");
    let debug = format!("{locks:?}");
    assert!(
        debug.contains("locked: 0") && debug.contains("waiters: 0"),
        "manager not empty at the end: {debug} (seed {seed})"
    );
}

/// Whether a multi-key request on `locks` takes `key` while `held` is held
/// by someone else: true when the manager takes `key` before `held`, or in
/// the same step as `held` (keys of equal hash), false when it takes `key`
/// after `held`.
///
/// Found black-box: holds `held` with `try_acquire`, polls
/// `acquire_many([held, key])` once with a counting waker (the request
/// takes its keys in order and stops queued on `held`), and looks whether
/// `key` is locked then. Everything is dropped before returning, so no key
/// stays held or waited for; `stats()` counts the probe, though, so a test
/// comparing counters takes its baseline after it.
///
/// # Panics
///
/// If either key is held or waited for, or they are equal.
#[track_caller]
pub fn takes_before<K, S>(locks: &LockManager<K, S>, key: &K, held: &K) -> bool
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    assert!(key != held, "takes_before needs two distinct keys");
    assert_eq!(locks.queue_len(key), 0, "takes_before needs free keys");
    assert_eq!(locks.queue_len(held), 0, "takes_before needs free keys");
    let holder = locks.try_acquire(held.clone()).expect("a free key");
    let mut request = locks.acquire_many([held.clone(), key.clone()]);
    assert!(
        Task::new().poll(&mut request).is_pending(),
        "`held` is held"
    );
    assert_eq!(
        locks.queue_len(held),
        2,
        "the request queues on the held key"
    );
    let taken = locks.is_locked(key);
    drop(request);
    drop(holder);
    assert_eq!(locks.queue_len(key), 0, "the probe left nothing behind");
    assert_eq!(locks.queue_len(held), 0, "the probe left nothing behind");
    taken
}

/// Whether `locks` takes `a` and `b` in one step (keys of equal hash):
/// each is then taken while the other is held.
#[track_caller]
pub fn taken_together<K, S>(locks: &LockManager<K, S>, a: &K, b: &K) -> bool
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    takes_before(locks, a, b) && takes_before(locks, b, a)
}

/// `a` and `b` in the order in which `locks` takes them in a multi-key
/// request, whatever order the request lists them in: `(first, second)`.
/// The order is fixed per manager (by the keys' hashes, and the default
/// hasher is seeded at random), so the test asks the manager it uses.
/// See [`takes_before`], on which it rests, for what it costs.
///
/// # Panics
///
/// As for [`takes_before`], and if the manager takes both in one step:
/// neither comes first then (see [`taken_together`]).
#[track_caller]
pub fn take_order<K, S>(locks: &LockManager<K, S>, a: K, b: K) -> (K, K)
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    let a_first = takes_before(locks, &a, &b);
    let b_first = takes_before(locks, &b, &a);
    assert!(a_first != b_first, "the two keys are taken in one step");
    if a_first {
        (a, b)
    } else {
        (b, a)
    }
}

/// `keys` (distinct and free) sorted into the order in which `locks`
/// takes them, by [`take_order`] on pairs: `let [first, second, third] =
/// in_take_order(&locks, [1, 2, 3]);`.
#[track_caller]
pub fn in_take_order<K, S, const N: usize>(locks: &LockManager<K, S>, keys: [K; N]) -> [K; N]
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    let mut sorted: Vec<K> = Vec::with_capacity(N);
    for key in keys {
        let at = sorted
            .iter()
            .position(|placed| takes_before(locks, &key, placed))
            .unwrap_or(sorted.len());
        sorted.insert(at, key);
    }
    // A consistent order: each key is taken after the ones before it.
    for pair in sorted.windows(2) {
        assert!(
            !takes_before(locks, &pair[1], &pair[0]),
            "an inconsistent order"
        );
    }
    match sorted.try_into() {
        Ok(sorted) => sorted,
        Err(_) => unreachable!("N keys in, N out"),
    }
}
