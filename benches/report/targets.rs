//! The targets the suite judges lock-manager by, each from figures of one
//! run: a scenario's from its [`Goal`](crate::names::Goal), the rest here.

use crate::format::{ratio, thousands, time};
use crate::names::{Scenario, CONTENDED, FLOOR, FUTURES_LOCK_RECIPE, KEY_ONLY, OURS};
use crate::names::{REF_TOKIO_MUTEX, SCENARIOS};
use crate::results::{cell, fifo_rivals, maybe_number, number, rivals, Results, Row};

/// One row of the targets table: what is asked, what lock-manager
/// measured, and whether it was met (`None`: nothing asked, or not to be
/// judged on this machine, as the measure says).
pub type Target = (String, String, Option<bool>);

/// The mutex the hot-key targets compare with.
const MUTEX: &str = "one `tokio::sync::Mutex<()>` (a reference)";

/// Every target with the figures it needs in `results`: the scenarios'
/// in their order, then memory, queue and cores.
pub fn targets(results: &Results) -> Vec<Target> {
    let mut table = Vec::new();
    for scenario in SCENARIOS {
        if let Some(ours) = results.time(scenario.id, OURS.name) {
            table.extend(scenario_targets(results, scenario, ours));
        }
        if scenario.id == CONTENDED.id {
            table.extend(hot_key(results));
        }
    }
    table.extend(memory(results));
    table.extend(queue(results));
    table.extend(many_cores(results));
    table
}

/// The ratio of two times, then both: "1.23x (a vs b)".
fn versus(a: f64, b: f64) -> String {
    format!("{} ({} vs {})", ratio(a / b), time(a), time(b))
}

/// A target on the ratio `a / b`: met if at most `bar`.
fn at_most(name: String, (a, b): (f64, f64), bar: f64) -> Target {
    (name, versus(a, b), Some(a / b <= bar))
}

/// The bars of a scenario's goal; where it sets none, its speed-up over
/// the fastest peer, measured only.
fn scenario_targets(results: &Results, scenario: &Scenario, ours: f64) -> Vec<Target> {
    let (id, title, goal) = (scenario.id, scenario.title, &scenario.goal);
    let fifo = results.fastest(id, fifo_rivals());
    let fastest = [(goal.faster, results.fastest(id, rivals()), "peer")];
    let mut table = Vec::new();
    for (bar, best, what) in fastest
        .into_iter()
        .chain([(goal.faster_fifo, fifo, "FIFO peer")])
    {
        if let (Some(bar), Some((best, name))) = (bar, best) {
            let name = format!("{title}: at least {bar}x faster than the fastest {what} ({name})");
            table.push((name, versus(best, ours), Some(best / ours >= bar)));
        }
    }
    if let (Some(bar), Some(floor)) = (goal.floor, results.time(id, FLOOR.name)) {
        let name = format!("{title}: at most {bar}x the floor's time");
        table.push(at_most(name, (ours, floor), bar));
    }
    let asked = goal.faster.or(goal.faster_fifo).or(goal.floor).is_some();
    if let (false, Some((best, name))) = (asked, results.fastest(id, rivals())) {
        let about = scenario.about;
        let name = format!("{title} ({about}): speed-up over the fastest peer ({name})");
        table.push((name, versus(best, ours), None));
    }
    table
}

/// Criterion's contended group beside the tokio mutex: lock-manager's
/// time and the mutex's.
pub fn contended_vs_tokio(results: &Results) -> Option<(f64, f64)> {
    let ours = results.time(CONTENDED.id, OURS.name)?;
    Some((ours, results.time(CONTENDED.id, REF_TOKIO_MUTEX.name)?))
}

/// The rows of lock-manager and the tokio mutex in a fairness section.
fn with_tokio(section: &[Row]) -> Option<(&Row, &Row)> {
    let by_name = |name| section.iter().find(|r| cell(r, "name") == name);
    Some((by_name(OURS.name)?, by_name(REF_TOKIO_MUTEX.name)?))
}

/// One hot key against the barging `futures::lock` recipe and one tokio
/// mutex. Against the mutex, judged on the fairness bench, which runs both
/// in alternating rounds; without it, on criterion's contended group,
/// which runs one after the other.
fn hot_key(results: &Results) -> Vec<Target> {
    let mut table = Vec::new();
    let ours = results.time(CONTENDED.id, OURS.name);
    let futures = results.time(CONTENDED.id, FUTURES_LOCK_RECIPE.name);
    if let (Some(ours), Some(futures)) = (ours, futures) {
        let name = "3. contended: at most 1.5x the time of the futures::lock recipe";
        table.push(at_most(name.into(), (ours, futures), 1.5));
    }
    let (tight, fairness) = (
        results.table("fairness-tight.csv"),
        results.table("fairness.csv"),
    );
    let sections = [
        ("3. contended", tight),
        ("fairness, an .await inside", fairness),
    ];
    for (section, (ours, tokio)) in sections
        .iter()
        .filter_map(|(s, t)| Some((s, with_tokio(t)?)))
    {
        let (vs, rounds) = (number(ours, "vs_ref_tokio"), cell(ours, "rounds"));
        let [ns, tokio_ns] = [ours, tokio].map(|row| time(number(row, "ns_per_op")));
        let vs = ratio(vs);
        let text = format!("{vs}, median of {rounds} interleaved rounds ({ns} vs {tokio_ns})");
        let name = format!("{section}: at most 1.05x the time of {MUTEX}");
        table.push((name, text, Some(number(ours, "vs_ref_tokio") <= 1.05)));
    }
    if let (None, Some(times)) = (with_tokio(tight), contended_vs_tokio(results)) {
        let name = format!("3. contended: at most 1.05x the time of {MUTEX}, criterion's");
        table.push(at_most(name, times, 1.05));
    }
    if let Some((ours, tokio)) = with_tokio(fairness) {
        let max = (number(ours, "wait_max_ns"), number(tokio, "wait_max_ns"));
        let name = format!("fairness: a worst wait no longer than that of {MUTEX}");
        table.push(at_most(name, max, 1.0));
    }
    table
}

/// Allocations per acquire and release on a new key, memory left after a
/// burst, and bytes per held key and per queued waiter at every size.
fn memory(results: &Results) -> Vec<Target> {
    let ours = |metric: &str| results.memory(OURS.name, metric);
    let mut table = Vec::new();
    if let Some(allocs) = ours("allocs_per_cycle_u64") {
        let name = "allocations per cycle, u64 keys: none".into();
        table.push((name, format!("{allocs:.2}"), Some(allocs == 0.0)));
    }
    if let Some(all) = ours("allocs_per_cycle_string") {
        let key = results
            .memory(KEY_ONLY, "allocs_per_cycle_string")
            .unwrap_or(0.0);
        let text = format!("{:.2} ({all:.2} less {key:.2} building the key)", all - key);
        let name = "allocations per cycle, String keys: at most one (the lock's own)".into();
        table.push((name, text, Some(all - key <= 1.0)));
    }
    if let Some(left) = ours("burst_left_bytes") {
        let name = "memory after a burst, without `shrink_to_fit`: at most 64 KiB".into();
        table.push((
            name,
            format!("{} B", thousands(left, 0)),
            Some(left <= 65536.0),
        ));
    }
    let waiter = "queued waiter, future included";
    let limits = [("held_key", "held u64 key", 48.0), ("waiter", waiter, 64.0)];
    for (metric, what, limit) in limits {
        let sizes = [1000.0, 1e4, 1e5].map(|n| (n, ours(&format!("{metric}_bytes_{n}"))));
        let sizes: Vec<(f64, f64)> = sizes
            .iter()
            .filter_map(|(n, v)| Some((*n, (*v)?)))
            .collect();
        let text = sizes
            .iter()
            .map(|(n, v)| format!("{v:.1} B at {}", thousands(*n, 0)));
        let met = sizes.iter().all(|(_, v)| *v <= limit);
        let name = format!("7. memory: at most {limit} bytes per {what}");
        if !sizes.is_empty() {
            table.push((name, text.collect::<Vec<_>>().join(", "), Some(met)));
        }
    }
    table
}

/// Queue scaling: flat per-op costs from Q = 1,000 to 100,000, and
/// cancelling within 1.2x of the fastest peer at each Q.
fn queue(results: &Results) -> Vec<Target> {
    let rows = results.table("queue.tsv");
    let at = |peer: &str, q: f64, column: &str| {
        let row = rows
            .iter()
            .find(|r| cell(r, "peer") == peer && number(r, "q") == q);
        Some(number(row?, &format!("{column}_ns")))
    };
    let mut table = Vec::new();
    for (column, label) in [
        ("enqueue", "enqueue"),
        ("cancel", "cancel"),
        ("handoff", "hand-off"),
    ] {
        let (Some(lo), Some(hi)) = (at(OURS.name, 1e3, column), at(OURS.name, 1e5, column)) else {
            continue;
        };
        let name = format!(
            "6. queue scaling, {label}: per-op cost at Q = 100,000 at most 1.2x that at 1,000"
        );
        table.push(at_most(name, (hi, lo), 1.2));
    }
    for q in [1e3, 1e4, 1e5] {
        let peers = rows
            .iter()
            .map(|r| cell(r, "peer"))
            .filter(|p| *p != OURS.name);
        let cancels = peers.filter_map(|peer| Some((at(peer, q, "cancel")?, peer)));
        let best = cancels.min_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some(ours), Some((best, peer))) = (at(OURS.name, q, "cancel"), best) {
            let q = thousands(q, 0);
            let name = format!(
                "cancelling a queued waiter at Q = {q}: at most 1.2x the fastest peer ({peer})"
            );
            table.push(at_most(name, (ours, best), 1.2));
        }
    }
    table
}

/// Throughput at 16 threads against the sharded floor, judged only where
/// each thread has a core of its own.
fn many_cores(results: &Results) -> Option<Target> {
    let sixteen = |r: &&Row| number(r, "threads") == 16.0;
    let row = results.table("scaling.tsv").iter().find(sixteen)?;
    let vs = number(row, "ours_ops_per_s") / maybe_number(row, "sharded_floor_ops_per_s")?;
    let cores = number(row, "cores");
    let mut text = format!("{} at 16 threads", ratio(vs));
    if cores < 16.0 {
        text += &format!(", with {cores} hardware threads: not judged, the threads share cores");
    }
    let name = "many cores: at least 0.8x the throughput of the sharded floor at 16 threads";
    Some((name.into(), text, (cores >= 16.0).then_some(vs >= 0.8)))
}
