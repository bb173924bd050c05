//! Acquiring one key: [`LockManager::acquire`], `try_acquire`, `with_lock`
//! and the owned forms, and [`SingleAcquire`], the future they return, with
//! what it can do besides being awaited: take its place at once
//! (`enqueue`, `enqueue_bounded`) and block a thread (`wait`,
//! `wait_timeout`, `wait_deadline`).

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
use crate::guard::{LockGuard, OwnedLockGuard, SingleGuard};
use crate::hashed::KeyHash;
use crate::manager::{LockManager, ManagerRef};
use crate::queue::Slot;
use crate::shards::{Shards, WaiterRef};
use crate::trace::Caller;
use crate::wait;

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Waits for the lock on `key`.
    ///
    /// Callers on the same key are served strictly in the order they
    /// arrive: a key released while others wait passes straight to the
    /// oldest of them, so nobody can overtake a waiter. A future arrives
    /// when it is first polled, as Rust futures are lazy; call
    /// [`enqueue`](SingleAcquire::enqueue) on it to arrive at once instead.
    /// Different keys never wait for each other.
    ///
    /// The key is hashed now and cloned once when it is taken: while the key
    /// is held, the manager keeps one copy and the guard the other.
    ///
    /// A thread without a runtime waits with
    /// [`wait`](SingleAcquire::wait), or with a time limit with
    /// [`wait_timeout`](SingleAcquire::wait_timeout).
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
    /// the key (once). The future's own panics are listed on
    /// [`SingleAcquire`].
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
    /// A time limit on the wait only: a caller that waited too long gets
    /// "busy, retry later" and has left the queue, while a caller that got
    /// the key runs its update to the end, whatever the time. Any runtime's
    /// `timeout` serves; with tokio:
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
    ///
    /// and with smol, through `futures_lite::FutureExt::or` and a timer:
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::LockManager;
    /// use smol::{future::FutureExt, Timer};
    ///
    /// # smol::block_on(async {
    /// let locks = LockManager::new();
    /// let _writer = locks.acquire(7).await;
    ///
    /// let waited = async { Some(locks.acquire(7).await) }
    ///     .or(async {
    ///         Timer::after(Duration::from_millis(10)).await;
    ///         None
    ///     })
    ///     .await;
    /// assert!(waited.is_none(), "busy: the caller gave up and left the queue");
    /// assert_eq!(locks.queue_len(&7), 1);
    /// # });
    /// ```
    // Inlined, so that the future is built where the caller keeps it: built
    // out of line, then copied, it cost more than the copy (ARCHITECTURE.md,
    // "What a multi-key request costs").
    #[inline]
    #[track_caller]
    pub fn acquire(&self, key: K) -> Acquire<'_, K, S> {
        SingleAcquire::new(self, key, Caller::here())
    }

    /// Like [`acquire`](Self::acquire), for a manager in an [`Arc`]: the
    /// future and its guard hold a clone of the `Arc` and borrow nothing, so
    /// they can move into spawned tasks.
    ///
    /// # Cancel safety
    ///
    /// The same as [`acquire`](Self::acquire).
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
    #[inline]
    #[track_caller]
    pub fn acquire_owned(self: &Arc<Self>, key: K) -> AcquireOwned<K, S> {
        SingleAcquire::new(Arc::clone(self), key, Caller::here())
    }

    /// Takes the lock on `key` if it is free and nobody waits for it.
    ///
    /// Never waits and never queues: returns `None` when the key is held,
    /// even if it is about to be released. This is the "skip if busy"
    /// form: for a job that does nothing when another holds its key, in
    /// sync code as well as async.
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
    #[inline]
    #[track_caller]
    pub fn try_acquire(&self, key: K) -> Option<LockGuard<'_, K, S>> {
        self.try_lock(&key, Caller::here())
            .map(|hash| SingleGuard::new(self, key, hash))
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
            .map(|hash| SingleGuard::new(Arc::clone(self), key, hash))
    }

    /// Runs `f` under the lock on `key` and returns its output.
    ///
    /// The caller arrives in the key's queue when this is called, not when
    /// the future is first polled: of two `with_lock` calls on one key, the
    /// first called runs first, however their futures are spawned or
    /// polled. The lock is released however the body ends: when it returns
    /// (an `Err` included), when it panics (the guard is dropped while
    /// unwinding), and when the returned future is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits gives up its place in the queue;
    /// dropping it while `f`'s future runs drops that future, then releases
    /// the lock. The body's own cancel safety is the caller's concern. A
    /// future kept but never polled holds up the key's queue once it
    /// reaches the front, as it holds the lock from then on.
    ///
    /// So do not wrap `with_lock` in a timeout to bound the wait: the
    /// timeout would also cancel the body, halfway through its write. Time
    /// out the acquire alone (see [`acquire`](Self::acquire)), then run the
    /// body under its guard.
    ///
    /// # Panics
    ///
    /// If the key's `Hash`, `Eq` or `Clone` panics, the panic leaves this
    /// call, which hashes the key and enqueues it; nothing stays queued.
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
    ///
    /// A body to spawn needs a future that borrows nothing: take the key's
    /// place with [`acquire_owned`](Self::acquire_owned) and `enqueue`,
    /// then move the future into the task. With tokio:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let locks = Arc::new(LockManager::new());
    /// let queued = locks.acquire_owned(3).enqueue(); // arrives now
    /// let task = tokio::spawn(async move {
    ///     let _guard = queued.await;
    ///     "saved"
    /// });
    /// assert_eq!(task.await.unwrap(), "saved");
    /// assert!(!locks.is_locked(&3));
    /// # }
    /// ```
    ///
    /// With smol, whose `Task` cancels its future when dropped: await it
    /// or `.detach()` it, or the body is dropped and the key released at
    /// once:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # smol::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let queued = locks.acquire_owned(3).enqueue(); // arrives now
    /// let task = smol::spawn(async move {
    ///     let _guard = queued.await;
    ///     "saved"
    /// });
    /// assert_eq!(task.await, "saved");
    /// assert!(!locks.is_locked(&3));
    /// # });
    /// ```
    #[track_caller]
    pub fn with_lock<'a, F, Fut>(&'a self, key: K, f: F) -> impl Future<Output = Fut::Output> + 'a
    where
        F: FnOnce() -> Fut + 'a,
        Fut: Future + 'a,
    {
        let acquire = self.acquire(key).enqueue();
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
}

/// The future of [`LockManager::acquire`], borrowing the manager: a
/// [`SingleAcquire`], whose page lists what it does besides being awaited.
///
/// # Examples
///
/// ```
/// use lock_manager::{Acquire, LockManager};
///
/// let locks = LockManager::new();
/// let queued: Acquire<'_, &str> = locks.acquire("a").enqueue();
/// assert!(locks.is_locked("a"));
/// # drop(queued);
/// ```
pub type Acquire<'a, K, S = RandomState> = SingleAcquire<&'a LockManager<K, S>>;

/// The future of [`LockManager::acquire_owned`], holding a clone of the
/// manager's [`Arc`]: `'static` when `K` and `S` are, so that it can be
/// stored, sent and spawned.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::{AcquireOwned, LockManager};
///
/// let locks = Arc::new(LockManager::new());
/// let queued: AcquireOwned<u64> = locks.acquire_owned(1).enqueue();
/// let worker = std::thread::spawn(move || *queued.wait().key());
/// assert_eq!(worker.join().unwrap(), 1);
/// ```
pub type AcquireOwned<K, S = RandomState> = SingleAcquire<Arc<LockManager<K, S>>>;

/// The future that waits for one key, resolving to its guard: used through
/// its two forms, [`Acquire`] and [`AcquireOwned`].
///
/// The future arrives in the key's queue when first polled, or at once
/// with [`enqueue`](Self::enqueue). Polling it again while it waits keeps
/// its place and adds no waiter; the waker is cloned again only when it
/// would wake a different task.
///
/// # Send and Sync
///
/// `Send` and `Sync` when `K` is `Send + Sync` and the hasher `Sync` (the
/// owned form: `Send + Sync`); always `Unpin`.
///
/// # Cancel safety
///
/// Dropping it before completion removes it from the key's queue in O(1)
/// and leaves everyone else's place unchanged; if the lock had already been
/// handed to it, the lock passes to the next waiter.
///
/// # Leaking
///
/// A queued future passed to [`std::mem::forget`] keeps its place: once it
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
pub struct SingleAcquire<M: ManagerRef> {
    manager: M,
    progress: Progress<M::Key>,
}

impl<M: ManagerRef> SingleAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    /// A future for `caller`, which arrives when first polled.
    #[inline]
    fn new(manager: M, key: M::Key, caller: Caller) -> Self {
        let hash = manager.manager().hash(&key);
        Self {
            manager,
            progress: Progress::Active {
                key,
                hash,
                slot: None,
                caller,
            },
        }
    }

    /// Takes the future's place in the key's queue now, rather than at its
    /// first poll: the lock if the key is free, else the back of the queue.
    /// Its turn is then the order of this call. Does nothing to a future
    /// that has its place already.
    ///
    /// # Cancel safety
    ///
    /// As for any acquire future: dropping it gives up its place, or passes
    /// on a lock already handed to it. A future kept but never polled holds
    /// up the queue once it reaches the front, as it holds the lock from
    /// then on.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::FutureExt;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire(1).await;
    /// let first = locks.acquire(1).enqueue();
    /// let mut second = locks.acquire(1);
    /// assert!((&mut second).now_or_never().is_none()); // polled first, queued second
    ///
    /// drop(holder);
    /// assert!(second.now_or_never().is_none(), "behind `first`");
    /// assert_eq!(*first.await.key(), 1);
    /// # });
    /// ```
    pub fn enqueue(mut self) -> Self {
        let shards = self.manager.manager().shards();
        if let Err(_busy) = self.progress.enqueue(shards, usize::MAX) {
            unreachable!("nobody counts usize::MAX waiters");
        }
        self
    }

    /// Takes the future's place in the key's queue now, as
    /// [`enqueue`](Self::enqueue) does, unless `max_waiters` callers
    /// already wait for the key: then refuses with [`Busy`], having changed
    /// nothing. For load shedding: a caller refused at once can answer
    /// "busy, retry later" without waiting at all.
    ///
    /// A future that has its place already is returned as it is.
    ///
    /// # Errors
    ///
    /// [`Busy`] when the key is held and `max_waiters` or more callers wait
    /// for it. `max_waiters` of 0 admits a caller only when the key is free:
    /// to skip work when the key is busy,
    /// [`try_acquire`](LockManager::try_acquire) says the same more
    /// directly, with a guard at once.
    ///
    /// # Cancel safety
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
    /// let holder = locks.acquire("report").await;
    /// let first = locks.acquire("report").enqueue_bounded(1).expect("room for one waiter");
    /// let refused = locks.acquire("report").enqueue_bounded(1).unwrap_err();
    /// assert_eq!(refused.waiters(), 1);
    ///
    /// drop(holder);
    /// assert_eq!(*first.await.key(), "report");
    /// # });
    /// ```
    pub fn enqueue_bounded(mut self, max_waiters: usize) -> Result<Self, Busy> {
        let shards = self.manager.manager().shards();
        self.progress.enqueue(shards, max_waiters)?;
        Ok(self)
    }

    /// Blocks the current thread until the lock is handed over, and returns
    /// its guard: for synchronous threads, which share the key's FIFO
    /// queue with async callers. No runtime is needed.
    ///
    /// Do not call it from inside an async task: it blocks the executor's
    /// thread, and if the holder's task needs that thread to finish, the
    /// two wait for each other forever. Await the future there.
    ///
    /// # Panics
    ///
    /// As for polling the future: only if the key's shard already has
    /// `2^32 - 2` waiters, or if the future returned its guard already.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire("config").wait();
    /// let worker = {
    ///     let locks = Arc::clone(&locks);
    ///     std::thread::spawn(move || *locks.acquire("config").wait().key())
    /// };
    /// drop(guard); // hands the key to the worker
    /// assert_eq!(worker.join().unwrap(), "config");
    /// ```
    pub fn wait(self) -> SingleGuard<M> {
        match wait::wait(self, None) {
            Ok(guard) => guard,
            Err(TimedOut) => unreachable!("no deadline"),
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: a time limit on
    /// the wait for a thread, which has no runtime's `timeout` to wrap
    /// around a future.
    ///
    /// A zero `timeout` still takes a key that is free (or handed over by
    /// then). A `timeout` too large for an [`Instant`] waits without a
    /// deadline.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] when the lock was not handed over within `timeout`. The
    /// thread then leaves the queue exactly as a dropped future does: the
    /// waiters behind it keep their order, and a lock handed to it at the
    /// deadline goes on to the next waiter.
    ///
    /// # Panics
    ///
    /// As for [`wait`](Self::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lock_manager::{LockManager, TimedOut};
    ///
    /// let locks = LockManager::new();
    /// let held = locks.acquire("report").wait();
    /// let waited = locks.acquire("report").wait_timeout(Duration::from_millis(10));
    /// assert_eq!(waited.unwrap_err(), TimedOut);
    /// assert_eq!(locks.queue_len("report"), 1, "the thread left the queue");
    ///
    /// drop(held);
    /// assert!(locks.acquire("report").wait_timeout(Duration::ZERO).is_ok());
    /// ```
    pub fn wait_timeout(self, timeout: Duration) -> Result<SingleGuard<M>, TimedOut> {
        wait::wait(self, Instant::now().checked_add(timeout))
    }

    /// Like [`wait_timeout`](Self::wait_timeout), until an instant rather
    /// than for a duration: one deadline for several waits in a row.
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
    /// let first = locks.acquire(1).wait_deadline(deadline).unwrap();
    /// let second = locks.acquire(2).wait_deadline(deadline).unwrap();
    /// assert_eq!(locks.locked_count(), 2);
    /// # drop((first, second));
    /// ```
    pub fn wait_deadline(self, deadline: Instant) -> Result<SingleGuard<M>, TimedOut> {
        wait::wait(self, Some(deadline))
    }
}

impl<M: ManagerRef> Future for SingleAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    type Output = SingleGuard<M>;

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.progress
            .poll(this.manager.manager().shards(), cx)
            .map(|(key, hash)| SingleGuard::new(this.manager.clone(), key, hash))
    }
}

impl<M: ManagerRef> FusedFuture for SingleAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    fn is_terminated(&self) -> bool {
        matches!(self.progress, Progress::Done)
    }
}

impl<M: ManagerRef> Drop for SingleAcquire<M> {
    fn drop(&mut self) {
        self.progress.cancel(self.manager.manager().shards());
    }
}

// The future never pins anything: the key moves out into the guard.
impl<M: ManagerRef> Unpin for SingleAcquire<M> {}

impl<M: ManagerRef> fmt::Debug for SingleAcquire<M>
where
    M::Key: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let progress = Shown {
            progress: &self.progress,
            shards: self.manager.manager().shards(),
        };
        f.debug_struct("Acquire")
            .field("progress", &progress)
            .finish_non_exhaustive()
    }
}

/// Where an acquire future is in its life.
enum Progress<K> {
    /// On `key`, hashed to `hash` when the future was made. In no queue
    /// until it arrives (`slot` is `None`, and dropping the future does
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
    /// The guard was handed out, or the request refused.
    Done,
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
}

impl<K: Eq + Clone> Progress<K> {
    /// Arrives in the key's queue now, unless `max_waiters` already wait
    /// (then the request is done, refused) or it has arrived already.
    fn enqueue<S>(&mut self, shards: &Shards<K, S>, max_waiters: usize) -> Result<(), Busy> {
        if let Progress::Active {
            key,
            hash,
            slot: slot @ None,
            caller,
        } = self
        {
            match shards.enqueue(key, *hash, max_waiters, *caller) {
                Ok(placed) => *slot = Some(placed),
                Err(waiters) => {
                    *self = Progress::Done;
                    return Err(Busy { waiters });
                }
            }
        }
        Ok(())
    }

    /// Advances the future; yields the key and its hash once the lock is
    /// held.
    #[track_caller]
    fn poll<S>(&mut self, shards: &Shards<K, S>, cx: &mut Context<'_>) -> Poll<(K, KeyHash)> {
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
                match shards.lock_or_enqueue(&key, hash, Some(cx.waker()), caller) {
                    None => Poll::Ready((key, hash)),
                    Some(slot) => {
                        *self = Progress::Active {
                            key,
                            hash,
                            slot: Some(slot),
                            caller,
                        };
                        Poll::Pending
                    }
                }
            }
            // Stays `Active` until granted, so that dropping the future
            // after a panic here (a waker's clone or drop) still removes
            // the waiter.
            &mut Progress::Active {
                hash,
                slot: Some(slot),
                ..
            } => {
                if !shards.poll_waiter(WaiterRef { hash, slot }, cx.waker()) {
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
