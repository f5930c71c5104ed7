//! End-to-end reliability of chat, after SDS (Scalable Data Sync, `newer/sds.md`).
//!
//! Every chat message carries its sender's Lamport clock and causal history: the ids of the
//! messages the sender delivered last, with their epochs. A receiver delivers a message only
//! after everything in its history (so people read in causal order, not arrival order), and
//! notices what it misses: it asks the group for those messages (a [`RepairRequest`]), and
//! any member that still holds one sends its ciphertext again, once, after a short random
//! wait that lets one answer suffice. What nobody can give back within
//! [`crate::EngineConfig::gap_give_up_ms`] is given up: the messages waiting on it are
//! delivered after the gap, and the shell is told. A member that received messages sends a
//! lightweight sync (its clock and history) now and then, unless someone else's already
//! covered it; senders see their messages in others' histories (acknowledgements) and send
//! again what nobody acknowledged.
//!
//! History entries of epochs before a member joined are not waited for: it can never read
//! them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use demls_identity::Address;
use sha2::{Digest, Sha256};

use crate::bounded::BoundedSet;
use crate::wire::{ChatSync, HistoryEntry};
use crate::{Epoch, Timestamp};

/// Ids in a chat message's causal history (SDS's recommendation).
pub(crate) const HISTORY_LEN: usize = 10;
/// Ids in a sync's history: more, since syncs are rare and are what shows a member back from
/// a split the messages nobody's later message names (those sent at once, say).
const SYNC_HISTORY_LEN: usize = 100;
/// Delivered messages a sync's Bloom filter holds (and a member compares others' filters
/// with): what a member back from a split lacks is sent to it unasked.
const WINDOW: usize = 512;
/// Bits of a sync's Bloom filter: about 0.2 % false positives at [`WINDOW`] entries.
const BLOOM_BITS: usize = 8192;
/// Probes per entry.
const BLOOM_PROBES: usize = 4;
/// Messages sent again, unasked, for one sync at most.
const PUSHES: usize = 64;
/// Delivered ids remembered per group, to tell what is missing.
const KNOWN: usize = 65_536;
/// Messages held for their history at most; beyond, the oldest is delivered at once.
const WAITING: usize = 1024;
/// Missing ids tracked at most.
const MISSING: usize = 4096;
/// Ciphertexts kept to answer repair requests.
const KEPT: usize = 4096;
/// Own messages watched for acknowledgement at most.
const UNACKED: usize = 1024;
/// Ids asked for in one repair request at most.
const REPAIR_IDS: usize = 64;
/// How often an own message nobody acknowledged is sent again at most.
const RESENDS: u8 = 2;
/// The longest random wait before answering a repair request (others may answer first).
const ANSWER_JITTER_MS: u64 = 2_000;
/// The first wait before asking for a missing message (it may still be on its way).
const FIRST_ASK_MS: u64 = 1_000;

/// A chat message ready to be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) sender: Address,
    pub(crate) text: String,
    pub(crate) id: Vec<u8>,
    pub(crate) sent_at: Timestamp,
    pub(crate) epoch: Epoch,
    pub(crate) lamport: u64,
}

struct Waiting {
    delivery: Delivery,
    missing: BTreeSet<Vec<u8>>,
    since: Timestamp,
}

struct Missing {
    since: Timestamp,
    next_ask: Timestamp,
    asked: u32,
}

/// What the timers ask the session to do.
#[derive(Default)]
pub(crate) struct Due {
    /// Ciphertexts to publish again (repair answers, unacknowledged own messages).
    pub(crate) resend: Vec<Vec<u8>>,
    /// Ids to ask the group for.
    pub(crate) ask: Vec<Vec<u8>>,
    /// Whether to send a sync now.
    pub(crate) sync: bool,
    /// Messages delivered because what they waited for was given up.
    pub(crate) delivered: Vec<Delivery>,
    /// Missing messages given up now: the member will not read them.
    pub(crate) given_up: usize,
}

/// What one received message (chat or sync) brought.
#[derive(Default)]
pub(crate) struct Received {
    /// Messages now delivered, in causal order.
    pub(crate) delivered: Vec<Delivery>,
    /// Own messages this member now knows the sender has.
    pub(crate) acknowledged: Vec<Vec<u8>>,
}

/// The chat state of one member in one group.
pub(crate) struct ChatLog {
    me: Address,
    lamport: u64,
    joined_epoch: u64,
    known: BoundedSet<Vec<u8>>,
    /// Ids given up waiting for: later histories naming them do not open the gap again
    /// (kept apart from `known`, so that the message itself is still read if it comes).
    given_up: BoundedSet<Vec<u8>>,
    recent: VecDeque<HistoryEntry>,
    /// This member's last own message: always in its next message's history, so that
    /// each sender's messages are delivered in the order sent.
    last_own: Option<HistoryEntry>,
    waiting: BTreeMap<Vec<u8>, Waiting>,
    missing: BTreeMap<Vec<u8>, Missing>,
    kept: BTreeMap<Vec<u8>, Vec<u8>>,
    kept_order: VecDeque<Vec<u8>>,
    /// The id of each kept ciphertext, by its SHA-256 (to recognise it sent again).
    kept_ids: BTreeMap<[u8; 32], Vec<u8>>,
    answers: BTreeMap<Vec<u8>, Timestamp>,
    unacked: BTreeMap<Vec<u8>, (Timestamp, u8)>,
    sync_due: Option<Timestamp>,
    /// Someone else's history covered this member's since it last sent.
    covered: bool,
    /// The number of missing messages last reported to the shell.
    reported_missing: usize,
}

/// The bits of a Bloom filter that stand for `id`.
fn bloom_bits(id: &[u8]) -> impl Iterator<Item = usize> {
    let digest = Sha256::digest(id);
    (0..BLOOM_PROBES).map(move |i| {
        let probe = u16::from_be_bytes([digest[2 * i], digest[2 * i + 1]]);
        usize::from(probe) % BLOOM_BITS
    })
}

/// A deterministic spread in `0..range` for `parts` (so that members do not all act at
/// once, and a simulation repeats).
fn jitter(range: u64, parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % range.max(1)
}

impl ChatLog {
    /// The log of a member that joined (or created the group) in `joined_epoch`.
    pub(crate) fn new(me: Address, joined_epoch: u64, lamport: u64) -> Self {
        Self {
            me,
            lamport,
            joined_epoch,
            known: BoundedSet::new(KNOWN),
            given_up: BoundedSet::new(KNOWN),
            recent: VecDeque::new(),
            last_own: None,
            waiting: BTreeMap::new(),
            missing: BTreeMap::new(),
            kept: BTreeMap::new(),
            kept_order: VecDeque::new(),
            kept_ids: BTreeMap::new(),
            answers: BTreeMap::new(),
            unacked: BTreeMap::new(),
            sync_due: None,
            covered: false,
            reported_missing: 0,
        }
    }

    /// The epoch this member joined in.
    pub(crate) fn joined_epoch(&self) -> u64 {
        self.joined_epoch
    }

    /// The Lamport clock.
    pub(crate) fn lamport(&self) -> u64 {
        self.lamport
    }

    /// Messages still missing.
    #[cfg(test)]
    fn missing(&self) -> usize {
        self.missing.len()
    }

    /// The number of missing messages, if it changed since this was last asked.
    pub(crate) fn missing_changed(&mut self) -> Option<usize> {
        let missing = self.missing.len();
        (missing != self.reported_missing).then(|| {
            self.reported_missing = missing;
            missing
        })
    }

    /// A message delivered before a restart (the shell's history): known, and in the history.
    pub(crate) fn remember(&mut self, id: Vec<u8>, epoch: Epoch) {
        if self.known.insert(id.clone()) {
            self.push_recent(id, epoch.0);
        }
    }

    /// The clock and history for a message about to be sent.
    pub(crate) fn stamp(&mut self) -> (u64, Vec<HistoryEntry>) {
        self.lamport = self.lamport.saturating_add(1);
        let mut history = self.last(HISTORY_LEN);
        if let Some(own) = &self.last_own
            && !history.iter().any(|e| e.id == own.id)
        {
            history.insert(0, own.clone());
        }
        (self.lamport, history)
    }

    /// This member's delivered state, for a sync.
    pub(crate) fn sync(&self) -> ChatSync {
        let mut bloom = vec![0u8; BLOOM_BITS / 8];
        for entry in &self.recent {
            for bit in bloom_bits(&entry.id) {
                bloom[bit / 8] |= 1 << (bit % 8);
            }
        }
        ChatSync {
            lamport: self.lamport,
            history: self.last(SYNC_HISTORY_LEN),
            bloom,
            joined_epoch: self.joined_epoch,
        }
    }

    /// The `n` messages delivered last, oldest first.
    fn last(&self, n: usize) -> Vec<HistoryEntry> {
        let skip = self.recent.len().saturating_sub(n);
        self.recent.iter().skip(skip).cloned().collect()
    }

    /// This member sent (and delivered to itself) `id` as `bytes`.
    pub(crate) fn sent(
        &mut self,
        id: Vec<u8>,
        epoch: Epoch,
        bytes: Vec<u8>,
        config: &crate::EngineConfig,
        now: Timestamp,
    ) {
        self.known.insert(id.clone());
        self.push_recent(id.clone(), epoch.0);
        self.last_own = Some(HistoryEntry {
            id: id.clone(),
            epoch: epoch.0,
        });
        self.keep(id.clone(), bytes);
        if self.unacked.len() < UNACKED {
            self.unacked.insert(id, (now, 0));
        }
        // Its own message carries its history: the next sync waits the idle interval.
        self.after_sending(config, now);
    }

    /// This member sent a sync.
    pub(crate) fn synced(&mut self, config: &crate::EngineConfig, now: Timestamp) {
        self.after_sending(config, now);
    }

    /// After this member sent its state: the next sync is due after the idle interval (so
    /// that a quiet group still notices, after a partition or a loss, what it misses).
    fn after_sending(&mut self, config: &crate::EngineConfig, now: Timestamp) {
        let spread = jitter(
            config.chat_sync_idle_ms,
            &[self.me.as_bytes(), &now.0.to_be_bytes()],
        );
        self.sync_due = Some(now.plus_ms(config.chat_sync_idle_ms + spread));
        self.covered = false;
    }

    /// A chat message received as `bytes`: what it delivers, and the acknowledgements it holds.
    pub(crate) fn on_chat(
        &mut self,
        delivery: Delivery,
        history: &[HistoryEntry],
        bytes: Vec<u8>,
        config: &crate::EngineConfig,
        now: Timestamp,
    ) -> Received {
        let id = delivery.id.clone();
        if self.known.contains(&id) || self.waiting.contains_key(&id) {
            return Received::default();
        }
        self.keep(id.clone(), bytes);
        self.missing.remove(&id);
        let mut received = self.on_history(delivery.lamport, history, now);
        let missing: BTreeSet<Vec<u8>> = history
            .iter()
            .filter(|e| self.waits_for(e))
            .map(|e| e.id.clone())
            .collect();
        if missing.is_empty() {
            received.delivered = self.deliver(delivery);
        } else {
            if self.waiting.len() >= WAITING
                && let Some(oldest) = self.oldest_waiting()
            {
                received.delivered = self.release(&oldest);
            }
            self.waiting.insert(
                id,
                Waiting {
                    delivery,
                    missing,
                    since: now,
                },
            );
        }
        self.activity(config, now);
        received
    }

    /// A sync received: the acknowledgements it holds; what it shows this member missing is
    /// asked for, and what its filter shows the syncing member lacking is sent to it.
    pub(crate) fn on_sync(&mut self, sync: &ChatSync, now: Timestamp) -> Received {
        if sync.bloom.len() == BLOOM_BITS / 8 {
            let lacking: Vec<Vec<u8>> = self
                .recent
                .iter()
                .filter(|e| e.epoch >= sync.joined_epoch && self.kept.contains_key(&e.id))
                .filter(|e| {
                    !bloom_bits(&e.id).all(|bit| sync.bloom[bit / 8] & (1 << (bit % 8)) != 0)
                })
                .map(|e| e.id.clone())
                .take(PUSHES)
                .collect();
            self.on_repair(&lacking, now);
        }
        self.on_history(sync.lamport, &sync.history, now)
    }

    /// A member asks for `ids`: those kept are sent again after a short random wait.
    pub(crate) fn on_repair(&mut self, ids: &[Vec<u8>], now: Timestamp) {
        for id in ids.iter().take(REPAIR_IDS) {
            if self.kept.contains_key(id) && !self.answers.contains_key(id) {
                let wait = jitter(ANSWER_JITTER_MS, &[self.me.as_bytes(), id]);
                self.answers.insert(id.clone(), now.plus_ms(wait));
            }
        }
    }

    /// A kept ciphertext was published again by someone (its copy was dropped as a
    /// duplicate): this member need not answer the repair request for it.
    pub(crate) fn heard_again(&mut self, bytes: &[u8]) {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(id) = self.kept_ids.get(&hash) {
            self.answers.remove(id);
        }
    }

    /// Whatever is due at `now`.
    pub(crate) fn on_timeout(
        &mut self,
        config: &crate::EngineConfig,
        alone: bool,
        now: Timestamp,
    ) -> Due {
        let mut due = Due::default();
        let answers: Vec<Vec<u8>> = self
            .answers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in answers {
            self.answers.remove(&id);
            due.resend.extend(self.kept.get(&id).cloned());
        }
        if !alone {
            for (id, (sent_at, times)) in &mut self.unacked {
                let next = sent_at.plus_ms(config.chat_resend_ms * (u64::from(*times) + 1));
                if *times < RESENDS && next <= now {
                    *times += 1;
                    due.resend.extend(self.kept.get(id).cloned());
                }
            }
        }
        let given_up: Vec<Vec<u8>> = self
            .missing
            .iter()
            .filter(|(_, m)| m.since.plus_ms(config.gap_give_up_ms) <= now)
            .map(|(id, _)| id.clone())
            .collect();
        due.given_up = given_up.len();
        for id in given_up {
            self.missing.remove(&id);
            self.given_up.insert(id.clone());
            due.delivered.extend(self.forget(&id));
        }
        // Whatever still waits that long for gaps that were not tracked (too many) goes too.
        let stale: Vec<Vec<u8>> = self
            .untracked()
            .filter(|(_, w)| w.since.plus_ms(config.gap_give_up_ms) <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            due.delivered.extend(self.release(&id));
        }
        for (id, missing) in &mut self.missing {
            if missing.next_ask <= now && due.ask.len() < REPAIR_IDS {
                due.ask.push(id.clone());
                missing.asked = missing.asked.saturating_add(1);
                let backoff = FIRST_ASK_MS.saturating_mul(1 << missing.asked.min(6));
                missing.next_ask = now.plus_ms(backoff);
            }
        }
        if self.sync_due.is_some_and(|at| at <= now) {
            due.sync = !self.covered;
            self.after_sending(config, now);
        }
        due
    }

    /// When [`ChatLog::on_timeout`] next has work.
    pub(crate) fn poll_timeout(
        &self,
        config: &crate::EngineConfig,
        alone: bool,
    ) -> Option<Timestamp> {
        let answers = self.answers.values().copied().min();
        let asks = self.missing.values().map(|m| m.next_ask).min();
        let give_up = self
            .missing
            .values()
            .map(|m| m.since)
            .chain(self.untracked().map(|(_, w)| w.since))
            .min()
            .map(|since| since.plus_ms(config.gap_give_up_ms));
        let resends = (!alone)
            .then(|| {
                self.unacked
                    .values()
                    .filter(|(_, times)| *times < RESENDS)
                    .map(|(at, times)| at.plus_ms(config.chat_resend_ms * (u64::from(*times) + 1)))
                    .min()
            })
            .flatten();
        [answers, asks, give_up, resends, self.sync_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// The waiting messages none of whose gaps are tracked: neither missing ids (given up in
    /// their own time) nor messages that wait themselves (delivered, and so freeing these, once
    /// their own gaps close). Only these are delivered for having waited too long: one waiting
    /// behind a later-tracked gap would otherwise be shown before the messages it names (seen:
    /// a message shown 2 s before the two it named, whose own gap opened 2 s after it came).
    fn untracked(&self) -> impl Iterator<Item = (&Vec<u8>, &Waiting)> {
        self.waiting.iter().filter(|(_, w)| {
            w.missing
                .iter()
                .all(|id| !self.missing.contains_key(id) && !self.waiting.contains_key(id))
        })
    }

    /// Whether a history entry is one this member must have delivered and has not.
    fn waits_for(&self, entry: &HistoryEntry) -> bool {
        entry.epoch >= self.joined_epoch
            && !self.known.contains(&entry.id)
            && !self.given_up.contains(&entry.id)
    }

    /// Takes in a clock and a history: acknowledgements, coverage, and missing messages.
    fn on_history(&mut self, lamport: u64, history: &[HistoryEntry], now: Timestamp) -> Received {
        self.lamport = self.lamport.max(lamport);
        let acknowledged: Vec<Vec<u8>> = history
            .iter()
            .filter_map(|e| self.unacked.remove(&e.id).map(|_| e.id.clone()))
            .collect();
        let ids: BTreeSet<&Vec<u8>> = history.iter().map(|e| &e.id).collect();
        if self.last(HISTORY_LEN).iter().all(|e| ids.contains(&e.id)) {
            self.covered = true;
        }
        for entry in history {
            if self.waits_for(entry)
                && !self.waiting.contains_key(&entry.id)
                && !self.missing.contains_key(&entry.id)
                && self.missing.len() < MISSING
            {
                let wait = FIRST_ASK_MS + jitter(FIRST_ASK_MS, &[self.me.as_bytes(), &entry.id]);
                self.missing.insert(
                    entry.id.clone(),
                    Missing {
                        since: now,
                        next_ask: now.plus_ms(wait),
                        asked: 0,
                    },
                );
            }
        }
        Received {
            delivered: Vec::new(),
            acknowledged,
        }
    }

    /// Something happened in the group: a sync is due in a while (sooner than idle).
    fn activity(&mut self, config: &crate::EngineConfig, now: Timestamp) {
        let spread = jitter(
            config.chat_sync_ms,
            &[self.me.as_bytes(), &now.0.to_be_bytes()],
        );
        let soon = now.plus_ms(config.chat_sync_ms + spread);
        self.sync_due = Some(self.sync_due.map_or(soon, |due| due.min(soon)));
    }

    /// Delivers `delivery` and every waiting message that only waited for it, in causal order.
    fn deliver(&mut self, delivery: Delivery) -> Vec<Delivery> {
        let mut out = Vec::new();
        let mut ready = vec![delivery];
        while let Some(next) = ready.pop() {
            self.known.insert(next.id.clone());
            self.push_recent(next.id.clone(), next.epoch.0);
            // This member's history now holds a message nobody has seen it hold: its next
            // sync is not covered by others' (the sender waits for it to hear "delivered").
            self.covered = false;
            let freed: Vec<Vec<u8>> = self
                .waiting
                .iter_mut()
                .filter_map(|(id, w)| {
                    (w.missing.remove(&next.id) && w.missing.is_empty()).then(|| id.clone())
                })
                .collect();
            out.push(next);
            for id in freed.into_iter().rev() {
                if let Some(waiting) = self.waiting.remove(&id) {
                    ready.push(waiting.delivery);
                }
            }
        }
        out
    }

    /// Gives up waiting for `id`: what waited only for it is delivered.
    fn forget(&mut self, id: &[u8]) -> Vec<Delivery> {
        let freed: Vec<Vec<u8>> = self
            .waiting
            .iter_mut()
            .filter_map(|(wid, w)| {
                (w.missing.remove(id) && w.missing.is_empty()).then(|| wid.clone())
            })
            .collect();
        let mut delivered = Vec::new();
        for wid in freed {
            if let Some(waiting) = self.waiting.remove(&wid) {
                delivered.extend(self.deliver(waiting.delivery));
            }
        }
        delivered
    }

    /// Delivers a waiting message at once, whatever it waits for (the queue is full).
    fn release(&mut self, id: &[u8]) -> Vec<Delivery> {
        match self.waiting.remove(id) {
            Some(waiting) => self.deliver(waiting.delivery),
            None => Vec::new(),
        }
    }

    fn oldest_waiting(&self) -> Option<Vec<u8>> {
        self.waiting
            .iter()
            .min_by_key(|(_, w)| w.since)
            .map(|(id, _)| id.clone())
    }

    fn push_recent(&mut self, id: Vec<u8>, epoch: u64) {
        self.recent.push_back(HistoryEntry { id, epoch });
        while self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
    }

    fn keep(&mut self, id: Vec<u8>, bytes: Vec<u8>) {
        self.kept_ids
            .insert(Sha256::digest(&bytes).into(), id.clone());
        if self.kept.insert(id.clone(), bytes).is_none() {
            self.kept_order.push_back(id);
        }
        while self.kept_order.len() > KEPT {
            if let Some(old) = self.kept_order.pop_front()
                && let Some(bytes) = self.kept.remove(&old)
            {
                self.kept_ids
                    .remove(&<[u8; 32]>::from(Sha256::digest(&bytes)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: u8, lamport: u64) -> Delivery {
        Delivery {
            sender: Address::default(),
            text: format!("m{id}"),
            id: vec![id],
            sent_at: Timestamp(0),
            epoch: Epoch(1),
            lamport,
        }
    }

    fn entry(id: u8) -> HistoryEntry {
        HistoryEntry {
            id: vec![id],
            epoch: 1,
        }
    }

    #[test]
    fn messages_wait_for_their_history_and_are_delivered_in_causal_order() {
        let config = crate::EngineConfig::default();
        let mut log = ChatLog::new(Address::default(), 0, 0);
        // 3 depends on 2, which depends on 1; they arrive 3, 2, 1.
        let now = Timestamp(0);
        let r = log.on_chat(delivery(3, 3), &[entry(2)], vec![3], &config, now);
        assert!(r.delivered.is_empty());
        let r = log.on_chat(delivery(2, 2), &[entry(1)], vec![2], &config, now);
        assert!(r.delivered.is_empty());
        assert_eq!(log.missing(), 1);
        let r = log.on_chat(delivery(1, 1), &[], vec![1], &config, now);
        let order: Vec<u8> = r.delivered.iter().map(|d| d.id[0]).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(log.missing(), 0);
    }

    #[test]
    fn what_nobody_gives_back_is_given_up_after_a_while() {
        let config = crate::EngineConfig::default();
        let mut log = ChatLog::new(Address::default(), 0, 0);
        log.on_chat(delivery(2, 2), &[entry(9)], vec![2], &config, Timestamp(0));
        let due = log.on_timeout(&config, false, Timestamp(FIRST_ASK_MS * 2));
        assert_eq!(due.ask, vec![vec![9]]);
        let due = log.on_timeout(&config, false, Timestamp(config.gap_give_up_ms));
        assert_eq!(due.delivered.len(), 1);
        // The session tells the shell of the hole (`Event::HistoryGap`).
        assert_eq!(due.given_up, 1);
        assert_eq!(log.missing(), 0);
    }

    #[test]
    fn a_message_waiting_behind_a_later_gap_is_not_shown_before_what_it_names() {
        let config = crate::EngineConfig::default();
        let give_up = config.gap_give_up_ms;
        let mut log = ChatLog::new(Address::default(), 0, 0);
        // 3 names 2; 2 comes 10 s later naming 9, which nobody gives back.
        log.on_chat(delivery(3, 3), &[entry(2)], vec![3], &config, Timestamp(0));
        log.on_chat(
            delivery(2, 2),
            &[entry(9)],
            vec![2],
            &config,
            Timestamp(10_000),
        );
        // 3 has waited long enough, but what it waits for (2) waits for a tracked gap; and
        // the timer does not fire again at once for it.
        let due = log.on_timeout(&config, true, Timestamp(give_up));
        assert!(due.delivered.is_empty());
        assert!(log.poll_timeout(&config, true) > Some(Timestamp(give_up)));
        let due = log.on_timeout(&config, true, Timestamp(10_000 + give_up));
        let order: Vec<u8> = due.delivered.iter().map(|d| d.id[0]).collect();
        assert_eq!(order, vec![2, 3]);
    }

    #[test]
    fn history_before_joining_is_not_waited_for_and_acks_are_seen() {
        let config = crate::EngineConfig::default();
        let mut log = ChatLog::new(Address::default(), 5, 0);
        let old = HistoryEntry {
            id: vec![7],
            epoch: 4,
        };
        let r = log.on_chat(delivery(1, 1), &[old], vec![1], &config, Timestamp(0));
        assert_eq!(r.delivered.len(), 1);
        log.sent(vec![42], Epoch(5), vec![42], &config, Timestamp(0));
        let sync = ChatSync {
            lamport: 9,
            history: vec![HistoryEntry {
                id: vec![42],
                epoch: 5,
            }],
            ..ChatSync::default()
        };
        assert_eq!(
            log.on_sync(&sync, Timestamp(1)).acknowledged,
            vec![vec![42]]
        );
        assert_eq!(log.lamport(), 9);
    }

    #[test]
    fn repair_requests_are_answered_from_what_is_kept_and_duplicates_cancel_the_answer() {
        let config = crate::EngineConfig::default();
        let mut log = ChatLog::new(Address::default(), 0, 0);
        log.on_chat(delivery(1, 1), &[], vec![0xaa], &config, Timestamp(0));
        log.on_repair(&[vec![1], vec![2]], Timestamp(0));
        let due = log.on_timeout(&config, true, Timestamp(ANSWER_JITTER_MS));
        assert_eq!(due.resend, vec![vec![0xaa]]);
        log.on_repair(&[vec![1]], Timestamp(0));
        // Someone else answered first: the same ciphertext arrives again.
        log.heard_again(&[0xaa]);
        assert!(
            log.on_timeout(&config, true, Timestamp(ANSWER_JITTER_MS))
                .resend
                .is_empty()
        );
    }
}
