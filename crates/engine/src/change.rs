//! Membership changes: what a voting proposal asks for, decoded and checked.

use demls_identity::Address;
use mls_rs::{KeyPackage, MlsMessage};
use prost::Message;

use crate::mls::{CIPHER_SUITE, WalletIdentityProvider};
use crate::wire::{GroupChange, Invitation, group_change};
use crate::{ChangeKind, EngineError, Epoch};

/// A decoded membership change.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// Admit the owner of a key package.
    Add {
        /// The key package's (verified) address.
        address: Address,
        /// The MLS KeyPackage message.
        key_package: Box<MlsMessage>,
        /// A re-add: the address is a member whose state is lost (or on a
        /// dead branch), and this key package replaces its leaf.
        replace: bool,
        /// A member's invitation of the joiner, carried for every voter to check.
        invitation: Option<Box<Invitation>>,
    },
    /// Remove a member (a leave when `target` is the proposal's owner).
    Remove {
        /// The member.
        target: Address,
    },
    /// The proposal's owner replaces its own leaf keys: needs no vote, like a leave.
    Update {
        /// The owner's MLS Update proposal message, made when the proposal is opened
        /// (empty in the list of what a member still asks for).
        proposal: Vec<u8>,
    },
}

impl Change {
    /// Reads a key package message and checks its ciphersuite and wallet binding.
    pub(crate) fn add_from_bytes(bytes: &[u8]) -> Result<Self, EngineError> {
        Self::key_package_change(bytes, false)
    }

    /// An add (or, with `replace`, a re-add) of a key package's owner.
    pub(crate) fn key_package_change(bytes: &[u8], replace: bool) -> Result<Self, EngineError> {
        let key_package = MlsMessage::from_bytes(bytes)
            .map_err(|e| EngineError::Malformed(format!("key package: {e}")))?;
        let address = key_package_address(&key_package)?;
        Ok(Self::Add {
            address,
            key_package: Box::new(key_package),
            replace,
            invitation: None,
        })
    }

    /// Decodes a proposal payload, which must be for `epoch`.
    pub(crate) fn decode(payload: &[u8], epoch: Epoch) -> Result<Self, EngineError> {
        let change = GroupChange::decode(payload)?;
        if change.epoch != epoch.0 {
            return Err(EngineError::WrongEpoch {
                got: Epoch(change.epoch),
                current: epoch,
            });
        }
        Self::from_wire(change)
    }

    /// Decodes a change whatever its epoch (for persisted changes).
    pub(crate) fn decode_any_epoch(payload: &[u8]) -> Result<Self, EngineError> {
        Self::from_wire(GroupChange::decode(payload)?)
    }

    fn from_wire(change: GroupChange) -> Result<Self, EngineError> {
        let decoded = match change.change {
            Some(group_change::Change::AddKeyPackage(bytes)) => {
                Self::key_package_change(&bytes, false)
            }
            Some(group_change::Change::ReaddKeyPackage(bytes)) => {
                Self::key_package_change(&bytes, true)
            }
            Some(group_change::Change::RemoveMember(bytes)) => Address::from_slice(&bytes)
                .map(|target| Self::Remove { target })
                .ok_or_else(|| EngineError::Malformed("remove target is not an address".into())),
            Some(group_change::Change::SelfUpdate(proposal)) => Ok(Self::Update { proposal }),
            None => Err(EngineError::Malformed("empty group change".into())),
        }?;
        Ok(decoded.with_invitation(change.invitation))
    }

    /// The same change carrying `invitation` (an add only; other changes take none).
    pub(crate) fn with_invitation(self, invitation: Option<Invitation>) -> Self {
        match self {
            Self::Add {
                address,
                key_package,
                replace: false,
                ..
            } => Self::Add {
                address,
                key_package,
                replace: false,
                invitation: invitation.map(Box::new),
            },
            other => other,
        }
    }

    /// Encodes the change as a proposal payload for `epoch`.
    pub(crate) fn encode(&self, epoch: Epoch) -> Result<Vec<u8>, EngineError> {
        let invitation = match self {
            Self::Add { invitation, .. } => invitation.as_deref().cloned(),
            Self::Remove { .. } | Self::Update { .. } => None,
        };
        let change = match self {
            Self::Add {
                key_package,
                replace: false,
                ..
            } => group_change::Change::AddKeyPackage(key_package.to_bytes()?),
            Self::Add {
                key_package,
                replace: true,
                ..
            } => group_change::Change::ReaddKeyPackage(key_package.to_bytes()?),
            Self::Remove { target } => {
                group_change::Change::RemoveMember(target.as_bytes().to_vec())
            }
            Self::Update { proposal } => group_change::Change::SelfUpdate(proposal.clone()),
        };
        Ok(GroupChange {
            epoch: epoch.0,
            change: Some(change),
            invitation,
        }
        .encode_to_vec())
    }

    /// The change as voters see it, given who proposed it.
    pub(crate) fn kind(&self, owner: Address) -> ChangeKind {
        match self {
            Self::Add {
                address,
                replace: false,
                ..
            } => ChangeKind::Add(*address),
            Self::Add {
                address,
                replace: true,
                ..
            } => ChangeKind::Readd(*address),
            Self::Remove { target } if *target == owner => ChangeKind::Leave(owner),
            Self::Remove { target } => ChangeKind::Remove(*target),
            Self::Update { .. } => ChangeKind::Update(owner),
        }
    }

    /// Whether two changes ask for the same thing.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Add {
                    address: a,
                    replace: x,
                    ..
                },
                Self::Add {
                    address: b,
                    replace: y,
                    ..
                },
            ) => a == b && x == y,
            (Self::Remove { target: a }, Self::Remove { target: b }) => a == b,
            // Whose update it is, is its proposal's owner: callers compare owners.
            (Self::Update { .. }, Self::Update { .. }) => true,
            _ => false,
        }
    }

    /// The member this change is about, given who proposed it.
    pub(crate) fn subject(&self, owner: Address) -> Address {
        match self {
            Self::Add { address, .. } => *address,
            Self::Remove { target } => *target,
            Self::Update { .. } => owner,
        }
    }
}

/// The verified address of a key package message.
pub(crate) fn key_package_address(message: &MlsMessage) -> Result<Address, EngineError> {
    let key_package = key_package_of(message)?;
    if key_package.cipher_suite() != CIPHER_SUITE {
        return Err(EngineError::UnsupportedCipherSuite(
            *key_package.cipher_suite(),
        ));
    }
    WalletIdentityProvider::address_of(key_package.signing_identity())
        .map_err(|e| EngineError::InvalidProposal(format!("key package credential: {e}")))
}

/// The key package inside a message, or a typed error.
pub(crate) fn key_package_of(message: &MlsMessage) -> Result<&KeyPackage, EngineError> {
    message
        .as_key_package()
        .ok_or_else(|| EngineError::Malformed("not a key package".into()))
}
