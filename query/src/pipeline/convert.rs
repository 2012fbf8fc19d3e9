//! Value conversions with Go's exact rules and error texts: durations
//! (`time.ParseDuration`), byte sizes (go-humanize's `ParseBytes`) and
//! floats (`strconv.ParseFloat`). Label filters, `unwrap` and the template
//! functions `duration` and `bytes` all convert through here, and the error
//! texts end up in `__error_details__`.

/// Go's `strconv.Quote` for the short strings in error messages.
fn quote(s: &str) -> String {
    crate::labels::quote_go(s)
}

fn invalid(orig: &str) -> String {
    format!("time: invalid duration {}", quote(orig))
}

fn unit_ns(u: &str) -> Option<u64> {
    Some(match u {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration (`1h30m`, `-1.5s`, `500ms`) into nanoseconds.
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid(orig));
    }
    const LIMIT: u64 = 1 << 63;
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid(orig));
        }
        // Leading integer.
        let mut v: u64 = 0;
        let mut i = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            if v > (LIMIT - 1) / 10 {
                return Err(invalid(orig));
            }
            v = v * 10 + (s[i] - b'0') as u64;
            if v > LIMIT {
                return Err(invalid(orig));
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut j = 0;
            let mut overflow = false;
            while j < s.len() && s[j].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + (s[j] - b'0') as u64;
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                j += 1;
            }
            post = j > 0;
            s = &s[j..];
        }
        if !pre && !post {
            return Err(invalid(orig));
        }
        let mut k = 0;
        while k < s.len() && !(s[k] == b'.' || s[k].is_ascii_digit()) {
            k += 1;
        }
        if k == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let u = String::from_utf8_lossy(&s[..k]).into_owned();
        s = &s[k..];
        let Some(unit) = unit_ns(&u) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                quote(&u),
                quote(orig)
            ));
        };
        if v > LIMIT / unit {
            return Err(invalid(orig));
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid(orig));
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid(orig));
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > LIMIT - 1 {
        return Err(invalid(orig));
    }
    Ok(d as i64)
}

/// Go's `Duration.Seconds()`.
pub fn duration_seconds(ns: i64) -> f64 {
    let sec = ns / 1_000_000_000;
    let nsec = ns % 1_000_000_000;
    sec as f64 + nsec as f64 / 1e9
}

/// go-humanize's `ParseBytes`: `1.5KB`, `2KiB`, `1024`, `2,048`, `3mb`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let digits = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
        .count();
    let num: String = s[..digits].chars().filter(|&c| c != ',').collect();
    let f = parse_go_float(&num)?;
    let extra = s[digits..].trim().to_lowercase();
    let mult: u64 = match extra.as_str() {
        "b" | "" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1_000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        _ => return Err(format!("unhandled size name: {extra}")),
    };
    let v = f * mult as f64;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input, with its error text.
pub fn parse_go_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !special
        && (body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')))
    {
        return Err(syntax());
    }
    let v: f64 = s.parse().map_err(|_| syntax())?;
    if v.is_infinite() && !special {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(s)
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-5s"), Ok(-5_000_000_000));
        assert_eq!(parse_go_duration("3600000000µs"), Ok(3_600_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(
            parse_go_duration("90"),
            Err("time: missing unit in duration \"90\"".into())
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert_eq!(
            parse_go_duration("oops"),
            Err("time: invalid duration \"oops\"".into())
        );
        assert!(parse_go_duration("").is_err() && parse_go_duration(".s").is_err());
        assert!(parse_go_duration("9999999999999h").is_err());
        assert_eq!(duration_seconds(500_000_000), 0.5);
    }

    #[test]
    fn humanize_bytes() {
        assert_eq!(parse_bytes("1KB"), Ok(1000));
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_bytes("1.5KB"), Ok(1500));
        assert_eq!(parse_bytes("2Kb"), Ok(2000));
        assert_eq!(parse_bytes("2,048"), Ok(2048));
        assert_eq!(parse_bytes("1.5B"), Ok(1));
        assert_eq!(parse_bytes("3mb"), Ok(3_000_000));
        assert_eq!(parse_bytes("1PiB"), Ok(1 << 50));
        assert_eq!(parse_bytes("1XB"), Err("unhandled size name: xb".into()));
        assert_eq!(
            parse_bytes("oops"),
            Err("strconv.ParseFloat: parsing \"\": invalid syntax".into())
        );
    }

    #[test]
    fn go_floats() {
        assert_eq!(parse_go_float("200.0"), Ok(200.0));
        assert_eq!(parse_go_float("-5"), Ok(-5.0));
        assert_eq!(parse_go_float("1.5e3"), Ok(1500.0));
        assert!(parse_go_float("+Inf").unwrap().is_infinite());
        assert_eq!(
            parse_go_float("oops"),
            Err("strconv.ParseFloat: parsing \"oops\": invalid syntax".into())
        );
        assert!(
            parse_go_float("1e999")
                .unwrap_err()
                .contains("out of range")
        );
    }
}
