//! The soak run: one `LockManager<u64>` shared for minutes by tokio (two
//! workers), async-std, a smol executor on two threads and two plain
//! threads locking through the blocking forms, all at once, with the
//! manager's guarantees checked throughout.
//!
//! ```sh
//! bash scripts/soak.sh 600                        # ten minutes (default: 180 s)
//! cargo run --release -p lock-manager-soak -- 60  # the same, by hand
//! SOAK_SEED=42 bash scripts/soak.sh               # fixed choices (threads still interleave freely)
//! ```
//!
//! Every task draws its operations at random from one printed seed: every
//! single- and multi-key acquire, `try` and bounded form, blocking waits
//! with and without a timeout or a deadline, `with_lock` bodies that
//! return `Ok`, `Err` or panic, futures enqueued at once and awaited in a
//! task of their own, acquires raced against a short timer, polled once
//! and dropped, or dropped right after the hand-off, whole operations cut
//! short by a timeout, and guards dropped halfway. Some guards nest: they
//! hold a key or a few and `extend` with more in random order (awaited,
//! enqueued first, raced against a timer, blocking with or without a
//! deadline, or `try_extend`), so that they close cycles with one another
//! and with multi-key requests; a refused extend (`Deadlock`) drops its
//! guard, as a caller retrying would.
//! Hot keys (`0..4`) keep long queues; cold ones (`4..4096`) mostly don't;
//! the FIFO probes' waiters have keys of their own past those.
//!
//! Checked, each failure counted as a violation and the first few printed:
//! never two holders of a key (a per-key count of holders inside), no lost
//! update (per-key read, yield, write counters against atomic counts of the
//! updates written), FIFO where the order is known (probes that queue
//! waiters behind a key they hold), progress (a watchdog: every driver
//! moves within 10 s, the run ends within its duration plus 30 s: a cycle
//! not refused would stop them), the keys a guard holds after an extend,
//! granted, refused or dropped, and at the end: nothing held or queued,
//! the counters of `stats()` adding up as their definitions imply (its
//! deadlocks at least the refusals the callers saw, and at most those
//! and the extends dropped unfinished), and live heap memory flat between
//! a checkpoint (at 60 s, or a third into a shorter run) and the end.
//!
//! Prints one summary line on stdout and exits with status 1 on any
//! violation.

mod alloc;
mod ops;
mod shared;

use std::process::ExitCode;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::{self, BoxFuture, FutureExt};

use ops::Rt;
use shared::{get, Deliberate, Driver, Rng, Shared};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Async tasks per runtime, besides its FIFO prober.
const TASKS: usize = 32;
/// Plain threads locking through the blocking forms.
const THREADS: usize = 2;
/// A driver whose operations stop finishing for this long is stuck.
const STALL: Duration = Duration::from_secs(10);
/// The run must be over this long after its deadline.
const GRACE: Duration = Duration::from_secs(30);
/// How much live memory may grow from the checkpoint to the end and still
/// count as flat: room for the manager's map and slabs reaching a new peak.
const SLACK: isize = 256 * 1024;

const USAGE: &str =
    "usage: lock-manager-soak [DURATION_SECONDS]  (default 180; SOAK_SEED=<n> fixes the seed)";

fn main() -> ExitCode {
    let duration = match parse_args() {
        Ok(duration) => duration,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let seed = match std::env::var("SOAK_SEED") {
        Ok(seed) => match seed.parse() {
            Ok(seed) => seed,
            Err(_) => {
                eprintln!("SOAK_SEED must be an unsigned integer, not {seed:?}");
                return ExitCode::from(2);
            }
        },
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as u64),
    };
    // The deliberate panics are caught and counted; printing each would
    // drown everything else.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Deliberate>() {
            default_hook(info);
        }
    }));

    let shared = Arc::new(Shared::new(seed));
    let mut seeds = Rng::new(seed);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let smol = smol::Executor::new();
    let (stop_smol, smol_stopped) = smol::channel::bounded::<()>(1);
    // Starts every runtime's threads and timers now, so that the starting
    // figure for memory includes them.
    tokio.block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
    async_std::task::block_on(async_std::task::spawn(async_std::task::sleep(
        Duration::from_millis(1),
    )));
    // (smol's global executor too, which runs the tasks the soak spawns.)
    smol::block_on(smol::spawn(smol::Timer::after(Duration::from_millis(1))));
    println!(
        "soak: {} s on tokio, async-std, smol and {THREADS} threads (seed {seed})",
        duration.as_secs()
    );

    let checkpoint = checkpoint(duration);
    let mut memory = Memory::default();
    let mut elapsed = Duration::ZERO;
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| smol::block_on(smol.run(smol_stopped.recv())));
        }
        // Lets those threads finish starting before the first figure.
        thread::sleep(Duration::from_millis(100));
        memory.start = alloc::live();
        let started = Instant::now();
        {
            let shared = shared.clone();
            thread::spawn(move || watchdog(&shared, started, duration + GRACE));
        }

        let mut drivers = Vec::new();
        let handles: Vec<_> = tasks(Rt::Tokio, &shared, &mut seeds)
            .into_iter()
            .map(|task| tokio.spawn(task))
            .collect();
        let tokio = &tokio;
        drivers.push(s.spawn(move || tokio.block_on(future::join_all(handles))));
        let handles: Vec<_> = tasks(Rt::AsyncStd, &shared, &mut seeds)
            .into_iter()
            .map(async_std::task::spawn)
            .collect();
        drivers.push(s.spawn(move || {
            async_std::task::block_on(future::join_all(handles));
            Vec::new()
        }));
        let handles: Vec<_> = tasks(Rt::Smol, &shared, &mut seeds)
            .into_iter()
            .map(|task| smol.spawn(task))
            .collect();
        drivers.push(s.spawn(move || {
            smol::block_on(future::join_all(handles));
            Vec::new()
        }));
        for _ in 0..THREADS {
            let (shared, seed) = (&shared, seeds.next());
            drivers.push(s.spawn(move || {
                ops::blocking_worker(shared, seed);
                Vec::new()
            }));
        }

        sleep_until(started + checkpoint);
        memory.checkpoint = alloc::live();
        sleep_until(started + duration);
        shared.stop();
        for driver in drivers {
            match driver.join() {
                // Only tokio reports failed tasks; the others' tasks never
                // panic (every operation is run under `catch_unwind`).
                Ok(joined) => {
                    for failed in joined.into_iter().filter_map(Result::err) {
                        shared.violation(format_args!("a tokio task failed: {failed}"));
                    }
                }
                Err(_) => shared.violation("a driver thread panicked"),
            }
        }
        elapsed = started.elapsed();
        shared.final_checks();
        // Every task done; the runtimes and their threads still alive, as
        // they were at the start.
        memory.end = alloc::live();
        drop(stop_smol);
    });
    drop(tokio);

    if memory.end > memory.checkpoint + SLACK {
        shared.violation(format_args!(
            "live memory grew from {} at the checkpoint to {} at the end",
            bytes(memory.checkpoint),
            bytes(memory.end)
        ));
    }
    report(&shared, duration, checkpoint, elapsed, &memory);
    if shared.violations() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One runtime's tasks: its workers and its FIFO prober, each with a seed
/// of its own.
fn tasks(rt: Rt, shared: &Arc<Shared>, seeds: &mut Rng) -> Vec<BoxFuture<'static, ()>> {
    let mut tasks = vec![ops::prober(rt, shared.clone(), seeds.next()).boxed()];
    tasks.extend((0..TASKS).map(|_| ops::worker(rt, shared.clone(), seeds.next()).boxed()));
    tasks
}

/// The duration, from the only argument, in seconds.
fn parse_args() -> Result<Duration, String> {
    let mut args = std::env::args().skip(1);
    let seconds = match (args.next(), args.next()) {
        (None, _) => 180,
        (Some(arg), None) if arg == "-h" || arg == "--help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        (Some(arg), None) => match arg.parse::<u64>() {
            Ok(seconds) if seconds > 0 => seconds,
            _ => return Err(format!("not a positive number of seconds: {arg:?}")),
        },
        (Some(_), Some(_)) => return Err("too many arguments".into()),
    };
    Ok(Duration::from_secs(seconds))
}

/// When the middle memory figure is taken: after the first minute, or
/// after a third of a run shorter than three minutes. Early enough to leave
/// most of the run for a leak to show, late enough for the manager's maps
/// and the runtimes to have reached their working size.
fn checkpoint(duration: Duration) -> Duration {
    if duration >= Duration::from_secs(180) {
        Duration::from_secs(60)
    } else {
        duration / 3
    }
}

fn sleep_until(deadline: Instant) {
    thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

/// Live heap bytes at the three points of the run.
#[derive(Default)]
struct Memory {
    /// Set up, every runtime started, no task spawned yet.
    start: isize,
    checkpoint: isize,
    /// Every task done, the runtimes still alive.
    end: isize,
}

fn bytes(n: isize) -> String {
    let n = n as f64;
    if n.abs() >= 10.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", n / 1024.0)
    }
}

/// A few lines of detail on stderr, then the summary line on stdout.
fn report(
    shared: &Shared,
    duration: Duration,
    checkpoint: Duration,
    elapsed: Duration,
    memory: &Memory,
) {
    let tally = &shared.tally;
    let ops = shared.total_ops();
    let per_driver: Vec<String> = Driver::ALL
        .iter()
        .map(|&d| format!("{d:?} {}", shared.ops(d)))
        .collect();
    eprintln!("soak: operations by driver: {}", per_driver.join(", "));
    eprintln!(
        "soak: {} FIFO probes checked {} waiters; {} try refusals, {} Err bodies, {} guards dropped halfway",
        get(&tally.probes),
        get(&tally.probed_waiters),
        get(&tally.try_refused),
        get(&tally.errors),
        get(&tally.abandoned),
    );
    eprintln!(
        "soak: {} extends granted, {} refused with Deadlock, {} dropped unfinished; \
         the manager counts {} deadlocks",
        get(&tally.extended),
        get(&tally.deadlocks),
        get(&tally.extends_dropped),
        shared.locks.stats().deadlocks,
    );
    eprintln!(
        "soak: manager {:?}, keys granted to callers {}",
        shared.locks.stats(),
        shared.granted()
    );
    let at = if checkpoint == Duration::from_secs(60) {
        "60 s".to_string()
    } else {
        format!("{:.0} s (a third of the run)", checkpoint.as_secs_f64())
    };
    let flat = if memory.end <= memory.checkpoint + SLACK {
        "flat"
    } else {
        "GROWING"
    };
    println!(
        "soak: {} s, {ops} ops, {:.0} ops/s, {} cancellations, {} panics caught, {} busy refusals, \
         {} deadlocks refused, {} violations, live memory {} at start, {} at {at}, {} at end with runtimes alive ({flat}) (seed {})",
        duration.as_secs(),
        ops as f64 / elapsed.as_secs_f64(),
        get(&tally.cancellations),
        get(&tally.panics),
        get(&tally.busy),
        get(&tally.deadlocks),
        shared.violations(),
        bytes(memory.start),
        bytes(memory.checkpoint),
        bytes(memory.end),
        shared.seed,
    );
}

/// Fails the run, with the manager's state, when a driver stops making
/// progress or the run overstays its limit. Runs until the process ends.
fn watchdog(shared: &Arc<Shared>, started: Instant, limit: Duration) {
    let mut last = Driver::ALL.map(|d| (shared.ops(d), Instant::now()));
    loop {
        thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        if now - started > limit {
            fail(
                shared,
                format!("the run did not end within {} s", limit.as_secs()),
            );
        }
        if !shared.running() {
            continue;
        }
        for (&driver, (ops, since)) in Driver::ALL.iter().zip(&mut last) {
            let current = shared.ops(driver);
            if current != *ops {
                (*ops, *since) = (current, now);
            } else if now - *since >= STALL {
                fail(
                    shared,
                    format!(
                        "{driver:?} finished no operation for {} s (stuck at {current})",
                        STALL.as_secs()
                    ),
                );
            }
        }
    }
}

/// Prints what went wrong and what the manager holds, and exits with
/// status 1. The manager's `Debug` never blocks; `stats` and `snapshot` lock
/// its shards, so they get a few seconds on a thread of their own.
fn fail(shared: &Arc<Shared>, why: String) -> ! {
    shared.violation(&why);
    eprintln!("soak: {:?}", shared.locks);
    let (done, wait) = mpsc::channel();
    let locks = shared.locks.clone();
    thread::spawn(move || {
        eprintln!("soak: {:?}", locks.stats());
        eprintln!("soak: held keys {:?}", locks.snapshot());
        let _ = done.send(());
    });
    if wait.recv_timeout(Duration::from_secs(5)).is_err() {
        eprintln!("soak: stats() and snapshot() did not return within 5 s");
    }
    println!(
        "soak: FAILED after {} ops: {why}, {} violations (seed {})",
        shared.total_ops(),
        shared.violations(),
        shared.seed
    );
    std::process::exit(1);
}
