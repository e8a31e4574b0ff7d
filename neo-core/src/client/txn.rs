//! A transaction being committed, on the client side (cluster.md 5.3–5.9):
//! writes in flight and who still has to answer them, acknowledged
//! writes, conflicts, the storages involved.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use neo_proto::{Nid, Oid, PackRequest, Tid};

use super::api::{ClientError, OpId};

/// What was written for an oid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Write {
    /// Data (`None`: deletion, undo back-pointer, or data not kept).
    Data(Option<Bytes>),
    /// A readCurrent check.
    Checked,
}

/// A write not yet answered by every storage it was sent to.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    pub write: Write,
    /// The serial it is based on.
    pub serial: Tid,
    /// Storages that have not answered.
    pub waiting: Vec<Nid>,
}

/// A conflict storages reported on a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reported {
    /// The committed serial the write conflicts with.
    pub serial: Tid,
    /// The storages that reported it, and in which answer field.
    pub by: Vec<(Nid, &'static str)>,
    /// A sync with the master began after it was reported, the serial being
    /// newer than our snapshot: once the sync is done, a serial still newer
    /// was committed by no one.
    pub synced: bool,
}

#[derive(Debug)]
pub(super) struct TxnContext {
    pub user: Bytes,
    pub description: Bytes,
    pub extension: Bytes,
    /// Asked for this TID (import tools).
    pub requested_tid: Option<Tid>,
    /// Known once AskBeginTransaction is answered.
    pub ttid: Option<Tid>,
    pub data_dict: BTreeMap<Oid, InFlight>,
    /// Writes every storage acknowledged.
    pub cache_dict: BTreeMap<Oid, Write>,
    /// Size of the data kept in `cache_dict`.
    pub cache_size: usize,
    /// Conflicts to resolve.
    pub conflict_dict: BTreeMap<Oid, Reported>,
    /// Conflicts handed to the application: oid → committed serial.
    pub resolving: BTreeMap<Oid, Tid>,
    /// Resolved conflicts: oid → the serial resolved against.
    pub resolved_dict: BTreeMap<Oid, Tid>,
    /// Deleted oids (no back-pointer).
    pub delete_list: Vec<Oid>,
    /// Storages written to; `false`: failed, never written again.
    pub conn_dict: BTreeMap<Nid, bool>,
    /// Partitions written without lock, and by which storages.
    pub lockless: BTreeMap<u32, BTreeSet<Nid>>,
    /// Requests of this transaction waiting for answers.
    pub pending: usize,
    /// Conflicts wait for a sync with the master (a late invalidation).
    pub syncing: bool,
    /// The vote started (NotifyDeadlock is ignored from then on).
    pub stored: bool,
    pub voted: bool,
    /// Lost the master since begin: the vote fails.
    pub master_lost: bool,
    /// A failure that dooms the transaction.
    pub failure: Option<ClientError>,
    pub pack: Option<PackRequest>,
    /// The operation driving it (begin, vote, finish, undo).
    pub op: Option<OpId>,
    /// tpc_abort came while begin was in flight.
    pub aborted: bool,
}

impl TxnContext {
    pub(super) fn new(
        user: Bytes,
        description: Bytes,
        extension: Bytes,
        tid: Option<Tid>,
    ) -> TxnContext {
        TxnContext {
            user,
            description,
            extension,
            requested_tid: tid,
            ttid: None,
            data_dict: BTreeMap::new(),
            cache_dict: BTreeMap::new(),
            cache_size: 0,
            conflict_dict: BTreeMap::new(),
            resolving: BTreeMap::new(),
            resolved_dict: BTreeMap::new(),
            delete_list: Vec::new(),
            conn_dict: BTreeMap::new(),
            lockless: BTreeMap::new(),
            pending: 0,
            syncing: false,
            stored: false,
            voted: false,
            master_lost: false,
            failure: None,
            pack: None,
            op: None,
            aborted: false,
        }
    }

    /// A request of the transaction was answered, or will never be.
    pub(super) fn request_done(&mut self) {
        // Answers are matched with requests before they get here: a
        // mismatch is our bug, not a peer's.
        debug_assert!(self.pending > 0, "more answers than requests");
        self.pending = self.pending.saturating_sub(1);
    }

    /// `nid` reported (in `field`) that the write of `oid` conflicts with
    /// the committed `serial`; it replaces a report of another serial.
    pub(super) fn report_conflict(&mut self, oid: Oid, serial: Tid, nid: Nid, field: &'static str) {
        let report = self.conflict_dict.entry(oid).or_insert(Reported {
            serial,
            by: Vec::new(),
            synced: false,
        });
        if report.serial != serial {
            *report = Reported {
                serial,
                by: Vec::new(),
                synced: false,
            };
        }
        if !report.by.iter().any(|(n, _)| *n == nid) {
            report.by.push((nid, field));
        }
    }

    /// Bytes of data waiting for acknowledgements.
    pub(super) fn in_flight_bytes(&self) -> usize {
        self.data_dict
            .values()
            .map(|f| match &f.write {
                Write::Data(Some(data)) => data.len(),
                _ => 0,
            })
            .sum()
    }

    /// `nid` answered a write of `oid`. `lockless`: it wrote without lock
    /// a store based on this serial (an answer to an older store of the
    /// oid does not acknowledge the newer one).
    pub(super) fn written(
        &mut self,
        nid: Nid,
        oid: Oid,
        lockless: Option<(Tid, u32)>,
        cache_limit: usize,
    ) {
        let Some(entry) = self.data_dict.get_mut(&oid) else {
            return; // handed to the application for resolution
        };
        let Some(at) = entry.waiting.iter().position(|n| *n == nid) else {
            return;
        };
        entry.waiting.remove(at);
        if let Some((serial, partition)) = lockless {
            if serial != entry.serial {
                // A late lockless answer to a previous store.
                entry.waiting.push(nid);
                return;
            }
            self.lockless.entry(partition).or_default().insert(nid);
            if self.conflict_dict.contains_key(&oid) {
                return;
            }
        }
        if !entry.waiting.is_empty() {
            return;
        }
        let entry = self.data_dict.remove(&oid).unwrap();
        let write = match entry.write {
            Write::Data(Some(data)) if self.cache_size + data.len() < cache_limit => {
                self.cache_size += data.len();
                Write::Data(Some(data))
            }
            Write::Data(_) => Write::Data(None),
            Write::Checked => Write::Checked,
        };
        self.cache_dict.insert(oid, write);
    }

    /// The connection to `nid` is gone: it is never written again, and
    /// counts as having answered every write (unless a conflict is being
    /// reported for it: the resolution rewrites it).
    pub(super) fn node_lost(&mut self, nid: Nid, cache_limit: usize) {
        if let Some(usable) = self.conn_dict.get_mut(&nid) {
            *usable = false;
        }
        let oids: Vec<Oid> = self
            .data_dict
            .keys()
            .filter(|oid| !self.conflict_dict.contains_key(oid))
            .copied()
            .collect();
        for oid in oids {
            self.written(nid, oid, None, cache_limit);
        }
    }

    /// Every store and check answered and every conflict resolved.
    pub(super) fn writes_settled(&self) -> bool {
        self.pending == 0
            && self.conflict_dict.is_empty()
            && self.resolving.is_empty()
            && !self.syncing
    }
}
