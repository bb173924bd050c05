//! The manager's state split into shards by key, each behind its own mutex,
//! so that unrelated keys do not serialize on one lock when many threads
//! use the manager. FIFO order is per key and a key lives in one shard, so
//! sharding changes no guarantee.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::OnceLock;

use crate::queue::Slot;
use crate::state::State;
use crate::sync::Mutex;

/// One shard's mutex, alone on its cache lines so that threads working on
/// neighbouring shards do not slow each other down.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(T);

/// One shard: its state behind its own mutex.
type Shard<K, S> = Padded<Mutex<State<K, S>>>;

#[derive(Debug)]
pub(crate) struct Shards<K, S> {
    shards: Box<[Shard<K, S>]>,
    /// `64 - log2(shards.len())`: a key's shard is the top bits of its
    /// spread hash. Unused with a single shard.
    shift: u32,
}

impl<K, S: Clone> Shards<K, S> {
    /// `count` shards (a power of two, at least 1), each hashing with a
    /// clone of `hasher`.
    pub(crate) fn new(count: usize, hasher: S) -> Self {
        debug_assert!(count.is_power_of_two());
        Self {
            shards: (0..count)
                .map(|_| Padded(Mutex::new(State::with_hasher(hasher.clone()))))
                .collect(),
            shift: 64 - count.trailing_zeros(),
        }
    }
}

impl<K, S> Shards<K, S> {
    /// The shard that holds `key`.
    pub(crate) fn of<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<State<K, S>> {
        self.get(self.index_of(key))
    }

    /// The index of the shard that holds `key`.
    pub(crate) fn index_of<Q: Hash + ?Sized>(&self, key: &Q) -> ShardIndex {
        match self.shards.len() {
            1 => 0,
            _ => self.index_of_spread(spread(key)),
        }
    }

    /// The index of the shard that holds a key whose [`spread`] hash is
    /// `hash`. Shard indices grow with the hash, so sorting keys by it
    /// sorts them by shard.
    pub(crate) fn index_of_spread(&self, hash: u64) -> ShardIndex {
        match self.shards.len() {
            1 => 0,
            // Lossless: the shift leaves at most 16 bits.
            _ => (hash >> self.shift) as ShardIndex,
        }
    }

    pub(crate) fn get(&self, index: ShardIndex) -> &Mutex<State<K, S>> {
        &self.shards[index as usize].0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Mutex<State<K, S>>> {
        self.shards.iter().map(|padded| &padded.0)
    }
}

/// A shard's position: 16 bits, as there are at most [`MAX_SHARDS`].
pub(crate) type ShardIndex = u16;

/// Where a queued waiter lives: its shard and its slot there.
///
/// Recorded when the waiter is queued, so that finding it again never
/// depends on hashing its key: a key whose hash changes (breaking the
/// `Hash` contract) must not reach into another shard and touch another
/// key's waiter that happens to have the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterRef {
    pub(crate) shard: ShardIndex,
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

/// Hashes `key` to choose its shard, with the folded multiply of wyhash
/// and foldhash, sixteen bytes at a time.
///
/// This hash is fast and unkeyed: keys crafted to collide only crowd one
/// shard's mutex. The maps inside the shards hash with the manager's own
/// (by default DoS-resistant) hasher.
pub(crate) fn spread<Q: Hash + ?Sized>(key: &Q) -> u64 {
    let mut hasher = SpreadHasher(0);
    key.hash(&mut hasher);
    hasher.finish()
}

struct SpreadHasher(u64);

impl SpreadHasher {
    fn add(&mut self, word: u64) {
        self.add_pair(word, 0);
    }

    fn add_pair(&mut self, a: u64, b: u64) {
        // Both constants from the digits of pi, as in foldhash.
        self.0 = fold(
            u128::from(self.0 ^ a ^ 0x243f_6a88_85a3_08d3) * u128::from(b ^ 0x1319_8a2e_0370_7344),
        );
    }
}

/// The two halves of a product, folded into one word.
fn fold(product: u128) -> u64 {
    // Lossless: each half fits.
    (product as u64) ^ ((product >> 64) as u64)
}

/// A word read from `bytes`, at most eight of them, without a call to
/// `memcpy`: shorter tails are read as overlapping halves, as wyhash does.
fn word(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    match len {
        8.. => u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes")),
        4.. => {
            let half = |at: usize| -> u64 {
                u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")).into()
            };
            half(0) << 32 | half(len - 4)
        }
        1.. => {
            u64::from(bytes[0]) << 16 | u64::from(bytes[len / 2]) << 8 | u64::from(bytes[len - 1])
        }
        0 => 0,
    }
}

impl Hasher for SpreadHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut blocks = bytes.chunks_exact(16);
        for block in &mut blocks {
            let (a, b) = block.split_at(8);
            self.add_pair(word(a), word(b));
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let (a, b) = rest.split_at(rest.len().min(8));
            self.add_pair(word(a), word(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        // Lossless on every target std supports.
        self.add(n as u64);
    }

    /// Fibonacci hashing: the top bits, which choose the shard, of a
    /// multiply by 2^64 over the golden ratio depend on every bit of the
    /// state. Without it the 256 one-byte strings left some of 16 shards
    /// empty.
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::collections::HashSet;

    fn shard_of(shards: &Shards<u64, RandomState>, key: u64) -> usize {
        let shard = shards.of(&key);
        shards.iter().position(|s| std::ptr::eq(s, shard)).unwrap()
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
            assert!(std::ptr::eq(shards.of(&owned), shards.of(owned.as_str())));
        }
    }

    #[test]
    fn an_idle_shard_takes_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Shard<u64, RandomState>>(), 128);
    }

    /// Asserts that `keys` fall evenly on as many shards as give each 64 or
    /// more (at most 16): each gets between half and twice its share. The
    /// spread hash is unkeyed, so the outcome is the same on every run.
    fn assert_spread<Q: Hash + std::fmt::Debug>(what: &str, keys: impl IntoIterator<Item = Q>) {
        let keys: Vec<Q> = keys.into_iter().collect();
        let count = (keys.len() / 64).min(16);
        let count = 1 << count.ilog2();
        let shards = Shards::<u64, _>::new(count, RandomState::new());
        let mut hits = vec![0; count];
        for key in &keys {
            hits[usize::from(shards.index_of(key))] += 1;
        }
        let share = keys.len() / count;
        assert!(
            hits.iter().all(|&n| share / 2 <= n && n <= share * 2),
            "{what}: {hits:?}"
        );
    }

    #[test]
    fn keys_of_every_integer_width_spread_over_every_shard() {
        assert_spread("u8", 0..=u8::MAX);
        assert_spread("u16", 0..1024_u16);
        assert_spread("u32", 0..1024_u32);
        assert_spread("u64", 0..1024_u64);
        assert_spread("usize", 0..1024_usize);
        assert_spread("u128", 0..1024_u128);
        assert_spread("i32", -512..512_i32);
        assert_spread("(u32, u32)", (0..1024_u32).map(|n| (n % 7, n)));
        // Multiples of a power of two: only high bits differ.
        assert_spread("u64 << 32", (0..1024_u64).map(|n| n << 32));
    }

    #[test]
    fn every_one_of_16_shards_gets_some_of_the_256_one_byte_strings() {
        // An even hash leaves a shard empty about once in a million.
        let shards = Shards::<u64, _>::new(16, RandomState::new());
        let hit: HashSet<_> = (0..=u8::MAX).map(|b| shards.index_of(&[b][..])).collect();
        assert_eq!(hit.len(), 16);
    }

    #[test]
    fn strings_and_byte_strings_of_every_length_spread_over_every_shard() {
        assert_spread("one byte", (0..=u8::MAX).map(|b| vec![b]));
        let mut bytes = Noise(7);
        for len in 2..=40 {
            assert_spread(
                &format!("{len} random bytes"),
                (0..1024).map(|_| bytes.take(len)),
            );
        }
        for len in 3..=20 {
            assert_spread(
                &format!("{len}-digit numbers"),
                (0..1000).map(|n| format!("{n:0len$}")),
            );
        }
        assert_spread("stories", (0..1024).map(|n| format!("story-{n}")));
    }

    #[test]
    fn changing_any_one_byte_changes_the_hash() {
        let mut bytes = Noise(11);
        for len in 1..=48 {
            let base = bytes.take(len);
            for at in 0..len {
                for flip in [0x01, 0x80] {
                    let mut changed = base.clone();
                    changed[at] ^= flip;
                    assert_ne!(
                        spread(&base[..]),
                        spread(&changed[..]),
                        "{len} bytes, byte {at} flipped by {flip:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn changing_any_two_bytes_changes_the_hash() {
        let mut bytes = Noise(13);
        for len in [2, 9, 16, 17, 24, 33, 40] {
            let base = bytes.take(len);
            for (p, q) in [(0, len - 1), (0, len / 2), (len / 2 - 1, len / 2)] {
                let mut seen = HashSet::new();
                for pair in 0..=u16::MAX {
                    let mut key = base.clone();
                    [key[p], key[q]] = pair.to_le_bytes();
                    seen.insert(spread(&key[..]));
                }
                assert_eq!(seen.len(), 1 << 16, "{len} bytes, bytes {p} and {q} varied");
            }
        }
    }

    /// A splitmix64 stream of test bytes.
    struct Noise(u64);

    impl Noise {
        fn take(&mut self, len: usize) -> Vec<u8> {
            (0..len)
                .map(|_| {
                    self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    (z ^ (z >> 31)) as u8
                })
                .collect()
        }
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
