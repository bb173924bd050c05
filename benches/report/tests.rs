//! The report's tests, on the run kept in `report/sample/`.

use std::{env, fs, path::Path};

use crate::charts::{log_axis, queue_scaling, time_per_op, worst_wait};
use crate::format::{plain, thousands, tick, time};
use crate::markdown::results_md;
use crate::names::{OURS, REF_TOKIO_MUTEX};
use crate::results::{cell, number, read_files, Results, CRITERION};

fn sample() -> Results {
    read_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("report/sample"))
}

#[test]
fn numbers_read_alike_everywhere() {
    let thousand = [2_228_240.0, 999.0, -1234.0].map(|v| thousands(v, 0));
    assert_eq!(thousand, ["2,228,240", "999", "-1,234"]);
    // Ties round to even, as the figures were always rounded.
    let fractions = [thousands(1234.56, 1), thousands(0.125, 2)];
    assert_eq!(fractions, ["1,234.6", "0.12"]);
    let times = [42.24, 1999.6, 21_400.0, 644_466_071.0, 2.1e9].map(time);
    let units = ["42.2 ns", "2,000 ns", "21.4 µs", "644.5 ms", "2.10 s"];
    assert_eq!(times, units);
    assert_eq!([0.5e6, 2e9, 20.0].map(tick), ["500 µs", "2 s", "20 ns"]);
    assert_eq!([100_000.0, 2.5].map(plain), ["100,000", "2.5"]);
}

#[test]
fn log_axes_end_on_round_values() {
    let ticks = vec![20.0, 50.0, 100.0, 200.0];
    assert_eq!(log_axis([42.0, 115.0]), (20.0..200.0, ticks));
    assert_eq!(log_axis([1000.0]), (1000.0..2000.0, vec![1000.0, 2000.0]));
    let (range, ticks) = log_axis([30.0, 644e6]);
    assert_eq!((range, ticks.len()), (10.0..1e9, 9));
}

#[test]
fn charts_label_every_bar_line_and_axis() {
    let results = sample();
    let charts = [time_per_op, queue_scaling, worst_wait].map(|chart| chart(&results));
    // The text of every <text> element.
    let lines = charts.iter().flat_map(|svg| svg.as_ref().unwrap().lines());
    let text: Vec<&str> = lines.filter(|l| !l.starts_with('<')).collect();
    let text = text.join("|");
    for expected in [
        "Run 2026-12-03 08:41 UTC. Details: benches/RESULTS.md.",
        "1. uncontended: one task, one key|ns per operation|lock-manager|lockable",
        "tokio-recipe|floor|0|20|40|60|80|100|38.2 ns|93.0 ns",
        "enqueue|time per operation (log)|queue length Q (log)|10 ns|20 ns",
        "Keyed peers|wait per acquire (log scale)|lock-manager (FIFO)",
        "30.9 µs|61.0 µs|174.8 µs",
        "References, not peers|wait per acquire (log scale)|ref-tokio-mutex (FIFO)",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
}

#[test]
fn the_sample_run_reads_as_its_results_md() {
    let md = results_md(&sample());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("report/sample/RESULTS.md");
    // BLESS=1 writes what the report gives now, to review with git diff.
    if env::var_os("BLESS").is_some() {
        fs::write(&path, &md).unwrap();
    }
    assert_eq!(md, fs::read_to_string(&path).unwrap());
    let empty = results_md(&Results::default());
    assert!(empty.ends_with("## Scenario 7: memory, in bytes and allocations\n\nNot run.\n"));
}

#[test]
fn criterion_medians_are_per_element_in_the_tables_order() {
    let dir = std::env::temp_dir().join(format!("bench-report-{}", std::process::id()));
    for (name, throughput, median) in [
        (REF_TOKIO_MUTEX.name, "null", 180.0),
        (OURS.name, r#"{"Elements":16384}"#, 16384.0 * 150.0),
        ("not-a-peer", "null", 1.0),
    ] {
        let base = dir.join("criterion/contended").join(name).join("new");
        fs::create_dir_all(&base).unwrap();
        let meta = format!(r#"{{"throughput":{throughput}}}"#);
        fs::write(base.join("benchmark.json"), meta).unwrap();
        let estimates = format!(r#"{{"median":{{"point_estimate":{median}}}}}"#);
        fs::write(base.join("estimates.json"), estimates).unwrap();
    }
    let results = Results::read(&dir);
    let times = results.table(CRITERION).iter();
    let times: Vec<_> = times.map(|r| (cell(r, "name"), number(r, "ns"))).collect();
    assert_eq!(times, [(OURS.name, 150.0), (REF_TOKIO_MUTEX.name, 180.0)]);
    assert!(results.run("date") == "?" && results.table("queue.tsv").is_empty());
    assert!(Results::read(&dir.join("criterion")).is_empty());
    fs::remove_dir_all(&dir).unwrap();
}
