//! Message segmentation and reconstruction (the Waku RFC "Message Segmentation and
//! Reconstruction", slug 243): payloads too large for one WakuMessage are split into data
//! segments plus Reed-Solomon parity segments, each sent as its own WakuMessage, and put back
//! together on receipt even when some segments are lost.
//!
//! A message that fits the wire limit is sent as it is, unwrapped, so that peers without
//! segmentation (js-waku, nwaku) still read it; the RFC's "every payload is a segment message"
//! is kept only for the messages that need it. A segment is a WakuMessage on the original
//! content topic whose `meta` is [`SEGMENT_META`] and whose payload is a [`SegmentMessage`].
//!
//! The RFC pads the last data segment for the erasure code but leaves the payload's length out
//! of the wire format; here the last data segment is sent unpadded (so concatenating the data
//! segments gives the payload, as the RFC says). When that segment itself is lost and rebuilt
//! from parity, its length is found by trying the lengths its zero padding allows against the
//! message hash, at most [`MAX_PADDING_GUESSES`] of them.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use prost::Message as _;
use sha3::{Digest, Keccak256};

use crate::labels::labelled_enum;
use crate::message::WakuMessage;

/// The `meta` of a WakuMessage that carries a segment.
pub const SEGMENT_META: &[u8] = b"waku-segment/1";

/// Data and parity segments of one message together stay below this (the RFC's
/// `maxTotalSegments`, as in its reference implementation).
pub const MAX_TOTAL_SEGMENTS: usize = 256;

/// The largest WakuMessage sent by default: The Waku Network's 150 KB (64/WAKU2-NETWORK).
pub const DEFAULT_WIRE_LIMIT: usize = 150_000;

/// Parity segments per data segment by default (the RFC's 12.5%).
pub const DEFAULT_PARITY_RATE: f64 = 0.125;

/// The smallest wire limit accepted; below it the segment headers would dominate.
pub const MIN_WIRE_LIMIT: usize = 4096;

/// How many lengths of a rebuilt last data segment are tried against the message hash; a
/// payload ending in more zero bytes than this is rebuilt only if its last data segment arrives.
pub const MAX_PADDING_GUESSES: usize = 1024;

/// How many settled messages (rebuilt, or refused as a whole) are remembered so that their
/// late segments (parity arriving after the message was rebuilt) do not start a new
/// reassembly.
const SETTLED_REMEMBERED: usize = 4096;

/// A segment: the wire format of the RFC (`SegmentMessageProto`, see
/// `proto/segment_message.proto` in this crate).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SegmentMessage {
    /// Keccak256 of the whole payload, 32 bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub entire_message_hash: Vec<u8>,
    /// The position of a data segment, from 0.
    #[prost(uint32, tag = "2")]
    pub data_segment_index: u32,
    /// How many data segments the payload was split into (at least 1).
    #[prost(uint32, tag = "3")]
    pub data_segment_count: u32,
    /// The piece of the payload, or the parity shard.
    #[prost(bytes = "vec", tag = "4")]
    pub payload: Vec<u8>,
    /// The position of a parity segment, from 0.
    #[prost(uint32, tag = "5")]
    pub parity_segment_index: u32,
    /// How many parity segments were made (0 without Reed-Solomon).
    #[prost(uint32, tag = "6")]
    pub parity_segment_count: u32,
    /// Whether this is a parity segment.
    #[prost(bool, tag = "7")]
    pub is_parity: bool,
}

impl SegmentMessage {
    /// Decodes a segment and checks it as the RFC's "Validation" asks: a 32-byte hash, at least
    /// one data segment, fewer than [`MAX_TOTAL_SEGMENTS`] in all, an index below its count,
    /// and a non-empty payload. Never panics.
    pub fn decode_valid(bytes: &[u8]) -> Result<SegmentMessage, SegmentDrop> {
        let segment = SegmentMessage::decode(bytes).map_err(|_| SegmentDrop::Malformed)?;
        let total = u64::from(segment.data_segment_count) + u64::from(segment.parity_segment_count);
        let index_ok = if segment.is_parity {
            segment.parity_segment_index < segment.parity_segment_count
        } else {
            segment.data_segment_index < segment.data_segment_count
        };
        let valid = segment.entire_message_hash.len() == 32
            && segment.data_segment_count >= 1
            && total < MAX_TOTAL_SEGMENTS as u64
            && index_ok
            && !segment.payload.is_empty();
        valid.then_some(segment).ok_or(SegmentDrop::Malformed)
    }

    fn data_count(&self) -> usize {
        self.data_segment_count as usize
    }

    fn parity_count(&self) -> usize {
        self.parity_segment_count as usize
    }

    /// Whether this segment is as long as every segment of its message but the last data one.
    fn is_full_size(&self) -> bool {
        self.is_parity || self.data_segment_index + 1 < self.data_segment_count
    }
}

/// Whether `message` carries a segment (by its `meta`).
pub fn is_segment(message: &WakuMessage) -> bool {
    message.meta.as_deref() == Some(SEGMENT_META)
}

/// How payloads are split and how much reassembly may hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationConfig {
    /// The largest encoded WakuMessage this node sends: a message larger than this is sent in
    /// segments, each within it. At least [`MIN_WIRE_LIMIT`], and at most
    /// [`crate::TransportConfig::max_message_size`].
    pub wire_limit: usize,
    /// Parity segments per data segment, from 0 (no parity) to 1.
    pub parity_rate: f64,
    /// The largest payload rebuilt from segments; larger messages are dropped
    /// ([`SegmentDrop::Oversize`]).
    pub max_payload: usize,
    /// Incomplete messages held at once; a new one beyond this evicts the oldest.
    pub max_pending_messages: usize,
    /// Segment bytes held for incomplete messages at once; beyond this the oldest are evicted.
    pub max_pending_bytes: usize,
    /// An incomplete message is dropped this long after its first segment arrived.
    pub timeout: Duration,
}

impl Default for SegmentationConfig {
    /// A 150,000-byte wire limit, 12.5% parity, payloads up to 32 MiB, 64 incomplete
    /// messages holding at most 128 MiB, dropped after 2 minutes.
    fn default() -> SegmentationConfig {
        SegmentationConfig {
            wire_limit: DEFAULT_WIRE_LIMIT,
            parity_rate: DEFAULT_PARITY_RATE,
            max_payload: 32 << 20,
            max_pending_messages: 64,
            max_pending_bytes: 128 << 20,
            timeout: Duration::from_secs(120),
        }
    }
}

impl SegmentationConfig {
    /// Checks the bounds documented on the fields.
    pub fn check(&self) -> Result<(), String> {
        if self.wire_limit < MIN_WIRE_LIMIT {
            return Err(format!(
                "segmentation wire_limit {} is below {MIN_WIRE_LIMIT}",
                self.wire_limit
            ));
        }
        if !(0.0..=1.0).contains(&self.parity_rate) {
            return Err(format!(
                "segmentation parity_rate {} is not within 0..=1",
                self.parity_rate
            ));
        }
        if self.max_pending_messages == 0 || self.max_pending_bytes == 0 || self.timeout.is_zero() {
            return Err("segmentation bounds must not be zero".into());
        }
        Ok(())
    }

    /// Parity segments made for `data_count` data segments.
    fn parity_count(&self, data_count: usize) -> usize {
        (data_count as f64 * self.parity_rate).ceil() as usize
    }

    /// The most data segments a message may have: with its parity, fewer than
    /// [`MAX_TOTAL_SEGMENTS`] in all.
    fn max_data_segments(&self) -> usize {
        (1..MAX_TOTAL_SEGMENTS)
            .rev()
            .find(|&n| n + self.parity_count(n) < MAX_TOTAL_SEGMENTS)
            .unwrap_or(1)
    }
}

/// Why a payload cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Even in segments the payload is too large (too many segments).
    #[error("payload of {size} bytes exceeds the {max}-byte limit of segmented messages")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The largest payload that can be segmented with this content topic.
        max: usize,
    },
    /// The message needs segments but has a `meta`, which segments use for their marker.
    #[error("a message sent in segments cannot carry meta")]
    MetaOnSegmented,
    /// The content topic is so long that no room is left for a segment's payload.
    #[error("content topic too long for segments")]
    TopicTooLong,
    /// The erasure coder failed.
    #[error("Reed-Solomon encoding failed: {0}")]
    Coding(String),
}

/// Splits `message` into the WakuMessages to send: `message` itself when its encoding fits
/// `config.wire_limit`, else its segments (data segments in order, then parity), each within
/// the limit, all with `message`'s content topic, timestamp, version and ephemeral flag.
pub fn split(
    config: &SegmentationConfig,
    message: &WakuMessage,
) -> Result<Vec<WakuMessage>, SegmentError> {
    if message.encoded_len() <= config.wire_limit {
        return Ok(vec![message.clone()]);
    }
    if message.meta.is_some() {
        return Err(SegmentError::MetaOnSegmented);
    }
    let envelope = |segment: &SegmentMessage| WakuMessage {
        payload: segment.encode_to_vec(),
        meta: Some(SEGMENT_META.to_vec()),
        ..message.clone_without_payload()
    };
    let segment_size = segment_size(config.wire_limit, envelope);
    if segment_size == 0 {
        return Err(SegmentError::TopicTooLong);
    }
    let payload = &message.payload;
    let data_count = payload.len().div_ceil(segment_size);
    let max_data = config.max_data_segments();
    if data_count > max_data {
        return Err(SegmentError::TooLarge {
            size: payload.len(),
            max: max_data * segment_size,
        });
    }
    let parity_count = config.parity_count(data_count);
    let hash = Keccak256::digest(payload).to_vec();
    let chunks: Vec<&[u8]> = payload.chunks(segment_size).collect();
    let parity = if parity_count == 0 {
        Vec::new()
    } else {
        let padded = chunks.iter().map(|chunk| padded(chunk, segment_size));
        reed_solomon_simd::encode(data_count, parity_count, padded)
            .map_err(|e| SegmentError::Coding(e.to_string()))?
    };
    let header = SegmentMessage {
        entire_message_hash: hash,
        data_segment_count: data_count as u32,
        parity_segment_count: parity_count as u32,
        ..SegmentMessage::default()
    };
    let data = chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| SegmentMessage {
            data_segment_index: index as u32,
            payload: chunk.to_vec(),
            ..header.clone()
        });
    let parity = parity
        .into_iter()
        .enumerate()
        .map(|(index, shard)| SegmentMessage {
            parity_segment_index: index as u32,
            payload: shard,
            is_parity: true,
            ..header.clone()
        });
    Ok(data.chain(parity).map(|s| envelope(&s)).collect())
}

/// The largest even segment payload whose envelope stays within `wire_limit` (0 if none).
fn segment_size(wire_limit: usize, envelope: impl Fn(&SegmentMessage) -> WakuMessage) -> usize {
    // The widest header: every varint at its longest.
    let widest = SegmentMessage {
        entire_message_hash: vec![0; 32],
        data_segment_index: u32::MAX,
        data_segment_count: u32::MAX,
        payload: Vec::new(),
        parity_segment_index: u32::MAX,
        parity_segment_count: u32::MAX,
        is_parity: true,
    };
    // The length prefixes of the segment's payload and of the WakuMessage's grow from one
    // byte (empty) to at most the length of the wire limit's varint.
    let prefix_growth = prost::encoding::encoded_len_varint(wire_limit as u64) - 1;
    let overhead = envelope(&widest).encoded_len() + 2 * prefix_growth;
    // Reed-Solomon shards have an even length.
    wire_limit.saturating_sub(overhead) & !1
}

/// `chunk` zero-padded to `size` bytes.
fn padded(chunk: &[u8], size: usize) -> Vec<u8> {
    let mut shard = chunk.to_vec();
    shard.resize(size, 0);
    shard
}

impl WakuMessage {
    /// This message's attributes with an empty payload and no meta.
    fn clone_without_payload(&self) -> WakuMessage {
        WakuMessage {
            payload: Vec::new(),
            content_topic: self.content_topic.clone(),
            version: self.version,
            timestamp: self.timestamp,
            meta: None,
            rate_limit_proof: None,
            ephemeral: self.ephemeral,
        }
    }
}

labelled_enum! {
    /// Why a segment, or a message being reassembled, was dropped; counted per reason in
    /// [`crate::TransportMetrics::segments_dropped`]. `Malformed`, `Inconsistent` and
    /// `Oversize` count segments, the others count messages.
    pub enum SegmentDrop {
        /// Not a segment message, or one that fails the RFC's validation.
        Malformed => "malformed",
        /// Its counts or its size disagree with earlier segments of its message, or it repeats
        /// an index with another payload.
        Inconsistent => "inconsistent",
        /// Its message would be larger than [`SegmentationConfig::max_payload`], or would alone
        /// hold more than [`SegmentationConfig::max_pending_bytes`].
        Oversize => "oversize",
        /// An incomplete message dropped to make room for newer ones.
        Evicted => "evicted",
        /// An incomplete message dropped after [`SegmentationConfig::timeout`].
        Expired => "expired",
        /// A message rebuilt from its segments whose hash is not the one they state (forged or
        /// mixed segments), or whose erasure decoding failed.
        Corrupt => "corrupt",
    }
}

/// What [`Reassembler::insert`] made of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembly {
    /// Kept; its message is not complete yet.
    Pending,
    /// Its message is complete: the original message, with the payload rebuilt, no meta, and
    /// the attributes of the first segment that arrived.
    Complete(WakuMessage),
    /// Its message was already rebuilt; the segment is ignored.
    AlreadyComplete,
    /// Dropped, and counted.
    Dropped(SegmentDrop),
}

/// Identifies a message being reassembled.
type MessageKey = (String, [u8; 32]);

/// How a message that is no longer being reassembled ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Complete,
    /// Refused as a whole: its later segments are dropped for the same reason.
    Refused(SegmentDrop),
}

/// A message being reassembled.
struct Pending {
    first_seen: Instant,
    /// The message's attributes, from its first segment.
    envelope: WakuMessage,
    data: Vec<Option<Vec<u8>>>,
    parity: Vec<Option<Vec<u8>>>,
    /// The length of every segment but the last data one, once a segment showed it.
    segment_size: Option<usize>,
    received: usize,
    bytes: usize,
}

impl Pending {
    fn new(segment: &SegmentMessage, envelope: WakuMessage, now: Instant) -> Pending {
        Pending {
            first_seen: now,
            envelope,
            data: vec![None; segment.data_count()],
            parity: vec![None; segment.parity_count()],
            segment_size: None,
            received: 0,
            bytes: 0,
        }
    }

    /// Checks `segment` against what this message already holds; on success it may be stored.
    fn admit(&mut self, segment: &SegmentMessage, max_payload: usize) -> Result<(), SegmentDrop> {
        if segment.data_count() != self.data.len() || segment.parity_count() != self.parity.len() {
            return Err(SegmentDrop::Inconsistent);
        }
        let len = segment.payload.len();
        let last = self.data.last().and_then(Option::as_ref).map(Vec::len);
        match self.segment_size {
            Some(size) if segment.is_full_size() && len != size => {
                return Err(SegmentDrop::Inconsistent);
            }
            Some(size) if !segment.is_full_size() && len > size => {
                return Err(SegmentDrop::Inconsistent);
            }
            None if segment.is_full_size() => {
                let shard_ok = self.parity.is_empty() || len.is_multiple_of(2);
                if !shard_ok || last.is_some_and(|l| l > len) {
                    return Err(SegmentDrop::Inconsistent);
                }
                if (self.data.len() - 1).saturating_mul(len) >= max_payload {
                    return Err(SegmentDrop::Oversize);
                }
                self.segment_size = Some(len);
            }
            _ => {}
        }
        Ok(())
    }

    /// The slot of `segment`.
    fn slot(&mut self, segment: &SegmentMessage) -> &mut Option<Vec<u8>> {
        if segment.is_parity {
            &mut self.parity[segment.parity_segment_index as usize]
        } else {
            &mut self.data[segment.data_segment_index as usize]
        }
    }

    /// Rebuilds the payload and checks it against `hash`.
    fn rebuild(&self, hash: &[u8; 32]) -> Result<Vec<u8>, SegmentDrop> {
        if self.data.iter().all(Option::is_some) {
            let payload = self.data.iter().flatten().flatten().copied().collect();
            return check_hash(payload, hash);
        }
        let size = self.segment_size.ok_or(SegmentDrop::Corrupt)?;
        let count = self.data.len();
        let originals = self.data.iter().enumerate().filter_map(|(i, d)| {
            d.as_ref().map(|d| {
                (
                    i,
                    if i + 1 == count {
                        padded(d, size)
                    } else {
                        d.clone()
                    },
                )
            })
        });
        let recovery =
            (self.parity.iter().enumerate()).filter_map(|(i, p)| p.as_ref().map(|p| (i, p)));
        let restored = reed_solomon_simd::decode(count, self.parity.len(), originals, recovery)
            .map_err(|_| SegmentDrop::Corrupt)?;
        let mut payload = Vec::with_capacity(count * size);
        for (i, segment) in self.data.iter().enumerate() {
            let piece = segment
                .as_ref()
                .or_else(|| restored.get(&i))
                .ok_or(SegmentDrop::Corrupt)?;
            payload.extend_from_slice(piece);
        }
        match &self.data[count - 1] {
            Some(_) => check_hash(payload, hash),
            None => trim_padding(payload, (count - 1) * size, hash),
        }
    }
}

fn check_hash(payload: Vec<u8>, hash: &[u8; 32]) -> Result<Vec<u8>, SegmentDrop> {
    if Keccak256::digest(&payload).as_slice() == hash {
        Ok(payload)
    } else {
        Err(SegmentDrop::Corrupt)
    }
}

/// `payload` ends in a rebuilt last data segment, zero-padded, that starts at `last_start`:
/// finds the length whose hash is `hash`, trying the shortest first.
fn trim_padding(
    mut payload: Vec<u8>,
    last_start: usize,
    hash: &[u8; 32],
) -> Result<Vec<u8>, SegmentDrop> {
    let shortest = payload
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1)
        .max(last_start + 1);
    let mut hasher = Keccak256::new();
    hasher.update(&payload[..shortest.min(payload.len())]);
    for len in (shortest..=payload.len()).take(MAX_PADDING_GUESSES) {
        if len > shortest {
            hasher.update([0]);
        }
        if hasher.clone().finalize().as_slice() == hash {
            payload.truncate(len);
            return Ok(payload);
        }
    }
    Err(SegmentDrop::Corrupt)
}

/// Puts segmented messages back together, within the bounds of a [`SegmentationConfig`].
pub struct Reassembler {
    config: SegmentationConfig,
    pending: HashMap<MessageKey, Pending>,
    pending_bytes: usize,
    settled: HashMap<MessageKey, Settled>,
    settled_order: VecDeque<MessageKey>,
    dropped: [u64; SegmentDrop::ALL.len()],
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(config: SegmentationConfig) -> Reassembler {
        Reassembler {
            config,
            pending: HashMap::new(),
            pending_bytes: 0,
            settled: HashMap::new(),
            settled_order: VecDeque::new(),
            dropped: [0; SegmentDrop::ALL.len()],
        }
    }

    /// Takes in a WakuMessage carrying a segment ([`is_segment`]) that arrived at `now`; first
    /// drops the incomplete messages that timed out by then.
    pub fn insert(&mut self, message: WakuMessage, now: Instant) -> Reassembly {
        self.expire(now);
        match self.try_insert(message, now) {
            Ok(reassembly) => reassembly,
            Err(reason) => {
                self.count(reason);
                Reassembly::Dropped(reason)
            }
        }
    }

    fn try_insert(
        &mut self,
        mut message: WakuMessage,
        now: Instant,
    ) -> Result<Reassembly, SegmentDrop> {
        let segment = SegmentMessage::decode_valid(&message.payload)?;
        let mut hash = [0; 32];
        hash.copy_from_slice(&segment.entire_message_hash);
        let key = (std::mem::take(&mut message.content_topic), hash);
        match self.settled.get(&key) {
            Some(Settled::Complete) => return Ok(Reassembly::AlreadyComplete),
            Some(Settled::Refused(reason)) => return Err(*reason),
            None => {}
        }
        let len = segment.payload.len();
        if len > self.config.max_payload || len > self.config.max_pending_bytes {
            return Err(SegmentDrop::Oversize);
        }
        if !self.pending.contains_key(&key) {
            while self.pending.len() >= self.config.max_pending_messages {
                if !self.evict_oldest(&key) {
                    break;
                }
            }
            message.content_topic = key.0.clone();
            let envelope = message.clone_without_payload();
            self.pending
                .insert(key.clone(), Pending::new(&segment, envelope, now));
        }
        let pending = self.pending.get_mut(&key).ok_or(SegmentDrop::Corrupt)?;
        if let Err(reason) = pending.admit(&segment, self.config.max_payload) {
            if reason == SegmentDrop::Oversize {
                self.remove(&key);
                self.settle(key, Settled::Refused(reason));
            } else if pending.received == 0 {
                self.remove(&key);
            }
            return Err(reason);
        }
        let is_new = {
            let slot = pending.slot(&segment);
            match slot {
                Some(held) if *held == segment.payload => false,
                Some(_) => return Err(SegmentDrop::Inconsistent),
                None => true,
            }
        };
        if !is_new {
            return Ok(Reassembly::Pending);
        }
        while self.pending_bytes + len > self.config.max_pending_bytes {
            if !self.evict_oldest(&key) {
                self.remove(&key);
                return Err(SegmentDrop::Oversize);
            }
        }
        let pending = self.pending.get_mut(&key).ok_or(SegmentDrop::Corrupt)?;
        let slot = pending.slot(&segment);
        *slot = Some(segment.payload);
        pending.received += 1;
        pending.bytes += len;
        self.pending_bytes += len;
        if pending.received < pending.data.len() {
            return Ok(Reassembly::Pending);
        }
        let rebuilt = pending.rebuild(&hash);
        let Some(pending) = self.remove(&key) else {
            return Err(SegmentDrop::Corrupt);
        };
        let payload = match rebuilt {
            Ok(payload) => payload,
            Err(reason) => {
                self.settle(key, Settled::Refused(reason));
                return Err(reason);
            }
        };
        self.settle(key, Settled::Complete);
        Ok(Reassembly::Complete(WakuMessage {
            payload,
            ..pending.envelope
        }))
    }

    /// Drops the incomplete messages whose first segment arrived more than the timeout before
    /// `now`.
    pub fn expire(&mut self, now: Instant) {
        let timeout = self.config.timeout;
        let expired: Vec<MessageKey> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.first_seen) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove(&key);
            self.count(SegmentDrop::Expired);
        }
    }

    /// Incomplete messages held.
    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }

    /// Segment bytes held for incomplete messages.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Segments or messages dropped for `reason` so far.
    pub fn dropped(&self, reason: SegmentDrop) -> u64 {
        self.dropped[reason.index()]
    }

    /// Evicts the incomplete message that started first, other than `keep`; false if none.
    fn evict_oldest(&mut self, keep: &MessageKey) -> bool {
        let oldest = self
            .pending
            .iter()
            .filter(|(k, _)| *k != keep)
            .min_by_key(|(_, p)| p.first_seen)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                self.remove(&key);
                self.count(SegmentDrop::Evicted);
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, key: &MessageKey) -> Option<Pending> {
        let pending = self.pending.remove(key)?;
        self.pending_bytes -= pending.bytes;
        Some(pending)
    }

    fn settle(&mut self, key: MessageKey, how: Settled) {
        if self.settled_order.len() >= SETTLED_REMEMBERED
            && let Some(old) = self.settled_order.pop_front()
        {
            self.settled.remove(&old);
        }
        if self.settled.insert(key.clone(), how).is_none() {
            self.settled_order.push_back(key);
        }
    }

    fn count(&mut self, reason: SegmentDrop) {
        self.dropped[reason.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOPIC: &str = "/demls/1/group-test/proto";

    fn message(payload: Vec<u8>) -> WakuMessage {
        WakuMessage {
            payload,
            content_topic: TOPIC.into(),
            timestamp: Some(1_700_000_000_000_000_000),
            ..WakuMessage::default()
        }
    }

    /// Bytes that look random and never end in zero.
    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed | 1)
            .collect()
    }

    fn segment_of(wire: &WakuMessage) -> SegmentMessage {
        SegmentMessage::decode_valid(&wire.payload).expect("a valid segment")
    }

    fn feed(reassembler: &mut Reassembler, wire: &[WakuMessage]) -> Vec<Reassembly> {
        let now = Instant::now();
        wire.iter()
            .map(|m| reassembler.insert(m.clone(), now))
            .collect()
    }

    fn completed(outcomes: &[Reassembly]) -> Vec<WakuMessage> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Reassembly::Complete(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn small_messages_are_sent_as_they_are() {
        let small = message(payload(1000, 1));
        assert_eq!(
            split(&SegmentationConfig::default(), &small),
            Ok(vec![small])
        );
    }

    #[test]
    fn large_messages_go_in_segments_within_the_wire_limit_and_come_back_whole() {
        let config = SegmentationConfig::default();
        for size in [150_001, 1 << 20, 3 << 20] {
            let original = message(payload(size, 7));
            let wire = split(&config, &original).expect("splits");
            assert!(wire.iter().all(|m| m.encoded_len() <= DEFAULT_WIRE_LIMIT));
            let data = wire.iter().filter(|m| !segment_of(m).is_parity).count();
            let parity = wire.len() - data;
            assert_eq!(parity, data.div_ceil(8), "12.5% parity for {size}");
            assert!(wire.iter().all(is_segment));
            // Out of order, parity first.
            let mut reassembler = Reassembler::new(config.clone());
            let mut shuffled = wire.clone();
            shuffled.reverse();
            let outcomes = feed(&mut reassembler, &shuffled);
            assert_eq!(completed(&outcomes), vec![original.clone()]);
            assert_eq!(reassembler.pending_messages(), 0);
            assert_eq!(reassembler.pending_bytes(), 0);
            // The segments left over after completion start nothing new.
            assert!(
                outcomes
                    .iter()
                    .skip_while(|o| !matches!(o, Reassembly::Complete(_)))
                    .skip(1)
                    .all(|o| *o == Reassembly::AlreadyComplete)
            );
        }
    }

    #[test]
    fn lost_data_segments_are_rebuilt_from_parity() {
        let config = SegmentationConfig::default();
        let original = message(payload(3 << 20, 9));
        let wire = split(&config, &original).expect("splits");
        let data = wire.iter().filter(|m| !segment_of(m).is_parity).count();
        let parity = wire.len() - data;
        // The first, a middle and the (shorter) last data segment lost, up to the parity count.
        let lost = [0, data / 2, data - 1];
        assert!(lost.len() <= parity);
        let kept: Vec<_> = (wire.iter().enumerate())
            .filter(|(i, _)| !lost.contains(i))
            .map(|(_, m)| m.clone())
            .collect();
        let mut reassembler = Reassembler::new(config.clone());
        assert_eq!(
            completed(&feed(&mut reassembler, &kept)),
            vec![original.clone()]
        );
        // One loss more than the parity can make up for: the message stays incomplete.
        let too_few: Vec<_> = wire.iter().skip(parity + 1).cloned().collect();
        let mut reassembler = Reassembler::new(config);
        assert!(completed(&feed(&mut reassembler, &too_few)).is_empty());
        assert_eq!(reassembler.pending_messages(), 1);
    }

    #[test]
    fn a_rebuilt_last_segment_ending_in_zeros_gets_its_length_back() {
        let config = SegmentationConfig::default();
        let mut bytes = payload(400_000, 3);
        bytes.extend([0; 100]);
        let original = message(bytes);
        let wire = split(&config, &original).expect("splits");
        let data = wire.iter().filter(|m| !segment_of(m).is_parity).count();
        let mut without_last = wire.clone();
        without_last.remove(data - 1);
        let mut reassembler = Reassembler::new(config);
        assert_eq!(
            completed(&feed(&mut reassembler, &without_last)),
            vec![original]
        );
    }

    #[test]
    fn too_large_payloads_and_meta_are_refused() {
        let config = SegmentationConfig {
            wire_limit: MIN_WIRE_LIMIT,
            ..SegmentationConfig::default()
        };
        let error = split(&config, &message(payload(1 << 20, 1))).expect_err("too large");
        assert!(
            matches!(error, SegmentError::TooLarge { size, max } if size == 1 << 20 && max < size)
        );
        let with_meta = WakuMessage {
            meta: Some(b"m".to_vec()),
            ..message(payload(10_000, 1))
        };
        assert_eq!(
            split(&config, &with_meta),
            Err(SegmentError::MetaOnSegmented)
        );
    }

    fn wire_segment(segment: &SegmentMessage) -> WakuMessage {
        WakuMessage {
            payload: segment.encode_to_vec(),
            meta: Some(SEGMENT_META.to_vec()),
            ..message(Vec::new())
        }
    }

    fn valid_segment() -> SegmentMessage {
        SegmentMessage {
            entire_message_hash: vec![1; 32],
            data_segment_index: 0,
            data_segment_count: 4,
            payload: vec![5; 100],
            parity_segment_index: 0,
            parity_segment_count: 1,
            is_parity: false,
        }
    }

    #[test]
    fn malformed_segments_are_dropped_and_counted() {
        let bad = [
            SegmentMessage {
                entire_message_hash: vec![1; 31],
                ..valid_segment()
            },
            SegmentMessage {
                data_segment_count: 0,
                ..valid_segment()
            },
            SegmentMessage {
                data_segment_index: 4,
                ..valid_segment()
            },
            SegmentMessage {
                is_parity: true,
                parity_segment_index: 1,
                ..valid_segment()
            },
            SegmentMessage {
                data_segment_count: 200,
                parity_segment_count: 56,
                ..valid_segment()
            },
            SegmentMessage {
                data_segment_count: u32::MAX,
                parity_segment_count: u32::MAX,
                ..valid_segment()
            },
            SegmentMessage {
                payload: Vec::new(),
                ..valid_segment()
            },
        ];
        let mut reassembler = Reassembler::new(SegmentationConfig::default());
        for segment in &bad {
            assert_eq!(
                reassembler.insert(wire_segment(segment), Instant::now()),
                Reassembly::Dropped(SegmentDrop::Malformed),
                "{segment:?}"
            );
        }
        let mut garbage = message(vec![0xff, 0xff, 0xff]);
        garbage.meta = Some(SEGMENT_META.to_vec());
        assert_eq!(
            reassembler.insert(garbage, Instant::now()),
            Reassembly::Dropped(SegmentDrop::Malformed)
        );
        assert_eq!(
            reassembler.dropped(SegmentDrop::Malformed),
            bad.len() as u64 + 1
        );
        assert_eq!(reassembler.pending_messages(), 0);
    }

    #[test]
    fn inconsistent_segments_are_dropped_and_counted() {
        let mut reassembler = Reassembler::new(SegmentationConfig::default());
        let now = Instant::now();
        let first = valid_segment();
        assert_eq!(
            reassembler.insert(wire_segment(&first), now),
            Reassembly::Pending
        );
        let inconsistent = [
            // Other counts.
            SegmentMessage {
                data_segment_index: 1,
                data_segment_count: 5,
                ..valid_segment()
            },
            // Another size.
            SegmentMessage {
                data_segment_index: 1,
                payload: vec![5; 102],
                ..valid_segment()
            },
            // The same index with another payload.
            SegmentMessage {
                payload: vec![6; 100],
                ..valid_segment()
            },
            // A last data segment longer than the others.
            SegmentMessage {
                data_segment_index: 3,
                payload: vec![5; 101],
                ..valid_segment()
            },
        ];
        for segment in &inconsistent {
            assert_eq!(
                reassembler.insert(wire_segment(segment), now),
                Reassembly::Dropped(SegmentDrop::Inconsistent),
                "{segment:?}"
            );
        }
        assert_eq!(reassembler.pending_bytes(), 100);
    }

    #[test]
    fn forged_segments_never_deliver_a_message() {
        let config = SegmentationConfig::default();
        let original = message(payload(1 << 20, 5));
        let mut wire = split(&config, &original).expect("splits");
        // One data segment altered in transit (its hash claim unchanged).
        let mut forged = segment_of(&wire[2]);
        forged.payload[0] ^= 0xff;
        wire[2] = wire_segment(&forged);
        let mut reassembler = Reassembler::new(config);
        let outcomes = feed(&mut reassembler, &wire);
        assert!(completed(&outcomes).is_empty());
        assert!(outcomes.contains(&Reassembly::Dropped(SegmentDrop::Corrupt)));
        // The rebuild failed once; the segments after it are dropped for the same reason.
        assert!(reassembler.dropped(SegmentDrop::Corrupt) >= 1);
        assert_eq!(reassembler.pending_messages(), 0);
        assert_eq!(reassembler.pending_bytes(), 0);
    }

    #[test]
    fn messages_larger_than_the_payload_bound_are_dropped() {
        let config = SegmentationConfig {
            max_payload: 1 << 20,
            ..SegmentationConfig::default()
        };
        let wire = split(
            &SegmentationConfig::default(),
            &message(payload(2 << 20, 1)),
        )
        .expect("splits");
        let mut reassembler = Reassembler::new(config);
        let outcomes = feed(&mut reassembler, &wire);
        assert!(completed(&outcomes).is_empty());
        assert!(reassembler.dropped(SegmentDrop::Oversize) > 0);
        assert_eq!(reassembler.pending_bytes(), 0);
    }

    #[test]
    fn a_flood_of_incomplete_messages_is_bounded_and_expires() {
        let config = SegmentationConfig {
            max_pending_messages: 16,
            max_pending_bytes: 64 * 1000,
            timeout: Duration::from_secs(10),
            ..SegmentationConfig::default()
        };
        let mut reassembler = Reassembler::new(config);
        let start = Instant::now();
        for n in 0..1000u32 {
            let mut hash = vec![0; 32];
            hash[..4].copy_from_slice(&n.to_be_bytes());
            let segment = SegmentMessage {
                entire_message_hash: hash,
                payload: vec![7; 1000],
                ..valid_segment()
            };
            assert_eq!(
                reassembler.insert(wire_segment(&segment), start),
                Reassembly::Pending
            );
            assert!(reassembler.pending_messages() <= 16);
            assert!(reassembler.pending_bytes() <= 64 * 1000);
        }
        assert_eq!(reassembler.dropped(SegmentDrop::Evicted), 1000 - 16);
        // Larger segments: the byte bound evicts before the message bound does.
        for n in 0..10u32 {
            let segment = SegmentMessage {
                entire_message_hash: vec![n as u8 + 100; 32],
                payload: vec![7; 30_000],
                ..valid_segment()
            };
            reassembler.insert(wire_segment(&segment), start);
            assert!(reassembler.pending_bytes() <= 64 * 1000);
        }
        // A single segment larger than all the room there is.
        let huge = SegmentMessage {
            payload: vec![7; 64 * 1000 + 2],
            ..valid_segment()
        };
        assert_eq!(
            reassembler.insert(wire_segment(&huge), start),
            Reassembly::Dropped(SegmentDrop::Oversize)
        );
        let held = reassembler.pending_messages() as u64;
        reassembler.expire(start + Duration::from_secs(11));
        assert_eq!(reassembler.pending_messages(), 0);
        assert_eq!(reassembler.pending_bytes(), 0);
        assert_eq!(reassembler.dropped(SegmentDrop::Expired), held);
    }

    #[test]
    fn config_bounds_are_checked() {
        assert!(SegmentationConfig::default().check().is_ok());
        for bad in [
            SegmentationConfig {
                wire_limit: MIN_WIRE_LIMIT - 1,
                ..SegmentationConfig::default()
            },
            SegmentationConfig {
                parity_rate: 1.5,
                ..SegmentationConfig::default()
            },
            SegmentationConfig {
                timeout: Duration::ZERO,
                ..SegmentationConfig::default()
            },
        ] {
            assert!(bad.check().is_err());
        }
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn arbitrary_segments_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut reassembler = Reassembler::new(SegmentationConfig::default());
            let mut wire = message(data);
            wire.meta = Some(SEGMENT_META.to_vec());
            let _ = reassembler.insert(wire, Instant::now());
        }

        #[test]
        fn mutated_segment_sets_never_panic_nor_deliver_wrong_payloads(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 1..6),
            len in 9_000usize..40_000,
        ) {
            let config = SegmentationConfig { wire_limit: MIN_WIRE_LIMIT, ..SegmentationConfig::default() };
            let original = message(payload(len, 11));
            let mut wire = split(&config, &original).expect("splits");
            for (which, at, byte) in flips {
                let count = wire.len();
                let m = &mut wire[which.index(count)];
                let i = at.index(m.payload.len());
                m.payload[i] = byte;
            }
            let mut reassembler = Reassembler::new(config);
            for m in completed(&feed(&mut reassembler, &wire)) {
                prop_assert_eq!(m, original.clone());
            }
        }
    }
}
