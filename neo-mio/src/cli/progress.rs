//! `neo ctl --wait`: following a long operation to its end.
//!
//! neoctl returns as soon as the master accepted a command, but starting
//! a cluster, accepting storages or rebalancing the partition table goes
//! on afterwards: verification, then replication that may last hours.
//! With `--wait`, `neo ctl` then polls the admin node and reports on
//! standard error each time the picture changes (cluster state, how many
//! cells are UP_TO_DATE, which storages are still behind) until the
//! cluster is RUNNING with every cell UP_TO_DATE: what an operator waits
//! for before the next step. The command's own output on standard output
//! stays neoctl's.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use neo_proto::{AskClusterState, CellState, ClusterState, Nid, Packet, Rows};

use super::ctl::{CtlError, Session, DEFAULT_TIMEOUT};

/// How often the admin node is asked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What the admin node said about the cluster at one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The admin node could not answer (no primary master yet, restarting):
    /// why.
    Unavailable(String),
    Known {
        /// `None` until the admin heard it from the primary master.
        state: Option<ClusterState>,
        /// Number of cells in each state.
        cells: BTreeMap<CellState, usize>,
        /// Storages with cells not UP_TO_DATE, and how many.
        behind: BTreeMap<Nid, usize>,
    },
}

impl Progress {
    pub fn new(state: Option<ClusterState>, rows: &Rows) -> Progress {
        let mut cells = BTreeMap::new();
        let mut behind = BTreeMap::new();
        for cell in rows.iter().flatten() {
            *cells.entry(cell.state).or_default() += 1;
            if cell.state != CellState::UpToDate {
                *behind.entry(cell.nid).or_default() += 1;
            }
        }
        Progress::Known {
            state,
            cells,
            behind,
        }
    }

    /// Whether the operation is over: RUNNING, every cell UP_TO_DATE (a
    /// FEEDING cell is dropped only once its replacement caught up).
    pub fn is_settled(&self) -> bool {
        match self {
            Progress::Known {
                state: Some(ClusterState::Running),
                cells,
                ..
            } => !cells.is_empty() && cells.keys().all(|&s| s == CellState::UpToDate),
            _ => false,
        }
    }
}

impl fmt::Display for Progress {
    /// `cluster RUNNING, 10 of 12 cells UP_TO_DATE, 2 OUT_OF_DATE (S2: 2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, cells, behind) = match self {
            Progress::Unavailable(why) => return write!(f, "admin node: {why}"),
            Progress::Known {
                state,
                cells,
                behind,
            } => (state, cells, behind),
        };
        match state {
            Some(state) => write!(f, "cluster {state}")?,
            None => f.write_str("cluster state unknown")?,
        }
        let total: usize = cells.values().sum();
        if total == 0 {
            return f.write_str(", no partition table yet");
        }
        let up_to_date = cells.get(&CellState::UpToDate).copied().unwrap_or(0);
        write!(f, ", {up_to_date} of {total} cells UP_TO_DATE")?;
        for (state, count) in cells {
            if *state != CellState::UpToDate {
                write!(f, ", {count} {state}")?;
            }
        }
        if !behind.is_empty() {
            let list: Vec<String> = behind
                .iter()
                .map(|(nid, count)| format!("{nid}: {count}"))
                .collect();
            write!(f, " ({})", list.join(", "))?;
        }
        Ok(())
    }
}

/// Asks the admin node for the cluster state and the partition table.
fn poll(session: &mut Session) -> Result<Progress, CtlError> {
    let state = match session.ask(AskClusterState {})? {
        Packet::AnswerClusterState(answer) => answer.state,
        other => return Err(CtlError::UnexpectedAnswer(Box::new(other))),
    };
    let (_, _, rows) = session.partition_list(0, 0, None)?;
    Ok(Progress::new(state, &rows))
}

/// Polls `admin` until the cluster is settled, writing one line to
/// `report` each time the progress changes, and a last one when done.
/// Gives up after `limit` if there is one (`CtlError::NotSettled`).
pub fn wait_until_settled(
    admin: SocketAddr,
    limit: Option<Duration>,
    report: &mut dyn Write,
) -> Result<(), CtlError> {
    let started = Instant::now();
    let mut session = Session::new(admin, DEFAULT_TIMEOUT);
    let mut last: Option<Progress> = None;
    loop {
        let progress = match poll(&mut session) {
            Ok(progress) => progress,
            // The admin may be down or not connected to a primary for a
            // while (a master failing over): say so and keep polling, on a
            // new connection.
            Err(
                error @ (CtlError::NotReady(_)
                | CtlError::Unreachable { .. }
                | CtlError::ConnectionClosed
                | CtlError::Timeout { .. }
                | CtlError::Transport { .. }),
            ) => {
                session = Session::new(admin, DEFAULT_TIMEOUT);
                Progress::Unavailable(error.to_string())
            }
            Err(error) => return Err(error),
        };
        let elapsed = started.elapsed();
        if progress.is_settled() {
            writeln!(report, "done in {:.1} s: {progress}", elapsed.as_secs_f64())
                .map_err(CtlError::Output)?;
            return Ok(());
        }
        if last.as_ref() != Some(&progress) {
            writeln!(report, "{:.1} s: {progress}", elapsed.as_secs_f64())
                .map_err(CtlError::Output)?;
        }
        if let Some(limit) = limit {
            if elapsed + POLL_INTERVAL > limit {
                return Err(CtlError::NotSettled {
                    after: limit,
                    progress: progress.to_string(),
                });
            }
        }
        last = Some(progress);
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use neo_proto::{CellInfo, Row};

    use super::*;

    fn cell(nid: i32, state: CellState) -> CellInfo {
        CellInfo {
            nid: Nid(nid),
            state,
        }
    }

    #[test]
    fn settled_only_when_running_with_every_cell_up_to_date() {
        use CellState::{Feeding, OutOfDate, UpToDate};
        let replicating: Rows = vec![
            vec![cell(1, UpToDate), cell(2, OutOfDate)].into(),
            vec![cell(1, Feeding), cell(2, OutOfDate)].into(),
            vec![cell(1, UpToDate), cell(2, UpToDate)].into(),
        ];
        let progress = Progress::new(Some(ClusterState::Running), &replicating);
        assert!(!progress.is_settled());
        assert_eq!(
            progress.to_string(),
            "cluster RUNNING, 3 of 6 cells UP_TO_DATE, 2 OUT_OF_DATE, 1 FEEDING (S1: 1, S2: 2)"
        );
        let done: Rows = vec![vec![cell(1, UpToDate), cell(2, UpToDate)].into(); 3];
        let progress = Progress::new(Some(ClusterState::Running), &done);
        assert!(progress.is_settled());
        assert_eq!(
            progress.to_string(),
            "cluster RUNNING, 6 of 6 cells UP_TO_DATE"
        );
        // Not before the cluster runs, nor without a table.
        assert!(!Progress::new(Some(ClusterState::Verifying), &done).is_settled());
        assert!(!Progress::new(None, &done).is_settled());
        let empty = Progress::new(Some(ClusterState::Running), &vec![Row::new(); 3]);
        assert!(!empty.is_settled());
        assert_eq!(empty.to_string(), "cluster RUNNING, no partition table yet");
        assert_eq!(
            Progress::new(None, &Rows::new()).to_string(),
            "cluster state unknown, no partition table yet"
        );
        assert!(!Progress::Unavailable("ERROR: not connected".into()).is_settled());
    }
}
