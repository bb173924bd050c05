//! The clock behind the ages in a snapshot: `Instant` with the `timing`
//! feature, and without it a zero-sized stand-in that reads no clock, so
//! that no `cfg` reaches the state code.

use std::time::Duration;

#[cfg(feature = "timing")]
pub(crate) type Stamp = std::time::Instant;

/// The time something started, not measured.
#[cfg(not(feature = "timing"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp;

#[inline]
pub(crate) fn now() -> Stamp {
    #[cfg(feature = "timing")]
    return std::time::Instant::now();
    #[cfg(not(feature = "timing"))]
    Stamp
}

/// How long ago `stamp` was taken, if the clock is on.
#[cfg_attr(not(feature = "timing"), allow(unused_variables))]
pub(crate) fn age(stamp: Stamp) -> Option<Duration> {
    #[cfg(feature = "timing")]
    return Some(stamp.elapsed());
    #[cfg(not(feature = "timing"))]
    None
}
