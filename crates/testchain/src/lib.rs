//! For tests only: a real chain, Foundry's anvil on 127.0.0.1 (from `interop/anvil`, installed
//! by `npm ci --prefix interop/anvil`, or `$ANVIL`), and the test token contracts
//! (`crates/chain/contracts`) deployed on it. Used by the tests of `demls-chain` and of the
//! node (`crates/node/tests/gated.rs`). Everything here panics on failure: it is test set-up.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use alloy::network::TransactionBuilder;
pub use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolCall;

alloy::sol! {
    function mint(address to, uint256 amount) external;
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 tokenId) external;
}

/// anvil's chain id unless told otherwise.
pub const ANVIL_CHAIN_ID: u64 = 31337;

/// The anvil binary: `$ANVIL`, or the one npm installed in `interop/anvil`.
fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ANVIL") {
        return path.into();
    }
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/anvil/node_modules/@foundry-rs")
        .join(format!("anvil-{os}-{arch}"))
        .join("bin/anvil");
    assert!(
        path.is_file(),
        "{} is missing: run `npm ci --prefix interop/anvil` (from the repository root; it ships \
         anvil for Linux x64), or set ANVIL to an anvil binary",
        path.display()
    );
    path
}

/// A running anvil, killed when dropped.
pub struct Anvil {
    child: Child,
    port: u16,
}

impl Anvil {
    /// A fresh chain with 4 unlocked accounts of 10 000 ETH, on a free port.
    pub fn start() -> Self {
        Self::spawn(0, ANVIL_CHAIN_ID)
    }

    /// A fresh chain with another chain id.
    pub fn with_chain_id(chain_id: u64) -> Self {
        Self::spawn(0, chain_id)
    }

    /// A fresh chain on `port` (to bring an endpoint back where it was).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, ANVIL_CHAIN_ID)
    }

    fn spawn(port: u16, chain_id: u64) -> Self {
        let mut child = Command::new(anvil_binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--accounts",
                "4",
            ])
            .args(["--chain-id", &chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start anvil");
        let stdout = child.stdout.take().expect("anvil stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read until anvil says where it listens, then drain its log so it never blocks.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(
                        addr.rsplit(':')
                            .next()
                            .and_then(|p| p.trim().parse::<u16>().ok()),
                    );
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                panic!(
                    "anvil did not start listening: {other:?}, exit status {:?}",
                    child.wait()
                );
            }
        };
        Anvil { child, port }
    }

    /// Its JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops anvil now (the endpoint goes down).
    pub fn stop(mut self) -> u16 {
        self.kill();
        self.port
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Drives a chain: sends transactions from anvil's unlocked accounts, deploys and mints.
pub struct Chain {
    /// A plain HTTP provider for the chain.
    pub provider: RootProvider,
    /// anvil's unlocked accounts (at least 4, 10 000 ETH each at start).
    pub accounts: Vec<Address>,
}

impl Chain {
    /// Connects to `anvil` and lists its accounts.
    pub async fn connect(anvil: &Anvil) -> Self {
        // reqwest is built without a default TLS provider (see Cargo.toml); plain clients need one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = RootProvider::new_http(anvil.url().parse().expect("url"));
        let accounts = provider.get_accounts().await.expect("eth_accounts");
        assert!(accounts.len() >= 4, "anvil has {} accounts", accounts.len());
        Chain { provider, accounts }
    }

    /// Sends a transaction from an unlocked account, waits (at most 10 s) until anvil has mined
    /// it, and checks it succeeded.
    pub async fn send(&self, tx: TransactionRequest) -> TransactionReceipt {
        let hash = *self
            .provider
            .send_transaction(tx)
            .await
            .expect("eth_sendTransaction")
            .tx_hash();
        for _ in 0..500 {
            if let Some(receipt) = self
                .provider
                .get_transaction_receipt(hash)
                .await
                .expect("receipt")
            {
                assert!(receipt.status(), "transaction {hash} reverted");
                return receipt;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("transaction {hash} was not mined in 10 s");
    }

    /// Sends `tx` (see [`Chain::send`]); returns the block it is in.
    async fn mined_in(&self, tx: TransactionRequest) -> u64 {
        self.send(tx).await.block_number.expect("block number")
    }

    /// Sends `wei` from `from` to `to`; returns the block it is in.
    pub async fn pay(&self, from: Address, to: Address, wei: U256) -> u64 {
        self.mined_in(
            TransactionRequest::default()
                .with_from(from)
                .with_to(to)
                .with_value(wei),
        )
        .await
    }

    /// Calls `contract` from `from` with `data`; returns the block it is in.
    pub async fn call(&self, from: Address, contract: Address, data: Vec<u8>) -> u64 {
        self.mined_in(
            TransactionRequest::default()
                .with_from(from)
                .with_to(contract)
                .with_input(data),
        )
        .await
    }

    /// Deploys creation bytecode given as hex; returns the contract's address.
    pub async fn deploy(&self, bytecode_hex: &str) -> Address {
        let code = alloy::hex::decode(bytecode_hex.trim()).expect("bytecode hex");
        let tx = TransactionRequest::default()
            .with_from(self.accounts[0])
            .with_deploy_code(code);
        self.send(tx)
            .await
            .contract_address
            .expect("contract address")
    }

    /// The test ERC-20 (`contracts/TestToken.sol`, 18 decimals, symbol DTT).
    pub async fn deploy_token(&self) -> Address {
        self.deploy(include_str!("../../chain/contracts/TestToken.bin"))
            .await
    }

    /// The test ERC-721 (`contracts/TestNft.sol`).
    pub async fn deploy_nft(&self) -> Address {
        self.deploy(include_str!("../../chain/contracts/TestNft.bin"))
            .await
    }

    /// `mint(to, amount)` on either test contract (an amount for the ERC-20, a token id for
    /// the ERC-721); returns the block.
    pub async fn mint(&self, contract: Address, to: Address, amount: U256) -> u64 {
        self.call(
            self.accounts[0],
            contract,
            mintCall { to, amount }.abi_encode(),
        )
        .await
    }

    /// ERC-20 `transfer` from an unlocked account; returns the block.
    pub async fn transfer_token(
        &self,
        token: Address,
        from: Address,
        to: Address,
        value: U256,
    ) -> u64 {
        self.call(from, token, transferCall { to, value }.abi_encode())
            .await
    }

    /// ERC-721 `transferFrom` by the owner; returns the block.
    pub async fn transfer_nft(
        &self,
        nft: Address,
        from: Address,
        to: Address,
        token_id: U256,
    ) -> u64 {
        self.call(
            from,
            nft,
            transferFromCall {
                from,
                to,
                tokenId: token_id,
            }
            .abi_encode(),
        )
        .await
    }

    /// `anvil_setBalance`.
    pub async fn set_balance(&self, who: Address, wei: U256) {
        let () = self
            .provider
            .raw_request("anvil_setBalance".into(), (who, wei))
            .await
            .expect("anvil_setBalance");
    }

    /// The latest block number.
    pub async fn block_number(&self) -> u64 {
        self.provider
            .get_block_number()
            .await
            .expect("eth_blockNumber")
    }
}

/// A demls address from an alloy one.
pub fn demls(address: Address) -> demls_identity::Address {
    demls_identity::Address::new(address.into_array())
}

/// `text` ETH in wei.
pub fn eth(text: &str) -> U256 {
    U256::from_be_bytes(
        demls_policy::U256::parse_units(text, 18)
            .expect("amount")
            .to_be_bytes(),
    )
}
