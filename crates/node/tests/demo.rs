//! `demls demo` through the binary: its last line is the JSON summary contract.

use std::process::Command;

#[test]
fn demo_of_ten_members_ends_with_the_summary_contract() {
    let output = Command::new(env!("CARGO_BIN_EXE_demls"))
        .args(["demo", "--members", "10", "--json"])
        .output()
        .expect("demls runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    let summary: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(summary["members"], 10);
    assert_eq!(summary["joined"], 10);
    assert_eq!(summary["messages_sent"], summary["messages_delivered"]);
    assert!(summary["messages_sent"].as_u64().unwrap() >= 10);
    assert!(summary["final_epoch"].as_u64().unwrap() >= 2);
    assert_eq!(summary["removed_member_can_decrypt"], false);
    assert!(summary["key_updates"].as_u64().unwrap() > 0);
    assert_eq!(summary["stolen_state_can_decrypt_after_update"], false);
    assert_eq!(summary["epoch_authenticators_agree"], true);
    // The thief's copy was live: it read the chat sent before the update.
    let theft = stdout
        .lines()
        .find(|line| line.contains("a thief tried"))
        .expect("the thief's attempt is told");
    let read_before: u64 = theft
        .split("it read ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .expect("a count of what it read before");
    assert!(read_before > 0, "{theft}");
    // The story names the steps.
    for needle in [
        "creates group",
        "votes YES",
        "commits epoch",
        "joins at epoch",
        "is out of the group",
        "replaces its keys",
        "a thief tried",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}
