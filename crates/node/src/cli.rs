//! The CLI subcommands that talk to a running node through its API.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use demls_api::{
    Admission, AdmissionRule, Ballot, ChatMessage, Delivery, Direction, DisplayName, ErrorBody,
    EventBody, GroupDetail, GroupState, GroupSummary, Invitation, JoinRequest, JoinRule,
    JoinTicket, Message, Mode, NewGroup, NewInvitation, NewMessage, NewProposal, NodeEvent,
    NodeInfo, PendingRequest, Proposal, RequestDecision, StatusBody, VotePolicy, VotePolicyChange,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tungstenite::client::IntoClientRequest;

use crate::runtime::describe_removal;
use crate::runtime::setup::{API_URL_FILE, TOKEN_FILE};
use crate::ticket::Ticket;

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
    fn admission(&self) -> Result<Option<Admission>, CliError> {
        let rule = if let Some(amount) = &self.min_eth {
            AdmissionRule::MinEth {
                amount: amount.clone(),
            }
        } else if let Some(spec) = &self.min_erc20 {
            let (token, amount) = spec.split_once(':').ok_or_else(|| {
                CliError::Usage(format!("--min-erc20 {spec}: expected TOKEN:AMOUNT"))
            })?;
            AdmissionRule::MinErc20 {
                token: token.to_owned(),
                amount: amount.to_owned(),
                decimals: Some(self.token_decimals),
                symbol: self.token_symbol.clone(),
            }
        } else if let Some(token) = &self.erc721 {
            AdmissionRule::Erc721 {
                token: token.clone(),
                token_id: self.token_id.clone(),
            }
        } else {
            return Ok(None);
        };
        Ok(Some(Admission {
            rule,
            block: self.at_block,
            chain_id: self.chain_id,
        }))
    }
}

/// Who votes and commits in a new group (`demls_api::Mode`).
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ModeArg {
    /// One steward.
    Single,
    /// A steward list; every member votes.
    Big,
    /// A steward list; stewards vote on membership changes.
    Small,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Single => Mode::Single,
            ModeArg::Big => Mode::Big,
            ModeArg::Small => Mode::Small,
        }
    }
}

/// How the node votes (`demls_api::VotePolicy`).
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum PolicyArg {
    /// By itself.
    Automatic,
    /// Only when told with `vote`.
    Manual,
}

impl From<PolicyArg> for VotePolicy {
    fn from(policy: PolicyArg) -> Self {
        match policy {
            PolicyArg::Automatic => VotePolicy::Automatic,
            PolicyArg::Manual => VotePolicy::Manual,
        }
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
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Fewest stewards in the list (big and small modes).
        #[arg(long)]
        sn_min: Option<u16>,
        /// Most stewards in the list (big and small modes).
        #[arg(long)]
        sn_max: Option<u16>,
        /// How long a vote on an election or emergency stays open, in seconds.
        #[arg(long)]
        vote_timeout: Option<u32>,
        /// How long a vote on adding or removing someone stays open, in seconds (silence
        /// counts as NO at its end; default an hour).
        #[arg(long, value_name = "SECS")]
        membership_timeout: Option<u32>,
        /// Members replace their keys after this many seconds (default a day)…
        #[arg(long, value_name = "SECS")]
        rotate_after: Option<u32>,
        /// …or after sending this many messages, whichever comes first (default 1000).
        #[arg(long, value_name = "MESSAGES")]
        rotate_after_messages: Option<u32>,
        /// A public group: anyone who asks is admitted by automatic voters. By default only
        /// invited addresses (`demls invite`) or those the members vote in get in.
        #[arg(long)]
        open: bool,
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
    /// Invite an address to a group: your YES on admitting it, signed ahead. Prints the
    /// ticket to give to the invitee (`demls join <ticket>`).
    Invite {
        /// The group.
        group: String,
        /// Who is invited.
        address: String,
        /// For how many hours (default a week).
        #[arg(long, value_name = "HOURS")]
        expires_in: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Ask to join a group, with a ticket from a member's `invite` (or by the group's name).
    Join {
        /// A ticket (`demls:…`), or the group's name.
        group: String,
        /// Only trust announcements from this steward address.
        #[arg(long)]
        steward: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// List the join requests waiting for the members' votes.
    Requests {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Approve a waiting join request (your YES, kept until it is decided).
    Approve {
        /// The group.
        group: String,
        /// Who asks.
        address: String,
        #[command(flatten)]
        target: Target,
    },
    /// Deny a waiting join request (your NO).
    Deny {
        /// The group.
        group: String,
        /// Who asks.
        address: String,
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
        #[arg(value_enum)]
        policy: PolicyArg,
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
    /// Replace this node's keys in a group now (post-compromise security; needs no vote).
    Rotate {
        /// The group.
        group: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set this node's display name in a group; members see it next to its address.
    Name {
        /// The group.
        group: String,
        /// The name: at most 64 bytes, no control characters; "" removes it.
        name: String,
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
    /// The node's answer is not what this CLI expects (a node of another version?).
    #[error("the node's answer cannot be read: {0}")]
    Answer(String),
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

    fn answer<T: DeserializeOwned>(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, CliError> {
        let mut response = result.map_err(|e| CliError::NotRunning {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|e| CliError::Answer(e.to_string()));
        }
        let (code, message) = match serde_json::from_str::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => (error.code, error.message),
            Err(_) => ("error".to_owned(), format!("the node answered {status}")),
        };
        if status.as_u16() == 401 {
            return Err(CliError::BadToken(message));
        }
        Err(CliError::Api { code, message })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.answer(request.call())
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, CliError> {
        let request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.answer(request.send_json(body))
    }

    fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, CliError> {
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

/// The API's name of an enum value (`"steward"`, `"joining"`, …).
fn name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

/// A number that may be unknown.
fn maybe(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn print_message(m: &ChatMessage) {
    let own = if m.direction == Direction::Own {
        " (you)"
    } else {
        ""
    };
    let delivery = if m.delivery == Delivery::Queued {
        " [queued]"
    } else {
        ""
    };
    say!(
        "[{}] {}{own}: {}{delivery}",
        clock(m.sent_at),
        named(&m.sender, m.sender_name.as_deref()),
        m.text
    );
}

/// An address with its display name, if it has one: `0xab… "Alice"`.
fn named(address: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{address} {name:?}"),
        None => address.to_owned(),
    }
}

fn print_messages(list: &[Message]) {
    if list.is_empty() {
        say!("(none)");
    }
    for m in list {
        print_message(&m.message);
    }
}

fn print_node(node: &NodeInfo) {
    say!("address: {}", node.address);
    say!("peer id: {}", node.peer_id);
    for a in &node.listen_addrs {
        say!("listening: {a}");
    }
    say!("pubsub:  {}", node.pubsub_topic);
    say!("peers:   {}", node.peers.len());
    say!("voting:  {}", name(&node.vote_policy));
}

fn print_groups(list: &[GroupSummary]) {
    if list.is_empty() {
        say!("(none)");
    }
    for g in list {
        if g.state == GroupState::Refused {
            say!("{}  {}", g.name, maybe(g.refusal.as_ref()));
        } else if let Some(removal) = &g.removal {
            say!("{}  removed: {}", g.name, describe_removal(removal));
        } else {
            say!(
                "{}  {}  epoch {}  {} members{}",
                g.name,
                name(&g.state),
                maybe(g.epoch),
                maybe(g.members),
                if g.is_steward { "  (steward)" } else { "" }
            );
        }
    }
}

fn print_group(g: &GroupDetail) {
    say!("group {}  epoch {}", g.name, g.epoch);
    if g.name != g.id {
        say!("id:   {} (what the network sees)", g.id);
    }
    let joining = match g.join_rule {
        JoinRule::Invite => "by invitation or the members' vote",
        JoinRule::Open => "open to anyone who asks",
    };
    say!(
        "joining: {joining}; votes on people last {} s, silence counts as NO",
        g.membership_vote_timeout_secs
    );
    say!("admission: {}", g.admission);
    say!(
        "keys rotate after {} s or {} messages sent",
        g.rotate_after_secs,
        g.rotate_after_messages
    );
    let h = &g.health;
    say!(
        "stewards: {} (scores out of {}; a steward is charged in an emergency below {})",
        g.stewards.len(),
        h.score_default,
        h.score_threshold
    );
    for s in &g.stewards {
        let score = h
            .steward_scores
            .iter()
            .find(|scored| scored.address == *s)
            .map_or(String::new(), |scored| format!("  score {}", scored.score));
        say!("  {s}{score}");
    }
    say!("members: {}", g.members.len());
    for m in &g.members {
        let roles: Vec<String> = m.roles.iter().map(name).collect();
        let me = if m.is_self { " (this node)" } else { "" };
        let keys = match m.key_replaced_at {
            Some(at) => format!("keys of epoch {} ({} UTC)", m.key_epoch, clock(at)),
            None => format!("keys of epoch {} or older", m.key_epoch),
        };
        say!(
            "  {}  {}{me}  {keys}",
            named(&m.address, m.display_name.as_deref()),
            roles.join(", ")
        );
    }
    for i in &g.invitations {
        say!(
            "invited: {} by {} (until {} UTC)",
            i.invitee,
            i.inviter,
            clock(i.expires_at)
        );
    }
    say!(
        "health: {} peers, {} open proposals, {} queued, dropped {}",
        h.peers,
        h.open_proposals,
        h.queued,
        serde_json::to_string(&h.dropped).unwrap_or_default()
    );
    if h.missing_messages > 0 {
        say!(
            "syncing: {} messages known to be missing are being fetched from peers",
            h.missing_messages
        );
    }
}

fn print_requests(list: &[PendingRequest]) {
    if list.is_empty() {
        say!("(no requests waiting)");
    }
    // Who voted how is what a person decides by, so each voter is named, not only counted.
    let voters = |who: &[String]| {
        if who.is_empty() {
            "nobody".to_owned()
        } else {
            who.join(", ")
        }
    };
    for r in list {
        let invited = r
            .invited_by
            .as_ref()
            .map_or(String::new(), |i| format!(", invited by {i}"));
        let mine = match r.own_vote {
            Some(true) => "YES",
            Some(false) => "NO",
            None => "not voted",
        };
        say!(
            "{} asks to join since {} UTC{invited}; the vote closes {} UTC (silence is NO)",
            r.address,
            clock(r.since),
            clock(r.deadline)
        );
        say!("  approved by: {}", voters(&r.yes));
        say!("  denied by:   {}", voters(&r.no));
        say!(
            "  yes {} / no {} of {} voters; you: {mine}",
            r.yes.len(),
            r.no.len(),
            r.voters
        );
    }
}

/// Approves or denies a waiting join request.
fn decide(group: &str, address: &str, approve: bool, target: &Target) -> Result<(), CliError> {
    let proposal: Proposal = Client::new(target)?.post(
        &group_path(group, &format!("/requests/{address}")),
        &RequestDecision { approve },
    )?;
    show(target, &proposal, print_proposal);
    Ok(())
}

/// What a change is and whom it concerns (`-` for changes of no single member).
fn change_words(change: &demls_api::Change) -> (String, String) {
    use demls_api::Change as C;
    let member = match change {
        C::Add { member }
        | C::Remove { member }
        | C::Leave { member }
        | C::Readd { member }
        | C::Update { member } => member.clone(),
        C::Election { .. } | C::Emergency { .. } => "-".to_owned(),
    };
    let kind = serde_json::to_value(change)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default();
    (kind, member)
}

fn print_proposal(p: &Proposal) {
    let (kind, member) = change_words(&p.change);
    let t = &p.tally;
    say!(
        "{}  {kind} {member}  by {}  {}  yes {} / no {}{}  (epoch {})",
        p.id,
        p.owner,
        name(&p.state),
        t.yes,
        t.no,
        t.voters.map_or(String::new(), |n| format!(" of {n}")),
        p.epoch,
    );
}

fn print_proposals(list: &[Proposal]) {
    if list.is_empty() {
        say!("(none)");
    }
    list.iter().for_each(print_proposal);
}

/// Prints an answer: as JSON with `--json`, else with `human`.
fn show<T: Serialize>(target: &Target, answer: &T, human: impl FnOnce(&T)) {
    if target.json {
        say!("{}", serde_json::to_string(answer).unwrap_or_default());
    } else {
        human(answer);
    }
}

/// Runs a CLI subcommand.
pub fn run(command: ClientCommand) -> Result<(), CliError> {
    use ClientCommand as C;
    match command {
        C::Status { target } => {
            let node: NodeInfo = Client::new(&target)?.get("/api/node")?;
            show(&target, &node, print_node);
        }
        C::Groups { target } => {
            let list: Vec<GroupSummary> = Client::new(&target)?.get("/api/groups")?;
            show(&target, &list, |l| print_groups(l));
        }
        C::Create {
            group,
            mode,
            sn_min,
            sn_max,
            vote_timeout,
            membership_timeout,
            rotate_after,
            rotate_after_messages,
            open,
            gate,
            target,
        } => {
            let body = NewGroup {
                name: group,
                mode: mode.map(Mode::from),
                sn_min,
                sn_max,
                vote_timeout_secs: vote_timeout,
                membership_vote_timeout_secs: membership_timeout,
                join_rule: open.then_some(JoinRule::Open),
                liveness_yes: None,
                max_proposals_per_member: None,
                rotate_after_secs: rotate_after,
                rotate_after_messages,
                admission: gate.admission()?,
            };
            let created: GroupDetail = Client::new(&target)?.post("/api/groups", &body)?;
            show(&target, &created, print_group);
        }
        C::Show { group, target } => {
            let detail: GroupDetail = Client::new(&target)?.get(&group_path(&group, ""))?;
            show(&target, &detail, print_group);
        }
        C::Invite {
            group,
            address,
            expires_in,
            target,
        } => {
            let body = NewInvitation {
                address,
                expires_in_secs: expires_in.map(|hours| hours.saturating_mul(3600)),
            };
            let invitation: Invitation =
                Client::new(&target)?.post(&group_path(&group, "/invitations"), &body)?;
            show(&target, &invitation, |i| {
                say!("{}", i.ticket);
                eprintln!(
                    "give this ticket to {}: `demls join <ticket>` (valid until {} UTC)",
                    i.invitee,
                    clock(i.expires_at)
                );
            });
        }
        C::Requests { group, target } => {
            let list: Vec<PendingRequest> =
                Client::new(&target)?.get(&group_path(&group, "/requests"))?;
            show(&target, &list, |l| print_requests(l));
        }
        C::Approve {
            group,
            address,
            target,
        } => decide(&group, &address, true, &target)?,
        C::Deny {
            group,
            address,
            target,
        } => decide(&group, &address, false, &target)?,
        C::Join {
            group,
            steward,
            target,
        } => {
            let client = Client::new(&target)?;
            let summary: GroupSummary = if Ticket::looks_like(&group) {
                client.post("/api/join", &JoinTicket { ticket: group })?
            } else {
                client.post(&group_path(&group, "/join"), &JoinRequest { steward })?
            };
            show(&target, &summary, |g| {
                say!(
                    "asked to join '{}': waiting for its steward's announcement and the members' vote",
                    g.name
                );
            });
        }
        C::Remove {
            group,
            member,
            target,
        } => {
            let status: StatusBody = Client::new(&target)?.post(
                &group_path(&group, "/proposals"),
                &NewProposal::Remove { member },
            )?;
            show(&target, &status, |s| say!("{}", name(&s.status)));
        }
        C::Proposals { group, target } => {
            let list: Vec<Proposal> =
                Client::new(&target)?.get(&group_path(&group, "/proposals"))?;
            show(&target, &list, |l| print_proposals(l));
        }
        C::Vote {
            group,
            proposal,
            choice,
            target,
        } => {
            let voted: Proposal = Client::new(&target)?.post(
                &group_path(&group, &format!("/proposals/{proposal}/votes")),
                &Ballot {
                    yes: choice == "yes",
                },
            )?;
            show(&target, &voted, print_proposal);
        }
        C::Policy { policy, target } => {
            let node: NodeInfo = Client::new(&target)?.put(
                "/api/node/vote-policy",
                &VotePolicyChange {
                    policy: policy.into(),
                },
            )?;
            show(&target, &node, print_node);
        }
        C::Send {
            group,
            text,
            target,
        } => {
            let sent: Message = Client::new(&target)?.post(
                &group_path(&group, "/messages"),
                &NewMessage {
                    text: text.join(" "),
                },
            )?;
            show(&target, &sent, |m| print_message(&m.message));
        }
        C::Messages { group, target } => {
            let list: Vec<Message> = Client::new(&target)?.get(&group_path(&group, "/messages"))?;
            show(&target, &list, |l| print_messages(l));
        }
        C::Follow { group, target } => return follow(&group, &target),
        C::Leave { group, target } => post_status(&group, "/leave", &target)?,
        C::Rotate { group, target } => post_status(&group, "/rotate", &target)?,
        C::Name {
            group,
            name,
            target,
        } => {
            let detail: GroupDetail =
                Client::new(&target)?.put(&group_path(&group, "/name"), &DisplayName { name })?;
            show(&target, &detail, print_group);
        }
    }
    Ok(())
}

/// Posts an empty body to a group's `path` and prints the status answered.
fn post_status(group: &str, path: &str, target: &Target) -> Result<(), CliError> {
    let status: StatusBody =
        Client::new(target)?.post(&group_path(group, path), &serde_json::Map::new())?;
    show(target, &status, |s| say!("{}", name(&s.status)));
    Ok(())
}

/// Prints an event of the stream for a person; events of no interest here print nothing.
fn print_event(event: &NodeEvent, last_seq: u64) {
    match &event.body {
        EventBody::Message(m) if event.seq.unwrap_or(0) > last_seq => print_message(m),
        EventBody::EpochChanged {
            epoch,
            committer,
            members,
            ..
        } => say!(
            "-- epoch {epoch}: {} members (committed by {committer})",
            members.len()
        ),
        EventBody::Joined { epoch, .. } => say!("-- joined at epoch {epoch}"),
        EventBody::ProposalOpened {
            proposal,
            owner,
            change,
            ..
        } => {
            let (kind, member) = change_words(change);
            say!("-- proposal {proposal}: {kind} {member} (by {owner})");
        }
        EventBody::ProposalDecided {
            proposal, approved, ..
        } => say!(
            "-- proposal {proposal} {}",
            if *approved { "approved" } else { "rejected" }
        ),
        EventBody::Removed {
            epoch, by, reason, ..
        } => say!(
            "-- this node is no longer a member: {}",
            describe_removal(&demls_api::Removal {
                epoch: *epoch,
                by: by.clone(),
                at: event.at,
                reason: reason.clone(),
            })
        ),
        EventBody::Invited {
            invitee, inviter, ..
        } => say!("-- {inviter} invited {invitee}"),
        EventBody::JoinRefused {
            steward, reason, ..
        } => say!("-- the steward {steward} refused this node: {reason}"),
        EventBody::AdmissionVerdict {
            subject, verdict, ..
        } => say!("-- admission check of {subject}: {verdict}"),
        EventBody::Syncing { missing: 0, .. } => say!("-- syncing: nothing missing any more"),
        EventBody::Syncing { missing, .. } => {
            say!("-- syncing: {missing} missing, asking the group; later messages wait for them");
        }
        EventBody::HistoryGap { lost, .. } => say!(
            "-- gap: {lost} missing {} could not be had from anyone; what follows came after",
            if *lost == 1 { "message" } else { "messages" }
        ),
        EventBody::NameChanged {
            member,
            name: Some(name),
            ..
        } => say!("-- {member} is now called {name:?}"),
        EventBody::NameChanged { member, .. } => say!("-- {member} took its name away"),
        _ => {}
    }
}

/// How long `follow` waits before trying again to reach a node that went away.
const RECONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Prints the history, then follows the event stream. When the node goes away (a restart)
/// it says so, reconnects once the node is back, and prints what it missed.
fn follow(group: &str, target: &Target) -> Result<(), CliError> {
    let mut last_seq = 0;
    let mut ever = false;
    loop {
        let mut live = false;
        match follow_once(group, target, &mut last_seq, ever, &mut live) {
            // A closed stdout (e.g. piped into head) ends the command.
            Ok(()) => return Ok(()),
            // The first connection's failure is the command's (no node, bad token, no group).
            Err(error) if !ever && !live => return Err(error),
            Err(error) => {
                if live {
                    eprintln!("-- lost the node ({error}); reconnecting");
                }
                ever = true;
                std::thread::sleep(RECONNECT_WAIT);
            }
        }
    }
}

/// One connection of `follow`: subscribes, prints the history after `last_seq`, then the
/// stream, until the stream fails (an error) or stdout closes (`Ok`).
fn follow_once(
    group: &str,
    target: &Target,
    last_seq: &mut u64,
    again: bool,
    live: &mut bool,
) -> Result<(), CliError> {
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
    let history: Vec<Message> =
        client.get(&group_path(group, &format!("/messages?after={last_seq}")))?;
    if again {
        eprintln!("-- reconnected");
    }
    *live = true;
    let seen = *last_seq;
    for m in &history {
        *last_seq = (*last_seq).max(m.seq);
        show(target, m, |m| print_message(&m.message));
    }
    let shown = *last_seq;
    loop {
        let message = socket.read().map_err(|e| CliError::Stream(e.to_string()))?;
        let tungstenite::Message::Text(body) = message else {
            continue;
        };
        // An event this CLI does not know (a newer node) is skipped.
        let Ok(event) = serde_json::from_str::<NodeEvent>(body.as_str()) else {
            continue;
        };
        if let (EventBody::Message(_), Some(seq)) = (&event.body, event.seq) {
            *last_seq = (*last_seq).max(seq);
        }
        show(target, &event, |e| print_event(e, shown.max(seen)));
        if std::io::stdout().flush().is_err() {
            return Ok(());
        }
    }
}
