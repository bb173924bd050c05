//! Every way to acquire one key ([`LockManager::acquire`], `try_acquire`,
//! `acquire_bounded`, `with_lock` and their owned forms) and the futures
//! they return.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;

use crate::error::Busy;
use crate::guard::{LockGuard, OwnedLockGuard};
use crate::hashed::KeyHash;
use crate::manager::LockManager;
use crate::queue::Slot;
use crate::shards::{Shards, WaiterRef};
use crate::trace::Caller;

/// Where an acquire future is in its life. Shared by both futures, which
/// differ only in how they hold the manager.
enum Progress<K> {
    /// On `key`, hashed to `hash` when the future was made. In no queue
    /// until the first poll (`slot` is `None`, and dropping the future does
    /// nothing); from then on, queued or already granted the key in `slot`
    /// of the shard `hash` names, which belongs to this future until it is
    /// polled to completion or dropped. (The key hashed up front and the
    /// slot an `Option` rather than a variant of their own: the two leave
    /// the enum a niche for its tag, so the future stays at 24 bytes for
    /// `u64` keys.) `caller` asked for it (zero-sized without the
    /// `diagnostics` feature).
    Active {
        key: K,
        hash: KeyHash,
        slot: Option<Slot>,
        caller: Caller,
    },
    /// The guard was handed out.
    Done,
}

/// A future's progress as its `Debug` prints it: the stage (`Unpolled`,
/// `Queued`, `Granted` once handed the key but not yet polled, or `Done`)
/// with the key. `Debug` never blocks: a waiter whose shard is locked by
/// another thread right then prints as `Waiting`.
struct Shown<'a, K, S> {
    progress: &'a Progress<K>,
    shards: &'a Shards<K, S>,
}

impl<K: fmt::Debug, S> fmt::Debug for Shown<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (stage, key) = match self.progress {
            Progress::Active {
                key, slot: None, ..
            } => ("Unpolled", key),
            &Progress::Active {
                ref key,
                hash,
                slot: Some(slot),
                ..
            } => match self.shards.is_granted(WaiterRef { hash, slot }) {
                Some(true) => ("Granted", key),
                Some(false) => ("Queued", key),
                None => ("Waiting", key),
            },
            Progress::Done => return f.write_str("Done"),
        };
        f.debug_tuple(stage).field(key).finish()
    }
}

impl<K> Progress<K> {
    /// Gives up the future's place; runs when it is dropped.
    fn cancel<S>(&mut self, shards: &Shards<K, S>) {
        if let Progress::Active {
            key,
            hash,
            slot: Some(slot),
            ..
        } = std::mem::replace(self, Progress::Done)
        {
            shards.cancel(&key, WaiterRef { hash, slot });
        }
    }

    fn is_done(&self) -> bool {
        matches!(self, Progress::Done)
    }

    fn unpolled(key: K, hash: KeyHash, caller: Caller) -> Self {
        Progress::Active {
            key,
            hash,
            slot: None,
            caller,
        }
    }

    fn placed(key: K, WaiterRef { hash, slot }: WaiterRef, caller: Caller) -> Self {
        Progress::Active {
            key,
            hash,
            slot: Some(slot),
            caller,
        }
    }
}

impl<K: Eq + Hash> Progress<K> {
    /// Advances the future; yields the key and its hash once the lock is
    /// held.
    #[track_caller]
    fn poll<S: BuildHasher>(
        &mut self,
        manager: &LockManager<K, S>,
        cx: &mut Context<'_>,
    ) -> Poll<(K, KeyHash)>
    where
        K: Clone,
    {
        match self {
            Progress::Active { slot: None, .. } => {
                // Left `Done` if anything below panics: nothing is queued
                // then (`lock_or_enqueue` undoes its own queueing).
                let Progress::Active {
                    key, hash, caller, ..
                } = std::mem::replace(self, Progress::Done)
                else {
                    unreachable!("matched above");
                };
                let shards = manager.shards();
                match shards.lock_or_enqueue(&key, hash, cx.waker(), caller) {
                    None => Poll::Ready((key, hash)),
                    Some(slot) => {
                        *self = Progress::placed(key, WaiterRef { hash, slot }, caller);
                        Poll::Pending
                    }
                }
            }
            // Stays `Active` until granted, so that dropping the future
            // after a panic here (a waker's clone or drop) still removes
            // the waiter.
            Progress::Active {
                hash,
                slot: Some(slot),
                ..
            } => {
                let waiter = WaiterRef {
                    hash: *hash,
                    slot: *slot,
                };
                if !manager.shards().poll_waiter(waiter, cx.waker()) {
                    return Poll::Pending;
                }
                match std::mem::replace(self, Progress::Done) {
                    Progress::Active { key, hash, .. } => Poll::Ready((key, hash)),
                    Progress::Done => unreachable!("matched above"),
                }
            }
            Progress::Done => panic!("lock-manager: acquire future polled after completion"),
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
    /// The lock is not re-entrant: a caller that acquires a key it already
    /// holds waits for itself for good (see the crate docs, "Nesting and
    /// re-entrancy").
    ///
    /// # Panics
    ///
    /// If the key's `Hash` panics, the panic leaves this call, which hashes
    /// the key (once). The future's own panics are listed on [`Acquire`].
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
    ///
    /// A time limit on the wait only, here with tokio (any runtime's
    /// `timeout` serves): a caller that waited too long gets "busy, retry
    /// later" and has left the queue, while a caller that got the key runs
    /// its update to the end, whatever the time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let locks = LockManager::new();
    /// let _writer = locks.acquire(7).await;
    ///
    /// match tokio::time::timeout(Duration::from_millis(10), locks.acquire(7)).await {
    ///     Ok(_guard) => { /* read, modify, write story 7 */ }
    ///     Err(_elapsed) => { /* answer 503 with Retry-After */ }
    /// }
    /// assert_eq!(locks.queue_len(&7), 1, "the timed-out caller left the queue");
    /// # }
    /// ```
    #[track_caller]
    pub fn acquire(&self, key: K) -> Acquire<'_, K, S> {
        Acquire::new(self, key, Caller::here())
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
    #[track_caller]
    pub fn acquire_owned(self: &Arc<Self>, key: K) -> AcquireOwned<K, S> {
        AcquireOwned::new(Arc::clone(self), key, Caller::here())
    }

    /// Takes the lock on `key` if it is free and nobody waits for it.
    ///
    /// Never waits and never queues: returns `None` when the key is held,
    /// even if it is about to be released.
    ///
    /// This is the "skip if busy" form: for a job that does nothing when
    /// another holds its key, in sync code as well as async.
    /// [`acquire_bounded(key, 0)`](Self::acquire_bounded) decides the same
    /// way, but returns a future to await (ready at once) or a [`Busy`]
    /// error: use it only where a bound of 0 is one setting of a load
    /// limit.
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
    #[track_caller]
    pub fn try_acquire(&self, key: K) -> Option<LockGuard<'_, K, S>> {
        self.try_lock(&key, Caller::here())
            .map(|hash| LockGuard::new(self, key, hash))
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
    #[track_caller]
    pub fn try_acquire_owned(self: &Arc<Self>, key: K) -> Option<OwnedLockGuard<K, S>> {
        self.try_lock(&key, Caller::here())
            .map(|hash| OwnedLockGuard::new(Arc::clone(self), key, hash))
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
    /// for it. `max_waiters` of 0 admits a caller only when the key is free:
    /// to skip work when the key is busy, [`try_acquire`](Self::try_acquire)
    /// says the same more directly, with a guard at once.
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
    #[track_caller]
    pub fn acquire_bounded(&self, key: K, max_waiters: usize) -> Result<Acquire<'_, K, S>, Busy> {
        let caller = Caller::here();
        let placed = self.place(&key, max_waiters, caller)?;
        Ok(Acquire::placed(self, key, placed, caller))
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
    #[track_caller]
    pub fn acquire_owned_bounded(
        self: &Arc<Self>,
        key: K,
        max_waiters: usize,
    ) -> Result<AcquireOwned<K, S>, Busy> {
        let caller = Caller::here();
        let placed = self.place(&key, max_waiters, caller)?;
        Ok(AcquireOwned::placed(Arc::clone(self), key, placed, caller))
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
    /// So do not wrap `with_lock` in a timeout to bound the wait: the
    /// timeout would also cancel the body, halfway through its write. Time
    /// out the acquire alone, then run the body under its guard:
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let locks = LockManager::new();
    /// let waited = tokio::time::timeout(Duration::from_secs(1), locks.acquire("story")).await;
    /// if let Ok(_guard) = waited {
    ///     // The body runs to the end, however long it takes.
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert!(!locks.is_locked("story"));
    /// # }
    /// ```
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
    #[track_caller]
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

    /// Like [`with_lock`](Self::with_lock), for a manager in an [`Arc`]:
    /// the future holds a clone of the `Arc` and borrows nothing, so it is
    /// `'static` (and `Send`) whenever the key, the hasher, `f` and its
    /// future are, and can be spawned as a task of its own.
    ///
    /// # Cancel safety
    ///
    /// As for [`with_lock`](Self::with_lock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use futures::task::SpawnExt;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let pool = futures::executor::ThreadPool::new().unwrap();
    /// let task = pool.spawn_with_handle(locks.with_lock_owned(3, || async { "saved" })).unwrap();
    /// assert_eq!(task.await, "saved");
    /// assert!(!locks.is_locked(&3));
    /// # });
    /// ```
    #[track_caller]
    pub fn with_lock_owned<F, Fut>(
        self: &Arc<Self>,
        key: K,
        f: F,
    ) -> impl Future<Output = Fut::Output>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let acquire = self.acquire_owned(key);
        async move {
            let _guard = acquire.await;
            f().await
        }
    }
}

impl<K: Eq + Hash + Clone, S: BuildHasher> LockManager<K, S> {
    /// Takes `key` for `caller` if it is free, returning its hash.
    fn try_lock(&self, key: &K, caller: Caller) -> Option<KeyHash> {
        let hash = self.hash(key);
        self.shards().try_lock(key, hash, caller).then_some(hash)
    }

    /// Places a waiter for `key` (granted at once if the key is free, else
    /// queued without a waker), unless `max_waiters` already wait.
    fn place(&self, key: &K, max_waiters: usize, caller: Caller) -> Result<WaiterRef, Busy> {
        let hash = self.hash(key);
        match self.shards().place(key, hash, max_waiters, caller) {
            Ok(slot) => Ok(WaiterRef { hash, slot }),
            Err(waiters) => Err(Busy { waiters }),
        }
    }
}

/// The future returned by [`LockManager::acquire`], resolving to a
/// [`LockGuard`].
///
/// The future joins the key's queue when first polled, not when created.
/// Polling it again while it waits keeps its place and adds no waiter; the
/// waker is cloned again only when it would wake a different task.
///
/// # Cancel safety
///
/// Dropping it before completion removes it from the key's queue in O(1)
/// and leaves everyone else's place unchanged; if the lock had already been
/// handed to it, the lock passes to the next waiter.
///
/// # Leaking
///
/// A polled future passed to [`std::mem::forget`] keeps its place: once it
/// reaches the front, it is granted the key and holds it for as long as the
/// manager lives. Callers behind it wait, and can still give up their
/// places; other keys are not affected.
///
/// # Panics
///
/// Polling it again after it returned its guard panics, and so does
/// queueing it behind `2^32 - 2` other waiters of its shard.
///
/// A panic in the key's `Eq` or `Clone` or in the waker's `clone` reaches
/// the poller: after a first poll nothing stays queued, after a later one
/// the future keeps its place and the waker it had. A panic in a waker's
/// `drop` or `wake` leaves the poll or drop that ran it, after the queue
/// was updated: a future dropped once the key was handed to it still passes
/// the key on. The manager stays consistent either way.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
/// use futures::FutureExt;
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
/// let guard = locks.acquire("a").await;
///
/// let mut waiter = locks.acquire("a");
/// assert!((&mut waiter).now_or_never().is_none()); // queued behind `guard`
/// drop(waiter); // leaves the queue
/// assert_eq!(locks.queue_len("a"), 1);
/// # drop(guard);
/// # });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Acquire<'a, K, S = RandomState> {
    manager: &'a LockManager<K, S>,
    progress: Progress<K>,
}

impl<'a, K, S> Acquire<'a, K, S> {
    /// A future for `caller`, which joins the queue when first polled.
    pub(crate) fn new(manager: &'a LockManager<K, S>, key: K, caller: Caller) -> Self
    where
        K: Hash,
        S: BuildHasher,
    {
        let hash = manager.hash(&key);
        Self {
            manager,
            progress: Progress::unpolled(key, hash, caller),
        }
    }

    /// A future whose waiter is already placed (queued, or granted).
    pub(crate) fn placed(
        manager: &'a LockManager<K, S>,
        key: K,
        waiter: WaiterRef,
        caller: Caller,
    ) -> Self {
        Self {
            manager,
            progress: Progress::placed(key, waiter, caller),
        }
    }
}

impl<'a, K: Eq + Hash + Clone, S: BuildHasher> Future for Acquire<'a, K, S> {
    type Output = LockGuard<'a, K, S>;

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let manager = self.manager;
        self.progress
            .poll(manager, cx)
            .map(|(key, hash)| LockGuard::new(manager, key, hash))
    }
}

impl<K: Eq + Hash + Clone, S: BuildHasher> FusedFuture for Acquire<'_, K, S> {
    fn is_terminated(&self) -> bool {
        self.progress.is_done()
    }
}

impl<K, S> Drop for Acquire<'_, K, S> {
    fn drop(&mut self) {
        self.progress.cancel(self.manager.shards());
    }
}

// The future never pins anything: the key moves out into the guard.
impl<K, S> Unpin for Acquire<'_, K, S> {}

impl<K: fmt::Debug, S> fmt::Debug for Acquire<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let progress = Shown {
            progress: &self.progress,
            shards: self.manager.shards(),
        };
        f.debug_struct("Acquire")
            .field("progress", &progress)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`LockManager::acquire_owned`], resolving to an
/// [`OwnedLockGuard`].
///
/// It holds a clone of the manager's `Arc`, so it is `'static` when `K` and
/// `S` are.
///
/// # Cancel safety
///
/// The same as [`Acquire`]: dropping it gives up its place in the queue, or
/// passes on a lock already handed to it.
///
/// # Leaking
///
/// As for [`Acquire`].
///
/// # Panics
///
/// As for [`Acquire`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = Arc::new(LockManager::new());
/// let acquire = locks.acquire_owned(1);
/// let guard = std::thread::spawn(move || futures::executor::block_on(acquire))
///     .join()
///     .unwrap();
/// assert_eq!(*guard.key(), 1);
/// # });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct AcquireOwned<K, S = RandomState> {
    manager: Arc<LockManager<K, S>>,
    progress: Progress<K>,
}

impl<K, S> AcquireOwned<K, S> {
    /// A future for `caller`, which joins the queue when first polled.
    pub(crate) fn new(manager: Arc<LockManager<K, S>>, key: K, caller: Caller) -> Self
    where
        K: Hash,
        S: BuildHasher,
    {
        let hash = manager.hash(&key);
        Self {
            manager,
            progress: Progress::unpolled(key, hash, caller),
        }
    }

    /// A future whose waiter is already placed (queued, or granted).
    pub(crate) fn placed(
        manager: Arc<LockManager<K, S>>,
        key: K,
        waiter: WaiterRef,
        caller: Caller,
    ) -> Self {
        Self {
            manager,
            progress: Progress::placed(key, waiter, caller),
        }
    }
}

impl<K: Eq + Hash + Clone, S: BuildHasher> Future for AcquireOwned<K, S> {
    type Output = OwnedLockGuard<K, S>;

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.progress
            .poll(&this.manager, cx)
            .map(|(key, hash)| OwnedLockGuard::new(Arc::clone(&this.manager), key, hash))
    }
}

impl<K: Eq + Hash + Clone, S: BuildHasher> FusedFuture for AcquireOwned<K, S> {
    fn is_terminated(&self) -> bool {
        self.progress.is_done()
    }
}

impl<K, S> Drop for AcquireOwned<K, S> {
    fn drop(&mut self) {
        self.progress.cancel(self.manager.shards());
    }
}

impl<K, S> Unpin for AcquireOwned<K, S> {}

impl<K: fmt::Debug, S> fmt::Debug for AcquireOwned<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let progress = Shown {
            progress: &self.progress,
            shards: self.manager.shards(),
        };
        f.debug_struct("AcquireOwned")
            .field("progress", &progress)
            .finish_non_exhaustive()
    }
}
