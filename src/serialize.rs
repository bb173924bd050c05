//! `Serialize` for the reports, with the `serde` cargo feature: [`Stats`]
//! with its [`Histogram`]s, and [`HeldKey`], for a metrics endpoint or a
//! log line. Written by hand, as `slab` does, so that the feature adds
//! `serde` alone, without its derive macros.
//!
//! Durations serialize as `serde` serializes a `Duration` (seconds and
//! nanoseconds), call sites as `"file:line:column"` strings, and a
//! histogram as its count and its non-empty buckets, each with its upper
//! bound.

use std::panic::Location;
use std::time::Duration;

use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::diagnostics::{HeldKey, Histogram, Stats};

impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut stats = serializer.serialize_struct("Stats", 8)?;
        stats.serialize_field("acquisitions", &self.acquisitions)?;
        stats.serialize_field("releases", &self.releases)?;
        stats.serialize_field("contended", &self.contended)?;
        stats.serialize_field("handoffs", &self.handoffs)?;
        stats.serialize_field("cancellations", &self.cancellations)?;
        stats.serialize_field("deadlocks", &self.deadlocks)?;
        stats.serialize_field("waits", &self.waits)?;
        stats.serialize_field("holds", &self.holds)?;
        stats.end()
    }
}

impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut histogram = serializer.serialize_struct("Histogram", 2)?;
        histogram.serialize_field("count", &self.count())?;
        histogram.serialize_field("buckets", &Buckets(self))?;
        histogram.end()
    }
}

/// A histogram's non-empty buckets, in order.
struct Buckets<'a>(&'a Histogram);

impl Serialize for Buckets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buckets = serializer.serialize_seq(None)?;
        for (up_to, count) in self.0.buckets().filter(|&(_, count)| count > 0) {
            buckets.serialize_element(&Bucket { up_to, count })?;
        }
        buckets.end()
    }
}

/// One bucket: the durations counted below `up_to`, and above the bound
/// of the bucket before.
struct Bucket {
    up_to: Duration,
    count: u64,
}

impl Serialize for Bucket {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bucket = serializer.serialize_struct("Bucket", 2)?;
        bucket.serialize_field("up_to", &self.up_to)?;
        bucket.serialize_field("count", &self.count)?;
        bucket.end()
    }
}

impl<K: Serialize> Serialize for HeldKey<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut held = serializer.serialize_struct("HeldKey", 7)?;
        held.serialize_field("key", &self.key)?;
        held.serialize_field("waiters", &self.waiters)?;
        held.serialize_field("held_for", &self.held_for)?;
        held.serialize_field("held_by", &self.held_by.map(Site))?;
        held.serialize_field("oldest_waiter", &self.oldest_waiter)?;
        held.serialize_field("oldest_waiter_from", &self.oldest_waiter_from.map(Site))?;
        held.serialize_field("holder_waits_for", &self.holder_waits_for)?;
        held.end()
    }
}

/// A call site, as `Location` displays it: `"file:line:column"`.
struct Site(&'static Location<'static>);

impl Serialize for Site {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}
