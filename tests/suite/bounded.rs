//! `enqueue_bounded`: refuses at once past a number of waiters, and
//! otherwise takes its place (at the call) in the same FIFO queue as
//! everyone else; and `enqueue`, its unbounded twin, which does nothing to
//! a future that has its place already.
use std::cmp::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use crate::common::{in_take_order, Rt, Task};
use lock_manager::{Busy, LockManager};

#[test]
fn the_caller_past_the_bound_is_refused_and_changes_nothing() {
    let locks = LockManager::new();
    let _holder = locks.try_acquire("k").unwrap();
    let first = locks
        .acquire("k")
        .enqueue_bounded(2)
        .expect("no waiters yet");
    let second = locks.acquire("k").enqueue_bounded(2).expect("one waiter");
    let before = format!("{locks:?}");

    let refused = locks.acquire("k").enqueue_bounded(2).unwrap_err();
    assert_eq!(refused, Busy::clone(&refused));
    assert_eq!(refused.waiters(), 2);
    assert_eq!(
        refused.to_string(),
        "the key is held and has 2 waiters, the most allowed"
    );
    assert_eq!(format!("{locks:?}"), before);
    assert_eq!(locks.queue_len("k"), 3);
    // A looser bound admits the next caller.
    assert!(locks.acquire("k").enqueue_bounded(3).is_ok());
    drop((first, second));
}

#[test]
fn a_bounded_caller_queues_in_call_order_among_plain_ones() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(1).unwrap();
    let tasks = [Task::new(), Task::new(), Task::new()];

    let mut plain_first = locks.acquire(1);
    assert!(tasks[0].poll(&mut plain_first).is_pending());
    // Placed now, before its first poll.
    let mut bounded = locks.acquire(1).enqueue_bounded(8).unwrap();
    let mut plain_last = locks.acquire(1);
    assert!(tasks[2].poll(&mut plain_last).is_pending());
    assert!(tasks[1].poll(&mut bounded).is_pending());
    assert_eq!(locks.queue_len(&1), 4);

    drop(holder);
    let Poll::Ready(guard) = tasks[0].poll(&mut plain_first) else {
        panic!("the oldest waiter was not served first")
    };
    assert!(tasks[2].poll(&mut plain_last).is_pending());
    drop(guard);
    assert_eq!(tasks[1].wakes(), 1);
    let Poll::Ready(guard) = tasks[1].poll(&mut bounded) else {
        panic!("the bounded waiter was not served second")
    };
    drop(guard);
    assert!(tasks[2].poll(&mut plain_last).is_ready());
}

#[test]
fn a_free_key_is_taken_by_the_call_itself() {
    let locks = LockManager::new();
    let mut acquire = locks.acquire("k").enqueue_bounded(0).expect("free");
    assert!(locks.is_locked("k"));
    assert!(locks.try_acquire("k").is_none());
    let Poll::Ready(guard) = Task::new().poll(&mut acquire) else {
        panic!("a free key was not granted at once")
    };
    drop(guard);
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

#[test]
fn dropping_a_placed_future_gives_up_its_place_or_its_lock() {
    let locks = LockManager::new();
    // Holding the lock, never polled.
    drop(locks.acquire("a").enqueue_bounded(0).unwrap());
    assert!(!locks.is_locked("a"));

    // Queued, never polled.
    let holder = locks.try_acquire("b").unwrap();
    drop(locks.acquire("b").enqueue_bounded(1).unwrap());
    assert_eq!(locks.queue_len("b"), 1);
    drop(holder);
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

#[test]
fn a_zero_bound_admits_only_a_free_key() {
    let locks = LockManager::new();
    // Polled once, not blocked on: a grant it fails to see fails the test.
    let mut admitted = locks.acquire(3).enqueue_bounded(0).unwrap();
    let Poll::Ready(guard) = Task::new().poll(&mut admitted) else {
        panic!("admitted with a free key, it holds the key at once")
    };
    assert_eq!(
        locks.acquire(3).enqueue_bounded(0).unwrap_err().waiters(),
        0
    );
    drop(guard);
    assert!(locks.acquire(3).enqueue_bounded(0).is_ok());
}

/// Sixteen tasks try a key held by the test with room for four waiters:
/// exactly four get in, and they are served in the order they got in.
async fn load_shedding_admits_exactly_the_bound(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let holder = locks.clone().acquire_owned("k").await;
    let served = Arc::new(Mutex::new(Vec::new()));

    let mut admitted = Vec::new();
    let mut tasks = Vec::new();
    let mut refused = 0;
    for i in 0..16 {
        match locks.acquire_owned("k").enqueue_bounded(4) {
            Ok(acquire) => {
                let served = Arc::clone(&served);
                admitted.push(i);
                // Spawned only now: the place was taken by the call.
                tasks.push(rt.spawn(async move {
                    let _guard = acquire.await;
                    served.lock().unwrap().push(i);
                }));
            }
            Err(busy) => {
                assert_eq!(busy.waiters(), 4);
                refused += 1;
            }
        }
    }
    assert_eq!((admitted.len(), refused), (4, 12));

    drop(holder);
    let all = futures::future::join_all(tasks);
    assert!(rt.timeout(Duration::from_secs(20), all).await.is_some());
    assert_eq!(*served.lock().unwrap(), admitted);
    assert_eq!(locks.locked_count(), 0);
}

on_every_runtime!(load_shedding_admits_exactly_the_bound);

/// The bound is checked on every key at the call, wherever the key comes
/// in the order the request takes its keys: one key at its bound refuses
/// the request, even the last one it would reach, and a refusal changes
/// nothing. A looser bound admits it: it takes its keys in order up to the
/// busy one, queues there, and has not reached the keys after it.
#[test]
fn a_many_request_is_refused_when_any_key_is_at_its_bound() {
    for locks in [LockManager::with_shards(1), LockManager::with_shards(64)] {
        let order = in_take_order(&locks, [1, 2, 3]);
        for (at, busy) in order.into_iter().enumerate() {
            let ctx = format!("order {order:?}, {busy} busy");
            let held = locks.try_acquire(busy).unwrap();
            let task = Task::new();
            let mut waiter = locks.acquire(busy);
            assert!(task.poll(&mut waiter).is_pending());
            let stats = locks.stats();
            let debug = format!("{locks:?}");

            let refused = locks
                .acquire_many([1, 2, 3])
                .enqueue_bounded(1)
                .unwrap_err();
            assert_eq!(refused.waiters(), 1, "{ctx}");
            let mut refused = stats;
            refused.busy += 1;
            assert_eq!(
                locks.stats(),
                refused,
                "{ctx}: a refusal counts itself only"
            );
            assert_eq!(format!("{locks:?}"), debug, "{ctx}");
            assert_eq!(locks.locked_count(), 1, "{ctx}");
            assert_eq!(locks.queue_len(&busy), 2, "{ctx}");

            // A looser bound admits it: the keys before the busy one are
            // held, it waits behind the waiter there, and the keys after
            // it are untouched.
            let admitted = locks.acquire_many([3, 2, 1]).enqueue_bounded(2).unwrap();
            for (i, key) in order.iter().enumerate() {
                let expected = match i.cmp(&at) {
                    Ordering::Less => 1,
                    Ordering::Equal => 3,
                    Ordering::Greater => 0,
                };
                assert_eq!(locks.queue_len(key), expected, "{ctx}: key {key}");
            }
            assert_eq!(locks.locked_count(), 1 + at, "{ctx}");
            drop(admitted);
            assert_eq!(format!("{locks:?}"), debug, "{ctx}: all given back");
            assert_eq!(locks.queue_len(&busy), 2, "{ctx}");
            assert_eq!(task.wakes(), 0, "{ctx}");
            drop(held);
            assert_eq!(task.wakes(), 1, "{ctx}");
            assert!(task.poll(&mut waiter).is_ready(), "{ctx}");
            assert_eq!(locks.locked_count(), 0, "{ctx}");
        }
    }
}

#[test]
fn a_bounded_many_request_queues_in_call_order() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("b").unwrap();
    let tasks = [Task::new(), Task::new()];
    // Placed now, before the plain request that is polled first.
    let mut bounded = locks.acquire_many(["a", "b"]).enqueue_bounded(4).unwrap();
    let mut plain = locks.acquire_many(["b"]);
    assert!(tasks[1].poll(&mut plain).is_pending());
    assert!(tasks[0].poll(&mut bounded).is_pending());

    drop(holder);
    assert_eq!(tasks[0].wakes(), 1);
    assert_eq!(tasks[1].wakes(), 0);
    let Poll::Ready(guard) = tasks[0].poll(&mut bounded) else {
        panic!("the bounded request was placed first and must be served first")
    };
    assert!(tasks[1].poll(&mut plain).is_pending());
    drop(guard);
    assert!(tasks[1].poll(&mut plain).is_ready());
}

#[test]
fn a_zero_bound_admits_a_many_request_only_when_every_key_is_free() {
    let locks = Arc::new(LockManager::new());
    let guard = locks.acquire_many_owned([1, 2]).enqueue_bounded(0).unwrap();
    assert_eq!(locks.locked_count(), 2, "free keys are taken by the call");
    assert!(locks.acquire_many_owned([2, 3]).enqueue_bounded(0).is_err());
    assert!(!locks.is_locked(&3));
    let task = Task::new();
    let mut guard_future = guard;
    let Poll::Ready(held) = task.poll(&mut guard_future) else {
        panic!("a request admitted at zero waiters holds every key")
    };
    assert_eq!(held.keys().len(), 2);
    drop(held);
    assert_eq!(locks.locked_count(), 0);
}

/// A future placed already (by a poll, `enqueue` or `enqueue_bounded`)
/// keeps its place and its waker through `enqueue` and `enqueue_bounded`,
/// and the bound is not checked again: one waiter each, nothing counted.
#[test]
fn enqueue_on_a_placed_future_changes_nothing() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(1).unwrap();
    let tasks = [Task::new(), Task::new()];
    let mut polled = locks.acquire(1);
    assert!(tasks[0].poll(&mut polled).is_pending());
    let placed = locks.acquire(1).enqueue();
    let (stats, debug) = (locks.stats(), format!("{locks:?}"));
    assert_eq!(debug, "LockManager { locked: 1, waiters: 2 }");

    let polled = polled.enqueue().enqueue();
    let placed = placed.enqueue();
    assert_eq!(locks.queue_len(&1), 3);
    // Two waiters already, past a bound of 0 or 1: placed, so admitted.
    let mut polled = polled
        .enqueue_bounded(0)
        .expect("placed: not checked again");
    let mut placed = placed
        .enqueue_bounded(1)
        .expect("placed: not checked again");
    assert_eq!(locks.queue_len(&1), 3);
    assert_eq!(locks.stats(), stats);
    assert_eq!(format!("{locks:?}"), debug);

    drop(holder);
    assert_eq!(
        tasks[0].wakes(),
        1,
        "still woken through its first poll's waker"
    );
    let Poll::Ready(guard) = tasks[0].poll(&mut polled) else {
        panic!("the polled future kept its place at the front")
    };
    assert!(tasks[1].poll(&mut placed).is_pending());
    drop(guard);
    assert_eq!(tasks[1].wakes(), 1);
    let guard = match tasks[1].poll(&mut placed) {
        Poll::Ready(guard) => guard,
        Poll::Pending => panic!("the placed future was next"),
    };
    // A future granted at the call is left as it is too.
    let granted = locks.acquire(2).enqueue().enqueue_bounded(0).unwrap();
    assert_eq!(locks.queue_len(&2), 1);
    drop((guard, granted));
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

/// A multi-key request placed already (by a poll, or by `enqueue`) keeps
/// its place and its waker through `enqueue` and `enqueue_bounded`: the
/// bound is not checked again, and the request does not go on past the key
/// it waits for. One request holds the key before the one it waits for,
/// the other has not reached the key after it.
#[test]
fn enqueue_on_a_placed_many_request_changes_nothing() {
    for locks in [LockManager::with_shards(1), LockManager::with_shards(64)] {
        let [a, b, c] = in_take_order(&locks, [1, 2, 3]);
        let holder = locks.try_acquire(b).unwrap();
        let tasks = [Task::new(), Task::new()];
        // Takes `a`, then waits for `b`.
        let mut polled = locks.acquire_many([b, a]);
        assert!(tasks[0].poll(&mut polled).is_pending());
        // Waits for `b`, without a waker, and has not reached `c`.
        let placed = locks.acquire_many([c, b]).enqueue();
        let (stats, debug) = (locks.stats(), format!("{locks:?}"));
        assert_eq!(debug, "LockManager { locked: 2, waiters: 2 }");
        assert!(locks.is_locked(&a) && !locks.is_locked(&c));

        let mut polled = polled
            .enqueue()
            .enqueue_bounded(0)
            .expect("not checked again");
        let mut placed = placed
            .enqueue()
            .enqueue_bounded(1)
            .expect("not checked again");
        assert_eq!(locks.queue_len(&b), 3);
        assert_eq!(locks.queue_len(&c), 0);
        assert_eq!(locks.stats(), stats);
        assert_eq!(format!("{locks:?}"), debug);

        drop(holder);
        assert_eq!(
            tasks[0].wakes(),
            1,
            "still woken through its first poll's waker"
        );
        let Poll::Ready(guard) = tasks[0].poll(&mut polled) else {
            panic!("the polled request kept its place at the front")
        };
        assert!(tasks[1].poll(&mut placed).is_pending());
        assert_eq!(locks.queue_len(&c), 0, "{c} is not reached before {b}");
        drop(guard);
        assert_eq!(tasks[1].wakes(), 1);
        let Poll::Ready(guard) = tasks[1].poll(&mut placed) else {
            panic!("handed {b}, it takes {c}, free")
        };
        assert_eq!(locks.queue_len(&c), 1);
        drop(guard);
        assert_eq!(locks.locked_count(), 0);
    }
}
