#!/usr/bin/env python3
"""The testbed of many hosts (issue 16): `demls node` processes in Linux network namespaces.

Run it through scripts/testbed.sh, which checks that namespaces can be made and builds the
binary. This driver makes N namespaces joined by one bridge (each with its own 10.77.x.y
address; the nodes listen on it and nothing else; their control APIs are on each namespace's
own loopback), adds random loss per link with nftables (and latency and jitter with
`tc netem` where the kernel has it), spreads MEMBERS nodes over the namespaces and runs the
journeys: formation of one multi-steward group through invitations, chat, a partition of a
third of the namespaces against the rest that commits on both sides and heals, and the epoch
steward killed with SIGKILL while a change it is about to commit waits. It prints a table and,
last, one JSON line with the figures; it exits 1 when a journey breaks its contract.

The driver reaches each node's API from a thread that entered the node's namespace
(setns(2) moves only the calling thread), so no address outside the namespaces is used.
"""

import argparse
import concurrent.futures
import ctypes
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CLONE_NEWNET = 0x40000000
GROUP = "tb"
PASSPHRASE = "testbed passphrase"
LISTEN_PORT = 7000  # + the node's slot in its namespace
API_PORT = 8000  # + the node's slot in its namespace


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


def percentiles(values):
    if not values:
        return None
    ordered = sorted(values)

    def at(p):
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {"p50": at(50), "p90": at(90), "p99": at(99), "max": ordered[-1], "n": len(ordered)}


class Broken(Exception):
    """A journey broke its contract."""


class Net:
    """The namespaces, their bridge, their links' loss and (if the kernel can) latency."""

    def __init__(self, count, tag):
        self.count = count
        self.tag = tag
        self.names = [f"dtb{tag}n{i}" for i in range(count)]
        self.bridge = f"dtb{tag}br"
        self.made = []
        self.netem = False

    def ip_of(self, i):
        return f"10.77.{i // 250}.{i % 250 + 1}"

    @staticmethod
    def mac_of(i):
        return f"02:77:00:00:{i // 256:02x}:{i % 256:02x}"

    def create(self, loss_pct, delay_ms, jitter_ms):
        run("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        run("ip", "link", "set", self.bridge, "up")
        for i, ns in enumerate(self.names):
            run("ip", "netns", "add", ns)
            self.made.append(("netns", ns))
            host_side = f"dtb{self.tag}v{i}"
            run("ip", "link", "add", host_side, "type", "veth", "peer", "name", "eth0",
                "address", self.mac_of(i), "netns", ns)
            # Deleted by name at the end: a namespace outlives `ip netns del` (and takes its
            # veth pair with it) only once the kernel has let go of it, which can take minutes.
            self.made.append(("link", host_side))
            run("ip", "link", "set", host_side, "master", self.bridge, "up")
            run("ip", "-n", ns, "addr", "add", f"{self.ip_of(i)}/16", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            # Loss on each namespace's way out: a packet crossing a link is dropped with
            # probability loss_pct once. `cut` holds the addresses this namespace cannot reach
            # (a partition); both directions are dropped.
            basis_points = int(round(loss_pct * 100))
            rules = f"""
table inet dtb {{
    set cut {{ type ipv4_addr; }}
    chain out {{
        type filter hook output priority 0; policy accept;
        oifname "eth0" ip daddr @cut drop
        {f'oifname "eth0" numgen random mod 10000 < {basis_points} drop' if basis_points else ''}
    }}
    chain in {{
        type filter hook input priority 0; policy accept;
        iifname "eth0" ip saddr @cut drop
    }}
}}
"""
            subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True,
                           check=True, capture_output=True)
        # Every namespace knows every other's MAC address for good: ARP entries of all
        # namespaces share one kernel table (gc_thresh3, 1024 by default), which 50 namespaces
        # of 49 neighbours each overflow ("neighbor table overflow"), and the last nodes then
        # reach nobody. Permanent entries are not counted against it.
        for i, ns in enumerate(self.names):
            batch = "".join(f"neigh replace {self.ip_of(j)} lladdr {self.mac_of(j)} dev eth0 "
                            "nud permanent\n" for j in range(self.count) if j != i)
            subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True,
                           capture_output=True)
        if delay_ms or jitter_ms:
            probe = run("ip", "netns", "exec", self.names[0], "tc", "qdisc", "add", "dev", "eth0",
                        "root", "netem", "delay", "1ms", check=False)
            if probe.returncode == 0:
                run("ip", "netns", "exec", self.names[0], "tc", "qdisc", "del", "dev", "eth0", "root")
                self.netem = True
                for ns in self.names:
                    run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root",
                        "netem", "delay", f"{delay_ms}ms", f"{jitter_ms}ms")
            else:
                log("LATENCY IS NOT EMULATED: this kernel has no netem qdisc "
                    f"({probe.stderr.strip()}); links have loss only")

    def cut(self, side_a, side_b):
        """Drops every packet between the namespaces of side_a and those of side_b."""
        for mine, theirs in ((side_a, side_b), (side_b, side_a)):
            addresses = ", ".join(self.ip_of(i) for i in theirs)
            for i in mine:
                run("ip", "netns", "exec", self.names[i], "nft", "add", "element", "inet", "dtb",
                    "cut", f"{{ {addresses} }}")

    def heal(self):
        for ns in self.names:
            run("ip", "netns", "exec", ns, "nft", "flush", "set", "inet", "dtb", "cut")

    def counters(self):
        """Bytes through each namespace's link (its eth0) and its loopback: {i: (link, lo)}."""
        out = {}
        for i, ns in enumerate(self.names):
            base = f"/sys/class/net/dtb{self.tag}v{i}/statistics"
            with open(f"{base}/rx_bytes") as f:
                rx = int(f.read())
            with open(f"{base}/tx_bytes") as f:
                tx = int(f.read())
            lo = json.loads(run("ip", "-n", ns, "-s", "-j", "link", "show", "lo").stdout)
            out[i] = (rx + tx, lo[0]["stats64"]["tx"]["bytes"])
        return out

    def destroy(self):
        for kind, name in reversed(self.made):
            if kind == "netns":
                run("ip", "netns", "del", name, check=False)
            else:
                run("ip", "link", "del", name, check=False)
        self.made = []


class Node:
    def __init__(self, index, ns_index, slot, net, root):
        self.index = index
        self.ns_index = ns_index
        self.ns = net.names[ns_index]
        self.ip = net.ip_of(ns_index)
        self.slot = slot
        self.dir = os.path.join(root, f"m{index:03d}")
        self.proc = None
        self.address = None
        self.multiaddr = None
        self.token = None
        self.peer_id = None
        self.alive = False

    def start(self, binary, peers, target_peers):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        args = ["ip", "netns", "exec", self.ns, binary, "node", "--data-dir", self.dir,
                "--listen", f"/ip4/{self.ip}/tcp/{LISTEN_PORT + self.slot}",
                "--api", f"127.0.0.1:{API_PORT + self.slot}", "--log", "info",
                "--target-peers", str(target_peers)]
        for peer in peers:
            args += ["--peer", peer]
        env = dict(os.environ, DEMLS_PASSPHRASE=PASSPHRASE)
        env.pop("DEMLS_ETH_RPC", None)
        # `ip netns exec` execs the node: the pid is the node's.
        self.proc = subprocess.Popen(args, env=env, stdout=open(self.dir + ".out", "w"),
                                     stderr=open(self.dir + ".log", "w"),
                                     start_new_session=True)
        self.alive = True

    def wait_banner(self, limit=60):
        deadline = time.time() + limit
        while time.time() < deadline:
            with open(self.dir + ".out") as f:
                text = f.read()
            if "data dir:" in text:
                for line in text.splitlines():
                    key, _, value = line.partition(":")
                    if key == "address":
                        self.address = value.strip().lower()
                    elif key == "listening" and f"/ip4/{self.ip}/" in value:
                        self.multiaddr = value.strip()
                with open(os.path.join(self.dir, "api-token")) as f:
                    self.token = f.read().strip()
                return
            if self.proc.poll() is not None:
                raise Broken(f"node {self.index} exited at start: {tail(self.dir + '.log')}")
            time.sleep(0.1)
        raise Broken(f"node {self.index} printed no banner in {limit} s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.alive = False


def tail(path, lines=30):
    try:
        with open(path) as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Api:
    """HTTP to the nodes' loopback APIs, from worker threads inside each namespace."""

    def __init__(self, net):
        libc = ctypes.CDLL(None, use_errno=True)

        def enter(ns):
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            os.close(fd)

        self.pools = {
            ns: concurrent.futures.ThreadPoolExecutor(max_workers=3, initializer=enter,
                                                      initargs=(ns,))
            for ns in net.names
        }

    @staticmethod
    def _call(node, method, path, body, timeout):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{API_PORT + node.slot}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {node.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw = error.read()
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            return 0, str(error)
        if path == "/metrics":
            return status, raw.decode()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def submit(self, node, method, path, body=None, timeout=10):
        return self.pools[node.ns].submit(self._call, node, method, path, body, timeout)

    def call(self, node, method, path, body=None, timeout=10):
        return self.submit(node, method, path, body, timeout).result()

    def each(self, nodes, method, path, body=None, timeout=10):
        """The same call on every node at once: [(status, answer)] in the nodes' order."""
        futures = [self.submit(n, method, path, body, timeout) for n in nodes]
        return [f.result() for f in futures]

    def close(self):
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)


class Testbed:
    def __init__(self, args):
        self.args = args
        self.tag = os.getpid() % 100000
        self.root = tempfile.mkdtemp(prefix="demls-testbed-")
        self.net = Net(args.namespaces, self.tag)
        self.nodes = []
        self.api = None
        self.summary = {"namespaces": args.namespaces, "members": args.members,
                        "mode": args.mode, "loss_pct": args.loss, "minority": args.minority}
        self.failures = []

    # ---- views -------------------------------------------------------------------------

    def views(self, nodes):
        """Each node's `GET /api/groups/tb` (None if it is not a member or does not answer)."""
        answers = self.api.each(nodes, "GET", f"/api/groups/{GROUP}")
        return [a if s == 200 and isinstance(a, dict) else None for s, a in answers]

    @staticmethod
    def members_of(view):
        return sorted(m["address"].lower() for m in view["members"])

    def agreed(self, nodes, expect_members=None, settled=True):
        """Whether every node of `nodes` is a member at one epoch and authenticator with the
        same roster (of `expect_members` addresses, if given), nothing open if `settled`."""
        views = self.views(nodes)
        if any(v is None for v in views):
            return False, views
        first = views[0]
        for v in views:
            if (v["epoch"], v["authenticator"]) != (first["epoch"], first["authenticator"]):
                return False, views
            if self.members_of(v) != self.members_of(first):
                return False, views
            if settled and v["health"]["open_proposals"] != 0:
                return False, views
        if expect_members is not None and self.members_of(first) != sorted(expect_members):
            return False, views
        return True, views

    def wait(self, what, limit, check, every=0.5):
        started = time.time()
        deadline = started + limit
        while True:
            result = check()
            if result:
                return time.time() - started
            if time.time() > deadline:
                raise Broken(f"timed out after {limit} s waiting for {what}")
            time.sleep(every)

    def describe(self, nodes):
        views = self.views(nodes)
        rows = []
        for n, v in zip(nodes, views):
            if v is None:
                rows.append(f"  m{n.index:03d} ns{n.ns_index}: not a member")
            else:
                rows.append(f"  m{n.index:03d} ns{n.ns_index}: epoch {v['epoch']} "
                            f"auth {v['authenticator'][:8]} members {len(v['members'])} "
                            f"open {v['health']['open_proposals']} peers {v['health']['peers']}")
        return "\n".join(rows)

    def events(self, node, after=0):
        status, answer = self.api.call(node, "GET", f"/api/events/log?after={after}&limit=10000")
        return answer if status == 200 and isinstance(answer, list) else []

    def committer_of(self, node, epoch):
        for e in self.events(node):
            if e.get("type") == "epoch_changed" and e.get("epoch") == epoch:
                return e.get("committer", "").lower()
        return None

    def by_address(self, address):
        return next(n for n in self.nodes if n.address == address.lower())

    def roster(self, node):
        status, answer = self.api.call(node, "GET", f"/api/groups/{GROUP}/roster")
        if status != 200:
            raise Broken(f"roster of m{node.index:03d}: {status} {answer}")
        return answer

    # ---- set up ------------------------------------------------------------------------

    def start(self):
        a = self.args
        log(f"{a.namespaces} namespaces on bridge {self.net.bridge}, loss {a.loss} % per link")
        self.net.create(a.loss, a.delay, a.jitter)
        self.summary["latency_emulated"] = self.net.netem
        self.summary["delay_ms"] = a.delay if self.net.netem else None
        self.summary["jitter_ms"] = a.jitter if self.net.netem else None
        if not self.net.netem and not (a.delay or a.jitter):
            log("latency is not emulated (no --delay/--jitter given)")
        self.api = Api(self.net)
        slots = {}
        for k in range(a.members):
            ns_index = k % a.namespaces
            slot = slots.get(ns_index, 0)
            slots[ns_index] = slot + 1
            self.nodes.append(Node(k, ns_index, slot, self.net, self.root))
        started = time.time()
        # Two bootstrap nodes; the others dial them and find the rest by peer exchange.
        first, second = self.nodes[0], self.nodes[1]
        first.start(a.binary, [], a.target_peers)
        first.wait_banner()
        second.start(a.binary, [first.multiaddr], a.target_peers)
        second.wait_banner()
        # Each later node dials the first and one other node started before it (not always
        # the second: a partition would then cut most nodes from all their first peers).
        rng = random.Random(a.seed)
        for k, n in enumerate(self.nodes[2:], start=2):
            known = [m for m in self.nodes[1:k] if m.multiaddr]
            n.start(a.binary, [first.multiaddr, rng.choice(known).multiaddr], a.target_peers)
            if k % 8 == 0:
                for m in self.nodes[2:k + 1]:
                    if m.multiaddr is None:
                        m.wait_banner()
        for n in self.nodes[2:]:
            if n.multiaddr is None:
                n.wait_banner()
        for n, (status, info) in zip(self.nodes, self.api.each(self.nodes, "GET", "/api/node")):
            if status != 200:
                raise Broken(f"GET /api/node of m{n.index:03d}: {status} {info}")
            n.peer_id = info["peer_id"]
        self.summary["start_s"] = round(time.time() - started, 1)
        log(f"{a.members} nodes started in {self.summary['start_s']} s")
        self.counters_at_start = self.net.counters()

    def stop(self):
        for n in self.nodes:
            n.kill()
        if self.api:
            self.api.close()
        self.net.destroy()

    # ---- journeys ----------------------------------------------------------------------

    def form(self):
        """Journey 1: one creator invites every other node; they join with their tickets."""
        a = self.args
        creator = self.nodes[0]
        started = time.time()
        body = {"name": GROUP, "mode": a.mode, "sn_min": a.sn_min, "sn_max": a.sn_max}
        status, answer = self.api.call(creator, "POST", "/api/groups", body)
        if not 200 <= status < 300:
            raise Broken(f"create: {status} {answer}")
        tickets = []
        for n in self.nodes[1:]:
            status, answer = self.api.call(creator, "POST", f"/api/groups/{GROUP}/invitations",
                                           {"address": n.address})
            if not 200 <= status < 300:
                raise Broken(f"invite m{n.index:03d}: {status} {answer}")
            tickets.append((n, answer["ticket"]))
        joins = [self.api.submit(n, "POST", "/api/join", {"ticket": t}) for n, t in tickets]
        for (n, _), f in zip(tickets, joins):
            status, answer = f.result()
            if not 200 <= status < 300:
                raise Broken(f"join m{n.index:03d}: {status} {answer}")
        everyone = [n.address for n in self.nodes]
        last_print = [0.0]

        def formed():
            ok, views = self.agreed(self.nodes, everyone)
            if not ok and time.time() - last_print[0] > 10:
                last_print[0] = time.time()
                joined = sum(v is not None for v in views)
                log(f"  formation: {joined} of {len(views)} nodes are members")
            return ok

        try:
            self.wait(f"{a.members} members on one epoch", a.form_limit, formed)
        except Broken:
            self.diagnose_joins()
            raise
        took = time.time() - started
        view = self.views([creator])[0]
        roster = self.roster(creator)
        self.summary["formation"] = {
            "convergence_s": round(took, 1), "epoch": view["epoch"],
            "stewards": len(roster["stewards"])}
        log(f"journey 1: {a.members} members formed in {took:.1f} s (epoch {view['epoch']}, "
            f"{len(roster['stewards'])} stewards)")

    def diagnose_joins(self):
        """Prints how far each node that is not a member got, and its peers."""
        views = self.views(self.nodes)
        missing = [n for n, v in zip(self.nodes, views) if v is None]
        joins = self.api.each(missing, "GET", f"/api/groups/{GROUP}/join")
        infos = self.api.each(missing, "GET", "/api/node")
        names = {n.peer_id: f"m{n.index:03d}" for n in self.nodes}
        for n, (_, join), (_, info) in zip(missing, joins, infos):
            peers = [names.get(p, p[:12]) for p in (info or {}).get("peers", [])]
            log(f"  m{n.index:03d} not a member: join {join}; peers {peers}")
        view = next((v for v in views if v is not None), None)
        if view:
            log(f"  a member's view: epoch {view['epoch']}, {len(view['members'])} members, "
                f"open proposals {view['health']['open_proposals']}, "
                f"stewards {[self.by_address(s).index for s in view['stewards']]}")

    def chat(self, senders, receivers, label, limit):
        """Each sender sends one message; returns delivery latencies (ms) and the time until
        every receiver had every message (s)."""
        started = time.time()
        texts = {}
        futures = []
        for n in senders:
            text = f"{label} from m{n.index:03d}"
            texts[text] = n
            futures.append(self.api.submit(n, "POST", f"/api/groups/{GROUP}/messages",
                                           {"text": text}))
        for n, f in zip(senders, futures):
            status, answer = f.result()
            if not 200 <= status < 300:
                raise Broken(f"send from m{n.index:03d}: {status} {answer}")
        wanted = {(r.index, t) for r in receivers for t, s in texts.items() if s is not r}
        latencies = {}

        def delivered():
            pending = [r for r in receivers
                       if any((r.index, t) not in latencies for t in texts if texts[t] is not r)]
            answers = self.api.each(pending, "GET", f"/api/groups/{GROUP}/messages?limit=100000")
            for r, (status, answer) in zip(pending, answers):
                if status != 200 or not isinstance(answer, list):
                    continue
                for m in answer:
                    if m["text"] in texts and m["direction"] == "incoming":
                        latencies[(r.index, m["text"])] = m["received_at"] - m["sent_at"]
            return wanted <= set(latencies)

        try:
            self.wait(f"{label}: every message at every receiver", limit, delivered)
            complete = True
        except Broken:
            complete = False
        took = time.time() - started
        got = [latencies[k] for k in wanted if k in latencies]
        return {"sent": len(texts), "expected": len(wanted), "delivered": len(got),
                "complete": complete, "all_delivered_s": round(took, 2),
                "latency_ms": percentiles(got)}

    def chat_journey(self):
        a = self.args
        senders = self.nodes if a.chat_senders >= len(self.nodes) else self.nodes[:a.chat_senders]
        result = self.chat(senders, self.nodes, "chat", a.chat_limit)
        self.summary["chat"] = result
        lat = result["latency_ms"] or {}
        log(f"journey 2: {result['delivered']} of {result['expected']} deliveries, latency ms "
            f"p50 {lat.get('p50')} p90 {lat.get('p90')} p99 {lat.get('p99')} max "
            f"{lat.get('max')}; all in {result['all_delivered_s']} s")
        if not result["complete"]:
            raise Broken(f"chat: {result['delivered']} of {result['expected']} delivered")

    def partition_journey(self):
        """Journey 3: a third of the namespaces cut from the rest; each side has a member
        leave (a leave needs no vote); the sides commit if they hold a steward; then heal."""
        a = self.args
        alive = [n for n in self.nodes if n.alive]
        roster = self.roster(alive[0])
        committers = [c.lower() for c in roster["committers"]]
        stewards = [s.lower() for s in roster["stewards"]]
        ns_of = {n.address: n.ns_index for n in self.nodes}
        epoch_steward_ns = ns_of[committers[0]]
        minority_size = max(1, a.namespaces // 3)
        # The minority holds at least one steward if any steward lives outside the epoch
        # steward's namespace, and never the epoch steward: so that each side has someone who
        # may commit (a side without a steward cannot commit, by the protocol's rules).
        # With `--minority plain` it holds no steward if it can: the case where, by the rules,
        # the minority cannot commit.
        steward_ns = {ns_of[s] for s in stewards}
        with_steward = [ns_of[s] for s in stewards if ns_of[s] != epoch_steward_ns]
        without = [i for i in range(a.namespaces - 1, -1, -1) if i not in steward_ns]
        order = (with_steward if a.minority == "steward" else without) + list(
            range(a.namespaces - 1, -1, -1))
        minority = []
        for i in order:
            if i != epoch_steward_ns and i not in minority and len(minority) < minority_size:
                minority.append(i)
        majority = [i for i in range(a.namespaces) if i not in minority]
        side_b = [n for n in alive if n.ns_index in minority]
        side_a = [n for n in alive if n.ns_index in majority]
        epoch = self.views([alive[0]])[0]["epoch"]

        # Who is connected to whom as the links are cut: a node whose every peer is on the
        # other side is cut off from its own side too, until it finds a peer there.
        by_peer_id = {n.peer_id: n for n in self.nodes}
        infos = self.api.each(alive, "GET", "/api/node")
        own_side_peers = {}
        for n, (status, info) in zip(alive, infos):
            peers = info.get("peers", []) if status == 200 and isinstance(info, dict) else []
            mine = minority if n.ns_index in minority else majority
            own_side_peers[n.index] = sum(
                1 for p in peers if p in by_peer_id and by_peer_id[p].ns_index in mine)
        cut_off = {name: [f"m{n.index:03d}" for n in side if own_side_peers[n.index] == 0]
                   for name, side in (("majority", side_a), ("minority", side_b))}

        def plain(side):
            # A plain member with a peer on its own side, if there is one: its leave can reach
            # its side's stewards.
            candidates = [n for n in reversed(side) if n.address not in stewards]
            return next((n for n in candidates if own_side_peers[n.index] > 0), candidates[0])

        leaver_a, leaver_b = plain(side_a), plain(side_b)
        b_stewards = [s for s in stewards if ns_of[s] in minority]
        log(f"journey 3: cutting namespaces {minority} ({len(side_b)} members, "
            f"{len(b_stewards)} stewards) from {len(majority)} namespaces ({len(side_a)} "
            f"members) at epoch {epoch}")
        self.net.cut(majority, minority)
        cut_at = time.time()
        time.sleep(a.settle)
        for leaver in (leaver_a, leaver_b):
            status, answer = self.api.call(leaver, "POST", f"/api/groups/{GROUP}/leave")
            if not 200 <= status < 300:
                raise Broken(f"leave m{leaver.index:03d}: {status} {answer}")
        sides = {}
        for name, side, leaver in (("majority", side_a, leaver_a), ("minority", side_b, leaver_b)):
            rest = [n for n in side if n is not leaver]
            expected = [n.address for n in alive if n is not leaver]
            started = time.time()

            def committed(rest=rest, expected=expected):
                ok, views = self.agreed(rest, expected, settled=False)
                return ok and views[0]["epoch"] > epoch

            try:
                # The sides commit at the same time; the second is measured from the leave.
                self.wait(f"the {name} side commits the leave", a.side_limit, committed)
                view = self.views(rest[:1])[0]
                sides[name] = {
                    "committed": True,
                    "commit_s": round(time.time() - cut_at - a.settle, 1),
                    "epoch": view["epoch"], "authenticator": view["authenticator"][:16],
                    "committer": f"m{self.by_address(self.committer_of(rest[0], epoch + 1) or rest[0].address).index:03d}",
                }
            except Broken:
                sides[name] = {"committed": False, "waited_s": round(time.time() - started, 1)}
                log(f"  the {name} side did not commit in {a.side_limit} s:\n"
                    + self.describe(rest))
            sides[name].update({"cut_off_at_cut": cut_off[name],
                                "leaver_had_own_side_peer": own_side_peers[leaver.index] > 0,
                                "peers_at_end": sorted(
                                    v["health"]["peers"] if v else -1
                                    for v in self.views(side)),
                                "namespaces": len(minority if name == "minority" else majority),
                                "members": len(side), "stewards": len(
                                    b_stewards if name == "minority" else
                                    [s for s in stewards if ns_of[s] in majority])})
            log(f"  {name}: {sides[name]}")
        both = all(s["committed"] for s in sides.values())
        forked = both and sides["majority"]["authenticator"] != sides["minority"]["authenticator"]
        # Heal.
        self.net.heal()
        healed_at = time.time()
        log("  healed; waiting for one epoch and roster everywhere")

        def converged():
            views = self.views(alive)
            members = [(n, v) for n, v in zip(alive, views) if v is not None]
            if not members:
                return False
            first = members[0][1]
            if any((v["epoch"], v["authenticator"], self.members_of(v))
                   != (first["epoch"], first["authenticator"], self.members_of(first))
                   for _, v in members):
                return False
            return sorted(n.address for n, _ in members) == self.members_of(first)

        try:
            took = self.wait("one group after the heal", a.heal_limit, converged)
            view = next(v for v in self.views(alive) if v is not None)
            out = [n for n in (leaver_a, leaver_b) if n.address not in self.members_of(view)]
            heal = {"converged": True, "convergence_s": round(took, 1), "epoch": view["epoch"],
                    "members": len(view["members"]),
                    "left": [f"m{n.index:03d} ({'majority' if n is leaver_a else 'minority'})"
                             for n in out]}
        except Broken:
            heal = {"converged": False, "waited_s": round(time.time() - healed_at, 1)}
            log("  not converged:\n" + self.describe(alive))
        self.summary["partition"] = {"sides": sides, "forked": forked, "heal": heal}
        log(f"journey 3: both sides committed: {both} (forked: {forked}); heal: {heal}")
        if not sides["majority"]["committed"]:
            self.failures.append("partition: the majority side did not commit")
        if b_stewards and own_side_peers[leaver_b.index] and not sides["minority"]["committed"]:
            self.failures.append("partition: the minority side, with a steward, did not commit")
        if not heal["converged"]:
            raise Broken("partition: no single group after the heal")
        # The leavers that are out stop; the one reinstated (if any) stays.
        for n in (leaver_a, leaver_b):
            if n.address not in self.members_of(view):
                n.kill()

    def leave_committed(self, leaver, rest, expected, epoch, what, limit):
        """Waits until every node of `rest` is past `epoch` with the roster `expected` (the
        leaver gone): the seconds it took, and who committed epoch + 1; None if not in time."""

        def done():
            ok, views = self.agreed(rest, expected, settled=False)
            return ok and views[0]["epoch"] > epoch

        try:
            took = self.wait(what, limit, done)
        except Broken:
            log(f"  {what}: not in {limit} s:\n" + self.describe(rest))
            return None, None
        return took, self.committer_of(rest[0], epoch + 1)

    def kill_journey(self):
        """Journey 4: a member leaves and the epoch steward, who is to commit it, is killed
        with SIGKILL (`--kill-when leave`: as soon as the leave is sent, before the steward can
        have it; `proposal`: once the steward's log shows the leave). Another steward must
        commit it; then a second member leaves, committed without the dead steward, and the
        group talks on."""
        a = self.args
        alive = [n for n in self.nodes if n.alive]
        roster = self.roster(alive[0])
        epoch = roster["epoch"]
        steward = self.by_address(roster["committers"][0])
        stewards = [s.lower() for s in roster["stewards"]]
        plain = [n for n in reversed(alive) if n.address not in stewards and n is not steward]
        leaver, second = plain[0], plain[1]
        after = max([e.get("seq") or 0 for e in self.events(steward)] + [0])
        status, answer = self.api.call(leaver, "POST", f"/api/groups/{GROUP}/leave")
        if not 200 <= status < 300:
            raise Broken(f"leave m{leaver.index:03d}: {status} {answer}")
        left_at = time.time()
        seen = None
        while a.kill_when == "proposal" and time.time() - left_at < 30 and seen is None:
            for e in self.events(steward, after):
                if e.get("type") in ("proposal_opened", "proposal_decided", "epoch_changed"):
                    seen = e.get("type")
                    break
            else:
                time.sleep(0.02)
        steward.kill()
        killed_at = time.time()
        log(f"journey 4: epoch steward m{steward.index:03d} killed {killed_at - left_at:.2f} s "
            f"after m{leaver.index:03d} left (kill when: {a.kill_when}; its last event: {seen})")
        rest = [n for n in alive if n is not steward and n is not leaver]
        expected = [n.address for n in alive if n is not leaver]
        result = {"kill_when": a.kill_when, "steward_saw": seen,
                  "killed_after_leave_s": round(killed_at - left_at, 2)}
        took, committer = self.leave_committed(
            leaver, rest, expected, epoch, "the leave committed without the epoch steward",
            a.kill_limit)
        leaver.kill()
        result["recovered"] = took is not None
        if took is not None:
            result.update({"commit_after_kill_s": round(took, 1),
                           "committer": f"m{self.by_address(committer).index:03d}"
                           if committer else None,
                           "committer_was_killed_steward": committer == steward.address})
            # A second change, with the dead steward still on the list.
            epoch = self.views(rest[:1])[0]["epoch"]
            status, answer = self.api.call(second, "POST", f"/api/groups/{GROUP}/leave")
            if not 200 <= status < 300:
                raise Broken(f"leave m{second.index:03d}: {status} {answer}")
            rest = [n for n in rest if n is not second]
            expected = [e for e in expected if e != second.address]
            took, committer = self.leave_committed(
                second, rest, expected, epoch, "a second leave committed", a.kill_limit)
            second.kill()
            result["second_change"] = {
                "committed": took is not None,
                "commit_s": round(took, 1) if took is not None else None,
                "committer": f"m{self.by_address(committer).index:03d}" if committer else None}
            if took is None:
                self.failures.append("kill: a second change was not committed")
            talk = self.chat(rest[:3], rest, "after-kill", a.chat_limit)
            result["chat_after"] = {"delivered": talk["delivered"], "expected": talk["expected"],
                                    "latency_ms": talk["latency_ms"]}
            if not talk["complete"]:
                self.failures.append("kill: chat after the recovery incomplete")
        self.summary["steward_killed"] = result
        log(f"journey 4: {result}")
        if not result["recovered"]:
            raise Broken("kill: the leave was not committed after the epoch steward was killed")

    # ---- costs -------------------------------------------------------------------------

    def costs(self):
        now = self.net.counters()
        per_ns_nodes = {}
        for n in self.nodes:
            per_ns_nodes[n.ns_index] = per_ns_nodes.get(n.ns_index, 0) + 1
        link = []
        loopback = 0
        for i, (bytes_link, bytes_lo) in now.items():
            start_link, start_lo = self.counters_at_start[i]
            link.append((bytes_link - start_link) / per_ns_nodes.get(i, 1))
            loopback += bytes_lo - start_lo
        relay_in, relay_out = [], []
        for n in self.nodes:
            if not n.alive:
                continue
            status, text = self.api.call(n, "GET", "/metrics")
            if status != 200:
                continue
            for line in text.splitlines():
                if line.startswith('demls_relay_messages_total{direction="in"}'):
                    relay_in.append(float(line.split()[-1]))
                elif line.startswith('demls_relay_messages_total{direction="out"}'):
                    relay_out.append(float(line.split()[-1]))
        kib = [round(b / 1024) for b in link]
        self.summary["bytes"] = {
            "link_kib_per_node": percentiles(kib),
            "loopback_kib_total": round(loopback / 1024),
            "relay_messages_in_per_node": percentiles(relay_in),
            "relay_messages_out_per_node": percentiles(relay_out),
        }


def table(summary):
    rows = [("namespaces / members", f"{summary['namespaces']} / {summary['members']}"),
            ("mode, loss per link", f"{summary['mode']}, {summary['loss_pct']} %"),
            ("latency emulated", "yes" if summary.get("latency_emulated") else "NO (no netem)")]
    f = summary.get("formation")
    if f:
        rows.append(("formation: convergence", f"{f['convergence_s']} s (epoch {f['epoch']}, "
                                                f"{f['stewards']} stewards)"))
    c = summary.get("chat")
    if c:
        lat = c["latency_ms"] or {}
        rows.append(("chat: delivered", f"{c['delivered']} / {c['expected']} in "
                                         f"{c['all_delivered_s']} s"))
        rows.append(("chat: latency p50/p90/p99/max",
                     f"{lat.get('p50')} / {lat.get('p90')} / {lat.get('p99')} / "
                     f"{lat.get('max')} ms"))
    p = summary.get("partition")
    if p:
        for name, s in p["sides"].items():
            rows.append((f"partition: {name} side ({s['members']} members, "
                         f"{s['stewards']} stewards)",
                         f"committed in {s['commit_s']} s" if s["committed"]
                         else f"did not commit in {s['waited_s']} s"))
        h = p["heal"]
        rows.append(("partition: heal", f"one group in {h['convergence_s']} s, "
                                        f"{h['members']} members" if h["converged"]
                     else f"NOT converged after {h['waited_s']} s"))
    k = summary.get("steward_killed")
    if k:
        rows.append(("steward killed: recovery",
                     f"committed by {k.get('committer')} {k.get('commit_after_kill_s')} s after "
                     "the kill" if k["recovered"] else "NOT recovered"))
        second = k.get("second_change")
        if second:
            rows.append(("steward killed: next change",
                         f"committed by {second['committer']} in {second['commit_s']} s"
                         if second["committed"] else "NOT committed"))
    b = summary.get("bytes")
    if b and b["link_kib_per_node"]:
        l = b["link_kib_per_node"]
        rows.append(("bytes on links per node", f"p50 {l['p50']} KiB, max {l['max']} KiB"))
        r = b["relay_messages_in_per_node"]
        if r:
            rows.append(("relay messages in per node", f"p50 {r['p50']:.0f}, max {r['max']:.0f}"))
    rows.append(("wall time", f"{summary.get('wall_s')} s"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {a.ljust(width)}  {b}" for a, b in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("namespaces", type=int)
    parser.add_argument("members", type=int)
    parser.add_argument("--binary", default="target/debug/demls")
    parser.add_argument("--mode", default="small", choices=["big", "small"])
    parser.add_argument("--sn-min", type=int, default=3)
    parser.add_argument("--sn-max", type=int, default=5)
    parser.add_argument("--loss", type=float, default=1.0, help="percent per link")
    parser.add_argument("--delay", type=int, default=20, help="ms per link, netem only")
    parser.add_argument("--jitter", type=int, default=5, help="ms, netem only")
    parser.add_argument("--target-peers", type=int, default=8)
    parser.add_argument("--chat-senders", type=int, default=1000)
    parser.add_argument("--form-limit", type=int, default=180)
    parser.add_argument("--chat-limit", type=int, default=60)
    parser.add_argument("--side-limit", type=int, default=90)
    parser.add_argument("--heal-limit", type=int, default=120)
    parser.add_argument("--kill-limit", type=int, default=90)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between the cut and the leaves")
    parser.add_argument("--kill-when", default="leave", choices=["leave", "proposal"],
                        help="kill the epoch steward as the leave is sent, or once it logs it")
    parser.add_argument("--minority", default="steward", choices=["steward", "plain"],
                        help="whether the cut-off third holds a steward (if it can) or none")
    parser.add_argument("--seed", type=int, default=16, help="picks the bootstrap peers")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    if args.members < 6 or args.namespaces < 3:
        parser.error("at least 6 members and 3 namespaces")
    bed = Testbed(args)
    started = time.time()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        bed.start()
        bed.form()
        bed.chat_journey()
        bed.partition_journey()
        bed.kill_journey()
        bed.costs()
    except Broken as error:
        bed.failures.append(str(error))
    except KeyboardInterrupt as error:
        bed.failures.append(f"interrupted ({error})")
    finally:
        bed.summary["wall_s"] = round(time.time() - started, 1)
        bed.summary["failures"] = bed.failures
        if bed.failures:
            code = 1
            for n in bed.nodes[:3]:
                log(f"log of m{n.index:03d} (last lines):\n{tail(n.dir + '.log', 8)}")
        bed.stop()
        if args.keep or bed.failures:
            log(f"data directories and logs kept in {bed.root}")
        else:
            shutil.rmtree(bed.root, ignore_errors=True)
    print(table(bed.summary))
    for failure in bed.failures:
        print(f"FAILED: {failure}")
    print(json.dumps(bed.summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
