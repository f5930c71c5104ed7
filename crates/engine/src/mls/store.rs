//! In-memory MLS storage with a write journal.
//!
//! mls-rs reads and writes state through its storage traits. Here the state
//! lives in memory (the engine does no IO), and every write is also appended
//! to a journal. A shell that persists drains the journal with
//! [`MlsStore::take_writes`] and writes it in the same database transaction
//! as the engine's protocol state, before it releases the engine's outgoing
//! messages: MLS and protocol state then never diverge on disk, and a key
//! generation is on disk before any ciphertext made with it leaves the node.
//!
//! A group's state is its whole ratchet tree (hundreds of KiB in a group of
//! 1000), so application messages are not written as a new state each: a step
//! journals only its [`GroupTraffic`] (how many messages this member encrypted,
//! and the ciphertexts it decrypted), and a restarted engine replays that
//! traffic on the last whole state, which brings every sender's ratchet,
//! this member's own included, to where it was. The whole state is written
//! again once the traffic since it outweighs it.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use mls_rs::storage_provider::KeyPackageData;
use mls_rs::{GroupStateStorage, KeyPackageStorage};
use mls_rs_codec::{MlsDecode, MlsEncode};
use mls_rs_core::group::{EpochRecord, GroupState};
use zeroize::Zeroizing;

/// One change to MLS state, to be persisted by the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageWrite {
    /// A group's current state and its retained past epochs.
    Group {
        /// MLS group id.
        group_id: Vec<u8>,
        /// mls-rs snapshot of the current epoch.
        snapshot: Zeroizing<Vec<u8>>,
        /// Past epochs to insert or replace.
        epochs: Vec<(u64, Zeroizing<Vec<u8>>)>,
        /// Past epochs below this id are no longer retained.
        oldest_retained_epoch: Option<u64>,
    },
    /// Application messages that moved a group's key schedule on since its state was
    /// last written ([`StorageWrite::Group`] replaces the state and discards its traffic).
    GroupTraffic {
        /// MLS group id.
        group_id: Vec<u8>,
        /// What moved it on, to replay in order after the last written state.
        traffic: GroupTraffic,
    },
    /// A group this node no longer belongs to.
    GroupDeleted {
        /// MLS group id.
        group_id: Vec<u8>,
    },
    /// A new key package's private parts (mls-encoded `KeyPackageData`).
    KeyPackage {
        /// Key package reference.
        id: Vec<u8>,
        /// Encoded key package data.
        data: Zeroizing<Vec<u8>>,
    },
    /// A key package that was used or withdrawn.
    KeyPackageDeleted {
        /// Key package reference.
        id: Vec<u8>,
    },
}

/// Application messages of one step that moved a group's key schedule on: replayed on the
/// last written state at restore, they bring it to where it was (mls-rs derives each key
/// from the ratchet, so the same messages give the same state).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GroupTraffic {
    /// Application messages this member encrypted: each used the next generation of its
    /// own ratchet, which a restarted member must not use again.
    #[prost(uint32, tag = "1")]
    pub sent: u32,
    /// Application messages it decrypted, as received, in order.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub received: Vec<Vec<u8>>,
}

impl GroupTraffic {
    /// Whether nothing moved the state on.
    pub fn is_empty(&self) -> bool {
        self.sent == 0 && self.received.is_empty()
    }

    /// Messages to replay.
    pub(crate) fn messages(&self) -> usize {
        self.sent as usize + self.received.len()
    }
}

#[derive(Clone, Default)]
struct GroupRecord {
    snapshot: Zeroizing<Vec<u8>>,
    epochs: BTreeMap<u64, Zeroizing<Vec<u8>>>,
    /// Traffic since `snapshot`, loaded at start-up and taken by the engine to replay.
    traffic: Vec<GroupTraffic>,
}

#[derive(Default)]
struct Inner {
    groups: HashMap<Vec<u8>, GroupRecord>,
    key_packages: HashMap<Vec<u8>, KeyPackageData>,
    journal: Option<Vec<StorageWrite>>,
}

/// The engine's MLS state, shared by the group-state and key-package stores.
#[derive(Clone)]
pub struct MlsStore {
    inner: Arc<Mutex<Inner>>,
    epoch_retention: usize,
}

impl MlsStore {
    /// A store held in memory only, keeping `epoch_retention` past epochs per group (to read
    /// late messages): for simulations and tests, whose state does not outlive the process.
    pub fn in_memory(epoch_retention: usize) -> Self {
        Self::with_journal(epoch_retention, None)
    }

    /// A store that also records every write, for the caller to persist
    /// ([`Self::take_writes`]) before it sends what the engine produced.
    pub fn journaled(epoch_retention: usize) -> Self {
        Self::with_journal(epoch_retention, Some(Vec::new()))
    }

    fn with_journal(epoch_retention: usize, journal: Option<Vec<StorageWrite>>) -> Self {
        let inner = Inner {
            journal,
            ..Inner::default()
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            epoch_retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drains the journal: the writes since the last call, oldest first.
    pub fn take_writes(&self) -> Vec<StorageWrite> {
        self.lock()
            .journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// An independent copy of everything the store holds now, without a journal: the
    /// state someone who copied this node's memory would hold (the demo's thief).
    pub fn copy_all(&self) -> Self {
        let inner = self.lock();
        let copy = Inner {
            groups: inner.groups.clone(),
            key_packages: inner.key_packages.clone(),
            journal: None,
        };
        Self {
            inner: Arc::new(Mutex::new(copy)),
            epoch_retention: self.epoch_retention,
        }
    }

    /// Loads a persisted group (at start-up, before the engine runs).
    pub fn restore_group(&self, group_id: Vec<u8>, snapshot: Vec<u8>, epochs: Vec<(u64, Vec<u8>)>) {
        let record = GroupRecord {
            snapshot: Zeroizing::new(snapshot),
            epochs: epochs
                .into_iter()
                .map(|(id, data)| (id, Zeroizing::new(data)))
                .collect(),
            traffic: Vec::new(),
        };
        self.lock().groups.insert(group_id, record);
    }

    /// Loads a persisted group's traffic since its state was written (at start-up, after
    /// [`Self::restore_group`], oldest first); the engine replays it when it resumes.
    pub fn restore_traffic(&self, group_id: &[u8], traffic: GroupTraffic) {
        if let Some(record) = self.lock().groups.get_mut(group_id) {
            record.traffic.push(traffic);
        }
    }

    /// The traffic loaded for a group, to replay (once).
    pub(crate) fn take_traffic(&self, group_id: &[u8]) -> Vec<GroupTraffic> {
        self.lock()
            .groups
            .get_mut(group_id)
            .map(|record| std::mem::take(&mut record.traffic))
            .unwrap_or_default()
    }

    /// Whether writes are journaled for a shell to persist (traffic is worth keeping only then).
    pub(crate) fn is_journaled(&self) -> bool {
        self.lock().journal.is_some()
    }

    /// Bytes of a group's last written state.
    pub(crate) fn state_len(&self, group_id: &[u8]) -> usize {
        self.lock()
            .groups
            .get(group_id)
            .map_or(0, |record| record.snapshot.len())
    }

    /// Journals a step's traffic of a group.
    pub(crate) fn log_traffic(&self, group_id: &[u8], traffic: GroupTraffic) {
        if let Some(journal) = self.lock().journal.as_mut() {
            journal.push(StorageWrite::GroupTraffic {
                group_id: group_id.to_vec(),
                traffic,
            });
        }
    }

    /// Loads a persisted key package (at start-up).
    pub fn restore_key_package(&self, id: Vec<u8>, data: &[u8]) -> Result<(), mls_rs_codec::Error> {
        let data = KeyPackageData::mls_decode(&mut &*data)?;
        self.lock().key_packages.insert(id, data);
        Ok(())
    }

    /// Forgets a group (after leaving or removal).
    pub(crate) fn delete_group(&self, group_id: &[u8]) {
        let mut inner = self.lock();
        inner.groups.remove(group_id);
        if let Some(journal) = inner.journal.as_mut() {
            journal.push(StorageWrite::GroupDeleted {
                group_id: group_id.to_vec(),
            });
        }
    }

    /// The stores to give to mls-rs.
    pub(crate) fn providers(&self) -> (GroupStore, KeyPackageStore) {
        (GroupStore(self.clone()), KeyPackageStore(self.clone()))
    }
}

/// mls-rs group state storage over an [`MlsStore`].
#[derive(Clone)]
pub struct GroupStore(MlsStore);

impl GroupStateStorage for GroupStore {
    type Error = Infallible;

    fn state(&self, group_id: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self
            .0
            .lock()
            .groups
            .get(group_id)
            .map(|g| g.snapshot.clone()))
    }

    fn epoch(
        &self,
        group_id: &[u8],
        epoch_id: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Self::Error> {
        Ok(self
            .0
            .lock()
            .groups
            .get(group_id)
            .and_then(|g| g.epochs.get(&epoch_id).cloned()))
    }

    fn write(
        &mut self,
        state: GroupState,
        epoch_inserts: Vec<EpochRecord>,
        epoch_updates: Vec<EpochRecord>,
    ) -> Result<(), Self::Error> {
        let retention = self.0.epoch_retention;
        let mut inner = self.0.lock();
        let record = inner.groups.entry(state.id.clone()).or_default();
        record.snapshot = state.data.clone();
        record.traffic.clear();
        let changed: Vec<(u64, Zeroizing<Vec<u8>>)> = epoch_inserts
            .into_iter()
            .chain(epoch_updates)
            .map(|e| (e.id, e.data))
            .collect();
        for (id, data) in &changed {
            record.epochs.insert(*id, data.clone());
        }
        while record.epochs.len() > retention {
            record.epochs.pop_first();
        }
        let oldest_retained_epoch = record.epochs.keys().next().copied();
        if let Some(journal) = inner.journal.as_mut() {
            journal.push(StorageWrite::Group {
                group_id: state.id,
                snapshot: state.data,
                epochs: changed,
                oldest_retained_epoch,
            });
        }
        Ok(())
    }

    /// Always "none": mls-rs reads this only to check that past epochs are
    /// stored in order, and a member that weighs a competing commit, or heals a
    /// fork, continues from an epoch earlier than the last one written. Past
    /// epochs are then rewritten in place ([`GroupStateStorage::write`]
    /// replaces a stored epoch of the same id).
    fn max_epoch_id(&self, _group_id: &[u8]) -> Result<Option<u64>, Self::Error> {
        Ok(None)
    }
}

/// mls-rs key package storage over an [`MlsStore`].
#[derive(Clone)]
pub struct KeyPackageStore(MlsStore);

impl KeyPackageStorage for KeyPackageStore {
    type Error = mls_rs_codec::Error;

    fn delete(&mut self, id: &[u8]) -> Result<(), Self::Error> {
        let mut inner = self.0.lock();
        inner.key_packages.remove(id);
        if let Some(journal) = inner.journal.as_mut() {
            journal.push(StorageWrite::KeyPackageDeleted { id: id.to_vec() });
        }
        Ok(())
    }

    fn insert(&mut self, id: Vec<u8>, pkg: KeyPackageData) -> Result<(), Self::Error> {
        let encoded = Zeroizing::new(pkg.mls_encode_to_vec()?);
        let mut inner = self.0.lock();
        inner.key_packages.insert(id.clone(), pkg);
        if let Some(journal) = inner.journal.as_mut() {
            journal.push(StorageWrite::KeyPackage { id, data: encoded });
        }
        Ok(())
    }

    fn get(&self, id: &[u8]) -> Result<Option<KeyPackageData>, Self::Error> {
        Ok(self.0.lock().key_packages.get(id).cloned())
    }
}
