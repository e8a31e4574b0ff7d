//! A storage driven by hand, playing its master and its clients: what it
//! promises is on disk before it says so, and what a client may not send
//! gets a protocol error and a closed connection while the storage goes on
//! serving everyone else, losing nothing.

mod support;

use bytes::Bytes;
use neo_core::storage::memory::MemoryStore;
use neo_core::storage::store::Store;
use neo_core::storage::{Storage, StorageConfig};
use neo_core::{ConnId, Input, Node, Output, Time};
use neo_proto::*;

const STORAGE: Nid = Nid(1);
const CLIENT: Nid = Nid::new(NodeType::Client, 1);
const OTHER_CLIENT: Nid = Nid::new(NodeType::Client, 2);
/// A storage of the cluster holding no cell: any client can learn its id
/// and timestamp from the master and pass as it.
const OTHER_STORAGE: Nid = Nid(2);

fn now() -> Time {
    Time::from_nanos(1_000_000_000)
}

fn addr(port: u16) -> Address {
    Address::new("127.0.0.1", port)
}

/// A storage and the connections we play.
struct Harness {
    storage: Storage<MemoryStore>,
    master: ConnId,
    /// Outputs drained so far and not inspected yet.
    outputs: Vec<Output<std::convert::Infallible>>,
    /// Whether the storage asked for a sync we have not done.
    sync_wanted: bool,
    /// How many times it asked for one.
    sync_requests: usize,
    /// Its log records, as formatted.
    logs: Vec<String>,
}

impl Harness {
    /// An operating storage holding both partitions of a 2-partition
    /// table, knowing two clients.
    fn new() -> Harness {
        let storage = Storage::new(
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
        let mut h = Harness {
            storage,
            master: ConnId::outgoing(0),
            outputs: Vec::new(),
            sync_wanted: false,
            sync_requests: 0,
            logs: Vec::new(),
        };
        h.drain();
        let master = h
            .outputs
            .iter()
            .find_map(|o| match o {
                Output::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .unwrap();
        h.master = master;
        h.storage.handle(now(), Input::Connected { conn: master });
        h.drain();
        let (msg_id, _) = h.take_sent(master).remove(0);
        h.packet(
            master,
            msg_id,
            AcceptIdentification {
                node_type: NodeType::Master,
                nid: Some(Nid::new(NodeType::Master, 1)),
                your_nid: Some(STORAGE),
            },
        );
        let node = |node_type, nid, port: Option<u16>, ts| NodeInfo {
            node_type,
            address: port.map(addr),
            nid: Some(nid),
            state: NodeState::Running,
            id_timestamp: Some(Timestamp(ts)),
        };
        h.packet(
            master,
            1,
            NotifyNodeInformation {
                timestamp: Timestamp(10.0),
                nodes: vec![
                    node(
                        NodeType::Master,
                        Nid::new(NodeType::Master, 1),
                        Some(10000),
                        0.5,
                    ),
                    node(NodeType::Storage, STORAGE, Some(20000), 1.0),
                    node(NodeType::Storage, OTHER_STORAGE, Some(20001), 1.5),
                    node(NodeType::Client, CLIENT, None, 2.0),
                    node(NodeType::Client, OTHER_CLIENT, None, 3.0),
                ],
            },
        );
        let cell = CellInfo {
            nid: STORAGE,
            state: CellState::UpToDate,
        };
        h.packet(
            master,
            2,
            SendPartitionTable {
                ptid: Some(Ptid(1)),
                num_replicas: 0,
                rows: vec![vec![cell.clone()].into(), vec![cell].into()],
            },
        );
        h.packet(master, 3, StartOperation { backup: false });
        h.sync();
        assert!(h.storage.is_operational());
        h.outputs.clear();
        h
    }

    fn drain(&mut self) {
        while let Some(output) = self.storage.poll_output() {
            match output {
                Output::SyncStore => {
                    self.sync_wanted = true;
                    self.sync_requests += 1;
                }
                Output::Log { message, .. } => self.logs.push(message),
                other => self.outputs.push(other),
            }
        }
    }

    fn packet(&mut self, conn: ConnId, msg_id: u32, packet: impl Into<Packet>) {
        self.storage.handle(
            now(),
            Input::Packet {
                conn,
                msg_id,
                packet: packet.into(),
            },
        );
        self.drain();
    }

    /// The runtime syncs the store.
    fn sync(&mut self) {
        assert!(self.sync_wanted, "nothing asked for a sync");
        self.sync_wanted = false;
        self.storage.sync_store(now());
        self.drain();
    }

    /// Packets sent on `conn` since the last call.
    fn take_sent(&mut self, conn: ConnId) -> Vec<(u32, Packet)> {
        support::take_sent(&mut self.outputs, conn)
    }

    fn closed(&self, conn: ConnId) -> bool {
        support::closed(&self.outputs, conn)
    }

    /// A client votes its transaction; the answer comes once it is
    /// durable.
    fn vote_durably(&mut self, conn: ConnId, msg_id: u32, ttid: Tid, oids: Vec<Oid>) {
        self.packet(
            conn,
            msg_id,
            AskStoreTransaction {
                ttid,
                user: Bytes::new(),
                description: Bytes::new(),
                extension: Bytes::new(),
                oids,
                pack: None,
            },
        );
        self.sync();
        assert_eq!(
            self.take_sent(conn),
            vec![(msg_id, AnswerStoreTransaction {}.into())]
        );
    }

    /// A client connects and identifies.
    fn client(&mut self, n: u64, nid: Nid, ts: f64) -> ConnId {
        self.identified(n, NodeType::Client, nid, None, ts)
    }

    /// A peer connects and identifies as `node_type`.
    fn identified(
        &mut self,
        n: u64,
        node_type: NodeType,
        nid: Nid,
        address: Option<Address>,
        ts: f64,
    ) -> ConnId {
        let conn = ConnId::incoming(n);
        self.storage.handle(now(), Input::Accepted { conn });
        self.packet(
            conn,
            0,
            RequestIdentification {
                node_type,
                nid: Some(nid),
                address,
                cluster_name: Bytes::from_static(b"main"),
                id_timestamp: Some(Timestamp(ts)),
                extra: Map::new(),
            },
        );
        let sent = self.take_sent(conn);
        assert!(
            matches!(&sent[..], [(0, Packet::AcceptIdentification(_))]),
            "{sent:?}"
        );
        conn
    }
}

fn store_packet(oid: u64, serial: Tid, ttid: Tid, data: &'static [u8]) -> AskStoreObject {
    let data = neo_core::data::pack(Bytes::from_static(data), false);
    AskStoreObject {
        oid: Oid(oid),
        serial,
        compression: data.compression,
        checksum: data.checksum,
        data: data.data,
        data_serial: None,
        ttid,
    }
}

fn assert_protocol_error(sent: &[(u32, Packet)], msg_id: u32) {
    match sent {
        [(id, Packet::Error(error))] => {
            assert_eq!(*id, msg_id);
            assert_eq!(error.code, ErrorCode::ProtocolError);
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn votes_and_locks_are_answered_only_once_durable() {
    let mut h = Harness::new();
    let client = h.client(1, CLIENT, 2.0);
    let ttid = Tid(0x0405_e700_0000_0002);
    h.packet(client, 1, store_packet(1, Tid::ZERO, ttid, b"data"));
    assert_eq!(
        h.take_sent(client),
        vec![(1, AnswerStoreObject { conflict: None }.into())]
    );
    h.packet(
        client,
        2,
        AskStoreTransaction {
            ttid,
            user: Bytes::new(),
            description: Bytes::new(),
            extension: Bytes::new(),
            oids: vec![Oid(1)],
            pack: None,
        },
    );
    assert!(
        h.take_sent(client).is_empty(),
        "the vote is not on disk yet"
    );
    // A crash now would lose the vote: the client was not told.
    assert!(h.storage.store().has_unsynced_writes());
    h.sync();
    assert_eq!(
        h.take_sent(client),
        vec![(2, AnswerStoreTransaction {}.into())]
    );
    let tid = Tid(ttid.0 + 2);
    let master = h.master;
    h.packet(
        master,
        4,
        AskLockInformation {
            ttid,
            tid,
            pack: false,
        },
    );
    assert!(
        h.take_sent(master).is_empty(),
        "the lock is not on disk yet"
    );
    h.sync();
    assert_eq!(
        h.take_sent(master),
        vec![(4, AnswerInformationLocked { ttid }.into())]
    );
    // A crash between lock and unlock keeps the locked transaction for
    // verification to commit.
    let mut crashed = h.storage.store().clone();
    crashed.crash();
    assert_eq!(crashed.unfinished_transactions(), vec![(ttid, Some(tid))]);
    // Reads of the oid wait for the unlock.
    h.packet(
        client,
        3,
        AskObject {
            oid: Oid(1),
            at: None,
            before: None,
        },
    );
    assert!(h.take_sent(client).is_empty());
    h.packet(master, 5, NotifyUnlockInformation { ttid });
    match &h.take_sent(client)[..] {
        [(3, Packet::AnswerObject(answer))] => assert_eq!(answer.serial, tid),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.storage.store().final_tid(ttid), Some(tid));
}

/// Group commit: votes that arrive before the store is synced wait for
/// the same sync, and one fsync answers them all.
#[test]
fn one_sync_answers_every_vote_that_waited_for_it() {
    let mut h = Harness::new();
    let clients = [
        (h.client(1, CLIENT, 2.0), Tid(0x0405_e700_0000_0010)),
        (h.client(2, OTHER_CLIENT, 3.0), Tid(0x0405_e700_0000_0011)),
    ];
    let requests_before = h.sync_requests;
    for (i, &(conn, ttid)) in clients.iter().enumerate() {
        h.packet(
            conn,
            1,
            store_packet(1 + i as u64, Tid::ZERO, ttid, b"data"),
        );
        h.packet(
            conn,
            2,
            AskStoreTransaction {
                ttid,
                user: Bytes::new(),
                description: Bytes::new(),
                extension: Bytes::new(),
                oids: vec![Oid(1 + i as u64)],
                pack: None,
            },
        );
        let sent = h.take_sent(conn);
        assert_eq!(sent, vec![(1, AnswerStoreObject { conflict: None }.into())]);
    }
    assert_eq!(h.sync_requests - requests_before, 1, "one sync asked for");
    h.sync();
    for &(conn, _) in &clients {
        assert_eq!(
            h.take_sent(conn),
            vec![(2, AnswerStoreTransaction {}.into())]
        );
    }
    assert!(!h.storage.store().has_unsynced_writes());
}

#[test]
fn bad_client_requests_close_that_client_only() {
    let mut h = Harness::new();
    let good = h.client(1, CLIENT, 2.0);
    let ttid = Tid(0x0405_e700_0000_0002);
    h.packet(good, 1, store_packet(1, Tid::ZERO, ttid, b"kept"));
    assert_eq!(h.take_sent(good).len(), 1);

    // Each of these closes the offending connection.
    let bad_requests: Vec<Packet> = vec![
        // A vote for a transaction it never stored anything for.
        AskVoteTransaction { ttid: Tid(77) }.into(),
        // An unknown compression.
        AskStoreObject {
            compression: 2,
            ..store_packet(3, Tid::ZERO, Tid(78), b"x")
        }
        .into(),
        // Data not matching its checksum.
        AskStoreObject {
            data: Bytes::from_static(b"tampered"),
            ..store_packet(3, Tid::ZERO, Tid(79), b"x")
        }
        .into(),
        // An empty history range.
        AskObjectHistory {
            oid: Oid(1),
            first: 5,
            last: 5,
        }
        .into(),
        // A listing from the end of the u64s (it would load everything).
        AskTIDs {
            first: u64::MAX - 1,
            last: u64::MAX,
            partition: 0,
        }
        .into(),
        // A packet only the master sends.
        AskLockInformation {
            ttid,
            tid: ttid,
            pack: false,
        }
        .into(),
    ];
    for (i, packet) in bad_requests.into_iter().enumerate() {
        let bad = h.client(10 + i as u64, OTHER_CLIENT, 3.0);
        h.packet(bad, 7, packet);
        let sent = h.take_sent(bad);
        assert_protocol_error(&sent, 7);
        assert!(h.closed(bad));
        h.outputs.clear();
        // The other client's transaction is untouched.
        h.storage.handle(now(), Input::Closed { conn: bad });
        h.drain();
    }
    h.vote_durably(good, 2, ttid, vec![Oid(1)]);
    assert!(h.storage.is_operational());
}

#[test]
fn an_impostor_storage_asking_past_the_table_is_dropped_alone() {
    let mut h = Harness::new();
    let client = h.client(1, CLIENT, 2.0);
    let (min_tid, max_tid) = (Tid::ZERO, Tid::MAX);
    let past_the_table: Vec<Packet> = vec![
        AskFetchTransactions {
            partition: 2,
            length: 1000,
            min_tid,
            max_tid,
            known_tids: vec![],
            ask_pack_info: true,
        }
        .into(),
        AskFetchObjects {
            partition: u32::MAX,
            length: 1000,
            min_tid,
            max_tid,
            min_oid: Oid(0),
            known: Map::new(),
        }
        .into(),
        AskCheckTIDRange {
            partition: 7,
            length: 1000,
            min_tid,
            max_tid,
        }
        .into(),
        AskCheckSerialRange {
            partition: 2,
            length: 1000,
            min_tid,
            max_tid,
            min_oid: Oid(0),
        }
        .into(),
    ];
    for (i, packet) in past_the_table.into_iter().enumerate() {
        let impostor = h.identified(
            10 + i as u64,
            NodeType::Storage,
            OTHER_STORAGE,
            Some(addr(20001)),
            1.5,
        );
        h.packet(impostor, 3, packet);
        assert_protocol_error(&h.take_sent(impostor), 3);
        assert!(h.closed(impostor));
        h.outputs.clear();
    }
    // Lengths at the top of their range are clamped, not overflowed.
    let impostor = h.identified(20, NodeType::Storage, OTHER_STORAGE, Some(addr(20001)), 1.5);
    for partition in 0..2 {
        h.packet(
            impostor,
            4,
            AskFetchTransactions {
                partition,
                length: u32::MAX,
                min_tid,
                max_tid,
                known_tids: vec![Tid(5)],
                ask_pack_info: false,
            },
        );
        let sent = h.take_sent(impostor);
        assert!(
            matches!(&sent[..], [(4, Packet::AnswerFetchTransactions(a))] if a.to_delete == [Tid(5)]),
            "{sent:?}"
        );
    }
    // The storage goes on serving its client.
    h.packet(
        client,
        1,
        AskObject {
            oid: Oid(1),
            at: None,
            before: None,
        },
    );
    let sent = h.take_sent(client);
    assert!(
        matches!(&sent[..], [(1, Packet::Error(e))] if e.code == ErrorCode::OidDoesNotExist),
        "{sent:?}"
    );
    assert!(h.storage.is_operational());
}

#[test]
fn a_client_cannot_touch_another_clients_transaction() {
    let mut h = Harness::new();
    let owner = h.client(1, CLIENT, 2.0);
    let ttid = Tid(0x0405_e700_0000_0002);
    h.packet(owner, 1, store_packet(1, Tid::ZERO, ttid, b"mine"));
    assert_eq!(h.take_sent(owner).len(), 1);
    let meddling: Vec<Packet> = vec![
        AbortTransaction { ttid, nids: vec![] }.into(),
        store_packet(2, Tid::ZERO, ttid, b"theirs").into(),
        AskVoteTransaction { ttid }.into(),
    ];
    for (i, packet) in meddling.into_iter().enumerate() {
        let other = h.client(10 + i as u64, OTHER_CLIENT, 3.0);
        h.packet(other, 5, packet);
        let logged = h.logs.iter().any(|line| {
            line.contains(&format!("protocol error from client {OTHER_CLIENT} on"))
                && line.contains(".ttid: ")
        });
        assert!(logged, "the log names the peer and the field: {:?}", h.logs);
        assert_protocol_error(&h.take_sent(other), 5);
        assert!(h.closed(other));
        h.outputs.clear();
    }
    h.vote_durably(owner, 2, ttid, vec![Oid(1)]);
}

#[test]
fn reads_of_partitions_not_readable_here_are_refused_without_closing() {
    let mut h = Harness::new();
    // The master outdates partition 1 of ours.
    let master = h.master;
    h.packet(
        master,
        6,
        NotifyPartitionChanges {
            ptid: Ptid(2),
            num_replicas: 0,
            changes: vec![CellChange {
                offset: 1,
                nid: STORAGE,
                state: CellState::OutOfDate,
            }],
        },
    );
    let client = h.client(1, CLIENT, 2.0);
    h.packet(
        client,
        1,
        AskObject {
            oid: Oid(1),
            at: None,
            before: None,
        },
    );
    match &h.take_sent(client)[..] {
        [(1, Packet::Error(error))] => assert_eq!(error.code, ErrorCode::NonReadableCell),
        other => panic!("{other:?}"),
    }
    assert!(!h.closed(client));
    // Stores to it are taken without lock (its data may be incomplete).
    h.packet(client, 2, store_packet(1, Tid::ZERO, Tid(99), b"x"));
    assert_eq!(
        h.take_sent(client),
        vec![(
            2,
            AnswerStoreObject {
                conflict: Some(Tid::ZERO)
            }
            .into()
        )]
    );
}

#[test]
fn a_lock_for_an_unknown_transaction_drops_the_master_connection_not_the_data() {
    let mut h = Harness::new();
    let client = h.client(1, CLIENT, 2.0);
    let ttid = Tid(0x0405_e700_0000_0002);
    h.packet(client, 1, store_packet(1, Tid::ZERO, ttid, b"data"));
    let master = h.master;
    // Locking a transaction it never heard of: missing its writes, the
    // storage must not pretend (NEO/py's 13.3; acknowledging it would be
    // unsafe when the client skipped it believing it down).
    h.packet(
        master,
        9,
        AskLockInformation {
            ttid: Tid(5),
            tid: Tid(6),
            pack: false,
        },
    );
    assert_protocol_error(&h.take_sent(master), 9);
    assert!(h.closed(master));
    assert!(!h.storage.is_operational());
    // Nothing that was durable is lost; it looks for the master again.
    assert_eq!(h.storage.store().partition_table().unwrap().ptid, Ptid(1));
    let retry = h.storage.poll_timeout().expect("it retries");
    h.storage.handle(retry, Input::Timeout);
    h.drain();
    assert!(h
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Connect { .. })));
}

/// Commits `count` objects from oid 1 in one transaction: stores, vote,
/// lock, unlock. Returns the TID.
fn commit_many(
    h: &mut Harness,
    client: ConnId,
    ttid: Tid,
    serial: Tid,
    count: u64,
    data: &'static [u8],
) -> Tid {
    for oid in 1..=count {
        h.packet(client, oid as u32, store_packet(oid, serial, ttid, data));
    }
    let answers = h.take_sent(client);
    assert_eq!(answers.len(), count as usize);
    h.packet(
        client,
        0,
        AskStoreTransaction {
            ttid,
            user: Bytes::new(),
            description: Bytes::new(),
            extension: Bytes::new(),
            oids: (1..=count).map(Oid).collect(),
            pack: None,
        },
    );
    h.sync();
    h.take_sent(client);
    let tid = Tid(ttid.0 + 2);
    let master = h.master;
    h.packet(
        master,
        100,
        AskLockInformation {
            ttid,
            tid,
            pack: false,
        },
    );
    h.sync();
    h.take_sent(master);
    h.packet(master, 101, NotifyUnlockInformation { ttid });
    tid
}

#[test]
fn a_pack_goes_by_chunks_and_requests_are_served_in_between() {
    let mut h = Harness::new();
    let client = h.client(1, CLIENT, 2.0);
    // 1,200 objects per partition, two revisions each.
    let t1 = commit_many(
        &mut h,
        client,
        Tid(0x0405_e700_0000_0002),
        Tid::ZERO,
        2400,
        b"old",
    );
    let t2 = commit_many(&mut h, client, Tid(t1.0 + 2), t1, 2400, b"new");
    // Identical data is stored once.
    assert_eq!(h.storage.store().data_rows(), 2);
    // The master announces an approved order; the storage asks for it.
    let master = h.master;
    let pack_id = Tid(t2.0 + 2);
    h.packet(
        master,
        20,
        NotifyPackSigned {
            approved: vec![pack_id],
            rejected: vec![],
        },
    );
    let asked = h.take_sent(master);
    let msg_id = match &asked[..] {
        [(id, Packet::AskPackOrders(ask))] => {
            assert_eq!(ask.min_pack_id, Tid(1));
            *id
        }
        other => panic!("{other:?}"),
    };
    h.packet(
        master,
        msg_id,
        AnswerPackOrders {
            orders: vec![PackOrder {
                pack_id,
                approved: Some(true),
                partial: false,
                oids: None,
                pack_tid: t2,
            }],
        },
    );
    // One bounded chunk per wake-up; a read in between is answered at once.
    let mut steps = 0;
    let mut read_between = false;
    while h.storage.poll_timeout() == Some(now()) {
        h.storage.handle(now(), Input::Timeout);
        h.drain();
        steps += 1;
        assert!(steps < 10, "the pack does not end");
        if !read_between {
            h.packet(
                client,
                9000,
                AskObject {
                    oid: Oid(2400),
                    at: None,
                    before: None,
                },
            );
            let answered = h.take_sent(client);
            assert!(matches!(&answered[..], [(9000, Packet::AnswerObject(_))]));
            read_between = true;
        }
    }
    assert_eq!(steps, 4, "two chunks per partition of 1,200 objects");
    // Completion is reported once the packed state is durable.
    assert!(h.take_sent(master).is_empty());
    h.sync();
    let reported: Vec<Packet> = h.take_sent(master).into_iter().map(|(_, p)| p).collect();
    assert_eq!(reported, vec![NotifyPackCompleted { pack_id }.into()]);
    // What no state from t2 on needs is gone; t2's revisions remain.
    for oid in [1, 1200, 2400] {
        assert_eq!(
            h.storage.store().object(Oid(oid), Some(t1), None),
            neo_core::storage::store::ObjectLookup::NotFound
        );
        assert!(matches!(
            h.storage.store().object(Oid(oid), Some(t2), None),
            neo_core::storage::store::ObjectLookup::Found(_)
        ));
    }
    assert_eq!(h.storage.store().data_rows(), 1, "the old data went too");
}
