//! The targets the suite judges lock-manager by, each computed from
//! figures of one run.

use std::fmt;

use crate::format::{ratio, thousands, time};
use crate::names::{
    CHURN_STRING, CHURN_U64, CONTENDED, FLOOR, FUTURES_LOCK_RECIPE, HOT, KEY_ONLY, OURS, PAIRS,
    PAIRS_16, REF_TOKIO_MUTEX, SPREAD, UNCONTENDED,
};
use crate::results::{cell, fifo_rivals, maybe_number, number, rivals, Results, Row};

/// The queue lengths the queue and memory benches run.
const QS: [u32; 3] = [1000, 10_000, 100_000];

pub struct Target {
    pub name: String,
    /// What lock-manager measured, with what it was compared with.
    pub measured: String,
    pub verdict: Verdict,
}

#[derive(Debug, PartialEq)]
pub enum Verdict {
    Met,
    NotMet,
    /// Measured where the target cannot be judged.
    NotJudged,
    /// A row with no target, shown for comparison.
    MeasuredOnly,
}

impl From<bool> for Verdict {
    fn from(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Met => "**met**",
            Verdict::NotMet => "**not met**",
            Verdict::NotJudged => "n/a",
            Verdict::MeasuredOnly => "measured only",
        })
    }
}

/// Every target with the figures it needs in `results`, in the order of
/// the results' table.
pub fn targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let mut push = |name: String, measured: String, verdict: Verdict| {
        out.push(Target {
            name,
            measured,
            verdict,
        })
    };
    for scenario in [&UNCONTENDED, &CHURN_U64, &CHURN_STRING] {
        let ours = results.time(scenario.id, OURS.name);
        if let (Some(ours), Some((best, name))) = (ours, results.fastest(scenario.id, rivals())) {
            push(
                format!(
                    "{}: at least 2x faster than the fastest peer",
                    scenario.title
                ),
                format!(
                    "{} (vs {name}: {} vs {})",
                    ratio(best / ours),
                    time(ours),
                    time(best)
                ),
                (best / ours >= 2.0).into(),
            );
        }
        if let (Some(ours), Some(floor)) = (ours, results.time(scenario.id, FLOOR.name)) {
            push(
                format!("{}: within 1.3x of the floor", scenario.title),
                format!(
                    "{} ({} vs {})",
                    ratio(ours / floor),
                    time(ours),
                    time(floor)
                ),
                (ours / floor <= 1.3).into(),
            );
        }
    }

    if let Some(allocs) = results.memory(OURS.name, "allocs_per_cycle_u64") {
        push(
            "allocations per cycle, u64 keys: zero".into(),
            format!("{allocs:.2}"),
            (allocs == 0.0).into(),
        );
    }
    if let Some(all) = results.memory(OURS.name, "allocs_per_cycle_string") {
        let key = results
            .memory(KEY_ONLY, "allocs_per_cycle_string")
            .unwrap_or(0.0);
        push(
            "allocations per cycle, String keys: at most one (the lock's own)".into(),
            format!(
                "{:.2} by the lock ({all:.2} in all, {key:.2} of them building the key)",
                all - key
            ),
            (all - key <= 1.0).into(),
        );
    }

    let ours = results.time(CONTENDED.id, OURS.name);
    if let (Some(ours), Some((best, name))) = (ours, results.fastest(CONTENDED.id, fifo_rivals())) {
        push(
            "3. contended: at least 1.5x the throughput of the fastest FIFO peer".into(),
            format!(
                "{} (vs {name}: {} vs {} per acquire)",
                ratio(best / ours),
                time(ours),
                time(best)
            ),
            (best / ours >= 1.5).into(),
        );
    }
    let futures = results.time(CONTENDED.id, FUTURES_LOCK_RECIPE.name);
    if let (Some(ours), Some(futures)) = (ours, futures) {
        push(
            "3. contended: within 1.5x of the futures::lock recipe".into(),
            format!(
                "{} its time per acquire ({} vs {})",
                ratio(ours / futures),
                time(ours),
                time(futures)
            ),
            (ours / futures <= 1.5).into(),
        );
    }
    against_tokio(results, &mut push);

    for (scenario, bar) in [
        (&SPREAD, Bar::Faster(1.5)),
        (&PAIRS, Bar::None("2 keys per operation")),
        (&PAIRS_16, Bar::None("2 of 16 keys per operation")),
        (&HOT, Bar::Faster(1.5)),
    ] {
        let ours = results.time(scenario.id, OURS.name);
        let (Some(ours), Some((best, name))) = (ours, results.fastest(scenario.id, rivals()))
        else {
            continue;
        };
        let (times, speed_up) = (format!("{} vs {}", time(ours), time(best)), best / ours);
        match bar {
            Bar::Faster(factor) => push(
                format!(
                    "{}: at least {factor}x faster than the fastest peer",
                    scenario.title
                ),
                format!("{} (vs {name}: {times})", ratio(speed_up)),
                (speed_up >= factor).into(),
            ),
            Bar::None(about) => push(
                format!("{}: {about}", scenario.title),
                format!(
                    "{} faster than the fastest peer (vs {name}: {times} per operation)",
                    ratio(speed_up)
                ),
                Verdict::MeasuredOnly,
            ),
        }
    }

    queue(results, &mut push);
    memory(results, &mut push);
    many_cores(results, &mut push);
    out
}

/// What a scenario of several threads must beat.
enum Bar {
    /// The fastest peer, by this factor.
    Faster(f64),
    /// Nothing: several keys per operation came after the targets were
    /// set. What the scenario runs.
    None(&'static str),
}

/// Criterion's contended group beside the tokio mutex: the same two
/// figures `RESULTS.md` quotes apart, as "lock-manager / reference".
pub fn contended_vs_tokio(results: &Results) -> Option<(f64, f64)> {
    Some((
        results.time(CONTENDED.id, OURS.name)?,
        results.time(CONTENDED.id, REF_TOKIO_MUTEX.name)?,
    ))
}

/// The rows of a fairness results file by lock name.
fn by_name<'a>(rows: &'a [Row], name: &str) -> Option<&'a Row> {
    rows.iter().find(|r| cell(r, "name") == name)
}

/// The targets against one tokio mutex, judged on the fairness bench,
/// which runs both in alternating rounds (the median of the per-round
/// ratios); criterion's contended group, which runs one after the other,
/// is quoted beside it.
fn against_tokio(results: &Results, push: &mut impl FnMut(String, String, Verdict)) {
    let name = "3. contended: at most 1.05x the time of one `tokio::sync::Mutex<()>` (a reference)";
    let criterion = contended_vs_tokio(results).map(|(ours, tokio)| {
        format!(
            "criterion's `contended`, one after the other: {} ({} vs {})",
            ratio(ours / tokio),
            time(ours),
            time(tokio)
        )
    });
    let ours = by_name(&results.tight, OURS.name);
    let tokio = by_name(&results.tight, REF_TOKIO_MUTEX.name);
    if let (Some(ours), Some(tokio)) = (ours, tokio) {
        if let Some(vs) = maybe_number(ours, "vs_ref_tokio") {
            let mut measured = format!(
                "{}, median of {} interleaved rounds ({} vs {})",
                ratio(vs),
                cell(ours, "rounds"),
                time(number(ours, "ns_per_op")),
                time(number(tokio, "ns_per_op"))
            );
            if let Some(criterion) = criterion {
                measured += &format!("; {criterion}");
            }
            push(name.into(), measured, (vs <= 1.05).into());
        }
    } else if let (Some(criterion), Some((ours, tokio))) = (criterion, contended_vs_tokio(results))
    {
        push(name.into(), criterion, (ours / tokio <= 1.05).into());
    }

    let ours = by_name(&results.fairness, OURS.name);
    let tokio = by_name(&results.fairness, REF_TOKIO_MUTEX.name);
    let (Some(ours), Some(tokio)) = (ours, tokio) else {
        return;
    };
    let (vs, rounds) = (number(ours, "vs_ref_tokio"), cell(ours, "rounds"));
    push(
        "fairness: at most 1.05x the time per acquire of one `tokio::sync::Mutex<()>`".into(),
        format!(
            "{}, median of {rounds} interleaved rounds ({} vs {})",
            ratio(vs),
            time(number(ours, "ns_per_op")),
            time(number(tokio, "ns_per_op"))
        ),
        (vs <= 1.05).into(),
    );
    let wait = |row, column| number(row, column);
    let (ours_max, tokio_max) = (wait(ours, "wait_max_ns"), wait(tokio, "wait_max_ns"));
    let round = "wait_max_round_median_ns";
    push(
        "fairness: a worst wait no longer than that tokio mutex's".into(),
        format!(
            "{} vs {} over all rounds; a round's worst, median of {rounds}: {} vs {}",
            time(ours_max),
            time(tokio_max),
            time(wait(ours, round)),
            time(wait(tokio, round))
        ),
        (ours_max <= tokio_max).into(),
    );
}

/// Queue scaling: flat per-op costs from Q = 1,000 to 100,000, and
/// cancelling against the fastest peer at each Q.
fn queue(results: &Results, push: &mut impl FnMut(String, String, Verdict)) {
    let at = |name: &str, q: u32| {
        results
            .queue
            .iter()
            .find(|r| cell(r, "peer") == name && number(r, "q") == f64::from(q))
    };
    if let (Some(lo), Some(hi)) = (at(OURS.name, QS[0]), at(OURS.name, QS[2])) {
        for (column, label) in [
            ("enqueue_ns", "enqueue"),
            ("cancel_ns", "cancel"),
            ("handoff_ns", "hand-off"),
        ] {
            let (lo, hi) = (number(lo, column), number(hi, column));
            push(
                format!(
                    "6. queue scaling, {label}: per-op cost at Q=100,000 within 1.2x of Q=1,000"
                ),
                format!("{} ({hi:.1} vs {lo:.1} ns)", ratio(hi / lo)),
                (hi / lo <= 1.2).into(),
            );
        }
    }

    let cancels: Vec<(u32, f64, f64, &str)> = QS
        .into_iter()
        .filter_map(|q| {
            let ours = number(at(OURS.name, q)?, "cancel_ns");
            let (best, name) = results
                .queue
                .iter()
                .filter(|r| number(r, "q") == f64::from(q) && cell(r, "peer") != OURS.name)
                .map(|r| (number(r, "cancel_ns"), cell(r, "peer")))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))?;
            Some((q, ours, best, name))
        })
        .collect();
    if !cancels.is_empty() {
        let measured: Vec<String> = cancels
            .iter()
            .map(|(q, ours, best, name)| {
                let q = thousands(f64::from(*q), 0);
                format!(
                    "{} at {q} ({ours:.1} vs {best:.1} ns, {name})",
                    ratio(ours / best)
                )
            })
            .collect();
        push(
            "cancelling a queued waiter: at most 1.2x the fastest peer at Q = 1,000, 10,000, \
             100,000"
                .into(),
            measured.join(", "),
            cancels
                .iter()
                .all(|(_, ours, best, _)| ours / best <= 1.2)
                .into(),
        );
    }
}

fn memory(results: &Results, push: &mut impl FnMut(String, String, Verdict)) {
    if let Some(left) = results.memory(OURS.name, "burst_left_bytes") {
        push(
            "memory after a burst, without `shrink_to_fit`: within 64 KiB of a fresh manager's"
                .into(),
            format!("{} B left", thousands(left, 0)),
            (left <= 65536.0).into(),
        );
    }
    for (metric, name, limit) in [
        (
            "held_key_bytes",
            "7. memory: at most 48 bytes per held u64 key",
            48.0,
        ),
        (
            "waiter_bytes",
            "7. memory: at most 64 bytes per queued waiter, future included",
            64.0,
        ),
    ] {
        let sizes: Vec<(u32, f64)> = QS
            .into_iter()
            .filter_map(|n| Some((n, results.memory(OURS.name, &format!("{metric}_{n}"))?)))
            .collect();
        if sizes.is_empty() {
            continue;
        }
        let measured: Vec<String> = sizes
            .iter()
            .map(|(n, v)| format!("{v:.1} B at {}", thousands(f64::from(*n), 0)))
            .collect();
        let worst = sizes.iter().map(|(_, v)| *v).fold(f64::MIN, f64::max);
        push(name.into(), measured.join(", "), (worst <= limit).into());
    }
}

/// Judged only where 16 threads each have a core of their own.
fn many_cores(results: &Results, push: &mut impl FnMut(String, String, Verdict)) {
    let Some(row) = results.scaling.iter().find(|r| {
        number(r, "threads") == 16.0 && maybe_number(r, "sharded_floor_ops_per_s").is_some()
    }) else {
        return;
    };
    let vs = number(row, "ours_ops_per_s") / number(row, "sharded_floor_ops_per_s");
    let cores = number(row, "cores");
    let mut measured = format!("{} at 16 threads", ratio(vs));
    let verdict = if cores >= 16.0 {
        (vs >= 0.8).into()
    } else {
        measured +=
            &format!(", with {cores} hardware threads: not judged, the threads share cores");
        Verdict::NotJudged
    };
    push(
        "many cores: at least 0.8x the throughput of the sharded floor at 16 threads".into(),
        measured,
        verdict,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{LOCKABLE, TOKIO_RECIPE};

    fn row(cells: &[(&str, &str)]) -> Row {
        cells
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn find<'a>(targets: &'a [Target], start: &str) -> &'a Target {
        targets
            .iter()
            .find(|t| t.name.starts_with(start))
            .unwrap_or_else(|| panic!("no target {start:?}"))
    }

    #[test]
    fn speed_ups_compare_with_the_fastest_peer_and_the_floor() {
        let results = Results {
            times: vec![
                (UNCONTENDED.id, OURS.name, 40.0),
                (UNCONTENDED.id, LOCKABLE.name, 100.0),
                (UNCONTENDED.id, TOKIO_RECIPE.name, 90.0),
                (UNCONTENDED.id, FLOOR.name, 30.0),
                (PAIRS.id, OURS.name, 300.0),
                (PAIRS.id, LOCKABLE.name, 200.0),
            ],
            ..Results::default()
        };
        let targets = targets(&results);
        assert_eq!(targets.len(), 3);
        let fastest = &targets[0];
        assert_eq!(
            fastest.name,
            "1. uncontended: at least 2x faster than the fastest peer"
        );
        assert_eq!(
            fastest.measured,
            "2.25x (vs tokio-recipe: 40.0 ns vs 90.0 ns)"
        );
        assert_eq!(fastest.verdict, Verdict::Met);
        let floor = &targets[1];
        assert_eq!(floor.measured, "1.33x (40.0 ns vs 30.0 ns)");
        assert_eq!(floor.verdict, Verdict::NotMet);
        let pairs = &targets[2];
        assert_eq!(pairs.name, "pairs: 2 keys per operation");
        assert_eq!(pairs.verdict, Verdict::MeasuredOnly);
        assert_eq!(pairs.verdict.to_string(), "measured only");
    }

    #[test]
    fn the_tokio_mutex_is_judged_on_interleaved_rounds() {
        let fair = |name: &str, ns: &str, vs: &str| {
            row(&[
                ("name", name),
                ("rounds", "5"),
                ("ns_per_op", ns),
                ("vs_ref_tokio", vs),
                ("wait_max_ns", "1000"),
                ("wait_max_round_median_ns", "900"),
            ])
        };
        let results = Results {
            times: vec![
                (CONTENDED.id, OURS.name, 150.0),
                (CONTENDED.id, REF_TOKIO_MUTEX.name, 100.0),
            ],
            tight: vec![
                fair(OURS.name, "102.0", "1.02"),
                fair(REF_TOKIO_MUTEX.name, "100.0", "1.0"),
            ],
            fairness: vec![
                fair(OURS.name, "520.0", "1.06"),
                fair(REF_TOKIO_MUTEX.name, "490.0", "1.0"),
            ],
            ..Results::default()
        };
        let targets = targets(&results);
        let tokio = find(&targets, "3. contended: at most 1.05x");
        assert_eq!(
            tokio.measured,
            "1.02x, median of 5 interleaved rounds (102.0 ns vs 100.0 ns); criterion's \
             `contended`, one after the other: 1.50x (150.0 ns vs 100.0 ns)"
        );
        assert_eq!(tokio.verdict, Verdict::Met);
        let fairness = find(&targets, "fairness: at most");
        assert_eq!(fairness.verdict, Verdict::NotMet);
        let worst = find(&targets, "fairness: a worst wait");
        assert_eq!(
            worst.measured,
            "1,000 ns vs 1,000 ns over all rounds; a round's worst, median of 5: 900.0 ns vs \
             900.0 ns"
        );
        assert_eq!(worst.verdict, Verdict::Met);
    }

    #[test]
    fn queue_memory_and_cores() {
        let queue = |peer: &str, q: &str, cancel: &str| {
            row(&[
                ("peer", peer),
                ("q", q),
                ("enqueue_ns", "20"),
                ("cancel_ns", cancel),
                ("handoff_ns", "30"),
            ])
        };
        let mut results = Results {
            queue: vec![
                queue(OURS.name, "1000", "10"),
                queue(OURS.name, "100000", "13"),
                queue(LOCKABLE.name, "1000", "9"),
                queue(LOCKABLE.name, "100000", "11"),
            ],
            scaling: vec![row(&[
                ("threads", "16"),
                ("cores", "2"),
                ("ours_ops_per_s", "90"),
                ("sharded_floor_ops_per_s", "100"),
            ])],
            ..Results::default()
        };
        for (metric, v) in [
            ("burst_left_bytes", 17408.0),
            ("held_key_bytes_1000", 40.0),
            ("held_key_bytes_100000", 50.0),
        ] {
            results.memory.insert((OURS.name.into(), metric.into()), v);
        }
        let targets = targets(&results);
        let cancel = find(&targets, "6. queue scaling, cancel");
        assert_eq!(cancel.measured, "1.30x (13.0 vs 10.0 ns)");
        assert_eq!(cancel.verdict, Verdict::NotMet);
        let peers = find(&targets, "cancelling a queued waiter");
        assert_eq!(
            peers.measured,
            "1.11x at 1,000 (10.0 vs 9.0 ns, lockable), 1.18x at 100,000 (13.0 vs 11.0 ns, \
             lockable)"
        );
        assert_eq!(peers.verdict, Verdict::Met);
        assert_eq!(find(&targets, "memory after").measured, "17,408 B left");
        let held = find(&targets, "7. memory: at most 48");
        assert_eq!(held.measured, "40.0 B at 1,000, 50.0 B at 100,000");
        assert_eq!(held.verdict, Verdict::NotMet);
        let cores = find(&targets, "many cores");
        assert_eq!(
            cores.measured,
            "0.90x at 16 threads, with 2 hardware threads: not judged, the threads share cores"
        );
        assert_eq!(cores.verdict, Verdict::NotJudged);
    }
}
