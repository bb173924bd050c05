//! The process-wide manager keyed by `String`, and the free functions over
//! it that the original design had: [`with_lock`], [`is_locked`] and
//! [`queue_len`].

use std::future::Future;
use std::sync::OnceLock;

use crate::manager::LockManager;

/// The process-wide [`LockManager`], keyed by `String`, created on first use.
///
/// Every part of a program that locks the same name through it excludes
/// every other, without passing a manager around. Libraries should prefer
/// a manager of their own, so that their keys cannot collide with the
/// application's. Its acquire methods take a `String`
/// (`global().acquire("story-1".to_owned())`); [`with_lock`],
/// [`is_locked`] and [`queue_len`] take a `&str`.
///
/// # Testing code that uses it
///
/// `cargo test` runs tests in parallel threads of one process, and they
/// all share this one manager: two tests that lock the same key wait for
/// each other, and a count over the whole manager (`locked_count()`,
/// `stats()`) sees every test's keys. Give each test keys of its own (a
/// prefix per test), and assert on those keys only; or write the code
/// under test against a `&LockManager` passed in, and give each test a
/// manager of its own.
///
/// ```
/// use lock_manager::LockManager;
///
/// /// The code under test takes the manager it locks with.
/// async fn append(locks: &LockManager<String>, story: &str, log: &mut Vec<String>) {
///     locks.with_lock(story.to_owned(), || async { log.push(story.to_owned()) }).await;
/// }
///
/// # futures::executor::block_on(async {
/// // In production: `append(lock_manager::global(), ...)`. In a test, a
/// // manager of its own, whose counts no other test disturbs:
/// let locks = LockManager::new();
/// let mut log = Vec::new();
/// append(&locks, "story-1", &mut log).await;
/// assert_eq!(log, ["story-1"]);
/// assert_eq!(locks.locked_count(), 0);
///
/// // Through the global manager, with a key no other test uses:
/// append(lock_manager::global(), "append-test/story-1", &mut log).await;
/// assert!(!lock_manager::is_locked("append-test/story-1"));
/// # });
/// ```
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let guard = lock_manager::global().acquire("story-1".to_owned()).await;
/// assert!(lock_manager::is_locked("story-1"));
/// drop(guard);
/// assert!(!lock_manager::is_locked("story-1"));
/// # });
/// ```
pub fn global() -> &'static LockManager<String> {
    static GLOBAL: OnceLock<LockManager<String>> = OnceLock::new();
    GLOBAL.get_or_init(LockManager::new)
}

/// Runs `f` under the lock on `key` in the [`global`] manager and returns
/// its output; see [`LockManager::with_lock`].
///
/// The caller arrives in the key's queue when this is called: of two calls
/// on one key, the first runs first, however their futures are spawned.
/// The lock is released however the body ends: on return, on `Err`, on
/// panic, and when the returned future is dropped. The future borrows
/// nothing but what `f` does, so it can be spawned as it is.
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
/// assert!(!lock_manager::is_locked("story-7"));
/// # });
/// ```
#[track_caller]
pub fn with_lock<'a, F, Fut>(key: impl Into<String>, f: F) -> impl Future<Output = Fut::Output> + 'a
where
    F: FnOnce() -> Fut + 'a,
    Fut: Future + 'a,
{
    global().with_lock(key.into(), f)
}

/// Whether `key` is held in the [`global`] manager; see
/// [`LockManager::is_locked`].
///
/// # Examples
///
/// ```
/// let guard = lock_manager::global().try_acquire("is-locked-doc".to_owned());
/// assert!(lock_manager::is_locked("is-locked-doc"));
/// drop(guard);
/// assert!(!lock_manager::is_locked("is-locked-doc"));
/// ```
pub fn is_locked(key: &str) -> bool {
    global().is_locked(key)
}

/// How many callers hold or wait for `key` in the [`global`] manager: 1
/// for its holder plus 1 per waiter, or 0 when it is free; see
/// [`LockManager::queue_len`].
///
/// # Examples
///
/// ```
/// assert_eq!(lock_manager::queue_len("queue-len-doc"), 0);
/// let guard = lock_manager::global().try_acquire("queue-len-doc".to_owned());
/// let waiter = lock_manager::global().acquire("queue-len-doc".to_owned()).enqueue();
/// assert_eq!(lock_manager::queue_len("queue-len-doc"), 2);
/// # drop((waiter, guard));
/// ```
pub fn queue_len(key: &str) -> usize {
    global().queue_len(key)
}
