//! What a [`LockManager`] tells about its locks: the queries (`is_locked`,
//! `queue_len`, `locked_count`), the reports (`stats`, `snapshot`, `held`),
//! and the upkeep (`shrink_to_fit`). They come after the acquire methods
//! on the manager's page, as a user needs them.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use crate::diagnostics::{HeldKey, Stats};
use crate::hashed::KeyHash;
use crate::hot::HotKey;
use crate::manager::LockManager;
use crate::queue::Owner;
use crate::state::State;

impl<K, S> LockManager<K, S> {
    /// The hasher the manager hashes keys with, as [`HashMap::hasher`]
    /// gives its own: for a map kept beside the manager that should hash
    /// alike.
    ///
    /// [`HashMap::hasher`]: std::collections::HashMap::hasher
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use lock_manager::LockManager;
    ///
    /// let locks: LockManager<&str> = LockManager::new();
    /// let mut sizes = HashMap::with_hasher(locks.hasher().clone());
    /// sizes.insert("story-1", 1200);
    /// assert_eq!(sizes["story-1"], 1200);
    /// ```
    pub fn hasher(&self) -> &S {
        self.shards().hasher()
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
        self.shards()
            .iter()
            .map(|shard| shard.read(State::locked_count))
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
        self.read_key(key, |state, hash| state.is_locked(key, hash))
    }

    /// How many callers hold or wait for `key`: 1 for its holder plus 1 per
    /// waiter, or 0 when the key is free.
    ///
    /// A waiter counts from its first poll until its guard is dropped or its
    /// future is dropped. (The reports count differently, waiters only:
    /// [`HeldKey::waiters`] and [`Busy::waiters`](crate::Busy::waiters) are
    /// `queue_len - 1` for a held key.)
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
        self.read_key(key, |state, hash| state.queue_len(key, hash))
    }

    /// Returns all the memory kept from busier times: the room the manager
    /// grew for keys and waiters that have since gone.
    ///
    /// The manager already gives back most of it on its own: a shard's key
    /// map shrinks once less than an eighth of it is in use, and its waiter
    /// slab is freed once empty, down to room for 32 of each, which a shard
    /// keeps so that a steady load allocates nothing. Call this to give
    /// back that too, or a slab's vacant room below a waiter still queued.
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
        for shard in self.shards().iter() {
            shard.shrink_to_fit();
        }
    }
}

impl<K, S> LockManager<K, S> {
    /// The manager's counters, added up over its shards.
    ///
    /// Shards are read one after another, so counts taken while other
    /// threads work may be a little apart from each other.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    /// use futures::FutureExt;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let holder = locks.acquire(1).await;
    /// let mut waiter = locks.acquire(1);
    /// assert!((&mut waiter).now_or_never().is_none()); // queued
    /// drop(holder); // hands 1 to the waiter
    /// drop(waiter); // which gives it up unpolled
    ///
    /// let stats = locks.stats();
    /// assert_eq!(stats.acquisitions, 2);
    /// assert_eq!(stats.releases, 2); // the waiter's release passed 1 on
    /// assert_eq!(stats.contended, 1);
    /// assert_eq!(stats.handoffs, 1);
    /// assert_eq!(stats.cancellations, 1);
    /// # });
    /// ```
    pub fn stats(&self) -> Stats {
        let mut total = Stats {
            deadlocks: self.graph().refused(),
            ..Stats::default()
        };
        for shard in self.shards().iter() {
            shard.read(|state| state.add_stats(&mut total));
        }
        total
    }
}

impl<K, S> LockManager<K, S>
where
    K: Eq + Hash + Clone,
    S: BuildHasher,
{
    /// Every key held right now, with its number of waiters and, with the
    /// `diagnostics` feature, how long it has been held and by which call,
    /// and how long its oldest waiter has waited and from where.
    ///
    /// With `diagnostics`, the longest-held key comes first; without it,
    /// the key with the most waiters. Shards are read one after another, so
    /// the snapshot is exact per key but not one instant across keys. To ask
    /// about one key, [`held`](Self::held) reads its shard alone.
    ///
    /// The keys are cloned while their shard's mutex is held, so `K`'s
    /// `Clone` must not call back into the manager here.
    ///
    /// # Diagnostics
    ///
    /// Ages need a clock read on every acquire and release, which costs
    /// about as much as an uncontended acquire and release itself
    /// (`benches/README.md` in the repository has the figures); hence the
    /// opt-in `diagnostics` feature. The counts are always there.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    /// use futures::FutureExt;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let _stuck = locks.acquire("stuck").await;
    /// let mut waiter = locks.acquire("stuck");
    /// assert!((&mut waiter).now_or_never().is_none());
    /// let _fine = locks.acquire("fine").await;
    ///
    /// let snapshot = locks.snapshot();
    /// assert_eq!(snapshot.len(), 2);
    /// let stuck = snapshot.iter().find(|held| held.key == "stuck").unwrap();
    /// assert_eq!(stuck.waiters, 1);
    /// # });
    /// ```
    pub fn snapshot(&self) -> Vec<HeldKey<K>> {
        let mut held = Vec::new();
        let waits = self.graph().waits();
        let waits = |owner| find_wait(&waits, owner);
        for shard in self.shards().iter() {
            shard.read(|state| state.report(&mut held, &waits));
        }
        // Without diagnostics every age is `None`, and the waiters decide.
        held.sort_by(|a, b| {
            (b.held_for, b.waiters, b.oldest_waiter).cmp(&(a.held_for, a.waiters, a.oldest_waiter))
        });
        held
    }

    /// The `n` keys with the most contended acquisitions since the manager
    /// was created, most first, with how long their waits took: the keys
    /// to look at when waits are long. Empty without the `diagnostics`
    /// feature.
    ///
    /// Each shard tracks 16 keys, whatever the number of keys it sees (a
    /// Space-Saving sketch, in bounded memory): a key queued for more than
    /// a sixteenth of its shard's contended acquisitions is always among
    /// them, with its count exact or overcounted by at most its
    /// [`error`](HotKey::error). A held key's contention reaches its shard's
    /// sketch when it is released with nobody waiting; until then the
    /// report reads it from the key's entry, so a key stuck held shows at
    /// once. Only contended acquisitions count: an uncontended one pays
    /// nothing for this.
    ///
    /// For the keys hot over an interval, subtract two reports key by key,
    /// as with [`stats`](Self::stats). For the keys most waited for, sort
    /// the report by [`waited`](HotKey::waited).
    ///
    /// The keys are cloned while their shard's mutex is held, so `K`'s
    /// `Clone` must not call back into the manager here; the shards are
    /// read one after another, each with every key it holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    /// use futures::FutureExt;
    ///
    /// let locks = LockManager::new();
    /// let _stuck = locks.try_acquire("tenant-7").unwrap();
    /// for _ in 0..3 {
    ///     // Waits that give up count too.
    ///     assert!(locks.acquire("tenant-7").now_or_never().is_none());
    /// }
    /// let hot = locks.hot_keys(5);
    /// if lock_manager::DIAGNOSTICS {
    ///     assert_eq!((hot[0].key, hot[0].contended), ("tenant-7", 3));
    /// }
    /// ```
    pub fn hot_keys(&self, n: usize) -> Vec<HotKey<K>> {
        let mut hot = Vec::new();
        for shard in self.shards().iter() {
            shard.read(|state| state.report_hot(&mut hot));
        }
        hot.sort_by_key(|key| std::cmp::Reverse(key.contended));
        hot.truncate(n);
        hot
    }

    /// The report on `key` alone, as [`snapshot`](Self::snapshot) gives it
    /// for every key, or `None` if it is free: its waiters and, with the
    /// `diagnostics` feature, how long it has been held and by which call,
    /// and its oldest waiter's age and call site. Reads only the key's
    /// shard.
    ///
    /// The key is cloned while its shard's mutex is held, so `K`'s `Clone`
    /// must not call back into the manager here.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::FutureExt;
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// assert!(locks.held("story-7").is_none());
    ///
    /// let _writer = locks.acquire("story-7").await;
    /// let mut reader = locks.acquire("story-7");
    /// assert!((&mut reader).now_or_never().is_none());
    /// let held = locks.held("story-7").unwrap();
    /// assert_eq!(held.waiters, 1);
    /// if let (Some(holder), Some(waiter)) = (held.held_by, held.oldest_waiter_from) {
    ///     println!("held by {holder}, the oldest waiter from {waiter}");
    /// }
    /// # });
    /// ```
    pub fn held<Q>(&self, key: &Q) -> Option<HeldKey<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let waits = self.graph().waits();
        let waits = |owner| find_wait(&waits, owner);
        self.read_key(key, |state, hash| state.report_one(key, hash, &waits))
    }
}

impl<K, S: BuildHasher> LockManager<K, S> {
    /// Runs `read` on the state of the shard of `key` (a borrowed form of
    /// the key type), given the key's hash, under that shard's mutex.
    fn read_key<Q, R>(&self, key: &Q, read: impl FnOnce(&State<K>, KeyHash) -> R) -> R
    where
        Q: Hash + ?Sized,
    {
        let hash = self.shards().hash(key);
        self.shards().of(hash).read(|state| read(state, hash))
    }
}

/// The key `owner` waits for, in a list from `Graph::waits`.
fn find_wait<K: Clone>(waits: &[(Owner, K)], owner: Owner) -> Option<K> {
    let (_, key) = waits.iter().find(|(waiter, _)| *waiter == owner)?;
    Some(key.clone())
}
