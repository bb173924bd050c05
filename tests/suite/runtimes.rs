//! The lock's semantics on real runtimes, with spawned tasks on worker
//! threads and each runtime's own timers: every test runs on tokio
//! (multi-thread), async-std, smol and `futures::executor`.
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::Rt;
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

/// Tasks locking overlapping sets of keys, listed in opposite and shuffled
/// orders, alongside single-key callers: all finish (no deadlock), and no
/// key ever has two holders.
async fn overlapping_multi_key_requests_in_any_order_all_complete(rt: Rt) {
    const KEYS: usize = 6;
    let locks = Arc::new(LockManager::new());
    let holders: Arc<[AtomicUsize; KEYS]> = Arc::default();
    let tasks: Vec<_> = (0..240)
        .map(|i| {
            let (locks, holders) = (locks.clone(), holders.clone());
            rt.spawn(async move {
                let (a, b, c) = (i % KEYS, (i + 1) % KEYS, (i + 3) % KEYS);
                let keys = match i % 4 {
                    0 => vec![a, b],
                    1 => vec![b, a],
                    2 => vec![c, a, b, a],
                    _ => vec![a],
                };
                let (mut held, guard): (_, Box<dyn Send>) = if keys.len() == 1 {
                    let guard = locks.acquire_owned(a).await;
                    (vec![*guard.key()], Box::new(guard))
                } else {
                    let guard = locks.acquire_many_owned(keys.clone()).await;
                    (guard.keys().to_vec(), Box::new(guard))
                };
                held.sort_unstable();
                let mut wanted = keys;
                wanted.sort_unstable();
                wanted.dedup();
                assert_eq!(held, wanted);
                for &key in &held {
                    assert_eq!(holders[key].fetch_add(1, Ordering::SeqCst), 0, "key {key}");
                }
                rt.yield_now().await;
                for &key in &held {
                    holders[key].fetch_sub(1, Ordering::SeqCst);
                }
                drop(guard);
            })
        })
        .collect();
    let all = rt.timeout(PATIENCE, futures::future::join_all(tasks));
    assert!(all.await.is_some(), "deadlock: {:?}", locks);
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

/// Tasks on both worker threads lock the same two keys over and over, half
/// listing them as `[0, 1]` and half as `[1, 0]`, so that requests in
/// opposite orders are often placed at the same moment: were a request
/// placed key by key, two of them would soon hold one key each and wait
/// for the other's.
async fn opposite_orders_on_two_hot_keys_never_deadlock(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let inside = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (locks, inside) = (locks.clone(), inside.clone());
            rt.spawn(async move {
                let keys = if i % 2 == 0 { [0, 1] } else { [1, 0] };
                for round in 0..300 {
                    let guard = locks.acquire_many_owned(keys).await;
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    if round % 4 == 0 {
                        rt.yield_now().await;
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(guard);
                }
            })
        })
        .collect();
    let all = rt.timeout(PATIENCE, futures::future::join_all(tasks));
    assert!(all.await.is_some(), "deadlock: {:?}", locks);
    assert_eq!(locks.locked_count(), 0);
}

fn load_both(counters: &[AtomicUsize; 2]) -> [usize; 2] {
    [0, 1].map(|i| counters[i].load(Ordering::SeqCst))
}

/// Read-modify-write on two counters under `with_locks`, in both key
/// orders, interleaved with single-key writers of one of them: no update
/// is lost on either.
async fn with_locks_serializes_read_modify_write_on_two_counters(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let counters: Arc<[AtomicUsize; 2]> = Arc::default();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (locks, counters) = (locks.clone(), counters.clone());
            rt.spawn(async move {
                let bump =
                    |key: usize, read: usize| counters[key].store(read + 1, Ordering::SeqCst);
                match i % 3 {
                    0 | 1 => {
                        let keys = if i % 3 == 0 { ["x", "y"] } else { ["y", "x"] };
                        locks
                            .with_locks(keys, || async {
                                let read = load_both(&counters);
                                rt.yield_now().await;
                                bump(0, read[0]);
                                bump(1, read[1]);
                            })
                            .await;
                    }
                    _ => {
                        locks
                            .with_lock("x", || async {
                                let read = counters[0].load(Ordering::SeqCst);
                                rt.yield_now().await;
                                bump(0, read);
                            })
                            .await;
                    }
                }
            })
        })
        .collect();
    let all = rt.timeout(PATIENCE, futures::future::join_all(tasks));
    assert!(all.await.is_some());
    let counts = load_both(&counters);
    assert_eq!(counts, [300, 200]);
    assert_eq!(locks.locked_count(), 0);
}

/// The runtime's own timeout cancels a multi-key acquire that holds some
/// of its keys and waits for another: it gives back what it held and
/// leaves the queue, and a waiter queued behind it is served.
async fn a_timed_out_multi_key_acquire_gives_back_every_key(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let holder = locks.acquire(2).await;
    let behind = {
        let locks = locks.clone();
        rt.spawn(async move {
            rt.sleep(Duration::from_millis(5)).await; // after the request
            *locks.acquire_owned(1).await.key()
        })
    };
    let timed_out = rt
        .timeout(Duration::from_millis(40), locks.acquire_many([1, 2, 3]))
        .await;
    assert!(timed_out.is_none());
    assert_eq!(rt.timeout(PATIENCE, behind).await, Some(1));
    assert!(!locks.is_locked(&1));
    assert!(!locks.is_locked(&3));
    assert_eq!(locks.queue_len(&2), 1, "the request left the queue of 2");

    drop(holder);
    let again = rt.timeout(PATIENCE, locks.acquire_many([3, 2, 1])).await;
    assert_eq!(again.map(|guard| guard.keys().len()), Some(3));
    assert_eq!(locks.locked_count(), 0);
}

/// A multi-key request first polled by one task and then awaited by
/// another is woken there, and its owned guard is released from a third.
async fn a_multi_key_request_moved_to_another_task_is_woken_there(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let holder = locks.acquire_owned(1).await;
    let mut request = locks.acquire_many_owned([2, 1]);
    assert!(futures::poll!(&mut request).is_pending()); // registers this task

    let waiter = rt.spawn(request);
    rt.sleep(Duration::from_millis(10)).await; // let it poll with its waker
    drop(holder);
    let guard = rt
        .timeout(PATIENCE, waiter)
        .await
        .expect("woken in its task");
    assert_eq!(guard.keys().len(), 2);
    rt.spawn(async move { drop(guard) }).await;
    assert_eq!(locks.locked_count(), 0);
}

/// What two bodies logged, in order: each its start and its end.
type Log = Arc<Mutex<Vec<(&'static str, &'static str)>>>;

/// A `with_lock` body that logs its start, yields to the scheduler (so that
/// another task could run in between), and logs its end.
fn logged(
    rt: Rt,
    log: &Log,
    name: &'static str,
) -> impl FnOnce() -> futures::future::BoxFuture<'static, ()> + Send + 'static {
    let log = Arc::clone(log);
    move || {
        async move {
            log.lock().unwrap().push((name, "start"));
            rt.yield_now().await;
            rt.yield_now().await;
            log.lock().unwrap().push((name, "end"));
        }
        .boxed()
    }
}

/// Awaits `p1` and `p2`, spawned in that order, and checks that p1's body
/// ended before p2's started.
async fn assert_called_order(
    rt: Rt,
    log: &Log,
    p1: impl Future<Output = ()>,
    p2: impl Future<Output = ()>,
    what: &str,
) {
    let both = rt.timeout(PATIENCE, futures::future::join(p1, p2)).await;
    assert!(both.is_some(), "{what}: a body never ran");
    let expected = [
        ("p1", "start"),
        ("p1", "end"),
        ("p2", "start"),
        ("p2", "end"),
    ];
    assert_eq!(*log.lock().unwrap(), expected, "{what}");
}

/// The original ticket's test, ported as a user would: `p1 = with_lock(k,
/// ...)` and `p2 = with_lock(k, ...)`, each spawned at once, from inside a
/// task (as in a `#[tokio::test]` or a request handler, where tokio runs
/// the newest task first): p1's body ends before p2's starts, every round,
/// for the manager's `with_lock` and `with_locks` and the free `with_lock`.
async fn spawned_with_lock_bodies_run_in_call_order(rt: Rt) {
    const ROUNDS: usize = 200;
    let locks: &'static LockManager<u32> = Box::leak(Box::new(LockManager::new()));
    // The global manager is shared with every other test: keys of its own.
    let key = format!("runtimes/spawned_with_lock_bodies_run_in_call_order/{rt:?}");
    let inside = rt.spawn(async move {
        for round in 0..ROUNDS {
            let log = Log::default();
            let p1 = rt.spawn(locks.with_lock(1, logged(rt, &log, "p1")));
            let p2 = rt.spawn(locks.with_lock(1, logged(rt, &log, "p2")));
            let what = format!("with_lock, round {round}");
            assert_called_order(rt, &log, p1, p2, &what).await;

            let log = Log::default();
            let p1 = rt.spawn(locks.with_locks([1, 2], logged(rt, &log, "p1")));
            let p2 = rt.spawn(locks.with_locks([3, 2], logged(rt, &log, "p2")));
            let what = format!("with_locks, round {round}");
            assert_called_order(rt, &log, p1, p2, &what).await;

            let log = Log::default();
            let p1 = rt.spawn(lock_manager::with_lock(key.clone(), logged(rt, &log, "p1")));
            let p2 = rt.spawn(lock_manager::with_lock(key.clone(), logged(rt, &log, "p2")));
            let what = format!("the free with_lock, round {round}");
            assert_called_order(rt, &log, p1, p2, &what).await;
        }
        assert_eq!(locks.locked_count(), 0);
        assert!(!lock_manager::is_locked(&key));
    });
    inside.await;
}

/// The same as a `#[tokio::test]` with the free `with_lock`, spawned from a
/// request handler's task. (tokio runs the newest task first on the
/// multi-thread scheduler only: there, futures that arrived at their first
/// poll had p2 first in about half the rounds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_with_lock_spawned_from_a_handler_runs_in_call_order_on_tokio() {
    let key = "runtimes/the_free_with_lock_spawned_from_a_handler";
    let handler = tokio::spawn(async move {
        for round in 0..200 {
            let log = Log::default();
            let p1 = tokio::spawn(lock_manager::with_lock(key, logged(Rt::Tokio, &log, "p1")));
            let p2 = tokio::spawn(lock_manager::with_lock(key, logged(Rt::Tokio, &log, "p2")));
            let (p1, p2) = (p1.map(Result::unwrap), p2.map(Result::unwrap));
            let what = format!("round {round}");
            assert_called_order(Rt::Tokio, &log, p1, p2, &what).await;
        }
    });
    handler.await.unwrap();
    assert!(!lock_manager::is_locked(key));
}

on_every_runtime!(
    spawned_with_lock_bodies_run_in_call_order,
    opposite_orders_on_two_hot_keys_never_deadlock,
    overlapping_multi_key_requests_in_any_order_all_complete,
    with_locks_serializes_read_modify_write_on_two_counters,
    a_timed_out_multi_key_acquire_gives_back_every_key,
    a_multi_key_request_moved_to_another_task_is_woken_there,
    fifo_order_holds_across_tasks,
    timed_out_acquire_leaves_the_queue,
    a_future_moved_to_another_task_is_woken_there,
    with_lock_releases_after_a_panic,
    with_lock_dropped_midway_by_a_timeout_releases,
    no_update_is_lost,
);
