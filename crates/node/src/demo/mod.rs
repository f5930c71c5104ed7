//! `demls demo`: a whole group in one process, told as a story, with a JSON summary.
//!
//! By default the nodes are real node runtimes on 127.0.0.1 talking Waku Relay over TCP
//! ([`network`]); `--transport memory` runs the engines on the deterministic simulator
//! ([`memory`]). Both tell the same story and end with the same summary.

mod memory;
mod network;

use std::ops::Range;

use clap::{Args, ValueEnum};
use demls_engine::{
    ChangeKind, Engine, EngineConfig, Epoch, Event, GroupParams, GroupView, StewardMode, Timestamp,
};
use demls_identity::Address;
use demls_transport::{DEFAULT_CLUSTER_ID, Multiaddr};
use serde::Serialize;

use crate::story::Names;

/// Which network the demo's nodes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// Real node runtimes over Waku Relay on 127.0.0.1 (TCP, noise, yamux, gossipsub).
    Network,
    /// Engines on the in-memory simulator (latency 10–70 ms, reordering).
    Memory,
}

/// Options of `demls demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Members in the group, the steward included.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=200))]
    pub members: u16,
    /// Print the summary as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Seed of the simulated network's latencies (memory transport).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The network the nodes use.
    #[arg(long, value_enum, default_value_t = Transport::Network)]
    pub transport: Transport,
    /// An existing node to connect the demo's nodes to, so it can watch (repeatable).
    #[arg(long)]
    pub peer: Vec<Multiaddr>,
    /// Waku cluster id of the demo's nodes.
    #[arg(long, default_value_t = DEFAULT_CLUSTER_ID)]
    pub cluster_id: u16,
    /// How the group chooses who commits: one steward, or an elected, rotating list (3 to 5).
    #[arg(long, value_enum, default_value_t = Mode::Big)]
    pub mode: Mode,
}

/// The demo group's steward arrangement.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Mode {
    /// The creator commits every change.
    Single,
    /// Elected stewards take turns; everyone votes on everything.
    Big,
    /// Elected stewards take turns and vote on membership; everyone votes on elections.
    Small,
}

impl DemoArgs {
    /// The demo group's parameters.
    fn group_params(&self) -> GroupParams {
        let mode = match self.mode {
            Mode::Single => StewardMode::Single,
            Mode::Big => StewardMode::Big,
            Mode::Small => StewardMode::Small,
        };
        let (sn_min, sn_max) = if mode == StewardMode::Single {
            (1, 1)
        } else {
            (3, 5)
        };
        GroupParams {
            mode,
            sn_min,
            sn_max,
            vote_timeout_secs: 10,
            ..GroupParams::default()
        }
    }
}

/// The summary line whose fields the README documents.
#[derive(Serialize)]
struct Summary {
    members: usize,
    joined: usize,
    final_epoch: u64,
    messages_sent: usize,
    messages_delivered: usize,
    removed_member_can_decrypt: bool,
    key_updates: usize,
    stolen_state_can_decrypt_after_update: bool,
    epoch_authenticators_agree: bool,
}

/// What a demo run ended with.
struct Outcome<'a> {
    members: usize,
    joined: usize,
    /// Every message sent, with whether it reached all its recipients.
    sent: usize,
    delivered: usize,
    readable_after_removal: usize,
    /// Chat messages sent after the key updates were committed that the thief read.
    readable_by_thief: usize,
    /// The epoch the members asked to replace their keys in.
    rotation_asked: Epoch,
    /// The group as each remaining member sees it.
    views: &'a [GroupView],
}

impl Summary {
    /// The summary of `outcome`: the authenticators agree if every remaining member has a
    /// view and all views share one epoch and authenticator.
    fn of(outcome: &Outcome<'_>) -> Self {
        let views = outcome.views;
        let agree = views.len() == outcome.members - 1
            && views
                .windows(2)
                .all(|w| w[0].epoch == w[1].epoch && w[0].authenticator == w[1].authenticator);
        Self {
            members: outcome.members,
            joined: outcome.joined,
            final_epoch: views.first().map_or(0, |v| v.epoch.0),
            messages_sent: outcome.sent,
            messages_delivered: outcome.delivered,
            removed_member_can_decrypt: outcome.readable_after_removal > 0,
            key_updates: key_updates(views, outcome.rotation_asked),
            stolen_state_can_decrypt_after_update: outcome.readable_by_thief > 0,
            epoch_authenticators_agree: agree,
        }
    }

    /// The closing line, and the JSON object if asked for.
    fn print(&self, json: bool) -> Result<(), DemoError> {
        println!(
            "\n== summary: {}/{} joined, epoch {}, {}/{} messages delivered to every member, authenticators agree: {} ==",
            self.joined,
            self.members,
            self.final_epoch,
            self.messages_delivered,
            self.messages_sent,
            self.epoch_authenticators_agree
        );
        if json {
            println!("{}", serde_json::to_string(self)?);
        }
        Ok(())
    }
}

type DemoError = Box<dyn std::error::Error>;

/// How long the demo's invitations last.
const INVITATION_MS: u64 = 3_600_000;

/// What the group says after the removal.
const AFTER_REMOVAL: &str = "after the removal";

/// Whether `event` is one of the messages sent after the removal.
fn after_removal(event: &Event) -> bool {
    matches!(event, Event::Message { text, .. } if text.starts_with(AFTER_REMOVAL))
}

/// Tells what the removed member made of the ciphertexts sent after its removal.
fn tell_lockout(name: &str, tried: usize, readable: usize, refused: usize) {
    println!(
        "🔒 holding all its pre-removal keys, {name} tried {tried} ciphertexts sent after its removal: {readable} readable ({refused} refused outright)"
    );
}

/// The demo's engines: quick announcements and join retries.
fn engine_config() -> EngineConfig {
    EngineConfig {
        announce_interval_ms: 1_000,
        join_retry_ms: 3_000,
        ..EngineConfig::default()
    }
}

/// How many members replace their keys before the removal, the thief's mark among them.
const ROTATING: usize = 3;

/// The members that replace their keys, in a group of `n` whose last member is removed:
/// the ones just before it.
fn rotating(n: usize) -> Range<usize> {
    let removed = n - 1;
    removed.saturating_sub(ROTATING)..removed
}

/// The member whose whole state the thief copies, before it replaces its keys: the last
/// of [`rotating`].
fn mark(n: usize) -> usize {
    n - 2
}

/// The member whose update `event` approves, if it does.
fn approved_update(event: &Event) -> Option<Address> {
    match event {
        Event::ProposalDecided {
            change: ChangeKind::Update(member),
            approved: true,
            ..
        } => Some(*member),
        _ => None,
    }
}

/// Tells who replaces its keys.
fn tell_rotation(names: &Names, updaters: &[Address]) {
    let list: Vec<String> = updaters.iter().map(|a| names.of(a)).collect();
    println!("\n== {} replace their keys ==", list.join(", "));
}

/// Leaves replaced by commits after `asked` (members' updates and committers' own
/// UpdatePaths), as the member that saw fewest of them knows it.
fn key_updates(views: &[GroupView], asked: Epoch) -> usize {
    views
        .iter()
        .map(|view| view.key_ages.iter().filter(|age| age.epoch > asked).count())
        .min()
        .unwrap_or(0)
}

/// Tells whose leaves the commits after `asked` replaced, as `view` shows them.
fn tell_key_updates(names: &Names, view: Option<&GroupView>, asked: Epoch) {
    let replaced: Vec<String> = view
        .iter()
        .flat_map(|v| &v.key_ages)
        .filter(|age| age.epoch > asked)
        .map(|age| format!("{} (epoch {})", names.of(&age.member), age.epoch.0))
        .collect();
    println!(
        "🔄 new leaf keys since epoch {}: {}",
        asked.0,
        replaced.join(", ")
    );
}

/// Whether every view shows the leaves of all of `members` replaced after `asked`.
fn updates_committed(views: &[GroupView], members: &[Address], asked: Epoch) -> bool {
    !views.is_empty()
        && views.iter().all(|view| {
            members.iter().all(|member| {
                view.key_ages
                    .iter()
                    .any(|age| age.member == *member && age.epoch > asked)
            })
        })
}

/// Hands `engine` the ciphertexts in the order they travelled: what it made of them, and
/// how many it refused outright.
fn feed(engine: &mut Engine, ciphertexts: &[Vec<u8>], now: Timestamp) -> (Vec<Event>, usize) {
    let refused = ciphertexts
        .iter()
        .filter(|bytes| engine.handle_message(bytes, now).is_err())
        .count();
    (
        std::iter::from_fn(|| engine.poll_event()).collect(),
        refused,
    )
}

/// Tells what the thief made of the ciphertexts it fed a copy of `name`'s state taken
/// before its update: `events` (from [`feed`]); returns how many of the chat messages
/// sent after the update it read.
fn tell_theft(name: &str, tried: usize, events: &[Event]) -> usize {
    let chats = events.iter().filter(|e| matches!(e, Event::Message { .. }));
    let after = chats.clone().filter(|e| after_removal(e)).count();
    let before = chats.count() - after;
    println!(
        "🕵 with a copy of {name}'s whole state taken before its update, a thief tried {tried} ciphertexts: it read {before} chat messages sent before the update was committed, {after} sent after"
    );
    after
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    match args.transport {
        Transport::Memory => memory::run(args),
        Transport::Network => network::run(args),
    }
}
