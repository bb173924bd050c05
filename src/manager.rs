//! [`LockManager`]: its construction, its queries and reports, and the
//! primitives every way of acquiring is built on (`acquire.rs` and
//! `many.rs` define the acquire methods beside their futures).

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{RefUnwindSafe, UnwindSafe};

use crate::diagnostics::{HeldKey, Stats};
use crate::hashed::KeyHash;
use crate::shards::{self, Shards};
use crate::state::State;

/// A set of exclusive async locks, one per key, each granted in strict FIFO
/// order.
///
/// A key needs no registration: [`acquire`](Self::acquire) locks any key, and
/// the manager forgets the key as soon as it is released with nobody waiting.
/// Memory therefore follows the number of keys held and callers waiting at
/// once, never the number of distinct keys ever locked.
///
/// Share a manager by reference, in an [`Arc`](std::sync::Arc) (for
/// [`acquire_owned`](Self::acquire_owned) and guards that move into spawned
/// tasks), or in a `static` through [`std::sync::LazyLock`] or
/// [`std::sync::OnceLock`]. No constructor is `const`: each allocates its
/// shards, as many as the machine's cores suggest. [`global`](crate::global)
/// is a ready process-wide instance keyed by `String`.
///
/// ```
/// use std::sync::LazyLock;
/// use lock_manager::LockManager;
///
/// static STORY_LOCKS: LazyLock<LockManager<u64>> = LazyLock::new(LockManager::new);
///
/// assert!(STORY_LOCKS.try_acquire(7).is_some());
/// ```
///
/// # Choosing a key type
///
/// Each acquire hashes its key once and clones it once (the manager keeps
/// one copy while the key is held, the guard the other), so prefer keys
/// that are cheap to clone: integer ids such as `u64`, or `Arc<str>` for
/// names, whose clone is a reference count. A `String` costs the caller an
/// allocation to build and the manager another to clone. Queries take a
/// borrowed form: `is_locked("a")` on a `LockManager<String>`.
///
/// # Key requirements
///
/// `K`'s `Eq` and `Drop` run while one of the manager's internal mutexes
/// is held, so they must not call back into the same manager (that
/// deadlocks); so does `clone` of the waker an acquire future is polled
/// with, when the future joins a queue or is polled again from another
/// task. A waker's `wake` and `drop` run outside the mutexes and may call
/// back freely. `Hash` (with the manager's hasher) runs outside them, once
/// per acquire: the hash is kept with the key, so releasing it, handing it
/// on or giving up a place in its queue never hashes again. `Clone` runs
/// outside them too, except in [`snapshot`](Self::snapshot). If `Hash`,
/// `Eq` or `Clone` panics, the panic reaches the caller and the manager
/// stays consistent. If `Hash` and `Eq` are inconsistent (equal keys with
/// different hashes, or a key unequal to its own clone), such keys may be
/// locked twice at once or stay locked for good, and dropping one of their
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

/// The constructors ask for `K: Eq`: the manager picks there, once, the
/// code that its guards and futures run when dropped, so that those types
/// carry no bounds of their own.
impl<K: Eq> LockManager<K> {
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
    /// default, used by [`new`](Self::new), is sixteen shards per core,
    /// rounded up to a power of two, at most 1,024; one shard saves a little
    /// memory and time where a single thread uses the manager. Every
    /// guarantee holds whatever the count.
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

impl<K: Eq, S> LockManager<K, S> {
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
        self.shards.hasher()
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
        for shard in self.shards.iter() {
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
        let mut total = Stats::default();
        for shard in self.shards.iter() {
            total += shard.read(State::stats);
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
        for shard in self.shards.iter() {
            shard.read(|state| state.report(&mut held));
        }
        // Without diagnostics every age is `None`, and the waiters decide.
        held.sort_by(|a, b| {
            (b.held_for, b.waiters, b.oldest_waiter).cmp(&(a.held_for, a.waiters, a.oldest_waiter))
        });
        held
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
        self.read_key(key, |state, hash| state.report_one(key, hash))
    }
}

impl<K: Hash, S: BuildHasher> LockManager<K, S> {
    /// Hashes `key` with the manager's hasher: once per acquire, outside
    /// the mutexes.
    #[inline]
    pub(crate) fn hash(&self, key: &K) -> KeyHash {
        self.shards.hash(key)
    }
}

impl<K, S: BuildHasher> LockManager<K, S> {
    /// Runs `read` on the state of the shard of `key` (a borrowed form of
    /// the key type), given the key's hash, under that shard's mutex.
    fn read_key<Q, R>(&self, key: &Q, read: impl FnOnce(&State<K>, KeyHash) -> R) -> R
    where
        Q: Hash + ?Sized,
    {
        let hash = self.shards.hash(key);
        self.shards.of(hash).read(|state| read(state, hash))
    }
}

impl<K: Eq, S: Default> Default for LockManager<K, S> {
    fn default() -> Self {
        Self::with_hasher(S::default())
    }
}

/// A panic anywhere near the manager (in a key's `Hash`, `Eq` or `Clone`, a
/// waker, a `with_lock` body, or a caller holding a guard) leaves it
/// consistent and unpoisoned: every key held is still held by its guard,
/// every queue in order, and the next caller goes on as if nothing
/// happened. So a manager, and whatever borrows it, may cross
/// `catch_unwind`.
impl<K: RefUnwindSafe, S: RefUnwindSafe> RefUnwindSafe for LockManager<K, S> {}

/// See the [`RefUnwindSafe`] impl.
impl<K: UnwindSafe, S: UnwindSafe> UnwindSafe for LockManager<K, S> {}

impl<K, S> fmt::Debug for LockManager<K, S> {
    /// Prints counts, never keys, and never blocks: `<locked>` stands in for
    /// the counts while another thread holds one of the internal mutexes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("LockManager");
        let counts = self
            .shards
            .iter()
            .try_fold((0, 0), |(locked, waiters), shard| {
                let (more_locked, more_waiters) = shard.try_counts()?;
                Some((locked + more_locked, waiters + more_waiters))
            });
        match counts {
            Some((locked, waiters)) => out.field("locked", &locked).field("waiters", &waiters),
            None => out.field("state", &format_args!("<locked>")),
        };
        out.finish()
    }
}
