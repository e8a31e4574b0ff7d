//! Identification as NEO/py does it (protocol.md §11), and refusals:
//! an Error answering the offending packet's message id, then the
//! connection closed, the node carrying on.

use bytes::Bytes;
use neo_core::master::{Master, MasterConfig};
use neo_core::storage::memory::MemoryStore;
use neo_core::storage::{Storage, StorageConfig};
use neo_core::{ConnId, Input, Node, Output, Time, WallTime};
use neo_proto::*;

fn now() -> Time {
    Time::from_nanos(1_000_000_000)
}

fn wall() -> WallTime {
    WallTime::from_unix_secs_f64(1_767_225_600.0)
}

fn addr(port: u16) -> Address {
    Address::new("127.0.0.1", port)
}

fn drain<N: Node>(node: &mut N) -> Vec<Output<N::Event>> {
    std::iter::from_fn(|| node.poll_output())
        .filter(|o| !matches!(o, Output::Log { .. }))
        .collect()
}

fn sends<E>(outputs: &[Output<E>], conn: ConnId) -> Vec<(u32, Packet)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                conn: c,
                msg_id,
                packet,
            } if *c == conn => Some((*msg_id, packet.clone())),
            _ => None,
        })
        .collect()
}

fn closed<E>(outputs: &[Output<E>], conn: ConnId) -> bool {
    outputs
        .iter()
        .any(|o| matches!(o, Output::Close { conn: c } if *c == conn))
}

fn master() -> Master {
    let mut master = Master::new(
        MasterConfig {
            cluster: Bytes::from_static(b"main"),
            bind: addr(10000),
            masters: vec![addr(10000)],
            partitions: Partitions::new(2).unwrap(),
            replicas: 0,
            autostart: None,
            nid: None,
            storage_ping: MasterConfig::DEFAULT_STORAGE_PING,
        },
        now(),
        wall(),
    );
    drain(&mut master);
    master
}

fn identify(
    node_type: NodeType,
    nid: Option<Nid>,
    address: Option<Address>,
    cluster: &'static [u8],
) -> Packet {
    RequestIdentification {
        node_type,
        nid,
        address,
        cluster_name: Bytes::from_static(cluster),
        id_timestamp: None,
        extra: Map::new(),
    }
    .into()
}

/// Feeds an accepted connection and a first packet; returns the outputs.
fn connect_and_send<N: Node>(
    node: &mut N,
    n: u64,
    msg_id: u32,
    packet: Packet,
) -> (ConnId, Vec<Output<N::Event>>) {
    let conn = ConnId::incoming(n);
    node.handle(now(), Input::Accepted { conn });
    node.handle(
        now(),
        Input::Packet {
            conn,
            msg_id,
            packet,
        },
    );
    (conn, drain(node))
}

fn assert_refused<E>(
    outputs: &[Output<E>],
    conn: ConnId,
    msg_id: u32,
    code: ErrorCode,
    message: &str,
) {
    let sent = sends(outputs, conn);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, msg_id, "the error answers the offending packet");
    match &sent[0].1 {
        Packet::Error(error) => {
            assert_eq!(error.code, code);
            assert_eq!(String::from_utf8_lossy(&error.message), message);
        }
        other => panic!("expected an error, got {other}"),
    }
    assert!(closed(outputs, conn), "the connection must be closed");
}

#[test]
fn wrong_cluster_name_is_a_protocol_error() {
    let mut master = master();
    let (conn, outputs) = connect_and_send(
        &mut master,
        1,
        3,
        identify(NodeType::Storage, None, Some(addr(20000)), b"other"),
    );
    assert_refused(
        &outputs,
        conn,
        3,
        ErrorCode::ProtocolError,
        "invalid cluster name",
    );
    // The master carries on: the next storage is accepted.
    let (conn, outputs) = connect_and_send(
        &mut master,
        2,
        0,
        identify(NodeType::Storage, None, Some(addr(20000)), b"main"),
    );
    assert!(matches!(
        sends(&outputs, conn)[0].1,
        Packet::AcceptIdentification(_)
    ));
}

#[test]
fn anything_before_identification_is_refused() {
    let mut master = master();
    let (conn, outputs) =
        connect_and_send(&mut master, 1, 9, AskBeginTransaction { tid: None }.into());
    assert_refused(
        &outputs,
        conn,
        9,
        ErrorCode::ProtocolError,
        "unexpected packet AskBeginTransaction in identification",
    );
}

#[test]
fn our_own_address_is_a_conflict() {
    let mut master = master();
    let (conn, outputs) = connect_and_send(
        &mut master,
        1,
        0,
        identify(NodeType::Storage, None, Some(addr(10000)), b"main"),
    );
    assert_refused(
        &outputs,
        conn,
        0,
        ErrorCode::ProtocolError,
        "address conflict",
    );
}

#[test]
fn clients_wait_for_a_running_cluster() {
    let mut master = master();
    let (conn, outputs) = connect_and_send(
        &mut master,
        1,
        0,
        identify(NodeType::Client, None, None, b"main"),
    );
    assert_refused(
        &outputs,
        conn,
        0,
        ErrorCode::NotReady,
        "cluster is not running",
    );
}

/// A storage is accepted PENDING during recovery: the answer, then the
/// node list starting with itself (its id_timestamp), then AskRecovery.
#[test]
fn storage_accepted_during_recovery() {
    let mut master = master();
    let (conn, outputs) = connect_and_send(
        &mut master,
        1,
        0,
        identify(NodeType::Storage, Some(Nid(1)), Some(addr(20000)), b"main"),
    );
    let sent = sends(&outputs, conn);
    assert_eq!(
        sent[0],
        (
            0,
            AcceptIdentification {
                node_type: NodeType::Master,
                nid: Some(Nid(-0x0fff_ffff)),
                your_nid: Some(Nid(1)),
            }
            .into()
        )
    );
    let Packet::NotifyNodeInformation(nodes) = &sent[1].1 else {
        panic!("{:?}", sent[1])
    };
    assert_eq!(nodes.nodes[0].nid, Some(Nid(1)));
    assert_eq!(nodes.nodes[0].state, NodeState::Pending);
    assert!(nodes.nodes[0].id_timestamp.is_some());
    assert_eq!(sent[2].1, AskRecovery {}.into());
    // Another node presenting the same storage id is refused.
    let (conn2, outputs) = connect_and_send(
        &mut master,
        2,
        0,
        identify(NodeType::Storage, Some(Nid(1)), Some(addr(20001)), b"main"),
    );
    assert_refused(
        &outputs,
        conn2,
        0,
        ErrorCode::ProtocolError,
        "already connected",
    );
    // A taken temporary id is silently replaced instead.
    let admin_id = Nid(-0x2fff_ffff);
    let (conn3, outputs) = connect_and_send(
        &mut master,
        3,
        0,
        identify(NodeType::Admin, Some(admin_id), Some(addr(9999)), b"main"),
    );
    assert!(matches!(
        &sends(&outputs, conn3)[0].1,
        Packet::AcceptIdentification(a) if a.your_nid == Some(admin_id)
    ));
    let (conn4, outputs) = connect_and_send(
        &mut master,
        4,
        0,
        identify(NodeType::Admin, Some(admin_id), Some(addr(9998)), b"main"),
    );
    assert!(matches!(
        &sends(&outputs, conn4)[0].1,
        Packet::AcceptIdentification(a) if a.your_nid == Some(Nid(-0x2fff_fffe))
    ));
}

#[test]
fn a_node_presenting_the_id_of_another_type_is_refused() {
    let mut master = master();
    connect_and_send(
        &mut master,
        1,
        0,
        identify(NodeType::Storage, Some(Nid(1)), Some(addr(20000)), b"main"),
    );
    let (conn, outputs) = connect_and_send(
        &mut master,
        2,
        0,
        identify(NodeType::Admin, Some(Nid(1)), None, b"main"),
    );
    let sent = sends(&outputs, conn);
    assert!(
        matches!(&sent[..], [(0, Packet::Error(e))] if e.code == ErrorCode::ProtocolError
            && String::from_utf8_lossy(&e.message).contains("presents the id of")),
        "{sent:?}"
    );
    assert!(closed(&outputs, conn));
    // A storage's topology path is a few short strings.
    let mut request = identify(NodeType::Storage, None, Some(addr(20005)), b"main");
    if let Packet::RequestIdentification(r) = &mut request {
        let level = Value::Bin(Bytes::from_static(b"rack"));
        r.extra
            .0
            .push((Bytes::from_static(b"devpath"), Value::Array(vec![level; 9])));
    }
    let (conn, outputs) = connect_and_send(&mut master, 4, 0, request);
    let sent = sends(&outputs, conn);
    assert!(
        matches!(&sent[..], [(0, Packet::Error(e))] if e.code == ErrorCode::ProtocolError),
        "{sent:?}"
    );
    // A master whose timestamp is not a time cannot win an election.
    let mut request = identify(NodeType::Master, None, Some(addr(10001)), b"main");
    if let Packet::RequestIdentification(r) = &mut request {
        r.id_timestamp = Some(Timestamp(f64::NEG_INFINITY));
    }
    let (conn, outputs) = connect_and_send(&mut master, 3, 0, request);
    assert_refused(
        &outputs,
        conn,
        0,
        ErrorCode::ProtocolError,
        "RequestIdentification.id_timestamp is not a time",
    );
}

/// During recovery, before the table is known, a new primary gives the
/// lowest free id to a newcomer; a storage presenting that id as its own
/// has precedence: the newcomer is disconnected, to come back with a new
/// id (NEO/py would lock the real node out, or trust the empty newcomer).
#[test]
fn a_storage_presenting_its_id_has_precedence_over_a_newcomer() {
    let mut master = master();
    let (newcomer, outputs) = connect_and_send(
        &mut master,
        1,
        0,
        identify(NodeType::Storage, None, Some(addr(20000)), b"main"),
    );
    assert!(matches!(
        &sends(&outputs, newcomer)[0].1,
        Packet::AcceptIdentification(a) if a.your_nid == Some(Nid(1))
    ));
    let (owner, outputs) = connect_and_send(
        &mut master,
        2,
        0,
        identify(NodeType::Storage, Some(Nid(1)), Some(addr(20001)), b"main"),
    );
    assert!(closed(&outputs, newcomer));
    assert!(matches!(
        &sends(&outputs, owner)[0].1,
        Packet::AcceptIdentification(a) if a.your_nid == Some(Nid(1))
    ));
    // The newcomer comes back without id and gets another one.
    let (again, outputs) = connect_and_send(
        &mut master,
        3,
        0,
        identify(NodeType::Storage, None, Some(addr(20000)), b"main"),
    );
    assert!(matches!(
        &sends(&outputs, again)[0].1,
        Packet::AcceptIdentification(a) if a.your_nid == Some(Nid(2))
    ));
}

#[test]
fn an_answer_to_nothing_is_a_protocol_error() {
    let mut master = master();
    let (conn, _) = connect_and_send(
        &mut master,
        1,
        0,
        identify(NodeType::Admin, None, Some(addr(9999)), b"main"),
    );
    master.handle(
        now(),
        Input::Packet {
            conn,
            msg_id: 77,
            packet: AnswerLastTransaction { tid: Tid(1) }.into(),
        },
    );
    let outputs = drain(&mut master);
    assert_refused(
        &outputs,
        conn,
        77,
        ErrorCode::ProtocolError,
        "unexpected answer AnswerLastTransaction",
    );
}

fn storage() -> (Storage<MemoryStore>, ConnId) {
    let mut storage = Storage::new(
        StorageConfig {
            cluster: Bytes::from_static(b"main"),
            bind: addr(20000),
            masters: vec![addr(10000)],
            devpath: vec![],
            nid: None,
            seed: 1,
        },
        MemoryStore::new(),
        now(),
    )
    .unwrap();
    let master_conn = drain(&mut storage)
        .into_iter()
        .find_map(|o| match o {
            Output::Connect { conn, .. } => Some(conn),
            _ => None,
        })
        .unwrap();
    (storage, master_conn)
}

#[test]
fn a_storage_refuses_peers_until_operational() {
    let (mut storage, _) = storage();
    let mut request = identify(NodeType::Client, Some(Nid(-0x1fff_ffff)), None, b"main");
    if let Packet::RequestIdentification(r) = &mut request {
        r.id_timestamp = Some(Timestamp(1.0));
    }
    let (conn, outputs) = connect_and_send(&mut storage, 1, 0, request);
    assert_refused(&outputs, conn, 0, ErrorCode::NotReady, "not operational");
}

#[test]
fn a_storage_rejects_a_database_of_another_cluster() {
    use neo_core::storage::store::Store;
    let mut store = MemoryStore::new();
    store.set_cluster(Bytes::from_static(b"other"));
    store.sync();
    let error = Storage::new(
        StorageConfig {
            cluster: Bytes::from_static(b"main"),
            bind: addr(20000),
            masters: vec![addr(10000)],
            devpath: vec![],
            nid: None,
            seed: 1,
        },
        store,
        now(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the database belongs to cluster \"other\", not \"main\""
    );
}

/// A secondary master answers any identification with NotPrimaryMaster
/// naming its primary, then closes.
#[test]
fn a_secondary_names_its_primary() {
    let mut secondary = Master::new(
        MasterConfig {
            cluster: Bytes::from_static(b"main"),
            bind: addr(10001),
            masters: vec![addr(10000), addr(10001)],
            partitions: Partitions::new(2).unwrap(),
            replicas: 0,
            autostart: None,
            nid: None,
            storage_ping: MasterConfig::DEFAULT_STORAGE_PING,
        },
        now(),
        wall(),
    );
    // It tries to reach the other master, which accepts it as secondary.
    let outputs = drain(&mut secondary);
    let to_primary = outputs
        .iter()
        .find_map(|o| match o {
            Output::Connect { conn, addr: a } if *a == addr(10000) => Some(*conn),
            _ => None,
        })
        .unwrap();
    secondary.handle(now(), Input::Connected { conn: to_primary });
    let request_id = sends(&drain(&mut secondary), to_primary)[0].0;
    secondary.handle(
        now(),
        Input::Packet {
            conn: to_primary,
            msg_id: request_id,
            packet: AcceptIdentification {
                node_type: NodeType::Master,
                nid: Some(Nid(-0x0fff_ffff)),
                your_nid: Some(Nid(-0x0fff_fffe)),
            }
            .into(),
        },
    );
    drain(&mut secondary);
    assert!(!secondary.is_primary());
    let (conn, outputs) = connect_and_send(
        &mut secondary,
        1,
        0,
        identify(NodeType::Storage, None, Some(addr(20000)), b"main"),
    );
    let sent = sends(&outputs, conn);
    let Packet::NotPrimaryMaster(not_primary) = &sent[0].1 else {
        panic!("{sent:?}")
    };
    let primary = not_primary.primary.expect("the primary is named");
    assert_eq!(not_primary.known_masters[primary as usize], addr(10000));
    assert!(closed(&outputs, conn));
}
