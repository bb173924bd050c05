//! Instructions per operation, counted rather than timed: the single-thread
//! paths of `lock-manager` run `N` times in a loop, for valgrind to count
//! (`scripts/instructions.sh`, which runs `N` and `2N` and takes the
//! difference). Counts are exact where a shared 2-core machine's timings
//! wander by a fifth, so they decide whether a change to the hot paths
//! costs anything; they say nothing of cache misses or contention (the
//! criterion benches and `fairness.rs` do).
//!
//! Usage: `instructions SCENARIO N`, with SCENARIO one of `uncontended`,
//! `churn`, `owned`, `try`, `pairs` (two keys with `acquire_many`),
//! `pairs-1by1` (the same two keys with two `acquire`s, smaller first),
//! `handoff` (a queued waiter handed the key by a release, then polled),
//! `pairs-16` and `pairs-16-1by1` (64 tasks on one thread locking pairs of
//! 16 keys, so that they wait for each other: the contended paths).
//! Run with no arguments (as `cargo bench` does), it runs each once, 1,000
//! times, as a smoke test.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use lock_manager::LockManager;

const SCENARIOS: [&str; 9] = [
    "uncontended",
    "churn",
    "owned",
    "try",
    "pairs",
    "pairs-1by1",
    "handoff",
    "pairs-16",
    "pairs-16-1by1",
];

/// The output of a future that is ready at its first poll.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the key is free: ready at once"),
    }
}

fn run(scenario: &str, n: u64) {
    let locks = Arc::new(LockManager::<u64>::new());
    match scenario {
        "uncontended" => (0..n).for_each(|_| drop(now(locks.acquire(black_box(7))))),
        "churn" => (0..n).for_each(|i| drop(now(locks.acquire(black_box(i))))),
        "owned" => (0..n).for_each(|_| drop(now(locks.acquire_owned(black_box(7))))),
        "try" => (0..n).for_each(|_| drop(locks.try_acquire(black_box(7)))),
        "pairs" => (0..n).for_each(|i| drop(now(locks.acquire_many(black_box([i, i + 1]))))),
        "pairs-1by1" => (0..n).for_each(|i| {
            let [a, b] = black_box([i, i + 1]);
            let first = now(locks.acquire(a.min(b)));
            let second = now(locks.acquire(a.max(b)));
            drop((first, second));
        }),
        "handoff" => {
            let mut cx = Context::from_waker(Waker::noop());
            let mut held = now(locks.acquire(7));
            for _ in 0..n {
                let mut waiter = pin!(locks.acquire(black_box(7)));
                assert!(waiter.as_mut().poll(&mut cx).is_pending());
                drop(held);
                let Poll::Ready(guard) = waiter.as_mut().poll(&mut cx) else {
                    panic!("handed the key by the release");
                };
                held = guard;
            }
        }
        "pairs-16" => overlapping_pairs(&locks, n, |locks, a, b| async move {
            let both = locks.acquire_many([a, b]).await;
            yield_now().await;
            drop(both);
        }),
        "pairs-16-1by1" => overlapping_pairs(&locks, n, |locks, a, b| async move {
            let first = locks.acquire(a.min(b)).await;
            let second = locks.acquire(a.max(b)).await;
            yield_now().await;
            drop((first, second));
        }),
        _ => panic!("unknown scenario {scenario}; one of {SCENARIOS:?}"),
    }
    assert!(locks.locked_count() <= 1);
}

/// Lets the other tasks run once: a critical section that awaits.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Tasks of the `pairs-16` scenarios.
const TASKS: u64 = 64;

/// `n` operations over `TASKS` tasks on one thread (`futures`' `LocalPool`),
/// each locking two distinct keys of 16 drawn by a fixed generator and
/// yielding once while it holds them: pairs overlap, so tasks queue behind
/// each other, and every hand-off, wake and poll is counted.
fn overlapping_pairs<F: Future<Output = ()> + 'static>(
    locks: &Arc<LockManager<u64>>,
    n: u64,
    op: fn(Arc<LockManager<u64>>, u64, u64) -> F,
) {
    use futures::task::LocalSpawnExt;
    let mut pool = futures::executor::LocalPool::new();
    for task in 0..TASKS {
        let locks = Arc::clone(locks);
        let mut state = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let task = async move {
            for _ in 0..n / TASKS + u64::from(task < n % TASKS) {
                // xorshift64: the same keys for every build.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let (a, b) = (state % 16, (state >> 8) % 15);
                op(Arc::clone(&locks), a, if b >= a { b + 1 } else { b }).await;
            }
        };
        pool.spawner().spawn_local(task).expect("spawn");
    }
    pool.run();
    assert!(locks.stats().handoffs > 0, "tasks waited for each other");
    assert_eq!(locks.locked_count(), 0);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [scenario, n] => run(scenario, n.parse().expect("N: a count")),
        _ => SCENARIOS.iter().for_each(|scenario| run(scenario, 1_000)),
    }
}
