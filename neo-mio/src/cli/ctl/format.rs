//! What neoctl prints, byte for byte, from the admin node's answers.

use std::fmt::Write as _;

use neo_proto::{CellState, Nid, NodeInfo, NodeState, Ptid, Rows, Tid};

use super::session::text;

pub(super) fn format_ids(first_line: &str, last_tid: Tid, ptid: Option<Ptid>) -> String {
    format!(
        "{first_line}\nlast_tid = {:#x} ({})\nlast_ptid = {}",
        last_tid.0,
        tid_datetime(last_tid),
        ptid_str(ptid)
    )
}

pub(super) fn ptid_str(ptid: Option<Ptid>) -> String {
    ptid.map_or_else(|| "None".to_owned(), |ptid| ptid.to_string())
}

/// `print node`: one line per node, columns padded to their widest value,
/// nodes with an id first in id order (admins, clients, masters, storages,
/// as the id namespaces go), then the others by address.
pub(super) fn format_node_list(nodes: &[NodeInfo]) -> String {
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
pub(super) fn format_partition_table(rows: &Rows, storages: &[NodeInfo]) -> String {
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
pub(super) fn format_row_list(first_offset: u32, rows: &Rows) -> String {
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
pub(super) fn format_summary(
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
pub(super) fn tid_datetime(tid: Tid) -> String {
    let minutes = (tid.0 >> 32) as i64;
    let days = minutes / (24 * 60);
    let date = (days / 31 / 12 + 1900, days / 31 % 12 + 1, days % 31 + 1);
    let scaled = (tid.0 & 0xffff_ffff) * 60;
    let second_of_day = minutes % (24 * 60) * 60 + (scaled >> 32) as i64;
    let micros = ((scaled & 0xffff_ffff) as f64 * (1e6 / 4_294_967_296.0)) as u32;
    format_datetime(date, second_of_day, micros)
}
#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use neo_proto::{Address, CellInfo, NodeType, Row, Timestamp};

    use super::super::testing::{node, repeat, rows, storage, storages, A1, C1, M1, S1, S2};
    use super::*;
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
}
