//! Multi-key locking (`acquire_many`, `with_locks`), polled by hand with
//! counting wakers: keys taken one at a time in one fixed order (the
//! manager's, found with `take_order`), FIFO shared with single-key callers
//! on each key, freedom from deadlock, keys of equal hash taken in one
//! step, cancellation at every stage, duplicates and the empty set; and
//! single-key guards converted into multi-key ones.
use std::hash::{BuildHasher, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use crate::common::{in_take_order, take_order, taken_together, within, Rng, Task};
use futures::future::FutureExt;
use lock_manager::{Guard, LockManager, MultiLockGuard, OwnedMultiLockGuard};

/// Managers with one shard (every key shares a mutex) and with many (keys
/// spread over several mutexes, locked together in index order).
fn managers() -> [LockManager<u32>; 2] {
    [LockManager::with_shards(1), LockManager::with_shards(64)]
}

#[test]
fn free_keys_are_taken_at_once() {
    for locks in managers() {
        let guard = locks.acquire_many([1, 2, 3]).now_or_never().unwrap();
        assert_eq!(locks.locked_count(), 3);
        assert!((1..=3).all(|key| locks.queue_len(&key) == 1));
        assert!(locks.try_acquire(2).is_none());
        drop(guard);
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn duplicates_are_merged() {
    for locks in managers() {
        let guard = locks.acquire_many([5, 1, 5, 1, 1]).now_or_never().unwrap();
        let mut keys = guard.keys().to_vec();
        keys.sort_unstable();
        assert_eq!(keys, [1, 5]);
        assert_eq!(locks.queue_len(&5), 1);
        drop(guard);
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn an_empty_set_resolves_at_once() {
    let locks = LockManager::<u32>::new();
    let _held = locks.try_acquire(1).unwrap();
    let guard = locks.acquire_many([]).now_or_never().unwrap();
    assert!(guard.keys().is_empty());
    assert_eq!(locks.locked_count(), 1);
}

/// Two requests listing the same keys in opposite orders both take them
/// in the manager's order, so the one that arrives second waits behind the
/// first on the first key and never holds the other: whichever key is held
/// when they arrive, both are served, the earlier one first.
#[test]
fn opposite_orders_do_not_deadlock() {
    for locks in managers() {
        let (first, second) = take_order(&locks, 1, 2);
        for held in [first, second] {
            let ctx = format!("{first} taken before {second}, {held} held");
            let holder = locks.try_acquire(held).unwrap();
            let (t1, t2) = (Task::new(), Task::new());
            let mut ab = locks.acquire_many([1, 2]);
            let mut ba = locks.acquire_many([2, 1]);
            assert!(t1.poll(&mut ab).is_pending(), "{ctx}");
            assert!(t2.poll(&mut ba).is_pending(), "{ctx}");
            if held == second {
                // `ab` took `first` and waits for `second`; `ba` waits for
                // `first`, behind `ab`, and has not reached `second`.
                assert_eq!(locks.queue_len(&first), 2, "{ctx}");
                assert_eq!(locks.queue_len(&second), 2, "{ctx}");
            } else {
                // Both wait for `first`, `ab` ahead; nobody reached `second`.
                assert_eq!(locks.queue_len(&first), 3, "{ctx}");
                assert_eq!(locks.queue_len(&second), 0, "{ctx}");
            }

            drop(holder);
            assert_eq!((t1.wakes(), t2.wakes()), (1, 0), "{ctx}");
            let Poll::Ready(guard) = t1.poll(&mut ab) else {
                panic!("{ctx}: ab holds both keys and must be ready");
            };
            assert!(t2.poll(&mut ba).is_pending(), "{ctx}");
            assert_eq!(locks.queue_len(&first), 2, "{ctx}: ba waits on {first}");
            assert_eq!(
                locks.queue_len(&second),
                1,
                "{ctx}: ba never reached {second}"
            );
            drop(guard);
            assert_eq!(t2.wakes(), 1, "{ctx}");
            let Poll::Ready(guard) = t2.poll(&mut ba) else {
                panic!("{ctx}: ba takes {second}, free, at once");
            };
            assert_eq!(guard.keys().len(), 2, "{ctx}");
            drop(guard);
            assert_eq!(locks.locked_count(), 0, "{ctx}");
        }
    }
}

/// On the key a request waits for, and on the keys it took before it, a
/// later single-key caller queues behind the request.
#[test]
fn a_single_key_caller_never_overtakes_an_earlier_multi_key_request() {
    for locks in managers() {
        let (first, second) = take_order(&locks, 1, 2);
        let holder = locks.try_acquire(second).unwrap();
        let (multi_task, on_first_task, on_second_task) = (Task::new(), Task::new(), Task::new());
        let mut multi = locks.acquire_many([2, 1]);
        assert!(multi_task.poll(&mut multi).is_pending());
        // The request holds `first` while it waits for `second`: a later
        // caller on `first` queues behind it although `first` is not in
        // use, and one on `second` queues behind it too.
        assert!(locks.is_locked(&first));
        let mut on_first = locks.acquire(first);
        let mut on_second = locks.acquire(second);
        assert!(on_first_task.poll(&mut on_first).is_pending());
        assert!(on_second_task.poll(&mut on_second).is_pending());
        assert!(locks.try_acquire(first).is_none());
        assert_eq!(locks.queue_len(&second), 3);

        drop(holder);
        assert_eq!(
            (multi_task.wakes(), on_second_task.wakes()),
            (1, 0),
            "{second} goes to the request, which arrived on it first"
        );
        assert!(on_second_task.poll(&mut on_second).is_pending());
        let Poll::Ready(guard) = multi_task.poll(&mut multi) else {
            panic!("the request was handed {second}, its last key");
        };
        assert!(on_first_task.poll(&mut on_first).is_pending());
        drop(guard);
        assert_eq!((on_first_task.wakes(), on_second_task.wakes()), (1, 1));
        assert!(on_first_task.poll(&mut on_first).is_ready());
        assert!(on_second_task.poll(&mut on_second).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

/// The counterpart: a request takes its keys one at a time, so a key it
/// has not reached yet is not its own, and a later single-key caller takes
/// it at once. The request then waits for that caller on that key.
#[test]
fn a_later_single_key_caller_takes_a_key_the_request_has_not_reached_yet() {
    for locks in managers() {
        let (first, second) = take_order(&locks, 1, 2);
        let holder = locks.try_acquire(first).unwrap();
        let multi_task = Task::new();
        let mut multi = locks.acquire_many([2, 1]);
        assert!(multi_task.poll(&mut multi).is_pending());
        assert!(!locks.is_locked(&second), "not reached: not taken");

        let single_task = Task::new();
        let mut single = locks.acquire(second);
        let Poll::Ready(single_guard) = single_task.poll(&mut single) else {
            panic!("{second} is free: the later caller takes it at once");
        };
        assert_eq!(locks.queue_len(&second), 1);

        drop(holder);
        assert_eq!(multi_task.wakes(), 1);
        assert!(
            multi_task.poll(&mut multi).is_pending(),
            "it took {first}, and now waits for {second}"
        );
        assert!(locks.is_locked(&first));
        assert_eq!(locks.queue_len(&second), 2);
        drop(single_guard);
        assert_eq!(multi_task.wakes(), 2);
        assert!(multi_task.poll(&mut multi).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn a_multi_key_request_never_overtakes_an_earlier_single_key_caller() {
    for locks in managers() {
        let holder = locks.try_acquire(1).unwrap();
        let (single_task, multi_task) = (Task::new(), Task::new());
        let mut single = locks.acquire(1);
        assert!(single_task.poll(&mut single).is_pending());
        let mut multi = locks.acquire_many([1, 2]);
        assert!(multi_task.poll(&mut multi).is_pending());

        drop(holder);
        assert_eq!((single_task.wakes(), multi_task.wakes()), (1, 0));
        let Poll::Ready(guard) = single_task.poll(&mut single) else {
            panic!("the earlier single-key caller is served first");
        };
        assert!(multi_task.poll(&mut multi).is_pending());
        drop(guard);
        assert_eq!(multi_task.wakes(), 1);
        assert!(multi_task.poll(&mut multi).is_ready());
    }
}

#[test]
fn keys_granted_out_of_order_complete_the_request() {
    for locks in managers() {
        let (one, two) = (locks.try_acquire(1).unwrap(), locks.try_acquire(2).unwrap());
        let task = Task::new();
        let mut both = locks.acquire_many([1, 2]);
        assert!(task.poll(&mut both).is_pending());
        // Whichever key the future waits on first, releasing both wakes it
        // and a poll then finds both granted.
        drop(two);
        drop(one);
        assert!(task.wakes() >= 1);
        assert!(task.poll(&mut both).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn dropping_a_partly_granted_request_hands_on_every_key() {
    for locks in managers() {
        let (first, second) = take_order(&locks, 1, 2);
        let held = locks.try_acquire(second).unwrap();
        let task = Task::new();
        let mut both = locks.acquire_many([1, 2]);
        assert!(task.poll(&mut both).is_pending());
        let (w1, w2) = (Task::new(), Task::new());
        let mut next1 = locks.acquire(first);
        let mut next2 = locks.acquire(second);
        assert!(w1.poll(&mut next1).is_pending());
        assert!(w2.poll(&mut next2).is_pending());

        drop(both); // held `first`, queued on `second`
        assert_eq!(w1.wakes(), 1, "{first} passes to its next waiter");
        assert!(w1.poll(&mut next1).is_ready());
        assert_eq!(
            locks.queue_len(&second),
            2,
            "the request left the queue of {second}"
        );
        drop(held);
        assert_eq!(w2.wakes(), 1);
        assert!(w2.poll(&mut next2).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn dropping_a_fully_granted_unpolled_request_hands_on_every_key() {
    for locks in managers() {
        let holders = (locks.try_acquire(1).unwrap(), locks.try_acquire(2).unwrap());
        let task = Task::new();
        let mut both = locks.acquire_many([1, 2]);
        assert!(task.poll(&mut both).is_pending());
        let (w1, w2) = (Task::new(), Task::new());
        let mut next1 = locks.acquire(1);
        let mut next2 = locks.acquire(2);
        assert!(w1.poll(&mut next1).is_pending());
        assert!(w2.poll(&mut next2).is_pending());

        drop(holders);
        assert!(locks.is_locked(&1) && locks.is_locked(&2));
        drop(both); // granted both, never polled again
        assert_eq!((w1.wakes(), w2.wakes()), (1, 1));
        assert!(w1.poll(&mut next1).is_ready());
        assert!(w2.poll(&mut next2).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn dropping_an_unpolled_request_changes_nothing() {
    let locks = LockManager::new();
    let request = locks.acquire_many([1, 2]);
    assert_eq!(locks.locked_count(), 0);
    drop(request);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_moved_request_is_woken_through_its_new_waker() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(1).unwrap();
    let mut both = locks.acquire_many([1, 2]);
    let (old, new) = (Task::new(), Task::new());
    assert!(old.poll(&mut both).is_pending());
    assert!(new.poll(&mut both).is_pending());
    drop(holder);
    assert_eq!((old.wakes(), new.wakes()), (0, 1));
    assert!(new.poll(&mut both).is_ready());
}

#[test]
fn spurious_polls_keep_the_place() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 1, 2);
    let holder = locks.try_acquire(second).unwrap();
    let task = Task::new();
    let mut both = locks.acquire_many([1, 2]);
    for _ in 0..3 {
        assert!(task.poll(&mut both).is_pending());
    }
    assert_eq!(locks.queue_len(&first), 1);
    assert_eq!(locks.queue_len(&second), 2);
    assert_eq!(locks.locked_count(), 2);
    assert_eq!(task.wakes(), 0);
    drop(holder);
    assert_eq!(task.wakes(), 1);
    assert!(task.poll(&mut both).is_ready());
}

#[test]
fn polling_after_completion_panics() {
    let locks = LockManager::new();
    let mut request = locks.acquire_many([1]);
    let task = Task::new();
    let guard = task.poll(&mut request);
    assert!(guard.is_ready());
    let panic = catch_unwind(AssertUnwindSafe(|| task.poll(&mut request))).unwrap_err();
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("polled after completion"), "{message}");
    drop(guard);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn owned_guards_move_to_other_threads() {
    let locks = Arc::new(LockManager::new());
    let guard = locks.acquire_many_owned(["a", "b"]).now_or_never().unwrap();
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn with_locks_releases_on_return_error_panic_and_drop() {
    let locks = LockManager::new();
    let out = locks
        .with_locks([1, 2], || async { 7 })
        .now_or_never()
        .unwrap();
    assert_eq!(out, 7);
    let failed: Result<(), &str> = locks
        .with_locks([2, 3], || async { Err("no") })
        .now_or_never()
        .unwrap();
    assert!(failed.is_err());
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        locks
            .with_locks([1, 3], || async { panic!("body") })
            .now_or_never()
    }));
    assert!(panicked.is_err());
    assert_eq!(locks.locked_count(), 0);

    // Dropped midway, while the body waits.
    let task = Task::new();
    let mut midway = Box::pin(locks.with_locks([1, 2], futures::future::pending::<()>));
    assert!(task.poll(&mut midway).is_pending());
    assert_eq!(locks.locked_count(), 2);
    drop(midway);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn try_many_takes_every_free_key_or_none() {
    for locks in managers() {
        let guard = locks.try_acquire_many([3, 1, 2]).expect("all free");
        assert_eq!(locks.locked_count(), 3);
        assert!(locks.try_acquire_many([4, 2]).is_none());
        assert!(!locks.is_locked(&4), "a refused request took a key");
        drop(guard);
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn a_refused_try_many_changes_nothing_but_the_refusals() {
    for locks in managers() {
        let _held = locks.try_acquire(7).unwrap();
        let stats = locks.stats();
        let debug = format!("{locks:?}");
        // The held key sorts anywhere among the others: whatever comes
        // before it in shard order must not stay taken.
        assert!(locks.try_acquire_many([1, 2, 3, 7, 8, 9]).is_none());
        let mut refused = stats;
        refused.busy += 1;
        assert_eq!(locks.stats(), refused, "a refusal counts itself only");
        assert_eq!(format!("{locks:?}"), debug);
        assert_eq!(locks.locked_count(), 1);
    }
}

#[test]
fn try_many_never_barges_past_a_queue() {
    for locks in managers() {
        let holder = locks.try_acquire(1).unwrap();
        let task = Task::new();
        let mut waiter = locks.acquire(1);
        assert!(task.poll(&mut waiter).is_pending());
        // Handed to the waiter, which has not run yet: still not free.
        drop(holder);
        assert!(locks.try_acquire_many([1, 2]).is_none());
        assert!(!locks.is_locked(&2));
        let guard = task.poll(&mut waiter);
        assert!(guard.is_ready());
        drop(guard);
        assert!(locks.try_acquire_many([1, 2]).is_some());
    }
}

#[test]
fn try_many_merges_duplicates_and_accepts_the_empty_set() {
    let locks = LockManager::<u32>::new();
    let guard = locks.try_acquire_many([4, 4, 2, 4]).unwrap();
    let mut keys = guard.keys().to_vec();
    keys.sort_unstable();
    assert_eq!(keys, [2, 4]);
    let empty = locks.try_acquire_many([]).expect("nothing to take");
    assert!(empty.keys().is_empty());
    drop(empty);
    assert_eq!(locks.locked_count(), 2);
    drop(guard);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn try_many_guards_are_served_like_any_holder() {
    for locks in managers() {
        let guard = locks.try_acquire_many([1, 2]).unwrap();
        let task = Task::new();
        let mut next = locks.acquire_many([2, 1]);
        assert!(task.poll(&mut next).is_pending());
        drop(guard);
        assert_eq!(task.wakes(), 1);
        assert!(task.poll(&mut next).is_ready());
    }
}

#[test]
fn owned_try_many_guards_keep_the_manager() {
    let locks = Arc::new(LockManager::<u32>::new());
    let guard = locks.try_acquire_many_owned([1, 2]).unwrap();
    assert!(locks.try_acquire_many_owned([2, 3]).is_none());
    assert!(std::ptr::eq(guard.manager(), &*locks));
    let weak = Arc::downgrade(&locks);
    drop(locks);
    assert!(guard.manager().is_locked(&1), "the guard keeps the manager");
    std::thread::spawn(move || drop(guard)).join().unwrap();
    assert!(weak.upgrade().is_none(), "the guard was the last handle");
}

/// A single-key guard converted into a multi-key one keeps holding its key
/// (the conversion releases nothing); dropping it releases the key once,
/// to the oldest waiter.
#[test]
fn a_guard_converted_into_a_multi_key_guard_holds_and_hands_on_its_key() {
    for locks in managers() {
        let single = locks.try_acquire(1).unwrap();
        let tasks = [Task::new(), Task::new()];
        let mut first = locks.acquire(1);
        let mut second = locks.acquire_many([1, 2]);
        assert!(tasks[0].poll(&mut first).is_pending());
        assert!(tasks[1].poll(&mut second).is_pending());
        let before = locks.stats();

        let multi: MultiLockGuard<'_, u32> = single.into();
        assert_eq!(multi.keys(), [1]);
        assert!(std::ptr::eq(multi.manager(), &locks));
        assert!(locks.is_locked(&1));
        assert_eq!(locks.queue_len(&1), 3);
        assert_eq!(locks.stats(), before, "the conversion counted nothing");
        assert_eq!(tasks[0].wakes() + tasks[1].wakes(), 0);

        drop(multi);
        assert_eq!(locks.stats().releases, before.releases + 1);
        assert_eq!(tasks[0].wakes(), 1, "handed to the oldest waiter");
        assert_eq!(tasks[1].wakes(), 0);
        assert!(tasks[1].poll(&mut second).is_pending());
        let Poll::Ready(guard) = tasks[0].poll(&mut first) else {
            panic!("the oldest waiter holds the key")
        };
        drop(guard);
        assert!(tasks[1].poll(&mut second).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn an_owned_guard_converted_into_an_owned_multi_key_guard_holds_and_hands_on_its_key() {
    let locks = Arc::new(LockManager::<u32>::new());
    let single = locks.acquire_owned(1).now_or_never().unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire_owned(1);
    assert!(task.poll(&mut waiter).is_pending());
    let before = locks.stats();

    let multi: OwnedMultiLockGuard<u32> = single.into();
    assert_eq!(multi.keys(), [1]);
    assert!(std::ptr::eq(multi.manager(), &*locks));
    assert_eq!(locks.queue_len(&1), 2);
    assert_eq!(locks.stats(), before, "the conversion counted nothing");
    // `'static`: it moves to another thread, which releases the key.
    std::thread::spawn(move || drop(multi)).join().unwrap();
    assert_eq!(locks.stats().releases, before.releases + 1);
    assert_eq!(task.wakes(), 1);
    let Poll::Ready(guard) = task.poll(&mut waiter) else {
        panic!("handed to the waiter")
    };
    assert_eq!(*guard.key(), 1);
    drop(guard);
    assert_eq!(locks.locked_count(), 0);
}

// ---------------------------------------------------------------------------
// One key at a time, in one order: the manager's, whatever the caller's.

/// The queue length of each of `keys`.
fn queue_lens<const N: usize>(locks: &LockManager<u32>, keys: [u32; N]) -> [usize; N] {
    keys.map(|key| locks.queue_len(&key))
}

/// Steps `request`, which holds `order[0]` already, through the rest of
/// `order`, each key held by its entry of `holders`: each release hands the
/// request that key, and its next poll takes it and queues on the next key,
/// touching none after it. `behind` is the number of waiters behind the
/// request on `order[0]`.
fn step_through<'a>(
    locks: &'a LockManager<u32>,
    task: &Task,
    request: &mut lock_manager::AcquireMany<'a, u32>,
    order: [u32; 4],
    holders: &mut [Option<lock_manager::LockGuard<'a, u32>>; 4],
    behind: usize,
) -> MultiLockGuard<'a, u32> {
    for next in 1..4 {
        let wakes = task.wakes();
        assert!(task.poll(request).is_pending(), "waits for {}", order[next]);
        let mut expected = [1; 4];
        expected[0] += behind;
        expected[next] = 2;
        assert_eq!(
            queue_lens(locks, order),
            expected,
            "order {order:?}, next {next}"
        );
        assert_eq!(locks.locked_count(), 4);
        drop(holders[next].take());
        assert_eq!(task.wakes(), wakes + 1, "handed {}", order[next]);
    }
    let Poll::Ready(guard) = task.poll(request) else {
        panic!("handed its last key, {}", order[3]);
    };
    assert_eq!(guard.keys().len(), 4);
    guard
}

/// Two requests over the same four keys, listed in two different orders
/// (neither the manager's), take them in one and the same order, one key
/// at a time: each waits for only one key at any time, and reaches the
/// next one only once it holds the one before.
#[test]
fn keys_are_taken_one_at_a_time_in_one_order_whatever_the_caller_order() {
    for locks in managers() {
        let order = in_take_order(&locks, [1, 2, 3, 4]);
        let [a, b, c, d] = order;
        let mut holders = order.map(|key| Some(locks.try_acquire(key).unwrap()));
        let tasks = [Task::new(), Task::new()];
        let mut first = locks.acquire_many([d, c, b, a]);
        let mut second = locks.acquire_many([c, a, d, b]);
        assert!(tasks[0].poll(&mut first).is_pending());
        assert!(tasks[1].poll(&mut second).is_pending());
        // Both wait for the first key in order; no other key is touched.
        assert_eq!(queue_lens(&locks, order), [3, 1, 1, 1]);

        drop(holders[0].take());
        assert_eq!(wakes(&tasks), [1, 0], "{a} goes to the first request");
        let guard = step_through(&locks, &tasks[0], &mut first, order, &mut holders, 1);
        assert_eq!(tasks[1].wakes(), 0);

        // Released, the guard hands `a` to the second request and frees the
        // others, which it had never queued on.
        drop(guard);
        assert_eq!(tasks[1].wakes(), 1);
        assert_eq!(queue_lens(&locks, order), [1, 0, 0, 0]);
        holders = order.map(|key| (key != a).then(|| locks.try_acquire(key).unwrap()));
        let guard = step_through(&locks, &tasks[1], &mut second, order, &mut holders, 0);
        drop(guard);
        assert_eq!(locks.locked_count(), 0);
    }
}

/// Each task's wake count.
fn wakes<const N: usize>(tasks: &[Task; N]) -> [usize; N] {
    std::array::from_fn(|i| tasks[i].wakes())
}

/// A request queued on the first of its keys in order holds none of the
/// others, and is in none of their queues: polled or placed with `enqueue`,
/// each key after the first stays free for anyone, and nothing counts an
/// acquisition for the request until it is handed the first key.
#[test]
fn a_request_queued_on_its_first_key_holds_nothing_else() {
    for locks in managers() {
        let order = in_take_order(&locks, [1, 2, 3, 4]);
        let holder = locks.try_acquire(order[0]).unwrap();
        let before = locks.stats();
        let task = Task::new();
        let mut polled = locks.acquire_many([4, 3, 2, 1]);
        assert!(task.poll(&mut polled).is_pending());
        let mut placed = locks.acquire_many([2, 4, 1, 3]).enqueue();
        assert_eq!(queue_lens(&locks, order), [3, 0, 0, 0]);
        assert_eq!(locks.locked_count(), 1);
        let stats = locks.stats();
        assert_eq!(stats.acquisitions, before.acquisitions, "nothing taken");
        assert_eq!(stats.contended, before.contended + 2, "two queued");

        for key in &order[1..] {
            assert!(
                locks.try_acquire(*key).is_some(),
                "{key}, not reached, is free"
            );
        }
        assert!(locks.try_acquire_many(order[1..].to_vec()).is_some());
        assert_eq!(task.wakes(), 0);

        drop(holder);
        assert_eq!(task.wakes(), 1);
        let Poll::Ready(guard) = task.poll(&mut polled) else {
            panic!("handed the first key, it takes the others, all free");
        };
        assert_eq!(guard.keys().len(), 4);
        let placed_task = Task::new();
        assert!(placed_task.poll(&mut placed).is_pending());
        assert_eq!(queue_lens(&locks, order), [2, 1, 1, 1]);
        drop(guard);
        assert_eq!(placed_task.wakes(), 1);
        assert!(placed_task.poll(&mut placed).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

/// Dropped while it waits for its second key, a request hands its first
/// key to the caller behind it, leaves the second key's queue (the caller
/// behind it there is not woken, and is next), and never touched the
/// third.
#[test]
fn cancelling_while_queued_on_the_second_key_gives_back_the_first_and_leaves_the_second_queue() {
    for locks in managers() {
        let [a, b, c] = in_take_order(&locks, [1, 2, 3]);
        let holder = locks.try_acquire(b).unwrap();
        let task = Task::new();
        let mut request = locks.acquire_many([c, b, a]);
        assert!(task.poll(&mut request).is_pending());
        let tasks = [Task::new(), Task::new()];
        let mut on_a = locks.acquire(a);
        let mut on_b = locks.acquire(b);
        assert!(tasks[0].poll(&mut on_a).is_pending());
        assert!(tasks[1].poll(&mut on_b).is_pending());
        assert_eq!(queue_lens(&locks, [a, b, c]), [2, 3, 0]);
        let before = locks.stats();

        drop(request);
        assert_eq!(task.wakes(), 0);
        assert_eq!(wakes(&tasks), [1, 0], "{a} passes on; {b} is still held");
        assert_eq!(queue_lens(&locks, [a, b, c]), [1, 2, 0]);
        let stats = locks.stats();
        assert_eq!(stats.releases, before.releases + 1, "{a} given up");
        assert_eq!(stats.handoffs, before.handoffs + 1, "{a} handed on");
        assert_eq!(stats.cancellations, before.cancellations + 1, "left {b}");
        let Poll::Ready(guard_a) = tasks[0].poll(&mut on_a) else {
            panic!("{a} was handed on");
        };

        drop(holder);
        assert_eq!(tasks[1].wakes(), 1, "next on {b}, the request gone");
        let Poll::Ready(guard_b) = tasks[1].poll(&mut on_b) else {
            panic!("{b} was handed on");
        };
        drop((guard_a, guard_b));
        assert_eq!(locks.locked_count(), 0);
        assert_eq!(
            format!("{locks:?}"),
            "LockManager { locked: 0, waiters: 0 }"
        );
    }
}

/// FIFO on each key, with a multi-key request among single-key callers: it
/// is served on each key in the order it arrived on that key, and it
/// arrives on a key only when it reaches it, so a single-key caller that
/// queued on the second key first is served there first.
#[test]
fn fifo_holds_on_each_key_between_a_multi_key_request_and_single_key_callers() {
    for locks in managers() {
        let (first, second) = take_order(&locks, 1, 2);
        let holders = [locks.try_acquire(first), locks.try_acquire(second)].map(Option::unwrap);
        let [holder_first, holder_second] = holders;
        // Arrivals, in order: before on `first`, the request (on `first`),
        // before on `second`, after on `first`.
        let tasks = [Task::new(), Task::new(), Task::new(), Task::new()];
        let mut before_first = locks.acquire(first);
        let mut multi = locks.acquire_many([second, first]);
        let mut before_second = locks.acquire(second);
        let mut after_first = locks.acquire(first);
        assert!(tasks[0].poll(&mut before_first).is_pending());
        assert!(tasks[1].poll(&mut multi).is_pending());
        assert!(tasks[2].poll(&mut before_second).is_pending());
        assert!(tasks[3].poll(&mut after_first).is_pending());
        assert_eq!((locks.queue_len(&first), locks.queue_len(&second)), (4, 2));

        drop(holder_first);
        assert_eq!(wakes(&tasks), [1, 0, 0, 0]);
        let guard = ready(tasks[0].poll(&mut before_first));
        drop(guard);
        assert_eq!(
            wakes(&tasks),
            [1, 1, 0, 0],
            "the request is next on {first}"
        );
        assert!(
            tasks[1].poll(&mut multi).is_pending(),
            "it took {first}, and queued on {second} behind the earlier caller"
        );
        assert_eq!((locks.queue_len(&first), locks.queue_len(&second)), (2, 3));

        drop(holder_second);
        assert_eq!(
            wakes(&tasks),
            [1, 1, 1, 0],
            "{second}: the earlier caller first"
        );
        let guard = ready(tasks[2].poll(&mut before_second));
        assert!(tasks[1].poll(&mut multi).is_pending());
        drop(guard);
        assert_eq!(wakes(&tasks), [1, 2, 1, 0]);
        let guard = ready(tasks[1].poll(&mut multi));
        assert!(tasks[3].poll(&mut after_first).is_pending());
        drop(guard);
        assert_eq!(wakes(&tasks), [1, 2, 1, 1]);
        drop(ready(tasks[3].poll(&mut after_first)));
        assert_eq!(locks.locked_count(), 0);
    }
}

#[track_caller]
fn ready<T>(poll: Poll<T>) -> T {
    match poll {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("expected Ready"),
    }
}

/// Many tasks on a multi-thread runtime lock random subsets of six keys,
/// listed in random order (with a duplicate now and then, and some waits
/// cut short by a timeout): they all finish, so no cycle of waits ever
/// formed, and no key is ever in two critical sections at once.
#[test]
fn random_orders_on_a_real_runtime_never_deadlock_and_never_share_a_key() {
    const TASKS: u64 = 32;
    const OPS: usize = 200;
    const KEYS: usize = 6;
    let seed = crate::common::env_or("MANY_ORDER_SEED", 0x0DE5_0001_u64);
    within(
        Duration::from_secs(120),
        "the random-order stress",
        move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let locks = Arc::new(LockManager::<usize>::new());
                let in_use: Arc<[AtomicBool; KEYS]> = Arc::new(Default::default());
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let (locks, in_use) = (Arc::clone(&locks), Arc::clone(&in_use));
                        tokio::spawn(async move {
                            let mut rng = Rng::new(seed.wrapping_add(t));
                            let mut served = 0;
                            for _ in 0..OPS {
                                let mut keys: Vec<usize> =
                                    (0..KEYS).filter(|_| rng.chance(40)).collect();
                                if keys.is_empty() {
                                    keys.push(rng.below(KEYS as u64) as usize);
                                }
                                for i in (1..keys.len()).rev() {
                                    keys.swap(i, rng.below(i as u64 + 1) as usize);
                                }
                                if rng.chance(10) {
                                    keys.push(keys[0]);
                                }
                                let request = locks.acquire_many_owned(keys);
                                let guard = if rng.chance(10) {
                                    let limit = Duration::from_micros(rng.below(200));
                                    match tokio::time::timeout(limit, request).await {
                                        Ok(guard) => guard,
                                        Err(_elapsed) => continue,
                                    }
                                } else {
                                    request.await
                                };
                                for &key in guard.keys() {
                                    let shared = in_use[key].swap(true, Ordering::SeqCst);
                                    assert!(
                                        !shared,
                                        "key {key} in two critical sections (seed {seed})"
                                    );
                                }
                                if rng.chance(50) {
                                    tokio::task::yield_now().await;
                                }
                                for &key in guard.keys() {
                                    in_use[key].store(false, Ordering::SeqCst);
                                }
                                served += 1;
                            }
                            served
                        })
                    })
                    .collect();
                let mut served = 0;
                for task in tasks {
                    served += task.await.expect("a task panicked");
                }
                assert!(served > 0, "seed {seed}");
                let stats = locks.stats();
                assert!(
                    stats.contended > 0 && stats.handoffs > 0,
                    "the tasks never contended: {stats:?} (seed {seed})"
                );
                crate::common::assert_empty(&locks, seed);
            });
        },
    );
}

// ---------------------------------------------------------------------------
// Keys of equal hash: taken in one step.

/// Hashes every `u32` below 100 to one constant, and other keys with a
/// seeded SipHash: keys below 100 then share one hash, the manager's order
/// cannot tell them apart, and a request must take them in one step.
#[derive(Default)]
struct CollideBelow100(std::collections::hash_map::RandomState);

struct CollidingHasher {
    inner: std::collections::hash_map::DefaultHasher,
    collide: bool,
}

impl Hasher for CollidingHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.inner.write(bytes);
    }

    fn write_u32(&mut self, n: u32) {
        if n < 100 {
            self.collide = true;
        } else {
            self.inner.write_u32(n);
        }
    }

    fn finish(&self) -> u64 {
        if self.collide {
            0x5EED_C0DE
        } else {
            self.inner.finish()
        }
    }
}

impl BuildHasher for CollideBelow100 {
    type Hasher = CollidingHasher;

    fn build_hasher(&self) -> CollidingHasher {
        CollidingHasher {
            inner: self.0.build_hasher(),
            collide: false,
        }
    }
}

/// A request's `Debug` says how many keys it holds while it waits for the
/// next, and once placed with every key free, that it holds them all.
#[test]
fn a_waiting_request_shows_how_many_keys_it_holds() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 1, 2);
    let held = locks.try_acquire(second).unwrap();
    let task = Task::new();
    let mut request = locks.acquire_many([second, first]);
    assert!(task.poll(&mut request).is_pending());
    let shown = format!("{request:?}");
    assert!(shown.contains("held: 1"), "{shown}");
    drop(held);
    assert!(task.poll(&mut request).is_ready());

    let placed = locks.acquire_many([second, first]).enqueue();
    let shown = format!("{placed:?}");
    assert!(shown.contains("held: 2"), "{shown}");
}

/// A guard that holds a key extends to another key of the same hash: it
/// takes it (only a key equal to one it holds is skipped), and a request
/// for the new key waits.
#[test]
fn an_extend_takes_a_key_of_the_same_hash_as_one_it_holds() {
    let locks = LockManager::with_shards_and_hasher(4, CollideBelow100::default());
    let mut guard = locks.try_acquire_many([1u32]).unwrap();
    guard.extend([2]).now_or_never().unwrap().unwrap();
    assert!(guard.try_extend([3, 1]));
    let mut keys = guard.keys().to_vec();
    keys.sort_unstable();
    assert_eq!(keys, [1, 2, 3]);
    assert!(locks.try_acquire(2).is_none() && locks.try_acquire(3).is_none());
    drop(guard);
    assert_eq!(locks.locked_count(), 0);
}

/// Two requests over keys of equal hash, listed in opposite orders, never
/// deadlock: the manager cannot order the keys, so it takes them in one
/// step. Both free, the first request gets both at once and the second
/// queues on both at once; with one key held, the first takes the other
/// and queues on the held one in the same step, so the second can take
/// neither.
#[test]
fn keys_of_equal_hash_are_taken_in_one_step() {
    for shards in [1, 64] {
        let locks = LockManager::with_shards_and_hasher(shards, CollideBelow100::default());
        assert!(taken_together(&locks, &1, &2), "1 and 2 share a hash");
        assert!(
            !taken_together(&locks, &1, &500),
            "500 has a hash of its own"
        );

        let tasks = [Task::new(), Task::new()];
        let mut ab = locks.acquire_many([1, 2]);
        let mut ba = locks.acquire_many([2, 1]);
        let Poll::Ready(guard) = tasks[0].poll(&mut ab) else {
            panic!("both free: taken at once");
        };
        assert!(tasks[1].poll(&mut ba).is_pending());
        assert_eq!(
            (locks.queue_len(&1), locks.queue_len(&2)),
            (2, 2),
            "queued on both"
        );
        drop(guard);
        assert!(tasks[1].wakes() >= 1);
        assert_eq!(ready(tasks[1].poll(&mut ba)).keys().len(), 2);
        assert_eq!(locks.locked_count(), 0);

        for held in [1, 2] {
            let tasks = [Task::new(), Task::new()];
            let holder = locks.try_acquire(held).unwrap();
            let other = 3 - held;
            let mut ab = locks.acquire_many([1, 2]);
            let mut ba = locks.acquire_many([2, 1]);
            assert!(tasks[0].poll(&mut ab).is_pending());
            assert!(
                locks.is_locked(&other),
                "{other} taken with the wait on {held}"
            );
            assert!(tasks[1].poll(&mut ba).is_pending());
            assert_eq!(locks.queue_len(&held), 3, "both wait on {held}");
            assert_eq!(
                locks.queue_len(&other),
                2,
                "the second waits on {other} too"
            );
            drop(holder);
            assert_eq!(wakes(&tasks), [1, 0]);
            let guard = ready(tasks[0].poll(&mut ab));
            assert!(tasks[1].poll(&mut ba).is_pending());
            drop(guard);
            assert_eq!(ready(tasks[1].poll(&mut ba)).keys().len(), 2);
            assert_eq!(locks.locked_count(), 0);
        }

        // A run of equal hashes among keys of their own: the run is one
        // step in the order, before or after 500.
        let (first, _) = take_order(&locks, 1, 500);
        let holder = locks.try_acquire(2).unwrap();
        let task = Task::new();
        let mut mixed = locks.acquire_many([500, 2, 1]);
        assert!(task.poll(&mut mixed).is_pending());
        assert!(
            locks.is_locked(&1),
            "1 is taken in the step that waits on 2"
        );
        assert_eq!(
            locks.is_locked(&500),
            first == 500,
            "500 taken only if first"
        );
        assert_eq!(locks.queue_len(&2), 2);
        drop(holder);
        assert_eq!(ready(task.poll(&mut mixed)).keys().len(), 3);
        assert_eq!(locks.locked_count(), 0);
    }
}

/// Threads hammering random subsets of colliding keys (and two of their
/// own), in random order: they never deadlock and never share a key.
#[test]
fn threads_over_keys_of_equal_hash_never_deadlock() {
    const THREADS: u64 = 4;
    const OPS: usize = 300;
    let pool = [1_u32, 2, 3, 500, 600];
    let locks = Arc::new(LockManager::with_shards_and_hasher(
        4,
        CollideBelow100::default(),
    ));
    let in_use: Arc<[AtomicBool; 5]> = Arc::new(Default::default());
    within(
        Duration::from_secs(60),
        "threads over colliding keys",
        move || {
            std::thread::scope(|scope| {
                for t in 0..THREADS {
                    let (locks, in_use) = (&locks, &in_use);
                    scope.spawn(move || {
                        let mut rng = Rng::new(0xC011_1DE0 + t);
                        for _ in 0..OPS {
                            let mut keys: Vec<u32> =
                                pool.into_iter().filter(|_| rng.chance(50)).collect();
                            if keys.is_empty() {
                                keys.push(pool[rng.below(5) as usize]);
                            }
                            for i in (1..keys.len()).rev() {
                                keys.swap(i, rng.below(i as u64 + 1) as usize);
                            }
                            let guard = locks.acquire_many(keys).wait();
                            let slots: Vec<usize> = guard
                                .keys()
                                .iter()
                                .map(|key| pool.iter().position(|k| k == key).unwrap())
                                .collect();
                            for &slot in &slots {
                                assert!(!in_use[slot].swap(true, Ordering::SeqCst), "shared");
                            }
                            std::thread::yield_now();
                            for &slot in &slots {
                                in_use[slot].store(false, Ordering::SeqCst);
                            }
                        }
                    });
                }
            });
            assert_eq!(locks.locked_count(), 0);
        },
    );
}
