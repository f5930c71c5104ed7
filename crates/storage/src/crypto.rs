//! Secrets at rest: a key derived from the passphrase with scrypt, and
//! ChaCha20-Poly1305 per stored blob (inside the SQLCipher-encrypted database,
//! see [`crate::at_rest`]).
//!
//! A sealed blob is `version (1) || nonce (12) || ciphertext || tag (16)`. The
//! associated data names the row the blob belongs to (table and key), so a
//! blob copied into another row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use zeroize::Zeroizing;

use crate::StorageError;

/// Format version of a sealed blob.
const BLOB_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of the random scrypt salt.
pub(crate) const SALT_LEN: usize = 16;

/// scrypt cost parameters, stored beside the salt so they can be raised later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KdfParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl KdfParams {
    /// 2^15 × 8 × 128 bytes = 32 MiB of memory, about a tenth of a second.
    pub(crate) const DEFAULT: Self = Self {
        log_n: 15,
        r: 8,
        p: 1,
    };

    /// `scrypt:<log_n>:<r>:<p>`.
    pub(crate) fn encode(self) -> String {
        format!("scrypt:{}:{}:{}", self.log_n, self.r, self.p)
    }

    pub(crate) fn decode(text: &str) -> Result<Self, StorageError> {
        let bad = |reason: &str| StorageError::corrupt("key derivation parameters", reason);
        let mut parts = text.split(':');
        if parts.next() != Some("scrypt") {
            return Err(bad("not scrypt"));
        }
        let mut next = || parts.next().ok_or_else(|| bad("missing field"));
        let log_n = next()?.parse().map_err(|_| bad("log_n"))?;
        let r = next()?.parse().map_err(|_| bad("r"))?;
        let p = next()?.parse().map_err(|_| bad("p"))?;
        // Read from disk: bounded, so that a damaged row is an error, not an allocation of
        // petabytes or hours of scrypt (128 · r · 2^log_n bytes of memory, p passes).
        let memory = 1u64
            .checked_shl(u32::from(log_n))
            .and_then(|n| n.checked_mul(128)?.checked_mul(u64::from(r)));
        if r == 0 || p == 0 || p > Self::MAX_P || memory.is_none_or(|m| m > Self::MAX_MEMORY) {
            return Err(bad("out of bounds"));
        }
        Ok(Self { log_n, r, p })
    }

    /// Fills `out` with scrypt of `passphrase` and `salt` under these parameters.
    pub(crate) fn stretch(
        self,
        passphrase: &str,
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), StorageError> {
        let params = scrypt::Params::new(self.log_n, self.r, self.p)
            .map_err(|e| StorageError::corrupt("key derivation parameters", e))?;
        scrypt::scrypt(passphrase.as_bytes(), salt, &params, out)
            .map_err(|e| StorageError::corrupt("key derivation parameters", e))
    }

    /// The most memory stored parameters may ask for: 1 GiB (the default asks for 32 MiB).
    const MAX_MEMORY: u64 = 1 << 30;
    /// The most passes stored parameters may ask for.
    const MAX_P: u32 = 16;
}

/// The passphrase-derived key of one store.
pub(crate) struct Cipher(ChaCha20Poly1305);

impl Cipher {
    /// Derives the key from `passphrase` and `salt`.
    pub(crate) fn derive(
        passphrase: &str,
        salt: &[u8],
        params: KdfParams,
    ) -> Result<Self, StorageError> {
        let mut key = Zeroizing::new([0u8; 32]);
        params.stretch(passphrase, salt, key.as_mut())?;
        let aead = ChaCha20Poly1305::new_from_slice(key.as_ref())
            .map_err(|e| StorageError::corrupt("derived key", e))?;
        Ok(Self(aead))
    }

    /// Encrypts `plaintext` for the row named by `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StorageError> {
        let nonce_bytes = random::<NONCE_LEN>()?;
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StorageError::OutOfRange("sealed blob"))?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Decrypts a blob sealed for the row named by `aad`; `what` names it in errors.
    pub(crate) fn open(
        &self,
        what: &str,
        aad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        let (version, rest) = blob
            .split_first()
            .ok_or_else(|| StorageError::corrupt(what, "empty blob"))?;
        if *version != BLOB_VERSION {
            return Err(StorageError::corrupt(
                what,
                format!("unknown blob version {version}"),
            ));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(StorageError::corrupt(what, "blob too short"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| StorageError::corrupt(what, "nonce"))?;
        self.0
            .decrypt(&nonce, Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| StorageError::corrupt(what, "authentication failed"))
    }
}

/// `N` bytes from the operating system's random source.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], StorageError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| StorageError::Random(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        let params = KdfParams {
            log_n: 4,
            r: 8,
            p: 1,
        };
        Cipher::derive("pass", b"salt salt salt!!", params).unwrap()
    }

    #[test]
    fn blobs_open_only_with_their_row_name() {
        let c = cipher();
        let blob = c.seal(b"row-1", b"secret").unwrap();
        assert_eq!(c.open("x", b"row-1", &blob).unwrap().as_slice(), b"secret");
        assert!(matches!(
            c.open("x", b"row-2", &blob),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[test]
    fn kdf_params_round_trip_and_refuse_garbage() {
        let text = KdfParams::DEFAULT.encode();
        assert_eq!(KdfParams::decode(&text).unwrap(), KdfParams::DEFAULT);
        for bad in ["", "argon2:1:2:3", "scrypt:x:8:1", "scrypt:15:8"] {
            assert!(KdfParams::decode(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        #[test]
        fn opening_arbitrary_bytes_never_panics(blob in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            proptest::prop_assert!(cipher().open("fuzz", b"row", &blob).is_err());
        }
    }
}
