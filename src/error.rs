//! The ways an acquire can give up: [`Busy`], the refusal of a bounded
//! enqueue, [`TimedOut`], the end of a blocking wait with a deadline,
//! [`Deadlock`], the refusal of a wait that would close a cycle, and
//! [`Error`], any one of them, for callers who use `?` over several forms.

use std::error::Error as StdError;
use std::fmt;
use std::panic::Location;

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

/// The refusal of a guard's [`extend`](crate::MultiGuard::extend): its
/// wait would have closed a cycle of requests, each waiting for a key the
/// next one holds, so that none of them could ever go on.
///
/// The guard keeps the keys it held before the call and the extend leaves
/// the queue it joined. Retry as a database transaction that lost a
/// deadlock does: drop the guard, so that the others go on, and start
/// over.
///
/// [`keys`](Self::keys) names the keys of the cycle, each one a request on
/// it waits for, held by the next request on it.
///
/// # Examples
///
/// ```
/// use lock_manager::{Deadlock, LockManager};
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
/// let mut alice = locks.acquire_many(["alice"]).await;
/// let mut bob = locks.acquire_many(["bob"]).await;
/// let waiting = alice.extend(["bob"]).enqueue(); // alice waits for bob
/// let refused: Deadlock<&str> = bob.extend(["alice"]).await.unwrap_err();
/// assert_eq!(refused.keys().len(), 2);
/// drop(bob); // the refused side starts over; alice goes on
/// waiting.await.unwrap();
/// assert_eq!(alice.keys().len(), 2);
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlock<K> {
    pub(crate) keys: Vec<K>,
    pub(crate) callers: Vec<&'static Location<'static>>,
}

impl<K> Deadlock<K> {
    /// The keys of the cycle.
    pub fn keys(&self) -> &[K] {
        &self.keys
    }

    /// With the `diagnostics` feature, the call site of each request in
    /// the cycle (its `extend` or `acquire_many`), in the order of
    /// [`keys`](Self::keys); empty without it.
    pub fn call_sites(&self) -> &[&'static Location<'static>] {
        &self.callers
    }
}

impl<K: fmt::Debug> fmt::Display for Deadlock<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deadlock refused: a cycle of waits over the keys {:?}",
            self.keys
        )?;
        for (i, caller) in self.callers.iter().enumerate() {
            f.write_str(if i == 0 { ", from " } else { ", " })?;
            write!(f, "{caller}")?;
        }
        Ok(())
    }
}

impl<K: fmt::Debug> StdError for Deadlock<K> {}

/// Any way an acquire gave up, for a caller that uses `?` over several
/// forms: [`Busy`], [`TimedOut`] and [`Deadlock`] convert into it. `K` is
/// the key type of a `Deadlock`, which names keys; the default `()` serves
/// callers that never extend a guard.
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<K = ()> {
    /// A bounded enqueue found too many waiters.
    Busy(Busy),
    /// A blocking wait reached its deadline.
    TimedOut(TimedOut),
    /// An extend was refused, as its wait would close a cycle.
    Deadlock(Deadlock<K>),
}

impl<K> From<Busy> for Error<K> {
    fn from(busy: Busy) -> Self {
        Error::Busy(busy)
    }
}

impl<K> From<TimedOut> for Error<K> {
    fn from(timed_out: TimedOut) -> Self {
        Error::TimedOut(timed_out)
    }
}

impl<K> From<Deadlock<K>> for Error<K> {
    fn from(deadlock: Deadlock<K>) -> Self {
        Error::Deadlock(deadlock)
    }
}

impl<K: fmt::Debug> fmt::Display for Error<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Busy(busy) => busy.fmt(f),
            Error::TimedOut(timed_out) => timed_out.fmt(f),
            Error::Deadlock(deadlock) => deadlock.fmt(f),
        }
    }
}

/// Displays as the error it holds, whose message it is: no `source`.
impl<K: fmt::Debug> StdError for Error<K> {}
