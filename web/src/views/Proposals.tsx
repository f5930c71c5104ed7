import { useState } from "preact/hooks";
import type { Proposal } from "../api";
import { dateTime, describe, explain, shortAddress, until, VIOLATIONS } from "../format";
import { groupOf, useLoad, useNow, useSession } from "../live";
import { Address } from "./Address";

const WATCHED = ["proposal_opened", "vote_recorded", "proposal_decided", "epoch_changed"];

const RESULT: Record<Proposal["state"], string> = {
  open: "open",
  approved: "approved",
  rejected: "rejected",
  closed: "closed undecided (the epoch changed)",
};

/** Open proposals with their live tally and YES/NO buttons; decided ones with their result. */
export function Proposals({ group }: { group: string }) {
  const { api } = useSession();
  const list = useLoad(`proposals:${group}`, () => api.proposals(group), (e) => groupOf(e) === group && WATCHED.includes(e.type));
  const now = useNow();
  if (list.error) return <p class="notice error">{list.error}</p>;
  if (!list.data) return <p aria-busy="true">Loading…</p>;
  const open = list.data.filter((p) => p.state === "open");
  const decided = list.data.filter((p) => p.state !== "open").reverse();
  return (
    <div class="proposals">
      <h2>Open proposals</h2>
      {open.length === 0 && <p class="hint">Nothing to vote on.</p>}
      <ul class="cards">
        {open.map((p) => (
          <li key={p.id}>
            <OpenProposal group={group} proposal={p} now={now} onVoted={list.reload} />
          </li>
        ))}
      </ul>
      <h2>Decided</h2>
      {decided.length === 0 && <p class="hint">No proposal decided yet.</p>}
      <ul class="cards">
        {decided.map((p) => (
          <li key={`${p.epoch}-${p.id}`}>
            <article class={`proposal ${p.change.kind} ${p.state}`} aria-label={describe(p.change, shortAddress)}>
              <h3>{describe(p.change, shortAddress)}</h3>
              <Evidence proposal={p} />
              <p>
                <span class={`result ${p.state}`}>{RESULT[p.state]}</span>
                {p.decided_at && <> at {dateTime(p.decided_at)}</>}
                {p.committed_epoch !== null && <> · committed in epoch {p.committed_epoch}</>} · YES {p.tally.yes} · NO{" "}
                {p.tally.no}
              </p>
            </article>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Evidence({ proposal }: { proposal: Proposal }) {
  if (proposal.change.kind !== "emergency") return null;
  return (
    <p class="evidence">
      <strong>Emergency.</strong> Evidence: {VIOLATIONS[proposal.change.violation]} (
      <code>{proposal.change.violation}</code>).
    </p>
  );
}

function OpenProposal({
  group,
  proposal: p,
  now,
  onVoted,
}: {
  group: string;
  proposal: Proposal;
  now: number;
  onVoted: () => void;
}) {
  const { api, node, notify } = useSession();
  const [busy, setBusy] = useState(false);
  const mine = p.votes.find((v) => v.voter.toLowerCase() === node.address.toLowerCase());
  const vote = async (yes: boolean) => {
    setBusy(true);
    try {
      await api.vote(group, p.id, yes);
      notify(`You voted ${yes ? "YES" : "NO"}.`);
    } catch (error) {
      notify(explain(error), "error");
    } finally {
      setBusy(false);
      onVoted();
    }
  };
  const voters = p.tally.voters ?? p.votes.length;
  const title = describe(p.change, shortAddress);
  const pct = (n: number) => `${voters ? (100 * n) / voters : 0}%`;
  return (
    <article class={`proposal open ${p.change.kind}`} aria-label={title}>
      <h3>
        {p.change.kind === "emergency" && <span class="badge">Emergency</span>} {title}
      </h3>
      <Evidence proposal={p} />
      <p class="meta">
        Proposed by <Address address={p.owner} /> · proposal <code>{p.id}</code>
      </p>
      <p class="meta">
        Deadline: {until(p.deadline, now) === "passed" ? "passed, counting silent members" : until(p.deadline, now)} (
        <time dateTime={new Date(p.deadline).toISOString()}>{dateTime(p.deadline)}</time>)
      </p>
      <div class="tally" role="group" aria-label="Tally">
        <div class="bar" aria-hidden="true">
          <span class="yes" style={{ width: pct(p.tally.yes) }} />
          <span class="no" style={{ width: pct(p.tally.no) }} />
        </div>
        <p aria-live="polite">
          YES {p.tally.yes} · NO {p.tally.no} · {voters} {voters === 1 ? "voter" : "voters"}
        </p>
      </div>
      {mine ? (
        <p class="voted">You voted {mine.yes ? "YES" : "NO"}.</p>
      ) : (
        <p class="actions">
          <button type="button" class="yes" disabled={busy} onClick={() => void vote(true)}>
            Vote YES
          </button>
          <button type="button" class="no" disabled={busy} onClick={() => void vote(false)}>
            Vote NO
          </button>
        </p>
      )}
    </article>
  );
}
