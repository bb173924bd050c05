//! Model-checked races between acquires, releases, cancellations, re-polls
//! and the removal of idle keys, explored by loom over every interleaving
//! of the manager's mutexes (up to a preemption bound); and the same for
//! multi-key requests (`acquire_many`, `with_locks`, `try_acquire_many`,
//! `enqueue_bounded` on them), which take several shards' mutexes together
//! and may be handed a key without a wake-up; so may a future placed with
//! `enqueue` before its first poll.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom
//! ```
//!
//! The instruments (tests/loom/common.rs) catch a second holder of a key, a
//! hand-off that does not synchronize, and a lost wake-up (as a deadlock);
//! every model ends by checking that the manager is empty.
#![cfg(loom)]

// Not the suite's helpers: their runtimes are not built under `--cfg loom`.
mod common;

use std::cell::Cell;
use std::pin::pin;
use std::sync::atomic::Ordering::SeqCst;
use std::task::Poll;

use common::{
    block_on, join, join_all, model, model_owned, model_owned_sharded, model_sharded, poll_once,
    reentrant_waker, run_until, sorted, spawn, spawn_lock, spawn_lock_many, spawn_poll_once,
    spawn_try_after, Shared, Task, KEYS,
};
use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;

/// Two threads block on `acquire` while the main thread releases the key
/// they contend for: each gets it, one at a time, and the key is forgotten
/// after the last release.
#[test]
fn acquire_races_release() {
    model(|shared| {
        let held = shared.take_and_enter(0);
        let threads = [spawn_lock(shared, 0), spawn_lock(shared, 0)];

        drop(held);
        join_all(threads);
        assert_eq!(shared.entered(0), 3);
    });
}

/// A waiter that queued behind the main thread's guard drops its future
/// while the guard is released: whether it was still queued or had just
/// been handed the key, the third thread still gets the lock.
#[test]
fn queued_waiter_cancelled_while_holder_releases() {
    model(|shared| {
        let guard = shared.take(0);
        let canceller = spawn(shared, |shared| {
            let task = Task::new();
            let mut acquire = shared.locks.acquire(0);
            match task.poll(&mut acquire) {
                // The main thread released first: a plain acquire.
                Poll::Ready(guard) => shared.work(0, guard),
                Poll::Pending => {
                    drop(acquire);
                    // Woken at most once: if the key was handed to it.
                    let wakes = task.wakes();
                    assert!(wakes <= 1, "woken {wakes} times");
                }
            }
        });
        let waiter = spawn_lock(shared, 0);

        drop(guard);
        join_all([canceller, waiter]);
    });
}

/// Two queued waiters give up while the holder releases, so the key may be
/// handed to one, passed on by its cancellation to the other, and passed on
/// again: the main thread, acquiring afterwards, must still get it.
#[test]
fn chain_of_cancellations_races_release() {
    model(|shared| {
        let guard = shared.take(0);
        let cancellers = [spawn_poll_once(shared, 0), spawn_poll_once(shared, 0)];

        drop(guard);
        shared.lock_and_work(0);
        join_all(cancellers);
    });
}

/// The key is handed to a waiter that is never polled again; its future is
/// dropped while a second thread blocks on `acquire` and a third calls
/// `try_acquire`. The hand-off passes on, nobody ever holds the key twice,
/// and `try_acquire` never takes it while the granted waiter still owns it.
#[test]
fn granted_unpolled_waiter_dropped_while_others_acquire() {
    model(|shared| {
        let guard = shared.take(0);
        let task = Task::new();
        let granted = task.queued(shared.locks.acquire(0));
        drop(guard);
        assert_eq!(task.wakes(), 1, "the waiter was handed the key");
        assert_eq!(shared.locks.queue_len(&0), 1);
        // The key is held on the granted waiter's behalf until it is dropped.
        let dropped = Arc::new(AtomicBool::new(false));
        let acquirer = spawn_lock(shared, 0);
        let trier = spawn_try_after(shared, 0, &dropped);

        dropped.store(true, SeqCst);
        drop(granted);
        join_all([acquirer, trier]);
        assert_eq!(task.wakes(), 1);
    });
}

/// The same, with the granted future moved to another thread and dropped
/// there (`acquire_owned` futures are `'static`), while the main thread
/// blocks on a new acquire.
#[test]
fn granted_owned_waiter_dropped_on_another_thread() {
    model_owned(|locks| {
        let guard = locks.try_acquire_owned(0).expect("fresh key");
        let task = Task::new();
        let granted = task.queued(locks.acquire_owned(0));
        let releaser = thread::spawn(move || {
            drop(guard);
            drop(granted);
        });

        drop(block_on(locks.acquire(0)));
        join(releaser);
        assert_eq!(task.wakes(), 1, "woken once, when granted");
    });
}

/// `try_acquire` races the release of a key that a second thread waits
/// for: it may take the key only once it is free, never while held or
/// while anyone waits.
#[test]
fn try_acquire_races_release() {
    model(|shared| {
        let held = shared.take_and_enter(0);
        let trier = spawn(shared, |shared| shared.try_work(0));
        let waiter = spawn_lock(shared, 0);

        drop(held);
        let tried = join(trier);
        join(waiter);
        assert_eq!(shared.entered(0), 2 + usize::from(tried));
    });
}

/// While a queued waiter is owed the key, `try_acquire` on another thread
/// must fail: the release hands the key straight to the waiter, so there is
/// no moment when the key is free until the waiter's own guard goes.
#[test]
fn try_acquire_never_barges_past_a_waiter() {
    model(|shared| {
        let guard = shared.take(0);
        let task = Task::new();
        let mut waiter = task.queued(shared.locks.acquire(0));
        let done = Arc::new(AtomicBool::new(false));
        let trier = {
            let done = done.clone();
            spawn(shared, move |shared| {
                if let Some(guard) = shared.locks.try_acquire(0) {
                    assert!(done.load(SeqCst), "try_acquire barged past a waiter");
                    drop(guard);
                }
            })
        };

        drop(guard);
        assert_eq!(task.wakes(), 1);
        let Poll::Ready(guard) = task.poll(&mut waiter) else {
            panic!("the woken waiter was not granted");
        };
        done.store(true, SeqCst);
        drop(guard);
        join(trier);
    });
}

/// A queued future re-polled with a new waker (it moved to another task)
/// while the holder releases: the hand-off must wake the new waker, or the
/// waiter sleeps forever.
#[test]
fn repoll_with_new_waker_races_release() {
    model(|shared| {
        let guard = shared.take(0);
        let waiter = spawn(shared, |shared| {
            let first = Task::new();
            let mut acquire = shared.locks.acquire(0);
            let guard = match first.poll(&mut acquire) {
                Poll::Ready(guard) => guard,
                // `block_on` polls with its own waker, then parks.
                Poll::Pending => block_on(&mut acquire),
            };
            shared.work(0, guard);
        });

        drop(guard);
        join(waiter);
    });
}

/// Wakers are woken and dropped only after the manager's mutex is
/// released: a queued future swaps its waker (the old one is dropped by
/// the manager, as its last clone) and is then dropped (so is the new one)
/// while the holder releases (which may wake either).
#[test]
fn wakers_run_outside_the_mutex() {
    model(|shared| {
        let guard = shared.take(0);
        let waiter = spawn(shared, |shared| {
            let mut acquire = shared.locks.acquire(0);
            let first = reentrant_waker(shared);
            if poll_once(&mut acquire, &first).is_ready() {
                return;
            }
            drop(first); // the manager holds the last clone
            let second = reentrant_waker(shared);
            // Swaps the waker, or takes the grant (the guard is dropped).
            let _ = poll_once(&mut acquire, &second);
            drop(second);
            drop(acquire); // leaves the queue if still in it
        });

        drop(guard);
        join(waiter);
    });
}

/// A thread acquires twice in a row while the main thread releases and
/// takes the key again: its second acquire either finds the key free or
/// queues behind the main thread (its waker cloned under the shard's
/// mutex), and a wake-up lost either way would deadlock.
#[test]
fn acquire_twice_races_release_and_reacquire() {
    model(|shared| {
        let held = shared.take_and_enter(0);
        let waiter = spawn(shared, |shared| {
            shared.lock_and_work(0); // waits while the main thread holds
            shared.lock_and_work(0); // free, or held by the main thread again
        });

        drop(held);
        shared.lock_and_work(0);
        join(waiter);
        assert_eq!(shared.entered(0), 4);
    });
}

/// No holder at first: three threads race to take a fresh key, and each
/// release with nobody waiting removes the key while another thread may be
/// arriving. The removal must never lose an arrival that queued, nor leave
/// the key behind.
#[test]
fn cleanup_races_new_arrival() {
    model(|shared| {
        let threads = [spawn_lock(shared, 0), spawn_lock(shared, 0)];

        let tried = usize::from(shared.try_work(0));
        join_all(threads);
        assert_eq!(shared.entered(0), 2 + tried);
    });
}

/// Keys 0 and 1 are handed over at once, in one shard or in two: each
/// woken waiter locks its shard to take its grant, whatever the other
/// hand-off is doing, and every slot is freed.
#[test]
fn hand_offs_on_two_keys_race() {
    model_sharded(|shared| {
        let zero = shared.take_and_enter(0);
        let one = shared.take_and_enter(1);
        let threads = [spawn_lock(shared, 0), spawn_lock(shared, 1)];

        drop(zero);
        drop(one);
        join_all(threads);
        assert_eq!((shared.entered(0), shared.entered(1)), (2, 2));
    });
}

/// Key 1 is contended by two threads while the main thread holds key 0
/// for the whole time: if key 1 waited for key 0, they would deadlock.
#[test]
fn two_keys_are_independent() {
    model(|shared| {
        let held = shared.take_and_enter(0);
        let contend = |shared: &Arc<Shared>| {
            shared.lock_and_work(1);
            assert!(shared.locks.is_locked(&0));
            assert!(shared.locks.try_acquire(0).is_none());
        };
        let threads = [spawn(shared, contend), spawn(shared, contend)];

        join_all(threads);
        assert!(!shared.locks.is_locked(&1));
        drop(held);
        assert_eq!(shared.entered(1), 2);
    });
}

/// A `with_lock` future is dropped while its body awaits something that
/// never completes, racing another thread's acquire: the body's future (and
/// so its critical section) ends before the lock passes on.
#[test]
fn with_lock_dropped_midway() {
    model(|shared| {
        let guard = shared.take(0);
        let runner = spawn(shared, |shared| {
            let started = Cell::new(false);
            let mut body = pin!(shared.locks.with_lock(0, || async {
                let _critical = shared.enter(0);
                started.set(true);
                std::future::pending::<()>().await
            }));
            // Drive it until the body runs, then drop it midway.
            run_until(body.as_mut(), &started);
        });
        let waiter = spawn_lock(shared, 0);

        drop(guard);
        join_all([runner, waiter]);
        assert_eq!(shared.entered(0), 2);
    });
}

/// A future placed with `enqueue` behind a held key (as `with_lock` does
/// when called) races the release and another thread's acquire: it may be
/// handed the key before its first poll, with no waker to wake (the poll
/// then takes it), or after; its guard, converted into a multi-key guard,
/// releases the key once. Both threads get the key, one at a time.
#[test]
fn an_enqueued_future_is_handed_the_key_before_or_after_its_first_poll() {
    model(|shared| {
        let held = shared.take_and_enter(0);
        let placed = spawn(shared, |shared| {
            let placed = shared.locks.acquire(0).enqueue();
            shared.work_all(block_on(placed).into());
        });
        let waiter = spawn_lock(shared, 0);

        drop(held);
        join_all([placed, waiter]);
        assert_eq!(shared.entered(0), 3);
    });
}

// The multi-key models run once per shard count (`common::SHARD_COUNTS`).

/// Two threads lock {0, 1} and {1, 0} with `acquire_many` while the main
/// thread releases key 0: both get both keys, one holder at a time. Were
/// each request to take its keys in the order listed, each could hold the
/// key the other waits for, which loom reports as a deadlock; both take
/// them in the one hash order.
#[test]
fn many_in_opposite_orders_race_release() {
    model_sharded(|shared| {
        let held = shared.take_and_enter(0);
        let threads = [
            spawn_lock_many(shared, [0, 1]),
            spawn_lock_many(shared, [1, 0]),
        ];

        drop(held);
        join_all(threads);
        assert_eq!((shared.entered(0), shared.entered(1)), (3, 2));
    });
}

/// The main thread holds keys 0 and 1 and releases one of them while a
/// request for both is polled and dropped on another thread and a third
/// thread waits for the released key. The request queues on key 1, which
/// comes first in the hash order, and never reaches key 0. Whether the
/// released key is the one it waits for (found free, still queued on, or
/// handed over, which wakes it) or the other, the drop gives the key up or
/// leaves it alone and leaves the other key's queue, and the waiter gets
/// the key.
#[test]
fn partly_granted_many_dropped_while_other_key_released() {
    for released in [0, 1] {
        model_sharded(move |shared| {
            let kept = 1 - released;
            let mut holders = [0, 1].map(|key| shared.locks.try_acquire(key));
            let canceller = spawn(shared, move |shared| {
                let task = Task::new();
                let mut both = shared.locks.acquire_many([0, 1]);
                let polled = task.poll(&mut both);
                assert!(polled.is_pending(), "key {kept} is held throughout");
                drop(both);
                let wakes = task.wakes();
                assert!(wakes <= 1, "woken {wakes} times");
            });
            let waiter = spawn_lock(shared, released);

            drop(holders[released].take().expect("fresh key"));
            join_all([canceller, waiter]);
            assert_eq!(shared.locks.queue_len(&kept), 1, "left the queue of {kept}");
            drop(holders[kept].take().expect("fresh key"));
            assert_eq!(shared.entered(released), 1);
        });
    }
}

/// A request for keys 0 and 1, which takes key 1 first (the hash order of
/// the models' keys is 1, 2, 0), is handed key 1 and never polled again;
/// key 0, not reached yet, stays free. The request is dropped while one
/// thread blocks on key 1 and another tries it: the key passes on, nobody
/// holds it twice, and `try_acquire` never takes it while the request
/// still owns it.
#[test]
fn granted_unpolled_many_dropped_while_others_acquire() {
    model_sharded(|shared| {
        let holder = shared.take(1);
        let task = Task::new();
        let both = task.queued(shared.locks.acquire_many([0, 1]));
        drop(holder);
        assert_eq!(task.wakes(), 1, "handed key 1");
        assert_eq!(shared.locks.queue_len(&1), 1);
        drop(
            shared
                .locks
                .try_acquire(0)
                .expect("key 0 is not reached yet"),
        );
        let dropped = Arc::new(AtomicBool::new(false));
        let acquirer = spawn_lock(shared, 1);
        let trier = spawn_try_after(shared, 1, &dropped);

        dropped.store(true, SeqCst);
        drop(both);
        join_all([acquirer, trier]);
        assert!(
            matches!(shared.entered(1), 1 | 2),
            "the acquirer, and the trier if it came after"
        );
    });
}

/// A `with_locks` future on keys 1 and 0 is dropped while its body awaits
/// something that never completes, racing another thread's acquire of
/// key 0 (held by the main thread at first): the body, and so its critical
/// sections, ends before either key passes on.
#[test]
fn with_locks_dropped_midway() {
    model_sharded(|shared| {
        let guard = shared.take(0);
        let runner = spawn(shared, |shared| {
            let started = Cell::new(false);
            let mut body = pin!(shared.locks.with_locks([1, 0], || async {
                let _critical = shared.enter_all(&[0, 1]);
                started.set(true);
                std::future::pending::<()>().await
            }));
            // Drive it until the body runs, then drop it midway.
            run_until(body.as_mut(), &started);
        });
        let waiter = spawn_lock(shared, 0);

        drop(guard);
        join_all([runner, waiter]);
        assert_eq!((shared.entered(0), shared.entered(1)), (2, 1));
    });
}

/// With nobody holding anything at first, a request for keys 0 and 1
/// (key 1 listed twice: duplicates are merged, or the request would wait
/// for itself) races single-key acquires of key 1 (on another thread) and
/// key 0 (on the main thread). The two kinds share each key's queue: in
/// whatever order they arrive, each gets its keys, one holder at a time.
#[test]
fn single_and_many_race_on_shared_keys() {
    model_sharded(|shared| {
        let many = spawn_lock_many(shared, [1, 0, 1]);
        let single = spawn_lock(shared, 1);

        shared.lock_and_work(0);
        join_all([many, single]);
        assert_eq!((shared.entered(0), shared.entered(1)), (2, 2));
    });
}

/// A request for keys 0 and 1, polled once with one waker (queued on key
/// 1, first in the hash order), moves to another task (`block_on`'s
/// waker) while the main thread releases both keys, in either order.
/// Whether the new waker finds key 1 granted, replaces the old one in its
/// waiter, or queues with it on key 0, the hand-off the request waits for
/// must wake the new waker, or its thread sleeps forever.
#[test]
fn many_repolled_with_new_waker_races_releases() {
    for first in [0, 1] {
        model_sharded(move |shared| {
            let mut holders = [0, 1].map(|key| Some(shared.take(key)));
            let waiter = spawn(shared, |shared| {
                let task = Task::new();
                let mut both = shared.locks.acquire_many([0, 1]);
                let guard = match task.poll(&mut both) {
                    Poll::Ready(guard) => guard,
                    Poll::Pending => block_on(&mut both),
                };
                shared.work_all(guard);
            });

            drop(holders[first].take());
            drop(holders[1 - first].take());
            join(waiter);
            assert_eq!((shared.entered(0), shared.entered(1)), (1, 1));
        });
    }
}

/// Three requests over keys {0, 1}, {1, 2} and {2, 0}, each overlapping the
/// next, race with nobody holding anything at first: a cycle of requests
/// each holding a key the next one waits for would deadlock, and cannot
/// form as every request takes its keys in the one hash order.
#[test]
fn many_in_a_cycle_never_deadlock() {
    model_sharded(|shared| {
        let threads = [
            spawn_lock_many(shared, [0, 1]),
            spawn_lock_many(shared, [1, 2]),
        ];

        shared.lock_many_and_work(&[2, 0]);
        join_all(threads);
        assert_eq!((0..KEYS).map(|key| shared.entered(key)).sum::<usize>(), 6);
    });
}

/// An `acquire_many_owned` future, holding key 1 and queued on key 0, moves
/// to another thread where key 0 is released and the future dropped, while
/// the main thread blocks on a request for both keys: the hand-off passes
/// on through the dropped future, and the main thread gets both.
#[test]
fn owned_many_dropped_on_another_thread() {
    model_owned_sharded(|locks| {
        let guard = locks.try_acquire_owned(0).expect("fresh key");
        let task = Task::new();
        let both = task.queued(locks.acquire_many_owned([0, 1]));
        assert_eq!((locks.queue_len(&0), locks.queue_len(&1)), (2, 1));
        let releaser = thread::spawn(move || {
            drop(guard);
            drop(both);
        });

        let guard = block_on(locks.acquire_many([1, 0]));
        assert_eq!(sorted(guard.keys()), [0, 1]);
        drop(guard);
        join(releaser);
        assert!(task.wakes() <= 1, "woken more than once");
    });
}

/// `try_acquire_many` decides over every shard of its keys in one critical
/// section while a multi-key request queues on the same keys and the
/// holder of one of them releases it: it takes both keys or neither (a
/// half-taken request would leave the other one waiting forever), and never
/// barges past the queued request.
#[test]
fn try_many_races_a_many_request_and_a_release() {
    model_sharded(|shared| {
        let held = shared.take_and_enter(1);
        let trier = spawn(shared, |shared| {
            match shared.locks.try_acquire_many([0, 1]) {
                Some(guard) => {
                    shared.work_all(guard);
                    true
                }
                None => false,
            }
        });
        let waiter = spawn_lock_many(shared, [1, 0]);

        drop(held);
        let tried = usize::from(join(trier));
        join(waiter);
        assert_eq!(
            (shared.entered(0), shared.entered(1)),
            (1 + tried, 2 + tried)
        );
    });
}

/// A bounded multi-key request checks every key's queue and places itself
/// in one step, racing a plain request for the same keys and a release:
/// admitted, it is served in its turn; refused, it changed nothing.
#[test]
fn bounded_many_races_a_many_request_and_a_release() {
    model_sharded(|shared| {
        let held = shared.take_and_enter(1);
        let bounded = spawn(shared, |shared| {
            match shared.locks.acquire_many([0, 1]).enqueue_bounded(0) {
                Ok(request) => {
                    shared.work_all(block_on(request));
                    true
                }
                Err(busy) => {
                    // At most the other request waits on a key.
                    assert!(busy.waiters() <= 1);
                    false
                }
            }
        });
        let waiter = spawn_lock_many(shared, [1, 0]);

        drop(held);
        let admitted = usize::from(join(bounded));
        join(waiter);
        assert_eq!(
            (shared.entered(0), shared.entered(1)),
            (1 + admitted, 2 + admitted)
        );
    });
}

/// Two guards, holding keys 0 and 1, each extend to the other's key on a
/// thread of its own: two waits closing one cycle at once. The graph's
/// mutex orders their checks and the second sees the first's wait, so
/// exactly one is refused; the other completes once the refused side
/// drops its guard, and neither hangs.
#[test]
fn two_extends_closing_a_cycle_at_once() {
    model_owned_sharded(|locks| {
        let mut a = locks.try_acquire_many_owned([0]).expect("fresh key");
        let mut b = locks.try_acquire_many_owned([1]).expect("fresh key");
        let other = thread::spawn(move || block_on(b.extend([0])).is_err());
        let refused = block_on(a.extend([1])).is_err();
        drop(a);
        let other_refused = join(other);
        assert!(
            refused != other_refused,
            "refused: {refused}, {other_refused}"
        );
        assert_eq!(locks.stats().deadlocks, 1);
    });
}

/// A guard on key 0 extends to key 2, which the main thread holds plainly,
/// while a guard on key 1 extends to key 0: a chain, not a cycle. The main
/// thread releases key 2 meanwhile, so the chain moves under the check of
/// either wait; neither is ever refused, and both complete.
#[test]
fn a_release_during_a_cycle_check_refuses_nothing() {
    model_owned_sharded(|locks| {
        let two = locks.try_acquire_owned(2).expect("fresh key");
        let mut a = locks.try_acquire_many_owned([0]).expect("fresh key");
        let mut b = locks.try_acquire_many_owned([1]).expect("fresh key");
        let first = thread::spawn(move || block_on(a.extend([2])).expect("no cycle"));
        let second = thread::spawn(move || block_on(b.extend([0])).expect("no cycle"));
        drop(two);
        join_all([first, second]);
        assert_eq!(locks.stats().deadlocks, 0);
    });
}

/// A guard on key 0 queues an extend to key 1, then drops it and itself on
/// a thread of its own, while a guard on key 1 extends to key 0. Whichever
/// check sees the other's wait refuses its own extend, or neither does if
/// the first extend was gone already; nothing hangs, nothing is left held,
/// and every refusal is counted.
#[test]
fn an_extend_dropped_while_its_cycle_is_checked() {
    model_owned_sharded(|locks| {
        let mut a = locks.try_acquire_many_owned([0]).expect("fresh key");
        let mut b = locks.try_acquire_many_owned([1]).expect("fresh key");
        let dropper = thread::spawn(move || {
            let task = Task::new();
            let mut extend = a.extend([1]);
            matches!(task.poll(&mut extend), Poll::Ready(Err(_)))
        });
        let refused = block_on(b.extend([0])).is_err();
        drop(b);
        let other_refused = join(dropper);
        let refusals = u64::from(refused) + u64::from(other_refused);
        assert!(refusals <= 1, "both refused");
        assert_eq!(locks.stats().deadlocks, refusals);
    });
}

/// A multi-key request on another thread takes key 1, then waits for key
/// 0, held by the main thread's guard, which extends to key 1. The request
/// may have queued before any extend waited, unregistered: the first
/// extend to wait wakes it, and it registers. Either the extend takes key 1
/// first, or the cycle is refused (the extend, the side that can fail);
/// never a hang.
#[test]
fn an_extend_meets_a_multi_key_request_that_queued_before_nesting() {
    model_owned_sharded(|locks| {
        let mut guard = locks.try_acquire_many_owned([0]).expect("fresh key");
        let request = {
            let locks = std::sync::Arc::clone(locks);
            thread::spawn(move || drop(block_on(locks.acquire_many([0, 1]))))
        };
        let refused = block_on(guard.extend([1])).is_err();
        drop(guard);
        join(request);
        assert_eq!(locks.stats().deadlocks, u64::from(refused));
    });
}
