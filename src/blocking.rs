//! Blocking acquisition, for synchronous threads that share a manager with
//! async tasks: they queue in the same FIFO order and park until served,
//! or until a deadline passes.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::error::TimedOut;
use crate::guard::{LockGuard, OwnedLockGuard};
use crate::manager::LockManager;
use crate::many::{MultiLockGuard, OwnedMultiLockGuard};

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Blocks the current thread until it holds the lock on `key`.
    ///
    /// The thread takes its place in the key's queue exactly as an
    /// [`acquire`](Self::acquire) future would, in the same FIFO order as
    /// async callers, and parks until the lock is handed to it. No runtime
    /// is needed.
    ///
    /// Do not call it from inside an async task: it blocks the executor's
    /// thread, and if the holder's task needs that thread to finish, the
    /// two wait for each other forever. Use `acquire(key).await` there.
    ///
    /// # Panics
    ///
    /// As for [`Acquire`](crate::Acquire): only if the key's shard already
    /// has `2^32 - 2` waiters.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_blocking("config");
    /// let worker = {
    ///     let locks = Arc::clone(&locks);
    ///     std::thread::spawn(move || *locks.acquire_blocking("config").key())
    /// };
    /// drop(guard); // hands the key to the worker
    /// assert_eq!(worker.join().unwrap(), "config");
    /// ```
    #[track_caller]
    pub fn acquire_blocking(&self, key: K) -> LockGuard<'_, K, S> {
        block_on(self.acquire(key))
    }

    /// Like [`acquire_blocking`](Self::acquire_blocking), for a manager in
    /// an [`Arc`], returning a guard that holds a clone of it.
    ///
    /// Do not call it from inside an async task (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Panics
    ///
    /// As for [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_owned_blocking(7);
    /// std::thread::spawn(move || drop(guard)).join().unwrap();
    /// assert!(!locks.is_locked(&7));
    /// ```
    #[track_caller]
    pub fn acquire_owned_blocking(self: &Arc<Self>, key: K) -> OwnedLockGuard<K, S> {
        block_on(self.acquire_owned(key))
    }

    /// Blocks the current thread until it holds the locks on every key in
    /// `keys`: [`acquire_many`](Self::acquire_many) for synchronous
    /// threads.
    ///
    /// The request joins every key's queue at once, in the same FIFO order
    /// as async callers, and the thread parks until all its keys are handed
    /// to it. Duplicates are merged; an empty set returns at once.
    ///
    /// Do not call it from inside an async task (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Panics
    ///
    /// As for [`acquire_many`](Self::acquire_many): if a key's `Hash` or
    /// `Eq` panics, the panic reaches the caller and nothing stays held or
    /// queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let a = locks.acquire_blocking("a");
    /// let worker = {
    ///     let locks = Arc::clone(&locks);
    ///     std::thread::spawn(move || locks.acquire_many_blocking(["b", "a"]).keys().len())
    /// };
    /// drop(a); // the worker then holds both
    /// assert_eq!(worker.join().unwrap(), 2);
    /// ```
    #[track_caller]
    pub fn acquire_many_blocking<I>(&self, keys: I) -> MultiLockGuard<'_, K, S>
    where
        I: IntoIterator<Item = K>,
    {
        block_on(self.acquire_many(keys))
    }

    /// Like [`acquire_many_blocking`](Self::acquire_many_blocking), for a
    /// manager in an [`Arc`], returning a guard that holds a clone of it.
    ///
    /// Do not call it from inside an async task (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Panics
    ///
    /// As for [`acquire_many_blocking`](Self::acquire_many_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_many_owned_blocking([1, 2]);
    /// std::thread::spawn(move || drop(guard)).join().unwrap();
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    #[track_caller]
    pub fn acquire_many_owned_blocking<I>(self: &Arc<Self>, keys: I) -> OwnedMultiLockGuard<K, S>
    where
        I: IntoIterator<Item = K>,
    {
        block_on(self.acquire_many_owned(keys))
    }
    /// Like [`acquire_blocking`](Self::acquire_blocking), giving up after
    /// `timeout`: a time limit on the wait for a thread, which has no
    /// runtime's `timeout` to wrap around a future.
    ///
    /// A zero `timeout` still takes a key that is free. A `timeout` too
    /// large for an [`Instant`] waits without a deadline.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] when the lock was not handed over within `timeout`. The
    /// thread then leaves the queue exactly as a dropped [`Acquire`]
    /// does: the waiters behind it keep their order, and a lock handed to
    /// it at the deadline goes on to the next waiter.
    ///
    /// [`Acquire`]: crate::Acquire
    ///
    /// # Panics
    ///
    /// As for [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::{LockManager, TimedOut};
    ///
    /// let locks = LockManager::new();
    /// let held = locks.acquire_blocking("report");
    /// let waited = locks.acquire_blocking_timeout("report", Duration::from_millis(10));
    /// assert_eq!(waited.unwrap_err(), TimedOut);
    /// assert_eq!(locks.queue_len("report"), 1, "the thread left the queue");
    ///
    /// drop(held);
    /// let guard = locks.acquire_blocking_timeout("report", Duration::from_millis(10));
    /// assert!(guard.is_ok());
    /// ```
    #[track_caller]
    pub fn acquire_blocking_timeout(
        &self,
        key: K,
        timeout: Duration,
    ) -> Result<LockGuard<'_, K, S>, TimedOut> {
        block_on_timeout(self.acquire(key), timeout)
    }

    /// Like [`acquire_blocking_timeout`](Self::acquire_blocking_timeout),
    /// for a manager in an [`Arc`], returning a guard that holds a clone of
    /// it.
    ///
    /// # Errors
    ///
    /// [`TimedOut`], as for
    /// [`acquire_blocking_timeout`](Self::acquire_blocking_timeout).
    ///
    /// # Panics
    ///
    /// As for [`acquire_blocking`](Self::acquire_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_owned_blocking_timeout(7, Duration::from_secs(1)).unwrap();
    /// let again = {
    ///     let locks = Arc::clone(&locks);
    ///     std::thread::spawn(move || locks.acquire_owned_blocking_timeout(7, Duration::ZERO).is_err())
    /// };
    /// assert!(again.join().unwrap(), "held by the guard");
    /// drop(guard);
    /// ```
    #[track_caller]
    pub fn acquire_owned_blocking_timeout(
        self: &Arc<Self>,
        key: K,
        timeout: Duration,
    ) -> Result<OwnedLockGuard<K, S>, TimedOut> {
        block_on_timeout(self.acquire_owned(key), timeout)
    }

    /// Like [`acquire_many_blocking`](Self::acquire_many_blocking), giving
    /// up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] when not every key was handed over within `timeout`.
    /// The request then leaves every queue and hands every key it already
    /// held to that key's next waiter, as a dropped
    /// [`AcquireMany`](crate::AcquireMany) does.
    ///
    /// # Panics
    ///
    /// As for [`acquire_many_blocking`](Self::acquire_many_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let b = locks.acquire_blocking("b");
    /// assert!(locks.acquire_many_blocking_timeout(["a", "b"], Duration::from_millis(10)).is_err());
    /// assert!(!locks.is_locked("a"), "a, taken while b was awaited, was given back");
    /// drop(b);
    /// let both = locks.acquire_many_blocking_timeout(["a", "b"], Duration::from_millis(10)).unwrap();
    /// assert_eq!(both.keys().len(), 2);
    /// ```
    #[track_caller]
    pub fn acquire_many_blocking_timeout<I>(
        &self,
        keys: I,
        timeout: Duration,
    ) -> Result<MultiLockGuard<'_, K, S>, TimedOut>
    where
        I: IntoIterator<Item = K>,
    {
        block_on_timeout(self.acquire_many(keys), timeout)
    }

    /// Like [`acquire_many_blocking_timeout`](Self::acquire_many_blocking_timeout),
    /// for a manager in an [`Arc`], returning a guard that holds a clone of
    /// it.
    ///
    /// # Errors
    ///
    /// [`TimedOut`], as for
    /// [`acquire_many_blocking_timeout`](Self::acquire_many_blocking_timeout).
    ///
    /// # Panics
    ///
    /// As for [`acquire_many_blocking`](Self::acquire_many_blocking).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks
    ///     .acquire_many_owned_blocking_timeout([2, 1], Duration::from_secs(1))
    ///     .unwrap();
    /// std::thread::spawn(move || assert_eq!(guard.keys().len(), 2)).join().unwrap();
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    #[track_caller]
    pub fn acquire_many_owned_blocking_timeout<I>(
        self: &Arc<Self>,
        keys: I,
        timeout: Duration,
    ) -> Result<OwnedMultiLockGuard<K, S>, TimedOut>
    where
        I: IntoIterator<Item = K>,
    {
        block_on_timeout(self.acquire_many_owned(keys), timeout)
    }

    /// Runs `f` on this thread under the lock on `key` and returns its
    /// output: [`with_lock`](Self::with_lock) for synchronous threads.
    ///
    /// The thread waits as in [`acquire_blocking`](Self::acquire_blocking).
    /// The lock is released however `f` ends: when it returns (an `Err`
    /// included) and when it panics (the guard is dropped while unwinding).
    ///
    /// Do not call it from inside an async task (see
    /// [`acquire_blocking`](Self::acquire_blocking)).
    ///
    /// # Panics
    ///
    /// As for [`acquire_blocking`](Self::acquire_blocking), and when `f`
    /// panics, after releasing the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let log = Mutex::new(Vec::new());
    /// std::thread::scope(|s| {
    ///     for line in ["one", "two"] {
    ///         let (locks, log) = (&locks, &log);
    ///         s.spawn(move || locks.with_lock_blocking("log", || log.lock().unwrap().push(line)));
    ///     }
    /// });
    /// assert_eq!(log.into_inner().unwrap().len(), 2);
    /// assert!(!locks.is_locked("log"));
    /// ```
    #[track_caller]
    pub fn with_lock_blocking<F, R>(&self, key: K, f: F) -> R
    where
        F: FnOnce() -> R,
    {
        let _guard = self.acquire_blocking(key);
        f()
    }

    /// Runs `f` on this thread under the locks on every key in `keys`:
    /// [`with_locks`](Self::with_locks) for synchronous threads.
    ///
    /// The thread waits as in
    /// [`acquire_many_blocking`](Self::acquire_many_blocking); every key is
    /// released however `f` ends, as in
    /// [`with_lock_blocking`](Self::with_lock_blocking).
    ///
    /// # Panics
    ///
    /// As for [`acquire_many_blocking`](Self::acquire_many_blocking), and
    /// when `f` panics, after releasing every key.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let moved = locks.with_locks_blocking(["to", "from"], || {
    ///     assert!(locks.is_locked("from") && locks.is_locked("to"));
    ///     30
    /// });
    /// assert_eq!(moved, 30);
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    #[track_caller]
    pub fn with_locks_blocking<I, F, R>(&self, keys: I, f: F) -> R
    where
        I: IntoIterator<Item = K>,
        F: FnOnce() -> R,
    {
        let _guard = self.acquire_many_blocking(keys);
        f()
    }
}

/// Wakes a parked thread. (The manager wakes only by value, so the default
/// `wake_by_ref` serves.)
struct Unparker(Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// This thread's waker: it unparks the thread.
fn thread_waker() -> Waker {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
    }
    // Made afresh only while this thread's locals are being torn down.
    WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unparker(thread::current()))))
}

/// Polls `future` on this thread until it is ready, parking in between.
/// Spurious unparks only cause a spurious poll, which changes nothing.
fn block_on<F: Future + Unpin>(mut future: F) -> F::Output {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = Pin::new(&mut future).poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// As [`block_on`], until `timeout` has passed: then drops `future`, which
/// gives up its place. It is polled once more after the deadline, so a
/// lock handed over just before it is taken, not passed on.
fn block_on_timeout<F: Future + Unpin>(
    mut future: F,
    timeout: Duration,
) -> Result<F::Output, TimedOut> {
    let Some(deadline) = Instant::now().checked_add(timeout) else {
        return Ok(block_on(future));
    };
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = Pin::new(&mut future).poll(&mut cx) {
            return Ok(output);
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .ok_or(TimedOut)?;
        thread::park_timeout(left);
    }
}
