//! Multi-key locking (`acquire_many`, `with_locks`), polled by hand with
//! counting wakers: atomic placement, FIFO shared with single-key callers,
//! freedom from deadlock, cancellation at every stage, duplicates and the
//! empty set; and single-key guards converted into multi-key ones.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;

use crate::common::Task;
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

#[test]
fn opposite_orders_do_not_deadlock() {
    for locks in managers() {
        let holder = locks.try_acquire(1).unwrap();
        let (t1, t2) = (Task::new(), Task::new());
        let mut ab = locks.acquire_many([1, 2]);
        let mut ba = locks.acquire_many([2, 1]);
        assert!(t1.poll(&mut ab).is_pending());
        assert!(t2.poll(&mut ba).is_pending());
        // `ab` arrived first: it holds 2 already and is first in line for 1.
        assert_eq!(locks.queue_len(&1), 3);
        assert_eq!(locks.queue_len(&2), 2);

        drop(holder);
        assert_eq!(t1.wakes(), 1);
        let Poll::Ready(guard) = t1.poll(&mut ab) else {
            panic!("ab holds both keys and must be ready");
        };
        assert!(t2.poll(&mut ba).is_pending());
        drop(guard);
        assert_eq!(t2.wakes(), 1);
        assert!(t2.poll(&mut ba).is_ready());
        assert_eq!(locks.locked_count(), 0);
    }
}

#[test]
fn a_single_key_caller_never_overtakes_an_earlier_multi_key_request() {
    for locks in managers() {
        let two = locks.try_acquire(2).unwrap();
        let (multi_task, single_task) = (Task::new(), Task::new());
        let mut multi = locks.acquire_many([1, 2]);
        assert!(multi_task.poll(&mut multi).is_pending());
        // The request holds 1 while it waits for 2: a later caller on 1
        // queues behind it although 1 is not in use.
        let mut single = locks.acquire(1);
        assert!(single_task.poll(&mut single).is_pending());
        assert!(locks.try_acquire(1).is_none());

        drop(two);
        assert!(multi_task.poll(&mut multi).is_ready());
        assert!(single_task.poll(&mut single).is_ready());
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
        let two = locks.try_acquire(2).unwrap();
        let task = Task::new();
        let mut both = locks.acquire_many([1, 2]);
        assert!(task.poll(&mut both).is_pending());
        let (w1, w2) = (Task::new(), Task::new());
        let mut next1 = locks.acquire(1);
        let mut next2 = locks.acquire(2);
        assert!(w1.poll(&mut next1).is_pending());
        assert!(w2.poll(&mut next2).is_pending());

        drop(both); // held 1, queued on 2
        assert_eq!(w1.wakes(), 1, "1 passes to its next waiter");
        assert!(w1.poll(&mut next1).is_ready());
        assert_eq!(locks.queue_len(&2), 2, "the request left the queue of 2");
        drop(two);
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
    let holder = locks.try_acquire(1).unwrap();
    let task = Task::new();
    let mut both = locks.acquire_many([1, 2]);
    for _ in 0..3 {
        assert!(task.poll(&mut both).is_pending());
    }
    assert_eq!(locks.queue_len(&1), 2);
    assert_eq!(locks.queue_len(&2), 1);
    drop(holder);
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
fn a_refused_try_many_changes_nothing() {
    for locks in managers() {
        let _held = locks.try_acquire(7).unwrap();
        let stats = locks.stats();
        let debug = format!("{locks:?}");
        // The held key sorts anywhere among the others: whatever comes
        // before it in shard order must not stay taken.
        assert!(locks.try_acquire_many([1, 2, 3, 7, 8, 9]).is_none());
        assert_eq!(locks.stats(), stats, "a refusal counted something");
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
