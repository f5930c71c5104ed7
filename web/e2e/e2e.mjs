// The web client end to end: two `demls node` processes on loopback, one browser page each.
// Alice creates a group and invites Bob from her page; Bob joins with the ticket on his page and
// is admitted (the invitation is Alice's YES). A third node (Carol, driven over the HTTP API) asks
// to join as a stranger: nobody's silence admits her; Alice approves on her page (one YES of two
// is not enough) and Bob, seeing who asks and who approved, approves on his. All three chat (a
// long history scrolls under a header and a composer that stay in place), with joins in the
// timeline; pages reload, and Bob's page tells him when his node is gone and catches up when it
// is back. Alice proposes removing Bob and Carol agrees: Bob's page says he was removed, by which
// vote, keeps the history, and lets him ask again; Alice and Carol approve him; then he leaves. At
// last Alice creates a group gated on a balance of 1 ETH that Bob (0 ETH) is refused from: his
// page says who refused him and why, and offers to ask again.
//
// DEMLS_BIN: the demls binary (required). DEMLS_ETH_RPC: an Ethereum JSON-RPC endpoint for
// Alice's --eth-rpc, e.g. anvil (required). DEMLS_SCREENSHOTS: where to save a screenshot of each
// view (default: a temporary directory). CHROMIUM: the browser (default /usr/bin/chromium).

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.DEMLS_BIN;
if (!BIN) throw new Error("set DEMLS_BIN to the demls binary");
const ETH_RPC = process.env.DEMLS_ETH_RPC;
if (!ETH_RPC) throw new Error("set DEMLS_ETH_RPC to an Ethereum JSON-RPC endpoint (e.g. anvil's)");
const work = mkdtempSync(join(tmpdir(), "demls-e2e-"));
const shots = process.env.DEMLS_SCREENSHOTS ?? join(work, "screenshots");
mkdirSync(shots, { recursive: true });
const started = Date.now();
const log = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${text}`);

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const nodes = [];

/** Starts (or restarts) a node; resolves with what its banner says. */
async function startNode(name, { apiPort, p2pPort, peers = [], options = [] }) {
  const dir = join(work, name);
  const args = ["node", "--data-dir", dir, "--listen", `/ip4/127.0.0.1/tcp/${p2pPort}`, "--api", `127.0.0.1:${apiPort}`];
  for (const peer of peers) args.push("--peer", peer);
  args.push(...options);
  const child = spawn(BIN, args, {
    env: { ...process.env, DEMLS_PASSPHRASE: `${name} passphrase`, RUST_LOG: undefined },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const node = { name, dir, child, apiPort, p2pPort, peers, stderr: "" };
  child.stderr.on("data", (chunk) => {
    node.stderr = (node.stderr + chunk).slice(-20000);
  });
  nodes.push(node);
  const banner = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${out}\n${node.stderr}`)), 30000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (!out.includes("data dir:")) return;
      clearTimeout(timer);
      const field = (key) => out.match(new RegExp(`^${key}:\\s+(.*)$`, "m"))?.[1];
      resolve({ address: field("address"), listen: field("listening"), api: field("api"), signin: field("sign in") });
    });
    child.on("exit", (code) => reject(new Error(`${name} exited (${code}):\n${node.stderr}`)));
  });
  Object.assign(node, banner, { token: readFileSync(join(dir, "api-token"), "utf8").trim() });
  log(`${name} is up: ${node.address} at ${node.api}`);
  return node;
}

async function stopNode(node) {
  const exited = new Promise((resolve) => node.child.once("exit", resolve));
  node.child.kill("SIGINT");
  await exited;
}

/** Calls a node's API with its token. */
async function api(node, method, path, body) {
  const response = await fetch(`${node.api}${path}`, {
    method,
    headers: { Authorization: `Bearer ${node.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const WAIT = 60000;
/** Waits until `text` shows on `page` (inside `within`, if given). */
const see = (page, text, within = "body", timeout = WAIT) =>
  page.locator(within).getByText(text, { exact: false }).first().waitFor({ timeout });
const shot = async (page, name) => {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
  log(`screenshot ${name}.png`);
};
/** Opens a group from the list (on a phone, the list is one tap back). */
async function openGroup(page, name) {
  const back = page.getByRole("link", { name: "← All groups" });
  if (await back.isVisible()) await back.click();
  await page.locator(".groups").getByText(name).click();
}
const short = (address) => `${address.slice(0, 6)}…${address.slice(-4)}`;
/** Calls `probe` until it returns something, for up to WAIT. */
async function eventually(what, probe) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    try {
      const found = await probe();
      if (found) return found;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
const tab = (page, group, name) => page.locator(`nav[aria-label="${group} views"]`).getByRole("link", { name }).click();

let browser;
let passed = false;
const pages = [];
const pageErrors = [];
try {
  const [aApi, aP2p, bApi, bP2p, cApi, cP2p] = await Promise.all(Array.from({ length: 6 }, freePort));
  const alice = await startNode("alice", { apiPort: aApi, p2pPort: aP2p, options: ["--eth-rpc", ETH_RPC] });
  const bob = await startNode("bob", { apiPort: bApi, p2pPort: bP2p, peers: [alice.listen] });

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const a = await desktop.newPage();
  const b = await phone.newPage();
  pages.push(["alice", a], ["bob", b]);
  for (const [name, page] of pages) page.on("pageerror", (error) => pageErrors.push(`${name}'s page: ${error.message}`));

  // Sign-in: Alice pastes her link into the form; Bob opens his.
  await a.goto(`${alice.api}/`);
  await see(a, "Sign in to your demls node");
  await shot(a, "sign-in");
  await a.getByLabel("Token or sign-in link").fill(alice.signin);
  await a.getByRole("button", { name: "Sign in" }).click();
  await see(a, "Welcome");
  await b.goto(bob.signin);
  await see(b, "Welcome");
  log("both signed in");

  // Alice creates "lab" (by invitation, the default) and invites Bob from her page.
  await a.getByText("New group").click();
  await a.getByLabel("Name", { exact: true }).fill("lab");
  await a.getByLabel("Votes on elections and emergencies stay open for (seconds)").fill("300");
  await a.getByRole("button", { name: "Create" }).click();
  await see(a, "epoch 0 · 1 member", "main");
  await a.getByRole("button", { name: "Invite", exact: true }).click();
  await see(a, "By invitation and the members' vote", ".invite");
  await a.getByLabel("Their address").fill(bob.address);
  await a.getByRole("button", { name: "Create invitation" }).click();
  const ticketBox = a.locator("textarea#invite-ticket");
  await ticketBox.waitFor({ timeout: WAIT });
  const ticket = await ticketBox.inputValue();
  if (!ticket.startsWith("demls:")) throw new Error(`not a ticket: ${ticket}`);
  await shot(a, "invite");
  await a.getByRole("button", { name: "Close", exact: true }).click();

  // Bob joins with the ticket on his page and is admitted: the invitation is Alice's YES.
  await b.getByText("Join with a ticket").click();
  await b.getByLabel("Ticket", { exact: true }).fill(ticket);
  await b.getByRole("button", { name: "Join", exact: true }).click();
  // The join's steps show only until the steward commits, which may be quicker than a frame
  // (the joiner fetches the steward's announcement from Alice's archive at once): look every
  // frame, and take the screenshot of the steps only if they were still there.
  const asking = await b.waitForFunction(
    () => {
      const text = document.querySelector("main")?.textContent ?? "";
      return text.includes("Asking to join") ? "asking" : text.includes("2 members") ? "admitted" : null;
    },
    null,
    { polling: "raf", timeout: WAIT },
  );
  if ((await asking.jsonValue()) === "asking") await shot(b, "joining");
  await see(b, "Asked to join lab with the invitation");
  await see(b, "epoch 1 · 2 members", "main");
  log("bob joined with alice's invitation");
  await shot(a, "groups");

  // Bob votes by hand. Carol asks to join as a stranger: Alice sees her request and approves it,
  // which is one YES of two voters, not yet a majority.
  await b.getByRole("link", { name: "This node" }).click();
  await b.getByLabel(/By hand/).check();
  await see(b, "You vote by hand");
  const carol = await startNode("carol", { apiPort: cApi, p2pPort: cP2p, peers: [alice.listen] });
  // "lab" is invite-only: its identifier on the network is random and only members know it by
  // name. Carol learns the identifier from Alice (as a stranger would, out of band).
  const lab = (await api(alice, "GET", "/api/groups")).find((g) => g.name === "lab")?.id;
  if (!lab || lab === "lab") throw new Error(`lab's identifier is not random: ${lab}`);
  await api(carol, "POST", `/api/groups/${lab}/join`, {});
  const carolShort = short(carol.address);
  const aliceShort = short(alice.address);
  const bobShort = short(bob.address);
  await see(a, "1 person asks to join", "main");
  await tab(a, "lab", "Members");
  await see(a, carolShort, ".requests");
  await see(a, "Not invited by anyone", ".requests");
  await a.locator(".requests").getByRole("button", { name: "Approve" }).click();
  await see(a, "You approved this request", ".requests");
  await tab(a, "lab", "Proposals");
  await see(a, `Admit ${carolShort}`, "main");
  await see(a, "YES 1 · NO 0 · 2 voters", "main");
  await shot(a, "proposals");

  // Bob sees on his phone who asks, since when and who approved, and approves: she is in.
  await openGroup(b, "lab");
  await see(b, "1 person asks to join", "main");
  await tab(b, "lab", "Members");
  await see(b, carolShort, ".requests");
  await see(b, "Approved by", ".requests");
  await see(b, aliceShort, ".requests");
  await see(b, "YES 1 · NO 0 · 2 voters", ".requests");
  await shot(b, "pending-request");
  await tab(b, "lab", "Proposals");
  await see(b, `Admit ${carolShort}`, "main");
  await shot(b, "proposals-vote-phone");
  await tab(b, "lab", "Members");
  await b.locator(".requests").getByRole("button", { name: "Approve" }).click();
  await a.locator("article.approved", { hasText: `Admit ${carolShort}` }).waitFor({ timeout: WAIT });
  log("carol's join was approved by alice's and bob's YES");
  await shot(a, "proposals-decided");

  // Both see Carol appear.
  await tab(a, "lab", "Members");
  await see(a, "3 members in epoch 2", "main");
  await see(b, "3 members in epoch 2", "main");
  await see(b, carolShort, "main");
  await see(b, "Nobody is waiting", ".requests");
  await shot(a, "members");

  // Alice names herself; Bob's page shows the name next to her address.
  await a.getByLabel("Your name in lab").fill("Alice");
  await a.getByRole("button", { name: "Set name" }).click();
  await see(b, "Alice", ".members table .display-name");
  log("alice's display name reached bob");

  // Chat both ways, live, with the joins in the timeline.
  await tab(a, "lab", "Chat");
  await tab(b, "lab", "Chat");
  await see(a, "You invited", ".messages li.event");
  await see(a, `${carolShort} joined (epoch 2)`, ".messages li.event");
  await see(b, `${carolShort} joined (epoch 2)`, ".messages li.event");
  await a.getByLabel("Message to lab").fill("Hello Bob, welcome to the lab.");
  await a.getByRole("button", { name: "Send" }).click();
  await see(b, "Hello Bob, welcome to the lab.", ".messages");
  await see(b, "Alice", ".messages li.incoming .display-name");
  await b.getByLabel("Message to lab").fill("Thanks Alice! Carol is here too.");
  await b.getByRole("button", { name: "Send" }).click();
  await see(a, "Thanks Alice! Carol is here too.", ".messages");
  await api(carol, "POST", `/api/groups/${lab}/messages`, { text: "Hi both, Carol here (from the command line)." });
  await see(a, "Carol here", ".messages");
  await see(b, "Carol here", ".messages");
  await see(a, /^(sent|delivered)$/, ".messages li.own .delivery");
  log("messages crossed both ways, live");
  await shot(a, "chat");
  await shot(b, "chat-phone");

  // A long history scrolls on its own: the group's header and the composer stay on screen.
  const LINES = 30;
  for (let i = 1; i <= LINES; i++) {
    await api(carol, "POST", `/api/groups/${lab}/messages`, {
      text: `Line ${i} of a long talk: the history scrolls while the header and the box to write in stay.`,
    });
  }
  await see(b, `Line ${LINES} of a long talk`, ".messages");
  await see(a, `Line ${LINES} of a long talk`, ".messages");
  await b.waitForTimeout(300);
  const layout = await b.evaluate(() => {
    const box = document.querySelector(".messages");
    const inView = (selector) => {
      const r = document.querySelector(selector).getBoundingClientRect();
      return r.top >= 0 && r.bottom <= window.innerHeight;
    };
    return {
      scrolls: box.scrollHeight > box.clientHeight,
      atNewest: box.scrollHeight - box.scrollTop - box.clientHeight < 80,
      title: inView("#group-title"),
      tabs: inView(".tabs"),
      compose: inView(".compose"),
      page: document.documentElement.scrollHeight <= window.innerHeight + 1,
    };
  });
  for (const [what, ok] of Object.entries(layout)) {
    if (!ok) throw new Error(`long chat on a phone: ${what} fails (${JSON.stringify(layout)})`);
  }
  await shot(b, "chat-long-phone");
  await shot(a, "chat-long");
  log("a long history scrolls under a fixed header and composer");

  await tab(a, "lab", "Health");
  await see(a, "epoch steward: commits now", "main");
  await see(a, "Peers connected", "main");
  await see(a, `Identifier on the network: ${lab}`, "main");
  await shot(a, "health");

  // History survives a reload.
  await b.reload();
  await see(b, "Hello Bob, welcome to the lab.", ".messages");
  await see(b, "Carol here", ".messages");
  log("history survived a reload");

  // Bob's node stops: his page says so in words; it comes back with its history.
  await stopNode(bob);
  await see(b, "Lost the connection to the node");
  await b.getByLabel("Message to lab").fill("Is anyone there?");
  await b.getByRole("button", { name: "Send" }).click();
  await see(b, "The node does not answer");
  await shot(b, "error-node-unreachable");
  await startNode("bob", { apiPort: bApi, p2pPort: bP2p, peers: [alice.listen] });
  await b.locator(".banner").waitFor({ state: "detached", timeout: WAIT });
  await b.reload();
  await see(b, "Hello Bob, welcome to the lab.", ".messages");
  await see(b, "Carol here", ".messages");
  log("bob's node restarted: the page reconnected and the history is there");

  // Alice proposes removing Bob; Carol agrees over the API (two YES of three): Bob's page says he
  // was removed, by which vote, and keeps the history.
  await tab(a, "lab", "Members");
  a.once("dialog", (dialog) => void dialog.accept());
  await a.locator("tr", { hasText: bobShort }).getByRole("button", { name: "Propose removal" }).click();
  const removal = await eventually("the removal proposal on carol's node", async () =>
    (await api(carol, "GET", `/api/groups/${lab}/proposals`)).find(
      (p) => p.state === "open" && p.change.kind === "remove" && p.change.member.toLowerCase() === bob.address.toLowerCase(),
    ),
  );
  await api(carol, "POST", `/api/groups/${lab}/proposals/${removal.id}/votes`, { yes: true });
  await see(b, "You were removed from this group", "main");
  await see(b, "The members voted you out", "main");
  await see(b, `by ${aliceShort}, YES 2`, "main");
  await see(b, "Hello Bob, welcome to the lab.", ".messages");
  await see(b, "removed · history only", "main");
  await see(b, "The members voted you out", ".messages li.event");
  await b.waitForFunction(() => document.querySelectorAll(".notices .notice").length === 0, null, { timeout: WAIT });
  await shot(b, "removed-member");
  await see(a, "2 members in epoch 3", "main");
  await tab(a, "lab", "Chat");
  await see(a, `${bobShort} was removed by vote (epoch 3)`, ".messages li.event");
  log("bob was removed by a majority; his page says why and keeps the history");

  // Bob asks to join again; Alice approves on her page and Carol over the API.
  await b.getByRole("button", { name: "Ask to join again" }).click();
  await see(b, "Asking to join", "main");
  await tab(a, "lab", "Members");
  await see(a, bobShort, ".requests");
  await a.locator(".requests").getByRole("button", { name: "Approve" }).click();
  await eventually("carol's approval of bob", () =>
    api(carol, "POST", `/api/groups/${lab}/requests/${bob.address}`, { approve: true }),
  );
  await see(b, "epoch 4 · 3 members", "main");
  log("bob asked again and the group admitted him");

  // Bob leaves: his page says so, and keeps the history; Alice's page loses a member.
  await openGroup(b, "lab");
  b.once("dialog", (dialog) => void dialog.accept());
  await b.getByRole("button", { name: "Leave group" }).click();
  await see(b, "You are no longer a member of lab");
  await see(b, "You left this group", "main");
  await see(b, "left · history only", "main");
  await shot(b, "left-group");
  await tab(a, "lab", "Members");
  await see(a, "2 members in epoch 5", "main");
  log("bob left; his page keeps the history");

  // Bob asks to come back; this time Alice denies on her page and Carol over the API: refused.
  await openGroup(b, "lab");
  await b.getByRole("button", { name: "Ask to join again" }).click();
  await tab(a, "lab", "Members");
  await see(a, bobShort, ".requests");
  await a.locator(".requests").getByRole("button", { name: "Deny" }).click();
  await see(a, "You denied this request", ".requests");
  await eventually("carol's denial of bob", () =>
    api(carol, "POST", `/api/groups/${lab}/requests/${bob.address}`, { approve: false }),
  );
  await see(b, "Request refused", "main");
  await see(b, "did not agree", "main");
  await see(a, "Nobody is waiting", ".requests");
  await see(a, "2 members in epoch 5", "main");
  log("bob asked to come back; alice (her Deny button) and carol denied him, and he was told");

  // A steward refuses Bob: his page says who and why, without a member's view, and he may ask again.
  await api(alice, "POST", "/api/groups", { name: "dao", admission: { kind: "min_eth", amount: "1" } });
  const back = b.getByRole("link", { name: "← All groups" });
  if (await back.isVisible()) await back.click();
  await b.getByText("Ask to join by name").click();
  await b.getByLabel("Group name").fill("dao");
  await b.getByRole("button", { name: "Ask to join" }).click();
  await see(b, "Request refused", "main");
  await see(b, "is below the required 1 ETH", "main");
  await see(b, aliceShort, "main");
  if ((await b.locator('nav[aria-label="dao views"]').count()) !== 0) throw new Error("a refused group shows a member's tabs");
  if ((await b.locator("body").innerText()).includes("null")) throw new Error("the page shows a null");
  await shot(b, "join-refused");
  await b.getByRole("link", { name: "← All groups" }).click();
  await see(b, "request refused", ".groups");
  await openGroup(b, "dao");
  await b.getByRole("button", { name: "Ask again" }).click();
  await see(b, "Asked to join dao again");
  log("bob was refused from the gated group, told why, and asked again");

  if (pageErrors.length > 0) throw new Error(`script errors:\n${pageErrors.join("\n")}`);
  passed = true;
  log(`passed; screenshots in ${shots}`);
} catch (error) {
  for (const [name, page] of pages) {
    await page.screenshot({ path: join(work, `failure-${name}.png`) }).catch(() => {});
  }
  for (const node of nodes) console.error(`--- ${node.name} log (tail) ---\n${node.stderr.slice(-4000)}`);
  console.error(`failure screenshots in ${work}`);
  throw error;
} finally {
  await browser?.close();
  for (const node of nodes) if (node.child.exitCode === null) node.child.kill("SIGKILL");
  if (passed) rmSync(work, { recursive: true, force: true });
}
