//! Random money transfers between accounts, each locking both of its
//! accounts at once through `acquire_many_owned`, `acquire_many`,
//! `with_locks`, `try_acquire_many` or `enqueue_bounded`: hundreds of
//! tasks on every runtime, accounts listed in random order (sometimes the
//! same account twice), mixed with audits that lock larger sets, with
//! single-key holders, with plain threads that lock through
//! `acquire_many(..).wait()`, and with operations cancelled at random moments
//! by the runtime's own timeout.
//!
//! Checked: money is conserved and every account ends exactly where the
//! completed transfers put it (no lost update), never two holders of an
//! account, no deadlock (every task finishes), and the manager is empty at
//! the end.
//!
//! `TRANSFERS_SEED=<n>` replays a run; `TRANSFERS_TASKS=<n>` changes its
//! size.
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::soak::{Holders, Inside, Run, Soak};
use crate::common::{Rng, Rt};
use lock_manager::LockManager;

/// Rounds on one bank, which must balance, and whose manager must be
/// empty, after each.
const SOAK: Soak = Soak {
    name: "transfers",
    seed_var: "TRANSFERS_SEED",
    seed: 0x7EA5_0000,
    tasks_var: "TRANSFERS_TASKS",
    tasks: 500,
    rounds: 20,
    overall: Duration::from_secs(30),
};

const ACCOUNTS: usize = 100;
const OPENING: i64 = 1_000;
/// Each task runs between `MIN_OPS` and `MAX_OPS` operations, one by one.
const MIN_OPS: u64 = 4;
const MAX_OPS: u64 = 10;

/// A random account.
fn account(rng: &mut Rng) -> u32 {
    rng.below(ACCOUNTS as u64) as u32
}

/// The accounts and the bookkeeping every task shares.
struct Bank {
    /// One key per account.
    locks: Arc<LockManager<u32>>,
    /// Updated by read, yield, write inside the locks.
    balances: Vec<AtomicI64>,
    /// Where the completed transfers put each account, kept with atomic
    /// adds, which need no lock: a lost update on `balances` shows up as a
    /// difference, even one that happens to conserve the total.
    expected: Vec<AtomicI64>,
    /// Operations inside their critical section right now, per account.
    holders: Holders,
    /// Refused and admitted `try_acquire_many` and `enqueue_bounded`
    /// calls: the run must see both.
    refused: AtomicUsize,
    admitted: AtomicUsize,
}

impl Bank {
    fn new() -> Self {
        Self {
            locks: Arc::new(LockManager::new()),
            balances: (0..ACCOUNTS).map(|_| AtomicI64::new(OPENING)).collect(),
            expected: (0..ACCOUNTS).map(|_| AtomicI64::new(OPENING)).collect(),
            holders: Holders::new("account", ACCOUNTS),
            refused: AtomicUsize::new(0),
            admitted: AtomicUsize::new(0),
        }
    }

    fn balance(&self, account: u32) -> i64 {
        self.balances[account as usize].load(Ordering::SeqCst)
    }

    /// Counts a `try` or bounded call's outcome; `true` if admitted.
    fn admit<T>(&self, outcome: Option<T>) -> Option<T> {
        let counter = match outcome {
            Some(_) => &self.admitted,
            None => &self.refused,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        outcome
    }
}

/// Marks a critical section on `accounts` (see [`Holders::enter`]), and
/// that the operation got that far.
fn enter<'a>(bank: &'a Bank, accounts: &[u32], entered: &AtomicBool) -> Inside<'a> {
    let inside = bank.holders.enter(accounts);
    entered.store(true, Ordering::SeqCst);
    inside
}

/// Lets other tasks run inside the critical section: a few yields, now and
/// then a short sleep.
async fn dawdle(rt: Rt, mut rng: Rng) {
    for _ in 0..rng.below(3) {
        rt.yield_now().await;
    }
    if rng.chance(3) {
        rt.sleep(Duration::from_micros(100)).await;
    }
}

/// Moves `amount` from `from` to `to` (the same account: writes its balance
/// back unchanged) by read, yield, write. The caller holds both accounts.
async fn transfer(
    rt: Rt,
    bank: &Bank,
    [from, to]: [u32; 2],
    amount: i64,
    rng: Rng,
    entered: &AtomicBool,
) {
    let _inside = enter(bank, &[from, to], entered);
    let (seen_from, seen_to) = (bank.balance(from), bank.balance(to));
    dawdle(rt, rng).await;
    assert_eq!(
        bank.balance(from),
        seen_from,
        "account {from} changed under its holder"
    );
    assert_eq!(
        bank.balance(to),
        seen_to,
        "account {to} changed under its holder"
    );
    // No await from here on: a cancellation lands before all of it or after.
    if from == to {
        bank.balances[from as usize].store(seen_from, Ordering::SeqCst);
    } else {
        bank.balances[from as usize].store(seen_from - amount, Ordering::SeqCst);
        bank.balances[to as usize].store(seen_to + amount, Ordering::SeqCst);
        bank.expected[from as usize].fetch_sub(amount, Ordering::SeqCst);
        bank.expected[to as usize].fetch_add(amount, Ordering::SeqCst);
    }
}

/// Adds up a set of accounts, yields, and adds them up again: with every
/// account of the set locked, nothing may move in between.
async fn audit(rt: Rt, bank: &Bank, accounts: &[u32], rng: Rng, entered: &AtomicBool) {
    let inside = enter(bank, accounts, entered);
    let total = |accounts: &[u32]| -> i64 { accounts.iter().map(|&a| bank.balance(a)).sum() };
    let before = total(inside.keys());
    dawdle(rt, rng).await;
    assert_eq!(
        total(inside.keys()),
        before,
        "money moved within the locked set {:?}",
        inside.keys()
    );
}

/// The sorted, deduplicated accounts of `keys`.
fn distinct(keys: &[u32]) -> Vec<u32> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// How a task's operations ended.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    completed: usize,
    /// Cancelled before its critical section began: while queued, or
    /// holding only some of its keys, or granted all but not yet polled.
    cancelled_waiting: usize,
    /// Cancelled in the middle of its critical section.
    cancelled_inside: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.completed += other.completed;
        self.cancelled_waiting += other.cancelled_waiting;
        self.cancelled_inside += other.cancelled_inside;
    }
}

/// One operation: a transfer through one of the multi-key entry points, an
/// audit of a larger set, or a single-key holder of one account.
async fn operation(rt: Rt, bank: &Bank, mut rng: Rng, entered: &AtomicBool) {
    let from = account(&mut rng);
    // Sometimes the same account twice, which must lock it once.
    let to = if rng.chance(10) {
        from
    } else {
        account(&mut rng)
    };
    let amount = 1 + rng.below(50) as i64;
    let body_rng = Rng::new(rng.next());
    let locks = &bank.locks;
    match rng.below(12) {
        0..=3 => {
            let keys = if rng.chance(50) {
                [from, to]
            } else {
                [to, from]
            };
            let guard = locks.acquire_many_owned(keys).await;
            assert_eq!(distinct(guard.keys()), distinct(&keys));
            transfer(rt, bank, [from, to], amount, body_rng, entered).await;
        }
        4..=6 => {
            let keys = if rng.chance(50) {
                [from, to]
            } else {
                [to, from]
            };
            locks
                .with_locks(keys, move || {
                    transfer(rt, bank, [from, to], amount, body_rng, entered)
                })
                .await;
        }
        // Borrowing the manager, every account listed twice.
        7 => {
            let guard = locks.acquire_many([to, from, to, from]).await;
            assert_eq!(guard.keys().len(), distinct(&[from, to]).len());
            transfer(rt, bank, [from, to], amount, body_rng, entered).await;
        }
        // A larger set, in random order, possibly with duplicates.
        8 => {
            let size = 3 + rng.below(6);
            let accounts: Vec<u32> = (0..size).map(|_| account(&mut rng)).collect();
            let guard = locks.acquire_many_owned(accounts.clone()).await;
            assert_eq!(distinct(guard.keys()), distinct(&accounts));
            audit(rt, bank, &accounts, body_rng, entered).await;
        }
        // All or nothing, never waiting: refused whenever either is held.
        9 => {
            let keys = [to, from];
            let Some(guard) = bank.admit(locks.try_acquire_many_owned(keys)) else {
                return;
            };
            assert_eq!(distinct(guard.keys()), distinct(&keys));
            transfer(rt, bank, [from, to], amount, body_rng, entered).await;
        }
        // Queued in call order, unless an account has a waiter already.
        10 => {
            let keys = [from, to];
            let admitted = match locks.acquire_many(keys).enqueue_bounded(1) {
                Ok(request) => Some(request),
                Err(busy) => {
                    assert!(busy.waiters() >= 1, "{busy}");
                    None
                }
            };
            let Some(request) = bank.admit(admitted) else {
                return;
            };
            let _guard = request.await;
            transfer(rt, bank, [from, to], amount, body_rng, entered).await;
        }
        // A single-key holder in the same queues as the multi-key requests.
        _ => {
            let _guard = locks.acquire_owned(from).await;
            transfer(rt, bank, [from, from], 0, body_rng, entered).await;
        }
    }
}

/// Transfers from a plain thread, which locks with the blocking forms in
/// the same queues as the async tasks, and runs each transfer's body
/// (yields and short sleeps on `smol`'s timer) with `futures::executor`.
fn blocking_transfers(bank: &Bank, mut rng: Rng) -> Tally {
    let mut tally = Tally::default();
    for _ in 0..MIN_OPS + rng.below(MAX_OPS - MIN_OPS + 1) {
        let (from, to) = (account(&mut rng), account(&mut rng));
        let amount = 1 + rng.below(50) as i64;
        let entered = AtomicBool::new(false);
        let body = transfer(
            Rt::Futures,
            bank,
            [from, to],
            amount,
            Rng::new(rng.next()),
            &entered,
        );
        if rng.chance(50) {
            let guard = bank.locks.acquire_many_owned([to, from]).wait();
            assert_eq!(distinct(guard.keys()), distinct(&[from, to]));
            futures::executor::block_on(body);
        } else {
            let guard = bank.locks.acquire_many([from, to, from]).wait();
            assert_eq!(distinct(guard.keys()), distinct(&[from, to]));
            futures::executor::block_on(body);
        }
        tally.completed += 1;
    }
    tally
}

async fn one_task(rt: Rt, bank: Arc<Bank>, seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    if rng.chance(2) {
        // Awaited like any task, so that the round waits for the thread.
        let (done, thread_done) = futures::channel::oneshot::channel();
        let thread_rng = Rng::new(rng.next());
        std::thread::spawn(move || {
            let _ = done.send(blocking_transfers(&bank, thread_rng));
        });
        return thread_done.await.expect("a blocking thread panicked");
    }
    let mut tally = Tally::default();
    // Spread some arrivals out, so that hand-offs and timeouts interleave.
    if rng.chance(30) {
        rt.sleep(Duration::from_micros(rng.below(1000))).await;
    }
    for _ in 0..MIN_OPS + rng.below(MAX_OPS - MIN_OPS + 1) {
        let entered = AtomicBool::new(false);
        // Its own generator, so that the choices here (timeouts) do not depend
        // on how far the operation got.
        let op = operation(rt, &bank, Rng::new(rng.next()), &entered);
        // A third of the operations run under a short random timeout: often
        // cancelled while queued or partly granted, sometimes mid-body.
        let finished = if rng.chance(35) {
            let limit = Duration::from_micros(rng.below(2000));
            rt.timeout(limit, op).await.is_some()
        } else {
            op.await;
            true
        };
        match (finished, entered.load(Ordering::SeqCst)) {
            (true, _) => tally.completed += 1,
            (false, false) => tally.cancelled_waiting += 1,
            (false, true) => tally.cancelled_inside += 1,
        }
    }
    tally
}

/// The rounds on one bank, then the tally over them.
async fn transfers(run: Run) {
    let Run { rt, seed, .. } = run;
    let bank = Arc::new(Bank::new());
    let mut tally = Tally::default();
    run.rounds(
        &bank.locks,
        |task_seed| one_task(rt, bank.clone(), task_seed),
        |tallies| {
            for one in tallies {
                tally += one;
            }
            check_books(&bank, seed);
        },
    )
    .await;

    eprintln!(
        "{rt:?}: {} tasks, {tally:?} (seed {seed})",
        run.total_tasks()
    );
    assert!(tally.completed > 0, "{tally:?}");
    assert!(
        tally.cancelled_waiting > 0,
        "the run should cancel some acquires: {tally:?}"
    );
    let (refused, admitted) = (
        bank.refused.load(Ordering::SeqCst),
        bank.admitted.load(Ordering::SeqCst),
    );
    assert!(
        refused > 0 && admitted > 0,
        "try and bounded calls should be both refused and admitted: {refused}, {admitted}"
    );
}

/// Nobody inside, every account where its transfers put it, no money made
/// or lost, and nothing left in the manager.
fn check_books(bank: &Bank, seed: u64) {
    for account in 0..ACCOUNTS as u32 {
        assert_eq!(
            bank.balance(account),
            bank.expected[account as usize].load(Ordering::SeqCst),
            "lost update on account {account} (seed {seed})"
        );
    }
    let total: i64 = (0..ACCOUNTS as u32).map(|a| bank.balance(a)).sum();
    assert_eq!(
        total,
        OPENING * ACCOUNTS as i64,
        "money not conserved (seed {seed})"
    );
    bank.holders.assert_quiet(&bank.locks, seed);
}

runtime_tests!(|rt| SOAK.run(rt, transfers));
