//! Counters and snapshots: every path that grants, queues, hands over or
//! cancels is counted once, and a snapshot lists exactly the held keys with
//! their waiters (and, with the `timing` feature, their ages, oldest first).
use std::sync::Arc;

use crate::common::Task;
use futures::future::FutureExt;
use lock_manager::{LockManager, Stats};

fn stats(
    acquisitions: u64,
    releases: u64,
    contended: u64,
    handoffs: u64,
    cancellations: u64,
) -> Stats {
    let mut stats = Stats::default();
    stats.acquisitions = acquisitions;
    stats.releases = releases;
    stats.contended = contended;
    stats.handoffs = handoffs;
    stats.cancellations = cancellations;
    stats
}

#[test]
fn a_fresh_manager_counts_nothing() {
    let locks = LockManager::<u32>::new();
    assert_eq!(locks.stats(), Stats::default());
    assert!(locks.snapshot().is_empty());
}

#[test]
fn uncontended_acquires_count_only_acquisitions() {
    let locks = Arc::new(LockManager::new());
    drop(locks.try_acquire(1));
    drop(locks.try_acquire_owned(2));
    drop(locks.acquire(3).now_or_never());
    drop(locks.acquire_owned(4).now_or_never());
    drop(locks.acquire_bounded(5, 0).unwrap().now_or_never());
    drop(locks.acquire_blocking(6));
    assert_eq!(locks.stats(), stats(6, 6, 0, 0, 0));
}

#[test]
fn refusals_count_nothing() {
    let locks = LockManager::new();
    let held = locks.try_acquire(1).unwrap();
    assert!(locks.try_acquire(1).is_none());
    assert!(locks.acquire_bounded(1, 0).is_err());
    assert!(locks.try_acquire_many([0, 1, 2]).is_none());
    assert!(locks.acquire_many_bounded([0, 1, 2], 0).is_err());
    assert_eq!(locks.stats(), stats(1, 0, 0, 0, 0));
    drop(held);
}

#[test]
fn a_hand_off_counts_a_contended_acquisition() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire("k");
    assert!(task.poll(&mut waiter).is_pending());
    assert_eq!(locks.stats(), stats(1, 0, 1, 0, 0));
    drop(holder);
    assert_eq!(locks.stats(), stats(2, 1, 1, 1, 0));
    let guard = task.poll(&mut waiter);
    assert!(guard.is_ready());
    assert_eq!(
        locks.stats(),
        stats(2, 1, 1, 1, 0),
        "taking a grant counts nothing"
    );
    drop(guard);
    assert_eq!(locks.stats(), stats(2, 2, 1, 1, 0));
}

#[test]
fn cancellations_count_queued_and_granted_waiters() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let (a, b) = (Task::new(), Task::new());
    let mut queued = locks.acquire("k");
    let mut granted = locks.acquire("k");
    assert!(a.poll(&mut queued).is_pending());
    assert!(b.poll(&mut granted).is_pending());
    drop(queued);
    assert_eq!(locks.stats(), stats(1, 0, 2, 0, 1));
    drop(holder);
    drop(granted); // handed the key, never polled again: passes it on
    assert_eq!(locks.stats(), stats(2, 2, 2, 1, 2));
    assert_eq!(locks.locked_count(), 0);
}

#[test]
fn a_multi_key_request_counts_per_key() {
    let locks = LockManager::new();
    let two = locks.try_acquire(2).unwrap();
    let task = Task::new();
    let mut both = locks.acquire_many([1, 2, 3]);
    assert!(task.poll(&mut both).is_pending());
    assert_eq!(locks.stats(), stats(3, 0, 1, 0, 0));
    drop(two);
    assert_eq!(locks.stats(), stats(4, 1, 1, 1, 0));
    drop(both);
    assert_eq!(locks.stats(), stats(4, 4, 1, 1, 1));
}

#[test]
fn bounded_acquires_count_like_plain_ones() {
    let locks = LockManager::new();
    let held = locks.acquire_bounded(1, 0).unwrap().now_or_never().unwrap();
    assert_eq!(locks.stats(), stats(1, 0, 0, 0, 0));
    let queued = locks.acquire_bounded(1, 1).unwrap();
    assert_eq!(locks.stats(), stats(1, 0, 1, 0, 0));
    drop(held);
    assert_eq!(locks.stats(), stats(2, 1, 1, 1, 0));
    drop(queued.now_or_never().unwrap());
    assert_eq!(locks.stats(), stats(2, 2, 1, 1, 0));
}

#[test]
fn try_and_bounded_multi_key_requests_count_per_key() {
    let locks = LockManager::new();
    let held = locks.try_acquire_many([1, 2, 2]).unwrap();
    assert_eq!(locks.stats(), stats(2, 0, 0, 0, 0));
    let bounded = locks.acquire_many_bounded([2, 3], 1).unwrap();
    assert_eq!(locks.stats(), stats(3, 0, 1, 0, 0));
    drop(held);
    assert_eq!(locks.stats(), stats(4, 2, 1, 1, 0));
    drop(bounded.now_or_never().unwrap());
    assert_eq!(locks.stats(), stats(4, 4, 1, 1, 0));
}

#[test]
fn a_snapshot_lists_each_held_key_with_its_waiters() {
    let locks = LockManager::new();
    let _quiet = locks.try_acquire("quiet").unwrap();
    let _busy = locks.try_acquire("busy").unwrap();
    let tasks = [Task::new(), Task::new()];
    let mut waiters = [locks.acquire("busy"), locks.acquire("busy")];
    for (task, waiter) in tasks.iter().zip(&mut waiters) {
        assert!(task.poll(waiter).is_pending());
    }

    let snapshot = locks.snapshot();
    let mut listed: Vec<_> = snapshot
        .iter()
        .map(|held| (held.key, held.waiters))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, [("busy", 2), ("quiet", 0)]);
    let quiet = snapshot.iter().find(|held| held.key == "quiet").unwrap();
    assert_eq!(quiet.oldest_waiter, None, "nobody waits for it");
    if !cfg!(feature = "timing") {
        assert_eq!(snapshot[0].key, "busy", "most waiters first without timing");
        assert!(snapshot.iter().all(|held| held.held_for.is_none()));
    }
}

#[test]
fn a_snapshot_forgets_released_keys() {
    let locks = LockManager::new();
    let guard = locks.try_acquire(1).unwrap();
    assert_eq!(locks.snapshot().len(), 1);
    drop(guard);
    assert!(locks.snapshot().is_empty());
}

#[cfg(feature = "timing")]
mod timing {
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_longest_held_key_comes_first() {
        let locks = LockManager::new();
        let _old = locks.try_acquire("old").unwrap();
        sleep(Duration::from_millis(5));
        let _new = locks.try_acquire("new").unwrap();
        let snapshot = locks.snapshot();
        assert_eq!(snapshot[0].key, "old");
        let (old, new) = (snapshot[0].held_for.unwrap(), snapshot[1].held_for.unwrap());
        assert!(old >= new + Duration::from_millis(5), "{old:?} vs {new:?}");
    }

    #[test]
    fn a_hand_off_restarts_the_hold_and_ages_the_waiters() {
        let locks = LockManager::new();
        let holder = locks.try_acquire("k").unwrap();
        let (first, second) = (Task::new(), Task::new());
        let mut a = locks.acquire("k");
        let queued_a = Instant::now();
        assert!(first.poll(&mut a).is_pending());
        sleep(Duration::from_millis(5));
        let mut b = locks.acquire("k");
        assert!(second.poll(&mut b).is_pending());

        let before = locks.snapshot();
        let waited = before[0].oldest_waiter.unwrap();
        assert!(waited >= Duration::from_millis(5), "{waited:?}");
        assert!(waited <= queued_a.elapsed());

        let handed = Instant::now();
        drop(holder);
        let after = locks.snapshot();
        // The new holder's time starts at the hand-off, and the oldest
        // waiter is now `b`, which joined after `a`.
        assert!(after[0].held_for.unwrap() <= handed.elapsed());
        assert!(after[0].oldest_waiter.unwrap() < queued_a.elapsed());
        drop(first.poll(&mut a));
    }
}

/// A key whose `Clone` reports whether its manager's mutex is held at that
/// moment (`Debug` never blocks and prints `<locked>` then).
#[derive(PartialEq, Eq, Hash)]
struct Probe(u32);

static PROBED: std::sync::OnceLock<LockManager<Probe>> = std::sync::OnceLock::new();
static CLONED_UNDER_MUTEX: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Clone for Probe {
    fn clone(&self) -> Self {
        if format!("{:?}", PROBED.get().unwrap()).contains("<locked>") {
            CLONED_UNDER_MUTEX.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Probe(self.0)
    }
}

#[test]
fn only_a_snapshot_clones_keys_under_the_mutex() {
    use std::sync::atomic::Ordering::SeqCst;
    let locks = PROBED.get_or_init(|| LockManager::with_shards(1));
    let guard = locks.acquire(Probe(1)).now_or_never().unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire(Probe(1));
    assert!(task.poll(&mut waiter).is_pending());
    assert_eq!(CLONED_UNDER_MUTEX.load(SeqCst), 0, "acquires clone outside");

    let snapshot = locks.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(
        CLONED_UNDER_MUTEX.load(SeqCst),
        1,
        "as documented for snapshot"
    );
    drop(guard);
    drop(task.poll(&mut waiter));
}
