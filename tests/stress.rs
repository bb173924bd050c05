//! Stress: thousands of tasks over a few hot keys and many cold ones, on
//! every runtime, with random cancellation at random moments (while queued,
//! just after the hand-off, and in the middle of the critical section),
//! through the runtime's own timeout and by dropping at a random wake-up.
//!
//! Checked: never two holders of a key, no lost update, strict FIFO per key
//! (see [`Fifo`]), every task finishes, and the manager is empty at the end.
//!
//! `STRESS_SEED=<n>` replays a run; `STRESS_TASKS=<n>` changes its size.
#![cfg(not(loom))]

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{env_or, within, Rng, Rt};
use lock_manager::LockManager;

/// Keys `0..HOT` get half of all tasks; the rest spread over the cold keys.
const HOT: u32 = 4;
const COLD: u32 = 400;
const KEYS: usize = (HOT + COLD) as usize;
const DEFAULT_TASKS: usize = 4000;
/// The whole run must end within this, or the test fails.
const OVERALL: Duration = Duration::from_secs(30);

/// Cancels the wrapped future at a random wake-up: each time it is polled
/// again, it is dropped instead with probability `percent`. A waiter woken
/// by the hand-off is thus sometimes dropped before it takes the lock, which
/// a runtime's timeout (which polls the future before checking its timer)
/// almost never does.
struct DropOnWake<F> {
    inner: Option<Pin<Box<F>>>,
    rng: Rng,
    percent: u64,
    polled: bool,
}

impl<F: Future> DropOnWake<F> {
    fn new(inner: F, rng: Rng, percent: u64) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
            rng,
            percent,
            polled: false,
        }
    }
}

impl<F: Future> Future for DropOnWake<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.polled && this.rng.chance(this.percent) {
            this.inner = None;
            return Poll::Ready(None);
        }
        this.polled = true;
        let inner = this.inner.as_mut().expect("polled after completion");
        inner.as_mut().poll(cx).map(Some)
    }
}

/// Per-key bookkeeping shared by every task.
struct Shared {
    locks: Arc<LockManager<u32>>,
    /// Guards inside the critical section right now, per key.
    holders: Vec<AtomicUsize>,
    /// Updated with read, yield, write inside the lock: a lost update shows
    /// up as `counter < completed`.
    counters: Vec<AtomicU64>,
    /// Bodies that ran their write to the end, per key.
    completed: Vec<AtomicU64>,
    /// Most holders ever seen on any key at once (must stay 1).
    worst: AtomicUsize,
    /// Bodies started, finished or not.
    entered: AtomicUsize,
    /// Per key, the waiters queued through [`Fifo`], in the order they
    /// joined.
    books: Vec<Mutex<Book>>,
}

impl Shared {
    fn new() -> Self {
        let per_key = |_| AtomicUsize::new(0);
        Self {
            locks: Arc::new(LockManager::new()),
            holders: (0..KEYS).map(per_key).collect(),
            counters: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            completed: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            worst: AtomicUsize::new(0),
            entered: AtomicUsize::new(0),
            books: (0..KEYS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// Tickets of the [`Fifo`] waiters queued on one key, or granted it but not
/// yet polled.
#[derive(Default)]
struct Book {
    next: u64,
    waiting: BTreeSet<u64>,
}

/// Checks strict FIFO on an acquire future for `key`.
///
/// Every poll (and the drop) runs under the key's [`Book`] lock, so that
/// joining the manager's queue and taking a ticket are one step, and so are
/// leaving the queue and giving the ticket back. The lock must then go to
/// the oldest ticket: a waiter that completes must hold the smallest ticket
/// still waiting, and one that completes at once must find nobody waiting.
struct Fifo<'a, F> {
    shared: &'a Shared,
    key: u32,
    ticket: Option<u64>,
    inner: Option<F>,
}

impl<'a, F> Fifo<'a, F> {
    fn new(shared: &'a Shared, key: u32, inner: F) -> Self {
        Self {
            shared,
            key,
            ticket: None,
            inner: Some(inner),
        }
    }
}

impl<F: Future + Unpin> Future for Fifo<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let key = this.key;
        let mut book = this.shared.books[key as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let inner = this.inner.as_mut().expect("polled after completion");
        let poll = Pin::new(inner).poll(cx);
        match (poll.is_ready(), this.ticket) {
            (false, None) => {
                let ticket = book.next;
                book.next += 1;
                book.waiting.insert(ticket);
                this.ticket = Some(ticket);
            }
            (false, Some(_)) => {}
            (true, None) => assert!(
                book.waiting.is_empty(),
                "key {key} taken at once past {} queued waiters (oldest ticket {:?})",
                book.waiting.len(),
                book.waiting.first()
            ),
            (true, Some(ticket)) => {
                assert_eq!(
                    book.waiting.first(),
                    Some(&ticket),
                    "key {key} granted out of FIFO order ({} waiting)",
                    book.waiting.len()
                );
                book.waiting.remove(&ticket);
                this.ticket = None;
            }
        }
        if poll.is_ready() {
            this.inner = None;
        }
        poll
    }
}

impl<F> Drop for Fifo<'_, F> {
    fn drop(&mut self) {
        let mut book = self.shared.books[self.key as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(ticket) = self.ticket.take() {
            book.waiting.remove(&ticket);
        }
        // Leaves the manager's queue (or passes on a grant) under the lock.
        drop(self.inner.take());
    }
}

/// Marks a critical section on `key`; leaving it (even by being dropped
/// mid-body on cancellation) unmarks it. Declared after the lock guard, so
/// it is dropped before the guard releases the key.
struct Inside<'a> {
    shared: &'a Shared,
    key: u32,
}

impl<'a> Inside<'a> {
    fn enter(shared: &'a Shared, key: u32) -> Self {
        let now = shared.holders[key as usize].fetch_add(1, Ordering::SeqCst) + 1;
        shared.worst.fetch_max(now, Ordering::SeqCst);
        assert_eq!(now, 1, "two holders of key {key} at once");
        Self { shared, key }
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.shared.holders[self.key as usize].fetch_sub(1, Ordering::SeqCst);
    }
}

/// The critical section: read, yield (or sleep), write, count.
async fn body(rt: Rt, shared: &Shared, key: u32, rng: &mut Rng) {
    let _inside = Inside::enter(shared, key);
    shared.entered.fetch_add(1, Ordering::SeqCst);
    let counter = &shared.counters[key as usize];
    let seen = counter.load(Ordering::SeqCst);
    for _ in 0..rng.below(3) {
        rt.yield_now().await;
    }
    if rng.chance(2) {
        rt.sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(
        counter.load(Ordering::SeqCst),
        seen,
        "key {key} changed under its holder"
    );
    counter.store(seen + 1, Ordering::SeqCst);
    // No await between the write and the count: a cancellation lands either
    // before both or after both.
    shared.completed[key as usize].fetch_add(1, Ordering::SeqCst);
}

/// How one task ends; the counts are printed and sanity-checked.
#[derive(Default)]
struct Outcomes {
    completed: AtomicUsize,
    cancelled: AtomicUsize,
}

async fn one_task(rt: Rt, shared: Arc<Shared>, outcomes: Arc<Outcomes>, seed: u64) {
    let mut rng = Rng::new(seed);
    let key = if rng.chance(50) {
        rng.below(HOT.into()) as u32
    } else {
        (HOT as u64 + rng.below(COLD.into())) as u32
    };
    // A second key, always larger, for the tasks that hold two at once
    // (ascending order, so no deadlock).
    let second = (key + 1 + rng.below(8) as u32).min(HOT + COLD - 1);
    let mode = rng.below(5);
    // Spread some arrivals out, so hand-offs and timeouts interleave.
    let delay = rng
        .chance(30)
        .then(|| Duration::from_micros(rng.below(1000)));
    let mut body_rng = Rng::new(rng.next());
    let work = async {
        if let Some(delay) = delay {
            rt.sleep(delay).await;
        }
        let locks = &shared.locks;
        match mode {
            // acquire, borrowing the manager
            0 => {
                let _guard = Fifo::new(&shared, key, locks.acquire(key)).await;
                body(rt, &shared, key, &mut body_rng).await;
            }
            // acquire_owned
            1 => {
                let _guard = Fifo::new(&shared, key, locks.acquire_owned(key)).await;
                body(rt, &shared, key, &mut body_rng).await;
            }
            // with_lock (its acquire is not FIFO-checked)
            2 => {
                locks
                    .with_lock(key, || body(rt, &shared, key, &mut body_rng))
                    .await;
            }
            // try first, wait only if taken
            3 => {
                let _guard = match locks.try_acquire_owned(key) {
                    Some(guard) => guard,
                    None => Fifo::new(&shared, key, locks.acquire_owned(key)).await,
                };
                body(rt, &shared, key, &mut body_rng).await;
            }
            // two keys, in ascending order
            _ if second != key => {
                let _first = Fifo::new(&shared, key, locks.acquire(key)).await;
                let _inside = Inside::enter(&shared, key);
                rt.yield_now().await;
                let _second = Fifo::new(&shared, second, locks.acquire(second)).await;
                body(rt, &shared, second, &mut body_rng).await;
            }
            _ => {
                let _guard = locks.acquire(key).await;
                body(rt, &shared, key, &mut body_rng).await;
            }
        }
    };
    let finished = match rng.below(100) {
        // Cancel after a random delay, through the runtime's own timeout:
        // often while queued, sometimes in the middle of the body.
        0..=24 => {
            let limit = Duration::from_micros(rng.below(3000));
            rt.timeout(limit, work).await.is_some()
        }
        // Cancel at a random wake-up: sometimes right after the hand-off.
        25..=39 => DropOnWake::new(work, Rng::new(rng.next()), 30)
            .await
            .is_some(),
        _ => {
            work.await;
            true
        }
    };
    let slot = if finished {
        &outcomes.completed
    } else {
        &outcomes.cancelled
    };
    slot.fetch_add(1, Ordering::SeqCst);
}

const ROUNDS: usize = 10;

/// `ROUNDS` rounds of `tasks` tasks on one manager, which must be empty
/// after each.
async fn stress(rt: Rt, seed: u64, tasks: usize) {
    let deadline = Instant::now() + OVERALL;
    let shared = Arc::new(Shared::new());
    let outcomes = Arc::new(Outcomes::default());
    let mut seeds = Rng::new(seed);
    for round in 0..ROUNDS {
        let handles: Vec<_> = (0..tasks)
            .map(|_| rt.spawn(one_task(rt, shared.clone(), outcomes.clone(), seeds.next())))
            .collect();
        let all = futures::future::join_all(handles);
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            rt.timeout(left, all).await.is_some(),
            "{rt:?}: round {round}: tasks still unfinished after {OVERALL:?} (seed {seed}); manager: {:?}",
            shared.locks
        );
        check_empty(&shared, seed);
    }

    let completed = outcomes.completed.load(Ordering::SeqCst);
    let cancelled = outcomes.cancelled.load(Ordering::SeqCst);
    assert_eq!(
        completed + cancelled,
        ROUNDS * tasks,
        "every task reports once"
    );
    let bodies: u64 = shared
        .completed
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum();
    let entered = shared.entered.load(Ordering::SeqCst);
    assert!(
        bodies as usize >= completed,
        "every completed task ran a body"
    );
    assert!(cancelled > 0, "the run should exercise cancellation");
    eprintln!(
        "{rt:?}: {} tasks: {completed} completed, {cancelled} cancelled ({} of them mid-body); {bodies} bodies (seed {seed})",
        ROUNDS * tasks,
        entered - bodies as usize,
    );
}

/// Nobody inside, no lost update, and nothing left in the manager.
fn check_empty(shared: &Shared, seed: u64) {
    assert_eq!(shared.worst.load(Ordering::SeqCst), 1, "seed {seed}");
    for key in 0..KEYS {
        assert_eq!(
            shared.holders[key].load(Ordering::SeqCst),
            0,
            "key {key} still marked held (seed {seed})"
        );
        assert_eq!(
            shared.counters[key].load(Ordering::SeqCst),
            shared.completed[key].load(Ordering::SeqCst),
            "lost update on key {key} (seed {seed})"
        );
        let book = shared.books[key]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            book.waiting.is_empty(),
            "key {key}: tickets left {:?}",
            book.waiting
        );
        drop(book);
        assert!(
            !shared.locks.is_locked(&(key as u32)),
            "key {key} left locked (seed {seed})"
        );
    }
    common::assert_empty(&shared.locks, seed);
}

/// Runs the stress on its own thread so that even a runtime wedged beyond
/// its own timers fails the test instead of hanging it.
fn run(rt: Rt) {
    let seed = env_or("STRESS_SEED", 0x5EED_0000 + rt as u64);
    let tasks = env_or("STRESS_TASKS", DEFAULT_TASKS);
    let started = Instant::now();
    let what = format!("{rt:?}: stress (seed {seed})");
    within(OVERALL + Duration::from_secs(30), &what, move || {
        rt.block_on(stress(rt, seed, tasks));
    });
    eprintln!("{rt:?}: stress took {:?}", started.elapsed());
}

#[test]
fn tokio() {
    run(Rt::Tokio);
}

#[test]
fn async_std() {
    run(Rt::AsyncStd);
}

#[test]
fn smol() {
    run(Rt::Smol);
}

#[test]
fn futures() {
    run(Rt::Futures);
}
