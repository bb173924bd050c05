//! A shard's notice of its latest hand-off, read without the shard's mutex,
//! so that a waiter handed a key takes it without locking.
//!
//! A release marks the oldest waiter's slot granted and, under the same
//! mutex, posts that slot here. The woken waiter marks its slot taken: if
//! it was still posted, the key is the waiter's, with no lock taken. If
//! another hand-off in the shard has replaced the post, the waiter locks
//! and reads its slot, as without the notice. A hand-off on a hot key thus
//! takes the mutex twice, not three times: once to queue, once to release.
//!
//! A taken slot stays in the slab, named by the notice, until the next
//! release in the shard (the taker's own, at the latest) collects it under
//! the mutex: freed any earlier, it could be reused by a waiter still
//! queued, who would then take a key that is not its. For the same reason
//! every path that frees a slot posted but not taken withdraws it.

use crate::queue::Slot;
use crate::sync::{AtomicU32, Ordering};

/// Nothing posted.
const EMPTY: u32 = 0;
/// Set beside a posted slot once its waiter has taken the grant: the bit
/// above every stored slot.
const TAKEN: u32 = 1 << 31;
const _: () = assert!(Slot::MAX_STORED < TAKEN);

/// The latest hand-off of a shard: empty, or a slot (its stored value, in
/// the low 31 bits), with [`TAKEN`] once its waiter took it.
#[derive(Debug, Default)]
pub(crate) struct Notice(AtomicU32);

impl Notice {
    /// Posts the slot of a waiter just granted a key, replacing the latest
    /// post; returns the slot it names if its waiter had taken it, to free.
    /// Call with the shard's mutex held, after marking `slot` granted.
    #[inline]
    #[must_use = "a taken slot must be freed"]
    pub(crate) fn post(&self, slot: Slot) -> Option<Slot> {
        // Release: the waiter that takes the post then sees everything the
        // releasing holder did. A swap, not a store: a waiter may mark the
        // post it replaces taken at any moment.
        taken(self.0.swap(stored(slot), Ordering::Release))
    }

    /// Whether `slot` was posted, marking it taken if so. Called without
    /// the mutex, only by the waiter in `slot`.
    #[inline]
    pub(crate) fn take(&self, slot: Slot) -> bool {
        self.0
            .compare_exchange(
                stored(slot),
                stored(slot) | TAKEN,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Clears a taken post, returning its slot, to free. Call with the
    /// shard's mutex held.
    #[inline]
    #[must_use = "a taken slot must be freed"]
    pub(crate) fn collect(&self) -> Option<Slot> {
        let slot = taken(self.0.load(Ordering::Relaxed))?;
        // A taken post changes only under the mutex: a plain store will do.
        self.0.store(EMPTY, Ordering::Relaxed);
        Some(slot)
    }

    /// Clears the post of `slot` if it is not taken. Call with the shard's
    /// mutex held, before freeing a slot granted but not taken.
    #[inline]
    pub(crate) fn withdraw(&self, slot: Slot) {
        // Only the caller, the waiter in `slot`, could change this post.
        if self.0.load(Ordering::Relaxed) == stored(slot) {
            self.0.store(EMPTY, Ordering::Relaxed);
        }
    }

    /// Whether the post names a slot taken but not yet collected. Call with
    /// the shard's mutex held.
    pub(crate) fn holds_taken(&self) -> bool {
        self.0.load(Ordering::Relaxed) & TAKEN != 0
    }

    /// Whether `slot` is posted, taken or not: for tests.
    #[cfg(test)]
    pub(crate) fn names(&self, slot: Slot) -> bool {
        self.0.load(Ordering::Relaxed) & !TAKEN == stored(slot)
    }
}

fn stored(slot: Slot) -> u32 {
    slot.stored().get()
}

/// The slot of `post` if it was taken.
fn taken(post: u32) -> Option<Slot> {
    if post & TAKEN == 0 {
        return None;
    }
    Slot::from_stored(post & !TAKEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(stored: u32) -> Slot {
        Slot::from_stored(stored).unwrap()
    }

    #[test]
    fn only_the_posted_slot_takes_it_and_only_once() {
        let notice = Notice::default();
        assert!(!notice.take(slot(1)), "nothing posted");
        assert_eq!(notice.post(slot(1)), None);
        assert!(!notice.take(slot(2)));
        assert!(notice.take(slot(1)));
        assert!(!notice.take(slot(1)));
        assert!(notice.holds_taken() && notice.names(slot(1)));
    }

    #[test]
    fn a_taken_post_is_collected_once_or_handed_back_by_the_next_post() {
        let notice = Notice::default();
        assert_eq!(notice.post(slot(3)), None);
        assert_eq!(notice.collect(), None, "not taken");
        assert!(notice.names(slot(3)));
        assert!(notice.take(slot(3)));
        assert_eq!(notice.collect(), Some(slot(3)));
        assert_eq!(notice.collect(), None);
        assert!(!notice.names(slot(3)) && !notice.holds_taken());

        assert_eq!(notice.post(slot(4)), None);
        assert!(notice.take(slot(4)));
        assert_eq!(notice.post(slot(5)), Some(slot(4)));
        assert_eq!(notice.post(slot(6)), None, "5 was not taken");
        assert!(notice.names(slot(6)) && !notice.holds_taken());
    }

    #[test]
    fn withdrawing_clears_only_its_own_untaken_post() {
        let notice = Notice::default();
        assert_eq!(notice.post(slot(7)), None);
        notice.withdraw(slot(8));
        assert!(notice.names(slot(7)));
        notice.withdraw(slot(7));
        assert!(!notice.names(slot(7)));
        assert!(!notice.take(slot(7)));

        assert_eq!(notice.post(slot(9)), None);
        assert!(notice.take(slot(9)));
        notice.withdraw(slot(9));
        assert_eq!(notice.collect(), Some(slot(9)), "a taken post stays");
    }

    #[test]
    fn the_largest_slot_keeps_its_taken_mark_apart() {
        let notice = Notice::default();
        let last = slot(Slot::MAX_STORED);
        assert_eq!(notice.post(last), None);
        assert!(!notice.holds_taken());
        assert!(notice.take(last));
        assert_eq!(notice.collect(), Some(last));
    }
}
