//! Node metrics in the Prometheus text format (version 0.0.4).
//!
//! The runtime counts what the engine does with network input, what it publishes, proposals
//! and epochs; the transport's own counters (peers, relay messages, relay drops) are read from
//! it when rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use demls_transport::store::{StoreDropReason, StoreOutcome};
use demls_transport::{
    Discv5Drop, DropReason, PeerExchangeDrop, ReconnectReason, SegmentDrop, TransportMetrics,
};

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A cumulative histogram.
#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (count, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        for (count, bound) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Default)]
struct Counters {
    /// (group, reason) → engine drops.
    engine_dropped: BTreeMap<(String, &'static str), u64>,
    /// reason → messages not for this node's groups.
    ignored: BTreeMap<&'static str, u64>,
    /// topic kind → messages the engine accepted.
    handled: BTreeMap<&'static str, u64>,
    published: u64,
    /// Messages peers' archives gave back, and of those the ones this node did not hold.
    history_fetched: u64,
    history_new: u64,
    history_bytes: u64,
    /// The archive's size: messages and bytes.
    archive: (u64, u64),
    publish_failed: BTreeMap<&'static str, u64>,
    epochs: BTreeMap<String, u64>,
    members: BTreeMap<String, usize>,
    proposals_opened: u64,
    proposals_decided: BTreeMap<&'static str, u64>,
    chat: BTreeMap<&'static str, u64>,
    /// outcome → admission checks answered.
    admission_checks: BTreeMap<&'static str, u64>,
    /// Bytes of the engine's protocol snapshot written: whole, and as journaled votes.
    snapshot_bytes: [u64; 2],
    commits_rejected: u64,
    commit_latency: Histogram,
    consensus_latency: Histogram,
}

/// The node's counters, shared by the runtime (writer) and the API (reader).
#[derive(Default)]
pub struct Metrics(Mutex<Counters>);

/// The transport's Store and liveness counters.
fn render_store(out: &mut String, transport: &TransportMetrics) {
    family(
        out,
        ("demls_store_queries_answered_total", "counter"),
        "Store queries of peers this node answered, by outcome.",
        "outcome",
        StoreOutcome::ALL.map(|o| (o.as_str(), transport.store_answered(o))),
    );
    family(
        out,
        ("demls_store_queries_sent_total", "counter"),
        "Store queries this node sent to peers, and those that failed.",
        "result",
        [
            ("all", transport.store_queries_out),
            ("failed", transport.store_queries_failed),
        ],
    );
    family(
        out,
        ("demls_store_messages_dropped_total", "counter"),
        "Messages of peers' Store answers dropped, by reason.",
        "reason",
        StoreDropReason::ALL.map(|r| (r.as_str(), transport.store_dropped(r))),
    );
    family(
        out,
        ("demls_peer_reconnects_total", "counter"),
        "Peers this node reconnected to because it heard nothing from them, by reason.",
        "reason",
        ReconnectReason::ALL.map(|r| (r.as_str(), transport.reconnects(r))),
    );
}

/// The transport's segmentation counters: large messages sent and received in segments.
fn render_segments(out: &mut String, transport: &TransportMetrics) {
    family(
        out,
        ("demls_relay_segments_total", "counter"),
        "Segments of large messages received from peers (in) and published (out).",
        "direction",
        [
            ("in", transport.segments_in),
            ("out", transport.segments_out),
        ],
    );
    family(
        out,
        ("demls_segments_dropped_total", "counter"),
        "Segments, or messages being reassembled, dropped, by reason.",
        "reason",
        SegmentDrop::ALL.map(|r| (r.as_str(), transport.segments_dropped(r))),
    );
    family(
        out,
        ("demls_reassembly_pending", "gauge"),
        "Incomplete messages held for reassembly (messages) and their segment bytes (bytes).",
        "unit",
        [
            ("messages", transport.reassembly_pending_messages),
            ("bytes", transport.reassembly_pending_bytes),
        ],
    );
}

/// The transport's peer exchange counters.
fn render_discovery(out: &mut String, transport: &TransportMetrics) {
    family(
        out,
        ("demls_peer_exchange_total", "counter"),
        "Peers learned (discovered), peer exchange queries answered (served), peers cut above the maximum (pruned).",
        "event",
        [
            ("discovered", transport.peers_discovered),
            ("served", transport.peer_exchange_served),
            ("pruned", transport.peers_pruned),
        ],
    );
    family(
        out,
        ("demls_peer_exchange_dropped_total", "counter"),
        "Peer exchange responses, or ENRs in them, not used, by reason.",
        "reason",
        PeerExchangeDrop::ALL.map(|r| (r.as_str(), transport.peer_exchange_dropped(r))),
    );
    family(
        out,
        ("demls_discv5_total", "counter"),
        "Peers found through discv5 (each once).",
        "event",
        [("found", transport.discv5_found)],
    );
    family(
        out,
        ("demls_discv5_dropped_total", "counter"),
        "ENRs found through discv5 and not used, by reason.",
        "reason",
        Discv5Drop::ALL.map(|r| (r.as_str(), transport.discv5_dropped(r))),
    );
}

/// One metric family (`name` of `kind`) with a value per value of one label.
fn family<'a>(
    out: &mut String,
    (name, kind): (&str, &str),
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    header(out, name, help, kind);
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Counters stay usable even if a holder panicked: every update is one statement.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The engine refused a message of `group` for `reason` ([`demls_engine::EngineError::kind`]).
    pub fn engine_dropped(&self, group: &str, reason: &'static str) {
        *self
            .lock()
            .engine_dropped
            .entry((group.to_owned(), reason))
            .or_default() += 1;
    }

    /// Engine drops of one group, by reason.
    pub fn group_drops(&self, group: &str) -> BTreeMap<String, u64> {
        self.lock()
            .engine_dropped
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, reason), n)| ((*reason).to_owned(), *n))
            .collect()
    }

    /// A relay message that is not for this node (`foreign_topic`, `other_group`).
    pub fn ignored(&self, reason: &'static str) {
        *self.lock().ignored.entry(reason).or_default() += 1;
    }

    /// The engine accepted a message from the `kind` topic.
    pub fn handled(&self, kind: &'static str) {
        *self.lock().handled.entry(kind).or_default() += 1;
    }

    /// A message was published.
    pub fn published(&self) {
        self.lock().published += 1;
    }

    /// A history fetch from a peer brought `total` messages of `bytes` (as encoded), `new` of
    /// them not held before.
    pub fn history_fetched(&self, total: usize, new: usize, bytes: usize) {
        let mut c = self.lock();
        c.history_fetched += total as u64;
        c.history_new += new as u64;
        c.history_bytes += bytes as u64;
    }

    /// Messages fetched from peers' archives that this node did not hold, and the bytes of
    /// all fetched messages.
    pub fn history(&self) -> (u64, u64) {
        let c = self.lock();
        (c.history_new, c.history_bytes)
    }

    /// The archive holds `messages` taking `bytes`.
    pub fn archive_size(&self, messages: u64, bytes: u64) {
        self.lock().archive = (messages, bytes);
    }

    /// Publishing failed for `reason`.
    pub fn publish_failed(&self, reason: &'static str) {
        *self.lock().publish_failed.entry(reason).or_default() += 1;
    }

    /// The group is at `epoch` with `members` members (0 members: this node left it).
    pub fn group_state(&self, group: &str, epoch: u64, members: usize) {
        let mut c = self.lock();
        if members == 0 {
            c.epochs.remove(group);
            c.members.remove(group);
        } else {
            c.epochs.insert(group.to_owned(), epoch);
            c.members.insert(group.to_owned(), members);
        }
    }

    /// A proposal was opened.
    pub fn proposal_opened(&self) {
        self.lock().proposals_opened += 1;
    }

    /// A proposal was decided, `consensus` after it was opened here.
    pub fn proposal_decided(&self, approved: bool, consensus: Option<Duration>) {
        let mut c = self.lock();
        let outcome = if approved { "approved" } else { "rejected" };
        *c.proposals_decided.entry(outcome).or_default() += 1;
        if let Some(latency) = consensus {
            c.consensus_latency.observe(latency);
        }
    }

    /// A commit was applied, `latency` after its first approved proposal was decided here.
    pub fn commit_applied(&self, latency: Option<Duration>) {
        if let Some(latency) = latency {
            self.lock().commit_latency.observe(latency);
        }
    }

    /// A commit was refused.
    pub fn commit_rejected(&self) {
        self.lock().commits_rejected += 1;
    }

    /// A chat message was written (`out`) or received (`in`).
    pub fn chat(&self, direction: &'static str) {
        *self.lock().chat.entry(direction).or_default() += 1;
    }

    /// A step wrote the engine's protocol snapshot: whole (`journaled` false) or as the
    /// votes it took in, `bytes` in all.
    pub fn snapshot_written(&self, journaled: bool, bytes: usize) {
        self.lock().snapshot_bytes[usize::from(journaled)] += bytes as u64;
    }

    /// An admission check was answered: `admit`, `refuse` or `unavailable`.
    pub fn admission_check(&self, verdict: &'static str) {
        *self.lock().admission_checks.entry(verdict).or_default() += 1;
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self, transport: &TransportMetrics) -> String {
        let c = self.lock();
        let mut out = String::new();
        header(&mut out, "demls_peers", "Connected relay peers.", "gauge");
        let _ = writeln!(out, "demls_peers {}", transport.peers);
        header(
            &mut out,
            "demls_peers_rejected_total",
            "Peers disconnected by the cluster check.",
            "counter",
        );
        let _ = writeln!(
            out,
            "demls_peers_rejected_total {}",
            transport.peers_rejected
        );
        header(
            &mut out,
            "demls_peers_banned_total",
            "Peers disconnected and banned for a while for a gossipsub score below the graylist threshold (invalid messages).",
            "counter",
        );
        let _ = writeln!(out, "demls_peers_banned_total {}", transport.peers_banned);
        header(
            &mut out,
            "demls_relay_messages_total",
            "Relay messages received from peers (in) and published (out).",
            "counter",
        );
        let _ = writeln!(
            out,
            "demls_relay_messages_total{{direction=\"in\"}} {}",
            transport.messages_in
        );
        let _ = writeln!(
            out,
            "demls_relay_messages_total{{direction=\"out\"}} {}",
            transport.messages_out
        );
        header(
            &mut out,
            "demls_messages_dropped_total",
            "Messages dropped, by layer (relay validation or protocol engine) and reason.",
            "counter",
        );
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "demls_messages_dropped_total{{layer=\"relay\",reason=\"{}\"}} {}",
                reason.as_str(),
                transport.dropped(reason)
            );
        }
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for ((_, reason), n) in &c.engine_dropped {
            *by_reason.entry(reason).or_default() += n;
        }
        for (reason, n) in by_reason {
            let _ = writeln!(
                out,
                "demls_messages_dropped_total{{layer=\"engine\",reason=\"{reason}\"}} {n}"
            );
        }
        header(
            &mut out,
            "demls_messages_ignored_total",
            "Relay messages for other applications or for groups this node is not in.",
            "counter",
        );
        for (reason, n) in &c.ignored {
            let _ = writeln!(
                out,
                "demls_messages_ignored_total{{reason=\"{reason}\"}} {n}"
            );
        }
        header(
            &mut out,
            "demls_messages_handled_total",
            "Messages the engine accepted, by topic.",
            "counter",
        );
        for (topic, n) in &c.handled {
            let _ = writeln!(out, "demls_messages_handled_total{{topic=\"{topic}\"}} {n}");
        }
        header(
            &mut out,
            "demls_published_total",
            "Messages published.",
            "counter",
        );
        let _ = writeln!(out, "demls_published_total {}", c.published);
        header(
            &mut out,
            "demls_history_fetched_total",
            "Messages peers' archives gave back (all), and those this node did not hold (new).",
            "counter",
        );
        let _ = writeln!(
            out,
            "demls_history_fetched_total{{kind=\"all\"}} {}",
            c.history_fetched
        );
        let _ = writeln!(
            out,
            "demls_history_fetched_total{{kind=\"new\"}} {}",
            c.history_new
        );
        header(
            &mut out,
            "demls_history_fetched_bytes_total",
            "Bytes of the messages peers' archives gave back.",
            "counter",
        );
        let _ = writeln!(out, "demls_history_fetched_bytes_total {}", c.history_bytes);
        header(
            &mut out,
            "demls_archive_messages",
            "Network messages the node's archive keeps for its groups' history.",
            "gauge",
        );
        let _ = writeln!(out, "demls_archive_messages {}", c.archive.0);
        header(
            &mut out,
            "demls_archive_bytes",
            "Bytes of the archived messages.",
            "gauge",
        );
        let _ = writeln!(out, "demls_archive_bytes {}", c.archive.1);
        render_store(&mut out, transport);
        render_segments(&mut out, transport);
        render_discovery(&mut out, transport);
        header(
            &mut out,
            "demls_publish_failures_total",
            "Publish attempts that failed, by reason.",
            "counter",
        );
        for (reason, n) in &c.publish_failed {
            let _ = writeln!(
                out,
                "demls_publish_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        header(
            &mut out,
            "demls_chat_messages_total",
            "Chat messages written here (out) and received (in).",
            "counter",
        );
        for (direction, n) in &c.chat {
            let _ = writeln!(
                out,
                "demls_chat_messages_total{{direction=\"{direction}\"}} {n}"
            );
        }
        family(
            &mut out,
            ("demls_snapshot_bytes_written_total", "counter"),
            "Bytes of the engine's protocol snapshot written: whole, or as the votes a step took in (journaled).",
            "as",
            [
                ("whole", c.snapshot_bytes[0]),
                ("votes", c.snapshot_bytes[1]),
            ],
        );
        header(
            &mut out,
            "demls_admission_checks_total",
            "Admission checks of joiners of gated groups answered from the chain, by verdict (admit, refuse, unavailable).",
            "counter",
        );
        for (verdict, n) in &c.admission_checks {
            let _ = writeln!(
                out,
                "demls_admission_checks_total{{verdict=\"{verdict}\"}} {n}"
            );
        }
        header(
            &mut out,
            "demls_group_epoch",
            "Current MLS epoch per group.",
            "gauge",
        );
        for (group, epoch) in &c.epochs {
            let _ = writeln!(
                out,
                "demls_group_epoch{{group=\"{}\"}} {epoch}",
                label(group)
            );
        }
        header(
            &mut out,
            "demls_group_members",
            "Members per group.",
            "gauge",
        );
        for (group, members) in &c.members {
            let _ = writeln!(
                out,
                "demls_group_members{{group=\"{}\"}} {members}",
                label(group)
            );
        }
        header(
            &mut out,
            "demls_proposals_opened_total",
            "Voting proposals seen opened.",
            "counter",
        );
        let _ = writeln!(out, "demls_proposals_opened_total {}", c.proposals_opened);
        header(
            &mut out,
            "demls_proposals_decided_total",
            "Voting proposals decided, by outcome.",
            "counter",
        );
        for outcome in ["approved", "rejected"] {
            let n = c.proposals_decided.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "demls_proposals_decided_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        header(
            &mut out,
            "demls_commits_rejected_total",
            "Commits refused (not matching the vote, or from a non-steward).",
            "counter",
        );
        let _ = writeln!(out, "demls_commits_rejected_total {}", c.commits_rejected);
        c.consensus_latency.render(
            &mut out,
            "demls_consensus_latency_seconds",
            "From a proposal opening to its decision, as seen here.",
        );
        c.commit_latency.render(
            &mut out,
            "demls_commit_latency_seconds",
            "From the first approved decision of an epoch to the commit that applies it, as seen here.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.engine_dropped("lab", "malformed");
        m.engine_dropped("lab", "malformed");
        m.engine_dropped("ops", "mls");
        m.proposal_decided(true, Some(Duration::from_millis(300)));
        m.group_state("lab", 3, 4);
        let text = m.render(&TransportMetrics::default());
        assert!(
            text.contains("demls_messages_dropped_total{layer=\"engine\",reason=\"malformed\"} 2")
        );
        assert!(
            text.contains("demls_messages_dropped_total{layer=\"relay\",reason=\"oversize\"} 0")
        );
        assert!(text.contains("demls_group_epoch{group=\"lab\"} 3"));
        assert!(text.contains("demls_consensus_latency_seconds_bucket{le=\"0.25\"} 0"));
        assert!(text.contains("demls_consensus_latency_seconds_bucket{le=\"0.5\"} 1"));
        assert!(text.contains("demls_proposals_decided_total{outcome=\"approved\"} 1"));
        assert_eq!(m.group_drops("lab").get("malformed"), Some(&2));
    }
}
