//! Finding a stuck lock with `LockManager::snapshot` and `stats`.
//!
//! A few workers keep locking and releasing their stories on tokio, as
//! they should. One task takes the lock on `story-7` and then awaits a reply
//! that never comes (a bug that happens in real programs: a forgotten
//! sender, a hung request without a timeout). Everyone who needs `story-7`
//! queues behind it for good. After a moment the program prints what the
//! manager knows: the counters, and every held key with how long it has been
//! held, how many wait for it and for how long, the longest-held first,
//! which points straight at `story-7`.
//!
//! Run it with the clock on, to see the ages:
//!
//! ```text
//! cargo run --example stuck --features timing
//! ```
//!
//! Without `--features timing` it prints the same table without ages,
//! sorted by the number of waiters.

use std::sync::Arc;
use std::time::Duration;

use lock_manager::{HeldKey, LockManager};
use tokio::sync::oneshot;

#[tokio::main]
async fn main() {
    let locks = Arc::new(LockManager::new());

    // The culprit: holds story-7 while awaiting a reply nobody will send.
    let (_forgotten_sender, reply) = oneshot::channel::<()>();
    {
        let locks = Arc::clone(&locks);
        tokio::spawn(async move {
            let _guard = locks.acquire_owned("story-7".to_string()).await;
            let _ = reply.await;
        });
    }
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Its victims, queued one after another.
    for _ in 0..3 {
        let locks = Arc::clone(&locks);
        tokio::spawn(async move {
            let _guard = locks.acquire_owned("story-7".to_string()).await;
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Healthy traffic on other stories.
    let workers: Vec<_> = (0..4)
        .map(|n| {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                for round in 0..50 {
                    let story = format!("story-{}", (n + round) % 4);
                    let _guard = locks.acquire_owned(story).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }

    let stats = locks.stats();
    println!(
        "acquisitions: {}, contended: {}, hand-offs: {}, cancellations: {}",
        stats.acquisitions, stats.contended, stats.handoffs, stats.cancellations
    );
    println!(
        "{:<10} {:>10} {:>8} {:>14}",
        "key", "held for", "waiters", "oldest waiter"
    );
    let snapshot = locks.snapshot();
    for held in &snapshot {
        print_row(held);
    }
    if snapshot.first().is_some_and(|held| held.held_for.is_none()) {
        println!("(ages need the `timing` feature: cargo run --example stuck --features timing)");
    }

    assert_eq!(snapshot.len(), 1, "only story-7 is still held");
    assert_eq!(
        (snapshot[0].key.as_str(), snapshot[0].waiters),
        ("story-7", 3)
    );

    // The fix would be a timeout around the reply. Here, returning from
    // `main` shuts the runtime down, which drops the culprit and its victims.
}

fn print_row(held: &HeldKey<String>) {
    let age = |age: Option<Duration>| age.map_or("-".to_string(), |age| format!("{age:.0?}"));
    println!(
        "{:<10} {:>10} {:>8} {:>14}",
        held.key,
        age(held.held_for),
        held.waiters,
        age(held.oldest_waiter)
    );
}
