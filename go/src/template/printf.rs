//! Go's `fmt` verbs as templates use them (`printf`), and Go's `%v` for
//! floats.
//!
//! Verbs: `%v %s %q %d %b %o %x %X %c %e %E %f %F %g %G %t %T %%` with
//! flags `+ - # 0 space`, width and precision (also `*`). Mismatches print
//! the way Go does: `%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`.

use super::value::Value;

/// Go's `%v` (shortest `%g` with Go's exponent rule) for a float64.
pub(crate) fn format_float_v(f: f64) -> String {
    crate::floatfmt::format_float_g(f)
}

fn special(f: f64, plus: bool) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 {
            let _ = plus;
            "+Inf".into()
        } else {
            "-Inf".into()
        })
    } else {
        None
    }
}

/// Decimal digits and decimal-point position of `f` (shortest or with
/// `prec` significant digits).
fn digits(f: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let d: String = mant.chars().filter(|c| *c != '.').collect();
    (d, exp + 1)
}

fn exp_suffix(e: i32, upper: bool) -> String {
    let sign = if e < 0 { '-' } else { '+' };
    let a = e.unsigned_abs();
    format!("{}{}{}{:02}", if upper { 'E' } else { 'e' }, sign, "", a)
}

fn format_e(f: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special(f, false) {
        return s;
    }
    let s = format!("{:.*e}", prec, f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    format!("{mant}{}", exp_suffix(e, upper))
}

fn format_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = special(f, false) {
        return s;
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let prec = prec.map(|p| p.max(1));
    let (mut d, dp) = digits(f, prec);
    if prec.is_some() {
        // %g drops trailing zeros.
        while d.len() > 1 && d.ends_with('0') {
            d.pop();
        }
    }
    let mut eprec = prec.unwrap_or(6) as i32;
    let nd = d.len() as i32;
    if prec.is_none() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    let exp = dp - 1;
    let neg = if f < 0.0 { "-" } else { "" };
    if exp < -4 || exp >= eprec {
        let mut m = d[..1].to_string();
        if d.len() > 1 {
            m.push('.');
            m.push_str(&d[1..]);
        }
        return format!("{neg}{m}{}", exp_suffix(exp, upper));
    }
    // Plain decimal.
    let s = if dp <= 0 {
        format!("0.{}{}", "0".repeat((-dp) as usize), d)
    } else if dp as usize >= d.len() {
        format!("{}{}", d, "0".repeat(dp as usize - d.len()))
    } else {
        format!("{}.{}", &d[..dp as usize], &d[dp as usize..])
    };
    format!("{neg}{s}")
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, fl: &Flags, numeric: bool) -> String {
    let Some(w) = fl.width else { return s };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if fl.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if fl.zero && numeric {
        let (sign, body) = match s.strip_prefix(['-', '+']) {
            Some(b) => (&s[..1], b),
            None => ("", s.as_str()),
        };
        format!("{sign}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn sign(neg: bool, fl: &Flags) -> &'static str {
    if neg {
        "-"
    } else if fl.plus {
        "+"
    } else if fl.space {
        " "
    } else {
        ""
    }
}

fn bad(verb: char, v: &Value, to_s: &dyn Fn(&Value) -> String) -> String {
    format!("%!{verb}({}={})", v.type_name(), to_s(v))
}

fn int_verb(i: i64, verb: char, fl: &Flags) -> String {
    let neg = i < 0;
    let a = i.unsigned_abs();
    let mut body = match verb {
        'd' | 'v' => a.to_string(),
        'b' => format!("{a:b}"),
        'o' => {
            if fl.sharp {
                format!("0{a:o}")
            } else {
                format!("{a:o}")
            }
        }
        'O' => format!("0o{a:o}"),
        'x' => {
            if fl.sharp {
                format!("0x{a:x}")
            } else {
                format!("{a:x}")
            }
        }
        'X' => {
            if fl.sharp {
                format!("0X{a:X}")
            } else {
                format!("{a:X}")
            }
        }
        _ => a.to_string(),
    };
    if let Some(p) = fl.prec {
        while body.len() < p {
            body.insert(0, '0');
        }
    }
    let mut flz = *fl;
    if fl.prec.is_some() {
        flz.zero = false;
    }
    pad(format!("{}{body}", sign(neg, fl)), &flz, true)
}

fn float_verb(f: f64, verb: char, fl: &Flags) -> String {
    let body = match verb {
        'e' | 'E' => format_e(f.abs(), fl.prec.unwrap_or(6), verb == 'E'),
        'f' | 'F' => {
            if let Some(s) = special(f.abs(), false) {
                s
            } else {
                format!("{:.*}", fl.prec.unwrap_or(6), f.abs())
            }
        }
        'g' | 'G' | 'v' => format_g(f.abs(), fl.prec, verb == 'G'),
        _ => format_g(f.abs(), fl.prec, false),
    };
    let neg = f.is_sign_negative() && !f.is_nan() && !(f == 0.0 && verb == 'v');
    let body = body.trim_start_matches('+').to_string();
    let s = if body == "NaN" {
        body
    } else if f.is_infinite() {
        // Go keeps the sign of an infinity whatever the flags: `+Inf`.
        if neg { "-Inf" } else { "+Inf" }.to_string()
    } else {
        format!("{}{body}", sign(neg, fl))
    };
    pad(s, fl, f.is_finite())
}

fn str_verb(s: &str, verb: char, fl: &Flags) -> String {
    let s: String = match fl.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    };
    let body = match verb {
        'q' => crate::quote::go_quote(&s),
        'x' => s.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => s.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => s,
    };
    pad(body, fl, false)
}

/// Go's `fmt.Sprintf` over template values; `to_s` prints a value `%v`.
/// Widest width or precision Go's fmt accepts (`tooLarge`).
const MAX_WIDTH: usize = 1_000_000;

pub(crate) fn sprintf(format: &str, args: &[Value], to_s: &dyn Fn(&Value) -> String) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut argi = 0;
    let next_arg = |argi: &mut usize| -> Option<&Value> {
        let a = args.get(*argi);
        *argi += 1;
        a
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut fl = Flags::default();
        while let Some(&f) = chars.peek() {
            match f {
                '+' => fl.plus = true,
                '-' => fl.minus = true,
                '#' => fl.sharp = true,
                '0' => fl.zero = true,
                ' ' => fl.space = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, argi: &mut usize| {
            if chars.peek() == Some(&'*') {
                chars.next();
                return match args.get(*argi) {
                    Some(Value::Int(i)) if *i <= MAX_WIDTH as i64 => {
                        *argi += 1;
                        Some((*i).max(0) as usize)
                    }
                    _ => {
                        *argi += 1;
                        None
                    }
                };
            }
            let mut n: Option<usize> = None;
            while let Some(&d) = chars.peek() {
                if let Some(v) = d.to_digit(10) {
                    if n.is_some_and(|n| n > MAX_WIDTH) {
                        // As Go: a number this long ends the format (the
                        // verb goes missing).
                        chars.by_ref().for_each(drop);
                        return None;
                    }
                    n = Some(n.unwrap_or(0) * 10 + v as usize);
                    chars.next();
                } else {
                    break;
                }
            }
            n
        };
        fl.width = num(&mut chars, &mut argi);
        if chars.peek() == Some(&'.') {
            chars.next();
            fl.prec = Some(num(&mut chars, &mut argi).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(v) = next_arg(&mut argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let s = match (verb, v) {
            ('T', v) => pad(v.type_name().to_string(), &fl, false),
            ('v', Value::Int(i)) => int_verb(*i, 'd', &fl),
            ('v', Value::Float(f)) => float_verb(*f, 'v', &fl),
            ('v', Value::Str(s)) => str_verb(s, 's', &fl),
            ('v', other) => pad(to_s(other), &fl, false),
            ('d' | 'b' | 'o' | 'O' | 'x' | 'X', Value::Int(i)) => int_verb(*i, verb, &fl),
            ('c', Value::Int(i)) => pad(
                char::from_u32(*i as u32).unwrap_or('\u{FFFD}').to_string(),
                &fl,
                false,
            ),
            ('q', Value::Int(i)) => pad(
                format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{FFFD}')),
                &fl,
                false,
            ),
            ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Float(f)) => float_verb(*f, verb, &fl),
            ('b' | 'x' | 'X', Value::Float(f)) if verb != 'b' => bad(verb, &Value::Float(*f), to_s),
            ('s' | 'q' | 'x' | 'X', Value::Str(s)) => str_verb(s, verb, &fl),
            ('s', Value::Time(_)) => pad(to_s(v), &fl, false),
            ('s', Value::Nil) => "%!s(<nil>)".to_string(),
            ('t', Value::Bool(b)) => pad(b.to_string(), &fl, false),
            (_, v) => bad(verb, v, to_s),
        };
        out.push_str(&s);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("{}={}", a.type_name(), to_s(a)));
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: &str, args: &[Value]) -> String {
        sprintf(f, args, &|v| match v {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(x) => format_float_v(*x),
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn float_v_like_go() {
        assert_eq!(format_float_v(1.5), "1.5");
        assert_eq!(format_float_v(100000.0), "100000");
        assert_eq!(format_float_v(1e6), "1e+06");
        assert_eq!(format_float_v(123456789.0), "1.23456789e+08");
        assert_eq!(format_float_v(0.0001), "0.0001");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(-2.5), "-2.5");
        assert_eq!(format_float_v(0.0), "0");
    }

    #[test]
    fn verbs() {
        assert_eq!(p("%s=%d", &[Value::Str("a".into()), Value::Int(5)]), "a=5");
        assert_eq!(
            p(
                "%5.2f|%-4d|%04d",
                &[Value::Float(2.5149), Value::Int(7), Value::Int(-7)]
            ),
            " 2.51|7   |-007"
        );
        assert_eq!(p("%e", &[Value::Float(1500.0)]), "1.500000e+03");
        assert_eq!(p("%g", &[Value::Float(1500.0)]), "1500");
        assert_eq!(
            p(
                "%x %X %o %b",
                &[
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5)
                ]
            ),
            "ff FF 10 101"
        );
        assert_eq!(p("%q", &[Value::Str("a\"b".into())]), "\"a\\\"b\"");
        assert_eq!(p("%v %t", &[Value::Int(1), Value::Bool(true)]), "1 true");
        assert_eq!(p("%d", &[Value::Str("x".into())]), "%!d(string=x)");
        assert_eq!(p("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(p("%d", &[Value::Int(1), Value::Int(2)]), "1%!(EXTRA int=2)");
        assert_eq!(p("100%%", &[]), "100%");
        assert_eq!(
            p("\x1b[31m%s\x1b[0m", &[Value::Str("hello".into())]),
            "\x1b[31mhello\x1b[0m"
        );
        assert_eq!(
            p(
                "%.3s|%8s",
                &[Value::Str("abcdef".into()), Value::Str("r".into())]
            ),
            "abc|       r"
        );
    }

    #[test]
    fn widths_too_large_end_the_format_as_in_go() {
        let long = format!("%{}d tail", "9".repeat(40));
        assert_eq!(p(&long, &[Value::Int(1)]), "%!(NOVERB)%!(EXTRA int=1)");
        assert_eq!(
            p("%.99999999999999999999f", &[Value::Float(1.0)]),
            "%!(NOVERB)%!(EXTRA float64=1)"
        );
        assert_eq!(p("%1000000d", &[Value::Int(1)]).len(), 1_000_000);
    }
}
