//! Gated groups through the real path: `demls node` processes on loopback that read a real
//! chain (anvil on 127.0.0.1, `npm ci --prefix interop/anvil` or `$ANVIL`) through
//! `--eth-rpc`, driven by the CLI and the API.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use demls_testchain::{Address, Anvil, Chain, U256, eth};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

/// A real chain, and a way to set balances on it.
struct Eth {
    anvil: Anvil,
    chain: Chain,
    runtime: tokio::runtime::Runtime,
}

impl Eth {
    fn start() -> Self {
        Self::on(Anvil::start())
    }

    fn on(anvil: Anvil) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let chain = runtime.block_on(Chain::connect(&anvil));
        Eth {
            anvil,
            chain,
            runtime,
        }
    }

    fn url(&self) -> String {
        self.anvil.url()
    }

    /// Runs `f` (a transaction, a read) to its end.
    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// Sets `node`'s balance to `amount` ETH.
    fn fund(&self, node: &NodeProc, amount: &str) {
        self.run(self.chain.set_balance(account(node), eth(amount)));
    }

    /// Stops anvil: the endpoint goes down. Returns its port.
    fn stop(self) -> u16 {
        self.anvil.stop()
    }
}

/// `node`'s address on the chain.
fn account(node: &NodeProc) -> Address {
    node.address.parse().unwrap()
}

/// A node on loopback, reading the chain at `rpc` if given.
fn node(dir: &Path, peers: &[&str], rpc: Option<&str>) -> NodeProc {
    let options: Vec<&str> = rpc.map_or_else(Vec::new, |url| vec!["--eth-rpc", url]);
    NodeProc::start_with(dir, "/ip4/127.0.0.1/tcp/0", peers, &options)
}

/// Alice, Bob and Carol on loopback, with their data directories: Alice (who will create the
/// group) and Bob read `chain`, Carol reads none. Bob holds 5 ETH, Carol none.
fn trio(chain: &Eth) -> (NodeProc, NodeProc, NodeProc, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let url = chain.url();
    let alice = node(&tmp.path().join("alice"), &[], Some(&url));
    let bob = node(&tmp.path().join("bob"), &[&alice.listen], Some(&url));
    let carol = node(&tmp.path().join("carol"), &[&alice.listen], None);
    chain.fund(&bob, "5");
    (alice, bob, carol, tmp)
}

fn members(node: &NodeProc, group: &str) -> usize {
    node.group(group).map_or(0, |g| epoch_and_size(&g).1)
}

fn all_have(nodes: &[&NodeProc], group: &str, count: usize) -> bool {
    nodes.iter().all(|n| members(n, group) == count)
}

/// The admission verdicts `node` logged about `subject`.
fn verdicts(node: &NodeProc, subject: &str) -> Vec<Value> {
    node.events()
        .into_iter()
        .filter(|e| {
            e["type"] == "admission_verdict"
                && e["subject"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subject))
        })
        .collect()
}

/// The proposals of `group` on `node` that add `member`.
fn adds_of(node: &NodeProc, group: &str, member: &str) -> Vec<Value> {
    node.cli_json(&["proposals", group])
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["change"]["kind"] == "add"
                && p["change"]["member"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(member))
        })
        .collect()
}

#[test]
fn a_rich_account_joins_a_poor_one_is_refused_and_told_why_and_joins_once_it_qualifies() {
    let chain = Eth::start();
    let (alice, bob, carol, tmp) = trio(&chain);

    // A gated group needs an endpoint, on the chain it names.
    let (ok, _, err) = carol.cli(&["create", "dao", "--min-eth", "1"]);
    assert!(!ok && err.contains("--eth-rpc"), "{err}");
    let (ok, _, err) = alice.cli(&["create", "dao", "--min-eth", "1", "--chain-id", "1"]);
    assert!(
        !ok && err.contains("serves chain 31337, not chain 1"),
        "{err}"
    );
    for (bad, says) in [
        (
            &[
                "--min-eth",
                "1",
                "--erc721",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            ][..],
            "cannot be used with",
        ),
        (&["--token-id", "7"], "--erc721"),
        (&["--at-block", "7"], "--min-eth"),
        (&["--min-eth", "0.0000000000000000001"], "ETH amount"),
        (&["--min-erc20", "100"], "TOKEN:AMOUNT"),
    ] {
        let (ok, _, err) = alice.cli(&[&["create", "bad"][..], bad].concat());
        assert!(!ok && err.contains(says), "{bad:?}: {err}");
    }
    let created = alice.cli_json(&["create", "dao", "--min-eth", "1.5"]);
    let words = "at least 1.5 ETH on chain 31337 at the latest block";
    assert_eq!(
        (&created["admission"], &created["gated"]),
        (&words.into(), &true.into())
    );
    let (_, shown, _) = alice.cli(&["show", "dao"]);
    assert!(shown.contains(&format!("admission: {words}")), "{shown}");
    // The other gates, as the CLI states them (creating one reads no token).
    let token = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let erc20 = alice.cli_json(&[
        "create",
        "tokens",
        "--min-erc20",
        &format!("{token}:100"),
        "--token-symbol",
        "DTT",
        "--at-block",
        "1",
    ]);
    assert_eq!(
        erc20["admission"],
        format!("at least 100 DTT (ERC-20 {token}) on chain 31337 at block 1")
    );
    let nft = alice.cli_json(&["create", "nft", "--erc721", token, "--token-id", "7"]);
    assert_eq!(
        nft["admission"],
        format!("token #7 of the ERC-721 collection {token} on chain 31337 at the latest block")
    );
    assert_eq!(
        alice.cli_json(&["create", "open"])["admission"],
        "open to anyone"
    );

    // Bob holds 5 ETH and joins; Carol holds none and is refused by the steward.
    bob.cli_json(&["join", "dao"]);
    carol.cli_json(&["join", "dao"]);
    wait_until("bob joins and carol is refused", LIMIT, || {
        all_have(&[&alice, &bob], "dao", 2) && refusal(&carol, "dao").is_some()
    });
    let reason = refusal(&carol, "dao").unwrap();
    assert!(
        reason.contains(&alice.address)
            && reason.contains("balance 0 ETH at block")
            && reason.contains("is below the required 1.5 ETH"),
        "{reason}"
    );
    let (_, listed, _) = carol.cli(&["groups"]);
    assert!(listed.contains(&format!("dao  {reason}")), "{listed}");
    let (ok, _, err) = carol.cli(&["show", "dao"]);
    assert!(
        !ok && err.contains("the request to join 'dao' was refused by its steward"),
        "{err}"
    );
    let progress = carol.api_get("/api/groups/dao/join");
    assert_eq!(progress["stage"], "refused", "{progress}");
    assert!(
        progress["reason"]
            .as_str()
            .is_some_and(|r| r.contains("below the required 1.5 ETH")),
        "{progress}"
    );
    // The steward refused without opening a vote.
    assert_eq!(verdicts(&alice, &carol.address)[0]["admitted"], false);
    assert!(adds_of(&alice, "dao", &carol.address).is_empty());

    // Carol buys in and asks again: the steward and Bob check her anew, and she joins.
    chain.fund(&carol, "2");
    carol.cli_json(&["join", "dao"]);
    wait_until("carol joins", LIMIT, || {
        all_have(&[&alice, &bob, &carol], "dao", 3)
    });
    assert!(
        verdicts(&bob, &carol.address)
            .iter()
            .any(|v| v["admitted"] == true)
    );

    // Carol has no endpoint: she cannot check Dave and never votes YES on him; Alice's and
    // Bob's YES are a majority of three, so he joins all the same.
    let dave = node(&tmp.path().join("dave"), &[&alice.listen], None);
    chain.fund(&dave, "2");
    dave.cli_json(&["join", "dao"]);
    wait_until("dave joins", LIMIT, || {
        all_have(&[&alice, &bob, &carol, &dave], "dao", 4)
    });
    let unchecked = verdicts(&carol, &dave.address);
    assert!(!unchecked.is_empty());
    assert!(
        unchecked.iter().all(|v| v["verdict"]
            == "check unavailable: this node has no Ethereum RPC endpoint configured")
    );
    let add = &adds_of(&alice, "dao", &dave.address)[0];
    let voters: Vec<&Value> = add["votes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["yes"] == true)
        .map(|v| &v["voter"])
        .collect();
    assert!(
        !voters.contains(&&Value::from(carol.address.as_str())),
        "{add}"
    );
}

#[test]
fn token_gates_read_the_erc20_balance_and_the_erc721_collection() {
    let chain = Eth::start();
    let (alice, bob, carol, _tmp) = trio(&chain);
    let token = chain.run(chain.chain.deploy_token());
    let nft = chain.run(chain.chain.deploy_nft());
    chain.run(chain.chain.mint(token, account(&bob), eth("150")));
    chain.run(chain.chain.mint(nft, account(&carol), U256::from(1)));
    let dtt = format!("{token}:100");
    alice.cli_json(&[
        "create",
        "dtt",
        "--min-erc20",
        &dtt,
        "--token-symbol",
        "DTT",
    ]);
    alice.cli_json(&["create", "club", "--erc721", &nft.to_string()]);

    // Bob holds 150 DTT and no NFT; Carol holds NFT #1 and no DTT.
    for (joiner, group) in [
        (&bob, "dtt"),
        (&bob, "club"),
        (&carol, "dtt"),
        (&carol, "club"),
    ] {
        joiner.cli_json(&["join", group]);
    }
    wait_until(
        "each joins one group and is refused by the other",
        LIMIT,
        || {
            members(&alice, "dtt") == 2
                && members(&alice, "club") == 2
                && refusal(&bob, "club").is_some()
                && refusal(&carol, "dtt").is_some()
        },
    );
    assert_eq!(members(&bob, "dtt"), 2);
    assert_eq!(members(&carol, "club"), 2);
    let no_nft = refusal(&bob, "club").unwrap();
    assert!(
        no_nft.contains("holds no token of the ERC-721 collection"),
        "{no_nft}"
    );
    let no_dtt = refusal(&carol, "dtt").unwrap();
    assert!(
        no_dtt.contains("balance 0 DTT of token") && no_dtt.contains("below the required 100 DTT"),
        "{no_dtt}"
    );
}

/// A steward whose endpoint lies (another chain with the same id, on which a poor account
/// is rich) is a malicious steward as far as the members can tell: it proposes a poor
/// account. Honest members read the real chain and vote NO.
#[test]
fn honest_members_vote_no_when_the_steward_proposes_a_poor_account() {
    let tmp = tempfile::tempdir().unwrap();
    let truth = Eth::start();
    let lie = Eth::start();
    let alice = node(&tmp.path().join("alice"), &[], Some(&lie.url()));
    let honest_url = truth.url();
    let bob = node(&tmp.path().join("bob"), &[&alice.listen], Some(&honest_url));
    let carol = node(
        &tmp.path().join("carol"),
        &[&alice.listen],
        Some(&honest_url),
    );
    let dave = node(&tmp.path().join("dave"), &[&alice.listen], None);
    for member in [&bob, &carol] {
        truth.fund(member, "5");
        lie.fund(member, "5");
    }
    lie.fund(&dave, "5");

    alice.cli_json(&["create", "dao", "--min-eth", "1"]);
    bob.cli_json(&["join", "dao"]);
    carol.cli_json(&["join", "dao"]);
    wait_until("bob and carol join", LIMIT, || {
        all_have(&[&alice, &bob, &carol], "dao", 3)
    });
    let epoch = epoch_and_size(&alice.group("dao").unwrap()).0;

    dave.cli_json(&["join", "dao"]);
    wait_until(
        "the steward's proposal to add dave is rejected",
        LIMIT,
        || {
            adds_of(&alice, "dao", &dave.address)
                .first()
                .is_some_and(|p| p["state"] == "rejected")
        },
    );
    let proposal = &adds_of(&alice, "dao", &dave.address)[0];
    assert_eq!(proposal["owner"], alice.address.as_str());
    for honest in [&bob, &carol] {
        let vote = proposal["votes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["voter"] == honest.address.as_str())
            .cloned();
        assert_eq!(vote.map(|v| v["yes"].clone()), Some(false.into()));
        let verdict = &verdicts(honest, &dave.address)[0];
        assert_eq!(verdict["admitted"], false);
        assert!(
            verdict["verdict"]
                .as_str()
                .is_some_and(|v| v.contains("is below the required 1 ETH")),
            "{verdict}"
        );
        wait_until("the honest member sees it rejected", LIMIT, || {
            adds_of(honest, "dao", &dave.address)
                .first()
                .is_some_and(|p| p["state"] == "rejected")
        });
    }
    for member in [&alice, &bob, &carol] {
        assert_eq!(
            epoch_and_size(&member.group("dao").unwrap()),
            (epoch, 3),
            "dave was not added"
        );
    }
    assert!(dave.group("dao").is_none());
}

#[test]
fn with_the_endpoint_down_nobody_joins_and_the_group_keeps_chatting_until_it_is_back() {
    let chain = Eth::start();
    let (alice, bob, carol, _tmp) = trio(&chain);
    alice.cli_json(&["create", "dao", "--min-eth", "1"]);
    bob.cli_json(&["join", "dao"]);
    wait_until("bob joins", LIMIT, || all_have(&[&alice, &bob], "dao", 2));

    // The endpoint goes down; Carol (who would qualify) asks to join.
    let port = chain.stop();
    carol.cli_json(&["join", "dao"]);
    wait_until("the steward's check fails", LIMIT, || {
        verdicts(&alice, &carol.address).iter().any(|v| {
            v["verdict"]
                .as_str()
                .is_some_and(|t| t.starts_with("check unavailable: the chain could not be read"))
        })
    });
    assert!(
        verdicts(&alice, &carol.address)
            .iter()
            .all(|v| v["admitted"] == false)
    );
    assert_eq!(carol.api_get("/api/groups/dao/join")["stage"], "requested");
    let failed = metric(
        &alice.metrics(),
        "demls_admission_checks_total{verdict=\"unavailable\"}",
    );
    assert!(failed >= Some(1.0), "{failed:?}");
    assert!(adds_of(&alice, "dao", &carol.address).is_empty());

    // The group keeps talking meanwhile.
    alice.cli_json(&["send", "dao", "the chain is down"]);
    bob.cli_json(&["send", "dao", "we still talk"]);
    wait_until("both read both", LIMIT, || {
        [&alice, &bob].iter().all(|n| {
            let texts = n.texts("dao");
            texts.contains(&"the chain is down".into()) && texts.contains(&"we still talk".into())
        })
    });
    assert!(all_have(&[&alice, &bob], "dao", 2));

    // The endpoint comes back (a fresh chain on the same port): Carol is admitted at the
    // next check, without asking again.
    let chain = Eth::on(Anvil::start_on(port));
    chain.fund(&carol, "3");
    wait_until("carol joins", LIMIT, || {
        all_have(&[&alice, &bob, &carol], "dao", 3)
    });
}
