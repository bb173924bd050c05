//! What the manager reports about itself: running counters and the
//! distributions of waits and holds ([`Stats`], [`Histogram`]), and the keys
//! held right now ([`HeldKey`]). Plain data, filled in by each shard's state
//! under the mutex it takes anyway, and added up by [`LockManager::stats`]
//! and [`LockManager::snapshot`].
//!
//! [`LockManager::stats`]: crate::LockManager::stats
//! [`LockManager::snapshot`]: crate::LockManager::snapshot

use std::ops::AddAssign;
use std::panic::Location;
use std::time::Duration;

use crate::trace::Stamp;

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
/// With the `diagnostics` cargo feature, [`waits`](Self::waits) and
/// [`holds`](Self::holds) also tell how long waits and holds took; without
/// it they stay empty. Every counter only grows, so the difference of two
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
    /// key but not yet polled.
    pub cancellations: u64,
    /// Waits refused as deadlocks: each an
    /// [`extend`](crate::MultiGuard::extend) whose wait would have closed
    /// a cycle, counted when it returns [`Deadlock`](crate::Deadlock) (an
    /// extend refused, then dropped before it was polled again, is not).
    pub deadlocks: u64,
    /// How long each contended acquire waited, from joining the queue to
    /// the hand-off: one entry per hand-off. Empty without the
    /// `diagnostics` feature.
    pub waits: Histogram,
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
        self.waits += other.waits;
        self.holds += other.holds;
    }
}

/// The number of buckets of a [`Histogram`].
const BUCKETS: usize = 27;

/// How many durations fell in each of 27 log-scale buckets, from about a
/// microsecond to about a minute: the distribution of waits or holds in
/// [`Stats`].
///
/// Bucket 0 counts durations under 1.024 µs (2^10 ns); bucket `i` those
/// from 2^(9 + i) up to 2^(10 + i) ns, each twice as wide as the one
/// before; the last, bucket 26, those from 2^35 ns (34.4 s) up, however
/// long. A bucket is named by its upper bound, so every figure read from a
/// histogram ([`quantile`](Self::quantile), [`max`](Self::max)) is an upper
/// bound within a factor of two, except in the last bucket, whose bound,
/// 2^36 ns (68.7 s), also stands for anything longer.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// drop(locks.try_acquire(1));
/// let holds = locks.stats().holds;
/// if cfg!(feature = "diagnostics") {
///     assert_eq!(holds.count(), 1);
///     assert!(holds.quantile(0.5).unwrap() <= holds.max().unwrap());
/// } else {
///     assert!(holds.is_empty()); // nothing is measured without the feature
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
}

impl Histogram {
    /// Counts one more `duration`.
    #[cfg_attr(not(feature = "diagnostics"), allow(dead_code))]
    #[inline]
    fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bits = (u64::BITS - nanos.leading_zeros()) as usize;
        self.counts[bits.saturating_sub(10).min(BUCKETS - 1)] += 1;
    }

    /// The upper bound of bucket `index`.
    fn bound(index: usize) -> Duration {
        Duration::from_nanos(1 << (10 + index))
    }

    /// How many durations were counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// assert_eq!(locks.stats().waits.count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether nothing was counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// assert!(locks.stats().holds.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The duration that a fraction `q` of the counted durations do not
    /// exceed, as the upper bound of its bucket: `quantile(0.5)` is the
    /// median, `quantile(0.99)` the 99th percentile. `None` when empty.
    ///
    /// # Panics
    ///
    /// If `q` is not within `0.0..=1.0`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// for key in 0..100 {
    ///     drop(locks.try_acquire(key));
    /// }
    /// let holds = locks.stats().holds;
    /// match holds.quantile(0.99) {
    ///     Some(p99) => println!("99% of holds took at most {p99:?}"),
    ///     None => assert!(!cfg!(feature = "diagnostics")),
    /// }
    /// ```
    #[track_caller]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        assert!(
            (0.0..=1.0).contains(&q),
            "lock-manager: a quantile must be within 0.0..=1.0, not {q}"
        );
        // The rank of the sample sought, 1-based; at least the first.
        let rank = ((q * self.count() as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.counts.iter().enumerate().find_map(|(index, &count)| {
            seen += count;
            (seen >= rank).then(|| Self::bound(index))
        })
    }

    /// The upper bound of the highest bucket counted in: the longest
    /// duration, within a factor of two. `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::new();
    /// drop(locks.try_acquire("a"));
    /// let holds = locks.stats().holds;
    /// assert_eq!(holds.max().is_some(), cfg!(feature = "diagnostics"));
    /// ```
    pub fn max(&self) -> Option<Duration> {
        let last = self.counts.iter().rposition(|&count| count > 0)?;
        Some(Self::bound(last))
    }

    /// Every bucket in order, as its upper bound and its count: the raw
    /// figures, for a metrics system's own histogram.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// let buckets: Vec<_> = locks.stats().waits.buckets().collect();
    /// assert_eq!(buckets.len(), 27);
    /// assert_eq!(buckets[0], (Duration::from_nanos(1024), 0));
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .map(|(index, &count)| (Self::bound(index), count))
    }

    /// What was counted after `earlier`, an older report of the same
    /// histogram: the distribution over the interval between the two.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::new();
    /// drop(locks.try_acquire(1));
    /// let before = locks.stats();
    /// drop(locks.try_acquire(2));
    /// drop(locks.try_acquire(3));
    /// let after = locks.stats();
    /// let recent = after.holds.since(&before.holds);
    /// assert_eq!(recent.count(), if cfg!(feature = "diagnostics") { 2 } else { 0 });
    /// ```
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut counts = self.counts;
        for (count, &before) in counts.iter_mut().zip(&earlier.counts) {
            *count = count.saturating_sub(before);
        }
        Histogram { counts }
    }
}

impl AddAssign for Histogram {
    fn add_assign(&mut self, other: Self) {
        for (count, added) in self.counts.iter_mut().zip(other.counts) {
            *count += added;
        }
    }
}

/// A shard's histograms of waits and holds: zero-sized, and recording
/// nothing, without the `diagnostics` feature.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    #[cfg(feature = "diagnostics")]
    waits: Histogram,
    #[cfg(feature = "diagnostics")]
    holds: Histogram,
}

#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
impl Timings {
    /// Counts a wait from `since` to `now`.
    #[inline]
    pub(crate) fn waited(&mut self, since: Stamp, now: Stamp) {
        #[cfg(feature = "diagnostics")]
        self.waits.record(now.saturating_duration_since(since));
    }

    /// Counts a hold from `since` to `now`.
    #[inline]
    pub(crate) fn held(&mut self, since: Stamp, now: Stamp) {
        #[cfg(feature = "diagnostics")]
        self.holds.record(now.saturating_duration_since(since));
    }

    /// Adds the histograms to `stats`.
    pub(crate) fn add_to(&self, stats: &mut Stats) {
        #[cfg(feature = "diagnostics")]
        {
            stats.waits += self.waits;
            stats.holds += self.holds;
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

    fn histogram(durations: &[Duration]) -> Histogram {
        let mut histogram = Histogram::default();
        for &duration in durations {
            histogram.record(duration);
        }
        histogram
    }

    fn bucket_of(duration: Duration) -> usize {
        let counts = histogram(&[duration]).counts;
        counts.iter().position(|&count| count == 1).unwrap()
    }

    #[test]
    fn buckets_double_from_a_microsecond_to_a_minute() {
        let nanos = Duration::from_nanos;
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(nanos(1023)), 0);
        assert_eq!(bucket_of(nanos(1024)), 1);
        assert_eq!(bucket_of(nanos(2047)), 1);
        assert_eq!(bucket_of(nanos(2048)), 2);
        assert_eq!(bucket_of(nanos((1 << 35) - 1)), 25);
        assert_eq!(bucket_of(nanos(1 << 35)), 26);
        assert_eq!(bucket_of(Duration::from_secs(3600)), 26);
        assert_eq!(bucket_of(Duration::MAX), 26);
        let bounds: Vec<_> = Histogram::default()
            .buckets()
            .map(|(bound, _)| bound)
            .collect();
        assert_eq!(bounds.len(), BUCKETS);
        assert_eq!(bounds[0], nanos(1024));
        assert!(bounds.windows(2).all(|pair| pair[1] == pair[0] * 2));
        assert_eq!(bounds[BUCKETS - 1], nanos(1 << 36));
    }

    #[test]
    fn quantiles_name_the_bucket_of_the_ranked_duration() {
        let micros = Duration::from_micros;
        // 98 short, one 100 µs, one 10 ms.
        let mut durations = vec![micros(3); 98];
        durations.extend([micros(100), micros(10_000)]);
        let histogram = histogram(&durations);
        assert_eq!(histogram.count(), 100);
        assert_eq!(histogram.quantile(0.0), Some(Duration::from_nanos(4096)));
        assert_eq!(histogram.quantile(0.5), Some(Duration::from_nanos(4096)));
        assert_eq!(histogram.quantile(0.98), Some(Duration::from_nanos(4096)));
        assert_eq!(
            histogram.quantile(0.99),
            Some(Duration::from_nanos(131_072))
        );
        assert_eq!(
            histogram.quantile(1.0),
            Some(Duration::from_nanos(16_777_216))
        );
        assert_eq!(histogram.max(), histogram.quantile(1.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(Histogram::default().max(), None);
        assert!(Histogram::default().is_empty() && !histogram.is_empty());
    }

    #[test]
    #[should_panic(expected = "within 0.0..=1.0, not 1.5")]
    fn a_quantile_past_one_panics() {
        Histogram::default().quantile(1.5);
    }

    #[test]
    #[should_panic(expected = "within 0.0..=1.0, not NaN")]
    fn a_nan_quantile_panics() {
        Histogram::default().quantile(f64::NAN);
    }

    #[test]
    fn stats_add_up_field_by_field() {
        let counts = |n| Stats {
            acquisitions: n,
            releases: n + 1,
            contended: n + 2,
            handoffs: n + 3,
            cancellations: n + 4,
            deadlocks: n + 5,
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
            ..
        } = total;
        let sums = [
            acquisitions,
            releases,
            contended,
            handoffs,
            cancellations,
            deadlocks,
        ];
        assert_eq!(sums, [110, 112, 114, 116, 118, 120]);
    }

    #[test]
    fn histograms_add_up_and_subtract() {
        let micros = Duration::from_micros;
        let earlier = histogram(&[micros(1), micros(50)]);
        let mut later = earlier;
        later += histogram(&[micros(50), micros(900)]);
        assert_eq!(later.count(), 4);
        let interval = later.since(&earlier);
        assert_eq!(interval, histogram(&[micros(50), micros(900)]));
        // A report older than `earlier` has nothing to take away: no wrap.
        assert_eq!(earlier.since(&later), Histogram::default());

        let mut stats = Stats::default();
        stats += Stats {
            waits: earlier,
            holds: interval,
            ..Stats::default()
        };
        assert_eq!((stats.waits, stats.holds), (earlier, interval));
    }
}
