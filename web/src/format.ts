// Words and numbers as a person reads them.

import { ApiError, type Change, type JoinRule, type Mode, type Removal, type Role, type Violation } from "./api";

export const shortAddress = (address: string) => `${address.slice(0, 6)}…${address.slice(-4)}`;

export const clock = (ms: number) =>
  new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export const dateTime = (ms: number) =>
  new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** The time of day for today, the date and time otherwise. */
export const when = (ms: number) =>
  new Date(ms).toDateString() === new Date().toDateString() ? clock(ms) : dateTime(ms);

/** "in 23 s", "in 4 min" or "passed". */
export function until(deadline: number, now: number): string {
  const secs = Math.ceil((deadline - now) / 1000);
  if (secs <= 0) return "passed";
  return secs < 120 ? `in ${secs} s` : `in ${Math.ceil(secs / 60)} min`;
}

export const MODES: Record<Mode, string> = {
  single: "Single steward: the creator commits, every member votes",
  big: "Rotating stewards, every member votes",
  small: "Rotating stewards, only stewards vote on joins and removals",
};

export const ROLES: Record<Role, string> = {
  epoch_steward: "Epoch steward",
  backup: "Backup steward",
  steward: "Steward",
  member: "Member",
};

export const VIOLATIONS: Record<Violation, string> = {
  broken_commit: "a commit that differs from what was voted",
  equivocation: "two different commits for one epoch",
  inactivity: "approved changes left waiting until a backup committed them",
  censorship: "an approved proposal left out of a commit",
  deadlock: "every steward and re-election stayed silent",
};

/** A length of time in the largest whole unit: "45 s", "5 min", "1 h", "1 d". */
export function duration(secs: number): string {
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60]] as const) {
    if (secs >= size && secs % size === 0) return `${secs / size} ${unit}`;
  }
  return `${secs} s`;
}

export const JOIN_RULES: Record<JoinRule, string> = {
  invite: "By invitation and the members' vote: silence never admits anyone",
  open: "Open: anyone who asks (automatic voters say YES)",
};

/** Why this node is no longer a member, in one sentence. */
export function removalReason(removal: Removal, name: (address: string) => string): string {
  const reason = removal.reason;
  switch (reason.kind) {
    case "left":
      return `You left the group (committed in epoch ${removal.epoch}).`;
    case "voted":
      return `The members voted you out: proposal ${reason.proposal} by ${name(reason.owner)}, YES ${reason.yes} · NO ${reason.no} of ${reason.voters} voters, committed by ${name(removal.by)} in epoch ${removal.epoch}.`;
    case "emergency":
      return `An emergency vote removed you as a steward: evidence: ${VIOLATIONS[reason.violation]} (proposal ${reason.proposal}, committed by ${name(removal.by)} in epoch ${removal.epoch}).`;
    case "replaced":
      return `A newer key package of your own address took your place in epoch ${removal.epoch} (your node asked to join again from another state).`;
  }
}

/** What a proposal asks for, in one line. */
export function describe(change: Change, name: (address: string) => string): string {
  switch (change.kind) {
    case "add":
      return `Admit ${name(change.member)}`;
    case "remove":
      return `Remove ${name(change.member)}`;
    case "leave":
      return `${name(change.member)} leaves`;
    case "readd":
      return `Re-admit ${name(change.member)}, who lost its group state`;
    case "update":
      return `${name(change.member)} replaces its keys`;
    case "election":
      return `Elect the stewards ${change.stewards.map(name).join(", ")}`;
    case "emergency":
      return change.offender ? `Emergency: remove steward ${name(change.offender)}` : "Emergency: unblock a silent group";
  }
}

const MESSAGES: Record<string, string> = {
  unreachable: "The node does not answer. Is demls node still running?",
  proposal_closed: "This vote has closed: the proposal was decided, or the group moved to a new epoch.",
  unknown_proposal: "This proposal is no longer open in the current epoch.",
  unknown_group: "This node is not in that group (it was left, or never joined).",
  joining: "This node is still waiting to be admitted to that group.",
  join_refused: "A steward refused this node's request to join that group.",
  group_exists: "A group with that name exists on this node already.",
  removed: "This node is no longer a member of that group.",
  no_such_request: "Nobody with that address is waiting to join any more: the request was decided or withdrawn.",
  already_member: "That address is a member already.",
  bad_token: "The node refused the token. Sign in again with the token in its data directory.",
  no_token: "Sign in first.",
  bad_code: "That sign-in link was used already or is wrong. Paste the token from the node's data directory instead.",
  stopped: "The node is stopping.",
  storage: "The node cannot write its data directory and has stopped.",
};

/** An error in words a person understands. */
export function explain(error: unknown): string {
  if (error instanceof ApiError) return MESSAGES[error.code] ?? `The node refused: ${error.message}.`;
  return error instanceof Error ? error.message : String(error);
}
