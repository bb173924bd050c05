//! The manager's state split into shards by key, each behind its own mutex,
//! so that unrelated keys do not serialize on one lock when many threads
//! use the manager. FIFO order is per key and a key lives in one shard, so
//! sharding changes no guarantee.

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroUsize;
use std::sync::OnceLock;

use crate::hashed::KeyHash;
use crate::notice::Notice;
use crate::queue::Slot;
use crate::state::State;
use crate::sync::{Mutex, MutexGuard};

/// One shard: its state behind its own mutex, and the notice of its latest
/// hand-off. Alone on its cache lines, so that threads working on
/// neighbouring shards do not slow each other down.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Shard<K> {
    state: Mutex<State<K>>,
    notice: Notice,
}

impl<K> Shard<K> {
    fn new() -> Self {
        Self {
            state: Mutex::new(State::new()),
            notice: Notice::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock()
    }

    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, State<K>>> {
        self.state.try_lock()
    }

    pub(crate) fn notice(&self) -> &Notice {
        &self.notice
    }
}

#[derive(Debug)]
pub(crate) struct Shards<K, S> {
    shards: Box<[Shard<K>]>,
    /// `log2(shards.len())`: a key's shard is the top bits of its hash.
    bits: u32,
    /// The manager's hasher, run once per key placed: see [`KeyHash`].
    hasher: S,
}

impl<K, S> Shards<K, S> {
    /// `count` shards (a power of two, at least 1), placing keys by their
    /// hash with `hasher`.
    pub(crate) fn new(count: usize, hasher: S) -> Self {
        debug_assert!(count.is_power_of_two());
        Self {
            shards: (0..count).map(|_| Shard::new()).collect(),
            bits: count.trailing_zeros(),
            hasher,
        }
    }

    /// The index of the shard that holds a key whose hash is `hash`.
    /// Shard indices grow with the hash, so sorting keys by it sorts them
    /// by shard.
    pub(crate) fn index_of(&self, hash: KeyHash) -> ShardIndex {
        match self.bits {
            0 => 0,
            bits => hash.top(bits),
        }
    }

    /// The shard that holds a key whose hash is `hash`.
    pub(crate) fn of(&self, hash: KeyHash) -> &Shard<K> {
        self.get(self.index_of(hash))
    }

    pub(crate) fn get(&self, index: ShardIndex) -> &Shard<K> {
        &self.shards[index as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Shard<K>> {
        self.shards.iter()
    }
}

impl<K, S: BuildHasher> Shards<K, S> {
    /// Hashes `key` with the manager's hasher.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> KeyHash {
        KeyHash::of(&self.hasher, key)
    }
}

/// A shard's position: 16 bits, as there are at most [`MAX_SHARDS`].
pub(crate) type ShardIndex = u16;

/// Where a queued waiter lives: its key's hash, which names its shard, and
/// its slot there.
///
/// Recorded when the waiter is queued, so that finding it again never
/// depends on hashing its key: a key whose hash changes (breaking the
/// `Hash` contract) must not reach into another shard and touch another
/// key's waiter that happens to have the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterRef {
    pub(crate) hash: KeyHash,
    pub(crate) slot: Slot,
}

/// The number of shards used when none is asked for: sixteen per core,
/// rounded up to a power of two, at most 1,024.
///
/// Measured on 16 cores (benches/scaling.rs, threads on distinct keys), 16
/// threads ran 2.5x, 4.0x and 4.2x as fast as one with 64, 256 and 1,024
/// shards; a shard costs 128 bytes when idle.
pub(crate) fn default_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        count_for(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    })
}

fn count_for(cores: usize) -> usize {
    (cores * 16).next_power_of_two().min(1024)
}

/// More shards than this only cost memory.
pub(crate) const MAX_SHARDS: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashed::tests::{Fixed, Identity};
    use std::collections::hash_map::RandomState;
    use std::collections::HashSet;
    use std::hash::BuildHasherDefault;

    fn shard_of<S: BuildHasher>(shards: &Shards<u64, S>, key: u64) -> usize {
        usize::from(shards.index_of(shards.hash(&key)))
    }

    #[test]
    fn sequential_keys_spread_over_every_shard() {
        let shards = Shards::<u64, _>::new(16, RandomState::new());
        let mut hits = [0; 16];
        for key in 0..16_000 {
            hits[shard_of(&shards, key)] += 1;
        }
        // Perfectly even would be 1,000 each.
        assert!(hits.iter().all(|&n| (500..1_500).contains(&n)), "{hits:?}");
    }

    #[test]
    fn a_key_and_its_borrowed_form_share_a_shard() {
        let shards = Shards::<String, _>::new(64, RandomState::new());
        for n in 0..100 {
            let owned = format!("story-{n}");
            assert_eq!(shards.hash(&owned), shards.hash(owned.as_str()));
        }
    }

    #[test]
    fn an_idle_shard_takes_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Shard<u64>>(), 128);
    }

    #[test]
    fn the_shard_is_the_top_bits_of_the_hash() {
        let shards = Shards::<u64, _>::new(16, Fixed::default());
        for key in 0..1000_u64 {
            let hash = shards.hash(&key);
            assert_eq!(shards.index_of(hash), hash.top(4));
            assert!(std::ptr::eq(shards.of(hash), shards.get(hash.top(4))));
        }
    }

    /// Asserts that `keys` fall evenly on as many shards as give each 64 or
    /// more (at most 16): each gets between half and twice its share.
    fn assert_spread<Q: Hash, S: BuildHasher + Default>(
        what: &str,
        keys: impl IntoIterator<Item = Q>,
    ) {
        let keys: Vec<Q> = keys.into_iter().collect();
        let count = (keys.len() / 64).min(16);
        let count = 1 << count.ilog2();
        let shards = Shards::<u64, _>::new(count, S::default());
        let mut hits = vec![0; count];
        for key in &keys {
            hits[usize::from(shards.index_of(shards.hash(key)))] += 1;
        }
        let share = keys.len() / count;
        assert!(
            hits.iter().all(|&n| share / 2 <= n && n <= share * 2),
            "{what}: {hits:?}"
        );
    }

    #[test]
    fn keys_of_every_kind_spread_over_every_shard() {
        assert_spread::<_, Fixed>("u8", 0..=u8::MAX);
        assert_spread::<_, Fixed>("u64", 0..1024_u64);
        assert_spread::<_, Fixed>("(u32, u32)", (0..1024_u32).map(|n| (n % 7, n)));
        assert_spread::<_, Fixed>("one byte", (0..=u8::MAX).map(|b| vec![b]));
        assert_spread::<_, Fixed>("stories", (0..1024).map(|n| format!("story-{n}")));
    }

    #[test]
    fn keys_spread_even_with_an_identity_hasher() {
        type Ident = BuildHasherDefault<Identity>;
        assert_spread::<_, Ident>("small u64", 0..1024_u64);
        // Multiples of a power of two: only high bits differ.
        assert_spread::<_, Ident>("u64 << 32", (0..1024_u64).map(|n| n << 32));
        assert_spread::<_, Ident>("u64 << 8", (0..1024_u64).map(|n| n << 8));
    }

    #[test]
    fn every_one_of_16_shards_gets_some_of_the_256_one_byte_strings() {
        let shards = Shards::<u64, _>::new(16, Fixed::default());
        let hit: HashSet<_> = (0..=u8::MAX)
            .map(|b| shards.index_of(shards.hash(&[b][..])))
            .collect();
        assert_eq!(hit.len(), 16);
    }

    #[test]
    fn the_default_count_is_sixteen_shards_a_core_rounded_up_to_a_power_of_two() {
        for (cores, shards) in [
            (1, 16),
            (2, 32),
            (3, 64),
            (4, 64),
            (5, 128),
            (64, 1024),
            (1000, 1024),
        ] {
            assert_eq!(count_for(cores), shards, "{cores} cores");
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(default_count(), count_for(cores));
    }

    #[test]
    fn one_shard_takes_every_key() {
        let shards = Shards::<u64, _>::new(1, RandomState::new());
        assert!((0..100).all(|key| shard_of(&shards, key) == 0));
    }
}
