//! Lost updates on async-std, and how the global lock manager prevents them.
//!
//! Four "story" files each hold a counter of the updates applied to them.
//! Two hundred async-std tasks each add one to a story's counter with
//! `async_std::fs`: read the file, yield, write it back. Without a lock,
//! tasks that read the same story before any of them writes it all write the
//! same number, and all but one of their updates are lost. With the story's
//! lock held from the read to the write, every update lands.
//!
//! This example needs no manager of its own: the free function
//! `lock_manager::with_lock` runs a body under a key of the process-wide
//! `lock_manager::global()` manager, keyed by `String`. The key is the
//! story's path, so any part of the program that writes a story through it
//! excludes every other writer of that file.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example async_std
//! ```

use std::io;
use std::path::{Path, PathBuf};

use async_std::{fs, task};

/// How many story files there are.
const STORIES: usize = 4;
/// How many updates are attempted in each run, spread evenly over the stories.
const UPDATES: usize = 200;

// `#[async_std::main]` needs async-std's `attributes` feature; `block_on`
// does the same without it.
fn main() -> io::Result<()> {
    task::block_on(main_async())
}

async fn main_async() -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("lock-manager-async_std-{}", std::process::id()));
    fs::create_dir_all(&dir).await?;

    // Run both, then clean up whatever happened, then report.
    let outcome = both_runs(&dir).await;
    fs::remove_dir_all(&dir).await?;
    let (unlocked, locked) = outcome?;

    println!("async-std: {UPDATES} updates to {STORIES} stories");
    report("without a lock:", unlocked);
    report("with a lock:", locked);
    assert_eq!(locked, UPDATES, "updates were lost under the lock");
    Ok(())
}

/// Runs the workload without the lock manager, then with it; returns how
/// many updates each run applied.
async fn both_runs(dir: &Path) -> io::Result<(usize, usize)> {
    let unlocked = run(dir, false).await?;
    let locked = run(dir, true).await?;
    // `with_lock` releases the key however its body ends, so nothing is held.
    assert_eq!(lock_manager::global().locked_count(), 0);
    Ok((unlocked, locked))
}

/// Writes fresh stories, spawns one task per update and waits for them all;
/// returns the sum of the final counters.
async fn run(dir: &Path, lock: bool) -> io::Result<usize> {
    for story in 0..STORIES {
        fs::write(story_path(dir, story), render(story, 0)).await?;
    }

    let mut tasks = Vec::with_capacity(UPDATES);
    for writer in 0..UPDATES {
        let story = writer % STORIES;
        let dir = dir.to_path_buf();
        tasks.push(task::spawn(async move {
            if lock {
                // Lock the story's path for the whole read-modify-write.
                // Tasks on other stories never wait for it.
                let key = story_path(&dir, story).to_string_lossy().into_owned();
                lock_manager::with_lock(key, || add_one(&dir, story, writer)).await
            } else {
                add_one(&dir, story, writer).await
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
    task::yield_now().await;

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
