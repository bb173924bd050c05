//! What one run of the suite leaves in the target folder, read back:
//! criterion's estimates under `criterion/`, and the files the other
//! benches and `scripts/bench.sh` write to `bench-results/`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::names::{self, Lock, KEY_ONLY, OURS, OURS_ONE_BY_ONE, PEERS, REFERENCES, SCENARIOS};

/// One line of a results file, by column name.
pub type Row = HashMap<String, String>;

/// Every figure of one run.
#[derive(Default)]
pub struct Results {
    /// When the run started, as `scripts/bench.sh` wrote it.
    pub date: Option<String>,
    pub commit: Option<String>,
    pub machine: Option<String>,
    pub load_before: Option<String>,
    pub load_after: Option<String>,
    /// Criterion's median time per operation in ns, by scenario id and
    /// name, in the order of [`SCENARIOS`] and [`criterion_names`].
    pub times: Vec<(&'static str, &'static str, f64)>,
    pub queue: Vec<Row>,
    /// By name and metric.
    pub memory: HashMap<(String, String), f64>,
    pub scaling: Vec<Row>,
    pub fairness: Vec<Row>,
    /// The fairness bench's `tight` section.
    pub tight: Vec<Row>,
}

impl Results {
    /// Reads what a run left in `target` (the workspace's target folder).
    /// A missing file leaves its part empty: a partial run still reports
    /// the rest.
    pub fn read(target: &Path) -> Results {
        let dir = target.join("bench-results");
        let text = |name: &str| {
            let text = fs::read_to_string(dir.join(name)).ok()?;
            Some(text.trim().to_string())
        };
        let table = |name: &str| read_table(&dir.join(name)).unwrap_or_default();
        let memory = table("memory.tsv")
            .iter()
            .map(|r| {
                let key = (cell(r, "peer").to_string(), cell(r, "metric").to_string());
                (key, number(r, "value"))
            })
            .collect();
        Results {
            date: text("date"),
            commit: text("commit"),
            machine: text("machine"),
            load_before: text("load-before"),
            load_after: text("load-after"),
            times: criterion_times(&target.join("criterion")),
            queue: table("queue.tsv"),
            memory,
            scaling: table("scaling.tsv"),
            fairness: table("fairness.csv"),
            tight: table("fairness-tight.csv"),
        }
    }

    /// Whether no bench left a figure: nothing to report.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
            && self.queue.is_empty()
            && self.memory.is_empty()
            && self.scaling.is_empty()
            && self.fairness.is_empty()
            && self.tight.is_empty()
    }

    /// The median ns per operation of `name` in scenario `id`.
    pub fn time(&self, id: &str, name: &str) -> Option<f64> {
        self.times
            .iter()
            .find(|(s, n, _)| *s == id && *n == name)
            .map(|(_, _, v)| *v)
    }

    /// The fastest of `pool` in scenario `id`: its time and name.
    pub fn fastest<'a>(
        &self,
        id: &str,
        pool: impl IntoIterator<Item = &'a Lock>,
    ) -> Option<(f64, &'static str)> {
        pool.into_iter()
            .filter_map(|lock| Some((self.time(id, lock.name)?, lock.name)))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))
    }

    pub fn memory(&self, name: &str, metric: &str) -> Option<f64> {
        self.memory
            .get(&(name.to_string(), metric.to_string()))
            .copied()
    }
}

/// The peers the "fastest peer" figures compare against: every keyed lock
/// but this crate (the floor is not a lock).
pub fn rivals() -> impl Iterator<Item = &'static Lock> {
    PEERS
        .iter()
        .filter(|lock| lock.name != OURS.name && lock.name != names::FLOOR.name)
}

/// The rivals that serve waiters strictly in turn.
pub fn fifo_rivals() -> impl Iterator<Item = &'static Lock> {
    rivals().filter(|lock| lock.fifo)
}

/// The rows of the results table: this crate, then in its pairs mode, then
/// every other peer.
pub fn table_rows() -> impl Iterator<Item = &'static Lock> {
    [&OURS, &OURS_ONE_BY_ONE]
        .into_iter()
        .chain(PEERS.iter().filter(|lock| lock.name != OURS.name))
}

/// Every name a criterion group may hold, in the order the charts draw
/// them: the table's rows, building the key alone, the references.
fn criterion_names() -> impl Iterator<Item = &'static str> {
    table_rows()
        .map(|lock| lock.name)
        .chain([KEY_ONLY])
        .chain(REFERENCES.iter().map(|lock| lock.name))
}

/// Criterion's median per element (an acquire and release, or a pairs
/// operation) of every benchmark that ran, from the `new` estimates.
fn criterion_times(dir: &Path) -> Vec<(&'static str, &'static str, f64)> {
    let mut times = Vec::new();
    for scenario in &SCENARIOS {
        for name in criterion_names() {
            let base = dir.join(scenario.id).join(name).join("new");
            if let Some(ns) = criterion_median(&base) {
                times.push((scenario.id, name, ns));
            }
        }
    }
    times
}

/// The median in `base`'s `estimates.json` over the elements per
/// iteration in its `benchmark.json` (1 where none is given).
fn criterion_median(base: &Path) -> Option<f64> {
    let json = |name: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&fs::read_to_string(base.join(name)).ok()?).ok()
    };
    let (meta, estimates) = (json("benchmark.json")?, json("estimates.json")?);
    let elements = meta["throughput"]["Elements"].as_f64().unwrap_or(1.0);
    Some(estimates["median"]["point_estimate"].as_f64()? / elements)
}

/// A results file: a header naming the columns, then a row per line;
/// comma-separated for `.csv`, tab-separated otherwise, as the benches
/// write them. `None` if it cannot be read.
pub fn read_table(path: &Path) -> Option<Vec<Row>> {
    let text = fs::read_to_string(path).ok()?;
    let sep = if path.extension().is_some_and(|e| e == "csv") {
        ','
    } else {
        '\t'
    };
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header: Vec<&str> = lines.next()?.split(sep).collect();
    let rows = lines
        .map(|line| {
            let cells = line.split(sep).map(str::to_string);
            header.iter().map(|h| h.to_string()).zip(cells).collect()
        })
        .collect();
    Some(rows)
}

/// A cell as text. The files are machine-written: a missing column is a
/// bug in the writer, so it stops the report with the column's name.
pub fn cell<'a>(row: &'a Row, column: &str) -> &'a str {
    row.get(column)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no `{column}` column"))
}

pub fn number(row: &Row, column: &str) -> f64 {
    let text = cell(row, column);
    text.parse()
        .unwrap_or_else(|_| panic!("`{column}` is not a number: {text:?}"))
}

/// A cell that may be empty (the fairness bench leaves `vs_ref_tokio`
/// empty without the tokio mutex, and the waits in its `tight` section).
pub fn maybe_number(row: &Row, column: &str) -> Option<f64> {
    row.get(column)
        .filter(|text| !text.is_empty())
        .map(|_| number(row, column))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{env, process};

    /// A fresh folder for one test's files.
    fn scratch(test: &str) -> std::path::PathBuf {
        let dir = env::temp_dir().join(format!("bench-report-{test}-{}", process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn tables_split_by_their_extension() {
        let dir = scratch("tables");
        fs::write(dir.join("a.csv"), "kind,name,vs\npeer,x,\n\n").unwrap();
        fs::write(dir.join("a.tsv"), "group\tpeer\tns_per_op\nhot\tx,y\t1.5\n").unwrap();
        let csv = read_table(&dir.join("a.csv")).unwrap();
        let tsv = read_table(&dir.join("a.tsv")).unwrap();
        assert_eq!((csv.len(), cell(&csv[0], "name")), (1, "x"));
        assert_eq!(maybe_number(&csv[0], "vs"), None);
        assert_eq!(
            (cell(&tsv[0], "peer"), number(&tsv[0], "ns_per_op")),
            ("x,y", 1.5)
        );
        assert!(read_table(&dir.join("missing.tsv")).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn criterion_medians_are_per_element() {
        let dir = scratch("criterion");
        let write = |name: &str, elements: &str, median: f64| {
            let base = dir.join("criterion/contended").join(name).join("new");
            fs::create_dir_all(&base).unwrap();
            fs::write(
                base.join("benchmark.json"),
                format!(r#"{{"group_id":"contended","throughput":{elements}}}"#),
            )
            .unwrap();
            fs::write(
                base.join("estimates.json"),
                format!(
                    r#"{{"mean":{{"point_estimate":1.0}},"median":{{"point_estimate":{median}}}}}"#
                ),
            )
            .unwrap();
        };
        write(OURS.name, r#"{"Elements":16384}"#, 16384.0 * 150.0);
        write(names::REF_TOKIO_MUTEX.name, "null", 180.0);
        write("not-a-peer", "null", 1.0);
        let results = Results::read(&dir);
        assert_eq!(
            results.times,
            [
                ("contended", OURS.name, 150.0),
                ("contended", names::REF_TOKIO_MUTEX.name, 180.0)
            ]
        );
        assert_eq!(results.date, None);
        assert!(!results.is_empty());
        assert!(Results::read(&dir.join("criterion")).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_fastest_is_the_least_time() {
        let results = Results {
            times: vec![
                ("hot", OURS.name, 50.0),
                ("hot", names::LOCKABLE.name, 90.0),
                ("hot", names::KEY_MUTEX.name, 80.0),
                ("hot", names::FUTURES_LOCK_RECIPE.name, 70.0),
            ],
            ..Results::default()
        };
        assert_eq!(
            results.fastest("hot", rivals()),
            Some((70.0, names::FUTURES_LOCK_RECIPE.name))
        );
        assert_eq!(
            results.fastest("hot", fifo_rivals()),
            Some((80.0, names::KEY_MUTEX.name))
        );
        assert_eq!(results.fastest("spread", rivals()), None);
    }
}
