//! demls.policy.v1: pinned bytes, round trips, and every kind of malformed input.

use demls_identity::Address;
use demls_policy::wire::{self, MAX_ENCODED_LEN, admission_policy::Kind};
use demls_policy::{AdmissionPolicy, BlockRef, Gate, PolicyError, Requirement, U256};
use proptest::prelude::*;
use prost::Message;

const TOKEN: Address = Address::new([0xaa; 20]);

fn gated(chain_id: u64, block: BlockRef, requirement: Requirement) -> AdmissionPolicy {
    AdmissionPolicy::Gated(Gate {
        chain_id,
        block,
        requirement,
    })
}

fn min_eth(text: &str) -> Requirement {
    Requirement::MinEth {
        min_wei: U256::parse_units(text, 18).expect("amount"),
    }
}

fn decode_hex(text: &str) -> Result<AdmissionPolicy, PolicyError> {
    AdmissionPolicy::decode(&hex::decode(text).expect("hex"))
}

#[test]
fn pinned_encodings() {
    assert_eq!(hex::encode(AdmissionPolicy::Open.encode()), "08015200");
    // version 1, chain 1, kind 11 { min_wei = 10^17 = 0x016345785d8a0000 }
    let tenth = gated(1, BlockRef::Latest, min_eth("0.1"));
    assert_eq!(
        hex::encode(tenth.encode()),
        "080110015a0a0a08016345785d8a0000"
    );
    // block_number 123 is field 3
    let fixed = gated(1, BlockRef::Number(123), min_eth("0.1"));
    assert_eq!(
        hex::encode(fixed.encode()),
        "08011001187b5a0a0a08016345785d8a0000"
    );
    // kind 13 { token, token_id = 7 }; chain 31337 = 0xe9 0xf4 0x01
    let nft = gated(
        31337,
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: Some(U256::from(7)),
        },
    );
    assert_eq!(
        hex::encode(nft.encode()),
        format!("080110e9f4016a190a14{}120107", "aa".repeat(20))
    );
    // a zero minimum is an empty field, and prost leaves empty fields out
    let zero = gated(
        1,
        BlockRef::Latest,
        Requirement::MinEth {
            min_wei: U256::ZERO,
        },
    );
    assert_eq!(hex::encode(zero.encode()), "080110015a00");
}

#[test]
fn every_kind_round_trips() {
    let policies = [
        AdmissionPolicy::Open,
        gated(1, BlockRef::Latest, min_eth("0.1")),
        gated(11155111, BlockRef::Number(7_000_000), min_eth("32")),
        gated(
            137,
            BlockRef::Latest,
            Requirement::MinErc20 {
                token: TOKEN,
                min_amount: U256::parse_units("250.5", 6).expect("amount"),
                decimals: 6,
                symbol: "USDC".into(),
            },
        ),
        gated(
            1,
            BlockRef::Number(1),
            Requirement::MinErc20 {
                token: TOKEN,
                min_amount: U256::ONE,
                decimals: 0,
                symbol: String::new(),
            },
        ),
        gated(
            1,
            BlockRef::Latest,
            Requirement::Erc721 {
                token: TOKEN,
                token_id: None,
            },
        ),
        gated(
            1,
            BlockRef::Latest,
            Requirement::Erc721 {
                token: TOKEN,
                token_id: Some(U256::ZERO),
            },
        ),
        gated(
            u64::MAX,
            BlockRef::Number(u64::MAX),
            Requirement::Erc721 {
                token: TOKEN,
                token_id: Some(U256::from_be_bytes([0xff; 32])),
            },
        ),
    ];
    for policy in policies {
        let bytes = policy.encode();
        assert!(bytes.len() <= MAX_ENCODED_LEN);
        assert_eq!(
            AdmissionPolicy::decode(&bytes),
            Ok(policy.clone()),
            "{policy}"
        );
    }
}

#[test]
fn token_id_zero_is_not_any_token() {
    let zero = gated(
        1,
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: Some(U256::ZERO),
        },
    );
    let any = gated(
        1,
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: None,
        },
    );
    assert_ne!(zero.encode(), any.encode());
}

#[test]
fn amounts_with_leading_zero_bytes_are_read() {
    // min_wei = 00 00 01: an encoder that pads is understood
    assert_eq!(
        decode_hex("080110015a050a03000001"),
        Ok(gated(
            1,
            BlockRef::Latest,
            Requirement::MinEth { min_wei: U256::ONE }
        ))
    );
}

/// Encodes a wire message after letting `edit` spoil it.
fn spoiled(edit: impl FnOnce(&mut wire::AdmissionPolicy)) -> Result<AdmissionPolicy, PolicyError> {
    let policy = gated(
        1,
        BlockRef::Latest,
        Requirement::MinErc20 {
            token: TOKEN,
            min_amount: U256::ONE,
            decimals: 18,
            symbol: "DAI".into(),
        },
    );
    let mut message = wire::AdmissionPolicy::from(&policy);
    edit(&mut message);
    AdmissionPolicy::decode(&message.encode_to_vec())
}

fn erc20(message: &mut wire::AdmissionPolicy) -> &mut wire::MinErc20 {
    match &mut message.kind {
        Some(Kind::MinErc20(m)) => m,
        _ => panic!("not an ERC-20 policy"),
    }
}

#[test]
fn invalid_fields_are_typed_errors() {
    assert_eq!(
        spoiled(|m| m.version = 2),
        Err(PolicyError::UnsupportedVersion(2))
    );
    assert_eq!(
        spoiled(|m| m.version = 0),
        Err(PolicyError::UnsupportedVersion(0))
    );
    assert_eq!(spoiled(|m| m.kind = None), Err(PolicyError::UnknownKind));
    assert_eq!(spoiled(|m| m.chain_id = 0), Err(PolicyError::ZeroChainId));
    assert_eq!(
        spoiled(|m| erc20(m).token.truncate(19)),
        Err(PolicyError::BadAddress {
            field: "token",
            len: 19
        })
    );
    assert_eq!(
        spoiled(|m| erc20(m).min_amount = vec![1; 33]),
        Err(PolicyError::BadAmount {
            field: "min_amount",
            len: 33
        })
    );
    assert_eq!(
        spoiled(|m| erc20(m).decimals = 256),
        Err(PolicyError::BadDecimals(256))
    );
    assert_eq!(
        spoiled(|m| erc20(m).symbol = "DAI\u{1b}[2J".into()),
        Err(PolicyError::BadSymbol("DAI\u{1b}[2J".into()))
    );
    assert_eq!(
        spoiled(|m| erc20(m).symbol = "X".repeat(33)),
        Err(PolicyError::BadSymbol("X".repeat(33)))
    );
    assert_eq!(
        spoiled(|m| erc20(m).symbol = "Ξ".repeat(16)).map(|_| ()),
        Ok(())
    );
    let open_on_chain = spoiled(|m| m.kind = Some(Kind::Open(wire::Open {})));
    assert_eq!(open_on_chain, Err(PolicyError::OpenWithChain));
    let open_at_block = spoiled(|m| {
        m.chain_id = 0;
        m.block_number = Some(5);
        m.kind = Some(Kind::Open(wire::Open {}));
    });
    assert_eq!(open_at_block, Err(PolicyError::OpenWithChain));
    let nft = spoiled(|m| {
        m.kind = Some(Kind::Erc721(wire::Erc721 {
            token: vec![1; 20],
            token_id: Some(vec![0; 40]),
        }))
    });
    assert_eq!(
        nft,
        Err(PolicyError::BadAmount {
            field: "token_id",
            len: 40
        })
    );
}

#[test]
fn a_policy_kind_from_the_future_is_not_open() {
    // version 1, chain 1, an unknown field 14 (a kind this decoder does not know)
    assert_eq!(decode_hex("080110017200"), Err(PolicyError::UnknownKind));
    // nothing at all
    assert_eq!(
        AdmissionPolicy::decode(&[]),
        Err(PolicyError::UnsupportedVersion(0))
    );
}

#[test]
fn malformed_bytes_are_errors() {
    for bad in [
        "ff",
        "0a",
        "08",
        "5a0a0a08",
        "080110015a0a0a0801",
        "0801100152ff",
    ] {
        assert!(
            matches!(decode_hex(bad), Err(PolicyError::Malformed(_))),
            "{bad}: {:?}",
            decode_hex(bad)
        );
    }
    let mut long = gated(1, BlockRef::Latest, min_eth("1")).encode();
    long.resize(MAX_ENCODED_LEN + 1, 0);
    assert!(matches!(
        AdmissionPolicy::decode(&long),
        Err(PolicyError::Malformed(_))
    ));
}

#[test]
fn validate_catches_what_decode_would() {
    let bad_symbol = gated(
        1,
        BlockRef::Latest,
        Requirement::MinErc20 {
            token: TOKEN,
            min_amount: U256::ONE,
            decimals: 18,
            symbol: "\n".into(),
        },
    );
    assert_eq!(
        bad_symbol.validate(),
        Err(PolicyError::BadSymbol("\n".into()))
    );
    assert_eq!(
        AdmissionPolicy::decode(&bad_symbol.encode()),
        Err(PolicyError::BadSymbol("\n".into()))
    );
    let chain_zero = gated(0, BlockRef::Latest, min_eth("1"));
    assert_eq!(chain_zero.validate(), Err(PolicyError::ZeroChainId));
    assert_eq!(AdmissionPolicy::Open.validate(), Ok(()));
}

#[test]
fn policies_read_as_sentences() {
    assert_eq!(AdmissionPolicy::Open.to_string(), "open to anyone");
    assert_eq!(
        gated(1, BlockRef::Latest, min_eth("0.1")).to_string(),
        "at least 0.1 ETH on chain 1 at the latest block"
    );
    let dai = gated(
        10,
        BlockRef::Number(42),
        Requirement::MinErc20 {
            token: TOKEN,
            min_amount: U256::parse_units("1.5", 18).expect("amount"),
            decimals: 18,
            symbol: "DAI".into(),
        },
    );
    assert_eq!(
        dai.to_string(),
        format!("at least 1.5 DAI (ERC-20 {TOKEN}) on chain 10 at block 42")
    );
    let nft = gated(
        1,
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: Some(U256::from(9)),
        },
    );
    assert_eq!(
        nft.to_string(),
        format!("token #9 of the ERC-721 collection {TOKEN} on chain 1 at the latest block")
    );
    assert!(nft.gate().is_some());
    assert!(AdmissionPolicy::Open.gate().is_none());
}

fn amount() -> impl Strategy<Value = U256> {
    prop::array::uniform32(any::<u8>()).prop_map(U256::from_be_bytes)
}

fn policy() -> impl Strategy<Value = AdmissionPolicy> {
    let address = prop::array::uniform20(any::<u8>()).prop_map(Address::new);
    let requirement = prop_oneof![
        amount().prop_map(|min_wei| Requirement::MinEth { min_wei }),
        (
            address.clone(),
            amount(),
            any::<u8>(),
            "[A-Za-z0-9Ξ$ ]{0,8}"
        )
            .prop_map(|(token, min_amount, decimals, symbol)| {
                Requirement::MinErc20 {
                    token,
                    min_amount,
                    decimals,
                    symbol,
                }
            }),
        (address, prop::option::of(amount()))
            .prop_map(|(token, token_id)| Requirement::Erc721 { token, token_id }),
    ];
    let block = prop_oneof![
        Just(BlockRef::Latest),
        any::<u64>().prop_map(BlockRef::Number)
    ];
    prop_oneof![
        Just(AdmissionPolicy::Open),
        (1..=u64::MAX, block, requirement).prop_map(|(chain_id, block, requirement)| {
            AdmissionPolicy::Gated(Gate {
                chain_id,
                block,
                requirement,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_policies_round_trip(policy in policy()) {
        prop_assert_eq!(AdmissionPolicy::decode(&policy.encode()), Ok(policy));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        if let Ok(policy) = AdmissionPolicy::decode(&bytes) {
            prop_assert_eq!(AdmissionPolicy::decode(&policy.encode()), Ok(policy));
        }
    }

    #[test]
    fn corrupted_policies_never_panic(policy in policy(), index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = policy.encode();
        let at = index.index(bytes.len());
        bytes[at] = byte;
        if let Ok(decoded) = AdmissionPolicy::decode(&bytes) {
            prop_assert_eq!(decoded.validate(), Ok(()));
        }
        for cut in 0..bytes.len() {
            let _ = AdmissionPolicy::decode(&bytes[..cut]);
        }
    }
}
