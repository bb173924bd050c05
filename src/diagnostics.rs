//! What the manager can tell about itself: running counters ([`Stats`]) and
//! a snapshot of the keys held right now ([`HeldKey`]), with how long they
//! have been held when the `timing` feature is on.

use std::hash::{BuildHasher, Hash};
use std::ops::AddAssign;
use std::time::Duration;

use crate::manager::LockManager;

/// Counts of what a [`LockManager`] has done since it was created.
///
/// Each shard keeps its own counters under the mutex it takes anyway, so
/// counting costs no atomic operation; [`LockManager::stats`] adds them up.
/// A multi-key request counts once per key.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// drop(locks.try_acquire("a"));
/// let stats = locks.stats();
/// assert_eq!(stats.acquisitions, 1);
/// assert_eq!(stats.contended, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keys granted, whether taken free or handed over by a release.
    pub acquisitions: u64,
    /// Requests that found their key held and had to queue.
    pub contended: u64,
    /// Keys handed straight from a release to the next waiter.
    pub handoffs: u64,
    /// Waiters dropped before they took their key: queued, or handed the
    /// key but not yet polled.
    pub cancellations: u64,
}

impl AddAssign for Stats {
    fn add_assign(&mut self, other: Self) {
        self.acquisitions += other.acquisitions;
        self.contended += other.contended;
        self.handoffs += other.handoffs;
        self.cancellations += other.cancellations;
    }
}

/// One held key in a [`LockManager::snapshot`]: the answer to "which lock is
/// stuck?".
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// let _guard = locks.try_acquire("report");
/// let held = &locks.snapshot()[0];
/// assert_eq!(held.key, "report");
/// assert_eq!(held.waiters, 0);
/// // Ages are measured with the `timing` feature only.
/// assert_eq!(held.held_for.is_some(), cfg!(feature = "timing"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldKey<K> {
    /// The key.
    pub key: K,
    /// How many requests wait for it behind its holder.
    pub waiters: usize,
    /// How long the current holder has held it (since it was taken free or
    /// handed over); `None` without the `timing` feature.
    pub held_for: Option<Duration>,
    /// How long its oldest waiter has waited; `None` when nobody waits or
    /// without the `timing` feature.
    pub oldest_waiter: Option<Duration>,
}

impl<K, S> LockManager<K, S> {
    /// The manager's counters, added up over its shards.
    ///
    /// Shards are read one after another, so counts taken while other
    /// threads work may be a little apart from each other.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    /// use futures::FutureExt;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire(1).await;
    /// let mut waiter = locks.acquire(1);
    /// assert!((&mut waiter).now_or_never().is_none()); // queued
    /// drop(holder); // hands 1 to the waiter
    /// drop(waiter); // which gives it up unpolled
    ///
    /// let stats = locks.stats();
    /// assert_eq!(stats.acquisitions, 2);
    /// assert_eq!(stats.contended, 1);
    /// assert_eq!(stats.handoffs, 1);
    /// assert_eq!(stats.cancellations, 1);
    /// # });
    /// ```
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for shard in self.shards().iter() {
            total += shard.lock().stats();
        }
        total
    }
}

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Every key held right now, with its number of waiters and, with the
    /// `timing` feature, how long it has been held and how long its oldest
    /// waiter has waited.
    ///
    /// With `timing`, the longest-held key comes first; without it, the key
    /// with the most waiters. Shards are read one after another, so the
    /// snapshot is exact per key but not one instant across keys.
    ///
    /// The keys are cloned while their shard's mutex is held, so `K`'s
    /// `Clone` must not call back into the manager here.
    ///
    /// # Timing
    ///
    /// Ages need a clock read on every acquire and hand-off, which costs
    /// about half of an uncontended acquire and release (see the README's
    /// performance section); hence the opt-in `timing` feature. The counts
    /// are always there.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    /// use futures::FutureExt;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let _stuck = locks.acquire("stuck").await;
    /// let mut waiter = locks.acquire("stuck");
    /// assert!((&mut waiter).now_or_never().is_none());
    /// let _fine = locks.acquire("fine").await;
    ///
    /// let snapshot = locks.snapshot();
    /// assert_eq!(snapshot.len(), 2);
    /// let stuck = snapshot.iter().find(|held| held.key == "stuck").unwrap();
    /// assert_eq!(stuck.waiters, 1);
    /// # });
    /// ```
    pub fn snapshot(&self) -> Vec<HeldKey<K>> {
        let mut held = Vec::new();
        for shard in self.shards().iter() {
            shard.lock().report(&mut held);
        }
        // Without timing every age is `None`, and the waiters decide.
        held.sort_by(|a, b| {
            (b.held_for, b.waiters, b.oldest_waiter).cmp(&(a.held_for, a.waiters, a.oldest_waiter))
        });
        held
    }
}

/// The clock behind the ages of a snapshot: `Instant` with the `timing`
/// feature, and without it a zero-sized stand-in that reads no clock.
pub(crate) mod clock {
    use std::time::Duration;

    #[cfg(feature = "timing")]
    pub(crate) type Stamp = std::time::Instant;

    /// The time something started, not measured.
    #[cfg(not(feature = "timing"))]
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Stamp;

    #[inline]
    pub(crate) fn now() -> Stamp {
        #[cfg(feature = "timing")]
        return std::time::Instant::now();
        #[cfg(not(feature = "timing"))]
        Stamp
    }

    /// How long ago `stamp` was taken, if the clock is on.
    #[cfg_attr(not(feature = "timing"), allow(unused_variables))]
    pub(crate) fn age(stamp: Stamp) -> Option<Duration> {
        #[cfg(feature = "timing")]
        return Some(stamp.elapsed());
        #[cfg(not(feature = "timing"))]
        None
    }
}
