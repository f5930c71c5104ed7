//! No message is lost: chat survives loss, reordering and a network split. Messages carry
//! their causal history; members deliver in causal order, notice what they miss, and the
//! group sends it again.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use demls_engine::{ChangeKind, Event, VotePolicy};
use demls_sim::{NetConfig, NodeId, Sim};

/// The texts a node delivered, in delivery order.
fn delivered(sim: &Sim, id: NodeId) -> Vec<String> {
    texts(sim, id)
}

/// Ids a chat message names as its causal history (besides its sender's previous one).
const HISTORY_LEN: usize = 10;

/// One chat message as the test sent it.
struct Said {
    text: String,
    sender: NodeId,
    /// The members of the epoch it was sent in (the sender's view): who must get it.
    recipients: BTreeSet<NodeId>,
    /// Everything its sender had shown when sending: its whole causal past.
    seen: BTreeSet<String>,
    /// What it names as its history: the last messages its sender had shown, and the
    /// sender's previous one.
    named: BTreeSet<String>,
}

/// What the test sent, in order.
#[derive(Default)]
struct Chat {
    said: Vec<Said>,
    /// For a member on its way out: how many messages had been said when it asked to
    /// leave, was proposed for removal, or went offline for good.
    departing: BTreeMap<NodeId, usize>,
    /// The number of the next round of [`Chat::talk`].
    next_round: usize,
}

impl Chat {
    /// `id` says `text`, recording who must get it and what it depends on.
    fn say(&mut self, sim: &mut Sim, id: NodeId, text: String) {
        let members = view(sim, id).members;
        let recipients = sim
            .ids()
            .filter(|n| members.contains(&address(sim, *n)))
            .collect();
        let shown = delivered(sim, id);
        let own = format!("m{}:", id.0);
        let mut named: BTreeSet<String> = shown.iter().rev().take(HISTORY_LEN).cloned().collect();
        named.extend(shown.iter().rev().find(|t| t.starts_with(&own)).cloned());
        sim.act(id, |e, now| e.send_message(&group(), &text, now))
            .unwrap();
        self.said.push(Said {
            text,
            sender: id,
            recipients,
            seen: shown.into_iter().collect(),
            named,
        });
    }

    /// Each member of the group (in `nodes`) says something numbered `round`.
    fn round(&mut self, sim: &mut Sim, nodes: &[NodeId], round: usize) {
        for id in nodes {
            if sim.node(*id).engine.group(&group()).is_some() {
                self.say(sim, *id, format!("m{}:{round}", id.0));
            }
        }
    }

    /// The members among `nodes` talk in rounds 2 s apart until `done` holds or after
    /// `at_most` rounds; whether `done` held.
    fn talk(
        &mut self,
        sim: &mut Sim,
        nodes: &[NodeId],
        at_most: usize,
        done: &dyn Fn(&Sim) -> bool,
    ) -> bool {
        for _ in 0..at_most {
            if done(sim) {
                return true;
            }
            self.round(sim, nodes, self.next_round);
            self.next_round += 1;
            sim.run_for(2_000);
        }
        done(sim)
    }

    /// `id` is on its way out from now on.
    fn departs(&mut self, id: NodeId) {
        self.departing.insert(id, self.said.len());
    }

    /// Whether `said` (the `index`th message) may be missing at `id`: it was said after its
    /// sender or `id` began to depart. Such a message is lost to a member that applies the
    /// removal commit first (the departing member drops the group; the others cannot
    /// decrypt a departed sender's message of an earlier epoch: mls-rs rejects it).
    fn excused(&self, index: usize, said: &Said, id: NodeId) -> bool {
        [said.sender, id]
            .iter()
            .any(|n| self.departing.get(n).is_some_and(|from| *from <= index))
    }

    /// The texts `id` must get: those sent while it was a member, but for departures.
    fn owed(&self, id: NodeId) -> BTreeSet<&str> {
        self.said
            .iter()
            .enumerate()
            .filter(|(i, s)| s.recipients.contains(&id) && !self.excused(*i, s, id))
            .map(|(_, s)| s.text.as_str())
            .collect()
    }

    /// Whether `id` has every text it is owed.
    fn complete(&self, sim: &Sim, id: NodeId) -> bool {
        let got: BTreeSet<String> = delivered(sim, id).into_iter().collect();
        self.owed(id).iter().all(|t| got.contains(*t))
    }

    /// Checks that `id` got what it is owed, nothing from outside its time in the group,
    /// once each; each message after what it names, and with a Lamport clock above that
    /// of everything its sender had seen. Not checked: that each message comes after its
    /// whole causal past. A message names only the last 10 its sender showed, so one the
    /// sender showed earlier and that nothing later names (a concurrent message) can come
    /// after it; this run of the fifty-member test shows that (e.g. `m1:1` before `m7:0`).
    fn check(&self, sim: &Sim, id: NodeId) {
        let got: Vec<(String, u64)> = sim
            .node(id)
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message { text, lamport, .. } => Some((text.clone(), *lamport)),
                _ => None,
            })
            .collect();
        let position: BTreeMap<&str, (usize, u64)> = got
            .iter()
            .enumerate()
            .map(|(i, (t, l))| (t.as_str(), (i, *l)))
            .collect();
        assert_eq!(position.len(), got.len(), "node {} got duplicates", id.0);
        let owed = self.owed(id);
        let allowed: BTreeSet<&str> = self
            .said
            .iter()
            .filter(|s| s.recipients.contains(&id))
            .map(|s| s.text.as_str())
            .collect();
        let extra: Vec<&str> = position
            .keys()
            .filter(|t| !allowed.contains(*t))
            .copied()
            .collect();
        let lacking: Vec<&str> = owed
            .iter()
            .filter(|t| !position.contains_key(*t))
            .copied()
            .collect();
        assert!(
            extra.is_empty() && lacking.is_empty(),
            "node {}: extra {extra:?}, lacking {lacking:?}",
            id.0
        );
        for said in &self.said {
            let Some((at, lamport)) = position.get(said.text.as_str()) else {
                continue;
            };
            let early: Vec<&String> = said
                .named
                .iter()
                .filter(|d| position.get(d.as_str()).is_some_and(|(p, _)| p > at))
                .collect();
            assert!(
                early.is_empty(),
                "node {} showed {} before what it names: {early:?}",
                id.0,
                said.text
            );
            let later: Vec<&String> = said
                .seen
                .iter()
                .filter(|d| position.get(d.as_str()).is_some_and(|(_, l)| l >= lamport))
                .collect();
            assert!(
                later.is_empty(),
                "{}'s clock is not above that of {later:?}, which its sender had seen",
                said.text
            );
        }
    }
}

/// Whether `id` learnt it is no longer a member.
fn removed(sim: &Sim, id: NodeId) -> bool {
    sim.node(id)
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::Removed { .. }))
}

#[test]
fn fifty_members_under_loss_and_a_split_all_get_every_message_in_causal_order() {
    let mut sim = Sim::new(NetConfig {
        seed: 401,
        latency_ms: 50,
        jitter_ms: 20,
        ..NetConfig::default()
    });
    let nodes = form_group(&mut sim, 50, VotePolicy::Automatic);
    // 10 % of every message is lost from now on, and the group splits 30/20.
    sim.set_faults(0.10, 0.0);
    let (side_a, side_b) = nodes.split_at(30);
    for id in side_b {
        sim.node_mut(*id).partition = 1;
    }
    // Each round answers what its sender has seen of the rounds before: causal chains
    // across senders, within each side and, after healing, across them.
    let mut chat = Chat::default();
    chat.talk(&mut sim, &nodes, 3, &|_| false);
    // Both sides talked on their own; then the network heals (the loss stays).
    sim.run_for(20_000);
    for id in side_b {
        sim.node_mut(*id).partition = 0;
    }
    // After healing, each member answers once more what it has seen: both sides' rounds.
    sim.run_for(5_000);
    chat.talk(&mut sim, &nodes, 1, &|_| false);
    let healed = caught_up(&mut sim, &chat, &nodes, 900_000);
    assert!(healed, "{}", summary(&sim, &chat, &nodes));
    for id in &nodes {
        chat.check(&sim, *id);
    }
    // Senders learnt that others have their messages.
    assert!(side_a.iter().chain(side_b).all(|id| {
        sim.node(*id)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Acknowledged { .. }))
    }));
}

#[test]
fn members_who_join_and_leave_under_reordering_get_exactly_the_messages_of_their_time() {
    members_join_and_leave(0.0, false);
}

#[test]
fn members_who_join_and_leave_under_loss_get_exactly_the_messages_of_their_time() {
    members_join_and_leave(0.10, false);
}

#[test]
fn members_who_join_and_leave_under_loss_and_a_split_get_exactly_the_messages_of_their_time() {
    members_join_and_leave(0.10, true);
}

/// Members join and leave while everyone talks, on a network that reorders and duplicates
/// and loses `loss` of the deliveries; with `split`, the group splits 8/5 while the larger
/// side admits a joiner. Each member gets exactly the messages of its time in the group.
fn members_join_and_leave(loss: f64, split: bool) {
    let mut sim = Sim::new(noisy_net(402));
    let g = group();
    let mut nodes = form_group(&mut sim, 12, VotePolicy::Automatic);
    sim.set_faults(loss, 0.25);
    let mut chat = Chat::default();
    chat.talk(&mut sim, &nodes, 2, &|_| false);
    assert!(caught_up(&mut sim, &chat, &nodes, 120_000));
    // A newcomer asks to join and a member leaves, while everyone talks.
    let newcomer = ask_to_join(&mut sim);
    nodes.push(newcomer);
    let leaver = nodes[5];
    sim.act(leaver, |e, now| e.leave(&g, now)).unwrap();
    chat.departs(leaver);
    let joined_and_left =
        |s: &Sim| s.node(newcomer).engine.group(&g).is_some() && removed(s, leaver);
    assert!(
        chat.talk(&mut sim, &nodes, 90, &joined_and_left),
        "{}",
        describe(&sim, &nodes)
    );
    // A second newcomer: with `split`, the group splits 8/5 meanwhile, and the larger side
    // (with the steward) admits it while both sides talk, each in its own epoch.
    let side_b = nodes[8..].to_vec();
    if split {
        for id in &side_b {
            sim.node_mut(*id).partition = 1;
        }
    }
    let second = ask_to_join(&mut sim);
    nodes.push(second);
    assert!(chat.talk(&mut sim, &nodes, 90, &|s| {
        s.node(second).engine.group(&g).is_some()
    }));
    for id in &side_b {
        sim.node_mut(*id).partition = 0;
    }
    let everyone = nodes.clone();
    let healed = caught_up(&mut sim, &chat, &everyone, 300_000);
    assert!(
        healed,
        "{}; {}",
        summary(&sim, &chat, &everyone),
        describe(&sim, &everyone)
    );
    // Then a member of the side that was cut off (with `split`) leaves while the talk goes on.
    let second_leaver = side_b[1];
    sim.act(second_leaver, |e, now| e.leave(&g, now)).unwrap();
    chat.departs(second_leaver);
    assert!(
        chat.talk(&mut sim, &nodes, 90, &|s| removed(s, second_leaver)),
        "{}",
        describe(&sim, &nodes)
    );
    chat.talk(&mut sim, &nodes, 2, &|_| false);
    let complete = caught_up(&mut sim, &chat, &everyone, 300_000);
    // Nothing more arrives later (no message from outside one's time).
    sim.run_for(30_000);
    assert!(complete, "{}", summary(&sim, &chat, &everyone));
    for id in &everyone {
        chat.check(&sim, *id);
    }
}

/// Runs until every one of `nodes` has what it is owed, for `limit_ms` at most; whether so.
fn caught_up(sim: &mut Sim, chat: &Chat, nodes: &[NodeId], limit_ms: u64) -> bool {
    sim.run_until(limit_ms, |s| nodes.iter().all(|id| chat.complete(s, *id)))
}

/// A new node that asks to join the group.
fn ask_to_join(sim: &mut Sim) -> NodeId {
    let id = sim.add(engine(VotePolicy::Automatic));
    sim.act(id, |e, now| e.request_join(group(), None, now))
        .unwrap();
    id
}

/// For each node: what it is owed and what it delivered.
fn summary(sim: &Sim, chat: &Chat, nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(|id| {
            let got: BTreeSet<String> = delivered(sim, *id).into_iter().collect();
            let owed = chat.owed(*id);
            let lacking = owed.iter().filter(|t| !got.contains(**t)).count();
            format!(
                "node {}: {} of {} owed",
                id.0,
                owed.len() - lacking,
                owed.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn a_member_removed_while_offline_learns_it_and_gets_nothing_from_after() {
    let mut sim = Sim::new(NetConfig {
        seed: 403,
        ..NetConfig::default()
    });
    let g = group();
    let nodes = form_group(&mut sim, 6, VotePolicy::Automatic);
    sim.set_faults(0.10, 0.0);
    let (rest, victim) = (nodes[..5].to_vec(), nodes[5]);
    let victim_address = address(&sim, victim);
    let mut chat = Chat::default();
    chat.talk(&mut sim, &nodes, 2, &|_| false);
    assert!(caught_up(&mut sim, &chat, &nodes, 120_000));
    // The victim goes offline; the others talk in its last epoch, then vote it out and
    // talk on.
    sim.node_mut(victim).online = false;
    chat.departs(victim);
    chat.talk(&mut sim, &rest, 1, &|_| false);
    let change = ChangeKind::Remove(victim_address);
    decide_everywhere(&mut sim, &rest, &change, true);
    sim.act(nodes[1], |e, now| e.propose_remove(&g, victim_address, now))
        .unwrap();
    assert!(
        chat.talk(&mut sim, &rest, 30, &|s| converged(s, &rest, 5)),
        "{}",
        describe(&sim, &rest)
    );
    chat.talk(&mut sim, &rest, 3, &|_| false);
    sim.run_for(30_000);
    // Back online: it hears of its removal, and nothing said after it.
    sim.node_mut(victim).online = true;
    let back = sim.run_until(300_000, |s| {
        nodes.iter().all(|id| chat.complete(s, *id)) && removed(s, victim)
    });
    sim.run_for(30_000);
    assert!(back, "{}", summary(&sim, &chat, &nodes));
    for id in &nodes {
        chat.check(&sim, *id);
    }
    assert!(sim.node(victim).engine.group(&g).is_none());
    assert!(sim.node(victim).events.iter().any(|(_, e)| matches!(
        e,
        Event::Removed {
            reason: demls_engine::Removal::Voted { .. },
            ..
        }
    )));
}

#[test]
fn a_member_that_hears_its_own_message_again_takes_it_for_a_copy_not_for_another_branch() {
    use demls_engine::EngineError;
    use demls_engine::wire::{Envelope, envelope};
    use prost::Message;

    let mut sim = Sim::new(NetConfig::default());
    let nodes = form_group(&mut sim, 3, VotePolicy::Automatic);
    sim.run_for(5_000);
    sim.enable_wiretap();
    let alice = nodes[1];
    sim.act(alice, |e, now| e.send_message(&group(), "hello", now))
        .unwrap();
    let (_, sent) = sim
        .wiretap
        .iter()
        .find(|(from, _)| *from == alice)
        .cloned()
        .expect("alice's message");
    sim.run_for(1_000);
    // A member answering a repair request publishes the very same bytes; Alice hears them.
    let heard = sim.act(alice, |e, now| Ok(e.handle_message(&sent.payload, now)));
    assert!(
        matches!(heard, Ok(Err(EngineError::Duplicate))),
        "{heard:?}"
    );
    sim.run_for(30_000);
    let sync_requests = sim
        .wiretap
        .iter()
        .filter(|(from, t)| {
            *from == alice
                && matches!(
                    Envelope::decode(t.payload.as_slice())
                        .ok()
                        .and_then(|e| e.body),
                    Some(envelope::Body::SyncRequest(_))
                )
        })
        .count();
    assert_eq!(sync_requests, 0, "alice suspected she was behind");
    assert!(delivered(&sim, nodes[2]).contains(&"hello".to_owned()));
}
