use crate::{Address, EthSignature, IdentityError, Wallet, recover_personal};

/// Proof that a wallet owns an MLS signature key.
///
/// The wallet signs, as an EIP-191 personal message, a statement naming the
/// MLS signature public key. Encoded as `address (20) || signature (65)`, it
/// is the identity of the member's MLS basic credential, so every key package
/// and leaf carries a binding that any member can check offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalletBinding {
    address: Address,
    signature: EthSignature,
}

impl WalletBinding {
    /// Length of the encoding in bytes.
    pub const LEN: usize = Address::LEN + EthSignature::LEN;

    /// The statement the wallet signs for `mls_signature_key`.
    pub fn statement(mls_signature_key: &[u8]) -> Vec<u8> {
        format!(
            "demls: bind MLS signature key 0x{}",
            hex::encode(mls_signature_key)
        )
        .into_bytes()
    }

    /// Binds `mls_signature_key` to `wallet`.
    pub fn create(wallet: &Wallet, mls_signature_key: &[u8]) -> Self {
        Self {
            address: wallet.address(),
            signature: wallet.sign_personal(&Self::statement(mls_signature_key)),
        }
    }

    /// Decodes a binding from its 85-byte encoding (not yet verified).
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        if bytes.len() != Self::LEN {
            return Err(IdentityError::MalformedBinding(bytes.len()));
        }
        let (address, signature) = bytes.split_at(Address::LEN);
        Ok(Self {
            address: Address::from_slice(address)
                .ok_or(IdentityError::MalformedBinding(bytes.len()))?,
            signature: EthSignature::from_slice(signature)?,
        })
    }

    /// The 85-byte encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(self.address.as_bytes());
        out.extend_from_slice(self.signature.as_bytes());
        out
    }

    /// The address this binding claims.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Checks that the claimed wallet signed `mls_signature_key`, returning its address.
    pub fn verify(&self, mls_signature_key: &[u8]) -> Result<Address, IdentityError> {
        let actual = recover_personal(&Self::statement(mls_signature_key), &self.signature)?;
        if actual != self.address {
            return Err(IdentityError::BindingMismatch {
                claimed: self.address,
                actual,
            });
        }
        Ok(actual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_verifies_only_for_its_key_and_wallet() {
        let wallet = Wallet::generate();
        let binding = WalletBinding::create(&wallet, b"mls-key-1");
        let decoded = WalletBinding::decode(&binding.encode()).unwrap();
        assert_eq!(decoded.verify(b"mls-key-1"), Ok(wallet.address()));
        assert!(decoded.verify(b"mls-key-2").is_err());

        // Claiming someone else's address with one's own signature fails.
        let other = Wallet::generate();
        let mut forged = binding.encode();
        forged[..20].copy_from_slice(other.address().as_bytes());
        assert!(matches!(
            WalletBinding::decode(&forged).unwrap().verify(b"mls-key-1"),
            Err(IdentityError::BindingMismatch { .. })
        ));
        assert_eq!(
            WalletBinding::decode(&[0u8; 3]),
            Err(IdentityError::MalformedBinding(3))
        );
    }
}
