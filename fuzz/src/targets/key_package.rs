//! Key packages: mls-rs's parsing and the wallet binding in the credential, then the two ways
//! a key package reaches an engine from the network: sealed in a join request to the steward,
//! and inside an add proposal that a member sends to the group.

use demls_consensus::signing;
use demls_consensus::wire::Proposal;
use demls_engine::wire::{
    Envelope, GroupChange, JoinRequest, WIRE_VERSION, app_message, envelope, group_change,
};
use demls_identity::WalletBinding;
use mls_rs::{CipherSuite, CryptoProvider, MlsMessage};
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use prost::Message;

use crate::fixture::{self, A, B, GROUP, K, S};
use crate::sign;
use crate::world::{Node, World};

/// The address the key package's credential binds, if it parses that far.
fn parse(data: &[u8]) -> Option<Vec<u8>> {
    let message = MlsMessage::from_bytes(data).ok()?;
    let _ = message.description();
    let _ = message.to_bytes();
    let key_package = message.as_key_package()?;
    let suite = RustCryptoProvider::new().cipher_suite_provider(CipherSuite::CURVE25519_AES128)?;
    let _ = key_package.to_reference(&suite);
    let identity = key_package.signing_identity();
    let basic = identity.credential.as_basic()?;
    let binding = WalletBinding::decode(&basic.identifier).ok()?;
    let _ = binding.verify(identity.signature_key.as_bytes());
    Some(binding.address().as_bytes().to_vec())
}

/// `data` as a key package, every way in.
pub fn run(data: &[u8]) {
    let claimed = parse(data);
    World::with(|w| {
        let now = w.now();
        // Sealed to the steward by the owner it claims (K if none of ours).
        let joiner = claimed
            .as_deref()
            .and_then(sign::wallet_of)
            .unwrap_or_else(|| fixture::wallet(K));
        let mut request = JoinRequest {
            sent_at_ms: now.0,
            ..JoinRequest::default()
        };
        sign::seal_join(
            &mut request,
            &w.fx.steward_hpke_key(),
            fixture::wallet(S).address(),
            joiner.address(),
            data,
        );
        sign::join_request(&mut request, &joiner);
        let bytes = Envelope {
            version: WIRE_VERSION,
            group_id: GROUP.into(),
            body: Some(envelope::Body::JoinRequest(request)),
        }
        .encode_to_vec();
        let _ = w.deliver(Node::Member(S), &bytes);

        // Proposed for addition by member A, with A's own YES inside.
        let proposal = add_proposal(data, w.epoch(), now.0 / 1000);
        let a = w.engine(Node::Member(A));
        if a.byzantine_send_app(
            &fixture::group(),
            app_message::Body::Proposal(proposal),
            now,
        )
        .is_ok()
        {
            for transmit in fixture::drain(a) {
                for receiver in [S, B] {
                    let _ = w.deliver(Node::Member(receiver), &transmit.payload);
                }
            }
        }
    });
}

/// A's proposal to add the owner of `key_package`, as A's engine would make it.
pub fn add_proposal(key_package: &[u8], epoch: u64, now_secs: u64) -> Proposal {
    let mut proposal = Proposal {
        name: "demls/group-change/v1".into(),
        payload: GroupChange {
            epoch,
            change: Some(group_change::Change::AddKeyPackage(key_package.to_vec())),
            invitation: None,
        }
        .encode_to_vec(),
        proposal_id: 0,
        proposal_owner: fixture::wallet(A).address().as_bytes().to_vec(),
        votes: Vec::new(),
        expected_voters_count: 4,
        round: 1,
        timestamp: now_secs,
        expiration_timestamp: now_secs + 20,
        // Silence never admits (docs/protocol.md): members refuse an add that says otherwise.
        liveness_criteria_yes: false,
    };
    proposal.proposal_id = signing::proposal_id(&proposal).0;
    proposal.votes = vec![sign::owner_vote(&proposal, &fixture::wallet(A))];
    proposal
}
