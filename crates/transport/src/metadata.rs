//! The Waku metadata protocol (66/WAKU2-METADATA), `/vac/waku/metadata/1.0.0`.
//!
//! Request and response share one message, `{optional uint32 cluster_id = 1; repeated uint32
//! shards = 3 [packed]}`, sent as a single varint-length-prefixed protobuf of at most 1024
//! bytes in each direction. Like nwaku, the shards are also written to the deprecated field 2
//! (unpacked), which is where js-waku reads them; on reading, field 3 wins over field 2.

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use libp2p::request_response;
use prost::Message as _;

use crate::framing;

/// The protocol id of the metadata protocol.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/metadata/1.0.0");

/// The largest metadata message accepted (nwaku's `RpcResponseMaxBytes`).
pub(crate) const MAX_FRAME_LEN: usize = 1024;

/// The metadata a node states about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Metadata {
    pub(crate) cluster_id: Option<u32>,
    pub(crate) shards: Vec<u32>,
}

/// The wire form of [`Metadata`] (request and response are identical).
#[derive(Clone, PartialEq, prost::Message)]
struct WakuMetadataProto {
    #[prost(uint32, optional, tag = "1")]
    cluster_id: Option<u32>,
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    shards_deprecated: Vec<u32>,
    #[prost(uint32, repeated, tag = "3")]
    shards: Vec<u32>,
}

impl Metadata {
    /// The protobuf body (without length prefix).
    fn encode_body(&self) -> Vec<u8> {
        WakuMetadataProto {
            cluster_id: self.cluster_id,
            shards_deprecated: self.shards.clone(),
            shards: self.shards.clone(),
        }
        .encode_to_vec()
    }

    /// Parses a protobuf body (without length prefix). Never panics.
    fn decode_body(body: &[u8]) -> Result<Metadata, prost::DecodeError> {
        let proto = WakuMetadataProto::decode(body)?;
        let shards = if proto.shards.is_empty() {
            proto.shards_deprecated
        } else {
            proto.shards
        };
        Ok(Metadata {
            cluster_id: proto.cluster_id,
            shards,
        })
    }
}

/// Reads one length-prefixed metadata message from `io`. Never panics on any input.
async fn read_message<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Metadata> {
    let body = framing::read_frame(io, MAX_FRAME_LEN).await?;
    Metadata::decode_body(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_message<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    message: &Metadata,
) -> io::Result<()> {
    framing::write_frame(io, &message.encode_body()).await
}

/// The request-response codec of the metadata protocol.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Codec;

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Metadata;
    type Response = Metadata;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Metadata>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Metadata>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Metadata,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Metadata,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metadata(cluster_id: Option<u32>, shards: &[u32]) -> Metadata {
        Metadata {
            cluster_id,
            shards: shards.to_vec(),
        }
    }

    /// Reads one message from `bytes` the way the codec reads a stream.
    fn read(bytes: &[u8]) -> io::Result<Metadata> {
        futures::executor::block_on(read_message(&mut futures::io::Cursor::new(bytes)))
    }

    fn frame(m: &Metadata) -> Vec<u8> {
        framing::encode_frame(&m.encode_body())
    }

    #[test]
    fn frame_bytes_match_nwaku_layout() {
        let m = metadata(Some(4242), &[0, 5]);
        // 1: cluster_id; 2: shards unpacked (deprecated); 3: shards packed.
        let body = [
            0x08, 0x92, 0x21, 0x10, 0x00, 0x10, 0x05, 0x1a, 0x02, 0x00, 0x05,
        ];
        let mut expected = vec![body.len() as u8];
        expected.extend_from_slice(&body);
        assert_eq!(frame(&m), expected);
        assert_eq!(read(&expected).ok(), Some(m));
    }

    #[test]
    fn reads_js_waku_style_shards_in_field_2() {
        // js-waku writes `repeated uint32 shards = 2`; accept packed and unpacked forms.
        let unpacked = [6, 0x08, 0x01, 0x10, 0x00, 0x10, 0x02];
        assert_eq!(read(&unpacked).ok(), Some(metadata(Some(1), &[0, 2])));
        let packed = [6, 0x08, 0x01, 0x12, 0x02, 0x00, 0x02];
        assert_eq!(read(&packed).ok(), Some(metadata(Some(1), &[0, 2])));
        assert_eq!(read(&[0]).ok(), Some(metadata(None, &[])));
    }

    #[test]
    fn field_3_wins_over_field_2() {
        let frame = [5, 0x10, 0x01, 0x1a, 0x01, 0x07];
        assert_eq!(read(&frame).ok(), Some(metadata(None, &[7])));
    }

    #[test]
    fn rejects_bad_frames() {
        let too_long = read(&[0x81, 0x08]).expect_err("1025 bytes is too long");
        assert_eq!(
            framing::frame_error(&too_long),
            Some(&framing::FrameError::TooLong {
                len: 1025,
                max: MAX_FRAME_LEN
            })
        );
        let bad_protobuf = read(&[2, 0x08, 0x80]).expect_err("truncated varint field");
        assert_eq!(bad_protobuf.kind(), io::ErrorKind::InvalidData);
        assert!(framing::frame_error(&bad_protobuf).is_none());
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let _ = read(&data);
        }

        #[test]
        fn reader_never_panics_on_short_valid_prefixes(
            len in 0usize..=MAX_FRAME_LEN,
            body in proptest::collection::vec(any::<u8>(), 0..=MAX_FRAME_LEN),
        ) {
            let mut frame = Vec::new();
            prost::encoding::encode_varint(len as u64, &mut frame);
            frame.extend_from_slice(&body);
            let _ = read(&frame);
        }

        #[test]
        fn frames_roundtrip(
            cluster_id in any::<Option<u32>>(),
            shards in proptest::collection::vec(any::<u32>(), 0..64),
        ) {
            let m = Metadata { cluster_id, shards };
            prop_assert_eq!(read(&frame(&m)).ok(), Some(m));
        }
    }
}
