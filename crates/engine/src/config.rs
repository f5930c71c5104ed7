//! Engine and group configuration.

/// How a node answers votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VotePolicy {
    /// Vote as soon as a proposal arrives: YES if its content checks out, NO otherwise.
    #[default]
    Automatic,
    /// Vote only when the user calls [`crate::Engine::vote`]; content that does
    /// not check out is still voted NO at once. Silent voters count by the
    /// group's liveness rule at the deadline.
    Manual,
}

/// Settings of one node's engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How often a steward announces its group on the welcome topic.
    pub announce_interval_ms: u64,
    /// How often a joiner re-sends its join request until it is welcomed.
    pub join_retry_ms: u64,
    /// How long a steward waits for still-open proposals before committing approved ones.
    pub commit_delay_ms: u64,
    /// How this node votes.
    pub vote_policy: VotePolicy,
    /// Largest envelope accepted or sent, in bytes.
    pub max_message_size: usize,
    /// Messages from future epochs kept per group until their commit arrives.
    pub max_buffered_messages: usize,
    /// Past epochs kept per group to decrypt late messages.
    pub epoch_retention: usize,
    /// Lifetime of the key packages this node makes, in seconds.
    pub key_package_lifetime_secs: u64,
    /// How long each steward in commit order gets before the next one commits
    /// in its place (backup takeover), and before a silent list is re-elected.
    pub steward_timeout_ms: u64,
    /// Re-elections tried in one epoch before any member may commit.
    pub max_retry_rounds: u32,
    /// Past epochs kept in full (state before their commit), to weigh
    /// competing commits, check evidence and heal forks.
    pub history_epochs: usize,
    /// How long a member waits for a missing commit before asking for it again
    /// (doubling while nothing changes).
    pub sync_retry_ms: u64,
    /// While a proposal is undecided, how often its owner sends it again (with
    /// the votes it holds) and voters their votes: lost messages heal.
    pub rebroadcast_ms: u64,
    /// After an admission check could not be made (chain unreachable), when to ask again.
    pub admission_retry_ms: u64,
    /// How long a removed member keeps its last state, in case the commit that
    /// removed it loses to a better one (a healed network split).
    pub departed_grace_ms: u64,
    /// How long after chat activity a member sends a sync (its delivered state), plus a
    /// spread of as much again; skipped when another member's covered it.
    pub chat_sync_ms: u64,
    /// How often a member that has chatted sends a sync while the group is quiet (plus a
    /// spread of as much again; skipped when another member's covered it), so that members
    /// notice after a partition or a loss what they miss.
    pub chat_sync_idle_ms: u64,
    /// When an own chat message nobody acknowledged is sent again (twice at most).
    pub chat_resend_ms: u64,
    /// How long a member waits for a missing chat message before giving it up (the
    /// messages that waited for it are then shown after the gap).
    pub gap_give_up_ms: u64,
    /// How long a member may see the group announced only on another branch,
    /// with none of its own, before it gives its branch up and asks to join again.
    pub rejoin_after_ms: u64,
    /// How this member scores stewards, and when it charges one.
    pub scoring: crate::PeerScoring,
    /// Most joiners a steward keeps waiting at once (for their vote and commit, or their
    /// admission check); further requests are dropped (`queue_full`) until room is made.
    pub max_join_intake: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            announce_interval_ms: 5_000,
            join_retry_ms: 10_000,
            commit_delay_ms: 10_000,
            vote_policy: VotePolicy::Automatic,
            max_message_size: 1024 * 1024,
            max_buffered_messages: 1024,
            epoch_retention: 4,
            key_package_lifetime_secs: 7 * 24 * 3600,
            steward_timeout_ms: 10_000,
            max_retry_rounds: 3,
            history_epochs: 16,
            sync_retry_ms: 5_000,
            rebroadcast_ms: 3_000,
            admission_retry_ms: 10_000,
            departed_grace_ms: 10 * 60_000,
            rejoin_after_ms: 60_000,
            chat_sync_ms: 10_000,
            chat_sync_idle_ms: 120_000,
            chat_resend_ms: 30_000,
            gap_give_up_ms: 120_000,
            scoring: crate::PeerScoring::default(),
            max_join_intake: 1024,
        }
    }
}

/// Who may commit and who votes, fixed when the group is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StewardMode {
    /// One steward, the creator, commits; every member votes.
    #[default]
    Single,
    /// An elected, rotating steward list; every member votes on every change.
    Big,
    /// An elected, rotating steward list; only stewards vote on membership
    /// changes, every member votes on elections and emergencies.
    Small,
}

impl StewardMode {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            Self::Single => 0,
            Self::Big => 1,
            Self::Small => 2,
        }
    }

    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Single),
            1 => Some(Self::Big),
            2 => Some(Self::Small),
            _ => None,
        }
    }
}

/// How a group admits people, fixed when the group is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JoinRule {
    /// Joining needs the group's consent: a member's invitation (that member's YES,
    /// signed ahead) or YES votes. Silence never admits. Automatic voters vote YES
    /// only on joiners a member invited or, in a gated group, that meet its policy.
    #[default]
    Invite,
    /// A public group: automatic voters vote YES on every well-formed request.
    Open,
}

impl JoinRule {
    pub(crate) fn to_wire(self) -> u32 {
        match self {
            Self::Invite => 0,
            Self::Open => 1,
        }
    }

    pub(crate) fn from_wire(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Invite),
            1 => Some(Self::Open),
            _ => None,
        }
    }
}

/// Parameters of a new group. They become part of the MLS group context, so
/// every member agrees on them.
#[derive(Clone, Debug)]
pub struct GroupParams {
    /// Steward arrangement.
    pub mode: StewardMode,
    /// Smallest steward list (when the group has that many members).
    pub sn_min: u16,
    /// Largest steward list.
    pub sn_max: u16,
    /// How long a vote on an election, an emergency or a re-add stays open.
    pub vote_timeout_secs: u32,
    /// How long a vote on adding or removing someone stays open: long enough for people
    /// to decide (silence counts as NO at its end).
    pub membership_vote_timeout_secs: u32,
    /// Whether silent voters count as YES at the deadline of an election or a re-add.
    /// Silence never counts as YES on adding or removing someone, nor on an emergency.
    pub liveness_yes: bool,
    /// Who may join without a member's invitation.
    pub join_rule: JoinRule,
    /// Most proposals one member may open per epoch (the RFC's rate limit).
    pub max_proposals_per_member: u16,
    /// Who may join: anyone, or holders of a minimum ETH / token balance or an NFT.
    pub admission: demls_policy::AdmissionPolicy,
    /// When members replace their leaf keys.
    pub rotation: RotationRule,
}

/// When each member replaces its own leaf keys (an MLS Update, for post-compromise
/// security): after a while or after sending a number of chat messages, whichever
/// comes first. Part of the group's rules, agreed by every member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationRule {
    /// Seconds a leaf is used before its member replaces it.
    pub after_secs: u32,
    /// Chat messages a member sends with one leaf before it replaces it.
    pub after_messages: u32,
}

impl Default for RotationRule {
    fn default() -> Self {
        Self {
            after_secs: 24 * 3600,
            after_messages: 1000,
        }
    }
}

impl Default for GroupParams {
    fn default() -> Self {
        Self {
            mode: StewardMode::Single,
            sn_min: 1,
            sn_max: 1,
            vote_timeout_secs: 30,
            membership_vote_timeout_secs: 3600,
            liveness_yes: true,
            join_rule: JoinRule::Invite,
            max_proposals_per_member: 8,
            admission: demls_policy::AdmissionPolicy::Open,
            rotation: RotationRule::default(),
        }
    }
}
