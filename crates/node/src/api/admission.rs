//! The `admission` object of `POST /api/groups`: who may join a new group.

use axum::http::StatusCode;
use demls_api::{Admission, AdmissionRule};
use demls_identity::Address;
use demls_policy::{AdmissionPolicy, BlockRef, Gate, Requirement, U256, Unavailable};

use super::ApiError;
use crate::runtime::NodeHandle;

fn amount(text: &str, decimals: u8, what: &str) -> Result<U256, ApiError> {
    U256::parse_units(text.trim(), decimals)
        .map_err(|e| ApiError::bad_request(format!("{what} {text:?}: {e}")))
}

fn contract(text: &str) -> Result<Address, ApiError> {
    text.trim()
        .parse()
        .map_err(|e| ApiError::bad_request(format!("bad token address {text:?}: {e}")))
}

/// The requirement of `rule`; `None` for an open group.
fn requirement(rule: AdmissionRule) -> Result<Option<Requirement>, ApiError> {
    Ok(Some(match rule {
        AdmissionRule::Open => return Ok(None),
        AdmissionRule::MinEth { amount: text } => Requirement::MinEth {
            min_wei: amount(&text, 18, "ETH amount")?,
        },
        AdmissionRule::MinErc20 {
            token,
            amount: text,
            decimals,
            symbol,
        } => {
            let decimals = decimals.unwrap_or(18);
            Requirement::MinErc20 {
                token: contract(&token)?,
                min_amount: amount(&text, decimals, "token amount")?,
                decimals,
                symbol: symbol.unwrap_or_default(),
            }
        }
        AdmissionRule::Erc721 { token, token_id } => Requirement::Erc721 {
            token: contract(&token)?,
            token_id: token_id.map(|id| amount(&id, 0, "token id")).transpose()?,
        },
    }))
}

/// The policy of a new group. A gate needs this node's chain endpoint: the creator is the
/// group's first steward and checks every joiner, and the policy names the endpoint's chain.
pub(super) async fn policy(
    node: &NodeHandle,
    admission: Option<Admission>,
) -> Result<AdmissionPolicy, ApiError> {
    let Some(admission) = admission else {
        return Ok(AdmissionPolicy::Open);
    };
    let Some(requirement) = requirement(admission.rule)? else {
        if admission.block.is_some() || admission.chain_id.is_some() {
            return Err(ApiError::bad_request(
                "an open group reads no chain: block and chain_id are for gates",
            ));
        }
        return Ok(AdmissionPolicy::Open);
    };
    let checker = node.chain().checker().await.map_err(|e| match e {
        Unavailable::NoEndpoint => ApiError::new(
            StatusCode::CONFLICT,
            "no_eth_rpc",
            "a gated group needs this node to read the chain: start it with --eth-rpc URL \
             (its steward checks every joiner)",
        ),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "eth_rpc_unavailable",
            format!("cannot create a gated group now: {other}"),
        ),
    })?;
    let served = checker.chain_id();
    let chain_id = admission.chain_id.unwrap_or(served);
    if chain_id != served {
        return Err(ApiError::bad_request(format!(
            "this node's RPC endpoint serves chain {served}, not chain {chain_id}"
        )));
    }
    let policy = AdmissionPolicy::Gated(Gate {
        chain_id,
        block: admission.block.map_or(BlockRef::Latest, BlockRef::Number),
        requirement,
    });
    policy
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(policy)
}
