import { useState } from "preact/hooks";
import { shortAddress } from "../format";
import { useSession } from "../live";

/**
 * An address, short, with its full form on hover and a button that copies it; before it, the
 * display name its owner gave itself in the group, if any.
 */
export function Address({ address, name }: { address: string; name?: string | null }) {
  const { node } = useSession();
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(address);
      setCopied(true);
      window.setTimeout(() => setCopied(false), 1500);
    } catch {
      window.prompt("Copy the address:", address);
    }
  };
  return (
    <span class="address">
      {name && <strong class="display-name">{name} </strong>}
      <code title={address}>{shortAddress(address)}</code>
      {address.toLowerCase() === node.address.toLowerCase() && <span class="you"> (you)</span>}
      <button type="button" class="copy" onClick={copy} aria-label={`Copy address ${address}`}>
        {copied ? "Copied" : "Copy"}
      </button>
    </span>
  );
}
