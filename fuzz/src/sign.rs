//! Re-signing and re-sealing fuzzed messages with the fixture's real keys, so that mutated
//! inputs get past signature checks and reach the checks behind them.

use demls_consensus::signing;
use demls_consensus::wire::{Proposal, Vote};
use demls_engine::wire::{GroupAnnouncement, JoinRequest, SyncRequest};
use demls_identity::{Address, Wallet};
use mls_rs::crypto::HpkePublicKey;
use mls_rs::{CipherSuite, CipherSuiteProvider, CryptoProvider};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use prost::Message;

use crate::fixture;

/// The fixture wallet whose address is `bytes`, if any.
pub fn wallet_of(bytes: &[u8]) -> Option<Wallet> {
    let address = Address::from_slice(bytes)?;
    fixture::wallets()
        .into_iter()
        .find(|w| w.address() == address)
}

fn personal(wallet: &Wallet, bytes: &[u8]) -> Vec<u8> {
    wallet.sign_personal(bytes).as_bytes().to_vec()
}

/// Fills in a vote's hash and signature as its owner `wallet` would.
pub fn vote(vote: &mut Vote, wallet: &Wallet) {
    vote.vote_owner = wallet.address().as_bytes().to_vec();
    vote.vote_hash = signing::vote_hash(vote).0.to_vec();
    vote.signature = personal(wallet, &signing::signing_payload(vote));
}

/// A proposal owner's own YES vote, as the engine embeds it.
pub fn owner_vote(proposal: &Proposal, wallet: &Wallet) -> Vote {
    let mut v = Vote {
        vote_id: signing::vote_id(
            demls_consensus::ProposalId(proposal.proposal_id),
            wallet.address(),
        ),
        vote_owner: Vec::new(),
        proposal_id: proposal.proposal_id,
        timestamp: proposal.timestamp,
        vote: true,
        parent_hash: Vec::new(),
        received_hash: Vec::new(),
        vote_hash: Vec::new(),
        signature: Vec::new(),
    };
    vote(&mut v, wallet);
    v
}

/// Signs an announcement as `wallet`.
pub fn announcement(a: &mut GroupAnnouncement, wallet: &Wallet) {
    a.steward = wallet.address().as_bytes().to_vec();
    a.signature.clear();
    a.signature = personal(wallet, &a.encode_to_vec());
}

/// Signs a join request as `wallet`.
pub fn join_request(r: &mut JoinRequest, wallet: &Wallet) {
    r.joiner = wallet.address().as_bytes().to_vec();
    r.signature.clear();
    r.signature = personal(wallet, &r.encode_to_vec());
}

/// Signs a sync request as `wallet`.
pub fn sync_request(q: &mut SyncRequest, wallet: &Wallet) {
    q.requester = wallet.address().as_bytes().to_vec();
    q.signature.clear();
    q.signature = personal(wallet, &q.encode_to_vec());
}

/// Seals `plaintext` (a key package, or anything) to the steward's HPKE key exactly as a
/// joiner seals its key package: `info = "demls/join/v1" || group`, `aad = joiner || steward`.
pub fn seal_join(
    request: &mut JoinRequest,
    steward_key: &[u8],
    steward: Address,
    joiner: Address,
    plaintext: &[u8],
) {
    let suite = RustCryptoProvider::new()
        .cipher_suite_provider(CipherSuite::CURVE25519_AES128)
        .expect("ciphersuite 1");
    let info = [b"demls/join/v1".as_slice(), fixture::GROUP.as_bytes()].concat();
    let aad = [joiner.as_bytes().as_slice(), steward.as_bytes()].concat();
    if let Ok(sealed) = suite.hpke_seal(
        &HpkePublicKey::from(steward_key.to_vec()),
        &info,
        Some(&aad),
        plaintext,
    ) {
        request.steward = steward.as_bytes().to_vec();
        request.joiner = joiner.as_bytes().to_vec();
        request.kem_output = sealed.kem_output;
        request.ciphertext = sealed.ciphertext;
    }
}
