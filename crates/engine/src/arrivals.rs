//! How members came in, as this member saw it: the group's recent Welcomes (sent again to
//! a joiner that lost its own) and the key package each member was last added with (a
//! member asking again with that very one is still waiting for its Welcome, not a member
//! that lost its state to re-add).

use std::collections::{BTreeMap, VecDeque};

use demls_identity::Address;

use crate::wire::WelcomeBundle;

/// Welcomes kept, at most this many, the oldest dropped first.
const KEPT: usize = 32;

/// Recent Welcomes and the key packages members were added with.
#[derive(Default)]
pub(crate) struct Arrivals {
    /// Recent Welcomes of this group, with the key package references they admit.
    welcomes: VecDeque<(Vec<Vec<u8>>, WelcomeBundle)>,
    /// The key package (reference) each member was last added with, while it is a member.
    added_with: BTreeMap<Address, Vec<u8>>,
}

impl Arrivals {
    /// Keeps a Welcome seen for this group, to send again to a joiner that lost it; one
    /// that cannot be read is not kept.
    pub(crate) fn keep_welcome(&mut self, bundle: WelcomeBundle) {
        let Ok(message) = mls_rs::MlsMessage::from_bytes(&bundle.welcome) else {
            return;
        };
        let mls_rs::MlsMessageDescription::Welcome {
            key_package_refs, ..
        } = message.description()
        else {
            return;
        };
        let refs = key_package_refs.iter().map(|r| r.to_vec()).collect();
        if self.welcomes.len() >= KEPT {
            self.welcomes.pop_front();
        }
        self.welcomes.push_back((refs, bundle));
    }

    /// Whether `bundle` is among the kept Welcomes.
    pub(crate) fn keeps_welcome(&self, bundle: &WelcomeBundle) -> bool {
        self.welcomes.iter().any(|(_, kept)| kept == bundle)
    }

    /// The newest kept Welcome for key package `reference`.
    pub(crate) fn welcome_for(&self, reference: &[u8]) -> Option<&WelcomeBundle> {
        self.welcomes
            .iter()
            .rev()
            .find(|(refs, _)| refs.iter().any(|r| r == reference))
            .map(|(_, bundle)| bundle)
    }

    /// The kept Welcomes, oldest first.
    pub(crate) fn welcomes(&self) -> impl Iterator<Item = &WelcomeBundle> {
        self.welcomes.iter().map(|(_, bundle)| bundle)
    }

    /// The Welcomes, taken over by the state of another branch of the same group.
    pub(crate) fn take_welcomes(&mut self) -> Self {
        Self {
            welcomes: std::mem::take(&mut self.welcomes),
            added_with: BTreeMap::new(),
        }
    }

    /// `member` was added with key package `reference`.
    pub(crate) fn added(&mut self, member: Address, reference: Vec<u8>) {
        self.added_with.insert(member, reference);
    }

    /// Whether `member` was last added with key package `reference`.
    pub(crate) fn added_with(&self, member: &Address, reference: &[u8]) -> bool {
        self.added_with
            .get(member)
            .is_some_and(|kept| kept.as_slice() == reference)
    }

    /// A new epoch: forgets those who are no longer members.
    pub(crate) fn keep_members(&mut self, is_member: impl Fn(&Address) -> bool) {
        self.added_with.retain(|member, _| is_member(member));
    }
}
