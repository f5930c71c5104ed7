//! The engine's crypto provider: RustCrypto, with the verifications it
//! remembers and its random choices drawn from the engine's [`Entropy`].
//!
//! Signatures and wallet bindings an engine checked once are not checked again.
//! A steward verifies a key package (its signature, its leaf node's
//! signature, its wallet binding) when it takes the join request in, and
//! mls-rs verifies all of it again when the steward commits the add. Each
//! verification is a pure function of the bytes it reads, so remembering its
//! successes (by SHA-256 of those bytes) is exact; failures are not
//! remembered.

use std::sync::{Arc, Mutex};

use mls_rs::crypto::{
    HpkeCiphertext, HpkePublicKey, HpkeSecretKey, SignaturePublicKey, SignatureSecretKey,
};
use mls_rs::{CipherSuite, CipherSuiteProvider, CryptoProvider};
use mls_rs_core::crypto::HpkePsk;
use mls_rs_crypto_hpke::dhkem::DhKem;
use mls_rs_crypto_hpke::hpke::Hpke;
use mls_rs_crypto_rustcrypto::aead::Aead;
use mls_rs_crypto_rustcrypto::ecdh::Ecdh;
use mls_rs_crypto_rustcrypto::kdf::Kdf;
use mls_rs_crypto_rustcrypto::{RustCryptoError, RustCryptoProvider};
use mls_rs_crypto_traits::{Curve, KemId};
use sha2::{Digest, Sha256};

use super::entropy::{Entropy, GivenEphemeral, SealInputs};
use crate::bounded::BoundedSet;
use zeroize::Zeroizing;

/// How many verifications a [`Remembered`] set holds.
const CAPACITY: usize = 65_536;

/// A bounded set of verified inputs, by SHA-256; the oldest leave first.
#[derive(Debug)]
pub(crate) struct Remembered(BoundedSet<[u8; 32]>);

impl Default for Remembered {
    fn default() -> Self {
        Self(BoundedSet::new(CAPACITY))
    }
}

impl Remembered {
    /// The key of some inputs: each length-prefixed, then hashed.
    pub(crate) fn key(parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// Runs `verify` unless `key` was verified before, and remembers it if it succeeds.
    pub(crate) fn verify_once<E>(
        this: &Mutex<Self>,
        key: [u8; 32],
        verify: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        let lock = || this.lock().unwrap_or_else(|p| p.into_inner());
        if lock().0.contains(&key) {
            return Ok(());
        }
        verify()?;
        lock().0.insert(key);
        Ok(())
    }
}

/// The RustCrypto provider, with the signature verifications of its
/// ciphersuite providers remembered (one set per engine) and their random
/// choices drawn from an [`Entropy`] (the OS by default).
#[derive(Clone, Debug, Default)]
pub struct VerifyingCrypto {
    inner: RustCryptoProvider,
    verified: Arc<Mutex<Remembered>>,
    entropy: Entropy,
}

impl VerifyingCrypto {
    /// A provider drawing its random choices from `entropy`.
    pub fn new(entropy: Entropy) -> Self {
        Self {
            entropy,
            ..Self::default()
        }
    }

    /// Whether this provider offers `cipher_suite`: a seeded source makes signature keys
    /// for Ed25519 only (demls uses 0x0001), so it offers only the suites that sign with it.
    fn offers(&self, cipher_suite: CipherSuite) -> bool {
        !self.entropy.is_seeded()
            || Curve::from_ciphersuite(cipher_suite, true) == Some(Curve::Ed25519)
    }
}

impl CryptoProvider for VerifyingCrypto {
    type CipherSuiteProvider = VerifyingSuite;

    fn supported_cipher_suites(&self) -> Vec<CipherSuite> {
        let mut suites = self.inner.supported_cipher_suites();
        suites.retain(|suite| self.offers(*suite));
        suites
    }

    fn cipher_suite_provider(&self, cipher_suite: CipherSuite) -> Option<VerifyingSuite> {
        if !self.offers(cipher_suite) {
            return None;
        }
        self.inner
            .cipher_suite_provider(cipher_suite)
            .map(|inner| VerifyingSuite {
                inner,
                verified: Arc::clone(&self.verified),
                entropy: self.entropy.clone(),
            })
    }
}

/// The HPKE of one seal whose ephemeral key a seeded [`Entropy`] gave.
type SeededHpke = Hpke<DhKem<GivenEphemeral, Kdf>, Kdf, Aead>;

/// The ciphersuite provider of [`VerifyingCrypto`].
type InnerSuite = <RustCryptoProvider as CryptoProvider>::CipherSuiteProvider;

/// A RustCrypto ciphersuite provider whose [`CipherSuiteProvider::verify`]
/// remembers what it verified, and whose random choices (random bytes, KEM and
/// signature key generation, HPKE ephemeral keys) come from its [`Entropy`]; every
/// other operation is RustCrypto's.
#[derive(Clone)]
pub struct VerifyingSuite {
    inner: InnerSuite,
    verified: Arc<Mutex<Remembered>>,
    entropy: Entropy,
}

impl VerifyingSuite {
    /// The one-off HPKE of `seal` whose ephemeral key comes from a seeded source; `None`
    /// for the OS source, whose seals are RustCrypto's.
    fn seeded_hpke(&self, seal: &SealInputs<'_>) -> Result<Option<SeededHpke>, RustCryptoError> {
        let Some(ikm) = self.entropy.seal_ikm(seal) else {
            return Ok(None);
        };
        let suite = self.inner.cipher_suite();
        // RustCrypto built `inner` from these very parts, so they exist for its suite.
        let built = "RustCrypto's suite has these parts";
        let ecdh = Ecdh::new(suite).expect(built);
        let kdf = Kdf::new(suite).expect(built);
        let kem_id = KemId::new(suite).expect(built);
        let aead = Aead::new(suite).expect(built);
        let pair = self.inner.kem_derive(&ikm)?;
        let kem = DhKem::new(
            GivenEphemeral { ecdh, pair },
            kdf,
            kem_id as u16,
            kem_id.n_secret(),
        );
        Ok(Some(Hpke::new(kem, kdf, Some(aead))))
    }
}

impl CipherSuiteProvider for VerifyingSuite {
    type Error = <InnerSuite as CipherSuiteProvider>::Error;
    type HpkeContextS = <InnerSuite as CipherSuiteProvider>::HpkeContextS;
    type HpkeContextR = <InnerSuite as CipherSuiteProvider>::HpkeContextR;

    fn cipher_suite(&self) -> CipherSuite {
        self.inner.cipher_suite()
    }

    fn hash(&self, data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        self.inner.hash(data)
    }

    fn mac(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        self.inner.mac(key, data)
    }

    fn aead_seal(
        &self,
        key: &[u8],
        data: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Vec<u8>, Self::Error> {
        self.inner.aead_seal(key, data, aad, nonce)
    }

    fn aead_open(
        &self,
        key: &[u8],
        ciphertext: &[u8],
        aad: Option<&[u8]>,
        nonce: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        self.inner.aead_open(key, ciphertext, aad, nonce)
    }

    fn aead_key_size(&self) -> usize {
        self.inner.aead_key_size()
    }

    fn aead_nonce_size(&self) -> usize {
        self.inner.aead_nonce_size()
    }

    fn kdf_extract(&self, salt: &[u8], ikm: &[u8]) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        self.inner.kdf_extract(salt, ikm)
    }

    fn kdf_expand(
        &self,
        prk: &[u8],
        info: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        self.inner.kdf_expand(prk, info, len)
    }

    fn kdf_extract_size(&self) -> usize {
        self.inner.kdf_extract_size()
    }

    fn hpke_seal(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
    ) -> Result<HpkeCiphertext, Self::Error> {
        let seal = SealInputs {
            remote_key,
            info,
            aad,
            pt,
            psk: None,
        };
        match self.seeded_hpke(&seal)? {
            Some(hpke) => Ok(hpke.seal(remote_key, info, None, aad, pt)?),
            None => self.inner.hpke_seal(remote_key, info, aad, pt),
        }
    }

    fn hpke_seal_psk(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        pt: &[u8],
        psk: HpkePsk<'_>,
    ) -> Result<HpkeCiphertext, Self::Error> {
        let seal = SealInputs {
            remote_key,
            info,
            aad,
            pt,
            psk: Some(&psk),
        };
        match self.seeded_hpke(&seal)? {
            Some(hpke) => Ok(hpke.seal(remote_key, info, Some(psk), aad, pt)?),
            None => self.inner.hpke_seal_psk(remote_key, info, aad, pt, psk),
        }
    }

    fn hpke_open(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        self.inner
            .hpke_open(ciphertext, local_secret, local_public, info, aad)
    }

    fn hpke_open_psk(
        &self,
        ciphertext: &HpkeCiphertext,
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
        aad: Option<&[u8]>,
        psk: HpkePsk<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, Self::Error> {
        self.inner
            .hpke_open_psk(ciphertext, local_secret, local_public, info, aad, psk)
    }

    fn hpke_setup_s(
        &self,
        remote_key: &HpkePublicKey,
        info: &[u8],
    ) -> Result<(Vec<u8>, Self::HpkeContextS), Self::Error> {
        let seal = SealInputs {
            remote_key,
            info,
            aad: None,
            pt: &[],
            psk: None,
        };
        match self.seeded_hpke(&seal)? {
            Some(hpke) => Ok(hpke.setup_sender(remote_key, info, None)?),
            None => self.inner.hpke_setup_s(remote_key, info),
        }
    }

    fn hpke_setup_r(
        &self,
        kem_output: &[u8],
        local_secret: &HpkeSecretKey,
        local_public: &HpkePublicKey,
        info: &[u8],
    ) -> Result<Self::HpkeContextR, Self::Error> {
        self.inner
            .hpke_setup_r(kem_output, local_secret, local_public, info)
    }

    fn kem_derive(&self, ikm: &[u8]) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        self.inner.kem_derive(ikm)
    }

    fn kem_generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        // A seeded key pair is derived (RFC 9180 DeriveKeyPair) from stream bytes.
        let mut ikm = Zeroizing::new(vec![0; self.inner.kdf_extract_size()]);
        if self.entropy.fill_seeded(&mut ikm) {
            return self.inner.kem_derive(&ikm);
        }
        self.inner.kem_generate()
    }

    fn kem_public_key_validate(&self, key: &HpkePublicKey) -> Result<(), Self::Error> {
        self.inner.kem_public_key_validate(key)
    }

    fn random_bytes(&self, out: &mut [u8]) -> Result<(), Self::Error> {
        if self.entropy.fill_seeded(out) {
            return Ok(());
        }
        self.inner.random_bytes(out)
    }

    fn signature_key_generate(
        &self,
    ) -> Result<(SignatureSecretKey, SignaturePublicKey), Self::Error> {
        // Seeded providers serve Ed25519 suites only (`VerifyingCrypto::offers`), whose
        // secret key RustCrypto keeps as the 64 keypair bytes (seed, then public key).
        let mut seed = Zeroizing::new([0; ed25519_dalek::SECRET_KEY_LENGTH]);
        if self.entropy.fill_seeded(seed.as_mut()) {
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            return Ok((
                SignatureSecretKey::new_slice(Zeroizing::new(key.to_keypair_bytes()).as_ref()),
                SignaturePublicKey::new_slice(key.verifying_key().as_bytes()),
            ));
        }
        self.inner.signature_key_generate()
    }

    fn signature_key_derive_public(
        &self,
        secret_key: &SignatureSecretKey,
    ) -> Result<SignaturePublicKey, Self::Error> {
        self.inner.signature_key_derive_public(secret_key)
    }

    fn sign(&self, secret_key: &SignatureSecretKey, data: &[u8]) -> Result<Vec<u8>, Self::Error> {
        self.inner.sign(secret_key, data)
    }

    fn verify(
        &self,
        public_key: &SignaturePublicKey,
        signature: &[u8],
        data: &[u8],
    ) -> Result<(), Self::Error> {
        let key = Remembered::key(&[
            &u16::from(self.inner.cipher_suite()).to_be_bytes(),
            public_key.as_bytes(),
            signature,
            data,
        ]);
        Remembered::verify_once(&self.verified, key, || {
            self.inner.verify(public_key, signature, data)
        })
    }
}
