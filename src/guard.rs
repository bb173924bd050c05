//! What a caller holds: the guard of one key ([`SingleGuard`]) and of
//! several ([`MultiGuard`]), each borrowed or owned through its
//! [`ManagerRef`], and [`Guard`], the shape they share. Dropping a guard
//! releases its keys, handing each straight to its oldest waiter.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use crate::hashed::KeyHash;
use crate::manager::{LockManager, ManagerRef};
use crate::queue::Owner;
use crate::shards::{Claim, Shards};
use crate::small::Pairs;

/// What every guard of the crate offers: the keys it holds and the manager
/// they belong to, so that a helper over any guard is one generic function.
///
/// Implemented by [`LockGuard`], [`OwnedLockGuard`], [`MultiLockGuard`] and
/// [`OwnedMultiLockGuard`] (sealed: no other type implements it).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::{Guard, LockManager};
///
/// /// Says what a critical section holds, whichever guard it got.
/// fn describe(guard: &impl Guard<Key = u64>) -> String {
///     let mut keys = guard.keys().to_vec();
///     keys.sort();
///     format!("{keys:?} of {} held", guard.manager().locked_count())
/// }
///
/// let locks = Arc::new(LockManager::new());
/// let one = locks.try_acquire(1).unwrap();
/// assert_eq!(describe(&one), "[1] of 1 held");
/// let two = locks.try_acquire_many_owned([3, 2]).unwrap();
/// assert_eq!(describe(&two), "[2, 3] of 3 held");
/// ```
pub trait Guard: sealed::Sealed {
    /// The manager's key type.
    type Key;
    /// The manager's hasher.
    type Hasher;

    /// The keys held, without duplicates: one for a single-key guard; for a
    /// multi-key guard, in no particular order.
    fn keys(&self) -> &[Self::Key];

    /// The manager the keys belong to.
    fn manager(&self) -> &LockManager<Self::Key, Self::Hasher>;
}

mod sealed {
    pub trait Sealed {}
    impl<M: super::ManagerRef> Sealed for super::SingleGuard<M> {}
    impl<M: super::ManagerRef> Sealed for super::MultiGuard<M> {}
}

/// A guard of one key, borrowing its manager: returned by
/// [`LockManager::acquire`] and [`LockManager::try_acquire`]. See
/// [`SingleGuard`].
///
/// # Examples
///
/// ```
/// use lock_manager::{LockGuard, LockManager};
///
/// let locks = LockManager::new();
/// let guard: LockGuard<'_, u64> = locks.try_acquire(1).unwrap();
/// assert_eq!(*guard.key(), 1);
/// ```
pub type LockGuard<'a, K, S = RandomState> = SingleGuard<&'a LockManager<K, S>>;

/// A guard of one key that holds a clone of its manager's [`Arc`], so it is
/// `'static` when `K` and `S` are, can move into a spawned task, and keeps
/// the manager alive: returned by [`LockManager::acquire_owned`] and
/// [`LockManager::try_acquire_owned`]. See [`SingleGuard`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::{LockManager, OwnedLockGuard};
///
/// let locks = Arc::new(LockManager::new());
/// let guard: OwnedLockGuard<u64> = locks.try_acquire_owned(1).unwrap();
/// drop(locks); // the guard keeps the manager alive
/// assert_eq!(*guard.key(), 1);
/// ```
pub type OwnedLockGuard<K, S = RandomState> = SingleGuard<Arc<LockManager<K, S>>>;

/// A guard of several keys, borrowing its manager: returned by
/// [`LockManager::acquire_many`] and [`LockManager::try_acquire_many`]. See
/// [`MultiGuard`].
///
/// # Examples
///
/// ```
/// use lock_manager::{LockManager, MultiLockGuard};
///
/// let locks = LockManager::new();
/// let guard: MultiLockGuard<'_, u64> = locks.try_acquire_many([1, 2]).unwrap();
/// assert_eq!(guard.keys().len(), 2);
/// ```
pub type MultiLockGuard<'a, K, S = RandomState> = MultiGuard<&'a LockManager<K, S>>;

/// A guard of several keys that holds a clone of its manager's [`Arc`]:
/// returned by [`LockManager::acquire_many_owned`] and
/// [`LockManager::try_acquire_many_owned`]. See [`MultiGuard`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::{LockManager, OwnedMultiLockGuard};
///
/// let locks = Arc::new(LockManager::new());
/// let guard: OwnedMultiLockGuard<u64> = locks.try_acquire_many_owned([1, 2]).unwrap();
/// std::thread::spawn(move || drop(guard)).join().unwrap();
/// assert_eq!(locks.locked_count(), 0);
/// ```
pub type OwnedMultiLockGuard<K, S = RandomState> = MultiGuard<Arc<LockManager<K, S>>>;

/// Holds the lock on one key of a [`LockManager`]; dropping it releases the
/// key, handing it straight to the oldest waiter if there is one.
///
/// Used through its two forms, [`LockGuard`] (borrowing the manager) and
/// [`OwnedLockGuard`] (holding an `Arc` of it). It converts into a
/// multi-key guard with `.into()`.
///
/// # Send and Sync
///
/// `Send` and `Sync` when `K` is `Send + Sync` and `S` is `Sync` (the
/// owned form: `S: Send + Sync`), as the manager it refers to is: a guard
/// taken by a task may be dropped by a thread, and the other way round.
///
/// # Drop order
///
/// A struct's fields are dropped in the order they are declared. When a
/// guard and the work it protects live in one struct (a hand-written
/// future holding the guard beside the future that writes the record),
/// declare the work first: a cancelled caller then drops the half-done
/// write before the key passes on. [`with_lock`](LockManager::with_lock)
/// drops its body first, then releases the key.
///
/// ```
/// use lock_manager::{LockGuard, LockManager};
///
/// struct Save<'a, W> {
///     write: W,                            // dropped first,
///     _guard: LockGuard<'a, &'static str>, // then the key is released
/// }
///
/// let locks = LockManager::new();
/// let save = Save {
///     write: vec![1, 2, 3],
///     _guard: locks.try_acquire("story-1").unwrap(),
/// };
/// assert_eq!(save.write.len(), 3);
/// drop(save);
/// assert!(!locks.is_locked("story-1"));
/// ```
///
/// # Leaking
///
/// [`std::mem::forget`] on a guard keeps its key locked for as long as the
/// manager lives (an owned guard keeps the manager allocated for good):
/// later acquires of that key wait forever. Nothing else is affected and
/// nothing unsafe happens.
///
/// # Panics
///
/// Dropping the guard wakes the next waiter; if that waker's `wake`
/// panics, the panic propagates out of the drop, after the key has been
/// handed over.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = Arc::new(LockManager::new());
/// let guard = locks.acquire("a").await;
/// assert_eq!(*guard.key(), "a");
/// drop(guard);
///
/// let owned = locks.acquire_owned("a").await;
/// std::thread::spawn(move || drop(owned)).join().unwrap();
/// assert!(!locks.is_locked("a"));
/// # });
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the lock is released immediately"]
pub struct SingleGuard<M: ManagerRef> {
    /// `None` only once moved into a [`MultiGuard`]; the manager's
    /// reference gives the `Option` a niche, so it costs no space.
    held: Option<Hold<M>>,
}

/// What a [`SingleGuard`] holds.
struct Hold<M: ManagerRef> {
    manager: M,
    key: M::Key,
    /// Finds the key's shard and entry again at release, without hashing.
    hash: KeyHash,
}

impl<M: ManagerRef> SingleGuard<M> {
    pub(crate) fn new(manager: M, key: M::Key, hash: KeyHash) -> Self {
        Self {
            held: Some(Hold { manager, key, hash }),
        }
    }

    fn held(&self) -> &Hold<M> {
        self.held
            .as_ref()
            .expect("lock-manager: a guard is emptied only as it is consumed")
    }

    /// The key this guard holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let guard = locks.try_acquire(7).unwrap();
    /// assert_eq!(*guard.key(), 7);
    /// ```
    pub fn key(&self) -> &M::Key {
        &self.held().key
    }
}

impl<M: ManagerRef> Guard for SingleGuard<M> {
    type Key = M::Key;
    type Hasher = M::Hasher;

    fn keys(&self) -> &[M::Key] {
        std::slice::from_ref(self.key())
    }

    fn manager(&self) -> &LockManager<M::Key, M::Hasher> {
        self.held().manager.manager()
    }
}

impl<M: ManagerRef> Drop for SingleGuard<M> {
    fn drop(&mut self) {
        if let Some(Hold { manager, key, hash }) = &self.held {
            manager.manager().shards().release(key, *hash);
        }
    }
}

impl<M: ManagerRef> fmt::Debug for SingleGuard<M>
where
    M::Key: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", self.key())
            .finish_non_exhaustive()
    }
}

/// Holds the locks on several keys of a [`LockManager`]; dropping it
/// releases every one, handing each straight to its oldest waiter.
///
/// Used through its two forms, [`MultiLockGuard`] (borrowing the manager)
/// and [`OwnedMultiLockGuard`] (holding an `Arc` of it). A single-key
/// guard converts into one with `.into()`.
///
/// # Send and Sync
///
/// As for [`SingleGuard`]: `Send` and `Sync` when `K` is `Send + Sync`
/// and the hasher `Sync` (the owned form: `Send + Sync`).
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
/// use lock_manager::{LockManager, MultiLockGuard};
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
/// let guard = locks.acquire_many([3, 1, 2, 1]).await;
/// let mut keys = guard.keys().to_vec();
/// keys.sort();
/// assert_eq!(keys, [1, 2, 3]); // duplicates merged
///
/// let one: MultiLockGuard<'_, _> = locks.acquire(4).await.into();
/// assert_eq!(one.keys(), [4]);
/// # });
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the locks are released immediately"]
pub struct MultiGuard<M: ManagerRef> {
    pub(crate) manager: M,
    pub(crate) held: HeldKeys<M::Key>,
}

impl<M: ManagerRef> MultiGuard<M> {
    pub(crate) fn new(manager: M, held: HeldKeys<M::Key>) -> Self {
        Self { manager, held }
    }

    /// The keys this guard holds, without duplicates, in no particular
    /// order (as [`Guard::keys`] gives them, without the trait in scope).
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let guard = locks.try_acquire_many(["a", "a"]).unwrap();
    /// assert_eq!(guard.keys(), ["a"]);
    /// ```
    pub fn keys(&self) -> &[M::Key] {
        self.held.keys.firsts()
    }
}

impl<M: ManagerRef> Guard for MultiGuard<M> {
    type Key = M::Key;
    type Hasher = M::Hasher;

    fn keys(&self) -> &[M::Key] {
        self.keys()
    }

    fn manager(&self) -> &LockManager<M::Key, M::Hasher> {
        self.manager.manager()
    }
}

/// A guard of one key as a guard of several, holding that one key.
impl<M: ManagerRef> From<SingleGuard<M>> for MultiGuard<M> {
    fn from(mut guard: SingleGuard<M>) -> Self {
        let Hold { manager, key, hash } = guard
            .held
            .take()
            .expect("lock-manager: a guard is emptied only as it is consumed");
        let held = HeldKeys {
            keys: Pairs::One([key], [Claim { hash, slot: None }]),
            owner: None,
        };
        MultiGuard { manager, held }
    }
}

impl<M: ManagerRef> Drop for MultiGuard<M> {
    fn drop(&mut self) {
        match self.held.owner {
            None => self.held.release(self.manager.manager().shards()),
            Some(owner) => self.release_owner(owner),
        }
    }
}

impl<M: ManagerRef> MultiGuard<M> {
    /// Releases the keys of a guard that is an owner in the waits-for
    /// graph, then forgets the owner: out of line, as few guards are.
    #[inline(never)]
    fn release_owner(&mut self, owner: Owner) {
        let manager = self.manager.manager();
        // Forgotten only once no key is marked with it any more.
        let released = panic::catch_unwind(AssertUnwindSafe(|| {
            self.held.release(manager.shards());
        }));
        manager.graph().forget(owner);
        if let Err(payload) = released {
            panic::resume_unwind(payload);
        }
    }
}

impl<M: ManagerRef> fmt::Debug for MultiGuard<M>
where
    M::Key: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLockGuard")
            .field("keys", &self.keys())
            .finish_non_exhaustive()
    }
}

/// The keys a multi-key guard holds, with their claims (their hashes), so
/// that releasing them never hashes again.
#[derive(Debug)]
pub(crate) struct HeldKeys<K> {
    /// Each key with its claim (no waiter: every key is held).
    pub(crate) keys: Pairs<K, Claim>,
    /// The guard's record in the waits-for graph, once it has waited while
    /// holding keys: forgotten when the guard is dropped.
    pub(crate) owner: Option<Owner>,
}

impl<K> HeldKeys<K> {
    /// Each key with its claim.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &Claim)> {
        self.keys.iter()
    }

    /// Whether `key`, whose hash is `hash`, is held here.
    pub(crate) fn contains(&self, key: &K, hash: KeyHash) -> bool
    where
        K: Eq,
    {
        self.iter()
            .any(|(held, claim)| claim.hash == hash && held == key)
    }

    /// Takes on the keys of `more`, which holds none of these.
    pub(crate) fn absorb(&mut self, more: HeldKeys<K>) {
        let keys = std::mem::take(&mut self.keys).into_iter();
        self.keys = keys.chain(more.keys).collect();
    }

    /// Releases every key, handing each to its oldest waiter.
    fn release<S>(&self, shards: &Shards<K, S>) {
        shards.release_all(&self.keys);
    }
}
