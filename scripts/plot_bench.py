#!/usr/bin/env python3
"""Plots for docs/performance.md, from the JSON lines `demls bench ... --json` prints.

    pip install matplotlib            # once
    python3 scripts/plot_bench.py docs/performance

reads, in that directory, commit.jsonl, messages.jsonl and network-*.jsonl
(each the output of one or more bench runs) and writes commit.png,
messages.png and network.png beside them.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The anchor: the de-MLS write-up (openmls, Apple M3 Pro), commit + Welcome adding a batch.
ANCHOR_BLOG = {10: 1.8662, 100: 14.124, 500: 121.85, 1000: 412.39, 5000: 17500, 10000: 75000}
# ../shared/research/mls-backends.md, this machine kind: a_bulk_add_commit+welcome (ms).
OPENMLS = {10: 2.03, 100: 18.7, 500: 157.0, 1000: 484.8, 2000: 1680, 5000: 12320, 10000: 58970}
MLS_RS_DEFAULT = {10: 4.09, 100: 27.7, 500: 127.5, 1000: 312.0, 2000: 833.5, 5000: 3620, 10000: 13020}
MLS_RS_TREE_OFF = {100: 27.1, 1000: 225.1, 2000: 498.9, 5000: 1230}


def lines(path):
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip().startswith("{")]


def series(points):
    xs = sorted(points)
    return xs, [points[x] for x in xs]


def plot_commit(directory):
    rows = lines(directory / "commit.jsonl")
    if not rows:
        return
    by_size = {r["members"]: r for r in rows}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, points, style in [
        ("de-MLS write-up (openmls, M3 Pro)", ANCHOR_BLOG, "k--"),
        ("openmls 0.9.2, this machine", OPENMLS, "C3:"),
        ("mls-rs 0.57 out of the box", MLS_RS_DEFAULT, "C1:"),
        ("mls-rs, tree out of band", MLS_RS_TREE_OFF, "C2:"),
    ]:
        ax.plot(*series(points), style, marker=".", label=label)
    for key, label, style in [
        ("commit_welcome_ms", "demls: commit + Welcome", "C0-"),
        ("member_process_ms", "demls: a member processes it", "C4-"),
        ("joiner_ms", "demls: a joiner joins (tree included)", "C5-"),
    ]:
        ax.plot(*series({s: r[key] for s, r in by_size.items()}), style, marker="o", label=label)
    ax.axhline(2000, color="grey", lw=0.8)
    ax.text(12, 2300, "target at 10,000: 2 s", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("group size reached by one commit (members)")
    ax.set_ylabel("milliseconds (median)")
    ax.set_title("Adding a batch of members in one commit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / "commit.png", dpi=110)


def plot_messages(directory):
    rows = lines(directory / "messages.jsonl")
    if not rows:
        return
    labels = [f"{r['members']} members\nbatch {r['batch']}" for r in rows]
    xs = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4.5))
    width = 0.2
    for offset, key, label in [
        (-1.5, "encrypt_per_s", "encrypted/s, persisted"),
        (-0.5, "decrypt_per_s", "decrypted/s, persisted"),
        (0.5, "engine_only_encrypt_per_s", "encrypted/s, engine only"),
        (1.5, "engine_only_decrypt_per_s", "decrypted/s, engine only"),
    ]:
        ax.bar([x + offset * width for x in xs], [r[key] for r in rows], width, label=label)
    ax.axhline(5000, color="grey", lw=0.8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("messages per second, one core")
    ax.set_title("Application messages (SQLite synchronous=FULL unless noted)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / "messages.png", dpi=110)


def plot_network(directory):
    rows = []
    for path in sorted(directory.glob("network-*.jsonl")):
        rows.extend(lines(path))
    if not rows:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for mode, color in [("small", "C0"), ("big", "C3")]:
        mine = [r for r in rows if r["consensus"] == mode and r["admission"] == 0]
        if not mine:
            continue
        mine.sort(key=lambda r: r["members"])
        ns = [r["members"] for r in mine]
        left.plot(ns, [r["joiner_joined_delays"] for r in mine], color + "-o", label=f"{mode}: joiner joined")
        left.plot(
            ns,
            [r["members_applied_p99_delays"] for r in mine],
            color + "--s",
            label=f"{mode}: 99 % of members applied",
        )
        for role, style in [("stewards", "-o"), ("members", "--s")]:
            right.plot(
                ns,
                [r["roles"].get(role, {}).get("bytes_per_node", 0) for r in mine],
                color + style,
                label=f"{mode}: bytes per {role[:-1]}",
            )
    left.axhline(5, color="grey", lw=0.8)
    left.set_ylim(0, 8)
    left.set_xscale("log")
    left.set_xlabel("members before the admission")
    left.set_ylabel("one-way delays (50 ms mean) from the join request")
    left.set_title("Admission latency (virtual time)")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.set_yscale("symlog", linthresh=10)
    right.set_ylim(bottom=0)
    right.set_xlabel("members before the admission")
    right.set_ylabel("bytes published per node (announcements excluded)")
    right.set_title("What each node sends per membership change")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / "network.png", dpi=110)


def main():
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/performance")
    plot_commit(directory)
    plot_messages(directory)
    plot_network(directory)


if __name__ == "__main__":
    main()
