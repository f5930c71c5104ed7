import { useEffect, useState } from "preact/hooks";
import type { NodeEvent } from "../api";
import { dateTime, removalReason, shortAddress, when } from "../format";
import { groupOf, type HubEvent, useEvents, useSession } from "../live";

/** A change of a group's membership, in words, for the chat timeline. */
export interface MembershipEvent {
  /** Its place in the node's event log. */
  seq: number;
  at: number;
  lines: string[];
}

/** The node events the timeline is made of (decisions say why someone went). */
const KINDS = [
  "group_created",
  "joined",
  "epoch_changed",
  "removed",
  "invited",
  "join_refused",
  "proposal_decided",
  "history_gap",
  "name_changed",
];

const LOG_PAGE = 5000;

type Logged = NodeEvent & { seq: number };

const logged = (event: HubEvent, group: string): event is Logged =>
  event.type !== "resync" && event.seq !== null && groupOf(event) === group && KINDS.includes(event.type);

/** The group's membership events in words, in the order they happened. */
function describeAll(events: Logged[], self: string): MembershipEvent[] {
  const name = (address: string) => (address.toLowerCase() === self ? "you" : shortAddress(address));
  const capital = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);
  // Why a member went: the latest approved change that takes it out.
  const going = new Map<string, "left" | "removed by vote" | "removed by an emergency vote">();
  const out: MembershipEvent[] = [];
  for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
    const lines: string[] = [];
    switch (event.type) {
      case "group_created":
        lines.push("You created the group.");
        break;
      case "joined":
        lines.push(`You joined in epoch ${event.epoch} (${event.members.length} members).`);
        break;
      case "invited":
        lines.push(`${capital(name(event.inviter))} invited ${name(event.invitee)} (until ${dateTime(event.expires_at)}).`);
        break;
      case "join_refused":
        lines.push(`The steward ${shortAddress(event.steward)} refused your request: ${event.reason}`);
        break;
      case "removed":
        lines.push(removalReason({ epoch: event.epoch, by: event.by, at: event.at, reason: event.reason }, name));
        break;
      case "history_gap":
        lines.push(
          `${event.lost} missing ${event.lost === 1 ? "message" : "messages"} could not be had from anyone: the history has a hole here.`,
        );
        break;
      case "name_changed":
        lines.push(
          event.name === null
            ? `${capital(name(event.member))} took ${event.member.toLowerCase() === self ? "your" : "its"} display name away.`
            : `${capital(name(event.member))} ${event.member.toLowerCase() === self ? "are" : "is"} now called “${event.name}”.`,
        );
        break;
      case "proposal_decided": {
        const change = event.change;
        if (!event.approved) break;
        if (change.kind === "leave") going.set(change.member.toLowerCase(), "left");
        if (change.kind === "remove") going.set(change.member.toLowerCase(), "removed by vote");
        if (change.kind === "emergency" && change.offender)
          going.set(change.offender.toLowerCase(), "removed by an emergency vote");
        break;
      }
      case "epoch_changed":
        for (const member of event.added) lines.push(`${capital(name(member))} joined (epoch ${event.epoch}).`);
        // This node's own removal is told by its `removed` event, with the reason.
        for (const member of event.removed.filter((m) => m.toLowerCase() !== self)) {
          const why = going.get(member.toLowerCase()) ?? "removed";
          lines.push(`${shortAddress(member)} ${why === "left" ? "left" : `was ${why}`} (epoch ${event.epoch}).`);
        }
        break;
    }
    if (lines.length > 0) out.push({ seq: event.seq, at: event.at, lines });
  }
  return out.sort((a, b) => a.at - b.at || a.seq - b.seq);
}

/** The group's membership changes: from the node's event log, then live. */
export function useMembershipEvents(group: string): MembershipEvent[] {
  const { api, node } = useSession();
  const [events, setEvents] = useState<Map<number, Logged>>(new Map());
  const add = (more: Logged[]) =>
    setEvents((known) => {
      const next = new Map(known);
      for (const e of more) next.set(e.seq, e);
      return next;
    });
  const load = async () => {
    try {
      for (let after = 0; ; ) {
        const page = await api.eventLog(after, LOG_PAGE);
        add(page.filter((e): e is Logged => logged(e, group)));
        if (page.length < LOG_PAGE) break;
        after = page[page.length - 1].seq ?? after + LOG_PAGE;
      }
    } catch {
      // The timeline is an addition to the chat: without the log it shows what comes live.
    }
  };
  useEffect(() => {
    setEvents(new Map());
    void load();
  }, [group]);
  useEvents((event) => {
    if (event.type === "resync") void load();
    else if (logged(event, group)) add([event]);
  });
  return describeAll([...events.values()], node.address.toLowerCase());
}

/** Membership changes between chat messages. */
export function Timeline({ events }: { events: MembershipEvent[] }) {
  return (
    <>
      {events.map((e) => (
        <li key={e.seq} class="event">
          {e.lines.map((line) => (
            <p key={line}>
              <time dateTime={new Date(e.at).toISOString()} title={dateTime(e.at)}>
                {when(e.at)}
              </time>{" "}
              {line}
            </p>
          ))}
        </li>
      ))}
    </>
  );
}
