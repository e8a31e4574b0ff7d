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

use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use neo_proto::{
    encode, AddPendingNodes, AskClusterState, AskLastIDs, AskLastTransaction,
    AskMonitorInformation, AskNodeList, AskPartitionList, AskPrimary, AskRecovery, CellState,
    CheckReplicas, ClusterState, DecodeError, Decoder, ErrorCode, FlushLog, Map, Nid, NodeInfo,
    NodeState, NodeType, Packet, Ping, Ptid, Repair, Rows, SetClusterState, SetNodeState,
    SetNumReplicas, Tid, Truncate, TweakPartitionTable, HANDSHAKE,
};

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

/// One neoctl connection: handshake, then one request at a time. It is
/// opened by the first request, so that printing the usage needs no admin.
pub(super) struct Session {
    admin: SocketAddr,
    stream: Option<TcpStream>,
    decoder: Decoder,
    timeout: Duration,
    /// Bytes not sent yet: the handshake and notifications go out with the
    /// next request, in one write.
    pending: BytesMut,
    next_msg_id: u32,
}

impl Session {
    pub(super) fn new(admin: SocketAddr, timeout: Duration) -> Session {
        Session {
            admin,
            stream: None,
            decoder: Decoder::new(),
            timeout,
            pending: BytesMut::from(&HANDSHAKE[..]),
            next_msg_id: 0,
        }
    }

    fn connect(&mut self) -> Result<&mut TcpStream, CtlError> {
        let admin = self.admin;
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&admin, self.timeout)
                .map_err(|error| CtlError::Unreachable { admin, error })?;
            stream
                .set_write_timeout(Some(self.timeout))
                .map_err(|error| CtlError::Transport { admin, error })?;
            self.stream = Some(stream);
        }
        Ok(self.stream.as_mut().unwrap())
    }

    fn queue(&mut self, packet: Packet) -> u32 {
        let msg_id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        encode(msg_id, &packet, &mut self.pending);
        msg_id
    }

    /// Queues a notification (a packet nobody answers): it goes out with
    /// the next request.
    fn notify(&mut self, packet: impl Into<Packet>) {
        self.queue(packet.into());
    }

    /// Sends a request and waits for its answer. DENIED and NOT_READY
    /// errors become errors whatever was asked, as in neoctl; other errors
    /// (ACK included) are the caller's to judge.
    pub(super) fn ask(&mut self, packet: impl Into<Packet>) -> Result<Packet, CtlError> {
        let admin = self.admin;
        let msg_id = self.queue(packet.into());
        let pending = std::mem::take(&mut self.pending);
        self.connect()?
            .write_all(&pending)
            .map_err(|error| CtlError::Transport { admin, error })?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0; 16 * 1024];
        loop {
            while let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|error| CtlError::Protocol { admin, error })?
            {
                // An error is ours whatever its message id: admins send
                // some (a bad partition table range) as new packets.
                if frame.msg_id == msg_id || matches!(frame.packet, Packet::Error(_)) {
                    return match frame.packet {
                        Packet::Error(error) if error.code == ErrorCode::Denied => {
                            Err(CtlError::Denied(text(&error.message)))
                        }
                        Packet::Error(error) if error.code == ErrorCode::NotReady => {
                            Err(CtlError::NotReady(text(&error.message)))
                        }
                        answer => Ok(answer),
                    };
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(CtlError::Timeout {
                    admin,
                    after: self.timeout,
                });
            }
            let stream = self.connect()?;
            stream
                .set_read_timeout(Some(remaining))
                .map_err(|error| CtlError::Transport { admin, error })?;
            match stream.read(&mut buf) {
                Ok(0) => return Err(CtlError::ConnectionClosed),
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(CtlError::Timeout {
                        admin,
                        after: self.timeout,
                    })
                }
                Err(error) => return Err(CtlError::Transport { admin, error }),
            }
        }
    }

    /// Asks a request answered by ACK, and returns the ACK's message.
    fn ask_ack(&mut self, packet: impl Into<Packet>) -> Result<String, CtlError> {
        match self.ask(packet)? {
            Packet::Error(error) if error.code == ErrorCode::Ack => Ok(text(&error.message)),
            other => Err(unexpected(other)),
        }
    }

    fn storage_nodes(&mut self) -> Result<Vec<NodeInfo>, CtlError> {
        self.node_list(Some(NodeType::Storage))
    }

    fn node_list(&mut self, node_type: Option<NodeType>) -> Result<Vec<NodeInfo>, CtlError> {
        match self.ask(AskNodeList { node_type })? {
            Packet::AnswerNodeList(answer) => Ok(answer.nodes),
            other => Err(unexpected(other)),
        }
    }

    pub(super) fn partition_list(
        &mut self,
        min_offset: u32,
        max_offset: u32,
        nid: Option<Nid>,
    ) -> Result<(Option<Ptid>, u32, Rows), CtlError> {
        let ask = AskPartitionList {
            min_offset,
            max_offset,
            nid,
        };
        match self.ask(ask)? {
            Packet::AnswerPartitionList(answer) => {
                Ok((answer.ptid, answer.num_replicas, answer.rows))
            }
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(packet: Packet) -> CtlError {
    CtlError::UnexpectedAnswer(Box::new(packet))
}

/// Text NEO/py sends as UTF-8 bytes (messages, backup names, summary).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Storage nodes a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Storages {
    /// `all`: every storage node the admin knows, whatever its state.
    All,
    List(Vec<Nid>),
}

/// `check` arguments: which partitions, against which reference, which
/// transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckArgs {
    /// `:[REFERENCE]`: every partition, with this reference.
    all: Option<Option<Nid>>,
    /// `PARTITION:[REFERENCE]`, overriding `all` for that partition.
    partitions: Vec<(u32, Option<Nid>)>,
    min_tid: Tid,
    /// `None`: up to the last transaction (the master decides).
    max_tid: Option<Tid>,
}

/// A parsed command line: everything is checked before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Usage,
    PrintIds,
    PrintPt {
        min_offset: u32,
        max_offset: u32,
        nid: Option<Nid>,
    },
    PrintNode(Option<NodeType>),
    PrintCluster,
    PrintPrimary,
    PrintSummary,
    /// `set cluster STATE`, and `start` (= `set cluster verifying`).
    SetCluster(ClusterState),
    SetReplicas(u32),
    Add(Storages),
    Tweak {
        dry_run: bool,
        nids: Vec<Nid>,
    },
    /// `kill` (DOWN) and `drop` (UNKNOWN).
    SetNodeState(Nid, NodeState),
    PruneOrphan {
        dry_run: bool,
        storages: Storages,
    },
    Truncate(Tid),
    Check(CheckArgs),
    FlushLog,
}

fn parse(words: &[String]) -> Result<Command, CtlError> {
    let Some(first) = words.first() else {
        return Ok(Command::Usage);
    };
    let invalid = || CtlError::InvalidCommand(words.join(" "));
    let group = |name: &str| match words.get(1) {
        Some(word) => Ok((word.as_str(), &words[2..])),
        None => Err(CtlError::Incomplete(name.to_owned())),
    };
    let params = &words[1..];
    Ok(match first.as_str() {
        "print" => match group("print")? {
            ("ids", params) => {
                no_params("print ids", params)?;
                Command::PrintIds
            }
            ("pt", params) => parse_print_pt(params)?,
            ("node", params) => match params {
                [] => Command::PrintNode(None),
                [node_type] => Command::PrintNode(Some(
                    NodeType::from_str(node_type)
                        .map_err(|_| bad(format!("invalid node type: {node_type}")))?,
                )),
                _ => return Err(usage("print node [TYPE]")),
            },
            ("cluster", params) => {
                no_params("print cluster", params)?;
                Command::PrintCluster
            }
            ("primary", params) => {
                no_params("print primary", params)?;
                Command::PrintPrimary
            }
            ("summary", params) => {
                no_params("print summary", params)?;
                Command::PrintSummary
            }
            _ => return Err(invalid()),
        },
        "set" => match group("set")? {
            ("cluster", [state]) => Command::SetCluster(
                ClusterState::from_str(state)
                    .map_err(|_| bad(format!("invalid cluster state: {state}")))?,
            ),
            ("cluster", _) => return Err(usage("set cluster STATE")),
            ("replicas", [count]) => Command::SetReplicas(
                count
                    .parse()
                    .map_err(|_| bad("invalid number of replicas".into()))?,
            ),
            ("replicas", _) => return Err(usage("set replicas N")),
            _ => return Err(invalid()),
        },
        "check" => Command::Check(parse_check(params)?),
        "start" => {
            no_params("start", params)?;
            Command::SetCluster(ClusterState::Verifying)
        }
        "add" => Command::Add(parse_storages(params)?),
        "tweak" => {
            // neoctl only knows `-n`; `--dry-run` is spelt out for scripts.
            let dry_run = matches!(params.first().map(String::as_str), Some("-n" | "--dry-run"));
            Command::Tweak {
                dry_run,
                nids: parse_nids(&params[dry_run as usize..])?,
            }
        }
        "drop" | "kill" => {
            let [nid] = params else {
                return Err(usage(&format!("{first} NODE")));
            };
            let state = if first == "kill" {
                NodeState::Down
            } else {
                NodeState::Unknown
            };
            Command::SetNodeState(parse_nid(nid)?, state)
        }
        "prune_orphan" => {
            let dry_run = match params.first().map(String::as_str) {
                Some("0") => false,
                Some("1") => true,
                _ => return Err(usage("prune_orphan 0|1 [all|NODE...]")),
            };
            Command::PruneOrphan {
                dry_run,
                storages: parse_storages(&params[1..])?,
            }
        }
        "truncate" => match params {
            [tid] => Command::Truncate(parse_tid(tid)?),
            _ => return Err(usage("truncate TID")),
        },
        "flush_log" => {
            no_params("flush_log", params)?;
            Command::FlushLog
        }
        _ => return Err(invalid()),
    })
}

fn bad(message: String) -> CtlError {
    CtlError::BadArgument(message)
}

fn usage(syntax: &str) -> CtlError {
    bad(format!("usage: {syntax}"))
}

fn no_params(command: &str, params: &[String]) -> Result<(), CtlError> {
    if params.is_empty() {
        Ok(())
    } else {
        Err(usage(command))
    }
}

fn parse_print_pt(params: &[String]) -> Result<Command, CtlError> {
    if params.len() > 3 {
        return Err(usage("print pt [MIN [MAX [NODE]]]"));
    }
    let offset = |index: usize| match params.get(index) {
        None => Ok(0),
        Some(text) => text
            .parse()
            .map_err(|_| bad(format!("invalid partition offset: {text}"))),
    };
    Ok(Command::PrintPt {
        min_offset: offset(0)?,
        max_offset: offset(1)?,
        nid: params.get(2).map(|nid| parse_nid(nid)).transpose()?,
    })
}

fn parse_storages(params: &[String]) -> Result<Storages, CtlError> {
    match params {
        [all] if all == "all" => Ok(Storages::All),
        nids => parse_nids(nids).map(Storages::List),
    }
}

fn parse_nids(params: &[String]) -> Result<Vec<Nid>, CtlError> {
    params.iter().map(|nid| parse_nid(nid)).collect()
}

/// `[PARTITION]:[REFERENCE] ... [MIN_TID [MAX_TID]]`.
///
/// neoctl takes any argument with one colon for a partition, so it cannot
/// take a `tid:` TID here (only a UNIX time); we do. neoctl also counts
/// partitions wrongly for `:REFERENCE` (it takes the number of replicas);
/// we count the rows of the partition table.
fn parse_check(params: &[String]) -> Result<CheckArgs, CtlError> {
    let mut check = CheckArgs {
        all: None,
        partitions: Vec::new(),
        min_tid: Tid::ZERO,
        max_tid: None,
    };
    let mut params = params.iter();
    while let Some(param) = params.next() {
        let spec = match param.get(..4) {
            Some(prefix) if prefix.eq_ignore_ascii_case("tid:") => None,
            _ => param
                .split_once(':')
                .filter(|(_, reference)| !reference.contains(':')),
        };
        let Some((partition, reference)) = spec else {
            check.min_tid = parse_tid(param)?;
            check.max_tid = params.next().map(|tid| parse_tid(tid)).transpose()?;
            if params.next().is_some() {
                return Err(usage(
                    "check [[PARTITION]:[REFERENCE]...] [MIN_TID [MAX_TID]]",
                ));
            }
            break;
        };
        let reference = match reference {
            "" => None,
            nid => Some(parse_nid(nid)?),
        };
        if partition.is_empty() {
            if check.all.is_some() || !check.partitions.is_empty() {
                return Err(bad(
                    "check: ':REFERENCE' (all partitions) must come first, once".into(),
                ));
            }
            check.all = Some(reference);
        } else {
            let partition = partition
                .parse()
                .map_err(|_| bad(format!("invalid partition: {partition}")))?;
            check.partitions.push((partition, reference));
        }
    }
    Ok(check)
}

/// A node id as NEO/py prints it: a type letter (S, M, C, A) and a number.
fn parse_nid(text: &str) -> Result<Nid, CtlError> {
    text.parse()
        .map_err(|_| bad(format!("invalid node id: {text}")))
}

/// A TID argument: `tid:<integer>` (any Python integer literal, e.g.
/// `tid:0x3937af2eeeeeeee`) or a UNIX time in seconds.
fn parse_tid(text: &str) -> Result<Tid, CtlError> {
    let invalid = || bad(format!("invalid TID: {text}"));
    if let Some(prefix) = text.get(..4) {
        if prefix.eq_ignore_ascii_case("tid:") {
            return parse_int(&text[4..]).map(Tid).ok_or_else(invalid);
        }
    }
    let seconds: f64 = text.trim().parse().map_err(|_| invalid())?;
    // TIDs count from 1900 and neoctl's calendar stops at year 9999.
    const FIRST: f64 = -2_208_988_800.0; // 1900-01-01
    const END: f64 = 253_402_300_800.0; // 10000-01-01
    if !(FIRST..END).contains(&seconds) {
        return Err(invalid());
    }
    Ok(Tid::from_unix_time(seconds))
}

/// Python's `int(text, 0)` for what fits a TID: optional `+`, a base
/// prefix (`0x`, `0o`, `0b`) or plain decimal (no leading zero), single
/// underscores between digits.
fn parse_int(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text).to_ascii_lowercase();
    let (radix, digits) = match text.get(..2) {
        Some("0x") => (16, text[2..].strip_prefix('_').unwrap_or(&text[2..])),
        Some("0o") => (8, text[2..].strip_prefix('_').unwrap_or(&text[2..])),
        Some("0b") => (2, text[2..].strip_prefix('_').unwrap_or(&text[2..])),
        _ => {
            // "010" is refused, as Python does to avoid octal confusion.
            if text.starts_with('0') && text.bytes().any(|b| b != b'0' && b != b'_') {
                return None;
            }
            (10, text.as_str())
        }
    };
    let well_formed = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    u64::from_str_radix(&digits.replace('_', ""), radix).ok()
}

fn execute(command: Command, session: &mut Session) -> Result<Option<String>, CtlError> {
    Ok(match command {
        Command::Usage => Some(USAGE.to_owned()),
        Command::PrintIds => Some(print_ids(session)?),
        Command::PrintPt {
            min_offset,
            max_offset,
            nid,
        } => {
            let (ptid, num_replicas, rows) = session.partition_list(min_offset, max_offset, nid)?;
            // A range asked: one line per row; the whole table: one line
            // per node.
            let table = if min_offset != 0 || max_offset != 0 {
                format_row_list(min_offset, &rows)
            } else {
                format_partition_table(&rows, &session.storage_nodes()?)
            };
            Some(format!(
                "# ptid: {}, replicas: {num_replicas}\n{table}",
                ptid_str(ptid)
            ))
        }
        Command::PrintNode(node_type) => {
            let nodes = session.node_list(node_type)?;
            Some(if nodes.is_empty() {
                "Empty list!".to_owned()
            } else {
                format_node_list(&nodes)
            })
        }
        Command::PrintCluster => match session.ask(AskClusterState {})? {
            Packet::AnswerClusterState(answer) => Some(match answer.state {
                Some(state) => state.to_string(),
                None => "None".to_owned(),
            }),
            other => return Err(unexpected(other)),
        },
        Command::PrintPrimary => match session.ask(AskPrimary {})? {
            Packet::AnswerPrimary(answer) => Some(answer.primary_nid.to_string()),
            other => return Err(unexpected(other)),
        },
        Command::PrintSummary => match session.ask(AskMonitorInformation {})? {
            Packet::AnswerMonitorInformation(answer) => Some(format_summary(
                &answer.warnings,
                &answer.problems,
                &answer.summary,
            )),
            other => return Err(unexpected(other)),
        },
        Command::SetCluster(state) => Some(session.ask_ack(SetClusterState { state })?),
        Command::SetReplicas(num_replicas) => {
            Some(session.ask_ack(SetNumReplicas { num_replicas })?)
        }
        Command::Add(storages) => {
            let nids = storage_nids(session, storages)?;
            Some(session.ask_ack(AddPendingNodes { nids })?)
        }
        Command::Tweak { dry_run, nids } => {
            let ask = TweakPartitionTable {
                dry_run,
                drop_nids: nids,
            };
            match session.ask(ask)? {
                Packet::AnswerTweakPartitionTable(answer) if answer.changed => Some(
                    format_partition_table(&answer.rows, &session.storage_nodes()?),
                ),
                Packet::AnswerTweakPartitionTable(_) => Some("No change done.".to_owned()),
                other => return Err(unexpected(other)),
            }
        }
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
            None
        }
        Command::FlushLog => {
            // FlushLog is a notification: the Ping behind it tells when the
            // admin has handled it (or refused it, without a master), so
            // that closing cannot lose it.
            session.notify(FlushLog {});
            match session.ask(Ping {})? {
                Packet::Pong(_) => None,
                other => return Err(unexpected(other)),
            }
        }
    })
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

fn format_ids(first_line: &str, last_tid: Tid, ptid: Option<Ptid>) -> String {
    format!(
        "{first_line}\nlast_tid = {:#x} ({})\nlast_ptid = {}",
        last_tid.0,
        tid_datetime(last_tid),
        ptid_str(ptid)
    )
}

fn ptid_str(ptid: Option<Ptid>) -> String {
    ptid.map_or_else(|| "None".to_owned(), |ptid| ptid.to_string())
}

/// `print node`: one line per node, columns padded to their widest value,
/// nodes with an id first in id order (admins, clients, masters, storages,
/// as the id namespaces go), then the others by address.
fn format_node_list(nodes: &[NodeInfo]) -> String {
    let mut sorted: Vec<&NodeInfo> = nodes.iter().collect();
    // Python compares (host bytes, port) tuples as `Address` orders; it
    // cannot order no address against one, we put it first. The sort is
    // stable, as Python's.
    sorted.sort_by_key(|node| match node.nid {
        Some(nid) => (false, nid.0, None),
        None => (true, 0, node.address.as_ref()),
    });
    let rows: Vec<[String; 5]> = sorted
        .iter()
        .map(|node| {
            [
                node.nid
                    .map_or_else(|| "None".to_owned(), |nid| nid.to_string()),
                node.node_type.to_string(),
                node.address
                    .as_ref()
                    .map_or_else(String::new, |addr| addr.to_string()),
                node.state.to_string(),
                match node.id_timestamp {
                    None => "None".to_owned(),
                    // Python's `id_timestamp and datetime(...)`: a zero
                    // timestamp is printed as the float it is.
                    Some(ts) if ts.0 == 0.0 => ts.to_string(),
                    Some(ts) => timestamp_datetime(ts.0),
                },
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|row| row[i].chars().count()).max().unwrap())
        .collect();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (value, width) in row.iter().zip(&widths) {
                let _ = write!(line, "{value:<width$} | ");
            }
            line + &row[4]
        })
        .collect();
    lines.join("\n")
}

fn node_state_prefix(state: NodeState) -> char {
    match state {
        NodeState::Running => 'R',
        NodeState::Down => 'D',
        NodeState::Unknown => 'U',
        NodeState::Pending => 'P',
    }
}

fn cell_state_prefix(state: CellState) -> u8 {
    match state {
        CellState::UpToDate => b'U',
        CellState::OutOfDate => b'O',
        CellState::Feeding => b'F',
        CellState::Discarded => b'D',
        CellState::Corrupted => b'C',
    }
}

/// The whole partition table, one line per storage node: its id, its state
/// and one character per partition (the cell state, `.` for none). Nodes
/// are those with cells plus running storage nodes without any; a ruler
/// (`10v` above partition 10...) heads tables of more than 10 partitions.
fn format_partition_table(rows: &Rows, storages: &[NodeInfo]) -> String {
    let np = rows.len();
    let mut cells: std::collections::BTreeMap<Nid, Vec<u8>> = Default::default();
    for (offset, row) in rows.iter().enumerate() {
        for cell in row {
            cells.entry(cell.nid).or_insert_with(|| vec![b'.'; np])[offset] =
                cell_state_prefix(cell.state);
        }
    }
    for node in storages {
        if let (Some(nid), NodeState::Running) = (node.nid, node.state) {
            cells.entry(nid).or_insert_with(|| vec![b'.'; np]);
        }
    }
    let Some(last) = cells.keys().next_back() else {
        return String::new();
    };
    // The id column is as wide as the last id, as in NEO/py (the widest
    // one for storage nodes).
    let width = last.to_string().len();
    let mut lines = Vec::new();
    if np > 10 {
        let mut ruler = " ".repeat(width + 4);
        for tens in (10..np).step_by(10) {
            let _ = write!(ruler, "{tens:>9}v");
        }
        lines.push(ruler);
    }
    for (nid, row) in &cells {
        // A node with cells the admin does not list is one it forgot.
        let state = storages
            .iter()
            .find(|node| node.nid == Some(*nid))
            .map_or(NodeState::Unknown, |node| node.state);
        lines.push(format!(
            "{:<width$} {} {}",
            nid.to_string(),
            node_state_prefix(state),
            String::from_utf8_lossy(row)
        ));
    }
    lines.join("\n")
}

/// Some rows of the partition table: `OFFSET | NODE - STATE | ...`.
fn format_row_list(first_offset: u32, rows: &Rows) -> String {
    let lines: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut line = format!("{:03} |", first_offset as usize + i);
            for cell in row {
                let _ = write!(line, " {} - {} |", cell.nid, cell.state);
            }
            line
        })
        .collect();
    lines.join("\n")
}

/// `print summary`: `# {"warning": [...], "problem": [...]}` (only the
/// severities that occur; a name is a backup cluster, null this one), then
/// the admin's summary.
fn format_summary(
    warnings: &[Option<bytes::Bytes>],
    problems: &[Option<bytes::Bytes>],
    summary: &[u8],
) -> String {
    let mut json = String::from("{");
    for (severity, names) in [("warning", warnings), ("problem", problems)] {
        if names.is_empty() {
            continue;
        }
        if json.len() > 1 {
            json.push_str(", ");
        }
        let _ = write!(json, "\"{severity}\": [");
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                json.push_str(", ");
            }
            match name {
                Some(name) => json_string(&mut json, &text(name)),
                None => json.push_str("null"),
            }
        }
        json.push(']');
    }
    json.push('}');
    format!("# {json}\n{}", text(summary))
}

/// A JSON string as Python's `json.dumps` writes it: ASCII only.
fn json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `str(datetime)`: microseconds only when not zero.
fn format_datetime((year, month, day): (i64, i64, i64), second_of_day: i64, micros: u32) -> String {
    let mut text = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    );
    if micros != 0 {
        let _ = write!(text, ".{micros:06}");
    }
    text
}

/// The date of a UNIX time as NEO/py's `datetime.utcfromtimestamp` gives
/// it: microseconds rounded half to even, from the fraction alone.
fn timestamp_datetime(seconds: f64) -> String {
    if !seconds.is_finite() {
        return neo_proto::Timestamp(seconds).to_string();
    }
    let whole = seconds.trunc();
    let mut micros = ((seconds - whole) * 1e6).round_ties_even();
    let mut whole = whole as i64;
    if micros >= 1e6 {
        whole += 1;
        micros -= 1e6;
    } else if micros < 0.0 {
        whole -= 1;
        micros += 1e6;
    }
    format_datetime(
        neo_proto::civil_from_days(whole.div_euclid(86_400)),
        whole.rem_euclid(86_400),
        micros as u32,
    )
}

/// The date a TID stands for, as NEO/py's `datetimeFromTID`: the high word
/// counts minutes (in months of 31 days), the low word the seconds within
/// the minute scaled to 2^32, truncated to the microsecond. The date is
/// not normalised: a TID naming 30 February (which neoctl fails to print)
/// prints as such.
fn tid_datetime(tid: Tid) -> String {
    let minutes = (tid.0 >> 32) as i64;
    let days = minutes / (24 * 60);
    let date = (days / 31 / 12 + 1900, days / 31 % 12 + 1, days % 31 + 1);
    let scaled = (tid.0 & 0xffff_ffff) * 60;
    let second_of_day = minutes % (24 * 60) * 60 + (scaled >> 32) as i64;
    let micros = ((scaled & 0xffff_ffff) as f64 * (1e6 / 4_294_967_296.0)) as u32;
    format_datetime(date, second_of_day, micros)
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
    //! Expected outputs were recorded from NEO/py's neoctl against a NEO/py
    //! cluster on loopback (1 master, 1 admin, 2 then 3 SQLite storages,
    //! 12 partitions, 1 replica; and one of 7 partitions with storages S9
    //! and S10), along with the raw answers it received, which the tests
    //! below feed to our formatters.

    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};

    use bytes::Bytes;
    use clap::Parser;
    use neo_proto::{
        Address, AnswerClusterState, AnswerLastIDs, AnswerLastTransaction,
        AnswerMonitorInformation, AnswerNodeList, AnswerPartitionList, AnswerPrimary,
        AnswerRecovery, AnswerTweakPartitionTable, CellInfo, Oid, Pong, Row, Timestamp,
    };

    use super::*;

    const S1: Nid = Nid(1);
    const S2: Nid = Nid(2);
    const S3: Nid = Nid(3);
    const M1: Nid = Nid(-0x0fff_ffff);
    const A1: Nid = Nid(-0x2fff_ffff);
    const C1: Nid = Nid(-0x1fff_ffff);

    fn node(
        node_type: NodeType,
        nid: Nid,
        port: Option<u16>,
        state: NodeState,
        id_timestamp: Option<f64>,
    ) -> NodeInfo {
        NodeInfo {
            node_type,
            address: port.map(|port| Address::new("127.0.0.57", port)),
            nid: Some(nid),
            state,
            id_timestamp: id_timestamp.map(Timestamp),
        }
    }

    fn storage(nid: Nid, state: NodeState) -> NodeInfo {
        let (port, ts) = match nid.0 {
            1 => (27303, 1795566027.5949135),
            2 => (27302, 1795566027.625921),
            _ => (27304, 1795566036.2853906),
        };
        node(NodeType::Storage, nid, Some(port), state, Some(ts))
    }

    /// The recorded storage list (in the admin's order: S2, S1, S3).
    fn storages(states: &[NodeState]) -> Vec<NodeInfo> {
        [S2, S1, S3]
            .iter()
            .zip(states)
            .map(|(&nid, &state)| storage(nid, state))
            .collect()
    }

    /// Rows from one string per partition: pairs of node number and cell
    /// state letter, e.g. "1U2F3O".
    fn rows(spec: &[&str]) -> Rows {
        spec.iter()
            .map(|row| {
                row.as_bytes()
                    .chunks(2)
                    .map(|cell| CellInfo {
                        nid: Nid((cell[0] - b'0') as i32),
                        state: match cell[1] {
                            b'U' => CellState::UpToDate,
                            b'O' => CellState::OutOfDate,
                            b'F' => CellState::Feeding,
                            _ => unreachable!(),
                        },
                    })
                    .collect()
            })
            .collect()
    }

    fn repeat(row: &[&'static str], times: usize) -> Vec<&'static str> {
        row.iter()
            .copied()
            .cycle()
            .take(row.len() * times)
            .collect()
    }

    use NodeState::{Down, Pending, Running};

    #[test]
    fn node_list_as_recorded() {
        let master = node(NodeType::Master, M1, Some(27300), Running, None);
        let admin = node(
            NodeType::Admin,
            A1,
            Some(27301),
            Running,
            Some(1795566027.623569),
        );
        let client = node(
            NodeType::Client,
            C1,
            None,
            Running,
            Some(1795566042.9359434),
        );
        // `print node` while recovering (answer order: S2, M1, A1, S1).
        let nodes = vec![
            storage(S2, Pending),
            master.clone(),
            admin.clone(),
            storage(S1, Pending),
        ];
        assert_eq!(
            format_node_list(&nodes),
            "\
A1 | ADMIN   | 127.0.0.57:27301 | RUNNING | 2026-11-25 00:20:27.623569
M1 | MASTER  | 127.0.0.57:27300 | RUNNING | None
S1 | STORAGE | 127.0.0.57:27303 | PENDING | 2026-11-25 00:20:27.594913
S2 | STORAGE | 127.0.0.57:27302 | PENDING | 2026-11-25 00:20:27.625921"
        );
        // With a client connected: it has no address.
        let mut nodes = storages(&[Running, Running, Running]);
        nodes.insert(1, admin);
        nodes.extend([master, client.clone()]);
        assert_eq!(
            format_node_list(&nodes),
            "\
A1 | ADMIN   | 127.0.0.57:27301 | RUNNING | 2026-11-25 00:20:27.623569
C1 | CLIENT  |                  | RUNNING | 2026-11-25 00:20:42.935943
M1 | MASTER  | 127.0.0.57:27300 | RUNNING | None
S1 | STORAGE | 127.0.0.57:27303 | RUNNING | 2026-11-25 00:20:27.594913
S2 | STORAGE | 127.0.0.57:27302 | RUNNING | 2026-11-25 00:20:27.625921
S3 | STORAGE | 127.0.0.57:27304 | RUNNING | 2026-11-25 00:20:36.285391"
        );
        assert_eq!(
            format_node_list(&[client]),
            "C1 | CLIENT |  | RUNNING | 2026-11-25 00:20:42.935943"
        );
        assert_eq!(
            format_node_list(&storages(&[Running, Running, Down])),
            "\
S1 | STORAGE | 127.0.0.57:27303 | RUNNING | 2026-11-25 00:20:27.594913
S2 | STORAGE | 127.0.0.57:27302 | RUNNING | 2026-11-25 00:20:27.625921
S3 | STORAGE | 127.0.0.57:27304 | DOWN    | 2026-11-25 00:20:36.285391"
        );
    }

    #[test]
    fn node_list_pads_ids_of_two_digits() {
        // Second cluster: storages given ids 9 and 10 (answer order: M1,
        // S10, S9, A1).
        let at = |port, nid, node_type, ts: Option<f64>| NodeInfo {
            node_type,
            address: Some(Address::new("127.0.0.58", port)),
            nid: Some(nid),
            state: if node_type == NodeType::Storage {
                Pending
            } else {
                Running
            },
            id_timestamp: ts.map(Timestamp),
        };
        let nodes = [
            at(27400, M1, NodeType::Master, None),
            at(27403, Nid(10), NodeType::Storage, Some(1795566065.0258381)),
            at(27402, Nid(9), NodeType::Storage, Some(1795566065.0012026)),
            at(27401, A1, NodeType::Admin, Some(1795566064.9706235)),
        ];
        assert_eq!(
            format_node_list(&nodes),
            "\
A1  | ADMIN   | 127.0.0.58:27401 | RUNNING | 2026-11-25 00:21:04.970623
M1  | MASTER  | 127.0.0.58:27400 | RUNNING | None
S9  | STORAGE | 127.0.0.58:27402 | PENDING | 2026-11-25 00:21:05.001203
S10 | STORAGE | 127.0.0.58:27403 | PENDING | 2026-11-25 00:21:05.025838"
        );
    }

    #[test]
    fn node_list_edge_cases_follow_python() {
        // Expected as NEO/py's formatNodeList prints it: nodes without id
        // come last, by address; a zero timestamp is printed as a float.
        let anonymous = |node_type, host, port, id_timestamp: Option<f64>| NodeInfo {
            node_type,
            address: Some(Address::new(host, port)),
            nid: None,
            state: Down,
            id_timestamp: id_timestamp.map(Timestamp),
        };
        let nodes = [
            anonymous(NodeType::Storage, "127.0.0.9", 5, Some(0.0)),
            anonymous(NodeType::Master, "::1", 1, None),
            anonymous(NodeType::Master, "127.0.0.10", 1, Some(-0.0)),
            storage(S1, Running),
        ];
        assert_eq!(
            format_node_list(&nodes),
            "\
S1   | STORAGE | 127.0.0.57:27303 | RUNNING | 2026-11-25 00:20:27.594913
None | MASTER  | 127.0.0.10:1     | DOWN    | -0.0
None | STORAGE | 127.0.0.9:5      | DOWN    | 0.0
None | MASTER  | [::1]:1          | DOWN    | None"
        );
    }

    #[test]
    fn partition_table_as_recorded() {
        let all_up = repeat(&["1U2U"], 12);
        assert_eq!(
            format_partition_table(&rows(&all_up), &storages(&[Running, Running])),
            "             10v\nS1 R UUUUUUUUUUUU\nS2 R UUUUUUUUUUUU"
        );
        // A pending storage is not shown; once added (running), it is.
        assert_eq!(
            format_partition_table(&rows(&all_up), &storages(&[Running, Running, Pending])),
            "             10v\nS1 R UUUUUUUUUUUU\nS2 R UUUUUUUUUUUU"
        );
        assert_eq!(
            format_partition_table(&rows(&all_up), &storages(&[Running, Running, Running])),
            "             10v\nS1 R UUUUUUUUUUUU\nS2 R UUUUUUUUUUUU\nS3 R ............"
        );
        // `tweak -n` after adding S3.
        let tweaked = repeat(&["1U2U", "1U2F3O", "1F2U3O"], 4);
        assert_eq!(
            format_partition_table(&rows(&tweaked), &storages(&[Running, Running, Running])),
            "             10v\nS1 R UUFUUFUUFUUF\nS2 R UFUUFUUFUUFU\nS3 R .OO.OO.OO.OO"
        );
        // After `kill S3`, then `tweak -n S3`.
        let killed = repeat(&["1U2U", "1U3O", "2U3O"], 4);
        assert_eq!(
            format_partition_table(&rows(&killed), &storages(&[Running, Running, Down])),
            "             10v\nS1 R UU.UU.UU.UU.\nS2 R U.UU.UU.UU.U\nS3 D .OO.OO.OO.OO"
        );
        let moved = repeat(&["1U2U", "1U3O2O", "2U3O1O"], 4);
        assert_eq!(
            format_partition_table(&rows(&moved), &storages(&[Running, Running, Down])),
            "             10v\nS1 R UUOUUOUUOUUO\nS2 R UOUUOUUOUUOU\nS3 D .OO.OO.OO.OO"
        );
        // Recovering: no cells, storages pending.
        assert_eq!(
            format_partition_table(&vec![Row::new(); 12], &storages(&[Pending, Pending])),
            ""
        );
    }

    #[test]
    fn partition_table_of_few_partitions_and_long_ids() {
        let s9 = || CellInfo {
            nid: Nid(9),
            state: CellState::UpToDate,
        };
        let s10 = |state| CellInfo {
            nid: Nid(10),
            state,
        };
        let storages = [
            NodeInfo {
                nid: Some(Nid(10)),
                ..storage(S1, Running)
            },
            NodeInfo {
                nid: Some(Nid(9)),
                ..storage(S2, Running)
            },
        ];
        let mut table: Rows = (0..7)
            .map(|p| {
                if p % 2 == 0 {
                    vec![s9()].into()
                } else {
                    vec![s10(CellState::UpToDate)].into()
                }
            })
            .collect();
        assert_eq!(
            format_partition_table(&table, &storages),
            "S9  R U.U.U.U\nS10 R .U.U.U."
        );
        // `tweak -n S10`.
        for row in table.iter_mut().skip(1).step_by(2) {
            row.push(CellInfo {
                nid: Nid(9),
                state: CellState::OutOfDate,
            });
        }
        assert_eq!(
            format_partition_table(&table, &storages),
            "S9  R UOUOUOU\nS10 R .U.U.U."
        );
        assert_eq!(
            format_row_list(0, &table[..3].to_vec()),
            "000 | S9 - UP_TO_DATE |\n001 | S10 - UP_TO_DATE | S9 - OUT_OF_DATE |\n\
             002 | S9 - UP_TO_DATE |"
        );
    }

    #[test]
    fn ruler_every_ten_partitions() {
        let table = vec![Row::new(); 31];
        let nodes = storages(&[Running]);
        assert_eq!(
            format_partition_table(&table, &nodes),
            format!(
                "{}10v{}20v{}30v\nS2 R {}",
                " ".repeat(13),
                " ".repeat(7),
                " ".repeat(7),
                ".".repeat(31)
            )
        );
    }

    #[test]
    fn row_list_as_recorded() {
        assert_eq!(format_row_list(0, &vec![Row::new(); 2]), "000 |\n001 |");
        assert_eq!(
            format_row_list(0, &rows(&repeat(&["1U2U"], 3))),
            "\
000 | S1 - UP_TO_DATE | S2 - UP_TO_DATE |
001 | S1 - UP_TO_DATE | S2 - UP_TO_DATE |
002 | S1 - UP_TO_DATE | S2 - UP_TO_DATE |"
        );
        assert_eq!(
            format_row_list(0, &rows(&["1U2U", "1U3O", "2U3O", "1U2U"])),
            "\
000 | S1 - UP_TO_DATE | S2 - UP_TO_DATE |
001 | S1 - UP_TO_DATE | S3 - OUT_OF_DATE |
002 | S2 - UP_TO_DATE | S3 - OUT_OF_DATE |
003 | S1 - UP_TO_DATE | S2 - UP_TO_DATE |"
        );
        assert_eq!(
            format_row_list(10, &rows(&["1U3U", "2U3U"])),
            "\
010 | S1 - UP_TO_DATE | S3 - UP_TO_DATE |
011 | S2 - UP_TO_DATE | S3 - UP_TO_DATE |"
        );
        assert_eq!(format_row_list(5, &Vec::new()), "");
    }

    #[test]
    fn ids_as_recorded() {
        assert_eq!(
            format_ids("last_oid = 0x0", Tid::ZERO, None),
            "last_oid = 0x0\nlast_tid = 0x0 (1900-01-01 00:00:00)\nlast_ptid = None"
        );
        assert_eq!(
            format_ids(
                "last_oid = 0x64",
                Tid(0x040d_3dd4_98dc_5e44),
                Some(Ptid(12))
            ),
            "last_oid = 0x64\nlast_tid = 0x40d3dd498dc5e44 (2026-11-25 00:20:35.826753)\n\
             last_ptid = 12"
        );
    }

    #[test]
    fn summary_as_recorded() {
        assert_eq!(
            format_summary(&[], &[None], b"RECOVERING"),
            "# {\"problem\": [null]}\nRECOVERING"
        );
        assert_eq!(
            format_summary(
                &[],
                &[],
                b"RUNNING; UP_TO_DATE=24; ltid=0000000000000000 (1900-01-01 00:00:00)"
            ),
            "# {}\nRUNNING; UP_TO_DATE=24; ltid=0000000000000000 (1900-01-01 00:00:00)"
        );
    }

    #[test]
    fn summary_json_as_python_dumps_it() {
        // Expected strings printed by Python's json.dumps.
        let name = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(
            format_summary(&[name("up1")], &[None, name("up2")], b""),
            "# {\"warning\": [\"up1\"], \"problem\": [null, \"up2\"]}\n"
        );
        assert_eq!(
            format_summary(
                &[name("b\u{e9}\"\n\\\u{1}\u{7f}\u{1f600}"), None],
                &[],
                b"x"
            ),
            "# {\"warning\": [\"b\\u00e9\\\"\\n\\\\\\u0001\\u007f\\ud83d\\ude00\", null]}\nx"
        );
    }

    #[test]
    fn dates_as_python_prints_them() {
        // Pairs printed by Python's str(datetime.utcfromtimestamp(t)).
        for (seconds, expected) in [
            (1795566027.5949135, "2026-11-25 00:20:27.594913"),
            (1795566036.2853906, "2026-11-25 00:20:36.285391"),
            (1795566042.9359434, "2026-11-25 00:20:42.935943"),
            (86399.9999996, "1970-01-02 00:00:00"),
            (-1.5, "1969-12-31 23:59:58.500000"),
            (-4e-07, "1970-01-01 00:00:00"),
            (951782400.0, "2000-02-29 00:00:00"),
            (1709164800.5, "2024-02-29 00:00:00.500000"),
            (1e-07, "1970-01-01 00:00:00"),
            (253402300799.0, "9999-12-31 23:59:59"),
        ] {
            assert_eq!(timestamp_datetime(seconds), expected, "{seconds}");
        }
        // Pairs printed by NEO/py's datetimeFromTID.
        for (tid, expected) in [
            (0, "1900-01-01 00:00:00"),
            (0x040d_3dd4_98dc_5e44, "2026-11-25 00:20:35.826753"),
            (0x03f4_7f95_5555_5555, "2023-11-14 22:13:19.999999"),
            (0x040d_3dd4_ffff_ffff, "2026-11-25 00:20:59.999999"),
            (0x0393_7af2_eeee_eeee, "2012-01-01 12:34:55.999999"),
            (0x03f9_29f5_5666_6666, "2024-06-10 06:13:20.249999"),
        ] {
            assert_eq!(tid_datetime(Tid(tid)), expected, "{tid:#x}");
        }
    }

    #[test]
    fn tids_as_neoctl_reads_them() {
        // Pairs computed by NEO/py's asTID.
        for (text, tid) in [
            ("1325421296", 0x0393_7af2_eeee_eeee),
            ("1700000000", 0x03f4_7f95_5555_5555),
            ("1795566027.5949135", 0x040d_3dd4_75bd_0111),
            ("0", 0x023c_2b00_0000_0000),
            ("-1", 0x023c_2aff_fbbb_bbbb),
            ("1e9", 0x033f_2eea_aaaa_aaaa),
            ("86399.9999999999", 0x023c_309f_ffff_ffff),
            ("tid:257684787499560686", 257684787499560686),
            ("TID:0x3937af2eeeeeeee", 0x0393_7af2_eeee_eeee),
            ("tid:0X10", 16),
            ("tid:0o17", 15),
            ("tid:0b101", 5),
            ("tid:1_000", 1000),
            ("tid:0x_ff", 255),
            ("tid:0", 0),
            ("tid: +7 ", 7),
        ] {
            assert_eq!(parse_tid(text).unwrap(), Tid(tid), "{text}");
        }
        for text in [
            "abc",
            "tid:",
            "tid:010",
            "tid:1__0",
            "tid:_1",
            "tid:1_",
            "tid:0x",
            "tid:-1",
            "tid:++1",
            "tid:0x1ffffffffffffffff",
            "inf",
            "nan",
            "-2208988801",
            "253402300800",
        ] {
            assert!(
                matches!(parse_tid(text), Err(CtlError::BadArgument(_))),
                "{text}"
            );
        }
        assert_eq!(parse_tid("x").unwrap_err().to_string(), "invalid TID: x");
    }

    #[test]
    fn node_ids_as_printed() {
        assert_eq!(parse_nid("S1").unwrap(), S1);
        assert_eq!(parse_nid("S10").unwrap(), Nid(10));
        assert_eq!(parse_nid("M1").unwrap(), M1);
        assert_eq!(parse_nid("C1").unwrap(), C1);
        assert_eq!(parse_nid("A1").unwrap(), A1);
        for nid in [S1, Nid(10), M1, C1, A1, Nid(-0x0fff_fff0)] {
            assert_eq!(parse_nid(&nid.to_string()).unwrap(), nid);
        }
        for text in ["", "S", "X1", "s1", "S1:", "S-1", "S2147483648"] {
            assert_eq!(
                parse_nid(text).unwrap_err().to_string(),
                format!("invalid node id: {text}")
            );
        }
    }

    fn words(words: &str) -> Vec<String> {
        words.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_parse_as_neoctl_reads_them() {
        let parsed = |text: &str| parse(&words(text)).unwrap();
        assert_eq!(parsed(""), Command::Usage);
        assert_eq!(
            parsed("print pt"),
            Command::PrintPt {
                min_offset: 0,
                max_offset: 0,
                nid: None
            }
        );
        assert_eq!(
            parsed("print pt 2 5 S2"),
            Command::PrintPt {
                min_offset: 2,
                max_offset: 5,
                nid: Some(S2)
            }
        );
        assert_eq!(parsed("print node"), Command::PrintNode(None));
        assert_eq!(
            parsed("print node Storage"),
            Command::PrintNode(Some(NodeType::Storage))
        );
        assert_eq!(
            parsed("start"),
            Command::SetCluster(ClusterState::Verifying)
        );
        assert_eq!(
            parsed("set cluster stopping"),
            Command::SetCluster(ClusterState::Stopping)
        );
        assert_eq!(parsed("set replicas 0"), Command::SetReplicas(0));
        assert_eq!(parsed("add all"), Command::Add(Storages::All));
        assert_eq!(parsed("add"), Command::Add(Storages::List(vec![])));
        assert_eq!(
            parsed("add S1 S3"),
            Command::Add(Storages::List(vec![S1, S3]))
        );
        for (text, dry_run, nids) in [
            ("tweak", false, vec![]),
            ("tweak -n", true, vec![]),
            ("tweak --dry-run S3", true, vec![S3]),
            ("tweak S1 S2", false, vec![S1, S2]),
        ] {
            assert_eq!(parsed(text), Command::Tweak { dry_run, nids }, "{text}");
        }
        assert_eq!(parsed("kill S3"), Command::SetNodeState(S3, Down));
        assert_eq!(
            parsed("drop S3"),
            Command::SetNodeState(S3, NodeState::Unknown)
        );
        assert_eq!(
            parsed("prune_orphan 1 all"),
            Command::PruneOrphan {
                dry_run: true,
                storages: Storages::All
            }
        );
        assert_eq!(
            parsed("prune_orphan 0 S1"),
            Command::PruneOrphan {
                dry_run: false,
                storages: Storages::List(vec![S1])
            }
        );
        assert_eq!(parsed("truncate tid:0x10"), Command::Truncate(Tid(16)));
        assert_eq!(parsed("flush_log"), Command::FlushLog);
        assert_eq!(
            parsed("check"),
            Command::Check(CheckArgs {
                all: None,
                partitions: vec![],
                min_tid: Tid::ZERO,
                max_tid: None
            })
        );
        assert_eq!(
            parsed("check :S1 3:S2 1: tid:0x3f47f9555555555 1795566027.5949135"),
            Command::Check(CheckArgs {
                all: Some(Some(S1)),
                partitions: vec![(3, Some(S2)), (1, None)],
                min_tid: Tid(0x03f4_7f95_5555_5555),
                max_tid: Some(Tid(0x040d_3dd4_75bd_0111)),
            })
        );
    }

    #[test]
    fn wrong_commands_say_why() {
        let error = |text: &str| parse(&words(text)).unwrap_err().to_string();
        // As neoctl prints them.
        assert_eq!(error("foo"), "invalid command: foo");
        assert_eq!(error("print foo"), "invalid command: print foo");
        assert_eq!(
            error("set node S1 RUNNING"),
            "invalid command: set node S1 RUNNING"
        );
        assert_eq!(error("set replicas -1"), "invalid number of replicas");
        // Where neoctl crashes.
        assert!(error("print").starts_with("incomplete command: print\nAvailable commands:\n"));
        assert!(error("set").starts_with("incomplete command: set\n"));
        assert_eq!(error("print node foo"), "invalid node type: foo");
        assert_eq!(error("print cluster x"), "usage: print cluster");
        assert_eq!(error("print ids 1"), "usage: print ids");
        assert_eq!(error("print pt x"), "invalid partition offset: x");
        assert_eq!(
            error("print pt 0 1 S1 S2"),
            "usage: print pt [MIN [MAX [NODE]]]"
        );
        assert_eq!(error("set cluster foo"), "invalid cluster state: foo");
        assert_eq!(error("set cluster"), "usage: set cluster STATE");
        assert_eq!(error("set replicas x"), "invalid number of replicas");
        assert_eq!(error("kill"), "usage: kill NODE");
        assert_eq!(error("drop S1 S2"), "usage: drop NODE");
        assert_eq!(error("kill X1"), "invalid node id: X1");
        assert_eq!(error("truncate"), "usage: truncate TID");
        assert_eq!(error("truncate abc"), "invalid TID: abc");
        assert_eq!(
            error("prune_orphan"),
            "usage: prune_orphan 0|1 [all|NODE...]"
        );
        assert_eq!(
            error("prune_orphan 2 all"),
            "usage: prune_orphan 0|1 [all|NODE...]"
        );
        assert_eq!(error("add all S1"), "invalid node id: all");
        assert_eq!(error("flush_log now"), "usage: flush_log");
        assert_eq!(error("check x:S1"), "invalid partition: x");
        assert_eq!(
            error("check 1:S1 :S2"),
            "check: ':REFERENCE' (all partitions) must come first, once"
        );
        assert_eq!(error("check 1:S1:S2"), "invalid TID: 1:S1:S2");
        assert_eq!(
            error("check 0 1 2"),
            "usage: check [[PARTITION]:[REFERENCE]...] [MIN_TID [MAX_TID]]"
        );
    }

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
