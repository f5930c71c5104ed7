//! MLS rules: what every demls commit and message looks like on the wire.

use std::convert::Infallible;

use mls_rs::MlsRules;
use mls_rs::client_builder::PaddingMode;
use mls_rs::group::GroupContext;
use mls_rs::group::Roster;
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
#[derive(Clone, Copy, Debug, Default)]
pub struct DemlsRules;

impl MlsRules for DemlsRules {
    type Error = Infallible;

    fn filter_proposals(
        &self,
        _direction: CommitDirection,
        _source: CommitSource,
        _current_roster: &Roster,
        _current_context: &GroupContext,
        proposals: ProposalBundle,
    ) -> Result<ProposalBundle, Self::Error> {
        Ok(proposals)
    }

    fn commit_options(
        &self,
        _new_roster: &Roster,
        _new_context: &GroupContext,
        _proposals: &ProposalBundle,
    ) -> Result<CommitOptions, Self::Error> {
        Ok(CommitOptions::new()
            .with_ratchet_tree_extension(false)
            .with_always_out_of_band_ratchet_tree(true)
            .with_single_welcome_message(true)
            .with_path_required(false))
    }

    fn encryption_options(
        &self,
        _current_roster: &Roster,
        _current_context: &GroupContext,
    ) -> Result<EncryptionOptions, Self::Error> {
        Ok(EncryptionOptions::new(true, PaddingMode::StepFunction))
    }
}
