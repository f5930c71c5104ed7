//! The config file of `demls node` (TOML): its bootstrap peers and the settings that are
//! otherwise flags. A flag given on the command line (or through its environment variable)
//! wins over the file; the file wins over the flag's default.

use std::collections::HashSet;
use std::fmt::Display;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use demls_transport::peer_exchange::parse_enr_text;
use demls_transport::{BootstrapEnr, Multiaddr};
use serde::Deserialize;

use crate::node::NodeArgs;

/// The config file read from the data directory when `--config` is not given.
pub const CONFIG_FILE: &str = "config.toml";

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong kind; the
    /// message names the line, the column and the key.
    #[error("config file {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's error, with the line and the offending text.
        source: toml::de::Error,
    },
}

/// A value read from a TOML string with its `FromStr` (multiaddrs, socket addresses), so that
/// a bad one is reported by toml with its line.
struct Parsed<T>(T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: Display,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);
        impl<T> serde::de::Visitor<'_> for Visit<T>
        where
            T: FromStr,
            T::Err: Display,
        {
            type Value = Parsed<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Parsed<T>, E> {
                text.parse()
                    .map(Parsed)
                    .map_err(|e| E::custom(format!("{text:?}: {e}")))
            }
        }
        deserializer.deserialize_str(Visit(PhantomData))
    }
}

/// A peer to dial at start: a multiaddr (`/ip4/…/tcp/…/p2p/…`) or an ENR (`enr:…`, whose
/// address and peer id are read from it).
pub struct BootstrapPeer(Multiaddr);

impl FromStr for BootstrapPeer {
    type Err = String;

    fn from_str(text: &str) -> Result<BootstrapPeer, String> {
        if text.starts_with("enr:") {
            return parse_enr_text(text)
                .map(|peer| BootstrapPeer(peer.addr))
                .map_err(|reason| format!("not a usable ENR ({reason})"));
        }
        text.parse().map(BootstrapPeer).map_err(|e| {
            format!("neither a multiaddr ({e}) nor an ENR (which starts with \"enr:\")")
        })
    }
}

/// Reads `--peer`: a multiaddr or an ENR.
pub fn parse_peer(text: &str) -> Result<Multiaddr, String> {
    text.parse().map(|BootstrapPeer(addr)| addr)
}

/// The retention in days, within what `--retention-days` accepts.
struct RetentionDays(u32);

impl<'de> Deserialize<'de> for RetentionDays {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let days = u32::deserialize(deserializer)?;
        if days == 0 || i64::from(days) > crate::node::MAX_RETENTION_DAYS {
            return Err(serde::de::Error::custom(format!(
                "{days} days: between 1 and {} expected",
                crate::node::MAX_RETENTION_DAYS
            )));
        }
        Ok(RetentionDays(days))
    }
}

/// The config file's contents; every key is optional, and named as the flag it stands for
/// (`bootstrap` stands for `--peer`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct NodeFile {
    bootstrap: Option<Vec<Parsed<BootstrapPeer>>>,
    listen: Option<Vec<Parsed<Multiaddr>>>,
    key: Option<PathBuf>,
    api: Option<SocketAddr>,
    cluster_id: Option<u16>,
    wire_limit: Option<usize>,
    target_peers: Option<usize>,
    max_peers: Option<usize>,
    mdns: Option<bool>,
    eth_rpc: Option<String>,
    retention_days: Option<RetentionDays>,
    log: Option<String>,
    discv5_port: Option<u16>,
    discv5_bootstrap: Option<Vec<Parsed<BootstrapEnr>>>,
    shard: Option<Vec<u16>>,
    num_shards_in_network: Option<std::num::NonZeroU16>,
}

/// Which config file applies: `--config`, else the data directory's `config.toml` if it
/// exists, else none.
fn config_path(args: &NodeArgs) -> Option<PathBuf> {
    if let Some(path) = &args.config {
        return Some(path.clone());
    }
    let path = args.data_dir.join(CONFIG_FILE);
    path.exists().then_some(path)
}

/// Reads and checks a config file.
fn read(path: &Path) -> Result<NodeFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Fills the options of `args` not in `given` (the ids of the flags given on the command line
/// or through their environment variables) from the config file, if there is one. Returns the
/// file used.
pub fn apply(args: &mut NodeArgs, given: &HashSet<String>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = config_path(args) else {
        return Ok(None);
    };
    let file = read(&path)?;
    let from_file = |id: &str| !given.contains(id);
    macro_rules! take {
        ($field:ident, $key:ident, $convert:expr) => {
            if let Some(value) = file.$key.filter(|_| from_file(stringify!($field))) {
                args.$field = $convert(value);
            }
        };
    }
    take!(peer, bootstrap, |list: Vec<Parsed<BootstrapPeer>>| list
        .into_iter()
        .map(|Parsed(BootstrapPeer(addr))| addr)
        .collect());
    take!(listen, listen, |list: Vec<Parsed<Multiaddr>>| list
        .into_iter()
        .map(|Parsed(addr)| addr)
        .collect());
    // A relative key path is relative to the config file, wherever the node is started from.
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    take!(key, key, |key: PathBuf| Some(base.join(key)));
    take!(api, api, |api| api);
    take!(cluster_id, cluster_id, |id| id);
    take!(wire_limit, wire_limit, |n| n);
    take!(target_peers, target_peers, |n| n);
    take!(max_peers, max_peers, |n| n);
    take!(mdns, mdns, |on| on);
    take!(eth_rpc, eth_rpc, Some);
    take!(retention_days, retention_days, |RetentionDays(days)| days);
    take!(log, log, |log| log);
    take!(discv5_port, discv5_port, Some);
    take!(discv5_bootstrap, discv5_bootstrap, |list: Vec<
        Parsed<BootstrapEnr>,
    >| list
        .into_iter()
        .map(|Parsed(enr)| enr)
        .collect());
    take!(shard, shard, |list| list);
    take!(num_shards_in_network, num_shards_in_network, Some);
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn args(dir: &Path, extra: &[&str]) -> NodeArgs {
        let mut argv = vec!["demls".to_owned(), "--data-dir".to_owned()];
        argv.push(dir.display().to_string());
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        Wrap::parse_from(argv).node
    }

    fn with_file(text: &str, given: &[&str], extra: &[&str]) -> Result<NodeArgs, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(CONFIG_FILE), text).expect("written");
        let mut args = args(dir.path(), extra);
        let given = given.iter().map(|s| (*s).to_owned()).collect();
        apply(&mut args, &given)?;
        Ok(args)
    }

    const PEER: &str =
        "/ip4/10.0.0.5/tcp/60001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    #[test]
    fn the_file_sets_what_no_flag_gives() {
        let text = format!(
            "bootstrap = [\"{PEER}\"]\nlisten = [\"/ip4/0.0.0.0/tcp/60001\"]\n\
             target-peers = 3\nmdns = true\nretention-days = 7\nkey = \"wallet.key\"\n\
             num-shards-in-network = 8\nshard = [2, 5]\n"
        );
        let args = with_file(&text, &[], &[]).expect("a good file");
        assert_eq!(args.peer, vec![PEER.parse::<Multiaddr>().expect("addr")]);
        assert_eq!(args.listen[0].to_string(), "/ip4/0.0.0.0/tcp/60001");
        assert_eq!(
            (args.target_peers, args.mdns, args.retention_days),
            (3, true, 7)
        );
        assert_eq!(args.shard, vec![2, 5]);
        assert_eq!(args.num_shards_in_network.map(u16::from), Some(8));
        let key = args.key.expect("a key path");
        assert!(key.is_absolute() && key.ends_with("wallet.key"), "{key:?}");
        // Untouched: the flags' defaults.
        assert_eq!(args.max_peers, demls_transport::DEFAULT_MAX_PEERS);
    }

    #[test]
    fn flags_given_win_over_the_file() {
        let args = with_file(
            "target-peers = 3\nmax-peers = 9\n",
            &["target_peers"],
            &["--target-peers", "5"],
        )
        .expect("a good file");
        assert_eq!((args.target_peers, args.max_peers), (5, 9));
    }

    #[test]
    fn bad_files_name_the_line_and_the_key() {
        let cases = [
            ("mdns = true\ntarget-peers = \"many\"\n", "line 2"),
            ("mdns = true\n\ntarget_peer = 3\n", "target_peer"),
            (
                "bootstrap = [\"/ip4/1.2.3.4/tcp/1\", \"nonsense\"]\n",
                "nonsense",
            ),
            ("bootstrap = [\"enr:-IS4QHCYrYZbAKW\"]\n", "ENR"),
            ("retention-days = 0\n", "retention"),
            ("api = \"localhost\"\n", "line 1"),
            ("listen = \"/ip4/1.2.3.4/tcp/1\"\n", "listen"),
            ("mdns = tru\n", "line 1"),
        ];
        for (text, expected) in cases {
            let error = with_file(text, &[], &[])
                .err()
                .unwrap_or_else(|| panic!("{text:?} is refused"));
            assert!(matches!(error, ConfigError::Parse { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn a_missing_named_file_is_an_error_and_no_file_is_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut named = args(dir.path(), &["--config", "/nonexistent/demls.toml"]);
        let error = apply(&mut named, &HashSet::new()).expect_err("missing");
        assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
        let mut none = args(dir.path(), &[]);
        assert!(apply(&mut none, &HashSet::new()).expect("fine").is_none());
    }

    #[test]
    fn peers_are_multiaddrs_or_enrs() {
        assert!(parse_peer(PEER).is_ok());
        assert!(parse_peer("enr:xyz").is_err());
        assert!(parse_peer("10.0.0.5:60001").is_err());
    }
}
