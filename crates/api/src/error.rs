//! The body of every error response.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// An error response: `{"error": {"code": ..., "message": ...}}`.
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Serialize, Deserialize, ToSchema, TS, Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    /// `no_token`, `bad_token`, `bad_code` (401); `invalid` (400); `unknown_group`,
    /// `unknown_proposal` (404); `group_exists`, `joining`, `proposal_closed`, `no_eth_rpc`
    /// (409); `join_refused` (403); an engine refusal such as `not_member` or `vote_refused`
    /// (422); `storage` (500); `stopped`, `eth_rpc_unavailable` (503).
    pub code: String,
    /// The reason in words.
    pub message: String,
}
