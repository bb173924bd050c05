//! Lost updates on smol, and how a `LockManager` prevents them.
//!
//! Four "story" files each hold a counter of the updates applied to them.
//! Two hundred smol tasks each add one to a story's counter with `smol::fs`:
//! read the file, yield, write it back. Without a lock, tasks that read the
//! same story before any of them writes it all write the same number, and all
//! but one of their updates are lost. With the story's lock held from the
//! read to the write, every update lands.
//!
//! This example shares an `Arc<LockManager<usize>>` keyed by story number
//! and locks with plain `acquire`, whose guard borrows the manager: the task
//! owns its clone of the `Arc`, so the borrow lives inside the task. It also
//! samples `queue_len` under the lock to show how many writers lined up
//! behind one story at worst.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example smol
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lock_manager::LockManager;
use smol::fs;

/// How many story files there are.
const STORIES: usize = 4;
/// How many updates are attempted in each run, spread evenly over the stories.
const UPDATES: usize = 200;

fn main() -> io::Result<()> {
    smol::block_on(async {
        let dir = std::env::temp_dir().join(format!("lock-manager-smol-{}", std::process::id()));
        fs::create_dir_all(&dir).await?;

        // Run both, then clean up whatever happened, then report.
        let outcome = both_runs(&dir).await;
        fs::remove_dir_all(&dir).await?;
        let (unlocked, locked, longest_queue) = outcome?;

        println!("smol: {UPDATES} updates to {STORIES} stories");
        report("without a lock:", unlocked);
        report("with a lock:", locked);
        println!("  longest queue on one story: {longest_queue} (holder included)");
        assert_eq!(locked, UPDATES, "updates were lost under the lock");
        Ok(())
    })
}

/// Runs the workload without the lock manager, then with it; returns how
/// many updates each run applied, and the longest queue seen under the lock.
async fn both_runs(dir: &Path) -> io::Result<(usize, usize, usize)> {
    let longest_queue = Arc::new(AtomicUsize::new(0));
    let unlocked = run(dir, None, &longest_queue).await?;

    let locks = Arc::new(LockManager::new());
    let locked = run(dir, Some(Arc::clone(&locks)), &longest_queue).await?;
    // Every guard is gone with its task, so no story is still held.
    assert_eq!(locks.locked_count(), 0);

    Ok((unlocked, locked, longest_queue.load(Ordering::Relaxed)))
}

/// Writes fresh stories, spawns one task per update and waits for them all;
/// returns the sum of the final counters.
async fn run(
    dir: &Path,
    locks: Option<Arc<LockManager<usize>>>,
    longest_queue: &Arc<AtomicUsize>,
) -> io::Result<usize> {
    for story in 0..STORIES {
        fs::write(story_path(dir, story), render(story, 0)).await?;
    }

    let mut tasks = Vec::with_capacity(UPDATES);
    for writer in 0..UPDATES {
        let story = writer % STORIES;
        let dir = dir.to_path_buf();
        let locks = locks.clone();
        let longest_queue = Arc::clone(longest_queue);
        // Dropping a smol `Task` cancels it, releasing at once a guard
        // moved into it (unlike a tokio `JoinHandle`): keep each task and
        // await it, as here, or `.detach()` it to let it run on its own.
        tasks.push(smol::spawn(async move {
            match &locks {
                Some(locks) => {
                    // Held from before the read until after the write; tasks
                    // on other stories never wait for it.
                    let guard = locks.acquire(story).await;
                    // The holder plus everyone queued behind it.
                    let queued = locks.queue_len(guard.key());
                    longest_queue.fetch_max(queued, Ordering::Relaxed);
                    let written = add_one(&dir, story, writer).await;
                    drop(guard);
                    written
                }
                None => add_one(&dir, story, writer).await,
            }
        }));
    }
    for task in tasks {
        task.await?;
    }

    let mut applied = 0;
    for story in 0..STORIES {
        applied += read_updates(&story_path(dir, story)).await?;
    }
    Ok(applied)
}

/// One read-modify-write of a story: the step that must not interleave with
/// another on the same story.
async fn add_one(dir: &Path, story: usize, writer: usize) -> io::Result<()> {
    let path = story_path(dir, story);
    let updates = read_updates(&path).await?;

    // Let other tasks run between the read and the write, as any real work
    // here (a network call, a slow edit) would.
    smol::future::yield_now().await;

    // Write a scratch file and rename it over the story, so that no reader
    // ever sees a half-written file. That makes each write atomic, but not
    // the read-modify-write: that is the lock's job.
    let scratch = dir.join(format!("story-{story}.{writer}.tmp"));
    fs::write(&scratch, render(story, updates + 1)).await?;
    fs::rename(&scratch, &path).await
}

fn story_path(dir: &Path, story: usize) -> PathBuf {
    dir.join(format!("story-{story}.txt"))
}

/// A story file: a title line and a counter line.
fn render(story: usize, updates: usize) -> String {
    format!("title: Story {story}\nupdates: {updates}\n")
}

/// Reads a story's counter.
async fn read_updates(path: &Path) -> io::Result<usize> {
    let text = fs::read_to_string(path).await?;
    text.lines()
        .find_map(|line| line.strip_prefix("updates: "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no `updates:` line"))
}

fn report(run: &str, applied: usize) {
    let lost = UPDATES - applied;
    println!("  {run:<16} {UPDATES} attempted, {applied:>3} applied, {lost:>3} lost");
}
