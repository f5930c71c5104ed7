//! The reference column: the same MLS operations done with plain mls-rs.
//!
//! A plain mls-rs client as its documentation builds one: a basic credential
//! (a name: no wallet binding, so no binding checks), the RustCrypto provider
//! that the engine wraps (without the engine's memory of verified
//! signatures), ciphersuite 0x0001, and mls-rs's own in-memory storage
//! (nothing is written anywhere). It is given demls's MLS rules
//! ([`DemlsRules`]: handshake messages encrypted, the ratchet tree out of band
//! and one Welcome for all joiners, an UpdatePath on add-only commits only up
//! to 1000 members), so that both sides put the same commits on the wire and a
//! ratio demls / raw measures what demls adds to the same MLS work: wallet
//! bindings, its copies and checks of the state, envelopes, its store.

use demls_engine::mls::{CIPHER_SUITE, DemlsRules};
use mls_rs::client_builder::{BaseConfig, WithCryptoProvider, WithIdentityProvider, WithMlsRules};
use mls_rs::group::{ExportedTree, ReceivedMessage};
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential, BasicIdentityProvider};
use mls_rs::{CipherSuiteProvider, Client, CryptoProvider, ExtensionList, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;

use super::{BenchResult, on_every_core};

/// The configuration of a plain mls-rs client.
type RawConfig = WithIdentityProvider<
    BasicIdentityProvider,
    WithCryptoProvider<RustCryptoProvider, WithMlsRules<DemlsRules, BaseConfig>>,
>;

/// A plain mls-rs client.
type RawClient = Client<RawConfig>;

/// A plain mls-rs group.
pub(super) type RawGroup = mls_rs::Group<RawConfig>;

/// A plain mls-rs client whose basic credential is `name`.
pub(super) fn client(name: &[u8]) -> BenchResult<RawClient> {
    let provider = RustCryptoProvider::new();
    let (secret, public) = provider
        .cipher_suite_provider(CIPHER_SUITE)
        .ok_or("RustCrypto lacks ciphersuite 0x0001")?
        .signature_key_generate()
        .map_err(|e| format!("signature key generation: {e:?}"))?;
    let identity = SigningIdentity::new(
        BasicCredential::new(name.to_vec()).into_credential(),
        public,
    );
    Ok(Client::builder()
        .mls_rules(DemlsRules)
        .crypto_provider(provider)
        .identity_provider(BasicIdentityProvider)
        .signing_identity(identity, secret, CIPHER_SUITE)
        .build())
}

/// A new group of which the client named `name` is the only member.
pub(super) fn create_group(name: &[u8]) -> BenchResult<RawGroup> {
    Ok(client(name)?.create_group(ExtensionList::new(), ExtensionList::new(), None)?)
}

/// `count` key packages of clients named `prefix` and their index, made on every core.
pub(super) fn key_packages(count: usize, prefix: &str) -> Result<Vec<MlsMessage>, String> {
    on_every_core(count, |i| {
        client(format!("{prefix}{i}").as_bytes())
            .and_then(|client| {
                Ok(client.generate_key_package_message(
                    ExtensionList::new(),
                    ExtensionList::new(),
                    None,
                )?)
            })
            .map_err(|e| e.to_string())
    })
}

/// A member-to-be that joins from a Welcome: its client (which keeps its key
/// package's private keys) and its key package.
pub(super) struct RawJoiner {
    client: RawClient,
    /// The key package it hands to the committer.
    pub(super) key_package: MlsMessage,
}

impl RawJoiner {
    /// A new client named `name` and its key package.
    pub(super) fn new(name: &[u8]) -> BenchResult<Self> {
        let client = client(name)?;
        let key_package = client.generate_key_package_message(
            ExtensionList::new(),
            ExtensionList::new(),
            None,
        )?;
        Ok(Self {
            client,
            key_package,
        })
    }

    /// Joins from a Welcome and the ratchet tree sent beside it, both as received.
    pub(super) fn join(&self, welcome: &[u8], tree: &[u8]) -> BenchResult<RawGroup> {
        let welcome = MlsMessage::from_bytes(welcome)?;
        let tree = ExportedTree::from_bytes(tree)?;
        let (group, _) = self.client.join_group(Some(tree), &welcome, None)?;
        Ok(group)
    }
}

/// What a committer sends: the commit and, when it adds members, the Welcome
/// and the ratchet tree beside it.
pub(super) struct RawCommit {
    /// The commit.
    pub(super) commit: Vec<u8>,
    /// The Welcome and the ratchet tree, when the commit adds members.
    pub(super) welcome: Option<(Vec<u8>, Vec<u8>)>,
}

/// Commits, as `group`'s member, adding the owners of `adds` and removing the
/// member whose credential is `remove` (nothing at all: a self-update with an
/// UpdatePath); applies the commit and serializes what it sends.
pub(super) fn commit(
    group: &mut RawGroup,
    adds: Vec<MlsMessage>,
    remove: Option<&[u8]>,
) -> BenchResult<RawCommit> {
    let removed = remove
        .map(|name| group.member_with_identity(name))
        .transpose()?;
    let mut builder = group.commit_builder();
    for key_package in adds {
        builder = builder.add_member(key_package)?;
    }
    if let Some(member) = removed {
        builder = builder.remove_member(member.index)?;
    }
    let output = builder.build()?;
    group.apply_pending_commit()?;
    let welcome = match (output.welcome_messages.first(), output.ratchet_tree()) {
        (Some(welcome), Some(tree)) => Some((welcome.to_bytes()?, tree.to_bytes()?)),
        (Some(_), None) => return Err("a Welcome without its ratchet tree".into()),
        (None, _) => None,
    };
    Ok(RawCommit {
        commit: output.commit_message.to_bytes()?,
        welcome,
    })
}

/// Processes (and applies) a commit as a member of `group`.
pub(super) fn process(group: &mut RawGroup, commit: &[u8]) -> BenchResult<()> {
    let message = MlsMessage::from_bytes(commit)?;
    match group.process_incoming_message(message)? {
        ReceivedMessage::Commit(_) => Ok(()),
        _ => Err("expected a commit".into()),
    }
}

/// Whether all `groups` are in one epoch with one epoch authenticator.
pub(super) fn agree(groups: &[&RawGroup]) -> BenchResult<bool> {
    let mut authenticators = groups.iter().map(|g| g.epoch_authenticator());
    let Some(first) = authenticators.next().transpose()? else {
        return Ok(true);
    };
    for other in authenticators {
        if other?.as_bytes() != first.as_bytes() {
            return Ok(false);
        }
    }
    Ok(true)
}
