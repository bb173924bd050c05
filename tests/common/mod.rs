//! Helpers shared by the integration tests: a counting waker for polling by
//! hand, and `Rt`, which runs one test body on every supported runtime.
#![allow(dead_code)] // each test binary uses its own subset

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::future::{BoxFuture, Either, FutureExt};
use futures::task::SpawnExt;

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
