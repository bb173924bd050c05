//! Blocking acquires (`wait`, `wait_timeout`, `wait_deadline`), and the
//! `with_lock` recipes for threads (a guard from `wait` over the body) and
//! for spawned tasks (an owned future placed with `enqueue`).
//!
//! Timed tests assert outcomes, never durations: a deadline is either far
//! shorter than the wait it cuts (the key stays held throughout) or far
//! longer than the wait it allows.
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::common::soak::Holders;
use crate::common::{take_order, wait_until, within, Rng, Rt, Task};
use lock_manager::{Error, LockManager, TimedOut};

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
        .acquire_many([6, 5])
        .wait_timeout(Duration::ZERO)
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
    let (first, second) = take_order(&locks, 1, 2);
    let held = locks.acquire(second).wait();
    // The thread takes `first` at once and waits for `second`; a waiter
    // for `first` queues behind it.
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
    wait_until(
        "the thread took the first key and queued on the second",
        || locks.is_locked(&first) && locks.queue_len(&second) == 2,
    );
    let task = Task::new();
    let mut behind = locks.acquire(first);
    assert!(task.poll(&mut behind).is_pending());
    assert_eq!(locks.queue_len(&first), 2);

    barrier.wait();
    assert_eq!(thread.join().unwrap(), Err(TimedOut));
    assert_eq!(task.wakes(), 1, "{first} was handed to the next waiter");
    assert!(task.poll(&mut behind).is_ready());
    assert_eq!(
        locks.queue_len(&second),
        1,
        "the thread left {second}'s queue"
    );
    drop(held);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_thread_past_its_deadline_leaves_the_queue() {
    let locks = LockManager::new();
    let holder = locks.acquire(1).wait();
    let deadline = Instant::now() + SHORT;
    assert_eq!(
        locks.acquire(1).wait_deadline(deadline).map(drop),
        Err(TimedOut)
    );
    assert_eq!(locks.queue_len(&1), 1, "the thread left the queue");
    // A request holding a free key gives it back when it times out.
    let both = locks.acquire_many([2, 1]).wait_deadline(deadline);
    assert_eq!(both.map(drop), Err(TimedOut));
    assert!(!locks.is_locked(&2));
    assert_eq!(locks.queue_len(&1), 1);
    drop(holder);
    assert_eq!(
        format!("{locks:?}"),
        "LockManager { locked: 0, waiters: 0 }"
    );
}

/// One deadline for several waits in a row, as a thread locking keys one
/// after another needs: each wait has what is left of it.
#[test]
fn one_deadline_serves_a_thread_locking_keys_one_after_another() {
    let locks = Arc::new(LockManager::new());
    let held = locks.acquire_owned(3).wait();
    // Releases key 3 once the thread below waits for it.
    let releaser = {
        let locks = Arc::clone(&locks);
        thread::spawn(move || {
            wait_until("the thread queued on 3", || locks.queue_len(&3) == 2);
            drop(held);
        })
    };
    let deadline = Instant::now() + AMPLE;
    let guards: Vec<_> = [1, 2, 3, 4]
        .map(|key| locks.acquire(key).wait_deadline(deadline))
        .into_iter()
        .collect::<Result<_, TimedOut>>()
        .expect("every key within the deadline");
    releaser.join().unwrap();
    assert_eq!(locks.locked_count(), 4);
    let many = locks.acquire_many([6, 5]).wait_deadline(deadline).unwrap();
    assert_eq!(locks.locked_count(), 6);
    drop((guards, many));
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_deadline_in_the_past_still_takes_a_free_key() {
    let locks = LockManager::new();
    let past = Instant::now();
    thread::sleep(Duration::from_millis(2));
    let one = locks.acquire(1).wait_deadline(past).expect("free");
    let many = locks
        .acquire_many([2, 3])
        .wait_deadline(past)
        .expect("free");
    assert_eq!(locks.locked_count(), 3);
    assert_eq!(
        locks.acquire(1).wait_deadline(past).map(drop),
        Err(TimedOut)
    );
    let refused = locks.acquire_many([4, 3]).wait_deadline(past).map(drop);
    assert_eq!(refused, Err(TimedOut));
    assert!(!locks.is_locked(&4));
    assert_eq!(locks.queue_len(&1), 1);
    assert_eq!(locks.queue_len(&3), 1);
    drop((one, many));
    assert_eq!(locks.locked_count(), 0);
}

/// Bounded, then waits with a time limit: each failure reaches the caller
/// through `?` as one error type.
fn save(locks: &LockManager<u32>, keys: &[u32], bound: usize) -> Result<usize, Error> {
    let guard = if let [key] = keys {
        let waiting = locks.acquire(*key).enqueue_bounded(bound)?;
        waiting.wait_timeout(SHORT)?.into()
    } else {
        let waiting = locks
            .acquire_many(keys.iter().copied())
            .enqueue_bounded(bound)?;
        waiting.wait_timeout(SHORT)?
    };
    Ok(guard.keys().len())
}

#[test]
fn one_error_type_carries_busy_and_timed_out_through_question_marks() {
    let locks = LockManager::new();
    assert_eq!(save(&locks, &[1], 0), Ok(1));
    assert_eq!(save(&locks, &[1, 2], 0), Ok(2));
    let _held = locks.try_acquire(1).unwrap();
    let _waiting = locks.acquire(1).enqueue();

    for keys in [&[1][..], &[2, 1]] {
        let busy = save(&locks, keys, 1).unwrap_err();
        let Error::Busy(inner) = busy else {
            panic!("{keys:?}: refused by the bound, got {busy:?}")
        };
        assert_eq!(inner.waiters(), 1);
        assert_eq!(busy, Error::from(inner));
        assert_eq!(busy.to_string(), inner.to_string());
        assert!(std::error::Error::source(&busy).is_none());

        let timed_out = save(&locks, keys, 2).unwrap_err();
        assert_eq!(timed_out, Error::TimedOut(TimedOut));
        assert_eq!(timed_out, Error::from(TimedOut));
        assert_eq!(timed_out.to_string(), TimedOut.to_string());
        assert!(std::error::Error::source(&timed_out).is_none());
        assert_eq!(
            locks.queue_len(&1),
            2,
            "{keys:?}: the caller left the queue"
        );
        assert!(!locks.is_locked(&2));
    }
    // And on into the usual boxed error.
    let boxed: Box<dyn std::error::Error + Send + Sync> = save(&locks, &[1], 0).unwrap_err().into();
    assert_eq!(
        boxed.to_string(),
        "the key is held and has 1 waiters, the most allowed"
    );
}

/// A thread's `with_lock`: a guard from `wait` held over the body.
#[test]
fn a_body_under_a_waited_guard_runs_locked_and_releases_however_it_ends() {
    let locks = LockManager::new();
    let inside = {
        let _guard = locks.acquire("k").wait();
        locks.is_locked("k")
    };
    assert!(inside);
    assert!(!locks.is_locked("k"));

    let failed: Result<(), &str> = {
        let _guard = locks.acquire("k").wait();
        Err("io")
    };
    assert_eq!(failed, Err("io"));
    assert!(!locks.is_locked("k"));
    let panicked = panic::catch_unwind(AssertUnwindSafe(|| {
        let _guard = locks.acquire("k").wait();
        panic!("body panicked")
    }));
    assert!(panicked.is_err());
    assert!(!locks.is_locked("k"), "released while unwinding");

    let both = {
        let _guard = locks.acquire_many(["b", "a", "b"]).wait();
        (
            locks.is_locked("a"),
            locks.is_locked("b"),
            locks.locked_count(),
        )
    };
    assert_eq!(both, (true, true, 2));
    let panicked = panic::catch_unwind(AssertUnwindSafe(|| {
        let _guard = locks.acquire_many(["a", "b"]).wait();
        panic!("body panicked")
    }));
    assert!(panicked.is_err());
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn waited_guards_serialize_threads() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 200;
    let locks = LockManager::new();
    let counter = AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    let _guard = locks.acquire(0).wait();
                    let read = counter.load(Ordering::SeqCst);
                    thread::yield_now();
                    counter.store(read + 1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(counter.into_inner(), THREADS * ROUNDS);
}

/// The spawnable `with_lock` recipe: an owned future, placed with
/// `enqueue` and moved into a task. It is `'static` and `Send`, arrives at
/// the call (not when the runtime first polls the task), and releases
/// however the body ends.
async fn enqueued_owned_futures_spawn_in_call_order(rt: Rt) {
    let locks = Arc::new(LockManager::new());
    // The multi-key request takes `first` at the call, then waits on
    // `second`, the key both requests share.
    let (first, second) = take_order(&locks, 1_u32, 2);
    let log = Arc::new(Mutex::new(Vec::new()));
    let holder = locks.acquire_owned(second).await;

    let queued = locks.acquire_owned(second).enqueue();
    assert_eq!(locks.queue_len(&second), 2, "queued at the call");
    let single = rt.spawn({
        let (locks, log) = (Arc::clone(&locks), Arc::clone(&log));
        async move {
            let _guard = queued.await;
            log.lock().unwrap().push("single");
            locks.is_locked(&second)
        }
    });
    let queued = locks.acquire_many_owned([2, 1]).enqueue();
    assert_eq!(locks.queue_len(&second), 3, "queued at the call");
    assert!(
        locks.is_locked(&first),
        "the free key before it in order is held at the call"
    );
    let many = rt.spawn({
        let (locks, log) = (Arc::clone(&locks), Arc::clone(&log));
        async move {
            let _guard = queued.await;
            log.lock().unwrap().push("many");
            locks.is_locked(&1) && locks.is_locked(&2)
        }
    });
    rt.sleep(Duration::from_millis(5)).await;
    assert!(log.lock().unwrap().is_empty(), "both wait for the holder");
    assert!(locks.is_locked(&first), "still held by the waiting request");
    drop(holder);
    assert!(single.await);
    assert!(many.await);
    assert_eq!(*log.lock().unwrap(), ["single", "many"], "FIFO on {second}");
    assert_eq!(locks.locked_count(), 0);

    let queued = locks.acquire_owned(1).enqueue();
    let panicked = rt.spawn(async move {
        let body = async move {
            let _guard = queued.await;
            panic!("body panicked")
        };
        let caught = AssertUnwindSafe(body).catch_unwind().await.is_err();
        caught && locks.locked_count() == 0
    });
    assert!(panicked.await, "released while unwinding");
}

on_every_runtime!(enqueued_owned_futures_spawn_in_call_order);

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
                    match locks
                        .acquire_many(keys.iter().copied())
                        .wait_timeout(timeout)
                    {
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
