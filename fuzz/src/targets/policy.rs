//! `AdmissionPolicy::decode` and what is done with a decoded policy.

use demls_identity::Address;
use demls_policy::{AdmissionPolicy, ChainFacts, FactValue, U256, evaluate};

/// Decodes; a decoded policy re-encodes to itself, validates, and decides on facts drawn from
/// the input without panicking (refusals are displayed too, as the node shows them).
pub fn run(data: &[u8]) {
    if let Ok(policy) = AdmissionPolicy::decode(data) {
        let encoded = policy.encode();
        assert_eq!(
            AdmissionPolicy::decode(&encoded).as_ref(),
            Ok(&policy),
            "decode → encode → decode changed the policy"
        );
        let _ = policy.validate();
        let _ = policy.gate();
        let word = |at: usize| {
            U256::from_be_slice(data.get(at..(at + 32).min(data.len())).unwrap_or_default())
        };
        let chain = policy.gate().map_or(0, |g| g.chain_id);
        for (block, value) in [
            (0, FactValue::Balance(word(0).unwrap_or_default())),
            (
                u64::MAX,
                FactValue::Balance(U256::from_be_bytes([0xff; 32])),
            ),
            (7, FactValue::Owner(None)),
            (7, FactValue::Owner(Some(Address::new([1; 20])))),
        ] {
            for chain_id in [chain, chain.wrapping_add(1)] {
                let facts = ChainFacts {
                    chain_id,
                    block,
                    subject: Address::new([2; 20]),
                    value,
                };
                if let Err(refusal) = evaluate(&policy, &facts) {
                    let _ = refusal.to_string();
                }
            }
        }
    }
    // Amounts as they appear in policies and refusals.
    if let Some(amount) = U256::from_be_slice(&data[..data.len().min(32)]) {
        let decimals = data.get(32).copied().unwrap_or(18);
        let text = amount.format_units(decimals);
        assert_eq!(
            U256::parse_units(&text, decimals),
            Ok(amount),
            "{text} with {decimals} decimals"
        );
        assert_eq!(U256::from_be_slice(&amount.to_minimal_be()), Some(amount));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = U256::parse_units(text, 18);
        let _ = U256::parse_units(text, 0);
    }
}
