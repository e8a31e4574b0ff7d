//! One neoctl connection to the admin node: handshake, then one request
//! at a time, each answer matched to its request by message id.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use neo_proto::{
    encode, AskNodeList, AskPartitionList, Decoder, ErrorCode, Nid, NodeInfo, NodeType, Packet,
    Ptid, Rows, HANDSHAKE,
};

use super::CtlError;

/// One neoctl connection: handshake, then one request at a time. It is
/// opened by the first request, so that printing the usage needs no admin.
pub(in crate::cli) struct Session {
    admin: SocketAddr,
    stream: Option<TcpStream>,
    decoder: Decoder,
    timeout: Duration,
    /// Bytes not sent yet: the handshake and notifications go out with the
    /// next request, in one write.
    pending: BytesMut,
    next_msg_id: u32,
}

impl Session {
    pub(in crate::cli) fn new(admin: SocketAddr, timeout: Duration) -> Session {
        Session {
            admin,
            stream: None,
            decoder: Decoder::new(),
            timeout,
            pending: BytesMut::from(&HANDSHAKE[..]),
            next_msg_id: 0,
        }
    }

    fn connect(&mut self) -> Result<&mut TcpStream, CtlError> {
        let admin = self.admin;
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&admin, self.timeout)
                .map_err(|error| CtlError::Unreachable { admin, error })?;
            stream
                .set_write_timeout(Some(self.timeout))
                .map_err(|error| CtlError::Transport { admin, error })?;
            self.stream = Some(stream);
        }
        Ok(self.stream.as_mut().unwrap())
    }

    fn queue(&mut self, packet: Packet) -> u32 {
        let msg_id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        encode(msg_id, &packet, &mut self.pending);
        msg_id
    }

    /// Queues a notification (a packet nobody answers): it goes out with
    /// the next request.
    pub(super) fn notify(&mut self, packet: impl Into<Packet>) {
        self.queue(packet.into());
    }

    /// Sends a request and waits for its answer. DENIED and NOT_READY
    /// errors become errors whatever was asked, as in neoctl; other errors
    /// (ACK included) are the caller's to judge.
    pub(in crate::cli) fn ask(&mut self, packet: impl Into<Packet>) -> Result<Packet, CtlError> {
        let admin = self.admin;
        let msg_id = self.queue(packet.into());
        let pending = std::mem::take(&mut self.pending);
        self.connect()?
            .write_all(&pending)
            .map_err(|error| CtlError::Transport { admin, error })?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0; 16 * 1024];
        loop {
            while let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|error| CtlError::Protocol { admin, error })?
            {
                // An error is ours whatever its message id: admins send
                // some (a bad partition table range) as new packets.
                if frame.msg_id == msg_id || matches!(frame.packet, Packet::Error(_)) {
                    return match frame.packet {
                        Packet::Error(error) if error.code == ErrorCode::Denied => {
                            Err(CtlError::Denied(text(&error.message)))
                        }
                        Packet::Error(error) if error.code == ErrorCode::NotReady => {
                            Err(CtlError::NotReady(text(&error.message)))
                        }
                        answer => Ok(answer),
                    };
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CtlError::Timeout {
                    admin,
                    after: self.timeout,
                });
            }
            let stream = self.connect()?;
            stream
                .set_read_timeout(Some(remaining))
                .map_err(|error| CtlError::Transport { admin, error })?;
            match stream.read(&mut buf) {
                Ok(0) => return Err(CtlError::ConnectionClosed),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(CtlError::Timeout {
                        admin,
                        after: self.timeout,
                    })
                }
                Err(error) => return Err(CtlError::Transport { admin, error }),
            }
        }
    }

    /// Asks a request answered by ACK, and returns the ACK's message.
    pub(super) fn ask_ack(&mut self, packet: impl Into<Packet>) -> Result<String, CtlError> {
        match self.ask(packet)? {
            Packet::Error(error) if error.code == ErrorCode::Ack => Ok(text(&error.message)),
            other => Err(unexpected(other)),
        }
    }

    pub(super) fn storage_nodes(&mut self) -> Result<Vec<NodeInfo>, CtlError> {
        self.node_list(Some(NodeType::Storage))
    }

    pub(super) fn node_list(
        &mut self,
        node_type: Option<NodeType>,
    ) -> Result<Vec<NodeInfo>, CtlError> {
        match self.ask(AskNodeList { node_type })? {
            Packet::AnswerNodeList(answer) => Ok(answer.nodes),
            other => Err(unexpected(other)),
        }
    }

    pub(in crate::cli) fn partition_list(
        &mut self,
        min_offset: u32,
        max_offset: u32,
        nid: Option<Nid>,
    ) -> Result<(Option<Ptid>, u32, Rows), CtlError> {
        let ask = AskPartitionList {
            min_offset,
            max_offset,
            nid,
        };
        match self.ask(ask)? {
            Packet::AnswerPartitionList(answer) => {
                Ok((answer.ptid, answer.num_replicas, answer.rows))
            }
            other => Err(unexpected(other)),
        }
    }
}

pub(super) fn unexpected(packet: Packet) -> CtlError {
    CtlError::UnexpectedAnswer(Box::new(packet))
}

/// Text NEO/py sends as UTF-8 bytes (messages, backup names, summary).
pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
