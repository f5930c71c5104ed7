//! The request-response codec of Store v3: one varint-length-prefixed frame each way, passed
//! on as raw bytes. Decoding happens elsewhere, so that an undecodable query still gets a
//! `400` answer and a large response is decoded off the relay loop.

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::StreamProtocol;
use libp2p::request_response;

use crate::framing;
use crate::store::MAX_REQUEST_SIZE;

/// Frames of Store v3, bounded in size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec {
    /// The largest response read.
    pub(crate) max_response: usize,
}

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        framing::read_frame(io, MAX_REQUEST_SIZE).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        framing::read_frame(io, self.max_response).await
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
        framing::write_frame(io, &request).await
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
        framing::write_frame(io, &response).await
    }
}
