//! The node runtime: one task owns the engine and drives it from the network, the API and
//! its timers. After every engine step it persists the step in one transaction, then publishes
//! the step's messages, then tells subscribers what happened.

pub mod admission;
pub mod consent;
mod core;
mod history;
pub mod json;
mod names;
pub mod setup;
mod track;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use demls_api::EventBody;
use demls_engine::{EngineConfig, EngineError, Event, GroupId, Timestamp};
use demls_identity::{Address, IdentityError};
use demls_storage::{ArchiveLimits, Durability, StorageError};
use demls_transport::{Multiaddr, RelayHandle, TransportConfig, TransportError, WakuRelay};
use tokio::sync::{broadcast, mpsc, oneshot};
use zeroize::Zeroizing;

use self::admission::ChainAccess;
pub use self::core::Runtime;
use crate::metrics::Metrics;
use crate::topics;

/// How a node is set up.
pub struct NodeConfig {
    /// Where its state lives.
    pub data_dir: PathBuf,
    /// Decrypts the wallet and the secrets in the store.
    pub passphrase: Zeroizing<String>,
    /// A wallet key file to use on first start (hex or keystore).
    pub key_file: Option<PathBuf>,
    /// Listen addresses, peers, cluster (the node key is taken from the store).
    pub transport: TransportConfig,
    /// Protocol engine settings.
    pub engine: EngineConfig,
    /// How hard the store works to survive power loss.
    pub durability: Durability,
    /// The Ethereum JSON-RPC endpoint that answers admission checks, if any.
    pub chain: ChainAccess,
    /// How much of its groups' history the node keeps and serves to peers.
    pub archive: ArchiveLimits,
}

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory cannot be used.
    #[error("data directory: {0}")]
    DataDir(String),
    /// A key file cannot be read.
    #[error("key file {}: {}", .0.display(), .1)]
    Key(PathBuf, IdentityError),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The engine could not be built or restored.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No such group here.
    #[error("group '{0}' does not exist on this node")]
    UnknownGroup(String),
    /// This node asked to join the group and is not a member yet.
    #[error("this node is still waiting to join '{0}'")]
    Joining(String),
    /// The group exists already.
    #[error("group '{0}' already exists on this node")]
    GroupExists(String),
    /// A steward refused this node's request to join.
    #[error("the request to join '{group}' was refused by its steward {steward}: {reason}")]
    JoinRefused {
        /// The group.
        group: String,
        /// The steward that refused.
        steward: String,
        /// Why.
        reason: String,
    },
    /// This node was a member and is no more.
    #[error(
        "this node is no longer a member of '{group}': {}",
        describe_removal(removal)
    )]
    Removed {
        /// The group.
        group: String,
        /// Why.
        removal: Box<demls_api::Removal>,
    },
    /// No join request of this address waits in the group.
    #[error("no request of {joiner} to join '{group}' is waiting")]
    NoSuchRequest {
        /// The group.
        group: String,
        /// The address.
        joiner: String,
    },
    /// No such proposal.
    #[error("no proposal {0} in this group's current epoch")]
    UnknownProposal(String),
    /// The proposal is decided or closed.
    #[error("proposal {id} is {state}: votes are closed")]
    ProposalClosed {
        /// The proposal.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The engine refused.
    #[error("refused: {0}")]
    Refused(EngineError),
    /// The store failed; the node stops.
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

impl From<EngineError> for CommandError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::UnknownGroup(g) => Self::UnknownGroup(g.to_string()),
            EngineError::GroupExists(g) => Self::GroupExists(g.to_string()),
            EngineError::InvalidGroupId(e) => Self::Invalid(e.to_string()),
            e @ EngineError::InvalidDisplayName(_) => Self::Invalid(e.to_string()),
            other => Self::Refused(other),
        }
    }
}

/// Why a member is no longer one, in words.
pub fn describe_removal(removal: &demls_api::Removal) -> String {
    use demls_api::RemovalReason as R;
    let why = match &removal.reason {
        R::Left => "it left".to_owned(),
        R::Voted {
            proposal,
            owner,
            yes,
            no,
            voters,
        } => format!(
            "the members voted it out (proposal {proposal} by {owner}: YES {yes}, NO {no} of {voters} voters)"
        ),
        R::Emergency {
            proposal,
            violation,
        } => format!("an emergency ({proposal}) found it breaking the rules ({violation:?})"),
        R::Replaced => "its place was taken by a new key package of its own address".to_owned(),
    };
    format!(
        "{why}; removed in epoch {} by {}",
        removal.epoch, removal.by
    )
}

/// Something that happened on the node, for the WebSocket stream and the demo.
#[derive(Clone, Debug)]
pub struct NodeEvent {
    /// The event as the API shows it.
    pub api: demls_api::NodeEvent,
    /// The engine event behind it, if any.
    pub engine: Option<Event>,
}

impl NodeEvent {
    /// The event `body` at `at`: `seq` is its event log position, or for `message` and
    /// `delivery` the message's history position.
    pub fn new(seq: Option<u64>, at: Timestamp, body: EventBody, engine: Option<Event>) -> Self {
        Self {
            api: demls_api::NodeEvent {
                seq,
                at: at.0,
                body,
            },
            engine,
        }
    }
}

/// The current time as the engine counts it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

type Reply = Box<dyn FnOnce() + Send>;
type Job = Box<dyn FnOnce(&mut Runtime) -> Reply + Send>;
/// Tells how the node's task ended.
type Done = oneshot::Receiver<Result<(), NodeError>>;

/// A handle to a running node; cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<NodeEvent>,
    relay: RelayHandle,
    metrics: Arc<Metrics>,
    address: Address,
    chain: ChainAccess,
    done: Arc<tokio::sync::Mutex<Option<Done>>>,
}

impl NodeHandle {
    /// Runs `f` on the node's task, then persists and publishes what it did, then returns its
    /// result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runtime) -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |rt| {
            let out = f(rt);
            Box::new(move || {
                // The caller may have gone away; nothing to tell then.
                let _ = tx.send(out);
            })
        });
        self.jobs.send(job).await.map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Like [`NodeHandle::call`] for commands that can be refused.
    pub async fn command<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Runtime) -> Result<T, CommandError> + Send + 'static,
    ) -> Result<T, CommandError> {
        self.call(f).await.map_err(|_| CommandError::Stopped)?
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The relay.
    pub fn relay(&self) -> &RelayHandle {
        &self.relay
    }

    /// The node's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The node's way to the chain (for admission checks and gated groups).
    pub fn chain(&self) -> &ChainAccess {
        &self.chain
    }

    /// Stops the node (after the step in progress) and waits until it has.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        // Ignored if the node already stopped: `wait` reports how it ended.
        let _ = self.call(Runtime::stop).await;
        self.wait().await
    }

    /// Waits until the node stops; its error if it failed.
    pub async fn wait(&self) -> Result<(), NodeError> {
        let mut done = self.done.lock().await;
        match done.take() {
            Some(rx) => rx.await.unwrap_or(Err(NodeError::Stopped)),
            None => Ok(()),
        }
    }
}

/// The file in the data directory that keeps the peers learned through peer exchange.
pub const PEERS_FILE: &str = "peers";

/// Starts a node: loads (or creates) its state, starts the relay, and spawns the task that owns
/// the engine.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    let loaded = setup::load(
        &config.data_dir,
        config.key_file.as_deref(),
        &config.passphrase,
        config.durability,
        config.engine,
        now(),
    )?;
    let (fetched, fetched_rx) = mpsc::unbounded_channel();
    let history = history::History::open(
        &config.data_dir,
        &config.passphrase,
        config.archive,
        fetched,
    )?;
    let mut transport = TransportConfig {
        node_key: Some(loaded.node_key),
        store: Some(Arc::new(history.backend())),
        // Peers learned through peer exchange are dialled again after a restart.
        peers_file: Some(config.data_dir.join(PEERS_FILE)),
        ..config.transport
    };
    // With autosharding, the node relays from its start on the shard every group's messages go
    // to (one shard for all: see `topics::routing_topic`).
    transport
        .content_topics
        .push(topics::routing_topic().map_err(|e| TransportError::Config(e.to_string()))?);
    let (relay, transport_events) = WakuRelay::start(transport).await?;
    let metrics = Arc::new(Metrics::default());
    let (events, _) = broadcast::channel(4096);
    let (jobs, job_rx) = mpsc::channel(256);
    let (verdicts, verdict_rx) = mpsc::unbounded_channel();
    let address = loaded.engine.address();
    let runtime = Runtime::new(
        loaded,
        relay.clone(),
        metrics.clone(),
        events.clone(),
        (config.chain.clone(), verdicts),
        history,
    )?;
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let result = runtime
            .run(transport_events, job_rx, verdict_rx, fetched_rx)
            .await;
        if let Err(error) = &result {
            tracing::error!(%error, "node stopped");
        }
        // Nobody may be waiting.
        let _ = done_tx.send(result);
    });
    Ok(NodeHandle {
        jobs,
        events,
        relay,
        metrics,
        address,
        chain: config.chain,
        done: Arc::new(tokio::sync::Mutex::new(Some(done_rx))),
    })
}

/// The multiaddrs of a relay, as strings.
pub fn addrs(list: &[Multiaddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Parses a group name given by a user.
pub fn group_id(name: &str) -> Result<GroupId, CommandError> {
    GroupId::new(name).map_err(|e| CommandError::Invalid(e.to_string()))
}
