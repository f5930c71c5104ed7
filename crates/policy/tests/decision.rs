//! `evaluate`: every way to be admitted or refused, and the sentences a joiner reads.

use demls_identity::Address;
use demls_policy::{
    AdmissionPolicy, BlockRef, ChainFacts, FactValue, Gate, Refusal, Requirement, U256,
    Unavailable, Verdict, evaluate,
};

const JOINER: Address = Address::new([0x11; 20]);
const OTHER: Address = Address::new([0x22; 20]);
const TOKEN: Address = Address::new([0xaa; 20]);

fn eth(text: &str) -> U256 {
    U256::parse_units(text, 18).expect("amount")
}

fn gated(block: BlockRef, requirement: Requirement) -> AdmissionPolicy {
    AdmissionPolicy::Gated(Gate {
        chain_id: 1,
        block,
        requirement,
    })
}

fn facts(block: u64, value: FactValue) -> ChainFacts {
    ChainFacts {
        chain_id: 1,
        block,
        subject: JOINER,
        value,
    }
}

fn min_eth(text: &str) -> AdmissionPolicy {
    gated(BlockRef::Latest, Requirement::MinEth { min_wei: eth(text) })
}

fn dai(min: &str) -> AdmissionPolicy {
    gated(
        BlockRef::Latest,
        Requirement::MinErc20 {
            token: TOKEN,
            min_amount: eth(min),
            decimals: 18,
            symbol: "DAI".into(),
        },
    )
}

#[test]
fn open_admits_whatever_the_facts() {
    let anything = ChainFacts {
        chain_id: 999,
        block: 0,
        subject: JOINER,
        value: FactValue::Owner(None),
    };
    assert_eq!(evaluate(&AdmissionPolicy::Open, &anything), Ok(()));
}

#[test]
fn eth_minimum_is_inclusive() {
    let policy = min_eth("0.1");
    assert_eq!(
        evaluate(&policy, &facts(5, FactValue::Balance(eth("0.1")))),
        Ok(())
    );
    assert_eq!(
        evaluate(&policy, &facts(5, FactValue::Balance(eth("1000")))),
        Ok(())
    );
    let one_wei_short = U256::from(100_000_000_000_000_000 - 1);
    assert!(matches!(
        evaluate(&policy, &facts(5, FactValue::Balance(one_wei_short))),
        Err(Refusal::InsufficientEth { .. })
    ));
}

#[test]
fn eth_refusal_reads_as_a_sentence() {
    let refusal = evaluate(
        &min_eth("0.1"),
        &facts(123, FactValue::Balance(eth("0.05"))),
    )
    .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::InsufficientEth {
            balance: eth("0.05"),
            required: eth("0.1"),
            block: 123
        }
    );
    assert_eq!(
        refusal.to_string(),
        "balance 0.05 ETH at block 123 is below the required 0.1 ETH"
    );
    let zero = evaluate(&min_eth("1"), &facts(7, FactValue::Balance(U256::ZERO))).unwrap_err();
    assert_eq!(
        zero.to_string(),
        "balance 0 ETH at block 7 is below the required 1 ETH"
    );
}

#[test]
fn erc20_minimum_both_ways() {
    assert_eq!(
        evaluate(&dai("10"), &facts(9, FactValue::Balance(eth("10")))),
        Ok(())
    );
    let refusal = evaluate(&dai("10"), &facts(9, FactValue::Balance(eth("2.5")))).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        format!("balance 2.5 DAI of token {TOKEN} at block 9 is below the required 10 DAI")
    );
    let unnamed = gated(
        BlockRef::Latest,
        Requirement::MinErc20 {
            token: TOKEN,
            min_amount: U256::from(500),
            decimals: 2,
            symbol: String::new(),
        },
    );
    let refusal = evaluate(&unnamed, &facts(9, FactValue::Balance(U256::from(125)))).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        format!("balance 1.25 tokens of token {TOKEN} at block 9 is below the required 5 tokens")
    );
}

#[test]
fn any_token_of_a_collection() {
    let policy = gated(
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: None,
        },
    );
    assert_eq!(
        evaluate(&policy, &facts(3, FactValue::Balance(U256::ONE))),
        Ok(())
    );
    assert_eq!(
        evaluate(&policy, &facts(3, FactValue::Balance(U256::from(40)))),
        Ok(())
    );
    let refusal = evaluate(&policy, &facts(3, FactValue::Balance(U256::ZERO))).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        format!("{JOINER} holds no token of the ERC-721 collection {TOKEN} at block 3")
    );
}

#[test]
fn one_token_of_a_collection() {
    let policy = gated(
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: Some(U256::from(7)),
        },
    );
    assert_eq!(
        evaluate(&policy, &facts(3, FactValue::Owner(Some(JOINER)))),
        Ok(())
    );
    let refusal = evaluate(&policy, &facts(3, FactValue::Owner(Some(OTHER)))).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        format!(
            "token #7 of the ERC-721 collection {TOKEN} is owned by {OTHER} at block 3, not by {JOINER}"
        )
    );
    let missing = evaluate(&policy, &facts(3, FactValue::Owner(None))).unwrap_err();
    assert_eq!(
        missing,
        Refusal::NotOwner {
            subject: JOINER,
            token: TOKEN,
            token_id: U256::from(7),
            owner: None,
            block: 3
        }
    );
    assert!(missing.to_string().contains("does not exist"), "{missing}");
}

#[test]
fn facts_from_another_chain_refuse() {
    let from_anvil = ChainFacts {
        chain_id: 31337,
        ..facts(1, FactValue::Balance(eth("1000")))
    };
    let refusal = evaluate(&min_eth("0.1"), &from_anvil).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::WrongChain {
            expected: 1,
            got: 31337
        }
    );
    assert!(refusal.to_string().starts_with("wrong chain:"), "{refusal}");
    assert!(refusal.to_string().contains("31337 ≠ 1"), "{refusal}");
}

#[test]
fn a_fixed_block_needs_facts_from_that_block() {
    let policy = gated(
        BlockRef::Number(100),
        Requirement::MinEth { min_wei: eth("1") },
    );
    assert_eq!(
        evaluate(&policy, &facts(100, FactValue::Balance(eth("1")))),
        Ok(())
    );
    assert_eq!(
        evaluate(&policy, &facts(101, FactValue::Balance(eth("1")))),
        Err(Refusal::WrongBlock {
            expected: 100,
            got: 101
        })
    );
}

#[test]
fn facts_of_the_wrong_kind_refuse() {
    let owner = FactValue::Owner(Some(JOINER));
    assert_eq!(
        evaluate(&min_eth("0"), &facts(1, owner)),
        Err(Refusal::IrrelevantFacts {
            expected: "a balance",
            got: "an owner"
        })
    );
    let policy = gated(
        BlockRef::Latest,
        Requirement::Erc721 {
            token: TOKEN,
            token_id: Some(U256::ONE),
        },
    );
    let refusal = evaluate(&policy, &facts(1, FactValue::Balance(U256::ONE))).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "the facts read (a balance) do not answer this policy (an owner)"
    );
}

#[test]
fn verdicts() {
    assert_eq!(Verdict::from(Ok(())), Verdict::Admit);
    assert!(Verdict::Admit.admits());
    let refusal = Refusal::WrongChain {
        expected: 1,
        got: 5,
    };
    let refused = Verdict::from(Err(refusal.clone()));
    assert_eq!(refused, Verdict::Refuse(refusal));
    assert!(!refused.admits());
    assert!(
        refused.to_string().starts_with("refused: wrong chain"),
        "{refused}"
    );
    let down = Verdict::Unavailable(Unavailable::Rpc {
        attempts: 3,
        error: "connection refused".into(),
    });
    assert!(!down.admits());
    assert_eq!(
        down.to_string(),
        "check unavailable: the chain could not be read (3 attempts): connection refused"
    );
    assert_eq!(Verdict::Admit.to_string(), "admitted");
    let unconfigured = Verdict::Unavailable(Unavailable::NoEndpoint);
    assert!(!unconfigured.admits());
    assert_eq!(
        unconfigured.to_string(),
        "check unavailable: this node has no Ethereum RPC endpoint configured"
    );
}
