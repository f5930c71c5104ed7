// The node's HTTP API (docs/openapi.yaml), typed, and its WebSocket event stream.

export interface NodeInfo {
  address: string;
  peer_id: string;
  listen_addrs: string[];
  pubsub_topic: string;
  peers: string[];
  vote_policy: "automatic" | "manual";
  version: string;
}

export interface GroupSummary {
  id: string;
  state: "member" | "joining";
  epoch: number | null;
  members: number | null;
  is_steward: boolean;
}

export interface Health {
  epoch: number;
  stewards: string[];
  peers: number;
  dropped: Record<string, number>;
  open_proposals: number;
  last_commit_at: number | null;
  queued: number;
}

export type Role = "epoch_steward" | "backup" | "steward" | "member";

export interface Roster {
  group: string;
  epoch: number;
  mode: Mode;
  stewards: string[];
  committers: string[];
  members: { address: string; roles: Role[]; is_self: boolean; joined_epoch: number | null }[];
}

export type Mode = "single" | "big" | "small";

export interface JoinProgress {
  group: string;
  stage: "looking" | "requested" | "member";
  steward: string | null;
  since: number | null;
  epoch: number | null;
}

export type Change =
  | { kind: "add" | "remove" | "leave"; member: string }
  | { kind: "election"; retry_round: number; stewards: string[] }
  | { kind: "emergency"; offender: string | null; violation: Violation };

export type Violation = "broken_commit" | "equivocation" | "inactivity" | "censorship" | "deadlock";

export interface Proposal {
  id: string;
  group: string;
  epoch: number;
  owner: string;
  change: Change;
  opened_at: number;
  deadline: number;
  state: "open" | "approved" | "rejected" | "closed";
  decided_at: number | null;
  committed_epoch: number | null;
  votes: { voter: string; yes: boolean }[];
  tally: { yes: number; no: number; voters: number | null };
}

export interface Message {
  seq: number;
  group: string;
  id: string;
  sender: string;
  text: string;
  sent_at: number;
  epoch: number;
  received_at: number;
  direction: "own" | "incoming";
  delivery: "queued" | "sent" | "received";
}

export interface NewGroup {
  name: string;
  mode: Mode;
  sn_min: number;
  sn_max: number;
  vote_timeout_secs: number;
  liveness_yes: boolean;
}

/** An event of the stream: `type`, `at`, `seq` and the type's fields. */
export type NodeEvent =
  | ({ type: "message" } & Message)
  | { type: "delivery"; group: string; seq: number; id: string; delivery: Message["delivery"] }
  | { type: "removed"; group: string; epoch: number; by: string }
  | { type: string; group?: string; [field: string]: unknown };

/** A refusal from the node, or the node out of reach (`code` "unreachable"). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "demls.token";

export const savedToken = (): string | null => localStorage.getItem(TOKEN_KEY);
export const saveToken = (token: string | null): void =>
  token === null ? localStorage.removeItem(TOKEN_KEY) : localStorage.setItem(TOKEN_KEY, token);

async function request<T>(token: string | null, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "unreachable", "the node does not answer");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(response.status, error.code ?? "error", error.message ?? `the node answered ${response.status}`);
  }
  return data as T;
}

/** Exchanges the one-time code of the printed sign-in link for the token. */
export const signIn = (code: string) => request<{ token: string }>(null, "POST", "/api/signin", { code });

const group = (name: string, rest = "") => `/api/groups/${encodeURIComponent(name)}${rest}`;

/** The routes the client uses, with its token. */
export function client(token: string) {
  const call = <T>(method: string, path: string, body?: unknown) => request<T>(token, method, path, body);
  return {
    node: () => call<NodeInfo>("GET", "/api/node"),
    setVotePolicy: (policy: NodeInfo["vote_policy"]) => call<NodeInfo>("PUT", "/api/node/vote-policy", { policy }),
    groups: () => call<GroupSummary[]>("GET", "/api/groups"),
    createGroup: (params: NewGroup) => call<unknown>("POST", "/api/groups", params),
    join: (name: string, steward?: string) => call<GroupSummary>("POST", group(name, "/join"), { steward }),
    joinProgress: (name: string) => call<JoinProgress>("GET", group(name, "/join")),
    leave: (name: string) => call<unknown>("POST", group(name, "/leave")),
    roster: (name: string) => call<Roster>("GET", group(name, "/roster")),
    health: (name: string) => call<Health>("GET", group(name, "/health")),
    proposals: (name: string) => call<Proposal[]>("GET", group(name, "/proposals")),
    proposeRemoval: (name: string, member: string) =>
      call<unknown>("POST", group(name, "/proposals"), { kind: "remove", member }),
    vote: (name: string, id: string, yes: boolean) =>
      call<Proposal>("POST", group(name, `/proposals/${id}/votes`), { yes }),
    messages: (name: string, after: number, limit: number) =>
      call<Message[]>("GET", group(name, `/messages?after=${after}&limit=${limit}`)),
    send: (name: string, text: string) => call<Message>("POST", group(name, "/messages"), { text }),
    /** The event stream's address (browsers cannot set headers on WebSockets). */
    eventsUrl: () => {
      const url = new URL("/api/events", location.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("access_token", token);
      return url.toString();
    },
  };
}

export type Client = ReturnType<typeof client>;
