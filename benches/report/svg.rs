//! The pieces of an SVG chart, built by hand as a string: the charts are
//! committed, so their output must be deterministic (a fixed layout,
//! rounded coordinates, no timestamps of their own), so that a rerun on the
//! same numbers changes nothing in git; and a plotting crate would not draw
//! them in fewer lines.

use std::fmt::Write as _;

/// Chart width in px: about README's column on GitHub.
pub const WIDTH: f64 = 800.0;
pub const MARGIN: f64 = 10.0;

pub const TEXT: &str = "#222";
pub const MUTED: &str = "#666";
pub const GRID: &str = "#e6e6e6";
pub const AXIS: &str = "#999";
pub const OURS_COLOR: &str = "#e8590c";
pub const PEER_COLOR: &str = "#4e79a7";
/// Light background behind lock-manager's rows where colour already
/// encodes something else.
pub const OURS_BAND: &str = "#fff0e6";
/// Line colours for the other peers: Tableau 10 without its orange, which
/// is lock-manager's.
pub const PALETTE: [&str; 8] = [
    "#4e79a7", "#59a14f", "#b07aa1", "#76b7b2", "#9c755f", "#e15759", "#edc948", "#bab0ac",
];

/// A round tick step (1, 2 or 5 times a power of ten) that splits `0..max`
/// into at most `intervals` parts.
pub fn nice_step(max: f64, intervals: f64) -> f64 {
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
pub fn round_125(v: f64, up: bool) -> f64 {
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
pub const LONG: f64 = 300.0;

/// A log scale from `lo` to `hi` mapped onto `from..to` px (`to` may be
/// below `from`, for a y axis).
pub struct LogScale {
    pub lo: f64,
    pub hi: f64,
    pub from: f64,
    pub to: f64,
}

impl LogScale {
    /// A scale around every value in `values`, ending on round values.
    pub fn around(values: impl IntoIterator<Item = f64>, from: f64, to: f64) -> LogScale {
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

    pub fn px(&self, v: f64) -> f64 {
        let t = (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        self.from + t * (self.to - self.from)
    }

    /// Ticks at 1, 2 and 5 times each power of ten over a short range, at
    /// each power of ten over a long one, so that labels never crowd.
    pub fn ticks(&self) -> Vec<f64> {
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
pub struct Svg {
    pub body: String,
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Svg {
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
        );
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
        );
    }

    /// Text; `attrs` adds attributes (`text-anchor`, `font-weight`, ...).
    pub fn text(&mut self, x: f64, y: f64, size: f64, attrs: &str, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" {attrs}>{}</text>"#,
            escape(text)
        );
    }

    /// The left and bottom axes of a plot, and `label` centred under it.
    pub fn axes(&mut self, (x0, x1): (f64, f64), (top, bottom): (f64, f64), label: &str) {
        self.line((x0, top), (x0, bottom), AXIS, 1.0);
        self.line((x0, bottom), (x1, bottom), AXIS, 1.0);
        let anchor = format!(r#"text-anchor="middle" fill="{MUTED}""#);
        self.text((x0 + x1) / 2.0, bottom + 30.0, 11.0, &anchor, label);
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64) {
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

    pub fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str) {
        let _ = writeln!(
            self.body,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{fill}" stroke="white" stroke-width="1"/>"#
        );
    }

    /// The title, then smaller lines under it; returns the y below them.
    pub fn heading(&mut self, title: &str, lines: &[&str]) -> f64 {
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
    pub fn finish(self, title: &str, height: f64) -> String {
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

/// A legend entry per (swatch fill, label), left to right, wrapping at the
/// chart's width; returns the y below the last line.
pub fn legend(svg: &mut Svg, y: f64, entries: &[(&str, &str)]) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
