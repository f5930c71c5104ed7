//! The types of the `demls node` control API: every HTTP request and response body and every
//! event of the WebSocket stream, as serde types.
//!
//! They are the one source of truth for the API. The node serializes them, the CLI
//! deserializes them, and two files are generated from them and committed:
//!
//! - `docs/openapi.yaml`: the OpenAPI document (`utoipa`): the schemas come from these types
//!   (with their doc comments as descriptions), the paths from the node's handlers
//!   (`crates/node/src/api/routes.rs`, `#[utoipa::path]`);
//! - `web/src/api-types.ts`: the web client's TypeScript types ([`typescript`], `ts-rs`).
//!
//! A test fails when either file differs from what the types generate; run it with
//! `DEMLS_REGENERATE=1` to write them (`docs/web.md`, "The API's types").
//!
//! Conventions: times are Unix milliseconds (`u64`), addresses are EIP-55 strings, proposal
//! ids are `0x` and 8 hex digits, enums are `snake_case` strings, objects with a variant are
//! tagged (`type` for events, `kind` for changes and admission rules), and absent values are
//! `null` (never a missing key) in responses.
//!
//! This crate depends on no other demls crate: the node converts its engine's and store's
//! types into these.

mod error;
mod event;
mod group;
mod membership;
mod message;
mod node;
mod proposal;
mod typescript;

pub use error::{ErrorBody, ErrorDetail};
pub use event::{EventBody, EventFilter, NodeEvent};
pub use group::{
    Admission, AdmissionRule, GroupDetail, GroupState, GroupSummary, Health, JoinProgress,
    JoinRequest, JoinStage, Member, Mode, NewGroup, Role, Roster, RosterMember, StewardScore,
};
pub use membership::{
    Invitation, JoinRule, JoinTicket, KnownInvitation, NewInvitation, PendingRequest, Removal,
    RemovalReason, RequestDecision,
};
pub use message::{ChatMessage, Delivery, Direction, DisplayName, Message, NewMessage, Page};
pub use node::{NodeInfo, SignIn, SignedIn, Status, StatusBody, VotePolicy, VotePolicyChange};
pub use proposal::{Ballot, Change, NewProposal, Proposal, ProposalState, Tally, Violation, Vote};
pub use typescript::{REGENERATE, check_generated, typescript};

#[cfg(test)]
mod tests;
