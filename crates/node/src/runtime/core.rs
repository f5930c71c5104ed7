//! The task that owns the engine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use demls_engine::{
    Engine, Event, GroupId, GroupParams, GroupView, JoinRule, ProposalId, Request, SnapshotWrite,
    Timestamp, TopicKind, VotePolicy,
};
use demls_identity::Address;
use demls_policy::{AdmissionPolicy, CheckRequest, Verdict};
use demls_storage::{
    NewEvent, NewMessage, OutboxEntry, ProposalState, Step, StorageError, Store, StoredMessage,
};
use demls_transport::{PublishError, RelayHandle, TransportError, TransportEvent};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, MissedTickBehavior};

use super::admission::{Answer, ChainAccess};
use super::consent::{Outside, load_outside};
use super::history::{Fetched, History, WAKE_JUMP_NS};
use super::json::{self, to_text};
use super::names::GroupNames;
use super::setup::Loaded;
use super::track::Tracker;
use super::{CommandError, Job, NodeError, NodeEvent, addrs, group_id, now};
use crate::metrics::Metrics;
use crate::topics;
use demls_api::{
    EventBody, GroupDetail, GroupState, GroupSummary, Health, KnownInvitation, Member, Message,
    NodeInfo, Proposal, Role, StewardScore,
};

/// How often unpublished messages are retried (e.g. while no peer is connected).
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// How often old outbox entries and event log entries are pruned.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);
/// Published outbox entries are kept this long (for the history of what left, not to resend:
/// peers fetch what they missed from the archives of the group's nodes).
const OUTBOX_KEPT_MS: u64 = 10 * 60 * 1000;
/// At most this many received network events are handled before their step is persisted.
const STEP_MESSAGES: usize = 256;
/// Event log entries kept.
const EVENTS_KEPT: u64 = 10_000;
/// Messages of each group whose ids the engine is told after a restart (its causal window).
const CHAT_REMEMBERED: usize = 512;
/// Setting that holds the vote policy.
const VOTE_POLICY: &str = "vote_policy";

/// The node's state; only the node's task touches it (through [`super::NodeHandle::call`]).
pub struct Runtime {
    pub(super) engine: Engine,
    pub(super) store: Store,
    relay: RelayHandle,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<NodeEvent>,
    pub(super) address: Address,
    subscribed: BTreeSet<GroupId>,
    pending: VecDeque<OutboxEntry>,
    pub(super) tracker: Tracker,
    outgoing: Vec<NodeEvent>,
    /// Node events (not the engine's) for the next step's event log.
    notes: Vec<(GroupId, EventBody)>,
    /// Reads the chain for admission checks.
    chain: ChainAccess,
    /// Where admission verdicts come back to this task.
    verdicts: mpsc::UnboundedSender<Answer>,
    /// Admission checks being read from the chain, so that a check asked again before the
    /// answer came is not read twice.
    checking: BTreeSet<(GroupId, Address)>,
    /// Chat messages each group knows it misses (the engine's last `Syncing`).
    missing: BTreeMap<GroupId, usize>,
    /// The archive of the groups' network messages, and fetches of what this node missed.
    history: History,
    /// Groups whose history is to be fetched from a few connected peers after this step.
    fetch_due: BTreeSet<GroupId>,
    /// The wall clock at the last retry tick, to notice a sleep.
    last_tick_ns: i64,
    /// Groups this node stands outside of (refused, removed), kept across restarts.
    pub(super) outside: BTreeMap<GroupId, Outside>,
    /// What people call the groups (identifiers of private groups are random).
    pub(super) names: GroupNames,
    stopping: bool,
    failed: Option<String>,
    _lock: File,
}

/// A time as Unix nanoseconds, as WakuMessages carry it.
fn unix_ns(at: Timestamp) -> i64 {
    i64::try_from(at.0)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

fn instant_of(at: Timestamp) -> Instant {
    Instant::now() + Duration::from_millis(at.0.saturating_sub(now().0))
}

/// How the vote policy is kept in the store's settings.
fn policy_setting(policy: VotePolicy) -> &'static str {
    match policy {
        VotePolicy::Automatic => "automatic",
        VotePolicy::Manual => "manual",
    }
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Runtime {
    pub(super) fn new(
        loaded: Loaded,
        relay: RelayHandle,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<NodeEvent>,
        (chain, verdicts): (ChainAccess, mpsc::UnboundedSender<Answer>),
        history: History,
    ) -> Result<Self, NodeError> {
        let Loaded {
            store,
            mut engine,
            lock,
            ..
        } = loaded;
        if store.setting(VOTE_POLICY)?.as_deref() == Some("manual") {
            engine.set_vote_policy(VotePolicy::Manual, now());
        }
        let outside = load_outside(&store)?;
        let names = GroupNames::load(&store)?;
        let mut tracker = Tracker::default();
        let groups: Vec<GroupId> = engine.groups().cloned().collect();
        for group in &groups {
            if let Some(view) = engine.group(group) {
                tracker.set_epoch(group, view.epoch);
                metrics.group_state(group.as_str(), view.epoch.0, view.members.len());
                // The engine kept the epoch's open proposals across the restart: follow them on.
                let open: BTreeSet<ProposalId> = view.open_proposals.iter().map(|t| t.id).collect();
                for record in store.proposals(group)? {
                    if record.epoch == view.epoch && open.contains(&record.id) {
                        tracker.resume(record);
                    }
                }
            }
            // What this node delivered before it stopped counts as delivered again.
            engine.remember_chat(group, store.recent_message_ids(group, CHAT_REMEMBERED)?);
        }
        Ok(Self {
            address: engine.address(),
            pending: store.unpublished()?.into(),
            engine,
            store,
            relay,
            metrics,
            events,
            subscribed: BTreeSet::new(),
            tracker,
            outgoing: Vec::new(),
            notes: Vec::new(),
            chain,
            verdicts,
            checking: BTreeSet::new(),
            outside,
            names,
            missing: BTreeMap::new(),
            history,
            fetch_due: BTreeSet::new(),
            last_tick_ns: unix_ns(now()),
            stopping: false,
            failed: None,
            _lock: lock,
        })
    }

    /// Proposals stored as open that the engine no longer holds (their epoch ended while
    /// this node was down, or it stopped before the engine kept open proposals): closed.
    fn close_proposals_the_engine_dropped(&mut self) -> Result<(), StorageError> {
        let proposals = self
            .store
            .open_proposals()?
            .into_iter()
            .filter(|p| !self.tracker.follows(&p.group, p.id))
            .map(|p| demls_storage::ProposalRecord {
                state: ProposalState::Closed,
                ..p
            })
            .collect::<Vec<_>>();
        if !proposals.is_empty() {
            self.store.commit_step(&Step {
                now: now(),
                proposals,
                ..Step::default()
            })?;
        }
        Ok(())
    }

    pub(super) async fn run(
        mut self,
        mut transport: mpsc::Receiver<TransportEvent>,
        mut jobs: mpsc::Receiver<Job>,
        mut verdicts: mpsc::UnboundedReceiver<Answer>,
        mut fetched: mpsc::UnboundedReceiver<Fetched>,
    ) -> Result<(), NodeError> {
        self.close_proposals_the_engine_dropped()?;
        self.settle().await?;
        let mut retry = tokio::time::interval(RETRY_INTERVAL);
        retry.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        housekeeping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while !self.stopping {
            let deadline = self.engine.poll_timeout().map(instant_of);
            tokio::select! {
                event = transport.recv() => {
                    let event = event.ok_or(NodeError::Transport(TransportError::Closed))?;
                    self.on_transport(event).await?;
                    // What already waits goes into the same step: under load, one transaction
                    // (one fsync, each group's MLS state written once) holds many messages.
                    self.take_waiting(&mut transport, STEP_MESSAGES - 1).await?;
                    self.settle().await?;
                }
                job = jobs.recv() => {
                    let Some(job) = job else { break };
                    let reply = job(&mut self);
                    self.settle().await?;
                    reply();
                }
                Some(answer) = verdicts.recv() => {
                    self.on_verdict(answer);
                    self.settle().await?;
                }
                Some(fetched) = fetched.recv() => {
                    self.on_fetched(fetched);
                    self.settle().await?;
                }
                () = wait_until(deadline) => {
                    // Hear before acting: a loaded node's timer can fall due while what the
                    // group said meanwhile (a commit that makes this member's turn moot) waits
                    // in its queue; acting first would commit a competing epoch.
                    self.take_waiting(&mut transport, STEP_MESSAGES).await?;
                    self.engine.handle_timeout(now());
                    self.settle().await?;
                }
                _ = retry.tick() => {
                    self.notice_sleep();
                    self.publish_pending().await?;
                    self.fetch_due_history();
                }
                _ = housekeeping.tick() => {
                    let before = Timestamp(now().0.saturating_sub(OUTBOX_KEPT_MS));
                    self.store.prune(before, EVENTS_KEPT)?;
                    self.history.prune(unix_ns(now()));
                    let (messages, bytes) = self.history.size();
                    self.metrics.archive_size(messages, bytes);
                }
            }
        }
        self.relay.shutdown().await;
        Ok(())
    }

    /// Takes in up to `most` transport events that already wait, without waiting for more.
    async fn take_waiting(
        &mut self,
        transport: &mut mpsc::Receiver<TransportEvent>,
        most: usize,
    ) -> Result<(), NodeError> {
        for _ in 0..most {
            let Ok(event) = transport.try_recv() else {
                break;
            };
            self.on_transport(event).await?;
        }
        Ok(())
    }

    /// Persists the engine's step, publishes, and tells subscribers.
    async fn settle(&mut self) -> Result<(), NodeError> {
        if let Err(error) = self.persist() {
            tracing::error!(%error, "cannot persist an engine step; stopping");
        }
        if let Some(reason) = &self.failed {
            return Err(NodeError::DataDir(format!("storage failed: {reason}")));
        }
        self.history.flush();
        self.publish_pending().await?;
        self.fetch_due_history();
        for event in self.outgoing.drain(..) {
            // No subscriber is fine.
            let _ = self.events.send(event);
        }
        Ok(())
    }

    /// Writes everything the engine did since the last call in one transaction. Its messages
    /// are queued for publishing and its events for subscribers; returns the chat messages
    /// it added to the history.
    pub fn persist(&mut self) -> Result<Vec<StoredMessage>, CommandError> {
        if self.failed.is_some() {
            return Err(CommandError::Stopped);
        }
        let now = now();
        let output = match self.engine.take_output() {
            Ok(output) => output,
            Err(error) => return Err(self.fail("engine state", error)),
        };
        let mut step = Step {
            now,
            storage: output.writes,
            transmits: output.transmits,
            snapshot: output.snapshot,
            ..Step::default()
        };
        let mut logged = Vec::new();
        for (group, body) in std::mem::take(&mut self.notes) {
            step.events.push(NewEvent {
                at: now,
                group: Some(group),
                body: to_text(&body),
            });
            logged.push((None, body));
        }
        for request in &output.requests {
            self.carry_out(request);
            if let Some(body) = json::request_body(request) {
                step.events.push(NewEvent {
                    at: now,
                    group: json::event_group(&body),
                    body: to_text(&body),
                });
                logged.push((None, body));
            }
        }
        for event in output.events {
            if let Some(body) = self.absorb(&event, now, &mut step) {
                step.events.push(NewEvent {
                    at: now,
                    group: json::event_group(&body),
                    body: to_text(&body),
                });
                logged.push((Some(event), body));
            }
        }
        if step.is_empty() {
            return Ok(Vec::new());
        }
        let receipt = self.store.commit_step(&step).inspect_err(|error| {
            self.failed = Some(error.to_string());
        })?;
        match &step.snapshot {
            SnapshotWrite::Unchanged => {}
            SnapshotWrite::Whole(whole) => self.metrics.snapshot_written(false, whole.len()),
            SnapshotWrite::Votes(votes) => self
                .metrics
                .snapshot_written(true, votes.iter().map(Vec::len).sum()),
        }
        for (seq, transmit) in receipt.outbox.iter().zip(step.transmits) {
            self.pending.push_back(OutboxEntry {
                seq: *seq,
                transmit,
                created_at: now,
                published_at: None,
            });
        }
        for (record, (event, body)) in receipt.events.iter().zip(logged) {
            self.outgoing
                .push(NodeEvent::new(Some(record.seq), now, body, event));
        }
        for stored in &receipt.delivered {
            self.outgoing.push(NodeEvent::new(
                Some(stored.seq),
                now,
                EventBody::Delivery {
                    group: stored.message.group.to_string(),
                    id: hex::encode(&stored.message.id),
                    delivery: json::delivery(stored.delivery),
                },
                None,
            ));
        }
        for stored in &receipt.messages {
            let m = &stored.message;
            self.outgoing.push(NodeEvent::new(
                Some(stored.seq),
                now,
                EventBody::Message(json::chat_message(
                    stored,
                    &self.engine.display_names(&m.group),
                )),
                Some(Event::Message {
                    group: m.group.clone(),
                    sender: m.sender,
                    text: m.text.clone(),
                    id: m.id.clone(),
                    sent_at: m.sent_at,
                    epoch: m.epoch,
                    lamport: m.lamport,
                }),
            ));
        }
        Ok(receipt.messages)
    }

    /// Stops the node on an engine step it cannot persist: its transmits must not leave.
    fn fail(&mut self, what: &str, error: demls_engine::EngineError) -> CommandError {
        self.failed = Some(format!("{what}: {error}"));
        CommandError::Refused(error)
    }

    /// Does what the engine asks.
    fn carry_out(&mut self, request: &Request) {
        match request {
            Request::Subscribe(group) => {
                self.subscribed.insert(group.clone());
                // A joiner finds the latest announcement, a returning member what it missed.
                self.fetch_due.insert(group.clone());
            }
            Request::Unsubscribe(group) => {
                self.subscribed.remove(group);
            }
            Request::AdmissionCheck {
                group,
                subject,
                policy,
            } => self.ask_chain(group, *subject, policy),
            other => tracing::warn!(?other, "a request this node does not know"),
        }
    }

    /// Updates the node's view from one engine event; what to log, if anything.
    fn absorb(&mut self, event: &Event, now: Timestamp, step: &mut Step) -> Option<EventBody> {
        match event {
            Event::Message {
                group,
                sender,
                text,
                id,
                sent_at,
                epoch,
                lamport,
            } => {
                let own = *sender == self.address;
                self.metrics.chat(if own { "out" } else { "in" });
                step.messages.push(NewMessage {
                    group: group.clone(),
                    id: id.clone(),
                    sender: *sender,
                    text: text.clone(),
                    sent_at: *sent_at,
                    epoch: *epoch,
                    lamport: *lamport,
                    received_at: now,
                    own,
                });
                return None;
            }
            Event::Acknowledged { group, id, .. } => {
                step.acknowledged.push((group.clone(), id.clone()));
                return None;
            }
            Event::Syncing { group, missing } => {
                self.missing.insert(group.clone(), *missing);
                if *missing > 0 && self.history.gap_due(group) {
                    self.fetch_due.insert(group.clone());
                }
            }
            Event::GroupCreated { group } => {
                if let Some(view) = self.engine.group(group) {
                    self.tracker.set_epoch(group, view.epoch);
                    self.metrics
                        .group_state(group.as_str(), view.epoch.0, view.members.len());
                }
            }
            Event::Joined {
                group,
                epoch,
                members,
            } => {
                self.stand_outside(group, None);
                self.tracker.set_epoch(group, *epoch);
                self.metrics
                    .group_state(group.as_str(), epoch.0, members.len());
            }
            Event::ProposalOpened {
                group,
                proposal,
                owner,
                change,
                deadline,
            } => {
                self.metrics.proposal_opened();
                step.proposals.push(self.tracker.opened(
                    group,
                    *proposal,
                    *owner,
                    change.to_owned(),
                    *deadline,
                    now,
                ));
            }
            Event::VoteRecorded {
                group,
                proposal,
                voter,
                yes,
            } => step
                .proposals
                .extend(self.tracker.voted(group, *proposal, *voter, *yes)),
            Event::ProposalDecided {
                group,
                proposal,
                approved,
                ..
            } => {
                let decided = self.tracker.decided(group, *proposal, *approved, now);
                self.metrics
                    .proposal_decided(*approved, decided.as_ref().map(|(_, took)| *took));
                step.proposals.extend(decided.map(|(record, _)| record));
            }
            Event::ProposalClosed {
                group,
                proposal,
                committed,
            } => step
                .proposals
                .extend(self.tracker.closed(group, *proposal, *committed)),
            Event::EpochChanged {
                group,
                epoch,
                members,
                ..
            } => {
                let latency = self.tracker.epoch_changed(group, *epoch, now);
                self.metrics.commit_applied(latency);
                self.metrics
                    .group_state(group.as_str(), epoch.0, members.len());
            }
            Event::CommitRejected { .. } => self.metrics.commit_rejected(),
            Event::JoinRefused {
                group,
                steward,
                reason,
            } => self.note_refused(group, *steward, reason),
            Event::Removed {
                group,
                epoch,
                by,
                reason,
            } => {
                step.proposals.extend(self.tracker.left(group));
                self.metrics.group_state(group.as_str(), 0, 0);
                let removal = demls_api::Removal {
                    epoch: epoch.0,
                    by: by.to_string(),
                    at: now.0,
                    reason: json::removal_reason(reason),
                };
                self.stand_outside(group, Some(Outside::Removed(removal)));
            }
            _ => {}
        }
        Some(json::event_body(event))
    }

    /// Reads the chain for an admission check on a task of its own; the verdict comes back
    /// through `verdicts` (see [`Runtime::on_verdict`]).
    fn ask_chain(&mut self, group: &GroupId, subject: Address, policy: &AdmissionPolicy) {
        if !self.checking.insert((group.clone(), subject)) {
            return;
        }
        let chain = self.chain.clone();
        let verdicts = self.verdicts.clone();
        let request = CheckRequest {
            policy: policy.clone(),
            subject,
        };
        let group = group.clone();
        tokio::spawn(async move {
            let verdict = chain.check(&request).await;
            // The node may have stopped meanwhile.
            let _ = verdicts.send(Answer {
                group,
                subject,
                verdict,
            });
        });
    }

    /// An admission verdict came back from the chain: the engine takes it as an input.
    fn on_verdict(&mut self, answer: Answer) {
        let Answer {
            group,
            subject,
            verdict,
        } = answer;
        self.checking.remove(&(group.clone(), subject));
        tracing::info!(%group, %subject, %verdict, "admission check");
        self.metrics.admission_check(match verdict {
            Verdict::Admit => "admit",
            Verdict::Refuse(_) => "refuse",
            Verdict::Unavailable(_) => "unavailable",
        });
        self.notes.push((
            group.clone(),
            EventBody::AdmissionVerdict {
                group: group.to_string(),
                subject: subject.to_string(),
                admitted: verdict.admits(),
                verdict: verdict.to_string(),
            },
        ));
        if let Err(error) = self
            .engine
            .admission_verdict(&group, subject, verdict, now())
        {
            tracing::debug!(%group, %subject, %error, "admission verdict not taken");
        }
    }

    async fn on_transport(&mut self, event: TransportEvent) -> Result<(), NodeError> {
        let at = now();
        match event {
            TransportEvent::Message {
                pubsub_topic,
                message,
                hash,
                ..
            } => {
                if self.on_message(&message.content_topic, &message.payload) {
                    self.history.heard(&pubsub_topic, hash, &message);
                }
            }
            TransportEvent::PeerConnected(peer) => {
                tracing::info!(%peer, "peer connected");
                self.outgoing.push(NodeEvent::new(
                    None,
                    at,
                    EventBody::PeerConnected {
                        peer: peer.to_string(),
                    },
                    None,
                ));
                let groups: Vec<GroupId> = self.subscribed.iter().cloned().collect();
                for group in &groups {
                    self.history.fetch(&self.relay, group, &[peer], unix_ns(at));
                }
            }
            TransportEvent::PeerDisconnected(peer) => {
                tracing::info!(%peer, "peer disconnected");
                self.outgoing.push(NodeEvent::new(
                    None,
                    at,
                    EventBody::PeerDisconnected {
                        peer: peer.to_string(),
                    },
                    None,
                ));
            }
            TransportEvent::Listening(addr) => tracing::info!(%addr, "listening"),
        }
        Ok(())
    }

    /// Hands a network message to the engine; returns whether the engine took it.
    fn on_message(&mut self, content_topic: &str, payload: &[u8]) -> bool {
        let Some(topic) = topics::engine_topic(content_topic) else {
            self.metrics.ignored("foreign_topic");
            return false;
        };
        if !self.subscribed.contains(&topic.group) {
            self.metrics.ignored("other_group");
            return false;
        }
        match self.engine.handle_message(payload, now()) {
            Ok(()) => {
                self.metrics.handled(match topic.kind {
                    TopicKind::Welcome => "welcome",
                    TopicKind::Application => "application",
                });
                true
            }
            Err(error) => {
                tracing::debug!(group = %topic.group, reason = error.kind(), %error, "message dropped");
                self.metrics
                    .engine_dropped(topic.group.as_str(), error.kind());
                false
            }
        }
    }

    /// Messages a peer's archive gave back: those this node does not hold go to the engine,
    /// oldest first, as if they came from the relay.
    fn on_fetched(&mut self, fetched: Fetched) {
        let more = self.history.fetched(&fetched);
        let mut new = 0;
        for stored in &fetched.messages {
            if self.history.holds(&stored.hash) {
                continue;
            }
            new += 1;
            if self.on_message(&stored.message.content_topic, &stored.message.payload) {
                self.history
                    .heard(&stored.pubsub_topic, stored.hash, &stored.message);
            }
        }
        let bytes = fetched
            .messages
            .iter()
            .map(|m| prost::Message::encoded_len(&m.message))
            .sum();
        self.metrics
            .history_fetched(fetched.messages.len(), new, bytes);
        if new > 0 {
            tracing::info!(group = %fetched.group, peer = %fetched.peer, new, "history fetched");
        }
        if more && self.subscribed.contains(&fetched.group) {
            // The peer holds more than one fetch takes: the rest, from where it stopped.
            self.history
                .fetch(&self.relay, &fetched.group, &[fetched.peer], unix_ns(now()));
        }
    }

    /// Fetches the history of the groups due from a few connected peers.
    fn fetch_due_history(&mut self) {
        if self.fetch_due.is_empty() {
            return;
        }
        let connected = self.relay.connected_peers();
        if connected.is_empty() {
            // Kept due: the first peer to connect is asked anyway.
            return;
        }
        let at = unix_ns(now());
        for group in std::mem::take(&mut self.fetch_due) {
            if self.subscribed.contains(&group) {
                let peers = self.history.sources(connected.clone());
                self.history.fetch(&self.relay, &group, &peers, at);
            }
        }
    }

    /// A clock that jumped since the last tick means the node slept or was stopped: what the
    /// groups said meanwhile is fetched.
    fn notice_sleep(&mut self) {
        let at = unix_ns(now());
        let gap = at.saturating_sub(self.last_tick_ns);
        self.last_tick_ns = at;
        if gap > WAKE_JUMP_NS {
            tracing::info!(
                slept_secs = gap / 1_000_000_000,
                "woke up; fetching what the groups said"
            );
            self.fetch_due.extend(self.subscribed.iter().cloned());
        }
    }

    /// Publishes the outbox in order; stops at the first message that cannot go yet. Marks
    /// what went out as published in one transaction.
    async fn publish_pending(&mut self) -> Result<(), NodeError> {
        let mut last_out = None;
        while let Some(entry) = self.pending.front() {
            let seq = entry.seq;
            let published = match topics::content_topic(&entry.transmit.topic) {
                Ok(topic) => {
                    self.relay
                        .publish(&topic, entry.transmit.payload.clone(), None)
                        .await
                }
                Err(error) => Err(PublishError::Gossipsub(error.to_string())),
            };
            match published {
                Ok(published) => {
                    self.history.heard(
                        &published.pubsub_topic.to_string(),
                        published.hash,
                        &published.message,
                    );
                    self.metrics.published();
                }
                Err(PublishError::Duplicate) => self.metrics.published(),
                Err(PublishError::NoPeers) => break,
                Err(PublishError::QueuesFull) => {
                    self.metrics.publish_failed("queues_full");
                    break;
                }
                Err(PublishError::Closed) => return Err(TransportError::Closed.into()),
                Err(error) => {
                    // Cannot ever be published (too large, bad topic): give it up.
                    tracing::error!(%error, seq, "message cannot be published; dropped");
                    self.metrics.publish_failed("unpublishable");
                }
            }
            last_out = Some(seq);
            self.pending.pop_front();
        }
        let Some(seq) = last_out else {
            return Ok(());
        };
        for stored in self.store.mark_published(seq, now())? {
            self.outgoing.push(NodeEvent::new(
                Some(stored.seq),
                now(),
                EventBody::Delivery {
                    group: stored.message.group.to_string(),
                    id: hex::encode(&stored.message.id),
                    delivery: json::delivery(stored.delivery),
                },
                None,
            ));
        }
        Ok(())
    }

    // ----- commands and views (run through `NodeHandle::call`) -----

    /// Stops the node after this step.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// The node.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            address: self.address.to_string(),
            peer_id: self.relay.peer_id().to_string(),
            listen_addrs: addrs(&self.relay.listen_addrs()),
            pubsub_topic: topics::pubsub_topic(&self.relay).to_string(),
            peers: self
                .relay
                .connected_peers()
                .iter()
                .map(ToString::to_string)
                .collect(),
            vote_policy: json::vote_policy(self.engine.config().vote_policy),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// The engine's view of a group.
    pub fn group_view(&self, group: &GroupId) -> Option<GroupView> {
        self.engine.group(group)
    }

    /// How far this node's join of `group` has come, while it asks to join it.
    pub fn join_stage(&self, group: &GroupId) -> Option<demls_engine::JoinStage> {
        self.engine.join_stage(group)
    }

    /// Where this node stands in `group`, if it is outside it (refused, or removed).
    pub fn outside(&self, group: &GroupId) -> Option<&super::consent::Outside> {
        self.outside.get(group)
    }

    /// Groups this node is in or joining.
    pub fn groups(&self) -> Vec<GroupSummary> {
        let members = self.engine.groups().filter_map(|g| self.engine.group(g));
        let mut list: Vec<GroupSummary> = members
            .map(|view| GroupSummary {
                id: view.id.to_string(),
                name: view.id.to_string(),
                state: GroupState::Member,
                epoch: Some(view.epoch.0),
                members: Some(view.members.len()),
                is_steward: view.is_steward,
                admission: Some(view.admission.to_string()),
                refusal: None,
                removal: None,
            })
            .collect();
        list.extend(
            self.engine
                .pending_joins()
                .map(|g| json::joining(g.as_str())),
        );
        list.extend(self.outside.iter().map(|(g, o)| o.summary(g)));
        for summary in &mut list {
            if let Ok(id) = GroupId::new(&summary.id) {
                summary.name = self.names.name_of(&id);
            }
        }
        list
    }

    /// A group this node asks to join, as the API shows it: with its name here.
    pub(super) fn joining(&self, group: &GroupId) -> GroupSummary {
        GroupSummary {
            name: self.names.name_of(group),
            ..json::joining(group.as_str())
        }
    }

    /// The group a command names: by its name here, or by its identifier.
    pub fn resolve(&self, name: &str) -> Result<GroupId, CommandError> {
        self.names.resolve(name)
    }

    pub(super) fn member_view(&self, name: &str) -> Result<GroupView, CommandError> {
        let group = self.resolve(name)?;
        if let Some(view) = self.engine.group(&group) {
            return Ok(view);
        }
        if self.engine.pending_joins().any(|g| *g == group) {
            return Err(CommandError::Joining(name.to_owned()));
        }
        if let Some(outside) = self.outside.get(&group) {
            return Err(outside.error(&group));
        }
        Err(CommandError::UnknownGroup(name.to_owned()))
    }

    /// One group in detail.
    pub fn group(&self, name: &str) -> Result<GroupDetail, CommandError> {
        let view = self.member_view(name)?;
        let scoring = &self.engine.config().scoring;
        let stewards: Vec<String> = view.stewards.iter().map(ToString::to_string).collect();
        let members = view
            .members
            .iter()
            .map(|m| {
                let key = view.key_ages.iter().find(|age| age.member == *m);
                Member {
                    address: m.to_string(),
                    display_name: view.display_names.get(m).cloned(),
                    roles: if view.stewards.contains(m) {
                        vec![Role::Steward, Role::Member]
                    } else {
                        vec![Role::Member]
                    },
                    is_self: *m == self.address,
                    key_epoch: key.map_or(view.epoch.0, |age| age.epoch.0),
                    key_replaced_at: key.and_then(|age| age.at).map(|t| t.0),
                }
            })
            .collect();
        let open = view
            .open_proposals
            .iter()
            .filter(|t| t.decided.is_none())
            .count();
        Ok(GroupDetail {
            id: view.id.to_string(),
            name: self.names.name_of(&view.id),
            epoch: view.epoch.0,
            members,
            stewards: stewards.clone(),
            is_steward: view.is_steward,
            admission: view.admission.to_string(),
            gated: view.admission.gate().is_some(),
            join_rule: json::join_rule(view.join_rule),
            membership_vote_timeout_secs: view.membership_vote_timeout_secs,
            rotate_after_secs: view.rotation.after_secs,
            rotate_after_messages: view.rotation.after_messages,
            invitations: view
                .invitations
                .iter()
                .map(|(invitee, inviter, expires_at)| KnownInvitation {
                    invitee: invitee.to_string(),
                    inviter: inviter.to_string(),
                    expires_at: expires_at.0,
                })
                .collect(),
            authenticator: hex::encode(&view.authenticator),
            health: Health {
                epoch: view.epoch.0,
                stewards,
                peers: self.relay.connected_peers().len(),
                dropped: self.metrics.group_drops(view.id.as_str()),
                open_proposals: open,
                last_commit_at: self.tracker.last_commit(&view.id).map(|t| t.0),
                queued: self
                    .pending
                    .iter()
                    .filter(|e| e.transmit.topic.group == view.id)
                    .count(),
                missing_messages: self.missing.get(&view.id).copied().unwrap_or(0),
                steward_scores: view
                    .steward_scores
                    .iter()
                    .map(|(steward, score)| StewardScore {
                        address: steward.to_string(),
                        score: *score,
                    })
                    .collect(),
                score_default: scoring.default_score,
                score_threshold: scoring.threshold,
            },
        })
    }

    /// Creates a group with this node as steward.
    pub fn create_group(
        &mut self,
        name: &str,
        params: GroupParams,
    ) -> Result<GroupDetail, CommandError> {
        group_id(name)?;
        let known = self
            .engine
            .groups()
            .chain(self.engine.pending_joins())
            .chain(self.outside.keys())
            .cloned()
            .collect::<Vec<_>>();
        if self.names.taken(name, known) {
            return Err(CommandError::GroupExists(name.to_owned()));
        }
        // An open group, or one that admits whoever passes a gate, is public: found by its
        // name. An invite-only group gets a random identifier.
        let public = params.join_rule == JoinRule::Open || params.admission.gate().is_some();
        let group = if public {
            group_id(name)?
        } else {
            GroupNames::fresh_id()?
        };
        self.engine.create_group(group.clone(), params, now())?;
        self.names.name(&mut self.store, &group, name)?;
        self.group(group.as_str())
    }

    /// Asks to join a group (optionally only through `steward`).
    pub fn join(
        &mut self,
        name: &str,
        steward: Option<Address>,
    ) -> Result<GroupSummary, CommandError> {
        let group = self.resolve(name)?;
        self.ensure_not_joining(&group)?;
        self.engine.request_join(group.clone(), steward, now())?;
        self.stand_outside(&group, None);
        Ok(self.joining(&group))
    }

    /// Proposes removing a member.
    pub fn propose_remove(&mut self, name: &str, member: Address) -> Result<(), CommandError> {
        let view = self.member_view(name)?;
        self.engine.propose_remove(&view.id, member, now())?;
        Ok(())
    }

    /// Proposals of a group, oldest first.
    pub fn proposals(&self, name: &str) -> Result<Vec<Proposal>, CommandError> {
        let view = self.member_view(name)?;
        // Who may vote is the engine's to say (only the stewards, on a membership change in a
        // small-consensus group); a proposal it no longer holds has no voters to wait for.
        let voters: BTreeMap<ProposalId, usize> = view
            .open_proposals
            .iter()
            .map(|t| (t.id, t.voters))
            .collect();
        Ok(self
            .store
            .proposals(&view.id)?
            .iter()
            .filter_map(|p| {
                let current = p.epoch == view.epoch;
                json::proposal(p, voters.get(&p.id).copied().filter(|_| current))
            })
            .collect())
    }

    /// Votes on an open proposal of the current epoch.
    pub fn vote(
        &mut self,
        name: &str,
        id: ProposalId,
        yes: bool,
    ) -> Result<Proposal, CommandError> {
        let view = self.member_view(name)?;
        match self.tracker.get(&view.id, id) {
            None => {
                let earlier = self.store.proposals(&view.id)?;
                return Err(match earlier.iter().rev().find(|p| p.id == id) {
                    Some(p) => CommandError::ProposalClosed {
                        id: id.to_string(),
                        state: p.state.as_str(),
                    },
                    None => CommandError::UnknownProposal(id.to_string()),
                });
            }
            Some(p) if p.state != ProposalState::Open => {
                return Err(CommandError::ProposalClosed {
                    id: id.to_string(),
                    state: p.state.as_str(),
                });
            }
            Some(_) => {}
        }
        self.engine.vote(&view.id, id, yes, now())?;
        self.persist()?;
        let voters = self.engine.group(&view.id).map(|v| v.members.len());
        self.tracker
            .get(&view.id, id)
            .and_then(|p| json::proposal(p, voters))
            .ok_or_else(|| CommandError::UnknownProposal(id.to_string()))
    }

    /// Sends a chat message; returns it as stored.
    pub fn send(&mut self, name: &str, text: &str) -> Result<Message, CommandError> {
        let view = self.member_view(name)?;
        if text.is_empty() {
            return Err(CommandError::Invalid("empty message".into()));
        }
        self.engine.send_message(&view.id, text, now())?;
        let stored = self.persist()?;
        stored
            .iter()
            .find(|m| m.message.own && m.message.group == view.id)
            .map(|m| json::message(m, &view.display_names))
            .ok_or_else(|| CommandError::Invalid("the engine sent no message".into()))
    }

    /// History of a group (also after leaving it).
    pub fn messages(
        &self,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>, CommandError> {
        let group = self.resolve(name)?;
        let list = self.store.messages(&group, after, limit)?;
        if list.is_empty() && after == 0 && self.engine.group(&group).is_none() {
            self.member_view(name)?;
        }
        let names = self.engine.display_names(&group);
        Ok(list.iter().map(|m| json::message(m, &names)).collect())
    }

    /// Sets this node's display name in a group (empty: none).
    pub fn set_display_name(&mut self, name: &str, display: &str) -> Result<(), CommandError> {
        let view = self.member_view(name)?;
        self.engine.set_display_name(&view.id, display, now())?;
        self.persist()?;
        Ok(())
    }

    /// Leaves a group (a self-removal that needs no vote).
    pub fn leave(&mut self, name: &str) -> Result<(), CommandError> {
        let view = self.member_view(name)?;
        self.engine.leave(&view.id, now())?;
        Ok(())
    }

    /// Replaces this node's leaf keys in a group (an update that needs no vote).
    pub fn rotate(&mut self, name: &str) -> Result<(), CommandError> {
        let view = self.member_view(name)?;
        self.engine.rotate(&view.id, now())?;
        Ok(())
    }

    /// Sets how this node votes, and remembers it.
    pub fn set_vote_policy(&mut self, manual: bool) -> Result<NodeInfo, CommandError> {
        let policy = if manual {
            VotePolicy::Manual
        } else {
            VotePolicy::Automatic
        };
        self.store
            .put_setting(VOTE_POLICY, policy_setting(policy))?;
        self.engine.set_vote_policy(policy, now());
        Ok(self.info())
    }

    /// Event log entries after `after`. An entry the store cannot give back as an event (a
    /// damaged store) is left out.
    pub fn recent_events(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<demls_api::NodeEvent>, CommandError> {
        Ok(self
            .store
            .events(after, limit)?
            .into_iter()
            .filter_map(|record| {
                let body = serde_json::from_str(&record.event.body)
                    .inspect_err(|error| {
                        tracing::warn!(seq = record.seq, %error, "unreadable event log entry");
                    })
                    .ok()?;
                Some(demls_api::NodeEvent {
                    seq: Some(record.seq),
                    at: record.event.at.0,
                    body,
                })
            })
            .collect())
    }
}
