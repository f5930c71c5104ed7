//! The CLI subcommands that talk to a running node through its API.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;

use crate::runtime::setup::{API_URL_FILE, TOKEN_FILE};

/// Prints a line to stdout; when stdout is closed (e.g. piped into `head`), the command ends
/// quietly instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

/// Which node to talk to.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The node's data directory (its API address and token are read from it).
    #[arg(long, short = 'd', env = "DEMLS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The API address, e.g. http://127.0.0.1:8001 (instead of the data directory's).
    #[arg(long, env = "DEMLS_API")]
    pub api: Option<String>,
    /// The bearer token (instead of the data directory's).
    #[arg(long, env = "DEMLS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Who may join a new group: by default anyone; with one of `--min-eth`, `--min-erc20` or
/// `--erc721`, only holders, checked against the chain of the node's `--eth-rpc`.
/// The three are one group of exclusive options ("gate"); the others need one of them.
#[derive(Args, Debug, Clone)]
#[group(skip)]
pub struct GateArgs {
    /// Admit only addresses holding at least this much ETH, e.g. 1.5.
    #[arg(long, value_name = "ETH", group = "gate")]
    pub min_eth: Option<String>,
    /// Admit only addresses holding at least AMOUNT (in whole tokens) of the ERC-20 TOKEN,
    /// e.g. 0x6B17…1d0F:100.
    #[arg(long, value_name = "TOKEN:AMOUNT", group = "gate")]
    pub min_erc20: Option<String>,
    /// Admit only addresses holding a token of this ERC-721 collection.
    #[arg(long, value_name = "CONTRACT", group = "gate")]
    pub erc721: Option<String>,
    /// With --min-erc20: the token's decimals.
    #[arg(long, value_name = "N", default_value_t = 18, requires = "min_erc20")]
    pub token_decimals: u8,
    /// With --min-erc20: the token's symbol, to show amounts.
    #[arg(long, value_name = "SYMBOL", requires = "min_erc20")]
    pub token_symbol: Option<String>,
    /// With --erc721: only this very token (a decimal id) admits.
    #[arg(long, value_name = "ID", requires = "erc721")]
    pub token_id: Option<String>,
    /// Read balances at this fixed block instead of the latest one.
    #[arg(long, value_name = "N", requires = "gate")]
    pub at_block: Option<u64>,
    /// The chain the gate reads; the node's --eth-rpc must serve it (default: that chain).
    #[arg(long, value_name = "ID", requires = "gate")]
    pub chain_id: Option<u64>,
}

impl GateArgs {
    /// The `admission` object of `POST /api/groups`, or `None` for an open group.
    fn admission(&self) -> Result<Option<Value>, CliError> {
        let mut admission = if let Some(amount) = &self.min_eth {
            json!({"kind": "min_eth", "amount": amount})
        } else if let Some(spec) = &self.min_erc20 {
            let (token, amount) = spec.split_once(':').ok_or_else(|| {
                CliError::Usage(format!("--min-erc20 {spec}: expected TOKEN:AMOUNT"))
            })?;
            json!({"kind": "min_erc20", "token": token, "amount": amount,
                   "decimals": self.token_decimals, "symbol": self.token_symbol})
        } else if let Some(token) = &self.erc721 {
            json!({"kind": "erc721", "token": token, "token_id": self.token_id})
        } else {
            return Ok(None);
        };
        admission["block"] = self.at_block.into();
        admission["chain_id"] = self.chain_id.into();
        Ok(Some(admission))
    }
}

/// A CLI subcommand.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Show this node: address, peers, listen addresses.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// List the groups this node is in or joining.
    Groups {
        #[command(flatten)]
        target: Target,
    },
    /// Create a group with this node as its steward.
    Create {
        /// The group's name: 1 to 64 characters from a-z, 0-9, '.', '_', '-'.
        group: String,
        /// Who votes and commits: single (one steward), big or small (a steward list).
        #[arg(long, value_parser = ["single", "big", "small"])]
        mode: Option<String>,
        /// Fewest stewards in the list (big and small modes).
        #[arg(long)]
        sn_min: Option<u16>,
        /// Most stewards in the list (big and small modes).
        #[arg(long)]
        sn_max: Option<u16>,
        /// How long a vote stays open, in seconds.
        #[arg(long)]
        vote_timeout: Option<u32>,
        #[command(flatten)]
        gate: GateArgs,
        #[command(flatten)]
        target: Target,
    },
    /// Show a group: epoch, stewards, members and their roles, health.
    Show {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Ask to join a group (its steward must be reachable on the network).
    Join {
        /// The group.
        group: String,
        /// Only trust announcements from this steward address.
        #[arg(long)]
        steward: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Propose removing a member (the members vote).
    Remove {
        /// The group.
        group: String,
        /// The member's address.
        member: String,
        #[command(flatten)]
        target: Target,
    },
    /// List a group's proposals with their tally.
    Proposals {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Vote on an open proposal.
    Vote {
        /// The group.
        group: String,
        /// The proposal id (as `proposals` shows it).
        proposal: String,
        /// yes or no.
        #[arg(value_parser = ["yes", "no"])]
        choice: String,
        #[command(flatten)]
        target: Target,
    },
    /// Choose whether this node votes by itself (automatic) or waits for `vote` (manual).
    Policy {
        /// automatic or manual.
        #[arg(value_parser = ["automatic", "manual"])]
        policy: String,
        #[command(flatten)]
        target: Target,
    },
    /// Send a message to a group.
    Send {
        /// The group.
        group: String,
        /// The text.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Print a group's history.
    Messages {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Print a group's history, then its messages and events as they arrive.
    Follow {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Why a CLI command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line does not make sense.
    #[error("{0}")]
    Usage(String),
    /// Neither a data directory nor an API address.
    #[error("say which node: --data-dir DIR (or DEMLS_DATA_DIR), or --api URL with --token")]
    NoTarget,
    /// The data directory has no API address or token.
    #[error(
        "{0}: no node has run on this data directory yet (start one with `demls node --data-dir ...`)"
    )]
    NotStarted(String),
    /// Nothing answers at the API address.
    #[error("the node is not running (nothing answers at {url}: {reason})")]
    NotRunning {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The token was refused.
    #[error("the node refused the API token ({0}); use the token in the node's data directory")]
    BadToken(String),
    /// The node answered with an error.
    #[error("{message}")]
    Api {
        /// Its code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The event stream failed.
    #[error("event stream: {0}")]
    Stream(String),
}

/// A connection to a node's API.
struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

fn read_trimmed(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|_| CliError::NotStarted(path.display().to_string()))
}

impl Client {
    fn new(target: &Target) -> Result<Self, CliError> {
        let dir = target.data_dir.as_ref();
        let base = match (&target.api, dir) {
            (Some(api), _) => api.trim_end_matches('/').to_owned(),
            (None, Some(dir)) => read_trimmed(&dir.join(API_URL_FILE))?,
            (None, None) => return Err(CliError::NoTarget),
        };
        let token = match (&target.token, dir) {
            (Some(token), _) => token.clone(),
            (None, Some(dir)) => read_trimmed(&dir.join(TOKEN_FILE))?,
            (None, None) => return Err(CliError::NoTarget),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self { base, token, agent })
    }

    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, CliError> {
        let mut response = result.map_err(|e| CliError::NotRunning {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"]["code"].as_str().unwrap_or("error").to_owned();
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the node answered {status}"), str::to_owned);
        if status.as_u16() == 401 {
            return Err(CliError::BadToken(message));
        }
        Err(CliError::Api { code, message })
    }

    fn get(&self, path: &str) -> Result<Value, CliError> {
        let request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.answer(request.call())
    }

    fn post(&self, path: &str, body: Value) -> Result<Value, CliError> {
        let request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.answer(request.send_json(body))
    }

    fn put(&self, path: &str, body: Value) -> Result<Value, CliError> {
        let request = self
            .agent
            .put(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.answer(request.send_json(body))
    }
}

/// `/api/groups/<group>` with the group name as a path segment (names are `[a-z0-9._-]`, so
/// nothing needs escaping; anything else is refused by the node).
fn group_path(group: &str, rest: &str) -> String {
    format!("/api/groups/{group}{rest}")
}

/// UTC time of day of a Unix millisecond timestamp.
fn clock(ms: u64) -> String {
    let secs = ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

fn text(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_message(m: &Value) {
    let own = if m["direction"] == "own" {
        " (you)"
    } else {
        ""
    };
    let delivery = if m["delivery"] == "queued" {
        " [queued]"
    } else {
        ""
    };
    say!(
        "[{}] {}{own}: {}{delivery}",
        clock(m["sent_at"].as_u64().unwrap_or(0)),
        text(m, "sender"),
        text(m, "text")
    );
}

fn print_group(g: &Value) {
    say!("group {}  epoch {}", text(g, "id"), text(g, "epoch"));
    say!("admission: {}", text(g, "admission"));
    say!("stewards: {}", g["stewards"].as_array().map_or(0, Vec::len));
    for s in g["stewards"].as_array().into_iter().flatten() {
        say!("  {}", s.as_str().unwrap_or("?"));
    }
    let members = g["members"].as_array().cloned().unwrap_or_default();
    say!("members: {}", members.len());
    for m in &members {
        let roles: Vec<&str> = m["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let me = if m["is_self"] == true {
            " (this node)"
        } else {
            ""
        };
        say!("  {}  {}{me}", text(m, "address"), roles.join(", "));
    }
    let h = &g["health"];
    say!(
        "health: {} peers, {} open proposals, {} queued, dropped {}",
        text(h, "peers"),
        text(h, "open_proposals"),
        text(h, "queued"),
        h["dropped"]
    );
}

fn print_proposal(p: &Value) {
    let change = &p["change"];
    let t = &p["tally"];
    say!(
        "{}  {} {}  by {}  {}  yes {} / no {}{}  (epoch {})",
        text(p, "id"),
        text(change, "kind"),
        text(change, "member"),
        text(p, "owner"),
        text(p, "state"),
        text(t, "yes"),
        text(t, "no"),
        t["voters"]
            .as_u64()
            .map_or(String::new(), |n| format!(" of {n}")),
        text(p, "epoch"),
    );
}

/// Runs a CLI subcommand.
pub fn run(command: ClientCommand) -> Result<(), CliError> {
    use ClientCommand as C;
    let (target, result) = match command {
        C::Status { target } => {
            let value = Client::new(&target)?.get("/api/node")?;
            (target, value)
        }
        C::Groups { target } => {
            let value = Client::new(&target)?.get("/api/groups")?;
            (target, value)
        }
        C::Create {
            group,
            mode,
            sn_min,
            sn_max,
            vote_timeout,
            gate,
            target,
        } => {
            let mut body = json!({"name": group});
            let options = [
                ("mode", mode.map(Value::from)),
                ("sn_min", sn_min.map(Value::from)),
                ("sn_max", sn_max.map(Value::from)),
                ("vote_timeout_secs", vote_timeout.map(Value::from)),
                ("admission", gate.admission()?),
            ];
            for (key, value) in options {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            let value = Client::new(&target)?.post("/api/groups", body)?;
            (target, value)
        }
        C::Show { group, target } => {
            let value = Client::new(&target)?.get(&group_path(&group, ""))?;
            (target, value)
        }
        C::Join {
            group,
            steward,
            target,
        } => {
            let value = Client::new(&target)?
                .post(&group_path(&group, "/join"), json!({"steward": steward}))?;
            (target, value)
        }
        C::Remove {
            group,
            member,
            target,
        } => {
            let value = Client::new(&target)?.post(
                &group_path(&group, "/proposals"),
                json!({"kind": "remove", "member": member}),
            )?;
            (target, value)
        }
        C::Proposals { group, target } => {
            let value = Client::new(&target)?.get(&group_path(&group, "/proposals"))?;
            (target, value)
        }
        C::Vote {
            group,
            proposal,
            choice,
            target,
        } => {
            let value = Client::new(&target)?.post(
                &group_path(&group, &format!("/proposals/{proposal}/votes")),
                json!({"yes": choice == "yes"}),
            )?;
            (target, value)
        }
        C::Policy { policy, target } => {
            let value =
                Client::new(&target)?.put("/api/node/vote-policy", json!({"policy": policy}))?;
            (target, value)
        }
        C::Send {
            group,
            text,
            target,
        } => {
            let value = Client::new(&target)?.post(
                &group_path(&group, "/messages"),
                json!({"text": text.join(" ")}),
            )?;
            (target, value)
        }
        C::Messages { group, target } => {
            let value = Client::new(&target)?.get(&group_path(&group, "/messages"))?;
            (target, value)
        }
        C::Follow { group, target } => return follow(&group, &target),
        C::Leave { group, target } => {
            let value = Client::new(&target)?.post(&group_path(&group, "/leave"), json!({}))?;
            (target, value)
        }
    };
    if target.json {
        say!("{result}");
        return Ok(());
    }
    print_human(&result);
    Ok(())
}

/// Prints an API answer for a person.
fn print_human(value: &Value) {
    match value {
        Value::Array(items) if items.is_empty() => say!("(none)"),
        Value::Array(items) => {
            for item in items {
                if item.get("text").is_some() {
                    print_message(item);
                } else if item.get("tally").is_some() {
                    print_proposal(item);
                } else if item["state"] == "refused" {
                    say!("{}  {}", text(item, "id"), text(item, "refusal"));
                } else if item.get("state").is_some() {
                    say!(
                        "{}  {}  epoch {}  {} members{}",
                        text(item, "id"),
                        text(item, "state"),
                        text(item, "epoch"),
                        text(item, "members"),
                        if item["is_steward"] == true {
                            "  (steward)"
                        } else {
                            ""
                        }
                    );
                } else {
                    say!("{item}");
                }
            }
        }
        v if v.get("members").is_some_and(Value::is_array) => print_group(v),
        v if v["state"] == "joining" => say!(
            "asked to join '{}': waiting for its steward's announcement and the members' vote",
            text(v, "id")
        ),
        v if v.get("status").is_some() => say!("{}", text(v, "status")),
        v if v.get("tally").is_some() => print_proposal(v),
        v if v.get("text").is_some() => print_message(v),
        v if v.get("peer_id").is_some() => {
            say!("address: {}", text(v, "address"));
            say!("peer id: {}", text(v, "peer_id"));
            for a in v["listen_addrs"].as_array().into_iter().flatten() {
                say!("listening: {}", a.as_str().unwrap_or("?"));
            }
            say!("pubsub:  {}", text(v, "pubsub_topic"));
            say!("peers:   {}", v["peers"].as_array().map_or(0, Vec::len));
            say!("voting:  {}", text(v, "vote_policy"));
        }
        other => say!("{other}"),
    }
}

/// Prints the history, then follows the event stream.
fn follow(group: &str, target: &Target) -> Result<(), CliError> {
    let client = Client::new(target)?;
    let ws_base = client.base.replacen("http://", "ws://", 1);
    let mut request = format!("{ws_base}/api/events?group={group}")
        .into_client_request()
        .map_err(|e| CliError::Stream(e.to_string()))?;
    let bearer = format!("Bearer {}", client.token)
        .parse()
        .map_err(|_| CliError::BadToken("the token is not a valid header value".into()))?;
    request.headers_mut().insert("Authorization", bearer);
    // Subscribe first so that nothing falls between the history and the stream.
    let (mut socket, _) = tungstenite::connect(request).map_err(|e| match e {
        tungstenite::Error::Http(response) if response.status() == 401 => {
            CliError::BadToken("401".into())
        }
        other => CliError::NotRunning {
            url: client.base.clone(),
            reason: other.to_string(),
        },
    })?;
    let history = client.get(&group_path(group, "/messages"))?;
    let mut last_seq = 0;
    for m in history.as_array().into_iter().flatten() {
        last_seq = last_seq.max(m["seq"].as_u64().unwrap_or(0));
        if target.json {
            say!("{m}");
        } else {
            print_message(m);
        }
    }
    loop {
        let message = socket.read().map_err(|e| CliError::Stream(e.to_string()))?;
        let tungstenite::Message::Text(body) = message else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(body.as_str()) else {
            continue;
        };
        if target.json {
            say!("{event}");
        } else {
            match event["type"].as_str() {
                Some("message") if event["seq"].as_u64().unwrap_or(0) > last_seq => {
                    print_message(&event);
                }
                Some("epoch_changed") => say!(
                    "-- epoch {}: {} members (committed by {})",
                    text(&event, "epoch"),
                    event["members"].as_array().map_or(0, Vec::len),
                    text(&event, "committer")
                ),
                Some("joined") => say!("-- joined at epoch {}", text(&event, "epoch")),
                Some("proposal_opened") => say!(
                    "-- proposal {}: {} {} (by {})",
                    text(&event, "proposal"),
                    text(&event["change"], "kind"),
                    text(&event["change"], "member"),
                    text(&event, "owner")
                ),
                Some("proposal_decided") => say!(
                    "-- proposal {} {}",
                    text(&event, "proposal"),
                    if event["approved"] == true {
                        "approved"
                    } else {
                        "rejected"
                    }
                ),
                Some("removed") => say!("-- this node is no longer a member"),
                Some("join_refused") => say!(
                    "-- the steward {} refused this node: {}",
                    text(&event, "steward"),
                    text(&event, "reason")
                ),
                Some("admission_verdict") => say!(
                    "-- admission check of {}: {}",
                    text(&event, "subject"),
                    text(&event, "verdict")
                ),
                _ => {}
            }
        }
        // A closed stdout (e.g. piped into head) ends the command.
        if std::io::stdout().flush().is_err() {
            return Ok(());
        }
    }
}
