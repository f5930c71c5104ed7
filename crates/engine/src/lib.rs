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
//!
//! # Two members
//!
//! Alice creates a group, Bob asks to join, Alice votes him in by hand, her engine commits
//! and welcomes him, and each says hello. The two engines are wired to each other directly;
//! a node drains each step's [`Output`] with [`Engine::take_output`], persists its writes
//! and snapshot, then publishes its [`Transmit`]s on their topics (Waku Relay in `demls`),
//! feeds what arrives to [`Engine::handle_message`], and calls [`Engine::handle_timeout`] at
//! [`Engine::poll_timeout`].
//!
//! ```
//! use demls_engine::{
//!     ChangeKind, Engine, EngineConfig, EngineError, Event, GroupId, GroupParams, MlsSigner,
//!     Timestamp, VotePolicy,
//! };
//! use demls_identity::Wallet;
//!
//! fn engine(vote_policy: VotePolicy) -> Result<Engine, EngineError> {
//!     let config = EngineConfig {
//!         vote_policy,
//!         announce_interval_ms: 1_000,
//!         commit_delay_ms: 1_000,
//!         ..EngineConfig::default()
//!     };
//!     let signer = MlsSigner::generate()?;
//!     // In memory: a node would give it a journaled store and persist its writes.
//!     Ok(Engine::builder(Wallet::generate(), &signer).config(config).build())
//! }
//!
//! /// Moves the clock on by `ms`, 100 ms at a time: timers fire, what one engine sends
//! /// reaches the other (which drops what is not for it), and events are kept.
//! fn run(nodes: &mut [Engine; 2], events: &mut [Vec<Event>; 2], now: &mut Timestamp, ms: u64) {
//!     for _ in 0..ms / 100 {
//!         *now = now.plus_ms(100);
//!         for i in 0..2 {
//!             nodes[i].handle_timeout(*now);
//!             let output = nodes[i].take_output().expect("state that encodes");
//!             // A node persists `output.writes` and `output.snapshot` here, then publishes.
//!             for transmit in output.transmits {
//!                 let _ = nodes[1 - i].handle_message(&transmit.payload, *now);
//!             }
//!             events[i].extend(output.events);
//!         }
//!     }
//! }
//!
//! let group = GroupId::new("lab").expect("a valid group name");
//! let mut now = Timestamp(1_700_000_000_000);
//! let mut nodes = [engine(VotePolicy::Manual)?, engine(VotePolicy::Automatic)?];
//! let mut events = [Vec::new(), Vec::new()];
//! let bob = nodes[1].address();
//!
//! nodes[0].create_group(group.clone(), GroupParams::default(), now)?;
//! nodes[1].request_join(group.clone(), None, now)?;
//! run(&mut nodes, &mut events, &mut now, 3_000);
//!
//! // Bob's key package reached Alice's engine, which opened a vote on adding him.
//! let proposal = events[0]
//!     .iter()
//!     .find_map(|event| match event {
//!         Event::ProposalOpened { proposal, change: ChangeKind::Add(who), .. } if *who == bob => {
//!             Some(*proposal)
//!         }
//!         _ => None,
//!     })
//!     .expect("a vote on adding Bob");
//! nodes[0].vote(&group, proposal, true, now)?;
//! run(&mut nodes, &mut events, &mut now, 5_000);
//! assert!(events[1].iter().any(|event| matches!(event, Event::Joined { .. })));
//!
//! nodes[0].send_message(&group, "hello Bob", now)?;
//! nodes[1].send_message(&group, "hello Alice", now)?;
//! run(&mut nodes, &mut events, &mut now, 1_000);
//! let heard = |i: usize, said: &str| {
//!     events[i]
//!         .iter()
//!         .any(|event| matches!(event, Event::Message { text, .. } if text == said))
//! };
//! assert!(heard(1, "hello Bob") && heard(0, "hello Alice"));
//! # Ok::<(), EngineError>(())
//! ```
//!
//! # Repeatable runs
//!
//! Every random choice an engine makes (MLS secrets and keys through mls-rs, HPKE
//! ephemeral keys, the steward's HPKE key, Welcome tree keys, chat message ids) comes from
//! its [`Entropy`]: the operating system's generator unless [`EngineBuilder::entropy`] says
//! otherwise. A simulation that must repeat bit for bit gives each engine a fixed wallet
//! ([`Wallet::from_bytes`](demls_identity::Wallet::from_bytes)), a signer from
//! [`MlsSigner::generate_with`] and an [`Entropy::seeded`] source of its own, and feeds the
//! same inputs at the same [`Timestamp`]s: the engines then send the same bytes in the same
//! order (`tests/determinism.rs` checks this on the simulator). A seeded engine's secrets
//! are its seed's: never in production.
//!
//! ```
//! use demls_engine::{Engine, Entropy, MlsSigner};
//! use demls_identity::Wallet;
//!
//! let entropy = Entropy::seeded([7; 32]);
//! let signer = MlsSigner::generate_with(&entropy)?;
//! let wallet = Wallet::from_bytes(&[1; 32]).expect("a valid key");
//! let engine = Engine::builder(wallet, &signer).entropy(entropy).build();
//! # drop(engine);
//! # Ok::<(), demls_engine::EngineError>(())
//! ```
//!
//! What stays outside: [`Wallet::generate`](demls_identity::Wallet::generate) and
//! [`MlsSigner::generate`] use the operating system (a repeatable run makes its wallets and
//! signers as above), and so does the `demls` node, which sets no entropy. A seeded
//! engine's HPKE ephemeral keys are derived from its seed and each seal's inputs rather
//! than drawn in turn, because mls-rs seals a commit's secrets on several threads. The
//! engine keeps its state in ordered maps (its few hash maps and sets are only looked up);
//! where mls-rs gathers a commit's by-reference updates from a `HashMap` (in an order that
//! follows per-process random hash keys), the engine's MLS rules put them in leaf order
//! before the commit is built. The test covers group creation, joins with votes, commits with their
//! Welcomes, chat and a commit of several updates; other paths (restarts, steward
//! elections) are not checked bit for bit.

mod admission;
mod arrivals;
mod ballot;
#[cfg(feature = "bench-support")]
pub mod bench_support;
mod bounded;
mod buffer;
mod builder;
#[cfg(feature = "byzantine")]
mod byzantine;
mod causal;
mod change;
mod commit;
mod config;
mod context;
mod desk;
mod engine;
mod epoch;
mod error;
mod event;
mod held;
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
mod second_welcome;
mod session;
mod snapshot;
mod steward;
mod sync;
mod timer;
mod unsaved;
mod violation;
mod vote_journal;
mod voting;
pub mod wire;

pub use builder::EngineBuilder;
pub use config::{EngineConfig, GroupParams, JoinRule, RotationRule, StewardMode, VotePolicy};
pub use demls_consensus::ProposalId;
pub use engine::{Engine, GroupView, ProposalTally};
pub use error::EngineError;
pub use event::{ChangeKind, Event, Output, Removal, Request, Transmit, Violation};
pub use ids::{Epoch, GroupId, InvalidGroupId, Timestamp, Topic, TopicKind};
pub use invitation::InvitationError;
pub use join::{Announcement, JoinStage};
pub use mls::store::{GroupTraffic, MlsStore, StorageWrite};
pub use mls::{Entropy, MlsSigner};
pub use names::MAX_DISPLAY_NAME_BYTES;
pub use rotation::KeyAge;
pub use scoring::PeerScoring;
pub use snapshot::{EngineSnapshot, GroupSnapshot, JournaledVote};
pub use vote_journal::SnapshotWrite;
