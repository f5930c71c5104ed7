//! The de-MLS protocol engine.
//!
//! A sans-IO state machine for decentralized MLS groups, after the
//! ETH-MLS-OFFCHAIN RFC: a steward announces a group, joiners seal their key
//! packages to it, members vote on every membership change with the
//! hashgraph-like consensus of `demls-consensus`, and the steward turns
//! approved proposals into one MLS commit (RFC 9420, via mls-rs) plus a
//! Welcome. Members accept a commit only if it applies exactly the approved
//! proposals.
//!
//! The engine never touches sockets, threads or the wall clock: bytes and a
//! [`Timestamp`] go in, bytes ([`Transmit`]) and [`Event`]s come out.

mod admission;
pub mod bench_support;
mod bounded;
mod buffer;
#[cfg(feature = "byzantine")]
mod byzantine;
mod causal;
mod change;
mod commit;
mod config;
mod context;
mod engine;
mod epoch;
mod error;
mod event;
mod ids;
mod invitation;
mod join;
mod liveness;
pub mod mls;
mod motion;
mod names;
mod roles;
mod rotation;
mod rules;
mod scoring;
mod session;
mod snapshot;
mod steward;
mod sync;
mod violation;
mod voting;
pub mod wire;

pub use config::{EngineConfig, GroupParams, JoinRule, RotationRule, StewardMode, VotePolicy};
pub use demls_consensus::ProposalId;
pub use engine::{Engine, GroupView};
pub use error::EngineError;
pub use event::{ChangeKind, Event, Removal, Transmit, Violation};
pub use ids::{Epoch, GroupId, InvalidGroupId, Timestamp, Topic, TopicKind};
pub use invitation::InvitationError;
pub use join::Announcement;
pub use mls::MlsSigner;
pub use mls::store::{MlsStore, StorageWrite};
pub use names::MAX_DISPLAY_NAME_BYTES;
pub use rotation::KeyAge;
pub use scoring::PeerScoring;
pub use snapshot::EngineSnapshot;
