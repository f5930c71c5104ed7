import { useState } from "preact/hooks";
import type { GroupSummary, Removal } from "../api";
import { clock, dateTime, explain, removalReason, shortAddress } from "../format";
import { groupOf, type HubEvent, useLoad, useSession } from "../live";
import { Address } from "./Address";
import { Chat } from "./Chat";
import { HealthView } from "./Health";
import { Invite } from "./Invite";
import { Members } from "./Members";
import { Proposals } from "./Proposals";

export type Tab = "chat" | "members" | "proposals" | "health";

const TABS: [Tab, string][] = [
  ["chat", "Chat"],
  ["members", "Members"],
  ["proposals", "Proposals"],
  ["health", "Health"],
];

/** Events after which the join requests waiting in a group may have changed. */
const REQUESTS_CHANGE = ["proposal_opened", "vote_recorded", "proposal_decided", "epoch_changed"];

/**
 * One group: its tabs when a member, the join's progress while joining (or the refusal), why
 * it is out and its history once removed or left.
 */
export function GroupPage({
  group,
  name,
  tab,
  summary,
  loaded,
}: {
  /** The group's identifier: for the API and events. */
  group: string;
  /** What people call it on this node: for display. */
  name: string;
  tab: Tab;
  summary: GroupSummary | undefined;
  loaded: boolean;
}) {
  if (!loaded) return <p aria-busy="true">Loading…</p>;
  if (!summary) {
    return (
      <section aria-labelledby="group-title">
        <h1 id="group-title">{name}</h1>
        <p class="notice">This node is not in this group. What it kept of the group's history stays here.</p>
        <Chat group={group} name={name} readOnly />
      </section>
    );
  }
  switch (summary.state) {
    case "joining":
    case "refused":
      return <Joining group={group} name={name} />;
    case "removed":
      return <Removed group={group} name={name} removal={summary.removal} />;
    case "member":
      return <MemberPage group={group} name={name} tab={tab} summary={summary} />;
  }
}

/** A group this node is a member of: its head (invite, leave) and its tabs. */
function MemberPage({ group, name, tab, summary }: { group: string; name: string; tab: Tab; summary: GroupSummary }) {
  const { api, notify } = useSession();
  const [inviting, setInviting] = useState(false);
  const requests = useLoad(
    `requests:${group}`,
    () => api.requests(group),
    (e: HubEvent) => groupOf(e) === group && REQUESTS_CHANGE.includes(e.type),
  );
  // Requests this person has not decided yet: the ones the page asks them to look at.
  const waiting = requests.data?.filter((r) => r.own_vote === null).length ?? 0;
  const leave = async () => {
    if (!window.confirm(`Leave ${name}? You will not read what the group says after you leave.`)) return;
    try {
      await api.leave(group);
      notify(`Leaving ${name}: you are out once a steward commits the change.`);
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  const base = `#/g/${encodeURIComponent(group)}`;
  return (
    <section aria-labelledby="group-title" class={tab === "chat" ? "chat-page" : undefined}>
      <div class="group-head">
        <h1 id="group-title">{name}</h1>
        <p class="meta">
          epoch {summary.epoch} · {summary.members} {summary.members === 1 ? "member" : "members"}
          {summary.is_steward && " · you are a steward"}
        </p>
        <p class="head-actions">
          <button type="button" aria-expanded={inviting} onClick={() => setInviting(!inviting)}>
            Invite
          </button>
          <button type="button" class="quiet danger" onClick={leave}>
            Leave group
          </button>
        </p>
      </div>
      {inviting && <Invite group={group} name={name} onClose={() => setInviting(false)} />}
      {waiting > 0 && tab !== "members" && (
        <p class="notice waiting" role="status">
          {waiting === 1 ? "1 person asks" : `${waiting} people ask`} to join:{" "}
          <a href={`${base}/members`}>approve or deny</a>
        </p>
      )}
      <nav aria-label={`${name} views`} class="tabs">
        {TABS.map(([id, label]) => (
          <a key={id} href={`${base}/${id}`} aria-current={tab === id ? "page" : undefined}>
            {label}
            {id === "members" && waiting > 0 && (
              <span class="count">
                {waiting}
                <span class="visually-hidden"> asking to join</span>
              </span>
            )}
          </a>
        ))}
      </nav>
      {tab === "chat" && <Chat group={group} name={name} />}
      {tab === "members" && <Members group={group} name={name} requests={requests} />}
      {tab === "proposals" && <Proposals group={group} />}
      {tab === "health" && <HealthView group={group} />}
    </section>
  );
}

/** Asks to join `group` (called `name` here) again; the members decide. */
function useAskAgain(group: string, name: string, after?: () => void) {
  const { api, notify } = useSession();
  return async () => {
    try {
      await api.join(group);
      notify(`Asked to join ${name} again.`);
      after?.();
    } catch (error) {
      notify(explain(error), "error");
    }
  };
}

/** A group this node was removed from or left: why, its history (read only), and asking again. */
function Removed({ group, name, removal }: { group: string; name: string; removal: Removal | null }) {
  const askAgain = useAskAgain(group, name);
  const left = removal?.reason.kind === "left";
  return (
    <section aria-labelledby="group-title" class="outside chat-page">
      <div class="group-head">
        <h1 id="group-title">{name}</h1>
        <p class="meta">{left ? "left · history only" : "removed · history only"}</p>
      </div>
      <div class={`notice${left ? "" : " error"}`} role="status">
        <h2>{left ? "You left this group" : "You were removed from this group"}</h2>
        <p class="reason">{removal ? removalReason(removal, shortAddress) : "This node is no longer a member."}</p>
        {removal && <p class="meta">This node learned it at {dateTime(removal.at)}.</p>}
        <p>
          You no longer read what the group says; its history up to then stays here. To come back, ask again (the
          members decide) or join with a member's ticket.
        </p>
        <button type="button" onClick={() => void askAgain()}>
          Ask to join again
        </button>
      </div>
      <Chat group={group} name={name} readOnly />
    </section>
  );
}

const STAGES = ["looking", "requested", "member"] as const;

/** The steps of a join, or the steward's refusal with a way to ask again. */
function Joining({ group, name }: { group: string; name: string }) {
  const { api } = useSession();
  const progress = useLoad(`join:${group}`, () => api.joinProgress(group), (e) => groupOf(e) === group);
  const data = progress.data;
  const askAgain = useAskAgain(group, name, progress.reload);
  if (data?.stage === "refused") {
    return (
      <section aria-labelledby="group-title">
        <h1 id="group-title">{name}</h1>
        <h2>Request refused</h2>
        <p class="notice error" role="alert">
          The steward
          {data.steward && (
            <>
              {" "}
              <Address address={data.steward} />
            </>
          )}{" "}
          refused your request{data.since !== null && <> at {clock(data.since)}</>}:{" "}
          <span class="reason">{data.reason ?? "no reason given"}</span>
        </p>
        <p>
          Nothing of the group is shared with you. If what it asks for has changed (for example your balance), or a
          member will vote for you, ask again: the request is checked and voted on anew. A member's invitation (its
          ticket, under "Join with a ticket") counts as that member's YES.
        </p>
        <button type="button" onClick={() => void askAgain()}>
          Ask again
        </button>
      </section>
    );
  }
  const reached = data ? STAGES.indexOf(data.stage) : 0;
  const step = (index: number) => ({
    class: index < reached ? "done" : index === reached ? "now" : "later",
    "aria-current": index === reached ? ("step" as const) : undefined,
  });
  return (
    <section aria-labelledby="group-title">
      <h1 id="group-title">{name}</h1>
      <h2>Asking to join</h2>
      {progress.error && <p class="notice error">{progress.error}</p>}
      <ol class="steps">
        <li {...step(0)}>
          <strong>Waiting for the steward.</strong> Your node listens for the group's steward to announce it.
        </li>
        <li {...step(1)}>
          <strong>Voting.</strong> Your key package went, sealed, to the steward
          {data?.steward && (
            <>
              {" "}
              <Address address={data.steward} />
            </>
          )}
          {data?.since && <> at {clock(data.since)}</>}. The steward puts your request to a vote of the members; you
          are admitted when a majority says YES and the steward commits. Members who stay silent count as NO: without
          an invitation, someone in the group has to approve you.
        </li>
        <li {...step(2)}>
          <strong>Admitted.</strong> You read the group from the epoch you join at on.
        </li>
      </ol>
    </section>
  );
}
