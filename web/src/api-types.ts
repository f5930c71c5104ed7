// Generated from the node's API types (crates/api): do not edit. See docs/web.md.

/**
 * Who may join a new group. A gate is checked against the chain of this node's
 * `--eth-rpc`: by the steward before it proposes a joiner, and by every member before it
 * votes YES. The policy travels in the group's announcement and MLS group context.
 * Examples: `{"kind": "min_eth", "amount": "1.5"}`, `{"kind": "min_erc20", "token":
 * "0x6B17…1d0F", "amount": "100", "decimals": 18, "symbol": "DAI", "block": 19000000}`,
 * `{"kind": "erc721", "token": "0xBC4C…f13D", "token_id": "7"}`.
 */
export type Admission = { 
/**
 * Read the state at this block (every member reads the same state; old blocks need an
 * archive node). Absent: the latest block at each check.
 */
block?: number | null, 
/**
 * The chain to read; the node's endpoint must serve it. Absent: the endpoint's chain.
 */
chain_id?: number | null, } & ({ "kind": "open" } | { "kind": "min_eth", 
/**
 * In ETH, e.g. "1.5" (more decimal places than the unit has is an error).
 */
amount: string, } | { "kind": "min_erc20", 
/**
 * The token contract's address.
 */
token: string, 
/**
 * In whole tokens, scaled by `decimals`, e.g. "100".
 */
amount: string, 
/**
 * The token's decimals (default 18).
 */
decimals?: number | null, 
/**
 * The token's symbol, to show amounts (at most 32 bytes).
 */
symbol?: string | null, } | { "kind": "erc721", 
/**
 * The collection's contract address.
 */
token: string, 
/**
 * A decimal token id: only that token admits. Absent: any token of the collection.
 */
token_id?: string | null, });

/**
 * The body of `POST /api/groups/{group}/proposals/{proposal}/votes`.
 */
export type Ballot = { 
/**
 * YES or NO.
 */
yes: boolean, };

/**
 * What a proposal changes.
 */
export type Change = { "kind": "add", 
/**
 * The joiner.
 */
member: string, } | { "kind": "remove", 
/**
 * The member.
 */
member: string, } | { "kind": "leave", 
/**
 * The member.
 */
member: string, } | { "kind": "readd", 
/**
 * The member.
 */
member: string, } | { "kind": "update", 
/**
 * The member.
 */
member: string, } | { "kind": "election", 
/**
 * The retry round (above the group's current one after a silent list).
 */
retry_round: number, 
/**
 * The steward list, in rotation order.
 */
stewards: Array<string>, } | { "kind": "emergency", 
/**
 * The steward to remove (null for a deadlock).
 */
offender: string | null, 
/**
 * The evidence kind.
 */
violation: Violation, };

/**
 * A chat message, without its place in the history (which a `message` event carries as
 * its `seq`).
 */
export type ChatMessage = { 
/**
 * The group.
 */
group: string, 
/**
 * The message id (hex).
 */
id: string, 
/**
 * The author.
 */
sender: string, 
/**
 * The author's display name in the group now, if it gave one and this node is still
 * a member.
 */
sender_name: string | null, 
/**
 * The text.
 */
text: string, 
/**
 * The author's clock when sending.
 */
sent_at: number, 
/**
 * The epoch it was encrypted in.
 */
epoch: number, 
/**
 * The author's Lamport clock. The history is in causal order: a message comes after
 * every message its author had seen when writing it.
 */
lamport: number, 
/**
 * When this node stored it.
 */
received_at: number, 
/**
 * Whether this node wrote it.
 */
direction: Direction, 
/**
 * How far it got.
 */
delivery: Delivery, };

/**
 * How far a message got.
 */
export type Delivery = "queued" | "sent" | "received" | "delivered";

/**
 * Who wrote a message.
 */
export type Direction = "own" | "incoming";

/**
 * The body of `PUT /api/groups/{group}/name`: this node's display name in the group.
 */
export type DisplayName = { 
/**
 * The name: at most 64 bytes of UTF-8, no control characters; empty removes it.
 */
name: string, };

/**
 * An error response: `{"error": {"code": ..., "message": ...}}`.
 */
export type ErrorBody = { 
/**
 * What went wrong.
 */
error: ErrorDetail, };

/**
 * What went wrong, for programs (`code`) and people (`message`).
 */
export type ErrorDetail = { 
/**
 * `no_token`, `bad_token`, `bad_code` (401); `invalid` (400); `unknown_group`,
 * `unknown_proposal` (404); `group_exists`, `joining`, `proposal_closed`, `no_eth_rpc`
 * (409); `join_refused` (403); an engine refusal such as `not_member` or `vote_refused`
 * (422); `storage` (500); `stopped`, `eth_rpc_unavailable` (503).
 */
code: string, 
/**
 * The reason in words.
 */
message: string, };

/**
 * One group in detail: `GET /api/groups/{group}`.
 */
export type GroupDetail = { 
/**
 * The group's identifier, as the network sees it (random for an invite-only group; the
 * name for an open one).
 */
id: string, 
/**
 * What people call the group on this node.
 */
name: string, 
/**
 * Current epoch.
 */
epoch: number, 
/**
 * Members with their roles.
 */
members: Array<Member>, 
/**
 * Stewards, in rotation order.
 */
stewards: Array<string>, 
/**
 * Whether this node is a steward.
 */
is_steward: boolean, 
/**
 * Who may join, in words, e.g. "at least 1.5 ETH on chain 1 at the latest block".
 */
admission: string, 
/**
 * Whether joiners are checked against a chain.
 */
gated: boolean, 
/**
 * Who may join without an invitation.
 */
join_rule: JoinRule, 
/**
 * How long a vote on adding or removing someone stays open, in seconds (silence counts
 * as NO at its end).
 */
membership_vote_timeout_secs: number, 
/**
 * When members replace their leaf keys: after this many seconds…
 */
rotate_after_secs: number, 
/**
 * …or after sending this many chat messages, whichever comes first.
 */
rotate_after_messages: number, 
/**
 * Live invitations this node knows of.
 */
invitations: Array<KnownInvitation>, 
/**
 * The MLS epoch authenticator (hex): equal on every member in the same epoch.
 */
authenticator: string, 
/**
 * How the group is doing.
 */
health: Health, };

/**
 * Where this node stands in a group.
 */
export type GroupState = "member" | "joining" | "refused" | "removed";

/**
 * One group in the list of `GET /api/groups`.
 */
export type GroupSummary = { 
/**
 * The group's identifier, as the network sees it (random for an invite-only group; the
 * name for an open one).
 */
id: string, 
/**
 * What people call the group on this node (its identifier if it has no name here).
 */
name: string, 
/**
 * Where this node stands.
 */
state: GroupState, 
/**
 * Current epoch (`member` only).
 */
epoch: number | null, 
/**
 * Member count (`member` only).
 */
members: number | null, 
/**
 * Whether this node is a steward.
 */
is_steward: boolean, 
/**
 * Who may join, in words (`member` only).
 */
admission: string | null, 
/**
 * Who refused this node's join request and why (`refused` only), e.g. "refused by its
 * steward 0x9aF3…: balance 0 ETH at block 12 is below the required 1.5 ETH".
 */
refusal: string | null, 
/**
 * Why this node is no longer a member (`removed` only).
 */
removal: Removal | null, };

/**
 * How a group is doing: `GET /api/groups/{group}/health`.
 */
export type Health = { 
/**
 * Current epoch.
 */
epoch: number, 
/**
 * Stewards, in rotation order.
 */
stewards: Array<string>, 
/**
 * Connected relay peers (all groups share the relay).
 */
peers: number, 
/**
 * This group's messages the engine dropped, by reason.
 */
dropped: { [key in string]: number }, 
/**
 * Open proposals.
 */
open_proposals: number, 
/**
 * When this node last saw the epoch change.
 */
last_commit_at: number | null, 
/**
 * Outgoing messages waiting for a peer.
 */
queued: number, 
/**
 * Chat messages this node knows it misses, being fetched (0: its history has no gap).
 */
missing_messages: number, 
/**
 * This node's score of each steward, in rotation order (peer scoring): lowered by each
 * violation this node saw, raised by honest commits.
 */
steward_scores: Array<StewardScore>, 
/**
 * The score every member starts from, and the most honest work brings it back to.
 */
score_default: number, 
/**
 * Below this score this node charges a steward in an emergency proposal (and votes
 * YES on charging it); above it, a missed turn only costs score.
 */
score_threshold: number, };

/**
 * An invitation this node made: `POST /api/groups/{group}/invitations`.
 */
export type Invitation = { 
/**
 * The ticket to hand to the invitee (`demls join <ticket>`): the group, its name and
 * the signed invitation. It is this member's YES on admitting the invitee, signed ahead.
 */
ticket: string, 
/**
 * Who is invited.
 */
invitee: string, 
/**
 * When it ends.
 */
expires_at: number, };

/**
 * How far this node's request to join a group has come: `GET /api/groups/{group}/join`.
 */
export type JoinProgress = { 
/**
 * The group.
 */
group: string, 
/**
 * The stage reached.
 */
stage: JoinStage, 
/**
 * The steward the request went to (or that refused it).
 */
steward: string | null, 
/**
 * Why the steward refused (`refused` only), e.g. the admission policy is not met.
 */
reason: string | null, 
/**
 * When the stage was reached, if known.
 */
since: number | null, 
/**
 * The epoch this node joined at (`member` only, if known).
 */
epoch: number | null, };

/**
 * The body of `POST /api/groups/{group}/join` (optional).
 */
export type JoinRequest = { 
/**
 * Only trust this steward's announcements.
 */
steward?: string | null, };

/**
 * How a group admits people, chosen by its creator and shown to everyone.
 */
export type JoinRule = "invite" | "open";

/**
 * The stage of a join.
 */
export type JoinStage = "looking" | "requested" | "member" | "refused";

/**
 * The body of `POST /api/join`: join by a ticket from `invitations` (or a group's address).
 */
export type JoinTicket = { 
/**
 * The ticket, `demls:…`.
 */
ticket: string, };

/**
 * An invitation a member of the group made (in `GroupDetail`).
 */
export type KnownInvitation = { 
/**
 * Who is invited.
 */
invitee: string, 
/**
 * The member that invited.
 */
inviter: string, 
/**
 * When it ends.
 */
expires_at: number, };

/**
 * A member and its roles.
 */
export type Member = { 
/**
 * The member's address.
 */
address: string, 
/**
 * The display name the member gave itself in this group, if any (the MLS sender of
 * the name is the member: no one else can set it).
 */
display_name: string | null, 
/**
 * `steward` (if it is one), then `member`.
 */
roles: Array<Role>, 
/**
 * Whether this is the node itself.
 */
is_self: boolean, 
/**
 * The epoch the member's current leaf keys entered the group (for keys older than
 * this node's membership: the epoch this node joined in).
 */
key_epoch: number, 
/**
 * When this node saw the member's leaf keys replaced (Unix milliseconds); null if
 * that was before this node joined.
 */
key_replaced_at: number | null, };

/**
 * A chat message in this node's history: `GET /api/groups/{group}/messages`.
 */
export type Message = { 
/**
 * Position in this node's history.
 */
seq: number, 
/**
 * The group.
 */
group: string, 
/**
 * The message id (hex).
 */
id: string, 
/**
 * The author.
 */
sender: string, 
/**
 * The author's display name in the group now, if it gave one and this node is still
 * a member.
 */
sender_name: string | null, 
/**
 * The text.
 */
text: string, 
/**
 * The author's clock when sending.
 */
sent_at: number, 
/**
 * The epoch it was encrypted in.
 */
epoch: number, 
/**
 * The author's Lamport clock. The history is in causal order: a message comes after
 * every message its author had seen when writing it.
 */
lamport: number, 
/**
 * When this node stored it.
 */
received_at: number, 
/**
 * Whether this node wrote it.
 */
direction: Direction, 
/**
 * How far it got.
 */
delivery: Delivery, };

/**
 * Who commits and who votes.
 */
export type Mode = "single" | "big" | "small";

/**
 * The body of `POST /api/groups`: a new group with this node as its steward. Absent
 * settings take the defaults shown.
 */
export type NewGroup = { 
/**
 * The group's name: 1 to 64 characters from `a-z 0-9 . _ -`.
 */
name: string, 
/**
 * Who commits and who votes (default `single`).
 */
mode?: Mode | null, 
/**
 * Smallest steward list, when the group has that many members (default 1).
 */
sn_min?: number | null, 
/**
 * Largest steward list, not below `sn_min` (default 1).
 */
sn_max?: number | null, 
/**
 * How long a vote on an election or emergency stays open, in seconds (default 30).
 */
vote_timeout_secs?: number | null, 
/**
 * How long a vote on adding or removing someone stays open, in seconds (default 3600);
 * silence counts as NO at its end.
 */
membership_vote_timeout_secs?: number | null, 
/**
 * Whether silent voters count as YES at the deadline of an election (default true).
 * Silence never admits, removes or condemns anyone.
 */
liveness_yes?: boolean | null, 
/**
 * Who may join without an invitation (default `invite`: nobody).
 */
join_rule?: JoinRule | null, 
/**
 * Open proposals per member at most (default 8).
 */
max_proposals_per_member?: number | null, 
/**
 * Members replace their keys after this many seconds (default 86400, a day)…
 */
rotate_after_secs?: number | null, 
/**
 * …or after sending this many chat messages, whichever comes first (default 1000).
 */
rotate_after_messages?: number | null, 
/**
 * Who may join (default: anyone).
 */
admission?: Admission | null, };

/**
 * The body of `POST /api/groups/{group}/invitations`.
 */
export type NewInvitation = { 
/**
 * Who is invited (an Ethereum address).
 */
address: string, 
/**
 * For how long, in seconds (default 7 days, at most 365 days).
 */
expires_in_secs?: number | null, };

/**
 * The body of `POST /api/groups/{group}/messages`.
 */
export type NewMessage = { 
/**
 * The text.
 */
text: string, };

/**
 * The body of `POST /api/groups/{group}/proposals`: only removals are proposed by hand
 * (joiners ask to join and stewards propose them).
 */
export type NewProposal = { "kind": "remove", 
/**
 * The member's address.
 */
member: string, };

/**
 * Something that happened on the node: one JSON object with `type`, `seq`, `at` and the
 * fields of its type.
 */
export type NodeEvent = { 
/**
 * The event log position; for `message` and `delivery`, the message's position in the
 * history; null for events that are not logged (`peer_connected`, `peer_disconnected`,
 * `lagged`).
 */
seq: number | null, 
/**
 * When it happened.
 */
at: number, } & ({ "type": "group_created", 
/**
 * The group.
 */
group: string, } | { "type": "announcement_seen", 
/**
 * The group.
 */
group: string, 
/**
 * The announcing steward.
 */
steward: string, 
/**
 * The group's epoch.
 */
epoch: number, } | { "type": "join_request_sent", 
/**
 * The group.
 */
group: string, 
/**
 * The steward it was sealed to.
 */
steward: string, } | { "type": "join_request_accepted", 
/**
 * The group.
 */
group: string, 
/**
 * The joiner.
 */
joiner: string, } | { "type": "joined", 
/**
 * The group.
 */
group: string, 
/**
 * The epoch it joined in.
 */
epoch: number, 
/**
 * The members, this node included.
 */
members: Array<string>, } | { "type": "proposal_opened", 
/**
 * The group.
 */
group: string, 
/**
 * The proposal id.
 */
proposal: string, 
/**
 * Who opened it.
 */
owner: string, 
/**
 * What it changes.
 */
change: Change, 
/**
 * When silent voters are counted.
 */
deadline: number, } | { "type": "vote_recorded", 
/**
 * The group.
 */
group: string, 
/**
 * The proposal id.
 */
proposal: string, 
/**
 * The voter.
 */
voter: string, 
/**
 * YES or NO.
 */
yes: boolean, } | { "type": "proposal_decided", 
/**
 * The group.
 */
group: string, 
/**
 * The proposal id.
 */
proposal: string, 
/**
 * What it changes.
 */
change: Change, 
/**
 * YES or NO.
 */
approved: boolean, } | { "type": "proposal_closed", 
/**
 * The group.
 */
group: string, 
/**
 * The proposal id.
 */
proposal: string, 
/**
 * The epoch whose commit applied it, if one did.
 */
committed_epoch: number | null, } | { "type": "epoch_changed", 
/**
 * The group.
 */
group: string, 
/**
 * The new epoch.
 */
epoch: number, 
/**
 * Who committed.
 */
committer: string, 
/**
 * Members added by the commit.
 */
added: Array<string>, 
/**
 * Members removed by the commit.
 */
removed: Array<string>, 
/**
 * The members now.
 */
members: Array<string>, 
/**
 * The MLS epoch authenticator (hex): equal on every member in the same epoch.
 */
authenticator: string, } | { "type": "commit_rejected", 
/**
 * The group.
 */
group: string, 
/**
 * Who sent it.
 */
committer: string, 
/**
 * Why.
 */
reason: string, } | { "type": "admission_check", 
/**
 * The group.
 */
group: string, 
/**
 * The joiner to check.
 */
subject: string, 
/**
 * The group's policy, in words.
 */
policy: string, } | { "type": "admission_verdict", 
/**
 * The group.
 */
group: string, 
/**
 * The joiner checked.
 */
subject: string, 
/**
 * Whether it may join.
 */
admitted: boolean, 
/**
 * The verdict in words, e.g. "refused: balance 0 ETH at block 12 is below the
 * required 1.5 ETH" or "check unavailable: …".
 */
verdict: string, } | { "type": "join_refused", 
/**
 * The group.
 */
group: string, 
/**
 * The refusing steward.
 */
steward: string, 
/**
 * Why (without control characters, at most 512 characters).
 */
reason: string, } | { "type": "removed", 
/**
 * The group.
 */
group: string, 
/**
 * The epoch of the commit that removed it.
 */
epoch: number, 
/**
 * Who committed the removal.
 */
by: string, 
/**
 * Why.
 */
reason: RemovalReason, } | { "type": "syncing", 
/**
 * The group.
 */
group: string, 
/**
 * Messages missing.
 */
missing: number, } | { "type": "history_gap", 
/**
 * The group.
 */
group: string, 
/**
 * Messages given up.
 */
lost: number, } | { "type": "name_changed", 
/**
 * The group.
 */
group: string, 
/**
 * The member's address.
 */
member: string, 
/**
 * Its name now; `null`: it has none.
 */
name: string | null, } | { "type": "invited", 
/**
 * The group.
 */
group: string, 
/**
 * Who is invited.
 */
invitee: string, 
/**
 * The member that invited.
 */
inviter: string, 
/**
 * When the invitation ends.
 */
expires_at: number, } | { "type": "message" } & ChatMessage | { "type": "delivery", 
/**
 * The group.
 */
group: string, 
/**
 * The message id (hex).
 */
id: string, 
/**
 * How far it got.
 */
delivery: Delivery, } | { "type": "peer_connected", 
/**
 * Its peer id.
 */
peer: string, } | { "type": "peer_disconnected", 
/**
 * Its peer id.
 */
peer: string, } | { "type": "lagged", 
/**
 * How many.
 */
missed: number, } | { "type": "engine", 
/**
 * Its debug form.
 */
detail: string, });

/**
 * The node: `GET /api/node`.
 */
export type NodeInfo = { 
/**
 * This node's Ethereum address.
 */
address: string, 
/**
 * Its libp2p peer id.
 */
peer_id: string, 
/**
 * Where it listens: multiaddrs ending in `/p2p/<peer id>`, what others pass as `--peer`.
 */
listen_addrs: Array<string>, 
/**
 * The Waku pubsub topic it relays on, e.g. `/waku/2/rs/4242/0`.
 */
pubsub_topic: string, 
/**
 * Connected peers.
 */
peers: Array<string>, 
/**
 * How it votes.
 */
vote_policy: VotePolicy, 
/**
 * The demls version.
 */
version: string, };

/**
 * Someone asking to join, waiting for the members: `GET /api/groups/{group}/requests`.
 */
export type PendingRequest = { 
/**
 * Who asks.
 */
address: string, 
/**
 * The vote on it.
 */
proposal: string, 
/**
 * Since when it waits (when this node first saw the vote).
 */
since: number, 
/**
 * When the vote closes; silence counts as NO then.
 */
deadline: number, 
/**
 * The member that invited it, if one did.
 */
invited_by: string | null, 
/**
 * Who said YES so far.
 */
yes: Array<string>, 
/**
 * Who said NO so far.
 */
no: Array<string>, 
/**
 * Voters.
 */
voters: number, 
/**
 * This node's own vote, if cast.
 */
own_vote: boolean | null, };

/**
 * A proposal with its tally: `GET /api/groups/{group}/proposals`.
 */
export type Proposal = { 
/**
 * The proposal id (`0x` and 8 hex digits).
 */
id: string, 
/**
 * The group.
 */
group: string, 
/**
 * The epoch it was opened in.
 */
epoch: number, 
/**
 * Who opened it.
 */
owner: string, 
/**
 * What it changes.
 */
change: Change, 
/**
 * When this node saw it opened.
 */
opened_at: number, 
/**
 * When silent voters are counted.
 */
deadline: number, 
/**
 * Where it stands.
 */
state: ProposalState, 
/**
 * When it was decided here.
 */
decided_at: number | null, 
/**
 * The epoch whose commit applied it.
 */
committed_epoch: number | null, 
/**
 * Votes received.
 */
votes: Array<Vote>, 
/**
 * Counts.
 */
tally: Tally, };

/**
 * Where a proposal stands.
 */
export type ProposalState = "open" | "approved" | "rejected" | "closed";

/**
 * Why this node is no longer a member of a group.
 */
export type Removal = { 
/**
 * The epoch the commit that removed it started.
 */
epoch: number, 
/**
 * The steward that committed it.
 */
by: string, 
/**
 * When this node learned it.
 */
at: number, 
/**
 * Why.
 */
reason: RemovalReason, };

/**
 * Why a member was removed, by `kind`.
 */
export type RemovalReason = { "kind": "left" } | { "kind": "voted", 
/**
 * The proposal.
 */
proposal: string, 
/**
 * Who proposed it.
 */
owner: string, 
/**
 * YES votes.
 */
yes: number, 
/**
 * NO votes.
 */
no: number, 
/**
 * Voters.
 */
voters: number, } | { "kind": "emergency", 
/**
 * The proposal.
 */
proposal: string, 
/**
 * What it was found doing.
 */
violation: Violation, } | { "kind": "replaced" };

/**
 * The body of `POST /api/groups/{group}/requests/{address}`.
 */
export type RequestDecision = { 
/**
 * YES (approve) or NO (deny).
 */
approve: boolean, };

/**
 * A role of a member.
 */
export type Role = "epoch_steward" | "backup" | "steward" | "member";

/**
 * A group's members with their roles this epoch: `GET /api/groups/{group}/roster`.
 */
export type Roster = { 
/**
 * The group.
 */
group: string, 
/**
 * Current epoch.
 */
epoch: number, 
/**
 * Who commits and who votes.
 */
mode: Mode, 
/**
 * Stewards, in rotation order.
 */
stewards: Array<string>, 
/**
 * Who commits this epoch, in order: the epoch steward, then its backups.
 */
committers: Array<string>, 
/**
 * The members.
 */
members: Array<RosterMember>, };

/**
 * One member in the roster.
 */
export type RosterMember = { 
/**
 * The member's address.
 */
address: string, 
/**
 * Any of `epoch_steward`, `backup`, `steward`, then `member`.
 */
roles: Array<Role>, 
/**
 * Whether this is the node itself.
 */
is_self: boolean, 
/**
 * The epoch of the commit that added the member, if this node saw it (its own: from its
 * event log).
 */
joined_epoch: number | null, };

/**
 * The body of `POST /api/signin`.
 */
export type SignIn = { 
/**
 * The one-time code of the sign-in link the node printed (`…/#signin=CODE`).
 */
code: string, };

/**
 * The answer of `POST /api/signin`.
 */
export type SignedIn = { 
/**
 * The bearer token (the code is used up).
 */
token: string, };

/**
 * What a command did.
 */
export type Status = "ok" | "leaving" | "proposed" | "rotating";

/**
 * An answer that only says what happened.
 */
export type StatusBody = { 
/**
 * What happened.
 */
status: Status, };

/**
 * This node's score of a steward.
 */
export type StewardScore = { 
/**
 * The steward's address.
 */
address: string, 
/**
 * Its score.
 */
score: number, };

/**
 * A proposal's counts.
 */
export type Tally = { 
/**
 * YES votes received.
 */
yes: number, 
/**
 * NO votes received.
 */
no: number, 
/**
 * Members entitled to vote, while this node holds the proposal open (in a
 * small-consensus group, only the stewards in office vote on a membership change).
 */
voters: number | null, };

/**
 * Steward misbehaviour that members detect and vote on.
 */
export type Violation = "broken_commit" | "equivocation" | "inactivity" | "censorship" | "deadlock";

/**
 * One vote.
 */
export type Vote = { 
/**
 * The voter.
 */
voter: string, 
/**
 * YES or NO.
 */
yes: boolean, };

/**
 * How a node votes.
 */
export type VotePolicy = "automatic" | "manual";

/**
 * The body of `PUT /api/node/vote-policy`.
 */
export type VotePolicyChange = { 
/**
 * The new policy (kept across restarts).
 */
policy: VotePolicy, };
