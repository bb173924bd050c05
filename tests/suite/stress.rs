//! Stress: thousands of tasks over a few hot keys and many cold ones, on
//! every runtime, with random cancellation at random moments (while queued,
//! just after the hand-off, and in the middle of the critical section),
//! through the runtime's own timeout and by dropping at a random wake-up.
//!
//! Checked: never two holders of a key, no lost update, strict FIFO per key
//! (see [`Fifo`]), every task finishes, and the manager is empty at the end.
//!
//! `STRESS_SEED=<n>` replays a run; `STRESS_TASKS=<n>` changes its size.
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::common::soak::{Holders, Inside, Run, Soak};
use crate::common::{Rng, Rt};
use lock_manager::LockManager;

/// Rounds on one manager, which must be empty after each.
const SOAK: Soak = Soak {
    name: "stress",
    seed_var: "STRESS_SEED",
    seed: 0x5EED_0000,
    tasks_var: "STRESS_TASKS",
    tasks: 4000,
    rounds: 10,
    overall: Duration::from_secs(30),
};

/// Keys `0..HOT` get half of all tasks; the rest spread over the cold keys.
const HOT: u32 = 4;
const COLD: u32 = 400;
const KEYS: usize = (HOT + COLD) as usize;

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
    holders: Holders,
    /// Updated with read, yield, write inside the lock: a lost update shows
    /// up as `counter < completed`.
    counters: Vec<AtomicU64>,
    /// Bodies that ran their write to the end, per key.
    completed: Vec<AtomicU64>,
    /// Bodies started, finished or not.
    entered: AtomicUsize,
    /// Per key, the waiters queued through [`Fifo`], in the order they
    /// joined.
    books: Vec<Mutex<Book>>,
}

impl Shared {
    fn new() -> Self {
        Self {
            locks: Arc::new(LockManager::new()),
            holders: Holders::new("key", KEYS),
            counters: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            completed: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
            entered: AtomicUsize::new(0),
            books: (0..KEYS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Marks a critical section on `key` (see [`Holders::enter`]).
    fn enter(&self, key: u32) -> Inside<'_> {
        self.holders.enter(&[key])
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

/// The critical section: read, yield (or sleep), write, count.
async fn body(rt: Rt, shared: &Shared, key: u32, rng: &mut Rng) {
    let _inside = shared.enter(key);
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

/// Whether the task finished (or was cancelled).
async fn one_task(rt: Rt, shared: Arc<Shared>, seed: u64) -> bool {
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
                let _inside = shared.enter(key);
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
    match rng.below(100) {
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
    }
}

/// The rounds on one manager, then the totals over them.
async fn stress(run: Run) {
    let Run { rt, seed, .. } = run;
    let shared = Arc::new(Shared::new());
    // How the tasks ended; the counts are printed and sanity-checked.
    let (mut completed, mut cancelled) = (0, 0);
    run.rounds(
        &shared.locks,
        |task_seed| one_task(rt, shared.clone(), task_seed),
        |finished| {
            let done = finished.iter().filter(|&&finished| finished).count();
            completed += done;
            cancelled += finished.len() - done;
            check_empty(&shared, seed);
        },
    )
    .await;

    assert_eq!(
        completed + cancelled,
        run.total_tasks(),
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
        run.total_tasks(),
        entered - bodies as usize,
    );
}

/// Nobody inside, no lost update, and nothing left in the manager.
fn check_empty(shared: &Shared, seed: u64) {
    for key in 0..KEYS {
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
    }
    shared.holders.assert_quiet(&shared.locks, seed);
}

runtime_tests!(|rt| SOAK.run(rt, stress));
