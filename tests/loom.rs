//! Model-checked races between acquires, releases, cancellations, re-polls
//! and the removal of idle keys, explored by loom over every interleaving
//! of the manager's mutexes (up to a preemption bound); and the same for
//! multi-key requests (`acquire_many`, `with_locks`), which take several
//! shards' mutexes together and may be handed a key without a wake-up.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom
//! ```
//!
//! Every critical section is checked twice: a per-key counter of holders
//! must read 0 on entry, and a `loom::cell::UnsafeCell` is written inside it,
//! which loom rejects unless the previous holder's writes happen-before the
//! next holder's (the hand-off really synchronizes). A waiter whose wake-up
//! is lost leaves its thread parked in `block_on` forever, which loom
//! reports as a deadlock. Every model ends by checking that the manager is
//! empty: no key held, no waiter left in its slab.
#![cfg(loom)]

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::pin;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll, Wake, Waker};

use lock_manager::LockManager;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize};
use loom::sync::{Arc, Notify};
use loom::thread;

/// A deterministic hasher: loom replays each interleaving many times.
type Locks = LockManager<usize, BuildHasherDefault<DefaultHasher>>;

const KEYS: usize = 3;

/// The manager plus, per key, the instruments that catch a second holder.
struct Shared {
    /// In its own `Arc` for wakers that call back into it.
    locks: Arc<Locks>,
    /// Holders currently inside a critical section of each key.
    holders: [AtomicUsize; KEYS],
    /// Written in every critical section: loom checks that the writes are
    /// ordered by happens-before. Also counts the critical sections.
    entered: [UnsafeCell<usize>; KEYS],
}

impl Shared {
    fn new() -> Arc<Self> {
        Self::with_locks(Locks::default())
    }

    /// With a manager of `shards` shards.
    fn with_shards(shards: usize) -> Arc<Self> {
        Self::with_locks(Locks::with_shards_and_hasher(shards, Default::default()))
    }

    fn with_locks(locks: Locks) -> Arc<Self> {
        Arc::new(Self {
            locks: Arc::new(locks),
            holders: std::array::from_fn(|_| AtomicUsize::new(0)),
            entered: std::array::from_fn(|_| UnsafeCell::new(0)),
        })
    }

    /// Enters the critical section of `key`; call only while holding it.
    fn enter(&self, key: usize) -> Critical<'_> {
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
    fn enter_all(&self, keys: &[usize]) -> Vec<Critical<'_>> {
        keys.iter().map(|&key| self.enter(key)).collect()
    }

    /// The number of critical sections entered on `key`. Call after join.
    fn entered(&self, key: usize) -> usize {
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

/// The manager's `Debug` shows no key held and no waiter in its slab.
fn assert_debug_quiet(locks: &Locks) {
    let debug = format!("{locks:?}");
    assert!(
        debug.contains("locked: 0") && debug.contains("waiters: 0"),
        "not empty: {debug}"
    );
}

/// A critical section; the holder count drops when it ends.
struct Critical<'a> {
    shared: &'a Shared,
    key: usize,
}

impl Drop for Critical<'_> {
    fn drop(&mut self) {
        self.shared.holders[self.key].fetch_sub(1, SeqCst);
    }
}

/// Acquires `key` by blocking on the future, runs a critical section and
/// releases.
fn lock_and_work(shared: &Shared, key: usize) {
    let guard = block_on(shared.locks.acquire(key));
    let critical = shared.enter(key);
    drop(critical);
    drop(guard);
}

/// Acquires all `keys` at once by blocking on `acquire_many`, runs a
/// critical section on each and releases them together.
fn lock_many_and_work(shared: &Shared, keys: &[usize]) {
    let guard = block_on(shared.locks.acquire_many(keys.iter().copied()));
    assert_eq!(sorted(guard.keys()), sorted(keys), "the guard's keys");
    let critical = shared.enter_all(guard.keys());
    drop(critical);
    drop(guard);
}

/// `keys` sorted, without duplicates.
fn sorted(keys: &[usize]) -> Vec<usize> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Drives `future` to completion on the current loom thread, parking it
/// between polls until its waker is woken. (`loom::future::block_on` does
/// the same but needs loom's `futures` feature.)
fn block_on<F: Future>(future: F) -> F::Output {
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

/// A waker that counts its wake-ups, for futures polled by hand.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn counting_waker() -> (std::sync::Arc<Counter>, Waker) {
    let counter = std::sync::Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    (counter, waker)
}

fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    std::pin::Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// Spawns a thread that tries `key` once: it may take the key only after
/// `dropped` is set (the future owed the key was dropped), and then runs a
/// critical section.
fn try_once_dropped(
    shared: &Arc<Shared>,
    key: usize,
    dropped: &Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    let shared = shared.clone();
    let dropped = dropped.clone();
    thread::spawn(move || {
        if let Some(guard) = shared.locks.try_acquire(key) {
            assert!(dropped.load(SeqCst), "took a key granted to another");
            let critical = shared.enter(key);
            drop(critical);
            drop(guard);
        }
    })
}

/// Polls `body` on the current loom thread until `started` is set, and
/// checks that it is still pending then.
fn run_until<F: Future>(mut body: std::pin::Pin<&mut F>, started: &Cell<bool>) {
    block_on(std::future::poll_fn(|cx| {
        assert!(body.as_mut().poll(cx).is_pending());
        if started.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
}

/// Runs `f` under loom, with a preemption bound of 2 unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

/// Two threads block on `acquire` while the main thread releases the key
/// they contend for: each gets it, one at a time, and the key is forgotten
/// after the last release.
#[test]
fn acquire_races_release() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");
        let critical = shared.enter(0);

        let threads: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || lock_and_work(&shared, 0))
            })
            .collect();

        drop(critical);
        drop(guard);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shared.entered(0), 3);
        shared.assert_quiet();
    });
}

/// A waiter that queued behind the main thread's guard drops its future
/// while the guard is released: whether it was still queued or had just
/// been handed the key, the third thread still gets the lock.
#[test]
fn queued_waiter_cancelled_while_holder_releases() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");

        let canceller = {
            let shared = shared.clone();
            thread::spawn(move || {
                let (counter, waker) = counting_waker();
                let mut acquire = shared.locks.acquire(0);
                match poll_once(&mut acquire, &waker) {
                    // The main thread released first: a plain acquire.
                    Poll::Ready(guard) => {
                        let critical = shared.enter(0);
                        drop(critical);
                        drop(guard);
                    }
                    Poll::Pending => {
                        drop(acquire);
                        // Woken at most once: if the key was handed to it.
                        let wakes = counter.0.load(SeqCst);
                        assert!(wakes <= 1, "woken {wakes} times");
                    }
                }
            })
        };
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || lock_and_work(&shared, 0))
        };

        drop(guard);
        canceller.join().unwrap();
        waiter.join().unwrap();
        shared.assert_quiet();
    });
}

/// Two queued waiters give up while the holder releases, so the key may be
/// handed to one, passed on by its cancellation to the other, and passed on
/// again: the main thread, acquiring afterwards, must still get it.
#[test]
fn chain_of_cancellations_races_release() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");

        let cancellers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let (_counter, waker) = counting_waker();
                    let mut acquire = shared.locks.acquire(0);
                    if let Poll::Ready(guard) = poll_once(&mut acquire, &waker) {
                        let critical = shared.enter(0);
                        drop(critical);
                        drop(guard);
                    }
                })
            })
            .collect();

        drop(guard);
        lock_and_work(&shared, 0);
        for t in cancellers {
            t.join().unwrap();
        }
        shared.assert_quiet();
    });
}

/// The key is handed to a waiter that is never polled again; its future is
/// dropped while a second thread blocks on `acquire` and a third calls
/// `try_acquire`. The hand-off passes on, nobody ever holds the key twice,
/// and `try_acquire` never takes it while the granted waiter still owns it.
#[test]
fn granted_unpolled_waiter_dropped_while_others_acquire() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");
        let (counter, waker) = counting_waker();
        let mut granted = shared.locks.acquire(0);
        assert!(poll_once(&mut granted, &waker).is_pending());
        drop(guard);
        assert_eq!(counter.0.load(SeqCst), 1, "the waiter was handed the key");
        assert_eq!(shared.locks.queue_len(&0), 1);
        // The key is held on the granted waiter's behalf until it is dropped.
        let dropped = Arc::new(AtomicBool::new(false));

        let acquirer = {
            let shared = shared.clone();
            thread::spawn(move || lock_and_work(&shared, 0))
        };
        let trier = try_once_dropped(&shared, 0, &dropped);

        dropped.store(true, SeqCst);
        drop(granted);
        acquirer.join().unwrap();
        trier.join().unwrap();
        assert_eq!(counter.0.load(SeqCst), 1);
        shared.assert_quiet();
    });
}

/// The same, with the granted future moved to another thread and dropped
/// there (`acquire_owned` futures are `'static`), while the main thread
/// blocks on a new acquire.
#[test]
fn granted_owned_waiter_dropped_on_another_thread() {
    model(|| {
        let locks = std::sync::Arc::new(Locks::default());
        let guard = locks.try_acquire_owned(0).expect("fresh key");
        let (counter, waker) = counting_waker();
        let mut granted = locks.acquire_owned(0);
        assert!(poll_once(&mut granted, &waker).is_pending());
        let releaser = thread::spawn(move || {
            drop(guard);
            drop(granted);
        });
        let guard = block_on(locks.acquire(0));
        drop(guard);
        releaser.join().unwrap();
        assert_eq!(counter.0.load(SeqCst), 1, "woken once, when granted");
        assert_eq!(locks.locked_count(), 0);
        assert_debug_quiet(&locks);
    });
}

/// `try_acquire` races the release of a key that a second thread waits
/// for: it may take the key only once it is free, never while held or
/// while anyone waits.
#[test]
fn try_acquire_races_release() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");
        let critical = shared.enter(0);

        let trier = {
            let shared = shared.clone();
            thread::spawn(move || {
                let got = shared.locks.try_acquire(0);
                if got.is_some() {
                    let critical = shared.enter(0);
                    drop(critical);
                }
                got.is_some()
            })
        };
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || lock_and_work(&shared, 0))
        };

        drop(critical);
        drop(guard);
        let tried = trier.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(shared.entered(0), 2 + usize::from(tried));
        shared.assert_quiet();
    });
}

/// While a queued waiter is owed the key, `try_acquire` on another thread
/// must fail: the release hands the key straight to the waiter, so there is
/// no moment when the key is free until the waiter's own guard goes.
#[test]
fn try_acquire_never_barges_past_a_waiter() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");
        let (counter, waker) = counting_waker();
        let mut waiter = shared.locks.acquire(0);
        assert!(poll_once(&mut waiter, &waker).is_pending());
        let done = Arc::new(AtomicBool::new(false));

        let trier = {
            let shared = shared.clone();
            let done = done.clone();
            thread::spawn(move || {
                if let Some(guard) = shared.locks.try_acquire(0) {
                    assert!(done.load(SeqCst), "try_acquire barged past a waiter");
                    drop(guard);
                }
            })
        };

        drop(guard);
        assert_eq!(counter.0.load(SeqCst), 1);
        let guard = match poll_once(&mut waiter, &waker) {
            Poll::Ready(guard) => guard,
            Poll::Pending => panic!("the woken waiter was not granted"),
        };
        done.store(true, SeqCst);
        drop(guard);
        trier.join().unwrap();
        shared.assert_quiet();
    });
}

/// A queued future re-polled with a new waker (it moved to another task)
/// while the holder releases: the hand-off must wake the new waker, or the
/// waiter sleeps forever.
#[test]
fn repoll_with_new_waker_races_release() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");

        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || {
                let (_counter, first) = counting_waker();
                let mut acquire = shared.locks.acquire(0);
                let guard = match poll_once(&mut acquire, &first) {
                    Poll::Ready(guard) => guard,
                    // `block_on` polls with its own waker, then parks.
                    Poll::Pending => block_on(&mut acquire),
                };
                let critical = shared.enter(0);
                drop(critical);
                drop(guard);
            })
        };

        drop(guard);
        waiter.join().unwrap();
        shared.assert_quiet();
    });
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

fn reentrant_waker(shared: &Arc<Shared>) -> Waker {
    Waker::from(std::sync::Arc::new(Reentrant {
        locks: shared.locks.clone(),
    }))
}

/// Wakers are woken and dropped only after the manager's mutex is
/// released: a queued future swaps its waker (the old one is dropped by
/// the manager, as its last clone) and is then dropped (so is the new one)
/// while the holder releases (which may wake either).
#[test]
fn wakers_run_outside_the_mutex() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");

        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || {
                let mut acquire = shared.locks.acquire(0);
                let first = reentrant_waker(&shared);
                if poll_once(&mut acquire, &first).is_ready() {
                    return;
                }
                drop(first); // the manager holds the last clone
                let second = reentrant_waker(&shared);
                // Swaps the waker, or takes the grant (the guard is dropped).
                let _ = poll_once(&mut acquire, &second);
                drop(second);
                drop(acquire); // leaves the queue if still in it
            })
        };

        drop(guard);
        waiter.join().unwrap();
        shared.assert_quiet();
    });
}

/// No holder at first: three threads race to take a fresh key, and each
/// release with nobody waiting removes the key while another thread may be
/// arriving. The removal must never lose an arrival that queued, nor leave
/// the key behind.
#[test]
fn cleanup_races_new_arrival() {
    model(|| {
        let shared = Shared::new();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || lock_and_work(&shared, 0))
            })
            .collect();

        let tried = match shared.locks.try_acquire(0) {
            Some(guard) => {
                let critical = shared.enter(0);
                drop(critical);
                drop(guard);
                1
            }
            None => 0,
        };
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(shared.entered(0), 2 + tried);
        shared.assert_quiet();
    });
}

/// Key 1 is contended by two threads while the main thread holds key 0
/// for the whole time: if key 1 waited for key 0, they would deadlock.
#[test]
fn two_keys_are_independent() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");
        let critical = shared.enter(0);

        let threads: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    lock_and_work(&shared, 1);
                    assert!(shared.locks.is_locked(&0));
                    assert!(shared.locks.try_acquire(0).is_none());
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!shared.locks.is_locked(&1));
        drop(critical);
        drop(guard);
        assert_eq!(shared.entered(1), 2);
        shared.assert_quiet();
    });
}

/// A `with_lock` future is dropped while its body awaits something that
/// never completes, racing another thread's acquire: the body's future (and
/// so its critical section) ends before the lock passes on.
#[test]
fn with_lock_dropped_midway() {
    model(|| {
        let shared = Shared::new();
        let guard = shared.locks.try_acquire(0).expect("fresh key");

        let runner = {
            let shared = shared.clone();
            thread::spawn(move || {
                let started = Cell::new(false);
                let mut body = pin!(shared.locks.with_lock(0, || async {
                    let _critical = shared.enter(0);
                    started.set(true);
                    std::future::pending::<()>().await
                }));
                // Drive it until the body runs, then drop it midway.
                run_until(body.as_mut(), &started);
            })
        };
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || lock_and_work(&shared, 0))
        };

        drop(guard);
        runner.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(shared.entered(0), 2);
        shared.assert_quiet();
    });
}

/// The multi-key models run on a manager with one shard, where every key
/// shares one mutex, and on one with sixteen, where keys 0, 1 and 2 fall in
/// different shards (11, 10 and 9 with today's spread hash), so that
/// `acquire_many` places its request under several shard mutexes held
/// together.
const SHARD_COUNTS: [usize; 2] = [1, 16];

/// Two threads lock {0, 1} and {1, 0} with `acquire_many` while the main
/// thread releases key 0: both get both keys, one holder at a time. Were
/// the request placed key by key rather than under all its shards' mutexes
/// at once, the two could queue in opposite orders on the two keys, each
/// holding what the other waits for, which loom reports as a deadlock.
#[test]
fn many_in_opposite_orders_race_release() {
    for shards in SHARD_COUNTS {
        model(move || {
            let shared = Shared::with_shards(shards);
            let guard = shared.locks.try_acquire(0).expect("fresh key");
            let critical = shared.enter(0);

            let threads: Vec<_> = [[0, 1], [1, 0]]
                .into_iter()
                .map(|keys| {
                    let shared = shared.clone();
                    thread::spawn(move || lock_many_and_work(&shared, &keys))
                })
                .collect();

            drop(critical);
            drop(guard);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!((shared.entered(0), shared.entered(1)), (3, 2));
            shared.assert_quiet();
        });
    }
}

/// The main thread holds keys 0 and 1 and releases one of them while a
/// request for both is placed and dropped on another thread and a third
/// thread waits for the released key. Whether the request found that key
/// free when placed, was still queued on it, or had been handed it (woken
/// if its waker sat on that key's link, silently otherwise: the model runs
/// for either key), the drop gives the key up and leaves the other key's
/// queue, and the waiter gets the key.
#[test]
fn partly_granted_many_dropped_while_other_key_released() {
    for shards in SHARD_COUNTS {
        for released in [0, 1] {
            model(move || {
                let shared = Shared::with_shards(shards);
                let kept = 1 - released;
                let mut holders = [0, 1].map(|key| shared.locks.try_acquire(key));

                let canceller = {
                    let shared = shared.clone();
                    thread::spawn(move || {
                        let (counter, waker) = counting_waker();
                        let mut both = shared.locks.acquire_many([0, 1]);
                        let polled = poll_once(&mut both, &waker);
                        assert!(polled.is_pending(), "key {kept} is held throughout");
                        drop(both);
                        let wakes = counter.0.load(SeqCst);
                        assert!(wakes <= 1, "woken {wakes} times");
                    })
                };
                let waiter = {
                    let shared = shared.clone();
                    thread::spawn(move || lock_and_work(&shared, released))
                };

                drop(holders[released].take().expect("fresh key"));
                canceller.join().unwrap();
                waiter.join().unwrap();
                assert_eq!(shared.locks.queue_len(&kept), 1, "left the queue of {kept}");
                drop(holders[kept].take().expect("fresh key"));
                assert_eq!(shared.entered(released), 1);
                shared.assert_quiet();
            });
        }
    }
}

/// A request is handed both its keys and never polled again; it is dropped
/// while one thread blocks on key 0 and another tries key 1. Both keys pass
/// on, nobody holds either twice, and `try_acquire` never takes a key the
/// request still owns.
#[test]
fn granted_unpolled_many_dropped_while_others_acquire() {
    for shards in SHARD_COUNTS {
        model(move || {
            let shared = Shared::with_shards(shards);
            let holders = [0, 1].map(|key| shared.locks.try_acquire(key).expect("fresh key"));
            let (counter, waker) = counting_waker();
            let mut both = shared.locks.acquire_many([0, 1]);
            assert!(poll_once(&mut both, &waker).is_pending());
            drop(holders);
            // Its waker sat on one of the two links; either way it was woken.
            assert!(counter.0.load(SeqCst) >= 1, "holds both keys, never woken");
            assert_eq!(shared.locks.queue_len(&0), 1);
            assert_eq!(shared.locks.queue_len(&1), 1);
            let dropped = Arc::new(AtomicBool::new(false));

            let acquirer = {
                let shared = shared.clone();
                thread::spawn(move || lock_and_work(&shared, 0))
            };
            let trier = try_once_dropped(&shared, 1, &dropped);

            dropped.store(true, SeqCst);
            drop(both);
            acquirer.join().unwrap();
            trier.join().unwrap();
            assert_eq!(shared.entered(0), 1);
            shared.assert_quiet();
        });
    }
}

/// A `with_locks` future on keys 1 and 0 is dropped while its body awaits
/// something that never completes, racing another thread's acquire of
/// key 0 (held by the main thread at first): the body, and so its critical
/// sections, ends before either key passes on.
#[test]
fn with_locks_dropped_midway() {
    for shards in SHARD_COUNTS {
        model(move || {
            let shared = Shared::with_shards(shards);
            let guard = shared.locks.try_acquire(0).expect("fresh key");

            let runner = {
                let shared = shared.clone();
                thread::spawn(move || {
                    let started = Cell::new(false);
                    let mut body = pin!(shared.locks.with_locks([1, 0], || async {
                        let _critical = shared.enter_all(&[0, 1]);
                        started.set(true);
                        std::future::pending::<()>().await
                    }));
                    // Drive it until the body runs, then drop it midway.
                    run_until(body.as_mut(), &started);
                })
            };
            let waiter = {
                let shared = shared.clone();
                thread::spawn(move || lock_and_work(&shared, 0))
            };

            drop(guard);
            runner.join().unwrap();
            waiter.join().unwrap();
            assert_eq!((shared.entered(0), shared.entered(1)), (2, 1));
            shared.assert_quiet();
        });
    }
}

/// With nobody holding anything at first, a request for keys 0 and 1
/// (key 1 listed twice: duplicates are merged, or the request would wait
/// for itself) races single-key acquires of key 1 (on another thread) and
/// key 0 (on the main thread). The two kinds share each key's queue: in
/// whatever order they arrive, each gets its keys, one holder at a time.
#[test]
fn single_and_many_race_on_shared_keys() {
    for shards in SHARD_COUNTS {
        model(move || {
            let shared = Shared::with_shards(shards);
            let many = {
                let shared = shared.clone();
                thread::spawn(move || lock_many_and_work(&shared, &[1, 0, 1]))
            };
            let single = {
                let shared = shared.clone();
                thread::spawn(move || lock_and_work(&shared, 1))
            };

            lock_and_work(&shared, 0);
            many.join().unwrap();
            single.join().unwrap();
            assert_eq!((shared.entered(0), shared.entered(1)), (2, 2));
            shared.assert_quiet();
        });
    }
}

/// A request for keys 0 and 1, polled once with one waker, moves to
/// another task (`block_on`'s waker) while the main thread releases both
/// keys, in either order. Only one link carries a waker and the other key
/// is handed over silently: whichever key comes last, the hand-off the
/// request waits for must wake the new waker, or its thread sleeps forever.
#[test]
fn many_repolled_with_new_waker_races_releases() {
    for shards in SHARD_COUNTS {
        for first in [0, 1] {
            model(move || {
                let shared = Shared::with_shards(shards);
                let mut holders = [0, 1].map(|key| Some(shared.locks.try_acquire(key).unwrap()));

                let waiter = {
                    let shared = shared.clone();
                    thread::spawn(move || {
                        let (_counter, waker) = counting_waker();
                        let mut both = shared.locks.acquire_many([0, 1]);
                        let guard = match poll_once(&mut both, &waker) {
                            Poll::Ready(guard) => guard,
                            Poll::Pending => block_on(&mut both),
                        };
                        let critical = shared.enter_all(guard.keys());
                        drop(critical);
                        drop(guard);
                    })
                };

                drop(holders[first].take());
                drop(holders[1 - first].take());
                waiter.join().unwrap();
                assert_eq!((shared.entered(0), shared.entered(1)), (1, 1));
                shared.assert_quiet();
            });
        }
    }
}

/// Three requests over keys {0, 1}, {1, 2} and {2, 0}, each overlapping the
/// next, race with nobody holding anything at first: a cycle of requests
/// each holding a key the next one waits for would deadlock, and cannot
/// form as every queue orders the requests by the same arrival.
#[test]
fn many_in_a_cycle_never_deadlock() {
    for shards in SHARD_COUNTS {
        model(move || {
            let shared = Shared::with_shards(shards);
            let threads: Vec<_> = [[0, 1], [1, 2]]
                .into_iter()
                .map(|keys| {
                    let shared = shared.clone();
                    thread::spawn(move || lock_many_and_work(&shared, &keys))
                })
                .collect();

            lock_many_and_work(&shared, &[2, 0]);
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!((0..KEYS).map(|key| shared.entered(key)).sum::<usize>(), 6);
            shared.assert_quiet();
        });
    }
}

/// An `acquire_many_owned` future, holding key 1 and queued on key 0, moves
/// to another thread where key 0 is released and the future dropped, while
/// the main thread blocks on a request for both keys: the hand-off passes
/// on through the dropped future, and the main thread gets both.
#[test]
fn owned_many_dropped_on_another_thread() {
    for shards in SHARD_COUNTS {
        model(move || {
            let locks =
                std::sync::Arc::new(Locks::with_shards_and_hasher(shards, Default::default()));
            let guard = locks.try_acquire_owned(0).expect("fresh key");
            let (counter, waker) = counting_waker();
            let mut both = locks.acquire_many_owned([0, 1]);
            assert!(poll_once(&mut both, &waker).is_pending());
            assert_eq!((locks.queue_len(&0), locks.queue_len(&1)), (2, 1));

            let releaser = thread::spawn(move || {
                drop(guard);
                drop(both);
            });
            let guard = block_on(locks.acquire_many([1, 0]));
            assert_eq!(sorted(guard.keys()), [0, 1]);
            drop(guard);
            releaser.join().unwrap();
            assert!(counter.0.load(SeqCst) <= 1, "woken more than once");
            assert_eq!(locks.locked_count(), 0);
            assert_debug_quiet(&locks);
        });
    }
}
