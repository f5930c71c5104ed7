// The node's event stream, shared by every view, and the hooks that keep views current.

import { createContext } from "preact";
import { useCallback, useContext, useEffect, useRef, useState } from "preact/hooks";
import type { Client, NodeEvent, NodeInfo } from "./api";
import { explain } from "./format";

export type LinkState = "connecting" | "live" | "down";

/** An event of the node, or `resync`: the stream reopened and events may have been missed. */
export type HubEvent = NodeEvent | { type: "resync" };

/** The group an event concerns, if any. */
export const groupOf = (event: HubEvent): string | undefined => ("group" in event ? event.group : undefined);

type Listener = (event: HubEvent) => void;

/** One WebSocket to the node, reopened with back-off; after a reopen listeners get `resync`. */
export class EventHub {
  private socket: WebSocket | null = null;
  private listeners = new Set<Listener>();
  private retry = 500;
  private timer: number | undefined;
  private closed = false;
  private wasDown = false;

  constructor(
    private readonly url: string,
    private readonly onState: (state: LinkState) => void,
  ) {
    this.open();
  }

  private open() {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 500;
      this.onState("live");
      if (this.wasDown) this.emit({ type: "resync" });
      this.wasDown = false;
    };
    socket.onmessage = (message) => {
      try {
        this.emit(JSON.parse(String(message.data)) as NodeEvent);
      } catch {
        // Not JSON: not from this node's API; ignored.
      }
    };
    socket.onclose = () => {
      if (this.closed) return;
      this.wasDown = true;
      this.onState("down");
      this.timer = window.setTimeout(() => this.open(), this.retry);
      this.retry = Math.min(this.retry * 2, 5000);
    };
  }

  private emit(event: HubEvent) {
    for (const listener of this.listeners) listener(event);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close() {
    this.closed = true;
    window.clearTimeout(this.timer);
    this.socket?.close();
  }
}

export interface Session {
  api: Client;
  node: NodeInfo;
  hub: EventHub;
  /** Shows a message to the person (errors are announced to screen readers too). */
  notify: (text: string, kind?: "error" | "info") => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("no session");
  return session;
}

/** Calls `handler` for every event; the latest handler is used without resubscribing. */
export function useEvents(handler: Listener) {
  const { hub } = useSession();
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => hub.subscribe((event) => latest.current(event)), [hub]);
}

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  reload: () => void;
}

/**
 * Loads `load()` when `key` changes, again (debounced) for every event `wanted` picks, after the
 * stream reconnects, and every `everyMs` if given.
 */
export function useLoad<T>(
  key: string,
  load: () => Promise<T>,
  wanted: (event: HubEvent) => boolean,
  everyMs?: number,
): Loaded<T> {
  const [state, setState] = useState<{ key: string; data: T | null; error: string | null }>({
    key,
    data: null,
    error: null,
  });
  const loadRef = useRef(load);
  loadRef.current = load;
  const pending = useRef<number | undefined>(undefined);
  const reload = useCallback(() => {
    loadRef.current().then(
      (data) => setState({ key, data, error: null }),
      (error: unknown) => setState((s) => ({ key, data: s.key === key ? s.data : null, error: explain(error) })),
    );
  }, [key]);
  useEffect(() => {
    reload();
    if (!everyMs) return;
    const timer = window.setInterval(reload, everyMs);
    return () => window.clearInterval(timer);
  }, [reload, everyMs]);
  useEvents((event) => {
    if (event.type !== "resync" && !wanted(event)) return;
    window.clearTimeout(pending.current);
    pending.current = window.setTimeout(reload, 100);
  });
  useEffect(() => () => window.clearTimeout(pending.current), []);
  return state.key === key ? { data: state.data, error: state.error, reload } : { data: null, error: null, reload };
}

/** The time, every second. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, []);
  return now;
}
