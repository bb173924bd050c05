//! Acquiring several keys at once: [`LockManager::acquire_many`],
//! `try_acquire_many`, `with_locks` and the owned forms, and
//! [`MultiAcquire`], the future they return, with the same methods as the
//! single-key future (`enqueue`, `enqueue_bounded`, `wait`, ...).
//!
//! A request joins the queue of every one of its keys in one step, with the
//! mutexes of all the shards it touches held together (taken in index
//! order, so two requests never wait for each other's shard mutexes). Every
//! queue therefore orders requests by the same arrival order, and a request
//! only ever waits for requests that arrived before it: no cycle of waiting
//! requests can form, in whatever order callers list their keys. A request
//! holds each key from the moment the key is handed to it, which keeps
//! later arrivals from overtaking it, and completes once it holds them all.

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
use crate::guard::{
    for_each_to_the_end, HeldKeys, MultiGuard, MultiLockGuard, OwnedMultiLockGuard,
};
use crate::manager::{LockManager, ManagerRef};
use crate::shards::{Claim, Shards, WaiterRef};
use crate::small::Small;
use crate::trace::Caller;
use crate::wait;

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Waits for the locks on every key in `keys`, atomically: the future
    /// resolves to one guard holding them all.
    ///
    /// The request arrives in the queue of every key at once (on its first
    /// poll, or at [`enqueue`](MultiAcquire::enqueue)), so callers may list
    /// keys in any order and their sets may overlap however they like: they
    /// never deadlock. FIFO order holds per key between all requests,
    /// single-key and multi-key alike: nobody overtakes a request that
    /// arrived before it on a shared key. Each key is held from the moment
    /// it is handed over, and the future completes once all are held.
    ///
    /// Duplicate keys are merged: `[a, b, a]` locks `a` and `b`. An empty
    /// set resolves at once to a guard holding nothing.
    ///
    /// Every key is hashed now and cloned once when the request arrives.
    /// The future and its guard keep up to four keys in place: such a
    /// request allocates nothing of its own.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point (queued on some keys, holding
    /// others, or holding all but not yet polled) gives up every place and
    /// hands every key it holds to that key's next waiter.
    ///
    /// # Panics
    ///
    /// If a key's `Hash` panics, the panic leaves this call, which hashes
    /// every key. The future's own panics are listed on [`MultiAcquire`].
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
    /// then nothing changed, not even the counters. Like
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
    /// As with [`with_lock`](Self::with_lock), the request arrives in its
    /// keys' queues when this is called, and every key is released however
    /// the body ends: on return, on `Err`, on panic, and when the returned
    /// future is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits gives up every place and every
    /// key already held; dropping it while `f`'s future runs drops that
    /// future, then releases every key.
    ///
    /// # Panics
    ///
    /// If a key's `Hash`, `Eq` or `Clone` panics, the panic leaves this
    /// call, which hashes the keys and enqueues them; nothing stays held or
    /// queued.
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
/// The future arrives in the queues of its keys when first polled, or at
/// once with [`enqueue`](Self::enqueue).
///
/// # Send and Sync
///
/// As for [`SingleAcquire`](crate::SingleAcquire): `Send` and `Sync` when
/// `K` is `Send + Sync` and the hasher `Sync` (the owned form: `Send +
/// Sync`); always `Unpin`.
///
/// # Cancel safety
///
/// Dropping it before completion gives up its place on every key and hands
/// every key it already holds to that key's next waiter.
///
/// # Leaking
///
/// As for [`SingleAcquire`](crate::SingleAcquire), on each of its keys.
///
/// # Panics
///
/// Polling it again after it returned its guard panics, and so does
/// queueing it behind `2^32 - 2` other waiters of one of its shards. If a
/// key's `Eq` panics while the request arrives, the panic reaches the
/// caller and the keys queued so far are given up (a second panic while
/// undoing aborts, as any panic during unwinding does). The waker's panics
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
/// assert!((&mut both).now_or_never().is_none()); // holds "a", queued on "b"
/// assert!(locks.is_locked("a"));
/// drop(both); // gives "a" back and leaves the queue of "b"
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
    /// A request for `keys` by `caller`, each key hashed, in the caller's
    /// order; it arrives when first polled.
    fn new(manager: M, keys: impl IntoIterator<Item = M::Key>, caller: Caller) -> Self {
        let keys: Small<M::Key> = keys.into_iter().collect();
        let claims = keys
            .as_slice()
            .iter()
            .map(|key| Claim {
                hash: manager.manager().hash(key),
                slot: None,
            })
            .collect();
        let progress = Progress {
            keys,
            claims,
            stage: Stage::Unpolled,
            caller,
        };
        Self { manager, progress }
    }

    /// The guard of every key if all are free now, else `None` with nothing
    /// changed.
    fn try_take(mut self) -> Option<MultiGuard<M>> {
        // With no waiter allowed, an admitted request holds every key. Only
        // a key whose `Hash` and `Eq` disagree could be queued regardless:
        // then `self` is dropped, and gives it up.
        let shards = self.manager.manager().shards();
        self.progress.enqueue(shards, Some(0)).ok()?;
        let held = self.progress.take_if_held()?;
        Some(MultiGuard::new(self.manager.clone(), held))
    }

    /// Takes the request's place in the queue of every key now, in one
    /// step, rather than at its first poll: each key free is held at once,
    /// and the request joins the back of the queue of each other one. Its
    /// turn is then the order of this call. Does nothing to a request that
    /// has its place already.
    ///
    /// # Cancel safety
    ///
    /// As for any acquire future: dropping it gives up every place and
    /// hands on every key it holds. A future kept but never polled holds
    /// every key that reaches it.
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
        let shards = self.manager.manager().shards();
        if let Err(_busy) = self.progress.enqueue(shards, None) {
            unreachable!("an unbounded request is never refused");
        }
        self
    }

    /// Takes the request's place now, as [`enqueue`](Self::enqueue) does,
    /// unless one of its keys already has `max_waiters` callers waiting for
    /// it: then refuses with [`Busy`], having changed nothing.
    ///
    /// # Errors
    ///
    /// [`Busy`] with the waiters of the first key found at its bound. A
    /// `max_waiters` of 0 admits the request only when every key is free.
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
    pub fn enqueue_bounded(mut self, max_waiters: usize) -> Result<Self, Busy> {
        let shards = self.manager.manager().shards();
        self.progress.enqueue(shards, Some(max_waiters))?;
        Ok(self)
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

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.progress
            .poll(this.manager.manager().shards(), cx)
            .map(|held| MultiGuard::new(this.manager.clone(), held))
    }
}

impl<M: ManagerRef> FusedFuture for MultiAcquire<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    fn is_terminated(&self) -> bool {
        matches!(self.progress.stage, Stage::Done)
    }
}

impl<M: ManagerRef> Drop for MultiAcquire<M> {
    fn drop(&mut self) {
        self.progress.cancel(self.manager.manager().shards());
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

/// A multi-key acquire future's keys, its claim on each, and where it is
/// in its life.
struct Progress<K> {
    /// In the caller's order until it arrives, then sorted by hash without
    /// duplicates; moved into the guard at the end.
    keys: Small<K>,
    /// The claim on each key, at the same position.
    claims: Small<Claim>,
    stage: Stage,
    /// Who asked (zero-sized without the `diagnostics` feature).
    caller: Caller,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Not arrived yet: in no queue, so dropping it does nothing.
    Unpolled,
    /// In the queue of every key, or holding it. The keys before `next`
    /// are held; the future waits for key `next`, the only one whose
    /// waiter carries a waker.
    Waiting { next: usize },
    /// The guard was handed out (or the request refused, or its arrival
    /// panicked).
    Done,
}

/// Prints the stage and the keys, not the internal claims.
impl<K: fmt::Debug> fmt::Debug for Progress<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.as_slice();
        match self.stage {
            Stage::Unpolled => f.debug_tuple("Unpolled").field(&keys).finish(),
            Stage::Waiting { next } => f
                .debug_struct("Waiting")
                .field("keys", &keys)
                .field("held", &next)
                .finish(),
            Stage::Done => f.write_str("Done"),
        }
    }
}

impl<K> Progress<K> {
    /// Moves the keys out, leaving the future done.
    fn finish(&mut self) -> HeldKeys<K> {
        self.stage = Stage::Done;
        HeldKeys {
            keys: std::mem::take(&mut self.keys),
            claims: std::mem::take(&mut self.claims),
        }
    }

    /// Takes the keys of a request that holds them all already, leaving it
    /// done; `None` (and the request unchanged) if it waits for any.
    fn take_if_held(&mut self) -> Option<HeldKeys<K>> {
        let held = self
            .claims
            .as_slice()
            .iter()
            .all(|claim| claim.slot.is_none());
        held.then(|| self.finish())
    }

    /// Gives up every place and every key held; runs when the future is
    /// dropped.
    fn cancel<S>(&mut self, shards: &Shards<K, S>) {
        if let Stage::Waiting { .. } = self.stage {
            self.stage = Stage::Done;
            let keys = self.keys.as_slice().iter();
            for_each_to_the_end(
                keys.zip(self.claims.as_slice()),
                |(key, claim)| match claim.slot {
                    None => shards.release(key, claim.hash),
                    Some(slot) => shards.cancel(
                        key,
                        WaiterRef {
                            hash: claim.hash,
                            slot,
                        },
                    ),
                },
            );
        }
    }
}

impl<K: Eq + Clone> Progress<K> {
    /// Arrives in every key's queue, unless a key has `max_waiters` waiters
    /// already (see [`Shards::enqueue_all`]) or it has arrived already.
    /// Left `Done` if refused or if anything panics: nothing is queued then
    /// (`enqueue_all` undoes its own queueing).
    fn enqueue<S>(
        &mut self,
        shards: &Shards<K, S>,
        max_waiters: Option<usize>,
    ) -> Result<(), Busy> {
        if !matches!(self.stage, Stage::Unpolled) {
            return Ok(());
        }
        self.stage = Stage::Done;
        sort_and_merge(&mut self.keys, &mut self.claims);
        shards
            .enqueue_all(
                self.keys.as_slice(),
                self.claims.as_mut_slice(),
                max_waiters,
                self.caller,
            )
            .map_err(|waiters| Busy { waiters })?;
        self.stage = Stage::Waiting { next: 0 };
        Ok(())
    }

    /// Advances the future; yields the keys once every one is held.
    #[track_caller]
    fn poll<S>(&mut self, shards: &Shards<K, S>, cx: &mut Context<'_>) -> Poll<HeldKeys<K>> {
        if let Stage::Done = self.stage {
            panic!("lock-manager: acquire future polled after completion");
        }
        if let Err(_busy) = self.enqueue(shards, None) {
            unreachable!("an unbounded request is never refused");
        }
        let Stage::Waiting { next } = &mut self.stage else {
            unreachable!("arrived above");
        };
        // Each key is waited for in turn: a key handed over early is simply
        // found granted when its turn comes.
        while let Some(claim) = self.claims.as_mut_slice().get_mut(*next) {
            if let Some(slot) = claim.slot {
                let waiter = WaiterRef {
                    hash: claim.hash,
                    slot,
                };
                if !shards.poll_waiter(waiter, cx.waker()) {
                    return Poll::Pending;
                }
                claim.slot = None;
            }
            *next += 1;
        }
        Poll::Ready(self.finish())
    }
}

/// Sorts a request's keys by hash, moving each key's claim with it, and
/// merges duplicate keys: all outside the mutexes.
fn sort_and_merge<K: Eq>(keys: &mut Small<K>, claims: &mut Small<Claim>) {
    if let (Small::Heap(_), Small::Heap(_)) = (&keys, &claims) {
        // Five keys or more, already on the heap.
        let mut pairs: Vec<(K, Claim)> = std::mem::take(keys)
            .into_iter()
            .zip(std::mem::take(claims))
            .collect();
        pairs.sort_unstable_by_key(|(_, claim)| claim.hash);
        let (sorted_keys, sorted_claims): (Vec<K>, Vec<Claim>) = pairs.into_iter().unzip();
        (*keys, *claims) = (Small::Heap(sorted_keys), Small::Heap(sorted_claims));
    } else {
        // An insertion sort, which moves both alike.
        let (k, c) = (keys.as_mut_slice(), claims.as_mut_slice());
        for i in 1..k.len() {
            let mut j = i;
            while j > 0 && c[j - 1].hash > c[j].hash {
                k.swap(j - 1, j);
                c.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    // Equal keys have equal hashes, so a duplicate sits in its hash's run.
    let (k, c) = (keys.as_slice(), claims.as_slice());
    let duplicate = |i: usize| {
        (0..i)
            .rev()
            .take_while(|&j| c[j].hash == c[i].hash)
            .any(|j| k[j] == k[i])
    };
    if (1..k.len()).any(duplicate) {
        let keep: Vec<bool> = (0..k.len()).map(|i| !duplicate(i)).collect();
        retain(keys, &keep);
        retain(claims, &keep);
    }
}

/// Keeps the items whose flag in `keep` is set.
fn retain<T>(items: &mut Small<T>, keep: &[bool]) {
    *items = std::mem::take(items)
        .into_iter()
        .zip(keep)
        .filter_map(|(item, &keep)| keep.then_some(item))
        .collect();
}
