use std::sync::LazyLock;

use k256::ecdsa::{RecoveryId, Signature};
use k256::elliptic_curve::scalar::IsHigh;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId as SecpRecoveryId};
use secp256k1::{Message, Secp256k1, VerifyOnly};
use sha3::{Digest, Keccak256};

use crate::{Address, IdentityError};

/// Keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// The EIP-191 version 0x45 ("personal message") hash of `message`:
/// `keccak256("\x19Ethereum Signed Message:\n" || len(message) || message)`.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    let mut hasher = Keccak256::new();
    hasher.update(b"\x19Ethereum Signed Message:\n");
    hasher.update(message.len().to_string().as_bytes());
    hasher.update(message);
    hasher.finalize().into()
}

/// A libsecp256k1 context for public key recovery.
static RECOVERY: LazyLock<Secp256k1<VerifyOnly>> = LazyLock::new(Secp256k1::verification_only);

/// A 65-byte Ethereum signature, `r || s || v` with `v` in {27, 28}.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthSignature([u8; 65]);

impl EthSignature {
    /// Length of the encoding in bytes.
    pub const LEN: usize = 65;

    /// Reads a signature from exactly 65 bytes. Its validity is checked on recovery.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, IdentityError> {
        <[u8; 65]>::try_from(bytes)
            .map(Self)
            .map_err(|_| IdentityError::MalformedSignature)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    pub(crate) fn from_parts(signature: &Signature, recovery_id: RecoveryId) -> Self {
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = 27 + recovery_id.to_byte();
        Self(out)
    }

    /// Recovers the address that signed the 32-byte `prehash`.
    ///
    /// Rejects malleable (high-s) signatures, so that one signed statement has
    /// exactly one valid encoding.
    pub fn recover_prehash(&self, prehash: &[u8; 32]) -> Result<Address, IdentityError> {
        let signature =
            Signature::from_slice(&self.0[..64]).map_err(|_| IdentityError::MalformedSignature)?;
        if bool::from(signature.s().is_high()) {
            return Err(IdentityError::HighS);
        }
        let v = match self.0[64] {
            v @ (27 | 28) => v - 27,
            v @ (0 | 1) => v,
            _ => return Err(IdentityError::MalformedSignature),
        };
        // Parsed and range-checked by k256 above; recovered by libsecp256k1,
        // several times faster, and every member recovers one key per member
        // added to its group and per vote it receives.
        let recovery_id = SecpRecoveryId::try_from(i32::from(v))
            .map_err(|_| IdentityError::MalformedSignature)?;
        let signature = RecoverableSignature::from_compact(&self.0[..64], recovery_id)
            .map_err(|_| IdentityError::MalformedSignature)?;
        let key = RECOVERY
            .recover_ecdsa(Message::from_digest(*prehash), &signature)
            .map_err(|_| IdentityError::RecoveryFailed)?;
        Ok(Address::from_uncompressed_point(
            &key.serialize_uncompressed(),
        ))
    }
}

impl std::fmt::Debug for EthSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EthSignature(0x{})", hex::encode(self.0))
    }
}

/// Recovers the address that signed `message` as an EIP-191 personal message.
pub fn recover_personal(
    message: &[u8],
    signature: &EthSignature,
) -> Result<Address, IdentityError> {
    signature.recover_prehash(&eip191_hash(message))
}
