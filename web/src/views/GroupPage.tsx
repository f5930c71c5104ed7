import type { GroupSummary } from "../api";
import { clock, explain } from "../format";
import { groupOf, useLoad, useSession } from "../live";
import { Address } from "./Address";
import { Chat } from "./Chat";
import { HealthView } from "./Health";
import { Members } from "./Members";
import { Proposals } from "./Proposals";

export type Tab = "chat" | "members" | "proposals" | "health";

const TABS: [Tab, string][] = [
  ["chat", "Chat"],
  ["members", "Members"],
  ["proposals", "Proposals"],
  ["health", "Health"],
];

/**
 * One group: its tabs when a member, the join's progress while joining (or the refusal), its
 * history once left.
 */
export function GroupPage({
  name,
  tab,
  summary,
  loaded,
}: {
  name: string;
  tab: Tab;
  summary: GroupSummary | undefined;
  loaded: boolean;
}) {
  const { api, notify } = useSession();
  if (!loaded) return <p aria-busy="true">Loading…</p>;
  if (!summary) {
    return (
      <section aria-labelledby="group-title">
        <h1 id="group-title">{name}</h1>
        <p class="notice">This node is no longer in this group (it left or was removed). Its history stays here.</p>
        <Chat name={name} readOnly />
      </section>
    );
  }
  if (summary.state !== "member") return <Joining name={name} />;
  const leave = async () => {
    if (!window.confirm(`Leave ${name}? You will not read what the group says after you leave.`)) return;
    try {
      await api.leave(name);
      notify(`Leaving ${name}: you are out once a steward commits the change.`);
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  const base = `#/g/${encodeURIComponent(name)}`;
  return (
    <section aria-labelledby="group-title">
      <div class="group-head">
        <h1 id="group-title">{name}</h1>
        <p class="meta">
          epoch {summary.epoch} · {summary.members} {summary.members === 1 ? "member" : "members"}
          {summary.is_steward && " · you are a steward"}
        </p>
        <button type="button" class="quiet danger" onClick={leave}>
          Leave group
        </button>
      </div>
      <nav aria-label={`${name} views`} class="tabs">
        {TABS.map(([id, label]) => (
          <a key={id} href={`${base}/${id}`} aria-current={tab === id ? "page" : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {tab === "chat" && <Chat name={name} />}
      {tab === "members" && <Members name={name} />}
      {tab === "proposals" && <Proposals name={name} />}
      {tab === "health" && <HealthView name={name} />}
    </section>
  );
}

const STAGES = ["looking", "requested", "member"] as const;

/** The steps of a join, or the steward's refusal with a way to ask again. */
function Joining({ name }: { name: string }) {
  const { api, notify } = useSession();
  const progress = useLoad(`join:${name}`, () => api.joinProgress(name), (e) => groupOf(e) === name);
  const data = progress.data;
  const askAgain = async () => {
    try {
      await api.join(name);
      notify(`Asked to join ${name} again.`);
      progress.reload();
    } catch (error) {
      notify(explain(error), "error");
    }
  };
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
          Nothing of the group is shared with you. If what it asks for has changed (for example your balance), ask
          again: the steward checks the request anew.
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
          are admitted when they approve and the steward commits.
        </li>
        <li {...step(2)}>
          <strong>Admitted.</strong> You read the group from the epoch you join at on.
        </li>
      </ol>
    </section>
  );
}
