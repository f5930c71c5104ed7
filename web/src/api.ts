// The node's HTTP API (docs/openapi.yaml) and its WebSocket event stream. The types are
// generated from the node's (crates/api) into api-types.ts; see docs/web.md.

import type {
  Ballot,
  DisplayName,
  GroupDetail,
  GroupSummary,
  Invitation,
  JoinProgress,
  JoinRequest,
  Message,
  JoinTicket,
  NewGroup,
  NewInvitation,
  NewMessage,
  NewProposal,
  NodeEvent,
  NodeInfo,
  PendingRequest,
  Proposal,
  RequestDecision,
  Roster,
  SignedIn,
  SignIn,
  StatusBody,
  VotePolicy,
  VotePolicyChange,
} from "./api-types";

export type * from "./api-types";

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
export const signIn = (code: string) => request<SignedIn>(null, "POST", "/api/signin", { code } satisfies SignIn);

const group = (name: string, rest = "") => `/api/groups/${encodeURIComponent(name)}${rest}`;

/** The routes the client uses, with its token. */
export function client(token: string) {
  const call = <T>(method: string, path: string, body?: unknown) => request<T>(token, method, path, body);
  return {
    node: () => call<NodeInfo>("GET", "/api/node"),
    setVotePolicy: (policy: VotePolicy) =>
      call<NodeInfo>("PUT", "/api/node/vote-policy", { policy } satisfies VotePolicyChange),
    groups: () => call<GroupSummary[]>("GET", "/api/groups"),
    createGroup: (params: NewGroup) => call<GroupDetail>("POST", "/api/groups", params),
    join: (name: string, steward?: string) =>
      call<GroupSummary>("POST", group(name, "/join"), { steward } satisfies JoinRequest),
    joinProgress: (name: string) => call<JoinProgress>("GET", group(name, "/join")),
    joinWithTicket: (ticket: string) => call<GroupSummary>("POST", "/api/join", { ticket } satisfies JoinTicket),
    group: (name: string) => call<GroupDetail>("GET", group(name)),
    invite: (name: string, address: string) =>
      call<Invitation>("POST", group(name, "/invitations"), { address } satisfies NewInvitation),
    requests: (name: string) => call<PendingRequest[]>("GET", group(name, "/requests")),
    decideRequest: (name: string, address: string, approve: boolean) =>
      call<Proposal>("POST", group(name, `/requests/${address}`), { approve } satisfies RequestDecision),
    leave: (name: string) => call<StatusBody>("POST", group(name, "/leave")),
    rotate: (name: string) => call<StatusBody>("POST", group(name, "/rotate")),
    setName: (name: string, displayName: string) =>
      call<GroupDetail>("PUT", group(name, "/name"), { name: displayName } satisfies DisplayName),
    roster: (name: string) => call<Roster>("GET", group(name, "/roster")),
    proposals: (name: string) => call<Proposal[]>("GET", group(name, "/proposals")),
    proposeRemoval: (name: string, member: string) =>
      call<StatusBody>("POST", group(name, "/proposals"), { kind: "remove", member } satisfies NewProposal),
    vote: (name: string, id: string, yes: boolean) =>
      call<Proposal>("POST", group(name, `/proposals/${id}/votes`), { yes } satisfies Ballot),
    messages: (name: string, after: number, limit: number) =>
      call<Message[]>("GET", group(name, `/messages?after=${after}&limit=${limit}`)),
    eventLog: (after: number, limit: number) => call<NodeEvent[]>("GET", `/api/events/log?after=${after}&limit=${limit}`),
    send: (name: string, text: string) => call<Message>("POST", group(name, "/messages"), { text } satisfies NewMessage),
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
