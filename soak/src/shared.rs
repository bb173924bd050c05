//! What every driver shares: the manager, the bookkeeping that checks its
//! guarantees while the run goes on, and the tallies the summary reports.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use lock_manager::{Guard, LockManager};

/// Keys `0..HOT` are hot: about half of all requests go to them, so their
/// queues stay long. The rest of `0..KEYS` are cold and rarely contended.
pub const HOT: u64 = 4;
pub const KEYS: u64 = 4096;
/// Keys past `KEYS` that only the FIFO probes use, each probe waiter one
/// of its own (see [`probe_key`]): [`PROBE_WAITERS`] for each runtime's
/// prober.
pub const PROBE_WAITERS: u64 = 8;
const PROBE_KEYS: u64 = 3 * PROBE_WAITERS;
/// Every key the run uses.
const ALL_KEYS: u64 = KEYS + PROBE_KEYS;

/// The private key of waiter `number` of the prober of runtime `rt`
/// (`0..3`): free whenever that waiter asks for it.
pub fn probe_key(rt: u64, number: u64) -> u64 {
    assert!(rt < 3 && number < PROBE_WAITERS);
    KEYS + rt * PROBE_WAITERS + number
}

/// Violations printed in full; the rest are only counted.
const PRINTED: u64 = 10;

/// SplitMix64: deterministic per seed, no dependencies, and any seed (zero
/// included) gives a full-period sequence.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A key, hot half of the time.
    pub fn key(&mut self) -> u64 {
        if self.chance(50) {
            self.below(HOT)
        } else {
            HOT + self.below(KEYS - HOT)
        }
    }

    /// Two or three keys in random order, now and then one listed twice.
    pub fn keys(&mut self) -> Vec<u64> {
        let mut keys: Vec<u64> = (0..2 + self.below(2)).map(|_| self.key()).collect();
        if self.chance(10) {
            keys.push(keys[0]);
        }
        keys
    }
}

/// The keys a request holds once granted: sorted, duplicates merged.
pub fn distinct(keys: &[u64]) -> Vec<u64> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The payload of the panics the soak raises on purpose in `with_lock`
/// bodies; the panic hook stays silent about these.
pub struct Deliberate;

/// Who runs operations; each makes progress of its own, which the watchdog
/// checks separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Tokio,
    AsyncStd,
    Smol,
    Threads,
}

impl Driver {
    pub const ALL: [Driver; 4] = [
        Driver::Tokio,
        Driver::AsyncStd,
        Driver::Smol,
        Driver::Threads,
    ];
}

/// What happened, for the summary. Outcomes, not checks: a check that fails
/// is a violation instead.
#[derive(Default)]
pub struct Tally {
    /// Acquire futures dropped before they returned a guard, and operations
    /// cut short by a timeout (waiting, just granted, or mid-body).
    pub cancellations: AtomicU64,
    /// Deliberate panics in `with_lock` bodies, caught around the call.
    pub panics: AtomicU64,
    /// `enqueue_bounded` calls refused with `Busy`.
    pub busy: AtomicU64,
    /// `try_acquire` and `try_acquire_many` calls that found a key taken.
    pub try_refused: AtomicU64,
    /// `with_lock` bodies that returned `Err`.
    pub errors: AtomicU64,
    /// Guards dropped halfway through a critical section, its update left out.
    pub abandoned: AtomicU64,
    /// FIFO probes run, and the waiters whose order they checked.
    pub probes: AtomicU64,
    pub probed_waiters: AtomicU64,
    /// Extends that got their keys, those refused with `Deadlock`, each
    /// seen by its caller (who then dropped the guard), and those dropped
    /// unfinished (timed out, or cancelled as `Wait` says).
    pub extended: AtomicU64,
    pub deadlocks: AtomicU64,
    pub extends_dropped: AtomicU64,
}

/// Reads a counter of the tally.
pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(SeqCst)
}

/// Adds to a counter of the tally.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, SeqCst);
}

/// Adds one to a counter of the tally.
pub fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

/// The state of the whole run.
pub struct Shared {
    pub locks: Arc<LockManager<u64>>,
    pub seed: u64,
    pub tally: Tally,
    /// Set at the deadline: every driver finishes its operation and stops.
    stop: AtomicBool,
    /// Per key, the holders inside their critical section right now.
    holders: Vec<AtomicUsize>,
    /// Per key, updated by read, yield, write under the lock: a lost update
    /// leaves it behind `expected`.
    counters: Vec<AtomicU64>,
    /// Per key, the updates written, counted with atomic adds that need no
    /// lock.
    expected: Vec<AtomicU64>,
    /// Keys handed to callers in a guard (or a `with_lock` body), and the
    /// most keys that multi-key requests dropped unfinished can have held:
    /// for the check that the manager's counters add up.
    granted: AtomicU64,
    unfinished: AtomicU64,
    /// Operations finished, per driver (indexed as `Driver::ALL`).
    ops: [AtomicU64; 4],
    violations: AtomicU64,
}

impl Shared {
    pub fn new(seed: u64) -> Self {
        Self {
            locks: Arc::new(LockManager::new()),
            seed,
            tally: Tally::default(),
            stop: AtomicBool::new(false),
            holders: (0..ALL_KEYS).map(|_| AtomicUsize::new(0)).collect(),
            counters: (0..ALL_KEYS).map(|_| AtomicU64::new(0)).collect(),
            expected: (0..ALL_KEYS).map(|_| AtomicU64::new(0)).collect(),
            granted: AtomicU64::new(0),
            unfinished: AtomicU64::new(0),
            ops: Default::default(),
            violations: AtomicU64::new(0),
        }
    }

    pub fn running(&self) -> bool {
        !self.stop.load(SeqCst)
    }

    pub fn stop(&self) {
        self.stop.store(true, SeqCst);
    }

    /// Counts a finished operation of `driver`.
    pub fn op_done(&self, driver: Driver) {
        self.ops[driver as usize].fetch_add(1, SeqCst);
    }

    pub fn ops(&self, driver: Driver) -> u64 {
        self.ops[driver as usize].load(SeqCst)
    }

    pub fn total_ops(&self) -> u64 {
        Driver::ALL.iter().map(|&d| self.ops(d)).sum()
    }

    pub fn granted(&self) -> u64 {
        self.granted.load(SeqCst)
    }

    pub fn violations(&self) -> u64 {
        self.violations.load(SeqCst)
    }

    /// Counts a broken guarantee, and prints the first few in full.
    pub fn violation(&self, what: impl fmt::Display) {
        let n = self.violations.fetch_add(1, SeqCst) + 1;
        if n <= PRINTED {
            eprintln!("soak: VIOLATION {n}: {what} (seed {})", self.seed);
        } else if n == PRINTED + 1 {
            eprintln!("soak: further violations are counted, not printed");
        }
    }

    /// Counts the keys of a guard just obtained for `keys` (sorted,
    /// merged), after checking it holds exactly those.
    pub fn take<G: Guard<Key = u64>>(&self, guard: G, keys: &[u64]) -> G {
        self.holds(&guard, keys);
        self.granted_keys(guard.keys().len());
        guard
    }

    /// Checks that `guard` holds exactly `keys` (sorted, merged), counting
    /// nothing: after an extend, granted or not.
    pub fn holds<G: Guard<Key = u64>>(&self, guard: &G, keys: &[u64]) {
        let held = distinct(guard.keys());
        if held != keys {
            self.violation(format_args!("a guard for {keys:?} holds {held:?}"));
        }
    }

    /// Marks a request for `keys` distinct keys until it is granted (see
    /// [`Request`]).
    pub fn request(&self, keys: usize) -> Request<'_> {
        Request { shared: self, keys }
    }

    /// Counts keys handed to a caller without a guard it can see (the body
    /// of `with_lock`).
    pub fn granted_keys(&self, n: usize) {
        self.granted.fetch_add(n as u64, SeqCst);
    }

    /// Marks a critical section on `keys` (sorted, merged) until the mark is
    /// dropped: a key that already has a holder inside is a violation.
    /// Taken after the guard and dropped before it, so that the marks never
    /// outlive the lock.
    pub fn enter<'a>(&'a self, keys: &'a [u64]) -> Inside<'a> {
        for &key in keys {
            let before = self.holders[key as usize].fetch_add(1, SeqCst);
            if before != 0 {
                self.violation(format_args!(
                    "two holders of key {key} at once ({before} already inside)"
                ));
            }
        }
        Inside { shared: self, keys }
    }

    /// The first half of an update: each key's counter as its holder sees it.
    pub fn read(&self, keys: &[u64]) -> Vec<u64> {
        keys.iter()
            .map(|&key| self.counters[key as usize].load(SeqCst))
            .collect()
    }

    /// The second half: checks nobody wrote in between, writes each counter
    /// one up and counts the update. Synchronous, so that a cancellation
    /// lands before all of it or after it.
    pub fn write(&self, keys: &[u64], seen: &[u64]) {
        for (&key, &seen) in keys.iter().zip(seen) {
            let counter = &self.counters[key as usize];
            let now = counter.load(SeqCst);
            if now != seen {
                self.violation(format_args!(
                    "key {key} changed under its holder: read {seen}, now {now}"
                ));
            }
            counter.store(seen + 1, SeqCst);
            self.expected[key as usize].fetch_add(1, SeqCst);
        }
    }

    /// Sorts out a panic caught around an operation: the soak's own when
    /// `deliberate` is allowed, otherwise a violation.
    pub fn panicked(&self, payload: Box<dyn Any + Send>, deliberate: bool) {
        if deliberate && payload.is::<Deliberate>() {
            bump(&self.tally.panics);
            return;
        }
        let message = if payload.is::<Deliberate>() {
            "a deliberate panic escaped its with_lock"
        } else if let Some(message) = payload.downcast_ref::<&str>() {
            message
        } else if let Some(message) = payload.downcast_ref::<String>() {
            message
        } else {
            "a panic with a non-string payload"
        };
        self.violation(format_args!("unexpected panic: {message}"));
    }

    /// At the end, with every driver stopped: nobody inside, nothing held or
    /// queued, no lost update, and counters that add up.
    pub fn final_checks(&self) {
        let locks = &self.locks;
        if locks.locked_count() != 0 {
            self.violation(format_args!(
                "{} keys still locked at the end: {:?}",
                locks.locked_count(),
                locks.snapshot()
            ));
        }
        for key in 0..ALL_KEYS {
            let queue = locks.queue_len(&key);
            if queue != 0 || locks.is_locked(&key) {
                self.violation(format_args!(
                    "key {key} still held or queued at the end (queue_len {queue})"
                ));
            }
            let inside = self.holders[key as usize].load(SeqCst);
            if inside != 0 {
                self.violation(format_args!("key {key}: {inside} holders still inside"));
            }
            let (counter, expected) = (
                self.counters[key as usize].load(SeqCst),
                self.expected[key as usize].load(SeqCst),
            );
            if counter != expected {
                self.violation(format_args!(
                    "lost update on key {key}: counter {counter}, {expected} updates written"
                ));
            }
        }
        self.check_stats();
    }

    /// The counters against their definitions in `Stats`' docs. Every key of
    /// every request enters the manager either free (one acquisition) or
    /// queued (`contended`). A queued one leaves the queue by a hand-off
    /// (one acquisition and one of `handoffs`) or by a cancellation. A key
    /// granted then reaches its caller (counted here as `granted`), or is
    /// given up before its future took it (a cancellation), or, held by a
    /// multi-key request dropped before it had every key, is simply
    /// released. Adding up both sides per key, the surplus
    /// `acquisitions + contended - (granted + cancellations + handoffs)` is
    /// the keys released that last way: never negative, and at most the
    /// keys but one of every multi-key request dropped unfinished (its last
    /// key, if granted, it has not taken yet).
    fn check_stats(&self) {
        let stats = self.locks.stats();
        let granted = self.granted();
        let left = stats.acquisitions + stats.contended;
        let right = granted + stats.cancellations + stats.handoffs;
        let surplus = i128::from(left) - i128::from(right);
        let most = self.unfinished.load(SeqCst);
        eprintln!(
            "soak: counters: acquisitions {} + contended {} - (granted {granted} + cancellations {} \
             + handoffs {}) = {surplus}, at most {most} allowed",
            stats.acquisitions, stats.contended, stats.cancellations, stats.handoffs
        );
        if surplus < 0 || surplus > i128::from(most) {
            self.violation(format_args!(
                "counters do not add up: acquisitions + contended - (granted + cancellations \
                 + handoffs) = {surplus}, not within 0..={most}: {stats:?}, granted {granted}"
            ));
        }
        // Every key acquired is released once; every key a caller saw, by
        // that caller.
        if stats.acquisitions != stats.releases || stats.releases < granted {
            self.violation(format_args!(
                "acquisitions and releases differ, or fewer releases than keys granted \
                 to callers ({granted}): {stats:?}"
            ));
        }
        if stats.handoffs > stats.contended || stats.handoffs > stats.acquisitions {
            self.violation(format_args!(
                "more hand-offs than contended requests or acquisitions: {stats:?}"
            ));
        }
        // Every refusal a caller saw was counted. The manager counts more:
        // those of extends dropped before they polled again to see them
        // (by a timer, say), and no others: a refused extend resolves to
        // `Deadlock` or is dropped, never granted.
        let seen = get(&self.tally.deadlocks);
        let dropped = get(&self.tally.extends_dropped);
        if stats.deadlocks < seen || stats.deadlocks > seen + dropped {
            self.violation(format_args!(
                "stats().deadlocks is {}: {seen} extends saw a refusal and {dropped} were \
                 dropped unfinished",
                stats.deadlocks
            ));
        }
    }
}

/// A request not granted yet, from before it is placed. Dropped unfinished,
/// it counts the keys it may have held and released without a caller ever
/// seeing them: all but one, and none for a single key.
pub struct Request<'a> {
    shared: &'a Shared,
    keys: usize,
}

impl Request<'_> {
    /// The request was granted: its keys are counted by [`Shared::take`].
    pub fn granted(mut self) {
        self.keys = 0;
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        let most = self.keys.saturating_sub(1) as u64;
        self.shared.unfinished.fetch_add(most, SeqCst);
    }
}

/// A critical section marked by [`Shared::enter`].
pub struct Inside<'a> {
    shared: &'a Shared,
    keys: &'a [u64],
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        for &key in self.keys {
            self.shared.holders[key as usize].fetch_sub(1, SeqCst);
        }
    }
}
