//! The targets: a scenario's from its [`Goal`](crate::names::Goal), the rest here.

use crate::format::{ratio, thousands, time};
use crate::names::{Lock, Scenario, CONTENDED, FLOOR, FUTURES_LOCK_RECIPE, KEY_ONLY, OURS};
use crate::names::{REF_TOKIO_MUTEX, SCENARIOS};
use crate::results::{cell, number, Results, Row, PHASES};

/// Asked, measured, met (`None`: nothing asked, or not to be judged on this machine).
pub type Target = (String, String, Option<bool>);

const MUTEX: &str = "one `tokio::sync::Mutex<()>` (a reference)";

pub fn targets(results: &Results) -> Vec<Target> {
    let mut table = Vec::new();
    for scenario in SCENARIOS {
        if let Some(ours) = results.time(scenario.id, OURS.name) {
            scenario_targets(results, scenario, ours, &mut table);
        }
        if scenario.id == CONTENDED.id {
            hot_key(results, &mut table);
        }
    }
    memory(results, &mut table);
    queue(results, &mut table);
    table.extend(many_cores(results));
    table
}

/// The ratio of two times, then both: "1.23x (a vs b)".
fn versus(a: f64, b: f64) -> String {
    format!("{} ({} vs {})", ratio(a / b), time(a), time(b))
}

fn at_most(name: String, (a, b): (f64, f64), bar: f64) -> Target {
    (name, versus(a, b), Some(a / b <= bar))
}

/// A scenario's goal; where it sets none, its speed-up, measured only.
fn scenario_targets(results: &Results, scenario: &Scenario, ours: f64, table: &mut Vec<Target>) {
    let (id, title, goal) = (scenario.id, scenario.title, &scenario.goal);
    let fastest = results.fastest(id, false);
    let fifo = (goal.faster_fifo, results.fastest(id, true), "FIFO peer");
    for (bar, best, what) in [(goal.faster, fastest, "peer"), fifo] {
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
    if let (false, Some((best, name))) = (asked, fastest) {
        let about = scenario.about;
        let name = format!("{title} ({about}): speed-up over the fastest peer ({name})");
        table.push((name, versus(best, ours), None));
    }
}

fn with_tokio(section: &[Row]) -> Option<(&Row, &Row)> {
    let by_name = |name| section.iter().find(|r| cell(r, "name") == name);
    Some((by_name(OURS.name)?, by_name(REF_TOKIO_MUTEX.name)?))
}

/// Against the tokio mutex, on the fairness bench's interleaved rounds, else criterion's.
fn hot_key(results: &Results, table: &mut Vec<Target>) {
    let contended = |lock: Lock| results.time(CONTENDED.id, lock.name);
    let [ours, futures, tokio] = [OURS, FUTURES_LOCK_RECIPE, REF_TOKIO_MUTEX].map(contended);
    if let (Some(ours), Some(futures)) = (ours, futures) {
        let name = "3. contended: at most 1.5x the time of the futures::lock recipe";
        table.push(at_most(name.into(), (ours, futures), 1.5));
    }
    let [tight, fairness] = ["fairness-tight.csv", "fairness.csv"].map(|f| results.table(f));
    let sections = ["3. contended", "fairness, an .await inside"];
    for (section, rows) in sections.into_iter().zip([tight, fairness]) {
        let Some((ours, tokio)) = with_tokio(rows) else {
            continue;
        };
        let (vs, rounds) = (number(ours, "vs_ref_tokio"), cell(ours, "rounds"));
        let [ns, tokio_ns] = [ours, tokio].map(|row| time(number(row, "ns_per_op")));
        let vs_text = ratio(vs);
        let text = format!("{vs_text}, median of {rounds} interleaved rounds ({ns} vs {tokio_ns})");
        let name = format!("{section}: at most 1.05x the time of {MUTEX}");
        table.push((name, text, Some(vs <= 1.05)));
    }
    if let (None, Some(ours), Some(tokio)) = (with_tokio(tight), ours, tokio) {
        let name = format!("3. contended: at most 1.05x the time of {MUTEX}, criterion's");
        table.push(at_most(name, (ours, tokio), 1.05));
    }
    if let Some((ours, tokio)) = with_tokio(fairness) {
        let max = (number(ours, "wait_max_ns"), number(tokio, "wait_max_ns"));
        let name = format!("fairness: a worst wait no longer than that of {MUTEX}");
        table.push(at_most(name, max, 1.0));
    }
}

fn memory(results: &Results, table: &mut Vec<Target>) {
    let ours = |metric: &str| results.memory(OURS.name, metric);
    if let Some(allocs) = ours("allocs_per_cycle_u64") {
        let name = "allocations per cycle, u64 keys: none".into();
        table.push((name, format!("{allocs:.2}"), Some(allocs == 0.0)));
    }
    if let Some(all) = ours("allocs_per_cycle_string") {
        let key = results.memory(KEY_ONLY, "allocs_per_cycle_string");
        let key = key.unwrap_or(0.0);
        let text = format!("{:.2} ({all:.2} less {key:.2} building the key)", all - key);
        let name = "allocations per cycle, String keys: at most one (the lock's own)".into();
        table.push((name, text, Some(all - key <= 1.0)));
    }
    if let Some(left) = ours("burst_left_bytes") {
        let name = "memory after a burst, without `shrink_to_fit`: at most 64 KiB".into();
        let text = format!("{} B", thousands(left, 0));
        table.push((name, text, Some(left <= 65536.0)));
    }
    let waiter = "queued waiter, future included";
    for (metric, what, limit) in [("held_key", "held u64 key", 48.0), ("waiter", waiter, 64.0)] {
        let sizes = [1000.0, 1e4, 1e5].map(|n| Some((n, ours(&format!("{metric}_bytes_{n}"))?)));
        let sizes: Vec<(f64, f64)> = sizes.into_iter().flatten().collect();
        if !sizes.is_empty() {
            let at = |(n, v): &(f64, f64)| format!("{v:.1} B at {}", thousands(*n, 0));
            let text: Vec<String> = sizes.iter().map(at).collect();
            let name = format!("7. memory: at most {limit} bytes per {what}");
            let met = sizes.iter().all(|(_, v)| *v <= limit);
            table.push((name, text.join(", "), Some(met)));
        }
    }
}

fn queue(results: &Results, table: &mut Vec<Target>) {
    let rows = results.table("queue.tsv");
    let at = |peer: &str, q: f64, column: &str| {
        let is = |r: &&Row| cell(r, "peer") == peer && number(r, "q") == q;
        let row = rows.iter().find(is)?;
        Some(number(row, &format!("{column}_ns")))
    };
    for label in PHASES {
        let column = &label.replace('-', "");
        if let (Some(lo), Some(hi)) = (at(OURS.name, 1e3, column), at(OURS.name, 1e5, column)) {
            let name = format!(
                "6. queue scaling, {label}: per-op cost at Q = 100,000 at most 1.2x that at 1,000"
            );
            table.push(at_most(name, (hi, lo), 1.2));
        }
    }
    for q in [1e3, 1e4, 1e5] {
        let peers = rows.iter().map(|r| cell(r, "peer"));
        let peers = peers.filter(|p| *p != OURS.name);
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
}

/// Judged only where each of the 16 threads has a core of its own.
fn many_cores(results: &Results) -> Option<Target> {
    let sixteen = |r: &&Row| number(r, "threads") == 16.0;
    let row = results.table("scaling.tsv").iter().find(sixteen)?;
    let vs = number(row, "ours_ops_per_s") / number(row, "sharded_floor_ops_per_s");
    let cores = number(row, "cores");
    let mut text = format!("{} at 16 threads", ratio(vs));
    if cores < 16.0 {
        text += &format!(", with {cores} hardware threads: not judged, the threads share cores");
    }
    let name = "many cores: at least 0.8x the throughput of the sharded floor at 16 threads";
    Some((name.into(), text, (cores >= 16.0).then_some(vs >= 0.8)))
}
