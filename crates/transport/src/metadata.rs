//! The Waku metadata protocol (66/WAKU2-METADATA), `/vac/waku/metadata/1.0.0`.
//!
//! Request and response share one message, `{optional uint32 cluster_id = 1; repeated uint32
//! shards = 3 [packed]}`, sent as a single varint-length-prefixed protobuf of at most 1024
//! bytes in each direction. Like nwaku, the shards are also written to the deprecated field 2
//! (unpacked), which is where js-waku reads them; on reading, field 3 wins over field 2.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use prost::Message as _;

/// The protocol id of the metadata protocol.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/metadata/1.0.0");

/// The largest metadata message accepted (nwaku's `RpcResponseMaxBytes`).
pub(crate) const MAX_FRAME_LEN: usize = 1024;

/// A varint length prefix is never longer than this (a `u64`).
const MAX_VARINT_LEN: usize = 10;

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

/// Why a metadata message could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("metadata length prefix is not a valid varint")]
    BadLengthPrefix,
    #[error("metadata message of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLong(u64),
    #[error("metadata message is not valid protobuf")]
    Protobuf,
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
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
    fn decode_body(body: &[u8]) -> Result<Metadata, FrameError> {
        let proto = WakuMetadataProto::decode(body).map_err(|_| FrameError::Protobuf)?;
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

    /// The length-prefixed frame sent on the wire.
    pub(crate) fn encode_frame(&self) -> Vec<u8> {
        let body = self.encode_body();
        let mut frame = Vec::with_capacity(body.len() + 2);
        prost::encoding::encode_varint(body.len() as u64, &mut frame);
        frame.extend_from_slice(&body);
        frame
    }
}

/// Incremental reader of an unsigned-varint length prefix bounded by [`MAX_FRAME_LEN`].
#[derive(Default)]
struct LengthPrefix {
    value: u64,
    bytes: usize,
}

impl LengthPrefix {
    /// Feeds one byte; returns the length once the varint is complete.
    fn push(&mut self, byte: u8) -> Result<Option<usize>, FrameError> {
        if self.bytes == MAX_VARINT_LEN {
            return Err(FrameError::BadLengthPrefix);
        }
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * self.bytes as u32;
        if shift > 0 && bits.leading_zeros() < shift {
            return Err(FrameError::BadLengthPrefix);
        }
        self.value |= bits << shift;
        self.bytes += 1;
        if self.value > MAX_FRAME_LEN as u64 {
            return Err(FrameError::TooLong(self.value));
        }
        if byte & 0x80 != 0 {
            return Ok(None);
        }
        // The bound above makes this conversion lossless.
        Ok(Some(usize::try_from(self.value).unwrap_or(MAX_FRAME_LEN)))
    }
}

/// Reads one length-prefixed metadata message from `io`. Never panics on any input.
async fn read_message<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Metadata> {
    let mut prefix = LengthPrefix::default();
    let len = loop {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        if let Some(len) = prefix.push(byte[0])? {
            break len;
        }
    };
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(Metadata::decode_body(&body)?)
}

async fn write_message<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    message: &Metadata,
) -> io::Result<()> {
    io.write_all(&message.encode_frame()).await?;
    io.flush().await
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
    fn read(bytes: &[u8]) -> Result<Metadata, FrameError> {
        futures::executor::block_on(read_message(&mut futures::io::Cursor::new(bytes))).map_err(
            |e| match e.into_inner().map(|inner| inner.downcast::<FrameError>()) {
                Some(Ok(frame_error)) => *frame_error,
                _ => FrameError::Protobuf,
            },
        )
    }

    fn is_eof(bytes: &[u8]) -> bool {
        futures::executor::block_on(read_message(&mut futures::io::Cursor::new(bytes)))
            .is_err_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
    }

    #[test]
    fn frame_bytes_match_nwaku_layout() {
        let m = metadata(Some(4242), &[0, 5]);
        // 1: cluster_id; 2: shards unpacked (deprecated); 3: shards packed.
        let body = [
            0x08, 0x92, 0x21, 0x10, 0x00, 0x10, 0x05, 0x1a, 0x02, 0x00, 0x05,
        ];
        let mut frame = vec![body.len() as u8];
        frame.extend_from_slice(&body);
        assert_eq!(m.encode_frame(), frame);
        assert_eq!(read(&frame), Ok(m));
    }

    #[test]
    fn reads_js_waku_style_shards_in_field_2() {
        // js-waku writes `repeated uint32 shards = 2`; accept packed and unpacked forms.
        let unpacked = [6, 0x08, 0x01, 0x10, 0x00, 0x10, 0x02];
        assert_eq!(read(&unpacked), Ok(metadata(Some(1), &[0, 2])));
        let packed = [6, 0x08, 0x01, 0x12, 0x02, 0x00, 0x02];
        assert_eq!(read(&packed), Ok(metadata(Some(1), &[0, 2])));
        assert_eq!(read(&[0]), Ok(metadata(None, &[])));
    }

    #[test]
    fn field_3_wins_over_field_2() {
        let frame = [5, 0x10, 0x01, 0x1a, 0x01, 0x07];
        assert_eq!(read(&frame), Ok(metadata(None, &[7])));
    }

    #[test]
    fn rejects_bad_frames() {
        assert!(is_eof(&[]));
        assert!(is_eof(&[0x80]));
        assert!(is_eof(&[3, 0x08]));
        // 1025 = 0x81 0x08.
        assert_eq!(read(&[0x81, 0x08]), Err(FrameError::TooLong(1025)));
        assert_eq!(read(&[0xff, 0xff, 0x03]), Err(FrameError::TooLong(0x3fff)));
        assert_eq!(read(&[0x80; 11]), Err(FrameError::BadLengthPrefix));
        assert_eq!(
            read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02]),
            Err(FrameError::BadLengthPrefix)
        );
        assert_eq!(read(&[2, 0x08, 0x80]), Err(FrameError::Protobuf));
        // A non-minimal prefix for 0 is still a valid varint.
        assert_eq!(read(&[0x80, 0x00]), Ok(metadata(None, &[])));
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
            prop_assert_eq!(read(&m.encode_frame()), Ok(m));
        }
    }
}
