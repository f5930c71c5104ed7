//! What a voting proposal puts to the vote, and in which order proposals go.
//!
//! The RFC's three consensus types: commit proposals (membership changes),
//! steward elections and emergency criteria proposals. While a higher-priority
//! proposal is open, a member holds back its lower-priority ones (they are
//! queued, not lost).

use demls_consensus::wire;
use demls_identity::Address;
use prost::Message;

use crate::change::Change;
use crate::wire::{CommitPair, Emergency as EmergencyWire, Omission, StewardElection, emergency};
use crate::{ChangeKind, EngineError, Epoch, Violation};

pub(crate) const CHANGE_NAME: &str = "demls/group-change/v1";
const ELECTION_NAME: &str = "demls/steward-election/v1";
const EMERGENCY_NAME: &str = "demls/emergency/v1";

/// Consensus priority, highest last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Priority {
    /// A membership change.
    Commit,
    /// A steward election.
    Election,
    /// An emergency criteria proposal.
    Emergency,
}

/// A steward election: the list every member recomputes and compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Election {
    pub(crate) retry_round: u32,
    pub(crate) stewards: Vec<Address>,
}

/// The proof that a steward broke the rules, or that the stewards are deadlocked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Evidence {
    BrokenCommit(Vec<u8>),
    Equivocation {
        first: Vec<u8>,
        second: Vec<u8>,
    },
    Inactivity,
    Censorship {
        commit: Vec<u8>,
        omitted: Box<wire::Proposal>,
    },
    Deadlock,
}

impl Evidence {
    pub(crate) fn violation(&self) -> Violation {
        match self {
            Self::BrokenCommit(_) => Violation::BrokenCommit,
            Self::Equivocation { .. } => Violation::Equivocation,
            Self::Inactivity => Violation::Inactivity,
            Self::Censorship { .. } => Violation::Censorship,
            Self::Deadlock => Violation::Deadlock,
        }
    }
}

/// An emergency criteria proposal.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Emergency {
    /// The steward to remove; none for a deadlock.
    pub(crate) offender: Option<Address>,
    /// The epoch in which the violation happened.
    pub(crate) violation_epoch: u64,
    pub(crate) evidence: Evidence,
}

/// What a proposal asks the group to decide.
#[derive(Clone, Debug)]
pub(crate) enum Motion {
    Change(Change),
    Election(Election),
    Emergency(Emergency),
}

impl Motion {
    /// The consensus proposal name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Change(_) => CHANGE_NAME,
            Self::Election(_) => ELECTION_NAME,
            Self::Emergency(_) => EMERGENCY_NAME,
        }
    }

    pub(crate) fn priority(&self) -> Priority {
        match self {
            Self::Change(_) => Priority::Commit,
            Self::Election(_) => Priority::Election,
            Self::Emergency(_) => Priority::Emergency,
        }
    }

    /// The proposal payload for `epoch`.
    pub(crate) fn encode(&self, epoch: Epoch) -> Result<Vec<u8>, EngineError> {
        Ok(match self {
            Self::Change(change) => change.encode(epoch)?,
            Self::Election(election) => StewardElection {
                epoch: epoch.0,
                retry_round: election.retry_round,
                stewards: election
                    .stewards
                    .iter()
                    .map(|a| a.as_bytes().to_vec())
                    .collect(),
            }
            .encode_to_vec(),
            Self::Emergency(e) => {
                let evidence = match &e.evidence {
                    Evidence::BrokenCommit(commit) => {
                        emergency::Evidence::BrokenCommit(commit.clone())
                    }
                    Evidence::Equivocation { first, second } => {
                        emergency::Evidence::Equivocation(CommitPair {
                            first: first.clone(),
                            second: second.clone(),
                        })
                    }
                    Evidence::Inactivity => emergency::Evidence::Inactivity(true),
                    Evidence::Censorship { commit, omitted } => {
                        emergency::Evidence::Censorship(Omission {
                            commit: commit.clone(),
                            omitted: Some((**omitted).clone()),
                        })
                    }
                    Evidence::Deadlock => emergency::Evidence::Deadlock(true),
                };
                EmergencyWire {
                    epoch: epoch.0,
                    offender: e
                        .offender
                        .map(|a| a.as_bytes().to_vec())
                        .unwrap_or_default(),
                    violation_epoch: e.violation_epoch,
                    evidence: Some(evidence),
                }
                .encode_to_vec()
            }
        })
    }

    /// Decodes a proposal of `epoch` by its name.
    pub(crate) fn decode(name: &str, payload: &[u8], epoch: Epoch) -> Result<Self, EngineError> {
        let check_epoch = |got: u64| {
            if got == epoch.0 {
                Ok(())
            } else {
                Err(EngineError::WrongEpoch {
                    got: Epoch(got),
                    current: epoch,
                })
            }
        };
        match name {
            CHANGE_NAME => Ok(Self::Change(Change::decode(payload, epoch)?)),
            ELECTION_NAME => {
                let election = StewardElection::decode(payload)?;
                check_epoch(election.epoch)?;
                let stewards = election
                    .stewards
                    .iter()
                    .map(|s| {
                        Address::from_slice(s).ok_or_else(|| {
                            EngineError::Malformed("steward is not an address".into())
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Self::Election(Election {
                    retry_round: election.retry_round,
                    stewards,
                }))
            }
            EMERGENCY_NAME => {
                let e = EmergencyWire::decode(payload)?;
                check_epoch(e.epoch)?;
                let offender = match e.offender.as_slice() {
                    [] => None,
                    bytes => Some(Address::from_slice(bytes).ok_or_else(|| {
                        EngineError::Malformed("offender is not an address".into())
                    })?),
                };
                let evidence = match e
                    .evidence
                    .ok_or_else(|| EngineError::Malformed("emergency without evidence".into()))?
                {
                    emergency::Evidence::BrokenCommit(commit) => Evidence::BrokenCommit(commit),
                    emergency::Evidence::Equivocation(pair) => Evidence::Equivocation {
                        first: pair.first,
                        second: pair.second,
                    },
                    emergency::Evidence::Inactivity(_) => Evidence::Inactivity,
                    emergency::Evidence::Censorship(omission) => Evidence::Censorship {
                        commit: omission.commit,
                        omitted: Box::new(omission.omitted.ok_or_else(|| {
                            EngineError::Malformed("censorship without the proposal".into())
                        })?),
                    },
                    emergency::Evidence::Deadlock(_) => Evidence::Deadlock,
                };
                if offender.is_none() != matches!(evidence, Evidence::Deadlock) {
                    return Err(EngineError::Malformed(
                        "only a deadlock names no offender".into(),
                    ));
                }
                Ok(Self::Emergency(Emergency {
                    offender,
                    violation_epoch: e.violation_epoch,
                    evidence,
                }))
            }
            other => Err(EngineError::Malformed(format!(
                "unknown proposal name {other:?}"
            ))),
        }
    }

    /// The motion as voters see it, given who proposed it.
    pub(crate) fn kind(&self, owner: Address) -> ChangeKind {
        match self {
            Self::Change(change) => change.kind(owner),
            Self::Election(e) => ChangeKind::Election {
                retry_round: e.retry_round,
                stewards: e.stewards.clone(),
            },
            Self::Emergency(e) => ChangeKind::Emergency {
                offender: e.offender,
                violation: e.evidence.violation(),
            },
        }
    }

    /// The membership change, if it is one.
    pub(crate) fn as_change(&self) -> Option<&Change> {
        match self {
            Self::Change(change) => Some(change),
            Self::Election(_) | Self::Emergency(_) => None,
        }
    }

    /// Whether the motion needs no vote: its owner leaving, or replacing its own keys.
    pub(crate) fn vote_free(&self, owner: Address) -> bool {
        matches!(
            self.kind(owner),
            ChangeKind::Leave(_) | ChangeKind::Update(_)
        )
    }

    /// Whether voting waits to see if the accused shows itself alive (an
    /// inactivity charge against someone else).
    pub(crate) fn waits_for_silence(&self, me: Address) -> bool {
        matches!(self, Self::Emergency(e) if e.evidence == Evidence::Inactivity && e.offender != Some(me))
    }

    /// Whether two motions ask for the same thing (so one proposal of it is enough).
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Change(a), Self::Change(b)) => a.same_as(b),
            (Self::Election(a), Self::Election(b)) => a == b,
            (Self::Emergency(a), Self::Emergency(b)) => {
                a.offender == b.offender && a.evidence.violation() == b.evidence.violation()
            }
            _ => false,
        }
    }
}
