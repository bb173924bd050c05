//! `bench-chart`: draws the results of `scripts/bench.sh` as SVG charts for
//! README.md (issue 8).
//!
//! ```text
//! cargo run --release -p lock-manager-benches --bin bench-chart -- RESULTS_DIR OUT_DIR
//! ```
//!
//! Reads what a run leaves in RESULTS_DIR (`locks.tsv`, which the script
//! writes from criterion's estimates, `queue.tsv` and `fairness.csv`) and
//! writes three charts to OUT_DIR: `time-per-op.svg` (scenarios 1-5 and
//! pairs), `queue-scaling.svg` (scenario 6) and `worst-wait.svg`
//! (fairness). A chart whose input is missing is skipped with a note, so a
//! partial run still draws the rest.
//!
//! The SVG is built by hand as a string rather than with a plotting crate:
//! the charts are committed, so the tool stays dependency-free (nothing
//! reaches the library's dependency graph) and its output deterministic (a
//! fixed layout, rounded coordinates, no timestamps of its own), so that a
//! rerun on the same numbers changes nothing in git.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs, process};

/// Chart width in px: about README's column on GitHub.
const WIDTH: f64 = 800.0;
const MARGIN: f64 = 10.0;
const OURS: &str = "lock-manager";

const TEXT: &str = "#222";
const MUTED: &str = "#666";
const GRID: &str = "#e6e6e6";
const AXIS: &str = "#999";
const OURS_COLOR: &str = "#e8590c";
const PEER_COLOR: &str = "#4e79a7";
/// Light background behind lock-manager's rows where colour already
/// encodes something else.
const OURS_BAND: &str = "#fff0e6";
/// Line colours for the other peers: Tableau 10 without its orange, which
/// is lock-manager's.
const PALETTE: [&str; 8] = [
    "#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f", "#e15759", "#edc948", "#bab0ac",
];

/// Scenario ids as `benches/locks.rs` names its criterion groups, with the
/// titles of the results table and what each one runs.
const SCENARIOS: [(&str, &str, &str); 8] = [
    ("uncontended", "1. uncontended", "one task, one key"),
    ("churn-u64", "2. churn u64", "a new key every cycle"),
    (
        "churn-string",
        "2. churn String",
        "a new 29-byte key every cycle",
    ),
    ("contended", "3. contended", "64 tasks, one key"),
    ("spread", "4. spread", "64 tasks, keys over 1,024"),
    ("pairs", "pairs", "64 tasks, 2 keys per operation"),
    (
        "pairs-16",
        "pairs, 16 keys",
        "64 tasks, 2 of 16 keys per operation",
    ),
    ("hot", "5. hot", "64 tasks, Zipf keys over 10,000"),
];

fn main() {
    let args: Vec<PathBuf> = env::args_os().skip(1).map(PathBuf::from).collect();
    let [results, out] = args.as_slice() else {
        eprintln!("usage: bench-chart RESULTS_DIR OUT_DIR");
        process::exit(2);
    };
    fs::create_dir_all(out).expect("create the charts folder");
    // The run's date (bench.sh writes it): a committed chart says which
    // run it shows.
    let date = fs::read_to_string(results.join("date")).ok();
    let date = date.as_deref().map(str::trim);
    type Draw = fn(&[Row], Option<&str>) -> String;
    let charts: [(&str, &str, Draw); 3] = [
        ("locks.tsv", "time-per-op.svg", time_per_op),
        ("queue.tsv", "queue-scaling.svg", queue_scaling),
        ("fairness.csv", "worst-wait.svg", worst_wait),
    ];
    for (input, name, draw) in charts {
        match read_table(&results.join(input)) {
            Some(rows) if !rows.is_empty() => {
                let path = out.join(name);
                fs::write(&path, draw(&rows, date)).expect("write a chart");
                eprintln!("wrote {}", path.display());
            }
            _ => eprintln!(
                "bench-chart: no results in {}: {name} not drawn",
                results.join(input).display()
            ),
        }
    }
}

// ------------------------------------------------------------------ input

/// One line of a results file, by column name.
type Row = HashMap<String, String>;

/// A results file: a header naming the columns, then a row per line;
/// comma-separated for `.csv`, tab-separated otherwise, as the benches
/// write them. `None` if it cannot be read.
fn read_table(path: &Path) -> Option<Vec<Row>> {
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
/// bug in the writer, so it stops the tool with the column's name.
fn cell<'a>(row: &'a Row, column: &str) -> &'a str {
    row.get(column)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no `{column}` column"))
}

fn number(row: &Row, column: &str) -> f64 {
    let text = cell(row, column);
    text.parse()
        .unwrap_or_else(|_| panic!("`{column}` is not a number: {text:?}"))
}

/// Keys in the order they first appear, each with its items: the files list
/// scenarios and peers in the results table's order, which the charts keep.
fn grouped<K: PartialEq, V>(items: impl IntoIterator<Item = (K, V)>) -> Vec<(K, Vec<V>)> {
    let mut groups: Vec<(K, Vec<V>)> = Vec::new();
    for (key, value) in items {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value),
            None => groups.push((key, vec![value])),
        }
    }
    groups
}

// -------------------------------------------------------------- numbers

/// A time in ns as the results table writes it (`fmt_ns` and `fmt_wait`
/// in scripts/bench.sh), so chart and table read alike; seconds past 1 s.
fn fmt_ns(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} ms", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1} µs", v / 1e3)
    } else if v >= 1000.0 {
        let n = v.round() as u64;
        format!("{},{:03} ns", n / 1000, n % 1000)
    } else {
        format!("{v:.1} ns")
    }
}

/// A round axis label for a time in ns: "50 ns", "1 µs", "100 ms".
fn fmt_tick(v: f64) -> String {
    let (scaled, unit) = match v {
        v if v >= 1e9 => (v / 1e9, "s"),
        v if v >= 1e6 => (v / 1e6, "ms"),
        v if v >= 1e3 => (v / 1e3, "µs"),
        v => (v, "ns"),
    };
    format!("{} {unit}", plain(scaled))
}

/// A number with no needless decimals and thousands separators: "2",
/// "2.5", "100,000".
fn plain(v: f64) -> String {
    if v.fract().abs() > 1e-9 {
        return format!("{v:.1}");
    }
    let digits = format!("{}", v as u64);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A round tick step (1, 2 or 5 times a power of ten) that splits `0..max`
/// into at most `intervals` parts.
fn nice_step(max: f64, intervals: f64) -> f64 {
    let raw = max / intervals;
    let power = 10f64.powi(raw.log10().floor() as i32);
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap()
}

/// The nearest 1, 2 or 5 times a power of ten at or below `v` (`up`:
/// at or above): log axes end on round values.
fn round_125(v: f64, up: bool) -> f64 {
    let power = 10f64.powi(v.log10().floor() as i32);
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * power);
    let eps = v * 1e-9;
    if up {
        steps.into_iter().find(|s| *s >= v - eps).unwrap()
    } else {
        steps.into_iter().rev().find(|s| *s <= v + eps).unwrap()
    }
}

/// The span (hi / lo) above which a log axis has a tick per decade only.
const LONG: f64 = 300.0;

/// A log scale from `lo` to `hi` mapped onto `from..to` px (`to` may be
/// below `from`, for a y axis).
struct LogScale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl LogScale {
    /// A scale around every value in `values`, ending on round values.
    fn around(values: impl IntoIterator<Item = f64>, from: f64, to: f64) -> LogScale {
        let (min, max) = values
            .into_iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (min, max) = (min.max(1e-3), max.max(1e-3));
        let (mut lo, mut hi) = (round_125(min, false), round_125(max, true));
        if hi / lo > LONG {
            // Whole decades, each end labelled (see `ticks`).
            lo = 10f64.powi(min.log10().floor() as i32);
            hi = 10f64.powi(max.log10().ceil() as i32);
        }
        if hi <= lo {
            hi = lo * 10.0;
        }
        LogScale { lo, hi, from, to }
    }

    fn px(&self, v: f64) -> f64 {
        let t = (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        self.from + t * (self.to - self.from)
    }

    /// Ticks at 1, 2 and 5 times each power of ten over a short range, at
    /// each power of ten over a long one, so that labels never crowd.
    fn ticks(&self) -> Vec<f64> {
        let multiples: &[f64] = if self.hi / self.lo <= LONG {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let (first, last) = (
            self.lo.log10().floor() as i32,
            self.hi.log10().ceil() as i32,
        );
        let eps = 1e-9;
        (first..=last)
            .flat_map(|e| multiples.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|t| *t >= self.lo * (1.0 - eps) && *t <= self.hi * (1.0 + eps))
            .collect()
    }
}

// ------------------------------------------------------------------- SVG

/// The elements of one chart, appended in drawing order (later on top).
#[derive(Default)]
struct Svg {
    body: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Svg {
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
        );
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
        );
    }

    /// Text; `attrs` adds attributes (`text-anchor`, `font-weight`, ...).
    fn text(&mut self, x: f64, y: f64, size: f64, attrs: &str, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" {attrs}>{}</text>"#,
            escape(text)
        );
    }

    /// The left and bottom axes of a plot, and `label` centred under it.
    fn axes(&mut self, (x0, x1): (f64, f64), (top, bottom): (f64, f64), label: &str) {
        self.line((x0, top), (x0, bottom), AXIS, 1.0);
        self.line((x0, bottom), (x1, bottom), AXIS, 1.0);
        let anchor = format!(r#"text-anchor="middle" fill="{MUTED}""#);
        self.text((x0 + x1) / 2.0, bottom + 30.0, 11.0, &anchor, label);
    }

    fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64) {
        let points: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="{width}" stroke-linejoin="round"/>"#,
            points.join(" ")
        );
    }

    fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{fill}" stroke="white" stroke-width="1"/>"#
        );
    }

    /// The title, then smaller lines under it; returns the y below them.
    fn heading(&mut self, title: &str, lines: &[&str]) -> f64 {
        self.text(MARGIN, 26.0, 18.0, r#"font-weight="bold""#, title);
        let mut y = 26.0;
        for line in lines.iter().filter(|l| !l.is_empty()) {
            y += 17.0;
            self.text(MARGIN, y, 12.0, &format!(r#"fill="{MUTED}""#), line);
        }
        y + 14.0
    }

    /// The whole document. White background: GitHub shows SVGs as they
    /// are, and a transparent one turns unreadable in dark mode.
    fn finish(self, title: &str, height: f64) -> String {
        let height = height.ceil();
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" fill="{TEXT}">
<title>{}</title>
<defs>
<pattern id="hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
<rect width="5" height="5" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="5" stroke="#9a9a9a" stroke-width="2"/>
</pattern>
</defs>
<rect width="100%" height="100%" fill="white"/>
{}</svg>
"##,
            escape(title),
            self.body
        )
    }
}

/// What a bar or line stands for: this crate (in the pairs also taking the
/// keys one by one, `lock-manager, 1 by 1`), a keyed peer, or a reference
/// that is no peer (the floor, which is not a lock; a `ref-*` mutex with no
/// key; `key-only`, building the key alone).
enum Kind {
    Ours,
    Peer,
    Reference,
}

fn kind(name: &str) -> Kind {
    match name {
        _ if name.starts_with(OURS) => Kind::Ours,
        "floor" | "key-only" => Kind::Reference,
        _ if name.starts_with("ref-") => Kind::Reference,
        _ => Kind::Peer,
    }
}

/// A legend entry per (swatch fill, label), left to right, wrapping at the
/// chart's width; returns the y below the last line.
fn legend(svg: &mut Svg, y: f64, entries: &[(&str, &str)]) -> f64 {
    let (mut x, mut y) = (MARGIN, y);
    for (fill, label) in entries {
        // About 6.5 px per character at 12 px: enough not to overlap.
        let w = 22.0 + label.chars().count() as f64 * 6.5 + 18.0;
        if x + w > WIDTH - MARGIN && x > MARGIN {
            (x, y) = (MARGIN, y + 20.0);
        }
        svg.rect(x, y - 10.0, 14.0, 12.0, fill);
        svg.text(x + 20.0, y, 12.0, "", label);
        x += w;
    }
    y + 12.0
}

// ------------------------------------------------- chart a: time per op

/// One small panel per scenario, each with its own linear axis: the
/// scenarios differ by an order of magnitude, so a shared axis would
/// flatten the fast ones, and a log axis would shrink the gaps between
/// peers that the chart is there to show.
fn time_per_op(rows: &[Row], date: Option<&str>) -> String {
    const COLS: usize = 2;
    const GUTTER: f64 = 20.0;
    const PANEL_W: f64 = (WIDTH - 2.0 * MARGIN - GUTTER) / COLS as f64;
    const NAME_W: f64 = 128.0;
    const VALUE_W: f64 = 64.0;
    const BAR_W: f64 = PANEL_W - NAME_W - VALUE_W;
    const ROW_H: f64 = 17.0;
    const TITLE_H: f64 = 24.0;
    const AXIS_H: f64 = 40.0;

    let scenarios = grouped(
        rows.iter()
            .map(|r| (cell(r, "group"), (cell(r, "peer"), number(r, "ns_per_op")))),
    );
    let mut svg = Svg::default();
    let run = date.map(|d| format!("Run {d}. ")).unwrap_or_default();
    let mut y = svg.heading(
        "Time per operation, every peer in one run",
        &[
            "Median time per acquire and release (pairs: per operation, both keys); shorter is faster.",
            &format!("{run}Each panel has its own linear scale. Details: benches/RESULTS.md."),
        ],
    );
    y = legend(
        &mut svg,
        y + 4.0,
        &[
            (OURS_COLOR, "lock-manager"),
            (PEER_COLOR, "keyed peers"),
            ("url(#hatch)", "references, not peers"),
        ],
    );
    let muted = format!(r#"fill="{MUTED}""#);
    svg.text(
        MARGIN,
        y + 6.0,
        11.0,
        &muted,
        "References: floor = a map insert and remove, not a lock; ref-* = one mutex every task \
         locks, no key; key-only = building the String key.",
    );
    y += 24.0;

    for chunk in scenarios.chunks(COLS) {
        let tallest = chunk.iter().map(|(_, bars)| bars.len()).max().unwrap_or(0);
        for (col, (group, bars)) in chunk.iter().enumerate() {
            let px = MARGIN + col as f64 * (PANEL_W + GUTTER);
            let (title, about) = SCENARIOS
                .iter()
                .find(|(id, _, _)| id == group)
                .map_or((*group, ""), |(_, title, about)| (*title, *about));
            let _ = writeln!(
                svg.body,
                r#"<text x="{px:.1}" y="{:.1}" font-size="13"><tspan font-weight="bold">{}</tspan><tspan fill="{MUTED}">{}</tspan></text>"#,
                y + 15.0,
                escape(title),
                escape(&if about.is_empty() {
                    String::new()
                } else {
                    format!(": {about}")
                }),
            );

            // µs once anything reaches 10 µs, so tick labels stay short.
            // At least 1 ns, so that the axis has a length.
            let max = bars.iter().map(|(_, v)| *v).fold(1.0, f64::max);
            let (unit, per) = if max >= 10_000.0 {
                ("µs", 1000.0)
            } else {
                ("ns", 1.0)
            };
            let step = nice_step(max / per, 5.0) * per;
            let top = (max / step).ceil().max(1.0) * step;
            let x0 = px + NAME_W;
            let plot_top = y + TITLE_H;
            let plot_bottom = plot_top + bars.len() as f64 * ROW_H;
            let scale = |v: f64| x0 + v / top * BAR_W;

            let mut tick = 0.0;
            while tick <= top * (1.0 + 1e-9) {
                let x = scale(tick);
                svg.line((x, plot_top), (x, plot_bottom), GRID, 1.0);
                svg.text(
                    x,
                    plot_bottom + 13.0,
                    10.0,
                    &format!(r#"text-anchor="middle" {muted}"#),
                    &plain(tick / per),
                );
                tick += step;
            }
            svg.text(
                x0 + BAR_W / 2.0,
                plot_bottom + 27.0,
                11.0,
                &format!(r#"text-anchor="middle" {muted}"#),
                &format!("{unit} per operation"),
            );

            for (i, (peer, v)) in bars.iter().enumerate() {
                let row_y = plot_top + i as f64 * ROW_H;
                let (fill, attrs) = match kind(peer) {
                    Kind::Ours => (OURS_COLOR, r#"font-weight="bold""#.to_string()),
                    Kind::Peer => (PEER_COLOR, String::new()),
                    Kind::Reference => ("url(#hatch)", format!(r#"font-style="italic" {muted}"#)),
                };
                svg.rect(x0, row_y + 2.5, scale(*v) - x0, ROW_H - 5.0, fill);
                let base = row_y + ROW_H / 2.0 + 4.0;
                svg.text(
                    x0 - 6.0,
                    base,
                    11.0,
                    &format!(r#"text-anchor="end" {attrs}"#),
                    peer,
                );
                svg.text(scale(*v) + 4.0, base, 10.0, &attrs, &fmt_ns(*v));
            }
            svg.line((x0, plot_top), (x0, plot_bottom), AXIS, 1.0);
        }
        y += TITLE_H + tallest as f64 * ROW_H + AXIS_H;
    }
    svg.finish("Time per operation, every peer in one run", y)
}

// ---------------------------------------------- chart b: queue scaling

/// A panel per operation, per-op cost against the queue length, both on
/// log axes: the target is a flat line, and one peer's hand-off grows by
/// two orders of magnitude, which a linear axis would make of every other
/// line a flat stroke along the bottom.
fn queue_scaling(rows: &[Row], date: Option<&str>) -> String {
    const PHASES: [(&str, &str); 3] = [
        ("enqueue_ns", "enqueue"),
        ("cancel_ns", "cancel"),
        ("handoff_ns", "hand-off"),
    ];
    const PANEL_W: f64 = (WIDTH - 2.0 * MARGIN) / 3.0;
    const LEFT: f64 = 58.0;
    const RIGHT: f64 = 16.0;
    const PLOT_H: f64 = 230.0;

    let peers = grouped(rows.iter().map(|r| (cell(r, "peer"), r)));
    let qs: Vec<f64> = rows.iter().map(|r| number(r, "q")).collect();
    let (q_min, q_max) = qs
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), q| (lo.min(*q), hi.max(*q)));
    // Colours by the peer's place in the file, the same in every panel;
    // lock-manager's is its own.
    let colour = |i: usize, peer: &str| {
        if peer == OURS {
            OURS_COLOR
        } else {
            let others = peers[..i].iter().filter(|(p, _)| *p != OURS).count();
            PALETTE[others % PALETTE.len()]
        }
    };

    let mut svg = Svg::default();
    let run = date.map(|d| format!("Run {d}. ")).unwrap_or_default();
    let top = svg.heading(
        "Queue scaling: cost per waiter as the queue grows",
        &[
            "One key, Q waiters, polled by hand: enqueue = each joins the queue; cancel = every \
             other one leaves it;",
            "hand-off = release, and the oldest takes the key. The first (cold) burst, median of up \
             to 7 runs.",
            &format!("{run}Flat is O(1) per operation. Both axes log scale. Details: \
                      benches/RESULTS.md."),
        ],
    );
    let plot_top = top + 26.0;
    let plot_bottom = plot_top + PLOT_H;
    let muted = format!(r#"fill="{MUTED}""#);

    for (p, (column, title)) in PHASES.iter().enumerate() {
        let px = MARGIN + p as f64 * PANEL_W;
        let (x0, x1) = (px + LEFT, px + PANEL_W - RIGHT);
        svg.text(px + LEFT, top + 12.0, 13.0, r#"font-weight="bold""#, title);
        // Some room either side of the end points, so none sits on an edge.
        let xs = LogScale {
            lo: q_min / 1.5,
            hi: q_max * 1.5,
            from: x0,
            to: x1,
        };
        let ys = LogScale::around(
            rows.iter().map(|r| number(r, column)),
            plot_bottom,
            plot_top,
        );

        for t in ys.ticks() {
            let y = ys.px(t);
            svg.line((x0, y), (x1, y), GRID, 1.0);
            svg.text(
                x0 - 5.0,
                y + 3.5,
                10.0,
                &format!(r#"text-anchor="end" {muted}"#),
                &fmt_tick(t),
            );
        }
        let mut seen = qs.clone();
        seen.sort_by(f64::total_cmp);
        seen.dedup();
        for q in seen {
            let x = xs.px(q);
            svg.line((x, plot_top), (x, plot_bottom), GRID, 1.0);
            let anchor = format!(r#"text-anchor="middle" {muted}"#);
            svg.text(x, plot_bottom + 14.0, 10.0, &anchor, &plain(q));
        }
        svg.axes((x0, x1), (plot_top, plot_bottom), "queue length Q (log)");
        let (cx, cy) = (px + 10.0, (plot_top + plot_bottom) / 2.0);
        svg.text(
            cx,
            cy,
            11.0,
            &format!(r#"text-anchor="middle" transform="rotate(-90 {cx:.1} {cy:.1})" {muted}"#),
            "time per operation (log)",
        );

        // lock-manager last, so that its line is drawn on top.
        let mut order: Vec<usize> = (0..peers.len()).collect();
        order.sort_by_key(|i| peers[*i].0 == OURS);
        for i in order {
            let (peer, points) = &peers[i];
            let mut points: Vec<(f64, f64)> = points
                .iter()
                .map(|r| (number(r, "q"), number(r, column)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let pxs: Vec<(f64, f64)> = points.iter().map(|(q, v)| (xs.px(*q), ys.px(*v))).collect();
            let ours = *peer == OURS;
            svg.polyline(&pxs, colour(i, peer), if ours { 3.0 } else { 1.6 });
            for (x, y) in pxs {
                svg.circle(x, y, if ours { 4.0 } else { 3.0 }, colour(i, peer));
            }
        }
    }

    let entries: Vec<(&str, &str)> = peers
        .iter()
        .enumerate()
        .map(|(i, (peer, _))| (colour(i, peer), *peer))
        .collect();
    let y = legend(&mut svg, plot_bottom + 56.0, &entries);
    svg.finish("Queue scaling: cost per waiter as the queue grows", y + 8.0)
}

// ------------------------------------------------- chart c: worst wait

/// Three bars per lock (p50, p99, max wait) on one log axis: waits run from
/// tens of ns (a barging lock's holder taking it back) to hundreds of ms
/// (the waiter it starved). Horizontal, so that names and values read
/// without rotation; references (one mutex, no key) in a section of their
/// own below the keyed peers.
fn worst_wait(rows: &[Row], date: Option<&str>) -> String {
    const STATS: [(&str, &str, &str); 3] = [
        ("wait_p50_ns", "p50 (median)", "#a0cbe8"),
        ("wait_p99_ns", "p99", "#4e79a7"),
        (
            "wait_max_ns",
            "max (the longest any acquire waited)",
            "#1c3d5a",
        ),
    ];
    const NAME_W: f64 = 150.0;
    const VALUE_W: f64 = 70.0;
    const BAR_H: f64 = 10.0;
    const BAR_GAP: f64 = 1.0;
    const GROUP_GAP: f64 = 10.0;
    const SECTION_H: f64 = 24.0;

    let first = &rows[0];
    let mut svg = Svg::default();
    let run = date.map(|d| format!("Run {d}. ")).unwrap_or_default();
    let top = svg.heading(
        "Fairness: how long one acquire waits on a hot key",
        &[
            &format!(
                "{} tasks × {} acquires each on one key, 2-worker tokio runtime, an .await inside \
                 the critical section.",
                cell(first, "tasks"),
                plain(number(first, "ops_per_task"))
            ),
            "A wait runs from asking for the lock to getting it. FIFO bounds the max by the queue \
             ahead;",
            &format!(
                "a barging lock shows a tiny p50 and a huge max: a starved waiter. {}",
                run.trim_end()
            ),
        ],
    );
    let entries: Vec<(&str, &str)> = STATS
        .iter()
        .map(|(_, label, fill)| (*fill, *label))
        .collect();
    let mut y = legend(&mut svg, top + 4.0, &entries) + 12.0;

    let (x0, x1) = (MARGIN + NAME_W, WIDTH - MARGIN - VALUE_W);
    let values = rows
        .iter()
        .flat_map(|r| STATS.map(|(column, _, _)| number(r, column)));
    let xs = LogScale::around(values, x0, x1);
    let plot_top = y;
    let muted = format!(r#"fill="{MUTED}""#);
    let group_h = STATS.len() as f64 * (BAR_H + BAR_GAP) - BAR_GAP;

    // Lay the rows out first, so that the grid can go under them.
    let sections = [
        ("peer", "Keyed peers"),
        (
            "reference",
            "References, not peers: one mutex every task locks, no key",
        ),
    ];
    let mut placed = Vec::new();
    for (kind, heading) in sections {
        let members: Vec<&Row> = rows.iter().filter(|r| cell(r, "kind") == kind).collect();
        if members.is_empty() {
            continue;
        }
        placed.push((y, None, heading));
        y += SECTION_H;
        for row in members {
            placed.push((y, Some(row), ""));
            y += group_h + GROUP_GAP;
        }
    }
    let plot_bottom = y;

    for t in xs.ticks() {
        let x = xs.px(t);
        svg.line((x, plot_top), (x, plot_bottom), GRID, 1.0);
        let anchor = format!(r#"text-anchor="middle" {muted}"#);
        svg.text(x, plot_bottom + 14.0, 10.0, &anchor, &fmt_tick(t));
    }
    for (row_y, row, heading) in placed {
        let Some(row) = row else {
            svg.text(MARGIN, row_y + 16.0, 12.0, r#"font-weight="bold""#, heading);
            continue;
        };
        let name = cell(row, "name");
        let ours = name == OURS;
        if ours {
            svg.rect(
                MARGIN,
                row_y - GROUP_GAP / 2.0,
                WIDTH - 2.0 * MARGIN,
                group_h + GROUP_GAP,
                OURS_BAND,
            );
        }
        let weight = if ours { r#"font-weight="bold""# } else { "" };
        svg.text(
            x0 - 8.0,
            row_y + 12.0,
            12.0,
            &format!(r#"text-anchor="end" {weight}"#),
            name,
        );
        let fifo = if cell(row, "fifo") == "true" {
            "FIFO"
        } else {
            "not FIFO"
        };
        svg.text(
            x0 - 8.0,
            row_y + 26.0,
            10.0,
            &format!(r#"text-anchor="end" {muted}"#),
            fifo,
        );
        for (s, (column, _, fill)) in STATS.iter().enumerate() {
            let v = number(row, column);
            let bar_y = row_y + s as f64 * (BAR_H + BAR_GAP);
            svg.rect(x0, bar_y, xs.px(v) - x0, BAR_H, fill);
            svg.text(xs.px(v) + 4.0, bar_y + BAR_H - 1.5, 9.5, weight, &fmt_ns(v));
        }
    }
    svg.axes(
        (x0, x1),
        (plot_top, plot_bottom),
        "wait per acquire (log scale)",
    );
    svg.finish(
        "Fairness: how long one acquire waits on a hot key",
        plot_bottom + 42.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_in_the_results_table() {
        assert_eq!(fmt_ns(42.2), "42.2 ns");
        assert_eq!(fmt_ns(1648.4), "1,648 ns");
        assert_eq!(fmt_ns(1999.6), "2,000 ns");
        assert_eq!(fmt_ns(21_400.0), "21.4 µs");
        assert_eq!(fmt_ns(644_466_071.0), "644.5 ms");
        assert_eq!(fmt_tick(0.5e6), "500 µs");
        assert_eq!(fmt_tick(2e9), "2 s");
        assert_eq!(plain(100_000.0), "100,000");
        assert_eq!(plain(2.5), "2.5");
    }

    #[test]
    fn axes_end_on_round_values() {
        assert_eq!(nice_step(180.9, 5.0), 50.0);
        assert_eq!(nice_step(813.6, 5.0), 200.0);
        assert_eq!(
            (round_125(42.0, false), round_125(115.0, true)),
            (20.0, 200.0)
        );
        assert_eq!(
            (round_125(1000.0, false), round_125(1000.0, true)),
            (1000.0, 1000.0)
        );
        let short = LogScale::around([42.0, 115.0], 0.0, 100.0);
        assert_eq!(short.ticks(), [20.0, 50.0, 100.0, 200.0]);
        let long = LogScale::around([30.0, 644e6], 0.0, 100.0);
        assert_eq!((long.lo, long.hi), (10.0, 1e9));
        assert_eq!(long.ticks().len(), 9);
        assert_eq!(long.px(10.0), 0.0);
        assert_eq!(long.px(1e9), 100.0);
    }

    #[test]
    fn tables_split_by_their_extension() {
        let dir = env::temp_dir().join(format!("bench-chart-test-{}", process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.csv"), "kind,name\npeer,x\n\n").unwrap();
        fs::write(dir.join("a.tsv"), "group\tpeer\tns_per_op\nhot\tx,y\t1.5\n").unwrap();
        let csv = read_table(&dir.join("a.csv")).unwrap();
        let tsv = read_table(&dir.join("a.tsv")).unwrap();
        assert_eq!((csv.len(), cell(&csv[0], "name")), (1, "x"));
        assert_eq!(
            (cell(&tsv[0], "peer"), number(&tsv[0], "ns_per_op")),
            ("x,y", 1.5)
        );
        assert!(read_table(&dir.join("missing.tsv")).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
