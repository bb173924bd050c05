//! [`Histogram`]: a distribution of durations in fixed buckets, four per
//! doubling, in the shape a metrics system reads (cumulative counts under
//! inclusive upper bounds in seconds, and a sum).

use std::fmt;
use std::ops::AddAssign;
use std::time::Duration;

/// The first bucket's upper bound is 2^`FIRST` ns (1.024 µs).
const FIRST: u32 = 10;
/// Buckets per doubling: each bound is 1.25, 1.5, 1.75 or 2 times the
/// power of two below it, so that no bound exceeds the one before by more
/// than a quarter.
const STEPS: u32 = 4;
/// Doublings covered by the bounded buckets: up to 2^(`FIRST` +
/// `DOUBLINGS`) ns (68.7 s).
const DOUBLINGS: u32 = 26;
/// The first bucket, four per doubling, and the unbounded last one.
const BUCKETS: usize = (1 + STEPS * DOUBLINGS + 1) as usize;

/// How many durations fell in each of 106 buckets, and their sum: the
/// distribution of waits or holds in [`Stats`](crate::Stats).
///
/// A bucket counts the durations up to its upper bound (included) and
/// above the bound of the bucket before. The first bucket's bound is
/// 2^10 ns (1.024 µs); each later one is 1.25, 1.5, 1.75 or 2 times a
/// power of two, four per doubling, up to 2^36 ns (68.7 s); the last
/// bucket counts everything longer. So a figure read from a bucket's
/// bound ([`quantile`](Self::quantile), [`max`](Self::max)) is never below
/// the true duration and at most 25% above it (or at most 1.024 µs above,
/// in the first bucket). [`buckets`](Self::buckets) gives them as a
/// Prometheus histogram has them, and [`sum`](Self::sum) the total.
///
/// One histogram takes 856 bytes; each shard of a manager keeps three with
/// the `diagnostics` feature (waits, the waits among them that ended
/// without the key, and holds), and none without it.
///
/// # Examples
///
/// ```
/// use lock_manager::LockManager;
///
/// let locks = LockManager::new();
/// drop(locks.try_acquire(1));
/// let holds = locks.stats().holds;
/// if lock_manager::DIAGNOSTICS {
///     assert_eq!(holds.count(), 1);
///     assert!(holds.quantile(0.5).unwrap() <= holds.max().unwrap());
/// } else {
///     assert!(holds.is_empty()); // nothing is measured without the feature
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    /// The durations counted, added up in nanoseconds (saturating).
    nanos: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            nanos: 0,
        }
    }
}

impl Histogram {
    /// Counts one more `duration`.
    #[cfg_attr(not(feature = "diagnostics"), allow(dead_code))]
    #[inline]
    pub(crate) fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(nanos)] += 1;
        self.nanos = self.nanos.saturating_add(nanos);
    }

    /// How many durations were counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// assert_eq!(locks.stats().waits.count(), 0);
    /// ```
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether nothing was counted.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// assert!(locks.stats().holds.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.counts == [0; BUCKETS]
    }

    /// The durations counted, added up: a Prometheus histogram's `_sum`.
    /// Exact to the nanosecond (it stops growing at `u64::MAX` ns, 584
    /// years).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// assert_eq!(locks.stats().holds.sum(), Duration::ZERO);
    /// ```
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.nanos)
    }

    /// The mean duration, [`sum`](Self::sum) over [`count`](Self::count);
    /// `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::new();
    /// drop(locks.try_acquire(1));
    /// let holds = locks.stats().holds;
    /// assert_eq!(holds.mean().is_some(), lock_manager::DIAGNOSTICS);
    /// ```
    pub fn mean(&self) -> Option<Duration> {
        let count = self.count();
        (count > 0).then(|| Duration::from_nanos(self.nanos / count))
    }

    /// The duration that a fraction `q` of the counted durations do not
    /// exceed, as the upper bound of its bucket: `quantile(0.5)` is the
    /// median, `quantile(0.99)` the 99th percentile. Never below the true
    /// quantile, and at most 25% above it (1.024 µs in the first bucket);
    /// in the last bucket, past 68.7 s, it is 68.7 s, which the true one
    /// exceeds. `None` when empty.
    ///
    /// # Panics
    ///
    /// If `q` is not within `0.0..=1.0`.
    ///
    /// # Examples
    ///
    /// ```
    /// use lock_manager::LockManager;
    ///
    /// let locks = LockManager::new();
    /// for key in 0..100 {
    ///     drop(locks.try_acquire(key));
    /// }
    /// let holds = locks.stats().holds;
    /// match holds.quantile(0.99) {
    ///     Some(p99) => println!("99% of holds took at most {p99:?}"),
    ///     None => assert!(!lock_manager::DIAGNOSTICS),
    /// }
    /// ```
    #[track_caller]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        assert!(
            (0.0..=1.0).contains(&q),
            "lock-manager: a quantile must be within 0.0..=1.0, not {q}"
        );
        // The rank of the duration sought, 1-based; at least the first.
        let rank = ((q * self.count() as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let index = self.counts.iter().position(|&count| {
            seen += count;
            seen >= rank
        })?;
        Some(bound(index.min(BUCKETS - 2)))
    }

    /// The longest duration counted, as [`quantile(1.0)`](Self::quantile)
    /// gives it. `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::new();
    /// drop(locks.try_acquire("a"));
    /// let holds = locks.stats().holds;
    /// assert_eq!(holds.max().is_some(), lock_manager::DIAGNOSTICS);
    /// ```
    pub fn max(&self) -> Option<Duration> {
        let last = self.counts.iter().rposition(|&count| count > 0)?;
        Some(bound(last.min(BUCKETS - 2)))
    }

    /// Every bucket in order, as a Prometheus histogram has them: its
    /// upper bound in seconds (`le`, inclusive; the last is
    /// `f64::INFINITY`, `+Inf`) and the number of durations up to it
    /// (cumulative: the last is [`count`](Self::count)).
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::<u8>::new();
    /// let buckets: Vec<(f64, u64)> = locks.stats().waits.buckets().collect();
    /// assert_eq!(buckets.len(), 106);
    /// assert_eq!(buckets[0], (1.024e-6, 0));
    /// assert_eq!(buckets[105], (f64::INFINITY, 0));
    /// ```
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = (0..BUCKETS - 1).map(|index| bound(index).as_secs_f64());
        let bounds = bounds.chain([f64::INFINITY]);
        let cumulative = self.counts.iter().scan(0, |seen, &count| {
            *seen += count;
            Some(*seen)
        });
        bounds.zip(cumulative)
    }

    /// What was counted after `earlier`, an older report of the same
    /// histogram: the distribution over the interval between the two.
    ///
    /// # Examples
    ///
    /// ```
    /// let locks = lock_manager::LockManager::new();
    /// drop(locks.try_acquire(1));
    /// let before = locks.stats();
    /// drop(locks.try_acquire(2));
    /// drop(locks.try_acquire(3));
    /// let after = locks.stats();
    /// let recent = after.holds.since(&before.holds);
    /// assert_eq!(recent.count(), if lock_manager::DIAGNOSTICS { 2 } else { 0 });
    /// ```
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut counts = self.counts;
        for (count, &before) in counts.iter_mut().zip(&earlier.counts) {
            *count = count.saturating_sub(before);
        }
        let nanos = self.nanos.saturating_sub(earlier.nanos);
        Histogram { counts, nanos }
    }

    /// The count in each bucket, not cumulative: for serialization.
    #[cfg(feature = "serde")]
    pub(crate) fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// A histogram of these counts per bucket and this sum, or `None` if
    /// there are too many buckets: for deserialization.
    #[cfg(feature = "serde")]
    pub(crate) fn from_counts(counts: &[u64], sum: Duration) -> Option<Histogram> {
        let mut histogram = Histogram::default();
        histogram
            .counts
            .get_mut(..counts.len())?
            .copy_from_slice(counts);
        histogram.nanos = u64::try_from(sum.as_nanos()).unwrap_or(u64::MAX);
        Some(histogram)
    }
}

/// The bucket of a duration of `nanos`: the first whose bound is not
/// below it.
#[inline]
fn index(nanos: u64) -> usize {
    if nanos <= 1 << FIRST {
        return 0;
    }
    // Past the first bucket: which doubling `nanos - 1` is in, then which
    // quarter of it (its two bits below the highest).
    let below = nanos - 1;
    let doubling = u64::BITS - 1 - below.leading_zeros();
    if doubling >= FIRST + DOUBLINGS {
        return BUCKETS - 1;
    }
    let step = (below >> (doubling - 2)) & u64::from(STEPS - 1);
    1 + ((doubling - FIRST) * STEPS) as usize + step as usize
}

/// The upper bound of bucket `index`, but the last.
fn bound(index: usize) -> Duration {
    let Some(past_first) = index.checked_sub(1) else {
        return Duration::from_nanos(1 << FIRST);
    };
    let doubling = FIRST + past_first as u32 / STEPS;
    let step = past_first as u64 % u64::from(STEPS);
    Duration::from_nanos((1 << doubling) + ((step + 1) << (doubling - 2)))
}

impl AddAssign for Histogram {
    fn add_assign(&mut self, other: Self) {
        for (count, added) in self.counts.iter_mut().zip(other.counts) {
            *count += added;
        }
        self.nanos = self.nanos.saturating_add(other.nanos);
    }
}

/// The count, and when not empty the sum, median, 99th percentile and
/// maximum: not 106 counts.
impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut histogram = f.debug_struct("Histogram");
        histogram.field("count", &self.count());
        if let (Some(p50), Some(p99), Some(max)) =
            (self.quantile(0.5), self.quantile(0.99), self.max())
        {
            histogram
                .field("sum", &self.sum())
                .field("p50", &p50)
                .field("p99", &p99)
                .field("max", &max);
        }
        histogram.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(durations: &[Duration]) -> Histogram {
        let mut histogram = Histogram::default();
        for &duration in durations {
            histogram.record(duration);
        }
        histogram
    }

    fn bucket_of(duration: Duration) -> usize {
        let counts = histogram(&[duration]).counts;
        counts.iter().position(|&count| count == 1).unwrap()
    }

    #[test]
    fn a_bucket_holds_its_upper_bound_and_what_lies_above_the_one_before() {
        let nanos = Duration::from_nanos;
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(nanos(1024)), 0);
        assert_eq!(bucket_of(nanos(1025)), 1);
        assert_eq!(bucket_of(nanos(1280)), 1);
        assert_eq!(bucket_of(nanos(1281)), 2);
        assert_eq!(bucket_of(nanos(2048)), 4);
        assert_eq!(bucket_of(nanos(2049)), 5);
        assert_eq!(bucket_of(nanos(1 << 36)), BUCKETS - 2);
        assert_eq!(bucket_of(nanos((1 << 36) + 1)), BUCKETS - 1);
        assert_eq!(bucket_of(Duration::MAX), BUCKETS - 1);
        // Every bound falls in its own bucket, the next nanosecond in the
        // next one.
        for index in 0..BUCKETS - 1 {
            assert_eq!(bucket_of(bound(index)), index);
            assert_eq!(bucket_of(bound(index) + nanos(1)), index + 1);
        }
    }

    #[test]
    fn bounds_grow_by_at_most_a_quarter_up_to_68_seconds() {
        let bounds: Vec<Duration> = (0..BUCKETS - 1).map(bound).collect();
        assert_eq!(bounds[0], Duration::from_nanos(1024));
        assert_eq!(bounds[1], Duration::from_nanos(1280));
        assert_eq!(bounds[4], Duration::from_nanos(2048));
        assert_eq!(bounds[BUCKETS - 2], Duration::from_nanos(1 << 36));
        for pair in bounds.windows(2) {
            let growth = pair[1].as_secs_f64() / pair[0].as_secs_f64();
            assert!(growth > 1.14 && growth <= 1.25, "{pair:?}");
        }
    }

    #[test]
    fn buckets_are_cumulative_under_bounds_in_seconds_up_to_infinity() {
        let micros = Duration::from_micros;
        let histogram = histogram(&[micros(1), micros(2), micros(2), Duration::from_secs(100)]);
        let buckets: Vec<(f64, u64)> = histogram.buckets().collect();
        assert_eq!(buckets.len(), BUCKETS);
        assert_eq!(buckets[0], (1.024e-6, 1));
        assert_eq!(buckets[4], (2.048e-6, 3));
        assert_eq!(buckets[BUCKETS - 2], ((1u64 << 36) as f64 / 1e9, 3));
        assert_eq!(buckets[BUCKETS - 1], (f64::INFINITY, 4));
        assert!(buckets.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert!(buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1));
    }

    #[test]
    fn quantiles_name_the_bucket_of_the_ranked_duration() {
        let micros = Duration::from_micros;
        // 98 short, one 100 µs, one 10 ms.
        let mut durations = vec![micros(3); 98];
        durations.extend([micros(100), micros(10_000)]);
        let histogram = histogram(&durations);
        assert_eq!(histogram.count(), 100);
        let nanos = Duration::from_nanos;
        assert_eq!(histogram.quantile(0.0), Some(nanos(3072)));
        assert_eq!(histogram.quantile(0.5), Some(nanos(3072)));
        assert_eq!(histogram.quantile(0.98), Some(nanos(3072)));
        assert_eq!(histogram.quantile(0.99), Some(nanos(114_688)));
        assert_eq!(histogram.quantile(1.0), Some(nanos(10_485_760)));
        assert_eq!(histogram.max(), histogram.quantile(1.0));
        // A bound is never below the duration, and at most 25% above.
        for &duration in &durations {
            let read = self::histogram(&[duration]).max().unwrap();
            assert!(read >= duration && read.as_secs_f64() <= duration.as_secs_f64() * 1.25);
        }
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(Histogram::default().max(), None);
        assert!(Histogram::default().is_empty() && !histogram.is_empty());
    }

    #[test]
    fn past_the_last_bound_quantiles_read_the_last_bound() {
        let histogram = histogram(&[Duration::from_secs(3600)]);
        assert_eq!(histogram.max(), Some(Duration::from_nanos(1 << 36)));
        assert_eq!(histogram.quantile(0.5), Some(Duration::from_nanos(1 << 36)));
    }

    #[test]
    fn the_sum_and_the_mean_are_exact() {
        let micros = Duration::from_micros;
        let histogram = histogram(&[micros(1), micros(2), micros(6)]);
        assert_eq!(histogram.sum(), micros(9));
        assert_eq!(histogram.mean(), Some(micros(3)));
        assert_eq!(Histogram::default().mean(), None);
        let huge = self::histogram(&[Duration::MAX, Duration::MAX]);
        assert_eq!(huge.sum(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    #[should_panic(expected = "within 0.0..=1.0, not 1.5")]
    fn a_quantile_past_one_panics() {
        Histogram::default().quantile(1.5);
    }

    #[test]
    #[should_panic(expected = "within 0.0..=1.0, not NaN")]
    fn a_nan_quantile_panics() {
        Histogram::default().quantile(f64::NAN);
    }

    #[test]
    fn histograms_add_up_and_subtract() {
        let micros = Duration::from_micros;
        let earlier = histogram(&[micros(1), micros(50)]);
        let mut later = earlier;
        later += histogram(&[micros(50), micros(900)]);
        assert_eq!(later.count(), 4);
        assert_eq!(later.sum(), micros(1001));
        let interval = later.since(&earlier);
        assert_eq!(interval, histogram(&[micros(50), micros(900)]));
        // A report older than `earlier` has nothing to take away: no wrap.
        assert_eq!(earlier.since(&later), Histogram::default());
    }

    #[test]
    fn debug_prints_a_summary_not_every_bucket() {
        assert_eq!(
            format!("{:?}", Histogram::default()),
            "Histogram { count: 0 }"
        );
        let shown = format!("{:?}", histogram(&[Duration::from_micros(2)]));
        assert_eq!(
            shown,
            "Histogram { count: 1, sum: 2µs, p50: 2.048µs, p99: 2.048µs, max: 2.048µs }"
        );
    }
}
