import type { Member, PendingRequest } from "../api";
import { dateTime, duration, explain, JOIN_RULES, ROLES } from "../format";
import { groupOf, type HubEvent, type Loaded, useLoad, useSession } from "../live";
import { Address } from "./Address";
import { Requests } from "./Requests";

const MEMBERSHIP = ["epoch_changed", "joined", "removed", "group_created", "invited"];

/**
 * The join requests waiting for the members, members with their roles this epoch and the
 * epoch they joined at, how the group admits people, and the invitations this node knows of.
 */
export function Members({
  group,
  name,
  requests,
}: {
  group: string;
  name: string;
  requests: Loaded<PendingRequest[]>;
}) {
  const { api, notify } = useSession();
  const changed = (e: HubEvent) => groupOf(e) === group && MEMBERSHIP.includes(e.type);
  const roster = useLoad(`roster:${group}`, () => api.roster(group), changed);
  // Names arrive as MLS application messages, with no event: the detail is read again now and then.
  const detail = useLoad(`group:${group}`, () => api.group(group), changed, 15_000);
  const propose = async (member: string) => {
    if (!window.confirm(`Propose removing ${member} from ${name}? The members vote on it.`)) return;
    try {
      await api.proposeRemoval(group, member);
      notify("Removal proposed: the members vote on it (see Proposals).");
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  const rotate = async () => {
    try {
      await api.rotate(group);
      notify("Your keys are being replaced: the next commit (within about 30 s) carries the update.");
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  const setName = async (e: Event) => {
    e.preventDefault();
    const displayName = String(new FormData(e.currentTarget as HTMLFormElement).get("name")).trim();
    try {
      await api.setName(group, displayName);
      detail.reload();
      notify(displayName ? `The members of ${name} now see you as ${displayName}.` : "Your name is removed.");
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  // When each member's leaf keys were last replaced (post-compromise security), and names.
  const keys = new Map((detail.data?.members ?? []).map((m) => [m.address, m]));
  if (roster.error) return <p class="notice error">{roster.error}</p>;
  if (!roster.data) return <p aria-busy="true">Loading…</p>;
  const rules = detail.data;
  return (
    <div class="members">
      <Requests group={group} requests={requests} />
      <h2>
        {roster.data.members.length} {roster.data.members.length === 1 ? "member" : "members"} in epoch{" "}
        {roster.data.epoch}
      </h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Member</th>
            <th scope="col">Role</th>
            <th scope="col">Joined at epoch</th>
            <th scope="col">Keys replaced</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {roster.data.members.map((m) => (
            <tr key={m.address}>
              <td>
                <Address address={m.address} name={keys.get(m.address)?.display_name} />
              </td>
              <td>
                <ul class="roles">
                  {m.roles
                    .filter((r) => r !== "member" || m.roles.length === 1)
                    .map((r) => (
                      <li key={r} class={`role ${r}`}>
                        {ROLES[r]}
                      </li>
                    ))}
                </ul>
              </td>
              <td>{m.joined_epoch ?? <span title="before this node joined, or not seen">—</span>}</td>
              <td>
                <KeyAge member={keys.get(m.address)} />
              </td>
              <td>
                {m.is_self && (
                  <button type="button" class="quiet" onClick={() => void rotate()}>
                    Replace my keys
                  </button>
                )}
                {!m.is_self && (
                  <button type="button" class="quiet" onClick={() => void propose(m.address)}>
                    Propose removal
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form class="display-name" onSubmit={setName}>
        <label for="display-name">Your name in {name}</label>
        <input
          id="display-name"
          name="name"
          maxLength={64}
          defaultValue={detail.data?.members.find((m) => m.is_self)?.display_name ?? ""}
          placeholder="shown next to your address; empty: none"
        />
        <button type="submit">Set name</button>
      </form>
      {rules && (
        <>
          <h2>How {name} admits people</h2>
          <p>
            {JOIN_RULES[rules.join_rule]}. Votes on admitting or removing someone stay open{" "}
            {duration(rules.membership_vote_timeout_secs)}; members who stay silent count as NO.
            {rules.gated && <> Joiners must also meet the group's gate: {rules.admission}.</>}
          </p>
          {rules.invitations.length > 0 && (
            <>
              <h3>Invitations</h3>
              <ul class="invitations">
                {rules.invitations.map((i) => (
                  <li key={`${i.invitee}-${i.inviter}`}>
                    <Address address={i.invitee} /> invited by <Address address={i.inviter} />, until{" "}
                    {dateTime(i.expires_at)}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </div>
  );
}

/** When a member's leaf keys were last replaced: the epoch, and the time if this node saw it. */
function KeyAge({ member }: { member: Member | undefined }) {
  if (!member) return <>—</>;
  return (
    <>
      epoch {member.key_epoch}
      {member.key_replaced_at !== null && <span class="meta"> · {dateTime(member.key_replaced_at)}</span>}
    </>
  );
}
