//! The lock's semantics on real runtimes, with spawned tasks on worker
//! threads and each runtime's own timers: every test runs on tokio
//! (multi-thread), async-std, smol and `futures::executor`.
#![cfg(not(loom))]

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Rt;
use futures::FutureExt;
use lock_manager::LockManager;

const PATIENCE: Duration = Duration::from_secs(20);

/// Waiters queued in a known order and then spread over worker threads are
/// served in exactly that order.
async fn fifo_order_holds_across_tasks(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let holder = locks.acquire("k").await;
    let order = Arc::new(Mutex::new(Vec::new()));

    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut acquire = locks.acquire_owned("k");
        // First poll here, in order, then hand the future to a worker.
        assert!(futures::poll!(&mut acquire).is_pending());
        let order = order.clone();
        tasks.push(rt.spawn(async move {
            let _guard = acquire.await;
            order.lock().unwrap().push(i);
        }));
    }
    assert_eq!(locks.queue_len("k"), 17);

    drop(holder);
    let all = rt.timeout(PATIENCE, futures::future::join_all(tasks));
    assert!(all.await.is_some(), "a waiter was never served");
    assert_eq!(*order.lock().unwrap(), (0..16).collect::<Vec<_>>());
    assert_eq!(locks.locked_count(), 0);
}

/// The runtime's own timeout cancels a queued acquire cleanly.
async fn timed_out_acquire_leaves_the_queue(rt: Rt) {
    let locks = LockManager::new();
    let holder = locks.acquire(7).await;
    let timed_out = rt
        .timeout(Duration::from_millis(20), locks.acquire(7))
        .await;
    assert!(timed_out.is_none());
    assert_eq!(
        locks.queue_len(&7),
        1,
        "the cancelled waiter left the queue"
    );

    drop(holder);
    assert!(!locks.is_locked(&7));
    let again = rt.timeout(PATIENCE, locks.acquire(7)).await;
    assert!(again.is_some());
}

/// A future first polled by one task and then awaited by another is woken
/// through the second task's waker.
async fn a_future_moved_to_another_task_is_woken_there(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let holder = locks.clone().acquire_owned(1).await;
    let mut acquire = locks.acquire_owned(1);
    assert!(futures::poll!(&mut acquire).is_pending()); // registers this task

    let waiter = rt.spawn(async move { *acquire.await.key() });
    rt.sleep(Duration::from_millis(10)).await; // let it poll with its waker
    drop(holder);
    assert_eq!(rt.timeout(PATIENCE, waiter).await, Some(1));
    assert_eq!(locks.locked_count(), 0);
}

async fn with_lock_releases_after_a_panic(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let body = {
        let locks = locks.clone();
        async move {
            locks
                .with_lock("k", || async {
                    rt.yield_now().await;
                    panic!("body failed")
                })
                .await
        }
    };
    let outcome: Result<(), _> = AssertUnwindSafe(body).catch_unwind().await;
    assert!(outcome.is_err());
    assert!(!locks.is_locked("k"));
    assert!(locks.try_acquire("k").is_some());
}

async fn with_lock_dropped_midway_by_a_timeout_releases(rt: Rt) {
    let locks = LockManager::new();
    let slow = locks.with_lock("k", || rt.sleep(Duration::from_secs(3600)));
    assert!(rt.timeout(Duration::from_millis(20), slow).await.is_none());
    assert!(!locks.is_locked("k"));
    assert_eq!(locks.locked_count(), 0);
}

/// The seed's purpose: read-modify-write from many tasks loses no update.
async fn no_update_is_lost(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let stories: Arc<[AtomicUsize; 3]> = Arc::default();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (locks, stories) = (locks.clone(), stories.clone());
            rt.spawn(async move {
                let story = i % 3;
                locks
                    .with_lock(story, || async {
                        let read = stories[story].load(Ordering::SeqCst);
                        rt.yield_now().await;
                        stories[story].store(read + 1, Ordering::SeqCst);
                    })
                    .await
            })
        })
        .collect();
    let all = rt.timeout(PATIENCE, futures::future::join_all(tasks));
    assert!(all.await.is_some());
    let counts: Vec<_> = stories.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, [100, 100, 100]);
    assert_eq!(locks.locked_count(), 0);
}

on_every_runtime!(
    fifo_order_holds_across_tasks,
    timed_out_acquire_leaves_the_queue,
    a_future_moved_to_another_task_is_woken_there,
    with_lock_releases_after_a_panic,
    with_lock_dropped_midway_by_a_timeout_releases,
    no_update_is_lost,
);
