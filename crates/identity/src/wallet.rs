use std::fmt;
use std::path::Path;

use k256::ecdsa::SigningKey;
use zeroize::Zeroizing;

use crate::{Address, EthSignature, IdentityError, eip191_hash};

/// A secp256k1 key pair: the long-term identity of a demls member.
#[derive(Clone)]
pub struct Wallet {
    key: SigningKey,
    address: Address,
}

impl Wallet {
    /// Generates a fresh key from the operating system's random source.
    pub fn generate() -> Self {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            // The OS random source failing is not recoverable for a key generator.
            getrandom::fill(bytes.as_mut()).expect("operating system random source unavailable");
            if let Ok(wallet) = Self::from_bytes(bytes.as_ref()) {
                return wallet;
            }
        }
    }

    /// A wallet from a 32-byte private key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let key = SigningKey::from_slice(bytes).map_err(|_| IdentityError::InvalidPrivateKey)?;
        let address =
            Address::from_uncompressed_point(&key.verifying_key().to_sec1_point(false).to_bytes());
        Ok(Self { key, address })
    }

    /// A wallet from a hex private key (64 digits, optional `0x`).
    pub fn from_hex(hex_key: &str) -> Result<Self, IdentityError> {
        let digits = hex_key.trim();
        let digits = digits.strip_prefix("0x").unwrap_or(digits);
        let bytes = Zeroizing::new(
            hex::decode(digits).map_err(|e| IdentityError::InvalidHex(e.to_string()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Loads a key file: either a hex private key, or an encrypted Ethereum
    /// keystore (JSON, version 3), which needs its `passphrase`.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Self, IdentityError> {
        let content = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| IdentityError::KeyFile(e.to_string()))?,
        );
        if content.trim_start().starts_with('{') {
            let passphrase = passphrase.ok_or_else(|| {
                IdentityError::KeyFile(format!(
                    "{} is a keystore: a passphrase is needed",
                    path.display()
                ))
            })?;
            let key = Zeroizing::new(
                eth_keystore::decrypt_key(path, passphrase)
                    .map_err(|e| IdentityError::KeyFile(e.to_string()))?,
            );
            Self::from_bytes(&key)
        } else {
            Self::from_hex(&content)
        }
    }

    /// Writes the key as an encrypted Ethereum keystore (scrypt + AES-128-CTR).
    pub fn save_keystore(&self, path: &Path, passphrase: &str) -> Result<(), IdentityError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| IdentityError::KeyFile(format!("bad key path {}", path.display())))?;
        let secret = Zeroizing::new(self.key.to_bytes().to_vec());
        eth_keystore::encrypt_key(
            dir,
            &mut rand08::thread_rng(),
            secret.as_slice(),
            passphrase,
            Some(name),
        )
        .map_err(|e| IdentityError::KeyFile(e.to_string()))?;
        Ok(())
    }

    /// The private key as hex, for plain key files used in tests and demos.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.to_bytes()))
    }

    /// The wallet's address (member id).
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte prehash.
    pub fn sign_prehash(&self, prehash: &[u8; 32]) -> EthSignature {
        let (signature, recovery_id) = self.key.sign_prehash_recoverable(prehash);
        EthSignature::from_parts(&signature, recovery_id)
    }

    /// Signs `message` as an EIP-191 personal message.
    pub fn sign_personal(&self, message: &[u8]) -> EthSignature {
        self.sign_prehash(&eip191_hash(message))
    }
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wallet({})", self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover_personal;

    #[test]
    fn known_key_has_known_address() {
        // The first default account of Foundry's anvil / Hardhat.
        let w =
            Wallet::from_hex("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap();
        assert_eq!(
            w.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn personal_sign_matches_known_vector() {
        // ethers.js / viem: signMessage("hello") with anvil account 0.
        let w =
            Wallet::from_hex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap();
        let sig = w.sign_personal(b"hello");
        assert_eq!(
            hex::encode(sig.as_bytes()),
            "f16ea9a3478698f695fd1401bfe27e9e4a7e8e3da94aa72b021125e31fa899cc573c48ea3fe1d4ab61a9db10c19032026e3ed2dbccba5a178235ac27f94504311c"
        );
        assert_eq!(recover_personal(b"hello", &sig).unwrap(), w.address());
    }

    #[test]
    fn tampered_or_malleable_signatures_fail() {
        let w = Wallet::generate();
        let sig = w.sign_personal(b"vote yes");
        assert_ne!(recover_personal(b"vote no", &sig).ok(), Some(w.address()));

        // Flip s to n - s: the same signature in its malleable form.
        let mut bytes = *sig.as_bytes();
        let n = hex::decode("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141")
            .unwrap();
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = n[i] as i16 - bytes[32 + i] as i16 - borrow;
            bytes[32 + i] = d.rem_euclid(256) as u8;
            borrow = if d < 0 { 1 } else { 0 };
        }
        bytes[64] ^= 1;
        let high = EthSignature::from_slice(&bytes).unwrap();
        assert_eq!(
            recover_personal(b"vote yes", &high),
            Err(IdentityError::HighS)
        );

        let mut bad_v = *sig.as_bytes();
        bad_v[64] = 99;
        assert_eq!(
            recover_personal(b"vote yes", &EthSignature::from_slice(&bad_v).unwrap()),
            Err(IdentityError::MalformedSignature)
        );
        assert!(EthSignature::from_slice(&[0u8; 64]).is_err());
    }

    #[test]
    fn key_files_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wallet::generate();

        let hex_path = dir.path().join("key.hex");
        std::fs::write(&hex_path, format!("0x{}\n", w.to_hex().as_str())).unwrap();
        assert_eq!(
            Wallet::load(&hex_path, None).unwrap().address(),
            w.address()
        );

        let ks_path = dir.path().join("key.json");
        w.save_keystore(&ks_path, "correct horse").unwrap();
        assert_eq!(
            Wallet::load(&ks_path, Some("correct horse"))
                .unwrap()
                .address(),
            w.address()
        );
        assert!(Wallet::load(&ks_path, Some("wrong")).is_err());
        assert!(Wallet::load(&ks_path, None).is_err());
    }
}
