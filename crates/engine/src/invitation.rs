//! Invitations: a member's YES on admitting an address, signed ahead.
//!
//! An inviting member signs `(group, invitee, inviter, issued, expires)` with its wallet. The
//! invitation travels three ways: told to the group (so every member knows it), handed to
//! the invitee out of band (who seals it into its join request), and carried by the
//! steward's add proposal (so every voter can check it, also one that joined later).
//! Automatic voters vote YES on an invited joiner; the inviter's own node votes YES even
//! on manual voting, since the invitation is that person's decision.

use std::collections::BTreeMap;

use demls_identity::Address;
use prost::Message;

use crate::context::Ctx;
use crate::session::GroupSession;
use crate::wire::{Invitation, app_message, check_signed_by, signing_bytes};
use crate::{EngineError, Event, GroupId, Timestamp};

/// Most invitations a member keeps per group (the newest expiry per invitee).
const KEPT: usize = 4096;

/// Why an invitation cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    /// The bytes are not an invitation.
    #[error("not an invitation: {0}")]
    Malformed(String),
    /// Its signature is not its inviter's.
    #[error("its signature is not its inviter's")]
    Forged,
    /// It invites to another group.
    #[error("it is for another group")]
    OtherGroup,
    /// It invites someone else.
    #[error("it invites {0}, not this address")]
    OtherInvitee(Address),
    /// Its time is over.
    #[error("it expired")]
    Expired,
    /// Its inviter is not a member (any more).
    #[error("its inviter {0} is not a member")]
    InviterNotMember(Address),
}

/// A checked invitation.
#[derive(Clone, Debug)]
pub(crate) struct Invited {
    pub(crate) invitee: Address,
    pub(crate) inviter: Address,
    pub(crate) expires_at: Timestamp,
    pub(crate) wire: Invitation,
}

impl Invited {
    /// Signs an invitation of `invitee` to `group` by `wallet`'s owner.
    pub(crate) fn issue(
        wallet: &demls_identity::Wallet,
        group: &GroupId,
        invitee: Address,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Self {
        let mut wire = Invitation {
            group_id: group.as_str().to_owned(),
            invitee: invitee.as_bytes().to_vec(),
            inviter: wallet.address().as_bytes().to_vec(),
            issued_at_ms: now.0,
            expires_at_ms: expires_at.0,
            signature: Vec::new(),
        };
        let signed = signing_bytes(&wire, |i| i.signature.clear());
        wire.signature = wallet.sign_personal(&signed).as_bytes().to_vec();
        Self {
            invitee,
            inviter: wallet.address(),
            expires_at,
            wire,
        }
    }

    /// Reads and checks an encoded invitation (see [`Invited::check`]).
    pub(crate) fn decode(
        bytes: &[u8],
        group: &GroupId,
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let wire =
            Invitation::decode(bytes).map_err(|e| InvitationError::Malformed(e.to_string()))?;
        Self::check(wire, group, now)
    }

    /// Checks an invitation's form, group, time and signature (not its inviter's membership,
    /// which depends on the epoch it is judged in).
    pub(crate) fn check(
        wire: Invitation,
        group: &GroupId,
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let address = |bytes: &[u8], what: &str| {
            Address::from_slice(bytes)
                .ok_or_else(|| InvitationError::Malformed(format!("{what} is not an address")))
        };
        let invitee = address(&wire.invitee, "invitee")?;
        let inviter = address(&wire.inviter, "inviter")?;
        if wire.group_id != group.as_str() {
            return Err(InvitationError::OtherGroup.into());
        }
        if check_signed_by(&wire, &wire.signature, |i| i.signature.clear(), inviter).is_err() {
            return Err(InvitationError::Forged.into());
        }
        let expires_at = Timestamp(wire.expires_at_ms);
        if expires_at <= now {
            return Err(InvitationError::Expired.into());
        }
        Ok(Self {
            invitee,
            inviter,
            expires_at,
            wire,
        })
    }

    /// The invitation as bytes, to hand to the invitee.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.wire.encode_to_vec()
    }
}

/// The invitations a member knows in one group, by invitee.
#[derive(Default)]
pub(crate) struct Invitations {
    by_invitee: BTreeMap<Address, Invited>,
}

impl Invitations {
    /// Keeps `invited` if it outlasts the one known for its invitee; drops expired ones.
    pub(crate) fn keep(&mut self, invited: Invited, now: Timestamp) {
        self.by_invitee.retain(|_, i| i.expires_at > now);
        let better = self
            .by_invitee
            .get(&invited.invitee)
            .is_none_or(|known| known.expires_at < invited.expires_at);
        if better
            && (self.by_invitee.len() < KEPT || self.by_invitee.contains_key(&invited.invitee))
        {
            self.by_invitee.insert(invited.invitee, invited);
        }
    }

    /// A live invitation of `invitee`, if known.
    pub(crate) fn of(&self, invitee: &Address, now: Timestamp) -> Option<&Invited> {
        self.by_invitee.get(invitee).filter(|i| i.expires_at > now)
    }

    /// Forgets the invitations of whoever `is_member` says joined.
    pub(crate) fn forget_members(&mut self, is_member: impl Fn(&Address) -> bool) {
        self.by_invitee.retain(|invitee, _| !is_member(invitee));
    }

    /// Every invitation kept, for the snapshot.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Invited> {
        self.by_invitee.values()
    }
}

impl GroupSession {
    /// Invites `invitee` until `expires_at`: the invitation is told to the group and
    /// returned, for the invitee to present with its join request.
    pub(crate) fn invite(
        &mut self,
        invitee: Address,
        expires_at: Timestamp,
        ctx: &mut Ctx<'_>,
    ) -> Result<Invited, EngineError> {
        if self.state.is_member(&invitee) {
            return Err(EngineError::AlreadyMember(invitee));
        }
        if expires_at <= ctx.now {
            return Err(InvitationError::Expired.into());
        }
        let invited = Invited::issue(ctx.wallet, &self.id, invitee, ctx.now, expires_at);
        self.send_app(app_message::Body::Invitation(invited.wire.clone()), ctx)?;
        self.take_invitation(invited.clone(), ctx)?;
        Ok(invited)
    }

    /// An invitation a member told the group.
    pub(crate) fn receive_invitation(
        &mut self,
        sender: Address,
        wire: Invitation,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), EngineError> {
        let invited = Invited::check(wire, &self.id, ctx.now)?;
        if invited.inviter != sender {
            return Err(EngineError::SenderMismatch {
                sender,
                claimed: invited.inviter,
            });
        }
        if self.state.is_member(&invited.invitee) {
            return Err(EngineError::AlreadyMember(invited.invitee));
        }
        self.take_invitation(invited, ctx)
    }

    /// Keeps a checked invitation, says so, and votes on the invitee's open requests.
    fn take_invitation(&mut self, invited: Invited, ctx: &mut Ctx<'_>) -> Result<(), EngineError> {
        let invitee = invited.invitee;
        ctx.emit(Event::Invited {
            group: self.id.clone(),
            invitee,
            inviter: invited.inviter,
            expires_at: invited.expires_at,
        });
        self.invitations.keep(invited, ctx.now);
        self.reconsider(&crate::ChangeKind::Add(invitee), ctx)
    }

    /// The member that invited `joiner`: by the invitation its proposal carries, or one
    /// this member knows, as long as the inviter is still a member.
    pub(crate) fn invited_by(
        &mut self,
        joiner: Address,
        carried: Option<&Invitation>,
        now: Timestamp,
    ) -> Option<Address> {
        if let Some(Ok(invited)) = carried.map(|wire| Invited::check(wire.clone(), &self.id, now))
            && invited.invitee == joiner
        {
            self.invitations.keep(invited, now);
        }
        self.invitations
            .of(&joiner, now)
            .map(|i| i.inviter)
            .filter(|inviter| self.state.is_member(inviter))
    }

    /// Checks the invitation an add proposal carries: a forged one, or one for someone or
    /// somewhere else, condemns the proposal; one that expired meanwhile only does not count.
    pub(crate) fn check_carried_invitation(
        &self,
        joiner: Address,
        wire: Invitation,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        match Invited::check(wire, &self.id, now) {
            Ok(invited) if invited.invitee != joiner => {
                Err(InvitationError::OtherInvitee(invited.invitee).into())
            }
            Ok(_) | Err(EngineError::Invitation(InvitationError::Expired)) => Ok(()),
            Err(error) => Err(error),
        }
    }
}
