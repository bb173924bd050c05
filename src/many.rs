//! Acquiring several keys: [`LockManager::acquire_many`],
//! `try_acquire_many`, `with_locks` and the owned forms, and
//! [`MultiAcquire`], the future they return, with the same methods as the
//! single-key future (`enqueue`, `enqueue_bounded`, `wait`, ...).
//!
//! A request takes its keys one at a time, in the order of their hashes
//! (`KeyHash`), each wait an ordinary single-key wait at the back of that
//! key's queue; keys of equal hash, which share a shard, are taken in one
//! critical section. Every request takes keys in that one global order, so
//! a request waits only for holders of a key later in the order than every
//! key it holds: no cycle of waiting requests can form, in whatever order
//! callers list their keys. A request holds no key it does not wait for
//! yet, so it delays nobody on the keys it has not reached, and a
//! two-key request costs what two single-key acquires taken in order cost.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::future::FusedFuture;

use crate::error::{Busy, TimedOut};
use crate::guard::{MultiGuard, MultiLockGuard, OwnedMultiLockGuard};
use crate::manager::{LockManager, ManagerRef};
use crate::take::Progress;
use crate::trace::Caller;
use crate::wait;

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Waits for the locks on every key in `keys`: the future resolves to
    /// one guard holding them all.
    ///
    /// The request takes its keys one at a time, in one order that every
    /// request of this manager follows (the order of the keys' hashes, not
    /// the order they are listed in): each free key at once, and at each
    /// held one it joins the back of the queue and waits, as
    /// [`acquire`](Self::acquire) does. So callers may list keys in any
    /// order and their sets may overlap however they like: multi-key
    /// requests never deadlock among themselves. FIFO order holds per key
    /// between all requests, single-key and multi-key alike. The request
    /// arrives at its first key when first polled (or at
    /// [`enqueue`](MultiAcquire::enqueue)) and at each later key when it
    /// gets there; it holds each key from the moment it is handed over.
    ///
    /// Duplicate keys are merged: `[a, b, a]` locks `a` and `b`. An empty
    /// set resolves at once to a guard holding nothing.
    ///
    /// Every key is hashed, sorted and merged now, and cloned once when the
    /// request takes its place on it. The future and its guard keep up to
    /// four keys in place: such a request allocates nothing of its own.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point (holding some keys and queued on
    /// the next, or holding all but not yet polled) leaves the queue it is
    /// in and hands every key it holds to that key's next waiter.
    ///
    /// # Panics
    ///
    /// If a key's `Hash` or `Eq` panics, the panic leaves this call, which
    /// hashes every key, sorts them and merges duplicates. The future's own
    /// panics are listed on [`MultiAcquire`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let accounts = LockManager::new();
    /// let both = accounts.acquire_many(["alice", "bob"]).await;
    /// assert!(accounts.is_locked("alice") && accounts.is_locked("bob"));
    /// assert_eq!(both.keys().len(), 2);
    /// drop(both);
    /// assert_eq!(accounts.locked_count(), 0);
    /// # });
    /// ```
    // Inlined, for the reason `acquire` is.
    #[inline]
    #[track_caller]
    pub fn acquire_many<I>(&self, keys: I) -> AcquireMany<'_, K, S>
    where
        I: IntoIterator<Item = K>,
    {
        MultiAcquire::new(self, keys, Caller::here())
    }

    /// Like [`acquire_many`](Self::acquire_many), for a manager in an
    /// [`Arc`]: the future and its guard hold a clone of the `Arc`, so they
    /// can move into spawned tasks.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire_many`](Self::acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_many_owned([2, 1]).await;
    /// std::thread::spawn(move || drop(guard)).join().unwrap();
    /// assert_eq!(locks.locked_count(), 0);
    /// # });
    /// ```
    #[inline]
    #[track_caller]
    pub fn acquire_many_owned<I>(self: &Arc<Self>, keys: I) -> AcquireManyOwned<K, S>
    where
        I: IntoIterator<Item = K>,
    {
        MultiAcquire::new(Arc::clone(self), keys, Caller::here())
    }

    /// Takes the locks on every key in `keys` if all are free, atomically:
    /// all or nothing.
    ///
    /// Decided in one critical section over every shard the keys live in:
    /// `None` if any key is held (even if it is about to be released), and
    /// then nothing changed but [`Stats::busy`](crate::Stats::busy). Like
    /// [`try_acquire`](Self::try_acquire), it never barges past a queue.
    /// Duplicate keys are merged; an empty set gives a guard holding
    /// nothing.
    ///
    /// # Panics
    ///
    /// If a key's `Hash` or `Eq` panics, the panic reaches the caller and
    /// nothing stays held.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let bob = locks.try_acquire("bob").expect("free");
    /// assert!(locks.try_acquire_many(["alice", "bob"]).is_none());
    /// assert!(!locks.is_locked("alice")); // nothing taken
    ///
    /// drop(bob);
    /// let both = locks.try_acquire_many(["alice", "bob"]).expect("both free");
    /// assert_eq!(both.keys().len(), 2);
    /// ```
    #[track_caller]
    pub fn try_acquire_many<I>(&self, keys: I) -> Option<MultiLockGuard<'_, K, S>>
    where
        I: IntoIterator<Item = K>,
    {
        MultiAcquire::new(self, keys, Caller::here()).try_take()
    }

    /// Like [`try_acquire_many`](Self::try_acquire_many), returning a guard
    /// that holds a clone of the `Arc`.
    ///
    /// # Panics
    ///
    /// As for [`try_acquire_many`](Self::try_acquire_many).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.try_acquire_many_owned([1, 2]).expect("free");
    /// assert!(locks.try_acquire_many_owned([2, 3]).is_none());
    /// std::thread::spawn(move || drop(guard)).join().unwrap();
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    #[track_caller]
    pub fn try_acquire_many_owned<I>(self: &Arc<Self>, keys: I) -> Option<OwnedMultiLockGuard<K, S>>
    where
        I: IntoIterator<Item = K>,
    {
        MultiAcquire::new(Arc::clone(self), keys, Caller::here()).try_take()
    }

    /// Runs `f` under the locks on every key in `keys` (see
    /// [`acquire_many`](Self::acquire_many)) and returns its output.
    ///
    /// As with [`with_lock`](Self::with_lock), the request arrives when
    /// this is called (it takes its keys in order up to the first one held,
    /// and queues there), and every key is released however
    /// the body ends: on return, on `Err`, on panic, and when the returned
    /// future is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits gives up its place and every key
    /// already held; dropping it while `f`'s future runs drops that
    /// future, then releases every key.
    ///
    /// # Panics
    ///
    /// If a key's `Hash`, `Eq` or `Clone` panics while this call hashes
    /// the keys and takes them up to the first one held, the panic leaves
    /// the call and nothing stays held or queued; later, it leaves a poll
    /// of the returned future, and dropping that future gives everything
    /// back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::Mutex;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let balances = Mutex::new(HashMap::from([("alice", 100), ("bob", 0)]));
    ///
    /// // Move money with both accounts locked, whichever order they come in.
    /// locks
    ///     .with_locks(["bob", "alice"], || async {
    ///         let mut balances = balances.lock().unwrap();
    ///         *balances.get_mut("alice").unwrap() -= 30;
    ///         *balances.get_mut("bob").unwrap() += 30;
    ///     })
    ///     .await;
    /// assert_eq!(balances.lock().unwrap()["bob"], 30);
    /// assert_eq!(locks.locked_count(), 0);
    /// # });
    /// ```
    #[track_caller]
    pub fn with_locks<'a, I, F, Fut>(
        &'a self,
        keys: I,
        f: F,
    ) -> impl Future<Output = Fut::Output> + 'a
    where
        I: IntoIterator<Item = K>,
        F: FnOnce() -> Fut + 'a,
        Fut: Future + 'a,
    {
        let acquire = self.acquire_many(keys).enqueue();
        async move {
            let _guard = acquire.await;
            f().await
        }
    }
}

/// The future of [`LockManager::acquire_many`], borrowing the manager: a
/// [`MultiAcquire`], whose page lists what it does besides being awaited.
///
/// # Examples
///
/// ```
/// use lock_manager::{AcquireMany, LockManager};
///
/// let locks = LockManager::new();
/// let both: AcquireMany<'_, u64> = locks.acquire_many([1, 2]);
/// assert_eq!(both.wait().keys().len(), 2);
/// ```
pub type AcquireMany<'a, K, S = RandomState> = MultiAcquire<&'a LockManager<K, S>>;

/// The future of [`LockManager::acquire_many_owned`], holding a clone of
/// the manager's [`Arc`]: `'static` when `K` and `S` are.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::{AcquireManyOwned, LockManager};
///
/// let locks = Arc::new(LockManager::new());
/// let both: AcquireManyOwned<u64> = locks.acquire_many_owned([2, 1]);
/// let worker = std::thread::spawn(move || both.wait().keys().len());
/// assert_eq!(worker.join().unwrap(), 2);
/// ```
pub type AcquireManyOwned<K, S = RandomState> = MultiAcquire<Arc<LockManager<K, S>>>;

/// The future that waits for several keys, resolving to one guard of them
/// all: used through its two forms, [`AcquireMany`] and
/// [`AcquireManyOwned`].
///
/// The future takes its keys one at a time, in the manager's order (see
/// [`LockManager::acquire_many`]); it arrives at the first when first
/// polled, or at once with [`enqueue`](Self::enqueue).
///
/// # Send and Sync
///
/// As for [`SingleAcquire`](crate::SingleAcquire): `Send` and `Sync` when
/// `K` is `Send + Sync` and the hasher `Sync` (the owned form: `Send +
/// Sync`); always `Unpin`.
///
/// # Cancel safety
///
/// Dropping it before completion gives up its place in the queue it is in
/// and hands every key it already holds to that key's next waiter.
///
/// # Leaking
///
/// As for [`SingleAcquire`](crate::SingleAcquire), on each of its keys.
///
/// # Panics
///
/// Polling it again after it returned its guard panics, and so does
/// queueing it behind `2^32 - 2` other waiters of one of its shards. If a
/// key's `Eq` or `Clone` panics while the request takes its keys, the
/// panic reaches the caller; the keys taken so far stay held until the
/// future is dropped, and polling it again tries that key again. The waker's panics
/// are as for [`SingleAcquire`](crate::SingleAcquire); if a waiter's
/// `wake` panics while the dropped future hands its keys on, every key is
/// still handed over, then the first panic propagates.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
/// use futures::FutureExt;
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
/// let b = locks.acquire("b").await;
///
/// let mut both = locks.acquire_many(["a", "b"]);
/// // Queued on "b", and holding "a" if the manager's order puts it first.
/// assert!((&mut both).now_or_never().is_none());
/// assert_eq!(locks.queue_len("b"), 2);
/// drop(both); // leaves the queue of "b", and gives "a" back if it held it
/// assert!(!locks.is_locked("a"));
/// assert_eq!(locks.queue_len("b"), 1);
/// # drop(b);
/// # });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct MultiAcquire<M: ManagerRef> {
    manager: M,
    progress: Progress<M::Key>,
}

impl<M: ManagerRef> MultiAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    /// A request for `keys` by `caller`, each key hashed, sorted by hash
    /// and merged; it arrives when first polled. Inlined, as
    /// `Progress::new` is, for the same reason.
    #[inline(always)]
    fn new(manager: M, keys: impl IntoIterator<Item = M::Key>, caller: Caller) -> Self {
        let progress = Progress::new(manager.manager(), keys, None, caller);
        Self { manager, progress }
    }

    /// The guard of every key if all are free now, else `None` with nothing
    /// changed.
    fn try_take(mut self) -> Option<MultiGuard<M>> {
        let shards = self.manager.manager().shards();
        let held = self.progress.try_take(shards)?;
        Some(MultiGuard::new(self.manager.clone(), held))
    }

    /// Takes the request's place now rather than at its first poll: it
    /// takes its keys in order while they are free, and joins the back of
    /// the queue of the first one held. Its turn on that key is then the
    /// order of this call; it reaches the keys after it once polled. Does
    /// nothing to a request that has its place already.
    ///
    /// # Cancel safety
    ///
    /// As for any acquire future: dropping it gives up its place and hands
    /// on every key it holds. A future kept but never polled holds the
    /// keys it took, and the key it waits for once that is handed over.
    ///
    /// # Panics
    ///
    /// If a key's `Eq` panics, the panic reaches the caller and nothing
    /// stays held or queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let both = locks.acquire_many(["a", "b"]).enqueue();
    /// assert!(locks.is_locked("a") && locks.is_locked("b"), "held before any poll");
    /// assert_eq!(both.await.keys().len(), 2);
    /// # });
    /// ```
    pub fn enqueue(mut self) -> Self {
        let manager = self.manager.manager();
        (self.progress).enqueue(manager.shards(), manager.graph(), None);
        self
    }

    /// Takes the request's place now, as [`enqueue`](Self::enqueue) does,
    /// unless one of its keys already has `max_waiters` callers waiting for
    /// it: then refuses with [`Busy`], having changed nothing.
    ///
    /// The keys are looked at one at a time, in the order the request takes
    /// them (not the order listed), each under its own shard's mutex: the
    /// bound is checked at the call, not held to while the request later
    /// reaches each key.
    ///
    /// # Errors
    ///
    /// [`Busy`] with the waiters of the first key found at its bound. A
    /// `max_waiters` of 0 admits the request only when every key is free
    /// at the call.
    ///
    /// # Cancel safety
    ///
    /// As for [`enqueue`](Self::enqueue).
    ///
    /// # Panics
    ///
    /// As for [`enqueue`](Self::enqueue).
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire("b").await;
    /// let first = locks.acquire_many(["a", "b"]).enqueue_bounded(1).expect("room on b");
    /// let refused = locks.acquire_many(["b", "c"]).enqueue_bounded(1).unwrap_err();
    /// assert_eq!(refused.waiters(), 1);
    /// assert!(!locks.is_locked("c"));
    ///
    /// drop(holder);
    /// assert_eq!(first.await.keys().len(), 2);
    /// # });
    /// ```
    pub fn enqueue_bounded(self, max_waiters: usize) -> Result<Self, Busy> {
        if self.progress.is_unpolled() {
            let shards = self.manager.manager().shards();
            self.progress.check_bound(shards, max_waiters)?;
        }
        Ok(self.enqueue())
    }

    /// Blocks the current thread until every key is handed over: see
    /// [`SingleAcquire::wait`](crate::SingleAcquire::wait).
    ///
    /// # Panics
    ///
    /// As for polling the future (see [`MultiAcquire`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let a = locks.acquire("a").wait();
    /// let worker = {
    ///     let locks = Arc::clone(&locks);
    ///     std::thread::spawn(move || locks.acquire_many(["b", "a"]).wait().keys().len())
    /// };
    /// drop(a); // the worker then holds both
    /// assert_eq!(worker.join().unwrap(), 2);
    /// ```
    pub fn wait(self) -> MultiGuard<M> {
        match wait::wait(self, None) {
            Ok(guard) => guard,
            Err(TimedOut) => unreachable!("no deadline"),
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: see
    /// [`SingleAcquire::wait_timeout`](crate::SingleAcquire::wait_timeout).
    ///
    /// # Errors
    ///
    /// [`TimedOut`] when not every key was handed over in time. The request
    /// then leaves every queue and hands every key it already held to that
    /// key's next waiter, as a dropped future does.
    ///
    /// # Panics
    ///
    /// As for [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let b = locks.acquire("b").wait();
    /// let both = locks.acquire_many(["a", "b"]);
    /// assert!(both.wait_timeout(Duration::from_millis(10)).is_err());
    /// assert!(!locks.is_locked("a"), "a, taken while b was awaited, was given back");
    /// drop(b);
    /// let both = locks.acquire_many(["a", "b"]).wait_timeout(Duration::from_millis(10));
    /// assert_eq!(both.unwrap().keys().len(), 2);
    /// ```
    pub fn wait_timeout(self, timeout: Duration) -> Result<MultiGuard<M>, TimedOut> {
        wait::wait(self, Instant::now().checked_add(timeout))
    }

    /// Like [`wait_timeout`](Self::wait_timeout), until an instant rather
    /// than for a duration.
    ///
    /// # Errors
    ///
    /// [`TimedOut`], as for [`wait_timeout`](Self::wait_timeout).
    ///
    /// # Panics
    ///
    /// As for [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let both = locks.acquire_many([1, 2]).wait_deadline(deadline).unwrap();
    /// assert_eq!(locks.locked_count(), 2);
    /// # drop(both);
    /// ```
    pub fn wait_deadline(self, deadline: Instant) -> Result<MultiGuard<M>, TimedOut> {
        wait::wait(self, Some(deadline))
    }
}

impl<M: ManagerRef> Future for MultiAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    type Output = MultiGuard<M>;

    #[inline(always)]
    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let manager = this.manager.manager();
        let polled = this.progress.poll(manager.shards(), manager.graph(), cx);
        let Poll::Ready(held) = polled else {
            this.progress.nest(manager.shards(), manager.graph(), None);
            return Poll::Pending;
        };
        Poll::Ready(MultiGuard::new(this.manager.clone(), held))
    }
}

impl<M: ManagerRef> FusedFuture for MultiAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    fn is_terminated(&self) -> bool {
        self.progress.is_done()
    }
}

impl<M: ManagerRef> Drop for MultiAcquire<M> {
    #[inline]
    fn drop(&mut self) {
        // A request records an owner only while it waits, and its guard
        // takes it: one that is done has none to forget.
        if !self.progress.is_done() {
            self.give_up();
        }
        debug_assert!(
            self.progress.owner.is_none(),
            "an owner outlived its request"
        );
    }
}

impl<M: ManagerRef> MultiAcquire<M> {
    /// Gives back what the request took, and forgets its record in the
    /// waits-for graph: out of line, so that dropping a request that is
    /// over costs a check.
    #[inline(never)]
    fn give_up(&mut self) {
        let manager = self.manager.manager();
        self.progress.cancel(manager.shards(), manager.graph());
        if let Some(owner) = self.progress.owner.take() {
            manager.graph().forget(owner);
        }
    }
}

// Nothing is pinned: the keys move out into the guard.
impl<M: ManagerRef> Unpin for MultiAcquire<M> {}

impl<M: ManagerRef> fmt::Debug for MultiAcquire<M>
where
    M::Key: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireMany")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}
