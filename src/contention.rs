//! A per-thread guess at whether the next acquire will have to wait.
//!
//! A queued waiter needs a clone of its task's waker, and cloning runs
//! foreign code, so it happens outside the shard's mutex: either before
//! locking, which costs the uncontended path a clone it does not need, or
//! after queueing, which costs the contended path a second lock. Tasks that
//! wait tend to wait again (a hot key stays hot), so the thread's last
//! acquire decides. A wrong guess costs one of the two, never correctness.

use std::cell::Cell;

#[cfg(not(loom))]
std::thread_local!(static LAST_WAITED: Cell<bool> = const { Cell::new(false) });
// Loom resets its locals for every execution it explores.
#[cfg(loom)]
loom::thread_local!(static LAST_WAITED: Cell<bool> = Cell::new(false));

/// Whether this thread's last acquire of a single key had to wait.
#[inline]
pub(crate) fn expected() -> bool {
    LAST_WAITED.with(Cell::get)
}

/// Records whether an acquire had to wait.
#[inline]
pub(crate) fn saw(waited: bool) {
    LAST_WAITED.with(|last| last.set(waited));
}
