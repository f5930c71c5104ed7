import { useState } from "preact/hooks";
import type { PendingRequest } from "../api";
import { dateTime, explain, shortAddress, until, when } from "../format";
import { type Loaded, useNow, useSession } from "../live";
import { Address } from "./Address";

/** Join requests waiting for the members: who asks, since when, who said YES or NO; approve or deny. */
export function Requests({ group, requests }: { group: string; requests: Loaded<PendingRequest[]> }) {
  const now = useNow();
  if (requests.error) return <p class="notice error">{requests.error}</p>;
  const list = requests.data ?? [];
  return (
    <section class="requests" aria-labelledby="requests-title">
      <h2 id="requests-title">Asking to join</h2>
      {requests.data && list.length === 0 && <p class="hint">Nobody is waiting.</p>}
      <ul class="cards">
        {list.map((r) => (
          <li key={r.address}>
            <Request group={group} request={r} now={now} onDecided={requests.reload} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function Voters({ label, voters }: { label: string; voters: string[] }) {
  if (voters.length === 0) return null;
  return (
    <p class="meta">
      {label}{" "}
      {voters.map((v, i) => (
        <span key={v}>
          {i > 0 && ", "}
          <Address address={v} />
        </span>
      ))}
    </p>
  );
}

function Request({
  group,
  request: r,
  now,
  onDecided,
}: {
  group: string;
  request: PendingRequest;
  now: number;
  onDecided: () => void;
}) {
  const { api, notify } = useSession();
  const [busy, setBusy] = useState(false);
  const decide = async (approve: boolean) => {
    setBusy(true);
    try {
      await api.decideRequest(group, r.address, approve);
      notify(approve ? `You approved ${shortAddress(r.address)}.` : `You denied ${shortAddress(r.address)}.`);
    } catch (error) {
      notify(explain(error), "error");
    } finally {
      setBusy(false);
      onDecided();
    }
  };
  const deadline = until(r.deadline, now);
  return (
    <article class="request" aria-label={`Request of ${r.address}`}>
      <h3>
        <Address address={r.address} /> asks to join
      </h3>
      <p class="meta">
        Waiting since <time dateTime={new Date(r.since).toISOString()}>{when(r.since)}</time> · the vote closes{" "}
        {deadline === "passed" ? "now" : deadline} (
        <time dateTime={new Date(r.deadline).toISOString()}>{dateTime(r.deadline)}</time>); silence counts as NO
      </p>
      <p class="meta">
        {r.invited_by ? (
          <>
            Invited by <Address address={r.invited_by} />
          </>
        ) : (
          "Not invited by anyone: a stranger to the group"
        )}
      </p>
      <Voters label="Approved by" voters={r.yes} />
      <Voters label="Denied by" voters={r.no} />
      <p class="tally-line">
        YES {r.yes.length} · NO {r.no.length} · {r.voters} {r.voters === 1 ? "voter" : "voters"}
      </p>
      {r.own_vote !== null ? (
        <p class="voted">You {r.own_vote ? "approved" : "denied"} this request.</p>
      ) : (
        <p class="actions">
          <button type="button" class="yes" disabled={busy} onClick={() => void decide(true)}>
            Approve
          </button>
          <button type="button" class="no" disabled={busy} onClick={() => void decide(false)}>
            Deny
          </button>
        </p>
      )}
    </article>
  );
}
