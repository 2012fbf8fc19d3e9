//! Label sets as the agent builds them: sorted, unique names, reusable
//! without allocation.
//!
//! A [`Labels`] keeps its `(name, value)` strings alive after `clear()` or
//! `remove()`, so the per-entry path of the pipeline (reset to the file's
//! labels, let stages add a few) reuses the same heap buffers line after
//! line. Its text form is Prometheus' `{a="1", b="2"}`, the form Loki's push
//! API carries, and [`Labels::hash`] is the key under which the batcher
//! groups entries into streams.

use xxhash_rust::xxh3::Xxh3;

/// A sorted set of labels whose strings are reused across `clear()`.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// `pairs[..len]` are the labels, sorted by name; the rest are spare
    /// buffers kept for reuse.
    pairs: Vec<(String, String)>,
    len: usize,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.pairs[..self.len] == other.pairs[..other.len]
    }
}
impl Eq for Labels {}

impl Labels {
    /// An empty set.
    pub fn new() -> Self {
        Labels::default()
    }

    /// Builds a set from pairs (later duplicates win).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut l = Labels::new();
        for (n, v) in pairs {
            l.set(n, v);
        }
        l
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every label, keeping the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs[..self.len]
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.pairs[..self.len].binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.pairs[i].1.as_str())
    }

    /// Sets `name` to `value`, replacing an existing value.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.find(name) {
            Ok(i) => {
                let v = &mut self.pairs[i].1;
                v.clear();
                v.push_str(value);
            }
            Err(pos) => {
                if self.pairs.len() == self.len {
                    self.pairs.push((String::new(), String::new()));
                }
                let spare = &mut self.pairs[self.len];
                spare.0.clear();
                spare.0.push_str(name);
                spare.1.clear();
                spare.1.push_str(value);
                self.pairs[pos..=self.len].rotate_right(1);
                self.len += 1;
            }
        }
    }

    /// Removes `name`; returns whether it was present.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.find(name) {
            Ok(i) => {
                self.pairs[i..self.len].rotate_left(1);
                self.len -= 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Keeps only the labels for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut i = 0;
        while i < self.len {
            if keep(&self.pairs[i].0, &self.pairs[i].1) {
                i += 1;
            } else {
                self.pairs[i..self.len].rotate_left(1);
                self.len -= 1;
            }
        }
    }

    /// Makes `self` equal to `other`, reusing `self`'s buffers.
    pub fn copy_from(&mut self, other: &Labels) {
        for i in 0..other.len {
            if i == self.pairs.len() {
                self.pairs.push((String::new(), String::new()));
            }
            let (n, v) = &other.pairs[i];
            let dst = &mut self.pairs[i];
            dst.0.clone_from(n);
            dst.1.clone_from(v);
        }
        self.len = other.len;
    }

    /// A 64-bit hash of names and values (xxh3); equal sets hash equally.
    pub fn hash(&self) -> u64 {
        let mut h = Xxh3::new();
        for (n, v) in self.iter() {
            h.update(n.as_bytes());
            h.update(&[0xff]);
            h.update(v.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// Appends the Prometheus text form, `{a="1", b="2"}` (values quoted
    /// as Go's `strconv.Quote` quotes them), to `out`.
    pub fn write_text(&self, out: &mut String) {
        out.push('{');
        for (i, (n, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(n);
            out.push('=');
            larch_go::quote::quote_into(out, v);
        }
        out.push('}');
    }

    /// The Prometheus text form as a new string.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_text(&mut s);
        s
    }
}

impl std::fmt::Display for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.write_text(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_reused() {
        let mut l = Labels::new();
        l.set("pod", "p");
        l.set("app", "a");
        l.set("namespace", "n");
        l.set("app", "b");
        assert_eq!(l.to_text(), r#"{app="b", namespace="n", pod="p"}"#);
        assert!(l.remove("namespace"));
        assert!(!l.remove("namespace"));
        assert_eq!(l.to_text(), r#"{app="b", pod="p"}"#);
        l.clear();
        assert!(l.is_empty());
        l.set("z", "1");
        l.set("a", "2");
        assert_eq!(l.to_text(), r#"{a="2", z="1"}"#);
        assert_eq!(l.get("z"), Some("1"));
        assert_eq!(l.get("y"), None);
    }

    #[test]
    fn copy_hash_and_escape() {
        let a = Labels::from_pairs([("a", "x\"y\\z\n"), ("b", "1")]);
        let mut b = Labels::from_pairs([("q", "1"), ("r", "2"), ("s", "3")]);
        b.copy_from(&a);
        assert_eq!(a, b);
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.to_text(), r#"{a="x\"y\\z\n", b="1"}"#);
        let c = Labels::from_pairs([("a", "x"), ("b", "1")]);
        assert_ne!(a.hash(), c.hash());
        let mut d = c.clone();
        d.retain(|n, _| n != "a");
        assert_eq!(d.to_text(), r#"{b="1"}"#);
    }
}
