//! Numbers as the tables and charts write them, so that both read alike.

/// `v` with `decimals` decimals and commas: "17,408", "1,234.5".
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

/// A time in ns, in the unit that keeps it short: "1,648 ns", "21.4 µs".
pub fn time(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2} s", v / 1e9),
        v if v >= 1e6 => format!("{:.1} ms", v / 1e6),
        v if v >= 1e4 => format!("{:.1} µs", v / 1e3),
        v if v >= 1e3 => format!("{} ns", thousands(v, 0)),
        v => format!("{v:.1} ns"),
    }
}

pub fn ratio(v: f64) -> String {
    format!("{v:.2}x")
}

/// An axis label for a round time in ns: "50 ns", "1 µs".
pub fn tick(v: f64) -> String {
    let units = [(1e9, "s"), (1e6, "ms"), (1e3, "µs")];
    let (per, unit) = units.into_iter().find(|u| v >= u.0).unwrap_or((1.0, "ns"));
    format!("{} {unit}", plain(v / per))
}

/// A number with no needless decimals: "2", "2.5", "100,000".
pub fn plain(v: f64) -> String {
    if v.fract().abs() > 1e-9 {
        format!("{v:.1}")
    } else {
        thousands(v, 0)
    }
}
