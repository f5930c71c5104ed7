import { useEffect, useRef, useState } from "preact/hooks";
import type { Message } from "../api";
import { dateTime, explain, when } from "../format";
import { groupOf, useEvents, useSession } from "../live";
import { Address } from "./Address";
import { type MembershipEvent, Timeline, useMembershipEvents } from "./Timeline";

const PAGE = 500;

const DELIVERY: Record<Message["delivery"], string> = {
  queued: "waiting for a peer",
  sent: "sent",
  received: "received",
  delivered: "delivered",
};

/** Messages in history order, each membership change placed before the first message stored after it. */
function interleave(messages: Message[], events: MembershipEvent[]) {
  const items: ({ kind: "message"; message: Message } | { kind: "events"; events: MembershipEvent[] })[] = [];
  let next = 0;
  const eventsUntil = (at: number) => {
    const start = next;
    while (next < events.length && events[next].at <= at) next++;
    if (next > start) items.push({ kind: "events", events: events.slice(start, next) });
  };
  for (const message of messages) {
    eventsUntil(message.received_at);
    items.push({ kind: "message", message });
  }
  eventsUntil(Number.POSITIVE_INFINITY);
  return items;
}

/** Adds or updates messages by their position in the history. */
function merge(list: Message[], more: Message[]): Message[] {
  const bySeq = new Map(list.map((m) => [m.seq, m]));
  for (const m of more) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** The group's history with its membership changes, live, and a box to write in. */
export function Chat({ group, name, readOnly = false }: { group: string; name: string; readOnly?: boolean }) {
  const { api, notify } = useSession();
  const [messages, setMessages] = useState<Message[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [text, setText] = useState("");
  // Messages the node knows it misses and is fetching (from peers' archives or by repair).
  const [missing, setMissing] = useState(0);
  const list = useRef<HTMLOListElement>(null);
  const following = useRef(true);
  const autoScrolledTo = useRef(0);
  const membership = useMembershipEvents(group);

  const loadFrom = async (after: number) => {
    try {
      for (;;) {
        const page = await api.messages(group, after, PAGE);
        setMessages((list) => merge(list, page));
        if (page.length < PAGE) break;
        after = page[page.length - 1].seq;
      }
      setProblem(null);
    } catch (error) {
      setProblem(explain(error));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => void loadFrom(0), [group]);
  useEvents((event) => {
    if (event.type === "resync") void loadFrom(0);
    if (groupOf(event) !== group) return;
    if (event.type === "message" && event.seq !== null) {
      const message: Message = { ...event, seq: event.seq };
      setMessages((list) => merge(list, [message]));
    }
    if (event.type === "syncing") setMissing(event.missing);
    if (event.type === "delivery") {
      const { seq, delivery } = event;
      setMessages((list) => list.map((m) => (m.seq === seq ? { ...m, delivery } : m)));
    }
  });
  // Stay at the newest message while the reader is there; leave them where they are when they scrolled up.
  useEffect(() => {
    const box = list.current;
    if (box && following.current) {
      box.scrollTop = box.scrollHeight;
      autoScrolledTo.current = box.scrollTop;
    }
  }, [messages.length, membership.length]);
  // Only the reader scrolls up: the history growing under an automatic scroll does not stop following.
  const onScroll = () => {
    const box = list.current;
    if (!box) return;
    following.current =
      box.scrollTop >= autoScrolledTo.current - 1 || box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  };

  const send = async (e: Event) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return;
    try {
      const sent = await api.send(group, body);
      setMessages((list) => merge(list, [sent]));
      setText("");
    } catch (error) {
      notify(explain(error), "error");
    }
  };

  return (
    <div class="chat">
      <h2 class="visually-hidden">Messages</h2>
      {problem && <p class="notice error">{problem}</p>}
      {missing > 0 && (
        <p class="notice" role="status">
          Syncing: {missing} {missing === 1 ? "message" : "messages"} known to be missing {missing === 1 ? "is" : "are"}{" "}
          being fetched from the group.
        </p>
      )}
      {!loading && messages.length === 0 && <p class="hint">No messages yet.</p>}
      <ol class="messages" aria-live="polite" aria-relevant="additions" ref={list} onScroll={onScroll} tabIndex={0}>
        {interleave(messages, membership).map((item) =>
          item.kind === "events" ? (
            <Timeline key={`e${item.events[0].seq}`} events={item.events} />
          ) : (
            <MessageItem key={item.message.seq} message={item.message} />
          ),
        )}
      </ol>
      {!readOnly && (
        <form class="compose" onSubmit={send}>
          <label for="compose" class="visually-hidden">
            Message to {name}
          </label>
          <input
            id="compose"
            autocomplete="off"
            placeholder={`Message ${name}`}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
          />
          <button type="submit">Send</button>
        </form>
      )}
    </div>
  );
}

function MessageItem({ message: m }: { message: Message }) {
  return (
    <li class={m.direction}>
      <article aria-label={`Message from ${m.direction === "own" ? "you" : (m.sender_name ?? m.sender)}`}>
        <header>
          <Address address={m.sender} name={m.sender_name} />
          <time dateTime={new Date(m.sent_at).toISOString()} title={dateTime(m.sent_at)}>
            {when(m.sent_at)}
          </time>
          <span class={`delivery ${m.delivery}`}>{DELIVERY[m.delivery]}</span>
        </header>
        <p class="text">{m.text}</p>
      </article>
    </li>
  );
}
