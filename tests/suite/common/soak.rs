//! The driver of the randomized soak tests (stress.rs, transfers.rs): rounds
//! of seeded tasks on one runtime under a watchdog, replayable by seed, and
//! the holder counts they check their critical sections with.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lock_manager::LockManager;

use super::{assert_empty, env_or, within, Rng, Rt};

/// A randomized test: `rounds` rounds of `tasks` concurrent tasks on one
/// runtime, all drawn from one seed.
#[derive(Clone, Copy, Debug)]
pub struct Soak {
    /// Names the test in messages.
    pub name: &'static str,
    /// The environment variable that replays a run: its seed.
    pub seed_var: &'static str,
    /// The default seed, plus the runtime's index (each runtime its own).
    pub seed: u64,
    /// The environment variable that overrides `tasks`.
    pub tasks_var: &'static str,
    pub tasks: usize,
    pub rounds: usize,
    /// The whole run must end within this, or the test fails.
    pub overall: Duration,
}

impl Soak {
    /// Runs `body` on `rt`, on a thread of its own so that even a runtime
    /// wedged beyond its own timers fails the test instead of hanging it.
    pub fn run<F: Future>(self, rt: Rt, body: impl FnOnce(Run) -> F + Send + 'static) -> F::Output
    where
        F::Output: Send + 'static,
    {
        let seed = env_or(self.seed_var, self.seed + rt as u64);
        let tasks = env_or(self.tasks_var, self.tasks);
        let run = Run {
            rt,
            seed,
            tasks,
            soak: self,
        };
        let what = format!("{rt:?}: {} (seed {seed})", self.name);
        let started = Instant::now();
        let output = within(self.overall + Duration::from_secs(30), &what, move || {
            rt.block_on(body(run))
        });
        eprintln!("{what} took {:?}", started.elapsed());
        output
    }
}

/// One run of a [`Soak`], as its body sees it.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub rt: Rt,
    pub seed: u64,
    /// Tasks per round.
    pub tasks: usize,
    soak: Soak,
}

impl Run {
    /// Tasks over all the rounds.
    pub fn total_tasks(&self) -> usize {
        self.soak.rounds * self.tasks
    }

    /// Runs the rounds. Each spawns `tasks` tasks, made by `task` from seeds
    /// drawn in turn from the run's seed, waits for them all and hands their
    /// outputs to `check`. Fails, showing `manager`, if they are not all
    /// done within the run's overall limit.
    pub async fn rounds<T, F>(
        &self,
        manager: &impl Debug,
        mut task: impl FnMut(u64) -> F,
        mut check: impl FnMut(Vec<T>),
    ) where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let Run { rt, seed, soak, .. } = *self;
        let deadline = Instant::now() + soak.overall;
        let mut seeds = Rng::new(seed);
        for round in 0..soak.rounds {
            let handles: Vec<_> = (0..self.tasks)
                .map(|_| rt.spawn(task(seeds.next())))
                .collect();
            let all = futures::future::join_all(handles);
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(outputs) = rt.timeout(left, all).await else {
                panic!(
                    "{rt:?}: round {round}: tasks still unfinished after {:?} (seed {seed}); manager: {manager:?}",
                    soak.overall
                );
            };
            check(outputs);
        }
    }
}

/// Per key, the holders inside its critical section right now: catches a
/// second holder.
#[derive(Debug)]
pub struct Holders {
    /// What a key stands for, in messages ("key", "account").
    noun: &'static str,
    inside: Vec<AtomicUsize>,
    /// Most holders ever seen on one key at once (must stay 1).
    worst: AtomicUsize,
}

impl Holders {
    /// For keys `0..keys`.
    pub fn new(noun: &'static str, keys: usize) -> Self {
        Self {
            noun,
            inside: (0..keys).map(|_| AtomicUsize::new(0)).collect(),
            worst: AtomicUsize::new(0),
        }
    }

    /// Marks a critical section on `keys` (duplicates merged) until the
    /// mark is dropped, as it is when a cancelled body is dropped midway.
    /// Take it after the lock guard, so that it is dropped before the guard
    /// releases the keys.
    pub fn enter(&self, keys: &[u32]) -> Inside<'_> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        for &key in &keys {
            let now = self.inside[key as usize].fetch_add(1, Ordering::SeqCst) + 1;
            self.worst.fetch_max(now, Ordering::SeqCst);
            assert_eq!(now, 1, "two holders of {} {key} at once", self.noun);
        }
        Inside {
            holders: self,
            keys,
        }
    }

    /// Between rounds: never two holders at once, nobody inside now, and
    /// nothing left held or queued in `locks`.
    pub fn assert_quiet(&self, locks: &LockManager<u32>, seed: u64) {
        let noun = self.noun;
        assert_eq!(self.worst.load(Ordering::SeqCst), 1, "seed {seed}");
        for (key, inside) in self.inside.iter().enumerate() {
            assert_eq!(
                inside.load(Ordering::SeqCst),
                0,
                "{noun} {key} still marked held (seed {seed})"
            );
            assert!(
                !locks.is_locked(&(key as u32)),
                "{noun} {key} left locked (seed {seed})"
            );
        }
        assert_empty(locks, seed);
    }
}

/// A critical section marked by [`Holders::enter`].
#[derive(Debug)]
pub struct Inside<'a> {
    holders: &'a Holders,
    keys: Vec<u32>,
}

impl Inside<'_> {
    /// The keys inside, sorted and deduplicated.
    pub fn keys(&self) -> &[u32] {
        &self.keys
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        for &key in &self.keys {
            self.holders.inside[key as usize].fetch_sub(1, Ordering::SeqCst);
        }
    }
}
