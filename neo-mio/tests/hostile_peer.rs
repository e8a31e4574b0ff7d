//! A hostile peer against real `neo` processes on loopback.
//!
//! NEO has no authentication, and the primary tells every client the id,
//! address and identification timestamp of every storage: enough to pass
//! as one. The peer here (written with neo-proto, no node code) registers
//! as a client, learns the storages from the master, passes as one
//! storage to the other and to the master, and sends requests whose
//! numbers are out of range, of every kind the nodes handle. Each must be
//! refused on that connection alone: after each one every process still
//! runs and answers, and a client's commit and read still succeed.

mod cluster;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cluster::{commit_one, Cluster, Start};
use neo_proto::*;

/// How long the peer waits for an answer or a close.
const WAIT: Duration = Duration::from_secs(10);

/// One connection of the hostile peer: raw NEO over TCP.
struct Peer {
    stream: TcpStream,
    decoder: Decoder,
    next_msg_id: u32,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        stream.write_all(&HANDSHAKE).unwrap();
        Peer {
            stream,
            decoder: Decoder::new(),
            next_msg_id: 0,
        }
    }

    fn send(&mut self, packet: impl Into<Packet>) -> u32 {
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let mut bytes = BytesMut::new();
        encode(msg_id, &packet.into(), &mut bytes);
        self.stream.write_all(&bytes).unwrap();
        msg_id
    }

    /// The next packet, or `None` once the node closed the connection.
    fn receive(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0; 64 * 1024];
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("the node speaks NEO") {
                return Some(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no answer within {WAIT:?}");
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading from the node: {e}"),
            }
        }
    }

    /// Identifies; the node's AcceptIdentification.
    fn identify(&mut self, request: RequestIdentification) -> AcceptIdentification {
        let msg_id = self.send(request);
        loop {
            let frame = self.receive().expect("identification answered");
            match frame.packet {
                Packet::AcceptIdentification(accept) if frame.msg_id == msg_id => return accept,
                Packet::Error(error) => panic!("identification refused: {error:?}"),
                _ => {}
            }
        }
    }

    /// Sends `packet` and expects a protocol error answering it, then the
    /// connection closed.
    fn refused(mut self, packet: Packet) {
        let name = packet.name();
        let msg_id = self.send(packet);
        loop {
            match self.receive() {
                Some(Frame {
                    msg_id: id,
                    packet: Packet::Error(error),
                }) if id == msg_id => {
                    assert_eq!(
                        error.code,
                        ErrorCode::ProtocolError,
                        "{name}: {}",
                        String::from_utf8_lossy(&error.message)
                    );
                    break;
                }
                Some(_) => continue, // notifications
                None => panic!("{name}: closed without a protocol error"),
            }
        }
        while self.receive().is_some() {}
    }
}

fn request(
    cluster: &str,
    node_type: NodeType,
    nid: Option<Nid>,
    address: Option<Address>,
    id_timestamp: Option<Timestamp>,
) -> RequestIdentification {
    RequestIdentification {
        node_type,
        nid,
        address,
        cluster_name: Bytes::copy_from_slice(cluster.as_bytes()),
        id_timestamp,
        extra: Map::new(),
    }
}

/// What the master tells a client about every node, until both storages
/// are known RUNNING.
fn learn_storages(peer: &mut Peer) -> Vec<NodeInfo> {
    let mut storages: Vec<NodeInfo> = Vec::new();
    while storages.len() < 2 {
        let frame = peer.receive().expect("the master keeps the client");
        if let Packet::NotifyNodeInformation(notification) = frame.packet {
            for node in notification.nodes {
                if node.node_type == NodeType::Storage && node.state == NodeState::Running {
                    storages.retain(|s| s.nid != node.nid);
                    storages.push(node);
                }
            }
        }
    }
    storages
}

fn socket(address: &Address) -> SocketAddr {
    format!(
        "{}:{}",
        String::from_utf8_lossy(&address.host),
        address.port
    )
    .parse()
    .unwrap()
}

#[test]
fn a_peer_passing_as_a_storage_cannot_take_a_node_down() {
    let cluster = Cluster::start("hostile", 1, 2, 1, Start::Auto);
    let mut client = cluster.client(Duration::from_secs(30));
    commit_one(&mut client, "before").unwrap();
    let master = cluster.master_addrs[0];

    // A client, as far as the master can tell.
    let mut spy = Peer::connect(master);
    spy.identify(request(&cluster.name, NodeType::Client, None, None, None));
    let storages = learn_storages(&mut spy);
    let (target, disguise) = (&storages[0], &storages[1]);
    let as_storage = || {
        request(
            &cluster.name,
            NodeType::Storage,
            disguise.nid,
            disguise.address.clone(),
            disguise.id_timestamp,
        )
    };

    let (tid_min, tid_max) = (Tid::ZERO, Tid::MAX);
    let storage_requests: Vec<Packet> = vec![
        AskFetchTransactions {
            partition: 6,
            length: 1000,
            min_tid: tid_min,
            max_tid: tid_max,
            known_tids: vec![],
            ask_pack_info: true,
        }
        .into(),
        AskFetchObjects {
            partition: u32::MAX,
            length: u32::MAX,
            min_tid: tid_min,
            max_tid: tid_max,
            min_oid: Oid(0),
            known: Map::new(),
        }
        .into(),
        AskCheckTIDRange {
            partition: 1 << 20,
            length: u32::MAX,
            min_tid: tid_min,
            max_tid: tid_max,
        }
        .into(),
        AskCheckSerialRange {
            partition: 7,
            length: 1,
            min_tid: tid_min,
            max_tid: tid_max,
            min_oid: Oid(0),
        }
        .into(),
        // Client requests from a storage, and an empty range.
        AskTIDs {
            first: 10,
            last: 5,
            partition: 0,
        }
        .into(),
        AskObjectHistory {
            oid: Oid(0),
            first: u64::MAX,
            last: 0,
        }
        .into(),
        // A partition table with no partition.
        SendPartitionTable {
            ptid: Some(Ptid(u64::MAX)),
            num_replicas: 0,
            rows: Vec::new(),
        }
        .into(),
    ];
    let check_cluster = |step: &str, client: &mut neo_mio::client::NeoClient| {
        for node in cluster.masters.iter().chain(&cluster.storages) {
            assert!(
                node.is_running(),
                "{} died after {step}\n{}",
                node.name,
                cluster.logs()
            );
        }
        let (oid, tid) = commit_one(client, step)
            .unwrap_or_else(|e| panic!("commit after {step}: {e}\n{}", cluster.logs()));
        assert_eq!(
            client.load(oid).unwrap(),
            (Bytes::from(step.to_string()), tid)
        );
    };
    for packet in storage_requests {
        let step = format!("{} to a storage", packet.name());
        let mut impostor = Peer::connect(socket(target.address.as_ref().unwrap()));
        impostor.identify(as_storage());
        impostor.refused(packet);
        check_cluster(&step, &mut client);
    }

    // To the master: the storage's identity is taken (it is connected),
    // and what a client may not ask.
    let impostor = Peer::connect(master);
    impostor.refused(as_storage().into());
    check_cluster("a second storage with that id", &mut client);
    let master_requests: Vec<Packet> = vec![
        AskBeginTransaction {
            tid: Some(Tid(u64::MAX)),
        }
        .into(),
        AskFinishTransaction {
            ttid: Tid(1),
            oids: vec![],
            deleted: vec![],
            checked: vec![],
            pack: None,
        }
        .into(),
        NotifyPartitionCorrupted {
            partition: u32::MAX,
            nids: vec![],
        }
        .into(),
    ];
    for packet in master_requests {
        let step = format!("{} to the master", packet.name());
        let mut peer = Peer::connect(master);
        peer.identify(request(&cluster.name, NodeType::Client, None, None, None));
        peer.refused(packet);
        check_cluster(&step, &mut client);
    }
    // A client asking for four billion oids gets a bounded list.
    let mut greedy = Peer::connect(master);
    greedy.identify(request(&cluster.name, NodeType::Client, None, None, None));
    let msg_id = greedy.send(AskNewOIDs { count: u32::MAX });
    let oids = loop {
        let frame = greedy.receive().expect("answered");
        if let (true, Packet::AnswerNewOIDs(answer)) = (frame.msg_id == msg_id, frame.packet) {
            break answer.oids;
        }
    };
    assert!(
        !oids.is_empty() && oids.len() <= 1000,
        "{} oids",
        oids.len()
    );
    check_cluster("AskNewOIDs of u32::MAX", &mut client);
}
