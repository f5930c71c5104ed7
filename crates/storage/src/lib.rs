//! SQLite storage for a demls node.
//!
//! One [`Store`] per data directory holds everything a node needs to resume after a crash:
//! the MLS state (group snapshots, retained past epochs, key packages) from the engine's
//! storage journal, the engine's protocol snapshot, the MLS signer and other secrets, the
//! message history, the outbox of messages to publish, voting proposals with their tally, and
//! an event log for user interfaces. An [`Archive`] beside it keeps the network messages of
//! the node's groups, which it serves to peers' history queries.
//!
//! **One transaction per engine step** ([`Store::commit_step`]): the journal, the snapshot and
//! the step's history rows and outgoing messages are written together, and the node publishes
//! the outgoing messages only after the commit. A key generation is therefore on disk before a
//! ciphertext made with it leaves, and a crash never leaves MLS and protocol state out of step.
//!
//! Both database files are encrypted whole with SQLCipher, under keys derived from the
//! passphrase with scrypt and a salt file beside them ([`at_rest`]). Inside, secrets (MLS state,
//! key packages, the engine snapshot, named secrets) and message texts are sealed once more
//! with ChaCha20-Poly1305 under a key of their own; each blob's associated data names its row. The schema is versioned (`user_version`) and migrated on
//! open. Every decoder returns [`StorageError::Corrupt`] on bad rows.

#![warn(missing_docs)]

mod archive;
pub mod at_rest;
mod crypto;
mod error;
mod records;
mod schema;
mod store;

pub use archive::{
    ARCHIVE_FILE, Archive, ArchiveLimits, ArchivePage, ArchiveQuery, ArchivedMessage,
    DEFAULT_RETENTION, Selection, Walk,
};
pub use at_rest::SALT_FILE;
pub use error::StorageError;
pub use records::{
    Delivery, EventRecord, NewEvent, NewMessage, OutboxEntry, ProposalRecord, ProposalState, Step,
    StepReceipt, StoredMessage,
};
pub use schema::SCHEMA_VERSION;
pub use store::{DB_FILE, Durability, Store, decode_votes};
