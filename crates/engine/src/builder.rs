//! Building an [`Engine`]: who it is, how it behaves, and where its MLS state lives.

use demls_identity::Wallet;

use crate::{Engine, EngineConfig, EngineError, Entropy, MlsSigner, MlsStore, Timestamp};

/// An [`Engine`] in the making; start with [`Engine::builder`].
#[must_use]
pub struct EngineBuilder<'s> {
    wallet: Wallet,
    signer: &'s MlsSigner,
    config: EngineConfig,
    store: Option<MlsStore>,
    entropy: Entropy,
}

impl Engine {
    /// Starts building an engine for `wallet`, signing its MLS messages with `signer`.
    pub fn builder(wallet: Wallet, signer: &MlsSigner) -> EngineBuilder<'_> {
        EngineBuilder {
            wallet,
            signer,
            config: EngineConfig::default(),
            store: None,
            entropy: Entropy::os(),
        }
    }
}

impl EngineBuilder<'_> {
    /// Its settings (by default [`EngineConfig::default`]).
    pub fn config(self, config: EngineConfig) -> Self {
        Self { config, ..self }
    }

    /// The store its MLS state lives in, shared with whatever persists it (a
    /// [`MlsStore::journaled`] store). By default an in-memory store keeping the configured
    /// [`EngineConfig::epoch_retention`] past epochs, which nothing persists.
    pub fn store(self, store: MlsStore) -> Self {
        Self {
            store: Some(store),
            ..self
        }
    }

    /// Where its random choices come from (by default [`Entropy::os`]). A simulation that
    /// must repeat bit for bit gives each engine an [`Entropy::seeded`] source, a fixed
    /// wallet and a signer from [`MlsSigner::generate_with`].
    pub fn entropy(self, entropy: Entropy) -> Self {
        Self { entropy, ..self }
    }

    /// A new engine, in no group yet.
    pub fn build(self) -> Engine {
        let store = self.default_store();
        Engine::with_entropy(self.wallet, self.signer, self.config, store, self.entropy)
    }

    /// An engine resuming from `snapshot` (an [`Engine::snapshot`]); its store must already
    /// hold the MLS state the snapshot goes with.
    pub fn restore(self, snapshot: &[u8], now: Timestamp) -> Result<Engine, EngineError> {
        Engine::resume(self.build(), snapshot, now)
    }

    fn default_store(&self) -> MlsStore {
        self.store
            .clone()
            .unwrap_or_else(|| MlsStore::in_memory(self.config.epoch_retention))
    }
}
