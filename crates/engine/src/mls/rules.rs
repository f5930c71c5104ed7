//! MLS rules: what every demls commit and message looks like on the wire.

use std::convert::Infallible;

use mls_rs::MlsRules;
use mls_rs::client_builder::PaddingMode;
use mls_rs::group::proposal::{Proposal, UpdateProposal};
use mls_rs::group::{GroupContext, Roster, Sender};
use mls_rs::mls_rules::{
    CommitDirection, CommitOptions, CommitSource, EncryptionOptions, ProposalBundle,
};

/// de-MLS rules for mls-rs.
///
/// - Handshake messages are PrivateMessages, so that openmls peers (which by
///   default accept only encrypted handshakes) and eavesdroppers on the
///   public topic see no membership changes.
/// - The ratchet tree never travels inside the Welcome's GroupInfo (that would
///   encrypt the whole tree once per joiner, a quadratic cost); the steward
///   sends it once, encrypted, beside the Welcome.
/// - Which proposals a commit may carry is decided by the vote, which the
///   engine checks against the commit's effect, so mls-rs's filter passes all.
/// - A commit carries an UpdatePath (rotating its committer's leaf) whenever MLS
///   requires one (removals, updates) and otherwise while the group has at most
///   [`PATH_AFFORDABLE_MEMBERS`] members, or when its committer rotates its own leaf
///   ([`with_committer_rotation`]). Larger add-only commits go without: in a tree freshly
///   filled by a batch add a path encrypts to almost every leaf (see docs/performance.md).
#[derive(Clone, Copy, Debug, Default)]
pub struct DemlsRules;

/// Up to this many members, every commit carries an UpdatePath.
pub const PATH_AFFORDABLE_MEMBERS: usize = 1000;

thread_local! {
    /// Set while this thread builds a commit that rotates its committer's own leaf.
    static COMMITTER_ROTATES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `build` (which builds a commit) with an UpdatePath required if `rotate`. mls-rs
/// asks the client's rules for commit options while it builds; the rules are shared by
/// every group of the client, so the wish of this one commit travels beside them, on
/// the building thread.
pub(crate) fn with_committer_rotation<T>(rotate: bool, build: impl FnOnce() -> T) -> T {
    let outer = COMMITTER_ROTATES.with(|flag| flag.replace(rotate));
    let built = build();
    COMMITTER_ROTATES.with(|flag| flag.set(outer));
    built
}

impl MlsRules for DemlsRules {
    type Error = Infallible;

    fn filter_proposals(
        &self,
        direction: CommitDirection,
        _source: CommitSource,
        _current_roster: &Roster,
        _current_context: &GroupContext,
        mut proposals: ProposalBundle,
    ) -> Result<ProposalBundle, Self::Error> {
        if direction == CommitDirection::Send {
            order_updates(&mut proposals);
        }
        Ok(proposals)
    }

    fn commit_options(
        &self,
        new_roster: &Roster,
        _new_context: &GroupContext,
        _proposals: &ProposalBundle,
    ) -> Result<CommitOptions, Self::Error> {
        Ok(CommitOptions::new()
            .with_ratchet_tree_extension(false)
            .with_always_out_of_band_ratchet_tree(true)
            .with_single_welcome_message(true)
            .with_path_required(
                COMMITTER_ROTATES.with(std::cell::Cell::get)
                    || new_roster.members_iter().count() <= PATH_AFFORDABLE_MEMBERS,
            ))
    }

    fn encryption_options(
        &self,
        _current_roster: &Roster,
        _current_context: &GroupContext,
    ) -> Result<EncryptionOptions, Self::Error> {
        Ok(EncryptionOptions::new(true, PaddingMode::StepFunction))
    }
}

/// Puts the updates a commit takes by reference in their senders' leaf order. mls-rs gathers
/// them from a `HashMap`, whose order follows the standard library's per-process random
/// hash keys; without this, a commit of several self-updates would differ between two runs
/// of the same seeded simulation. Receivers accept any order, so only the committer sorts.
fn order_updates(proposals: &mut ProposalBundle) {
    if proposals.update_proposals().len() < 2 {
        return;
    }
    let mut updates = proposals.update_proposals().to_vec();
    updates.sort_by_key(|update| match update.sender {
        Sender::Member(leaf) => leaf,
        // Only members send updates; mls-rs drops any other later.
        _ => u32::MAX,
    });
    let removed: Result<(), Infallible> =
        proposals.retain_by_type::<UpdateProposal, _, _>(|_| Ok(false));
    let Ok(()) = removed;
    for update in updates {
        proposals.add(
            Proposal::Update(update.proposal),
            update.sender,
            update.source,
        );
    }
}
