//! `demls bench` through the binary, at tiny sizes: each subcommand runs and
//! prints the JSON lines `docs/performance.md` and `scripts/plot_bench.py` read.
//! No timing is asserted.

use std::process::Command;

use serde_json::Value;

/// Runs `demls bench ARGS --json` and returns its JSON lines.
fn bench(args: &[&str]) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_demls"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("demls runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn number(line: &Value, key: &str) -> f64 {
    line[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {line}"))
}

#[test]
fn commit_prints_one_object_per_size() {
    let lines = bench(&["commit", "--sizes", "3,10", "--repeats", "2"]);
    assert_eq!(lines.len(), 2);
    for (line, size) in lines.iter().zip([3, 10]) {
        assert_eq!(line["bench"], "commit");
        assert_eq!(line["members"], size);
        assert_eq!(line["added"], size - 2);
        for key in [
            "commit_welcome_ms",
            "steward_apply_ms",
            "member_process_ms",
            "joiner_ms",
            "commit_bytes",
            "welcome_bytes",
            "tree_bytes",
            "update_commit_ms",
            "update_process_ms",
            "update_bytes",
            "raw_commit_welcome_ms",
            "raw_member_process_ms",
            "raw_welcome_ms",
            "commit_welcome_ratio",
            "member_process_ratio",
            "welcome_ratio",
        ] {
            assert!(number(line, key) > 0.0, "{key} in {line}");
        }
        assert_eq!(
            line["samples"]["joiner_ms"].as_array().map(Vec::len),
            Some(2)
        );
    }
}

#[test]
fn everyday_compares_each_change_in_both_trees() {
    let lines = bench(&[
        "everyday",
        "--sizes",
        "12,20",
        "--repeats",
        "2",
        "--populate",
        "2",
    ]);
    assert_eq!(lines.len(), 2);
    for (line, size) in lines.iter().zip([12, 20]) {
        assert_eq!(line["bench"], "everyday");
        assert_eq!(line["members"], size);
        assert_eq!(line["populate"], 2);
        for tree in ["fresh", "populated"] {
            for change in ["add", "remove", "update"] {
                let costs = &line[tree][change];
                for key in [
                    "demls_create_ms",
                    "raw_create_ms",
                    "create_ratio",
                    "demls_process_ms",
                    "raw_process_ms",
                    "process_ratio",
                    "demls_commit_bytes",
                    "raw_commit_bytes",
                ] {
                    assert!(number(costs, key) > 0.0, "{tree} {change} {key} in {line}");
                }
                assert_eq!(
                    costs["samples"]["raw_process_ms"].as_array().map(Vec::len),
                    Some(2),
                    "{line}"
                );
            }
        }
    }
}

#[test]
fn messages_prints_one_object_per_batch_size() {
    let lines = bench(&[
        "messages",
        "--members",
        "3",
        "--messages",
        "20",
        "--batch",
        "1,10",
        "--durability",
        "relaxed",
    ]);
    assert_eq!(lines.len(), 2);
    for (line, batch) in lines.iter().zip([1, 10]) {
        assert_eq!(line["bench"], "messages");
        assert_eq!(line["batch"], batch);
        for key in [
            "encrypt_per_s",
            "decrypt_per_s",
            "engine_only_encrypt_per_s",
            "engine_only_decrypt_per_s",
            "sender_steps",
            "sender_mls_bytes_per_step",
            "envelope_bytes",
        ] {
            assert!(number(line, key) > 0.0, "{key} in {line}");
        }
    }
}

#[test]
fn network_admits_into_both_consensus_modes() {
    for mode in ["small", "big"] {
        let lines = bench(&[
            "network",
            "--members",
            "10",
            "--consensus",
            mode,
            "--joins",
            "2",
            "--loss",
            "0",
        ]);
        assert_eq!(lines.len(), 2);
        for (line, members) in lines.iter().zip([10, 11]) {
            assert_eq!(line["bench"], "network");
            assert_eq!(line["consensus"], mode);
            assert_eq!(line["members"], members);
            // Request, proposal, votes, commit and Welcome: at least four one-way delays.
            assert!(number(line, "joiner_joined_delays") >= 3.0, "{line}");
            assert!(number(line, "all_applied_ms") >= number(line, "members_applied_median_ms"));
            assert!(
                number(&line["kinds"]["commit"], "messages") >= 1.0,
                "{line}"
            );
            assert!(
                number(&line["kinds"]["welcome"], "messages") >= 1.0,
                "{line}"
            );
            // Per member: what the change cost on the wire, announcements included.
            assert!(
                number(&line["per_member"], "bytes_received") > 0.0,
                "{line}"
            );
            assert!(
                line["setup"]["memory_per_member_bytes"].is_number(),
                "{line}"
            );
            // One join request, sealed to each steward in office.
            assert_eq!(
                line["roles"]["joiner"]["messages_per_node"],
                number(line, "stewards"),
                "{line}"
            );
        }
        // Only in big consensus do plain members vote on an admission: each at least once.
        // (In small consensus a member may still send now and then, e.g. a sync.)
        let member_messages = number(&lines[0]["roles"]["members"], "messages_per_node");
        assert_eq!(member_messages >= 1.0, mode == "big", "{}", lines[0]);
    }
}

#[test]
fn day_runs_a_short_day_of_a_small_group() {
    let lines = bench(&[
        "day",
        "--members",
        "7",
        "--stewards",
        "3",
        "--day-secs",
        "600",
        "--messages",
        "30",
        "--joins",
        "1",
        "--leaves",
        "1",
        "--updates",
        "1",
        "--steward-down-secs",
        "60",
        "--partition-secs",
        "60",
        "--partition-share",
        "0.2",
        "--loss",
        "0",
    ]);
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    assert_eq!(line["bench"], "day");
    assert_eq!(line["members"], 7);
    assert_eq!(line["completed"], true, "{line}");
    assert_eq!(number(line, "virtual_s_reached"), 600.0, "{line}");
    // One join, one leave, one update, each reported with the members that applied it.
    let changes = line["changes"].as_array().expect("changes");
    let kinds: Vec<&str> = changes.iter().filter_map(|c| c["kind"].as_str()).collect();
    assert_eq!(kinds.len(), 3, "{line}");
    for kind in ["join", "leave", "update"] {
        assert!(kinds.contains(&kind), "{kind} in {line}");
    }
    for change in changes {
        assert!(number(change, "audience") >= 1.0, "{line}");
    }
    let chat = &line["chat"];
    assert!(number(chat, "sent") >= 1.0, "{line}");
    assert!(
        number(chat, "deliveries_expected") >= number(chat, "deliveries_missing"),
        "{line}"
    );
    for key in [
        "compute_ms",
        "messages_sent",
        "bytes_sent",
        "messages_received",
        "bytes_received",
    ] {
        assert!(number(&line["per_member"], key) > 0.0, "{key} in {line}");
    }
    assert!(
        number(&line["steward_failure"], "down_at_s") > 0.0,
        "{line}"
    );
    assert!(number(&line["partition"], "nodes") >= 1.0, "{line}");
    // What was published, by kind: the stewards' announcements, the changes' commits.
    for kind in ["announcement", "commit", "proposal_or_vote"] {
        assert!(
            number(&line["published_by_kind"][kind], "messages") >= 1.0,
            "{kind} in {line}"
        );
    }
    assert!(line["settled"].is_boolean(), "{line}");
    assert!(line["branches"].is_number(), "{line}");
}
