//! The MLS identity provider: a member is the Ethereum address its credential proves.

use std::sync::{Arc, Mutex};

use mls_rs::ExtensionList;
use mls_rs::identity::{CredentialType, SigningIdentity};
use mls_rs::time::MlsTime;
use mls_rs_core::error::IntoAnyError;
use mls_rs_core::identity::MemberValidationContext;

use demls_identity::{Address, IdentityError, WalletBinding};

use super::verified::Remembered;

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

/// Checks that each credential's wallet signed the member's MLS signature key.
///
/// One per engine: it remembers the bindings it verified (a secp256k1 key
/// recovery each, the dearest step of accepting a member).
#[derive(Clone, Debug, Default)]
pub struct WalletIdentityProvider {
    verified: Arc<Mutex<Remembered>>,
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
        let key = Remembered::key(&[basic.identifier(), identity.signature_key.as_bytes()]);
        Remembered::verify_once(&self.verified, key, || {
            Self::address_of(identity).map(|_| ())
        })
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
