//! Admission checks against a real chain: anvil on 127.0.0.1, with the test ERC-20 and ERC-721
//! deployed. Needs `npm ci --prefix interop/anvil` (or `ANVIL=/path/to/anvil`); fails, never
//! skips, without it.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use demls_chain::{ChainChecker, ChainError, RetryPolicy};
use demls_policy::{
    AdmissionPolicy, BlockRef, CheckRequest, Gate, Refusal, Requirement, Unavailable, Verdict,
};
use support::{ANVIL_CHAIN_ID, Anvil, Chain, FAST_RETRY, FastChecker, demls, eth};

fn policy(chain_id: u64, block: BlockRef, requirement: Requirement) -> AdmissionPolicy {
    AdmissionPolicy::Gated(Gate {
        chain_id,
        block,
        requirement,
    })
}

fn on_anvil(block: BlockRef, requirement: Requirement) -> AdmissionPolicy {
    policy(ANVIL_CHAIN_ID, block, requirement)
}

fn amount(value: U256) -> demls_policy::U256 {
    demls_policy::U256::from_be_bytes(value.to_be_bytes())
}

fn min_eth(text: &str) -> Requirement {
    Requirement::MinEth {
        min_wei: amount(eth(text)),
    }
}

fn min_dtt(token: Address, text: &str) -> Requirement {
    Requirement::MinErc20 {
        token: demls(token),
        min_amount: amount(eth(text)),
        decimals: 18,
        symbol: "DTT".into(),
    }
}

fn nft(token: Address, token_id: Option<u64>) -> Requirement {
    Requirement::Erc721 {
        token: demls(token),
        token_id: token_id.map(|id| demls_policy::U256::from(u128::from(id))),
    }
}

async fn check(checker: &ChainChecker, policy: &AdmissionPolicy, subject: Address) -> Verdict {
    checker
        .check(&CheckRequest {
            policy: policy.clone(),
            subject: demls(subject),
        })
        .await
}

/// The `Unavailable::Rpc` of a verdict, or a panic.
fn rpc_failure(verdict: Verdict) -> (u32, String) {
    match verdict {
        Verdict::Unavailable(Unavailable::Rpc { attempts, error }) => (attempts, error),
        other => panic!("expected an RPC failure, got {other}"),
    }
}

/// A check of `gate` at `url` that must fail on RPC errors: its attempts and last error.
async fn fails_closed(url: &str, retry: RetryPolicy, gate: &AdmissionPolicy) -> (u32, String) {
    let checker = ChainChecker::new(url, ANVIL_CHAIN_ID, retry).expect("checker");
    rpc_failure(check(&checker, gate, Address::repeat_byte(0x01)).await)
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn a_rich_account_is_admitted_and_a_poor_one_refused() {
    let anvil = Anvil::start();
    let chain = Chain::connect(&anvil).await;
    let checker = anvil.checker();
    let gate = on_anvil(BlockRef::Latest, min_eth("1"));

    assert_eq!(
        check(&checker, &gate, chain.accounts[0]).await,
        Verdict::Admit
    );

    let poor = Address::repeat_byte(0x42);
    let block = chain.pay(chain.accounts[1], poor, eth("0.5")).await;
    let verdict = check(&checker, &gate, poor).await;
    assert_eq!(
        verdict,
        Verdict::Refuse(Refusal::InsufficientEth {
            balance: amount(eth("0.5")),
            required: amount(eth("1")),
            block
        })
    );
    assert_eq!(
        verdict.to_string(),
        format!("refused: balance 0.5 ETH at block {block} is below the required 1 ETH")
    );

    let penniless = Address::repeat_byte(0x43);
    let verdict = check(&checker, &gate, penniless).await;
    assert!(
        verdict.to_string().contains("balance 0 ETH at block") && !verdict.admits(),
        "{verdict}"
    );

    // anvil_setBalance: exactly the minimum is enough
    chain.set_balance(poor, eth("1")).await;
    assert_eq!(check(&checker, &gate, poor).await, Verdict::Admit);
}

#[tokio::test]
async fn erc20_gate_both_ways() {
    let anvil = Anvil::start();
    let chain = Chain::connect(&anvil).await;
    let checker = anvil.checker();
    let token = chain.deploy_token().await;
    let (holder, small, nobody) = (
        chain.accounts[1],
        chain.accounts[2],
        Address::repeat_byte(0x44),
    );
    chain.mint(token, holder, eth("100")).await;
    let block = chain.mint(token, small, eth("5")).await;
    let gate = on_anvil(BlockRef::Latest, min_dtt(token, "10"));

    assert_eq!(check(&checker, &gate, holder).await, Verdict::Admit);
    let verdict = check(&checker, &gate, small).await;
    assert!(
        matches!(&verdict, Verdict::Refuse(Refusal::InsufficientToken { balance, .. }) if *balance == amount(eth("5")))
    );
    assert_eq!(
        verdict.to_string(),
        format!(
            "refused: balance 5 DTT of token {} at block {block} is below the required 10 DTT",
            demls(token)
        )
    );
    assert!(
        check(&checker, &gate, nobody)
            .await
            .to_string()
            .contains("balance 0 DTT")
    );

    chain.transfer_token(token, holder, small, eth("5")).await;
    assert_eq!(check(&checker, &gate, small).await, Verdict::Admit);
    // ETH does not count for a token gate: anvil's accounts are rich in ETH, `nobody` gets some too
    chain.set_balance(nobody, eth("1000")).await;
    assert!(!check(&checker, &gate, nobody).await.admits());
}

#[tokio::test]
async fn erc721_gate_both_ways() {
    let anvil = Anvil::start();
    let chain = Chain::connect(&anvil).await;
    let checker = anvil.checker();
    let collection = chain.deploy_nft().await;
    let (alice, bob) = (chain.accounts[1], chain.accounts[2]);
    let block = chain.mint(collection, alice, U256::from(1)).await;
    let any = on_anvil(BlockRef::Latest, nft(collection, None));
    let one = on_anvil(BlockRef::Latest, nft(collection, Some(1)));
    let missing = on_anvil(BlockRef::Latest, nft(collection, Some(99)));

    assert_eq!(check(&checker, &any, alice).await, Verdict::Admit);
    assert_eq!(check(&checker, &one, alice).await, Verdict::Admit);
    assert_eq!(
        check(&checker, &any, bob).await,
        Verdict::Refuse(Refusal::NoToken {
            subject: demls(bob),
            token: demls(collection),
            block
        })
    );
    let verdict = check(&checker, &one, bob).await;
    assert!(
        matches!(&verdict, Verdict::Refuse(Refusal::NotOwner { owner: Some(owner), .. }) if *owner == demls(alice)),
        "{verdict}"
    );
    assert_eq!(
        verdict.to_string(),
        format!(
            "refused: token #1 of the ERC-721 collection {} is owned by {} at block {block}, not by {}",
            demls(collection),
            demls(alice),
            demls(bob)
        )
    );
    // ownerOf(99) reverts: a token that does not exist refuses everyone
    let verdict = check(&checker, &missing, alice).await;
    assert!(
        matches!(
            &verdict,
            Verdict::Refuse(Refusal::NotOwner { owner: None, .. })
        ),
        "{verdict}"
    );
    assert!(verdict.to_string().contains("does not exist"), "{verdict}");

    chain
        .transfer_nft(collection, alice, bob, U256::from(1))
        .await;
    assert_eq!(check(&checker, &any, bob).await, Verdict::Admit);
    assert_eq!(check(&checker, &one, bob).await, Verdict::Admit);
    assert!(!check(&checker, &any, alice).await.admits());
    assert!(!check(&checker, &one, alice).await.admits());
}

#[tokio::test]
async fn a_fixed_block_reads_history() {
    let anvil = Anvil::start();
    let chain = Chain::connect(&anvil).await;
    let checker = anvil.checker();
    let subject = chain.accounts[1];

    // ETH: 10 000 at `before`, about 1 after paying 9 999 away
    let before = chain.block_number().await;
    let after = chain.pay(subject, chain.accounts[2], eth("9999")).await;
    assert!(after > before);
    assert_eq!(
        check(
            &checker,
            &on_anvil(BlockRef::Number(before), min_eth("100")),
            subject
        )
        .await,
        Verdict::Admit
    );
    let verdict = check(
        &checker,
        &on_anvil(BlockRef::Latest, min_eth("100")),
        subject,
    )
    .await;
    assert!(
        matches!(&verdict, Verdict::Refuse(Refusal::InsufficientEth { block, .. }) if *block >= after),
        "{verdict}"
    );
    let verdict = check(
        &checker,
        &on_anvil(BlockRef::Number(after), min_eth("100")),
        subject,
    )
    .await;
    assert!(
        matches!(&verdict, Verdict::Refuse(Refusal::InsufficientEth { block, .. }) if *block == after),
        "{verdict}"
    );

    // ERC-20: 50 at `minted`, 0 after sending them on
    let token = chain.deploy_token().await;
    let holder = chain.accounts[3];
    let minted = chain.mint(token, holder, eth("50")).await;
    chain
        .transfer_token(token, holder, chain.accounts[0], eth("50"))
        .await;
    assert_eq!(
        check(
            &checker,
            &on_anvil(BlockRef::Number(minted), min_dtt(token, "10")),
            holder
        )
        .await,
        Verdict::Admit
    );
    let verdict = check(
        &checker,
        &on_anvil(BlockRef::Latest, min_dtt(token, "10")),
        holder,
    )
    .await;
    assert!(verdict.to_string().contains("balance 0 DTT"), "{verdict}");
    // before the token existed, its balanceOf answers nothing: unavailable, not admitted
    let verdict = check(
        &checker,
        &on_anvil(BlockRef::Number(before), min_dtt(token, "10")),
        holder,
    )
    .await;
    assert!(
        matches!(verdict, Verdict::Unavailable(Unavailable::Rpc { .. })),
        "{verdict}"
    );

    // a block not mined yet
    let head = chain.block_number().await;
    let verdict = check(
        &checker,
        &on_anvil(BlockRef::Number(head + 1000), min_eth("1")),
        subject,
    )
    .await;
    assert_eq!(
        verdict,
        Verdict::Unavailable(Unavailable::BlockNotMined {
            block: head + 1000,
            head
        })
    );
}

#[tokio::test]
async fn the_wrong_chain_admits_nobody() {
    let anvil = Anvil::start();
    let chain = Chain::connect(&anvil).await;
    let rich = chain.accounts[0];

    // a mainnet policy checked by a node whose endpoint serves anvil
    let mainnet = policy(1, BlockRef::Latest, min_eth("1"));
    let verdict = check(&anvil.checker(), &mainnet, rich).await;
    assert_eq!(
        verdict,
        Verdict::Unavailable(Unavailable::OtherChain {
            policy: 1,
            served: ANVIL_CHAIN_ID
        })
    );

    // a node configured for mainnet whose endpoint turns out to serve anvil: no retries needed
    let misconfigured = ChainChecker::new(&anvil.url(), 1, FAST_RETRY).expect("checker");
    let started = Instant::now();
    let verdict = check(&misconfigured, &mainnet, rich).await;
    assert_eq!(
        verdict,
        Verdict::Unavailable(Unavailable::EndpointChainMismatch {
            configured: 1,
            endpoint: ANVIL_CHAIN_ID
        })
    );
    assert!(started.elapsed() < FAST_RETRY.initial_backoff + Duration::from_secs(1));
    assert_eq!(
        verdict.to_string(),
        "check unavailable: the RPC endpoint serves chain 31337, not the configured chain 1"
    );

    // another chain altogether, with the same (rich) dev accounts
    let other = Anvil::with_chain_id(5);
    let verdict = check(
        &other.checker(),
        &on_anvil(BlockRef::Latest, min_eth("1")),
        rich,
    )
    .await;
    assert_eq!(
        verdict,
        Verdict::Unavailable(Unavailable::EndpointChainMismatch {
            configured: ANVIL_CHAIN_ID,
            endpoint: 5
        })
    );
}

#[tokio::test]
async fn connect_reads_the_chain_id_once_and_fails_on_a_dead_endpoint() {
    let other = Anvil::with_chain_id(5);
    let checker = ChainChecker::connect(&other.url(), FAST_RETRY)
        .await
        .expect("the chain id is read");
    assert_eq!(checker.chain_id(), 5);
    let rich = Chain::connect(&other).await.accounts[0];
    let gate = policy(5, BlockRef::Latest, min_eth("1"));
    assert_eq!(check(&checker, &gate, rich).await, Verdict::Admit);

    let url = format!("http://user:secret@127.0.0.1:{}", closed_port());
    match ChainChecker::connect(&url, FAST_RETRY).await {
        Err(ChainError::ChainId(Unavailable::Rpc { attempts, error })) => {
            assert_eq!(attempts, FAST_RETRY.attempts);
            assert!(!error.contains("secret"), "the RPC URL leaked: {error}");
        }
        other => panic!("expected a chain id error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_endpoint_going_down_fails_closed_and_coming_back_admits_again() {
    let anvil = Anvil::start();
    let rich = Chain::connect(&anvil).await.accounts[0];
    let checker = anvil.checker();
    let gate = on_anvil(BlockRef::Latest, min_eth("1"));
    assert_eq!(check(&checker, &gate, rich).await, Verdict::Admit);

    let port = anvil.stop();
    let started = Instant::now();
    let (attempts, error) = rpc_failure(check(&checker, &gate, rich).await);
    assert_eq!(attempts, FAST_RETRY.attempts);
    assert!(
        started.elapsed() >= FAST_RETRY.backoff(1) + FAST_RETRY.backoff(2),
        "it did not back off"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !error.contains(&format!("127.0.0.1:{port}")),
        "the RPC URL leaked: {error}"
    );

    // a fresh anvil on the same port has the same dev accounts; the same checker admits again
    let back = Anvil::start_on(port);
    assert_eq!(check(&checker, &gate, rich).await, Verdict::Admit);

    // down again, and back while a patient check is still retrying: that check admits
    let port = back.stop();
    let patient = RetryPolicy {
        attempts: 100,
        attempt_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
    };
    let patient = ChainChecker::new(&format!("http://127.0.0.1:{port}"), ANVIL_CHAIN_ID, patient)
        .expect("checker");
    let restart = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(500));
        Anvil::start_on(port)
    });
    assert_eq!(check(&patient, &gate, rich).await, Verdict::Admit);
    drop(restart.await.expect("restart anvil"));
}

#[tokio::test]
async fn a_closed_port_or_a_silent_endpoint_is_unavailable() {
    let gate = on_anvil(BlockRef::Latest, min_eth("1"));

    let url = format!("http://127.0.0.1:{}", closed_port());
    let (attempts, error) = fails_closed(&url, FAST_RETRY, &gate).await;
    assert_eq!(attempts, 3);
    assert!(!error.contains(&url), "the RPC URL leaked: {error}");

    // a listener that never answers: every attempt times out
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let retry = RetryPolicy {
        attempts: 2,
        attempt_timeout: Duration::from_millis(300),
        ..FAST_RETRY
    };
    let started = Instant::now();
    assert_eq!(fails_closed(&url, retry, &gate).await.0, 2);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "took {took:?}"
    );

    // HTTPS is set up (rustls on ring) and fails closed the same way
    let https = format!("https://127.0.0.1:{}", closed_port());
    assert_eq!(fails_closed(&https, FAST_RETRY, &gate).await.0, 3);
}

#[tokio::test]
async fn a_token_address_without_a_contract_is_unavailable() {
    let anvil = Anvil::start();
    let chain = Chain::connect(&anvil).await;
    let not_a_contract = chain.accounts[2];
    let verdict = check(
        &anvil.checker(),
        &on_anvil(BlockRef::Latest, min_dtt(not_a_contract, "1")),
        chain.accounts[0],
    )
    .await;
    let (attempts, error) = rpc_failure(verdict);
    assert_eq!(attempts, 3);
    assert!(
        error.contains("balanceOf(address) returned 0 bytes"),
        "{error}"
    );
    let verdict = check(
        &anvil.checker(),
        &on_anvil(BlockRef::Latest, nft(not_a_contract, Some(1))),
        chain.accounts[0],
    )
    .await;
    assert!(
        rpc_failure(verdict)
            .1
            .contains("ownerOf(uint256) returned 0 bytes")
    );
}

#[tokio::test]
async fn an_open_policy_reads_no_chain() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let checker = ChainChecker::new(&url, 1, FAST_RETRY).expect("checker");
    assert_eq!(checker.chain_id(), 1);
    let request = CheckRequest {
        policy: AdmissionPolicy::Open,
        subject: demls(Address::repeat_byte(9)),
    };
    // checks run on any task: the future is Send
    let task = tokio::spawn(async move { checker.check(&request).await });
    assert_eq!(task.await.expect("check task"), Verdict::Admit);
}

#[test]
fn bad_configurations_are_errors() {
    assert!(matches!(
        ChainChecker::new("ftp://127.0.0.1/", 1, FAST_RETRY),
        Err(ChainError::Url(_))
    ));
    assert!(matches!(
        ChainChecker::new("not a url", 1, FAST_RETRY),
        Err(ChainError::Url(_))
    ));
    let never = RetryPolicy {
        attempts: 0,
        ..FAST_RETRY
    };
    assert!(matches!(
        ChainChecker::new("http://127.0.0.1:8545", 1, never),
        Err(ChainError::NoAttempts)
    ));
    let checker = ChainChecker::new("https://user:secret@127.0.0.1:8545/v3/key", 1, FAST_RETRY)
        .expect("checker");
    assert!(!format!("{checker:?}").contains("secret"));
}
