import { useState } from "preact/hooks";
import type { JoinRule, Mode } from "../api";
import { explain, JOIN_RULES, MODES } from "../format";
import { useSession } from "../live";

const NAME_PATTERN = "[a-z0-9._\\-]{1,64}";

/** Create a group, join one with a ticket, or ask to join one by its name. */
export function GroupForms({ onDone }: { onDone: () => void }) {
  const { api, notify } = useSession();
  const [mode, setMode] = useState<Mode>("single");
  const [busy, setBusy] = useState(false);

  /** Runs `action`, then opens the group it answers with (by its identifier). */
  const run = async (action: () => Promise<{ id: string }>, message: string, form: HTMLFormElement) => {
    setBusy(true);
    try {
      const { id } = await action();
      form.reset();
      form.closest("details")?.removeAttribute("open");
      setMode("single");
      notify(message);
      onDone();
      location.hash = `#/g/${encodeURIComponent(id)}`;
    } catch (error) {
      notify(explain(error), "error");
    } finally {
      setBusy(false);
    }
  };

  const create = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const name = String(data.get("name"));
    const single = mode === "single";
    void run(
      () =>
        api.createGroup({
          name,
          mode,
          sn_min: single ? 1 : Number(data.get("sn_min")),
          sn_max: single ? 1 : Number(data.get("sn_max")),
          vote_timeout_secs: Number(data.get("vote_timeout_secs")),
          membership_vote_timeout_secs: Number(data.get("membership_vote_timeout_secs")),
          join_rule: String(data.get("join_rule")) as JoinRule,
          liveness_yes: data.get("liveness_yes") === "on",
        }),
      `Group ${name} created: you are its steward.`,
      form,
    );
  };

  const joinWithTicket = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const ticket = String(new FormData(form).get("ticket")).trim();
    setBusy(true);
    api
      .joinWithTicket(ticket)
      .then(
        async (summary) => {
          form.reset();
          form.closest("details")?.removeAttribute("open");
          onDone();
          location.hash = `#/g/${encodeURIComponent(summary.id)}`;
          // The answer names the group by its identifier; the list has the name the ticket gave.
          const listed = (await api.groups().catch(() => [])).find((g) => g.id === summary.id);
          notify(`Asked to join ${listed?.name ?? summary.name} with the invitation.`);
        },
        (error: unknown) => notify(explain(error), "error"),
      )
      .finally(() => setBusy(false));
  };

  const join = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    const name = String(data.get("name"));
    const steward = String(data.get("steward") ?? "").trim();
    void run(() => api.join(name, steward || undefined), `Asked to join ${name}.`, form);
  };

  return (
    <>
      <details class="form">
        <summary>New group</summary>
        <form onSubmit={create}>
          <label for="new-name">Name</label>
          <input id="new-name" name="name" required pattern={NAME_PATTERN} aria-describedby="name-hint" />
          <small id="name-hint">Lower-case letters, digits, dot, dash and underscore.</small>
          <label for="new-mode">Consensus mode</label>
          <select id="new-mode" name="mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as Mode)}>
            {(Object.keys(MODES) as Mode[]).map((m) => (
              <option key={m} value={m}>
                {MODES[m]}
              </option>
            ))}
          </select>
          <fieldset disabled={mode === "single"}>
            <legend>Steward list size</legend>
            <label for="new-sn-min">At least</label>
            <input id="new-sn-min" name="sn_min" type="number" min={1} max={64} defaultValue="1" required />
            <label for="new-sn-max">At most</label>
            <input id="new-sn-max" name="sn_max" type="number" min={1} max={64} defaultValue="3" required />
          </fieldset>
          <label for="new-join-rule">Who may join</label>
          <select id="new-join-rule" name="join_rule" defaultValue="invite">
            {(Object.keys(JOIN_RULES) as JoinRule[]).map((rule) => (
              <option key={rule} value={rule}>
                {JOIN_RULES[rule]}
              </option>
            ))}
          </select>
          <label for="new-membership-timeout">Votes on admitting or removing someone stay open for (seconds)</label>
          <input
            id="new-membership-timeout"
            name="membership_vote_timeout_secs"
            type="number"
            min={5}
            max={86400}
            defaultValue="3600"
            required
            aria-describedby="membership-timeout-hint"
          />
          <small id="membership-timeout-hint">Members who stay silent count as NO at the end.</small>
          <label for="new-timeout">Votes on elections and emergencies stay open for (seconds)</label>
          <input id="new-timeout" name="vote_timeout_secs" type="number" min={5} max={86400} defaultValue="60" required />
          <label class="check">
            <input name="liveness_yes" type="checkbox" defaultChecked /> Members who stay silent count as YES on
            steward elections (never on admitting or removing someone)
          </label>
          <button type="submit" disabled={busy}>
            Create
          </button>
        </form>
      </details>
      <details class="form">
        <summary>Join with a ticket</summary>
        <form onSubmit={joinWithTicket}>
          <label for="join-ticket">Ticket</label>
          <input id="join-ticket" name="ticket" required pattern="demls:.+" placeholder="demls:…" aria-describedby="ticket-hint" />
          <small id="ticket-hint">A member of the group invites your address and gives you this ticket.</small>
          <button type="submit" disabled={busy}>
            Join
          </button>
        </form>
      </details>
      <details class="form">
        <summary>Ask to join by name</summary>
        <form onSubmit={join}>
          <label for="join-name">Group name</label>
          <input id="join-name" name="name" required pattern={NAME_PATTERN} />
          <label for="join-steward">Steward address (optional)</label>
          <input id="join-steward" name="steward" pattern="0x[0-9a-fA-F]{40}" placeholder="0x…" aria-describedby="steward-hint" />
          <small id="steward-hint">Only trust this steward's announcement of the group.</small>
          <small>Without an invitation the members decide: nobody is admitted until a majority says YES.</small>
          <button type="submit" disabled={busy}>
            Ask to join
          </button>
        </form>
      </details>
    </>
  );
}
