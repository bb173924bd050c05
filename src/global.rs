//! The process-wide manager keyed by `String`, and [`with_lock`] over it.

use std::future::Future;
use std::sync::OnceLock;

use crate::manager::LockManager;

/// The process-wide [`LockManager`], keyed by `String`, created on first use.
///
/// Every part of a program that locks the same name through it excludes
/// every other, without passing a manager around. Libraries should prefer
/// a manager of their own, so that their keys cannot collide with the
/// application's.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let guard = lock_manager::global().acquire("story-1".to_string()).await;
/// assert!(lock_manager::global().is_locked("story-1"));
/// drop(guard);
/// assert!(!lock_manager::global().is_locked("story-1"));
/// # });
/// ```
pub fn global() -> &'static LockManager<String> {
    static GLOBAL: OnceLock<LockManager<String>> = OnceLock::new();
    GLOBAL.get_or_init(LockManager::new)
}

/// Runs `f` under the lock on `key` in the [`global`] manager and returns
/// its output; see [`LockManager::with_lock`].
///
/// The lock is released however the body ends: on return, on `Err`, on
/// panic, and when the returned future is dropped.
///
/// # Cancel safety
///
/// Dropping the future while it waits gives up its place in the queue;
/// dropping it while `f`'s future runs drops that future, then releases the
/// lock.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let saved = lock_manager::with_lock("story-7", || async {
///     // read, modify and write the story here
///     "saved"
/// })
/// .await;
/// assert_eq!(saved, "saved");
/// assert!(!lock_manager::global().is_locked("story-7"));
/// # });
/// ```
#[track_caller]
pub fn with_lock<'a, F, Fut>(key: impl Into<String>, f: F) -> impl Future<Output = Fut::Output> + 'a
where
    F: FnOnce() -> Fut + 'a,
    Fut: Future + 'a,
{
    let manager: &'a LockManager<String> = global();
    manager.with_lock(key.into(), f)
}
