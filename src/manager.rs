//! [`LockManager`]: the public face over the mutex-guarded [`State`].

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::task::Waker;

use crate::acquire::{Acquire, AcquireOwned};
use crate::busy::Busy;
use crate::guard::{LockGuard, OwnedLockGuard};
use crate::shards::{self, Shards, WaiterRef};
use crate::state::{Enqueue, WaiterPoll};

/// A set of exclusive async locks, one per key, each granted in strict FIFO
/// order.
///
/// A key needs no registration: [`acquire`](Self::acquire) locks any key, and
/// the manager forgets the key as soon as it is released with nobody waiting.
/// Memory therefore follows the number of keys held and callers waiting at
/// once, never the number of distinct keys ever locked.
///
/// Share a manager by reference, in a `static`, or in an [`Arc`] (for
/// [`acquire_owned`](Self::acquire_owned) and guards that move into spawned
/// tasks). [`global`](crate::global) is a ready process-wide instance keyed by
/// `String`.
///
/// # Key requirements
///
/// `K`'s `Hash`, `Eq` and `Drop` run while one of the manager's internal
/// mutexes is held, so they must not call back into the same manager (that
/// deadlocks). `Clone` runs outside them, except in
/// [`snapshot`](Self::snapshot). If `Hash`, `Eq` or `Clone` panics,
/// the panic reaches the caller and the manager stays consistent. If `Hash`
/// and `Eq` are inconsistent (equal keys with different hashes, or a hash
/// that changes), that key may stay locked for good and dropping one of its
/// queued futures may panic, as a `HashMap` would misbehave; other keys are
/// never affected.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
///
/// let guard = locks.acquire("story-1").await;
/// assert!(locks.is_locked("story-1"));
/// assert!(locks.try_acquire("story-1").is_none());
/// assert!(locks.try_acquire("story-2").is_some()); // other keys are free
///
/// drop(guard);
/// assert!(!locks.is_locked("story-1"));
/// # });
/// ```
pub struct LockManager<K, S = RandomState> {
    shards: Shards<K, S>,
}

impl<K> LockManager<K> {
    /// Creates an empty manager.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks: LockManager<u64> = LockManager::new();
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }

    /// Creates an empty manager whose state is split into `shards` parts.
    ///
    /// Keys are spread over the shards by hash, each shard behind its own
    /// mutex, so that threads locking unrelated keys seldom contend. The
    /// default, used by [`new`](Self::new), is sixteen shards per core; one
    /// shard saves a little memory and time where a single thread uses the
    /// manager. Every guarantee holds whatever the count.
    ///
    /// # Panics
    ///
    /// Panics if `shards` is 0 or above 65,536. Other counts are rounded up
    /// to a power of two.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::with_shards(1);
    /// assert!(locks.try_acquire("a").is_some());
    /// ```
    #[must_use]
    #[track_caller]
    pub fn with_shards(shards: usize) -> Self {
        Self::with_shards_and_hasher(shards, RandomState::new())
    }
}

impl<K, S: Clone> LockManager<K, S> {
    /// Creates an empty manager that hashes keys with `hasher`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use lock_manager::LockManager;
    ///
    /// let locks: LockManager<u64, _> = LockManager::with_hasher(RandomState::new());
    /// assert!(locks.try_acquire(7).is_some());
    /// ```
    #[must_use]
    pub fn with_hasher(hasher: S) -> Self {
        Self {
            shards: Shards::new(shards::default_count(), hasher),
        }
    }

    /// Creates an empty manager with `shards` shards (see
    /// [`with_shards`](Self::with_shards)) that hashes keys with `hasher`.
    ///
    /// # Panics
    ///
    /// Panics if `shards` is 0 or above 65,536.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::hash_map::RandomState;
    /// use lock_manager::LockManager;
    ///
    /// let locks: LockManager<u64, _> = LockManager::with_shards_and_hasher(4, RandomState::new());
    /// assert!(locks.try_acquire(7).is_some());
    /// ```
    #[must_use]
    #[track_caller]
    pub fn with_shards_and_hasher(shards: usize, hasher: S) -> Self {
        assert!(
            (1..=shards::MAX_SHARDS).contains(&shards),
            "lock-manager: the shard count must be between 1 and 65,536, not {shards}"
        );
        Self {
            shards: Shards::new(shards.next_power_of_two(), hasher),
        }
    }
}

impl<K, S> LockManager<K, S> {
    pub(crate) fn shards(&self) -> &Shards<K, S> {
        &self.shards
    }

    /// The number of keys held right now.
    ///
    /// A key granted to a waiter that has not yet been polled counts as held.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let _a = locks.try_acquire('a');
    /// let _b = locks.try_acquire('b');
    /// assert_eq!(locks.locked_count(), 2);
    /// ```
    pub fn locked_count(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().locked_count())
            .sum()
    }
}

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash,
    S: BuildHasher,
{
    /// Whether `key` is held.
    ///
    /// The answer may be stale as soon as it returns; use it for diagnostics
    /// and tests, not to decide whether to lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// assert!(!locks.is_locked("a"));
    /// let guard = locks.try_acquire("a");
    /// assert!(locks.is_locked("a"));
    /// drop(guard);
    /// assert!(!locks.is_locked("a"));
    /// ```
    pub fn is_locked<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.of(key).lock().is_locked(key)
    }

    /// The number of lock entries for `key`: its holder plus its waiters, or
    /// 0 when the key is free.
    ///
    /// A waiter counts from its first poll until its guard is dropped or its
    /// future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    /// use futures::FutureExt;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire("a").await;
    /// let mut waiter = locks.acquire("a");
    /// assert!((&mut waiter).now_or_never().is_none()); // queued
    /// assert_eq!(locks.queue_len("a"), 2);
    ///
    /// drop(holder);
    /// assert_eq!(locks.queue_len("a"), 1); // handed straight to the waiter
    /// drop(waiter.await);
    /// assert_eq!(locks.queue_len("a"), 0);
    /// # });
    /// ```
    pub fn queue_len<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.of(key).lock().queue_len(key)
    }

    /// Returns memory kept from busier times: the room the manager grew for
    /// keys and waiters that have since gone.
    ///
    /// The manager never shrinks on its own, so that a steady load
    /// allocates nothing; call this after a burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let burst: Vec<_> = (0..10_000).map(|key| locks.try_acquire(key)).collect();
    /// drop(burst);
    /// locks.shrink_to_fit();
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    pub fn shrink_to_fit(&self) {
        for shard in self.shards.iter() {
            shard.lock().shrink_to_fit();
        }
    }

    /// Releases `key`, handing it to the oldest waiter if there is one.
    ///
    /// Out of line, like [`lock_or_enqueue`](Self::lock_or_enqueue): see
    /// there.
    #[inline(never)]
    pub(crate) fn release(&self, key: &K) {
        let deferred = self.shards.of(key).lock().release(key);
        deferred.run();
    }

    /// Removes a waiter on `key` whose future was dropped.
    pub(crate) fn cancel(&self, key: &K, waiter: WaiterRef) {
        let deferred = self
            .shards
            .get(waiter.shard)
            .lock()
            .cancel(key, waiter.slot);
        deferred.run();
    }

    /// Takes the grant of `waiter` (`true`), or makes sure it is woken
    /// through `waker` (`false`), installing `fresh`, a clone of `waker`, if
    /// the waiter needs one.
    pub(crate) fn poll_waiter(
        &self,
        waiter: WaiterRef,
        waker: &Waker,
        mut fresh: Option<Waker>,
    ) -> bool {
        let shard = self.shards.get(waiter.shard);
        // Cloned only when the stored waker is missing or another task's,
        // and outside the mutex: cloning and dropping wakers runs foreign
        // code. Whatever is left here (an unused clone, or the replaced
        // waker) is dropped on return, after the mutex.
        loop {
            let outcome = shard.lock().poll_waiter(waiter.slot, waker, &mut fresh);
            match outcome {
                WaiterPoll::Granted => return true,
                WaiterPoll::Waiting => return false,
                WaiterPoll::NeedsWaker => fresh = Some(waker.clone()),
            }
        }
    }
}

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Waits for the lock on `key`.
    ///
    /// Callers on the same key are served strictly in the order their
    /// futures were first polled; a key released while others wait passes
    /// straight to the oldest of them, so nobody can overtake a waiter.
    /// Different keys never wait for each other.
    ///
    /// The key is cloned once, on the first poll: while the key is held,
    /// the manager keeps one copy and the guard the other.
    ///
    /// # Cancel safety
    ///
    /// Dropping the returned future gives up its place in the queue without
    /// disturbing anyone else's. If the lock had already been handed to it
    /// but it was dropped before being polled again, the lock passes on to
    /// the next waiter. Wrapping it in any runtime's `timeout` is therefore
    /// correct: a timed-out acquire never holds or loses the lock.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let guard = locks.acquire(42).await;
    /// assert_eq!(*guard.key(), 42);
    /// assert!(locks.is_locked(&42));
    /// # });
    /// ```
    pub fn acquire(&self, key: K) -> Acquire<'_, K, S> {
        Acquire::new(self, key)
    }

    /// Like [`acquire`](Self::acquire), for a manager in an [`Arc`]: the
    /// future and its guard hold a clone of the `Arc` and borrow nothing, so
    /// they can move into spawned tasks.
    ///
    /// # Cancel safety
    ///
    /// The same as [`acquire`](Self::acquire): dropping the future gives up
    /// its place, or passes on a lock already handed to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_owned("a".to_string()).await;
    /// std::thread::spawn(move || drop(guard)).join().unwrap();
    /// assert!(!locks.is_locked("a"));
    /// # });
    /// ```
    pub fn acquire_owned(self: &Arc<Self>, key: K) -> AcquireOwned<K, S> {
        AcquireOwned::new(Arc::clone(self), key)
    }

    /// Takes the lock on `key` if it is free and nobody waits for it.
    ///
    /// Never waits and never queues: returns `None` when the key is held,
    /// even if it is about to be released.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let guard = locks.try_acquire("a").expect("free");
    /// assert!(locks.try_acquire("a").is_none());
    /// drop(guard);
    /// assert!(locks.try_acquire("a").is_some());
    /// ```
    pub fn try_acquire(&self, key: K) -> Option<LockGuard<'_, K, S>> {
        self.try_lock(&key).then(|| LockGuard::new(self, key))
    }

    /// Like [`try_acquire`](Self::try_acquire), returning a guard that holds
    /// a clone of the `Arc`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.try_acquire_owned(1).expect("free");
    /// assert!(locks.try_acquire_owned(1).is_none());
    /// drop(guard);
    /// assert_eq!(locks.locked_count(), 0);
    /// ```
    pub fn try_acquire_owned(self: &Arc<Self>, key: K) -> Option<OwnedLockGuard<K, S>> {
        self.try_lock(&key)
            .then(|| OwnedLockGuard::new(Arc::clone(self), key))
    }

    /// Takes a place in `key`'s queue now, unless `max_waiters` callers
    /// already wait for it: then refuses at once with [`Busy`] and changes
    /// nothing. Plain [`acquire`](Self::acquire) never refuses.
    ///
    /// On success the returned future already holds its place (or the lock,
    /// if the key was free): its position is the order of this call, not of
    /// its first poll. Await it as any [`Acquire`].
    ///
    /// # Errors
    ///
    /// [`Busy`] when the key is held and `max_waiters` or more callers wait
    /// for it. `max_waiters` of 0 admits a caller only when the key is free.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire): dropping the future gives up its
    /// place, or releases the lock if it already holds it. A future kept
    /// but never polled holds up the queue once it reaches the front, as it
    /// holds the lock from then on.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire("report").await;
    /// let first = locks.acquire_bounded("report", 1).expect("room for one waiter");
    /// let refused = locks.acquire_bounded("report", 1).unwrap_err();
    /// assert_eq!(refused.waiters(), 1);
    ///
    /// drop(holder);
    /// let guard = first.await;
    /// assert_eq!(*guard.key(), "report");
    /// # });
    /// ```
    pub fn acquire_bounded(&self, key: K, max_waiters: usize) -> Result<Acquire<'_, K, S>, Busy> {
        let placed = self.place(&key, max_waiters)?;
        Ok(Acquire::placed(self, key, placed))
    }

    /// Like [`acquire_bounded`](Self::acquire_bounded), for a manager in an
    /// [`Arc`]: the future and its guard hold a clone of the `Arc`.
    ///
    /// # Errors
    ///
    /// [`Busy`] when the key is held and `max_waiters` or more callers wait.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire_bounded`](Self::acquire_bounded).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_owned_bounded(9, 0).expect("free").await;
    /// assert!(locks.acquire_owned_bounded(9, 0).is_err());
    /// drop(guard);
    /// assert_eq!(locks.locked_count(), 0);
    /// # });
    /// ```
    pub fn acquire_owned_bounded(
        self: &Arc<Self>,
        key: K,
        max_waiters: usize,
    ) -> Result<AcquireOwned<K, S>, Busy> {
        let placed = self.place(&key, max_waiters)?;
        Ok(AcquireOwned::placed(Arc::clone(self), key, placed))
    }

    /// Runs `f` under the lock on `key` and returns its output.
    ///
    /// The lock is released however the body ends: when it returns (an `Err`
    /// included), when it panics (the guard is dropped while unwinding), and
    /// when the returned future is dropped before completion.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits gives up its place in the queue;
    /// dropping it while `f`'s future runs drops that future, then releases
    /// the lock. The body's own cancel safety is the caller's concern.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let n = locks.with_lock("counter", || async { 41 + 1 }).await;
    /// assert_eq!(n, 42);
    /// assert!(!locks.is_locked("counter"));
    ///
    /// let failed: Result<(), &str> = locks.with_lock("counter", || async { Err("io") }).await;
    /// assert!(failed.is_err());
    /// assert!(!locks.is_locked("counter"));
    /// # });
    /// ```
    pub fn with_lock<'a, F, Fut>(&'a self, key: K, f: F) -> impl Future<Output = Fut::Output> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future + 'a,
    {
        let acquire = self.acquire(key);
        async move {
            let _guard = acquire.await;
            f().await
        }
    }

    /// Locks `key` at once (`None`), or queues a waiter woken through
    /// `waker` (`Some`).
    ///
    /// Out of line: once `acquire_many` also calls it (and `release`), the
    /// compiler inlined both into the single-key future and guard, and an
    /// uncontended acquire and release took 55 ns instead of 42 ns
    /// (`cargo bench --bench locks -- uncontended`, in one binary with the
    /// pairs scenario).
    #[inline(never)]
    pub(crate) fn lock_or_enqueue(&self, key: &K, waker: &Waker) -> Option<WaiterRef> {
        let candidate = key.clone();
        let shard = self.shards.index_of(key);
        let outcome = self.shards.get(shard).lock().lock_or_enqueue(candidate);
        match outcome {
            Enqueue::Locked => None,
            Enqueue::Queued(slot) => self.supply_waker(key, WaiterRef { shard, slot }, waker),
        }
    }

    /// Gives a waiter just queued without a waker a clone of `waker`, made
    /// outside the mutex; `None` if the lock was granted meanwhile.
    ///
    /// Out of line, as the uncontended path is a quarter faster without it
    /// (`cargo bench --bench locks`, uncontended).
    #[inline(never)]
    fn supply_waker(&self, key: &K, waiter: WaiterRef, waker: &Waker) -> Option<WaiterRef> {
        // Should cloning panic, the waiter must not stay queued for good.
        let cancel = CancelOnUnwind {
            manager: self,
            key,
            waiter,
        };
        let fresh = waker.clone();
        std::mem::forget(cancel);
        (!self.poll_waiter(waiter, waker, Some(fresh))).then_some(waiter)
    }

    /// Places a waiter for `key` (granted at once if the key is free, else
    /// queued without a waker), unless `max_waiters` already wait.
    fn place(&self, key: &K, max_waiters: usize) -> Result<WaiterRef, Busy> {
        let candidate = key.clone();
        let shard = self.shards.index_of(key);
        let outcome = self.shards.get(shard).lock().place(candidate, max_waiters);
        match outcome {
            Ok(slot) => Ok(WaiterRef { shard, slot }),
            Err(waiters) => Err(Busy { waiters }),
        }
    }

    fn try_lock(&self, key: &K) -> bool {
        let candidate = key.clone();
        self.shards.of(key).lock().try_lock(candidate)
    }
}

impl<K, S: Default + Clone> Default for LockManager<K, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

impl<K, S> fmt::Debug for LockManager<K, S> {
    /// Prints counts, never keys, and never blocks: `<locked>` stands in for
    /// the counts while another thread holds one of the internal mutexes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("LockManager");
        let counts = self
            .shards
            .iter()
            .try_fold((0, 0), |(locked, waiters), shard| {
                let state = shard.try_lock()?;
                Some((
                    locked + state.locked_count(),
                    waiters + state.waiter_count(),
                ))
            });
        match counts {
            Some((locked, waiters)) => out.field("locked", &locked).field("waiters", &waiters),
            None => out.field("state", &format_args!("<locked>")),
        };
        out.finish()
    }
}

/// Removes a waiter if dropped, that is, if a panic unwinds past it.
struct CancelOnUnwind<'a, K: Eq + Hash, S: BuildHasher> {
    manager: &'a LockManager<K, S>,
    key: &'a K,
    waiter: WaiterRef,
}

impl<K: Eq + Hash, S: BuildHasher> Drop for CancelOnUnwind<'_, K, S> {
    fn drop(&mut self) {
        self.manager.cancel(self.key, self.waiter);
    }
}
