import { explain } from "../format";
import type { NodeInfo } from "../api";
import { useSession } from "../live";
import { Address } from "./Address";

const POLICIES: [NodeInfo["vote_policy"], string][] = [
  ["automatic", "Automatically: YES to every proposal that checks out"],
  ["manual", "By hand, on the Proposals tab (silent votes count by the group's rule at the deadline)"],
];

/** This node: who it is, where others reach it, and how it votes. */
export function NodePanel({ onNode, onSignOut }: { onNode: (node: NodeInfo) => void; onSignOut: () => void }) {
  const { api, node, notify } = useSession();
  const setPolicy = async (policy: NodeInfo["vote_policy"]) => {
    try {
      onNode(await api.setVotePolicy(policy));
      notify(policy === "manual" ? "You vote by hand from now on." : "Your node votes by itself from now on.");
    } catch (error) {
      notify(explain(error), "error");
    }
  };
  return (
    <section aria-labelledby="node-title" class="node">
      <h1 id="node-title">This node</h1>
      <dl class="facts">
        <div>
          <dt>Your address</dt>
          <dd>
            <Address address={node.address} />
          </dd>
        </div>
        <div>
          <dt>Peers connected</dt>
          <dd>{node.peers.length}</dd>
        </div>
        <div>
          <dt>Version</dt>
          <dd>demls {node.version}</dd>
        </div>
      </dl>
      <h2>Where others reach you</h2>
      <p>Others start their node with one of these as <code>--peer</code>:</p>
      <ul class="addrs">
        {node.listen_addrs.map((a) => (
          <li key={a}>
            <code>{a}</code>
          </li>
        ))}
      </ul>
      <fieldset class="policy">
        <legend>How you vote</legend>
        {POLICIES.map(([policy, label]) => (
          <label class="check" key={policy}>
            <input
              type="radio"
              name="policy"
              checked={node.vote_policy === policy}
              onChange={() => void setPolicy(policy)}
            />{" "}
            {label}
          </label>
        ))}
      </fieldset>
      <h2>This browser</h2>
      <p>The page keeps the node's token until you sign out.</p>
      <button type="button" class="quiet" onClick={onSignOut}>
        Sign out
      </button>
    </section>
  );
}
