//! Reads (cluster.md 6): a request to a readable cell of a partition with
//! failover, and what is built on it — loads through the cache, history,
//! undoLog, the iterator, the final TID of a transaction whose finish
//! answer was lost.
//!
//! A read tries the partition's readable cells one by one (random order,
//! recently failed storages last). A storage that answers
//! NON_READABLE_CELL (our table is stale) is skipped; one that is
//! unreachable, or returns data that does not match its checksum, counts
//! as a failure. After a pass, the client syncs with the master (pending
//! table updates arrive) and tries again, unless there are more failures
//! than cells or the master is gone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use neo_proto::{
    AskFinalTID, AskObject, AskObjectHistory, AskTIDs, AskTIDsFrom, AskTransactionInformation,
    ErrorCode, ObjectData, Oid, Packet, Tid,
};

use super::api::{
    Answer, ClientError, HistoryEntry, IteratorRecord, IteratorTransaction, LoadMode, Loaded, OpId,
    TransactionInfo,
};
use super::check::{self, Violation};
use super::{error_of, transaction_info, Client, OpKind, OpResult, Reply, Request};
use crate::storage::INVALID_PARTITION;
use crate::time::Time;

/// Transactions per iterator chunk (NEO/py's CHUNK_LENGTH).
pub(super) const ITERATOR_CHUNK: u32 = 100;

/// Most loads an operation has in flight (the iterator, undo): it makes one
/// per object a storage lists, so the others wait their turn.
pub const LOADS_IN_FLIGHT_COUNT_MAX: usize = 64;

#[derive(Debug)]
pub(super) struct ReadState {
    partition: u32,
    packet: Packet,
    /// Storages not to read from (failed in the transaction undoing).
    exclude: BTreeSet<neo_proto::Nid>,
    /// Cells still to try in this pass.
    cells: Vec<neo_proto::Nid>,
    pass_len: usize,
    failed: usize,
    /// The first answer with a wrong checksum.
    wrong_checksum: Option<(Oid, Tid)>,
}

#[derive(Debug)]
pub(super) struct LoadState {
    pub oid: Oid,
    mode: LoadMode,
    /// Read from storages, bypassing the cache (iterator, undo).
    fetch: bool,
    /// Invalidations of the oid seen while loading.
    pub invalidations: Vec<Tid>,
    /// False once a reconnection cleared the cache meanwhile.
    pub cacheable: bool,
}

#[derive(Debug)]
pub(super) struct HistoryState {
    oid: Oid,
    size: u64,
    entries: Vec<(Tid, u64)>,
    infos: BTreeMap<OpId, usize>,
    results: Vec<Option<TransactionInfo>>,
}

#[derive(Debug)]
pub(super) struct UndoLogState {
    first: u64,
    last: u64,
    asked: usize,
    tids: BTreeSet<Tid>,
    infos: BTreeMap<OpId, usize>,
    results: Vec<Option<TransactionInfo>>,
}

impl UndoLogState {
    /// The offsets asked of each storage: at least one transaction
    /// (storages refuse an empty range).
    fn range(&self) -> (u64, u64) {
        (self.first, self.last.max(self.first.saturating_add(1)))
    }
}

#[derive(Debug)]
pub(super) struct IterateState {
    start: Tid,
    stop: Tid,
    /// The upper bound asked by the application (or the snapshot).
    end: Tid,
    partition: u32,
    /// Partitions of the table when the chunk started.
    partitions: u32,
    tids: Vec<Tid>,
    infos: BTreeMap<OpId, usize>,
    transactions: Vec<Option<IteratorTransaction>>,
    /// Loads of records: (transaction, record).
    loads: Fetches<(usize, usize)>,
}

/// Revisions an operation loads from storages, at most
/// [`LOADS_IN_FLIGHT_COUNT_MAX`] at a time; `K` says what each one is for.
#[derive(Debug)]
pub(super) struct Fetches<K> {
    queued: VecDeque<(K, Oid, Tid)>,
    in_flight: BTreeMap<OpId, K>,
}

impl<K> Fetches<K> {
    pub(super) fn new(wanted: impl IntoIterator<Item = (K, Oid, Tid)>) -> Fetches<K> {
        Fetches {
            queued: wanted.into_iter().collect(),
            in_flight: BTreeMap::new(),
        }
    }

    /// Nothing left to load.
    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }

    /// The load `op` ended: what it was for (`None`: not one of these).
    pub(super) fn finished(&mut self, op: OpId) -> Option<K> {
        self.in_flight.remove(&op)
    }

    /// The next load to start, if there is room for it.
    fn next(&mut self) -> Option<(K, Oid, Tid)> {
        if self.in_flight.len() >= LOADS_IN_FLIGHT_COUNT_MAX {
            return None;
        }
        self.queued.pop_front()
    }
}

/// Where an operation keeps its [`Fetches`].
pub(super) type FetchesOf<K> = fn(&mut OpKind) -> Option<&mut Fetches<K>>;

#[derive(Debug)]
pub(super) struct FinalTidState {
    ttid: Tid,
    /// Asking storages (the master said the transaction committed).
    storages: bool,
}

impl Client {
    // ------------------------------------------------------------ generic read

    /// Reads `packet` from a readable cell of `partition` for `parent`.
    fn read(&mut self, parent: OpId, partition: u32, packet: impl Into<Packet>) -> OpId {
        self.read_excluding(parent, partition, packet, BTreeSet::new())
    }

    pub(super) fn read_excluding(
        &mut self,
        parent: OpId,
        partition: u32,
        packet: impl Into<Packet>,
        exclude: BTreeSet<neo_proto::Nid>,
    ) -> OpId {
        self.spawn(
            Some(parent),
            OpKind::Read(ReadState {
                partition,
                packet: packet.into(),
                exclude,
                cells: Vec::new(),
                pass_len: 0,
                failed: 0,
                wrong_checksum: None,
            }),
        )
    }

    fn read_state(&mut self, op: OpId) -> Option<&mut ReadState> {
        match self.ops.get_mut(&op).map(|o| &mut o.kind) {
            Some(OpKind::Read(state)) => Some(state),
            _ => None,
        }
    }

    pub(super) fn start_read(&mut self, op: OpId) {
        if !self.ready {
            self.wait_ready(op);
            return;
        }
        let partition = self.read_state(op).unwrap().partition;
        if !self.pt.as_ref().is_some_and(|pt| pt.contains(partition)) {
            // The master changed the number of partitions: no cell will
            // ever serve this one.
            return self.fail(op, ClientError::PartitionGone(partition));
        }
        let mut cells = self.read_candidates(partition);
        let state = self.read_state(op).unwrap();
        cells.retain(|nid| !state.exclude.contains(nid));
        cells.reverse(); // tried from the end
        state.pass_len = cells.len();
        state.cells = cells;
        self.read_next_cell(op);
    }

    fn read_next_cell(&mut self, op: OpId) {
        loop {
            let Some(state) = self.read_state(op) else {
                return;
            };
            let Some(nid) = state.cells.pop() else {
                break;
            };
            let packet = state.packet.clone();
            if self.ask_storage(nid, packet, Request::Read(op)) {
                return;
            }
            self.read_state(op).unwrap().failed += 1;
        }
        // A whole pass without success.
        let state = self.read_state(op).unwrap();
        let (failed, pass_len, wrong) = (state.failed, state.pass_len, state.wrong_checksum);
        let partition = state.partition;
        if self.pt.is_none() {
            self.fail(op, ClientError::MasterLost);
        } else if pass_len < failed {
            let error = match wrong {
                Some((oid, serial)) => ClientError::WrongChecksum { oid, serial },
                None => ClientError::NoStorage { partition },
            };
            self.fail(op, error);
        } else {
            // Do not retry too fast: pending table updates come first.
            self.ask_master(op, neo_proto::Ping {});
        }
    }

    /// The sync between passes is done.
    pub(super) fn read_synced(&mut self, op: OpId, result: OpResult) {
        match result {
            Ok(_) => self.start_read(op),
            Err(error) => self.fail(op, error),
        }
    }

    pub(super) fn read_failed(&mut self, op: OpId, _nid: neo_proto::Nid) {
        if let Some(state) = self.read_state(op) {
            state.failed += 1;
            self.read_next_cell(op);
        }
    }

    pub(super) fn read_answered(&mut self, op: OpId, nid: neo_proto::Nid, packet: Packet) {
        if self.read_state(op).is_none() {
            return;
        }
        match &packet {
            Packet::Error(error) if error.code == ErrorCode::NonReadableCell => {
                // Our table is stale: not a failure of the node.
                self.read_next_cell(op);
                return;
            }
            Packet::AnswerObject(answer) => {
                let data = ObjectData {
                    compression: answer.compression.unwrap_or(0),
                    checksum: answer.checksum,
                    data: answer.data.clone(),
                };
                if crate::data::verify(&data).is_err() {
                    self.net.log(
                        crate::node::Level::Error,
                        format!(
                            "wrong checksum from {nid} for {}@{}",
                            answer.oid, answer.serial
                        ),
                    );
                    let state = self.read_state(op).unwrap();
                    state
                        .wrong_checksum
                        .get_or_insert((answer.oid, answer.serial));
                    state.failed += 1;
                    self.read_next_cell(op);
                    return;
                }
            }
            _ => {}
        }
        self.finish_op(op, Ok(Reply::Packet(packet)));
    }

    /// What a storage's answer to the read `op` must satisfy.
    pub(super) fn check_read_answer(&self, op: OpId, answer: &Packet) -> Result<(), Violation> {
        match self.ops.get(&op).map(|o| &o.kind) {
            Some(OpKind::Read(state)) => {
                let partitions = self.pt.as_ref().map(|pt| pt.partitions());
                check::read_answer(&state.packet, answer, partitions)
            }
            _ => Ok(()),
        }
    }

    // ------------------------------------------------------------ load

    /// Loads a revision of `oid` (`load`, `loadBefore`, `loadSerial`).
    pub fn load(&mut self, now: Time, oid: Oid, mode: LoadMode) -> OpId {
        self.now = self.now.max(now);
        self.spawn(
            None,
            OpKind::Load(LoadState {
                oid,
                mode,
                fetch: false,
                invalidations: Vec::new(),
                cacheable: true,
            }),
        )
    }

    /// Starts the loads of `op`'s [`Fetches`] there is room for.
    pub(super) fn start_fetches<K>(&mut self, op: OpId, fetches_of: FetchesOf<K>) {
        loop {
            let next = self
                .ops
                .get_mut(&op)
                .and_then(|o| fetches_of(&mut o.kind))
                .and_then(Fetches::next);
            let Some((key, oid, serial)) = next else {
                return;
            };
            let load = self.new_op(
                Some(op),
                OpKind::Load(LoadState {
                    oid,
                    mode: LoadMode::At(serial),
                    fetch: true,
                    invalidations: Vec::new(),
                    cacheable: false,
                }),
            );
            // Known before it starts: it may end at once.
            if let Some(fetches) = self.ops.get_mut(&op).and_then(|o| fetches_of(&mut o.kind)) {
                fetches.in_flight.insert(load, key);
            }
            self.start(load);
        }
    }

    fn load_state(&mut self, op: OpId) -> Option<&mut LoadState> {
        match self.ops.get_mut(&op).map(|o| &mut o.kind) {
            Some(OpKind::Load(state)) => Some(state),
            _ => None,
        }
    }

    pub(super) fn start_load(&mut self, op: OpId) {
        let state = self.load_state(op).unwrap();
        let (oid, mode, fetch) = (state.oid, state.mode, state.fetch);
        if !fetch {
            let hit = match mode {
                LoadMode::Current => self.cache.load_current(oid),
                LoadMode::Before(before) => self.cache.load_before(oid, before),
                LoadMode::At(serial) => self.cache.load_at(oid, serial),
            };
            if let Some((data, serial, next_serial)) = hit {
                let loaded = Loaded {
                    data,
                    serial,
                    next_serial,
                    data_serial: None,
                };
                self.done(op, Answer::Loaded(loaded));
                return;
            }
        }
        if !self.ready {
            self.wait_ready(op);
            return;
        }
        let (at, before) = match mode {
            // Nothing newer than the last invalidation processed.
            LoadMode::Current => (None, self.snapshot_end()),
            LoadMode::Before(before) => (None, Some(before)),
            LoadMode::At(serial) => (Some(serial), None),
        };
        self.loading.entry(oid).or_default().push(op);
        let partition = self.pt.as_ref().unwrap().partition(oid.0);
        self.read(op, partition, AskObject { oid, at, before });
    }

    pub(super) fn forget_loading(&mut self, op: OpId, oid: Oid) {
        if let Some(ops) = self.loading.get_mut(&oid) {
            ops.retain(|o| *o != op);
            if ops.is_empty() {
                self.loading.remove(&oid);
            }
        }
    }

    pub(super) fn load_answered(&mut self, op: OpId, result: OpResult) {
        let answer = match result {
            Ok(Reply::Packet(Packet::AnswerObject(answer))) => answer,
            Ok(Reply::Packet(packet)) => return self.fail(op, error_of(&packet)),
            Ok(Reply::Answer(_)) => unreachable!(),
            Err(error) => return self.fail(op, error),
        };
        if answer.data.is_empty() && answer.checksum.is_zero() {
            return self.fail(op, ClientError::CreationUndone);
        }
        let data = ObjectData {
            compression: answer.compression.unwrap_or(0),
            checksum: answer.checksum,
            data: answer.data,
        };
        let raw = match crate::data::unpack(&data) {
            Ok(raw) => raw,
            Err(error) => {
                let why = error.to_string();
                return self.fail(
                    op,
                    ClientError::CorruptData {
                        oid: answer.oid,
                        why,
                    },
                );
            }
        };
        let state = self.load_state(op).unwrap();
        let mut next_serial = answer.next_serial;
        if next_serial.is_none() {
            // An invalidation crossed our read: the revision ends there.
            next_serial = state
                .invalidations
                .iter()
                .copied()
                .find(|tid| answer.serial < *tid);
        }
        let (oid, cacheable, fetch) = (state.oid, state.cacheable, state.fetch);
        if cacheable && !fetch {
            self.cache
                .store(oid, raw.clone(), answer.serial, next_serial);
        }
        let loaded = Loaded {
            data: raw,
            serial: answer.serial,
            next_serial,
            data_serial: answer.data_serial,
        };
        self.done(op, Answer::Loaded(loaded));
    }

    // ------------------------------------------------------------ metadata, history

    /// A transaction's metadata.
    pub fn transaction_info(&mut self, now: Time, tid: Tid) -> OpId {
        self.now = self.now.max(now);
        self.spawn(None, OpKind::TransactionInfo(tid))
    }

    /// The `size` latest revisions of `oid`, newest first, with their
    /// transactions (may include revisions newer than our snapshot, as in
    /// NEO/py).
    pub fn history(&mut self, now: Time, oid: Oid, size: u64) -> OpId {
        self.now = self.now.max(now);
        let state = HistoryState {
            oid,
            size,
            entries: Vec::new(),
            infos: BTreeMap::new(),
            results: Vec::new(),
        };
        self.spawn(None, OpKind::History(state))
    }

    /// The next chunk of the iterator over transactions from `start` up to
    /// `stop` (at most our snapshot).
    pub fn iterate(&mut self, now: Time, start: Tid, stop: Option<Tid>) -> OpId {
        self.now = self.now.max(now);
        let stop = stop.unwrap_or(Tid::MAX);
        let state = IterateState {
            start,
            stop,
            end: stop,
            partition: 0,
            partitions: 0,
            tids: Vec::new(),
            infos: BTreeMap::new(),
            transactions: Vec::new(),
            loads: Fetches::new([]),
        };
        self.spawn(None, OpKind::Iterate(state))
    }

    /// Starts the first read of a metadata, history or iteration op.
    pub(super) fn start_read_composite(&mut self, op: OpId) {
        if !self.ready {
            self.wait_ready(op);
            return;
        }
        let last_tid = self.last_tid.unwrap_or(Tid::ZERO);
        let partitions = self.pt.as_ref().unwrap().partitions();
        match &mut self.ops.get_mut(&op).unwrap().kind {
            OpKind::TransactionInfo(tid) => {
                let tid = *tid;
                self.read(op, partitions.of(tid.0), AskTransactionInformation { tid });
            }
            OpKind::History(state) if state.size == 0 => {
                // Storages refuse an empty range.
                self.done(op, Answer::History(Vec::new()));
            }
            OpKind::History(state) => {
                let (oid, size) = (state.oid, state.size);
                self.read(
                    op,
                    partitions.of(oid.0),
                    AskObjectHistory {
                        oid,
                        first: 0,
                        last: size,
                    },
                );
            }
            OpKind::Iterate(state) => {
                state.stop = state.end.min(last_tid);
                state.end = state.stop;
                state.partition = 0;
                state.partitions = partitions.count();
                state.tids.clear();
                self.iterate_next_partition(op);
            }
            _ => unreachable!(),
        }
    }

    pub(super) fn history_child(&mut self, op: OpId, child: OpId, result: OpResult) {
        let Some(OpKind::History(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        if let Some(index) = state.infos.remove(&child) {
            match transaction_info(result) {
                Ok(info) => state.results[index] = Some(info),
                Err(error) => return self.fail(op, error),
            }
            if state.infos.is_empty() {
                let Some(OpKind::History(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind)
                else {
                    return;
                };
                let entries = std::mem::take(&mut state.entries);
                let results = std::mem::take(&mut state.results);
                let history = entries
                    .into_iter()
                    .zip(results)
                    .map(|((serial, size), info)| HistoryEntry {
                        serial,
                        size,
                        transaction: info.unwrap(),
                    })
                    .collect();
                self.done(op, Answer::History(history));
            }
            return;
        }
        let entries = match result {
            Ok(Reply::Packet(Packet::AnswerObjectHistory(answer))) => answer.history,
            Ok(Reply::Packet(packet)) => return self.fail(op, error_of(&packet)),
            Ok(Reply::Answer(_)) => unreachable!(),
            Err(error) => return self.fail(op, error),
        };
        if entries.is_empty() {
            return self.done(op, Answer::History(Vec::new()));
        }
        let serials: Vec<Tid> = entries.iter().map(|e| e.serial).collect();
        let Some(OpKind::History(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        state.entries = entries.iter().map(|e| (e.serial, e.size)).collect();
        state.results = vec![None; entries.len()];
        for (index, serial) in serials.into_iter().enumerate() {
            let child = self.info_child(op, serial);
            if let Some(OpKind::History(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) {
                state.infos.insert(child, index);
            }
        }
    }

    /// Reads a transaction's metadata for `parent`.
    fn info_child(&mut self, parent: OpId, tid: Tid) -> OpId {
        self.spawn(Some(parent), OpKind::TransactionInfo(tid))
    }

    // ------------------------------------------------------------ undoLog

    /// Transactions from the `first`-th newest to the `last`-th (excluded),
    /// newest first, from every storage with readable cells (not snapshot
    /// isolated, as in NEO/py).
    pub fn undo_log(&mut self, now: Time, first: u64, last: u64) -> OpId {
        self.now = self.now.max(now);
        let state = UndoLogState {
            first,
            last,
            asked: 0,
            tids: BTreeSet::new(),
            infos: BTreeMap::new(),
            results: Vec::new(),
        };
        self.spawn(None, OpKind::UndoLog(state))
    }

    pub(super) fn start_undo_log(&mut self, op: OpId) {
        if !self.ready {
            self.wait_ready(op);
            return;
        }
        let Some(OpKind::UndoLog(state)) = self.ops.get(&op).map(|o| &o.kind) else {
            return;
        };
        let (first, last) = state.range();
        let nodes = self.pt.as_ref().unwrap().nodes(true);
        let mut asked = 0;
        for nid in nodes {
            let packet = AskTIDs {
                first,
                last,
                partition: INVALID_PARTITION,
            };
            if self.ask_storage(nid, packet, Request::Tids(op)) {
                asked += 1;
            }
        }
        if let Some(OpKind::UndoLog(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) {
            state.asked = asked;
        }
        if asked == 0 {
            self.undo_log_infos(op);
        }
    }

    /// What a storage's answer to the AskTIDs of `op` must satisfy.
    pub(super) fn check_tids_answer(&self, op: OpId, answer: &Packet) -> Result<(), Violation> {
        match self.ops.get(&op).map(|o| &o.kind) {
            Some(OpKind::UndoLog(state)) => {
                let (first, last) = state.range();
                check::tids_answer(answer, last - first)
            }
            _ => Ok(()),
        }
    }

    /// A storage answered AskTIDs (`None`: it could not).
    pub(super) fn undo_log_tids(&mut self, op: OpId, answer: Option<Packet>) {
        let Some(OpKind::UndoLog(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        if let Some(Packet::AnswerTIDs(answer)) = answer {
            state.tids.extend(answer.tids);
        }
        // Answers are matched with requests before they get here.
        debug_assert!(state.asked > 0, "more answers than requests");
        state.asked = state.asked.saturating_sub(1);
        if state.asked == 0 {
            self.undo_log_infos(op);
        }
    }

    fn undo_log_infos(&mut self, op: OpId) {
        let Some(OpKind::UndoLog(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        let count = usize::try_from(state.last.saturating_sub(state.first)).unwrap_or(usize::MAX);
        let tids: Vec<Tid> = state.tids.iter().rev().take(count).copied().collect();
        if tids.is_empty() {
            return self.done(op, Answer::UndoLog(Vec::new()));
        }
        state.results = vec![None; tids.len()];
        for (index, tid) in tids.into_iter().enumerate() {
            let child = self.info_child(op, tid);
            if let Some(OpKind::UndoLog(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) {
                state.infos.insert(child, index);
            }
        }
    }

    pub(super) fn undo_log_child(&mut self, op: OpId, child: OpId, result: OpResult) {
        let Some(OpKind::UndoLog(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        let Some(index) = state.infos.remove(&child) else {
            return;
        };
        match transaction_info(result) {
            Ok(info) => state.results[index] = Some(info),
            Err(error) => return self.fail(op, error),
        }
        if state.infos.is_empty() {
            let infos = std::mem::take(&mut state.results)
                .into_iter()
                .map(Option::unwrap)
                .collect();
            self.done(op, Answer::UndoLog(infos));
        }
    }

    // ------------------------------------------------------------ iterator

    fn iterate_next_partition(&mut self, op: OpId) {
        let Some(OpKind::Iterate(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        if state.partition >= state.partitions {
            return self.iterate_infos(op);
        }
        let packet = AskTIDsFrom {
            min_tid: state.start,
            max_tid: state.stop,
            length: ITERATOR_CHUNK,
            partition: state.partition,
        };
        let partition = state.partition;
        self.read(op, partition, packet);
    }

    fn iterate_infos(&mut self, op: OpId) {
        let Some(OpKind::Iterate(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        let tids = state.tids.clone();
        if tids.is_empty() {
            return self.done(
                op,
                Answer::Transactions {
                    transactions: Vec::new(),
                    next: None,
                },
            );
        }
        state.transactions = vec![None; tids.len()];
        for (index, tid) in tids.into_iter().enumerate() {
            let child = self.info_child(op, tid);
            if let Some(OpKind::Iterate(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) {
                state.infos.insert(child, index);
            }
        }
    }

    pub(super) fn iterate_child(&mut self, op: OpId, child: OpId, result: OpResult) {
        let Some(OpKind::Iterate(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        if let Some((txn, record)) = state.loads.finished(child) {
            // A record of a transaction: missing ones were packed away.
            let records = &mut state.transactions[txn].as_mut().unwrap().records;
            match result {
                Ok(Reply::Answer(Answer::Loaded(loaded))) => {
                    records[record].data = Some(loaded.data);
                    records[record].data_serial = loaded.data_serial;
                }
                Err(ClientError::CreationUndone) => {}
                Err(ClientError::NotFound) | Err(ClientError::DoesNotExist) => {
                    records[record].oid = Oid::INVALID; // skipped below
                }
                Err(error) => return self.fail(op, error),
                Ok(_) => unreachable!(),
            }
            if state.loads.is_empty() {
                self.iterate_done(op);
            } else {
                self.start_fetches(op, iterate_loads);
            }
            return;
        }
        if let Some(index) = state.infos.remove(&child) {
            match transaction_info(result) {
                Ok(info) => {
                    let records = info
                        .oids
                        .iter()
                        .map(|&oid| IteratorRecord {
                            oid,
                            data: None,
                            data_serial: None,
                        })
                        .collect();
                    state.transactions[index] = Some(IteratorTransaction { info, records });
                }
                Err(error) => return self.fail(op, error),
            }
            if state.infos.is_empty() {
                let wanted = state.transactions.iter().enumerate().flat_map(|(t, txn)| {
                    let txn = txn.as_ref().unwrap();
                    txn.records
                        .iter()
                        .enumerate()
                        .map(move |(r, record)| ((t, r), record.oid, txn.info.tid))
                });
                state.loads = Fetches::new(wanted);
                if state.loads.is_empty() {
                    return self.iterate_done(op);
                }
                self.start_fetches(op, iterate_loads);
            }
            return;
        }
        // AskTIDsFrom of a partition: merge, keep the first chunk.
        let tids = match result {
            Ok(Reply::Packet(Packet::AnswerTIDsFrom(answer))) => answer.tids,
            Ok(Reply::Packet(packet)) => return self.fail(op, error_of(&packet)),
            Ok(Reply::Answer(_)) => unreachable!(),
            Err(error) => return self.fail(op, error),
        };
        state.tids.extend(tids);
        state.tids.sort_unstable();
        state.tids.dedup();
        if state.tids.len() >= ITERATOR_CHUNK as usize {
            state.tids.truncate(ITERATOR_CHUNK as usize);
            state.stop = *state.tids.last().unwrap();
        }
        state.partition += 1;
        self.iterate_next_partition(op);
    }

    fn iterate_done(&mut self, op: OpId) {
        let Some(OpKind::Iterate(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        let last = *state.tids.last().unwrap();
        // Storages list nothing past what was asked (checked), so `last`
        // is at most `end`: a next chunk starts past this one, none past
        // `end`.
        let next = (last < state.end).then(|| Tid(last.0 + 1));
        let transactions = std::mem::take(&mut state.transactions)
            .into_iter()
            .map(|txn| {
                let mut txn = txn.unwrap();
                txn.records.retain(|r| r.oid != Oid::INVALID);
                txn
            })
            .collect();
        self.done(op, Answer::Transactions { transactions, next });
    }

    // ------------------------------------------------------------ final TID

    /// What became of `ttid`, whose finish answer was lost: asks the
    /// master (until it answers), then, if it says "committed", a storage.
    pub(super) fn final_tid(&mut self, parent: OpId, ttid: Tid) -> OpId {
        self.spawn(
            Some(parent),
            OpKind::FinalTid(FinalTidState {
                ttid,
                storages: false,
            }),
        )
    }

    pub(super) fn start_final_tid(&mut self, op: OpId) {
        let Some(OpKind::FinalTid(state)) = self.ops.get(&op).map(|o| &o.kind) else {
            return;
        };
        let (ttid, storages) = (state.ttid, state.storages);
        if !storages {
            self.ask_master(op, AskFinalTID { ttid });
        } else if !self.ready {
            self.wait_ready(op);
        } else {
            let partition = self.pt.as_ref().unwrap().partition(ttid.0);
            self.read(op, partition, AskFinalTID { ttid });
        }
    }

    pub(super) fn final_tid_child(&mut self, op: OpId, result: OpResult) {
        let Some(OpKind::FinalTid(state)) = self.ops.get_mut(&op).map(|o| &mut o.kind) else {
            return;
        };
        match result {
            Ok(Reply::Packet(Packet::AnswerFinalTID(answer))) => {
                if answer.tid == Some(Tid::MAX) && !state.storages {
                    state.storages = true;
                    self.start_final_tid(op);
                } else {
                    self.finish_op(op, Ok(Reply::Packet(answer.into())));
                }
            }
            // Lost the master again: ask again once reconnected.
            Err(ClientError::MasterLost) => self.start_final_tid(op),
            _ => self.finish_op(
                op,
                Ok(Reply::Packet(
                    neo_proto::AnswerFinalTID { tid: None }.into(),
                )),
            ),
        }
    }
}

/// Where the iterator keeps its loads of records.
fn iterate_loads(kind: &mut OpKind) -> Option<&mut Fetches<(usize, usize)>> {
    match kind {
        OpKind::Iterate(state) => Some(&mut state.loads),
        _ => None,
    }
}
