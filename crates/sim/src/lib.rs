//! A deterministic in-memory network for demls engines.
//!
//! Every node is a sans-IO [`Engine`]. A transmit on a group's topic is
//! delivered to every other node subscribed to that group after a random
//! per-delivery latency, so messages reorder; deliveries can also be lost or
//! duplicated. Time is virtual and advances from event to event, so a run
//! that would take minutes of timeouts takes milliseconds, and a seed fixes
//! every network decision.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use demls_engine::{Engine, EngineError, Event, GroupId, Request, Timestamp, Transmit};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Index of a node in the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// How the simulated network behaves.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Seed of every random network decision.
    pub seed: u64,
    /// Mean one-way latency.
    pub latency_ms: u64,
    /// Latency varies uniformly by up to this much either way.
    pub jitter_ms: u64,
    /// Probability that a delivery is lost.
    pub loss: f64,
    /// Probability that a delivery arrives twice.
    pub duplicate: f64,
    /// Virtual time at the start.
    pub start: Timestamp,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            latency_ms: 50,
            jitter_ms: 20,
            loss: 0.0,
            duplicate: 0.0,
            start: Timestamp(1_700_000_000_000),
        }
    }
}

/// Traffic counters of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages published.
    pub messages_sent: u64,
    /// Bytes published.
    pub bytes_sent: u64,
    /// Deliveries received.
    pub messages_received: u64,
    /// Bytes of the deliveries received.
    pub bytes_received: u64,
    /// Wall-clock time spent in the node's engine: inputs, timers and commands.
    pub compute: Duration,
}

/// One simulated node: an engine, its subscriptions and what happened to it.
pub struct SimNode {
    /// The node's engine.
    pub engine: Engine,
    /// Groups whose topics it listens to.
    pub subscriptions: BTreeSet<GroupId>,
    /// Every event, with the virtual time it happened.
    pub events: Vec<(Timestamp, Event)>,
    /// Every request to the shell (admission checks are answered by the test), with when.
    pub requests: Vec<(Timestamp, Request)>,
    /// Every dropped input, with the reason.
    pub drops: Vec<(Timestamp, String)>,
    /// Traffic counters.
    pub traffic: Traffic,
    /// An offline node neither sends nor receives; its clock still runs.
    pub online: bool,
    /// Nodes in different partitions cannot reach each other.
    pub partition: u8,
}

struct Delivery {
    at: Timestamp,
    seq: u64,
    to: NodeId,
    from: NodeId,
    /// Shared by every delivery of one publish.
    transmit: Arc<Transmit>,
}

impl PartialEq for Delivery {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delivery {}
impl PartialOrd for Delivery {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delivery {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The simulated network and its nodes.
pub struct Sim {
    now: Timestamp,
    rng: ChaCha8Rng,
    config: NetConfig,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<Delivery>>,
    seq: u64,
    /// Optional tap: every transmit, as sent (for tests that capture ciphertexts).
    pub wiretap: Vec<(NodeId, Transmit)>,
    tap: bool,
    /// Timer firings at the current instant, to catch an engine whose timer never advances.
    spins: (Timestamp, usize),
    /// Each node's [`Engine::poll_timeout`], asked again only after the sim
    /// touched the node (`None` inside: unknown): an engine's timers change
    /// only through its inputs, and asking all of them at every step costs
    /// O(nodes) engine calls per delivery.
    timers: Vec<Option<Option<Timestamp>>>,
    /// The known timers of [`Sim::timers`] in firing order (time, then node), so that
    /// finding the next one is not a scan over every node at every step.
    due: BTreeSet<(Timestamp, usize)>,
    /// Nodes whose timer is unknown, to be asked before the next step.
    touched: Vec<usize>,
    /// Frozen nodes (a stopped process) and the deliveries waiting in their sockets.
    frozen: HashMap<usize, Vec<Delivery>>,
}

impl Sim {
    /// An empty network.
    pub fn new(config: NetConfig) -> Self {
        Self {
            now: config.start,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            wiretap: Vec::new(),
            tap: false,
            spins: (Timestamp::default(), 0),
            timers: Vec::new(),
            due: BTreeSet::new(),
            touched: Vec::new(),
            frozen: HashMap::new(),
        }
    }

    /// Stops a node's process (SIGSTOP, a closed lid): it serves no timer, and what reaches
    /// it waits in its sockets until [`Sim::thaw`].
    pub fn freeze(&mut self, id: NodeId) {
        self.frozen.entry(id.0).or_default();
    }

    /// Wakes a frozen node as a stopped process wakes with its timers overdue and its
    /// sockets full: its overdue timers fire first, then what waited arrives, in order.
    pub fn thaw(&mut self, id: NodeId) {
        let Some(waiting) = self.frozen.remove(&id.0) else {
            return;
        };
        let now = self.now;
        let node = &mut self.nodes[id.0];
        if node.engine.poll_timeout().is_some_and(|due| due <= now) {
            let start = Instant::now();
            node.engine.handle_timeout(now);
            node.traffic.compute += start.elapsed();
            self.pump(id);
        }
        for mut delivery in waiting {
            self.seq += 1;
            delivery.at = now;
            delivery.seq = self.seq;
            self.queue.push(Reverse(delivery));
        }
    }

    /// Records every transmit in [`Sim::wiretap`] from now on.
    pub fn enable_wiretap(&mut self) {
        self.tap = true;
    }

    /// Changes loss and duplication from now on.
    pub fn set_faults(&mut self, loss: f64, duplicate: f64) {
        self.config.loss = loss;
        self.config.duplicate = duplicate;
    }

    /// The virtual clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Adds a node.
    pub fn add(&mut self, engine: Engine) -> NodeId {
        self.nodes.push(SimNode {
            engine,
            subscriptions: BTreeSet::new(),
            events: Vec::new(),
            requests: Vec::new(),
            drops: Vec::new(),
            traffic: Traffic::default(),
            online: true,
            partition: 0,
        });
        self.timers.push(None);
        self.touched.push(self.nodes.len() - 1);
        NodeId(self.nodes.len() - 1)
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[id.0]
    }

    /// A node, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        self.touch(id.0);
        &mut self.nodes[id.0]
    }

    /// Forgets node `i`'s timer: it is asked again before the next step.
    fn touch(&mut self, i: usize) {
        match self.timers[i].take() {
            None => return,
            Some(Some(due)) => {
                self.due.remove(&(due, i));
            }
            Some(None) => {}
        }
        self.touched.push(i);
    }

    /// Takes the events a node recorded so far, leaving its list empty (a long run
    /// drains them as it goes). Unlike [`Sim::node_mut`] this does not touch the engine,
    /// so its timer need not be asked again.
    pub fn take_events(&mut self, id: NodeId) -> Vec<(Timestamp, Event)> {
        std::mem::take(&mut self.nodes[id.0].events)
    }

    /// Every node id.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes.len()).map(NodeId)
    }

    /// Runs a command on a node's engine at the current time, then routes its output.
    pub fn act<T>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut Engine, Timestamp) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let now = self.now;
        let node = &mut self.nodes[id.0];
        let start = Instant::now();
        let result = f(&mut node.engine, now);
        node.traffic.compute += start.elapsed();
        self.pump(id);
        result
    }

    /// Hands bytes to a node as if they arrived from the network now.
    pub fn inject(&mut self, id: NodeId, bytes: &[u8]) -> Result<(), EngineError> {
        let now = self.now;
        self.act(id, |engine, _| engine.handle_message(bytes, now))
    }

    /// Moves a node's transmits into the network and records its events.
    fn pump(&mut self, id: NodeId) {
        self.touch(id.0);
        let now = self.now;
        let node = &mut self.nodes[id.0];
        while let Some(request) = node.engine.poll_request() {
            match &request {
                Request::Subscribe(group) => {
                    node.subscriptions.insert(group.clone());
                }
                Request::Unsubscribe(group) => {
                    node.subscriptions.remove(group);
                }
                _ => {}
            }
            node.requests.push((now, request));
        }
        while let Some(event) = node.engine.poll_event() {
            node.events.push((now, event));
        }
        while let Some(transmit) = self.nodes[id.0].engine.poll_transmit() {
            self.broadcast(id, transmit);
        }
    }

    fn broadcast(&mut self, from: NodeId, transmit: Transmit) {
        let sender = &mut self.nodes[from.0];
        sender.traffic.messages_sent += 1;
        sender.traffic.bytes_sent += transmit.payload.len() as u64;
        if self.tap {
            self.wiretap.push((from, transmit.clone()));
        }
        let transmit = Arc::new(transmit);
        if !sender.online {
            return;
        }
        let partition = sender.partition;
        let receivers: Vec<NodeId> = self
            .ids()
            .filter(|to| *to != from)
            .filter(|to| {
                let node = &self.nodes[to.0];
                node.subscriptions.contains(&transmit.topic.group) && node.partition == partition
            })
            .collect();
        for to in receivers {
            if self.rng.random_bool(self.config.loss) {
                continue;
            }
            let copies = if self.rng.random_bool(self.config.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let at = self.now.plus_ms(self.latency());
                self.seq += 1;
                self.queue.push(Reverse(Delivery {
                    at,
                    seq: self.seq,
                    to,
                    from,
                    transmit: Arc::clone(&transmit),
                }));
            }
        }
    }

    fn latency(&mut self) -> u64 {
        let low = self.config.latency_ms.saturating_sub(self.config.jitter_ms);
        let high = self.config.latency_ms + self.config.jitter_ms;
        self.rng.random_range(low..=high)
    }

    /// Processes the next delivery or timer, advancing the clock. False when nothing is pending before `until`.
    pub fn step(&mut self, until: Timestamp) -> bool {
        let next_delivery = self.queue.peek().map(|Reverse(d)| d.at);
        for i in std::mem::take(&mut self.touched) {
            if self.timers[i].is_none() {
                let due = self.nodes[i].engine.poll_timeout();
                self.timers[i] = Some(due);
                if let Some(due) = due {
                    self.due.insert((due, i));
                }
            }
        }
        let next_timer = self
            .due
            .iter()
            .find(|(_, i)| !self.frozen.contains_key(i))
            .copied();
        let next = match (next_delivery, next_timer) {
            (None, None) => return false,
            (Some(d), None) => d,
            (None, Some((t, _))) => t,
            (Some(d), Some((t, _))) => d.min(t),
        };
        if next > until {
            return false;
        }
        self.now = self.now.max(next);
        if next_delivery == Some(next) {
            if let Some(Reverse(delivery)) = self.queue.pop() {
                self.deliver(delivery);
            }
        } else if let Some((_, i)) = next_timer {
            let now = self.now;
            self.spins = if self.spins.0 == now {
                (now, self.spins.1 + 1)
            } else {
                (now, 1)
            };
            assert!(
                self.spins.1 < 10_000,
                "node {i} asks for its timer at {now:?} again and again without progress"
            );
            let node = &mut self.nodes[i];
            let start = Instant::now();
            node.engine.handle_timeout(now);
            node.traffic.compute += start.elapsed();
            self.pump(NodeId(i));
        }
        true
    }

    fn deliver(&mut self, delivery: Delivery) {
        let to = delivery.to;
        if let Some(waiting) = self.frozen.get_mut(&to.0) {
            waiting.push(delivery);
            return;
        }
        let sender_partition = self.nodes[delivery.from.0].partition;
        let node = &mut self.nodes[to.0];
        let reachable = node.online && sender_partition == node.partition;
        if !reachable || !node.subscriptions.contains(&delivery.transmit.topic.group) {
            return;
        }
        node.traffic.messages_received += 1;
        node.traffic.bytes_received += delivery.transmit.payload.len() as u64;
        let now = self.now;
        let start = Instant::now();
        let result = node.engine.handle_message(&delivery.transmit.payload, now);
        node.traffic.compute += start.elapsed();
        if let Err(error) = result {
            node.drops.push((now, error.kind().to_owned()));
            tracing::trace!(node = to.0, %error, "drop");
        }
        self.pump(to);
    }

    /// Runs until `done` holds or virtual time passes `limit_ms` from now; returns whether `done` held.
    pub fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let until = self.now.plus_ms(limit_ms);
        loop {
            if done(self) {
                return true;
            }
            if !self.step(until) {
                self.now = self.now.max(until);
                return done(self);
            }
        }
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(ms, |_| false);
    }

    /// Counts of dropped inputs by reason, over all nodes.
    pub fn drop_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for node in &self.nodes {
            for (_, reason) in &node.drops {
                *counts.entry(reason.clone()).or_default() += 1;
            }
        }
        counts
    }
}
