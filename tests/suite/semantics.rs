//! The lock's semantics, one test each, polled by hand with counting wakers:
//! deterministic, runtime-free, and small enough for miri.
use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};

use crate::common::{takes_before, Task};
use futures::future::{FusedFuture, FutureExt};
use futures::task::noop_waker_ref;
use lock_manager::{
    global, Acquire, AcquireMany, AcquireManyOwned, AcquireOwned, Guard, LockManager,
};

fn waiters<K, S>(locks: &LockManager<K, S>) -> String {
    format!("{locks:?}")
}

// 1. FIFO per key, with a direct hand-off.

#[test]
fn grants_in_first_poll_order_not_creation_order() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();

    // Created c, a, b; first polled a, b, c.
    let mut c = locks.acquire("k");
    let mut a = locks.acquire("k");
    let mut b = locks.acquire("k");
    let tasks = [Task::new(), Task::new(), Task::new()];
    assert!(tasks[0].poll(&mut a).is_pending());
    assert!(tasks[1].poll(&mut b).is_pending());
    assert!(tasks[2].poll(&mut c).is_pending());

    drop(holder);
    assert_eq!(tasks.iter().map(Task::wakes).collect::<Vec<_>>(), [1, 0, 0]);
    assert!(tasks[1].poll(&mut b).is_pending(), "b must not overtake a");
    let guard = match tasks[0].poll(&mut a) {
        Poll::Ready(guard) => guard,
        Poll::Pending => panic!("a was woken but not granted"),
    };

    drop(guard);
    assert_eq!(tasks.iter().map(Task::wakes).collect::<Vec<_>>(), [1, 1, 0]);
    drop(tasks[1].poll(&mut b));
    assert_eq!(tasks.iter().map(Task::wakes).collect::<Vec<_>>(), [1, 1, 1]);
    assert!(tasks[2].poll(&mut c).is_ready());
}

#[test]
fn release_hands_the_key_over_before_the_waiter_runs() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(1).unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire(1);
    assert!(task.poll(&mut waiter).is_pending());
    assert_eq!(locks.queue_len(&1), 2);

    drop(holder);
    // Not polled yet, but already the holder.
    assert!(locks.is_locked(&1));
    assert_eq!(locks.queue_len(&1), 1);
    assert_eq!(task.wakes(), 1);

    // Newcomers cannot barge in between.
    assert!(locks.try_acquire(1).is_none());
    let mut late = locks.acquire(1);
    let late_task = Task::new();
    assert!(late_task.poll(&mut late).is_pending());

    let guard = task.poll(&mut waiter);
    assert!(guard.is_ready());
    assert_eq!(late_task.wakes(), 0);
    drop(guard);
    assert_eq!(late_task.wakes(), 1);
    assert!(late_task.poll(&mut late).is_ready());
}

// 1b. Arrival: at the call for `with_lock`, `with_locks`, the free
// `with_lock` and `enqueue`; at the first poll for a plain acquire future.

/// A body that logs its start, yields once (so that its start and end lie
/// in different polls), and logs its end.
async fn logged(log: &RefCell<Vec<(&'static str, &'static str)>>, name: &'static str) {
    log.borrow_mut().push((name, "start"));
    futures::pending!();
    log.borrow_mut().push((name, "end"));
}

/// Polls the bodies `first` and `second`, created in that order, the
/// second first at every step: the first's body must end before the
/// second's starts.
fn assert_first_called_runs_first<A, B>(
    log: &RefCell<Vec<(&'static str, &'static str)>>,
    mut first: Pin<Box<A>>,
    mut second: Pin<Box<B>>,
) where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    let tasks = [Task::new(), Task::new()];
    assert!(
        tasks[1].poll(&mut second).is_pending(),
        "queued behind the first"
    );
    assert!(log.borrow().is_empty());
    assert!(
        tasks[0].poll(&mut first).is_pending(),
        "yielded in its body"
    );
    assert!(tasks[1].poll(&mut second).is_pending());
    assert!(tasks[0].poll(&mut first).is_ready());
    assert_eq!(tasks[1].wakes(), 1, "the end of the first body hands over");
    assert!(
        tasks[1].poll(&mut second).is_pending(),
        "yielded in its body"
    );
    assert!(tasks[1].poll(&mut second).is_ready());
    let expected = [
        ("first", "start"),
        ("first", "end"),
        ("second", "start"),
        ("second", "end"),
    ];
    assert_eq!(*log.borrow(), expected);
}

/// The original ticket's test, polled by hand: `p1 = withLock(k, ...); p2
/// = withLock(k, ...)`, whatever order the two are then polled in.
#[test]
fn with_lock_arrives_when_called_not_when_first_polled() {
    let locks = LockManager::new();
    let log = RefCell::new(Vec::new());
    let first = Box::pin(locks.with_lock(1, || logged(&log, "first")));
    let second = Box::pin(locks.with_lock(1, || logged(&log, "second")));
    assert_eq!(locks.queue_len(&1), 2, "both arrived at the call");
    assert_first_called_runs_first(&log, first, second);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn with_locks_arrives_when_called_not_when_first_polled() {
    let locks = LockManager::new();
    let log = RefCell::new(Vec::new());
    // A key the manager takes before 2, and one it takes after 2.
    let early = (3..).find(|k| takes_before(&locks, k, &2)).unwrap();
    let late = (3..).find(|k| !takes_before(&locks, k, &2)).unwrap();
    let first = Box::pin(locks.with_locks([1, 2], || logged(&log, "first")));
    let second = Box::pin(locks.with_locks([late, early, 2], || logged(&log, "second")));
    assert!(
        locks.is_locked(&early),
        "the second holds its free key before 2 from the call"
    );
    assert!(
        !locks.is_locked(&late),
        "and has not reached the key after 2"
    );
    assert_eq!(locks.queue_len(&2), 2);
    assert_first_called_runs_first(&log, first, second);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn the_free_with_lock_arrives_when_called_not_when_first_polled() {
    // The global manager is shared with every other test: a key of its own.
    let key = "semantics/the_free_with_lock_arrives_when_called";
    let log = RefCell::new(Vec::new());
    let first = Box::pin(lock_manager::with_lock(key, || logged(&log, "first")));
    let second = Box::pin(lock_manager::with_lock(key, || logged(&log, "second")));
    assert_eq!(lock_manager::queue_len(key), 2, "both arrived at the call");
    assert_first_called_runs_first(&log, first, second);
    assert!(!lock_manager::is_locked(key));
}

/// Plain acquire futures keep Rust's lazy default: the one polled first
/// goes first. `enqueue` arrives at the call, before any poll.
#[test]
fn acquire_arrives_at_its_first_poll_and_enqueue_at_the_call() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(1).unwrap();
    let tasks = [Task::new(), Task::new(), Task::new()];
    let mut a = locks.acquire(1).enqueue();
    let mut b = locks.acquire(1);
    let mut c = locks.acquire(1).enqueue();
    assert_eq!(locks.queue_len(&1), 3, "b is in no queue before its poll");
    // Polled b, c, a: b arrives now, behind a and c.
    assert!(tasks[1].poll(&mut b).is_pending());
    assert!(tasks[2].poll(&mut c).is_pending());
    assert!(tasks[0].poll(&mut a).is_pending());
    assert_eq!(locks.queue_len(&1), 4);

    drop(holder);
    let wakes = || tasks.iter().map(Task::wakes).collect::<Vec<_>>();
    assert_eq!(wakes(), [1, 0, 0]);
    assert!(tasks[1].poll(&mut b).is_pending());
    assert!(tasks[2].poll(&mut c).is_pending());
    let Poll::Ready(guard) = tasks[0].poll(&mut a) else {
        panic!("a was enqueued first")
    };
    drop(guard);
    assert_eq!(wakes(), [1, 0, 1], "then c, enqueued before b's poll");
    assert!(tasks[1].poll(&mut b).is_pending());
    let Poll::Ready(guard) = tasks[2].poll(&mut c) else {
        panic!("c was next")
    };
    drop(guard);
    assert_eq!(wakes(), [1, 1, 1]);
    assert!(tasks[1].poll(&mut b).is_ready());
    assert_eq!(locks.locked_count(), 0);
}

/// An enqueued future on a free key holds it from the call: nobody can
/// take the key before the future is polled.
#[test]
fn enqueue_takes_a_free_key_at_the_call() {
    let locks = LockManager::new();
    let mut single = locks.acquire(1).enqueue();
    let mut many = locks.acquire_many([2, 3]).enqueue();
    assert_eq!(locks.locked_count(), 3);
    assert!(locks.try_acquire(1).is_none());
    assert!(locks.try_acquire_many([3]).is_none());
    let task = Task::new();
    let Poll::Ready(one) = task.poll(&mut single) else {
        panic!("held since the call")
    };
    let Poll::Ready(two) = task.poll(&mut many) else {
        panic!("held since the call")
    };
    assert_eq!((*one.key(), two.keys().len()), (1, 2));
    assert_eq!(task.wakes(), 0, "granted at the call: nobody to wake");
    drop((one, two));
    assert_eq!(waiters(&locks), "LockManager { locked: 0, waiters: 0 }");
}

// 2. Cancellation.

#[test]
fn dropping_a_queued_waiter_keeps_the_others_in_order() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let tasks: Vec<Task> = (0..4).map(|_| Task::new()).collect();
    let mut futures: Vec<_> = tasks
        .iter()
        .map(|task| {
            let mut fut = Some(locks.acquire("k"));
            assert!(task.poll(fut.as_mut().unwrap()).is_pending());
            fut
        })
        .collect();
    assert_eq!(locks.queue_len("k"), 5);

    futures[1] = None; // from the middle
    futures[3] = None; // from the back
    assert_eq!(locks.queue_len("k"), 3);

    drop(holder);
    let wakes = || tasks.iter().map(Task::wakes).collect::<Vec<_>>();
    assert_eq!(wakes(), [1, 0, 0, 0]);
    drop(tasks[0].poll(futures[0].as_mut().unwrap()));
    assert_eq!(wakes(), [1, 0, 1, 0]);
    drop(tasks[2].poll(futures[2].as_mut().unwrap()));
    assert_eq!(locks.locked_count(), 0);
    assert_eq!(waiters(&locks), "LockManager { locked: 0, waiters: 0 }");
}

#[test]
fn dropping_a_granted_but_unpolled_waiter_passes_the_lock_on() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let (first, second) = (Task::new(), Task::new());
    let mut granted = locks.acquire("k");
    let mut next = locks.acquire("k");
    assert!(first.poll(&mut granted).is_pending());
    assert!(second.poll(&mut next).is_pending());

    drop(holder);
    assert_eq!(first.wakes(), 1);
    drop(granted); // woken, but gone before taking the lock
    assert_eq!(second.wakes(), 1);
    assert!(locks.is_locked("k"));
    let guard = second.poll(&mut next);
    assert!(guard.is_ready());
    drop(guard);
    assert_eq!(waiters(&locks), "LockManager { locked: 0, waiters: 0 }");
}

#[test]
fn dropping_the_last_waiter_of_a_released_key_frees_it() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(5).unwrap();
    let mut waiter = locks.acquire(5);
    assert!(Task::new().poll(&mut waiter).is_pending());
    drop(holder);
    drop(waiter);
    assert!(!locks.is_locked(&5));
    assert_eq!(waiters(&locks), "LockManager { locked: 0, waiters: 0 }");
}

#[test]
fn dropping_owned_futures_leaves_the_queue_or_passes_the_lock_on() {
    let locks = Arc::new(LockManager::new());
    let holder = locks.try_acquire(1).unwrap();
    let tasks = [Task::new(), Task::new(), Task::new()];
    let mut queued = locks.acquire_owned(1);
    let mut granted = locks.acquire_owned(1);
    let mut last = locks.acquire_owned(1);
    assert!(tasks[0].poll(&mut queued).is_pending());
    assert!(tasks[1].poll(&mut granted).is_pending());
    assert!(tasks[2].poll(&mut last).is_pending());

    drop(queued);
    assert_eq!(
        locks.queue_len(&1),
        3,
        "a dropped owned future kept its place"
    );
    drop(holder);
    assert_eq!(tasks[1].wakes(), 1);
    drop(granted); // handed the key, gone before taking it
    assert_eq!(tasks[2].wakes(), 1, "the key was not passed on");
    assert!(tasks[2].poll(&mut last).is_ready());
    assert_eq!(waiters(&locks), "LockManager { locked: 0, waiters: 0 }");
}

#[test]
fn acquire_futures_are_terminated_once_they_return_their_guard() {
    let locks = Arc::new(LockManager::new());
    let task = Task::new();
    let mut one = locks.acquire(1);
    let mut owned = locks.acquire_owned(2);
    let mut many = locks.acquire_many([3]);
    let mut many_owned = locks.acquire_many_owned([4]);
    let terminated = |one: &Acquire<'_, u32>,
                      owned: &AcquireOwned<u32>,
                      many: &AcquireMany<'_, u32>,
                      many_owned: &AcquireManyOwned<u32>| {
        [
            one.is_terminated(),
            owned.is_terminated(),
            many.is_terminated(),
            many_owned.is_terminated(),
        ]
    };
    assert_eq!(terminated(&one, &owned, &many, &many_owned), [false; 4]);
    let guards = (
        task.poll(&mut one),
        task.poll(&mut owned),
        task.poll(&mut many),
        task.poll(&mut many_owned),
    );
    assert!(guards.0.is_ready() && guards.1.is_ready());
    assert!(guards.2.is_ready() && guards.3.is_ready());
    assert_eq!(terminated(&one, &owned, &many, &many_owned), [true; 4]);
}

#[test]
fn dropping_an_unpolled_future_does_nothing() {
    let locks = LockManager::new();
    let holder = locks.try_acquire(5).unwrap();
    drop(locks.acquire(5));
    assert_eq!(locks.queue_len(&5), 1);
    drop(holder);
    assert_eq!(locks.locked_count(), 0);
}

// 3. Wakers.

#[test]
fn a_moved_future_is_woken_through_its_latest_waker() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let (old, new) = (Task::new(), Task::new());
    let mut waiter = locks.acquire("k");
    assert!(old.poll(&mut waiter).is_pending());
    assert!(new.poll(&mut waiter).is_pending());
    assert!(new.poll(&mut waiter).is_pending());

    drop(holder);
    assert_eq!((old.wakes(), new.wakes()), (0, 1));
    assert!(new.poll(&mut waiter).is_ready());
}

/// Records whether the manager's internal mutex was held when woken:
/// `Debug` prints `<locked>` only then.
struct Inspector {
    locks: Arc<LockManager<&'static str>>,
    seen: Mutex<Vec<String>>,
}

impl Wake for Inspector {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.seen.lock().unwrap().push(format!("{:?}", self.locks));
    }
}

#[test]
fn wakers_are_woken_after_the_mutex_is_released() {
    let locks = Arc::new(LockManager::new());
    let inspector = Arc::new(Inspector {
        locks: locks.clone(),
        seen: Mutex::default(),
    });
    let waker = Waker::from(inspector.clone());
    let mut cx = std::task::Context::from_waker(&waker);

    let holder = locks.try_acquire("k").unwrap();
    let mut waiter = locks.acquire("k");
    assert!(waiter.poll_unpin(&mut cx).is_pending());
    let mut behind = locks.acquire("k");
    assert!(behind.poll_unpin(&mut cx).is_pending());

    drop(holder); // wakes `waiter`
    drop(waiter); // granted but dropped: wakes `behind`
    assert_eq!(
        *inspector.seen.lock().unwrap(),
        [
            "LockManager { locked: 1, waiters: 2 }",
            "LockManager { locked: 1, waiters: 1 }"
        ]
    );
}

// 4. Isolation.

#[test]
fn other_keys_are_free_while_one_is_contended() {
    let locks = LockManager::new();
    let _a = locks.try_acquire('a').unwrap();
    let mut queued = locks.acquire('a');
    assert!(Task::new().poll(&mut queued).is_pending());

    let mut b = locks.acquire('b');
    assert!(Task::new().poll(&mut b).is_ready());
    assert!(locks.try_acquire('c').is_some());
    assert_eq!(locks.queue_len(&'a'), 2);
}

// 5. Cleanup.

#[test]
fn a_released_key_leaves_no_entry_behind() {
    let locks = LockManager::new();
    for key in 0..1000 {
        let guard = locks.try_acquire(key).unwrap();
        assert_eq!(locks.locked_count(), 1);
        drop(guard);
    }
    assert_eq!(waiters(&locks), "LockManager { locked: 0, waiters: 0 }");
}

// 6. `with_lock` always releases.

#[test]
fn with_lock_releases_when_its_body_panics() {
    let locks = LockManager::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(locks.with_lock("k", || async { panic!("body failed") }))
    }));
    let message = outcome.unwrap_err();
    assert_eq!(message.downcast_ref::<&str>(), Some(&"body failed"));
    assert!(!locks.is_locked("k"));
}

#[test]
fn with_lock_releases_when_dropped_midway() {
    let locks = LockManager::new();
    let (started_tx, started) = std::sync::mpsc::channel();
    let mut body = Box::pin(locks.with_lock("k", || async move {
        started_tx.send(()).unwrap();
        futures::future::pending::<()>().await
    }));
    assert!(Task::new().poll(&mut body).is_pending());
    started.try_recv().expect("the body is running");
    assert!(locks.is_locked("k"));

    drop(body);
    assert!(!locks.is_locked("k"));
}

#[test]
fn with_lock_dropped_while_queued_leaves_the_queue() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let mut body = Box::pin(locks.with_lock("k", || async { unreachable!("never runs") }));
    assert!(Task::new().poll(&mut body).is_pending());
    assert_eq!(locks.queue_len("k"), 2);
    drop(body);
    assert_eq!(locks.queue_len("k"), 1);
    drop(holder);
    assert_eq!(locks.locked_count(), 0);
}

// 7. Misuse.

#[test]
fn polling_a_completed_acquire_panics_clearly() {
    let locks = LockManager::new();
    let mut acquire = locks.acquire(1);
    let mut cx = std::task::Context::from_waker(noop_waker_ref());
    let Poll::Ready(guard) = acquire.poll_unpin(&mut cx) else {
        panic!("free key")
    };
    let again = catch_unwind(AssertUnwindSafe(|| {
        let _ = Pin::new(&mut acquire).poll(&mut cx);
    }));
    let message = again.unwrap_err();
    assert!(message
        .downcast_ref::<&str>()
        .unwrap()
        .contains("polled after completion"));
    // The panic changed nothing.
    assert_eq!(locks.queue_len(&1), 1);
    drop(guard);
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_forgotten_guard_keeps_only_its_key_locked() {
    let locks = LockManager::new();
    std::mem::forget(locks.try_acquire("leaked").unwrap());
    assert!(locks.is_locked("leaked"));
    assert!(locks.try_acquire("leaked").is_none());
    assert!(locks.try_acquire("other").is_some());
    assert_eq!(locks.locked_count(), 1);
}

// 8. One shape for every guard.

/// A helper over any guard: the keys it holds, sorted.
fn held<G: Guard<Key = u64>>(guard: &G) -> Vec<u64> {
    let mut keys = guard.keys().to_vec();
    keys.sort_unstable();
    keys
}

/// Whether `guard` belongs to `locks`.
fn belongs_to<G: Guard>(guard: &G, locks: &LockManager<G::Key, G::Hasher>) -> bool {
    std::ptr::eq(guard.manager(), locks)
}

#[test]
fn one_generic_helper_reads_all_four_guards() {
    let locks = Arc::new(LockManager::<u64>::new());
    let one = locks.try_acquire(1).unwrap();
    let owned = locks.try_acquire_owned(2).unwrap();
    let many = locks.try_acquire_many([4, 3, 4]).unwrap();
    let owned_many = locks.try_acquire_many_owned([6, 5]).unwrap();

    assert_eq!(held(&one), [1]);
    assert_eq!(held(&owned), [2]);
    assert_eq!(held(&many), [3, 4]);
    assert_eq!(held(&owned_many), [5, 6]);
    // A single-key guard's keys: a one-element slice of the key it holds.
    assert!(std::ptr::eq(
        Guard::keys(&one),
        std::slice::from_ref(one.key())
    ));
    assert!(std::ptr::eq(
        Guard::keys(&owned),
        std::slice::from_ref(owned.key())
    ));
    // The trait's `keys` is the inherent one for the multi-key guards.
    assert!(std::ptr::eq(Guard::keys(&many), many.keys()));

    assert!(belongs_to(&one, &locks));
    assert!(belongs_to(&owned, &locks));
    assert!(belongs_to(&many, &locks));
    assert!(belongs_to(&owned_many, &locks));
    let other = LockManager::new();
    assert!(!belongs_to(&one, &other));
    assert_eq!(owned.manager().locked_count(), 6);
    drop((one, owned, many, owned_many));
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn guards_of_every_kind_live_together_as_trait_objects() {
    let locks = Arc::new(LockManager::<u64>::new());
    let guards: Vec<Box<dyn Guard<Key = u64, Hasher = RandomState> + Send + '_>> = vec![
        Box::new(locks.try_acquire(1).unwrap()),
        Box::new(locks.try_acquire_owned(2).unwrap()),
        Box::new(locks.try_acquire_many([3, 4]).unwrap()),
        Box::new(locks.try_acquire_many_owned([5]).unwrap()),
    ];
    let mut keys: Vec<u64> = guards.iter().flat_map(|g| g.keys().to_vec()).collect();
    keys.sort_unstable();
    assert_eq!(keys, [1, 2, 3, 4, 5]);
    assert!(guards.iter().all(|g| std::ptr::eq(g.manager(), &*locks)));
    drop(guards);
    assert_eq!(locks.locked_count(), 0);
}

// 9. The process-wide manager's free functions.

#[test]
fn free_is_locked_and_queue_len_read_the_global_manager() {
    // The global manager is shared with every other test: a key of its own.
    let key = "semantics/free_is_locked_and_queue_len_read_the_global_manager";
    assert!(!lock_manager::is_locked(key));
    assert_eq!(lock_manager::queue_len(key), 0);

    let holder = global().try_acquire(key.to_owned()).unwrap();
    assert!(lock_manager::is_locked(key));
    assert_eq!(lock_manager::queue_len(key), 1);
    let waiter = global().acquire(key.to_owned()).enqueue();
    let body = lock_manager::with_lock(key, || async {});
    assert_eq!(
        lock_manager::queue_len(key),
        3,
        "the holder and two waiters"
    );
    assert_eq!(global().queue_len(key), 3);

    drop(holder);
    assert!(lock_manager::is_locked(key), "handed to the waiter");
    assert_eq!(lock_manager::queue_len(key), 2);
    drop(waiter);
    assert_eq!(lock_manager::queue_len(key), 1, "handed to the body");
    drop(body);
    assert!(!lock_manager::is_locked(key));
    assert_eq!(lock_manager::queue_len(key), 0);
    assert!(!global().is_locked(key));
}
