//! `| unwrap label`, `| unwrap bytes(label)`, `| unwrap duration(label)`,
//! `| unwrap duration_seconds(label)`: turning an entry into a sample.
//!
//! After the log pipeline ran, the label's value is converted to a float.
//! An entry without the label (or with an empty value) gives no sample —
//! not an error. A value that does not convert gives a sample of 0 with
//! `__error__="SampleExtractionErr"` and the conversion error as details;
//! label filters after `unwrap` (`| unwrap x | __error__=""`) then run and
//! may drop it. Loki fails a metric query whose samples carry an error;
//! that decision belongs to the engine.

use super::convert::{duration_seconds, parse_bytes, parse_go_duration, parse_go_float};
use super::label_filter::{LabelFilter, LabelFilterError, LabelFilterSpec};
use super::labels_builder::LabelsBuilder;

/// How the unwrapped value converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// A float (`strconv.ParseFloat`).
    Float,
    /// `bytes()`: a humanized byte size.
    Bytes,
    /// `duration()` / `duration_seconds()`: a Go duration, in seconds.
    Duration,
}

/// An `unwrap` as written.
#[derive(Clone, Debug, PartialEq)]
pub struct UnwrapSpec {
    /// The label to unwrap.
    pub label: String,
    /// The conversion.
    pub conversion: Conversion,
    /// Label filters after `unwrap`, in order.
    pub post_filters: Vec<LabelFilterSpec>,
}

/// A compiled `unwrap`.
#[derive(Clone, Debug)]
pub struct Unwrap {
    label: String,
    conversion: Conversion,
    post: Vec<LabelFilter>,
}

const SAMPLE_EXTRACTION_ERR: &str = "SampleExtractionErr";

impl Unwrap {
    /// Compiles the post filters.
    pub fn new(spec: &UnwrapSpec) -> Result<Unwrap, LabelFilterError> {
        Ok(Unwrap {
            label: spec.label.clone(),
            conversion: spec.conversion,
            post: spec
                .post_filters
                .iter()
                .map(LabelFilter::new)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The sample value of an entry whose pipeline already ran, or `None`
    /// when the entry gives no sample.
    pub fn extract(&self, lb: &mut LabelsBuilder) -> Option<f64> {
        let raw = lb.get(&self.label).unwrap_or("");
        if raw.is_empty() {
            return None;
        }
        let r = match self.conversion {
            Conversion::Float => parse_go_float(raw),
            Conversion::Bytes => parse_bytes(raw).map(|b| b as f64),
            Conversion::Duration => parse_go_duration(raw).map(duration_seconds),
        };
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                lb.set_err(SAMPLE_EXTRACTION_ERR);
                lb.set_err_details(&e);
                0.0
            }
        };
        for f in &self.post {
            if !f.process(lb) {
                return None;
            }
        }
        Some(v)
    }
}
