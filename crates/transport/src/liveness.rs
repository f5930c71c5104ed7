//! Never deaf: noticing a connection on which gossipsub no longer flows, so that the node can
//! reconnect the peer (sans-IO; the node feeds it events and the clock).
//!
//! When rust-libp2p's gossipsub fails to read an RPC from a peer (a frame or control message
//! over its limits, a protobuf error), it closes that inbound stream and relies on the peer to
//! open a new one. The peer never learns of it: it keeps writing into a stream nobody reads
//! (yamux ignores data for a stream it dropped), so every later message from it is lost while
//! the connection looks healthy. After five inbound streams on one connection the handler
//! disables gossipsub on it altogether. Only a new connection recovers, and two signals tell
//! when one is needed:
//!
//! - **Silent**: demls nodes publish a small probe on [`PROBE_TOPIC`] every probe interval,
//!   flooded to each directly connected subscriber and never forwarded. A peer that subscribed
//!   to the probe topic and from which nothing at all arrived (probe or relay message) for
//!   [`SILENT_AFTER_PROBES`] intervals is one we have stopped hearing.
//! - **Stalled**: gossipsub reports a peer whose send queue overflowed or whose messages timed
//!   out in it at each heartbeat (`SlowPeer`). A peer that does not probe, reported at
//!   [`STALL_STRIKES`] consecutive heartbeats, is one that no longer reads what we send. A
//!   probing (demls) peer is never reconnected for this: a full queue also means a peer that
//!   is only slow (a loaded CPU, a slow link), and reconnecting it loses its queue and mesh
//!   place and restarts its GRAFT backoff; if our stream to it really died, the peer hears
//!   nothing from us and reconnects us itself (Silent, on its side).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::labels::labelled_enum;

/// The gossipsub topic of the liveness probes (not a Waku pubsub topic: other Waku nodes
/// ignore it).
pub(crate) const PROBE_TOPIC: &str = "/demls/liveness/1";

/// A probing peer unheard for this many probe intervals is reconnected.
pub(crate) const SILENT_AFTER_PROBES: u32 = 6;

/// A peer reported slow at this many consecutive heartbeats is reconnected.
pub(crate) const STALL_STRIKES: u32 = 10;

/// Slow-peer reports at most this far apart count as consecutive (gossipsub reports at each
/// one-second heartbeat).
const STRIKE_GAP: Duration = Duration::from_secs(2);

labelled_enum! {
    /// Why a connected peer was disconnected and redialled.
    pub enum ReconnectReason {
        /// A demls peer from which nothing arrived (not even its liveness probes) for six
        /// probe intervals: our inbound gossipsub stream from it died.
        Silent => "silent",
        /// A peer that does not probe whose send queue overflowed or timed out at ten
        /// consecutive heartbeats: it no longer reads what we send.
        Stalled => "stalled",
    }
}

#[derive(Debug)]
struct PeerLiveness {
    last_heard: Instant,
    probes: bool,
    strikes: u32,
    last_strike: Option<Instant>,
}

/// What the node knows about hearing each connected peer.
#[derive(Debug)]
pub(crate) struct Liveness {
    silent_after: Duration,
    peers: HashMap<PeerId, PeerLiveness>,
}

impl Liveness {
    pub(crate) fn new(probe_interval: Duration) -> Liveness {
        Liveness {
            silent_after: probe_interval.saturating_mul(SILENT_AFTER_PROBES),
            peers: HashMap::new(),
        }
    }

    /// A peer's first connection opened; its silence is measured from now.
    pub(crate) fn connected(&mut self, peer: PeerId, now: Instant) {
        self.peers.insert(
            peer,
            PeerLiveness {
                last_heard: now,
                probes: false,
                strikes: 0,
                last_strike: None,
            },
        );
    }

    /// A peer's last connection closed.
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// Something arrived from `peer` over gossipsub.
    pub(crate) fn heard(&mut self, peer: &PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.last_heard = now;
        }
    }

    /// `peer` subscribed to [`PROBE_TOPIC`]: it sends probes, so its silence means something.
    pub(crate) fn probing(&mut self, peer: &PeerId, now: Instant) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.probes = true;
            p.last_heard = now;
        }
    }

    /// Gossipsub reported `peer` slow at a heartbeat; `Some` once it is stalled.
    pub(crate) fn slow(&mut self, peer: &PeerId, now: Instant) -> Option<ReconnectReason> {
        let p = self.peers.get_mut(peer).filter(|p| !p.probes)?;
        let consecutive = p
            .last_strike
            .is_some_and(|last| now.saturating_duration_since(last) <= STRIKE_GAP);
        p.strikes = if consecutive { p.strikes + 1 } else { 1 };
        p.last_strike = Some(now);
        if p.strikes >= STALL_STRIKES {
            p.strikes = 0;
            p.last_strike = None;
            return Some(ReconnectReason::Stalled);
        }
        None
    }

    /// The node was not listening until `now` (it did not read the network, or did not run):
    /// silence so far counts for no peer.
    pub(crate) fn excuse(&mut self, now: Instant) {
        for p in self.peers.values_mut() {
            p.last_heard = p.last_heard.max(now);
        }
    }

    /// Probing peers unheard for too long. Each is reported once per silent period: its clock
    /// restarts, so a peer that stays connected is not reported again at once.
    pub(crate) fn silent(&mut self, now: Instant) -> Vec<PeerId> {
        let mut silent = Vec::new();
        for (peer, p) in &mut self.peers {
            if p.probes && now.saturating_duration_since(p.last_heard) >= self.silent_after {
                p.last_heard = now;
                silent.push(*peer);
            }
        }
        silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    #[test]
    fn only_probing_peers_can_be_silent() {
        let t0 = Instant::now();
        let mut l = Liveness::new(INTERVAL);
        let (quiet, prober) = (PeerId::random(), PeerId::random());
        l.connected(quiet, t0);
        l.connected(prober, t0);
        l.probing(&prober, t0);
        let silent_after = INTERVAL * SILENT_AFTER_PROBES;
        assert!(
            l.silent(t0 + silent_after - Duration::from_millis(1))
                .is_empty()
        );
        l.heard(&prober, t0 + silent_after / 2);
        assert!(l.silent(t0 + silent_after).is_empty());
        let later = t0 + silent_after / 2 + silent_after;
        assert_eq!(l.silent(later), vec![prober]);
        // Reported once per silent period.
        assert!(l.silent(later + INTERVAL).is_empty());
        assert_eq!(l.silent(later + silent_after), vec![prober]);
        l.disconnected(&prober);
        assert!(l.silent(later + 10 * silent_after).is_empty());
    }

    #[test]
    fn our_own_deafness_is_excused() {
        let t0 = Instant::now();
        let mut l = Liveness::new(INTERVAL);
        let peer = PeerId::random();
        l.connected(peer, t0);
        l.probing(&peer, t0);
        let silent_after = INTERVAL * SILENT_AFTER_PROBES;
        l.excuse(t0 + silent_after);
        assert!(l.silent(t0 + silent_after + INTERVAL).is_empty());
        assert_eq!(l.silent(t0 + 2 * silent_after), vec![peer]);
    }

    #[test]
    fn stalled_after_consecutive_strikes() {
        let t0 = Instant::now();
        let mut l = Liveness::new(INTERVAL);
        let peer = PeerId::random();
        assert_eq!(l.slow(&peer, t0), None, "unknown peers are ignored");
        l.connected(peer, t0);
        let beat = Duration::from_secs(1);
        for i in 1..STALL_STRIKES {
            assert_eq!(l.slow(&peer, t0 + beat * i), None);
        }
        // A gap restarts the count.
        let resumed = t0 + beat * STALL_STRIKES + STRIKE_GAP * 2;
        for i in 0..STALL_STRIKES - 1 {
            assert_eq!(l.slow(&peer, resumed + beat * i), None);
        }
        assert_eq!(
            l.slow(&peer, resumed + beat * (STALL_STRIKES - 1)),
            Some(ReconnectReason::Stalled)
        );
        assert_eq!(l.slow(&peer, resumed + beat * STALL_STRIKES), None);
    }

    #[test]
    fn a_probing_peer_is_never_stalled() {
        let t0 = Instant::now();
        let mut l = Liveness::new(INTERVAL);
        let peer = PeerId::random();
        l.connected(peer, t0);
        l.probing(&peer, t0);
        let beat = Duration::from_secs(1);
        for i in 1..=3 * STALL_STRIKES {
            assert_eq!(l.slow(&peer, t0 + beat * i), None);
        }
    }
}
