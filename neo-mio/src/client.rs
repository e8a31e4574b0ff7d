//! A blocking NEO client: neo-core's client state machine driven in the
//! calling thread by its own event loop.
//!
//! Every call starts an operation on the state machine and turns the loop
//! until that operation is done, so one `NeoClient` serves one thread (make
//! one per thread for parallel work; each has its own connections, as one
//! NEO/py client per process does). Invalidations sent by the master while
//! waiting are kept for [`NeoClient::invalidations`], up to
//! [`INVALIDATED_OIDS_COUNT_MAX`] (see [`NeoClient::invalidations_dropped`]).
//!
//! ```no_run
//! use neo_mio::client::NeoClient;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = NeoClient::connect("demo", &["127.0.0.1:2051".parse()?])?;
//! let oid = client.new_oid()?;
//! let mut txn = client.begin("me", "first commit")?;
//! client.store(&mut txn, oid, None, b"hello".to_vec())?;
//! let tid = client.commit(txn)?;
//! assert_eq!(client.load(oid)?, (b"hello".to_vec().into(), tid));
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use neo_core::client::{
    Answer, Client, ClientConfig, ClientError, ClientEvent, Conflict, HistoryEntry,
    IteratorTransaction, LoadMode, Loaded, OpId, TransactionInfo, TxnId,
};
use neo_proto::{Oid, Tid};

use crate::runtime::{address_of, now, wall_now, Runtime};

/// How long a call waits before giving up with [`Error::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most invalidated oids kept for [`NeoClient::invalidations`] (each
/// transaction counts for one more): an application that never collects
/// them must not make the client grow without limit. Past it they are all
/// dropped, which [`NeoClient::invalidations_dropped`] reports.
pub const INVALIDATED_OIDS_COUNT_MAX: usize = 1 << 20;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// What the cluster answered (NEO/py's client exceptions).
    Client(ClientError),
    /// A store met a newer committed revision that was not resolved: the
    /// transaction is aborted, retry it from fresh reads.
    Conflict(Conflict),
    /// The cluster did not answer in time (not running, unreachable).
    Timeout { waited: Duration, doing: String },
    /// The event loop failed (a system error).
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Client(error) => write!(f, "{error}"),
            Error::Conflict(conflict) => write!(
                f,
                "conflict on {}: committed {}, based on {}",
                conflict.oid, conflict.committed, conflict.based_on
            ),
            Error::Timeout { waited, doing } => {
                write!(f, "no answer from the cluster after {waited:?} ({doing})")
            }
            Error::Io(error) => write!(f, "event loop: {error}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Error {
        Error::Client(error)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A transaction being built; consumed by [`NeoClient::commit`] or
/// [`NeoClient::abort`].
#[derive(Debug)]
#[must_use = "a transaction must be committed or aborted"]
pub struct Transaction {
    id: TxnId,
    ttid: Tid,
}

impl Transaction {
    /// The temporary TID the master gave the transaction.
    pub fn ttid(&self) -> Tid {
        self.ttid
    }
}

pub struct NeoClient {
    runtime: Runtime<Client>,
    timeout: Duration,
    invalidations: Invalidations,
    /// Conflicts reported and not handled yet.
    conflicts: Vec<Conflict>,
    /// Operations a call is waiting for: the results of others (a call
    /// that timed out) are dropped.
    awaited: Vec<OpId>,
    /// Results of awaited operations not collected yet.
    done: Vec<(OpId, std::result::Result<Answer, ClientError>)>,
}

impl NeoClient {
    /// Connects to the cluster `cluster` through its masters and waits
    /// until it serves.
    pub fn connect(cluster: &str, masters: &[SocketAddr]) -> Result<NeoClient> {
        let masters = masters.iter().map(|&m| address_of(m)).collect();
        NeoClient::with_config(ClientConfig::new(cluster.to_string(), masters))
    }

    /// Connects with a full configuration (cache size, read-only, ...).
    pub fn with_config(config: ClientConfig) -> Result<NeoClient> {
        NeoClient::with_config_and_timeout(config, DEFAULT_TIMEOUT)
    }

    /// Connects, waiting at most `timeout` for the cluster to serve (also
    /// the timeout of later calls).
    pub fn with_config_and_timeout(
        mut config: ClientConfig,
        timeout: Duration,
    ) -> Result<NeoClient> {
        if config.seed == 0 {
            // The wall clock: the monotonic one starts near zero in every
            // process, which would give clients the same seeds.
            config.seed = wall_now().as_unix_nanos() ^ u64::from(std::process::id());
        }
        let client = Client::new(config, now());
        let runtime = Runtime::new(client, "client", None).map_err(|e| Error::Io(e.to_string()))?;
        let mut client = NeoClient {
            runtime,
            timeout,
            invalidations: Invalidations::default(),
            conflicts: Vec::new(),
            awaited: Vec::new(),
            done: Vec::new(),
        };
        client.wait_for("connecting to the cluster", |c| {
            c.runtime.node().is_ready().then_some(())
        })?;
        Ok(client)
    }

    /// Sets how long each call may wait.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The last TID the client knows committed.
    pub fn last_tid(&self) -> Option<Tid> {
        self.runtime.node().last_tid()
    }

    /// The partition table as the client knows it (rows of `(storage,
    /// cell state)`), after handling what arrived so far.
    pub fn partition_table(&mut self) -> Result<neo_proto::Rows> {
        self.runtime
            .turn(Some(Duration::ZERO))
            .map_err(|e| Error::Io(e.to_string()))?;
        self.pump();
        Ok(self
            .runtime
            .node()
            .partition_table()
            .map(|pt| pt.rows())
            .unwrap_or_default())
    }

    /// Invalidations received so far (other clients' commits: TID and
    /// oids), oldest first. Past [`INVALIDATED_OIDS_COUNT_MAX`] uncollected
    /// ones, they are all dropped: check [`NeoClient::invalidations_dropped`]
    /// too.
    pub fn invalidations(&mut self) -> Vec<(Tid, Vec<Oid>)> {
        self.pump();
        self.invalidations.take()
    }

    /// Whether invalidations were dropped (uncollected for too long) since
    /// the last call: an application caching objects must then drop them
    /// all, as ZODB does when it reconnects. Reads through this client are
    /// not affected: its own cache applied every invalidation.
    pub fn invalidations_dropped(&mut self) -> bool {
        self.pump();
        std::mem::take(&mut self.invalidations.dropped)
    }

    // ------------------------------------------------------------ reads

    /// A new object id.
    pub fn new_oid(&mut self) -> Result<Oid> {
        match self.call("new_oid", |c, now| c.new_oid(now))? {
            Answer::Oid(oid) => Ok(oid),
            other => unexpected(other),
        }
    }

    /// The current revision of `oid`: data and serial.
    pub fn load(&mut self, oid: Oid) -> Result<(Bytes, Tid)> {
        let loaded = self.load_mode(oid, LoadMode::Current)?;
        Ok((loaded.data, loaded.serial))
    }

    /// The revision of `oid` current just before `before` (ZODB's
    /// `loadBefore`); `None` if the object did not exist then.
    pub fn load_before(&mut self, oid: Oid, before: Tid) -> Result<Option<Loaded>> {
        match self.load_mode(oid, LoadMode::Before(before)) {
            Err(Error::Client(ClientError::NotFound)) => Ok(None),
            other => other.map(Some),
        }
    }

    /// The revision of `oid` with serial `serial` (`loadSerial`).
    pub fn load_serial(&mut self, oid: Oid, serial: Tid) -> Result<Bytes> {
        Ok(self.load_mode(oid, LoadMode::At(serial))?.data)
    }

    fn load_mode(&mut self, oid: Oid, mode: LoadMode) -> Result<Loaded> {
        match self.call("load", |c, now| c.load(now, oid, mode))? {
            Answer::Loaded(loaded) => Ok(loaded),
            other => unexpected(other),
        }
    }

    /// Up to `size` revisions of `oid`, newest first.
    pub fn history(&mut self, oid: Oid, size: u64) -> Result<Vec<HistoryEntry>> {
        match self.call("history", |c, now| c.history(now, oid, size))? {
            Answer::History(entries) => Ok(entries),
            other => unexpected(other),
        }
    }

    /// Metadata of the transaction `tid`.
    pub fn transaction_info(&mut self, tid: Tid) -> Result<TransactionInfo> {
        match self.call("transaction_info", |c, now| c.transaction_info(now, tid))? {
            Answer::Transaction(info) => Ok(info),
            other => unexpected(other),
        }
    }

    /// Transactions from `start` up to `stop` (inclusive), with their
    /// records, oldest first (ZODB's `iterator`).
    pub fn iterate(&mut self, start: Tid, stop: Option<Tid>) -> Result<Vec<IteratorTransaction>> {
        let mut all = Vec::new();
        let mut next = Some(start);
        while let Some(from) = next {
            match self.call("iterate", |c, now| c.iterate(now, from, stop))? {
                Answer::Transactions {
                    transactions,
                    next: after,
                } => {
                    // Each chunk starts past the previous one (the client
                    // checks what storages list): the loop ends when the
                    // range is exhausted.
                    if let Some(after) = after.filter(|after| *after <= from) {
                        return Err(Error::Client(ClientError::UnexpectedAnswer(format!(
                            "iteration from {from} continuing at {after}: not advancing"
                        ))));
                    }
                    all.extend(transactions);
                    next = after;
                }
                other => return unexpected(other),
            }
        }
        Ok(all)
    }

    /// Waits until the client has seen every transaction committed before
    /// this call (ZODB's `sync`).
    pub fn sync(&mut self) -> Result<()> {
        self.call("sync", |c, now| c.sync(now)).map(|_| ())
    }

    // ------------------------------------------------------------ commit

    /// Begins a transaction.
    pub fn begin(&mut self, user: &str, description: &str) -> Result<Transaction> {
        let user = Bytes::from(user.to_string());
        let description = Bytes::from(description.to_string());
        let (id, op) = self
            .runtime
            .with_node(|c, now| c.tpc_begin(now, user, description, Bytes::new(), None))?;
        match self.wait(op, "tpc_begin")? {
            Answer::Begun(ttid) => Ok(Transaction { id, ttid }),
            other => unexpected(other),
        }
    }

    /// Stores `data` as the new revision of `oid`, based on revision
    /// `serial` (`None`: a new object).
    pub fn store(
        &mut self,
        txn: &mut Transaction,
        oid: Oid,
        serial: Option<Tid>,
        data: impl Into<Bytes>,
    ) -> Result<()> {
        let data = data.into();
        let serial = serial.unwrap_or(Tid::ZERO);
        self.runtime
            .with_node(|c, now| c.store(now, txn.id, oid, serial, Some(data)))?;
        Ok(())
    }

    /// Deletes `oid` (based on revision `serial`).
    pub fn delete(&mut self, txn: &mut Transaction, oid: Oid, serial: Tid) -> Result<()> {
        self.runtime
            .with_node(|c, now| c.store(now, txn.id, oid, serial, None))?;
        Ok(())
    }

    /// Commits (vote, then finish); a conflict aborts the transaction and
    /// is returned as [`Error::Conflict`].
    pub fn commit(&mut self, txn: Transaction) -> Result<Tid> {
        self.commit_resolving(txn, |_, _| None)
    }

    /// Commits, asking `resolve` to merge each conflict (ZODB's conflict
    /// resolution): given the conflict (with what we stored) and the
    /// committed revision's data, it returns the data to store on top of
    /// the committed revision, or `None` to give up (the transaction is
    /// then aborted and the conflict returned).
    pub fn commit_resolving(
        &mut self,
        txn: Transaction,
        mut resolve: impl FnMut(&Conflict, &Bytes) -> Option<Bytes>,
    ) -> Result<Tid> {
        let vote = self.runtime.with_node(|c, now| c.tpc_vote(now, txn.id));
        self.awaited.push(vote);
        let voted = self.vote_resolving(&txn, vote, &mut resolve);
        self.awaited.retain(|o| *o != vote);
        if let Err(error) = voted {
            // The transaction is ours (consumed): nobody else can abort it.
            self.abort(txn);
            return Err(error);
        }
        let finish = self.runtime.with_node(|c, now| c.tpc_finish(now, txn.id));
        match self.wait(finish, "tpc_finish")? {
            Answer::Finished(tid) => Ok(tid),
            other => unexpected(other),
        }
    }

    /// Waits for the vote `vote`, resolving conflicts meanwhile.
    fn vote_resolving(
        &mut self,
        txn: &Transaction,
        vote: OpId,
        resolve: &mut impl FnMut(&Conflict, &Bytes) -> Option<Bytes>,
    ) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.pump();
            if let Some(index) = self.conflicts.iter().position(|c| c.txn == txn.id) {
                let conflict = self.conflicts.remove(index);
                let merged = if conflict.checked {
                    None
                } else {
                    // A deleted committed revision cannot be merged.
                    match self.load_serial(conflict.oid, conflict.committed) {
                        Ok(committed) => resolve(&conflict, &committed),
                        Err(_) => None,
                    }
                };
                match merged {
                    Some(data) => self.runtime.with_node(|c, now| {
                        c.resolve_conflict(now, txn.id, conflict.oid, Some(data))
                    })?,
                    None => return Err(Error::Conflict(conflict)),
                }
                continue;
            }
            if let Some(result) = self.take_done(vote) {
                return result.map(|_| ()).map_err(Error::Client);
            }
            self.turn_until(deadline, "tpc_vote")?;
        }
    }

    /// Aborts a transaction: its stores are forgotten, its locks released.
    pub fn abort(&mut self, txn: Transaction) {
        self.runtime.with_node(|c, now| c.tpc_abort(now, txn.id));
        // Nothing may turn the loop for a while: the storages must hear
        // now that the transaction's locks are released.
        self.runtime.flush();
        self.conflicts.retain(|c| c.txn != txn.id);
    }

    /// Packs the database at `pack_tid` and waits until every storage
    /// applied it.
    pub fn pack(&mut self, pack_tid: Tid) -> Result<Option<Tid>> {
        match self.call("pack", |c, now| c.pack(now, pack_tid, None, true))? {
            Answer::Packed(id) => Ok(id),
            other => unexpected(other),
        }
    }

    // ------------------------------------------------------------ the loop

    fn call(
        &mut self,
        doing: &str,
        start: impl FnOnce(&mut Client, neo_core::Time) -> OpId,
    ) -> Result<Answer> {
        let op = self.runtime.with_node(start);
        self.wait(op, doing)
    }

    fn wait(&mut self, op: OpId, doing: &str) -> Result<Answer> {
        self.awaited.push(op);
        let result = self.wait_for(doing, |c| c.take_done(op));
        self.awaited.retain(|o| *o != op);
        result?.map_err(Error::Client)
    }

    /// Turns the loop until `ready` gives a value, at most the timeout.
    fn wait_for<T>(
        &mut self,
        doing: &str,
        mut ready: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.pump();
            if let Some(value) = ready(self) {
                return Ok(value);
            }
            self.turn_until(deadline, doing)?;
        }
    }

    fn turn_until(&mut self, deadline: Instant, doing: &str) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let doing = match self.runtime.node().last_refusal() {
                Some(refusal) => format!("{doing}; {refusal}"),
                None => doing.to_string(),
            };
            return Err(Error::Timeout {
                waited: self.timeout,
                doing,
            });
        }
        self.runtime
            .turn(Some(left))
            .map_err(|e| Error::Io(e.to_string()))
    }

    /// Sorts the events produced so far; answers to awaited operations
    /// stay queued in `done` (at most one each).
    fn pump(&mut self) {
        while let Some(event) = self.runtime.next_event() {
            match event {
                ClientEvent::Invalidated { tid, oids } => self.invalidations.push(tid, oids),
                ClientEvent::Conflict(conflict) => self.conflicts.push(conflict),
                ClientEvent::Done { op, result } if self.awaited.contains(&op) => {
                    self.done.push((op, result))
                }
                // Its call gave up waiting.
                ClientEvent::Done { .. } => {}
                ClientEvent::Ready { .. } | ClientEvent::Disconnected => {}
            }
        }
    }

    fn take_done(&mut self, op: OpId) -> Option<std::result::Result<Answer, ClientError>> {
        let index = self.done.iter().position(|(o, _)| *o == op)?;
        Some(self.done.remove(index).1)
    }
}

/// Invalidations kept for the application, at most
/// [`INVALIDATED_OIDS_COUNT_MAX`].
#[derive(Debug, Default)]
struct Invalidations {
    list: Vec<(Tid, Vec<Oid>)>,
    /// What `list` holds, counted as [`INVALIDATED_OIDS_COUNT_MAX`] says.
    count: usize,
    /// Some were dropped since the application last asked.
    dropped: bool,
}

impl Invalidations {
    /// Keeps one; past the bound, drops them all: the application will
    /// then drop every object it cached, which no list can say better.
    fn push(&mut self, tid: Tid, oids: Vec<Oid>) {
        self.count = self.count.saturating_add(oids.len() + 1);
        self.list.push((tid, oids));
        if self.count > INVALIDATED_OIDS_COUNT_MAX {
            self.list.clear();
            self.count = 0;
            self.dropped = true;
        }
    }

    fn take(&mut self) -> Vec<(Tid, Vec<Oid>)> {
        self.count = 0;
        std::mem::take(&mut self.list)
    }
}

fn unexpected<T>(answer: Answer) -> Result<T> {
    Err(Error::Client(ClientError::UnexpectedAnswer(format!(
        "{answer:?}"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncollected_invalidations_are_bounded_and_their_loss_reported() {
        let mut invalidations = Invalidations::default();
        let oids = |n: usize| (0..n as u64).map(Oid).collect::<Vec<_>>();
        invalidations.push(Tid(1), oids(INVALIDATED_OIDS_COUNT_MAX - 2));
        invalidations.push(Tid(2), oids(0));
        assert!(!invalidations.dropped);
        assert_eq!(invalidations.take().len(), 2);
        // Collected: the bound applies to what waits.
        invalidations.push(Tid(3), oids(INVALIDATED_OIDS_COUNT_MAX - 1));
        assert!(!invalidations.dropped);
        invalidations.push(Tid(4), oids(1));
        assert!(
            invalidations.dropped,
            "past the bound, the loss is reported"
        );
        assert!(invalidations.list.is_empty() && invalidations.count == 0);
        invalidations.push(Tid(5), oids(1));
        assert_eq!(invalidations.take(), vec![(Tid(5), vec![Oid(0)])]);
    }
}
