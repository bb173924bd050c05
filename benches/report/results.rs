//! What one run of the suite leaves in the target folder, read back:
//! criterion's estimates under `criterion/`, and the files the other
//! benches and `scripts/bench.sh` write to `bench-results/`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::names::{Lock, FLOOR, KEY_ONLY, OURS, OURS_ONE_BY_ONE, PEERS, REFERENCES, SCENARIOS};

/// One line of a results file, by column name.
pub type Row = HashMap<String, String>;

/// Every figure of one run.
#[derive(Default)]
pub struct Results {
    /// Criterion's median ns per operation by scenario id and name, in
    /// the order of [`SCENARIOS`] and [`criterion_names`].
    pub times: Vec<(&'static str, &'static str, f64)>,
    /// The other benches' tables, by file name (`queue.tsv`, ...).
    tables: HashMap<String, Vec<Row>>,
    /// What the script says of the run, by file name (`date`, ...).
    run: HashMap<String, String>,
}

impl Results {
    /// Reads what a run left in `target` (the workspace's target folder).
    /// A missing file leaves its part empty: a partial run still reports
    /// the rest.
    pub fn read(target: &Path) -> Results {
        let times = criterion_times(&target.join("criterion"));
        Results {
            times,
            ..read_files(&target.join("bench-results"))
        }
    }

    /// Whether no bench left a figure: nothing to report.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty() && self.tables.is_empty()
    }

    /// The rows of the results file `name`; none if it was not written.
    pub fn table(&self, name: &str) -> &[Row] {
        self.tables.get(name).map_or(&[], Vec::as_slice)
    }

    /// What the script's file `name` says of the run, or "?".
    pub fn run(&self, name: &str) -> &str {
        self.run.get(name).map_or("?", String::as_str)
    }

    /// The median ns per operation of `name` in scenario `id`.
    pub fn time(&self, id: &str, name: &str) -> Option<f64> {
        let found = self.times.iter().find(|(s, n, _)| *s == id && *n == name);
        found.map(|(_, _, v)| *v)
    }

    /// The fastest of `pool` in scenario `id`: its time and name.
    pub fn fastest<'a>(
        &self,
        id: &str,
        pool: impl IntoIterator<Item = &'a Lock>,
    ) -> Option<(f64, &'static str)> {
        let time = |lock: &Lock| Some((self.time(id, lock.name)?, lock.name));
        let times = pool.into_iter().filter_map(time);
        times.min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))
    }

    /// A figure of the memory bench.
    pub fn memory(&self, name: &str, metric: &str) -> Option<f64> {
        let is = |r: &&Row| cell(r, "peer") == name && cell(r, "metric") == metric;
        self.table("memory.tsv")
            .iter()
            .find(is)
            .map(|r| number(r, "value"))
    }
}

/// The peers the "fastest peer" figures compare against: every keyed lock
/// but this crate (the floor is not a lock).
pub fn rivals() -> impl Iterator<Item = &'static Lock> {
    let rival = |lock: &&Lock| lock.name != OURS.name && lock.name != FLOOR.name;
    PEERS.iter().filter(rival)
}

/// The rivals that serve waiters strictly in turn.
pub fn fifo_rivals() -> impl Iterator<Item = &'static Lock> {
    rivals().filter(|lock| lock.fifo)
}

/// Every lock the benches time, in the report's order: this crate, then
/// in its pairs mode, every other peer, the references.
pub fn locks() -> impl Iterator<Item = &'static Lock> {
    let others = PEERS.iter().chain(&REFERENCES);
    let others = others.filter(|lock| lock.name != OURS.name);
    [&OURS, &OURS_ONE_BY_ONE].into_iter().chain(others)
}

/// Every name a criterion group may hold: the locks, then the key alone.
pub fn criterion_names() -> impl Iterator<Item = &'static str> {
    locks().map(|lock| lock.name).chain([KEY_ONLY])
}

/// Criterion's median per element (an acquire and release, or a pairs
/// operation) of every benchmark that ran, from the `new` estimates.
fn criterion_times(dir: &Path) -> Vec<(&'static str, &'static str, f64)> {
    let ids = SCENARIOS.iter().map(|s| s.id);
    let benches = ids.flat_map(|id| criterion_names().map(move |name| (id, name)));
    let median = |(id, name): (&'static str, &'static str)| {
        let base = dir.join(id).join(name).join("new");
        let json = |file| -> Option<serde_json::Value> {
            serde_json::from_str(&fs::read_to_string(base.join(file)).ok()?).ok()
        };
        let (meta, estimates) = (json("benchmark.json")?, json("estimates.json")?);
        // Elements per iteration, where the bench sets a throughput.
        let elements = meta["throughput"]["Elements"].as_f64().unwrap_or(1.0);
        let median = estimates["median"]["point_estimate"].as_f64()?;
        Some((id, name, median / elements))
    };
    benches.filter_map(median).collect()
}

/// Every file in `dir`: the benches' tables (a header naming the
/// columns, then a row per line; comma-separated in a `.csv`,
/// tab-separated in a `.tsv`), and the script's one-line files.
fn read_files(dir: &Path) -> Results {
    let mut results = Results::default();
    let paths = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    for path in paths {
        let (Some(name), Ok(text)) = (path.file_name(), fs::read_to_string(&path)) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        let sep = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => ',',
            Some("tsv") => '\t',
            _ => {
                results.run.insert(name, text.trim().into());
                continue;
            }
        };
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        let header: Vec<&str> = lines.next().unwrap_or("").split(sep).collect();
        let cell = |(h, c): (&&str, &str)| (h.to_string(), c.to_string());
        let row = |line: &str| header.iter().zip(line.split(sep)).map(cell).collect();
        results.tables.insert(name, lines.map(row).collect());
    }
    results
}

/// A cell as text. The files are machine-written: a missing column is a
/// bug in the writer, so it stops the report with the column's name.
pub fn cell<'a>(row: &'a Row, column: &str) -> &'a str {
    let text = row.get(column).map(String::as_str);
    text.unwrap_or_else(|| panic!("no `{column}` column"))
}

/// A cell as a number; anything else stops the report, as [`cell`] does.
pub fn number(row: &Row, column: &str) -> f64 {
    let text = cell(row, column);
    let parsed = text.parse();
    parsed.unwrap_or_else(|_| panic!("`{column}` is not a number: {text:?}"))
}

/// A cell that may be empty (the fairness bench leaves `vs_ref_tokio`
/// empty without the tokio mutex, and the waits in its `tight` section).
pub fn maybe_number(row: &Row, column: &str) -> Option<f64> {
    let text = row.get(column).filter(|text| !text.is_empty());
    text.map(|_| number(row, column))
}

/// The run the tests report on: the files in `report/sample/`, criterion's
/// medians of a few peers in `criterion.tsv` there.
#[cfg(test)]
pub fn sample() -> Results {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("report/sample");
    let mut results = read_files(&dir);
    let time = |r: &Row| {
        let id = SCENARIOS.iter().find(|s| s.id == cell(r, "id")).unwrap().id;
        let name = criterion_names().find(|n| *n == cell(r, "name")).unwrap();
        (id, name, number(r, "ns"))
    };
    results.times = results.table("criterion.tsv").iter().map(time).collect();
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{FUTURES_LOCK_RECIPE, KEY_MUTEX, LOCKABLE, REF_TOKIO_MUTEX};

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
        let contended = [(OURS.name, 150.0), (REF_TOKIO_MUTEX.name, 180.0)];
        assert_eq!(
            results.times,
            contended.map(|(name, ns)| ("contended", name, ns))
        );
        assert_eq!(
            (results.run("date"), results.table("queue.tsv")),
            ("?", &[][..])
        );
        assert!(Results::read(&dir.join("criterion")).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_benches_files_read_back() {
        let results = sample();
        assert_eq!(results.run("date"), "2026-12-03 08:41 UTC");
        let fairness = &results.table("fairness.csv")[1];
        assert_eq!(cell(fairness, "name"), FUTURES_LOCK_RECIPE.name);
        assert_eq!(maybe_number(fairness, "wait_p50_ns"), Some(50.0));
        let tight = &results.table("fairness-tight.csv")[0];
        assert_eq!(maybe_number(tight, "wait_p50_ns"), None);
        assert_eq!(results.memory(OURS.name, "held_key_bytes_1000"), Some(57.5));
    }

    #[test]
    fn the_fastest_is_the_least_time() {
        let peers = [OURS, LOCKABLE, KEY_MUTEX, FUTURES_LOCK_RECIPE];
        let times = peers.iter().zip([50.0, 90.0, 80.0, 70.0]);
        let times = times.map(|(lock, ns)| ("hot", lock.name, ns)).collect();
        let results = Results {
            times,
            ..Results::default()
        };
        let fastest = results.fastest("hot", rivals());
        assert_eq!(fastest, Some((70.0, FUTURES_LOCK_RECIPE.name)));
        let fifo = results.fastest("hot", fifo_rivals());
        assert_eq!(fifo, Some((80.0, KEY_MUTEX.name)));
        assert_eq!(results.fastest("spread", rivals()), None);
    }
}
