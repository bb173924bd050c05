//! `wait` on the acquire futures: synchronous threads and async tasks share
//! one FIFO queue per key.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::common::{take_order, wait_until, Rt, Task};
use lock_manager::LockManager;

/// Joins `thread`, failing after 10 s: a parked thread that is never
/// woken fails the test instead of hanging it.
fn join<T>(what: &str, thread: thread::JoinHandle<T>) -> T {
    wait_until(what, || thread.is_finished());
    thread.join().unwrap()
}

#[test]
fn threads_and_futures_are_served_in_arrival_order() {
    let locks = Arc::new(LockManager::new());
    let order = Arc::new(Mutex::new(Vec::new()));
    let holder = locks.try_acquire("k").unwrap();

    let blocking = |name: &'static str| {
        let (locks, order) = (Arc::clone(&locks), Arc::clone(&order));
        thread::spawn(move || {
            let _guard = locks.acquire("k").wait();
            order.lock().unwrap().push(name);
        })
    };

    let first = blocking("first thread");
    wait_until("the first thread queued", || locks.queue_len("k") == 2);
    let task = Task::new();
    let mut future = locks.acquire("k");
    assert!(task.poll(&mut future).is_pending());
    let second = blocking("second thread");
    wait_until("the second thread queued", || locks.queue_len("k") == 4);

    drop(holder);
    join("the first thread finished", first);
    // The future is next: handed the key, it holds it until polled.
    wait_until("the future was woken", || task.wakes() == 1);
    assert_eq!(locks.queue_len("k"), 2);
    let guard = match task.poll(&mut future) {
        std::task::Poll::Ready(guard) => guard,
        std::task::Poll::Pending => panic!("woken but not granted"),
    };
    order.lock().unwrap().push("future");
    drop(guard);
    join("the second thread finished", second);

    assert_eq!(
        *order.lock().unwrap(),
        ["first thread", "future", "second thread"]
    );
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_blocking_acquire_of_a_free_key_returns_at_once() {
    let locks = LockManager::new();
    let guard = locks.acquire(1).wait();
    assert!(locks.is_locked(&1));
    drop(guard);
    // Checked first, so that a key left held fails here instead of
    // blocking the next call for good.
    assert!(!locks.is_locked(&1));
    let locks = Arc::new(locks);
    drop(locks.acquire_owned(1).wait());
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

/// Threads and tasks increment shared counters with a read, a pause and a
/// write under the lock: no update is lost.
async fn threads_and_tasks_interleave_without_lost_updates(rt: Rt) {
    const ROUNDS: usize = 200;
    let locks = Arc::new(LockManager::new());
    let counters: Arc<[AtomicUsize; 2]> = Arc::default();

    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (locks, counters) = (Arc::clone(&locks), Arc::clone(&counters));
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    let key = (t + round) % 2;
                    let _guard = locks.acquire(key).wait();
                    let read = counters[key].load(Ordering::SeqCst);
                    thread::yield_now();
                    counters[key].store(read + 1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (locks, counters) = (Arc::clone(&locks), Arc::clone(&counters));
            rt.spawn(async move {
                for round in 0..ROUNDS {
                    let key = (t + round) % 2;
                    let _guard = locks.acquire(key).await;
                    let read = counters[key].load(Ordering::SeqCst);
                    rt.yield_now().await;
                    counters[key].store(read + 1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    let all = rt.timeout(Duration::from_secs(30), futures::future::join_all(tasks));
    assert!(all.await.is_some(), "a task never finished");
    for thread in threads {
        join("a blocking thread finished", thread);
    }
    let total: usize = counters.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    assert_eq!(total, 8 * ROUNDS);
    assert_eq!(locks.locked_count(), 0);
}

on_every_runtime!(threads_and_tasks_interleave_without_lost_updates);

/// A thread blocked in a multi-key `wait` takes its keys in the manager's
/// order like any request: it holds the first while it waits for the
/// second, and on each key async callers that come later queue behind it.
#[test]
fn blocking_many_requests_queue_with_async_callers() {
    let locks = Arc::new(LockManager::new());
    let (first, second) = take_order(&locks, 1, 2);
    let order = Arc::new(Mutex::new(Vec::new()));
    let holder = locks.try_acquire(second).unwrap();

    let thread = {
        let (locks, order) = (Arc::clone(&locks), Arc::clone(&order));
        thread::spawn(move || {
            let guard = locks.acquire_many([2, 1, 2]).wait();
            order.lock().unwrap().push("thread");
            guard.keys().len()
        })
    };
    wait_until("the thread queued", || locks.queue_len(&second) == 2);
    assert!(
        locks.is_locked(&first),
        "the key before it in order is held at once"
    );
    let tasks = [Task::new(), Task::new()];
    let mut on_first = locks.acquire(first);
    let mut on_second = locks.acquire(second);
    assert!(tasks[0].poll(&mut on_first).is_pending());
    assert!(tasks[1].poll(&mut on_second).is_pending());
    assert_eq!((locks.queue_len(&first), locks.queue_len(&second)), (2, 3));

    drop(holder);
    assert_eq!(join("the thread finished", thread), 2, "duplicates merged");
    // Released by the thread, each key passed to the future behind it.
    wait_until("the futures were woken", || {
        tasks[0].wakes() == 1 && tasks[1].wakes() == 1
    });
    assert!(tasks[0].poll(&mut on_first).is_ready());
    assert!(tasks[1].poll(&mut on_second).is_ready());
    order.lock().unwrap().push("futures");
    assert_eq!(*order.lock().unwrap(), ["thread", "futures"]);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn owned_blocking_many_guards_move_to_other_threads() {
    let locks = Arc::new(LockManager::new());
    let guard = locks.acquire_many_owned(["x", "y"]).wait();
    assert!(locks.try_acquire_many(["y"]).is_none());
    thread::spawn(move || drop(guard)).join().unwrap();
    assert!(locks
        .acquire_many(Vec::<&str>::new())
        .wait()
        .keys()
        .is_empty());
    assert_eq!(locks.locked_count(), 0);
}
