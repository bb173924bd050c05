//! What the manager reports about itself: running counters ([`Stats`]) and
//! the keys held right now ([`HeldKey`]). Plain data, filled in by each
//! shard's state and added up by [`LockManager::stats`] and
//! [`LockManager::snapshot`].
//!
//! [`LockManager::stats`]: crate::LockManager::stats
//! [`LockManager::snapshot`]: crate::LockManager::snapshot

use std::ops::AddAssign;
use std::time::Duration;

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
}

impl AddAssign for Stats {
    fn add_assign(&mut self, other: Self) {
        self.acquisitions += other.acquisitions;
        self.releases += other.releases;
        self.contended += other.contended;
        self.handoffs += other.handoffs;
        self.cancellations += other.cancellations;
    }
}

/// One held key in a [`LockManager::snapshot`]: the answer to "which lock is
/// stuck?".
///
/// [`LockManager::snapshot`]: crate::LockManager::snapshot
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
