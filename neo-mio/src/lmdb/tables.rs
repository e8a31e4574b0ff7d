//! The LMDB environment and the one write transaction every read and write
//! of the store goes through.
//!
//! **Durability.** [`Store`](neo_core::storage::store::Store) promises
//! nothing until `sync`, and a crash must lose exactly what was written
//! since. One write transaction stays open across calls; [`Tables::commit`]
//! commits it (LMDB fsyncs at commit), so one sync makes any number of
//! writes durable together, and a crash — or dropping the store — aborts
//! it, losing exactly the unsynced writes and never part of one. The
//! transaction is begun lazily, by the first access after a commit, so an
//! idle store does not hold LMDB's writer lock.
//!
//! **Lifetime.** heed's `RwTxn<'e>` borrows the `Env` it came from (it even
//! keeps a reference to a field of it), so [`Tables::new`] boxes the
//! environment, which then never moves, and reaches it through a raw
//! pointer: the transaction gets a `'static` borrow of it, and [`Drop`]
//! aborts the transaction before freeing the environment. Nothing else
//! keeps that borrow.
//!
//! **Threads.** An LMDB write transaction belongs to the thread that began
//! it (LMDB's writer mutex), so `Tables` — and the store — are neither
//! `Send` nor `Sync` (the raw pointer sees to it): open the store on the
//! thread that uses it.
//!
//! **Map size.** LMDB fails a write with `MDB_MAP_FULL` once the file
//! reaches the map size, and the map can only be resized with no
//! transaction open. The map is large (a sparse reservation, 1 TiB on
//! 64-bit) and doubled after any commit that leaves it more than half
//! used. Should a write still hit the limit (a huge batch between two
//! syncs), the failed transaction — which LMDB then only allows to abort —
//! is aborted, the map doubled, and the transaction rebuilt from
//! [`Pending`], the final value of every key written since the last
//! commit. Callers never see it: every call still sees every previous
//! write, and the next sync commits them all at once.
//!
//! **Errors.** The trait cannot report errors, and a store that cannot
//! read or write (I/O error, disk full at commit, corruption) cannot do
//! anything useful: such failures panic. The process dies with the
//! transaction uncommitted, and reopening recovers the last sync — what a
//! crash does, which the node handles.

use std::cell::{Ref, RefCell};
use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::ptr::NonNull;

use heed::types::Bytes;
use heed::{Database, Env, MdbError, RwTxn};

use super::codec::{config_key, FORMAT_VERSION};

/// Map sizes are multiples of this, which every page size LMDB may use
/// (4, 16 or 64 KiB: the OS page size) divides, as a resize requires.
pub(super) const MAP_GRANULE: usize = 64 << 10;

/// The named databases of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Config,
    Pt,
    Trans,
    Obj,
    ObjByTid,
    TTrans,
    TObj,
    Data,
    DataIndex,
    DataRefs,
    Pack,
}

impl Table {
    pub(super) const ALL: [Table; 11] = [
        Table::Config,
        Table::Pt,
        Table::Trans,
        Table::Obj,
        Table::ObjByTid,
        Table::TTrans,
        Table::TObj,
        Table::Data,
        Table::DataIndex,
        Table::DataRefs,
        Table::Pack,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Config => "config",
            Table::Pt => "pt",
            Table::Trans => "trans",
            Table::Obj => "obj",
            Table::ObjByTid => "obj_tid",
            Table::TTrans => "ttrans",
            Table::TObj => "tobj",
            Table::Data => "data",
            Table::DataIndex => "data_index",
            Table::DataRefs => "data_refs",
            Table::Pack => "pack",
        }
    }
}

/// Order of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Forward,
    Backward,
}

pub(super) type Db = Database<Bytes, Bytes>;

/// The store's tables in one LMDB environment.
pub(super) struct Tables {
    /// The open write transaction. It borrows `*env`: [`Drop`] ends it
    /// first.
    txn: RefCell<Option<RwTxn<'static>>>,
    dbs: [Db; Table::ALL.len()],
    /// What the open transaction wrote, to rebuild it in a bigger map.
    pending: Pending,
    /// Boxed by [`Tables::new`], freed by [`Drop`]; never moves in between.
    env: NonNull<Env>,
}

impl Tables {
    /// Takes over an open environment and its tables.
    pub(super) fn new(env: Env, dbs: [Db; Table::ALL.len()]) -> Tables {
        let mut tables = Tables {
            txn: RefCell::new(None),
            dbs,
            pending: Pending::default(),
            env: NonNull::from(Box::leak(Box::new(env))),
        };
        // LMDB maps at least what the file uses, but no more: a map given
        // smaller than the file would be full at once.
        tables.make_room();
        tables
    }

    // ------------------------------------------------------------ reads

    /// The value of `key`, decoded by `decode`.
    pub(super) fn get<R>(
        &self,
        table: Table,
        key: &[u8],
        decode: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let txn = self.read();
        match self.db(table).get(&txn, key) {
            Ok(value) => value.map(decode),
            Err(error) => fatal("read", error),
        }
    }

    /// Calls `visit` on the rows with keys in `range`, in `direction`, until
    /// it breaks.
    pub(super) fn scan<K: AsRef<[u8]>>(
        &self,
        table: Table,
        range: (Bound<K>, Bound<K>),
        direction: Direction,
        mut visit: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) {
        let range: (Bound<&[u8]>, Bound<&[u8]>) = (
            range.0.as_ref().map(AsRef::as_ref),
            range.1.as_ref().map(AsRef::as_ref),
        );
        let txn = self.read();
        let db = self.db(table);
        let result = match direction {
            Direction::Forward => db
                .range(&txn, &range)
                .and_then(|rows| visit_rows(rows, &mut visit)),
            Direction::Backward => db
                .rev_range(&txn, &range)
                .and_then(|rows| visit_rows(rows, &mut visit)),
        };
        if let Err(error) = result {
            fatal("scan", error);
        }
    }

    /// The first row of `range` in `direction`, decoded by `decode`.
    pub(super) fn first<K: AsRef<[u8]>, R>(
        &self,
        table: Table,
        range: (Bound<K>, Bound<K>),
        direction: Direction,
        decode: impl FnOnce(&[u8], &[u8]) -> R,
    ) -> Option<R> {
        let mut decode = Some(decode);
        let mut found = None;
        self.scan(table, range, direction, |key, value| {
            found = decode.take().map(|decode| decode(key, value));
            ControlFlow::Break(())
        });
        found
    }

    /// Number of rows of a table.
    pub(super) fn len(&self, table: Table) -> u64 {
        let txn = self.read();
        self.db(table)
            .len(&txn)
            .unwrap_or_else(|error| fatal("stat", error))
    }

    // ------------------------------------------------------------ writes

    pub(super) fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.pending.put(table, key, Some(value));
        let db = self.db(table);
        let result = db.put(self.write(), key, value);
        self.settle(result, "put");
    }

    pub(super) fn delete(&mut self, table: Table, key: &[u8]) {
        self.pending.put(table, key, None);
        let db = self.db(table);
        let result = db.delete(self.write(), key).map(drop);
        self.settle(result, "delete");
    }

    /// Deletes every row of every table but the format version.
    pub(super) fn erase(&mut self) {
        for table in Table::ALL {
            self.pending.clear(table);
            let db = self.db(table);
            let result = db.clear(self.write());
            self.settle(result, "clear");
        }
        self.put(
            Table::Config,
            config_key::FORMAT,
            &FORMAT_VERSION.to_be_bytes(),
        );
    }

    /// Makes every write so far durable, then grows the map if it is more
    /// than half used.
    pub(super) fn commit(&mut self) {
        let Some(mut txn) = self.txn.get_mut().take() else {
            return;
        };
        loop {
            match txn.commit() {
                Ok(()) => break,
                // LMDB aborted the transaction: redo it in a bigger map.
                Err(heed::Error::Mdb(MdbError::MapFull)) => txn = self.rebuild(),
                Err(error) => fatal("commit", error),
            }
        }
        self.pending = Pending::default();
        self.make_room();
    }

    pub(super) fn path(&self) -> &Path {
        self.env().path()
    }

    /// The current map size (bytes).
    pub(super) fn map_size(&self) -> usize {
        self.env().info().map_size
    }

    // ------------------------------------------------------------ internals

    fn db(&self, table: Table) -> Db {
        self.dbs[table as usize]
    }

    fn env(&self) -> &'static Env {
        // SAFETY: `env` comes from `Box::leak` in `new` and is freed only by
        // `drop`, after the transaction — the only holder of this borrow
        // beyond a call — is gone.
        unsafe { self.env.as_ref() }
    }

    /// The transaction, begun if needed, for reading: reads must see the
    /// writes not committed yet.
    fn read(&self) -> Ref<'_, RwTxn<'static>> {
        if self.txn.borrow().is_none() {
            *self.txn.borrow_mut() = Some(begin(self.env()));
        }
        Ref::map(self.txn.borrow(), |txn| txn.as_ref().expect("begun above"))
    }

    /// The transaction, begun if needed, for writing.
    fn write(&mut self) -> &mut RwTxn<'static> {
        let env = self.env();
        self.txn.get_mut().get_or_insert_with(|| begin(env))
    }

    fn settle(&mut self, result: heed::Result<()>, what: &str) {
        match result {
            Ok(()) => {}
            Err(heed::Error::Mdb(MdbError::MapFull)) => {
                // The transaction is unusable: abort it, and rebuild it
                // (with this write, already pending) in a bigger map.
                drop(self.txn.get_mut().take());
                let txn = self.rebuild();
                *self.txn.get_mut() = Some(txn);
            }
            Err(error) => fatal(what, error),
        }
    }

    /// Doubles the map (no transaction is open) and replays the pending
    /// writes in a new transaction, until they fit.
    fn rebuild(&mut self) -> RwTxn<'static> {
        loop {
            self.resize(self.map_size() * 2);
            let mut txn = begin(self.env());
            match self.pending.replay(&self.dbs, &mut txn) {
                Ok(()) => return txn,
                Err(heed::Error::Mdb(MdbError::MapFull)) => txn.abort(),
                Err(error) => fatal("replay", error),
            }
        }
    }

    /// Doubles the map until at most half of it is used (no transaction is
    /// open), so that writes until the next commit are unlikely to fill
    /// it.
    fn make_room(&mut self) {
        let info = self.env().info();
        let used = (info.last_page_number + 1) * self.env().stat().page_size as usize;
        let mut size = info.map_size;
        while used > size / 2 {
            size *= 2;
        }
        if size != info.map_size {
            self.resize(size);
        }
    }

    fn resize(&mut self, size: usize) {
        debug_assert!(self.txn.get_mut().is_none());
        let size = size.next_multiple_of(MAP_GRANULE);
        // SAFETY: LMDB allows a resize while no transaction of this process
        // is open: the write transaction has just ended, and there is no
        // read transaction (reads go through the write transaction).
        if let Err(error) = unsafe { self.env().resize(size) } {
            fatal("map resize", error);
        }
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        // Aborts what was not committed, and ends the borrow of `*env`.
        drop(self.txn.get_mut().take());
        // SAFETY: allocated by `Box::leak` in `new`; nothing borrows it
        // now, and it is not used after.
        drop(unsafe { Box::from_raw(self.env.as_ptr()) });
    }
}

fn begin(env: &'static Env) -> RwTxn<'static> {
    env.write_txn()
        .unwrap_or_else(|error| fatal("transaction begin", error))
}

fn visit_rows<'t>(
    rows: impl Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>>,
    visit: &mut impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
) -> heed::Result<()> {
    for row in rows {
        let (key, value) = row?;
        if visit(key, value).is_break() {
            break;
        }
    }
    Ok(())
}

/// An LMDB failure the store cannot recover from (see the module doc).
fn fatal(what: &str, error: heed::Error) -> ! {
    panic!("LMDB {what} failed: {error}; stopping (reopening the store recovers its last sync)")
}

/// Every write of the open transaction: per table, whether it was cleared
/// first, and the final value of each key written after (`None`: deleted).
/// Replaying it on the last commit gives the transaction's state back, in
/// any order since keys are independent.
#[derive(Default)]
struct Pending {
    cleared: [bool; Table::ALL.len()],
    writes: [BTreeMap<Vec<u8>, Option<Vec<u8>>>; Table::ALL.len()],
}

impl Pending {
    fn put(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        self.writes[table as usize].insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }

    fn clear(&mut self, table: Table) {
        self.cleared[table as usize] = true;
        self.writes[table as usize].clear();
    }

    fn replay(&self, dbs: &[Db], txn: &mut RwTxn) -> heed::Result<()> {
        for table in Table::ALL {
            let db = dbs[table as usize];
            if self.cleared[table as usize] {
                db.clear(txn)?;
            }
            for (key, value) in &self.writes[table as usize] {
                match value {
                    Some(value) => db.put(txn, key, value)?,
                    None => drop(db.delete(txn, key)?),
                }
            }
        }
        Ok(())
    }
}
