//! One TCP connection of the event loop: the socket, the peer's decoded
//! byte stream, and the bytes still to send.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use neo_core::ConnId;
use neo_proto::{DecodeError, Frame, Packet, HANDSHAKE};

/// Bytes queued for a peer beyond which it is considered dead: a peer that
/// reads nothing must not make the node's memory grow without bound. Four
/// of the largest packets NEO/py accepts.
pub const MAX_QUEUED: usize = 4 * neo_proto::PACKET_SIZE_MAX;

/// Most bytes read from one connection in one loop turn: a peer that
/// sends without pause must not keep the loop from the others (and from
/// timers). What is left is read at the next turn.
pub const READ_TURN_BYTES_MAX: usize = 1 << 20;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketState {
    /// Outgoing, the TCP connection is not established yet.
    Connecting,
    /// Established; the peer's handshake has not arrived.
    Handshaking,
    /// Both handshakes exchanged: the node knows about it.
    Open,
    /// The node closed it: flushing what is queued, then dropped. Nothing
    /// more is reported to the node.
    Closing,
}

pub(super) struct Conn {
    pub id: ConnId,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub phase: SocketState,
    decoder: neo_proto::Decoder,
    out: BytesMut,
    /// WRITABLE interest is registered (only while bytes are queued, so
    /// that an idle connection costs no wake-ups).
    pub wants_writable: bool,
    /// When it was accepted or asked for (handshake timeout).
    pub since: Instant,
}

/// What reading a connection produced: the peer's handshake may have
/// completed, frames decoded, and the stream may have ended after them.
pub(super) struct ReadOutcome {
    pub opened: bool,
    pub frames: Vec<Frame>,
    pub end: Option<End>,
    /// Reading stopped at [`READ_TURN_BYTES_MAX`], not because the socket
    /// would block: mio will not signal it again, read it next turn.
    pub more: bool,
}

/// Why a connection's stream ended.
pub(super) enum End {
    /// The peer closed (`None`), or the connection broke.
    Closed(Option<io::Error>),
    /// The peer sent bytes that are not valid NEO.
    Invalid(DecodeError),
}

impl Conn {
    /// A connection whose first bytes to send are our handshake.
    pub(super) fn new(id: ConnId, stream: TcpStream, peer: SocketAddr, phase: SocketState) -> Conn {
        let mut out = BytesMut::with_capacity(4096);
        out.extend_from_slice(&HANDSHAKE);
        Conn {
            id,
            stream,
            peer,
            phase,
            decoder: neo_proto::Decoder::new(),
            out,
            wants_writable: false,
            since: Instant::now(),
        }
    }

    pub(super) fn queue(&mut self, msg_id: u32, packet: &Packet) {
        neo_proto::encode(msg_id, packet, &mut self.out);
    }

    pub(super) fn queued(&self) -> usize {
        self.out.len()
    }

    /// An outgoing connection became writable: whether it is established
    /// (`Ok(false)`: not yet, spurious wake-up).
    pub(super) fn check_connected(&mut self) -> io::Result<bool> {
        if let Some(error) = self.stream.take_error()? {
            return Err(error);
        }
        match self.stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Writes queued bytes until the socket would block; returns whether
    /// everything was written.
    pub(super) fn flush(&mut self) -> io::Result<bool> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out.advance(n),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }

    /// Reads until the socket would block (mio is edge-triggered) or
    /// [`READ_TURN_BYTES_MAX`] arrived, and decodes what arrived.
    /// `scratch` is the loop's read buffer.
    pub(super) fn read(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        let was_open = self.decoder.handshake_done();
        let mut end = None;
        let mut read = 0;
        let mut more = false;
        loop {
            if read >= READ_TURN_BYTES_MAX {
                more = true;
                break;
            }
            match self.stream.read(scratch) {
                Ok(0) => {
                    end = Some(End::Closed(None));
                    break;
                }
                Ok(n) => {
                    read += n;
                    self.decoder.feed(&scratch[..n])
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    end = Some(End::Closed(Some(error)));
                    break;
                }
            }
        }
        let mut frames = Vec::new();
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => {
                    end = Some(End::Invalid(error));
                    break;
                }
            }
        }
        ReadOutcome {
            opened: !was_open && self.decoder.handshake_done(),
            frames,
            end,
            more,
        }
    }
}
