//! Go's `strconv` number parsing, with its error texts.
//!
//! Label filters, `unwrap`, LogQL number literals and the template
//! functions read numbers through here; the error texts end up in parse
//! errors and in `__error_details__` (`strconv.ParseFloat: parsing "x":
//! invalid syntax`).

use std::fmt;

use crate::quote::go_quote;

/// A text `strconv.ParseFloat` refuses; displays as Go's `*NumError`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("strconv.ParseFloat: parsing {}: {kind}", go_quote(.input))]
pub struct ParseFloatError {
    /// The text as given.
    pub input: String,
    /// Why it was refused.
    pub kind: FloatKind,
}

/// Why a number text is not a float, in Go's `strconv` words
/// (`invalid syntax`, `value out of range`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatKind {
    /// `invalid syntax`.
    Syntax,
    /// `value out of range`.
    Range,
}

impl fmt::Display for FloatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FloatKind::Syntax => "invalid syntax",
            FloatKind::Range => "value out of range",
        })
    }
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal (`1`, `1.5`, `.5`, `1e-3`, `0755` = 755) and hexadecimal
/// floats with a mandatory `p` exponent (`0x1p-2`). Anything else (`0x10`,
/// `0b1`, `1_000`) is a syntax error, as in Go. Overflow is a range error.
pub fn parse_float(s: &str) -> Result<f64, ParseFloatError> {
    parse_float_kind(s).map_err(|kind| ParseFloatError {
        input: s.to_string(),
        kind,
    })
}

fn parse_float_kind(s: &str) -> Result<f64, FloatKind> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        "nan" => f64::NAN,
        _ if lower.starts_with("0x") => parse_hex_float(&lower[2..])?,
        _ => {
            let b = lower.as_bytes();
            let mut i = 0;
            let mut digits = 0;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
                digits += 1;
            }
            if i < b.len() && b[i] == b'.' {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                    digits += 1;
                }
            }
            if digits == 0 {
                return Err(FloatKind::Syntax);
            }
            if i < b.len() && b[i] == b'e' {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                let estart = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i == estart {
                    return Err(FloatKind::Syntax);
                }
            }
            if i != b.len() {
                return Err(FloatKind::Syntax);
            }
            let v: f64 = lower.parse().map_err(|_| FloatKind::Syntax)?;
            if v.is_infinite() {
                return Err(FloatKind::Range);
            }
            v
        }
    };
    Ok(if neg { -v } else { v })
}

fn parse_hex_float(s: &str) -> Result<f64, FloatKind> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut mantissa: f64 = 0.0;
    let mut digits = 0;
    let mut exp_adj: i32 = 0;
    while i < b.len() && b[i].is_ascii_hexdigit() {
        mantissa = mantissa * 16.0 + f64::from((b[i] as char).to_digit(16).unwrap_or(0));
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            mantissa = mantissa * 16.0 + f64::from((b[i] as char).to_digit(16).unwrap_or(0));
            exp_adj -= 4;
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 || i >= b.len() || b[i] != b'p' {
        return Err(FloatKind::Syntax);
    }
    i += 1;
    let mut eneg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        eneg = b[i] == b'-';
        i += 1;
    }
    let estart = i;
    let mut e: i32 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        e = e.saturating_mul(10).saturating_add(i32::from(b[i] - b'0'));
        i += 1;
    }
    if i == estart || i != b.len() {
        return Err(FloatKind::Syntax);
    }
    let e = if eneg { -e } else { e };
    let v = mantissa * 2f64.powi(e.saturating_add(exp_adj));
    if v.is_infinite() {
        return Err(FloatKind::Range);
    }
    Ok(v)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then decimal,
/// `0x` hex, `0o` or leading-`0` octal, or `0b` binary digits, `_`
/// separators allowed after a base prefix. `None` when Go would return an
/// error (syntax or range).
pub fn parse_int(s: &str) -> Option<i64> {
    let (neg, b) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = b.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(h) = lower.strip_prefix("0x") {
        (16, h, true)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (8, o, true)
    } else if let Some(bb) = lower.strip_prefix("0b") {
        (2, bb, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    let digits = if prefixed {
        digits.replace('_', "")
    } else {
        digits.to_string()
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        if v > 1 << 63 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// A text `strconv.ParseInt(s, 10, 64)` refuses; displays as Go's
/// `*NumError` (`strconv.ParseInt: parsing "x": invalid syntax`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("strconv.ParseInt: parsing {}: {kind}", go_quote(.input))]
pub struct ParseIntError {
    /// The text as given.
    pub input: String,
    /// Why it was refused.
    pub kind: FloatKind,
}

/// Go's `strconv.ParseInt(s, 10, 64)` with its error: [`atoi`]'s grammar;
/// a range error as soon as the digits overflow (even if a non-digit
/// follows), else a syntax error for anything but digits.
pub fn parse_int10(s: &str) -> Result<i64, ParseIntError> {
    let fail = |kind| ParseIntError {
        input: s.to_string(),
        kind,
    };
    let (neg, digits) = match s.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s.as_bytes()),
    };
    if digits.is_empty() {
        return Err(fail(FloatKind::Syntax));
    }
    let mut n: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(fail(FloatKind::Syntax));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or_else(|| fail(FloatKind::Range))?;
    }
    if neg {
        0i64.checked_sub_unsigned(n)
            .ok_or_else(|| fail(FloatKind::Range))
    } else {
        i64::try_from(n).map_err(|_| fail(FloatKind::Range))
    }
}

/// Go's `strconv.Atoi` (`ParseInt(s, 10, 64)`): an optional sign, then
/// decimal digits only (no base prefix, no `_`, no spaces), within `i64`.
/// `None` when Go would return an error. Allocates nothing.
pub fn atoi(s: &str) -> Option<i64> {
    let (neg, digits) = match s.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s.as_bytes()),
    };
    if digits.is_empty() {
        return None;
    }
    // Accumulated as a negative number so that `i64::MIN` fits.
    let mut n: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d))?;
    }
    if neg { Some(n) } else { n.checked_neg() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int10_like_go() {
        assert_eq!(parse_int10("+42"), Ok(42));
        assert_eq!(parse_int10("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_int10("9223372036854775807"), Ok(i64::MAX));
        let err = |s: &str| parse_int10(s).unwrap_err().to_string();
        assert_eq!(
            err("yesterday"),
            r#"strconv.ParseInt: parsing "yesterday": invalid syntax"#
        );
        assert_eq!(
            err("9223372036854775808"),
            r#"strconv.ParseInt: parsing "9223372036854775808": value out of range"#
        );
        assert_eq!(
            err("-9223372036854775809"),
            r#"strconv.ParseInt: parsing "-9223372036854775809": value out of range"#
        );
        // Go stops at the overflowing digit, before it sees the `x`.
        assert_eq!(
            err("99999999999999999999x"),
            r#"strconv.ParseInt: parsing "99999999999999999999x": value out of range"#
        );
        assert_eq!(err(""), r#"strconv.ParseInt: parsing "": invalid syntax"#);
        assert_eq!(err("-"), r#"strconv.ParseInt: parsing "-": invalid syntax"#);
        assert_eq!(
            err("1_000"),
            r#"strconv.ParseInt: parsing "1_000": invalid syntax"#
        );
        assert_eq!(
            err("0x10"),
            r#"strconv.ParseInt: parsing "0x10": invalid syntax"#
        );
        assert_eq!(
            err(" 1"),
            r#"strconv.ParseInt: parsing " 1": invalid syntax"#
        );
    }

    #[test]
    fn go_atoi() {
        assert_eq!(atoi("17"), Some(17));
        assert_eq!(atoi("+5"), Some(5));
        assert_eq!(atoi("-3"), Some(-3));
        assert_eq!(atoi("007"), Some(7));
        assert_eq!(atoi("9223372036854775807"), Some(i64::MAX));
        assert_eq!(atoi("-9223372036854775808"), Some(i64::MIN));
        for bad in [
            "",
            "+",
            "-",
            " 1",
            "1 ",
            "1_000",
            "0x10",
            "1.0",
            "foo",
            "9223372036854775808",
            "-9223372036854775809",
            "١",
        ] {
            assert_eq!(atoi(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn go_floats() {
        assert_eq!(parse_float_kind("1.5"), Ok(1.5));
        assert_eq!(parse_float_kind(".5"), Ok(0.5));
        assert_eq!(parse_float_kind("1."), Ok(1.0));
        assert_eq!(parse_float_kind("0755"), Ok(755.0));
        assert_eq!(parse_float_kind("1e3"), Ok(1000.0));
        assert_eq!(parse_float_kind("0x1p-2"), Ok(0.25));
        assert_eq!(parse_float_kind("0x10"), Err(FloatKind::Syntax));
        assert_eq!(parse_float_kind("0b1"), Err(FloatKind::Syntax));
        assert_eq!(parse_float_kind("1_000"), Err(FloatKind::Syntax));
        assert_eq!(parse_float_kind("1e999"), Err(FloatKind::Range));
        assert_eq!(parse_float_kind(""), Err(FloatKind::Syntax));
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            parse_float("oops").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"oops\": invalid syntax"
        );
        assert_eq!(
            parse_float("1e999").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"1e999\": value out of range"
        );
        assert!(parse_float("+Inf").unwrap().is_infinite());
        assert!(parse_float("infinity").unwrap().is_infinite());
        assert!(parse_float("NaN").unwrap().is_nan());
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("-0b11"), Some(-3));
        assert_eq!(parse_int("0x_1_0"), Some(16));
        assert_eq!(parse_int("1_0"), None);
        assert_eq!(parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int("9223372036854775808"), None);
        assert_eq!(parse_int("oops"), None);
        assert_eq!(parse_int("--1"), None);
    }
}
