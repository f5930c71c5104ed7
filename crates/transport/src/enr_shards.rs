//! The relay shards a node states in its ENR (`relay-sharding.md`): `rs`, a list of shard
//! indices, or `rsv`, a bit vector of a cluster's 1024 shards. Read from ENRs found through
//! discv5 or peer exchange, so that a node sharing a DHT with other Waku networks does not dial
//! nodes that cannot relay for it; written into this node's discv5 ENR.
//!
//! The bit vector's layout is nwaku's (`waku_enr/sharding.nim`): shard `s` is bit `s % 8`
//! (least significant first) of byte `s / 8`. The specification's text says the right-most bit
//! is shard 0, and its example fits neither reading; nwaku is what the network runs.

use std::collections::BTreeSet;

use enr::{CombinedKey, Enr};

/// ENR key of the shard index list.
pub(crate) const RS_KEY: &str = "rs";
/// ENR key of the shard bit vector.
const RSV_KEY: &str = "rsv";
/// Bytes of the `rsv` bit vector: one bit for each of a cluster's 1024 shards.
const RSV_BITS_LEN: usize = 128;

/// A node's relay shards, as its ENR states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrShards {
    /// Its cluster.
    pub cluster_id: u16,
    /// Its shards in that cluster.
    pub shards: BTreeSet<u16>,
}

/// An ENR whose shard field does not read: a value of the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedShards;

impl EnrShards {
    /// Reads `rs` or `rsv`; `None` when the ENR states neither (nodes that predate sharding).
    /// An ENR with both is read by its `rs` (the specification: such ENRs SHOULD be ignored,
    /// MAY be read by `rs`, MUST NOT be read by `rsv`; nwaku reads `rs`).
    pub(crate) fn of(enr: &Enr<CombinedKey>) -> Result<Option<EnrShards>, MalformedShards> {
        let field = |key: &str| {
            enr.get_decodable::<alloy_rlp::Bytes>(key)
                .transpose()
                .map_err(|_| MalformedShards)
        };
        if let Some(rs) = field(RS_KEY)? {
            return Self::from_index_list(&rs).map(Some);
        }
        field(RSV_KEY)?
            .map(|rsv| Self::from_bit_vector(&rsv))
            .transpose()
    }

    /// `rs`: the cluster (2 bytes), the number of shards (1 byte), each shard (2 bytes).
    fn from_index_list(bytes: &[u8]) -> Result<EnrShards, MalformedShards> {
        let [c0, c1, count, shards @ ..] = bytes else {
            return Err(MalformedShards);
        };
        if shards.len() != 2 * usize::from(*count) {
            return Err(MalformedShards);
        }
        Ok(EnrShards {
            cluster_id: u16::from_be_bytes([*c0, *c1]),
            shards: shards
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect(),
        })
    }

    /// `rsv`: the cluster (2 bytes), then 128 bytes of flags, shard `s` at bit `s % 8` of
    /// byte `s / 8`.
    fn from_bit_vector(bytes: &[u8]) -> Result<EnrShards, MalformedShards> {
        let [c0, c1, bits @ ..] = bytes else {
            return Err(MalformedShards);
        };
        if bits.len() != RSV_BITS_LEN {
            return Err(MalformedShards);
        }
        let shards = bits
            .iter()
            .enumerate()
            .flat_map(|(byte, flags)| {
                (0..8u16)
                    .filter(move |bit| flags & (1 << bit) != 0)
                    .map(move |bit| 8 * byte as u16 + bit)
            })
            .collect();
        Ok(EnrShards {
            cluster_id: u16::from_be_bytes([*c0, *c1]),
            shards,
        })
    }

    /// The `rs` value stating these shards; `None` for more than an index list holds (255).
    pub(crate) fn index_list(&self) -> Option<Vec<u8>> {
        let count = u8::try_from(self.shards.len()).ok()?;
        let mut bytes = self.cluster_id.to_be_bytes().to_vec();
        bytes.push(count);
        for shard in &self.shards {
            bytes.extend_from_slice(&shard.to_be_bytes());
        }
        Some(bytes)
    }

    /// Whether a node stating these shards can relay for a node of `cluster_id` on `ours`:
    /// the same cluster and, when both relay on shards, one in common (the rule the metadata
    /// exchange applies once connected).
    pub(crate) fn fit(&self, cluster_id: u16, ours: &BTreeSet<u16>) -> bool {
        self.cluster_id == cluster_id && shards_meet(&self.shards, ours)
    }
}

/// Whether a peer relaying on `theirs` can relay for a node on `ours` in the same cluster:
/// when both relay on shards, one in common (nwaku's rule: a relay peer on none of our shards
/// cannot relay anything for us; a node on no shard yet keeps its peers for the shards it will
/// join). The one rule for records (ENRs) and for the metadata exchange.
pub(crate) fn shards_meet<T: Ord>(theirs: &BTreeSet<T>, ours: &BTreeSet<T>) -> bool {
    theirs.is_empty() || ours.is_empty() || !theirs.is_disjoint(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(build: impl FnOnce(&mut enr::Builder<CombinedKey>)) -> Enr<CombinedKey> {
        let key = CombinedKey::generate_secp256k1();
        let mut builder = Enr::builder();
        build(&mut builder);
        builder.build(&key).expect("ENR")
    }

    fn shards(list: &[u16]) -> BTreeSet<u16> {
        list.iter().copied().collect()
    }

    #[test]
    fn shards_13_14_45_of_cluster_16_read_from_an_index_list_and_a_bit_vector() {
        // relay-sharding.md's example: `rs` 16u16 | 3u8 | 13u16 | 14u16 | 45u16.
        let rs = signed(|b| {
            b.add_value(RS_KEY, &[0u8, 16, 3, 0, 13, 0, 14, 0, 45].as_slice());
        });
        let expected = EnrShards {
            cluster_id: 16,
            shards: shards(&[13, 14, 45]),
        };
        assert_eq!(EnrShards::of(&rs), Ok(Some(expected.clone())));
        // nwaku's layout: 13 and 14 are bits 5 and 6 of byte 1, 45 is bit 5 of byte 5.
        let mut rsv = vec![0u8, 16];
        rsv.extend_from_slice(&[0x00, 0x60, 0x00, 0x00, 0x00, 0x20]);
        rsv.extend_from_slice(&[0u8; 122]);
        let rsv = signed(|b| {
            b.add_value(RSV_KEY, &rsv.as_slice());
        });
        assert_eq!(EnrShards::of(&rsv), Ok(Some(expected.clone())));
        assert_eq!(
            expected.index_list(),
            Some(vec![0u8, 16, 3, 0, 13, 0, 14, 0, 45])
        );
    }

    #[test]
    fn missing_fields_are_none_broken_ones_malformed_and_rs_wins_over_rsv() {
        assert_eq!(EnrShards::of(&signed(|_| {})), Ok(None));
        let short = signed(|b| {
            b.add_value(RS_KEY, &[0u8, 16, 2, 0, 13].as_slice());
        });
        assert_eq!(EnrShards::of(&short), Err(MalformedShards));
        let both = signed(|b| {
            b.add_value(RS_KEY, &[0u8, 16, 1, 0, 13].as_slice());
            b.add_value(RSV_KEY, &[0u8; 130].as_slice());
        });
        let by_rs = EnrShards {
            cluster_id: 16,
            shards: shards(&[13]),
        };
        assert_eq!(EnrShards::of(&both), Ok(Some(by_rs)));
        let bits = signed(|b| {
            b.add_value(RSV_KEY, &[0u8; 129].as_slice());
        });
        assert_eq!(EnrShards::of(&bits), Err(MalformedShards));
    }

    #[test]
    fn a_node_fits_in_the_same_cluster_with_a_shard_in_common_or_none_stated() {
        let theirs = EnrShards {
            cluster_id: 4242,
            shards: shards(&[0, 3]),
        };
        assert!(theirs.fit(4242, &shards(&[3])));
        assert!(theirs.fit(4242, &shards(&[])));
        assert!(!theirs.fit(4242, &shards(&[1, 2])));
        assert!(!theirs.fit(1, &shards(&[0])));
        let none = EnrShards {
            cluster_id: 4242,
            shards: shards(&[]),
        };
        assert!(none.fit(4242, &shards(&[5])));
    }
}
