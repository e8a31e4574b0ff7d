//! A peer that stops reading: the runtime keeps serving everyone else,
//! and disconnects it once more than `MAX_QUEUED` bytes wait for it,
//! instead of growing its memory without bound. A peer that sends without
//! pause is read at most `READ_TURN_BYTES_MAX` a turn: the others are
//! served in between. Peers that never complete the handshake are dropped,
//! and connections past the node's maximum are refused.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use neo_core::node::{ConnId, Input, Node, Output};
use neo_core::time::Time;
use neo_mio::runtime::{Hosted, Runtime};
use neo_mio::runtime::{MAX_QUEUED, READ_TURN_BYTES_MAX};
use neo_proto::{encode, AddObject, Checksum, Decoder, Oid, Packet, Pong, Tid, HANDSHAKE};

/// Size of each packet the flooder sends.
const CHUNK: usize = 8 << 20;

/// A node that sends `chunks` large packets to the first peer that
/// connects, answers Ping with Pong, and remembers which connections were
/// closed.
struct Flooder {
    chunks: usize,
    data: Bytes,
    outputs: VecDeque<Output<()>>,
    accepted: Vec<ConnId>,
    closed: Vec<ConnId>,
    /// Pings received, in order, by connection.
    pings: Vec<ConnId>,
}

impl Flooder {
    fn new(chunks: usize) -> Flooder {
        Flooder {
            chunks,
            data: Bytes::from(vec![7u8; CHUNK]),
            outputs: VecDeque::new(),
            accepted: Vec::new(),
            closed: Vec::new(),
            pings: Vec::new(),
        }
    }
}

impl Node for Flooder {
    type Event = ();

    fn handle(&mut self, _now: Time, input: Input) {
        match input {
            Input::Accepted { conn } => {
                self.accepted.push(conn);
                let chunks = if self.accepted.len() == 1 {
                    self.chunks
                } else {
                    0
                };
                for i in 0..chunks {
                    let packet = AddObject {
                        oid: Oid(i as u64),
                        serial: Tid(1),
                        compression: 0,
                        checksum: Checksum::ZERO,
                        data: self.data.clone(),
                        data_serial: None,
                    };
                    self.outputs.push_back(Output::Send {
                        conn,
                        msg_id: i as u32,
                        packet: packet.into(),
                    });
                }
            }
            Input::Packet {
                conn,
                msg_id,
                packet: Packet::Ping(_),
            } => {
                self.pings.push(conn);
                self.outputs.push_back(Output::Send {
                    conn,
                    msg_id,
                    packet: Pong {}.into(),
                })
            }
            Input::Closed { conn } => self.closed.push(conn),
            _ => {}
        }
    }

    fn poll_output(&mut self) -> Option<Output<()>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

impl Hosted for Flooder {}

/// Connects and sends the handshake (and nothing else, reading nothing).
fn stalled_peer(listener: &std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(listener).unwrap();
    stream.write_all(&HANDSHAKE).unwrap();
    stream
}

/// Turns the loop until `done` holds, at most 20 s.
fn turn_until(runtime: &mut Runtime<Flooder>, mut done: impl FnMut(&Flooder) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        runtime.turn(Some(Duration::from_millis(10))).unwrap();
        if done(runtime.node()) {
            return true;
        }
    }
    false
}

fn flooder(chunks: usize) -> (Runtime<Flooder>, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let listener = mio::net::TcpListener::from_std(listener);
    let runtime = Runtime::new(Flooder::new(chunks), "flooder", Some(listener)).unwrap();
    (runtime, addr)
}

#[test]
fn a_peer_that_reads_nothing_is_dropped_past_the_cap_and_others_are_served() {
    let chunks = MAX_QUEUED / CHUNK + 2;
    let (mut runtime, addr) = flooder(chunks);
    let stalled = stalled_peer(&addr);
    assert!(turn_until(&mut runtime, |node| !node.accepted.is_empty()));

    // Another peer is served while the first has its bytes piling up.
    let mut other = TcpStream::connect(addr).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = BytesMut::from(&HANDSHAKE[..]);
    encode(5, &Packet::from(neo_proto::Ping {}), &mut request);
    other.write_all(&request).unwrap();

    assert!(
        turn_until(&mut runtime, |node| node.closed.contains(&node.accepted[0])),
        "the stalled peer was never disconnected"
    );
    drop(stalled);

    // The second peer got the handshake (checked by the decoder), then
    // the Pong.
    other.set_nonblocking(true).unwrap();
    let mut decoder = Decoder::new();
    let mut buf = vec![0; 1 << 16];
    let mut pong = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pong && Instant::now() < deadline {
        runtime.turn(Some(Duration::from_millis(1))).unwrap();
        match other.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                decoder.feed(&buf[..n]);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    pong |= frame.msg_id == 5 && matches!(frame.packet, Packet::Pong(_));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(pong, "the other peer was not answered");
}

#[test]
fn a_slow_peer_under_the_cap_keeps_its_connection() {
    let (mut runtime, addr) = flooder(4);
    let _stalled = stalled_peer(&addr);
    assert!(turn_until(&mut runtime, |node| !node.accepted.is_empty()));
    // Nothing is read for a while: 32 MiB queued, well under the cap.
    for _ in 0..50 {
        runtime.turn(Some(Duration::from_millis(10))).unwrap();
    }
    assert!(runtime.node().closed.is_empty());
}

#[test]
fn a_peer_that_sends_without_pause_does_not_starve_the_others() {
    let (mut runtime, addr) = flooder(0);
    let mut flood = stalled_peer(&addr);
    let mut polite = stalled_peer(&addr);
    assert!(turn_until(&mut runtime, |node| node.accepted.len() == 2));
    let (flood_conn, polite_conn) = (runtime.node().accepted[0], runtime.node().accepted[1]);
    // Four turns' worth of pings, written while the loop does not turn.
    let mut pings = BytesMut::new();
    let mut count = 0;
    while pings.len() < 4 * READ_TURN_BYTES_MAX {
        encode(count, &Packet::Ping(neo_proto::Ping {}), &mut pings);
        count += 1;
    }
    let writer = std::thread::spawn(move || {
        flood.write_all(&pings).unwrap();
        flood
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut one = BytesMut::new();
    encode(0, &Packet::Ping(neo_proto::Ping {}), &mut one);
    polite.write_all(&one).unwrap();
    assert!(turn_until(&mut runtime, |node| node
        .pings
        .contains(&polite_conn)));
    let before = runtime
        .node()
        .pings
        .iter()
        .filter(|&&c| c == flood_conn)
        .count();
    assert!(
        before < count as usize,
        "the polite ping waited for all {count} of the flood"
    );
    // The rest of the flood is read in later turns, without new events.
    assert!(turn_until(&mut runtime, |node| {
        node.pings.iter().filter(|&&c| c == flood_conn).count() == count as usize
    }));
    drop(writer.join().unwrap());
}

#[test]
fn silent_peers_are_dropped_and_connections_capped() {
    let (mut runtime, addr) = flooder(0);
    runtime.set_handshake_timeout(Duration::from_millis(200));
    runtime.set_connections_max(2);
    // Says nothing: dropped once the handshake is overdue.
    let mut silent = TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut closed = false;
    let mut buf = [0; 64];
    while !closed && Instant::now() < deadline {
        runtime.turn(Some(Duration::from_millis(10))).unwrap();
        // The node's own handshake comes first; then the end.
        closed = match silent.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
    }
    assert!(closed, "the silent peer is still connected");
    // Two peers that handshake fill the node; a third is refused.
    let _first = stalled_peer(&addr);
    let _second = stalled_peer(&addr);
    assert!(turn_until(&mut runtime, |node| node.accepted.len() == 2));
    let mut third = stalled_peer(&addr);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..20 {
        runtime.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let mut rest = Vec::new();
    let _ = third.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the third peer got {} bytes", rest.len());
    assert_eq!(runtime.node().accepted.len(), 2);
}
