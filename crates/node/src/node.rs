//! `demls node`: a long-running node with its control API.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::PathBuf;

use clap::Args;
use demls_chain::RetryPolicy;
use demls_engine::EngineConfig;
use std::time::Duration;

use demls_storage::{ArchiveLimits, DB_FILE, DEFAULT_RETENTION, Durability};
use demls_transport::segmentation::DEFAULT_WIRE_LIMIT;
use demls_transport::{
    BootstrapEnr, DEFAULT_CLUSTER_ID, DEFAULT_MAX_PEERS, DEFAULT_SHARD, DEFAULT_TARGET_PEERS,
    Discv5Config, Multiaddr, SegmentationConfig, TransportConfig,
};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::api::{self, ApiState};
use crate::passphrase;
use crate::runtime::admission::ChainAccess;
use crate::runtime::{self, NodeConfig, NodeError, NodeHandle, setup};

/// Options of `demls node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Where the node keeps its state (created on first start).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address to listen on for peers, e.g. /ip4/0.0.0.0/tcp/60001 (repeatable).
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    pub listen: Vec<Multiaddr>,
    /// A peer to connect to, e.g. /ip4/10.0.0.5/tcp/60001/p2p/12D3… or an ENR (enr:…)
    /// (repeatable; replaces the config file's bootstrap list).
    #[arg(long, value_parser = crate::config::parse_peer)]
    pub peer: Vec<Multiaddr>,
    /// Wallet key file (hex or Ethereum keystore) to use on first start; a new key is made
    /// otherwise.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Address of the control API (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub api: SocketAddr,
    /// Waku cluster id (peers of other clusters are disconnected).
    #[arg(long, default_value_t = DEFAULT_CLUSTER_ID)]
    pub cluster_id: u16,
    /// The largest WakuMessage this node sends, in bytes: larger ones go in segments with
    /// Reed-Solomon parity (The Waku Network carries at most 150,000).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_WIRE_LIMIT)]
    pub wire_limit: usize,
    /// How many peers to seek through Waku peer exchange (asking connected peers for the
    /// others' records and dialling them); 0 keeps to --peer and the peers that dial in.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TARGET_PEERS)]
    pub target_peers: usize,
    /// The most peers kept connected; above it the newest (other than --peer ones) are
    /// disconnected.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PEERS)]
    pub max_peers: usize,
    /// Find peers on the LAN with mDNS (needs a --listen address on the LAN, e.g.
    /// /ip4/0.0.0.0/tcp/60001).
    #[arg(long)]
    pub mdns: bool,
    /// Ethereum JSON-RPC endpoint (http:// or https://) that answers this node's admission
    /// checks in gated groups: needed to create a gated group, and to vote YES on joiners of
    /// one. Without it this node admits nobody to a gated group (open groups need none).
    #[arg(
        long,
        value_name = "URL",
        env = "DEMLS_ETH_RPC",
        hide_env_values = true
    )]
    pub eth_rpc: Option<String>,
    /// How many days of its groups' messages the node keeps in its archive and serves to
    /// peers' history queries (Waku Store): a member away for longer cannot get what was said
    /// before that from this node.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_RETENTION_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=MAX_RETENTION_DAYS))]
    pub retention_days: u32,
    /// Log filter: a level (error, warn, info, debug, trace) or a tracing directive list.
    #[arg(long, default_value = "info")]
    pub log: String,
    /// A shard of the cluster to relay on (repeatable, below 1024). Without
    /// --num-shards-in-network the first is where messages are published (0 if none is
    /// given); with it, these are relayed on besides the shard of demls's content topics.
    #[arg(long, value_name = "N")]
    pub shard: Vec<u16>,
    /// Autosharding: the number of shards in the network (8 on The Waku Network). Messages
    /// then go to the shard their content topic maps to (one shard for all demls groups).
    /// Without it, static sharding on --shard.
    #[arg(long, value_name = "N")]
    pub num_shards_in_network: Option<NonZeroU16>,
    /// A TOML config file with the bootstrap peers and any of the options above (see
    /// docs/node.md); without it, DATA_DIR/config.toml is read if it exists. Options given
    /// here win over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run discv5 on this UDP port (0 picks one) to find peers through the discovery DHT;
    /// the node's ENR (printed at start) then carries it. Gives the node a secp256k1 peer id.
    #[arg(long, value_name = "PORT")]
    pub discv5_port: Option<u16>,
    /// An ENR (enr:…, with an IPv4 address and UDP port) to start discv5 from (repeatable;
    /// needs --discv5-port).
    #[arg(long, value_name = "ENR")]
    pub discv5_bootstrap: Vec<BootstrapEnr>,
}

/// Seconds in a day.
const DAY_SECS: u64 = 24 * 3600;
/// The archive's retention unless `--retention-days` says otherwise.
const DEFAULT_RETENTION_DAYS: u32 = (DEFAULT_RETENTION.as_secs() / DAY_SECS) as u32;
/// The longest retention accepted: ten years, far beyond any group's need, so that the age in
/// nanoseconds cannot overflow.
pub(crate) const MAX_RETENTION_DAYS: i64 = 3650;

type NodeResult = Result<(), Box<dyn std::error::Error>>;

/// Runs the node until Ctrl-C or a fatal error.
pub fn run(args: NodeArgs) -> NodeResult {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: NodeArgs) -> NodeResult {
    let chain = match &args.eth_rpc {
        // The URL may hold an API key: the error never repeats it.
        Some(url) => ChainAccess::endpoint(url, RetryPolicy::default())
            .map_err(|e| format!("--eth-rpc: {e}"))?,
        None => ChainAccess::none(),
    };
    // Without autosharding the first --shard is where messages go; with it, --shard only adds
    // shards to relay on (the transport's `shard` is then unused).
    let (shard, extra_shards) = match (args.num_shards_in_network, args.shard.split_first()) {
        (None, Some((first, rest))) => (*first, rest.to_vec()),
        (None, None) => (DEFAULT_SHARD, Vec::new()),
        (Some(_), _) => (DEFAULT_SHARD, args.shard.clone()),
    };
    let discv5 = match (args.discv5_port, args.discv5_bootstrap.is_empty()) {
        (Some(port), _) => Some(Discv5Config {
            port,
            bootstrap: args.discv5_bootstrap.clone(),
        }),
        (None, true) => None,
        (None, false) => return Err("--discv5-bootstrap needs --discv5-port".into()),
    };
    let new = !args.data_dir.join(DB_FILE).exists();
    let passphrase = passphrase::obtain(new)?;
    let node = runtime::start(NodeConfig {
        data_dir: args.data_dir.clone(),
        passphrase,
        key_file: args.key.clone(),
        transport: TransportConfig {
            cluster_id: args.cluster_id,
            shard,
            extra_shards,
            num_shards_in_network: args.num_shards_in_network,
            listen: args.listen.clone(),
            peers: args.peer.clone(),
            peer_exchange: args.target_peers > 0,
            target_peers: args.target_peers,
            max_peers: args.max_peers,
            mdns: args.mdns,
            discv5,
            segmentation: SegmentationConfig {
                wire_limit: args.wire_limit,
                ..SegmentationConfig::default()
            },
            ..TransportConfig::default()
        },
        engine: EngineConfig::default(),
        durability: Durability::Full,
        chain: chain.clone(),
        archive: ArchiveLimits {
            max_age: Duration::from_secs(u64::from(args.retention_days) * DAY_SECS),
            ..ArchiveLimits::default()
        },
    })
    .await?;
    if chain.configured() {
        // Connect now, so that the log says early whether the endpoint works; checks connect
        // again later if it does not.
        tokio::spawn(async move {
            if let Err(error) = chain.checker().await {
                tracing::warn!(%error, "the Ethereum RPC endpoint cannot be read yet; admission checks will try again");
            }
        });
    }
    if !args.api.ip().is_loopback() {
        tracing::warn!(api = %args.api, "the control API is not on loopback: anyone who can reach it and has the token controls this node");
    }
    let listener = TcpListener::bind(args.api).await?;
    let url = format!("http://{}", listener.local_addr()?);
    setup::write_private(&args.data_dir.join(setup::API_URL_FILE), url.as_bytes())?;
    let token = setup::api_token(&args.data_dir)?;
    let code = setup::one_time_code()?;
    println!("demls node {}", env!("CARGO_PKG_VERSION"));
    println!("address:   {}", node.address());
    for addr in node.relay().listen_addrs() {
        println!("listening: {addr}");
    }
    if let Some(enr) = node.relay().enr() {
        println!("enr:       {enr}");
    }
    println!("pubsub:    {}", crate::topics::pubsub_topic(node.relay()));
    println!("api:       {url}");
    println!("sign in:   {url}/#signin={code}");
    println!("data dir:  {}", args.data_dir.display());
    let app = api::router(ApiState::new(node.clone(), token, Some(code)));
    let mut terminate = signal(SignalKind::terminate())?;
    let result: NodeResult = tokio::select! {
        served = axum::serve(listener, app) => served.map_err(Into::into),
        stopped = node.wait() => stopped.map_err(Into::into),
        _ = tokio::signal::ctrl_c() => stop(&node).await,
        _ = terminate.recv() => stop(&node).await,
    };
    result
}

/// Stops the node after the step in progress.
async fn stop(node: &NodeHandle) -> NodeResult {
    tracing::info!("stopping");
    match node.shutdown().await {
        Ok(()) | Err(NodeError::Stopped) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
