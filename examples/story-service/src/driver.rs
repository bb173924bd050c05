//! The load driver: many clients at once append lines to a few hot stories,
//! move pages between stories and read them, over HTTP on 127.0.0.1. Then
//! it reads every story back and checks that each acknowledged append is
//! stored exactly once: a move relocates a line, it never copies or drops
//! one. A 503 is a refusal, not a failure: the line was not written, and a
//! real client would send it again after `Retry-After`.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::client::{send, Reply};

/// Stories 1 to `STORIES` are used; the first `HOT` get three appends in
/// four, so that requests queue for them.
const STORIES: u64 = 8;
const HOT: u64 = 3;

/// How hard to drive the service.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Clients sending at once, each waiting for its answer before its next
    /// request.
    pub clients: usize,
    /// Requests each client sends before it stops.
    pub requests: usize,
}

/// What the clients saw, added up.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    appended: u64,
    moved: u64,
    nothing_to_move: u64,
    reads: u64,
    refused_busy: u64,
    refused_timeout: u64,
    /// Anything else: a transport error, an unexpected status, a 503
    /// without `Retry-After`.
    errors: u64,
    /// The lines whose append was acknowledged (200).
    acked: Vec<String>,
}

/// The outcome of one drive.
#[derive(Debug)]
pub struct Summary {
    /// Whether the service locks its stories (from `GET /locks`).
    pub lock: bool,
    clients: usize,
    elapsed: Duration,
    tally: Tally,
    /// Acknowledged lines found in no story.
    lost: u64,
    /// Acknowledged lines found more than once (counted once each).
    duplicated: u64,
    /// Stored lines that were never acknowledged.
    unacked: u64,
    /// `GET /locks` once the load is over.
    locks: Value,
}

/// Drives the service at `addr` with `config`, then checks what it stored.
pub async fn drive(addr: SocketAddr, config: Config) -> io::Result<Summary> {
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for client in 0..config.clients {
        clients.spawn(run_client(addr, client, config.requests));
    }
    let mut tally = Tally::default();
    while let Some(client) = clients.join_next().await {
        tally.add(client.map_err(io::Error::other)?);
    }
    let elapsed = started.elapsed();

    // How many times each line is stored, over every story.
    let mut stored: HashMap<String, u64> = HashMap::new();
    for story in 1..=STORIES {
        let reply = get(addr, &format!("/stories/{story}")).await?;
        for line in reply["lines"].as_array().into_iter().flatten() {
            *stored
                .entry(line.as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
    }
    let mut lost = 0;
    let mut duplicated = 0;
    for line in &tally.acked {
        match stored.remove(line) {
            None => lost += 1,
            Some(1) => {}
            Some(_) => duplicated += 1,
        }
    }
    let locks = get(addr, "/locks").await?;
    Ok(Summary {
        lock: locks["lock"] == true,
        clients: config.clients,
        elapsed,
        lost,
        duplicated,
        unacked: stored.len() as u64,
        locks,
        tally,
    })
}

/// One client: `requests` requests, one at a time, each drawn at random.
async fn run_client(addr: SocketAddr, client: usize, requests: usize) -> Tally {
    let mut random = Random::new(client as u64);
    let mut tally = Tally::default();
    for n in 0..requests {
        let roll = random.below(100);
        let reply = if roll < 70 {
            // Three appends in four go to the hot stories.
            let story = if random.below(4) == 0 {
                1 + HOT + random.below(STORIES - HOT)
            } else {
                1 + random.below(HOT)
            };
            // Unique, so that the check can find each line.
            let line = format!("client {client} line {n}");
            let path = format!("/stories/{story}/lines");
            let reply = send(addr, "POST", &path, Some(&json!({ "line": line }))).await;
            if matches!(reply, Ok(Reply { status: 200, .. })) {
                tally.appended += 1;
                tally.acked.push(line);
            }
            reply
        } else if roll < 85 {
            let from = random.below(STORIES);
            let to = (from + 1 + random.below(STORIES - 1)) % STORIES;
            let page = json!({ "from": from + 1, "to": to + 1 });
            let reply = send(addr, "POST", "/moves", Some(&page)).await;
            match reply {
                Ok(Reply { status: 200, .. }) => tally.moved += 1,
                Ok(Reply { status: 409, .. }) => tally.nothing_to_move += 1,
                _ => {}
            }
            reply
        } else {
            let path = format!("/stories/{}", 1 + random.below(STORIES));
            let reply = send(addr, "GET", &path, None).await;
            if matches!(reply, Ok(Reply { status: 200, .. })) {
                tally.reads += 1;
            }
            reply
        };
        tally.requests += 1;
        match reply {
            Ok(Reply {
                status: 200 | 409, ..
            }) => {}
            Ok(Reply {
                status: 503,
                retry_after: Some(_),
                body,
            }) => {
                match body["refused"].as_str() {
                    Some("busy") => tally.refused_busy += 1,
                    Some("wait-timeout") => tally.refused_timeout += 1,
                    _ => tally.errors += 1,
                }
                // A real client waits `Retry-After` seconds; this one pauses
                // a moment, to keep the run short.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => {
                eprintln!("client {client}: unexpected reply {other:?}");
                tally.errors += 1;
            }
        }
    }
    tally
}

/// `GET path`, which must answer 200.
async fn get(addr: SocketAddr, path: &str) -> io::Result<Value> {
    match send(addr, "GET", path, None).await? {
        Reply {
            status: 200, body, ..
        } => Ok(body),
        other => Err(io::Error::other(format!("GET {path}: {other:?}"))),
    }
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.appended += other.appended;
        self.moved += other.moved;
        self.nothing_to_move += other.nothing_to_move;
        self.reads += other.reads;
        self.refused_busy += other.refused_busy;
        self.refused_timeout += other.refused_timeout;
        self.errors += other.errors;
        self.acked.extend(other.acked);
    }
}

impl Summary {
    /// Prints the figures.
    pub fn print(&self) {
        let t = &self.tally;
        let stats = &self.locks["stats"];
        println!(
            "lock {}: {} requests from {} clients in {:.2} s",
            if self.lock { "on" } else { "off (--no-lock)" },
            t.requests,
            self.clients,
            self.elapsed.as_secs_f64(),
        );
        println!(
            "  acknowledged appends {}, moves {} (nothing to move {}), reads {}",
            t.appended, t.moved, t.nothing_to_move, t.reads
        );
        println!(
            "  refused (503) {}: {} wait timeouts, {} bounded refusals (busy)",
            t.refused_timeout + t.refused_busy,
            t.refused_timeout,
            t.refused_busy
        );
        println!(
            "  lost {}, duplicated {}, stored but never acknowledged {}, errors {}",
            self.lost, self.duplicated, self.unacked, t.errors
        );
        println!(
            "  locks: {} acquisitions, {} releases, {} contended, {} hand-offs, \
             {} cancellations; {} held now",
            stats["acquisitions"],
            stats["releases"],
            stats["contended"],
            stats["handoffs"],
            stats["cancellations"],
            self.held_now(),
        );
    }

    /// What went wrong, if anything. Without the lock, lost and duplicated
    /// lines are the expected outcome, not a failure.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.tally.errors > 0 {
            problems.push(format!("{} requests failed", self.tally.errors));
        }
        if self.lock {
            if self.lost + self.duplicated + self.unacked > 0 {
                problems.push("the stored lines differ from the acknowledged ones".into());
            }
            if self.tally.refused_busy + self.tally.refused_timeout == 0 {
                problems.push("no request was refused: the 503 path went untested".into());
            }
            if self.held_now() > 0 {
                problems.push("stories are still locked after the load".into());
            }
        }
        problems
    }

    fn held_now(&self) -> usize {
        self.locks["held"].as_array().map_or(0, Vec::len)
    }
}

/// A xorshift generator: random enough to mix the requests, the same run
/// after run, and no dependency.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Self((seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
