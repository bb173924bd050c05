//! Guards that take more keys: [`MultiGuard::extend`] and its future,
//! [`Extend`], and [`MultiGuard::try_extend`]. An extend takes its new
//! keys one at a time, in hash order, as a multi-key request does; it is
//! an owner in the waits-for graph (`graph.rs`) from its first wait, and a
//! wait that would close a cycle is refused with [`Deadlock`].

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::future::FusedFuture;

use crate::error::{Deadlock, Error, TimedOut};
use crate::guard::MultiGuard;
use crate::manager::ManagerRef;
use crate::take::Progress;
use crate::trace::Caller;
use crate::wait;

impl<M: ManagerRef> MultiGuard<M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    /// Waits until this guard also holds every key in `keys`: the way to
    /// nest, taking keys found only after locking.
    ///
    /// Keys the guard holds already are skipped, so nesting through the
    /// guard never waits for itself. The others are taken one at a time,
    /// in the manager's order (that of their hashes, not the order listed),
    /// each wait FIFO on its key like every other. Duplicates are merged.
    /// Callers who keep to an order of their own to avoid refusals extend
    /// with one key at a time.
    ///
    /// The future resolves to `Ok(())` once the guard holds them all. While
    /// it waits, the manager knows who it waits for: if its wait would
    /// close a cycle of requests, each waiting for a key the next one holds
    /// (another guard extending in the opposite order, say), it resolves to
    /// [`Deadlock`] at once instead, and the guard keeps what it held
    /// before the call. A multi-key request whose own wait closes such a
    /// cycle cannot fail; the youngest extend waiting in the cycle is
    /// refused in its place. A plain [`acquire`](crate::LockManager::acquire)
    /// made while holding another guard is not seen: nest through `extend`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves no trace: it leaves the queue it joined
    /// and gives back the keys it took; the guard keeps what it held.
    ///
    /// # Panics
    ///
    /// As for [`acquire_many`](crate::LockManager::acquire_many): a key's
    /// `Hash` panicking leaves this call, as does its `Eq` while this call
    /// merges duplicates and leaves out the keys the guard holds (the guard
    /// then holds what it held); its `Eq` or `Clone` while a key is taken
    /// leaves a poll.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let mut guard = locks.acquire_many(["document-7"]).await;
    /// // Read which folder the document is in, then lock it too.
    /// let folder = "folder-2";
    /// guard.extend([folder, "document-7"]).await.expect("no cycle here");
    /// assert_eq!(guard.keys().len(), 2);
    /// assert!(locks.is_locked("folder-2"));
    /// # });
    /// ```
    #[track_caller]
    pub fn extend<I>(&mut self, keys: I) -> Extend<'_, M>
    where
        I: IntoIterator<Item = M::Key>,
    {
        let progress = Progress::new(
            self.manager.manager(),
            keys,
            Some(&self.held),
            Caller::here(),
        );
        Extend {
            guard: self,
            progress,
        }
    }

    /// Takes every key in `keys` the guard does not hold yet if all are
    /// free now, all or nothing: `true` if the guard now holds them all.
    /// Never waits, so it never deadlocks.
    ///
    /// # Panics
    ///
    /// If a key's `Hash` or `Eq` panics, the panic reaches the caller and
    /// the guard holds what it held.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let mut guard = locks.try_acquire_many([1]).unwrap();
    /// let other = locks.try_acquire(3).unwrap();
    /// assert!(!guard.try_extend([2, 3]), "3 is held");
    /// assert!(!locks.is_locked(&2), "all or nothing");
    /// drop(other);
    /// assert!(guard.try_extend([2, 3, 1]));
    /// assert_eq!(guard.keys().len(), 3);
    /// ```
    #[track_caller]
    pub fn try_extend<I>(&mut self, keys: I) -> bool
    where
        I: IntoIterator<Item = M::Key>,
    {
        let manager = self.manager.manager();
        let mut progress = Progress::new(manager, keys, Some(&self.held), Caller::here());
        let Some(more) = progress.try_take(manager.shards()) else {
            return false;
        };
        self.held.absorb(more);
        true
    }
}

/// The future of [`MultiGuard::extend`]: resolves once the guard also
/// holds the new keys, or to [`Deadlock`] if waiting would close a cycle.
///
/// It borrows the guard mutably until it completes or is dropped.
///
/// # Cancel safety
///
/// Dropping it leaves the queue it joined and gives back the keys it took;
/// the guard keeps what it held before.
///
/// # Panics
///
/// Polling it again after it completed panics.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lock_manager::{Error, LockManager};
///
/// let locks = LockManager::new();
/// let mut guard = locks.try_acquire_many(["a"]).unwrap();
/// let b = locks.try_acquire("b").unwrap();
/// let waited = guard.extend(["b"]).wait_timeout(Duration::from_millis(10));
/// assert!(matches!(waited, Err(Error::TimedOut(_))));
/// assert_eq!(guard.keys(), ["a"]);
/// drop(b);
/// guard.extend(["b"]).wait().unwrap();
/// assert_eq!(guard.keys().len(), 2);
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Extend<'g, M: ManagerRef> {
    guard: &'g mut MultiGuard<M>,
    progress: Progress<M::Key>,
}

impl<M: ManagerRef> Extend<'_, M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    /// Takes the extend's place now rather than at its first poll, as
    /// [`MultiAcquire::enqueue`](crate::MultiAcquire::enqueue) does: the
    /// free keys in order, and a place in the queue of the first one held.
    /// Does nothing to an extend that has its place already.
    ///
    /// # Cancel safety
    ///
    /// As for [`Extend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// # futures::executor::block_on(async {
    /// let locks = LockManager::new();
    /// let mut guard = locks.try_acquire_many([1]).unwrap();
    /// let two = guard.extend([2]).enqueue();
    /// assert!(locks.is_locked(&2), "taken before any poll");
    /// two.await.unwrap();
    /// # });
    /// ```
    pub fn enqueue(mut self) -> Self {
        let manager = self.guard.manager.manager();
        let guard = Some(&self.guard.held);
        // A refusal waits in the graph for the first poll.
        (self.progress).enqueue(manager.shards(), manager.graph(), guard);
        self.guard.held.owner = self.progress.owner;
        self
    }

    /// Blocks the current thread until the guard holds the new keys, or the
    /// extend is refused.
    ///
    /// # Errors
    ///
    /// [`Deadlock`], as for awaiting the future.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let mut guard = locks.acquire_many(["a"]).wait();
    /// guard.extend(["b"]).wait().unwrap();
    /// assert_eq!(locks.locked_count(), 2);
    /// ```
    pub fn wait(self) -> Result<(), Deadlock<M::Key>> {
        match wait::wait(self, None) {
            Ok(extended) => extended,
            Err(TimedOut) => unreachable!("no deadline"),
        }
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`: the guard then
    /// holds what it held before the call.
    ///
    /// # Errors
    ///
    /// [`Error::Deadlock`] if refused, [`Error::TimedOut`] at the deadline.
    ///
    /// # Examples
    ///
    /// See [`Extend`].
    pub fn wait_timeout(self, timeout: Duration) -> Result<(), Error<M::Key>> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Like [`wait_timeout`](Self::wait_timeout), until an instant.
    ///
    /// # Errors
    ///
    /// As for [`wait_timeout`](Self::wait_timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// let mut guard = locks.acquire_many([1]).wait();
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// guard.extend([2]).wait_deadline(deadline).unwrap();
    /// ```
    pub fn wait_deadline(self, deadline: Instant) -> Result<(), Error<M::Key>> {
        self.wait_until(Some(deadline))
    }

    fn wait_until(self, deadline: Option<Instant>) -> Result<(), Error<M::Key>> {
        Ok(wait::wait(self, deadline)??)
    }
}

impl<M: ManagerRef> Future for Extend<'_, M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    type Output = Result<(), Deadlock<M::Key>>;

    #[track_caller]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Extend { guard, progress } = &mut *self;
        let manager = guard.manager.manager();
        let (shards, graph) = (manager.shards(), manager.graph());
        let refused = |progress: &mut Progress<M::Key>| {
            let refusal = graph.take_refusal(progress.owner?)?;
            progress.cancel(shards, graph);
            Some(Poll::Ready(Err(Deadlock::from(refusal))))
        };
        if let Some(refusal) = refused(progress) {
            return refusal;
        }
        if let Poll::Ready(more) = progress.poll(shards, graph, cx) {
            guard.held.absorb(more);
            return Poll::Ready(Ok(()));
        }
        progress.nest(shards, graph, Some(&guard.held));
        guard.held.owner = progress.owner;
        refused(progress).unwrap_or(Poll::Pending)
    }
}

impl<M: ManagerRef> FusedFuture for Extend<'_, M>
where
    M::Key: Eq + Hash + Clone,
    M::Hasher: BuildHasher,
{
    fn is_terminated(&self) -> bool {
        self.progress.is_done()
    }
}

// Nothing is pinned: the keys move into the guard.
impl<M: ManagerRef> Unpin for Extend<'_, M> {}

impl<M: ManagerRef> Drop for Extend<'_, M> {
    fn drop(&mut self) {
        let manager = self.guard.manager.manager();
        self.progress.cancel(manager.shards(), manager.graph());
    }
}

impl<M: ManagerRef> fmt::Debug for Extend<'_, M>
where
    M::Key: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extend")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}
