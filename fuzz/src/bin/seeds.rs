//! Writes the fixture group (`corpus/fixture.pb`) and every target's seed corpus
//! (`corpus/<target>/seed-NNN`) from its real messages.
//!
//! `seeds [CORPUS_DIR] [--fresh]`: an existing fixture that still restores is kept (so that
//! the corpora grown against it stay meaningful); `--fresh` forms the group again.

use std::path::PathBuf;

use prost::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fresh = args.iter().any(|a| a == "--fresh");
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/corpus")));
    let fixture_path = dir.join("fixture.pb");
    // SAFETY: single-threaded, before anything reads the environment.
    unsafe { std::env::set_var("DEMLS_FUZZ_FIXTURE", &fixture_path) };
    let kept = if fresh {
        None
    } else {
        demls_fuzz::fixture::load()
    };
    let fixture = match kept {
        Some(fixture) => {
            println!("fixture: kept {}", fixture_path.display());
            fixture
        }
        None => {
            let fixture = demls_fuzz::fixture::build();
            std::fs::create_dir_all(&dir).expect("corpus directory");
            std::fs::write(&fixture_path, fixture.encode_to_vec()).expect("write fixture");
            println!(
                "fixture: formed the group ({} messages), wrote {}",
                fixture.messages.len(),
                fixture_path.display()
            );
            fixture
        }
    };
    let count = demls_fuzz::seeds::write(&fixture, &dir).expect("write seeds");
    println!("seeds: {count} files under {}", dir.display());
}
