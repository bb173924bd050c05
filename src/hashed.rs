//! A key's hash, computed once with the manager's hasher and then carried
//! beside the key, so that the shard and the map entry of a held key are
//! found again without hashing: its release, hand-off and cancellation
//! never run the hasher.

use std::borrow::Borrow;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU32;

/// A key's hash, folded to 32 bits: its top bits choose the key's shard,
/// and the whole of it stands for the key in that shard's map.
///
/// Thirty-two bits keep an acquire future for a `u64` key at 24 bytes.
/// Keys that share a hash cost one more `Eq` in a lookup, nothing else.
///
/// Never zero, which leaves a niche for the tag of an enum holding one:
/// a zero hash counts as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyHash(NonZeroU32);

impl KeyHash {
    /// Hashes `key` with `hasher`, then mixes the result so that every
    /// one of the 32 bits depends on every bit of it: a hasher that leaves
    /// bits unused (an identity hash of small integers leaves the high
    /// ones at zero, of multiples of a power of two the low ones) still
    /// spreads keys over shards and map buckets.
    #[inline]
    pub(crate) fn of<Q: Hash + ?Sized, S: BuildHasher>(hasher: &S, key: &Q) -> Self {
        // Fibonacci hashing, with the product's two halves folded together:
        // the low half alone leaves its low bits blind to the hash's high
        // bits.
        let product = u128::from(hasher.hash_one(key)) * u128::from(GOLDEN);
        // Lossless: each half fits, and the shift leaves 32 bits.
        let folded = (product as u64) ^ ((product >> 64) as u64);
        Self::new((folded >> 32) as u32)
    }

    fn new(hash: u32) -> Self {
        Self(NonZeroU32::new(hash).unwrap_or(NonZeroU32::MIN))
    }

    /// The top `bits` bits (1 to 16), which name a shard.
    pub(crate) fn top(self, bits: u32) -> u16 {
        debug_assert!((1..=16).contains(&bits));
        // Lossless: at most 16 bits are left.
        (self.0.get() >> (32 - bits)) as u16
    }
}

/// 2^64 over the golden ratio.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// A key with its hash: the key type of a shard's map. `Hash` and `Eq`
/// read the stored hash, so the map never runs the manager's hasher.
#[derive(Debug)]
pub(crate) struct Hashed<K> {
    pub(crate) key: K,
    pub(crate) hash: KeyHash,
}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.hash.0.get());
    }
}

impl<K: Eq> PartialEq for Hashed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for Hashed<K> {}

/// A borrowed key with its hash, to look a key up in a shard's map without
/// owning it: any [`Hashed<K>`] borrows as a `dyn Probe<Q>` for each `Q`
/// that `K` borrows as.
pub(crate) trait Probe<Q: ?Sized> {
    fn hash(&self) -> KeyHash;
    fn key(&self) -> &Q;
}

/// The probe to look `key` up with.
pub(crate) struct Lookup<'q, Q: ?Sized> {
    pub(crate) key: &'q Q,
    pub(crate) hash: KeyHash,
}

impl<Q: ?Sized> Probe<Q> for Lookup<'_, Q> {
    fn hash(&self) -> KeyHash {
        self.hash
    }

    fn key(&self) -> &Q {
        self.key
    }
}

impl<K: Borrow<Q>, Q: ?Sized> Probe<Q> for Hashed<K> {
    fn hash(&self) -> KeyHash {
        self.hash
    }

    fn key(&self) -> &Q {
        self.key.borrow()
    }
}

impl<'a, K: Borrow<Q> + 'a, Q: ?Sized + 'a> Borrow<dyn Probe<Q> + 'a> for Hashed<K> {
    fn borrow(&self) -> &(dyn Probe<Q> + 'a) {
        self
    }
}

/// Consistent with [`Hashed`]'s `Hash`, as `Borrow` requires.
impl<Q: ?Sized> Hash for dyn Probe<Q> + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(Probe::hash(self).0.get());
    }
}

/// Consistent with [`Hashed`]'s `Eq`, as `Borrow` requires.
impl<Q: Eq + ?Sized> PartialEq for dyn Probe<Q> + '_ {
    fn eq(&self, other: &Self) -> bool {
        Probe::hash(self) == Probe::hash(other) && self.key() == other.key()
    }
}

impl<Q: Eq + ?Sized> Eq for dyn Probe<Q> + '_ {}

/// The hasher of a shard's map, which only ever hashes a stored
/// [`KeyHash`]: it spreads those 32 bits over the 64 the map reads, whose
/// top seven are a bucket's tag and whose low ones its position.
#[derive(Default)]
pub(crate) struct StoredHash(u64);

/// What a shard's map is built with.
pub(crate) type BuildStoredHash = BuildHasherDefault<StoredHash>;

impl Hasher for StoredHash {
    fn write(&mut self, _: &[u8]) {
        unreachable!("lock-manager: a shard's map hashes only stored hashes");
    }

    #[inline]
    fn write_u32(&mut self, hash: u32) {
        self.0 = u64::from(hash).wrapping_mul(GOLDEN);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;
    use std::collections::HashMap;

    /// SipHash with fixed keys: the same hashes on every run.
    pub(crate) type Fixed = BuildHasherDefault<DefaultHasher>;

    /// Hashes an integer to itself, as `nohash`-style hashers do.
    #[derive(Default)]
    pub(crate) struct Identity(u64);

    impl Hasher for Identity {
        fn write(&mut self, _: &[u8]) {
            unimplemented!("integers only")
        }

        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }

        fn finish(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn a_key_and_its_borrowed_form_hash_alike() {
        for n in 0..100 {
            let owned = format!("story-{n}");
            assert_eq!(
                KeyHash::of(&Fixed::default(), &owned),
                KeyHash::of(&Fixed::default(), owned.as_str())
            );
        }
    }

    #[test]
    fn an_identity_hash_still_reaches_every_bit() {
        let hasher = BuildHasherDefault::<Identity>::default();
        // Small integers, and integers that differ in their top bits only.
        for shift in [0, 40, 54] {
            let mut ones = 0;
            let mut zeros = 0;
            for n in 0..1024_u64 {
                let hash = KeyHash::of(&hasher, &(n << shift)).0.get();
                ones |= hash;
                zeros |= !hash;
            }
            assert_eq!((ones, zeros), (u32::MAX, u32::MAX), "<< {shift}");
        }
        // And the top bits, which choose the shard, are not all alike.
        let tops: std::collections::HashSet<_> = (0..1024_u64)
            .map(|n| KeyHash::of(&hasher, &n).top(4))
            .collect();
        assert_eq!(tops.len(), 16);
    }

    #[test]
    fn a_zero_hash_counts_as_one() {
        assert_eq!(KeyHash::new(0), KeyHash::new(1));
        assert_ne!(KeyHash::new(2), KeyHash::new(1));
    }

    #[test]
    fn top_takes_the_high_bits() {
        assert_eq!(KeyHash::new(0xabcd_1234).top(16), 0xabcd);
        assert_eq!(KeyHash::new(0xabcd_1234).top(4), 0xa);
        assert_eq!(KeyHash::new(0x8000_0000).top(1), 1);
    }

    #[test]
    fn a_map_of_hashed_keys_finds_them_by_borrowed_probe() {
        let hasher = Fixed::default();
        let mut map: HashMap<Hashed<String>, usize, BuildStoredHash> = HashMap::default();
        for n in 0..1000 {
            let key = format!("story-{n}");
            let hash = KeyHash::of(&hasher, &key);
            map.insert(Hashed { key, hash }, n);
        }
        for n in 0..1000 {
            let key = format!("story-{n}");
            let probe = Lookup {
                key: key.as_str(),
                hash: KeyHash::of(&hasher, key.as_str()),
            };
            assert_eq!(map.get(&probe as &dyn Probe<str>), Some(&n));
        }
        // The same hash with another key is another key.
        let probe = Lookup {
            key: "story-0 but not quite",
            hash: KeyHash::of(&hasher, "story-0"),
        };
        assert_eq!(map.get(&probe as &dyn Probe<str>), None);
    }

    #[test]
    fn keys_sharing_a_hash_stay_apart() {
        let mut map: HashMap<Hashed<u64>, u64, BuildStoredHash> = HashMap::default();
        let hash = KeyHash::new(7);
        for key in 0..10 {
            map.insert(Hashed { key, hash }, key * 2);
        }
        assert_eq!(map.len(), 10);
        for key in 0..10 {
            let probe = Lookup { key: &key, hash };
            assert_eq!(map.get(&probe as &dyn Probe<u64>), Some(&(key * 2)));
        }
    }

    #[test]
    fn the_stored_hash_reaches_the_tag_and_the_position() {
        // A map reads a bucket's tag from the top seven bits and its
        // position from the low ones. One shard's keys share the top bits
        // of their hashes and differ in the low ones: both must vary.
        let finish = |hash: u32| {
            let mut hasher = StoredHash::default();
            hasher.write_u32(hash);
            hasher.finish()
        };
        let tags: std::collections::HashSet<_> = (0..1024).map(|h| finish(h) >> 57).collect();
        assert_eq!(tags.len(), 128);
        let positions: std::collections::HashSet<_> = (0..1024).map(|h| finish(h) & 1023).collect();
        assert_eq!(positions.len(), 1024);
    }

    #[test]
    #[should_panic(expected = "hashes only stored hashes")]
    fn the_stored_hash_takes_no_bytes() {
        StoredHash::default().write(b"key");
    }
}
