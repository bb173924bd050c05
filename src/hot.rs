//! The hot keys, with the `diagnostics` feature: each shard keeps the keys
//! with the most contended acquisitions in a Space-Saving sketch
//! ([`Sketch`], a fixed number of counters whatever the number of keys),
//! and [`HotKey`] is one of them in a report.
//!
//! A held key counts its own contention in its map entry (`Heat`); only
//! when it is released with nobody waiting does that count reach the
//! sketch, with the map's own copy of the key: nothing is counted on an
//! uncontended path, and no key is cloned under a mutex but by a report.

// Without `diagnostics`, no shard keeps a sketch; its tests run anyway.
#![cfg_attr(not(feature = "diagnostics"), allow(dead_code))]

use std::marker::PhantomData;
use std::time::Duration;

use crate::hashed::KeyHash;
use crate::trace::Heat;

/// The keys a shard's sketch tracks.
const TRACKED: usize = 16;

/// One of the keys with the most contended acquisitions, in
/// [`LockManager::hot_keys`](crate::LockManager::hot_keys).
///
/// Counted since the manager was created, like [`Stats`](crate::Stats): the
/// difference of two reports taken an interval apart, key by key, tells
/// which keys were hot in that interval. The counts are exact for a key
/// that the report saw every time; a key that the sketch dropped for
/// another and took back may be overcounted, by at most
/// [`error`](Self::error).
///
/// # Examples
///
/// ```
/// use futures::FutureExt;
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// let guard = locks.try_acquire("hot").unwrap();
/// let waiter = locks.acquire("hot");
/// drop(waiter.now_or_never()); // queued once, then dropped
/// drop(guard);
/// let hot = locks.hot_keys(10);
/// if lock_manager::DIAGNOSTICS {
///     assert_eq!((hot[0].key, hot[0].contended), ("hot", 1));
/// } else {
///     assert!(hot.is_empty());
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HotKey<K> {
    /// The key.
    pub key: K,
    /// The requests that found it held and queued for it.
    pub contended: u64,
    /// Their waits, added up: those that took the key and those that gave
    /// up, waits in progress not included.
    pub waited: Duration,
    /// How much [`contended`](Self::contended) may overcount (and
    /// [`waited`](Self::waited) with it): what the sketch counted for the
    /// key it dropped when it took this one back. Zero when exact.
    pub error: u64,
}

/// A shard's hot keys: its [`Sketch`] with the `diagnostics` feature,
/// nothing (zero-sized) without it.
#[derive(Debug)]
pub(crate) struct HotKeys<K> {
    #[cfg(feature = "diagnostics")]
    sketch: Sketch<K>,
    sketch_of: PhantomData<fn() -> K>,
}

impl<K> Default for HotKeys<K> {
    fn default() -> Self {
        Self {
            #[cfg(feature = "diagnostics")]
            sketch: Sketch::default(),
            sketch_of: PhantomData,
        }
    }
}

#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
impl<K: Eq> HotKeys<K> {
    /// Adds the contention `key` saw while it was held (`heat`), as it is
    /// released free. Out of line: most keys released saw none, and their
    /// release tests that alone.
    #[inline(never)]
    pub(crate) fn cooled(&mut self, key: K, hash: KeyHash, heat: Heat) {
        #[cfg(feature = "diagnostics")]
        self.sketch.add(key, hash, heat.contended, heat.waited);
    }
}

#[cfg_attr(
    not(feature = "diagnostics"),
    allow(unused_variables, unused_mut, clippy::ptr_arg)
)]
impl<K: Eq + Clone> HotKeys<K> {
    /// Appends to `hot` the keys of `held` (held now, each with its
    /// contention so far) that saw contention, then the keys the sketch
    /// tracks, a key in both on one line.
    pub(crate) fn report<'a>(
        &self,
        held: impl Iterator<Item = (&'a K, Heat)>,
        hot: &mut Vec<HotKey<K>>,
    ) where
        K: 'a,
    {
        #[cfg(feature = "diagnostics")]
        {
            let from = hot.len();
            let held = held.filter(|(_, heat)| heat.is_hot());
            hot.extend(held.map(|(key, heat)| HotKey {
                key: key.clone(),
                contended: heat.contended,
                waited: Duration::from_nanos(heat.waited),
                error: 0,
            }));
            self.sketch.report(hot, from);
        }
    }
}

/// A shard's hot keys: at most [`TRACKED`], those with the most contended
/// acquisitions (a Space-Saving sketch: a key not tracked takes the place
/// of the least counted, starting from its count).
#[derive(Debug)]
pub(crate) struct Sketch<K> {
    tracked: Vec<Tracked<K>>,
}

#[derive(Debug)]
struct Tracked<K> {
    key: K,
    hash: KeyHash,
    contended: u64,
    /// In nanoseconds.
    waited: u64,
    error: u64,
}

impl<K> Default for Sketch<K> {
    fn default() -> Self {
        Self {
            tracked: Vec::new(),
        }
    }
}

impl<K: Eq> Sketch<K> {
    /// Adds the contention a key saw while it was held: `contended`
    /// requests that waited `waited` nanoseconds in all.
    pub(crate) fn add(&mut self, key: K, hash: KeyHash, contended: u64, waited: u64) {
        let mut tracked = self.tracked.iter_mut();
        if let Some(known) = tracked.find(|known| known.hash == hash && known.key == key) {
            known.contended += contended;
            known.waited = known.waited.saturating_add(waited);
            return;
        }
        let new = Tracked {
            key,
            hash,
            contended,
            waited,
            error: 0,
        };
        if self.tracked.len() < TRACKED {
            self.tracked.reserve_exact(TRACKED);
            self.tracked.push(new);
            return;
        }
        let least = (self.tracked.iter_mut())
            .min_by_key(|known| known.contended)
            .expect("a full sketch");
        *least = Tracked {
            contended: least.contended + new.contended,
            waited: least.waited.saturating_add(new.waited),
            error: least.contended,
            ..new
        };
    }
}

impl<K: Eq + Clone> Sketch<K> {
    /// Appends the keys tracked to `hot`, adding to a key already there
    /// (one held now, with the contention of its current hold) rather
    /// than listing it twice.
    pub(crate) fn report(&self, hot: &mut Vec<HotKey<K>>, held_from: usize) {
        for known in &self.tracked {
            let listed = hot[held_from..]
                .iter_mut()
                .find(|listed| listed.key == known.key);
            let waited = Duration::from_nanos(known.waited);
            match listed {
                Some(listed) => {
                    listed.contended += known.contended;
                    listed.waited = listed.waited.saturating_add(waited);
                    listed.error = known.error;
                }
                None => hot.push(HotKey {
                    key: known.key.clone(),
                    contended: known.contended,
                    waited,
                    error: known.error,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> KeyHash {
        let hasher =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        KeyHash::of(&hasher, &n)
    }

    fn report(sketch: &Sketch<u32>) -> Vec<(u32, u64, u64)> {
        let mut hot = Vec::new();
        sketch.report(&mut hot, 0);
        hot.sort_by_key(|key| key.key);
        hot.iter()
            .map(|key| (key.key, key.contended, key.error))
            .collect()
    }

    #[test]
    fn a_key_tracked_adds_up_exactly() {
        let mut sketch = Sketch::default();
        sketch.add(7, hash(7), 2, 100);
        sketch.add(7, hash(7), 3, 50);
        // A key of the same hash is another key.
        sketch.add(8, hash(7), 1, 10);
        assert_eq!(sketch.tracked.len(), 2, "each key tracked once");
        assert_eq!(report(&sketch), [(7, 5, 0), (8, 1, 0)]);
        let mut hot = Vec::new();
        sketch.report(&mut hot, 0);
        assert_eq!(hot[0].waited, Duration::from_nanos(150));
    }

    #[test]
    fn a_new_key_in_a_full_sketch_replaces_the_least_counted() {
        let mut sketch = Sketch::default();
        for key in 0..TRACKED as u32 {
            sketch.add(key, hash(key), 10 + u64::from(key), 70);
        }
        // Key 0, counted 10, is the least: 99 takes its place, and its
        // counts, from there.
        sketch.add(99, hash(99), 2, 5);
        let taken = sketch.tracked.iter().find(|known| known.key == 99);
        assert_eq!(taken.map(|known| known.waited), Some(75));
        let report = report(&sketch);
        assert_eq!(report.len(), TRACKED);
        assert!(!report.iter().any(|&(key, ..)| key == 0));
        assert!(report.contains(&(99, 12, 10)));
    }

    #[test]
    fn a_key_seen_twice_in_a_report_is_listed_once() {
        let mut sketch = Sketch::default();
        sketch.add(7, hash(7), 2, 100);
        let mut hot = vec![
            HotKey {
                key: 1,
                contended: 9,
                waited: Duration::ZERO,
                error: 0,
            },
            HotKey {
                key: 7,
                contended: 1,
                waited: Duration::from_nanos(5),
                error: 0,
            },
        ];
        sketch.report(&mut hot, 1);
        assert_eq!(hot.len(), 2);
        assert_eq!(
            (hot[1].contended, hot[1].waited),
            (3, Duration::from_nanos(105))
        );
    }
}
