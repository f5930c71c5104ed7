//! demls's MLS extensions (private-use range 0xF0D0–0xF0DF).

use mls_rs::extension::{ExtensionType, MlsCodecExtension};
use mls_rs_codec::{MlsDecode, MlsEncode, MlsSize};

/// Group context extension: the group's de-MLS parameters, agreed by every
/// member because they are part of the MLS group context.
#[derive(Clone, Debug, PartialEq, Eq, MlsSize, MlsEncode, MlsDecode)]
pub struct GroupParamsExt {
    /// Format version of this extension.
    pub version: u8,
    /// How stewards are chosen and who votes (see [`crate::StewardMode`]).
    pub mode: u8,
    /// Smallest steward list (when the group has that many members).
    pub sn_min: u16,
    /// Largest steward list.
    pub sn_max: u16,
    /// The steward list, in rotation order (20-byte addresses).
    pub stewards: Vec<[u8; 20]>,
    /// The epoch from which the list counts its rotation.
    pub election_epoch: u64,
    /// The retry round the list was elected in.
    pub retry_round: u32,
    /// Seconds a vote stays open.
    pub vote_timeout_secs: u32,
    /// Whether silent voters count as YES at the deadline.
    pub liveness_yes: bool,
    /// Most proposals one member may open in one epoch.
    pub max_proposals_per_member: u16,
    /// The admission policy (`demls_policy::AdmissionPolicy` encoding).
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    pub admission: Vec<u8>,
}

impl GroupParamsExt {
    /// The extension type.
    pub const TYPE: ExtensionType = ExtensionType::new(0xF0D1);
}

impl MlsCodecExtension for GroupParamsExt {
    fn extension_type() -> ExtensionType {
        Self::TYPE
    }
}

/// GroupInfo extension: the key that decrypts the ratchet tree sent beside a
/// Welcome. Only the Welcome's recipients can read it.
#[derive(Clone, Debug, PartialEq, Eq, MlsSize, MlsEncode, MlsDecode)]
pub struct TreeKeyExt {
    /// AEAD key of the group's ciphersuite; the nonce is zero (one key, one tree).
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    pub key: Vec<u8>,
}

impl TreeKeyExt {
    /// The extension type.
    pub const TYPE: ExtensionType = ExtensionType::new(0xF0D2);
}

impl MlsCodecExtension for TreeKeyExt {
    fn extension_type() -> ExtensionType {
        Self::TYPE
    }
}

/// Group context extension: the group's membership rules, a `demls.v1.GroupRules`
/// protobuf (so that later rules are new fields, not a new format). Commits must
/// leave it as it is.
#[derive(Clone, Debug, PartialEq, Eq, MlsSize, MlsEncode, MlsDecode)]
pub struct GroupRulesExt {
    /// The encoded `GroupRules`.
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    pub rules: Vec<u8>,
}

impl GroupRulesExt {
    /// The extension type.
    pub const TYPE: ExtensionType = ExtensionType::new(0xF0D3);
}

impl MlsCodecExtension for GroupRulesExt {
    fn extension_type() -> ExtensionType {
        Self::TYPE
    }
}
