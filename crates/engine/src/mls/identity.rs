//! The MLS identity provider: a member is the Ethereum address its credential proves.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use mls_rs::ExtensionList;
use mls_rs::identity::{CredentialType, SigningIdentity};
use mls_rs::time::MlsTime;
use mls_rs_core::error::IntoAnyError;
use mls_rs_core::identity::MemberValidationContext;

use demls_identity::{Address, IdentityError, WalletBinding};
use sha2::{Digest, Sha256};

/// Why a credential is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Only basic credentials carrying a wallet binding are accepted.
    #[error("credential is not a basic credential")]
    NotBasic,
    /// The binding does not verify against the MLS signature key.
    #[error("wallet binding: {0}")]
    Binding(#[from] IdentityError),
    /// demls groups have no external senders.
    #[error("external senders are not allowed")]
    ExternalSender,
}

impl IntoAnyError for CredentialError {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(self.into())
    }
}

/// How many verified bindings an engine remembers.
const VERIFIED_CAPACITY: usize = 16_384;

/// Bindings an engine verified, oldest first: (credential identifier,
/// signature key) pairs by SHA-256, so that a binding checked once (a key
/// package taken in or judged for a vote) is not checked again when the same
/// key package is committed. Verification is a pure function of those bytes,
/// so remembering its successes is exact.
#[derive(Debug, Default)]
struct Verified {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Verified {
    fn key(identity: &SigningIdentity, basic_identifier: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update((basic_identifier.len() as u64).to_be_bytes());
        hasher.update(basic_identifier);
        hasher.update(identity.signature_key.as_bytes());
        hasher.finalize().into()
    }

    fn insert(&mut self, key: [u8; 32]) {
        if self.set.insert(key) {
            self.order.push_back(key);
            if self.order.len() > VERIFIED_CAPACITY
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// Checks that each credential's wallet signed the member's MLS signature key.
///
/// One per engine: it remembers the bindings it verified (a secp256k1 key
/// recovery each, the dearest step of accepting a member).
#[derive(Clone, Debug, Default)]
pub struct WalletIdentityProvider {
    verified: Arc<Mutex<Verified>>,
}

impl WalletIdentityProvider {
    /// The wallet binding a signing identity carries, not yet verified.
    fn binding_of(identity: &SigningIdentity) -> Result<WalletBinding, CredentialError> {
        let basic = identity
            .credential
            .as_basic()
            .ok_or(CredentialError::NotBasic)?;
        Ok(WalletBinding::decode(basic.identifier())?)
    }

    /// The verified address of a signing identity.
    pub fn address_of(identity: &SigningIdentity) -> Result<Address, CredentialError> {
        let binding = Self::binding_of(identity)?;
        Ok(binding.verify(identity.signature_key.as_bytes())?)
    }

    /// The address a signing identity claims, without checking its binding.
    ///
    /// mls-rs asks for [`mls_rs::IdentityProvider::identity`] to index and look
    /// up leaves; it checks every leaf it accepts with
    /// [`mls_rs::IdentityProvider::validate_member`] (which verifies the
    /// binding) and refuses the whole commit, Welcome or tree otherwise. The
    /// index needs the claim only, which saves a second secp256k1 recovery per
    /// added member and per leaf of a joined tree (one that mls-rs makes
    /// sequentially, while it validates leaves in parallel).
    pub(crate) fn claimed_address(identity: &SigningIdentity) -> Result<Address, CredentialError> {
        Ok(Self::binding_of(identity)?.address())
    }

    /// Verifies a signing identity's binding, unless this provider already did.
    fn verify_once(&self, identity: &SigningIdentity) -> Result<(), CredentialError> {
        let basic = identity
            .credential
            .as_basic()
            .ok_or(CredentialError::NotBasic)?;
        let key = Verified::key(identity, basic.identifier());
        let lock = || self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if lock().set.contains(&key) {
            return Ok(());
        }
        Self::address_of(identity)?;
        lock().insert(key);
        Ok(())
    }
}

impl mls_rs::IdentityProvider for WalletIdentityProvider {
    type Error = CredentialError;

    fn validate_member(
        &self,
        signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _context: MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        self.verify_once(signing_identity)
    }

    fn validate_external_sender(
        &self,
        _signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _extensions: Option<&ExtensionList>,
    ) -> Result<(), Self::Error> {
        Err(CredentialError::ExternalSender)
    }

    fn identity(
        &self,
        signing_identity: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        Self::claimed_address(signing_identity).map(|a| a.as_bytes().to_vec())
    }

    fn valid_successor(
        &self,
        predecessor: &SigningIdentity,
        successor: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<bool, Self::Error> {
        Ok(Self::address_of(predecessor)? == Self::address_of(successor)?)
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        vec![CredentialType::BASIC]
    }
}
