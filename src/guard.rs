//! The guards that hold a key's lock until dropped.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::sync::Arc;

use crate::hashed::KeyHash;
use crate::manager::LockManager;

/// Holds the lock on one key of a [`LockManager`]; dropping it releases the
/// key, handing it straight to the oldest waiter if there is one.
///
/// Returned by [`LockManager::acquire`] and [`LockManager::try_acquire`].
/// The guard may be dropped on any thread.
///
/// # Drop order
///
/// A struct's fields are dropped in the order they are declared. When a
/// guard and the work it protects live in one struct (a hand-written
/// future holding the guard beside the future that writes the record),
/// declare the work first: a cancelled caller then drops the half-done
/// write before the key passes on. Declared the other way round, the next
/// caller may start on the record while the old write is still alive, as
/// when it flushes or rolls back in its own `Drop`.
/// [`with_lock`](LockManager::with_lock) drops its body first, then
/// releases the key.
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
/// manager lives: later acquires of that key wait forever. Nothing else is
/// affected and nothing unsafe happens.
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
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = LockManager::new();
/// let guard = locks.acquire("a").await;
/// assert_eq!(*guard.key(), "a");
/// drop(guard);
/// assert!(!locks.is_locked("a"));
/// # });
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the lock is released immediately"]
pub struct LockGuard<'a, K, S = RandomState> {
    manager: &'a LockManager<K, S>,
    key: K,
    /// Finds the key's shard and entry again at release, without hashing.
    hash: KeyHash,
}

impl<'a, K, S> LockGuard<'a, K, S> {
    pub(crate) fn new(manager: &'a LockManager<K, S>, key: K, hash: KeyHash) -> Self {
        Self { manager, key, hash }
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
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The manager this guard's key belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let guard = locks.try_acquire(7).unwrap();
    /// assert!(std::ptr::eq(guard.manager(), &locks));
    /// ```
    pub fn manager(&self) -> &'a LockManager<K, S> {
        self.manager
    }
}

impl<K, S> Drop for LockGuard<'_, K, S> {
    fn drop(&mut self) {
        self.manager.shards().release(&self.key, self.hash);
    }
}

impl<K: fmt::Debug, S> fmt::Debug for LockGuard<'_, K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Like [`LockGuard`], but holds a clone of the manager's [`Arc`] instead of
/// a borrow, so it is `'static` when `K` and `S` are and can move into a
/// spawned task. It keeps the manager alive.
///
/// Returned by [`LockManager::acquire_owned`] and
/// [`LockManager::try_acquire_owned`]. Declare it after the work it
/// protects in a struct that holds both (see [`LockGuard`]'s drop order).
///
/// # Leaking
///
/// [`std::mem::forget`] on a guard keeps its key locked, and the manager
/// allocated, for good. Nothing else is affected and nothing unsafe happens.
///
/// # Panics
///
/// As for [`LockGuard`]: a panic from the next waiter's waker propagates
/// out of the drop, after the key has been handed over.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use lock_manager::LockManager;
///
/// # futures::executor::block_on(async {
/// let locks = Arc::new(LockManager::new());
/// let guard = locks.acquire_owned(3).await;
/// drop(locks); // the guard keeps the manager alive
/// assert!(guard.manager().is_locked(&3));
/// # });
/// ```
#[clippy::has_significant_drop]
#[must_use = "if unused the lock is released immediately"]
pub struct OwnedLockGuard<K, S = RandomState> {
    manager: Arc<LockManager<K, S>>,
    key: K,
    /// Finds the key's shard and entry again at release, without hashing.
    hash: KeyHash,
}

impl<K, S> OwnedLockGuard<K, S> {
    pub(crate) fn new(manager: Arc<LockManager<K, S>>, key: K, hash: KeyHash) -> Self {
        Self { manager, key, hash }
    }

    /// The key this guard holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.try_acquire_owned("a").unwrap();
    /// assert_eq!(*guard.key(), "a");
    /// ```
    pub fn key(&self) -> &K {
        &self.key
    }

    /// The manager this guard's key belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use lock_manager::LockManager;
    ///
    /// let locks = Arc::new(LockManager::new());
    /// let guard = locks.try_acquire_owned("a").unwrap();
    /// assert!(Arc::ptr_eq(guard.manager(), &locks));
    /// ```
    pub fn manager(&self) -> &Arc<LockManager<K, S>> {
        &self.manager
    }
}

impl<K, S> Drop for OwnedLockGuard<K, S> {
    fn drop(&mut self) {
        self.manager.shards().release(&self.key, self.hash);
    }
}

impl<K: fmt::Debug, S> fmt::Debug for OwnedLockGuard<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedLockGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}
