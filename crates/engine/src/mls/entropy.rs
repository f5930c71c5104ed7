//! Where an engine's random choices come from: the operating system, or a seeded stream
//! for simulations that must repeat bit for bit.

use std::sync::{Arc, Mutex};

use mls_rs::crypto::{HpkePublicKey, HpkeSecretKey};
use mls_rs_core::crypto::HpkePsk;
use mls_rs_crypto_rustcrypto::ecdh::{Ecdh, EcdhKemError};
use mls_rs_crypto_traits::{DhType, SamplingMethod};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// The source of every random choice an engine makes: MLS secrets and keys, HPKE
/// ephemeral keys, the steward's HPKE key, welcome tree keys and chat message ids.
///
/// [`Entropy::os`] (the default) is the operating system's generator, through the RustCrypto
/// provider as before. [`Entropy::seeded`] derives everything from a 32-byte seed, so that
/// engines given the same seeds, wallets, signers and inputs send the same bytes: for
/// simulations and tests only, since whoever knows the seed knows every key the engine
/// makes. Clones share one stream: give each engine a source of its own, so that what one
/// draws does not depend on what the others did.
#[derive(Clone, Default)]
pub struct Entropy(Source);

#[derive(Clone, Default)]
enum Source {
    #[default]
    Os,
    Seeded(Arc<Seeded>),
}

/// A seeded source: one stream for the draws mls-rs makes in sequence, and a key for
/// HPKE ephemeral keys.
struct Seeded {
    stream: Mutex<ChaCha20Rng>,
    /// Keys each HPKE seal's ephemeral key, derived from the seal's inputs rather than
    /// drawn from `stream`: mls-rs seals a commit's path secrets and welcomes on several
    /// threads at once (its `rayon` feature), so the order of their draws from a shared
    /// stream would differ from run to run.
    seal_key: [u8; 32],
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed or the stream: they are every key this engine makes.
        f.write_str(match self.0 {
            Source::Os => "Entropy::Os",
            Source::Seeded(_) => "Entropy::Seeded",
        })
    }
}

impl Entropy {
    /// The operating system's random generator (the default).
    pub fn os() -> Self {
        Self(Source::Os)
    }

    /// A ChaCha20 stream from `seed`: the same seed gives the same choices. Not for
    /// production: the seed is every secret the engine will hold.
    pub fn seeded(seed: [u8; 32]) -> Self {
        let mut stream = ChaCha20Rng::from_seed(seed);
        let mut seal_key = [0; 32];
        stream.fill_bytes(&mut seal_key);
        Self(Source::Seeded(Arc::new(Seeded {
            stream: Mutex::new(stream),
            seal_key,
        })))
    }

    /// The seeded source, if this is one.
    fn seeded_source(&self) -> Option<&Seeded> {
        match &self.0 {
            Source::Os => None,
            Source::Seeded(seeded) => Some(seeded),
        }
    }

    /// Whether this source is seeded.
    pub(crate) fn is_seeded(&self) -> bool {
        self.seeded_source().is_some()
    }

    /// Fills `out` from the seeded stream; false (and `out` untouched) for the OS source,
    /// which the caller draws from through RustCrypto as it always did.
    pub(crate) fn fill_seeded(&self, out: &mut [u8]) -> bool {
        let Some(seeded) = self.seeded_source() else {
            return false;
        };
        // A panic elsewhere cannot leave a ChaCha stream half-written.
        let mut stream = seeded.stream.lock().unwrap_or_else(|p| p.into_inner());
        stream.fill_bytes(out);
        true
    }

    /// The input keying material of the ephemeral key of `seal`, if this source is seeded:
    /// each input length-prefixed, hashed under the seal key.
    pub(crate) fn seal_ikm(&self, seal: &SealInputs<'_>) -> Option<[u8; 32]> {
        let seeded = self.seeded_source()?;
        let mut hasher = Sha256::new();
        hasher.update(seeded.seal_key);
        let parts: [Option<&[u8]>; 6] = [
            Some(seal.remote_key.as_ref()),
            Some(seal.info),
            seal.aad,
            Some(seal.pt),
            seal.psk.map(|p| p.id),
            seal.psk.map(|p| p.value),
        ];
        for part in parts {
            // Absent and empty differ, so that no two input lists hash alike.
            match part {
                None => hasher.update([0]),
                Some(bytes) => {
                    hasher.update([1]);
                    hasher.update((bytes.len() as u64).to_be_bytes());
                    hasher.update(bytes);
                }
            }
        }
        Some(hasher.finalize().into())
    }
}

/// What one HPKE seal reads: its ephemeral key, when seeded, is a function of all of it.
pub(crate) struct SealInputs<'a> {
    pub(crate) remote_key: &'a HpkePublicKey,
    pub(crate) info: &'a [u8],
    pub(crate) aad: Option<&'a [u8]>,
    pub(crate) pt: &'a [u8],
    pub(crate) psk: Option<&'a HpkePsk<'a>>,
}

/// RustCrypto's ECDH whose key generation returns one given key pair: the KEM of a
/// one-off HPKE seal whose ephemeral key came from a seeded [`Entropy`].
#[derive(Clone)]
pub(crate) struct GivenEphemeral {
    pub(crate) ecdh: Ecdh,
    pub(crate) pair: (HpkeSecretKey, HpkePublicKey),
}

impl DhType for GivenEphemeral {
    type Error = EcdhKemError;

    fn dh(
        &self,
        secret_key: &HpkeSecretKey,
        public_key: &HpkePublicKey,
    ) -> Result<Vec<u8>, Self::Error> {
        self.ecdh.dh(secret_key, public_key)
    }

    fn generate(&self) -> Result<(HpkeSecretKey, HpkePublicKey), Self::Error> {
        Ok(self.pair.clone())
    }

    fn to_public(&self, secret_key: &HpkeSecretKey) -> Result<HpkePublicKey, Self::Error> {
        self.ecdh.to_public(secret_key)
    }

    fn bitmask_for_rejection_sampling(&self) -> SamplingMethod {
        self.ecdh.bitmask_for_rejection_sampling()
    }

    fn secret_key_size(&self) -> usize {
        self.ecdh.secret_key_size()
    }

    fn public_key_size(&self) -> usize {
        self.ecdh.public_key_size()
    }

    fn public_key_validate(&self, key: &HpkePublicKey) -> Result<(), Self::Error> {
        self.ecdh.public_key_validate(key)
    }
}
