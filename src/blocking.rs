//! Blocking acquisition, for synchronous threads that share a manager with
//! async tasks: they queue in the same FIFO order and park until served.

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

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
    pub fn acquire_many_owned_blocking<I>(self: &Arc<Self>, keys: I) -> OwnedMultiLockGuard<K, S>
    where
        I: IntoIterator<Item = K>,
    {
        block_on(self.acquire_many_owned(keys))
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

/// Polls `future` on this thread until it is ready, parking in between.
/// Spurious unparks only cause a spurious poll, which changes nothing.
fn block_on<F: Future + Unpin>(mut future: F) -> F::Output {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unparker(thread::current())));
    }
    // Made afresh only while this thread's locals are being torn down.
    let waker = WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unparker(thread::current()))));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = Pin::new(&mut future).poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}
