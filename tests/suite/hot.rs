//! The hot keys: with `diagnostics`, the keys with the most contended
//! acquisitions, each counted once per request that queued (whether it
//! took the key or gave up), with its waits; a key stuck held shows at
//! once, a key released free keeps its count in its shard's sketch, which
//! tracks sixteen keys whatever the number of keys; nothing without the
//! feature, and nothing for an uncontended acquire.
use lock_manager::LockManager;

use crate::common::Task;

/// Takes `key`, free, with `waiters` requests queued behind it that each
/// get it in turn; it is free again at the end.
fn contend(locks: &LockManager<u64>, key: u64, waiters: usize) {
    let holder = locks.try_acquire(key).unwrap();
    let tasks: Vec<Task> = (0..waiters).map(|_| Task::new()).collect();
    let mut futures: Vec<_> = (0..waiters).map(|_| locks.acquire(key)).collect();
    for (task, future) in tasks.iter().zip(&mut futures) {
        assert!(task.poll(future).is_pending());
    }
    drop(holder);
    for (task, future) in tasks.iter().zip(&mut futures) {
        let std::task::Poll::Ready(guard) = task.poll(future) else {
            panic!("handed the key in turn");
        };
        drop(guard);
    }
    assert!(!locks.is_locked(&key));
}

#[cfg(feature = "diagnostics")]
mod measured {
    use std::time::Duration;

    use lock_manager::HotKey;

    use super::*;

    /// Queues one request for `key` (held) and drops it: a contended
    /// acquisition that gave up after about `pause`.
    fn give_up(locks: &LockManager<&'static str>, key: &'static str, pause: Duration) {
        let task = Task::new();
        let mut waiter = locks.acquire(key);
        assert!(task.poll(&mut waiter).is_pending());
        std::thread::sleep(pause);
    }

    fn counts<K: Clone>(hot: &[HotKey<K>]) -> Vec<(K, u64)> {
        hot.iter()
            .map(|hot| (hot.key.clone(), hot.contended))
            .collect()
    }

    #[test]
    fn a_key_stuck_held_is_the_hottest_at_once() {
        const PAUSE: Duration = Duration::from_millis(2);
        let locks = LockManager::new();
        let _stuck = locks.try_acquire("stuck").unwrap();
        let _other = locks.try_acquire("other").unwrap();
        for _ in 0..3 {
            give_up(&locks, "stuck", PAUSE);
        }
        give_up(&locks, "other", Duration::ZERO);
        let hot = locks.hot_keys(10);
        assert_eq!(counts(&hot), [("stuck", 3), ("other", 1)]);
        assert!(hot[0].waited >= PAUSE * 3, "{:?}", hot[0]);
        assert_eq!(hot[0].error, 0);
        assert_eq!(counts(&locks.hot_keys(1)), [("stuck", 3)]);
        assert!(locks.hot_keys(0).is_empty());
    }

    #[test]
    fn a_key_released_free_keeps_its_count_and_adds_to_it() {
        let locks = LockManager::new();
        contend(&locks, 7, 2);
        assert_eq!(counts(&locks.hot_keys(10)), [(7, 2)]);
        contend(&locks, 7, 3);
        contend(&locks, 8, 1);
        let hot = locks.hot_keys(10);
        assert_eq!(counts(&hot), [(7, 5), (8, 1)]);
        assert!(hot.iter().all(|hot| hot.error == 0));
        // Held again and contended: the sketch's count and the entry's add
        // up into one line.
        let _held = locks.try_acquire(7).unwrap();
        let task = Task::new();
        let mut waiter = locks.acquire(7);
        assert!(task.poll(&mut waiter).is_pending());
        assert_eq!(counts(&locks.hot_keys(10)), [(7, 6), (8, 1)]);
    }

    #[test]
    fn a_shard_tracks_sixteen_keys_and_keeps_the_heaviest() {
        let locks = LockManager::with_shards(1);
        contend(&locks, 0, 40);
        for key in 1..=100 {
            contend(&locks, key, 1);
        }
        let hot = locks.hot_keys(usize::MAX);
        assert_eq!(hot.len(), 16, "bounded whatever the number of keys");
        assert_eq!((hot[0].key, hot[0].contended, hot[0].error), (0, 40, 0));
        // The others took each other's places: counted from the count of
        // the key each replaced, which `error` gives.
        for hot in &hot[1..] {
            assert!(
                hot.contended >= 1 && hot.error == hot.contended - 1,
                "{hot:?}"
            );
        }
    }

    #[test]
    fn a_multi_key_request_counts_on_the_keys_it_queued_for() {
        let locks = LockManager::new();
        let held = locks.try_acquire_many([1, 2]).unwrap();
        let task = Task::new();
        let mut request = locks.acquire_many([1, 2]);
        assert!(task.poll(&mut request).is_pending());
        // Queued on its first key, in the order it takes them; it finds
        // the second free when it gets there.
        drop(held);
        drop(task.poll(&mut request));
        let hot = counts(&locks.hot_keys(10));
        assert!(matches!(hot[..], [(1 | 2, 1)]), "{hot:?}");
        // Again, and this time the second is taken by another in between:
        // it queues for each in turn.
        let first_key = hot[0].0;
        let held = locks.try_acquire_many([1, 2]).unwrap();
        let mut request = locks.acquire_many([1, 2]);
        assert!(task.poll(&mut request).is_pending());
        drop(held);
        let other = locks.try_acquire(3 - first_key).unwrap();
        assert!(task.poll(&mut request).is_pending());
        drop(other);
        drop(task.poll(&mut request));
        let mut hot = counts(&locks.hot_keys(10));
        hot.sort_unstable();
        assert_eq!(
            hot,
            [
                (1, if first_key == 1 { 2 } else { 1 }),
                (2, if first_key == 2 { 2 } else { 1 })
            ]
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_hot_key_serializes_with_its_wait_in_seconds() {
        let locks = LockManager::new();
        let _stuck = locks.try_acquire("stuck").unwrap();
        give_up(&locks, "stuck", Duration::from_millis(1));
        let hot = serde_json::to_value(&locks.hot_keys(1)[0]).unwrap();
        assert_eq!(hot["key"], "stuck");
        assert_eq!(hot["contended"], 1);
        assert_eq!(hot["error"], 0);
        let waited = hot["waited"].as_f64().unwrap();
        assert!((0.001..60.0).contains(&waited), "{waited} s");
    }
}

#[test]
fn uncontended_acquisitions_and_refusals_count_nothing() {
    let locks = LockManager::new();
    for key in 0..100 {
        drop(locks.try_acquire(key).unwrap());
    }
    let _held = locks.try_acquire(7).unwrap();
    assert!(locks.try_acquire(7).is_none());
    assert!(locks.hot_keys(10).is_empty());
}

#[cfg(not(feature = "diagnostics"))]
#[test]
fn without_diagnostics_no_key_is_hot() {
    let locks = LockManager::new();
    contend(&locks, 7, 3);
    let _stuck = locks.try_acquire(8).unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire(8);
    assert!(task.poll(&mut waiter).is_pending());
    assert!(locks.hot_keys(10).is_empty());
}
