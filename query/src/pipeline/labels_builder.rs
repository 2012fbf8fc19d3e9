//! The labels builder: one entry's labels while the pipeline runs.
//!
//! An entry's labels come from three places, kept apart because Loki's
//! precedence and its categorised output depend on where a label came
//! from: the stream's labels (the base, shared and never copied), the
//! entry's structured metadata, and labels that stages set (parsers,
//! `label_format`). Precedence for a name is parsed, then structured
//! metadata, then stream; parsers avoid clashes by renaming their label
//! `<name>_extracted` when the stream or the metadata already has it.
//!
//! The builder is reused for every entry of a stream: [`LabelsBuilder::reset`]
//! forgets the entry's labels but keeps every string buffer, so after the
//! first few entries setting labels allocates nothing.
//!
//! `__error__` and `__error_details__` live in their own fields: they are
//! not ordinary labels (a stage cannot set them with `label_format`, a
//! filter reads `__error__` specially) but appear in the output.

use std::sync::Arc;

use crate::labels::LabelSet;

/// Where a label came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelCategory {
    /// The stream's labels.
    Stream,
    /// The entry's structured metadata.
    StructuredMetadata,
    /// Set by a stage (parsers, `label_format`).
    Parsed,
}

/// The error label's name.
pub const ERROR_LABEL: &str = "__error__";
/// The error details label's name.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Suffix for a parsed label that clashes with an existing one.
pub const DUPLICATE_SUFFIX: &str = "_extracted";

/// A list of `name=value` pairs whose string buffers survive `clear`.
#[derive(Clone, Debug, Default)]
struct Slots {
    slots: Vec<(String, String)>,
    len: usize,
}

impl Slots {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn live(&self) -> &[(String, String)] {
        &self.slots[..self.len]
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.live().iter().position(|(n, _)| n == name)
    }

    fn push(&mut self, name: &str, value: &str) {
        if self.len == self.slots.len() {
            self.slots.push((String::new(), String::new()));
        }
        let (n, v) = &mut self.slots[self.len];
        n.clear();
        n.push_str(name);
        v.clear();
        v.push_str(value);
        self.len += 1;
    }

    fn set_value(&mut self, i: usize, value: &str) {
        let v = &mut self.slots[i].1;
        v.clear();
        v.push_str(value);
    }

    fn remove(&mut self, i: usize) {
        // Keep the removed slot's buffers for reuse: swap it past the end.
        self.slots[i..self.len].rotate_left(1);
        self.len -= 1;
    }
}

/// One entry's labels (see the module docs).
#[derive(Clone, Debug)]
pub struct LabelsBuilder {
    base: Arc<LabelSet>,
    add: [Slots; 3],
    del: Slots,
    extracted: Slots,
    err: String,
    err_details: String,
    dirty: bool,
    base_hash: u64,
}

fn label_hash(name: &str, value: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(name.as_bytes());
    h.update(&[0xff]);
    h.update(value.as_bytes());
    h.digest()
}

fn idx(c: LabelCategory) -> usize {
    match c {
        LabelCategory::Stream => 0,
        LabelCategory::StructuredMetadata => 1,
        LabelCategory::Parsed => 2,
    }
}

const CATEGORIES: [LabelCategory; 3] = [
    LabelCategory::Stream,
    LabelCategory::StructuredMetadata,
    LabelCategory::Parsed,
];

impl LabelsBuilder {
    /// A builder over a stream's labels.
    pub fn new(base: Arc<LabelSet>) -> LabelsBuilder {
        let base_hash = base.iter().fold(0u64, |acc, l| {
            acc.wrapping_add(label_hash(&l.name, &l.value))
        });
        LabelsBuilder {
            base_hash,
            base,
            add: Default::default(),
            del: Slots::default(),
            extracted: Slots::default(),
            err: String::new(),
            err_details: String::new(),
            dirty: false,
        }
    }

    /// The stream's labels.
    pub fn base(&self) -> &Arc<LabelSet> {
        &self.base
    }

    /// Forgets the entry's labels, keeping the buffers.
    pub fn reset(&mut self) {
        for a in &mut self.add {
            a.clear();
        }
        self.del.clear();
        self.extracted.clear();
        self.err.clear();
        self.err_details.clear();
        self.dirty = false;
    }

    /// Whether the entry's labels differ from the stream's.
    pub fn is_changed(&self) -> bool {
        self.dirty || !self.err.is_empty() || !self.err_details.is_empty()
    }

    /// Whether the stream's labels have `name`.
    pub fn base_has(&self, name: &str) -> bool {
        self.base.get(name).is_some()
    }

    /// Whether `name` was set in `category` for this entry.
    pub fn has_in(&self, name: &str, category: LabelCategory) -> bool {
        self.add[idx(category)].find(name).is_some()
    }

    /// The name a parser should use for `name`: `<name>_extracted` when
    /// the stream or the structured metadata already has it.
    pub fn parsed_name<'n>(&self, name: &'n str, buf: &'n mut String) -> &'n str {
        if self.base_has(name) || self.has_in(name, LabelCategory::StructuredMetadata) {
            buf.clear();
            buf.push_str(name);
            buf.push_str(DUPLICATE_SUFFIX);
            buf.as_str()
        } else {
            name
        }
    }

    /// Whether a parser already set `name` for this entry (the first
    /// value of a duplicated key wins).
    pub fn extracted(&self, name: &str) -> bool {
        self.extracted.find(name).is_some()
    }

    /// The value and category of `name`.
    pub fn get_with_category(&self, name: &str) -> Option<(&str, LabelCategory)> {
        for c in CATEGORIES {
            let a = &self.add[idx(c)];
            if let Some(i) = a.find(name) {
                return Some((a.live()[i].1.as_str(), c));
            }
        }
        if self.del.find(name).is_some() {
            return None;
        }
        match self.base.get(name) {
            Some(v) if !v.is_empty() => Some((v, LabelCategory::Stream)),
            _ => None,
        }
    }

    /// The value of `name`, if the entry has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_with_category(name).map(|(v, _)| v)
    }

    /// Sets a label with Loki's precedence: parsed > structured metadata
    /// > stream.
    pub fn set(&mut self, category: LabelCategory, name: &str, value: &str) {
        self.dirty = true;
        match category {
            LabelCategory::Parsed => {
                for c in [LabelCategory::StructuredMetadata, LabelCategory::Stream] {
                    if let Some(i) = self.add[idx(c)].find(name) {
                        self.add[idx(c)].remove(i);
                    }
                }
            }
            LabelCategory::StructuredMetadata => {
                if let Some(i) = self.add[0].find(name) {
                    self.add[0].remove(i);
                }
                if self.has_in(name, LabelCategory::Parsed) {
                    return;
                }
            }
            LabelCategory::Stream => {
                if self.has_in(name, LabelCategory::StructuredMetadata)
                    || self.has_in(name, LabelCategory::Parsed)
                {
                    return;
                }
            }
        }
        let a = &mut self.add[idx(category)];
        match a.find(name) {
            Some(i) => a.set_value(i, value),
            None => {
                a.push(name, value);
                if category == LabelCategory::Parsed && self.extracted.find(name).is_none() {
                    self.extracted.push(name, "");
                }
            }
        }
    }

    /// Adds the entry's structured metadata (`__error__` and
    /// `__error_details__` pairs set the error fields; a name the stream
    /// has becomes `<name>_extracted`).
    pub fn add_structured_metadata<'m>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'m str, &'m str)>,
    ) {
        let mut buf = String::new();
        for (name, value) in pairs {
            let name = if self.base_has(name) {
                buf.clear();
                buf.push_str(name);
                buf.push_str(DUPLICATE_SUFFIX);
                buf.as_str()
            } else {
                name
            };
            if name == ERROR_LABEL {
                self.set_err(value);
                continue;
            }
            if name == ERROR_DETAILS_LABEL {
                self.set_err_details(value);
                continue;
            }
            self.set(LabelCategory::StructuredMetadata, name, value);
        }
    }

    /// Deletes `name` from every category and hides the stream's label.
    pub fn del(&mut self, name: &str) {
        self.dirty = true;
        for a in &mut self.add {
            if let Some(i) = a.find(name) {
                a.remove(i);
            }
        }
        self.del.push(name, "");
    }

    /// Sets `__error__`.
    pub fn set_err(&mut self, err: &str) {
        self.err.clear();
        self.err.push_str(err);
    }

    /// Sets `__error_details__`.
    pub fn set_err_details(&mut self, details: &str) {
        self.err_details.clear();
        self.err_details.push_str(details);
    }

    /// `__error__`, empty when unset.
    pub fn err(&self) -> &str {
        &self.err
    }

    /// `__error_details__`, empty when unset.
    pub fn err_details(&self) -> &str {
        &self.err_details
    }

    /// Whether `__error__` is set.
    pub fn has_err(&self) -> bool {
        !self.err.is_empty()
    }

    /// Clears `__error__`.
    pub fn reset_err(&mut self) {
        self.err.clear();
    }

    /// Clears `__error_details__`.
    pub fn reset_err_details(&mut self) {
        self.err_details.clear();
    }

    /// Calls `f(name, value, category)` for every label of the entry,
    /// including `__error__`/`__error_details__` (as parsed), unsorted.
    pub fn for_each(&self, mut f: impl FnMut(&str, &str, LabelCategory)) {
        let sm = &self.add[1];
        let parsed = &self.add[2];
        for l in self.base.iter() {
            if self.del.find(&l.name).is_some()
                || sm.find(&l.name).is_some()
                || parsed.find(&l.name).is_some()
            {
                continue;
            }
            match self.add[0].find(&l.name) {
                Some(i) => f(&l.name, &self.add[0].live()[i].1, LabelCategory::Stream),
                None => f(&l.name, &l.value, LabelCategory::Stream),
            }
        }
        for (n, v) in sm.live() {
            if parsed.find(n).is_none() {
                f(n, v, LabelCategory::StructuredMetadata);
            }
        }
        for (n, v) in parsed.live() {
            f(n, v, LabelCategory::Parsed);
        }
        if !self.err.is_empty() {
            f(ERROR_LABEL, &self.err, LabelCategory::Parsed);
        }
        if !self.err_details.is_empty() {
            f(
                ERROR_DETAILS_LABEL,
                &self.err_details,
                LabelCategory::Parsed,
            );
        }
    }

    /// The entry's labels, sorted by name, into a reusable vector.
    pub fn sorted<'s>(&'s self, out: &mut Vec<(&'s str, &'s str)>) {
        out.clear();
        // Borrow the strings from `self` for the output's lifetime.
        let sm = &self.add[1];
        let parsed = &self.add[2];
        for l in self.base.iter() {
            if self.del.find(&l.name).is_some()
                || sm.find(&l.name).is_some()
                || parsed.find(&l.name).is_some()
            {
                continue;
            }
            match self.add[0].find(&l.name) {
                Some(i) => out.push((l.name.as_str(), self.add[0].live()[i].1.as_str())),
                None => out.push((l.name.as_str(), l.value.as_str())),
            }
        }
        for (n, v) in sm.live() {
            if parsed.find(n).is_none() {
                out.push((n, v));
            }
        }
        for (n, v) in parsed.live() {
            out.push((n, v));
        }
        if !self.err.is_empty() {
            out.push((ERROR_LABEL, &self.err));
        }
        if !self.err_details.is_empty() {
            out.push((ERROR_DETAILS_LABEL, &self.err_details));
        }
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }

    /// The entry's labels as an owned set.
    pub fn to_label_set(&self) -> LabelSet {
        let mut v = Vec::new();
        self.sorted(&mut v);
        LabelSet::from_pairs(v)
    }

    /// A hash of the entry's labels, independent of insertion order
    /// (equal label sets hash equal). Unchanged entries return the
    /// stream's hash, computed once.
    pub fn hash(&self) -> u64 {
        if !self.is_changed() {
            return self.base_hash;
        }
        let mut acc = 0u64;
        self.for_each(|n, v, _| acc = acc.wrapping_add(label_hash(n, v)));
        acc
    }

    /// The labels of one category (Loki's categorised output: stream,
    /// `structuredMetadata`, `parsed`), sorted.
    pub fn category(&self, category: LabelCategory) -> LabelSet {
        let mut v: Vec<(String, String)> = Vec::new();
        self.for_each(|n, val, c| {
            if c == category {
                v.push((n.to_string(), val.to_string()));
            }
        });
        LabelSet::from_pairs(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(&str, &str)]) -> LabelsBuilder {
        LabelsBuilder::new(Arc::new(LabelSet::from_pairs(pairs.iter().copied())))
    }

    #[test]
    fn precedence_and_extracted_names() {
        // Stream sl/sm/tri, metadata md/sm/tri, parsed sl/md/tri, as in
        // Loki's logfmt clash scenario.
        let mut lb = b(&[("app", "a"), ("sl", "s"), ("sm", "s"), ("tri", "s")]);
        lb.add_structured_metadata([("md", "m"), ("sm", "m"), ("tri", "m")]);
        let mut buf = String::new();
        for (k, v) in [("sl", "p"), ("md", "p"), ("tri", "p")] {
            let name = lb.parsed_name(k, &mut buf).to_string();
            lb.set(LabelCategory::Parsed, &name, v);
        }
        assert_eq!(
            lb.to_label_set().to_string(),
            r#"{app="a", md="m", md_extracted="p", sl="s", sl_extracted="p", sm="s", sm_extracted="m", tri="s", tri_extracted="p"}"#
        );
        assert_eq!(
            lb.category(LabelCategory::StructuredMetadata).to_string(),
            r#"{md="m", sm_extracted="m"}"#
        );
    }

    #[test]
    fn reset_reuses_and_restores() {
        let mut lb = b(&[("app", "a")]);
        assert!(!lb.is_changed());
        let h0 = lb.hash();
        lb.set(LabelCategory::Parsed, "x", "1");
        lb.set_err("JSONParserErr");
        assert_eq!(
            lb.to_label_set().to_string(),
            r#"{__error__="JSONParserErr", app="a", x="1"}"#
        );
        let h1 = lb.hash();
        assert_ne!(h1, h0);
        lb.reset();
        assert_eq!(lb.hash(), h0);
        assert_eq!(lb.get("x"), None);
        lb.set(LabelCategory::Parsed, "x", "1");
        lb.set_err("JSONParserErr");
        assert_eq!(lb.hash(), h1);
    }

    #[test]
    fn delete_and_get() {
        let mut lb = b(&[("app", "a"), ("zone", "eu")]);
        lb.del("zone");
        assert_eq!(lb.get("zone"), None);
        lb.set(LabelCategory::Parsed, "zone", "us");
        assert_eq!(
            lb.get_with_category("zone"),
            Some(("us", LabelCategory::Parsed))
        );
        assert_eq!(lb.to_label_set().to_string(), r#"{app="a", zone="us"}"#);
        assert!(lb.extracted("zone"));
    }
}
