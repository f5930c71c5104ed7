import { dateTime, duration, JOIN_RULES, MODES } from "../format";
import { groupOf, type HubEvent, useLoad, useSession } from "../live";
import { Address } from "./Address";

const WATCHED = ["epoch_changed", "joined", "proposal_opened", "proposal_decided", "commit_rejected"];

/**
 * Epoch, consensus mode, how the group admits people, stewards and whose turn it is, peers,
 * dropped messages.
 */
export function HealthView({ group }: { group: string }) {
  const { api } = useSession();
  const wanted = (e: HubEvent) =>
    (groupOf(e) === group && WATCHED.includes(e.type)) || e.type === "peer_connected" || e.type === "peer_disconnected";
  const detail = useLoad(`group:${group}`, () => api.group(group), wanted, 5000);
  const roster = useLoad(`roster:${group}`, () => api.roster(group), wanted);
  const problem = detail.error ?? roster.error;
  if (problem) return <p class="notice error">{problem}</p>;
  if (!detail.data || !roster.data) return <p aria-busy="true">Loading…</p>;
  const d = detail.data;
  const h = d.health;
  const r = roster.data;
  const drops = Object.entries(h.dropped).sort((a, b) => b[1] - a[1]);
  const dropped = drops.reduce((sum, [, n]) => sum + n, 0);
  return (
    <div class="health">
      <h2>Group details and health</h2>
      {d.name !== d.id && (
        <p class="meta">
          Identifier on the network: <code>{d.id}</code>
        </p>
      )}
      <dl class="facts">
        <div>
          <dt>Epoch</dt>
          <dd>{h.epoch}</dd>
        </div>
        <div>
          <dt>Consensus mode</dt>
          <dd>{MODES[r.mode]}</dd>
        </div>
        <div>
          <dt>Who may join</dt>
          <dd>
            {JOIN_RULES[d.join_rule]}
            {d.gated && <>; {d.admission}</>}
          </dd>
        </div>
        <div>
          <dt>Votes on admitting or removing someone</dt>
          <dd>open {duration(d.membership_vote_timeout_secs)}; silence counts as NO</dd>
        </div>
        <div>
          <dt>Whose turn to commit</dt>
          <dd>{r.committers.length > 0 ? <Address address={r.committers[0]} /> : "nobody yet"}</dd>
        </div>
        <div>
          <dt>Peers connected</dt>
          <dd class={h.peers === 0 ? "warn" : undefined}>{h.peers}</dd>
        </div>
        <div>
          <dt>Messages dropped</dt>
          <dd class={dropped > 0 ? "warn" : undefined}>{dropped}</dd>
        </div>
        <div>
          <dt>Missing messages being fetched</dt>
          <dd class={h.missing_messages > 0 ? "warn" : undefined}>{h.missing_messages}</dd>
        </div>
        <div>
          <dt>Waiting to be sent</dt>
          <dd class={h.queued > 0 ? "warn" : undefined}>{h.queued}</dd>
        </div>
        <div>
          <dt>Open proposals</dt>
          <dd>{h.open_proposals}</dd>
        </div>
        <div>
          <dt>Last commit seen</dt>
          <dd>{h.last_commit_at ? dateTime(h.last_commit_at) : "none since this node started"}</dd>
        </div>
      </dl>
      <h3>Stewards, in rotation order</h3>
      <p class="meta">
        Scores are this node's: a missed turn or a broken rule costs score, honest commits earn it back up to{" "}
        {h.score_default}. A steward is charged in an emergency vote only below {h.score_threshold}.
      </p>
      <ol class="stewards">
        {r.stewards.map((s) => {
          const turn = r.committers.indexOf(s);
          const score = h.steward_scores.find((scored) => scored.address === s)?.score;
          return (
            <li key={s}>
              <Address address={s} />{" "}
              <span class="role">{turn === 0 ? "epoch steward: commits now" : turn > 0 ? `backup ${turn}` : "steward"}</span>
              {score !== undefined && (
                <span class={score < h.score_threshold ? "score warn" : "score"}> · score {score}</span>
              )}
            </li>
          );
        })}
      </ol>
      {drops.length > 0 && (
        <>
          <h3>Dropped messages by reason</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">Reason</th>
                <th scope="col">Count</th>
              </tr>
            </thead>
            <tbody>
              {drops.map(([reason, count]) => (
                <tr key={reason}>
                  <td>
                    <code>{reason}</code>
                  </td>
                  <td>{count}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </div>
  );
}
