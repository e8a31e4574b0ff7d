//! Requests waiting for a lock: writes in TTID order, reads in arrival
//! order (NEO/py's two event queues), with what each connection has
//! waiting, so that a peer cannot make the storage keep without bound what
//! it cannot serve yet.

use hashbrown::HashMap;
use neo_proto::Tid;

use super::serve_clients::Postponed;
use crate::node::ConnId;

/// Most requests of one connection waiting for locks, and most object
/// bytes they hold. Past either, the request is refused with a protocol
/// error and the connection closed (an honest client waits for answers
/// long before: NEO/py's stores a transaction's objects and then waits).
pub(super) const QUEUED_REQUESTS_COUNT_MAX: usize = 100_000;
pub(super) const QUEUED_REQUEST_BYTES_MAX: usize = 1 << 30;

#[derive(Debug, Default)]
pub(super) struct WaitQueues {
    write: Vec<(Tid, Postponed)>,
    read: Vec<Postponed>,
    /// Per connection: requests waiting and the object bytes they hold.
    footprint: HashMap<ConnId, (usize, usize)>,
}

impl WaitQueues {
    /// Whether `request` may wait with what its connection has waiting.
    pub(super) fn has_room(&self, request: &Postponed) -> bool {
        let (count, bytes) = self
            .footprint
            .get(&request.conn())
            .copied()
            .unwrap_or_default();
        count < QUEUED_REQUESTS_COUNT_MAX
            && bytes.saturating_add(request.data_bytes()) <= QUEUED_REQUEST_BYTES_MAX
    }

    /// Queues a request waiting for a write lock of transaction `key`
    /// (stable: requests of one transaction keep their order).
    pub(super) fn wait_write(&mut self, key: Tid, request: Postponed) {
        self.count(&request);
        let at = self.write.partition_point(|(k, _)| *k <= key);
        self.write.insert(at, (key, request));
    }

    /// Queues a request waiting for a read lock.
    pub(super) fn wait_read(&mut self, request: Postponed) {
        self.count(&request);
        self.read.push(request);
    }

    /// Takes every write request, in order (to retry them).
    pub(super) fn take_writes(&mut self) -> Vec<Postponed> {
        let taken: Vec<Postponed> = std::mem::take(&mut self.write)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        taken.iter().for_each(|r| self.uncount(r));
        taken
    }

    /// Takes every read request, in order (to retry them).
    pub(super) fn take_reads(&mut self) -> Vec<Postponed> {
        let taken = std::mem::take(&mut self.read);
        taken.iter().for_each(|r| self.uncount(r));
        taken
    }

    /// Drops the requests of a connection that is gone.
    pub(super) fn forget(&mut self, conn: ConnId) {
        self.write.retain(|(_, request)| request.conn() != conn);
        self.read.retain(|request| request.conn() != conn);
        self.footprint.remove(&conn);
    }

    pub(super) fn clear(&mut self) {
        *self = WaitQueues::default();
    }

    fn count(&mut self, request: &Postponed) {
        let entry = self.footprint.entry(request.conn()).or_default();
        entry.0 += 1;
        entry.1 += request.data_bytes();
    }

    fn uncount(&mut self, request: &Postponed) {
        let conn = request.conn();
        if let Some(entry) = self.footprint.get_mut(&conn) {
            debug_assert!(entry.0 > 0 && entry.1 >= request.data_bytes());
            entry.0 = entry.0.saturating_sub(1);
            entry.1 = entry.1.saturating_sub(request.data_bytes());
            if entry.0 == 0 {
                self.footprint.remove(&conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use neo_proto::{AskObject, AskStoreObject, Checksum, Oid};

    fn read(conn: ConnId) -> Postponed {
        let ask = AskObject {
            oid: Oid(1),
            at: None,
            before: None,
        };
        Postponed::Object(conn, 0, ask)
    }

    fn store(conn: ConnId, bytes: usize) -> Postponed {
        let ask = AskStoreObject {
            oid: Oid(1),
            serial: Tid::ZERO,
            compression: 0,
            checksum: Checksum::ZERO,
            data: Bytes::from(vec![0; bytes]),
            data_serial: None,
            ttid: Tid(1),
        };
        Postponed::Store(conn, 0, ask)
    }

    #[test]
    fn a_connection_waits_with_a_bounded_number_of_requests() {
        let (greedy, other) = (ConnId::incoming(1), ConnId::incoming(2));
        let mut queues = WaitQueues::default();
        for _ in 0..QUEUED_REQUESTS_COUNT_MAX {
            assert!(queues.has_room(&read(greedy)));
            queues.wait_read(read(greedy));
        }
        assert!(!queues.has_room(&read(greedy)));
        assert!(queues.has_room(&read(other)), "others are not affected");
        // Retried requests leave the count; a gone connection leaves none.
        let retried = queues.take_reads();
        assert_eq!(retried.len(), QUEUED_REQUESTS_COUNT_MAX);
        assert!(queues.has_room(&read(greedy)));
        queues.wait_write(Tid(5), store(greedy, 1000));
        queues.wait_write(Tid(3), store(other, 10));
        assert_eq!(queues.footprint[&greedy], (1, 1000));
        queues.forget(greedy);
        assert!(!queues.footprint.contains_key(&greedy));
        assert_eq!(queues.take_writes().len(), 1);
        assert!(queues.footprint.is_empty());
    }
}
