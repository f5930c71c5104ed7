//! Misbehaviour on demand, for tests of how honest members defend themselves.
//! Compiled only with the `byzantine` feature, which the product never enables.

use demls_consensus::{Consensus, ConsensusConfig, ProposalId, ProposalSpec, wire};
use demls_identity::Address;
use mls_rs::MlsMessage;

use crate::change::Change;
use crate::join::send_join_request;
use crate::wire::app_message;
use crate::{Engine, EngineError, GroupId, Timestamp};

impl Engine {
    /// Sends any application payload as this member, bypassing every check.
    pub fn byzantine_send_app(
        &mut self,
        group: &GroupId,
        body: app_message::Body,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        session.send_app(body, &mut ctx)
    }

    /// Commits these adds and removes with an empty manifest, as if they had been voted.
    pub fn byzantine_commit(
        &mut self,
        group: &GroupId,
        adds: Vec<Vec<u8>>,
        removes: Vec<Address>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let (mut ctx, session) = self.session(group, now)?;
        let mut changes = Vec::new();
        for key_package in adds {
            changes.push(Change::add_from_bytes(&key_package)?);
        }
        changes.extend(removes.into_iter().map(|target| Change::Remove { target }));
        session.commit_changes(changes, Vec::new(), &mut ctx)
    }

    /// Seals arbitrary key package bytes to the group's announced steward.
    pub fn byzantine_join_request(
        &mut self,
        group: &GroupId,
        key_package: Vec<u8>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let announcement = self
            .announcements
            .get(group)
            .cloned()
            .ok_or(EngineError::NotForUs)?;
        let message = MlsMessage::from_bytes(&key_package)?;
        let (mut ctx, _, _, _) = self.split(now);
        send_join_request(group, &message, &announcement, &mut ctx)
    }

    /// `count` distinct valid proposals by this member for the current epoch, not sent.
    pub fn byzantine_proposals(
        &mut self,
        group: &GroupId,
        count: u64,
        now: Timestamp,
    ) -> Result<Vec<wire::Proposal>, EngineError> {
        let (ctx, session) = self.session(group, now)?;
        let voters: std::collections::BTreeSet<Address> = session.members().into_iter().collect();
        let target = *voters
            .iter()
            .find(|a| **a != ctx.wallet.address())
            .ok_or(EngineError::NotForUs)?;
        let payload = Change::Remove { target }.encode(session.epoch())?;
        let mut scratch = Consensus::new(ConsensusConfig {
            max_open_proposals_per_owner: usize::MAX,
            ..ConsensusConfig::default()
        });
        (0..count)
            .map(|i| {
                let spec = ProposalSpec {
                    name: "demls/group-change/v1".into(),
                    payload: payload.clone(),
                    voters: voters.clone(),
                    expiration: now.plus_ms(60_000).into(),
                    liveness_criteria_yes: true,
                };
                Ok(scratch.create_proposal(ctx.wallet, spec, now.plus_ms(i * 1000).into())?)
            })
            .collect()
    }

    /// The vote `voter` cast on `proposal`, as this node recorded it.
    pub fn byzantine_recorded_vote(
        &self,
        group: &GroupId,
        proposal: ProposalId,
        voter: Address,
    ) -> Option<wire::Vote> {
        let session = self.groups.get(group)?;
        session
            .consensus
            .proposal(proposal)?
            .votes
            .iter()
            .find(|v| v.vote_owner == voter.as_bytes())
            .cloned()
    }
}
