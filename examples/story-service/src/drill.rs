//! The operator drill: one story stuck behind a lock held longer than the
//! wait limit, while clients time out on it and other stories take normal
//! traffic; then `GET /metrics` must show those waits and that story.
//!
//! The drill holds the story's lock itself, on the service's own
//! `LockManager` (it runs the service in its process), until every request
//! for the story has been answered: each of them waits the whole wait limit
//! and gets a 503. Nothing hangs on timing, so a slow machine only makes it
//! slower. Then it releases the story, scrapes `/metrics` over HTTP, parses
//! the exposition (every line must parse), and checks that:
//!
//! - the wait histogram, and the histogram of the waits abandoned, count at
//!   least as many waits of the wait limit or longer as the clients got
//!   503s after waiting (the held story's, and any other story's);
//! - the counters of cancellations and of requests refused at once cover
//!   the 503s of each kind;
//! - the hot keys list the held story first.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lock_manager::LockManager;
use prometheus_parse::{LineInfo, Sample, Scrape, Value};
use serde_json::json;
use tokio::task::JoinSet;

use crate::client::{get_text, send, Reply};
use crate::metrics;

/// The story held through the drill.
pub const STUCK: u64 = 7;
/// Clients sending to the held story at once, one request at a time each:
/// no more than `--max-waiters`, so that each of them queues and times out
/// rather than being refused at once (a refusal is no wait, and the hot
/// keys count waits).
pub const STUCK_CLIENTS: u64 = 6;
const STUCK_REQUESTS: u64 = 4;
/// Clients of the other stories, two per story (stories 1 to 4): some
/// contention, but never as much as the held story's (each of these
/// stories gets at most 2 x 10 requests, the held one 6 x 4).
const NORMAL_CLIENTS: u64 = 8;
const NORMAL_REQUESTS: u64 = 10;

/// What some clients saw, added up.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    /// Answered 200: appended or read.
    ok: u64,
    /// 503 after waiting the wait limit.
    timeouts: u64,
    /// 503 at once: too many waiters already.
    busy: u64,
    /// Wait timeouts answered sooner than the wait limit.
    early: u64,
    /// A transport error, an unexpected status.
    errors: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.timeouts += other.timeouts;
        self.busy += other.busy;
        self.early += other.early;
        self.errors += other.errors;
    }

    /// Counts one answer, which took `took` against a wait limit `wait`.
    fn count(&mut self, reply: io::Result<Reply>, took: Duration, wait: Duration, who: &str) {
        self.requests += 1;
        match reply {
            Ok(Reply { status: 200, .. }) => self.ok += 1,
            Ok(Reply {
                status: 503,
                retry_after: Some(_),
                body,
            }) => match body["refused"].as_str() {
                Some("wait-timeout") => {
                    self.timeouts += 1;
                    self.early += u64::from(took < wait);
                }
                Some("busy") => self.busy += 1,
                _ => self.errors += 1,
            },
            other => {
                eprintln!("{who}: unexpected reply {other:?}");
                self.errors += 1;
            }
        }
    }
}

/// The outcome of a drill, with the scrape that judges it.
pub struct Outcome {
    addr: SocketAddr,
    wait: Duration,
    held_for: Duration,
    stuck: Tally,
    normal: Tally,
    /// The status of an append to the held story once it was released.
    after_release: u16,
    /// `GET /metrics` parsed, or why it does not parse.
    scrape: Result<Figures, String>,
}

/// What the drill reads from the scrape.
#[derive(Debug)]
struct Figures {
    /// Lines in the exposition.
    lines: usize,
    diagnostics: f64,
    cancellations: f64,
    busy: f64,
    waits: Parsed,
    abandoned: Parsed,
    /// `lock_manager_hot_key_contended` in the exposition's order, with
    /// `lock_manager_hot_key_waited_seconds`: `(key, contended, waited)`.
    hot: Vec<(String, f64, f64)>,
}

/// A histogram as the exposition has it.
#[derive(Debug)]
struct Parsed {
    /// `(le, cumulative count)`, in order, the last `+Inf`.
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

impl Parsed {
    /// How many durations of at least `limit` it counts: all but those in
    /// the buckets whose (inclusive) upper bound is below `limit`.
    fn at_least(&self, limit: Duration) -> f64 {
        let limit = limit.as_secs_f64();
        let below = self
            .buckets
            .iter()
            .take_while(|(le, _)| *le < limit)
            .last()
            .map_or(0.0, |&(_, cumulative)| cumulative);
        self.count - below
    }
}

/// Runs the drill against the service at `addr`, which takes its story
/// locks in `locks` and waits at most `wait` for one.
pub async fn run(
    addr: SocketAddr,
    locks: &LockManager<u64>,
    wait: Duration,
) -> io::Result<Outcome> {
    // Nobody else asks for this story yet: taken at once.
    let held = locks.acquire(STUCK).await;
    let held_since = Instant::now();

    let mut stuck = JoinSet::new();
    for client in 0..STUCK_CLIENTS {
        stuck.spawn(stuck_client(addr, client, wait));
    }
    let mut normal = JoinSet::new();
    for client in 0..NORMAL_CLIENTS {
        normal.spawn(normal_client(addr, client, wait));
    }
    let mut stuck_tally = Tally::default();
    while let Some(client) = stuck.join_next().await {
        stuck_tally.add(client.map_err(io::Error::other)?);
    }
    // Every request for the story has been answered: release it. Nobody
    // waits for it now, so its contention reaches the hot keys.
    drop(held);
    let held_for = held_since.elapsed();
    let mut normal_tally = Tally::default();
    while let Some(client) = normal.join_next().await {
        normal_tally.add(client.map_err(io::Error::other)?);
    }

    let line = json!({ "line": "after the drill" });
    let after = send(
        addr,
        "POST",
        &format!("/stories/{STUCK}/lines"),
        Some(&line),
    )
    .await?;

    let scrape = get_text(addr, "/metrics").await?;
    let scrape = if scrape.status != 200 {
        Err(format!("GET /metrics answered {}", scrape.status))
    } else if scrape.content_type.as_deref() != Some(metrics::CONTENT_TYPE) {
        Err(format!(
            "GET /metrics answered Content-Type {:?}, not {:?}",
            scrape.content_type,
            metrics::CONTENT_TYPE
        ))
    } else {
        parse(&scrape.body).and_then(|parsed| Figures::read(&parsed, scrape.body.lines().count()))
    };
    Ok(Outcome {
        addr,
        wait,
        held_for,
        stuck: stuck_tally,
        normal: normal_tally,
        after_release: after.status,
        scrape,
    })
}

/// Appends to the held story, one request after another: each waits the
/// wait limit and gets a 503.
async fn stuck_client(addr: SocketAddr, client: u64, wait: Duration) -> Tally {
    let mut tally = Tally::default();
    let path = format!("/stories/{STUCK}/lines");
    for n in 0..STUCK_REQUESTS {
        let line = json!({ "line": format!("stuck client {client} line {n}") });
        let started = Instant::now();
        let reply = send(addr, "POST", &path, Some(&line)).await;
        let who = format!("held-story client {client}");
        tally.count(reply, started.elapsed(), wait, &who);
    }
    tally
}

/// Appends to its story, two clients per story, and reads it every fourth
/// request.
async fn normal_client(addr: SocketAddr, client: u64, wait: Duration) -> Tally {
    let mut tally = Tally::default();
    let story = 1 + client / 2;
    for n in 0..NORMAL_REQUESTS {
        let started = Instant::now();
        let reply = if n % 4 == 3 {
            send(addr, "GET", &format!("/stories/{story}"), None).await
        } else {
            let line = json!({ "line": format!("client {client} line {n}") });
            send(
                addr,
                "POST",
                &format!("/stories/{story}/lines"),
                Some(&line),
            )
            .await
        };
        tally.count(reply, started.elapsed(), wait, &format!("client {client}"));
    }
    tally
}

/// Parses an exposition in the Prometheus text format. `prometheus-parse`
/// skips the lines it does not understand; here each must be a comment, a
/// `# HELP` or `# TYPE` line, or a sample whose value is a number.
fn parse(text: &str) -> Result<Scrape, String> {
    for (number, line) in text.lines().enumerate() {
        let fault = match LineInfo::parse(line) {
            LineInfo::Sample { value, .. } if number_value(value).is_none() => {
                Some("its value is not a number")
            }
            LineInfo::Ignored if !line.trim_start().starts_with('#') => {
                Some("it is neither a sample nor a comment")
            }
            _ => None,
        };
        if let Some(fault) = fault {
            return Err(format!(
                "line {} of /metrics: {fault}: {line:?}",
                number + 1
            ));
        }
    }
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .map_err(|error| format!("/metrics does not parse: {error}"))
}

/// A sample's value: a float, `+Inf`, `-Inf` or `NaN`.
fn number_value(text: &str) -> Option<f64> {
    text.to_ascii_lowercase().parse().ok()
}

impl Figures {
    fn read(scrape: &Scrape, lines: usize) -> Result<Self, String> {
        Ok(Figures {
            lines,
            diagnostics: single(scrape, "lock_manager_diagnostics", |value| match value {
                Value::Gauge(value) => Some(*value),
                _ => None,
            })?,
            cancellations: counter(scrape, "lock_manager_cancellations_total")?,
            busy: counter(scrape, "lock_manager_busy_total")?,
            waits: histogram(scrape, "lock_manager_wait_seconds")?,
            abandoned: histogram(scrape, "lock_manager_abandoned_wait_seconds")?,
            hot: hot_keys(scrape)?,
        })
    }
}

/// The hot keys, as `lock_manager_hot_key_contended` lists them.
fn hot_keys(scrape: &Scrape) -> Result<Vec<(String, f64, f64)>, String> {
    let gauges = |name: &'static str| {
        scrape
            .samples
            .iter()
            .filter(move |sample| sample.metric == name)
            .map(
                move |sample| match (&sample.value, sample.labels.get("key")) {
                    (Value::Gauge(value), Some(key)) => Ok((key.to_owned(), *value)),
                    _ => Err(format!("{name} is not a gauge labelled by key: {sample:?}")),
                },
            )
    };
    let waited = gauges("lock_manager_hot_key_waited_seconds").collect::<Result<Vec<_>, _>>()?;
    gauges("lock_manager_hot_key_contended")
        .map(|sample| {
            let (key, contended) = sample?;
            let (_, waited) = waited
                .iter()
                .find(|(other, _)| *other == key)
                .ok_or_else(|| {
                    format!("hot key {key} has no lock_manager_hot_key_waited_seconds")
                })?;
            Ok((key, contended, *waited))
        })
        .collect()
}

/// The one sample named `name`, read by `value`.
fn single(
    scrape: &Scrape,
    name: &str,
    value: impl Fn(&Value) -> Option<f64>,
) -> Result<f64, String> {
    let mut found = scrape.samples.iter().filter(|sample| sample.metric == name);
    match (found.next(), found.next()) {
        (Some(sample), None) => {
            value(&sample.value).ok_or_else(|| format!("{name} has the wrong type: {sample:?}"))
        }
        (None, _) => Err(format!("/metrics has no {name}")),
        (Some(_), Some(_)) => Err(format!("/metrics has {name} more than once")),
    }
}

fn counter(scrape: &Scrape, name: &str) -> Result<f64, String> {
    single(scrape, name, |value| match value {
        Value::Counter(value) => Some(*value),
        _ => None,
    })
}

/// The histogram `name`: its buckets, which must be in order with the
/// last `+Inf`, the count of which is its `_count`.
fn histogram(scrape: &Scrape, name: &str) -> Result<Parsed, String> {
    let buckets = scrape
        .samples
        .iter()
        .find_map(|sample: &Sample| match &sample.value {
            Value::Histogram(buckets) if sample.metric == name => Some(buckets),
            _ => None,
        })
        .ok_or_else(|| format!("/metrics has no histogram {name}"))?;
    // `prometheus-parse` types only the `_bucket` lines of a histogram.
    let untyped = |value: &Value| match value {
        Value::Untyped(value) => Some(*value),
        _ => None,
    };
    let parsed = Parsed {
        buckets: buckets
            .iter()
            .map(|bucket| (bucket.less_than, bucket.count))
            .collect(),
        count: single(scrape, &format!("{name}_count"), untyped)?,
        sum: single(scrape, &format!("{name}_sum"), untyped)?,
    };
    let in_order = parsed
        .buckets
        .windows(2)
        .all(|pair| pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1);
    match parsed.buckets.last() {
        _ if !in_order => Err(format!("{name}: buckets out of order")),
        Some(&(le, cumulative)) if le == f64::INFINITY && cumulative == parsed.count => Ok(parsed),
        _ => Err(format!(
            "{name}: the +Inf bucket is missing or differs from _count"
        )),
    }
}

impl Outcome {
    /// Prints the figures.
    pub fn print(&self) {
        let (stuck, normal) = (&self.stuck, &self.normal);
        println!(
            "story-service drill on {}: story {STUCK} held {:.2} s, wait limit {} ms",
            self.addr,
            self.held_for.as_secs_f64(),
            self.wait.as_millis(),
        );
        println!(
            "  story {STUCK}: {} requests from {STUCK_CLIENTS} clients: {} got 503 after waiting, \
             {} at once (busy), {} succeeded",
            stuck.requests, stuck.timeouts, stuck.busy, stuck.ok
        );
        println!(
            "  stories 1 to {}: {} requests: {} answered, {} got 503 after waiting, {} at once",
            NORMAL_CLIENTS / 2,
            normal.requests,
            normal.ok,
            normal.timeouts,
            normal.busy
        );
        match &self.scrape {
            Ok(figures) => {
                let limit = self.wait;
                println!(
                    "  /metrics: {} lines parsed; waits {} ({} of {} ms or more, {:.3} s in all), \
                     abandoned {} ({} of {} ms or more); cancellations {}, busy {}",
                    figures.lines,
                    figures.waits.count,
                    figures.waits.at_least(limit),
                    limit.as_millis(),
                    figures.waits.sum,
                    figures.abandoned.count,
                    figures.abandoned.at_least(limit),
                    limit.as_millis(),
                    figures.cancellations,
                    figures.busy,
                );
            }
            Err(error) => println!("  /metrics: {error}"),
        }
        if let Ok(figures) = &self.scrape {
            let hot: Vec<String> = figures
                .hot
                .iter()
                .take(3)
                .map(|(key, contended, waited)| {
                    format!("story {key} ({contended} contended, waited {waited:.3} s)")
                })
                .collect();
            println!("  hot keys: {}", hot.join(", "));
        }
    }

    /// What went wrong, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (stuck, normal) = (&self.stuck, &self.normal);
        if stuck.errors + normal.errors > 0 {
            problems.push(format!("{} requests failed", stuck.errors + normal.errors));
        }
        if stuck.ok > 0 {
            problems.push(format!(
                "{} appends to story {STUCK} succeeded while the drill held it",
                stuck.ok
            ));
        }
        if stuck.timeouts == 0 {
            problems.push(format!("no request for story {STUCK} waited and timed out"));
        }
        if stuck.early + normal.early > 0 {
            problems.push(format!(
                "{} wait timeouts came sooner than the wait limit",
                stuck.early + normal.early
            ));
        }
        if self.after_release != 200 {
            problems.push(format!(
                "an append to story {STUCK} once released answered {}",
                self.after_release
            ));
        }
        let figures = match &self.scrape {
            Ok(figures) => figures,
            Err(error) => {
                problems.push(error.clone());
                return problems;
            }
        };
        if figures.diagnostics != 1.0 {
            problems.push("lock_manager_diagnostics is not 1".into());
        }
        // Every 503 after a wait is a wait of the wait limit or more that
        // ended without the lock, whichever story it was for.
        let timeouts = (stuck.timeouts + normal.timeouts) as f64;
        for (name, histogram) in [
            ("lock_manager_wait_seconds", &figures.waits),
            ("lock_manager_abandoned_wait_seconds", &figures.abandoned),
        ] {
            let long = histogram.at_least(self.wait);
            if long < timeouts {
                problems.push(format!(
                    "{name} counts {long} waits of {} ms or more (of {} in all) for {timeouts} \
                     503s after waiting",
                    self.wait.as_millis(),
                    histogram.count
                ));
            }
        }
        if figures.cancellations < timeouts {
            problems.push(format!(
                "lock_manager_cancellations_total is {} for {timeouts} 503s after waiting",
                figures.cancellations
            ));
        }
        let busy = (stuck.busy + normal.busy) as f64;
        if figures.busy < busy {
            problems.push(format!(
                "lock_manager_busy_total is {} for {busy} 503s at once",
                figures.busy
            ));
        }
        let stuck_key = STUCK.to_string();
        match figures.hot.first() {
            None => problems.push("/metrics lists no hot keys".into()),
            Some((key, _, _)) if *key != stuck_key => problems.push(format!(
                "the hot keys list story {key} first, not story {STUCK}"
            )),
            // Each request that timed out on the story queued for it; the
            // manager's sketch may overcount, never undercount.
            Some((_, contended, _)) if *contended < stuck.timeouts as f64 => {
                problems.push(format!(
                    "story {STUCK} counts {contended} contended requests for {} 503s after \
                     waiting",
                    stuck.timeouts
                ))
            }
            Some(_) => {}
        }
        if figures.hot.windows(2).any(|pair| pair[0].1 < pair[1].1) {
            problems.push("the hot keys are not listed the most contended first".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const EXPOSITION: &str = "\
# HELP lock_manager_cancellations_total Waiters dropped.
# TYPE lock_manager_cancellations_total counter
lock_manager_cancellations_total 3
# HELP lock_manager_busy_total Refused at once.
# TYPE lock_manager_busy_total counter
lock_manager_busy_total 1
# HELP lock_manager_diagnostics Measured.
# TYPE lock_manager_diagnostics gauge
lock_manager_diagnostics 1
# HELP lock_manager_wait_seconds Waits.
# TYPE lock_manager_wait_seconds histogram
lock_manager_wait_seconds_bucket{le=\"0.01\"} 2
lock_manager_wait_seconds_bucket{le=\"0.02\"} 4
lock_manager_wait_seconds_bucket{le=\"+Inf\"} 7
lock_manager_wait_seconds_sum 0.5
lock_manager_wait_seconds_count 7
# HELP lock_manager_abandoned_wait_seconds Waits given up.
# TYPE lock_manager_abandoned_wait_seconds histogram
lock_manager_abandoned_wait_seconds_bucket{le=\"0.01\"} 0
lock_manager_abandoned_wait_seconds_bucket{le=\"+Inf\"} 3
lock_manager_abandoned_wait_seconds_sum 0.3
lock_manager_abandoned_wait_seconds_count 3
# HELP lock_manager_hot_key_contended Contended.
# TYPE lock_manager_hot_key_contended gauge
lock_manager_hot_key_contended{key=\"7\"} 24
lock_manager_hot_key_contended{key=\"2\"} 5
# HELP lock_manager_hot_key_waited_seconds Waited.
# TYPE lock_manager_hot_key_waited_seconds gauge
lock_manager_hot_key_waited_seconds{key=\"7\"} 0.5
lock_manager_hot_key_waited_seconds{key=\"2\"} 0.01
";

    fn figures(text: &str) -> Result<Figures, String> {
        parse(text).and_then(|scrape| Figures::read(&scrape, text.lines().count()))
    }

    #[test]
    fn reads_the_figures() {
        let figures = figures(EXPOSITION).unwrap();
        assert_eq!((figures.cancellations, figures.busy), (3.0, 1.0));
        assert_eq!(figures.diagnostics, 1.0);
        assert_eq!((figures.waits.count, figures.waits.sum), (7.0, 0.5));
        assert_eq!(figures.waits.buckets.len(), 3);
        // Inclusive bounds: a wait of exactly 20 ms is in the bucket of
        // 0.02, so only the buckets below it are left out.
        assert_eq!(figures.waits.at_least(Duration::from_millis(20)), 5.0);
        assert_eq!(figures.waits.at_least(Duration::from_millis(21)), 3.0);
        assert_eq!(figures.waits.at_least(Duration::ZERO), 7.0);
        assert_eq!(figures.abandoned.at_least(Duration::from_millis(20)), 3.0);
        let hot = [("7".to_owned(), 24.0, 0.5), ("2".to_owned(), 5.0, 0.01)];
        assert_eq!(figures.hot, hot);
    }

    #[test]
    fn a_line_that_does_not_parse_fails() {
        let broken = EXPOSITION.replace("lock_manager_busy_total 1", "lock_manager_busy_total{ 1");
        assert!(figures(&broken).unwrap_err().contains("line 6"));
        let broken = EXPOSITION.replace("lock_manager_busy_total 1", "lock_manager_busy_total one");
        assert!(figures(&broken).unwrap_err().contains("not a number"));
    }

    #[test]
    fn a_histogram_must_be_whole_and_in_order() {
        let no_inf = EXPOSITION.replace("lock_manager_wait_seconds_bucket{le=\"+Inf\"} 7\n", "");
        assert!(figures(&no_inf).unwrap_err().contains("+Inf"));
        let short = EXPOSITION.replace(
            "lock_manager_wait_seconds_count 7",
            "lock_manager_wait_seconds_count 8",
        );
        assert!(figures(&short).unwrap_err().contains("+Inf"));
        let shuffled = EXPOSITION.replace("le=\"0.02\"} 4", "le=\"0.02\"} 1");
        assert!(figures(&shuffled).unwrap_err().contains("out of order"));
        let missing = EXPOSITION.replace("lock_manager_wait_seconds_sum 0.5\n", "");
        assert!(figures(&missing)
            .unwrap_err()
            .contains("no lock_manager_wait_seconds_sum"));
    }

    /// A drill whose clients got `timeouts` 503s after waiting for story 7,
    /// judged by `EXPOSITION` edited by `edit`.
    fn problems(timeouts: u64, edit: impl Fn(String) -> String) -> Vec<String> {
        let outcome = Outcome {
            addr: ([127, 0, 0, 1], 1).into(),
            wait: Duration::from_millis(20),
            held_for: Duration::from_millis(100),
            stuck: Tally {
                requests: timeouts,
                timeouts,
                ..Tally::default()
            },
            normal: Tally::default(),
            after_release: 200,
            scrape: figures(&edit(EXPOSITION.to_owned())),
        };
        outcome.problems()
    }

    #[test]
    fn the_drill_judges_the_scrape() {
        // Five waits of 20 ms or more, three of them abandoned, three
        // cancellations; story 7 first.
        assert_eq!(problems(3, |text| text), Vec::<String>::new());
        let six = problems(6, |text| text);
        assert_eq!(six.len(), 3, "{six:?}");
        assert!(six[0].starts_with("lock_manager_wait_seconds counts 5 waits"));
        assert!(six[1].starts_with("lock_manager_abandoned_wait_seconds counts 3"));
        assert!(six[2].starts_with("lock_manager_cancellations_total is 3"));
        let swapped = problems(3, |text| text.replace("key=\"7\"", "key=\"x\""));
        assert_eq!(swapped, ["the hot keys list story x first, not story 7"]);
        let unordered = problems(3, |text| text.replace("} 24", "} 4"));
        assert_eq!(
            unordered,
            ["the hot keys are not listed the most contended first"]
        );
        let broken = problems(3, |text| text.replace(" 24", " lots"));
        assert_eq!(broken.len(), 1);
        assert!(broken[0].contains("not a number"), "{broken:?}");
    }

    #[test]
    fn hot_keys_need_their_waits() {
        let gone = EXPOSITION.replace("lock_manager_hot_key_waited_seconds{key=\"2\"} 0.01\n", "");
        assert!(figures(&gone).unwrap_err().contains("hot key 2"));
    }

    #[test]
    fn a_counter_must_be_a_counter() {
        let untyped = EXPOSITION.replace("# TYPE lock_manager_busy_total counter\n", "");
        assert!(figures(&untyped).unwrap_err().contains("wrong type"));
        let gone = EXPOSITION.replace("lock_manager_cancellations_total 3\n", "");
        assert!(figures(&gone)
            .unwrap_err()
            .contains("no lock_manager_cancellations_total"));
    }

    /// The service's own exposition, encoded by prometheus-client, reads
    /// back whole.
    #[tokio::test]
    async fn the_service_exposition_parses() {
        let locks = Arc::new(LockManager::new());
        drop(locks.try_acquire(1));
        // Story 9 held, and one request for it given up: its only waiter.
        let held = locks.try_acquire(9).unwrap();
        let waiter = locks.acquire(9);
        let timed_out = tokio::time::timeout(Duration::from_millis(1), waiter).await;
        assert!(timed_out.is_err());
        drop(timed_out);
        drop(held);
        let text = metrics::encode(&metrics::registry(Arc::clone(&locks))).unwrap();
        let scrape = parse(&text).unwrap();
        let acquisitions = counter(&scrape, "lock_manager_acquisitions_total").unwrap();
        assert_eq!(acquisitions, 2.0);
        if lock_manager::DIAGNOSTICS {
            let figures = Figures::read(&scrape, 0).unwrap();
            assert_eq!(figures.waits.buckets.len(), 106);
            assert_eq!(figures.hot, [("9".to_owned(), 1.0, figures.hot[0].2)]);
            let holds = histogram(&scrape, "lock_manager_hold_seconds").unwrap();
            assert_eq!(holds.count, 2.0);
            let abandoned = histogram(&scrape, "lock_manager_abandoned_wait_seconds").unwrap();
            assert_eq!(abandoned.at_least(Duration::from_millis(1)), 1.0);
        } else {
            assert!(histogram(&scrape, "lock_manager_wait_seconds").is_err());
        }
    }
}
