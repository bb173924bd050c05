//! [`LockManager`] and its construction, and [`ManagerRef`], the two ways
//! a future or guard holds its manager (borrowed, or in an `Arc`). The
//! acquire methods are in `acquire.rs` and `many.rs`, beside their futures;
//! the queries and reports in `report.rs`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::Arc;

use crate::graph::Graph;
use crate::hashed::KeyHash;
use crate::shards::{self, Shards};

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
    /// Who waits for whom among the requests that nest.
    graph: Graph<K>,
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
            graph: Graph::new(),
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
            graph: Graph::new(),
        }
    }
}

impl<K, S> LockManager<K, S> {
    pub(crate) fn shards(&self) -> &Shards<K, S> {
        &self.shards
    }

    pub(crate) fn graph(&self) -> &Graph<K> {
        &self.graph
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

/// How a future or guard holds its [`LockManager`]: borrowed
/// (`&LockManager`, for [`acquire`](LockManager::acquire) and the other
/// plain forms) or shared (`Arc<LockManager>`, for the `_owned` forms,
/// whose futures and guards borrow nothing and can move into spawned
/// tasks). Implemented by those two types only.
///
/// The futures and guards are generic over it, so that each is written
/// once: [`Acquire`](crate::Acquire) is `SingleAcquire<&LockManager<K, S>>`
/// and [`AcquireOwned`](crate::AcquireOwned) is
/// `SingleAcquire<Arc<LockManager<K, S>>>`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::{LockManager, ManagerRef};
///
/// fn count<M: ManagerRef>(manager: &M) -> usize {
///     manager.manager().locked_count()
/// }
///
/// let locks = Arc::new(LockManager::<u64>::new());
/// let _guard = locks.try_acquire(1);
/// assert_eq!(count(&&*locks), 1);
/// assert_eq!(count(&locks), 1);
/// ```
pub trait ManagerRef: Clone + sealed::Sealed {
    /// The manager's key type.
    type Key;
    /// The manager's hasher.
    type Hasher;

    /// The manager itself.
    fn manager(&self) -> &LockManager<Self::Key, Self::Hasher>;
}

impl<K, S> ManagerRef for &LockManager<K, S> {
    type Key = K;
    type Hasher = S;

    #[inline]
    fn manager(&self) -> &LockManager<K, S> {
        self
    }
}

impl<K, S> ManagerRef for Arc<LockManager<K, S>> {
    type Key = K;
    type Hasher = S;

    #[inline]
    fn manager(&self) -> &LockManager<K, S> {
        self
    }
}

mod sealed {
    /// Keeps [`ManagerRef`](super::ManagerRef) to the crate's two forms.
    pub trait Sealed {}
    impl<K, S> Sealed for &super::LockManager<K, S> {}
    impl<K, S> Sealed for std::sync::Arc<super::LockManager<K, S>> {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    #[test]
    fn the_shard_count_is_the_one_asked_for_rounded_up_to_a_power_of_two() {
        let count = |locks: LockManager<u64>| locks.shards().iter().count();
        assert_eq!(count(LockManager::with_shards(1)), 1);
        assert_eq!(count(LockManager::with_shards(5)), 8);
        assert_eq!(count(LockManager::new()), shards::default_count());
    }

    #[test]
    fn an_owner_is_forgotten_with_its_guard_or_its_request() {
        let locks = LockManager::new();
        let mut cx = Context::from_waker(Waker::noop());
        let mut guard = locks.try_acquire_many([1]).unwrap();
        let two = locks.try_acquire(2).unwrap();
        assert!(pin!(guard.extend([2])).poll(&mut cx).is_pending());
        assert_eq!(locks.graph().owners(), 1, "kept while the guard lives");
        // The guard's next extend waits as the same owner.
        let three = locks.try_acquire(3).unwrap();
        assert!(pin!(guard.extend([3])).poll(&mut cx).is_pending());
        assert_eq!(locks.graph().owners(), 1, "one owner per guard");
        drop((guard, three));
        assert_eq!(locks.graph().owners(), 0);

        // Nesting seen: a multi-key request holding a key registers too.
        let (first, second) = if locks.hash(&1) < locks.hash(&2) {
            (1, 2)
        } else {
            (2, 1)
        };
        drop(two);
        // Waiting for its first key, it holds nothing: not an owner.
        let held = locks.try_acquire(first).unwrap();
        let mut request = locks.acquire_many([first, second]);
        assert!(pin!(&mut request).poll(&mut cx).is_pending());
        assert_eq!(locks.graph().owners(), 0);
        drop((request, held));

        for completed in [false, true] {
            let held = locks.try_acquire(second).unwrap();
            let mut request = locks.acquire_many([first, second]);
            assert!(pin!(&mut request).poll(&mut cx).is_pending());
            assert_eq!(locks.graph().owners(), 1);
            drop(held);
            if completed {
                let guard = pin!(&mut request).poll(&mut cx);
                assert!(guard.is_ready());
                assert_eq!(locks.graph().owners(), 1, "kept by the request's guard");
                drop(guard);
            }
            drop(request);
            assert_eq!(locks.graph().owners(), 0);
        }
    }
}
