//! What the manager reports about itself: running counters and the
//! distributions of waits and holds ([`Stats`], with `histogram.rs`), and the keys
//! held right now ([`HeldKey`]). Plain data, filled in by each shard's state
//! under the mutex it takes anyway, and added up by [`LockManager::stats`]
//! and [`LockManager::snapshot`].
//!
//! [`LockManager::stats`]: crate::LockManager::stats
//! [`LockManager::snapshot`]: crate::LockManager::snapshot

use std::ops::AddAssign;
use std::panic::Location;
use std::time::Duration;

use crate::histogram::Histogram;
use crate::trace::{Span, Stamp};

/// Counts of what a [`LockManager`] has done since it was created.
///
/// Each shard keeps its own counters under the mutex it takes anyway, so
/// counting costs no atomic operation; [`LockManager::stats`] adds them up.
/// A multi-key request counts once per key.
///
/// Every key acquired is released once: `acquisitions - releases` is the
/// number of keys held (those handed to a waiter not yet polled included),
/// so a manager left idle reports them equal.
///
/// With the `diagnostics` cargo feature ([`DIAGNOSTICS`](crate::DIAGNOSTICS)
/// says whether it is on), [`waits`](Self::waits),
/// [`abandoned`](Self::abandoned) and [`holds`](Self::holds) also tell how
/// long waits and holds took; without it they stay empty. Every counter only grows, so the difference of two
/// reports taken an interval apart (the counters subtracted,
/// [`Histogram::since`] for the distributions) describes that interval:
/// divide a count by the interval's length for a rate.
///
/// [`LockManager`]: crate::LockManager
/// [`LockManager::stats`]: crate::LockManager::stats
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// let guard = locks.try_acquire("a");
/// let stats = locks.stats();
/// assert_eq!(stats.acquisitions, 1);
/// assert_eq!(stats.releases, 0);
/// assert_eq!(stats.contended, 0);
///
/// drop(guard);
/// assert_eq!(locks.stats().releases, 1);
/// ```
///
/// # Serialization
///
/// With the `serde` cargo feature, `Stats` implements `Serialize` and
/// `Deserialize` (so another process can read a report back and call
/// [`Histogram::quantile`] or [`Histogram::since`] on it). In JSON:
///
/// ```json
/// {
///   "acquisitions": 3, "releases": 3, "contended": 1, "handoffs": 1,
///   "cancellations": 0, "deadlocks": 0, "busy": 2,
///   "waits": {
///     "count": 1, "sum": 0.000183,
///     "buckets": [{ "le": 0.000194, "count": 1 }]
///   },
///   "abandoned": { "count": 0, "sum": 0.0, "buckets": [] },
///   "holds": { "count": 3, "sum": 0.00041, "buckets": [...] }
/// }
/// ```
///
/// - Counters are plain integers, in the order of the fields above.
/// - A [`Histogram`] is `count` (every duration), `sum` (their total, in
///   seconds) and `buckets`: each bucket that counted something, as its
///   inclusive upper bound `le` in seconds and the count of durations up
///   to it, cumulative as a Prometheus histogram's `_bucket{le}`. The last
///   bucket, `+Inf`, is left out: its count is `count`.
/// - Reading back, a counter or histogram left out reads as zero, a field
///   not listed here is skipped (so a newer report still reads), and a
///   bound that is not one of [`Histogram::buckets`]'s is an error.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use lock_manager::{LockManager, Stats};
///
/// let locks = LockManager::new();
/// let guard = locks.try_acquire("a");
/// assert!(locks.try_acquire("a").is_none());
/// drop(guard);
///
/// let json = serde_json::to_value(locks.stats()).unwrap();
/// assert_eq!(json["acquisitions"], 1);
/// assert_eq!(json["busy"], 1);
/// assert_eq!(json["holds"]["count"], u64::from(lock_manager::DIAGNOSTICS));
///
/// let read: Stats = serde_json::from_value(json).unwrap();
/// assert_eq!(read, locks.stats());
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keys granted, whether taken free or handed over by a release.
    pub acquisitions: u64,
    /// Keys given up: by a guard, by a multi-key request dropped before it
    /// had every key (for those it had), or by a waiter dropped after the
    /// key was handed to it.
    pub releases: u64,
    /// Requests that found their key held and had to queue.
    pub contended: u64,
    /// Keys handed straight from a release to the next waiter.
    pub handoffs: u64,
    /// Waiters dropped before they took their key: queued, or handed the
    /// key but not yet polled. A wait given up at a deadline
    /// ([`wait_timeout`](crate::SingleAcquire::wait_timeout), or a runtime's
    /// timeout around the future) is a drop, and so is an extend refused
    /// as a deadlock, which [`deadlocks`](Self::deadlocks) counts too.
    pub cancellations: u64,
    /// Waits refused as deadlocks: each an
    /// [`extend`](crate::MultiGuard::extend) whose wait would have closed
    /// a cycle, counted when it returns [`Deadlock`](crate::Deadlock) (an
    /// extend refused, then dropped before it was polled again, is not).
    pub deadlocks: u64,
    /// Requests refused at once, without waiting: a `try_acquire` (or
    /// `try_acquire_many`, or `try_extend`) that found a key held, and a
    /// bounded request refused as [`Busy`](crate::Busy). Counted once
    /// per request.
    pub busy: u64,
    /// How long each wait lasted, from joining a key's queue to its end,
    /// whatever the end: handed the key (one entry per hand-off), or
    /// dropped while queued (a timeout, a cancellation, an extend refused
    /// as a deadlock). Empty without the `diagnostics` feature.
    pub waits: Histogram,
    /// The waits among [`waits`](Self::waits) that ended without the key:
    /// the waiters dropped while queued. Empty without the `diagnostics`
    /// feature.
    pub abandoned: Histogram,
    /// How long each key was held, from its taking (free, or handed over)
    /// to its release: one entry per release. Empty without the
    /// `diagnostics` feature.
    pub holds: Histogram,
}

impl AddAssign for Stats {
    fn add_assign(&mut self, other: Self) {
        self.acquisitions += other.acquisitions;
        self.releases += other.releases;
        self.contended += other.contended;
        self.handoffs += other.handoffs;
        self.cancellations += other.cancellations;
        self.deadlocks += other.deadlocks;
        self.busy += other.busy;
        self.waits += other.waits;
        self.abandoned += other.abandoned;
        self.holds += other.holds;
    }
}

/// A shard's histograms of waits and holds: zero-sized, and recording
/// nothing, without the `diagnostics` feature.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    #[cfg(feature = "diagnostics")]
    waits: Histogram,
    #[cfg(feature = "diagnostics")]
    abandoned: Histogram,
    #[cfg(feature = "diagnostics")]
    holds: Histogram,
}

#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
impl Timings {
    /// Counts a wait that ended with the key, which took `waited`.
    #[inline]
    pub(crate) fn waited(&mut self, waited: Span) {
        #[cfg(feature = "diagnostics")]
        self.waits.record(waited);
    }

    /// Counts a wait that ended without the key, which took `waited`.
    #[inline]
    pub(crate) fn abandoned(&mut self, waited: Span) {
        #[cfg(feature = "diagnostics")]
        {
            self.waits.record(waited);
            self.abandoned.record(waited);
        }
    }

    /// Counts a hold from `since` to `now`.
    #[inline]
    pub(crate) fn held(&mut self, since: Stamp, now: Stamp) {
        #[cfg(feature = "diagnostics")]
        self.holds.record(crate::trace::between(since, now));
    }

    /// Adds the histograms that counted anything to `stats`: most shards of
    /// a manager with few keys never do, and adding their 106 zeros each
    /// took four fifths of a test that reads `stats()` after every step.
    pub(crate) fn add_to(&self, stats: &mut Stats) {
        #[cfg(feature = "diagnostics")]
        for (total, part) in [
            (&mut stats.waits, &self.waits),
            (&mut stats.abandoned, &self.abandoned),
            (&mut stats.holds, &self.holds),
        ] {
            if !part.is_empty() {
                *total += *part;
            }
        }
    }
}

/// One held key, in a [`LockManager::snapshot`] or from
/// [`LockManager::held`]: the answer to "which lock is stuck, and who holds
/// it?".
///
/// The ages and call sites are measured with the `diagnostics` cargo
/// feature only: without it, [`held_for`](Self::held_for),
/// [`held_by`](Self::held_by), [`oldest_waiter`](Self::oldest_waiter) and
/// [`oldest_waiter_from`](Self::oldest_waiter_from) are always `None`.
///
/// [`LockManager::snapshot`]: crate::LockManager::snapshot
/// [`LockManager::held`]: crate::LockManager::held
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// let _guard = locks.try_acquire("report");
/// let held = locks.held("report").unwrap();
/// assert_eq!(held.key, "report");
/// assert_eq!(held.waiters, 0);
/// if let Some(site) = held.held_by {
///     println!("held by {site}"); // the `try_acquire` above
/// }
/// assert_eq!(held.held_by.is_some(), cfg!(feature = "diagnostics"));
/// ```
///
/// # Serialization
///
/// With the `serde` cargo feature, `HeldKey<K>` implements `Serialize`
/// when `K` does (an `Arc<str>` key needs serde's own `rc` feature for
/// that). Ages are seconds, call sites `"file:line:column"`, and what was
/// not measured is `null`:
///
/// ```json
/// { "key": "report", "waiters": 2, "held_for": 3.1, "held_by": "src/store.rs:42:9",
///   "oldest_waiter": 0.4, "oldest_waiter_from": "src/api.rs:88:13",
///   "holder_waits_for": null }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldKey<K> {
    /// The key.
    pub key: K,
    /// How many requests wait for it behind its holder.
    pub waiters: usize,
    /// How long the current holder has held it (since it was taken free or
    /// handed over); `None` without the `diagnostics` feature.
    pub held_for: Option<Duration>,
    /// Where the current holder asked for it: the call of `acquire` (or
    /// another acquire method) in the caller's code; `None` without the
    /// `diagnostics` feature.
    pub held_by: Option<&'static Location<'static>>,
    /// How long its oldest waiter has waited; `None` when nobody waits or
    /// without the `diagnostics` feature.
    pub oldest_waiter: Option<Duration>,
    /// Where its oldest waiter asked for it; `None` when nobody waits or
    /// without the `diagnostics` feature.
    pub oldest_waiter_from: Option<&'static Location<'static>>,
    /// The key the holder itself waits for, if the manager sees it wait:
    /// a guard's [`extend`](crate::MultiGuard::extend), or a multi-key
    /// request once any extend has waited on the manager. `None` for a
    /// holder that waits for nothing, or that holds a plain guard: a task
    /// that holds a plain guard and acquires another key is not seen.
    pub holder_waits_for: Option<K>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_up_field_by_field() {
        let counts = |n| Stats {
            acquisitions: n,
            releases: n + 1,
            contended: n + 2,
            handoffs: n + 3,
            cancellations: n + 4,
            deadlocks: n + 5,
            busy: n + 6,
            ..Stats::default()
        };
        let mut total = counts(10);
        total += counts(100);
        let Stats {
            acquisitions,
            releases,
            contended,
            handoffs,
            cancellations,
            deadlocks,
            busy,
            ..
        } = total;
        let sums = [
            acquisitions,
            releases,
            contended,
            handoffs,
            cancellations,
            deadlocks,
            busy,
        ];
        assert_eq!(sums, [110, 112, 114, 116, 118, 120, 122]);
    }
}
