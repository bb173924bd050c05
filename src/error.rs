//! The errors of acquires that may give up: [`Busy`], the refusal of a
//! bounded acquire, and [`TimedOut`], the end of a blocking wait with a
//! deadline.

use std::error::Error;
use std::fmt;

/// Returned by [`LockManager::acquire_bounded`] and
/// [`LockManager::acquire_many_bounded`] when a key already has as many
/// waiters as the caller allows: the request was refused at once and
/// changed nothing.
///
/// [`LockManager::acquire_bounded`]: crate::LockManager::acquire_bounded
/// [`LockManager::acquire_many_bounded`]: crate::LockManager::acquire_many_bounded
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// let _held = locks.try_acquire("k");
/// let busy = locks.acquire_bounded("k", 0).unwrap_err();
/// assert_eq!(busy.waiters(), 0);
/// assert_eq!(busy.to_string(), "the key is held and has 0 waiters, the most allowed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub(crate) waiters: usize,
}

impl Busy {
    /// How many callers were waiting for the key when this one was refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::FutureExt;
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let _held = locks.try_acquire(1);
    /// let mut queued = locks.acquire(1);
    /// assert!((&mut queued).now_or_never().is_none());
    /// assert_eq!(locks.acquire_bounded(1, 1).unwrap_err().waiters(), 1);
    /// ```
    pub fn waiters(&self) -> usize {
        self.waiters
    }
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the key is held and has {} waiters, the most allowed",
            self.waiters
        )
    }
}

impl Error for Busy {}

/// Returned by the blocking acquires with a deadline, such as
/// [`LockManager::acquire_blocking_timeout`], when the time ran out before
/// the lock was handed over. The caller left the queue as a dropped
/// [`Acquire`] does: it holds nothing, and a lock handed to it at the last
/// moment went on to the next waiter.
///
/// [`LockManager::acquire_blocking_timeout`]: crate::LockManager::acquire_blocking_timeout
/// [`Acquire`]: crate::Acquire
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lock_manager::{LockManager, TimedOut};
///
/// let locks = LockManager::new();
/// let _held = locks.acquire_blocking("k");
/// let timed_out = locks.acquire_blocking_timeout("k", Duration::from_millis(1)).unwrap_err();
/// assert_eq!(timed_out, TimedOut);
/// assert_eq!(timed_out.to_string(), "timed out waiting for a lock");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out waiting for a lock")
    }
}

impl Error for TimedOut {}
