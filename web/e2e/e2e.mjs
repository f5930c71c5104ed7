// The web client end to end: two `demls node` processes on loopback, one browser page each.
// Alice creates a group, Bob asks to join from his page and is admitted, a third node (Carol,
// driven over the HTTP API) asks to join and Bob votes YES on his page while Alice watches the
// tally; both see Carol appear, chat both ways live, reload and see the history, and Bob's
// page tells him when his node is gone and catches up when it is back; Bob leaves. At last
// Alice creates a group gated on a balance of 1 ETH that Bob (0 ETH) is refused from: his page
// says who refused him and why, and offers to ask again.
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

  // Alice creates "lab"; Bob asks to join and is admitted.
  await a.getByText("New group").click();
  await a.getByLabel("Name", { exact: true }).fill("lab");
  await a.getByLabel("Votes stay open for (seconds)").fill("300");
  await a.getByRole("button", { name: "Create" }).click();
  await see(a, "epoch 0 · 1 member", "main");
  await b.getByText("Join a group").click();
  await b.getByLabel("Group name").fill("lab");
  await b.getByRole("button", { name: "Ask to join" }).click();
  await see(b, "Asking to join", "main");
  await shot(b, "joining");
  await see(b, "epoch 1 · 2 members", "main");
  log("bob was admitted");
  await shot(a, "groups");

  // Bob votes by hand; Carol asks to join; Alice watches the live tally while Bob votes YES.
  await b.getByRole("link", { name: "This node" }).click();
  await b.getByLabel(/By hand/).check();
  await see(b, "You vote by hand");
  const carol = await startNode("carol", { apiPort: cApi, p2pPort: cP2p, peers: [alice.listen] });
  await api(carol, "POST", "/api/groups/lab/join", {});
  await openGroup(a, "lab");
  await tab(a, "lab", "Proposals");
  const short = `${carol.address.slice(0, 6)}…${carol.address.slice(-4)}`;
  await see(a, `Admit ${short}`, "main");
  await see(a, "YES 1 · NO 0 · 2 voters", "main");
  await shot(a, "proposals");
  await openGroup(b, "lab");
  await tab(b, "lab", "Proposals");
  await see(b, `Admit ${short}`, "main");
  await shot(b, "proposals-vote-phone");
  await b.getByRole("button", { name: "Vote YES" }).click();
  await a.locator("article.approved", { hasText: `Admit ${short}` }).waitFor({ timeout: WAIT });
  log("carol's join was approved by bob's vote");
  await shot(a, "proposals-decided");

  // Both see Carol appear.
  await tab(a, "lab", "Members");
  await see(a, "3 members in epoch 2", "main");
  await tab(b, "lab", "Members");
  await see(b, "3 members in epoch 2", "main");
  await see(b, short, "main");
  await shot(a, "members");

  // Chat both ways, live.
  await tab(a, "lab", "Chat");
  await tab(b, "lab", "Chat");
  await a.getByLabel("Message to lab").fill("Hello Bob, welcome to the lab.");
  await a.getByRole("button", { name: "Send" }).click();
  await see(b, "Hello Bob, welcome to the lab.", ".messages");
  await b.getByLabel("Message to lab").fill("Thanks Alice! Carol is here too.");
  await b.getByRole("button", { name: "Send" }).click();
  await see(a, "Thanks Alice! Carol is here too.", ".messages");
  await api(carol, "POST", "/api/groups/lab/messages", { text: "Hi both, Carol here (from the command line)." });
  await see(a, "Carol here", ".messages");
  await see(b, "Carol here", ".messages");
  await see(a, "sent", ".messages li.own");
  log("messages crossed both ways, live");
  await shot(a, "chat");
  await shot(b, "chat-phone");

  await tab(a, "lab", "Health");
  await see(a, "epoch steward: commits now", "main");
  await see(a, "Peers connected", "main");
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

  // Bob leaves: his page says so, and keeps the history; Alice's page loses a member.
  b.once("dialog", (dialog) => void dialog.accept());
  await b.getByRole("button", { name: "Leave group" }).click();
  await see(b, "You are no longer a member of lab");
  await see(b, "no longer in this group", "main");
  await see(b, "Hello Bob, welcome to the lab.", ".messages");
  await shot(b, "left-group");
  await tab(a, "lab", "Members");
  await see(a, "2 members in epoch 3", "main");
  log("bob left; his page keeps the history");

  // A steward refuses Bob: his page says who and why, without a member's view, and he may ask again.
  await api(alice, "POST", "/api/groups", { name: "dao", admission: { kind: "min_eth", amount: "1" } });
  const back = b.getByRole("link", { name: "← All groups" });
  if (await back.isVisible()) await back.click();
  await b.getByText("Join a group").click();
  await b.getByLabel("Group name").fill("dao");
  await b.getByRole("button", { name: "Ask to join" }).click();
  await see(b, "Request refused", "main");
  await see(b, "is below the required 1 ETH", "main");
  const aliceShort = `${alice.address.slice(0, 6)}…${alice.address.slice(-4)}`;
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
