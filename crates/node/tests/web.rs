//! The web client (`web/`): the committed bundle is what its sources build to, and it works end
//! to end in headless Chromium against two `demls node` processes (`web/e2e/e2e.mjs`). Needs
//! Node.js 20+, `npm ci --prefix web`, `npm ci --prefix interop/anvil` (a chain for the gated
//! group that refuses Bob) and Debian's `chromium` (`scripts/test.sh` installs them); fails
//! (never skips) without them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn require_node_modules(web: &Path) {
    assert!(
        web.join("node_modules").is_dir(),
        "{} is missing: run `npm ci --prefix web` (from the repository root) first",
        web.join("node_modules").display()
    );
}

/// Every file under `dir`, by its path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).expect("a readable directory") {
            let path = entry.expect("a readable entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).expect("under dir").to_owned();
                found.insert(relative, fs::read(&path).expect("a readable file"));
            }
        }
    }
    found
}

fn run(web: &Path, program: &str, args: &[&str]) {
    let status = Command::new(web.join("node_modules/.bin").join(program))
        .args(args)
        .current_dir(web)
        .status()
        .unwrap_or_else(|e| panic!("{program} runs (Node.js 20+ must be installed): {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

#[test]
fn the_committed_bundle_is_what_the_sources_build_to() {
    let web = web_dir();
    require_node_modules(&web);
    run(&web, "tsc", &["--noEmit", "-p", "tsconfig.json"]);
    let out = tempfile::tempdir().expect("a temporary directory");
    let out_dir = out.path().to_str().expect("a UTF-8 path");
    run(
        &web,
        "vite",
        &[
            "build",
            "--logLevel",
            "warn",
            "--outDir",
            out_dir,
            "--emptyOutDir",
        ],
    );
    let built = files(out.path());
    let committed = files(&web.join("dist"));
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "web/dist has other files than a build: run `npm run build --prefix web` and commit web/dist"
    );
    for (path, bytes) in &built {
        assert!(
            committed[path] == *bytes,
            "web/dist/{} is stale: run `npm run build --prefix web` and commit web/dist",
            path.display()
        );
    }
}

#[test]
fn two_nodes_two_pages_join_vote_chat_reload_restart_and_refusal() {
    let web = web_dir();
    require_node_modules(&web);
    // Alice's node reads this chain for the group gated on a balance (Bob is refused).
    let chain = demls_testchain::Anvil::start();
    let status = Command::new("node")
        .arg("e2e/e2e.mjs")
        .current_dir(&web)
        .env("DEMLS_BIN", env!("CARGO_BIN_EXE_demls"))
        .env("DEMLS_ETH_RPC", chain.url())
        .status()
        .expect("`node` runs (Node.js 20+ must be installed)");
    assert!(status.success(), "the web client's end-to-end test failed");
}
