//! The decision rule: a pure function of the valid votes seen and of whether
//! the deadline has passed.
//!
//! Notation: `n` expected voters, `y` YES and `x` NO votes accepted,
//! `s = n - y - x` voters not heard from, `q = ceil(2n/3)`.
//!
//! **Final rule** (all `n` voted, or the deadline passed): every voter still
//! silent counts on the `liveness_criteria_yes` side, giving `y'` YES out of
//! `n`. The decision is YES iff `2·y' > n` (a strict majority); a tie is NO.
//! For `n = 1` or `2` a strict majority is unanimity, as the RFC wants.
//!
//! **Early rule** (before the deadline): decide only when
//! 1. at least `q` voters have voted (`y + x >= q`), and
//! 2. no way the silent voters may still vote or stay silent changes the
//!    final outcome: YES if `2·y > n` (YES leads NO plus all silent voters),
//!    NO if `2·(y + s) <= n` (NO leads or ties YES plus all silent voters).
//!
//! **Why the result does not depend on arrival order or batching.** The
//! result is a function of the counts only, so of the set of votes. What is
//! left to show is that a decision, once taken, is the one any later view
//! would take: for vote sets `V ⊆ V'` (one vote per voter, same voters), if
//! the early rule decides `d` on `V`, then on `V'` the early rule decides `d`
//! and the final rule gives `d`, whether or not the deadline has passed.
//! Going from `V` to `V'`, and from there to the final count, only moves
//! silent voters to one side, so the final `y'` lies in `[y, y + s]`:
//! - if `2·y > n`: `y(V') >= y` so the early rule on `V'` still says YES, and
//!   `2·y' >= 2·y > n` so the final rule says YES;
//! - if `2·(y + s) <= n`: `y(V') + s(V') <= y + s` (a new YES keeps the sum,
//!   a new NO lowers it), so the early rule on `V'` still says NO, and
//!   `2·y' <= 2·(y + s) <= n` so the final rule says NO;
//! - participation only grows, so condition 1 keeps holding on `V'`.
//!
//! Conversely, when neither branch of condition 2 holds, "every silent voter
//! votes NO" gives a final NO and "every silent voter votes YES" a final YES,
//! so no order-independent rule can decide earlier: the rule decides as soon
//! as the outcome is settled and `q` voters have spoken.
//!
//! **Relation to the issue's wording** ("a side wins once at least two thirds
//! of the expected voters have voted and it has more votes than the other
//! side"): the final rule is that wording with ties going to NO. Before the
//! deadline the wording alone depends on order (n = 9: YYYY NN decides YES
//! after six votes, while the full set YYYY NNNNN is NO), so the early rule
//! also asks that the lead survive every vote still to come.

use crate::Decision;

/// The counts the rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// YES votes accepted.
    pub yes: u32,
    /// NO votes accepted.
    pub no: u32,
    /// Expected voters (at least the number of votes).
    pub expected: u32,
    /// How voters silent at the deadline count.
    pub liveness_criteria_yes: bool,
}

impl Counts {
    fn parts(self) -> (u64, u64, u64) {
        let n = u64::from(self.expected);
        let yes = u64::from(self.yes);
        let silent = n.saturating_sub(yes).saturating_sub(u64::from(self.no));
        (n, yes, silent)
    }
}

/// The participation needed before the deadline: `ceil(2n/3)` votes.
pub fn quorum(expected: u32) -> u32 {
    // ceil(2n/3) <= n, so the result fits in a u32.
    u32::try_from((2 * u64::from(expected)).div_ceil(3)).unwrap_or(expected)
}

/// The decision once the deadline has passed, or once everyone has voted.
pub fn decide_final(counts: Counts) -> Decision {
    let (n, yes, silent) = counts.parts();
    let yes = if counts.liveness_criteria_yes {
        yes + silent
    } else {
        yes
    };
    Decision::from_bool(2 * yes > n)
}

/// The decision before the deadline: `Some` only when settled (see the module docs).
pub fn decide_early(counts: Counts) -> Option<Decision> {
    let (n, yes, silent) = counts.parts();
    if u64::from(counts.yes) + u64::from(counts.no) < u64::from(quorum(counts.expected)) {
        return None;
    }
    if 2 * yes > n {
        Some(Decision::Yes)
    } else if 2 * (yes + silent) <= n {
        Some(Decision::No)
    } else {
        None
    }
}

/// The whole rule: the decision for a set of votes, given whether the
/// deadline has passed.
pub fn decide(counts: Counts, deadline_passed: bool) -> Option<Decision> {
    if deadline_passed {
        Some(decide_final(counts))
    } else {
        decide_early(counts)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn counts(yes: u32, no: u32, expected: u32, liveness_criteria_yes: bool) -> Counts {
        Counts {
            yes,
            no,
            expected,
            liveness_criteria_yes,
        }
    }

    #[test]
    fn quorum_is_two_thirds_rounded_up() {
        let table = [
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (5, 4),
            (6, 4),
            (9, 6),
            (10, 7),
        ];
        for (n, q) in table {
            assert_eq!(quorum(n), q, "n = {n}");
        }
        assert_eq!(quorum(u32::MAX), 2_863_311_530);
    }

    #[test]
    fn the_naive_counterexample_stays_open_until_settled() {
        // n = 9: YYYY NN is not settled (three voters could still tip it) ...
        assert_eq!(decide_early(counts(4, 2, 9, true)), None);
        // ... and the full set is NO.
        assert_eq!(decide_early(counts(4, 5, 9, true)), Some(Decision::No));
        assert_eq!(decide_final(counts(4, 5, 9, true)), Decision::No);
    }

    #[test]
    fn small_groups_need_unanimity() {
        for liveness in [false, true] {
            assert_eq!(decide_early(counts(1, 0, 1, liveness)), Some(Decision::Yes));
            assert_eq!(decide_early(counts(0, 1, 1, liveness)), Some(Decision::No));
            assert_eq!(decide_early(counts(1, 0, 2, liveness)), None);
            assert_eq!(decide_early(counts(2, 0, 2, liveness)), Some(Decision::Yes));
            assert_eq!(decide_early(counts(1, 1, 2, liveness)), Some(Decision::No));
            assert_eq!(decide_final(counts(1, 1, 2, liveness)), Decision::No);
        }
        // One silent voter at the deadline counts as the liveness side.
        assert_eq!(decide_final(counts(1, 0, 2, true)), Decision::Yes);
        assert_eq!(decide_final(counts(1, 0, 2, false)), Decision::No);
    }

    #[test]
    fn ties_are_no_and_silence_follows_liveness() {
        assert_eq!(decide_final(counts(2, 2, 4, true)), Decision::No);
        assert_eq!(decide_final(counts(0, 0, 5, true)), Decision::Yes);
        assert_eq!(decide_final(counts(0, 0, 5, false)), Decision::No);
        // 2 YES + 1 silent (as YES) against 2 NO.
        assert_eq!(decide_final(counts(2, 2, 5, true)), Decision::Yes);
        assert_eq!(decide_final(counts(2, 2, 5, false)), Decision::No);
    }

    #[test]
    fn settled_but_below_quorum_waits() {
        // n = 9, five YES is a majority, but only five of the six needed voted.
        assert_eq!(decide_early(counts(5, 0, 9, false)), None);
        assert_eq!(decide_early(counts(5, 1, 9, false)), Some(Decision::Yes));
    }

    /// A vote set and a superset of it, as counts.
    fn nested_counts() -> impl Strategy<Value = (Counts, Counts)> {
        (1u32..=300)
            .prop_flat_map(|n| (Just(n), 0..=n))
            .prop_flat_map(|(n, yes_all)| (Just(n), Just(yes_all), 0..=n - yes_all))
            .prop_flat_map(|(n, yes_all, no_all)| {
                (
                    Just(n),
                    Just(yes_all),
                    Just(no_all),
                    0..=yes_all,
                    0..=no_all,
                    any::<bool>(),
                )
            })
            .prop_map(|(n, yes_all, no_all, yes, no, live)| {
                (counts(yes, no, n, live), counts(yes_all, no_all, n, live))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// An early decision is never contradicted by more votes or by the deadline.
        #[test]
        fn early_decisions_are_final((small, big) in nested_counts()) {
            if let Some(decision) = decide_early(small) {
                prop_assert_eq!(decide_early(big), Some(decision));
                prop_assert_eq!(decide_final(big), decision);
                prop_assert_eq!(decide_final(small), decision);
            }
        }

        /// With everyone heard from, the early and the final rule agree.
        #[test]
        fn complete_sets_decide_before_the_deadline(
            (n, yes) in (1u32..=300).prop_flat_map(|n| (Just(n), 0..=n)),
            live: bool,
        ) {
            let full = counts(yes, n - yes, n, live);
            prop_assert_eq!(decide_early(full), Some(decide_final(full)));
        }
    }
}
