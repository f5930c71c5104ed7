//! The data directory: opening the store, the wallet, the MLS signer, the peer key and the
//! API token, creating them on first start.

use std::fs::{self, File};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use demls_engine::{Engine, EngineConfig, MlsSigner, MlsStore, Timestamp};
use demls_identity::Wallet;
use demls_storage::{Durability, Store};
use zeroize::Zeroizing;

use super::NodeError;

/// The wallet, as an Ethereum keystore encrypted with the passphrase.
pub const WALLET_FILE: &str = "wallet.json";
/// The API bearer token (mode 0600).
pub const TOKEN_FILE: &str = "api-token";
/// The URL of the running node's API, rewritten at each start.
pub const API_URL_FILE: &str = "api-url";
/// Held locked while a node runs on the directory.
const LOCK_FILE: &str = "lock";

const SIGNER_SECRET: &str = "mls_signer_secret";
const SIGNER_PUBLIC: &str = "mls_signer_public";
const NODE_KEY: &str = "libp2p_node_key";

/// Everything a node loads from its data directory.
pub struct Loaded {
    /// The open store.
    pub store: Store,
    /// The engine, new or restored.
    pub engine: Engine,
    /// The libp2p identity key.
    pub node_key: [u8; 32],
    /// Held for as long as the node runs.
    pub lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::DataDir(format!("{}: {e}", path.display()))
}

/// Writes `contents` to a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), NodeError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(contents).map_err(io(path))
}

fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, NodeError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(|e| NodeError::DataDir(format!("random: {e}")))?;
    Ok(bytes)
}

/// The API token of `dir`, created on first use.
pub fn api_token(dir: &Path) -> Result<String, NodeError> {
    let path = dir.join(TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(token) if token.trim().len() >= 32 => Ok(token.trim().to_owned()),
        _ => {
            let token = hex::encode(random_bytes::<32>()?.as_ref());
            write_private(&path, token.as_bytes())?;
            Ok(token)
        }
    }
}

/// A random one-time code (for the sign-in link).
pub fn one_time_code() -> Result<String, NodeError> {
    Ok(hex::encode(random_bytes::<16>()?.as_ref()))
}

fn wallet(dir: &Path, key_file: Option<&Path>, passphrase: &str) -> Result<Wallet, NodeError> {
    let path = dir.join(WALLET_FILE);
    let given = key_file
        .map(|k| Wallet::load(k, Some(passphrase)).map_err(|e| NodeError::Key(k.into(), e)))
        .transpose()?;
    if path.exists() {
        let wallet =
            Wallet::load(&path, Some(passphrase)).map_err(|e| NodeError::Key(path.clone(), e))?;
        if let Some(given) = given.filter(|g| g.address() != wallet.address()) {
            return Err(NodeError::DataDir(format!(
                "{} belongs to {}, not to the --key address {}",
                dir.display(),
                wallet.address(),
                given.address()
            )));
        }
        return Ok(wallet);
    }
    let wallet = given.unwrap_or_else(Wallet::generate);
    wallet
        .save_keystore(&path, passphrase)
        .map_err(|e| NodeError::Key(path.clone(), e))?;
    Ok(wallet)
}

fn signer(store: &mut Store) -> Result<MlsSigner, NodeError> {
    if let (Some(secret), Some(public)) =
        (store.secret(SIGNER_SECRET)?, store.secret(SIGNER_PUBLIC)?)
    {
        return Ok(MlsSigner::from_bytes(&secret, &public));
    }
    let signer = MlsSigner::generate()?;
    store.put_secret(SIGNER_SECRET, signer.secret_bytes())?;
    store.put_secret(SIGNER_PUBLIC, signer.public_bytes())?;
    Ok(signer)
}

fn node_key(store: &mut Store) -> Result<[u8; 32], NodeError> {
    if let Some(key) = store.secret(NODE_KEY)? {
        return <[u8; 32]>::try_from(key.as_slice())
            .map_err(|_| NodeError::DataDir("the stored peer key is not 32 bytes".into()));
    }
    let key = random_bytes::<32>()?;
    store.put_secret(NODE_KEY, key.as_ref())?;
    Ok(*key)
}

/// Opens `dir` (creating what is missing) and builds the engine: restored from the stored
/// MLS state and snapshot, or new on first start.
pub fn load(
    dir: &Path,
    key_file: Option<&Path>,
    passphrase: &str,
    durability: Durability,
    config: EngineConfig,
    now: Timestamp,
) -> Result<Loaded, NodeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let lock_path: PathBuf = dir.join(LOCK_FILE);
    let lock = File::create(&lock_path).map_err(io(&lock_path))?;
    lock.try_lock()
        .map_err(|_| NodeError::DataDir(format!("another node runs on {}", dir.display())))?;
    let mut store = Store::open(dir, passphrase, durability)?;
    let wallet = wallet(dir, key_file, passphrase)?;
    let signer = signer(&mut store)?;
    let node_key = node_key(&mut store)?;
    let retention = config.epoch_retention;
    let builder = Engine::builder(wallet, &signer).config(config);
    let engine = match store.engine_snapshot()? {
        Some(snapshot) => builder
            .store(store.load_mls(retention)?)
            .restore(&snapshot, now)?,
        None => builder.store(MlsStore::journaled(retention)).build(),
    };
    Ok(Loaded {
        store,
        engine,
        node_key,
        lock,
    })
}
