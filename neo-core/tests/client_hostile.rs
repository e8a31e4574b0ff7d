//! A client driven by hand, playing its master and storages, some of them
//! lying: an answer that breaks the protocol closes that connection with a
//! logged protocol error naming the field, and the client carries on with
//! another replica or reconnects — never panicking, looping, or handing
//! the lie to the application.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use neo_core::client::{
    Answer, Client, ClientConfig, ClientError, ClientEvent, LoadMode, OpId, TxnId,
    LOADS_IN_FLIGHT_COUNT_MAX,
};
use neo_core::{ConnId, Input, Level, Node, Output, Time};
use neo_proto::*;

const MASTER: Nid = Nid::new(NodeType::Master, 1);
const CLIENT: Nid = Nid::new(NodeType::Client, 1);
const A: Nid = Nid(1);
const B: Nid = Nid(2);
/// The last committed TID when the client connects.
const LAST: Tid = Tid(100);

fn addr(port: u16) -> Address {
    Address::new("127.0.0.1", port)
}

fn storage_addr(nid: Nid) -> Address {
    addr(20000 + nid.0 as u16)
}

type ClientResult = Result<Answer, ClientError>;

/// A client and the peers we play.
struct Harness {
    client: Client,
    now: Time,
    master: ConnId,
    storages: Vec<Nid>,
    partitions: usize,
    /// Identified storage connections.
    links: BTreeMap<Nid, ConnId>,
    /// Outputs drained and not inspected yet (logs and events apart).
    outputs: Vec<Output<ClientEvent>>,
    logs: Vec<(Level, String)>,
    events: Vec<ClientEvent>,
    /// Timestamp of the next node notification.
    notified: f64,
}

impl Harness {
    /// A ready client of a cluster of `storages`, each holding every one
    /// of `partitions` partitions.
    fn new(storages: &[Nid], partitions: usize) -> Harness {
        let mut h = Harness::connecting(storages, partitions);
        h.serve(LAST);
        h
    }

    /// A client connected to its master and identified.
    fn connecting(storages: &[Nid], partitions: usize) -> Harness {
        let mut h = Harness::connecting_unidentified(storages, partitions);
        h.identify_with_master();
        h
    }

    /// A client whose connection to the master is about to come up.
    fn connecting_unidentified(storages: &[Nid], partitions: usize) -> Harness {
        let now = Time::from_nanos(1_000_000_000);
        let client = Client::new(
            ClientConfig::new(Bytes::from_static(b"main"), vec![addr(10000)]),
            now,
        );
        let mut h = Harness {
            client,
            now,
            master: ConnId::outgoing(u64::MAX >> 1),
            storages: storages.to_vec(),
            partitions,
            links: BTreeMap::new(),
            outputs: Vec::new(),
            logs: Vec::new(),
            events: Vec::new(),
            notified: 10.0,
        };
        h.drain();
        h
    }

    /// Connects and identifies with the master (the client's attempt).
    fn identify_with_master(&mut self) {
        let msg_id = self.ask_identification();
        self.packet(
            self.master,
            msg_id,
            AcceptIdentification {
                node_type: NodeType::Master,
                nid: Some(MASTER),
                your_nid: Some(CLIENT),
            },
        );
    }

    /// Brings up the client's connection to the master: returns the
    /// message id of its RequestIdentification.
    fn ask_identification(&mut self) -> u32 {
        let master = loop {
            let connect = self
                .outputs
                .iter()
                .position(|o| matches!(o, Output::Connect { addr: a, .. } if *a == addr(10000)));
            if let Some(index) = connect {
                let Output::Connect { conn, .. } = self.outputs.remove(index) else {
                    unreachable!()
                };
                break conn;
            }
            // Retrying later.
            let at = self
                .client
                .poll_timeout()
                .expect("a master connection attempt");
            self.now = self.now.max(at);
            self.input(Input::Timeout);
        };
        self.master = master;
        self.input(Input::Connected { conn: master });
        let (msg_id, request) = self.sent(master).remove(0);
        assert!(matches!(request, Packet::RequestIdentification(_)));
        msg_id
    }

    /// The master answers AskLastTransaction with `last`, then sends the
    /// nodes and the table: the client is ready.
    fn serve(&mut self, last: Tid) {
        self.answer_master(|p| matches!(p, Packet::AskLastTransaction(_)), {
            AnswerLastTransaction { tid: last }
        });
        let mut nodes = vec![NodeInfo {
            node_type: NodeType::Master,
            address: Some(addr(10000)),
            nid: Some(MASTER),
            state: NodeState::Running,
            id_timestamp: Some(Timestamp(0.5)),
        }];
        for &nid in &self.storages {
            nodes.push(NodeInfo {
                node_type: NodeType::Storage,
                address: Some(storage_addr(nid)),
                nid: Some(nid),
                state: NodeState::Running,
                id_timestamp: Some(Timestamp(1.0 + nid.0 as f64)),
            });
        }
        self.notified += 1.0;
        let notification = NotifyNodeInformation {
            timestamp: Timestamp(self.notified),
            nodes,
        };
        self.packet(self.master, 0, notification);
        self.send_table(self.partitions);
        assert!(self.client.is_ready(), "{:?}", self.logs);
        assert!(self
            .take_events()
            .iter()
            .any(|e| matches!(e, ClientEvent::Ready { .. })));
    }

    fn send_table(&mut self, partitions: usize) {
        let row: Vec<CellInfo> = self
            .storages
            .iter()
            .map(|&nid| CellInfo {
                nid,
                state: CellState::UpToDate,
            })
            .collect();
        let table = SendPartitionTable {
            ptid: Some(Ptid(1)),
            num_replicas: self.storages.len() as u32 - 1,
            rows: vec![row.into(); partitions],
        };
        self.packet(self.master, 0, table);
    }

    fn drain(&mut self) {
        while let Some(output) = self.client.poll_output() {
            match output {
                Output::Log { level, message } => self.logs.push((level, message)),
                Output::Event(event) => self.events.push(event),
                other => self.outputs.push(other),
            }
        }
    }

    fn input(&mut self, input: Input) {
        self.client.handle(self.now, input);
        self.drain();
    }

    fn packet(&mut self, conn: ConnId, msg_id: u32, packet: impl Into<Packet>) {
        let packet = packet.into();
        self.input(Input::Packet {
            conn,
            msg_id,
            packet,
        });
    }

    /// Packets sent on `conn` since the last call.
    fn sent(&mut self, conn: ConnId) -> Vec<(u32, Packet)> {
        support::take_sent(&mut self.outputs, conn)
    }

    fn closed(&self, conn: ConnId) -> bool {
        support::closed(&self.outputs, conn)
    }

    /// The one request sent to the master matching `is`, answered.
    fn answer_master(&mut self, is: impl Fn(&Packet) -> bool, answer: impl Into<Packet>) {
        let msg_id = self.master_request(is);
        self.packet(self.master, msg_id, answer);
    }

    /// The message id of the one request sent to the master matching `is`.
    fn master_request(&mut self, is: impl Fn(&Packet) -> bool) -> u32 {
        let master = self.master;
        let mut found: Vec<(u32, Packet)> = self.sent(master);
        found.retain(|(_, p)| is(p));
        assert_eq!(found.len(), 1, "{found:?}");
        found[0].0
    }

    /// Brings up the storage connections the client opened.
    fn connect_storages(&mut self) {
        loop {
            let connect = self
                .outputs
                .iter()
                .position(|o| matches!(o, Output::Connect { addr: a, .. } if *a != addr(10000)));
            let Some(index) = connect else {
                return;
            };
            let Output::Connect { conn, addr } = self.outputs.remove(index) else {
                unreachable!()
            };
            let nid = *self
                .storages
                .iter()
                .find(|&&n| storage_addr(n) == addr)
                .unwrap();
            self.input(Input::Connected { conn });
            let sent = self.sent(conn);
            let (msg_id, identification) = &sent[0];
            assert!(matches!(identification, Packet::RequestIdentification(_)));
            // What was queued goes once identified.
            self.packet(
                conn,
                *msg_id,
                AcceptIdentification {
                    node_type: NodeType::Storage,
                    nid: Some(nid),
                    your_nid: Some(CLIENT),
                },
            );
            self.links.insert(nid, conn);
        }
    }

    /// Requests each storage got since the last call.
    fn storage_requests(&mut self) -> Vec<(Nid, u32, Packet)> {
        self.connect_storages();
        let links: Vec<(Nid, ConnId)> = self.links.iter().map(|(n, c)| (*n, *c)).collect();
        let mut requests = Vec::new();
        for (nid, conn) in links {
            for (msg_id, packet) in self.sent(conn) {
                requests.push((nid, msg_id, packet));
            }
        }
        requests
    }

    /// The one request a storage got since the last call.
    fn storage_request(&mut self) -> (Nid, u32, Packet) {
        let mut requests = self.storage_requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests.remove(0)
    }

    fn answer_storage(&mut self, nid: Nid, msg_id: u32, answer: impl Into<Packet>) {
        let conn = self.links[&nid];
        self.packet(conn, msg_id, answer);
    }

    /// Whether the connection to `nid` was closed; it is forgotten.
    fn storage_closed(&mut self, nid: Nid) -> bool {
        let conn = self.links[&nid];
        let closed = self.closed(conn);
        if closed {
            self.links.remove(&nid);
            self.outputs
                .retain(|o| !matches!(o, Output::Close { conn: c } if *c == conn));
        }
        closed
    }

    fn take_events(&mut self) -> Vec<ClientEvent> {
        std::mem::take(&mut self.events)
    }

    /// The result of `op`, if it is done.
    fn result(&mut self, op: OpId) -> Option<ClientResult> {
        let index = self
            .events
            .iter()
            .position(|e| matches!(e, ClientEvent::Done { op: o, .. } if *o == op))?;
        match self.events.remove(index) {
            ClientEvent::Done { result, .. } => Some(result),
            _ => unreachable!(),
        }
    }

    /// Asserts one protocol error was logged, naming `field` (and the
    /// peer), and forgets the logs.
    fn assert_protocol_error(&mut self, field: &str) {
        let errors: Vec<&String> = self
            .logs
            .iter()
            .filter(|(level, m)| *level == Level::Error && m.contains("protocol error"))
            .map(|(_, m)| m)
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains(field), "{errors:?}");
        self.logs.clear();
    }

    fn assert_no_protocol_error(&self) {
        assert!(
            !self.logs.iter().any(|(_, m)| m.contains("protocol error")),
            "{:?}",
            self.logs
        );
    }

    // ------------------------------------------------------------ commit

    /// Begins a transaction.
    fn begin(&mut self, ttid: Tid) -> TxnId {
        let (txn, op) = self
            .client
            .tpc_begin(self.now, Bytes::new(), Bytes::new(), Bytes::new(), None)
            .unwrap();
        self.drain();
        self.answer_master(
            |p| matches!(p, Packet::AskBeginTransaction(_)),
            AnswerBeginTransaction { ttid },
        );
        assert_eq!(self.result(op), Some(Ok(Answer::Begun(ttid))));
        txn
    }

    fn store(&mut self, txn: TxnId, oid: Oid, serial: Tid, data: &'static [u8]) {
        let data = Some(Bytes::from_static(data));
        self.client.store(self.now, txn, oid, serial, data).unwrap();
        self.drain();
    }
}

fn object(oid: Oid, serial: Tid, next_serial: Option<Tid>, raw: &'static [u8]) -> AnswerObject {
    let data = neo_core::data::pack(Bytes::from_static(raw), false);
    AnswerObject {
        oid,
        serial,
        next_serial,
        compression: Some(data.compression),
        checksum: data.checksum,
        data: data.data,
        data_serial: None,
    }
}

fn transaction(tid: Tid, oids: Vec<Oid>) -> AnswerTransactionInformation {
    AnswerTransactionInformation {
        tid,
        user: Bytes::new(),
        description: Bytes::new(),
        extension: Bytes::new(),
        packed: false,
        oids,
    }
}

// ------------------------------------------------------------ the master

#[test]
fn an_invalidation_past_the_last_possible_tid_is_a_protocol_error() {
    let mut h = Harness::new(&[A], 1);
    // A request waiting on the master when it goes fails, as on a loss.
    let sync = h.client.sync(h.now);
    h.drain();
    let master = h.master;
    h.packet(
        master,
        0,
        InvalidateObjects {
            tid: Tid(u64::MAX),
            oids: vec![Oid(1)],
        },
    );
    assert!(h.closed(master));
    h.assert_protocol_error("InvalidateObjects.tid");
    assert_eq!(h.result(sync), Some(Err(ClientError::MasterLost)));
    assert_eq!(h.client.last_tid(), Some(LAST));
    assert!(!h
        .take_events()
        .iter()
        .any(|e| matches!(e, ClientEvent::Invalidated { .. })));
    // It reconnects, and a current load asks for what precedes the
    // snapshot, without overflow.
    h.identify_with_master();
    h.serve(Tid::MAX);
    let load = h.client.load(h.now, Oid(1), LoadMode::Current);
    h.drain();
    let (nid, msg_id, ask) = h.storage_request();
    let Packet::AskObject(ask) = ask else {
        panic!("{ask}")
    };
    assert_eq!(ask.before, Some(Tid(Tid::MAX.0 + 1)));
    h.answer_storage(nid, msg_id, object(Oid(1), Tid(7), None, b"x"));
    assert!(matches!(h.result(load), Some(Ok(Answer::Loaded(_)))));
}

#[test]
fn an_invalidation_going_back_is_a_protocol_error() {
    let mut h = Harness::new(&[A], 1);
    let master = h.master;
    h.packet(
        master,
        0,
        InvalidateObjects {
            tid: Tid(120),
            oids: vec![Oid(1)],
        },
    );
    assert_eq!(h.client.last_tid(), Some(Tid(120)));
    for tid in [Tid(120), Tid(110)] {
        let master = h.master;
        h.packet(
            master,
            0,
            InvalidateObjects {
                tid,
                oids: vec![Oid(1)],
            },
        );
        assert!(h.closed(master));
        h.assert_protocol_error("InvalidateObjects.tid");
        assert_eq!(h.client.last_tid(), Some(Tid(120)), "the snapshot stays");
        h.identify_with_master();
        h.serve(Tid(120));
    }
}

#[test]
fn a_last_transaction_past_the_last_possible_tid_is_a_protocol_error() {
    let mut h = Harness::connecting(&[A], 1);
    h.answer_master(
        |p| matches!(p, Packet::AskLastTransaction(_)),
        AnswerLastTransaction { tid: Tid(u64::MAX) },
    );
    assert!(h.closed(h.master));
    h.assert_protocol_error("AnswerLastTransaction.tid");
    assert_eq!(h.client.last_tid(), None);
    assert!(!h.client.is_ready());
    h.identify_with_master();
    h.serve(LAST);
    assert_eq!(h.client.last_tid(), Some(LAST));
}

#[test]
fn a_begin_answer_for_another_tid_than_asked_is_a_protocol_error() {
    let mut h = Harness::new(&[A], 1);
    let (_, op) = h
        .client
        .tpc_begin(
            h.now,
            Bytes::new(),
            Bytes::new(),
            Bytes::new(),
            Some(Tid(150)),
        )
        .unwrap();
    h.drain();
    h.answer_master(
        |p| matches!(p, Packet::AskBeginTransaction(_)),
        AnswerBeginTransaction { ttid: Tid(160) },
    );
    h.assert_protocol_error("AnswerBeginTransaction.ttid");
    assert_eq!(h.result(op), Some(Err(ClientError::MasterLost)));
}

#[test]
fn a_finish_answer_not_after_the_snapshot_is_a_protocol_error_and_the_finish_recovers() {
    let mut h = Harness::new(&[A], 1);
    let ttid = Tid(130);
    let txn = h.begin(ttid);
    h.store(txn, Oid(1), Tid(90), b"new");
    let (nid, msg_id, _) = h.storage_request();
    h.answer_storage(nid, msg_id, AnswerStoreObject { conflict: None });
    let finish = h.client.tpc_finish(h.now, txn);
    h.drain();
    let (nid, msg_id, vote) = h.storage_request();
    assert!(matches!(vote, Packet::AskStoreTransaction(_)), "{vote}");
    h.answer_storage(nid, msg_id, AnswerStoreTransaction {});
    let master = h.master;
    h.answer_master(
        |p| matches!(p, Packet::AskFinishTransaction(_)),
        AnswerTransactionFinished { ttid, tid: LAST },
    );
    assert!(h.closed(master));
    h.assert_protocol_error("AnswerTransactionFinished.tid");
    assert_eq!(h.client.last_tid(), Some(LAST));
    assert_eq!(h.result(finish), None, "what became of it is asked");
    h.identify_with_master();
    h.serve(Tid(140));
    h.answer_master(
        |p| matches!(p, Packet::AskFinalTID(a) if a.ttid == ttid),
        AnswerFinalTID {
            tid: Some(Tid(140)),
        },
    );
    assert_eq!(h.result(finish), Some(Ok(Answer::Finished(Tid(140)))));
}

#[test]
fn new_oids_beyond_what_was_asked_are_a_protocol_error_and_none_fails() {
    let mut h = Harness::new(&[A], 1);
    let op = h.client.new_oid(h.now);
    h.drain();
    h.answer_master(
        |p| matches!(p, Packet::AskNewOIDs(_)),
        AnswerNewOIDs {
            oids: (1..=101).map(Oid).collect(),
        },
    );
    h.assert_protocol_error("AnswerNewOIDs.oids");
    assert_eq!(h.result(op), Some(Err(ClientError::MasterLost)));
    h.identify_with_master();
    h.serve(LAST);
    // No oid left: the client does not ask again and again.
    let op = h.client.new_oid(h.now);
    h.drain();
    h.answer_master(
        |p| matches!(p, Packet::AskNewOIDs(_)),
        AnswerNewOIDs { oids: vec![] },
    );
    assert!(matches!(
        h.result(op),
        Some(Err(ClientError::OidsExhausted))
    ));
    assert!(h.sent(h.master).is_empty());
    h.assert_no_protocol_error();
}

// ------------------------------------------------------------ reads

#[test]
fn an_object_not_the_revision_asked_goes_to_another_replica_and_is_never_cached() {
    let lies = [
        object(Oid(2), Tid(50), None, b"other"),
        object(Oid(1), Tid(150), None, b"future"),
        object(Oid(1), Tid(50), Some(Tid(40)), b"backwards"),
        object(Oid(1), Tid(50), Some(Tid(60)), b"not current"),
    ];
    let fields = [
        "AnswerObject.oid",
        "AnswerObject.serial",
        "AnswerObject.next_serial",
        "AnswerObject.next_serial",
    ];
    for (lie, field) in lies.into_iter().zip(fields) {
        let mut h = Harness::new(&[A, B], 1);
        let load = h.client.load(h.now, Oid(1), LoadMode::Current);
        h.drain();
        let (liar, msg_id, _) = h.storage_request();
        h.answer_storage(liar, msg_id, lie);
        assert!(h.storage_closed(liar));
        h.assert_protocol_error(field);
        assert_eq!(h.result(load), None);
        let (honest, msg_id, ask) = h.storage_request();
        assert_ne!(honest, liar);
        assert!(matches!(ask, Packet::AskObject(_)));
        h.answer_storage(honest, msg_id, object(Oid(1), Tid(50), None, b"good"));
        let Some(Ok(Answer::Loaded(loaded))) = h.result(load) else {
            panic!("{:?}", h.events)
        };
        assert_eq!((&loaded.data[..], loaded.serial), (&b"good"[..], Tid(50)));
        // The honest answer is what the cache holds.
        let again = h.client.load(h.now, Oid(1), LoadMode::Current);
        h.drain();
        assert!(h.storage_requests().is_empty());
        assert!(matches!(h.result(again), Some(Ok(Answer::Loaded(l))) if l.data == loaded.data));
    }
    // Alone, the liar fails the load; nothing was cached.
    let mut h = Harness::new(&[A], 1);
    let load = h.client.load(h.now, Oid(1), LoadMode::At(Tid(50)));
    h.drain();
    let (liar, msg_id, _) = h.storage_request();
    h.answer_storage(liar, msg_id, object(Oid(1), Tid(60), None, b"lie"));
    h.assert_protocol_error("AnswerObject.serial");
    // A pass failed: a sync with the master, another pass, then it gives up.
    h.answer_master(|p| matches!(p, Packet::Ping(_)), Pong {});
    let (nid, msg_id, _) = h.storage_request();
    h.answer_storage(nid, msg_id, object(Oid(1), Tid(60), None, b"lie"));
    assert!(matches!(
        h.result(load),
        Some(Err(ClientError::NoStorage { .. }))
    ));
    let again = h.client.load(h.now, Oid(1), LoadMode::At(Tid(50)));
    h.drain();
    assert_eq!(h.storage_requests().len(), 1, "not cached: asked again");
    assert_eq!(h.result(again), None);
}

#[test]
fn a_history_longer_than_asked_or_of_another_object_goes_to_another_replica() {
    let entry = |serial| HistoryEntry {
        serial: Tid(serial),
        size: 3,
    };
    let lies = [
        (
            AnswerObjectHistory {
                oid: Oid(1),
                history: vec![entry(90), entry(80), entry(70)],
            },
            "AnswerObjectHistory.history",
        ),
        (
            AnswerObjectHistory {
                oid: Oid(2),
                history: vec![entry(90)],
            },
            "AnswerObjectHistory.oid",
        ),
    ];
    for (lie, field) in lies {
        let mut h = Harness::new(&[A, B], 1);
        let op = h.client.history(h.now, Oid(1), 2);
        h.drain();
        let (liar, msg_id, _) = h.storage_request();
        h.answer_storage(liar, msg_id, lie);
        assert!(h.storage_closed(liar));
        h.assert_protocol_error(field);
        let (honest, msg_id, _) = h.storage_request();
        let history = AnswerObjectHistory {
            oid: Oid(1),
            history: vec![entry(90), entry(80)],
        };
        h.answer_storage(honest, msg_id, history);
        // One transaction lookup per entry kept.
        let requests = h.storage_requests();
        assert_eq!(requests.len(), 2, "{requests:?}");
        for (nid, msg_id, ask) in requests {
            let Packet::AskTransactionInformation(ask) = ask else {
                panic!("{ask}")
            };
            h.answer_storage(nid, msg_id, transaction(ask.tid, vec![Oid(1)]));
        }
        let Some(Ok(Answer::History(history))) = h.result(op) else {
            panic!("{:?}", h.events)
        };
        let serials: Vec<Tid> = history.iter().map(|e| e.serial).collect();
        assert_eq!(serials, [Tid(90), Tid(80)]);
    }
}

#[test]
fn a_history_of_no_revision_asks_no_storage() {
    let mut h = Harness::new(&[A], 1);
    let op = h.client.history(h.now, Oid(1), 0);
    h.drain();
    assert_eq!(h.result(op), Some(Ok(Answer::History(vec![]))));
    assert!(h.storage_requests().is_empty());
}

#[test]
fn transaction_information_of_another_tid_goes_to_another_replica() {
    let mut h = Harness::new(&[A, B], 1);
    let op = h.client.transaction_info(h.now, Tid(90));
    h.drain();
    let (liar, msg_id, _) = h.storage_request();
    h.answer_storage(liar, msg_id, transaction(Tid(80), vec![]));
    assert!(h.storage_closed(liar));
    h.assert_protocol_error("AnswerTransactionInformation.tid");
    let (honest, msg_id, _) = h.storage_request();
    h.answer_storage(honest, msg_id, transaction(Tid(90), vec![]));
    assert!(matches!(h.result(op), Some(Ok(Answer::Transaction(t))) if t.tid == Tid(90)));
}

/// Answers the iterator's AskTIDsFrom with the TIDs of its partition among
/// `tids`, and its AskTransactionInformation with `oids` for each.
fn serve_iteration(h: &mut Harness, tids: &[u64], oids: &[Oid]) {
    loop {
        let requests = h.storage_requests();
        if requests.is_empty() {
            return;
        }
        for (nid, msg_id, request) in requests {
            match request {
                Packet::AskTIDsFrom(ask) => {
                    let tids = tids
                        .iter()
                        .map(|&t| Tid(t))
                        .filter(|t| ask.min_tid <= *t && *t <= ask.max_tid)
                        .filter(|t| t.0 % h.partitions as u64 == u64::from(ask.partition))
                        .collect();
                    h.answer_storage(nid, msg_id, AnswerTIDsFrom { tids });
                }
                Packet::AskTransactionInformation(ask) => {
                    h.answer_storage(nid, msg_id, transaction(ask.tid, oids.to_vec()));
                }
                Packet::AskObject(ask) => {
                    let at = ask.at.unwrap();
                    h.answer_storage(nid, msg_id, object(ask.oid, at, None, b"data"));
                }
                other => panic!("{other}"),
            }
        }
    }
}

#[test]
fn listed_transactions_outside_what_was_asked_go_to_another_replica() {
    let lies: [(&[u64], &str); 4] = [
        (&[20, 200], "AnswerTIDsFrom.tids"),
        (&[20, 21], "AnswerTIDsFrom.tids"),
        (&[40, 20], "AnswerTIDsFrom.tids"),
        (&[u64::MAX - 1], "AnswerTIDsFrom.tids"),
    ];
    for (lie, field) in lies {
        let mut h = Harness::new(&[A, B], 2);
        let op = h.client.iterate(h.now, Tid(10), Some(Tid(90)));
        h.drain();
        let (liar, msg_id, ask) = h.storage_request();
        assert!(matches!(
            ask,
            Packet::AskTIDsFrom(AskTIDsFrom { partition: 0, .. })
        ));
        let tids = lie.iter().copied().map(Tid).collect();
        h.answer_storage(liar, msg_id, AnswerTIDsFrom { tids });
        assert!(h.storage_closed(liar));
        h.assert_protocol_error(field);
        serve_iteration(&mut h, &[20, 40, 55], &[]);
        let Some(Ok(Answer::Transactions { transactions, next })) = h.result(op) else {
            panic!("{:?}", h.events)
        };
        let tids: Vec<Tid> = transactions.iter().map(|t| t.info.tid).collect();
        assert_eq!(tids, [Tid(20), Tid(40), Tid(55)]);
        assert_eq!(next, Some(Tid(56)));
    }
}

#[test]
fn the_iterator_loads_a_bounded_number_of_records_at_a_time() {
    let mut h = Harness::new(&[A], 1);
    let oids: Vec<Oid> = (0..1000).map(Oid).collect();
    let op = h.client.iterate(h.now, Tid(10), None);
    h.drain();
    let mut in_flight = std::collections::VecDeque::new();
    let (mut most, mut loaded) = (0, 0);
    loop {
        in_flight.extend(h.storage_requests());
        let loads = in_flight
            .iter()
            .filter(|(_, _, p)| matches!(p, Packet::AskObject(_)))
            .count();
        most = most.max(loads);
        // One answer at a time: each lets one more load go.
        let Some((nid, msg_id, request)) = in_flight.pop_front() else {
            break;
        };
        match request {
            Packet::AskTIDsFrom(_) => h.answer_storage(
                nid,
                msg_id,
                AnswerTIDsFrom {
                    tids: vec![Tid(50)],
                },
            ),
            Packet::AskTransactionInformation(ask) => {
                h.answer_storage(nid, msg_id, transaction(ask.tid, oids.clone()))
            }
            Packet::AskObject(ask) => {
                loaded += 1;
                h.answer_storage(nid, msg_id, object(ask.oid, Tid(50), None, b"data"))
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(most, LOADS_IN_FLIGHT_COUNT_MAX);
    assert_eq!(loaded, oids.len());
    let Some(Ok(Answer::Transactions { transactions, next })) = h.result(op) else {
        panic!("{:?}", h.events)
    };
    assert_eq!(transactions[0].records.len(), oids.len());
    assert!(transactions[0].records.iter().all(|r| r.data.is_some()));
    // The snapshot ends the range; the next chunk starts past this one.
    assert_eq!(next, Some(Tid(51)));
}

#[test]
fn an_iteration_whose_partitions_vanish_fails_instead_of_retrying_forever() {
    let mut h = Harness::new(&[A], 2);
    let op = h.client.iterate(h.now, Tid(10), None);
    h.drain();
    let (nid, msg_id, _) = h.storage_request();
    h.send_table(1);
    h.answer_storage(
        nid,
        msg_id,
        AnswerTIDsFrom {
            tids: vec![Tid(20)],
        },
    );
    assert!(matches!(
        h.result(op),
        Some(Err(ClientError::PartitionGone(_)))
    ));
    assert!(h.storage_requests().is_empty());
}

// ------------------------------------------------------------ writes

#[test]
fn undo_serials_of_objects_not_asked_go_to_another_replica() {
    let mut h = Harness::new(&[A, B], 1);
    let ttid = Tid(130);
    let txn = h.begin(ttid);
    let undo = h.client.undo(h.now, txn, Tid(90));
    h.drain();
    let (nid, msg_id, _) = h.storage_request();
    h.answer_storage(nid, msg_id, transaction(Tid(90), vec![Oid(1)]));
    let (liar, msg_id, ask) = h.storage_request();
    assert!(matches!(&ask, Packet::AskObjectUndoSerial(a) if a.oids == [Oid(1)]));
    let serial = UndoSerial {
        current_serial: Tid(90),
        undo_serial: Some(Tid(80)),
        is_current: true,
    };
    let lie = AnswerObjectUndoSerial {
        result: Map(vec![(Oid(1), serial.clone()), (Oid(2), serial.clone())]),
    };
    h.answer_storage(liar, msg_id, lie);
    assert!(h.storage_closed(liar));
    h.assert_protocol_error("AnswerObjectUndoSerial.result");
    let (honest, msg_id, _) = h.storage_request();
    assert_ne!(honest, liar);
    let answer = AnswerObjectUndoSerial {
        result: Map(vec![(Oid(1), serial)]),
    };
    h.answer_storage(honest, msg_id, answer);
    let (nid, msg_id, ask) = h.storage_request();
    assert!(matches!(&ask, Packet::AskObject(a) if a.oid == Oid(1) && a.at == Some(Tid(80))));
    h.answer_storage(nid, msg_id, object(Oid(1), Tid(80), None, b"old"));
    let Some(Ok(Answer::Undone { oids, conflicts })) = h.result(undo) else {
        panic!("{:?}", h.events)
    };
    assert_eq!((oids, conflicts), (vec![Oid(1)], vec![]));
    let stored: Vec<Oid> = h
        .storage_requests()
        .into_iter()
        .filter_map(|(_, _, p)| match p {
            Packet::AskStoreObject(store) => Some(store.oid),
            _ => None,
        })
        .collect();
    assert_eq!(stored, [Oid(1), Oid(1)], "to both replicas, nothing else");
}

/// A transaction storing oid 1 on A and B; A reports a conflict with
/// `committed`, B none.
fn conflicting_store(h: &mut Harness, committed: Tid) -> TxnId {
    let txn = h.begin(Tid(130));
    h.store(txn, Oid(1), Tid(90), b"new");
    for (nid, msg_id, store) in h.storage_requests() {
        assert!(matches!(store, Packet::AskStoreObject(_)));
        let conflict = (nid == A).then_some(committed);
        h.answer_storage(nid, msg_id, AnswerStoreObject { conflict });
    }
    txn
}

#[test]
fn a_conflict_with_a_transaction_the_master_never_committed_drops_the_storage() {
    let mut h = Harness::new(&[A, B], 1);
    let txn = conflicting_store(&mut h, Tid(200));
    // A late invalidation is possible: one sync first.
    h.answer_master(|p| matches!(p, Packet::Ping(_)), Pong {});
    assert!(h.storage_closed(A));
    h.assert_protocol_error("AnswerStoreObject.conflict");
    assert!(h.sent(h.master).is_empty(), "no second sync");
    assert!(!h
        .take_events()
        .iter()
        .any(|e| matches!(e, ClientEvent::Conflict(_))));
    // The vote goes on with B; the master decides whether A may go.
    let vote = h.client.tpc_vote(h.now, txn);
    h.drain();
    let (nid, msg_id, request) = h.storage_request();
    assert_eq!(nid, B);
    assert!(matches!(request, Packet::AskStoreTransaction(_)));
    h.answer_storage(B, msg_id, AnswerStoreTransaction {});
    h.answer_master(
        |p| matches!(p, Packet::FailedVote(v) if v.failed_nids == [A]),
        Packet::error(ErrorCode::Ack, ""),
    );
    assert_eq!(h.result(vote), Some(Ok(Answer::Voted(vec![]))));
}

#[test]
fn a_conflict_with_a_late_invalidation_is_reported_after_one_sync() {
    let mut h = Harness::new(&[A, B], 1);
    let txn = conflicting_store(&mut h, Tid(200));
    let msg_id = h.master_request(|p| matches!(p, Packet::Ping(_)));
    let master = h.master;
    h.packet(
        master,
        0,
        InvalidateObjects {
            tid: Tid(200),
            oids: vec![Oid(1)],
        },
    );
    h.packet(master, msg_id, Pong {});
    h.assert_no_protocol_error();
    assert!(!h.storage_closed(A));
    let conflicts: Vec<_> = h
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Conflict(conflict) => Some(conflict),
            _ => None,
        })
        .collect();
    assert_eq!(conflicts.len(), 1);
    assert_eq!((conflicts[0].txn, conflicts[0].committed), (txn, Tid(200)));
}

#[test]
fn a_conflict_past_the_last_possible_tid_is_a_protocol_error_at_once() {
    let mut h = Harness::new(&[A, B], 1);
    conflicting_store(&mut h, Tid(u64::MAX));
    assert!(h.storage_closed(A));
    h.assert_protocol_error("AnswerStoreObject.conflict");
    assert!(h.sent(h.master).is_empty(), "no sync for it");
    assert!(h
        .take_events()
        .iter()
        .all(|e| !matches!(e, ClientEvent::Conflict(_))));
}

#[test]
fn a_deadlock_notice_from_a_storage_holding_no_write_of_the_transaction_is_ignored() {
    let mut h = Harness::new(&[A], 1);
    // Connected to A by a read.
    let load = h.client.load(h.now, Oid(1), LoadMode::Current);
    h.drain();
    let (nid, msg_id, _) = h.storage_request();
    h.answer_storage(nid, msg_id, object(Oid(1), Tid(50), None, b"x"));
    assert!(h.result(load).is_some());
    let ttid = Tid(130);
    let txn = h.begin(ttid);
    let conn = h.links[&A];
    h.packet(conn, 0, NotifyDeadlock { ttid, oid: Oid(1) });
    assert!(
        h.storage_requests().is_empty(),
        "no relock: it holds no lock of ours"
    );
    // Once it does, a notice is acted upon.
    h.store(txn, Oid(1), Tid(50), b"new");
    let (_, msg_id, _) = h.storage_request();
    h.answer_storage(A, msg_id, AnswerStoreObject { conflict: None });
    h.packet(conn, 1, NotifyDeadlock { ttid, oid: Oid(1) });
    let (_, _, relock) = h.storage_request();
    assert!(matches!(relock, Packet::AskRelockObject(_)), "{relock}");
}

// ------------------------------------------------------------ the master

#[test]
fn an_acceptance_giving_an_id_of_another_node_type_drops_the_master() {
    let mut h = Harness::connecting_unidentified(&[A], 1);
    let msg_id = h.ask_identification();
    let master = h.master;
    h.packet(
        master,
        msg_id,
        AcceptIdentification {
            node_type: NodeType::Master,
            nid: Some(MASTER),
            your_nid: Some(A), // a storage's id
        },
    );
    assert!(h.closed(master));
    assert_eq!(h.client.nid(), None);
    assert!(h
        .logs
        .iter()
        .any(|(level, m)| *level == Level::Error && m.contains("not a master accepting a CLIENT")));
}

#[test]
fn not_primary_master_after_the_acceptance_is_a_protocol_error() {
    let mut h = Harness::connecting(&[A], 1);
    let master = h.master;
    h.packet(
        master,
        0,
        NotPrimaryMaster {
            primary: None,
            known_masters: vec![addr(10001)],
        },
    );
    h.assert_protocol_error("NotPrimaryMaster");
    assert!(h.closed(master));
}
