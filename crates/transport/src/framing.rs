//! Unsigned-varint length-prefixed frames: how Waku's request-response protocols (metadata,
//! store, peer exchange) put one protobuf message on a libp2p stream in each direction.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;

/// A varint length prefix is never longer than this (a `u64`).
const MAX_VARINT_LEN: usize = 10;

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("length prefix is not a valid varint")]
    BadLengthPrefix,
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLong { len: u64, max: usize },
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Incremental reader of a length prefix bounded by `max`.
struct LengthPrefix {
    max: usize,
    value: u64,
    bytes: usize,
}

impl LengthPrefix {
    fn new(max: usize) -> LengthPrefix {
        LengthPrefix {
            max,
            value: 0,
            bytes: 0,
        }
    }

    /// Feeds one byte; returns the length once the varint is complete. Refuses a length
    /// above `max` as soon as the bytes read so far exceed it.
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
        if self.value > self.max as u64 {
            return Err(FrameError::TooLong {
                len: self.value,
                max: self.max,
            });
        }
        if byte & 0x80 != 0 {
            return Ok(None);
        }
        // The bound above makes this conversion lossless.
        Ok(Some(usize::try_from(self.value).unwrap_or(self.max)))
    }
}

/// Reads one frame of at most `max` bytes from `io`. Never panics, and never allocates more
/// than `max` bytes, whatever the input.
pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let mut prefix = LengthPrefix::new(max);
    let len = loop {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        if let Some(len) = prefix.push(byte[0])? {
            break len;
        }
    };
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

/// `body` with its length prefix.
pub(crate) fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(body.len() + MAX_VARINT_LEN);
    prost::encoding::encode_varint(body.len() as u64, &mut frame);
    frame.extend_from_slice(body);
    frame
}

/// Writes `body` as one frame and flushes.
pub(crate) async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    body: &[u8],
) -> io::Result<()> {
    io.write_all(&encode_frame(body)).await?;
    io.flush().await
}

/// The request-response codec of Store v3 and of peer exchange: one varint-length-prefixed
/// frame each way, bounded in size, passed on as raw bytes. Decoding happens elsewhere, so that
/// undecodable requests and responses can be answered or counted, and large responses decoded
/// off the relay loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameCodec {
    /// The largest request read.
    pub(crate) max_request: usize,
    /// The largest response read.
    pub(crate) max_response: usize,
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response).await
    }
}

/// The [`FrameError`] inside an error returned by [`read_frame`], if that is what it was.
#[cfg(test)]
pub(crate) fn frame_error(e: &io::Error) -> Option<&FrameError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<FrameError>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(bytes: &[u8], max: usize) -> io::Result<Vec<u8>> {
        futures::executor::block_on(read_frame(&mut futures::io::Cursor::new(bytes), max))
    }

    fn error(bytes: &[u8], max: usize) -> Option<FrameError> {
        let e = read(bytes, max).err()?;
        match frame_error(&e) {
            Some(FrameError::BadLengthPrefix) => Some(FrameError::BadLengthPrefix),
            Some(FrameError::TooLong { len, max }) => Some(FrameError::TooLong {
                len: *len,
                max: *max,
            }),
            None => None,
        }
    }

    fn is_eof(bytes: &[u8], max: usize) -> bool {
        read(bytes, max).is_err_and(|e| e.kind() == io::ErrorKind::UnexpectedEof)
    }

    #[test]
    fn reads_frames_and_refuses_bad_prefixes() {
        assert_eq!(read(&[3, 1, 2, 3, 9], 3).ok(), Some(vec![1, 2, 3]));
        assert_eq!(read(&[0], 0).ok(), Some(vec![]));
        // A non-minimal prefix for 0 is still a valid varint.
        assert_eq!(read(&[0x80, 0x00], 0).ok(), Some(vec![]));
        assert!(is_eof(&[], 10));
        assert!(is_eof(&[0x80], 10));
        assert!(is_eof(&[3, 1], 10));
        // 1025 = 0x81 0x08.
        assert_eq!(
            error(&[0x81, 0x08], 1024),
            Some(FrameError::TooLong {
                len: 1025,
                max: 1024
            })
        );
        // Refused before the varint ends.
        assert_eq!(
            error(&[0xff, 0xff, 0x03], 1024),
            Some(FrameError::TooLong {
                len: 0x3fff,
                max: 1024
            })
        );
        assert_eq!(
            error(&[0x80; 11], usize::MAX),
            Some(FrameError::BadLengthPrefix)
        );
        assert_eq!(
            error(
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02],
                usize::MAX
            ),
            Some(FrameError::BadLengthPrefix)
        );
    }

    proptest! {
        #![proptest_config(crate::fuzz::config())]

        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
            let _ = read(&data, 1024);
        }

        #[test]
        fn frames_roundtrip(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(read(&encode_frame(&body), body.len()).ok(), Some(body));
        }
    }
}
