import { useState } from "preact/hooks";
import type { Invitation } from "../api";
import { dateTime, duration, explain, JOIN_RULES, shortAddress } from "../format";
import { useLoad, useSession } from "../live";

/**
 * Invites an address to a group: the invitation is this member's YES on admitting it, signed
 * ahead; the ticket it returns is what the invitee joins with.
 */
export function Invite({ group, name, onClose }: { group: string; name: string; onClose: () => void }) {
  const { api, notify } = useSession();
  const [invitation, setInvitation] = useState<Invitation | null>(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState(false);
  const detail = useLoad(`group:${group}`, () => api.group(group), () => false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const address = String(new FormData(e.currentTarget as HTMLFormElement).get("address")).trim();
    setBusy(true);
    try {
      setInvitation(await api.invite(group, address));
      setCopied(false);
    } catch (error) {
      notify(explain(error), "error");
    } finally {
      setBusy(false);
    }
  };
  const copy = async (ticket: string) => {
    try {
      await navigator.clipboard.writeText(ticket);
      setCopied(true);
    } catch {
      window.prompt("Copy the ticket:", ticket);
    }
  };

  return (
    <section class="invite panel" aria-labelledby="invite-title">
      <h2 id="invite-title">Invite someone to {name}</h2>
      {detail.data && (
        <p class="meta">
          {JOIN_RULES[detail.data.join_rule]}. Votes on admitting someone stay open{" "}
          {duration(detail.data.membership_vote_timeout_secs)}.
        </p>
      )}
      <p>
        Your invitation is your YES on admitting that address, signed now. The group learns of it, and nodes that vote
        automatically say YES to the invitee too; members who vote by hand decide themselves.
      </p>
      <form onSubmit={submit}>
        <label for="invite-address">Their address</label>
        <input id="invite-address" name="address" required pattern="0x[0-9a-fA-F]{40}" placeholder="0x…" />
        <p class="actions">
          <button type="submit" disabled={busy}>
            Create invitation
          </button>
          <button type="button" class="quiet" onClick={onClose}>
            Close
          </button>
        </p>
      </form>
      {invitation && (
        <div class="ticket" role="status">
          <label for="invite-ticket">Ticket for {shortAddress(invitation.invitee)}: give it to them</label>
          <textarea id="invite-ticket" class="ticket" readOnly rows={3} value={invitation.ticket} onFocus={(e) => e.currentTarget.select()} />
          <p class="actions">
            <button type="button" onClick={() => void copy(invitation.ticket)}>
              {copied ? "Copied" : "Copy ticket"}
            </button>
          </p>
          <small>
            They join with it under "Join with a ticket" (or <code>demls join TICKET</code>). It is valid until{" "}
            {dateTime(invitation.expires_at)}, and only for their address.
          </small>
        </div>
      )}
    </section>
  );
}
