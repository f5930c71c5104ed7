import { useEffect, useRef, useState } from "preact/hooks";
import type { Message } from "../api";
import { dateTime, explain, when } from "../format";
import { groupOf, useEvents, useSession } from "../live";
import { Address } from "./Address";

const PAGE = 500;

const DELIVERY: Record<Message["delivery"], string> = {
  queued: "waiting for a peer",
  sent: "sent",
  received: "received",
};

/** Adds or updates messages by their position in the history. */
function merge(list: Message[], more: Message[]): Message[] {
  const bySeq = new Map(list.map((m) => [m.seq, m]));
  for (const m of more) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** The group's history, live, and a box to write in. */
export function Chat({ name, readOnly = false }: { name: string; readOnly?: boolean }) {
  const { api, notify } = useSession();
  const [messages, setMessages] = useState<Message[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [text, setText] = useState("");
  const end = useRef<HTMLLIElement>(null);

  const loadFrom = async (after: number) => {
    try {
      for (;;) {
        const page = await api.messages(name, after, PAGE);
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
  useEffect(() => void loadFrom(0), [name]);
  useEvents((event) => {
    if (event.type === "resync") void loadFrom(0);
    if (groupOf(event) !== name) return;
    if (event.type === "message" && event.seq !== null) {
      const message: Message = { ...event, seq: event.seq };
      setMessages((list) => merge(list, [message]));
    }
    if (event.type === "delivery") {
      const { seq, delivery } = event;
      setMessages((list) => list.map((m) => (m.seq === seq ? { ...m, delivery } : m)));
    }
  });
  useEffect(() => end.current?.scrollIntoView({ block: "end" }), [messages.length]);

  const send = async (e: Event) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return;
    try {
      const sent = await api.send(name, body);
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
      {!loading && messages.length === 0 && <p class="hint">No messages yet.</p>}
      <ol class="messages" aria-live="polite" aria-relevant="additions">
        {messages.map((m) => (
          <li key={m.seq} class={m.direction}>
            <article aria-label={`Message from ${m.direction === "own" ? "you" : m.sender}`}>
              <header>
                <Address address={m.sender} />
                <time dateTime={new Date(m.sent_at).toISOString()} title={dateTime(m.sent_at)}>
                  {when(m.sent_at)}
                </time>
                <span class={`delivery ${m.delivery}`}>{DELIVERY[m.delivery]}</span>
              </header>
              <p class="text">{m.text}</p>
            </article>
          </li>
        ))}
        <li ref={end} class="end" aria-hidden="true" />
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
