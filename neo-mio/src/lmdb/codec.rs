//! Byte encodings of the store's keys and values (the layout is in the
//! parent module's doc).
//!
//! Keys are fixed-size big-endian integers so that LMDB's byte order is
//! numeric order. Values are hand-written: fixed-size integers are
//! big-endian, byte strings and lists are prefixed with a u32 length,
//! options with a presence byte. A value that does not decode means the
//! file is corrupt: the store cannot answer anything about it, so decoding
//! panics with what was being read.

use bytes::Bytes;
use neo_core::storage::store::{DataId, ObjectRecord, StoredCell, TransactionMeta};
use neo_proto::{CellState, Checksum, Nid, ObjectData, Oid, PackOrder, Ptid, Tid};

/// Version of this layout, in `config` under [`config_key::FORMAT`]. A store
/// with another version is refused at open.
pub(super) const FORMAT_VERSION: u32 = 1;

/// Keys of the `config` table.
pub(super) mod config_key {
    pub(crate) const FORMAT: &[u8] = b"format";
    pub(crate) const CLUSTER: &[u8] = b"cluster";
    pub(crate) const NID: &[u8] = b"nid";
    pub(crate) const TRUNCATE_TID: &[u8] = b"truncate_tid";
    pub(crate) const BACKUP_TID: &[u8] = b"backup_tid";
    /// `ptid ‖ num_replicas` once a partition table was stored.
    pub(crate) const TABLE: &[u8] = b"table";
}

// ------------------------------------------------------------------ keys

/// Key of a `trans` row: `partition ‖ tid`.
pub(super) fn trans_key(partition: u32, tid: Tid) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&partition.to_be_bytes());
    key[4..].copy_from_slice(&tid.0.to_be_bytes());
    key
}

pub(super) fn split_trans_key(key: &[u8]) -> (u32, Tid) {
    let key: &[u8; 12] = key.try_into().unwrap_or_else(|_| corrupt("trans key"));
    (be_u32(&key[..4]), Tid(be_u64(&key[4..])))
}

/// Key of an `obj` row: `partition ‖ oid ‖ tid`.
pub(super) fn obj_key(partition: u32, oid: Oid, tid: Tid) -> [u8; 20] {
    triple(partition, oid.0, tid.0)
}

pub(super) fn split_obj_key(key: &[u8]) -> (u32, Oid, Tid) {
    let (partition, oid, tid) = split_triple(key, "obj key");
    (partition, Oid(oid), Tid(tid))
}

/// Key of an `obj_tid` row: `partition ‖ tid ‖ oid`.
pub(super) fn obj_tid_key(partition: u32, tid: Tid, oid: Oid) -> [u8; 20] {
    triple(partition, tid.0, oid.0)
}

pub(super) fn split_obj_tid_key(key: &[u8]) -> (u32, Tid, Oid) {
    let (partition, tid, oid) = split_triple(key, "obj_tid key");
    (partition, Tid(tid), Oid(oid))
}

/// Key of a `tobj` row: `ttid ‖ oid`.
pub(super) fn tobj_key(ttid: Tid, oid: Oid) -> [u8; 16] {
    let mut key = [0; 16];
    key[..8].copy_from_slice(&ttid.0.to_be_bytes());
    key[8..].copy_from_slice(&oid.0.to_be_bytes());
    key
}

pub(super) fn split_tobj_key(key: &[u8]) -> (Tid, Oid) {
    let key: &[u8; 16] = key.try_into().unwrap_or_else(|_| corrupt("tobj key"));
    (Tid(be_u64(&key[..8])), Oid(be_u64(&key[8..])))
}

/// Key of the tables keyed by one u64 (`ttrans`, `pack`, `data`,
/// `data_refs`).
pub(super) fn u64_key(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

pub(super) fn split_u64_key(key: &[u8]) -> u64 {
    let key: &[u8; 8] = key.try_into().unwrap_or_else(|_| corrupt("u64 key"));
    u64::from_be_bytes(*key)
}

/// Data ids of rows first stored for partition `p`: `[p·2^48, (p+1)·2^48)`.
pub(super) fn data_id_range(partition: u32) -> (DataId, DataId) {
    let base = (partition as u64) << 48;
    (base, base + (1 << 48) - 1)
}

/// Key of a `pt` row: the partition.
pub(super) fn pt_key(offset: u32) -> [u8; 4] {
    offset.to_be_bytes()
}

/// Key of a `data_index` row: `checksum ‖ compression`.
pub(super) fn data_index_key(data: &ObjectData) -> [u8; 24] {
    let mut key = [0; 24];
    key[..20].copy_from_slice(&data.checksum.0);
    key[20..].copy_from_slice(&data.compression.to_be_bytes());
    key
}

fn triple(a: u32, b: u64, c: u64) -> [u8; 20] {
    let mut key = [0; 20];
    key[..4].copy_from_slice(&a.to_be_bytes());
    key[4..12].copy_from_slice(&b.to_be_bytes());
    key[12..].copy_from_slice(&c.to_be_bytes());
    key
}

fn split_triple(key: &[u8], what: &str) -> (u32, u64, u64) {
    let key: &[u8; 20] = key.try_into().unwrap_or_else(|_| corrupt(what));
    (be_u32(&key[..4]), be_u64(&key[4..12]), be_u64(&key[12..]))
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
}

fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("8 bytes"))
}

// ------------------------------------------------------------------ values

/// A `ttrans` row: a voted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TempTransaction {
    pub partition: u32,
    /// Final TID once locked.
    pub tid: Option<Tid>,
    pub meta: TransactionMeta,
}

/// `pt` row: its cells in table order, each `nid ‖ state ‖ replicated ‖
/// pack?`.
pub(super) fn encode_row(row: &[StoredCell]) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.len() * 22);
    for cell in row {
        out.extend_from_slice(&cell.nid.0.to_be_bytes());
        out.push(cell.state as u8);
        out.extend_from_slice(&cell.replicated.0.to_be_bytes());
        put_option_u64(&mut out, cell.pack.map(|t| t.0));
    }
    out
}

pub(super) fn decode_row(bytes: &[u8]) -> Vec<StoredCell> {
    let mut reader = Reader::new(bytes, "pt row");
    let mut row = Vec::new();
    while !reader.is_empty() {
        let nid = Nid(reader.u32() as i32);
        let state = reader.u8();
        let state = CellState::from_u8(state).unwrap_or_else(|| corrupt("pt cell state"));
        let replicated = Tid(reader.u64());
        let pack = reader.option_u64().map(Tid);
        row.push(StoredCell {
            nid,
            state,
            replicated,
            pack,
        });
    }
    row
}

/// `trans` row (and the tail of a `ttrans` row): `ttid ‖ packed ‖ user ‖
/// description ‖ extension ‖ oids`. The TTID comes first so that
/// [`meta_ttid`] reads it alone.
pub(super) fn encode_meta(meta: &TransactionMeta, out: &mut Vec<u8>) {
    out.extend_from_slice(&meta.ttid.0.to_be_bytes());
    out.push(meta.packed as u8);
    for bytes in [&meta.user, &meta.description, &meta.extension] {
        put_bytes(out, bytes);
    }
    put_oids(out, &meta.oids);
}

pub(super) fn decode_meta(bytes: &[u8]) -> TransactionMeta {
    let mut reader = Reader::new(bytes, "trans row");
    let meta = read_meta(&mut reader);
    reader.finish();
    meta
}

/// The TTID of a `trans` row, without decoding the rest.
pub(super) fn meta_ttid(bytes: &[u8]) -> Tid {
    Tid(Reader::new(bytes, "trans row").u64())
}

fn read_meta(reader: &mut Reader) -> TransactionMeta {
    TransactionMeta {
        ttid: Tid(reader.u64()),
        packed: reader.bool(),
        user: reader.bytes(),
        description: reader.bytes(),
        extension: reader.bytes(),
        oids: reader.oids(),
    }
}

/// `ttrans` row: `partition ‖ tid? ‖ meta`.
pub(super) fn encode_temp_transaction(temp: &TempTransaction) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&temp.partition.to_be_bytes());
    put_option_u64(&mut out, temp.tid.map(|t| t.0));
    encode_meta(&temp.meta, &mut out);
    out
}

pub(super) fn decode_temp_transaction(bytes: &[u8]) -> TempTransaction {
    let mut reader = Reader::new(bytes, "ttrans row");
    let temp = TempTransaction {
        partition: reader.u32(),
        tid: reader.option_u64().map(Tid),
        meta: read_meta(&mut reader),
    };
    reader.finish();
    temp
}

/// `obj` row: `data_id? ‖ value_tid?`.
pub(super) fn encode_record(record: &ObjectRecord, out: &mut Vec<u8>) {
    put_option_u64(out, record.data_id);
    put_option_u64(out, record.value_tid.map(|t| t.0));
}

pub(super) fn decode_record(bytes: &[u8]) -> ObjectRecord {
    let mut reader = Reader::new(bytes, "obj row");
    let record = read_record(&mut reader);
    reader.finish();
    record
}

fn read_record(reader: &mut Reader) -> ObjectRecord {
    ObjectRecord {
        data_id: reader.option_u64(),
        value_tid: reader.option_u64().map(Tid),
    }
}

/// `tobj` row: `partition ‖ record`.
pub(super) fn encode_temp_record(partition: u32, record: &ObjectRecord) -> Vec<u8> {
    let mut out = partition.to_be_bytes().to_vec();
    encode_record(record, &mut out);
    out
}

pub(super) fn decode_temp_record(bytes: &[u8]) -> (u32, ObjectRecord) {
    let mut reader = Reader::new(bytes, "tobj row");
    let temp = (reader.u32(), read_record(&mut reader));
    reader.finish();
    temp
}

/// Bytes before the data itself in a `data` row.
const DATA_HEADER: usize = 24;

/// `data` row: `compression ‖ checksum ‖ bytes` (the bytes unprefixed: they
/// run to the end).
pub(super) fn encode_data(data: &ObjectData) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_HEADER + data.data.len());
    out.extend_from_slice(&data.compression.to_be_bytes());
    out.extend_from_slice(&data.checksum.0);
    out.extend_from_slice(&data.data);
    out
}

pub(super) fn decode_data(bytes: &[u8]) -> ObjectData {
    if bytes.len() < DATA_HEADER {
        corrupt("data row");
    }
    ObjectData {
        compression: be_u32(&bytes[..4]),
        checksum: Checksum(bytes[4..DATA_HEADER].try_into().expect("20 bytes")),
        data: Bytes::copy_from_slice(&bytes[DATA_HEADER..]),
    }
}

/// The bytes of a `data` row, without copying them.
pub(super) fn data_bytes(bytes: &[u8]) -> &[u8] {
    bytes
        .get(DATA_HEADER..)
        .unwrap_or_else(|| corrupt("data row"))
}

/// The `data_index` key of a `data` row.
pub(super) fn data_row_index_key(bytes: &[u8]) -> [u8; 24] {
    if bytes.len() < DATA_HEADER {
        corrupt("data row");
    }
    let mut key = [0; 24];
    key[..20].copy_from_slice(&bytes[4..DATA_HEADER]);
    key[20..].copy_from_slice(&bytes[..4]);
    key
}

/// `pack` row: `pack_id ‖ approved ‖ partial ‖ pack_tid ‖ oids?`, with
/// `approved` 0 (not signed), 1 (rejected) or 2 (approved).
pub(super) fn encode_pack_order(order: &PackOrder) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&order.pack_id.0.to_be_bytes());
    out.push(match order.approved {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    });
    out.push(order.partial as u8);
    out.extend_from_slice(&order.pack_tid.0.to_be_bytes());
    match &order.oids {
        None => out.push(0),
        Some(oids) => {
            out.push(1);
            put_oids(&mut out, oids);
        }
    }
    out
}

pub(super) fn decode_pack_order(bytes: &[u8]) -> PackOrder {
    let mut reader = Reader::new(bytes, "pack row");
    let pack_id = Tid(reader.u64());
    let approved = match reader.u8() {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        _ => corrupt("pack row approval"),
    };
    let partial = reader.bool();
    let pack_tid = Tid(reader.u64());
    let oids = reader.bool().then(|| reader.oids());
    reader.finish();
    PackOrder {
        pack_id,
        approved,
        partial,
        oids,
        pack_tid,
    }
}

/// `config` table value: `ptid ‖ num_replicas`.
pub(super) fn encode_table_header(ptid: Ptid, num_replicas: u32) -> [u8; 12] {
    let mut out = [0; 12];
    out[..8].copy_from_slice(&ptid.0.to_be_bytes());
    out[8..].copy_from_slice(&num_replicas.to_be_bytes());
    out
}

pub(super) fn decode_table_header(bytes: &[u8]) -> (Ptid, u32) {
    let mut reader = Reader::new(bytes, "table header");
    let header = (Ptid(reader.u64()), reader.u32());
    reader.finish();
    header
}

pub(super) fn decode_u64(bytes: &[u8], what: &'static str) -> u64 {
    let mut reader = Reader::new(bytes, what);
    let value = reader.u64();
    reader.finish();
    value
}

pub(super) fn decode_u32(bytes: &[u8], what: &'static str) -> u32 {
    let mut reader = Reader::new(bytes, what);
    let value = reader.u32();
    reader.finish();
    value
}

fn put_option_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.extend_from_slice(&[0; 9]),
        Some(value) => {
            out.push(1);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("transaction metadata larger than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_oids(out: &mut Vec<u8>, oids: &[Oid]) {
    let len = u32::try_from(oids.len()).expect("more than 2^32 oids");
    out.extend_from_slice(&len.to_be_bytes());
    for oid in oids {
        out.extend_from_slice(&oid.0.to_be_bytes());
    }
}

/// Reads a value front to back; any shortfall is corruption.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { bytes, what }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        if self.bytes.len() < n {
            corrupt(self.what);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn bool(&mut self) -> bool {
        match self.u8() {
            0 => false,
            1 => true,
            _ => corrupt(self.what),
        }
    }

    fn u32(&mut self) -> u32 {
        be_u32(self.take(4))
    }

    fn u64(&mut self) -> u64 {
        be_u64(self.take(8))
    }

    /// A presence byte and 8 bytes, zero when absent (fixed size: records
    /// and cells are rewritten in place often).
    fn option_u64(&mut self) -> Option<u64> {
        let present = self.bool();
        let value = self.u64();
        present.then_some(value)
    }

    fn bytes(&mut self) -> Bytes {
        let len = self.u32() as usize;
        Bytes::copy_from_slice(self.take(len))
    }

    fn oids(&mut self) -> Vec<Oid> {
        let len = self.u32() as usize;
        if self.bytes.len() / 8 < len {
            corrupt(self.what);
        }
        (0..len).map(|_| Oid(self.u64())).collect()
    }

    fn finish(self) {
        if !self.bytes.is_empty() {
            corrupt(self.what);
        }
    }
}

/// A value or key that cannot be what its table holds.
fn corrupt(what: &str) -> ! {
    panic!("corrupt LMDB store: malformed {what}")
}
