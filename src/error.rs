//! The ways an acquire can give up: [`Busy`], the refusal of a bounded
//! enqueue, [`TimedOut`], the end of a blocking wait with a deadline, and
//! [`Error`], either one, for callers who use `?` over several forms.

use std::error::Error as StdError;
use std::fmt;

/// Returned by [`Acquire::enqueue_bounded`] and
/// [`AcquireMany::enqueue_bounded`] when a key already has as many waiters
/// as the caller allows: the request was refused at once and changed
/// nothing.
///
/// [`Acquire::enqueue_bounded`]: crate::SingleAcquire::enqueue_bounded
/// [`AcquireMany::enqueue_bounded`]: crate::MultiAcquire::enqueue_bounded
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// let _held = locks.try_acquire("k");
/// let busy = locks.acquire("k").enqueue_bounded(0).unwrap_err();
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
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let _held = locks.try_acquire(1);
    /// let _queued = locks.acquire(1).enqueue();
    /// assert_eq!(locks.acquire(1).enqueue_bounded(1).unwrap_err().waiters(), 1);
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

impl StdError for Busy {}

/// Returned by [`wait_timeout`] and [`wait_deadline`] when the time ran out
/// before the lock was handed over. The caller left the queue as a dropped
/// [`Acquire`] does: it holds nothing, and a lock handed to it at the last
/// moment went on to the next waiter.
///
/// [`wait_timeout`]: crate::SingleAcquire::wait_timeout
/// [`wait_deadline`]: crate::SingleAcquire::wait_deadline
/// [`Acquire`]: crate::Acquire
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lock_manager::{LockManager, TimedOut};
///
/// let locks = LockManager::new();
/// let _held = locks.acquire("k").wait();
/// let timed_out = locks.acquire("k").wait_timeout(Duration::from_millis(1)).unwrap_err();
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

impl StdError for TimedOut {}

/// Any way an acquire gave up, for a caller that uses `?` over several
/// forms: [`Busy`] and [`TimedOut`] convert into it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lock_manager::{Error, LockManager};
///
/// fn save(locks: &LockManager<u64>, story: u64) -> Result<(), Error> {
///     let waiting = locks.acquire(story).enqueue_bounded(8)?; // Busy
///     let _guard = waiting.wait_timeout(Duration::from_millis(50))?; // TimedOut
///     // read, modify and write the story
///     Ok(())
/// }
///
/// let locks = LockManager::new();
/// assert!(save(&locks, 1).is_ok());
/// let _held = locks.try_acquire(1);
/// assert!(matches!(save(&locks, 1), Err(Error::TimedOut(_))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A bounded enqueue found too many waiters.
    Busy(Busy),
    /// A blocking wait reached its deadline.
    TimedOut(TimedOut),
}

impl From<Busy> for Error {
    fn from(busy: Busy) -> Self {
        Error::Busy(busy)
    }
}

impl From<TimedOut> for Error {
    fn from(timed_out: TimedOut) -> Self {
        Error::TimedOut(timed_out)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Busy(busy) => busy.fmt(f),
            Error::TimedOut(timed_out) => timed_out.fmt(f),
        }
    }
}

/// Displays as the error it holds, whose message it is: no `source`.
impl StdError for Error {}
