//! `acquire_bounded`: refuses at once past a number of waiters, and
//! otherwise takes its place in the same FIFO queue as everyone else.
#![cfg(not(loom))]

mod common;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use common::{Rt, Task};
use lock_manager::{Busy, LockManager};

#[test]
fn the_caller_past_the_bound_is_refused_and_changes_nothing() {
    let locks = LockManager::new();
    let _holder = locks.try_acquire("k").unwrap();
    let first = locks.acquire_bounded("k", 2).expect("no waiters yet");
    let second = locks.acquire_bounded("k", 2).expect("one waiter");
    let before = format!("{locks:?}");

    let refused = locks.acquire_bounded("k", 2).unwrap_err();
    assert_eq!(refused, Busy::clone(&refused));
    assert_eq!(refused.waiters(), 2);
    assert_eq!(format!("{locks:?}"), before);
    assert_eq!(locks.queue_len("k"), 3);
    // A looser bound admits the next caller.
    assert!(locks.acquire_bounded("k", 3).is_ok());
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
    let mut bounded = locks.acquire_bounded(1, 8).unwrap();
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
    let mut acquire = locks.acquire_bounded("k", 0).expect("free");
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
    drop(locks.acquire_bounded("a", 0).unwrap());
    assert!(!locks.is_locked("a"));

    // Queued, never polled.
    let holder = locks.try_acquire("b").unwrap();
    drop(locks.acquire_bounded("b", 1).unwrap());
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
    let guard = futures::executor::block_on(locks.acquire_bounded(3, 0).unwrap());
    assert_eq!(locks.acquire_bounded(3, 0).unwrap_err().waiters(), 0);
    drop(guard);
    assert!(locks.acquire_bounded(3, 0).is_ok());
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
        match locks.acquire_owned_bounded("k", 4) {
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
