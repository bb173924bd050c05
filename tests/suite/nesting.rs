//! Holding one key while acquiring another, and acquiring a key already
//! held by the same caller: the outcomes the crate docs' "Nesting and
//! re-entrancy" section promises. Plain nested acquires are not seen by the
//! manager: in opposite orders they wait for each other for good, in one
//! global order they always finish. Nesting through the guard
//! (`MultiGuard::extend`) is seen: a wait that would close a cycle is
//! refused with `Deadlock`, so the same opposite orders never hang (the
//! details are in `extend.rs`). Waits that would never end are cut by a
//! deadline, so that each test ends.
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::common::{within, Rt, Task};
use lock_manager::{Deadlock, LockManager, TimedOut};

/// A deadline the test expects to pass.
const SHORT: Duration = Duration::from_millis(20);

#[test]
fn a_key_acquired_again_by_its_holder_waits_for_itself() {
    let locks = LockManager::new();
    let held = locks.acquire("k").wait();
    // Not re-entrant: the second acquire queues behind the first guard,
    // which this thread would release only after it returned.
    assert_eq!(
        locks.acquire("k").wait_timeout(SHORT).unwrap_err(),
        TimedOut
    );
    let task = Task::new();
    let mut again = locks.acquire("k");
    assert!(task.poll(&mut again).is_pending());
    assert!(task.poll(&mut again).is_pending());
    assert_eq!(task.wakes(), 0, "nothing will ever wake it but the holder");
    drop(held);
    assert_eq!(task.wakes(), 1);
    assert!(task.poll(&mut again).is_ready());
}

/// The same in a task: `with_lock` nested on its own key never completes.
async fn nested_with_lock_on_the_same_key_never_completes(rt: Rt) {
    let locks = LockManager::new();
    let nested = locks.with_lock(1, || async {
        rt.timeout(SHORT, locks.with_lock(1, || async {})).await
    });
    assert_eq!(nested.await, None, "the inner body ran under its own lock");
    assert_eq!(locks.locked_count(), 0);
}

on_every_runtime!(nested_with_lock_on_the_same_key_never_completes);

#[test]
fn opposite_orders_wait_for_each_other_until_a_deadline() {
    let locks = Arc::new(LockManager::new());
    let (took_first, tried_second) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let worker = |first: u8, second: u8| {
        let (locks, took_first, tried_second) = (
            Arc::clone(&locks),
            Arc::clone(&took_first),
            Arc::clone(&tried_second),
        );
        thread::spawn(move || {
            let _first = locks.acquire(first).wait();
            took_first.wait();
            let second = locks.acquire(second).wait_timeout(SHORT).map(drop);
            // Both keep their first key until both have tried: a deadlock,
            // which only the deadlines end.
            tried_second.wait();
            second
        })
    };
    let (one, two) = (worker(1, 2), worker(2, 1));
    assert_eq!(one.join().unwrap(), Err(TimedOut));
    assert_eq!(two.join().unwrap(), Err(TimedOut));
    assert_eq!(locks.locked_count(), 0);
}

/// The same opposite orders as above, nested through the guard: the
/// manager sees both waits, refuses the one that closes the cycle at once,
/// and the refused side, retrying after dropping its guard as the docs
/// say, finishes too. No deadline needed: every round ends.
#[test]
fn opposite_orders_through_extend_are_refused_instead_of_hanging() {
    const ROUNDS: usize = 20;
    let locks = Arc::new(LockManager::new());
    let in_threads = Arc::clone(&locks);
    let refusals = within(
        Duration::from_secs(60),
        "nesting through extend",
        move || {
            let (took_first, done) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
            let worker = |first: u8, second: u8| {
                let (locks, took_first, done) = (
                    Arc::clone(&in_threads),
                    Arc::clone(&took_first),
                    Arc::clone(&done),
                );
                thread::spawn(move || {
                    let mut refused: Vec<Deadlock<u8>> = Vec::new();
                    for round in 0..ROUNDS {
                        let mut guard = locks.acquire_many([first]).wait();
                        took_first.wait();
                        // Both hold their first key: one of the two extends
                        // would close the cycle.
                        match guard.extend([second]).wait() {
                            Ok(()) => {
                                assert_eq!(guard.keys().len(), 2, "round {round}");
                                drop(guard);
                            }
                            Err(deadlock) => {
                                refused.push(deadlock);
                                assert_eq!(guard.keys(), [first], "round {round}");
                                drop(guard);
                                let mut again = locks.acquire_many([first]).wait();
                                again.extend([second]).wait().expect("alone now");
                                assert_eq!(again.keys().len(), 2, "round {round}");
                            }
                        }
                        done.wait();
                    }
                    refused
                })
            };
            let (one, two) = (worker(1, 2), worker(2, 1));
            let (one, two) = (one.join().unwrap(), two.join().unwrap());
            assert_eq!(one.len() + two.len(), ROUNDS, "one refusal a round");
            for deadlock in one.iter().chain(&two) {
                let mut keys = deadlock.keys().to_vec();
                keys.sort_unstable();
                assert_eq!(keys, [1, 2]);
            }
            one.len() + two.len()
        },
    );
    assert_eq!(locks.stats().deadlocks, refusals as u64);
    assert_eq!(locks.locked_count(), 0);
}

/// A plain acquire made while holding a guard is not seen, even beside an
/// extend: an extend waiting for a key whose holder waits, through a plain
/// acquire, for the extend's own key is a deadlock nobody refuses. Only
/// giving up (here, dropping the plain acquire) ends it.
#[test]
fn a_plain_nested_acquire_is_not_seen_by_the_deadlock_check() {
    let locks = LockManager::new();
    let mut extending = locks.try_acquire_many([1]).unwrap();
    let plain = locks.try_acquire(2).unwrap();
    let (te, tp) = (Task::new(), Task::new());
    let mut extend = extending.extend([2]);
    assert!(te.poll(&mut extend).is_pending());
    let extend_woken = te.wakes(); // the first extend may wake itself
    let mut nested = locks.acquire(1); // while holding `plain`
    assert!(tp.poll(&mut nested).is_pending());
    assert!(te.poll(&mut extend).is_pending());
    assert!(tp.poll(&mut nested).is_pending());
    assert_eq!(
        (te.wakes(), tp.wakes()),
        (extend_woken, 0),
        "nobody refused"
    );
    assert_eq!(locks.stats().deadlocks, 0);
    drop(nested);
    drop(plain);
    assert!(matches!(
        te.poll(&mut extend),
        std::task::Poll::Ready(Ok(()))
    ));
}

#[test]
fn nested_acquires_in_one_global_order_always_finish() {
    const THREADS: u32 = 4;
    const ROUNDS: u32 = 500;
    let locks = Arc::new(LockManager::new());
    within(
        Duration::from_secs(60),
        "nested acquires in one order",
        move || {
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let locks = Arc::clone(&locks);
                    thread::spawn(move || {
                        for round in 0..ROUNDS {
                            // Any two of three keys, always the smaller first.
                            let (a, b) = ((t + round) % 3, (t + round + 1) % 3);
                            let (low, high) = (a.min(b), a.max(b));
                            let _outer = locks.acquire(low).wait();
                            let _inner = locks.acquire(high).wait();
                        }
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(locks.locked_count(), 0);
        },
    );
}

/// Tasks in opposite orders, with `acquire_many` instead of nesting:
/// never a deadlock.
async fn acquire_many_takes_opposite_orders_without_deadlock(rt: Rt) {
    const ROUNDS: usize = 500;
    let locks = Arc::new(LockManager::new());
    let tasks: Vec<_> = [[1, 2], [2, 1]]
        .into_iter()
        .map(|keys| {
            let locks = Arc::clone(&locks);
            rt.spawn(async move {
                for _ in 0..ROUNDS {
                    let _both = locks.acquire_many(keys).await;
                    rt.yield_now().await;
                }
            })
        })
        .collect();
    let all = rt.timeout(Duration::from_secs(60), futures::future::join_all(tasks));
    assert!(all.await.is_some(), "deadlocked");
    assert_eq!(locks.locked_count(), 0);
}

on_every_runtime!(acquire_many_takes_opposite_orders_without_deadlock);
