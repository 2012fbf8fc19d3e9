//! How Go prints a `float64`: `strconv.FormatFloat` with the shortest
//! digits that read back (`'g'`, `'e'`, `'f'`), `%f`'s fixed decimals, and
//! `fmt`'s `%v` (which is the shortest `'g'`). Go spells the special
//! values `NaN`, `+Inf` and `-Inf`, keeps the sign of zero (`-0`), and
//! writes an exponent with a sign and at least two digits (`1e+06`,
//! `1.5e-05`).
//!
//! LogQL's printer and error texts, the template functions and `printf`,
//! and the ruler's API (alert values) print floats through here.

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, also `fmt`'s `%v`: plain
/// decimals unless the exponent is below -4 or at least 6 (`100000`,
/// `1e+06`, `0.0001`, `1e-05`).
pub fn format_float_g(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let (mantissa, exp) = shortest_exp(v);
    if (-4..6).contains(&exp) {
        return format!("{v}");
    }
    format!("{mantissa}{}", exp_suffix(exp))
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: always an exponent
/// (`1e+01`, `1.5e+00`, `0e+00`).
pub fn format_float_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let (mantissa, exp) = shortest_exp(v);
    format!("{mantissa}{}", exp_suffix(exp))
}

/// Go's `strconv.FormatFloat(v, 'f', prec, 64)`: never an exponent; the
/// shortest digits when `prec` is `None` (`-1` in Go), else `prec`
/// decimals (`Some(6)` is `fmt`'s `%f`).
pub fn format_float_f(v: f64, prec: Option<usize>) -> String {
    special(v).unwrap_or_else(|| match prec {
        None => format!("{v}"),
        Some(p) => format!("{v:.p$}"),
    })
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// The shortest mantissa (with its sign) and the decimal exponent.
fn shortest_exp(v: f64) -> (String, i32) {
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    (mantissa.to_string(), exp.parse().unwrap_or(0))
}

/// Go's exponent: a sign and at least two digits.
fn exp_suffix(exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_g_like_go() {
        assert_eq!(format_float_g(1.6), "1.6");
        assert_eq!(format_float_g(0.0), "0");
        assert_eq!(format_float_g(-0.0), "-0");
        assert_eq!(format_float_g(100000.0), "100000");
        assert_eq!(format_float_g(1e6), "1e+06");
        assert_eq!(format_float_g(1234567.0), "1.234567e+06");
        assert_eq!(format_float_g(123456789.0), "1.23456789e+08");
        assert_eq!(format_float_g(0.0001), "0.0001");
        assert_eq!(format_float_g(0.00001), "1e-05");
        assert_eq!(format_float_g(-2.5), "-2.5");
        assert_eq!(format_float_g(-2.5e-300), "-2.5e-300");
        assert_eq!(format_float_g(f64::NAN), "NaN");
        assert_eq!(format_float_g(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn shortest_e_like_go() {
        assert_eq!(format_float_e(10.0), "1e+01");
        assert_eq!(format_float_e(1.5), "1.5e+00");
        assert_eq!(format_float_e(0.0), "0e+00");
        assert_eq!(format_float_e(-0.00125), "-1.25e-03");
        assert_eq!(format_float_e(1e300), "1e+300");
        assert_eq!(format_float_e(f64::NAN), "NaN");
        assert_eq!(format_float_e(f64::INFINITY), "+Inf");
    }

    #[test]
    fn fixed_like_go() {
        assert_eq!(format_float_f(1e21, None), "1000000000000000000000");
        assert_eq!(format_float_f(5.01, None), "5.01");
        assert_eq!(format_float_f(-0.0, None), "-0");
        assert_eq!(format_float_f(1.0, Some(6)), "1.000000");
        assert_eq!(format_float_f(f64::INFINITY, Some(6)), "+Inf");
    }
}
