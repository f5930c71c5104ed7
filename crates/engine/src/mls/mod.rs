//! The MLS layer: mls-rs configured for de-MLS.
//!
//! One [`MlsClient`] per engine. Its identity provider checks wallet bindings,
//! its rules encrypt handshake messages and send the ratchet tree out of band,
//! and its storage keeps state in memory with a journal of writes that the
//! shell persists (see [`store`]).

pub(crate) mod entropy;
pub(crate) mod extensions;
pub(crate) mod identity;
pub(crate) mod rules;
pub mod store;
pub(crate) mod verified;

use mls_rs::client_builder::{
    BaseConfig, WithCryptoProvider, WithGroupStateStorage, WithIdentityProvider,
    WithKeyPackageRepo, WithMlsRules,
};
use mls_rs::crypto::SignatureSecretKey;
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::BasicCredential;
use mls_rs::{CipherSuite, CipherSuiteProvider, Client, CryptoProvider};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;

use demls_identity::{Wallet, WalletBinding};

use crate::EngineError;
pub use entropy::Entropy;
pub(crate) use extensions::{GroupParamsExt, GroupRulesExt, TreeKeyExt};
pub(crate) use identity::WalletIdentityProvider;
// Public so that benchmarks can give a plain mls-rs client the same wire choices.
pub use rules::DemlsRules;
use store::{GroupStore, KeyPackageStore};
pub use verified::{VerifyingCrypto, VerifyingSuite};

/// The only ciphersuite demls uses: MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (0x0001).
pub const CIPHER_SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

/// The mls-rs client configuration of a demls engine.
pub type MlsConfig = WithIdentityProvider<
    WalletIdentityProvider,
    WithCryptoProvider<
        VerifyingCrypto,
        WithMlsRules<
            DemlsRules,
            WithGroupStateStorage<GroupStore, WithKeyPackageRepo<KeyPackageStore, BaseConfig>>,
        >,
    >,
>;

/// An mls-rs client of this configuration.
pub type MlsClient = Client<MlsConfig>;

/// An mls-rs group of this configuration.
pub type MlsGroup = mls_rs::Group<MlsConfig>;

/// The cipher suite provider for [`CIPHER_SUITE`], for operations that draw no
/// randomness (hashes, validation, opening); random ones go through the engine's
/// [`VerifyingSuite`] and so its [`Entropy`].
pub(crate) fn suite() -> impl CipherSuiteProvider + Clone {
    RustCryptoProvider::new()
        .cipher_suite_provider(CIPHER_SUITE)
        .expect("the RustCrypto provider supports ciphersuite 0x0001")
}

/// An MLS signature key pair (Ed25519).
#[derive(Clone)]
pub struct MlsSigner {
    pub(crate) secret: SignatureSecretKey,
    pub(crate) public: mls_rs::crypto::SignaturePublicKey,
}

impl MlsSigner {
    /// Generates a fresh signature key pair from the operating system's generator.
    pub fn generate() -> Result<Self, EngineError> {
        Self::generate_with(&Entropy::os())
    }

    /// Generates a fresh signature key pair from `entropy`: from a seeded source, the next
    /// draws of its stream (the same seed and the same draws before give the same pair).
    pub fn generate_with(entropy: &Entropy) -> Result<Self, EngineError> {
        Self::generate_from(&crypto_suite(&VerifyingCrypto::new(entropy.clone())))
    }

    /// Generates a fresh signature key pair from `suite`'s entropy.
    pub(crate) fn generate_from(suite: &VerifyingSuite) -> Result<Self, EngineError> {
        let (secret, public) = suite
            .signature_key_generate()
            .map_err(|e| EngineError::Crypto(format!("signature key generation: {e:?}")))?;
        Ok(Self { secret, public })
    }

    /// Restores a key pair from its secret and public halves.
    pub fn from_bytes(secret: &[u8], public: &[u8]) -> Self {
        Self {
            secret: SignatureSecretKey::new_slice(secret),
            public: mls_rs::crypto::SignaturePublicKey::new_slice(public),
        }
    }

    /// The secret half, for the shell to keep (encrypted) at rest.
    pub fn secret_bytes(&self) -> &[u8] {
        self.secret.as_bytes()
    }

    /// The public half.
    pub fn public_bytes(&self) -> &[u8] {
        self.public.as_bytes()
    }
}

/// The ciphersuite provider of `crypto` for [`CIPHER_SUITE`].
pub(crate) fn crypto_suite(crypto: &VerifyingCrypto) -> VerifyingSuite {
    crypto
        .cipher_suite_provider(CIPHER_SUITE)
        .expect("every entropy source supports ciphersuite 0x0001")
}

/// Builds the engine's MLS client: the wallet-bound credential, our rules and storage,
/// and `crypto` (which the engine's own random choices share).
pub(crate) fn build_client(
    wallet: &Wallet,
    signer: &MlsSigner,
    groups: GroupStore,
    key_packages: KeyPackageStore,
    key_package_lifetime: std::time::Duration,
    crypto: VerifyingCrypto,
) -> MlsClient {
    let binding = WalletBinding::create(wallet, signer.public.as_bytes());
    let credential = BasicCredential::new(binding.encode()).into_credential();
    let signing_identity = SigningIdentity::new(credential, signer.public.clone());
    Client::builder()
        .key_package_repo(key_packages)
        .group_state_storage(groups)
        .mls_rules(DemlsRules)
        .crypto_provider(crypto)
        .identity_provider(WalletIdentityProvider::default())
        .extension_types([GroupParamsExt::TYPE, GroupRulesExt::TYPE, TreeKeyExt::TYPE])
        .key_package_lifetime(key_package_lifetime)
        .signing_identity(signing_identity, signer.secret.clone(), CIPHER_SUITE)
        .build()
}
