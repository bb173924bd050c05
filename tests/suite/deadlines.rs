//! Blocking acquires with a deadline, and the `with_lock` forms for threads
//! (`with_lock_blocking`) and for spawned tasks (`with_lock_owned`).
//!
//! Timed tests assert outcomes, never durations: a deadline is either far
//! shorter than the wait it cuts (the key stays held throughout) or far
//! longer than the wait it allows.
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use futures::FutureExt;

use crate::common::soak::Holders;
use crate::common::{wait_until, within, Rng, Rt, Task};
use lock_manager::{LockManager, TimedOut};

/// Long enough for any wait the test expects to end.
const AMPLE: Duration = Duration::from_secs(10);
/// A deadline the test expects to pass.
const SHORT: Duration = Duration::from_millis(20);
/// A deadline the test expects to pass, but only after it has watched the
/// waiter queue (polling every millisecond).
const WATCHED: Duration = Duration::from_millis(500);

#[test]
fn a_thread_that_times_out_leaves_the_queue_in_order() {
    let locks = Arc::new(LockManager::new());
    let holder = locks.try_acquire("k").unwrap();
    let first = Task::new();
    let mut first_future = locks.acquire("k");
    assert!(first.poll(&mut first_future).is_pending());

    // Queued between two futures, the thread gives up while the key is held.
    let (barrier, gave_up) = (Arc::new(Barrier::new(2)), {
        let locks = Arc::clone(&locks);
        move |barrier: Arc<Barrier>| {
            thread::spawn(move || {
                barrier.wait();
                locks.acquire("k").wait_timeout(WATCHED).map(drop)
            })
        }
    });
    let thread = gave_up(Arc::clone(&barrier));
    barrier.wait();
    wait_until("the thread queued", || locks.queue_len("k") == 3);
    let last = Task::new();
    let mut last_future = locks.acquire("k");
    assert!(last.poll(&mut last_future).is_pending());
    assert_eq!(thread.join().unwrap(), Err(TimedOut));
    assert_eq!(locks.queue_len("k"), 3, "holder and two futures");

    drop(holder);
    assert_eq!(first.wakes(), 1, "the first future is next");
    assert_eq!(last.wakes(), 0);
    let guard = match first.poll(&mut first_future) {
        std::task::Poll::Ready(guard) => guard,
        std::task::Poll::Pending => panic!("woken but not granted"),
    };
    drop(guard);
    assert_eq!(last.wakes(), 1, "then the last");
    assert!(last.poll(&mut last_future).is_ready());
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_thread_served_before_its_deadline_gets_the_guard() {
    let locks = Arc::new(LockManager::new());
    let holder = locks.acquire_owned(1_u64).wait();
    let waiter = {
        let locks = Arc::clone(&locks);
        thread::spawn(move || {
            let guard = locks.acquire_owned(1).wait_timeout(AMPLE)?;
            Ok::<_, TimedOut>(*guard.key())
        })
    };
    wait_until("the thread queued", || locks.queue_len(&1) == 2);
    drop(holder);
    assert_eq!(waiter.join().unwrap(), Ok(1));
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_zero_timeout_takes_a_free_key_and_refuses_a_held_one() {
    let locks = LockManager::new();
    let guard = locks.acquire(5).wait_timeout(Duration::ZERO).unwrap();
    let refused = locks.acquire(5).wait_timeout(Duration::ZERO).map(drop);
    assert_eq!(refused, Err(TimedOut));
    let message = refused.unwrap_err().to_string();
    assert_eq!(message, "timed out waiting for a lock");
    assert_eq!(locks.queue_len(&5), 1, "the refused caller left no waiter");
    drop(guard);
    let many = locks
        .acquire_many([6, 5]).wait_timeout(Duration::ZERO)
        .unwrap();
    assert_eq!(many.keys().len(), 2);
    drop(many);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_timeout_too_large_for_a_deadline_waits_until_served() {
    let locks = Arc::new(LockManager::new());
    let holder = locks.acquire("k").wait();
    let waiter = {
        let locks = Arc::clone(&locks);
        thread::spawn(move || locks.acquire("k").wait_timeout(Duration::MAX).map(drop))
    };
    wait_until("the thread queued", || locks.queue_len("k") == 2);
    // Far past SHORT: the thread is still waiting, not timed out.
    thread::sleep(SHORT * 3);
    assert_eq!(locks.queue_len("k"), 2);
    drop(holder);
    assert_eq!(waiter.join().unwrap(), Ok(()));
}

#[test]
fn a_many_key_timeout_gives_back_the_keys_it_held() {
    let locks = Arc::new(LockManager::new());
    let b = locks.acquire(2).wait();
    // A waiter for key 1 queues behind the thread, which holds 1 at once.
    let (barrier, thread) = (Arc::new(Barrier::new(2)), {
        let locks = Arc::clone(&locks);
        move |barrier: Arc<Barrier>| {
            thread::spawn(move || {
                let result = locks.acquire_many_owned([1, 2]).wait_timeout(WATCHED);
                barrier.wait();
                result.map(drop)
            })
        }
    });
    let thread = thread(Arc::clone(&barrier));
    wait_until("the thread took 1 and queued on 2", || {
        locks.is_locked(&1) && locks.queue_len(&2) == 2
    });
    let task = Task::new();
    let mut behind = locks.acquire(1);
    assert!(task.poll(&mut behind).is_pending());

    barrier.wait();
    assert_eq!(thread.join().unwrap(), Err(TimedOut));
    assert_eq!(task.wakes(), 1, "key 1 was handed to the next waiter");
    assert!(task.poll(&mut behind).is_ready());
    assert_eq!(locks.queue_len(&2), 1, "the thread left key 2's queue");
    drop(b);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn with_lock_blocking_runs_the_body_under_the_lock_and_releases_it() {
    let locks = LockManager::new();
    let inside = locks.with_lock_blocking("k", || locks.is_locked("k"));
    assert!(inside);
    assert!(!locks.is_locked("k"));

    let failed: Result<(), &str> = locks.with_lock_blocking("k", || Err("io"));
    assert_eq!(failed, Err("io"));
    let panicked = panic::catch_unwind(AssertUnwindSafe(|| {
        locks.with_lock_blocking("k", || panic!("body panicked"))
    }));
    assert!(panicked.is_err());
    assert!(!locks.is_locked("k"), "released while unwinding");

    let both = locks.with_locks_blocking(["b", "a", "b"], || {
        (
            locks.is_locked("a"),
            locks.is_locked("b"),
            locks.locked_count(),
        )
    });
    assert_eq!(both, (true, true, 2));
    let panicked = panic::catch_unwind(AssertUnwindSafe(|| {
        locks.with_locks_blocking(["a", "b"], || panic!("body panicked"))
    }));
    assert!(panicked.is_err());
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn with_lock_blocking_serializes_threads() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    let locks = LockManager::new();
    let counter = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    locks.with_lock_blocking(0, || {
                        let read = counter.load(Ordering::SeqCst);
                        thread::yield_now();
                        counter.store(read + 1, Ordering::SeqCst);
                    });
                }
            });
        }
    });
    assert_eq!(counter.into_inner(), THREADS * ROUNDS);
}

/// The owned forms are `'static` and `Send`: they spawn as tasks of their
/// own, and release however the body ends.
async fn owned_with_lock_spawns(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    let log = Arc::new(Mutex::new(Vec::new()));
    let holder = locks.acquire_owned(1_u32).await;

    // A spawned task queues when the runtime first polls it: each is
    // spawned once the one before has queued, so that they arrive in order.
    let queued = |n: usize| {
        let locks = Arc::clone(&locks);
        async move {
            while locks.queue_len(&1) < n {
                rt.sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let single = rt.spawn(locks.with_lock_owned(1, {
        let (locks, log) = (Arc::clone(&locks), Arc::clone(&log));
        move || async move {
            log.lock().unwrap().push("single");
            locks.is_locked(&1)
        }
    }));
    queued(2).await;
    let many = rt.spawn(locks.with_locks_owned([2, 1], {
        let (locks, log) = (Arc::clone(&locks), Arc::clone(&log));
        move || async move {
            log.lock().unwrap().push("many");
            locks.is_locked(&1) && locks.is_locked(&2)
        }
    }));
    queued(3).await;
    assert!(log.lock().unwrap().is_empty(), "both wait for the holder");
    drop(holder);
    assert!(single.await);
    assert!(many.await);
    assert_eq!(*log.lock().unwrap(), ["single", "many"], "FIFO on key 1");

    let panicked = rt.spawn(async move {
        let body = locks.with_lock_owned(1, || async { panic!("body panicked") });
        let caught = AssertUnwindSafe(body).catch_unwind().await.is_err();
        caught && locks.locked_count() == 0
    });
    assert!(panicked.await, "released while unwinding");
}

on_every_runtime!(owned_with_lock_spawns);

/// Adds one to `counts[key]` by a read, a pause and a write: a second
/// holder would lose an update.
fn add_one(counts: &[AtomicUsize], key: u32) {
    let read = counts[key as usize].load(Ordering::SeqCst);
    thread::yield_now();
    counts[key as usize].store(read + 1, Ordering::SeqCst);
}

/// Threads with short deadlines give up at every moment (queued, just
/// handed the key, not yet woken) while async tasks queue on the same keys:
/// never two holders, no lost update, every wait ends one way or the other,
/// and nothing is left held or queued.
async fn threads_time_out_while_tasks_queue(rt: Rt) {
    const KEYS: u32 = 3;
    const TASKS: usize = 8;
    const THREADS: u64 = 4;
    const ROUNDS: usize = 300;
    let locks = Arc::new(LockManager::new());
    let holders = Arc::new(Holders::new("key", KEYS as usize));
    let counts: Arc<[AtomicUsize; KEYS as usize]> = Arc::default();

    let threads: Vec<_> = (0..THREADS)
        .map(|seed| {
            let (locks, holders, counts) = (locks.clone(), holders.clone(), counts.clone());
            thread::spawn(move || {
                let mut rng = Rng::new(seed);
                let (mut updates, mut timeouts) = (0, 0);
                for _ in 0..ROUNDS {
                    let key = rng.below(KEYS.into()) as u32;
                    let timeout = Duration::from_micros(rng.below(300));
                    let keys = if rng.chance(30) {
                        vec![key, (key + 1) % KEYS]
                    } else {
                        vec![key]
                    };
                    match locks.acquire_many(keys.iter().copied()).wait_timeout(timeout) {
                        Ok(_guard) => {
                            let inside = holders.enter(&keys);
                            for &key in inside.keys() {
                                add_one(&*counts, key);
                                updates += 1;
                            }
                        }
                        Err(TimedOut) => timeouts += 1,
                    }
                    if let Ok(_guard) = locks.acquire(key).wait_timeout(timeout) {
                        let _inside = holders.enter(&[key]);
                        add_one(&*counts, key);
                        updates += 1;
                    } else {
                        timeouts += 1;
                    }
                }
                (updates, timeouts)
            })
        })
        .collect();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (locks, holders, counts) = (locks.clone(), holders.clone(), counts.clone());
            rt.spawn(async move {
                for round in 0..ROUNDS {
                    let key = ((t + round) % KEYS as usize) as u32;
                    let _guard = locks.acquire(key).await;
                    let _inside = holders.enter(&[key]);
                    let read = counts[key as usize].load(Ordering::SeqCst);
                    rt.yield_now().await;
                    counts[key as usize].store(read + 1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    let all = rt.timeout(Duration::from_secs(60), futures::future::join_all(tasks));
    assert!(all.await.is_some(), "a task never finished");
    let (updates, timeouts) = within(Duration::from_secs(60), "a timing-out thread", move || {
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), |(u, t), (du, dt)| (u + du, t + dt))
    });
    let total: usize = counts.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    assert_eq!(total, TASKS * ROUNDS + updates, "an update was lost");
    assert!(
        timeouts > 0,
        "no thread ever timed out: the run tested nothing"
    );
    holders.assert_quiet(&locks, 0);
}

on_every_runtime!(threads_time_out_while_tasks_queue);
