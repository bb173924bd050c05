//! Guards that grow: `MultiGuard::extend` and `try_extend`. Polled by hand
//! with counting wakers where exactness matters: keys taken at once or
//! FIFO behind earlier waiters, keys the guard holds skipped, which wait of
//! a cycle is refused with `Deadlock` (the extend that closes it, or the
//! youngest extend in it when a plain `acquire_many` closes it), and what a
//! refusal, a drop or a timeout gives back. On every runtime: owned guards
//! in spawned tasks, and extends in one global order that never see a
//! `Deadlock`. On tokio and on threads: tasks extending toward each other's
//! keys in random orders, refused and retried until all are done.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{assert_empty, in_take_order, take_order, within, Rng, Rt, Task};
use futures::future::{FusedFuture, FutureExt};
use lock_manager::{Deadlock, Error, LockManager, MultiLockGuard, OwnedMultiLockGuard, TimedOut};

/// Managers with one shard (every key shares a mutex) and with many.
fn managers() -> [LockManager<u32>; 2] {
    [LockManager::with_shards(1), LockManager::with_shards(64)]
}

/// A deadline the test expects to pass.
const SHORT: Duration = Duration::from_millis(20);

/// The keys, sorted.
fn sorted<K: Ord + Clone>(keys: &[K]) -> Vec<K> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys
}

/// The keys a refusal names, as a set.
fn cycle_of(deadlock: &Deadlock<u32>) -> BTreeSet<u32> {
    deadlock.keys().iter().copied().collect()
}

/// The refusal of a poll that must be one.
#[track_caller]
fn refused<T: std::fmt::Debug>(polled: Poll<Result<T, Deadlock<u32>>>) -> Deadlock<u32> {
    match polled {
        Poll::Ready(Err(deadlock)) => deadlock,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Keys no test below uses otherwise, for `open_nesting`.
const OPENER: u32 = 1_000;

/// Has one extend wait on `locks` (and leave), so that multi-key requests
/// register their waits from then on. The first extend to wait on a
/// manager wakes every waiter there once (itself included): tests that
/// count wake-ups call this first, so that they count only their own.
/// Leaves nothing held or refused.
fn open_nesting(locks: &LockManager<u32>) {
    let mut guard = locks.try_acquire_many([OPENER]).unwrap();
    let holder = locks.try_acquire(OPENER + 1).unwrap();
    let mut extend = guard.extend([OPENER + 1]);
    assert!(Task::new().poll(&mut extend).is_pending());
    drop(extend);
    drop((holder, guard));
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(locks.stats().deadlocks, 0);
}

// ---------------------------------------------------------------------
// Guards that grow
// ---------------------------------------------------------------------

#[test]
fn free_keys_are_taken_at_once_and_held_ones_fifo() {
    for locks in managers() {
        open_nesting(&locks);
        let mut guard = locks.acquire_many([1, 2]).now_or_never().unwrap();
        assert_eq!(guard.extend([3]).now_or_never(), Some(Ok(())));
        assert_eq!(sorted(guard.keys()), [1, 2, 3]);
        assert_eq!(locks.queue_len(&3), 1);

        let holder = locks.try_acquire(4).unwrap();
        let (earlier, later) = (Task::new(), Task::new());
        let mut plain = locks.acquire(4);
        assert!(earlier.poll(&mut plain).is_pending());
        let mut extend = guard.extend([4]);
        assert!(later.poll(&mut extend).is_pending());
        assert_eq!(locks.queue_len(&4), 3, "holder, plain waiter, extend");
        drop(holder);
        assert_eq!((earlier.wakes(), later.wakes()), (1, 0), "FIFO on the key");
        assert!(later.poll(&mut extend).is_pending());
        let Poll::Ready(plain_guard) = earlier.poll(&mut plain) else {
            panic!("the earlier waiter was handed the key");
        };
        drop(plain_guard);
        assert_eq!(later.wakes(), 1);
        assert_eq!(later.poll(&mut extend), Poll::Ready(Ok(())));
        assert!(extend.is_terminated());
        drop(extend);
        assert_eq!(sorted(guard.keys()), [1, 2, 3, 4]);
        assert_eq!(locks.locked_count(), 4);
        assert_eq!(locks.stats().deadlocks, 0);
        drop(guard);
        assert_empty(&locks, 0);
    }
}

/// The new keys are taken one at a time in the manager's order: those
/// before the first held one are taken, those after it are not reached.
#[test]
fn new_keys_are_taken_one_at_a_time_in_the_managers_order() {
    for locks in managers() {
        let [first, second, third] = in_take_order(&locks, [10, 11, 12]);
        open_nesting(&locks);
        let mut guard = locks.try_acquire_many([20]).unwrap();
        let holder = locks.try_acquire(second).unwrap();
        let task = Task::new();
        let mut extend = guard.extend([third, first, second]);
        assert!(task.poll(&mut extend).is_pending());
        assert!(locks.is_locked(&first), "taken before the held key");
        assert!(!locks.is_locked(&third), "not reached yet");
        assert_eq!(locks.queue_len(&second), 2);
        drop(holder);
        assert_eq!(task.wakes(), 1);
        assert_eq!(task.poll(&mut extend), Poll::Ready(Ok(())));
        drop(extend);
        assert_eq!(sorted(guard.keys()), [10, 11, 12, 20]);
        drop(guard);
        assert_empty(&locks, 0);
    }
}

#[test]
fn a_single_guard_converted_into_a_multi_guard_extends() {
    let locks = LockManager::new();
    let mut guard: MultiLockGuard<'_, u32> = locks.try_acquire(1).unwrap().into();
    let holder = locks.try_acquire(2).unwrap();
    let task = Task::new();
    let mut extend = guard.extend([2, 1]);
    assert!(task.poll(&mut extend).is_pending());
    assert_eq!(locks.queue_len(&1), 1, "never queued on its own key");
    assert_eq!(locks.queue_len(&2), 2);
    drop(holder);
    assert_eq!(task.poll(&mut extend), Poll::Ready(Ok(())));
    drop(extend);
    assert_eq!(sorted(guard.keys()), [1, 2]);
    assert_eq!(guard.extend([3]).wait(), Ok(()));
    assert_eq!(locks.locked_count(), 3);
    drop(guard);
    assert_empty(&locks, 0);
}

/// Owned guards (from `acquire_many_owned`, and converted from
/// `acquire_owned`) move into spawned tasks and extend there, waiting for
/// a key the test holds.
async fn owned_guards_extend_in_spawned_tasks(rt: Rt) {
    let locks = Arc::new(LockManager::<u32>::new());
    let held = locks.acquire(2).await;
    let converted: OwnedMultiLockGuard<u32> = locks.acquire_owned(1).await.into();
    let many = locks.acquire_many_owned([3]).await;
    let task = rt.spawn(async move {
        let (mut converted, mut many) = (converted, many);
        converted.extend([2, 1]).await.unwrap();
        many.extend([4, 3]).await.unwrap();
        (converted, many)
    });
    let queued = async {
        while locks.queue_len(&2) < 2 {
            rt.sleep(Duration::from_millis(1)).await;
        }
    };
    assert!(
        rt.timeout(Duration::from_secs(10), queued).await.is_some(),
        "the spawned extend queued on the held key"
    );
    assert!(
        !locks.is_locked(&4),
        "the second extend waits for the first"
    );
    drop(held);
    let grown = rt.timeout(Duration::from_secs(10), task).await;
    let (converted, many) = grown.expect("both extends completed");
    assert_eq!(sorted(converted.keys()), [1, 2]);
    assert_eq!(sorted(many.keys()), [3, 4]);
    assert_eq!(locks.locked_count(), 4);
    drop(converted);
    assert_eq!(
        locks.locked_count(),
        2,
        "each guard releases what it grew to"
    );
    drop(many);
    assert_empty(&locks, 0);
}

on_every_runtime!(owned_guards_extend_in_spawned_tasks);

// ---------------------------------------------------------------------
// Re-entrancy through the guard
// ---------------------------------------------------------------------

#[test]
fn keys_the_guard_holds_are_skipped() {
    for locks in managers() {
        open_nesting(&locks);
        let mut guard = locks.acquire_many([1, 2]).now_or_never().unwrap();
        assert_eq!(guard.extend([1]).now_or_never(), Some(Ok(())));
        assert_eq!(guard.extend([2, 1, 2, 1]).now_or_never(), Some(Ok(())));
        assert_eq!(guard.extend([]).now_or_never(), Some(Ok(())));
        assert_eq!(sorted(guard.keys()), [1, 2], "no key twice");
        assert_eq!((locks.queue_len(&1), locks.queue_len(&2)), (1, 1));

        // Mixed with new keys, with duplicates of both.
        assert_eq!(guard.extend([3, 1, 3, 2, 4]).now_or_never(), Some(Ok(())));
        assert_eq!(sorted(guard.keys()), [1, 2, 3, 4]);

        // Mixed with a key held elsewhere: it waits for that one only.
        let holder = locks.try_acquire(5).unwrap();
        let task = Task::new();
        let mut extend = guard.extend([4, 5, 1, 5]);
        assert!(task.poll(&mut extend).is_pending());
        assert_eq!(locks.queue_len(&5), 2);
        assert!((1..=4).all(|key| locks.queue_len(&key) == 1));
        drop(holder);
        assert_eq!(task.wakes(), 1);
        assert_eq!(task.poll(&mut extend), Poll::Ready(Ok(())));
        drop(extend);
        assert_eq!(sorted(guard.keys()), [1, 2, 3, 4, 5]);
        assert_eq!(locks.stats().deadlocks, 0);
        drop(guard);
        assert_empty(&locks, 0);
    }
}

/// Blocking on an extend of a key the guard holds returns at once.
#[test]
fn a_blocking_extend_of_held_keys_returns() {
    let locks = Arc::new(LockManager::new());
    let in_thread = Arc::clone(&locks);
    within(Duration::from_secs(10), "a re-entrant extend", move || {
        let mut guard = in_thread.acquire_many(["a", "b"]).wait();
        guard.extend(["b", "a"]).wait().unwrap();
        guard.extend(["a", "c", "c"]).wait().unwrap();
        assert_eq!(sorted(guard.keys()), ["a", "b", "c"]);
    });
    assert_empty(&locks, 0);
}

// ---------------------------------------------------------------------
// Cycles closed by an extend
// ---------------------------------------------------------------------

#[test]
fn two_guards_extending_toward_each_other_refuse_the_second_at_once() {
    for locks in managers() {
        open_nesting(&locks);
        let mut a = locks.acquire_many([1]).now_or_never().unwrap();
        let mut b = locks.acquire_many([2]).now_or_never().unwrap();
        let (ta, tb) = (Task::new(), Task::new());
        let mut a_to_b = a.extend([2]);
        assert!(ta.poll(&mut a_to_b).is_pending());
        let mut b_to_a = b.extend([1]);
        let deadlock = refused(tb.poll(&mut b_to_a));
        assert_eq!(cycle_of(&deadlock), BTreeSet::from([1, 2]));
        assert!(b_to_a.is_terminated());
        assert_eq!(locks.stats().deadlocks, 1);
        drop(b_to_a);
        assert_eq!(b.keys(), [2], "the refused guard keeps what it held");
        assert_eq!(locks.queue_len(&1), 1, "the refused extend left the queue");
        assert_eq!(locks.queue_len(&2), 2, "the other one still waits");
        assert_eq!(ta.wakes(), 0);
        assert!(
            ta.poll(&mut a_to_b).is_pending(),
            "the other is not refused"
        );
        drop(b);
        assert_eq!(ta.wakes(), 1);
        assert_eq!(ta.poll(&mut a_to_b), Poll::Ready(Ok(())));
        drop(a_to_b);
        assert_eq!(sorted(a.keys()), [1, 2]);
        assert_eq!(locks.stats().deadlocks, 1);
        drop(a);
        assert_empty(&locks, 0);
    }
}

/// a → b → c → a, closed by the last: only that one is refused, and the
/// others go on in turn as the guards are dropped.
#[test]
fn a_three_way_cycle_refuses_the_extend_that_closes_it() {
    for locks in managers() {
        open_nesting(&locks);
        let mut a = locks.acquire_many([1]).now_or_never().unwrap();
        let mut b = locks.acquire_many([2]).now_or_never().unwrap();
        let mut c = locks.acquire_many([3]).now_or_never().unwrap();
        let (ta, tb, tc) = (Task::new(), Task::new(), Task::new());
        let mut a_to_b = a.extend([2]);
        assert!(ta.poll(&mut a_to_b).is_pending());
        let mut b_to_c = b.extend([3]);
        assert!(tb.poll(&mut b_to_c).is_pending());
        let mut c_to_a = c.extend([1]);
        let deadlock = refused(tc.poll(&mut c_to_a));
        assert_eq!(cycle_of(&deadlock), BTreeSet::from([1, 2, 3]));
        assert_eq!(deadlock.keys().len(), 3, "each key of the cycle once");
        drop(c_to_a);
        assert_eq!(c.keys(), [3]);
        assert_eq!((ta.wakes(), tb.wakes()), (0, 0), "nobody else refused");
        assert!(ta.poll(&mut a_to_b).is_pending());
        assert!(tb.poll(&mut b_to_c).is_pending());
        assert_eq!(locks.stats().deadlocks, 1);
        drop(c);
        assert_eq!((ta.wakes(), tb.wakes()), (0, 1));
        assert_eq!(tb.poll(&mut b_to_c), Poll::Ready(Ok(())));
        drop(b_to_c);
        assert!(ta.poll(&mut a_to_b).is_pending());
        drop(b);
        assert_eq!(ta.wakes(), 1);
        assert_eq!(ta.poll(&mut a_to_b), Poll::Ready(Ok(())));
        drop(a_to_b);
        assert_eq!(sorted(a.keys()), [1, 2]);
        drop(a);
        assert_eq!(locks.stats().deadlocks, 1);
        assert_empty(&locks, 0);
    }
}

/// The same cycle closed in the middle of the chain: a → b and c → a
/// wait first, then b → c closes it and is the one refused.
#[test]
fn a_three_way_cycle_closed_in_the_middle_refuses_that_wait() {
    let locks = LockManager::new();
    open_nesting(&locks);
    let mut a = locks.acquire_many([1]).now_or_never().unwrap();
    let mut b = locks.acquire_many([2]).now_or_never().unwrap();
    let mut c = locks.acquire_many([3]).now_or_never().unwrap();
    let (ta, tb, tc) = (Task::new(), Task::new(), Task::new());
    let mut a_to_b = a.extend([2]);
    assert!(ta.poll(&mut a_to_b).is_pending());
    let mut c_to_a = c.extend([1]);
    assert!(tc.poll(&mut c_to_a).is_pending());
    let mut b_to_c = b.extend([3]);
    let deadlock = refused(tb.poll(&mut b_to_c));
    assert_eq!(cycle_of(&deadlock), BTreeSet::from([1, 2, 3]));
    drop(b_to_c);
    assert_eq!(b.keys(), [2]);
    assert_eq!((ta.wakes(), tc.wakes()), (0, 0));
    drop(b);
    assert_eq!(ta.poll(&mut a_to_b), Poll::Ready(Ok(())));
    drop(a_to_b);
    assert!(tc.poll(&mut c_to_a).is_pending());
    drop(a);
    assert_eq!(tc.poll(&mut c_to_a), Poll::Ready(Ok(())));
    drop(c_to_a);
    assert_eq!(sorted(c.keys()), [1, 3]);
    drop(c);
    assert_eq!(locks.stats().deadlocks, 1);
    assert_empty(&locks, 0);
}

/// A refused guard is a guard still: once the other side stops waiting,
/// the same guard extends toward the same key.
#[test]
fn a_refused_guard_extends_again_once_the_cycle_is_gone() {
    let locks = LockManager::new();
    let mut a = locks.acquire_many([1]).now_or_never().unwrap();
    let mut b = locks.acquire_many([2]).now_or_never().unwrap();
    let mut a_to_b = a.extend([2]);
    assert!(Task::new().poll(&mut a_to_b).is_pending());
    assert!(b.extend([1]).now_or_never().unwrap().is_err());
    drop(a_to_b); // a gives up instead of b
    let task = Task::new();
    let mut b_to_a = b.extend([1]);
    assert!(task.poll(&mut b_to_a).is_pending(), "a holds 1 still");
    drop(a);
    assert_eq!(task.poll(&mut b_to_a), Poll::Ready(Ok(())));
    drop(b_to_a);
    assert_eq!(sorted(b.keys()), [1, 2]);
    assert_eq!(locks.stats().deadlocks, 1);
}

// ---------------------------------------------------------------------
// Cycles closed by a plain acquire_many
// ---------------------------------------------------------------------

/// Nesting is seen already: `m` (acquire_many of `first`, `second`,
/// `third`) holds `first` and waits for `second`; the guard `g` holds
/// `third` and extends toward `first`, behind `m`. When `second` passes to
/// `m`, `m`'s wait for `third` closes the cycle: `m` cannot fail, so `g`,
/// the extend in the cycle, is woken and refused.
#[test]
fn a_cycle_closed_by_acquire_many_refuses_the_extend_in_it() {
    for locks in managers() {
        let [first, second, third] = in_take_order(&locks, [10, 11, 12]);
        open_nesting(&locks);
        let x = locks.try_acquire(second).unwrap();
        let mut g = locks.try_acquire_many([third]).unwrap();
        let (tm, tg) = (Task::new(), Task::new());
        let mut m = locks.acquire_many([third, second, first]);
        assert!(tm.poll(&mut m).is_pending());
        assert!(locks.is_locked(&first));
        let mut g_to_first = g.extend([first]);
        assert!(tg.poll(&mut g_to_first).is_pending(), "no cycle yet");
        assert_eq!(locks.stats().deadlocks, 0);
        drop(x);
        assert_eq!((tm.wakes(), tg.wakes()), (1, 0));
        assert!(tm.poll(&mut m).is_pending(), "m now waits for third");
        assert_eq!(locks.queue_len(&third), 2);
        assert_eq!(tg.wakes(), 1, "the extend is woken with its refusal");
        let deadlock = refused(tg.poll(&mut g_to_first));
        assert_eq!(locks.stats().deadlocks, 1);
        let cycle = cycle_of(&deadlock);
        assert!(
            cycle.contains(&first) && cycle.contains(&third),
            "{cycle:?}"
        );
        assert!(!cycle.contains(&second), "second is not waited for");
        drop(g_to_first);
        assert_eq!(g.keys(), [third]);
        assert_eq!(locks.queue_len(&first), 1, "g left first's queue");
        assert_eq!(tm.wakes(), 1);
        drop(g);
        assert_eq!(tm.wakes(), 2);
        let Poll::Ready(all) = tm.poll(&mut m) else {
            panic!("m completes once g is dropped");
        };
        assert_eq!(sorted(all.keys()), [10, 11, 12]);
        drop(all);
        assert_empty(&locks, 0);
    }
}

/// `m` waits while it holds a key before any extend has waited on the
/// manager, so it is not registered; the first extend to wait wakes it,
/// and its next poll registers and closes the cycle. The refusal gives
/// back the key the extend took during the call (`first`), not the one
/// its guard held before (`third`).
#[test]
fn a_request_waiting_before_the_first_extend_registers_when_woken() {
    for locks in managers() {
        let [first, second, third] = in_take_order(&locks, [10, 11, 12]);
        let mut g = locks.try_acquire_many([third]).unwrap();
        let (tm, tg) = (Task::new(), Task::new());
        let mut m = locks.acquire_many([second, third]);
        assert!(tm.poll(&mut m).is_pending());
        assert!(locks.is_locked(&second));
        assert_eq!(locks.queue_len(&third), 2);
        let mut g_grows = g.extend([second, first]);
        assert!(tg.poll(&mut g_grows).is_pending());
        assert!(locks.is_locked(&first), "taken during the call");
        assert_eq!(tm.wakes(), 1, "the first extend to wait wakes every waiter");
        assert_eq!(locks.stats().deadlocks, 0, "m is not seen yet");
        // (It may have woken itself too: a spurious wake-up.)
        let g_woken = tg.wakes();
        assert!(tm.poll(&mut m).is_pending());
        assert_eq!(tg.wakes(), g_woken + 1, "woken with its refusal");
        let deadlock = refused(tg.poll(&mut g_grows));
        assert_eq!(locks.stats().deadlocks, 1);
        assert_eq!(cycle_of(&deadlock), BTreeSet::from([second, third]));
        drop(g_grows);
        assert!(!locks.is_locked(&first), "the key the extend took is back");
        assert_eq!(g.keys(), [third], "the guard keeps what it held");
        assert_eq!(locks.queue_len(&second), 1);
        drop(g);
        let Poll::Ready(both) = tm.poll(&mut m) else {
            panic!("m completes once g is dropped");
        };
        assert_eq!(sorted(both.keys()), sorted(&[second, third]));
        drop(both);
        assert_empty(&locks, 0);
    }
}

/// The setting for the choice of a victim: `m` (acquire_many of `m1`,
/// `m2`, `m3`) holds `m1` and waits for `m2`, held by `x`; `g1` holds `a`
/// and waits for `m1`; `g2` holds `m3` and waits for `a`. Returns the
/// refused one's index (1 or 2) once `x` lets `m` go on to `m3`, which
/// closes the cycle m → g2 → g1 → m. `repoll_g1` polls `g1` again after
/// `g2` began to wait, as a spurious wake-up does.
fn victim_of_a_cycle_with_two_extends(repoll_g1: bool) -> usize {
    let locks = LockManager::new();
    let [m1, m2, m3] = in_take_order(&locks, [10, 11, 12]);
    let a = 20;
    open_nesting(&locks);
    let x = locks.try_acquire(m2).unwrap();
    let mut g1 = locks.try_acquire_many([a]).unwrap();
    let mut g2 = locks.try_acquire_many([m3]).unwrap();
    let (tm, t1, t2) = (Task::new(), Task::new(), Task::new());
    let mut m = locks.acquire_many([m1, m2, m3]);
    assert!(tm.poll(&mut m).is_pending());
    let mut g1_to_m1 = g1.extend([m1]);
    assert!(t1.poll(&mut g1_to_m1).is_pending());
    let mut g2_to_a = g2.extend([a]);
    assert!(t2.poll(&mut g2_to_a).is_pending());
    if repoll_g1 {
        assert!(t1.poll(&mut g1_to_m1).is_pending());
    }
    drop(x);
    assert!(tm.poll(&mut m).is_pending(), "m waits for m3");
    let woken = (t1.wakes(), t2.wakes());
    let victim = match woken {
        (0, 1) => 2,
        (1, 0) => 1,
        _ => panic!("one extend is woken, with its refusal: {woken:?}"),
    };
    let (victim_polled, other_polled) = match victim {
        2 => (t2.poll(&mut g2_to_a), t1.poll(&mut g1_to_m1)),
        _ => (t1.poll(&mut g1_to_m1), t2.poll(&mut g2_to_a)),
    };
    assert!(other_polled.is_pending(), "one victim only");
    let deadlock = refused(victim_polled);
    assert_eq!(cycle_of(&deadlock), BTreeSet::from([m1, m3, a]));
    assert_eq!(locks.stats().deadlocks, 1);
    if victim == 2 {
        // g2 gives up m3: m completes, then g1 takes m1 from it.
        drop(g2_to_a);
        assert_eq!(g2.keys(), [m3]);
        drop(g2);
        let Poll::Ready(all) = tm.poll(&mut m) else {
            panic!("m completes once g2 is dropped");
        };
        assert_eq!(all.keys().len(), 3);
        drop(all);
        assert_eq!(t1.poll(&mut g1_to_m1), Poll::Ready(Ok(())));
        drop(g1_to_m1);
        assert_eq!(sorted(g1.keys()), sorted(&[a, m1]));
    } else {
        // g1 gives up a: g2 takes it; m still waits for m3, held by g2.
        drop(g1_to_m1);
        assert_eq!(g1.keys(), [a]);
        drop(g1);
        assert_eq!(t2.poll(&mut g2_to_a), Poll::Ready(Ok(())));
        drop(g2_to_a);
        drop(g2);
        let Poll::Ready(all) = tm.poll(&mut m) else {
            panic!("m completes once g2 is dropped");
        };
        drop(all);
    }
    victim
}

/// When a plain acquire_many closes a cycle with two extends in it, the
/// one whose wait began last is refused.
#[test]
fn the_youngest_extend_in_the_cycle_is_refused() {
    assert_eq!(victim_of_a_cycle_with_two_extends(false), 2);
}

/// Polling an extend again while it waits on the same key does not start
/// a new wait: it stays the older one. (Executors poll spuriously, as
/// `select!` and `join!` do.)
#[test]
fn a_spurious_poll_does_not_make_an_extend_younger() {
    assert_eq!(victim_of_a_cycle_with_two_extends(true), 2);
}

/// Multi-key requests take their keys in one order, so they wait in one
/// direction and never close a cycle among themselves: with nesting seen
/// (so that both register their waits), two requests listing the same
/// keys in opposite orders are both served and nothing is refused.
#[test]
fn acquire_many_requests_alone_are_never_refused() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 1, 2);
    open_nesting(&locks);
    let holder = locks.try_acquire(second).unwrap();
    let (t1, t2) = (Task::new(), Task::new());
    let mut one = locks.acquire_many([first, second]);
    let mut two = locks.acquire_many([second, first]);
    assert!(t1.poll(&mut one).is_pending());
    assert!(t2.poll(&mut two).is_pending());
    assert_eq!(locks.stats().deadlocks, 0);
    drop(holder);
    let Poll::Ready(guard) = t1.poll(&mut one) else {
        panic!("the first request completes");
    };
    drop(guard);
    assert!(t2.poll(&mut two).is_ready());
    assert_eq!(locks.stats().deadlocks, 0);
}

// ---------------------------------------------------------------------
// No refusal without a cycle
// ---------------------------------------------------------------------

/// Holds what is held a little while: a timer now and then, since
/// `futures`' thread pool polls a task that yields again at once.
async fn hold(rt: Rt, rng: &mut Rng) {
    if rng.chance(30) {
        rt.sleep(Duration::from_millis(1)).await;
    } else {
        rt.yield_now().await;
    }
}

/// Tasks that each take a key and then extend, one key at a time, toward
/// larger keys only (one global order), overlapping on few keys and
/// yielding while they hold them: they wait for each other, and are never
/// refused. Per-key flags check that no key is held twice.
async fn extends_in_one_global_order_are_never_refused(rt: Rt) {
    const TASKS: u64 = 4;
    const ROUNDS: u64 = 100;
    const KEYS: u32 = 6;
    let locks = Arc::new(LockManager::<u32>::new());
    let flags: Arc<Vec<AtomicBool>> = Arc::new((0..KEYS).map(|_| AtomicBool::new(false)).collect());
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (locks, flags) = (Arc::clone(&locks), Arc::clone(&flags));
            rt.spawn(async move {
                let mut rng = Rng::new(t);
                for _ in 0..ROUNDS {
                    let low = rng.below(u64::from(KEYS - 1)) as u32;
                    let mut guard = locks.acquire_many_owned([low]).await;
                    assert!(!flags[low as usize].swap(true, Ordering::SeqCst));
                    hold(rt, &mut rng).await;
                    for key in low + 1..KEYS {
                        if !rng.chance(50) {
                            continue;
                        }
                        // A key held already may come along: it is skipped.
                        let again = guard.keys()[rng.below(guard.keys().len() as u64) as usize];
                        guard
                            .extend([key, again])
                            .await
                            .expect("never refused without a cycle");
                        assert!(!flags[key as usize].swap(true, Ordering::SeqCst));
                        hold(rt, &mut rng).await;
                    }
                    for &key in guard.keys() {
                        flags[key as usize].store(false, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let all = rt.timeout(Duration::from_secs(60), futures::future::join_all(tasks));
    assert!(all.await.is_some(), "extends in one order hung");
    let stats = locks.stats();
    assert_eq!(stats.deadlocks, 0);
    assert!(stats.contended > 0, "the extends never waited: {stats:?}");
    assert_empty(&locks, 0);
}

on_every_runtime!(extends_in_one_global_order_are_never_refused);

// ---------------------------------------------------------------------
// Random orders: refused and retried
// ---------------------------------------------------------------------

/// What one randomized run saw.
#[derive(Default)]
struct Seen {
    refusals: AtomicU64,
    done: AtomicU64,
}

/// Marks the keys `now` holds beyond `before` as held, failing if another
/// guard holds one.
fn mark_new(flags: &[AtomicBool], before: &[u32], now: &[u32]) {
    for key in now.iter().filter(|key| !before.contains(key)) {
        assert!(
            !flags[*key as usize].swap(true, Ordering::SeqCst),
            "key {key} held twice"
        );
    }
}

fn unmark(flags: &[AtomicBool], keys: &[u32]) {
    for &key in keys {
        assert!(flags[key as usize].swap(false, Ordering::SeqCst));
    }
}

/// Tasks on tokio's multi-thread runtime each take a random key, then
/// extend twice with random keys in random orders, yielding in between;
/// every fourth operation is a plain acquire_many of random keys instead,
/// which can close cycles too. A refused extend drops its guard and
/// retries. Every operation completes, no key is held twice, refusals
/// happen and each is seen by exactly one caller.
#[test]
fn random_orders_are_refused_and_retried_until_all_finish() {
    const TASKS: u64 = 32;
    const OPS: u64 = 60;
    const KEYS: u32 = 8;
    within(Duration::from_secs(120), "the random-order run", || {
        let locks = Arc::new(LockManager::<u32>::new());
        let flags: Arc<Vec<AtomicBool>> =
            Arc::new((0..KEYS).map(|_| AtomicBool::new(false)).collect());
        let seen = Arc::new(Seen::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| {
                    let (locks, flags, seen) =
                        (Arc::clone(&locks), Arc::clone(&flags), Arc::clone(&seen));
                    tokio::spawn(async move {
                        let mut rng = Rng::new(t);
                        for op in 0..OPS {
                            if op % 4 == 3 {
                                let keys: Vec<u32> =
                                    (0..3).map(|_| rng.below(KEYS.into()) as u32).collect();
                                let guard = locks.acquire_many(keys).await;
                                mark_new(&flags, &[], guard.keys());
                                tokio::task::yield_now().await;
                                unmark(&flags, guard.keys());
                            } else {
                                grow_until_done(&locks, &flags, &seen, &mut rng, KEYS).await;
                            }
                            seen.done.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        let stats = locks.stats();
        assert_eq!(seen.done.load(Ordering::SeqCst), TASKS * OPS);
        let refusals = seen.refusals.load(Ordering::SeqCst);
        assert!(refusals > 0, "no deadlock was ever refused: {stats:?}");
        assert_eq!(
            stats.deadlocks, refusals,
            "one refusal per deadlock counted"
        );
        assert_empty(&locks, 0);
    });
}

/// One operation of the random run: a key, then two extends; on a
/// refusal, the guard is dropped and the operation starts over.
async fn grow_until_done(
    locks: &LockManager<u32>,
    flags: &[AtomicBool],
    seen: &Seen,
    rng: &mut Rng,
    keys: u32,
) {
    'retry: loop {
        let first = rng.below(keys.into()) as u32;
        let mut guard = locks.acquire_many([first]).await;
        mark_new(flags, &[], guard.keys());
        tokio::task::yield_now().await;
        for _ in 0..2 {
            let more: Vec<u32> = (0..1 + rng.below(2))
                .map(|_| rng.below(keys.into()) as u32)
                .collect();
            let before = guard.keys().to_vec();
            match guard.extend(more.iter().copied()).await {
                Ok(()) => {
                    assert!(more.iter().all(|key| guard.keys().contains(key)));
                    mark_new(flags, &before, guard.keys());
                    tokio::task::yield_now().await;
                }
                Err(deadlock) => {
                    assert_eq!(guard.keys(), before, "a refusal keeps the old keys");
                    assert!(deadlock.keys().len() >= 2, "{deadlock}");
                    seen.refusals.fetch_add(1, Ordering::SeqCst);
                    unmark(flags, guard.keys());
                    drop(guard);
                    continue 'retry;
                }
            }
        }
        unmark(flags, guard.keys());
        return;
    }
}

/// The same with threads blocking in `wait`: a refused thread drops its
/// guard and starts over.
#[test]
fn threads_extending_in_random_orders_all_finish() {
    const THREADS: u64 = 6;
    const OPS: u64 = 200;
    const KEYS: u32 = 5;
    within(Duration::from_secs(120), "the random-order threads", || {
        let locks = Arc::new(LockManager::<u32>::new());
        let flags: Arc<Vec<AtomicBool>> =
            Arc::new((0..KEYS).map(|_| AtomicBool::new(false)).collect());
        let seen = Arc::new(Seen::default());
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (locks, flags, seen) =
                    (Arc::clone(&locks), Arc::clone(&flags), Arc::clone(&seen));
                thread::spawn(move || {
                    let mut rng = Rng::new(100 + t);
                    for _ in 0..OPS {
                        loop {
                            let first = rng.below(KEYS.into()) as u32;
                            let mut guard = locks.acquire_many([first]).wait();
                            mark_new(&flags, &[], guard.keys());
                            thread::yield_now();
                            let more =
                                [rng.below(KEYS.into()) as u32, rng.below(KEYS.into()) as u32];
                            let before = guard.keys().to_vec();
                            match guard.extend(more).wait() {
                                Ok(()) => {
                                    mark_new(&flags, &before, guard.keys());
                                    thread::yield_now();
                                    unmark(&flags, guard.keys());
                                    break;
                                }
                                Err(_) => {
                                    assert_eq!(guard.keys(), before);
                                    seen.refusals.fetch_add(1, Ordering::SeqCst);
                                    unmark(&flags, guard.keys());
                                }
                            }
                        }
                        seen.done.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(seen.done.load(Ordering::SeqCst), THREADS * OPS);
        let refusals = seen.refusals.load(Ordering::SeqCst);
        assert!(refusals > 0, "no deadlock was ever refused");
        assert_eq!(locks.stats().deadlocks, refusals);
        assert_empty(&locks, 0);
    });
}

// ---------------------------------------------------------------------
// Cancellation and deadlines
// ---------------------------------------------------------------------

/// An extend that took `first` and waits for `second`, dropped: `first` is
/// free again, the waiter behind it on `second` moves up, and the guard
/// holds what it held.
#[test]
fn a_dropped_extend_gives_back_the_keys_it_took_and_leaves_its_queue() {
    for locks in managers() {
        let (first, second) = take_order(&locks, 1, 2);
        open_nesting(&locks);
        let mut guard = locks.try_acquire_many([9]).unwrap();
        let holder = locks.try_acquire(second).unwrap();
        let (tg, tw) = (Task::new(), Task::new());
        let mut extend = guard.extend([second, first]);
        assert!(tg.poll(&mut extend).is_pending());
        let mut behind = locks.acquire(second);
        assert!(tw.poll(&mut behind).is_pending());
        assert!(locks.is_locked(&first));
        assert_eq!(locks.queue_len(&second), 3);
        drop(extend);
        assert!(
            !locks.is_locked(&first),
            "the key taken during the call is back"
        );
        assert_eq!(locks.queue_len(&second), 2, "the extend left the queue");
        assert_eq!(guard.keys(), [9]);
        drop(holder);
        assert_eq!((tg.wakes(), tw.wakes()), (0, 1), "the next waiter moved up");
        assert!(tw.poll(&mut behind).is_ready());
        assert_eq!(locks.stats().deadlocks, 0);
    }
}

/// The same when the extend placed itself with `enqueue` and was never
/// polled.
#[test]
fn a_dropped_enqueued_extend_gives_back_what_it_took() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 1, 2);
    let mut guard = locks.try_acquire_many([9]).unwrap();
    let holder = locks.try_acquire(second).unwrap();
    let extend = guard.extend([first, second]).enqueue();
    assert!(locks.is_locked(&first), "taken before any poll");
    assert_eq!(locks.queue_len(&second), 2);
    drop(extend);
    assert!(!locks.is_locked(&first));
    assert_eq!(locks.queue_len(&second), 1);
    assert_eq!(guard.keys(), [9]);
    drop((holder, guard));
    assert_empty(&locks, 0);
}

#[test]
fn an_extend_timing_out_gives_back_the_keys_it_took() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 1, 2);
    let mut guard = locks.try_acquire_many([9]).unwrap();
    let holder = locks.try_acquire(second).unwrap();
    let started = Instant::now();
    let timed_out = guard.extend([first, second]).wait_timeout(SHORT);
    assert_eq!(timed_out, Err(Error::TimedOut(TimedOut)));
    assert!(started.elapsed() >= SHORT);
    assert!(!locks.is_locked(&first));
    assert_eq!(locks.queue_len(&second), 1);
    assert_eq!(guard.keys(), [9]);
    let deadline = Instant::now() + SHORT;
    let timed_out = guard.extend([second, first]).wait_deadline(deadline);
    assert_eq!(timed_out, Err(Error::TimedOut(TimedOut)));
    assert!(Instant::now() >= deadline);
    assert!(!locks.is_locked(&first));
    assert_eq!(guard.keys(), [9]);
    drop(holder);
    let grown = guard
        .extend([second, first])
        .wait_timeout(Duration::from_secs(10));
    assert_eq!(grown, Ok(()));
    assert_eq!(sorted(guard.keys()), [1, 2, 9]);
    drop(guard);
    assert_eq!(locks.stats().deadlocks, 0);
    assert_empty(&locks, 0);
}

/// An extend that waited and was dropped leaves no wait behind: the other
/// side's extend toward its keys is not refused.
#[test]
fn a_dropped_waiting_extend_leaves_no_wait_in_the_graph() {
    for locks in managers() {
        let mut a = locks.try_acquire_many([1]).unwrap();
        let mut b = locks.try_acquire_many([2]).unwrap();
        let mut a_to_b = a.extend([2]);
        assert!(Task::new().poll(&mut a_to_b).is_pending());
        drop(a_to_b);
        let task = Task::new();
        let mut b_to_a = b.extend([1]);
        assert!(task.poll(&mut b_to_a).is_pending(), "not refused");
        drop(a);
        assert_eq!(task.poll(&mut b_to_a), Poll::Ready(Ok(())));
        drop(b_to_a);
        assert_eq!(sorted(b.keys()), [1, 2]);
        assert_eq!(locks.stats().deadlocks, 0);
    }
}

/// An extend refused as it enqueued (its first poll says so, without
/// waiting), dropped before any poll instead: its refusal goes with it,
/// uncounted, and the guard's next extend is not refused for it.
#[test]
fn a_refusal_dropped_unpolled_does_not_refuse_the_next_extend() {
    for poll_it in [true, false] {
        let locks = LockManager::new();
        let mut a = locks.try_acquire_many([1]).unwrap();
        let mut b = locks.try_acquire_many([2]).unwrap();
        let mut a_to_b = a.extend([2]);
        assert!(Task::new().poll(&mut a_to_b).is_pending());
        let mut b_to_a = b.extend([1]).enqueue();
        assert_eq!(locks.queue_len(&1), 2, "queued on a's key");
        if poll_it {
            // The refusal was made as it enqueued: the first poll tells it.
            assert_eq!(refused(Task::new().poll(&mut b_to_a)).keys().len(), 2);
            assert_eq!(locks.stats().deadlocks, 1);
        }
        drop(b_to_a);
        assert_eq!(locks.queue_len(&1), 1, "it left the queue");
        assert_eq!(b.extend([3]).now_or_never(), Some(Ok(())), "a free key");
        assert_eq!(sorted(b.keys()), [2, 3]);
        drop(b);
        assert_eq!(a_to_b.now_or_never(), Some(Ok(())));
        let delivered = u64::from(poll_it);
        assert_eq!(
            locks.stats().deadlocks,
            delivered,
            "counted as it reaches its extend"
        );
    }
}

/// The same for an extend refused in the place of an acquire_many, and
/// woken, but dropped without being polled.
#[test]
fn a_victim_dropped_unpolled_does_not_refuse_the_next_extend() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 1, 2);
    let mut g = locks.try_acquire_many([second]).unwrap();
    let tm = Task::new();
    let mut m = locks.acquire_many([first, second]);
    assert!(tm.poll(&mut m).is_pending());
    let tg = Task::new();
    let mut g_to_first = g.extend([first]);
    assert!(tg.poll(&mut g_to_first).is_pending());
    let g_woken = tg.wakes();
    assert!(
        tm.poll(&mut m).is_pending(),
        "m registers and closes the cycle"
    );
    assert_eq!(tg.wakes(), g_woken + 1, "refused in m's place");
    drop(g_to_first);
    assert_eq!(g.extend([3]).now_or_never(), Some(Ok(())), "a free key");
    assert_eq!(sorted(g.keys()), sorted(&[second, 3]));
    drop(g);
    assert!(tm.poll(&mut m).is_ready());
    assert_eq!(locks.stats().deadlocks, 0, "never delivered, never counted");
}

// ---------------------------------------------------------------------
// try_extend
// ---------------------------------------------------------------------

#[test]
fn try_extend_takes_all_or_nothing_and_never_waits() {
    for locks in managers() {
        let mut guard = locks.try_acquire_many([1]).unwrap();
        let other = locks.try_acquire(3).unwrap();
        assert!(!guard.try_extend([2, 3]));
        assert!(!locks.is_locked(&2), "all or nothing");
        assert_eq!(locks.queue_len(&3), 1, "no waiter left behind");
        assert_eq!(guard.keys(), [1]);
        assert!(guard.try_extend([1, 1]), "held keys only");
        assert_eq!(guard.keys(), [1]);
        assert_eq!(locks.queue_len(&1), 1);
        drop(other);
        assert!(guard.try_extend([2, 3, 1, 2]));
        assert_eq!(sorted(guard.keys()), [1, 2, 3]);
        assert!(guard.try_extend([]));
        assert_eq!(locks.locked_count(), 3);
        drop(guard);
        assert_empty(&locks, 0);
    }
}

/// Where an extend would close a cycle, try_extend just fails: nothing
/// waits, nothing is refused, the waiting side goes on.
#[test]
fn try_extend_toward_a_waiting_guard_fails_without_a_refusal() {
    let locks = LockManager::new();
    let mut a = locks.try_acquire_many([1]).unwrap();
    let mut b = locks.try_acquire_many([2]).unwrap();
    let task = Task::new();
    let mut a_to_b = a.extend([2]);
    assert!(task.poll(&mut a_to_b).is_pending());
    assert!(!b.try_extend([1, 3]));
    assert!(!locks.is_locked(&3));
    assert_eq!(b.keys(), [2]);
    assert_eq!(locks.queue_len(&1), 1);
    assert_eq!(locks.stats().deadlocks, 0);
    drop(b);
    assert_eq!(task.poll(&mut a_to_b), Poll::Ready(Ok(())));
}

// ---------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------

/// `?` turns a `Deadlock` into an `Error<K>`.
async fn grow(guard: &mut MultiLockGuard<'_, u32>, key: u32) -> Result<usize, Error<u32>> {
    guard.extend([key]).await?;
    Ok(guard.keys().len())
}

#[test]
fn a_deadlock_converts_into_an_error_and_names_its_keys() {
    let locks = LockManager::new();
    let mut a = locks.try_acquire_many([1]).unwrap();
    let mut b = locks.try_acquire_many([2]).unwrap();
    assert_eq!(grow(&mut b, 3).now_or_never(), Some(Ok(2)));
    let mut a_to_b = a.extend([2]);
    assert!(Task::new().poll(&mut a_to_b).is_pending());
    let Some(Err(Error::Deadlock(deadlock))) = grow(&mut b, 1).now_or_never() else {
        panic!("refused through `?`");
    };
    assert_eq!(cycle_of(&deadlock), BTreeSet::from([1, 2]));
    let message = deadlock.to_string();
    assert!(message.contains("deadlock"), "{message}");
    assert!(
        message.contains(&format!("{:?}", deadlock.keys())),
        "names the keys: {message}"
    );
    let error = Error::from(deadlock.clone());
    assert_eq!(error, Error::Deadlock(deadlock.clone()));
    assert_eq!(error.to_string(), message);
    // Into a boxed error, as `?` does in an application.
    let boxed: Box<dyn std::error::Error + Send + Sync> = deadlock.into();
    assert_eq!(boxed.to_string(), message);
    // The blocking forms refuse at once too.
    let started = Instant::now();
    assert!(matches!(
        b.extend([1]).wait_timeout(Duration::from_secs(10)),
        Err(Error::Deadlock(_))
    ));
    assert!(matches!(b.extend([1]).wait(), Err(Deadlock { .. })));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(locks.stats().deadlocks, 3);
    assert_eq!(sorted(b.keys()), [2, 3]);
}

/// With `diagnostics`, a refusal names the call site of each request in
/// the cycle, in the order of its keys (each request's with the key it
/// waits for), and prints them; without, none.
#[test]
fn a_deadlock_names_the_call_sites_with_diagnostics() {
    let locks = LockManager::new();
    let mut a = locks.try_acquire_many([1]).unwrap();
    let mut b = locks.try_acquire_many([2]).unwrap();
    let a_line = line!() + 1;
    let mut a_to_b = a.extend([2]);
    assert!(Task::new().poll(&mut a_to_b).is_pending());
    let b_line = line!() + 1;
    let deadlock = refused(Task::new().poll(&mut b.extend([1])));
    let sites = deadlock.call_sites();
    if cfg!(feature = "diagnostics") {
        let by_key: BTreeSet<(u32, u32)> = (deadlock.keys().iter().copied())
            .zip(sites.iter().map(|site| site.line()))
            .collect();
        assert_eq!(sites.len(), 2, "{sites:?}");
        assert_eq!(by_key, BTreeSet::from([(2, a_line), (1, b_line)]));
        assert!(sites.iter().all(|site| site.file().ends_with("extend.rs")));
        let message = deadlock.to_string();
        assert!(message.contains(&sites[0].to_string()), "{message}");
        assert!(message.contains(&sites[1].to_string()), "{message}");
    } else {
        assert!(sites.is_empty(), "{sites:?}");
    }
}

/// Two threads each take one key and then extend toward the other's, in
/// lockstep: every round, exactly one is refused and the other completes.
#[test]
fn threads_extending_toward_each_other_refuse_exactly_one() {
    const ROUNDS: usize = 50;
    let locks = Arc::new(LockManager::new());
    let in_threads = Arc::clone(&locks);
    within(Duration::from_secs(60), "crossing extends", move || {
        let took_first = Arc::new(Barrier::new(2));
        let worker = |first: u8, second: u8| {
            let (locks, took_first) = (Arc::clone(&in_threads), Arc::clone(&took_first));
            thread::spawn(move || {
                (0..ROUNDS)
                    .map(|_| {
                        let mut guard = locks.acquire_many([first]).wait();
                        took_first.wait();
                        let grown = guard.extend([second]).wait();
                        grown.map(|()| guard.keys().len())
                    })
                    .collect::<Vec<_>>()
            })
        };
        let (one, two) = (worker(1, 2), worker(2, 1));
        let (one, two) = (one.join().unwrap(), two.join().unwrap());
        for (round, outcome) in one.iter().zip(&two).enumerate() {
            match outcome {
                (Ok(2), Err(refused)) | (Err(refused), Ok(2)) => {
                    assert_eq!(sorted(refused.keys()), [1, 2], "round {round}");
                }
                other => panic!("round {round}: {other:?}"),
            }
        }
    });
    assert_eq!(locks.stats().deadlocks, ROUNDS as u64);
    assert_empty(&locks, 0);
}
