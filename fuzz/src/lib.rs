//! Fuzz harnesses for demls: every decoder that takes bytes from the network or disk.
//!
//! Each target in `fuzz_targets/` is one line calling a `run` function here, so that the
//! harness logic is ordinary library code (and the `seeds` program shares it). See
//! `docs/fuzzing.md` for the targets, what each checks, and how to run them.

pub mod fixture;
pub mod seeds;
pub mod sign;
pub mod targets;
pub mod world;

/// The transport's length-prefixed frames, which the metadata codec below reads with
/// (`crate::framing` in the transport crate's source).
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/transport/src/framing.rs"]
mod framing;

/// The Waku metadata protocol's frame reader, compiled from the transport crate's own source
/// (the reader is private to that crate; this fuzzes the very same code).
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/transport/src/metadata.rs"]
pub mod metadata;

/// The node's content topic → engine topic mapping, compiled from the node crate's own source
/// (the node is a binary crate).
#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/node/src/topics.rs"]
pub mod node_topics;

/// Reads one metadata frame the way the libp2p codec reads a stream: `Some(Ok((cluster,
/// shards)))` for a frame, `Some(Err(_))` for a refused one, `None` at a short read.
pub fn read_metadata(bytes: &[u8]) -> Option<Result<(Option<u32>, Vec<u32>), std::io::Error>> {
    use libp2p::request_response::Codec as _;
    let mut codec = metadata::Codec;
    let protocol = libp2p::StreamProtocol::new("/vac/waku/metadata/1.0.0");
    let mut io = futures::io::Cursor::new(bytes);
    match futures::executor::block_on(codec.read_request(&protocol, &mut io)) {
        Ok(m) => Some(Ok((m.cluster_id, m.shards))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => None,
        Err(e) => Some(Err(e)),
    }
}

/// Encodes a metadata message as the codec writes it.
pub fn write_metadata(cluster_id: Option<u32>, shards: Vec<u32>) -> Vec<u8> {
    use libp2p::request_response::Codec as _;
    let mut codec = metadata::Codec;
    let protocol = libp2p::StreamProtocol::new("/vac/waku/metadata/1.0.0");
    let mut out = futures::io::Cursor::new(Vec::new());
    futures::executor::block_on(codec.write_request(
        &protocol,
        &mut out,
        metadata::Metadata { cluster_id, shards },
    ))
    .expect("writing to memory");
    out.into_inner()
}
