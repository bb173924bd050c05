//! The instruments of the loom models (main.rs), apart from the suite's
//! helpers (tests/suite/common), whose runtimes are not built under
//! `--cfg loom`.
//!
//! Every critical section is checked twice: a per-key counter of holders
//! must read 0 on entry, and a `loom::cell::UnsafeCell` is written inside it,
//! which loom rejects unless the previous holder's writes happen-before the
//! next holder's (the hand-off really synchronizes). A waiter whose wake-up
//! is lost leaves its thread parked in [`block_on`] forever, which loom
//! reports as a deadlock. The `model*` runners end every model by checking
//! that the manager is empty: no key held, no waiter left in its slab.
//!
//! The order of the `Arc` clones, atomic operations and spawns in these
//! helpers is that of the models they were lifted from: each is a point
//! where loom branches.

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll, Wake, Waker};

use lock_manager::{LockGuard, LockManager, MultiLockGuard};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Notify};
use loom::thread::{self, JoinHandle};

/// A deterministic hasher: loom replays each interleaving many times.
pub type Hasher = BuildHasherDefault<DefaultHasher>;
pub type Locks = LockManager<usize, Hasher>;

pub const KEYS: usize = 3;

/// The multi-key models run on a manager with one shard, where every key
/// shares one mutex, and on one with sixteen, where keys 0, 1 and 2 fall in
/// different shards (10, 2 and 4 with today's hash, so `acquire_many`
/// takes them in the order 1, 2, 0), so that `try_acquire_many` holds
/// several shard mutexes together.
pub const SHARD_COUNTS: [usize; 2] = [1, 16];

/// Runs `body` under loom on a default manager, then checks that the
/// manager is empty.
pub fn model(body: impl Fn(&Arc<Shared>) + Sync + Send + 'static) {
    check(move || {
        let shared = Shared::with_locks(Locks::default());
        body(&shared);
        shared.assert_quiet();
    });
}

/// [`model`] on a manager of each of [`SHARD_COUNTS`] shards.
pub fn model_sharded(body: impl Fn(&Arc<Shared>) + Sync + Send + 'static) {
    let body = std::sync::Arc::new(body);
    for shards in SHARD_COUNTS {
        let body = body.clone();
        check(move || {
            let shared =
                Shared::with_locks(Locks::with_shards_and_hasher(shards, Hasher::default()));
            body(&shared);
            shared.assert_quiet();
        });
    }
}

/// [`model`] for the `_owned` entry points, which need the manager in a
/// `std::sync::Arc`: `body` gets the bare manager.
pub fn model_owned(body: impl Fn(&std::sync::Arc<Locks>) + Sync + Send + 'static) {
    check(move || {
        let locks = std::sync::Arc::new(Locks::default());
        body(&locks);
        assert_empty(&locks);
    });
}

/// [`model_owned`] on a manager of each of [`SHARD_COUNTS`] shards.
pub fn model_owned_sharded(body: impl Fn(&std::sync::Arc<Locks>) + Sync + Send + 'static) {
    let body = std::sync::Arc::new(body);
    for shards in SHARD_COUNTS {
        let body = body.clone();
        check(move || {
            let locks =
                std::sync::Arc::new(Locks::with_shards_and_hasher(shards, Hasher::default()));
            body(&locks);
            assert_empty(&locks);
        });
    }
}

/// Runs `f` under loom, with a preemption bound of 2 unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise.
fn check<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// The manager plus, per key, the instruments that catch a second holder.
pub struct Shared {
    /// In its own `Arc` for wakers that call back into it.
    pub locks: Arc<Locks>,
    /// Holders currently inside a critical section of each key.
    holders: [AtomicUsize; KEYS],
    /// Written in every critical section: loom checks that the writes are
    /// ordered by happens-before. Also counts the critical sections.
    entered: [UnsafeCell<usize>; KEYS],
}

impl Shared {
    fn with_locks(locks: Locks) -> Arc<Self> {
        Arc::new(Self {
            locks: Arc::new(locks),
            holders: std::array::from_fn(|_| AtomicUsize::new(0)),
            entered: std::array::from_fn(|_| UnsafeCell::new(0)),
        })
    }

    /// Takes `key`, which nobody holds yet, with `try_acquire`.
    pub fn take(&self, key: usize) -> LockGuard<'_, usize, Hasher> {
        self.locks.try_acquire(key).expect("fresh key")
    }

    /// Takes `key`, which nobody holds yet, and enters its critical section
    /// until the result is dropped.
    pub fn take_and_enter(&self, key: usize) -> Held<'_> {
        let guard = self.take(key);
        Held {
            _critical: self.enter(key),
            _guard: guard,
        }
    }

    /// Enters the critical section of `key`; call only while holding it.
    pub fn enter(&self, key: usize) -> Critical<'_> {
        let before = self.holders[key].fetch_add(1, SeqCst);
        assert_eq!(before, 0, "two holders of key {key} at once");
        // SAFETY: only the holder of `key` touches `entered[key]` (and the
        // final check, after every thread was joined); loom panics if two
        // accesses are not ordered by happens-before.
        self.entered[key].with_mut(|count| unsafe { *count += 1 });
        Critical { shared: self, key }
    }

    /// Enters the critical sections of all `keys`; call only while holding
    /// them all.
    pub fn enter_all(&self, keys: &[usize]) -> Vec<Critical<'_>> {
        keys.iter().map(|&key| self.enter(key)).collect()
    }

    /// Runs a critical section on `key`, held by `guard`, and releases it.
    pub fn work<G>(&self, key: usize, guard: G) {
        let critical = self.enter(key);
        drop(critical);
        drop(guard);
    }

    /// Runs a critical section on every key of `guard` and releases them
    /// together.
    pub fn work_all(&self, guard: MultiLockGuard<'_, usize, Hasher>) {
        let critical = self.enter_all(guard.keys());
        drop(critical);
        drop(guard);
    }

    /// Acquires `key` by blocking on the future, runs a critical section and
    /// releases.
    pub fn lock_and_work(&self, key: usize) {
        self.work(key, block_on(self.locks.acquire(key)));
    }

    /// Acquires all `keys` at once by blocking on `acquire_many`, runs a
    /// critical section on each and releases them together.
    pub fn lock_many_and_work(&self, keys: &[usize]) {
        let guard = block_on(self.locks.acquire_many(keys.iter().copied()));
        assert_eq!(sorted(guard.keys()), sorted(keys), "the guard's keys");
        self.work_all(guard);
    }

    /// Tries `key` once and, if it got it, runs a critical section: whether
    /// it got it.
    pub fn try_work(&self, key: usize) -> bool {
        match self.locks.try_acquire(key) {
            Some(guard) => {
                self.work(key, guard);
                true
            }
            None => false,
        }
    }

    /// The number of critical sections entered on `key`. Call after join.
    pub fn entered(&self, key: usize) -> usize {
        // SAFETY: every thread that wrote it has been joined.
        self.entered[key].with(|count| unsafe { *count })
    }

    /// The manager is empty: no key held and no waiter in its slab.
    fn assert_quiet(&self) {
        assert_eq!(self.locks.locked_count(), 0, "a key is still held");
        for key in 0..KEYS {
            assert!(!self.locks.is_locked(&key));
            assert_eq!(self.locks.queue_len(&key), 0);
        }
        assert_debug_quiet(&self.locks);
    }
}

/// No key held, by the count and by `Debug`.
fn assert_empty(locks: &Locks) {
    assert_eq!(locks.locked_count(), 0, "a key is still held");
    assert_debug_quiet(locks);
}

/// The manager's `Debug` shows no key held and no waiter in its slab.
fn assert_debug_quiet(locks: &Locks) {
    let debug = format!("{locks:?}");
    assert!(
        debug.contains("locked: 0") && debug.contains("waiters: 0"),
        "not empty: {debug}"
    );
}

/// A critical section; the holder count drops when it ends.
pub struct Critical<'a> {
    shared: &'a Shared,
    key: usize,
}

impl Drop for Critical<'_> {
    fn drop(&mut self) {
        self.shared.holders[self.key].fetch_sub(1, SeqCst);
    }
}

/// A key held inside its critical section: dropping it leaves the section,
/// then releases the key (fields drop in order).
pub struct Held<'a> {
    _critical: Critical<'a>,
    _guard: LockGuard<'a, usize, Hasher>,
}

/// `keys` sorted, without duplicates.
pub fn sorted(keys: &[usize]) -> Vec<usize> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Spawns a loom thread that runs `f` on its own clone of `shared`.
pub fn spawn<T: 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Arc<Shared>) -> T + Send + 'static,
) -> JoinHandle<T> {
    let shared = shared.clone();
    thread::spawn(move || f(&shared))
}

/// Spawns a thread that blocks on `acquire(key)`, works and releases.
pub fn spawn_lock(shared: &Arc<Shared>, key: usize) -> JoinHandle<()> {
    spawn(shared, move |shared| shared.lock_and_work(key))
}

/// Spawns a thread that blocks on `acquire_many(keys)`, works on each key
/// and releases them together.
pub fn spawn_lock_many<const N: usize>(shared: &Arc<Shared>, keys: [usize; N]) -> JoinHandle<()> {
    spawn(shared, move |shared| shared.lock_many_and_work(&keys))
}

/// Spawns a thread that polls `acquire(key)` once: if ready it works,
/// otherwise it drops (cancels) the future.
pub fn spawn_poll_once(shared: &Arc<Shared>, key: usize) -> JoinHandle<()> {
    spawn(shared, move |shared| {
        let task = Task::new();
        let mut acquire = shared.locks.acquire(key);
        if let Poll::Ready(guard) = task.poll(&mut acquire) {
            shared.work(key, guard);
        }
    })
}

/// Spawns a thread that tries `key` once: it may take the key only after
/// `dropped` is set (the future owed the key was dropped), and then runs a
/// critical section.
pub fn spawn_try_after(
    shared: &Arc<Shared>,
    key: usize,
    dropped: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let shared = shared.clone();
    let dropped = dropped.clone();
    thread::spawn(move || {
        if let Some(guard) = shared.locks.try_acquire(key) {
            assert!(dropped.load(SeqCst), "took a key granted to another");
            shared.work(key, guard);
        }
    })
}

/// Joins `thread`, re-raising its panic.
pub fn join<T>(thread: JoinHandle<T>) -> T {
    thread.join().unwrap()
}

/// Joins every thread, in order.
pub fn join_all(threads: impl IntoIterator<Item = JoinHandle<()>>) {
    threads.into_iter().for_each(join);
}

/// Drives `future` to completion on the current loom thread, parking it
/// between polls until its waker is woken. (`loom::future::block_on` does
/// the same but needs loom's `futures` feature.)
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Notify);

    impl Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.notify();
        }
    }

    let mut future = pin!(future);
    let unpark = std::sync::Arc::new(Unpark(Notify::new()));
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // Returns at once if woken since the last wait; loom reports a
        // deadlock if no thread is left to wake it.
        unpark.0.wait();
    }
}

/// Polls `body` on the current loom thread until `started` is set, and
/// checks that it is still pending then.
pub fn run_until<F: Future>(mut body: Pin<&mut F>, started: &Cell<bool>) {
    block_on(std::future::poll_fn(|cx| {
        assert!(body.as_mut().poll(cx).is_pending());
        if started.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
}

/// A waker that counts its wake-ups.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A task polled by hand: a waker plus the count of its wake-ups (as
/// `common::Task` in the other test binaries).
pub struct Task {
    counter: std::sync::Arc<Counter>,
    waker: Waker,
}

impl Task {
    pub fn new() -> Self {
        let counter = std::sync::Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        Self { counter, waker }
    }

    pub fn wakes(&self) -> usize {
        self.counter.0.load(SeqCst)
    }

    /// Polls `future` once with this task's waker.
    pub fn poll<F: Future + Unpin>(&self, future: &mut F) -> Poll<F::Output> {
        poll_once(future, &self.waker)
    }

    /// Polls `future` once, checks that it queued (is pending), and
    /// returns it.
    pub fn queued<F: Future + Unpin>(&self, mut future: F) -> F {
        assert!(self.poll(&mut future).is_pending(), "queued");
        future
    }
}

/// Polls `future` once with `waker`.
pub fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// A waker that calls back into the manager when woken and when its last
/// clone is dropped: if the manager woke or dropped it with its mutex held,
/// the call would lock the mutex twice on one thread, which loom reports
/// as a deadlock.
struct Reentrant {
    locks: Arc<Locks>,
}

impl Wake for Reentrant {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        let _ = self.locks.locked_count();
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        let _ = self.locks.is_locked(&0);
    }
}

/// A [`Reentrant`] waker on `shared`'s manager.
pub fn reentrant_waker(shared: &Arc<Shared>) -> Waker {
    Waker::from(std::sync::Arc::new(Reentrant {
        locks: shared.locks.clone(),
    }))
}
