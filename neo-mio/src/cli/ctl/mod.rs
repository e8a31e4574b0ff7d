//! `neo ctl`: the operator's tool to drive a cluster through an admin node,
//! NEO/py's `neoctl` with the same command words and the same output.
//!
//! neoctl connections never identify: after the handshake, each request is
//! answered by the admin itself (nodes, partition table, cluster state,
//! primary, health summary) or relayed to the primary master (everything
//! that changes the cluster). We open one blocking connection per run and
//! ask one request at a time, as neoctl does, so a command that needs two
//! answers (`print pt` asks the table, then the storage nodes to show their
//! states) sees them on the same connection.
//!
//! What neoctl prints is reproduced byte for byte, including its oddities
//! (`print pt` on an empty table prints a blank line, an empty ACK message
//! prints an empty line), because operators' scripts parse it. Errors print
//! as neoctl prints them: the message of a DENIED answer as is, NOT_READY as
//! `ERROR: <message>`. Where neoctl dies with a Python traceback (a bad node
//! id, a missing argument), we say what is wrong instead. The help text has
//! neoctl's layout but its own wording: neoctl's is NEO/py's docstrings,
//! which are GPL.
//!
//! - `session`: the blocking connection to the admin node, which matches
//!   answers to requests by message id;
//! - `parse`: the command words, checked before connecting;
//! - `format`: what neoctl prints, from the answers;
//! - this module: the command line of `neo ctl`, its errors, and the
//!   executor that asks the admin node what each command needs.

mod format;
mod parse;
mod session;
#[cfg(test)]
mod testing;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use neo_proto::{
    AddPendingNodes, AskClusterState, AskLastIDs, AskLastTransaction, AskMonitorInformation,
    AskPrimary, AskRecovery, CheckReplicas, DecodeError, FlushLog, Map, Nid, NodeType, Packet,
    Ping, Repair, SetClusterState, SetNodeState, SetNumReplicas, Tid, Truncate,
    TweakPartitionTable,
};

use format::{
    format_ids, format_node_list, format_partition_table, format_row_list, format_summary,
    ptid_str, tid_datetime,
};
use parse::{parse, CheckArgs, Command, Storages};
use session::unexpected;
pub(super) use session::Session;

/// neoctl's admin port when `--address` names only a host.
pub const DEFAULT_ADMIN_PORT: u16 = 9999;

/// How long to wait for the connection and for each answer. neoctl waits
/// forever; a tool run from scripts must not.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `neo ctl [-a ADMIN] [WORDS...]`, neoctl's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct CtlArgs {
    /// Address of an admin node: HOST[:PORT] or [IPv6][:PORT], port 9999 if
    /// absent.
    #[arg(
        short = 'a',
        long = "address",
        default_value = "127.0.0.1:9999",
        value_parser = parse_admin_address
    )]
    pub address: SocketAddr,
    /// After the command, wait until the cluster is RUNNING with every
    /// cell UP_TO_DATE (at most SECONDS if given), reporting progress on
    /// standard error; with no command, only wait.
    #[arg(
        short = 'w',
        long = "wait",
        value_name = "SECONDS",
        num_args = 0..=1,
        require_equals = true,
        value_parser = parse_wait_limit
    )]
    pub wait: Option<Option<Duration>>,
    /// The command (e.g. `print node`); without one, the list of commands.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub words: Vec<String>,
}

/// Parses an admin address as neoctl does: `host:port`, `[v6]:port`, or a
/// host alone (a bare IPv6 address included) with port 9999; names are
/// resolved, the first address wins.
pub fn parse_admin_address(text: &str) -> Result<SocketAddr, String> {
    let address =
        super::config::parse_address(text, Some(DEFAULT_ADMIN_PORT)).map_err(|e| e.to_string())?;
    crate::runtime::resolve(&address).map_err(|error| format!("{text:?}: {error}"))
}

/// `--wait=SECONDS`: a positive number of seconds.
fn parse_wait_limit(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Why a command failed. `Display` is what neoctl prints on standard error
/// (the caller exits with status 1, as neoctl does for all of these).
#[derive(Debug)]
pub enum CtlError {
    /// Words that are no command: neoctl's `invalid command: ...`.
    InvalidCommand(String),
    /// A command group without its command (`print`, `set`).
    Incomplete(String),
    /// An argument neoctl would choke on.
    BadArgument(String),
    /// No connection to the admin node (neoctl: `ERROR: not connected`).
    Unreachable { admin: SocketAddr, error: io::Error },
    /// The admin node closed the connection before answering.
    ConnectionClosed,
    /// The admin node did not answer in time.
    Timeout { admin: SocketAddr, after: Duration },
    /// The connection failed after it was established.
    Transport { admin: SocketAddr, error: io::Error },
    /// The admin node sent bytes that do not decode as NEO protocol 5.
    Protocol {
        admin: SocketAddr,
        error: DecodeError,
    },
    /// A NOT_READY answer (e.g. the admin has no primary master).
    NotReady(String),
    /// A DENIED answer: the master refused (wrong cluster state, unknown
    /// node...).
    Denied(String),
    /// An answer of the wrong type, or an error neoctl has no message for.
    UnexpectedAnswer(Box<Packet>),
    /// `--wait` gave up: what the cluster was doing then.
    NotSettled { after: Duration, progress: String },
    /// Writing the output failed.
    Output(io::Error),
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::InvalidCommand(words) => write!(f, "invalid command: {words}"),
            CtlError::Incomplete(words) => write!(f, "incomplete command: {words}\n{USAGE}"),
            CtlError::BadArgument(message) => f.write_str(message),
            CtlError::Unreachable { admin, error } => {
                write!(f, "ERROR: not connected: admin node {admin}: {error}")
            }
            CtlError::ConnectionClosed => f.write_str("ERROR: Connection closed"),
            CtlError::Timeout { admin, after } => write!(
                f,
                "ERROR: no answer from admin node {admin} within {} s",
                after.as_secs_f64()
            ),
            CtlError::Transport { admin, error } => {
                write!(f, "ERROR: connection to admin node {admin} failed: {error}")
            }
            CtlError::Protocol { admin, error } => {
                write!(
                    f,
                    "ERROR: undecodable answer from admin node {admin}: {error}"
                )
            }
            CtlError::NotReady(message) => write!(f, "ERROR: {message}"),
            CtlError::Denied(message) => f.write_str(message),
            CtlError::UnexpectedAnswer(packet) => write!(f, "unexpected answer: {packet}"),
            CtlError::NotSettled { after, progress } => write!(
                f,
                "still not done after {} s: {progress}",
                after.as_secs_f64()
            ),
            CtlError::Output(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for CtlError {}

/// Runs one neoctl command against the admin node at `admin` and writes
/// what neoctl would print on standard output to `out`.
pub fn run(admin: SocketAddr, words: &[String], out: &mut dyn Write) -> Result<(), CtlError> {
    run_with_timeout(admin, words, out, DEFAULT_TIMEOUT)
}

/// [`run`] with another bound on the connection and on each answer.
pub fn run_with_timeout(
    admin: SocketAddr,
    words: &[String],
    out: &mut dyn Write,
    timeout: Duration,
) -> Result<(), CtlError> {
    let text = execute(parse(words)?, &mut Session::new(admin, timeout))?;
    // neoctl `print`s the result when there is one: always a final newline.
    if let Some(text) = text {
        writeln!(out, "{text}").map_err(CtlError::Output)?;
    }
    Ok(())
}

fn execute(command: Command, session: &mut Session) -> Result<Option<String>, CtlError> {
    Ok(match command {
        Command::Usage => Some(USAGE.to_owned()),
        Command::PrintIds => Some(print_ids(session)?),
        Command::PrintPt {
            min_offset,
            max_offset,
            nid,
        } => Some(print_pt(session, min_offset, max_offset, nid)?),
        Command::PrintNode(node_type) => Some(print_node(session, node_type)?),
        Command::PrintCluster => Some(print_cluster(session)?),
        Command::PrintPrimary => Some(print_primary(session)?),
        Command::PrintSummary => Some(print_summary(session)?),
        Command::SetCluster(state) => Some(session.ask_ack(SetClusterState { state })?),
        Command::SetReplicas(num_replicas) => {
            Some(session.ask_ack(SetNumReplicas { num_replicas })?)
        }
        Command::Add(storages) => {
            let nids = storage_nids(session, storages)?;
            Some(session.ask_ack(AddPendingNodes { nids })?)
        }
        Command::Tweak { dry_run, nids } => Some(tweak(session, dry_run, nids)?),
        Command::SetNodeState(nid, state) => Some(session.ask_ack(SetNodeState { nid, state })?),
        Command::PruneOrphan { dry_run, storages } => {
            let nids = storage_nids(session, storages)?;
            Some(session.ask_ack(Repair { nids, dry_run })?)
        }
        // neoctl prints nothing on success for these two.
        Command::Truncate(tid) => {
            session.ask_ack(Truncate { tid })?;
            None
        }
        Command::Check(check) => {
            check_replicas(session, check)?;
            None
        }
        Command::FlushLog => {
            flush_log(session)?;
            None
        }
    })
}

/// `print pt`: some rows, or the whole table.
fn print_pt(
    session: &mut Session,
    min_offset: u32,
    max_offset: u32,
    nid: Option<Nid>,
) -> Result<String, CtlError> {
    let (ptid, num_replicas, rows) = session.partition_list(min_offset, max_offset, nid)?;
    // A range asked: one line per row; the whole table: one line
    // per node.
    let table = if min_offset != 0 || max_offset != 0 {
        format_row_list(min_offset, &rows)
    } else {
        format_partition_table(&rows, &session.storage_nodes()?)
    };
    Ok(format!(
        "# ptid: {}, replicas: {num_replicas}\n{table}",
        ptid_str(ptid)
    ))
}

/// `print node [TYPE]`.
fn print_node(session: &mut Session, node_type: Option<NodeType>) -> Result<String, CtlError> {
    let nodes = session.node_list(node_type)?;
    Ok(if nodes.is_empty() {
        "Empty list!".to_owned()
    } else {
        format_node_list(&nodes)
    })
}

/// `print cluster`.
fn print_cluster(session: &mut Session) -> Result<String, CtlError> {
    match session.ask(AskClusterState {})? {
        Packet::AnswerClusterState(answer) => Ok(match answer.state {
            Some(state) => state.to_string(),
            None => "None".to_owned(),
        }),
        other => Err(unexpected(other)),
    }
}

/// `print primary`.
fn print_primary(session: &mut Session) -> Result<String, CtlError> {
    match session.ask(AskPrimary {})? {
        Packet::AnswerPrimary(answer) => Ok(answer.primary_nid.to_string()),
        other => Err(unexpected(other)),
    }
}

/// `print summary`.
fn print_summary(session: &mut Session) -> Result<String, CtlError> {
    match session.ask(AskMonitorInformation {})? {
        Packet::AnswerMonitorInformation(answer) => Ok(format_summary(
            &answer.warnings,
            &answer.problems,
            &answer.summary,
        )),
        other => Err(unexpected(other)),
    }
}

/// `tweak [-n] [NODE...]`: the new table, if it changed.
fn tweak(session: &mut Session, dry_run: bool, nids: Vec<Nid>) -> Result<String, CtlError> {
    let ask = TweakPartitionTable {
        dry_run,
        drop_nids: nids,
    };
    match session.ask(ask)? {
        Packet::AnswerTweakPartitionTable(answer) if answer.changed => Ok(format_partition_table(
            &answer.rows,
            &session.storage_nodes()?,
        )),
        Packet::AnswerTweakPartitionTable(_) => Ok("No change done.".to_owned()),
        other => Err(unexpected(other)),
    }
}

/// `check ...`: the partitions to check, with their references.
fn check_replicas(session: &mut Session, check: CheckArgs) -> Result<(), CtlError> {
    let mut partitions = Map::new();
    if let Some(reference) = check.all {
        let (_, _, rows) = session.partition_list(0, 0, None)?;
        partitions.0 = (0..rows.len() as u32).map(|p| (p, reference)).collect();
    }
    for (partition, reference) in check.partitions {
        match partitions.0.iter_mut().find(|(p, _)| *p == partition) {
            Some(entry) => entry.1 = reference,
            None => partitions.0.push((partition, reference)),
        }
    }
    session.ask_ack(CheckReplicas {
        partitions,
        min_tid: check.min_tid,
        max_tid: check.max_tid,
    })?;
    Ok(())
}

/// `flush_log`.
fn flush_log(session: &mut Session) -> Result<(), CtlError> {
    // FlushLog is a notification: the Ping behind it tells when the
    // admin has handled it (or refused it, without a master), so
    // that closing cannot lose it.
    session.notify(FlushLog {});
    match session.ask(Ping {})? {
        Packet::Pong(_) => Ok(()),
        other => Err(unexpected(other)),
    }
}

fn storage_nids(session: &mut Session, storages: Storages) -> Result<Vec<Nid>, CtlError> {
    match storages {
        Storages::All => Ok(session
            .storage_nodes()?
            .into_iter()
            .filter_map(|node| node.nid)
            .collect()),
        Storages::List(nids) => Ok(nids),
    }
}

/// `print ids`: the last ids, or for a backup cluster the backup TID.
fn print_ids(session: &mut Session) -> Result<String, CtlError> {
    let recovery = match session.ask(AskRecovery {})? {
        Packet::AnswerRecovery(answer) => answer,
        other => return Err(unexpected(other)),
    };
    let (first_line, last_tid) = match recovery.backup_tid {
        Some(backup_tid) => match session.ask(AskLastTransaction {})? {
            Packet::AnswerLastTransaction(answer) => (
                format!(
                    "backup_tid = {:#x} ({})",
                    backup_tid.0,
                    tid_datetime(backup_tid)
                ),
                answer.tid,
            ),
            other => return Err(unexpected(other)),
        },
        None => match session.ask(AskLastIDs {})? {
            // Masters send zeros for an empty database, never None (on
            // which neoctl would crash): print None as the zero it means.
            Packet::AnswerLastIDs(answer) => (
                format!("last_oid = {:#x}", answer.last_oid.map_or(0, |oid| oid.0)),
                answer.last_tid.unwrap_or(Tid::ZERO),
            ),
            other => return Err(unexpected(other)),
        },
    };
    Ok(format_ids(&first_line, last_tid, recovery.ptid))
}
/// What `neo ctl` prints without a command: neoctl's layout (the command
/// tree, each command's description and parameters), in our own words.
const USAGE: &str = "\
Available commands:
print
  ids
    Print the last OID, the last TID and the partition table id (for a
    cluster in backup mode, the backup TID instead of the last OID).
  pt
    Print the partition table: without MIN and MAX, one line per storage
    node (its state, then one character per partition: the state of its
    cell or '.'); otherwise one line per partition.
    Parameters: [min [max [node]]]
      min: first partition to print (from 0)
      max: partition after the last one to print (0: up to the end)
      node: node whose cells to print (admin nodes ignore it for now)
  node
    Print the nodes the admin node knows.
    Parameters: [type]
      type: master, storage, client or admin (default: all types)
  cluster
    Print the cluster state.
  primary
    Print the id of the primary master.
  summary
    Print the health of this cluster and of its backups. The first line
    is a JSON object after '# ': {severity: [backup_name | null]} where
    severity is \"warning\" or \"problem\", null meaning this cluster.
set
  cluster
    Switch the cluster to another state.
    Parameters: state
      state: the new state, e.g. stopping
  replicas
    Change the number of replicas of each partition.
    Parameters: nr
      nr: 0 or more (0: one copy of each partition)
check
  Compare the replicas of partitions to find corrupted metadata; the
  primary master logs the differences.
  Parameters: [partition]:[reference] ... [min_tid [max_tid]]
    partition: partition to check (empty: all of them)
    reference: id of a storage node whose data is known good; in backup
      mode, a cell of the upstream cluster if absent
    min_tid, max_tid: transactions to check (default: all)
start
  Leave recovery and start the cluster (same as 'set cluster verifying').
add
  Accept pending storage nodes into the cluster (without partitions: use
  'tweak' to give them some).
  Parameters: node [node [...]]
    node: id of a pending storage node, or 'all' for every one
tweak
  Balance the partition table. Listed nodes and down nodes keep their
  cells but do not count as replicas: list the nodes to empty before
  dropping them.
  Parameters: [-n] [node [...]]
    -n (or --dry-run): print the new table without applying it
drop
  Remove a stopped storage node from the cluster for good.
  Parameters: node
kill
  Stop a storage node or a secondary master.
  Parameters: node
prune_orphan
  Delete data that no object record references (this can take long).
  Parameters: dry_run node [node [...]]
    dry_run: 1 to only report, 0 to delete
    node: id of a storage node, or 'all' for every one
truncate
  Cut the history of the database after the given transaction. The
  cluster must be running, with no transaction in progress; it goes back
  to recovery and waits for every storage node (only 'start' it without
  some of them if those need no truncation).
  Parameters: tid
flush_log
  Ask every node of the cluster to flush its log (for backup clusters,
  only their primary master).
Node ids are written as printed: S1, M1, C1, A1. A TID is either
tid:<integer> (any base, case insensitive, e.g. tid:0x3937af2eeeeeeee) or a
UNIX time in seconds, e.g. 1325421296 for 2012-01-01 12:34:56 UTC.";
#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};
    use std::time::Instant;

    use bytes::BytesMut;
    use clap::Parser;
    use neo_proto::{
        encode, AnswerClusterState, AnswerLastIDs, AnswerLastTransaction, AnswerMonitorInformation,
        AnswerNodeList, AnswerPartitionList, AnswerPrimary, AnswerRecovery,
        AnswerTweakPartitionTable, AskNodeList, AskPartitionList, ClusterState, Decoder, ErrorCode,
        NodeInfo, NodeState, Oid, Pong, Ptid, Row, HANDSHAKE,
    };

    use super::testing::{repeat, rows, storages, words, M1, S1, S2, S3};
    use super::*;
    use NodeState::{Down, Pending, Running};

    /// A scripted admin node on loopback: answers each request with what
    /// `answer` returns (message id and packet), or closes the connection
    /// when it returns `None`. Joining gives the packets it received.
    fn fake_admin<F>(mut answer: F) -> (SocketAddr, JoinHandle<Vec<Packet>>)
    where
        F: FnMut(u32, &Packet) -> Option<Vec<(u32, Packet)>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.61:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut received = Vec::new();
            listener.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(error) => panic!("nobody connected: {error}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.write_all(&HANDSHAKE).unwrap();
            let mut decoder = Decoder::new();
            let mut buf = [0; 4096];
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return received,
                    Ok(n) => n,
                };
                decoder.feed(&buf[..n]);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    let Some(answers) = answer(frame.msg_id, &frame.packet) else {
                        received.push(frame.packet);
                        return received;
                    };
                    let mut out = BytesMut::new();
                    for (msg_id, packet) in answers {
                        encode(msg_id, &packet, &mut out);
                    }
                    // The client may have gone already.
                    let _ = stream.write_all(&out);
                    received.push(frame.packet);
                }
            }
        });
        (addr, handle)
    }

    /// Runs `command` against a fake admin answering each request with the
    /// next packet of `answers`; returns the output and what was asked.
    fn against(command: &str, answers: Vec<Packet>) -> (Result<String, CtlError>, Vec<Packet>) {
        let mut answers = answers.into_iter();
        let (addr, admin) = fake_admin(move |msg_id, packet| match packet {
            Packet::FlushLog(_) => Some(vec![]),
            _ => Some(
                answers
                    .next()
                    .map(|a| vec![(msg_id, a)])
                    .unwrap_or_default(),
            ),
        });
        let mut out = Vec::new();
        let result = run_with_timeout(addr, &words(command), &mut out, Duration::from_secs(10));
        let received = admin.join().unwrap();
        (result.map(|()| String::from_utf8(out).unwrap()), received)
    }

    fn ack(message: &str) -> Packet {
        Packet::error(ErrorCode::Ack, message)
    }

    fn node_list(nodes: Vec<NodeInfo>) -> Packet {
        AnswerNodeList { nodes }.into()
    }

    #[test]
    fn print_commands_end_to_end() {
        let (output, asked) = against(
            "print pt",
            vec![
                AnswerPartitionList {
                    ptid: None,
                    num_replicas: 1,
                    rows: vec![Row::new(); 12],
                }
                .into(),
                node_list(storages(&[Pending, Pending])),
            ],
        );
        assert_eq!(output.unwrap(), "# ptid: None, replicas: 1\n\n");
        assert_eq!(
            asked,
            vec![
                AskPartitionList {
                    min_offset: 0,
                    max_offset: 0,
                    nid: None
                }
                .into(),
                AskNodeList {
                    node_type: Some(NodeType::Storage)
                }
                .into(),
            ]
        );
        let (output, _) = against(
            "print pt",
            vec![
                AnswerPartitionList {
                    ptid: Some(Ptid(1)),
                    num_replicas: 1,
                    rows: rows(&repeat(&["1U2U"], 12)),
                }
                .into(),
                node_list(storages(&[Running, Running])),
            ],
        );
        assert_eq!(
            output.unwrap(),
            "# ptid: 1, replicas: 1\n             10v\nS1 R UUUUUUUUUUUU\nS2 R UUUUUUUUUUUU\n"
        );
        let (output, _) = against(
            "print pt 0 2",
            vec![AnswerPartitionList {
                ptid: None,
                num_replicas: 1,
                rows: vec![Row::new(); 2],
            }
            .into()],
        );
        assert_eq!(output.unwrap(), "# ptid: None, replicas: 1\n000 |\n001 |\n");
        let (output, _) = against(
            "print pt 5 3",
            vec![AnswerPartitionList {
                ptid: Some(Ptid(11)),
                num_replicas: 1,
                rows: vec![],
            }
            .into()],
        );
        assert_eq!(output.unwrap(), "# ptid: 11, replicas: 1\n\n");
        let (output, _) = against("print node client", vec![node_list(vec![])]);
        assert_eq!(output.unwrap(), "Empty list!\n");
        let (output, _) = against(
            "print cluster",
            vec![AnswerClusterState {
                state: Some(ClusterState::Recovering),
            }
            .into()],
        );
        assert_eq!(output.unwrap(), "RECOVERING\n");
        let (output, _) = against(
            "print primary",
            vec![AnswerPrimary { primary_nid: M1 }.into()],
        );
        assert_eq!(output.unwrap(), "M1\n");
        let (output, _) = against(
            "print summary",
            vec![AnswerMonitorInformation {
                warnings: vec![],
                problems: vec![None],
                summary: "RECOVERING".into(),
            }
            .into()],
        );
        assert_eq!(output.unwrap(), "# {\"problem\": [null]}\nRECOVERING\n");
    }

    #[test]
    fn print_ids_end_to_end() {
        let (output, asked) = against(
            "print ids",
            vec![
                AnswerRecovery {
                    ptid: Some(Ptid(2)),
                    backup_tid: None,
                    truncate_tid: None,
                }
                .into(),
                AnswerLastIDs {
                    last_tid: Some(Tid(0x040d_3dd4_98dc_5e44)),
                    last_oid: Some(Oid(0x64)),
                    first_tid: Tid(0x040d_3dd4_988b_6388),
                }
                .into(),
            ],
        );
        assert_eq!(
            output.unwrap(),
            "last_oid = 0x64\nlast_tid = 0x40d3dd498dc5e44 (2026-11-25 00:20:35.826753)\n\
             last_ptid = 2\n"
        );
        assert_eq!(asked, vec![AskRecovery {}.into(), AskLastIDs {}.into()]);
        // A backup cluster: the backup TID replaces the last OID (dates as
        // datetimeFromTID prints them).
        let (output, asked) = against(
            "print ids",
            vec![
                AnswerRecovery {
                    ptid: Some(Ptid(7)),
                    backup_tid: Some(Tid(0x03f4_7f95_5555_5555)),
                    truncate_tid: None,
                }
                .into(),
                AnswerLastTransaction {
                    tid: Tid(0x0393_7af2_eeee_eeee),
                }
                .into(),
            ],
        );
        assert_eq!(
            output.unwrap(),
            "backup_tid = 0x3f47f9555555555 (2023-11-14 22:13:19.999999)\n\
             last_tid = 0x3937af2eeeeeeee (2012-01-01 12:34:55.999999)\nlast_ptid = 7\n"
        );
        assert_eq!(
            asked,
            vec![AskRecovery {}.into(), AskLastTransaction {}.into()]
        );
    }

    #[test]
    fn changes_end_to_end() {
        let (output, asked) = against("start", vec![ack("Cluster state changed")]);
        assert_eq!(output.unwrap(), "Cluster state changed\n");
        assert_eq!(
            asked,
            vec![SetClusterState {
                state: ClusterState::Verifying
            }
            .into()]
        );
        // An empty ACK message prints an empty line.
        let (output, _) = against("set replicas 1", vec![ack("")]);
        assert_eq!(output.unwrap(), "\n");
        let (output, asked) = against("add S3", vec![ack("Nodes added: S3")]);
        assert_eq!(output.unwrap(), "Nodes added: S3\n");
        assert_eq!(asked, vec![AddPendingNodes { nids: vec![S3] }.into()]);
        let (output, asked) = against(
            "add all",
            vec![
                node_list(storages(&[Running, Running, Pending])),
                ack("Nodes added: S3"),
            ],
        );
        assert_eq!(output.unwrap(), "Nodes added: S3\n");
        assert_eq!(
            asked[1],
            AddPendingNodes {
                nids: vec![S2, S1, S3]
            }
            .into()
        );
        let (output, asked) = against(
            "tweak -n",
            vec![
                AnswerTweakPartitionTable {
                    changed: true,
                    rows: rows(&repeat(&["1U2U", "1U2F3O", "1F2U3O"], 4)),
                }
                .into(),
                node_list(storages(&[Running, Running, Running])),
            ],
        );
        assert_eq!(
            output.unwrap(),
            "             10v\nS1 R UUFUUFUUFUUF\nS2 R UFUUFUUFUUFU\nS3 R .OO.OO.OO.OO\n"
        );
        assert_eq!(
            asked[0],
            TweakPartitionTable {
                dry_run: true,
                drop_nids: vec![]
            }
            .into()
        );
        let (output, _) = against(
            "tweak",
            vec![AnswerTweakPartitionTable {
                changed: false,
                rows: vec![],
            }
            .into()],
        );
        assert_eq!(output.unwrap(), "No change done.\n");
        let (output, asked) = against("kill S3", vec![ack("state changed")]);
        assert_eq!(output.unwrap(), "state changed\n");
        assert_eq!(
            asked,
            vec![SetNodeState {
                nid: S3,
                state: Down
            }
            .into()]
        );
        let (output, asked) = against("drop S3", vec![ack("node permanently removed")]);
        assert_eq!(output.unwrap(), "node permanently removed\n");
        assert_eq!(
            asked,
            vec![SetNodeState {
                nid: S3,
                state: NodeState::Unknown
            }
            .into()]
        );
        let (output, asked) = against(
            "prune_orphan 1 all",
            vec![node_list(storages(&[Running, Running])), ack("")],
        );
        assert_eq!(output.unwrap(), "\n");
        assert_eq!(
            asked[1],
            Repair {
                nids: vec![S2, S1],
                dry_run: true
            }
            .into()
        );
        // truncate and check print nothing.
        let (output, asked) = against("truncate 1700000000", vec![ack("")]);
        assert_eq!(output.unwrap(), "");
        assert_eq!(
            asked,
            vec![Truncate {
                tid: Tid(0x03f4_7f95_5555_5555)
            }
            .into()]
        );
        let (output, asked) = against("check 0:S1 1: 1700000000", vec![ack("")]);
        assert_eq!(output.unwrap(), "");
        assert_eq!(
            asked,
            vec![CheckReplicas {
                partitions: Map(vec![(0, Some(S1)), (1, None)]),
                min_tid: Tid(0x03f4_7f95_5555_5555),
                max_tid: None,
            }
            .into()]
        );
        // `:REFERENCE` covers every partition of the table.
        let (output, asked) = against(
            "check :S1 2:S2 9: tid:1 tid:2",
            vec![
                AnswerPartitionList {
                    ptid: Some(Ptid(1)),
                    num_replicas: 1,
                    rows: vec![Row::new(); 4],
                }
                .into(),
                ack(""),
            ],
        );
        assert_eq!(output.unwrap(), "");
        assert_eq!(
            asked[1],
            CheckReplicas {
                partitions: Map(vec![
                    (0, Some(S1)),
                    (1, Some(S1)),
                    (2, Some(S2)),
                    (3, Some(S1)),
                    (9, None)
                ]),
                min_tid: Tid(1),
                max_tid: Some(Tid(2)),
            }
            .into()
        );
        let (output, asked) = against("flush_log", vec![Pong {}.into()]);
        assert_eq!(output.unwrap(), "");
        assert_eq!(asked, vec![FlushLog {}.into(), Ping {}.into()]);
    }

    #[test]
    fn errors_print_as_neoctl_prints_them() {
        let error = |command: &str, answer: Packet| against(command, vec![answer]).0.unwrap_err();
        // Recorded from NEO/py.
        let denied = error(
            "tweak -n",
            Packet::error(
                ErrorCode::Denied,
                "tweakPartitionTable RPC can not be used in RECOVERING state",
            ),
        );
        assert!(matches!(denied, CtlError::Denied(_)));
        assert_eq!(
            denied.to_string(),
            "tweakPartitionTable RPC can not be used in RECOVERING state"
        );
        let not_ready = error(
            "print cluster",
            Packet::error(ErrorCode::NotReady, "Not connected to a primary master."),
        );
        assert_eq!(
            not_ready.to_string(),
            "ERROR: Not connected to a primary master."
        );
        // An answer of another type, or an error other than these.
        let wrong = error("print cluster", AnswerPrimary { primary_nid: M1 }.into());
        assert_eq!(
            wrong.to_string(),
            "unexpected answer: AnswerPrimary(primary_nid=M1)"
        );
        let refused = error(
            "set replicas 1",
            Packet::error(ErrorCode::ProtocolError, "x"),
        );
        assert!(matches!(refused, CtlError::UnexpectedAnswer(_)));
    }

    #[test]
    fn an_error_sent_as_a_new_packet_is_the_answer() {
        // NEO/py's admin sends "invalid partition table offset" with its own
        // message id, not the request's.
        let (addr, admin) = fake_admin(|msg_id, _| {
            Some(vec![(
                msg_id + 100,
                Packet::error(ErrorCode::ProtocolError, "invalid partition table offset"),
            )])
        });
        let error = run(addr, &words("print pt 5 20"), &mut Vec::new()).unwrap_err();
        assert!(matches!(error, CtlError::UnexpectedAnswer(_)), "{error}");
        admin.join().unwrap();
    }

    #[test]
    fn connection_failures() {
        // Closed without an answer.
        let (addr, admin) = fake_admin(|_, _| None);
        let error = run(addr, &words("print cluster"), &mut Vec::new()).unwrap_err();
        assert_eq!(error.to_string(), "ERROR: Connection closed");
        admin.join().unwrap();
        // No answer in time.
        let (addr, admin) = fake_admin(|_, _| Some(vec![]));
        let started = Instant::now();
        let error = run_with_timeout(
            addr,
            &words("print cluster"),
            &mut Vec::new(),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            error.to_string(),
            format!("ERROR: no answer from admin node {addr} within 0.2 s")
        );
        admin.join().unwrap();
        // Nobody listening: the message names the address.
        let addr = TcpListener::bind("127.0.0.61:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let error = run(addr, &words("print cluster"), &mut Vec::new()).unwrap_err();
        assert!(matches!(error, CtlError::Unreachable { .. }));
        assert!(
            error
                .to_string()
                .starts_with(&format!("ERROR: not connected: admin node {addr}: ")),
            "{error}"
        );
        // Usage needs no admin node.
        let mut out = Vec::new();
        run(addr, &[], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{USAGE}\n"));
    }

    #[test]
    fn a_peer_that_is_not_neo() {
        let listener = TcpListener::bind("127.0.0.61:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .unwrap();
            // Keep the connection until the client gives up.
            let _ = stream.read(&mut [0; 64]);
        });
        let error = run(addr, &words("print cluster"), &mut Vec::new()).unwrap_err();
        assert!(matches!(error, CtlError::Protocol { .. }), "{error}");
        drop(error);
        peer.join().unwrap();
    }

    /// The wiring `neo` gets: `neo ctl [-a ADMIN] [WORDS...]`.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: CliCommand,
    }

    #[derive(clap::Subcommand)]
    enum CliCommand {
        Ctl(CtlArgs),
    }

    fn cli(args: &[&str]) -> CtlArgs {
        let CliCommand::Ctl(args) = Cli::try_parse_from(args).unwrap().command;
        args
    }

    #[test]
    fn command_line_as_neoctl_takes_it() {
        let args = cli(&["neo", "ctl", "tweak", "-n", "S1"]);
        assert_eq!(args.address, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(args.words, ["tweak", "-n", "S1"]);
        // Options after the first word belong to the command, as in neoctl.
        let args = cli(&["neo", "ctl", "-a", "127.0.0.57:27301", "print", "pt", "-a"]);
        assert_eq!(args.address, "127.0.0.57:27301".parse().unwrap());
        assert_eq!(args.words, ["print", "pt", "-a"]);
        let args = cli(&["neo", "ctl", "--address", "127.0.0.2"]);
        assert_eq!(args.address, "127.0.0.2:9999".parse().unwrap());
        assert!(args.words.is_empty());
        assert_eq!(
            parse_admin_address("[::1]:7").unwrap(),
            "[::1]:7".parse().unwrap()
        );
        assert_eq!(
            parse_admin_address("[::1]").unwrap(),
            "[::1]:9999".parse().unwrap()
        );
        assert_eq!(
            parse_admin_address("::1").unwrap(),
            "[::1]:9999".parse().unwrap()
        );
        assert!(parse_admin_address("127.0.0.1:x").is_err());
        assert!(parse_admin_address("[::1").is_err());
    }
}
