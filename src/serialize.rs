//! `Serialize` for the reports (a [`HotKey`] too), and `Deserialize` for [`Stats`] and
//! [`Histogram`], with the `serde` cargo feature: the shape is documented
//! on [`Stats`]. Written by hand, as `slab` does, so that the feature adds
//! `serde` alone, without its derive macros.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::diagnostics::{HeldKey, Stats};
use crate::histogram::Histogram;
use crate::hot::HotKey;

/// The names of the counters of [`Stats`], in the order of [`counters`].
const COUNTERS: [&str; 7] = [
    "acquisitions",
    "releases",
    "contended",
    "handoffs",
    "cancellations",
    "deadlocks",
    "busy",
];

fn counters(stats: &mut Stats) -> [&mut u64; 7] {
    [
        &mut stats.acquisitions,
        &mut stats.releases,
        &mut stats.contended,
        &mut stats.handoffs,
        &mut stats.cancellations,
        &mut stats.deadlocks,
        &mut stats.busy,
    ]
}

/// The names of the histograms of [`Stats`], in the order of
/// [`histograms`].
const HISTOGRAMS: [&str; 3] = ["waits", "abandoned", "holds"];

fn histograms(stats: &mut Stats) -> [&mut Histogram; 3] {
    [&mut stats.waits, &mut stats.abandoned, &mut stats.holds]
}

impl Serialize for Stats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A copy, for the lists of fields that deserializing fills in.
        let mut copy = *self;
        let mut stats = serializer.serialize_struct("Stats", 10)?;
        for (name, count) in COUNTERS.into_iter().zip(counters(&mut copy)) {
            stats.serialize_field(name, count)?;
        }
        for (name, histogram) in HISTOGRAMS.into_iter().zip(histograms(&mut copy)) {
            stats.serialize_field(name, histogram)?;
        }
        stats.end()
    }
}

/// Reads the shape `Serialize` writes; a counter or histogram left out
/// reads as zero, and a field it does not know is skipped.
impl<'de> Deserialize<'de> for Stats {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatsVisitor;

        impl<'de> Visitor<'de> for StatsVisitor {
            type Value = Stats;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("lock-manager stats")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stats, A::Error> {
                let mut stats = Stats::default();
                while let Some(field) = map.next_key::<String>()? {
                    let named = |names: &[&str]| names.iter().position(|&name| name == field);
                    if let Some(index) = named(&COUNTERS) {
                        *counters(&mut stats)[index] = map.next_value()?;
                    } else if let Some(index) = named(&HISTOGRAMS) {
                        *histograms(&mut stats)[index] = map.next_value()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(stats)
            }
        }

        deserializer.deserialize_map(StatsVisitor)
    }
}

impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut histogram = serializer.serialize_struct("Histogram", 3)?;
        histogram.serialize_field("count", &self.count())?;
        histogram.serialize_field("sum", &self.sum().as_secs_f64())?;
        histogram.serialize_field("buckets", &Buckets(self))?;
        histogram.end()
    }
}

/// A histogram's buckets with a count of their own, but the unbounded
/// last one (its count is the histogram's less the last listed), each as
/// its bound and its cumulative count.
struct Buckets<'a>(&'a Histogram);

impl Serialize for Buckets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buckets = serializer.serialize_seq(None)?;
        let counts = self.0.counts();
        let listed = self.0.buckets().zip(counts).take(counts.len() - 1);
        for ((le, count), _) in listed.filter(|(_, &own)| own > 0) {
            buckets.serialize_element(&Bucket { le, count })?;
        }
        buckets.end()
    }
}

/// One bucket: its inclusive upper bound in seconds, and how many
/// durations were counted up to it.
struct Bucket {
    le: f64,
    count: u64,
}

impl Serialize for Bucket {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut bucket = serializer.serialize_struct("Bucket", 2)?;
        bucket.serialize_field("le", &self.le)?;
        bucket.serialize_field("count", &self.count)?;
        bucket.end()
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HistogramVisitor;

        impl<'de> Visitor<'de> for HistogramVisitor {
            type Value = Histogram;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a lock-manager histogram")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Histogram, A::Error> {
                let (mut count, mut sum, mut buckets) = (0u64, 0f64, Vec::new());
                while let Some(field) = map.next_key::<String>()? {
                    match field.as_str() {
                        "count" => count = map.next_value()?,
                        "sum" => sum = map.next_value()?,
                        "buckets" => buckets = map.next_value::<Vec<Bucket>>()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                histogram_of(count, sum, &buckets).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_map(HistogramVisitor)
    }
}

/// The histogram whose serialized form is `count`, `sum` and `listed`.
fn histogram_of(count: u64, sum: f64, listed: &[Bucket]) -> Result<Histogram, String> {
    let bounds: Vec<f64> = Histogram::default().buckets().map(|(le, _)| le).collect();
    let mut counts = vec![0; bounds.len()];
    let mut seen = 0;
    for bucket in listed {
        let index = bounds
            .iter()
            .position(|&le| le == bucket.le)
            .filter(|&index| index < bounds.len() - 1)
            .ok_or_else(|| format!("no histogram bucket has the bound {}", bucket.le))?;
        counts[index] = (bucket.count.checked_sub(seen))
            .ok_or("histogram buckets must be cumulative, in increasing order")?;
        seen = bucket.count;
    }
    *counts.last_mut().expect("buckets") = count
        .checked_sub(seen)
        .ok_or("a histogram's count is below its buckets'")?;
    if !(sum >= 0.0 && sum.is_finite()) {
        return Err(format!("a histogram's sum must be seconds, not {sum}"));
    }
    let sum = Duration::from_nanos((sum * 1e9).round() as u64);
    Ok(Histogram::from_counts(&counts, sum).expect("as many counts as buckets"))
}

impl<'de> Deserialize<'de> for Bucket {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BucketVisitor;

        impl<'de> Visitor<'de> for BucketVisitor {
            type Value = Bucket;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a histogram bucket: `le` and `count`")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bucket, A::Error> {
                let (mut le, mut count) = (None, None);
                while let Some(field) = map.next_key::<String>()? {
                    match field.as_str() {
                        "le" => le = Some(map.next_value()?),
                        "count" => count = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let le = le.ok_or_else(|| de::Error::missing_field("le"))?;
                let count = count.ok_or_else(|| de::Error::missing_field("count"))?;
                Ok(Bucket { le, count })
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bucket, A::Error> {
                let le = seq.next_element()?;
                let count = seq.next_element()?;
                let missing = || de::Error::invalid_length(0, &"`le` and `count`");
                Ok(Bucket {
                    le: le.ok_or_else(missing)?,
                    count: count.ok_or_else(missing)?,
                })
            }
        }

        deserializer.deserialize_struct("Bucket", &["le", "count"], BucketVisitor)
    }
}

impl<K: Serialize> Serialize for HeldKey<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let seconds = |age: Option<Duration>| age.map(|age| age.as_secs_f64());
        let mut held = serializer.serialize_struct("HeldKey", 7)?;
        held.serialize_field("key", &self.key)?;
        held.serialize_field("waiters", &self.waiters)?;
        held.serialize_field("held_for", &seconds(self.held_for))?;
        held.serialize_field("held_by", &self.held_by.map(Site))?;
        held.serialize_field("oldest_waiter", &seconds(self.oldest_waiter))?;
        held.serialize_field("oldest_waiter_from", &self.oldest_waiter_from.map(Site))?;
        held.serialize_field("holder_waits_for", &self.holder_waits_for)?;
        held.end()
    }
}

impl<K: Serialize> Serialize for HotKey<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut hot = serializer.serialize_struct("HotKey", 4)?;
        hot.serialize_field("key", &self.key)?;
        hot.serialize_field("contended", &self.contended)?;
        hot.serialize_field("waited", &self.waited.as_secs_f64())?;
        hot.serialize_field("error", &self.error)?;
        hot.end()
    }
}

/// A call site, as `Location` displays it: `"file:line:column"`.
struct Site(&'static Location<'static>);

impl Serialize for Site {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_bucket_past_the_last_bound_is_refused() {
        // `+Inf` is never listed (its count is `count`), and formats that
        // can write an infinity must not sneak one in.
        let listed = [Bucket {
            le: f64::INFINITY,
            count: 1,
        }];
        let refused = histogram_of(1, 0.0, &listed).unwrap_err();
        assert!(
            refused.contains("no histogram bucket has the bound inf"),
            "{refused}"
        );
        let bounds: Vec<f64> = Histogram::default().buckets().map(|(le, _)| le).collect();
        let last = bounds[bounds.len() - 2];
        let listed = [Bucket { le: last, count: 1 }];
        assert_eq!(histogram_of(1, 0.0, &listed).unwrap().count(), 1);
    }

    #[test]
    fn a_sum_that_is_not_seconds_is_refused() {
        for sum in [-1.0, f64::INFINITY, f64::NAN] {
            let refused = histogram_of(0, sum, &[]).unwrap_err();
            assert!(refused.contains("must be seconds"), "{refused}");
        }
        assert!(histogram_of(0, 0.0, &[]).is_ok());
    }
}
