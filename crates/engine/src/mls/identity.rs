//! The MLS identity provider: a member is the Ethereum address its credential proves.

use mls_rs::ExtensionList;
use mls_rs::identity::{CredentialType, SigningIdentity};
use mls_rs::time::MlsTime;
use mls_rs_core::error::IntoAnyError;
use mls_rs_core::identity::MemberValidationContext;

use demls_identity::{Address, IdentityError, WalletBinding};

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
#[derive(Clone, Copy, Debug, Default)]
pub struct WalletIdentityProvider;

impl WalletIdentityProvider {
    /// The verified address of a signing identity.
    pub fn address_of(identity: &SigningIdentity) -> Result<Address, CredentialError> {
        let basic = identity
            .credential
            .as_basic()
            .ok_or(CredentialError::NotBasic)?;
        let binding = WalletBinding::decode(basic.identifier())?;
        Ok(binding.verify(identity.signature_key.as_bytes())?)
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
        Self::address_of(signing_identity).map(|_| ())
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
        Self::address_of(signing_identity).map(|a| a.as_bytes().to_vec())
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
