//! Counters and snapshots: every path that grants, queues, hands over or
//! cancels is counted once, and a snapshot lists exactly the held keys with
//! their waiters (and, with the `diagnostics` feature, their ages, oldest
//! first, and call sites), and the wait and hold histograms fill as they
//! should.
use std::sync::Arc;

use crate::common::{in_take_order, take_order, Task};
use futures::future::FutureExt;
use lock_manager::{LockManager, Stats};

/// The counters of `stats`: acquisitions, releases, contended, hand-offs
/// and cancellations. Checks on the way that, with `diagnostics`, one wait
/// was measured per hand-off and per waiter dropped while queued (those
/// among the abandoned too), and one hold per release, and nothing
/// without it.
fn counts(stats: Stats) -> [u64; 5] {
    let expected = |count| if lock_manager::DIAGNOSTICS { count } else { 0 };
    let abandoned = stats.abandoned.count();
    assert!(abandoned <= stats.cancellations, "abandoned");
    assert_eq!(
        stats.waits.count(),
        expected(stats.handoffs) + abandoned,
        "waits"
    );
    assert_eq!(stats.holds.count(), expected(stats.releases), "holds");
    [
        stats.acquisitions,
        stats.releases,
        stats.contended,
        stats.handoffs,
        stats.cancellations,
    ]
}

/// What the counters of `stats` counted since `before`: for tests that ask
/// the manager for its order of keys first (which counts too).
fn counts_since(before: Stats, stats: Stats) -> [u64; 5] {
    let (before, now) = (counts(before), counts(stats));
    std::array::from_fn(|i| now[i] - before[i])
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
    drop(locks.acquire(5).enqueue_bounded(0).unwrap().now_or_never());
    drop(locks.acquire(6).wait());
    assert_eq!(counts(locks.stats()), [6, 6, 0, 0, 0]);
}

#[test]
fn refusals_count_nothing() {
    let locks = LockManager::new();
    let held = locks.try_acquire(1).unwrap();
    assert!(locks.try_acquire(1).is_none());
    assert!(locks.acquire(1).enqueue_bounded(0).is_err());
    assert!(locks.try_acquire_many([0, 1, 2]).is_none());
    assert!(locks.acquire_many([0, 1, 2]).enqueue_bounded(0).is_err());
    assert_eq!(counts(locks.stats()), [1, 0, 0, 0, 0]);
    drop(held);
}

#[test]
fn a_hand_off_counts_a_contended_acquisition() {
    let locks = LockManager::new();
    let holder = locks.try_acquire("k").unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire("k");
    assert!(task.poll(&mut waiter).is_pending());
    assert_eq!(counts(locks.stats()), [1, 0, 1, 0, 0]);
    drop(holder);
    assert_eq!(counts(locks.stats()), [2, 1, 1, 1, 0]);
    let guard = task.poll(&mut waiter);
    assert!(guard.is_ready());
    assert_eq!(
        counts(locks.stats()),
        [2, 1, 1, 1, 0],
        "taking a grant counts nothing"
    );
    drop(guard);
    assert_eq!(counts(locks.stats()), [2, 2, 1, 1, 0]);
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
    assert_eq!(counts(locks.stats()), [1, 0, 2, 0, 1]);
    drop(holder);
    drop(granted); // handed the key, never polled again: passes it on
    assert_eq!(counts(locks.stats()), [2, 2, 2, 1, 2]);
    assert_eq!(locks.locked_count(), 0);
}

/// A multi-key request counts each key as it takes it, in order: the key
/// it waits for once, as contended, and the keys after it only when it
/// reaches them.
#[test]
fn a_multi_key_request_counts_per_key() {
    let locks = LockManager::new();
    let [a, b, c] = in_take_order(&locks, [1, 2, 3]);
    let base = locks.stats();
    let held = locks.try_acquire(b).unwrap();
    let task = Task::new();
    // Takes `a`, waits for `b`, has not reached `c`.
    let mut request = locks.acquire_many([c, b, a]);
    assert!(task.poll(&mut request).is_pending());
    assert_eq!(counts_since(base, locks.stats()), [2, 0, 1, 0, 0]);
    drop(held);
    assert_eq!(counts_since(base, locks.stats()), [3, 1, 1, 1, 0]);
    // Handed `b` but not polled again: it gives up `a` and `b`.
    drop(request);
    assert_eq!(counts_since(base, locks.stats()), [3, 3, 1, 1, 1]);

    // Polled again instead, it takes `c` on reaching it.
    let held = locks.try_acquire(b).unwrap();
    let base = locks.stats();
    let mut request = locks.acquire_many([a, b, c]);
    assert!(task.poll(&mut request).is_pending());
    assert_eq!(counts_since(base, locks.stats()), [1, 0, 1, 0, 0]);
    drop(held);
    assert_eq!(counts_since(base, locks.stats()), [2, 1, 1, 1, 0]);
    let guard = task.poll(&mut request);
    assert!(guard.is_ready());
    assert_eq!(counts_since(base, locks.stats()), [3, 1, 1, 1, 0]);
    drop(guard);
    assert_eq!(counts_since(base, locks.stats()), [3, 4, 1, 1, 0]);
}

#[test]
fn bounded_acquires_count_like_plain_ones() {
    let locks = LockManager::new();
    let held = locks
        .acquire(1)
        .enqueue_bounded(0)
        .unwrap()
        .now_or_never()
        .unwrap();
    assert_eq!(counts(locks.stats()), [1, 0, 0, 0, 0]);
    let queued = locks.acquire(1).enqueue_bounded(1).unwrap();
    assert_eq!(counts(locks.stats()), [1, 0, 1, 0, 0]);
    drop(held);
    assert_eq!(counts(locks.stats()), [2, 1, 1, 1, 0]);
    drop(queued.now_or_never().unwrap());
    assert_eq!(counts(locks.stats()), [2, 2, 1, 1, 0]);
}

#[test]
fn try_and_bounded_multi_key_requests_count_per_key() {
    let locks = LockManager::new();
    let (first, second) = take_order(&locks, 2, 3);
    let base = locks.stats();
    let held = locks.try_acquire_many([1, second, second]).unwrap();
    assert_eq!(counts_since(base, locks.stats()), [2, 0, 0, 0, 0]);
    // Takes `first` at the call and queues on `second`.
    let bounded = locks
        .acquire_many([second, first])
        .enqueue_bounded(1)
        .unwrap();
    assert_eq!(counts_since(base, locks.stats()), [3, 0, 1, 0, 0]);
    drop(held);
    assert_eq!(counts_since(base, locks.stats()), [4, 2, 1, 1, 0]);
    drop(bounded.now_or_never().unwrap());
    assert_eq!(counts_since(base, locks.stats()), [4, 4, 1, 1, 0]);

    // Queued on `first`, it has not reached `second`, and counts nothing
    // for it until it takes it.
    let held = locks.try_acquire_many([1, first]).unwrap();
    assert_eq!(counts_since(base, locks.stats()), [6, 4, 1, 1, 0]);
    let bounded = locks
        .acquire_many([second, first])
        .enqueue_bounded(1)
        .unwrap();
    assert_eq!(counts_since(base, locks.stats()), [6, 4, 2, 1, 0]);
    drop(held);
    assert_eq!(counts_since(base, locks.stats()), [7, 6, 2, 2, 0]);
    drop(bounded.now_or_never().unwrap());
    assert_eq!(counts_since(base, locks.stats()), [8, 8, 2, 2, 0]);
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
    if !cfg!(feature = "diagnostics") {
        assert_eq!(
            snapshot[0].key, "busy",
            "most waiters first without diagnostics"
        );
        assert!(snapshot.iter().all(|held| held.held_for.is_none()));
    }
}

/// A holder the manager sees wait (a guard extending) is reported with the
/// key it waits for, on every key it holds; a plain holder, or an owner
/// that waits no more, with none.
#[test]
fn a_report_names_the_key_a_waiting_holder_waits_for() {
    let locks = LockManager::new();
    let mut owner = locks.try_acquire_many(["a", "b"]).unwrap();
    let plain = locks.try_acquire("c").unwrap();
    let task = Task::new();
    let mut extend = owner.extend(["c"]);
    assert!(task.poll(&mut extend).is_pending());

    let waits = |key| locks.held(key).unwrap().holder_waits_for;
    assert_eq!((waits("a"), waits("b")), (Some("c"), Some("c")));
    assert_eq!(waits("c"), None, "a plain holder");
    let listed = locks.snapshot();
    let a = listed.iter().find(|held| held.key == "a").unwrap();
    assert_eq!(a.holder_waits_for, Some("c"));

    drop(plain);
    assert!(matches!(
        task.poll(&mut extend),
        std::task::Poll::Ready(Ok(()))
    ));
    drop(extend);
    assert_eq!(waits("c"), None, "granted: it waits no more");
    assert_eq!(waits("a"), None);
}

#[test]
fn held_reports_one_key_as_the_snapshot_does() {
    let locks = LockManager::<String>::new();
    assert_eq!(locks.held("a"), None);
    let _a = locks.try_acquire("a".to_string()).unwrap();
    let _b = locks.try_acquire("b".to_string()).unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire("a".to_string());
    assert!(task.poll(&mut waiter).is_pending());

    let held = locks.held("a").expect("held");
    assert_eq!((held.key.as_str(), held.waiters), ("a", 1));
    let listed = locks.snapshot().into_iter().find(|held| held.key == "a");
    // Equal but for the ages, which went on between the two reads.
    let same = |mut held: lock_manager::HeldKey<String>| {
        (held.held_for, held.oldest_waiter) = (None, None);
        held
    };
    assert_eq!(same(listed.unwrap()), same(held));
    assert_eq!(locks.held("b").unwrap().waiters, 0);
    assert_eq!(locks.held("c"), None);
    if !cfg!(feature = "diagnostics") {
        let held = locks.held("a").unwrap();
        assert_eq!((held.held_by, held.oldest_waiter_from), (None, None));
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

#[cfg(feature = "diagnostics")]
mod measured {
    use std::panic::Location;
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    use super::*;

    /// Long enough to tell a measured wait or hold from none.
    const PAUSE: Duration = Duration::from_millis(5);

    /// The location of its own call: compared by file and line with the
    /// call on the same line that a report should name.
    #[track_caller]
    fn here() -> &'static Location<'static> {
        Location::caller()
    }

    fn same_line(recorded: Option<&'static Location<'static>>, expected: &Location<'_>) {
        let recorded = recorded.expect("a call site is recorded");
        assert_eq!(
            (recorded.file(), recorded.line()),
            (expected.file(), expected.line()),
            "recorded {recorded}, expected the line of {expected}"
        );
    }

    // Each acquire must stay on the line of its `held!`: not reformatted.
    #[rustfmt::skip]
    #[test]
    fn every_acquire_method_records_its_callers_line() {
        let locks = Arc::new(LockManager::new());
        let mut sites = Vec::new();
        let mut guards = Vec::new();
        macro_rules! held {
            ($key:expr, $acquire:expr) => {{
                let (site, guard) = (here(), $acquire);
                sites.push(($key, site));
                guards.push(Box::new(guard) as Box<dyn std::fmt::Debug + '_>);
            }};
        }
        let zero = Duration::ZERO;
        held!(1, locks.try_acquire(1).unwrap());
        held!(2, locks.try_acquire_owned(2).unwrap());
        held!(3, locks.acquire(3).now_or_never().unwrap());
        held!(4, locks.acquire_owned(4).now_or_never().unwrap());
        held!(5, locks.acquire(5).enqueue_bounded(0).unwrap().now_or_never().unwrap());
        held!(6, locks.acquire_owned(6).enqueue_bounded(0).unwrap().now_or_never().unwrap());
        held!(7, locks.acquire(7).wait());
        held!(8, locks.acquire_owned(8).wait());
        held!(9, locks.acquire(9).wait_timeout(zero).unwrap());
        held!(10, locks.acquire_many([10]).now_or_never().unwrap());
        held!(11, locks.try_acquire_many([11]).unwrap());
        held!(12, locks.acquire_many([12]).enqueue_bounded(0).unwrap().now_or_never().unwrap());
        held!(13, locks.acquire_many([13]).wait());
        held!(14, locks.acquire_many_owned([14]).wait_timeout(zero).unwrap());
        held!(15, locks.acquire_many_owned([15]).now_or_never().unwrap());
        held!(16, locks.try_acquire_many_owned([16]).unwrap());
        held!(17, locks.acquire_many_owned([17]).enqueue_bounded(0).unwrap().now_or_never().unwrap());
        held!(18, locks.acquire_many_owned([18]).wait());
        held!(19, locks.acquire_owned(19).wait_timeout(zero).unwrap());
        held!(20, locks.acquire_many([20]).wait_timeout(zero).unwrap());
        for (key, site) in sites {
            same_line(locks.held(&key).unwrap().held_by, site);
        }
        drop(guards);

        // The body runs under a lock taken at the `with_lock` call, or at
        // the `acquire` of its recipes (for a thread, and to spawn).
        let report = |key| locks.held(&key).unwrap();
        let (site, held) = (here(), { let _guard = locks.acquire(30).wait(); report(30) });
        same_line(held.held_by, site);
        let (site, held) = (here(), locks.with_lock(31, || async { report(31) }));
        same_line(held.now_or_never().unwrap().held_by, site);
        let (site, held) = (here(), { let _guard = locks.acquire_many([32]).wait(); report(32) });
        same_line(held.held_by, site);
        let (site, held) = (here(), locks.with_locks([33], || async { report(33) }));
        same_line(held.now_or_never().unwrap().held_by, site);
        let (site, held) = (here(), { let queued = locks.acquire_owned(34).enqueue(); async move { let _guard = queued.await; report(34) } });
        same_line(held.now_or_never().unwrap().held_by, site);
        let (site, held) = (here(), { let queued = locks.acquire_many_owned([35]).enqueue(); async move { let _guard = queued.await; report(35) } });
        same_line(held.now_or_never().unwrap().held_by, site);
        let global = || async { lock_manager::global().held("g").unwrap() };
        let (site, held) = (here(), lock_manager::with_lock("g", global));
        same_line(held.now_or_never().unwrap().held_by, site);
    }

    /// The contended key `k` is the second that the multi-key request
    /// takes: it holds `other`, taken first, while it waits for `k`.
    #[test]
    fn a_hand_off_passes_the_holders_site_to_the_oldest_waiter() {
        let locks = LockManager::new();
        let (other, k) = take_order(&locks, "other", "k");
        let (holder_site, holder) = (here(), locks.try_acquire(k).unwrap());
        let (first, second) = (Task::new(), Task::new());
        let (first_site, mut a) = (here(), locks.acquire(k));
        assert!(first.poll(&mut a).is_pending());
        let (second_site, mut b) = (here(), locks.acquire_many([k, other]));
        assert!(second.poll(&mut b).is_pending());

        let held = locks.held(k).unwrap();
        same_line(held.held_by, holder_site);
        same_line(held.oldest_waiter_from, first_site);
        same_line(locks.held(other).unwrap().held_by, second_site);

        drop(holder);
        let held = locks.held(k).unwrap();
        same_line(held.held_by, first_site);
        same_line(held.oldest_waiter_from, second_site);
        drop(first.poll(&mut a));
        let held = locks.held(k).unwrap();
        same_line(held.held_by, second_site);
        assert_eq!((held.oldest_waiter, held.oldest_waiter_from), (None, None));
        drop(second.poll(&mut b));
    }

    #[test]
    fn waits_and_holds_fall_in_the_buckets_of_their_durations() {
        let locks = LockManager::new();
        let start = Instant::now();
        let holder = locks.try_acquire("k").unwrap();
        let task = Task::new();
        let mut waiter = locks.acquire("k");
        assert!(task.poll(&mut waiter).is_pending());
        sleep(PAUSE);
        drop(holder);
        let guard = task.poll(&mut waiter);
        drop(guard);
        let elapsed = start.elapsed();
        drop(locks.try_acquire("quick"));

        let stats = locks.stats();
        assert_eq!((stats.waits.count(), stats.holds.count()), (1, 3));
        // A bucket's bound is at most twice what it holds, and it holds
        // the duration measured: at least the pause, at most `elapsed`.
        let waited = stats.waits.max().unwrap();
        assert!(waited >= PAUSE && waited <= elapsed * 2, "{waited:?}");
        let longest = stats.holds.max().unwrap();
        assert!(longest >= PAUSE && longest <= elapsed * 2, "{longest:?}");
        let (p50, p99) = (stats.holds.quantile(0.5), stats.holds.quantile(0.99));
        assert!(p50 <= p99 && p99 <= Some(longest));
        assert!(
            p50 < Some(PAUSE),
            "two of the three holds were short: {p50:?}"
        );
    }

    #[test]
    fn a_wait_dropped_while_queued_counts_as_abandoned() {
        let locks = LockManager::new();
        let holder = locks.try_acquire(1).unwrap();
        let task = Task::new();
        let mut waiter = locks.acquire(1);
        assert!(task.poll(&mut waiter).is_pending());
        sleep(PAUSE);
        drop(waiter);
        drop(holder);
        let stats = locks.stats();
        assert_eq!((stats.waits.count(), stats.holds.count()), (1, 1));
        assert_eq!(stats.abandoned, stats.waits);
        assert!(stats.abandoned.sum() >= PAUSE, "{:?}", stats.abandoned);
        assert!(stats.abandoned.max() >= Some(PAUSE));
    }

    #[test]
    fn a_wait_dropped_once_granted_counts_as_a_wait_not_abandoned() {
        let locks = LockManager::new();
        let holder = locks.try_acquire(1).unwrap();
        let task = Task::new();
        let mut waiter = locks.acquire(1);
        assert!(task.poll(&mut waiter).is_pending());
        drop(holder);
        drop(waiter);
        let stats = locks.stats();
        assert_eq!((stats.waits.count(), stats.abandoned.count()), (1, 0));
        assert_eq!(stats.cancellations, 1);
    }

    #[test]
    fn a_timed_out_blocking_wait_counts_as_abandoned() {
        let locks = LockManager::new();
        let _holder = locks.try_acquire(1).unwrap();
        assert!(locks.acquire(1).wait_timeout(PAUSE).is_err());
        let stats = locks.stats();
        assert_eq!((stats.waits.count(), stats.abandoned.count()), (1, 1));
        assert!(stats.abandoned.sum() >= PAUSE);
        assert!(stats.abandoned.quantile(0.5) >= Some(PAUSE));
    }

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

#[cfg(feature = "serde")]
#[test]
fn the_reports_serialize() {
    use serde_json::json;
    let locks = LockManager::new();
    let holder = locks.try_acquire("story-7").unwrap();
    let task = Task::new();
    let mut waiter = locks.acquire("story-7");
    assert!(task.poll(&mut waiter).is_pending());
    drop(holder);
    drop(task.poll(&mut waiter));

    let stats = serde_json::to_value(locks.stats()).unwrap();
    assert_eq!(stats["acquisitions"], 2);
    assert_eq!(stats["releases"], 2);
    assert_eq!(stats["contended"], 1);
    assert_eq!(stats["handoffs"], 1);
    assert_eq!(stats["cancellations"], 0);
    let measured = cfg!(feature = "diagnostics");
    assert_eq!(stats["waits"]["count"], if measured { 1 } else { 0 });
    assert_eq!(stats["holds"]["count"], if measured { 2 } else { 0 });
    assert_eq!(stats["busy"], 0);
    assert_eq!(stats["abandoned"]["count"], 0);
    // The buckets with a count of their own, cumulative, bounds in seconds.
    let buckets = stats["holds"]["buckets"].as_array().unwrap();
    let cumulative: Vec<u64> = buckets
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .collect();
    assert_eq!(
        cumulative.last().copied().unwrap_or(0),
        if measured { 2 } else { 0 }
    );
    assert!(cumulative.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(buckets.iter().all(|b| b["le"].as_f64().unwrap() > 0.0));
    let sum = stats["holds"]["sum"].as_f64().unwrap();
    assert_eq!(sum > 0.0, measured);
    // Another process reads it back, figures and all.
    let read: Stats = serde_json::from_value(stats).unwrap();
    assert_eq!(read, locks.stats());

    let _held = locks.try_acquire("story-8").unwrap();
    let held = serde_json::to_value(locks.held("story-8").unwrap()).unwrap();
    assert_eq!(held["key"], "story-8");
    assert_eq!(held["waiters"], 0);
    assert_eq!(held["oldest_waiter"], json!(null));
    assert_eq!(held["oldest_waiter_from"], json!(null));
    if measured {
        let site = held["held_by"].as_str().unwrap();
        assert!(site.starts_with(file!()), "{site}");
        let held_for = held["held_for"].as_f64().unwrap();
        assert!(held_for > 0.0 && held_for < 60.0, "{held_for} s");
    } else {
        assert_eq!(held["held_by"], json!(null));
        assert_eq!(held["held_for"], json!(null));
    }
}

#[cfg(feature = "serde")]
#[test]
fn a_histogram_reads_back_and_lists_no_infinite_bucket() {
    use lock_manager::Histogram;
    use serde_json::json;
    // One duration in the first bucket, one past the last bound: the
    // count holds the second, and no bucket lists `+Inf`.
    let (first, _) = Histogram::default().buckets().next().unwrap();
    let read: Histogram = serde_json::from_value(json!({
        "count": 2,
        "sum": 100.0,
        "buckets": [{ "le": first, "count": 1 }],
    }))
    .unwrap();
    assert_eq!(read.count(), 2);
    assert!(read.quantile(1.0).unwrap() > std::time::Duration::from_secs(60));
    let written = serde_json::to_value(read).unwrap();
    assert_eq!(written["buckets"], json!([{ "le": first, "count": 1 }]));
    assert_eq!(written["count"], 2);
}

#[cfg(feature = "serde")]
#[test]
fn what_is_not_a_report_is_refused_with_what_was_expected() {
    let error = serde_json::from_value::<Stats>(serde_json::json!(3)).unwrap_err();
    assert!(error.to_string().contains("lock-manager stats"), "{error}");
    let error = serde_json::from_value::<lock_manager::Histogram>(serde_json::json!("x"));
    let error = error.unwrap_err().to_string();
    assert!(error.contains("a lock-manager histogram"), "{error}");
    let bucket = serde_json::json!({ "count": 1, "sum": 0.0, "buckets": [3] });
    let error = serde_json::from_value::<lock_manager::Histogram>(bucket);
    let error = error.unwrap_err().to_string();
    assert!(error.contains("a histogram bucket"), "{error}");
}
