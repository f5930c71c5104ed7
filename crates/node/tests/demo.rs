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
    assert_eq!(summary["epoch_authenticators_agree"], true);
    // The story names the steps.
    for needle in [
        "creates group",
        "votes YES",
        "commits epoch",
        "joins at epoch",
        "is out of the group",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
}
