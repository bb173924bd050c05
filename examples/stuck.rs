//! Finding a stuck lock, and the code that holds it, with
//! `LockManager::snapshot` and `stats`.
//!
//! A few workers keep locking and releasing their stories on tokio, as
//! they should. One task takes the lock on `story-7` and then awaits a reply
//! that never comes (a bug that happens in real programs: a forgotten
//! sender, a hung request without a timeout). Everyone who needs `story-7`
//! queues behind it for good. After a moment the program prints what the
//! manager knows: the counters with the distributions of waits and holds,
//! and every held key with the line of code that holds it and for how
//! long, how many wait for it, and where and since when the oldest waits,
//! the longest-held first, which points straight at `story-7`:
//!
//! ```text
//! story-7: held by examples/stuck.rs:41:32 for 172.0ms, 3 waiting, the oldest from examples/stuck.rs:51:32 for 145.0ms
//! ```
//!
//! Run it with the `diagnostics` feature, to see the call sites and ages:
//!
//! ```text
//! cargo run --example stuck --features diagnostics
//! ```
//!
//! Without it, it prints the counts alone, sorted by the number of waiters.

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
    // The distributions, with `diagnostics`: upper bounds, within 2x.
    for (what, histogram) in [("waits", stats.waits), ("holds", stats.holds)] {
        if let (Some(p50), Some(p99), Some(max)) = (
            histogram.quantile(0.5),
            histogram.quantile(0.99),
            histogram.max(),
        ) {
            println!(
                "{what}: {} measured, p50 {p50:.0?}, p99 {p99:.0?}, max {max:.0?}",
                histogram.count()
            );
        }
    }
    let snapshot = locks.snapshot();
    for held in &snapshot {
        println!("{}", describe(held));
    }
    if snapshot.first().is_some_and(|held| held.held_by.is_none()) {
        println!("(ages and call sites need the `diagnostics` feature: cargo run --example stuck --features diagnostics)");
    }

    assert_eq!(snapshot.len(), 1, "only story-7 is still held");
    assert_eq!(
        (snapshot[0].key.as_str(), snapshot[0].waiters),
        ("story-7", 3)
    );
    // Asked about on its own, the key reads its shard alone.
    let story_7 = locks.held("story-7").expect("still held");
    assert_eq!(story_7.held_by, snapshot[0].held_by);

    // The fix would be a timeout around the reply. Here, returning from
    // `main` shuts the runtime down, which drops the culprit and its victims.
}

/// "story-7: held by src/...:42 for 3.1 s, 3 waiting, the oldest from
/// src/...:88 for 2.9 s", as far as the build measures.
fn describe(held: &HeldKey<String>) -> String {
    let mut line = format!("{}:", held.key);
    if let (Some(site), Some(age)) = (held.held_by, held.held_for) {
        line += &format!(" held by {site} for {age:.1?},");
    }
    line += &format!(" {} waiting", held.waiters);
    if let (Some(site), Some(age)) = (held.oldest_waiter_from, held.oldest_waiter) {
        line += &format!(", the oldest from {site} for {age:.1?}");
    }
    line
}
