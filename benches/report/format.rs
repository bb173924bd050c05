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
    if v >= 1e9 {
        format!("{:.2} s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} ms", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1} µs", v / 1e3)
    } else if v >= 1000.0 {
        format!("{} ns", thousands(v, 0))
    } else {
        format!("{v:.1} ns")
    }
}

/// [`time`], or "n/a" for a figure not measured.
pub fn maybe_time(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), time)
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
    fn thousands_separate_the_integer_part_only() {
        assert_eq!(thousands(17_408.0, 0), "17,408");
        assert_eq!(thousands(2_228_240.0, 0), "2,228,240");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(1234.56, 1), "1,234.6");
        assert_eq!(thousands(-1234.0, 0), "-1,234");
        // Ties round to even, as the figures were always rounded.
        assert_eq!(thousands(0.125, 2), "0.12");
    }

    #[test]
    fn times_take_the_shortest_unit() {
        assert_eq!(time(42.24), "42.2 ns");
        assert_eq!(time(1648.4), "1,648 ns");
        assert_eq!(time(1999.6), "2,000 ns");
        assert_eq!(time(21_400.0), "21.4 µs");
        assert_eq!(time(644_466_071.0), "644.5 ms");
        assert_eq!(time(2.1e9), "2.10 s");
        assert_eq!(maybe_time(None), "n/a");
        assert_eq!(ratio(1.0361), "1.04x");
    }

    #[test]
    fn ticks_are_plain() {
        assert_eq!(tick(0.5e6), "500 µs");
        assert_eq!(tick(2e9), "2 s");
        assert_eq!(tick(20.0), "20 ns");
        assert_eq!(plain(100_000.0), "100,000");
        assert_eq!(plain(2.5), "2.5");
    }
}
