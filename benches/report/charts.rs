//! The charts, as SVG drawn with plotters; text is left to the viewer's fonts.

use std::error::Error;
use std::ops::Range;
use std::path::Path;

use plotters::coord::{ranged1d::ValueFormatter, types::RangedCoordf64, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::format::{plain, tick, time};
use crate::names::{FLOOR, KEY_ONLY, KIND_PEER, KIND_REFERENCE, OURS, PEERS, SCENARIOS};
use crate::results::{cell, number, Results, Row, CRITERION, PHASES};

type Failed = Box<dyn Error>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A row of a bar chart: its label, its bars (value, colour) top to bottom.
type BarRow = (String, Vec<(f64, RGBColor)>);
type XLabel<'a> = &'a dyn Fn(&f64) -> String;

/// About README's column on GitHub.
const WIDTH: u32 = 800;
const TEXT: RGBColor = rgb(0x222222);
const MUTED: RGBColor = rgb(0x666666);
const GRID: RGBColor = rgb(0xe6e6e6);
const OURS_COLOR: RGBColor = rgb(0xe8590c);
const PEER_COLOR: RGBColor = rgb(0x4e79a7);
const REFERENCE_COLOR: RGBColor = rgb(0xbbbbbb);
const OURS_BAND: RGBColor = rgb(0xfff0e6);
/// Tableau 10 without its orange, which is lock-manager's.
const PALETTE: [u32; 6] = [0x4e79a7, 0x59a14f, 0xb07aa1, 0x76b7b2, 0x9c755f, 0xe15759];
/// The worst-wait chart's bars: `wait_*_ns` column, colour, legend.
const WAITS: [(&str, u32, &str); 3] = [
    ("p50", 0xa0cbe8, "p50 (median)"),
    ("p99", 0x4e79a7, "p99"),
    ("max", 0x1c3d5a, "max: the longest any acquire waited"),
];

/// Draws every chart it has figures for: a partial run still draws the rest.
pub fn draw(results: &Results, dir: &Path) -> Result<(), Failed> {
    std::fs::create_dir_all(dir)?;
    let none = |file| results.table(file).is_empty();
    type Chart = fn(&Results) -> Result<String, Failed>;
    let charts: [(&str, bool, Chart); 3] = [
        ("time-per-op.svg", none(CRITERION), time_per_op),
        ("queue-scaling.svg", none("queue.tsv"), queue_scaling),
        ("worst-wait.svg", none("fairness.csv"), worst_wait),
    ];
    for (name, empty, chart) in charts {
        if empty {
            eprintln!("bench-report: no results for {name}: not drawn");
            continue;
        }
        std::fs::write(dir.join(name), chart(results)?)?;
        eprintln!("wrote {}", dir.join(name).display());
    }
    Ok(())
}

const fn rgb(hex: u32) -> RGBColor {
    RGBColor((hex >> 16) as u8, (hex >> 8) as u8, hex as u8)
}

/// The charts' font at `px` pixels (plotters writes sizes over 1.24).
fn font(px: f64) -> FontDesc<'static> {
    FontDesc::from(("Helvetica, Arial, sans-serif", px * 1.24))
}

fn label(px: f64) -> TextStyle<'static> {
    let pos = Pos::new(HPos::Left, VPos::Center);
    font(px).color(&TEXT).pos(pos)
}

/// A white page (dark mode hides text on a transparent one), then an area per height.
fn page<'a>(
    out: &'a mut String,
    results: &Results,
    (title, lines, key): (&str, &[&str], &[(RGBColor, &str)]),
    heights: &[u32],
) -> Result<Vec<Area<'a>>, Failed> {
    let run = format!("Run {}. Details: benches/RESULTS.md.", results.run("date"));
    let lines: Vec<&str> = lines.iter().copied().chain([run.as_str()]).collect();
    let (mut x, mut y) = (10, 44 + 17 * lines.len() as i32);
    let mut swatches = Vec::new();
    for (color, name) in key {
        let width = 40 + 7 * name.chars().count() as i32;
        if x + width > WIDTH as i32 {
            (x, y) = (10, y + 20);
        }
        swatches.push(((x, y), color, name));
        x += width;
    }
    let size = (WIDTH, y as u32 + 24 + heights.iter().sum::<u32>());
    let root = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let bold = font(18.0).style(FontStyle::Bold).color(&TEXT);
    root.draw(&Text::new(title, (10, 10), bold))?;
    for (i, line) in lines.iter().enumerate() {
        let muted = font(12.0).color(&MUTED);
        root.draw(&Text::new(*line, (10, 36 + 17 * i as i32), muted))?;
    }
    for ((x, y), color, name) in swatches {
        root.draw(&Rectangle::new([(x, y), (x + 14, y + 12)], color.filled()))?;
        root.draw(&Text::new(*name, (x + 20, y + 6), label(12.0)))?;
    }
    let breaks = heights.iter().scan(y as u32 + 24, |top, h| {
        *top += h;
        Some(*top - h)
    });
    Ok(root.split_by_breakpoints([0; 0], breaks.collect::<Vec<_>>())[1..].to_vec())
}

/// A log axis ending on ticks, at 1, 2 and 5 times powers of ten (over 300x: 1 only).
pub fn log_axis(values: impl IntoIterator<Item = f64>) -> (Range<f64>, Vec<f64>) {
    let fold = |(lo, hi): (f64, f64), v: f64| (lo.min(v), hi.max(v));
    let (min, max) = values.into_iter().fold((f64::MAX, 1e-3), fold);
    let multiples: &[f64] = [&[1.0, 2.0, 5.0][..], &[1.0]][usize::from(max / min > 300.0)];
    let decades = min.log10().floor() as i32..=max.log10().floor() as i32 + 1;
    let steps = decades.flat_map(|e| multiples.iter().map(move |m| m * 10f64.powi(e)));
    let steps: Vec<f64> = steps.collect();
    let lo = steps.iter().rfind(|s| **s <= min * (1.0 + 1e-9));
    let lo = *lo.unwrap_or(&min);
    let hi = steps.iter().find(|s| **s > lo && **s >= max * (1.0 - 1e-9));
    let hi = *hi.unwrap_or(&max);
    let ticks = steps.into_iter().filter(|s| (lo..=hi).contains(s));
    (lo..hi, ticks.collect())
}

/// Horizontal bars, each with its time beside it, a row's one under the other.
fn bars_panel(
    area: &Area,
    title: &str,
    x: impl Ranged<ValueType = f64> + ValueFormatter<f64>,
    (x_desc, x_label): (&str, XLabel),
    (rows, width): (&[BarRow], u32),
) -> Result<(), Failed> {
    let Range { start: lo, end: hi } = x.range();
    let n = rows.len();
    let mid = |i: usize| (n - i) as f64 - 0.5;
    let thickness = 0.72 / rows[0].1.len() as f64;
    // Partial only so that plotters takes a label formatter with key points.
    let ys = (0.0..n as f64).with_key_points((0..n).map(mid).collect());
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(12.5).color(&TEXT))
        .margin_right(64)
        .x_label_area_size(36)
        .y_label_area_size(width)
        .build_cartesian_2d(x, ys.partial_axis(0.0..n as f64))?;
    let ours = (0..n).filter(|i| rows[*i].0.starts_with(OURS.name));
    let band = |i| Rectangle::new([(lo, mid(i) - 0.5), (hi, mid(i) + 0.5)], OURS_BAND.filled());
    chart.draw_series(ours.map(band))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(0)
        .bold_line_style(GRID)
        .x_labels(6)
        .x_label_formatter(x_label)
        .y_label_formatter(&|y| rows[n - 1 - *y as usize].0.clone())
        .x_desc(x_desc)
        .label_style(font(10.5).color(&TEXT))
        .axis_desc_style(font(11.0).color(&MUTED))
        .draw()?;
    for (i, (_, bars)) in rows.iter().enumerate() {
        for (slot, &(v, color)) in bars.iter().enumerate() {
            let y = mid(i) + thickness * ((bars.len() - 1) as f64 / 2.0 - slot as f64);
            let corners = [(lo, y - thickness / 2.2), (v, y + thickness / 2.2)];
            chart.draw_series([Rectangle::new(corners, color.filled())])?;
            let text = Text::new(time(v), (4, 0), label(9.5));
            chart.draw_series([EmptyElement::at((v, y)) + text])?;
        }
    }
    Ok(())
}

/// A linear axis per scenario: one axis would flatten the fast ones, a log one the gaps.
pub fn time_per_op(results: &Results) -> Result<String, Failed> {
    let mut panels = Vec::new();
    for s in SCENARIOS {
        let times = results.table(CRITERION).iter();
        let times = times.filter(|r| cell(r, "id") == s.id);
        let bar = |name: &str, ns| (name.to_string(), vec![(ns, color(name))]);
        let times = times.map(|r| bar(cell(r, "name"), number(r, "ns")));
        let rows: Vec<BarRow> = times.collect();
        if !rows.is_empty() {
            panels.push((format!("{}: {}", s.title, s.about), rows));
        }
    }
    let height = |row: &[(String, Vec<_>)]| 76 + 17 * row.iter().map(|p| p.1.len()).max().unwrap();
    let lines = [
        "Median time per acquire and release (pairs: per operation, both keys); shorter is faster.",
        &format!(
            "Each panel has its own linear scale. References, not peers: {} = a map insert and \
             remove, not a lock;",
            FLOOR.name
        ),
        &format!("ref-* = one mutex, no key; {KEY_ONLY} = building the key."),
    ];
    let title = "Time per operation, every peer in one run";
    let key = [(OURS_COLOR, OURS.name), (PEER_COLOR, "keyed peers")];
    let key = [key.as_slice(), &[(REFERENCE_COLOR, "references")]].concat();
    let heights: Vec<u32> = panels.chunks(2).map(|row| height(row) as u32).collect();
    let mut out = String::new();
    let areas = page(&mut out, results, (title, &lines, &key), &heights)?;
    for (row, area) in panels.chunks(2).zip(areas) {
        for ((title, rows), panel) in row.iter().zip(area.split_evenly((1, 2))) {
            let max = rows.iter().map(|r| r.1[0].0).fold(1.0, f64::max);
            // µs once anything reaches 10 µs, so that tick labels stay short.
            let (per, unit) = [(1.0, "ns"), (1e3, "µs")][usize::from(max >= 1e4)];
            let x_desc = format!("{unit} per operation");
            let x_label: XLabel = &|x| plain(x / per);
            let x: RangedCoordf64 = (0.0..max * 1.05).into();
            bars_panel(&panel, title, x, (&x_desc, x_label), (rows, 136))?;
        }
    }
    Ok(out)
}

/// A bar's colour: this crate, a keyed peer, or a reference that is no peer.
fn color(name: &str) -> RGBColor {
    let peer = PEERS.iter().any(|p| p.name == name && p.name != FLOOR.name);
    match name {
        _ if name.starts_with(OURS.name) => OURS_COLOR,
        _ if peer => PEER_COLOR,
        _ => REFERENCE_COLOR,
    }
}

/// Log axes: one peer's hand-off grows a hundredfold, which would flatten the rest.
pub fn queue_scaling(results: &Results) -> Result<String, Failed> {
    let rows = results.table("queue.tsv");
    let of = |name: &'static str| rows.iter().filter(move |r| cell(r, "peer") == name);
    // lock-manager in its own colour, the others in the order of the peers.
    let ran = PEERS.iter().filter(|lock| of(lock.name).next().is_some());
    let others = ran.filter(|lock| lock.name != OURS.name);
    let others = others.zip(PALETTE.iter().cycle());
    let mut key: Vec<(RGBColor, &str)> = others.map(|(l, hex)| (rgb(*hex), l.name)).collect();
    if of(OURS.name).next().is_some() {
        key.insert(0, (OURS_COLOR, OURS.name));
    }
    let mut qs: Vec<f64> = rows.iter().map(|r| number(r, "q")).collect();
    qs.sort_by(f64::total_cmp);
    qs.dedup();
    let lines = [
        "One key, Q waiters, polled by hand: enqueue = each joins the queue; cancel = every other \
         one leaves it;",
        "hand-off = release, and the oldest takes the key. The first (cold) burst, median of up \
         to 7 runs. Flat is O(1).",
    ];
    let title = "Queue scaling: cost per waiter as the queue grows";
    let mut out = String::new();
    let panels = page(&mut out, results, (title, &lines, &key), &[300])?[0].split_evenly((1, 3));
    for (title, panel) in PHASES.into_iter().zip(panels) {
        let column = format!("{}_ns", title.replace('-', ""));
        let (range, ticks) = log_axis(rows.iter().map(|r| number(r, &column)));
        // Some room either side of the end points, so none sits on an edge.
        let x = (qs[0] / 1.5..qs[qs.len() - 1] * 1.5).log_scale();
        let y = range.log_scale().with_key_points(ticks);
        let mut chart = ChartBuilder::on(&panel)
            .caption(title, font(14.0).style(FontStyle::Bold).color(&TEXT))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(62)
            .build_cartesian_2d(x.with_key_points(qs.clone()), y)?;
        chart
            .configure_mesh()
            .bold_line_style(GRID)
            .x_label_formatter(&|q| plain(*q))
            .y_label_formatter(&|t| tick(*t))
            .x_desc("queue length Q (log)")
            .y_desc("time per operation (log)")
            .label_style(font(10.0).color(&MUTED))
            .axis_desc_style(font(11.0).color(&MUTED))
            .draw()?;
        // lock-manager last, so that its line is drawn on top.
        for (color, peer) in key.iter().rev() {
            let point = |r: &Row| (number(r, "q"), number(r, &column));
            let mut points: Vec<(f64, f64)> = of(peer).map(point).collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (width, size) = [(2, 3), (3, 4)][usize::from(*peer == OURS.name)];
            let line = LineSeries::new(points, color.stroke_width(width));
            chart.draw_series(line.point_size(size))?;
        }
    }
    Ok(out)
}

/// A log axis: waits run from tens of ns (a barging lock) to the ms it starves others.
pub fn worst_wait(results: &Results) -> Result<String, Failed> {
    let key = WAITS.map(|(_, hex, name)| (rgb(hex), name));
    let rows = results.table("fairness.csv");
    let wait = |r: &Row, column| number(r, &format!("wait_{column}_ns"));
    let (range, ticks) = log_axis(rows.iter().flat_map(|r| WAITS.map(|w| wait(r, w.0))));
    let mut panels: Vec<(&str, Vec<&Row>)> = Vec::new();
    let titles = ["Keyed peers", "References, not peers"];
    for (kind, title) in [KIND_PEER, KIND_REFERENCE].into_iter().zip(titles) {
        let members: Vec<&Row> = rows.iter().filter(|r| cell(r, "kind") == kind).collect();
        if !members.is_empty() {
            panels.push((title, members));
        }
    }
    let tasks = cell(&rows[0], "tasks");
    let ops = plain(number(&rows[0], "ops_per_task"));
    let lines = [
        &format!(
            "{tasks} tasks × {ops} acquires each on one key, 2-worker tokio runtime, an .await \
             inside the critical section."
        ),
        "A wait runs from asking for the lock to getting it. FIFO bounds the max by the queue \
         ahead;",
        "a barging lock shows a tiny p50 and a huge max: a starved waiter. A reference is one \
         mutex, no key.",
    ];
    let title = "Fairness: how long one acquire waits on a hot key";
    let heights: Vec<u32> = panels.iter().map(|p| 64 + 42 * p.1.len() as u32).collect();
    let mut out = String::new();
    let areas = page(&mut out, results, (title, &lines, &key), &heights)?;
    let fifo = |r: &Row| ["not FIFO", "FIFO"][usize::from(cell(r, "fifo") == "true")];
    let label = |r: &Row| format!("{} ({})", cell(r, "name"), fifo(r));
    // One width for both panels, so that their axes line up.
    let width = 16 + 6 * rows.iter().map(|r| label(r).len()).max().unwrap_or(0) as u32;
    for ((title, members), area) in panels.iter().zip(areas) {
        // p50 on top, max at the bottom of each row.
        let bars = |r: &Row| WAITS.map(|w| (wait(r, w.0), rgb(w.1))).to_vec();
        let rows: Vec<_> = members.iter().map(|r| (label(r), bars(r))).collect();
        let x = range.clone().log_scale().with_key_points(ticks.clone());
        let x_label: XLabel = &|t| tick(*t);
        let x_desc = ("wait per acquire (log scale)", x_label);
        bars_panel(&area, title, x, x_desc, (&rows, width))?;
    }
    Ok(out)
}
