import { explain, ROLES } from "../format";
import { groupOf, useLoad, useSession } from "../live";
import { Address } from "./Address";

const MEMBERSHIP = ["epoch_changed", "joined", "removed", "group_created"];

/** Members with their roles this epoch and the epoch they joined at. */
export function Members({ name }: { name: string }) {
  const { api, notify } = useSession();
  const roster = useLoad(`roster:${name}`, () => api.roster(name), (e) => groupOf(e) === name && MEMBERSHIP.includes(e.type));
  const propose = async (member: string) => {
    if (!window.confirm(`Propose removing ${member} from ${name}? The members vote on it.`)) return;
    try {
      await api.proposeRemoval(name, member);
      notify("Removal proposed: the members vote on it (see Proposals).");
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  if (roster.error) return <p class="notice error">{roster.error}</p>;
  if (!roster.data) return <p aria-busy="true">Loading…</p>;
  return (
    <div class="members">
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
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {roster.data.members.map((m) => (
            <tr key={m.address}>
              <td>
                <Address address={m.address} />
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
    </div>
  );
}
