//! The command words of neoctl, checked before connecting.

use std::str::FromStr;

use neo_proto::{ClusterState, Nid, NodeState, NodeType, Tid};

use super::CtlError;

/// Storage nodes a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Storages {
    /// `all`: every storage node the admin knows, whatever its state.
    All,
    List(Vec<Nid>),
}

/// `check` arguments: which partitions, against which reference, which
/// transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CheckArgs {
    /// `:[REFERENCE]`: every partition, with this reference.
    pub(super) all: Option<Option<Nid>>,
    /// `PARTITION:[REFERENCE]`, overriding `all` for that partition.
    pub(super) partitions: Vec<(u32, Option<Nid>)>,
    pub(super) min_tid: Tid,
    /// `None`: up to the last transaction (the master decides).
    pub(super) max_tid: Option<Tid>,
}

/// A parsed command line: everything is checked before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
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

pub(super) fn parse(words: &[String]) -> Result<Command, CtlError> {
    let Some(first) = words.first() else {
        return Ok(Command::Usage);
    };
    let params = &words[1..];
    Ok(match first.as_str() {
        "print" => parse_print(words)?,
        "set" => parse_set(words)?,
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
        _ => return Err(invalid(words)),
    })
}

/// Words that are no command: all of them are in the message.
fn invalid(words: &[String]) -> CtlError {
    CtlError::InvalidCommand(words.join(" "))
}

/// The command of the group `name` (the first word) and its parameters.
fn group<'a>(words: &'a [String], name: &str) -> Result<(&'a str, &'a [String]), CtlError> {
    match words.get(1) {
        Some(word) => Ok((word.as_str(), &words[2..])),
        None => Err(CtlError::Incomplete(name.to_owned())),
    }
}

/// `print ...`: the commands that only ask.
fn parse_print(words: &[String]) -> Result<Command, CtlError> {
    Ok(match group(words, "print")? {
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
        _ => return Err(invalid(words)),
    })
}

/// `set cluster STATE` and `set replicas N`.
fn parse_set(words: &[String]) -> Result<Command, CtlError> {
    Ok(match group(words, "set")? {
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
        _ => return Err(invalid(words)),
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
#[cfg(test)]
mod tests {
    use super::super::testing::{words, A1, C1, M1, S1, S2, S3};
    use super::*;
    use NodeState::Down;

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
}
