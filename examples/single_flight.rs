//! Single flight: concurrent loads of one key share one load.
//!
//! `Coalesce` is a small runtime-agnostic library built on a `LockManager`:
//! `get_or_load(key, load)` returns the cached value of `key`, or runs
//! `load` while every other caller for the same key waits for it. If the
//! loading caller is cancelled, or its load fails, the lock passes to the
//! next caller in line, which finds nothing cached and loads in its place.
//! Only `main` below knows the runtime (tokio).
//!
//! ```text
//! cargo run --example single_flight
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lock_manager::LockManager;

/// A cache that loads each missing key once at a time, however many
/// callers ask for it together.
pub struct Coalesce<K, V> {
    locks: LockManager<K>,
    values: Mutex<HashMap<K, V>>,
}

impl<K: Eq, V> Default for Coalesce<K, V> {
    fn default() -> Self {
        Self {
            locks: LockManager::new(),
            values: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Coalesce<K, V> {
    /// The value of `key`: cached, or loaded by `load` while the other
    /// callers for `key` wait. A failed load caches nothing and reaches
    /// only its own caller; the next caller in line loads again.
    ///
    /// Cancel-safe: dropping the future while it waits gives up its place;
    /// dropping it while it loads drops the load, then lets the next
    /// caller in.
    pub async fn get_or_load<F, Fut, E>(&self, key: K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.cached(&key) {
            return Ok(value);
        }
        // One caller per key past this line at a time, in arrival order.
        let _turn = self.locks.acquire(key.clone()).await;
        // Loaded by the caller before us while we waited?
        if let Some(value) = self.cached(&key) {
            return Ok(value);
        }
        // Made after `_turn`, so dropped before it if we are cancelled.
        let value = load().await?;
        self.values.lock().unwrap().insert(key, value.clone());
        Ok(value)
    }

    fn cached(&self, key: &K) -> Option<V> {
        self.values.lock().unwrap().get(key).cloned()
    }

    /// Callers loading or waiting for `key` right now.
    pub fn in_flight(&self, key: &K) -> usize {
        self.locks.queue_len(key)
    }
}

/// Waits until `n` callers are loading or waiting for `key`.
async fn until_in_flight(cache: &Coalesce<&'static str, String>, key: &'static str, n: usize) {
    while cache.in_flight(&key) < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cache = Arc::new(Coalesce::<&str, String>::default());

    // 1. Ten callers at once, one load.
    let loads = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
            tokio::spawn(async move {
                let load = || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Ok::<_, String>("chapter one".to_string())
                };
                cache.get_or_load("story-1", load).await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "chapter one");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    println!("ten callers, {} load", loads.load(Ordering::SeqCst));

    // 2. The loader is cancelled halfway: the next caller loads instead.
    let stuck = tokio::spawn({
        let cache = Arc::clone(&cache);
        async move {
            let load = || std::future::pending::<Result<String, String>>();
            cache.get_or_load("story-2", load).await
        }
    });
    until_in_flight(&cache, "story-2", 1).await;
    let next = tokio::spawn({
        let cache = Arc::clone(&cache);
        async move {
            let load = || async { Ok::<_, String>("loaded by the next caller".to_string()) };
            cache.get_or_load("story-2", load).await
        }
    });
    until_in_flight(&cache, "story-2", 2).await; // queued behind the loader
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(next.await.unwrap().unwrap(), "loaded by the next caller");
    println!("a cancelled load handed over to the next caller");

    // 3. The load fails: its caller sees the error, the next one retries.
    let (fail_now, fail) = tokio::sync::oneshot::channel::<()>();
    let failing = tokio::spawn({
        let cache = Arc::clone(&cache);
        async move {
            let load = || async {
                fail.await.unwrap();
                Err::<String, _>("disk full".to_string())
            };
            cache.get_or_load("story-3", load).await
        }
    });
    until_in_flight(&cache, "story-3", 1).await;
    let retry = tokio::spawn({
        let cache = Arc::clone(&cache);
        async move {
            let load = || async { Ok::<_, String>("retried".to_string()) };
            cache.get_or_load("story-3", load).await
        }
    });
    until_in_flight(&cache, "story-3", 2).await;
    fail_now.send(()).unwrap();
    assert_eq!(failing.await.unwrap().unwrap_err(), "disk full");
    assert_eq!(retry.await.unwrap().unwrap(), "retried");
    assert_eq!(cache.cached(&"story-3").as_deref(), Some("retried"));
    println!("a failed load retried by the next caller");
    assert_eq!(cache.locks.locked_count(), 0);
}
