import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, client, type GroupSummary, type NodeInfo, saveToken, savedToken, signIn } from "./api";
import { explain } from "./format";
import { EventHub, type LinkState, type Session, SessionContext, useEvents, useLoad, useSession } from "./live";
import { GroupForms } from "./views/GroupForms";
import { GroupPage, type Tab } from "./views/GroupPage";
import { NodePanel } from "./views/NodePanel";
import { SignIn } from "./views/SignIn";

/** The sign-in code of a printed link (`…/#signin=CODE`), if `text` is one. */
const codeOf = (text: string) => new URLSearchParams(text.slice(text.indexOf("#") + 1)).get("signin");

/** Signs in, then shows the app. */
export function Root() {
  const [token, setToken] = useState<string | null>(savedToken);
  const [node, setNode] = useState<NodeInfo | null>(null);
  const [problem, setProblem] = useState<string | null>(null);

  const submit = async (secret: string) => {
    const code = codeOf(secret);
    try {
      const token = code ? (await signIn(code)).token : secret;
      setNode(await client(token).node());
      saveToken(token);
      setToken(token);
      setProblem(null);
    } catch (error) {
      setProblem(error instanceof ApiError && error.status === 401 && !code ? explain(new ApiError(401, "bad_token", "")) : explain(error));
    }
  };

  useEffect(() => {
    const code = codeOf(location.hash);
    if (code) {
      history.replaceState(null, "", "/#/");
      void submit(`#signin=${code}`);
    } else if (token) {
      client(token)
        .node()
        .then(setNode, (error: unknown) => {
          if (error instanceof ApiError && error.status === 401) {
            saveToken(null);
            setToken(null);
          }
          setProblem(explain(error));
        });
    }
  }, []);

  if (!token || !node) {
    return <SignIn problem={problem} onSubmit={(secret) => void submit(secret)} />;
  }
  const signOut = () => {
    saveToken(null);
    setToken(null);
    setNode(null);
  };
  return <App token={token} initialNode={node} onSignOut={signOut} />;
}

interface Route {
  group: string | null;
  tab: Tab;
  nodePanel: boolean;
}

function parseRoute(hash: string): Route {
  const [kind, name, tab] = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const tabs: Tab[] = ["chat", "members", "proposals", "health"];
  return {
    group: kind === "g" && name ? name : null,
    tab: tabs.includes(tab as Tab) ? (tab as Tab) : "chat",
    nodePanel: kind === "node",
  };
}

function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parseRoute(hash);
}

interface Notice {
  id: number;
  text: string;
  kind: "error" | "info";
}

function App({ token, initialNode, onSignOut }: { token: string; initialNode: NodeInfo; onSignOut: () => void }) {
  const [link, setLink] = useState<LinkState>("connecting");
  const [node, setNode] = useState(initialNode);
  const [notices, setNotices] = useState<Notice[]>([]);
  const api = useMemo(() => client(token), [token]);
  const hub = useMemo(() => new EventHub(api.eventsUrl(), setLink), [api]);
  useEffect(() => () => hub.close(), [hub]);
  const session: Session = useMemo(
    () => ({
      api,
      node,
      hub,
      notify: (text, kind = "info") => {
        const id = Date.now() + Math.random();
        setNotices((list) => [...list.slice(-3), { id, text, kind }]);
        window.setTimeout(() => setNotices((list) => list.filter((n) => n.id !== id)), kind === "error" ? 12000 : 6000);
      },
    }),
    [api, node, hub],
  );
  return (
    <SessionContext.Provider value={session}>
      <Shell link={link} onNode={setNode} onSignOut={onSignOut} />
      <div class="notices" aria-live="polite">
        {notices.map((n) => (
          <p key={n.id} class={`notice ${n.kind}`} role={n.kind === "error" ? "alert" : "status"}>
            {n.text}
          </p>
        ))}
      </div>
    </SessionContext.Provider>
  );
}

/** Where this node stands in a group, in a few words for the list. */
function standing(g: GroupSummary): string {
  switch (g.state) {
    case "joining":
      return "asking to join…";
    case "refused":
      return "request refused";
    case "removed":
      return g.removal?.reason.kind === "left" ? "left · history only" : "removed · history only";
    case "member":
      return `epoch ${g.epoch ?? "?"} · ${g.members ?? "?"} ${g.members === 1 ? "member" : "members"}${g.is_steward ? " · steward" : ""}`;
  }
}

function Shell({
  link,
  onNode,
  onSignOut,
}: {
  link: LinkState;
  onNode: (node: NodeInfo) => void;
  onSignOut: () => void;
}) {
  const { api, node, notify } = useSession();
  const route = useRoute();
  const groups = useLoad("groups", api.groups, (e) =>
    ["group_created", "joined", "removed", "epoch_changed", "join_request_sent", "join_refused"].includes(e.type),
  );
  useLoad(
    "node",
    () => api.node().then(onNode),
    (e) => e.type === "peer_connected" || e.type === "peer_disconnected",
  );
  const listed = groups.data ?? [];
  // Events name a group by its identifier; people read the name this node knows it by. A group
  // just joined may not be listed yet: then the node is asked.
  const nameOf = async (id: string): Promise<string> => {
    const known = listed.find((g) => g.id === id) ?? (await api.groups().catch(() => [])).find((g) => g.id === id);
    return known?.name ?? id;
  };
  useEvents((event) => {
    if (event.type === "removed") {
      void nameOf(event.group).then((name) =>
        notify(
          event.reason.kind === "left"
            ? `You are no longer a member of ${name}: you left in epoch ${event.epoch}.`
            : `You are no longer a member of ${name}: you were removed in epoch ${event.epoch}.`,
        ),
      );
    } else if (event.type === "joined") {
      void nameOf(event.group).then((name) => notify(`You were admitted to ${name} at epoch ${event.epoch}.`));
    } else if (event.type === "join_refused") {
      void nameOf(event.group).then((name) =>
        notify(`The steward refused your request to join ${name}: ${event.reason}`, "error"),
      );
    }
  });
  const selected = route.group;
  // A route may name a group (`#/g/lab`); the page goes by its identifier.
  const summary = listed.find((g) => g.id === selected) ?? listed.find((g) => g.name === selected);
  useEffect(() => {
    if (summary && summary.id !== selected) {
      location.replace(`#/g/${encodeURIComponent(summary.id)}/${route.tab}`);
    }
  }, [summary?.id, selected]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <p class="brand">
          <a href="#/">demls</a>
        </p>
        <p class="who">
          <a href="#/node" aria-current={route.nodePanel ? "page" : undefined}>
            This node
          </a>{" "}
          <span class={`link ${link}`}>
            {link === "live" ? "live" : link === "down" ? "offline" : "connecting"} · {node.peers.length}{" "}
            {node.peers.length === 1 ? "peer" : "peers"}
          </span>
        </p>
      </header>
      {link === "down" && (
        <p class="banner" role="alert">
          Lost the connection to the node at {location.host}. Is <code>demls node</code> still running? Retrying…
        </p>
      )}
      <div class={selected || route.nodePanel ? "layout picked" : "layout"}>
        <nav aria-label="Groups" class="side">
          <h2>Groups</h2>
          {groups.error && <p class="notice error">{groups.error}</p>}
          <ul class="groups">
            {listed.map((g) => (
              <li key={g.id}>
                <a href={`#/g/${encodeURIComponent(g.id)}`} aria-current={g.id === selected ? "page" : undefined}>
                  <span class="name">{g.name}</span>
                  <span class="meta">{standing(g)}</span>
                </a>
              </li>
            ))}
          </ul>
          {groups.data && listed.length === 0 && <p class="hint">No groups yet: create one or ask to join one.</p>}
          <GroupForms onDone={groups.reload} />
        </nav>
        <main id="main" tabIndex={-1}>
          <a href="#/" class="back">
            ← All groups
          </a>
          {route.nodePanel ? (
            <NodePanel onNode={onNode} onSignOut={onSignOut} />
          ) : selected && (!summary || summary.id === selected) ? (
            <GroupPage
              key={selected}
              group={selected}
              name={summary?.name ?? selected}
              tab={route.tab}
              summary={summary}
              loaded={groups.data !== null}
            />
          ) : selected ? (
            <p aria-busy="true">Loading…</p>
          ) : (
            <section class="welcome">
              <h1>Welcome</h1>
              <p>
                Pick a group on the left, create one, or join one with the ticket a member gave you. Give others
                your node's address from <a href="#/node">This node</a> so they can invite you and connect to
                you.
              </p>
            </section>
          )}
        </main>
      </div>
    </>
  );
}
