//! What the `diagnostics` feature records of each hold and each wait: when
//! it began ([`Stamp`]) and which code asked for it ([`Caller`]). Without
//! the feature both are zero-sized and record nothing, so that no `cfg`
//! reaches the state code.

use std::panic::Location;
use std::time::Duration;

#[cfg(feature = "diagnostics")]
pub(crate) type Stamp = std::time::Instant;

/// The time something started, not measured.
#[cfg(not(feature = "diagnostics"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp;

/// How long something took, between two [`Stamp`]s: a `Duration` with the
/// `diagnostics` feature, zero-sized without.
#[cfg(feature = "diagnostics")]
pub(crate) type Span = Duration;

#[cfg(not(feature = "diagnostics"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span;

/// The time from `since` to `now` (zero if `now` comes first).
#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
#[inline]
pub(crate) fn between(since: Stamp, now: Stamp) -> Span {
    #[cfg(feature = "diagnostics")]
    return now.saturating_duration_since(since);
    #[cfg(not(feature = "diagnostics"))]
    Span
}

#[inline]
pub(crate) fn now() -> Stamp {
    #[cfg(feature = "diagnostics")]
    return std::time::Instant::now();
    #[cfg(not(feature = "diagnostics"))]
    Stamp
}

/// How long ago `stamp` was taken, if the clock is on.
#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
pub(crate) fn age(stamp: Stamp) -> Option<Duration> {
    #[cfg(feature = "diagnostics")]
    return Some(stamp.elapsed());
    #[cfg(not(feature = "diagnostics"))]
    None
}

/// The code that asked for a key: the call site of a `#[track_caller]`
/// acquire method, with the feature on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller {
    #[cfg(feature = "diagnostics")]
    location: &'static Location<'static>,
}

impl Caller {
    /// The caller of the `#[track_caller]` chain this is called from.
    #[track_caller]
    #[inline]
    pub(crate) fn here() -> Self {
        Self {
            #[cfg(feature = "diagnostics")]
            location: Location::caller(),
        }
    }

    /// Where the call was made, if recorded.
    pub(crate) fn location(self) -> Option<&'static Location<'static>> {
        #[cfg(feature = "diagnostics")]
        return Some(self.location);
        #[cfg(not(feature = "diagnostics"))]
        None
    }
}

/// When a hold or a wait began, and which code asked for it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    pub(crate) since: Stamp,
    pub(crate) caller: Caller,
}

impl Origin {
    /// Begins now, for `caller`.
    #[inline]
    pub(crate) fn now(caller: Caller) -> Self {
        Self {
            since: now(),
            caller,
        }
    }
}

/// How contended a held key has been since it was last taken free: its
/// contended acquisitions and their waits, added into its shard's hot keys
/// when it is released free (zero-sized without the `diagnostics`
/// feature).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Heat {
    /// Requests that found the key held and queued.
    #[cfg(feature = "diagnostics")]
    pub(crate) contended: u64,
    /// Their waits that ended, added up in nanoseconds (saturating).
    #[cfg(feature = "diagnostics")]
    pub(crate) waited: u64,
}

#[cfg_attr(not(feature = "diagnostics"), allow(unused_variables))]
impl Heat {
    /// Counts one more request queued.
    #[inline]
    pub(crate) fn contended(&mut self) {
        #[cfg(feature = "diagnostics")]
        {
            self.contended += 1;
        }
    }

    /// Counts a wait that ended, which took `waited`.
    #[inline]
    pub(crate) fn waited(&mut self, waited: Span) {
        #[cfg(feature = "diagnostics")]
        {
            let waited = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.waited = self.waited.saturating_add(waited);
        }
    }

    /// Whether any request queued (never, without `diagnostics`, which
    /// does not count them).
    #[inline]
    pub(crate) fn is_hot(&self) -> bool {
        #[cfg(feature = "diagnostics")]
        return self.contended > 0;
        #[cfg(not(feature = "diagnostics"))]
        false
    }
}
