//! The charts of a run, as SVG drawn with plotters: time per operation
//! (the scenarios of `benches/locks.rs`), queue scaling and the worst wait.
//! Text is left to the viewer's fonts (plotters' SVG backend writes
//! `<text>` elements), so no font is read here.

use std::error::Error;
use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::format::{plain, tick, time};
use crate::names::{FLOOR, KEY_ONLY, OURS, OURS_ONE_BY_ONE, PEERS, REFERENCES, SCENARIOS};
use crate::results::{cell, number, Results, Row};

/// What drawing can fail with: plotters' errors, or writing the file.
type Failed = Box<dyn Error>;
/// A part of a chart being drawn.
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A bar: its row from the top, its value, its colour. The bars of a row
/// stand one under the other, in order.
type Bar = (usize, f64, RGBColor);

/// Chart width in px: about README's column on GitHub.
const WIDTH: u32 = 800;
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);
const GRID: RGBColor = RGBColor(0xe6, 0xe6, 0xe6);
const OURS_COLOR: RGBColor = RGBColor(0xe8, 0x59, 0x0c);
const PEER_COLOR: RGBColor = RGBColor(0x4e, 0x79, 0xa7);
const REFERENCE_COLOR: RGBColor = RGBColor(0xbb, 0xbb, 0xbb);
/// Behind lock-manager's rows.
const OURS_BAND: RGBColor = RGBColor(0xff, 0xf0, 0xe6);
/// Line colours for the other peers: Tableau 10 without its orange, which
/// is lock-manager's.
const PALETTE: [u32; 6] = [0x4e79a7, 0x59a14f, 0xb07aa1, 0x76b7b2, 0x9c755f, 0xe15759];

/// Draws every chart it has figures for into `dir`, and says which it
/// could not: a partial run still draws the rest.
pub fn draw(results: &Results, dir: &Path) -> Result<(), Failed> {
    std::fs::create_dir_all(dir)?;
    type Chart = fn(&Results) -> Result<String, Failed>;
    let charts: [(&str, bool, Chart); 3] = [
        ("time-per-op.svg", results.times.is_empty(), time_per_op),
        (
            "queue-scaling.svg",
            results.table("queue.tsv").is_empty(),
            queue_scaling,
        ),
        (
            "worst-wait.svg",
            results.table("fairness.csv").is_empty(),
            worst_wait,
        ),
    ];
    for (name, empty, chart) in charts {
        if empty {
            eprintln!("bench-report: no results for {name}: not drawn");
        } else {
            std::fs::write(dir.join(name), chart(results)?)?;
            eprintln!("wrote {}", dir.join(name).display());
        }
    }
    Ok(())
}

/// The charts' font at `px` pixels (plotters writes sizes over 1.24).
fn font(px: f64) -> FontDesc<'static> {
    FontDesc::from(("Helvetica, Arial, sans-serif", px * 1.24))
}

/// Text that starts at a point, centred on it vertically.
fn label(px: f64) -> TextStyle<'static> {
    let pos = Pos::new(HPos::Left, VPos::Center);
    font(px).color(&TEXT).pos(pos)
}

/// A chart's page in `out`: white (GitHub shows an SVG as it is, and a
/// transparent one turns unreadable in dark mode), `title`, `lines` under
/// it and which run it shows (a committed chart says so), a legend of
/// `key`; returns the area `height` px tall below them, where the chart
/// goes. The SVG is complete once every area of it is dropped.
fn page<'a>(
    out: &'a mut String,
    results: &Results,
    (title, lines): (&str, &[&str]),
    key: &[(RGBColor, &str)],
    height: u32,
) -> Result<Area<'a>, Failed> {
    let run = format!("Run {}. Details: benches/RESULTS.md.", results.run("date"));
    let lines: Vec<&str> = lines.iter().copied().chain([run.as_str()]).collect();
    // The legend's swatches, wrapping at the chart's width.
    let (mut x, mut y) = (10, 44 + 17 * lines.len() as i32);
    let mut swatches = Vec::new();
    for (color, name) in key {
        // About 7 px per character at 12 px: enough not to overlap.
        let width = 40 + 7 * name.chars().count() as i32;
        if x + width > WIDTH as i32 {
            (x, y) = (10, y + 20);
        }
        swatches.push(((x, y), color, name));
        x += width;
    }
    let size = (WIDTH, y as u32 + 24 + height);
    let root = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let bold = font(18.0).style(FontStyle::Bold).color(&TEXT);
    root.draw(&Text::new(title, (10, 10), bold))?;
    for (i, line) in lines.iter().enumerate() {
        let muted = font(12.0).color(&MUTED);
        root.draw(&Text::new(*line, (10, 36 + 17 * i as i32), muted))?;
    }
    for ((x, y), color, name) in swatches {
        let swatch = [(x, y), (x + 14, y + 12)];
        root.draw(&Rectangle::new(swatch, color.filled()))?;
        root.draw(&Text::new(*name, (x + 20, y + 6), label(12.0)))?;
    }
    Ok(root.split_vertically(y + 24).1)
}

/// A log axis around `values`: its range and ticks, at 1, 2 and 5 times
/// each power of ten, or over a span of more than 300 at each power of
/// ten alone, so that labels never crowd; the range ends on ticks.
fn log_axis(values: impl IntoIterator<Item = f64>) -> (Range<f64>, Vec<f64>) {
    let fold = |(lo, hi): (f64, f64), v: f64| (lo.min(v), hi.max(v));
    let (min, max) = values.into_iter().fold((f64::MAX, 1e-3), fold);
    let long = max / min > 300.0;
    let multiples: &[f64] = [&[1.0, 2.0, 5.0][..], &[1.0]][usize::from(long)];
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

/// The y coordinate of the middle of row `i` of `n`, counted from the top.
fn row_y(i: usize, n: usize) -> f64 {
    (n - i) as f64 - 0.5
}

/// A panel of horizontal [`Bar`]s under `title`, a row per label, on axis
/// `x` (its range again, where bars start), each bar's time beside it;
/// `x_desc` under the axis, `x_label` for its ticks, the labels `width`
/// px wide. lock-manager's rows are shaded.
fn bars_panel<X>(
    area: &Area,
    title: &str,
    (x, range): (X, Range<f64>),
    (x_desc, x_label): (&str, &dyn Fn(&f64) -> String),
    (labels, bars, width): (&[String], &[Bar], u32),
) -> Result<(), Failed>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = labels.len();
    let per_row = bars.iter().filter(|bar| bar.0 == 0).count();
    let thickness = 0.72 / per_row as f64;
    // Partial over its whole range only so that plotters takes a label
    // formatter for an axis with key points of its own.
    let keys = (0..n).map(|i| row_y(i, n)).collect();
    let rows = (0.0..n as f64).with_key_points(keys);
    let mut chart = ChartBuilder::on(area)
        .caption(title, font(12.5).color(&TEXT))
        .margin_right(64)
        .x_label_area_size(36)
        .y_label_area_size(width)
        .build_cartesian_2d(x, rows.partial_axis(0.0..n as f64))?;
    let ours = (0..n).filter(|i| labels[*i].starts_with(OURS.name));
    let (lo, hi) = (range.start, range.end);
    let band = |i| [(lo, row_y(i, n) - 0.5), (hi, row_y(i, n) + 0.5)];
    chart.draw_series(ours.map(|i| Rectangle::new(band(i), OURS_BAND.filled())))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(0)
        .bold_line_style(GRID)
        .x_labels(6)
        .x_label_formatter(x_label)
        .y_label_formatter(&|y| labels[n - 1 - *y as usize].clone())
        .x_desc(x_desc)
        .label_style(font(10.5).color(&TEXT))
        .axis_desc_style(font(11.0).color(&MUTED))
        .draw()?;
    for (j, &(row, v, color)) in bars.iter().enumerate() {
        let slot = bars[..j].iter().filter(|bar| bar.0 == row).count();
        let y = row_y(row, n) + thickness * ((per_row - 1) as f64 / 2.0 - slot as f64);
        let corners = [(lo, y - thickness / 2.2), (v, y + thickness / 2.2)];
        chart.draw_series([Rectangle::new(corners, color.filled())])?;
        let text = Text::new(time(v), (4, 0), label(9.5));
        chart.draw_series([EmptyElement::at((v, y)) + text])?;
    }
    Ok(())
}

/// One panel per scenario, two abreast, each on a linear axis of its own:
/// the scenarios differ by an order of magnitude, so a shared axis would
/// flatten the fast ones, and a log axis would shrink the gaps between
/// peers that the chart is there to show.
fn time_per_op(results: &Results) -> Result<String, Failed> {
    let mut panels = Vec::new();
    for s in SCENARIOS {
        let times = results.times.iter().filter(|(id, ..)| *id == s.id);
        let times: Vec<(&str, f64)> = times.map(|(_, name, ns)| (*name, *ns)).collect();
        if !times.is_empty() {
            panels.push((format!("{}: {}", s.title, s.about), times));
        }
    }
    let tallest = |row: &[(String, Vec<_>)]| row.iter().map(|p| p.1.len()).max();
    let height = |row| 76 + 17 * tallest(row).unwrap_or(0) as u32;
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
    let total = panels.chunks(2).map(height).sum();
    let mut out = String::new();
    let mut rest = page(&mut out, results, (title, &lines), &key, total)?;
    for row in panels.chunks(2) {
        let (area, below) = rest.split_vertically(height(row));
        rest = below;
        for ((title, times), panel) in row.iter().zip(area.split_evenly((1, 2))) {
            let labels: Vec<String> = times.iter().map(|t| t.0.to_string()).collect();
            let bars = times.iter().enumerate();
            let bars: Vec<Bar> = bars.map(|(i, (name, v))| (i, *v, color(name))).collect();
            let max = times.iter().map(|(_, v)| *v).fold(1.0, f64::max);
            // µs once anything reaches 10 µs, so that tick labels stay short.
            let (per, unit) = [(1.0, "ns"), (1e3, "µs")][usize::from(max >= 1e4)];
            let x = (0.0..max * 1.05, 0.0..max * 1.05);
            let x_desc = format!("{unit} per operation");
            let x_label: &dyn Fn(&f64) -> String = &|x| plain(x / per);
            bars_panel(&panel, title, x, (&x_desc, x_label), (&labels, &bars, 136))?;
        }
    }
    drop(rest);
    Ok(out)
}

/// What a bar stands for, by its colour: this crate (in the pairs also
/// taking the keys one by one), a keyed peer, or a reference that is no
/// peer (the floor, a `ref-*` mutex with no key, building the key alone).
fn color(name: &str) -> RGBColor {
    let references = REFERENCES.map(|r| r.name);
    if [OURS.name, OURS_ONE_BY_ONE.name].contains(&name) {
        OURS_COLOR
    } else if [FLOOR.name, KEY_ONLY].contains(&name) || references.contains(&name) {
        REFERENCE_COLOR
    } else {
        PEER_COLOR
    }
}

/// A panel per operation, per-op cost against the queue length, both on
/// log axes: the target is a flat line, and one peer's hand-off grows by
/// two orders of magnitude, which a linear axis would make of every other
/// line a flat stroke along the bottom.
fn queue_scaling(results: &Results) -> Result<String, Failed> {
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
    let body = page(&mut out, results, (title, &lines), &key, 300)?;
    let phases = [("enqueue", "enqueue"), ("cancel", "cancel")];
    let phases = phases.into_iter().chain([("handoff", "hand-off")]);
    for ((column, title), panel) in phases.zip(body.split_evenly((1, 3))) {
        let column = format!("{column}_ns");
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
    drop(body);
    Ok(out)
}

/// `0xRRGGBB` as a colour.
fn rgb(hex: u32) -> RGBColor {
    RGBColor((hex >> 16) as u8, (hex >> 8) as u8, hex as u8)
}

/// Three bars per lock (p50, p99, max wait) on one log axis: waits run from
/// tens of ns (a barging lock's holder taking it back) to hundreds of ms
/// (the waiter it starved). Horizontal, so that names and values read
/// without rotation; references (one mutex, no key) in a panel of their
/// own below the keyed peers.
fn worst_wait(results: &Results) -> Result<String, Failed> {
    let key = [
        (rgb(0xa0cbe8), "p50 (median)"),
        (rgb(0x4e79a7), "p99"),
        (rgb(0x1c3d5a), "max: the longest any acquire waited"),
    ];
    let columns = ["wait_p50_ns", "wait_p99_ns", "wait_max_ns"];
    let rows = results.table("fairness.csv");
    let waits = rows.iter().flat_map(|r| columns.map(|c| number(r, c)));
    let (range, ticks) = log_axis(waits);
    let mut panels: Vec<(&str, Vec<&Row>)> = Vec::new();
    for (kind, title) in [
        ("peer", "Keyed peers"),
        ("reference", "References, not peers"),
    ] {
        let members: Vec<&Row> = rows.iter().filter(|r| cell(r, "kind") == kind).collect();
        if !members.is_empty() {
            panels.push((title, members));
        }
    }
    let height = |members: &[&Row]| 64 + 42 * members.len() as u32;
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
    let total = panels.iter().map(|(_, members)| height(members)).sum();
    let mut out = String::new();
    let mut rest = page(&mut out, results, (title, &lines), &key, total)?;
    let fifo = |r: &Row| ["not FIFO", "FIFO"][usize::from(cell(r, "fifo") == "true")];
    let label = |r: &Row| format!("{} ({})", cell(r, "name"), fifo(r));
    // One width for both panels, so that their axes line up.
    let width = 16 + 6 * rows.iter().map(|r| label(r).len()).max().unwrap_or(0) as u32;
    for (title, members) in &panels {
        let (area, below) = rest.split_vertically(height(members));
        rest = below;
        let labels: Vec<String> = members.iter().map(|r| label(r)).collect();
        // p50 on top, max at the bottom of each row.
        let mut bars = Vec::new();
        for (i, row) in members.iter().enumerate() {
            let colors = key.map(|(color, _)| color);
            bars.extend(
                colors
                    .iter()
                    .zip(columns)
                    .map(|(c, col)| (i, number(row, col), *c)),
            );
        }
        let x = range.clone().log_scale().with_key_points(ticks.clone());
        let x_label: &dyn Fn(&f64) -> String = &|t| tick(*t);
        let x_desc = ("wait per acquire (log scale)", x_label);
        bars_panel(
            &area,
            title,
            (x, range.clone()),
            x_desc,
            (&labels, &bars, width),
        )?;
    }
    drop(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::sample;

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
        let expected = [
            "Run 2026-12-03 08:41 UTC. Details: benches/RESULTS.md.",
            "1. uncontended: one task, one key|ns per operation|lock-manager|lockable",
            "tokio-recipe|floor|0|20|40|60|80|100|38.2 ns|93.0 ns",
            "enqueue|time per operation (log)|queue length Q (log)|10 ns|20 ns",
            "Keyed peers|wait per acquire (log scale)|lock-manager (FIFO)",
            "30.9 µs|61.0 µs|174.8 µs",
            "References, not peers|wait per acquire (log scale)|ref-tokio-mutex (FIFO)",
        ];
        for (chart, expected) in [0, 0, 0, 1, 2, 2, 2].into_iter().zip(expected) {
            // The text of every <text> element.
            let svg = charts[chart].as_ref().unwrap().lines();
            let text: Vec<&str> = svg.filter(|l| !l.starts_with('<')).collect();
            let text = text.join("|");
            assert!(text.contains(expected), "no {expected:?} in\n{text}");
        }
    }
}
