//! `GET /metrics`: the lock manager's figures in the Prometheus text
//! exposition format (version 0.0.4), through the `prometheus-client`
//! crate.
//!
//! Nothing is recorded here: the manager keeps its own counters and
//! histograms, and a [`Collector`] reads them on each scrape. The counters
//! are Prometheus counters (`lock_manager_acquisitions_total`, ...). With
//! the library's `diagnostics` feature, the waits, the abandoned waits and
//! the holds are Prometheus histograms (`lock_manager_wait_seconds_bucket`
//! with `le`, `_sum`, `_count`), and the hot keys are gauges labelled by
//! story (`lock_manager_hot_key_contended{key="7"}`, the top ten). Without
//! it they are left out rather than shown empty, and
//! `lock_manager_diagnostics` says which: an empty histogram would read as
//! "no waits" where nothing was measured.

use std::fmt;
use std::sync::Arc;

use lock_manager::{Histogram, HotKey, LockManager, DIAGNOSTICS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How many hot keys a scrape reports, the most contended first.
pub const HOT_KEYS: usize = 10;

/// A registry whose only source is `locks`, read at each scrape.
pub fn registry(locks: Arc<LockManager<u64>>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(LockCollector { locks }));
    registry
}

/// The exposition of `registry`, in the Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

/// Reads the manager's `stats()` (and hot keys) when scraped.
#[derive(Debug)]
struct LockCollector {
    locks: Arc<LockManager<u64>>,
}

impl Collector for LockCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let stats = self.locks.stats();
        let counters = [
            (
                "lock_manager_acquisitions",
                "Story locks granted, taken free or handed over by a release.",
                stats.acquisitions,
            ),
            (
                "lock_manager_releases",
                "Story locks given up.",
                stats.releases,
            ),
            (
                "lock_manager_contended",
                "Requests that found their story locked and queued for it.",
                stats.contended,
            ),
            (
                "lock_manager_handoffs",
                "Story locks handed straight from a release to the next waiter.",
                stats.handoffs,
            ),
            (
                "lock_manager_cancellations",
                "Waiters dropped before they took their lock (a wait timed out: a 503).",
                stats.cancellations,
            ),
            (
                "lock_manager_deadlocks",
                "Waits refused because they would have closed a cycle.",
                stats.deadlocks,
            ),
            (
                "lock_manager_busy",
                "Requests refused at once without waiting (a full queue: a 503).",
                stats.busy,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }

        let measured = ConstGauge::new(i64::from(DIAGNOSTICS));
        measured.encode(encoder.encode_descriptor(
            "lock_manager_diagnostics",
            "1 if the lock manager measures waits, holds and hot keys (its \
             diagnostics feature), 0 if not: then those metrics are absent.",
            None,
            measured.metric_type(),
        )?)?;
        if !DIAGNOSTICS {
            return Ok(());
        }

        let histograms = [
            (
                "lock_manager_wait",
                "Waits for a story lock, from queueing to their end: handed the \
                 lock, or given up (timed out, dropped, refused).",
                &stats.waits,
            ),
            (
                "lock_manager_abandoned_wait",
                "The waits that ended without the lock: timed out (a 503), \
                 dropped, or refused as a deadlock.",
                &stats.abandoned,
            ),
            (
                "lock_manager_hold",
                "How long each story lock was held, from its taking to its release.",
                &stats.holds,
            ),
        ];
        for (name, help, histogram) in histograms {
            let metric = Buckets(histogram);
            metric.encode(encoder.encode_descriptor(
                name,
                help,
                Some(&Unit::Seconds),
                metric.metric_type(),
            )?)?;
        }

        // Gauges, not counters: a key's figures only grow while the
        // manager's sketch keeps it, but a key dropped for others and
        // taken back starts again from an estimate, and a key leaves the
        // top ten as others pass it.
        let hot = self.locks.hot_keys(HOT_KEYS);
        hot_key_gauges(
            &mut encoder,
            "lock_manager_hot_key_contended",
            "The most contended stories, by key: the requests that found \
             the story locked and queued for it (waits given up included).",
            None,
            &hot,
            |key| key.contended,
        )?;
        hot_key_gauges(
            &mut encoder,
            "lock_manager_hot_key_waited",
            "The most contended stories' waits, added up (those given up \
             included, those in progress not).",
            Some(&Unit::Seconds),
            &hot,
            |key| key.waited.as_secs_f64(),
        )?;
        hot_key_gauges(
            &mut encoder,
            "lock_manager_hot_key_contended_error",
            "How much lock_manager_hot_key_contended may overcount for the \
             story (0 when exact): the manager keeps a bounded sketch.",
            None,
            &hot,
            |key| key.error,
        )
    }
}

/// One gauge per hot key, labelled `key`, in the manager's order (the most
/// contended first).
fn hot_key_gauges<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    hot: &[HotKey<u64>],
    value: impl Fn(&HotKey<u64>) -> V,
) -> Result<(), fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for key in hot {
        let labels = [("key", key.key.to_string())];
        ConstGauge::new(value(key)).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One of the manager's histograms, already aggregated: what a Prometheus
/// histogram has, the buckets, their sum and count, with nothing to
/// observe (`prometheus-client`'s own `Histogram` records observations).
struct Buckets<'a>(&'a Histogram);

impl EncodeMetric for Buckets<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        // The library gives each bucket's count cumulatively, with its
        // inclusive upper bound in seconds (the last one infinite), as a
        // Prometheus `_bucket{le}` has it; the encoder adds the counts up
        // itself, so it takes each bucket's own.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = self
            .0
            .buckets()
            .map(|(le, cumulative)| {
                let own = cumulative - below;
                below = cumulative;
                (le, own)
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum().as_secs_f64(),
            self.0.count(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}
