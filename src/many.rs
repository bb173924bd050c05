//! Locking several keys at once: [`LockManager::acquire_many`] and every
//! other multi-key form (`try_acquire_many`, `acquire_many_bounded`,
//! `with_locks`, the owned forms), their futures and their guards; the
//! blocking forms are in `blocking.rs`.
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
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::future::FusedFuture;

use crate::error::Busy;
use crate::manager::LockManager;
use crate::shards::{Place, Shards, WaiterRef};
use crate::small::Small;
use crate::trace::Caller;

/// A multi-key acquire future's keys, its place on each, and where it is
/// in its life.
struct Progress<K> {
    /// In the caller's order until placed, then sorted by hash without
    /// duplicates; moved into the guard at the end.
    keys: Small<K>,
    /// The place of each key, at the same position.
    places: Small<Place>,
    stage: Stage,
    /// Who asked (zero-sized without the `diagnostics` feature).
    caller: Caller,
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Not polled yet: in no queue, so dropping it does nothing.
    Unpolled,
    /// In the queue of every key, or holding it. The keys before `next`
    /// are held; the future waits for key `next`, the only one whose
    /// waiter carries a waker.
    Waiting { next: usize },
    /// The guard was handed out (or placing the request panicked).
    Done,
}

/// Prints the stage and the keys, not the internal places.
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
    /// A request for `keys` by `caller`, each key hashed, in the caller's
    /// order.
    fn new<S: BuildHasher>(
        manager: &LockManager<K, S>,
        keys: impl IntoIterator<Item = K>,
        caller: Caller,
    ) -> Self
    where
        K: Hash,
    {
        let keys: Small<K> = keys.into_iter().collect();
        let places = keys
            .as_slice()
            .iter()
            .map(|key| Place {
                hash: manager.hash(key),
                slot: None,
            })
            .collect();
        Progress {
            keys,
            places,
            stage: Stage::Unpolled,
            caller,
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// Moves the keys out, leaving the future done.
    fn finish(&mut self) -> Held<K> {
        self.stage = Stage::Done;
        Held {
            keys: std::mem::take(&mut self.keys),
            places: std::mem::take(&mut self.places),
        }
    }
}

impl<K: Eq + Hash + Clone> Progress<K> {
    /// Places the request now, unless a key has `max_waiters` waiters
    /// already (see [`Shards::place_all`]).
    fn placed<S: BuildHasher>(
        manager: &LockManager<K, S>,
        keys: impl IntoIterator<Item = K>,
        max_waiters: Option<usize>,
        caller: Caller,
    ) -> Result<Self, Busy> {
        let mut progress = Progress::new(manager, keys, caller);
        progress.place(manager.shards(), max_waiters)?;
        Ok(progress)
    }

    /// Places the request. Left `Done` if refused or if anything panics:
    /// nothing is queued then (`place_all` undoes its own queueing).
    fn place<S>(&mut self, shards: &Shards<K, S>, max_waiters: Option<usize>) -> Result<(), Busy> {
        self.stage = Stage::Done;
        sort_and_merge(&mut self.keys, &mut self.places);
        shards
            .place_all(
                self.keys.as_slice(),
                self.places.as_mut_slice(),
                max_waiters,
                self.caller,
            )
            .map_err(|waiters| Busy { waiters })?;
        self.stage = Stage::Waiting { next: 0 };
        Ok(())
    }

    /// Takes the keys of a placed request that holds them all already,
    /// leaving it done; `None` (and the request unchanged) if it waits for
    /// any.
    fn take_if_held(&mut self) -> Option<Held<K>> {
        let held = self
            .places
            .as_slice()
            .iter()
            .all(|place| place.slot.is_none());
        held.then(|| self.finish())
    }

    /// Advances the future; yields the keys once every one is held.
    #[track_caller]
    fn poll<S>(&mut self, shards: &Shards<K, S>, cx: &mut Context<'_>) -> Poll<Held<K>> {
        match self.stage {
            Stage::Unpolled => self
                .place(shards, None)
                .unwrap_or_else(|_| unreachable!("an unbounded request is never refused")),
            Stage::Waiting { .. } => {}
            Stage::Done => panic!("lock-manager: acquire future polled after completion"),
        }
        let Stage::Waiting { next } = &mut self.stage else {
            unreachable!("placed above");
        };
        // Each key is waited for in turn: a key handed over early is simply
        // found granted when its turn comes.
        while let Some(place) = self.places.as_mut_slice().get_mut(*next) {
            if let Some(slot) = place.slot {
                let waiter = WaiterRef {
                    hash: place.hash,
                    slot,
                };
                if !shards.poll_waiter(waiter, cx.waker()) {
                    return Poll::Pending;
                }
                place.slot = None;
            }
            *next += 1;
        }
        Poll::Ready(self.finish())
    }
}

impl<K> Progress<K> {
    /// Gives up every place and every key held; runs when the future is
    /// dropped.
    fn cancel<S>(&mut self, shards: &Shards<K, S>) {
        if let Stage::Waiting { .. } = self.stage {
            self.stage = Stage::Done;
            let keys = self.keys.as_slice().iter();
            for_each_to_the_end(
                keys.zip(self.places.as_slice()),
                |(key, place)| match place.slot {
                    None => shards.release(key, place.hash),
                    Some(slot) => shards.cancel(
                        key,
                        WaiterRef {
                            hash: place.hash,
                            slot,
                        },
                    ),
                },
            );
        }
    }
}

/// Sorts a request's keys by hash, moving each key's place with it, and
/// merges duplicate keys: all outside the mutexes.
fn sort_and_merge<K: Eq>(keys: &mut Small<K>, places: &mut Small<Place>) {
    if let (Small::Heap(_), Small::Heap(_)) = (&keys, &places) {
        // Five keys or more, already on the heap.
        let mut pairs: Vec<(K, Place)> = std::mem::take(keys)
            .into_iter()
            .zip(std::mem::take(places))
            .collect();
        pairs.sort_unstable_by_key(|(_, place)| place.hash);
        let (sorted_keys, sorted_places): (Vec<K>, Vec<Place>) = pairs.into_iter().unzip();
        (*keys, *places) = (Small::Heap(sorted_keys), Small::Heap(sorted_places));
    } else {
        // An insertion sort, which moves both alike.
        let (k, p) = (keys.as_mut_slice(), places.as_mut_slice());
        for i in 1..k.len() {
            let mut j = i;
            while j > 0 && p[j - 1].hash > p[j].hash {
                k.swap(j - 1, j);
                p.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    // Equal keys have equal hashes, so a duplicate sits in its hash's run.
    let (k, p) = (keys.as_slice(), places.as_slice());
    let duplicate = |i: usize| {
        (0..i)
            .rev()
            .take_while(|&j| p[j].hash == p[i].hash)
            .any(|j| k[j] == k[i])
    };
    if (1..k.len()).any(duplicate) {
        let keep: Vec<bool> = (0..k.len()).map(|i| !duplicate(i)).collect();
        retain(keys, &keep);
        retain(places, &keep);
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

/// Calls `f` on every item, even after one of the calls panicked, then
/// resumes the first panic: one key's failure must not leave the others
/// locked.
fn for_each_to_the_end<T>(items: impl IntoIterator<Item = T>, mut f: impl FnMut(T)) {
    let mut first_panic = None;
    for item in items {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(item))) {
            first_panic.get_or_insert(payload);
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
}

/// The keys a multi-key guard holds, with their places (their hashes),
/// so that releasing them never hashes again.
#[derive(Debug)]
struct Held<K> {
    keys: Small<K>,
    places: Small<Place>,
}

impl<K> Held<K> {
    /// Releases every key, handing each to its oldest waiter.
    fn release<S>(&self, shards: &Shards<K, S>) {
        let keys = self.keys.as_slice().iter();
        for_each_to_the_end(keys.zip(self.places.as_slice()), |(key, place)| {
            shards.release(key, place.hash);
        });
    }
}

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Waits for the locks on every key in `keys`, atomically: the future
    /// resolves to one guard holding them all.
    ///
    /// The request joins the queue of every key at once, on its first poll,
    /// so callers may list keys in any order and their sets may overlap
    /// however they like: they never deadlock. FIFO order holds per key
    /// between all requests, single-key and multi-key alike: nobody
    /// overtakes a request that arrived before it on a shared key. Each key
    /// is held from the moment it is handed over, and the future completes
    /// once all are held.
    ///
    /// Duplicate keys are merged: `[a, b, a]` locks `a` and `b`. An empty
    /// set resolves at once to a guard holding nothing.
    ///
    /// Every key is cloned once, on the first poll, as for
    /// [`acquire`](Self::acquire). The future and its guard keep up to four
    /// keys in place: such a request allocates nothing of its own.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future at any point (queued on some keys, holding
    /// others, or holding all but not yet polled) gives up every place and
    /// hands every key it holds to that key's next waiter.
    ///
    /// # Panics
    ///
    /// Polling the future again after it returned its guard panics. If a
    /// key's `Hash` panics, the panic leaves this call, which hashes every
    /// key; if its `Eq` panics while the request is placed, the panic
    /// reaches the poller and the keys placed so far are given up (a second
    /// panic while undoing aborts, as any panic during unwinding does).
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
        AcquireMany {
            manager: self,
            progress: Progress::new(self, keys, Caller::here()),
        }
    }

    /// Like [`acquire_many`](Self::acquire_many), for a manager in an
    /// [`Arc`]: the future and its guard hold a clone of the `Arc`, so they
    /// can move into spawned tasks.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire_many`](Self::acquire_many): dropping the future
    /// gives up every place and hands on every key it holds.
    ///
    /// # Panics
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
        AcquireManyOwned {
            manager: Arc::clone(self),
            progress: Progress::new(self, keys, Caller::here()),
        }
    }

    /// Takes the locks on every key in `keys` if all are free, atomically:
    /// all or nothing.
    ///
    /// Decided in one critical section over every shard the keys live in,
    /// as [`acquire_many`](Self::acquire_many) places its request: `None`
    /// if any key is held (even if it is about to be released), and then
    /// nothing changed, not even the counters. Like
    /// [`try_acquire`](Self::try_acquire), it never barges past a queue.
    /// Duplicate keys are merged; an empty set gives a guard holding
    /// nothing.
    ///
    /// Every key is cloned once, before the decision.
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
        let held = self.try_lock_all(keys)?;
        Some(MultiLockGuard {
            manager: self,
            held,
        })
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
        let held = self.try_lock_all(keys)?;
        Some(OwnedMultiLockGuard {
            manager: Arc::clone(self),
            held,
        })
    }

    /// Places a request for every key in `keys` now, unless a key already
    /// has `max_waiters` callers waiting for it: then refuses at once with
    /// [`Busy`] and changes nothing. Plain
    /// [`acquire_many`](Self::acquire_many) never refuses.
    ///
    /// On success the returned future is already queued on every key (or
    /// holds it, if free), in one critical section as for `acquire_many`:
    /// its position is the order of this call, not of its first poll.
    /// Await it as any [`AcquireMany`].
    ///
    /// # Errors
    ///
    /// [`Busy`] with the waiters of the first key found at its bound. A
    /// `max_waiters` of 0 admits the request only when every key is free.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire_many`](Self::acquire_many): dropping the future
    /// gives up every place and hands on every key it holds. A future kept
    /// but never polled holds every key that reaches it.
    ///
    /// # Panics
    ///
    /// If a key's `Hash` or `Eq` panics, the panic reaches the caller and
    /// nothing stays held or queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire("b").await;
    /// let first = locks.acquire_many_bounded(["a", "b"], 1).expect("room on b");
    /// let refused = locks.acquire_many_bounded(["b", "c"], 1).unwrap_err();
    /// assert_eq!(refused.waiters(), 1);
    /// assert!(!locks.is_locked("c"));
    ///
    /// drop(holder);
    /// assert_eq!(first.await.keys().len(), 2);
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_many_bounded<I>(
        &self,
        keys: I,
        max_waiters: usize,
    ) -> Result<AcquireMany<'_, K, S>, Busy>
    where
        I: IntoIterator<Item = K>,
    {
        Ok(AcquireMany {
            manager: self,
            progress: Progress::placed(self, keys, Some(max_waiters), Caller::here())?,
        })
    }

    /// Like [`acquire_many_bounded`](Self::acquire_many_bounded), for a
    /// manager in an [`Arc`]: the future and its guard hold a clone of it.
    ///
    /// # Errors
    ///
    /// [`Busy`] when a key already has `max_waiters` waiters.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire_many_bounded`](Self::acquire_many_bounded).
    ///
    /// # Panics
    ///
    /// As for [`acquire_many_bounded`](Self::acquire_many_bounded).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_many_owned_bounded([1, 2], 0).expect("free").await;
    /// assert!(locks.acquire_many_owned_bounded([2], 0).is_err());
    /// drop(guard);
    /// assert_eq!(locks.locked_count(), 0);
    /// # });
    /// ```
    #[track_caller]
    pub fn acquire_many_owned_bounded<I>(
        self: &Arc<Self>,
        keys: I,
        max_waiters: usize,
    ) -> Result<AcquireManyOwned<K, S>, Busy>
    where
        I: IntoIterator<Item = K>,
    {
        Ok(AcquireManyOwned {
            manager: Arc::clone(self),
            progress: Progress::placed(self, keys, Some(max_waiters), Caller::here())?,
        })
    }

    /// Runs `f` under the locks on every key in `keys` (see
    /// [`acquire_many`](Self::acquire_many)) and returns its output.
    ///
    /// Every key is released however the body ends: on return, on `Err`,
    /// on panic, and when the returned future is dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits gives up every place and every
    /// key already held; dropping it while `f`'s future runs drops that
    /// future, then releases every key.
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
        let acquire = self.acquire_many(keys);
        async move {
            let _guard = acquire.await;
            f().await
        }
    }

    /// Like [`with_locks`](Self::with_locks), for a manager in an [`Arc`]:
    /// the future holds a clone of the `Arc` and borrows nothing, so it is
    /// `'static` (and `Send`) whenever the keys, the hasher, `f` and its
    /// future are, and can be spawned as a task of its own.
    ///
    /// # Panics
    ///
    /// As for [`acquire_many`](Self::acquire_many): if a key's `Hash`
    /// panics, this call panics.
    ///
    /// # Cancel safety
    ///
    /// As for [`with_locks`](Self::with_locks).
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
    /// let body = locks.with_locks_owned([2, 1], || async { "moved" });
    /// assert_eq!(pool.spawn_with_handle(body).unwrap().await, "moved");
    /// assert_eq!(locks.locked_count(), 0);
    /// # });
    /// ```
    #[track_caller]
    pub fn with_locks_owned<I, F, Fut>(
        self: &Arc<Self>,
        keys: I,
        f: F,
    ) -> impl Future<Output = Fut::Output>
    where
        I: IntoIterator<Item = K>,
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let acquire = self.acquire_many_owned(keys);
        async move {
            let _guard = acquire.await;
            f().await
        }
    }
}

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Takes every key in `keys` if all are free, and returns them merged.
    #[track_caller]
    fn try_lock_all<I: IntoIterator<Item = K>>(&self, keys: I) -> Option<Held<K>> {
        // With no waiter allowed, an admitted request holds every key. Only
        // a key whose `Hash` and `Eq` disagree could be queued regardless:
        // then `request` is dropped, and gives it up.
        let mut request = AcquireMany {
            manager: self,
            progress: Progress::placed(self, keys, Some(0), Caller::here()).ok()?,
        };
        request.progress.take_if_held()
    }
}

/// The future returned by [`LockManager::acquire_many`], resolving to a
/// [`MultiLockGuard`].
///
/// The future joins the queues of its keys when first polled, not when
/// created.
///
/// # Cancel safety
///
/// Dropping it before completion gives up its place on every key and hands
/// every key it already holds to that key's next waiter.
///
/// # Leaking
///
/// As for [`Acquire`](crate::Acquire), on each of its keys.
///
/// # Panics
///
/// Polling it again after it returned its guard panics, and so does
/// queueing it behind `2^32 - 2` other waiters of one of its shards. The
/// key's and the waker's panics are as for [`Acquire`](crate::Acquire);
/// if a waiter's `wake` panics while the dropped future hands its keys on,
/// every key is still handed over, then the first panic propagates.
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
pub struct AcquireMany<'a, K, S = RandomState> {
    manager: &'a LockManager<K, S>,
    progress: Progress<K>,
}

impl<'a, K: Eq + Hash + Clone, S: BuildHasher> Future for AcquireMany<'a, K, S> {
    type Output = MultiLockGuard<'a, K, S>;

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let manager = self.manager;
        self.progress
            .poll(manager.shards(), cx)
            .map(|held| MultiLockGuard { manager, held })
    }
}

impl<K: Eq + Hash + Clone, S: BuildHasher> FusedFuture for AcquireMany<'_, K, S> {
    fn is_terminated(&self) -> bool {
        self.progress.is_done()
    }
}

impl<K, S> Drop for AcquireMany<'_, K, S> {
    fn drop(&mut self) {
        self.progress.cancel(self.manager.shards());
    }
}

// Nothing is pinned: the keys move out into the guard.
impl<K, S> Unpin for AcquireMany<'_, K, S> {}

impl<K: fmt::Debug, S> fmt::Debug for AcquireMany<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireMany")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`LockManager::acquire_many_owned`], resolving to
/// an [`OwnedMultiLockGuard`].
///
/// # Cancel safety
///
/// The same as [`AcquireMany`]: dropping it gives up every place and hands
/// on every key it holds.
///
/// # Leaking
///
/// As for [`AcquireMany`].
///
/// # Panics
///
/// As for [`AcquireMany`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = Arc::new(LockManager::new());
/// let acquire = locks.acquire_many_owned(["x", "y"]);
/// let guard = std::thread::spawn(move || futures::executor::block_on(acquire))
///     .join()
///     .unwrap();
/// assert_eq!(guard.keys().len(), 2);
/// # });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct AcquireManyOwned<K, S = RandomState> {
    manager: Arc<LockManager<K, S>>,
    progress: Progress<K>,
}

impl<K: Eq + Hash + Clone, S: BuildHasher> Future for AcquireManyOwned<K, S> {
    type Output = OwnedMultiLockGuard<K, S>;

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.progress
            .poll(this.manager.shards(), cx)
            .map(|held| OwnedMultiLockGuard {
                manager: Arc::clone(&this.manager),
                held,
            })
    }
}

impl<K: Eq + Hash + Clone, S: BuildHasher> FusedFuture for AcquireManyOwned<K, S> {
    fn is_terminated(&self) -> bool {
        self.progress.is_done()
    }
}

impl<K, S> Drop for AcquireManyOwned<K, S> {
    fn drop(&mut self) {
        self.progress.cancel(self.manager.shards());
    }
}

impl<K, S> Unpin for AcquireManyOwned<K, S> {}

impl<K: fmt::Debug, S> fmt::Debug for AcquireManyOwned<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireManyOwned")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// Holds the locks on several keys of a [`LockManager`]; dropping it
/// releases every one, handing each straight to its oldest waiter.
///
/// Returned by [`LockManager::acquire_many`]. The guard may be dropped on
/// any thread.
///
/// # Leaking
///
/// [`std::mem::forget`] on the guard keeps all its keys locked for as long
/// as the manager lives. Nothing else is affected and nothing unsafe
/// happens.
///
/// # Panics
///
/// If a woken waiter's `wake` panics while the guard is dropped, every key
/// is still released and handed over; then the first panic propagates.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
/// let guard = locks.acquire_many([3, 1, 2, 1]).await;
/// let mut keys = guard.keys().to_vec();
/// keys.sort();
/// assert_eq!(keys, [1, 2, 3]); // duplicates merged
/// # });
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the locks are released immediately"]
pub struct MultiLockGuard<'a, K, S = RandomState> {
    manager: &'a LockManager<K, S>,
    held: Held<K>,
}

impl<'a, K, S> MultiLockGuard<'a, K, S> {
    /// The keys this guard holds, without duplicates, in no particular
    /// order.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let guard = locks.acquire_many(["a"]).await;
    /// assert_eq!(guard.keys(), ["a"]);
    /// # });
    /// ```
    pub fn keys(&self) -> &[K] {
        self.held.keys.as_slice()
    }

    /// The manager these keys belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let guard = locks.acquire_many([1, 2]).await;
    /// assert!(std::ptr::eq(guard.manager(), &locks));
    /// # });
    /// ```
    pub fn manager(&self) -> &'a LockManager<K, S> {
        self.manager
    }
}

impl<K, S> Drop for MultiLockGuard<'_, K, S> {
    fn drop(&mut self) {
        self.held.release(self.manager.shards());
    }
}

impl<K: fmt::Debug, S> fmt::Debug for MultiLockGuard<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLockGuard")
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

/// Like [`MultiLockGuard`], but holds a clone of the manager's [`Arc`], so
/// it is `'static` when `K` and `S` are and can move into a spawned task.
///
/// Returned by [`LockManager::acquire_many_owned`].
///
/// # Leaking
///
/// [`std::mem::forget`] on the guard keeps its keys locked, and the manager
/// allocated, for good. Nothing else is affected.
///
/// # Panics
///
/// As for [`MultiLockGuard`]: every key is released even if a waker
/// panics, then the first panic propagates.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = Arc::new(LockManager::new());
/// let guard = locks.acquire_many_owned(["a", "b"]).await;
/// drop(locks); // the guard keeps the manager alive
/// assert!(guard.manager().is_locked("b"));
/// # });
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the locks are released immediately"]
pub struct OwnedMultiLockGuard<K, S = RandomState> {
    manager: Arc<LockManager<K, S>>,
    held: Held<K>,
}

impl<K, S> OwnedMultiLockGuard<K, S> {
    /// The keys this guard holds, without duplicates, in no particular
    /// order.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_many_owned([7, 7]).await;
    /// assert_eq!(guard.keys(), [7]);
    /// # });
    /// ```
    pub fn keys(&self) -> &[K] {
        self.held.keys.as_slice()
    }

    /// The manager these keys belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.acquire_many_owned([1]).await;
    /// assert!(Arc::ptr_eq(guard.manager(), &locks));
    /// # });
    /// ```
    pub fn manager(&self) -> &Arc<LockManager<K, S>> {
        &self.manager
    }
}

impl<K, S> Drop for OwnedMultiLockGuard<K, S> {
    fn drop(&mut self) {
        self.held.release(self.manager.shards());
    }
}

impl<K: fmt::Debug, S> fmt::Debug for OwnedMultiLockGuard<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedMultiLockGuard")
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}
