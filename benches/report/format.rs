//! Numbers as the tables and charts write them, so that both read alike.

/// `v` with `decimals` decimals and a comma between thousands: "17,408",
/// "1,234.5".
pub fn thousands(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    let (sign, text) = text.split_at(usize::from(text.starts_with('-')));
    let (int, frac) = text.split_at(text.find('.').unwrap_or(text.len()));
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out + frac
}

/// A time in ns in the unit that keeps it short: "42.2 ns", "1,648 ns",
/// "21.4 µs", "644.5 ms", "2.10 s".
pub fn time(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} s", v / 1e9),
        v if v >= 1e6 => format!("{:.1} ms", v / 1e6),
        v if v >= 1e4 => format!("{:.1} µs", v / 1e3),
        v if v >= 1e3 => format!("{} ns", thousands(v, 0)),
        v => format!("{v:.1} ns"),
    }
}

/// A ratio: "1.04x".
pub fn ratio(v: f64) -> String {
    format!("{v:.2}x")
}

/// A round axis label for a time in ns: "50 ns", "1 µs", "100 ms".
pub fn tick(v: f64) -> String {
    let (scaled, unit) = match v {
        v if v >= 1e9 => (v / 1e9, "s"),
        v if v >= 1e6 => (v / 1e6, "ms"),
        v if v >= 1e3 => (v / 1e3, "µs"),
        v => (v, "ns"),
    };
    format!("{} {unit}", plain(scaled))
}

/// A number with no needless decimals: "2", "2.5", "100,000".
pub fn plain(v: f64) -> String {
    if v.fract().abs() > 1e-9 {
        format!("{v:.1}")
    } else {
        thousands(v, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_alike_everywhere() {
        let thousand = [2_228_240.0, 999.0, -1234.0].map(|v| thousands(v, 0));
        assert_eq!(thousand, ["2,228,240", "999", "-1,234"]);
        // Ties round to even, as the figures were always rounded.
        let fractions = [thousands(1234.56, 1), thousands(0.125, 2)];
        assert_eq!(fractions, ["1,234.6", "0.12"]);
        let times = [42.24, 1648.4, 1999.6].map(time);
        assert_eq!(times, ["42.2 ns", "1,648 ns", "2,000 ns"]);
        let times = [21_400.0, 644_466_071.0, 2.1e9].map(time);
        assert_eq!(times, ["21.4 µs", "644.5 ms", "2.10 s"]);
        assert_eq!(ratio(1.0361), "1.04x");
        assert_eq!([0.5e6, 2e9, 20.0].map(tick), ["500 µs", "2 s", "20 ns"]);
        assert_eq!([100_000.0, 2.5].map(plain), ["100,000", "2.5"]);
    }
}
