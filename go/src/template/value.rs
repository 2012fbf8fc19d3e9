//! Template values: what Go's reflection-based `text/template` sees,
//! reduced to the types LogQL templates meet (labels are strings, numbers
//! come from constants and functions, times from the date functions).

use super::printf;
use crate::time;

/// A value during template execution.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// No value (a missing map key of interface type, `nil`).
    Nil,
    /// A string.
    Str(String),
    /// An integer (Go `int`/`int64`).
    Int(i64),
    /// A float64.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A point in time, shown in UTC.
    Time(time::Time),
    /// A list (from `fromJson`).
    List(Vec<Value>),
    /// A map with sorted keys (from `fromJson`).
    Map(Vec<(String, Value)>),
    /// The template's data: the entry's labels (`map[string]string`).
    Labels,
}

impl Value {
    /// Go's type name, for `%T` and error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::Time(_) => "time.Time",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Labels => "map[string]string",
        }
    }

    /// Go's truthiness (`if`, `and`, `or`, `not`).
    pub fn truthy(&self, labels_empty: bool) -> bool {
        match self {
            Value::Nil => false,
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
            Value::Time(_) => true,
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Labels => !labels_empty,
        }
    }
}

/// Formats a value as `{{ x }}` and `%v` print it.
/// Iterates the entry's labels for printing the data map.
pub(crate) type LabelsFn<'a> = dyn Fn(&mut dyn FnMut(&str, &str)) + 'a;

pub(crate) fn write_value(v: &Value, labels: &LabelsFn<'_>, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<no value>"),
        Value::Str(s) => out.push_str(s),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&printf::format_float_v(*f)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Time(t) => out.push_str(&time::go_string(*t)),
        Value::List(l) => {
            out.push('[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(x, labels, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_value(x, labels, out);
            }
            out.push(']');
        }
        Value::Labels => {
            out.push_str("map[");
            let mut first = true;
            labels(&mut |k, x| {
                if !first {
                    out.push(' ');
                }
                first = false;
                out.push_str(k);
                out.push(':');
                out.push_str(x);
            });
            out.push(']');
        }
    }
}
