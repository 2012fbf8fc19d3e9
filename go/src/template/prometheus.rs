//! The functions of Prometheus' alert templates ([`Dialect::PROMETHEUS`]):
//! number formatting (`humanize` and friends), regexes (`match`,
//! `reReplaceAll`), host names (`stripPort`, `stripDomain`), times and
//! durations (`toTime`, `parseDuration`), and the external URL.
//!
//! Numbers are taken as Prometheus takes them: a float, an integer, or a
//! string holding a float (`strconv.ParseFloat`'s error otherwise). Times
//! built from seconds have millisecond precision, as Prometheus' own
//! timestamps do.
//!
//! [`Dialect::PROMETHEUS`]: super::Dialect::PROMETHEUS

use super::funcs::{Env, Func, Precompiled, R, compile_regex, nargs, s, want_str};
use super::printf;
use super::value::Value;
use crate::time::Time;

/// Calls one of Prometheus' functions.
pub(crate) fn call(f: Func, a: &[Value], env: &Env<'_>, pre: Option<&Precompiled>) -> R {
    let name = f.name();
    match f {
        Func::Humanize => {
            nargs(name, a, 1)?;
            s(humanize(to_float(&a[0])?))
        }
        Func::Humanize1024 => {
            nargs(name, a, 1)?;
            s(humanize_1024(to_float(&a[0])?))
        }
        Func::HumanizeDuration => {
            nargs(name, a, 1)?;
            s(humanize_duration(to_float(&a[0])?))
        }
        Func::HumanizePercentage => {
            nargs(name, a, 1)?;
            s(format!("{}%", g4(to_float(&a[0])? * 100.0)))
        }
        Func::HumanizeTimestamp => {
            nargs(name, a, 1)?;
            let v = to_float(&a[0])?;
            if !v.is_finite() {
                return s(g4(v));
            }
            s(crate::time::go_string(float_to_time(v)?))
        }
        Func::ToTime => {
            nargs(name, a, 1)?;
            let v = to_float(&a[0])?;
            if !v.is_finite() {
                return Err(format!("{} is not a valid time", g4(v)));
            }
            Ok(Value::Time(float_to_time(v)?))
        }
        Func::ToUpperProm => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_uppercase())
        }
        Func::ToLowerProm => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_lowercase())
        }
        Func::Match => {
            nargs(name, a, 2)?;
            let compiled;
            let re = match pre {
                Some(p) => p.as_ref().map_err(Clone::clone)?,
                None => {
                    compiled = compile_regex(want_str(&a[0])?)?;
                    &compiled
                }
            };
            Ok(Value::Bool(re.is_match(want_str(&a[1])?)))
        }
        Func::ReReplaceAll => {
            nargs(name, a, 3)?;
            let compiled;
            let re = match pre {
                Some(p) => p.as_ref().map_err(Clone::clone)?,
                None => {
                    compiled = compile_regex(want_str(&a[0])?)?;
                    &compiled
                }
            };
            let (repl, text) = (want_str(&a[1])?, want_str(&a[2])?);
            s(re.replace_all(text, repl).into_owned())
        }
        Func::SafeHtml => {
            nargs(name, a, 1)?;
            s(want_str(&a[0])?.to_string())
        }
        Func::Args => {
            let mut m: Vec<(String, Value)> = a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone()))
                .collect();
            m.sort_by(|x, y| x.0.cmp(&y.0));
            Ok(Value::Map(m))
        }
        Func::StripPort => {
            nargs(name, a, 1)?;
            let hp = want_str(&a[0])?;
            s(split_host_port(hp).map_or(hp, |(h, _)| h).to_string())
        }
        Func::StripDomain => {
            nargs(name, a, 1)?;
            s(strip_domain(want_str(&a[0])?))
        }
        Func::ParseDuration => {
            nargs(name, a, 1)?;
            let d =
                crate::duration::parse_prometheus_duration(want_str(&a[0])?).map_err(|e| e.0)?;
            Ok(Value::Float(d.as_secs_f64()))
        }
        Func::PathPrefix => {
            nargs(name, a, 0)?;
            s(url_path(env.external_url).to_string())
        }
        Func::ExternalUrl => {
            nargs(name, a, 0)?;
            s(env.external_url.to_string())
        }
        other => Err(format!(
            "{} is not one of Prometheus' functions",
            other.name()
        )),
    }
}

/// A number as Prometheus' `convertToFloat` reads it.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(x) => crate::strconv::parse_float(x).map_err(|e| e.to_string()),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// Go's `fmt.Sprintf("%.4g", v)`.
fn g4(v: f64) -> String {
    printf::sprintf("%.4g", &[Value::Float(v)], &|_| String::new())
}

/// Seconds since the epoch as a time, at millisecond precision
/// (`model.TimeFromUnixNano`).
fn float_to_time(v: f64) -> Result<Time, String> {
    let ns = v * 1e9;
    if !(i64::MIN as f64..=i64::MAX as f64).contains(&ns) {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            printf::format_float_v(v)
        ));
    }
    let ms = (ns as i64) / 1_000_000;
    Ok(Time::from_unix_nanos(ms.saturating_mul(1_000_000)))
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        // Go's int64(v) saturates differently, but no duration in seconds
        // comes near 2^63.
        let whole = v as i64;
        let (seconds, minutes, hours, days) = (
            whole % 60,
            (whole / 60) % 60,
            (whole / 3600) % 24,
            whole / 86_400,
        );
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Go's `net.SplitHostPort`, or `None` where it fails.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    if let Some(rest) = hp.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..].strip_prefix(':')?;
        if port.contains(['[', ']', ':']) {
            return None;
        }
        return Some((&rest[..end], port));
    }
    let i = hp.rfind(':')?;
    let (host, port) = (&hp[..i], &hp[i + 1..]);
    if host.contains([':', '[', ']']) || port.contains(['[', ']']) {
        return None;
    }
    Some((host, port))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or(host);
    if port.is_empty() {
        return host.to_string();
    }
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The path of a URL (`http://host:9090/prefix?x` → `/prefix`).
fn url_path(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => return url.split(['?', '#']).next().unwrap_or(""),
    };
    match rest.find('/') {
        Some(i) => rest[i..].split(['?', '#']).next().unwrap_or(""),
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_like_prometheus() {
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(12.0), "12");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(-2500.0), "-2.5k");
        assert_eq!(humanize(f64::NAN), "NaN");
        assert_eq!(humanize(f64::INFINITY), "+Inf");
        assert_eq!(humanize_1024(1048576.0), "1Mi");
        assert_eq!(humanize_1024(1.0), "1");
        assert_eq!(humanize_1024(1536.0), "1.5ki");
        assert_eq!(humanize_duration(899.99), "14m 59s");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(-3600.0), "-1h 0m 0s");
        assert_eq!(humanize_duration(0.0012), "1.2ms");
    }

    #[test]
    fn hosts() {
        assert_eq!(split_host_port("a.b:80"), Some(("a.b", "80")));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", "80")));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(strip_domain("node-1.example.com:9100"), "node-1:9100");
        assert_eq!(strip_domain("node-1.example.com"), "node-1");
        assert_eq!(strip_domain("10.0.0.1:9100"), "10.0.0.1:9100");
        assert_eq!(strip_domain("[::1]:9100"), "[::1]:9100");
    }

    #[test]
    fn paths() {
        assert_eq!(url_path("http://host:9090/prefix/x?a=1"), "/prefix/x");
        assert_eq!(url_path("http://host:9090"), "");
        assert_eq!(url_path(""), "");
    }

    #[test]
    fn times() {
        let t = float_to_time(1_600_000_000.123_456).unwrap();
        assert_eq!(t.unix_millis(), 1_600_000_000_123);
        assert_eq!(t.nanos % 1_000_000, 0);
        assert!(float_to_time(1e300).is_err());
    }
}
