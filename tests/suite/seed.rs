//! The original design's acceptance tests, translated: basic acquire and
//! release, `with_lock`, serialization of concurrent callers, and queue
//! management. Each runs on every runtime.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::Rt;
use futures::FutureExt;
use lock_manager::LockManager;

async fn basic_acquire_release(_rt: Rt) {
    let locks = LockManager::new();
    assert!(!locks.is_locked("story"));

    let release = locks.acquire("story").await;
    assert!(locks.is_locked("story"));

    drop(release);
    assert!(!locks.is_locked("story"));
}

async fn with_lock_holds_the_lock_and_returns_the_output(_rt: Rt) {
    let locks = LockManager::new();
    let seen_locked = locks
        .with_lock("story", || async { locks.is_locked("story") })
        .await;
    assert!(seen_locked, "the body runs with the lock held");
    assert!(!locks.is_locked("story"), "released after the body");
}

async fn with_lock_releases_when_the_body_fails(_rt: Rt) {
    let locks = LockManager::new();
    let result: Result<u32, String> = locks
        .with_lock("story", || async { Err("disk full".to_string()) })
        .await;
    assert_eq!(result, Err("disk full".to_string()));
    assert!(!locks.is_locked("story"));

    let result: Result<u32, String> = locks.with_lock("story", || async { Ok(7) }).await;
    assert_eq!(result, Ok(7));
}

/// The seed's test pattern: the first caller sleeps while holding the lock,
/// and the second must not start before it finishes.
async fn concurrent_with_lock_calls_run_in_order(rt: Rt) {
    let locks = LockManager::new();
    let order = Mutex::new(Vec::new());

    let first = locks.with_lock("shared-key", || async {
        order.lock().unwrap().push(1);
        rt.sleep(Duration::from_millis(50)).await;
        order.lock().unwrap().push(2);
    });
    let second = locks.with_lock("shared-key", || async {
        order.lock().unwrap().push(3);
        order.lock().unwrap().push(4);
    });
    futures::join!(first, second);

    assert_eq!(*order.lock().unwrap(), [1, 2, 3, 4]);
    assert_eq!(locks.locked_count(), 0);
}

/// Two bodies on different keys overlap: each waits for the other to start.
async fn different_keys_run_in_parallel(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let (a_started, a_seen) = futures::channel::oneshot::channel::<()>();
    let (b_started, b_seen) = futures::channel::oneshot::channel::<()>();

    let a = rt.spawn({
        let locks = locks.clone();
        async move {
            locks
                .with_lock("a", || async {
                    a_started.send(()).unwrap();
                    b_seen.await.unwrap();
                })
                .await
        }
    });
    let b = rt.spawn({
        let locks = locks.clone();
        async move {
            locks
                .with_lock("b", || async {
                    b_started.send(()).unwrap();
                    a_seen.await.unwrap();
                })
                .await
        }
    });
    let both = rt.timeout(Duration::from_secs(10), futures::future::join(a, b));
    assert!(both.await.is_some(), "keys a and b blocked each other");
    assert_eq!(locks.locked_count(), 0);
}

async fn queue_len_counts_holder_and_waiters(_rt: Rt) {
    let locks = LockManager::new();
    assert_eq!(locks.queue_len("story"), 0);

    let holder = locks.acquire("story").await;
    assert_eq!(locks.queue_len("story"), 1);

    let mut waiters: Vec<_> = (0..3).map(|_| locks.acquire("story")).collect();
    for waiter in &mut waiters {
        assert!(waiter.now_or_never().is_none());
    }
    assert_eq!(locks.queue_len("story"), 4);

    // Release them one by one: each release hands over, shrinking the queue.
    drop(holder);
    for (left, waiter) in (1..=3).rev().zip(waiters) {
        assert_eq!(locks.queue_len("story"), left);
        drop(waiter.await);
    }
    assert_eq!(locks.queue_len("story"), 0);
    assert!(!locks.is_locked("story"));
    assert_eq!(locks.locked_count(), 0, "the empty queue was removed");
}

on_every_runtime!(
    basic_acquire_release,
    with_lock_holds_the_lock_and_returns_the_output,
    with_lock_releases_when_the_body_fails,
    concurrent_with_lock_calls_run_in_order,
    different_keys_run_in_parallel,
    queue_len_counts_holder_and_waiters,
);

/// The seed's singleton: every call of `global()` is the same manager, so
/// that the free `with_lock` excludes callers that never shared a handle.
#[test]
fn the_process_wide_manager_is_one_instance() {
    // Keys of this test's own: other tests may use the global manager.
    let key = "seed::the_process_wide_manager_is_one_instance";
    assert!(std::ptr::eq(lock_manager::global(), lock_manager::global()));

    let held = lock_manager::global().try_acquire(key.to_string()).unwrap();
    let mut waiting = lock_manager::with_lock(key, || async { "ran" }).boxed_local();
    assert!(
        (&mut waiting).now_or_never().is_none(),
        "ran past the holder"
    );
    assert_eq!(lock_manager::global().queue_len(key), 2);
    drop(held);
    assert_eq!(waiting.now_or_never(), Some("ran"));
    assert!(!lock_manager::global().is_locked(key));
}
