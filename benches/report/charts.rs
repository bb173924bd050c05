//! The charts of a run, as SVG: time per operation (scenarios 1-5 and
//! pairs), queue scaling (scenario 6) and the worst wait (fairness).

use std::fmt::Write as _;
use std::path::Path;
use std::{fs, io};

use crate::format::{plain, tick, time};
use crate::names::{
    FLOOR, KEY_ONLY, KIND_PEER, KIND_REFERENCE, OURS, OURS_ONE_BY_ONE, REFERENCES, SCENARIOS,
};
use crate::results::{cell, number, Results, Row};
use crate::svg::{
    escape, legend, nice_step, LogScale, Svg, AXIS, GRID, MARGIN, MUTED, OURS_BAND, OURS_COLOR,
    PALETTE, PEER_COLOR, WIDTH,
};

/// Draws every chart it has figures for into `dir`, and says which it
/// wrote and which it could not: a partial run still draws the rest.
pub fn draw(results: &Results, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    // A committed chart says which run it shows.
    let date = results.date.as_deref();
    let charts = [
        (
            "time-per-op.svg",
            (!results.times.is_empty()).then(|| time_per_op(&results.times, date)),
        ),
        (
            "queue-scaling.svg",
            (!results.queue.is_empty()).then(|| queue_scaling(&results.queue, date)),
        ),
        (
            "worst-wait.svg",
            (!results.fairness.is_empty()).then(|| worst_wait(&results.fairness, date)),
        ),
    ];
    for (name, svg) in charts {
        let path = dir.join(name);
        match svg {
            Some(svg) => {
                fs::write(&path, svg)?;
                eprintln!("wrote {}", path.display());
            }
            None => eprintln!("bench-report: no results for {name}: not drawn"),
        }
    }
    Ok(())
}

/// What a bar or line stands for: this crate (in the pairs also taking the
/// keys one by one), a keyed peer, or a reference that is no peer (the
/// floor, which is not a lock; a `ref-*` mutex with no key; building the
/// key alone).
enum Kind {
    Ours,
    Peer,
    Reference,
}

fn kind(name: &str) -> Kind {
    if name == OURS.name || name == OURS_ONE_BY_ONE.name {
        Kind::Ours
    } else if name == FLOOR.name || name == KEY_ONLY || REFERENCES.iter().any(|r| r.name == name) {
        Kind::Reference
    } else {
        Kind::Peer
    }
}

/// Keys in the order they first appear, each with its items: the results
/// list scenarios and peers in the results table's order, which the charts
/// keep.
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

// ------------------------------------------------- chart a: time per op

/// One small panel per scenario, each with its own linear axis: the
/// scenarios differ by an order of magnitude, so a shared axis would
/// flatten the fast ones, and a log axis would shrink the gaps between
/// peers that the chart is there to show.
fn time_per_op(times: &[(&str, &str, f64)], date: Option<&str>) -> String {
    const COLS: usize = 2;
    const GUTTER: f64 = 20.0;
    const PANEL_W: f64 = (WIDTH - 2.0 * MARGIN - GUTTER) / COLS as f64;
    const NAME_W: f64 = 128.0;
    const VALUE_W: f64 = 64.0;
    const BAR_W: f64 = PANEL_W - NAME_W - VALUE_W;
    const ROW_H: f64 = 17.0;
    const TITLE_H: f64 = 24.0;
    const AXIS_H: f64 = 40.0;

    let scenarios = grouped(times.iter().map(|(id, name, ns)| (*id, (*name, *ns))));
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
            (OURS_COLOR, OURS.name),
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
        &format!(
            "References: {} = a map insert and remove, not a lock; ref-* = one mutex every task \
             locks, no key; {KEY_ONLY} = building the String key.",
            FLOOR.name
        ),
    );
    y += 24.0;

    for chunk in scenarios.chunks(COLS) {
        let tallest = chunk.iter().map(|(_, bars)| bars.len()).max().unwrap_or(0);
        for (col, (group, bars)) in chunk.iter().enumerate() {
            let px = MARGIN + col as f64 * (PANEL_W + GUTTER);
            let (title, about) = SCENARIOS
                .iter()
                .find(|s| s.id == *group)
                .map_or((*group, ""), |s| (s.title, s.about));
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
                svg.text(scale(*v) + 4.0, base, 10.0, &attrs, &time(*v));
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
        if peer == OURS.name {
            OURS_COLOR
        } else {
            let others = peers[..i].iter().filter(|(p, _)| *p != OURS.name).count();
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
                &tick(t),
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
        order.sort_by_key(|i| peers[*i].0 == OURS.name);
        for i in order {
            let (peer, points) = &peers[i];
            let mut points: Vec<(f64, f64)> = points
                .iter()
                .map(|r| (number(r, "q"), number(r, column)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let pxs: Vec<(f64, f64)> = points.iter().map(|(q, v)| (xs.px(*q), ys.px(*v))).collect();
            let ours = *peer == OURS.name;
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
        (KIND_PEER, "Keyed peers"),
        (
            KIND_REFERENCE,
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
        svg.text(x, plot_bottom + 14.0, 10.0, &anchor, &tick(t));
    }
    for (row_y, row, heading) in placed {
        let Some(row) = row else {
            svg.text(MARGIN, row_y + 16.0, 12.0, r#"font-weight="bold""#, heading);
            continue;
        };
        let name = cell(row, "name");
        let ours = name == OURS.name;
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
            svg.text(xs.px(v) + 4.0, bar_y + BAR_H - 1.5, 9.5, weight, &time(v));
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
