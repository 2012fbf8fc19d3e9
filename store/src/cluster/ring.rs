//! Which members own a stream: rendezvous (highest random weight)
//! hashing. Every member gets a score for a stream from a hash of
//! (member identity, tenant, fingerprint); the members in descending score order
//! are the stream's candidates, the first `replication_factor` its
//! owners, the next ones where it goes when an owner does not answer.
//!
//! Adding a member moves only the streams for which the new member scores
//! highest among the owners (about `rf / (n + 1)` of them); removing one
//! moves only its own streams, each to its next candidate. No table is
//! kept, so every node computes the same owners from the same member set.

use xxhash_rust::xxh3::Xxh3;

/// A member's score for a stream.
pub fn score(member: &str, tenant: &str, fp: u64) -> u64 {
    let mut h = Xxh3::new();
    h.update(member.as_bytes());
    h.update(&[0xff]);
    h.update(tenant.as_bytes());
    h.update(&[0xff]);
    h.update(&fp.to_le_bytes());
    h.digest()
}

/// Indexes of `members` in candidate order for a stream: highest score
/// first (ties, which need equal hashes, by name).
pub fn candidates(members: &[String], tenant: &str, fp: u64) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (score(m, tenant, fp), i))
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| members[a.1].cmp(&members[b.1])));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// The owners of a stream: the first `rf` candidates (all members when
/// there are fewer).
pub fn owners(members: &[String], tenant: &str, fp: u64, rf: usize) -> Vec<usize> {
    let mut c = candidates(members, tenant, fp);
    c.truncate(rf);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:9095")).collect()
    }

    fn owner_set(members: &[String], fp: u64, rf: usize) -> BTreeSet<String> {
        owners(members, "t", fp, rf)
            .into_iter()
            .map(|i| members[i].clone())
            .collect()
    }

    #[test]
    fn owners_are_distinct_and_stable() {
        let m = names(5);
        for fp in 0..1000u64 {
            let o = owners(&m, "t", fp, 3);
            assert_eq!(o.len(), 3);
            assert_eq!(o.iter().collect::<BTreeSet<_>>().len(), 3);
            let mut shuffled = m.clone();
            shuffled.reverse();
            assert_eq!(owner_set(&m, fp, 3), owner_set(&shuffled, fp, 3));
        }
        assert_eq!(owners(&names(2), "t", 1, 3).len(), 2);
    }

    #[test]
    fn streams_spread_evenly() {
        let m = names(3);
        let mut per = [0u32; 3];
        for fp in 0..30_000u64 {
            per[owners(&m, "t", fp.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1)[0]] += 1;
        }
        for p in per {
            assert!((9_000..11_000).contains(&p), "{per:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Adding one member to `n` moves about `rf / (n + 1)` of the
        /// streams' owner slots (only to the new member), and removing
        /// one moves only the slots it held.
        #[test]
        fn one_member_moves_about_one_nth(n in 3usize..8, rf in 1usize..4, seed in any::<u64>()) {
            let rf = rf.min(n);
            let before = names(n);
            let mut after = before.clone();
            after.push("10.0.1.99:9095".to_string());
            let streams = 4000u64;
            let mut moved_slots = 0usize;
            let mut removed_moved = 0usize;
            let mut removed_held = 0usize;
            for i in 0..streams {
                let fp = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let a = owner_set(&before, fp, rf);
                let b = owner_set(&after, fp, rf);
                // Only the new member gains slots.
                for o in b.difference(&a) {
                    prop_assert_eq!(o.as_str(), "10.0.1.99:9095");
                }
                moved_slots += b.difference(&a).count();
                // Removing the member `before[0]`.
                let mut less = before.clone();
                less.remove(0);
                let c = owner_set(&less, fp, rf.min(n - 1));
                let held = a.contains(&before[0]);
                removed_held += usize::from(held);
                let lost: Vec<_> = a.difference(&c).collect();
                if held {
                    prop_assert_eq!(lost.len(), 1);
                    removed_moved += 1;
                } else {
                    prop_assert!(lost.is_empty() || rf > n - 1);
                }
            }
            let expected = streams as f64 * rf as f64 / (n + 1) as f64;
            let got = moved_slots as f64;
            prop_assert!((got - expected).abs() < expected * 0.2 + 50.0, "moved {} expected {}", got, expected);
            prop_assert_eq!(removed_moved, removed_held);
            let expected_removed = streams as f64 * rf as f64 / n as f64;
            prop_assert!((removed_held as f64 - expected_removed).abs() < expected_removed * 0.2 + 50.0);
        }
    }
}
