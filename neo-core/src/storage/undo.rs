//! Where an undo points (NEO/py's `findUndoTID`, cluster.md 5.15).
//!
//! Undoing transaction U on an object means storing a back-pointer to the
//! data it had before U. Records that are "undo-identical" form a chain of
//! back-pointers; the answer always names the greatest candidate, so that
//! packing never has to rewrite back-pointers (pack is then idempotent and
//! replicas stay identical).

use neo_proto::{Tid, UndoSerial};

use super::store::UndoHistory;

/// What the client needs to undo `undo_tid` on one object, from the
/// object's records around it (`None`: no record at `undo_tid`, nothing to
/// undo). `snapshot` is the exclusive upper bound of what the undoing
/// client sees; `pending` is the serial of the undoing transaction's own
/// pending store of the object (its back-pointer, or its TTID).
///
/// A `current_serial` of `None` in the answer means the object is not
/// visible in the snapshot: the storage answers OID_NOT_FOUND.
pub(super) fn find_undo_serial(
    history: Option<UndoHistory>,
    undo_tid: Tid,
    snapshot: Option<Tid>,
    pending: Option<Tid>,
) -> Option<(Option<Tid>, Option<Tid>, bool)> {
    let UndoHistory {
        previous: mut undone,
        later,
    } = history?;
    let current = match pending {
        Some(pending) => pending,
        None => {
            let visible = later
                .iter()
                .rev()
                .map(|(tid, _)| *tid)
                .find(|tid| snapshot.is_none_or(|s| *tid < s));
            match visible {
                Some(tid) => tid,
                None if snapshot.is_some_and(|s| s <= undo_tid) => {
                    return Some((None, None, false))
                }
                None => undo_tid,
            }
        }
    };
    let mut undo_tid = undo_tid;
    let mut is_current = current == undo_tid;
    for (tid, value_tid) in later {
        let Some(value_tid) = value_tid else {
            continue;
        };
        if Some(value_tid) == undone {
            undone = Some(tid);
        } else if value_tid == undo_tid {
            if current == tid {
                is_current = true;
            } else {
                undo_tid = tid;
            }
        }
    }
    Some((Some(current), undone, is_current))
}

/// The wire form of a found answer.
pub(super) fn to_wire(current: Tid, undone: Option<Tid>, is_current: bool) -> UndoSerial {
    UndoSerial {
        current_serial: current,
        undo_serial: undone,
        is_current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(previous: Option<u64>, later: &[(u64, Option<u64>)]) -> Option<UndoHistory> {
        Some(UndoHistory {
            previous: previous.map(Tid),
            later: later.iter().map(|&(t, v)| (Tid(t), v.map(Tid))).collect(),
        })
    }

    #[test]
    fn undoing_the_current_revision_points_before_it() {
        // 10, 20: undo 20 → back to 10's data, 20 is current.
        assert_eq!(
            find_undo_serial(history(Some(10), &[]), Tid(20), None, None),
            Some((Some(Tid(20)), Some(Tid(10)), true))
        );
        // Undoing the creation: no data to go back to.
        assert_eq!(
            find_undo_serial(history(None, &[]), Tid(10), None, None),
            Some((Some(Tid(10)), None, true))
        );
        assert_eq!(find_undo_serial(None, Tid(10), None, None), None);
    }

    #[test]
    fn a_later_change_is_a_conflict_unless_it_is_undo_identical() {
        // 10, 20, 30 (plain): undoing 20 is not current.
        assert_eq!(
            find_undo_serial(history(Some(10), &[(30, None)]), Tid(20), None, None),
            Some((Some(Tid(30)), Some(Tid(10)), false))
        );
        // 30 is undo-identical to 20 (points to it): still current.
        assert_eq!(
            find_undo_serial(history(Some(10), &[(30, Some(20))]), Tid(20), None, None),
            Some((Some(Tid(30)), Some(Tid(10)), true))
        );
    }

    #[test]
    fn the_greatest_undo_identical_record_is_named() {
        // 10, 20, 30 → 10 (undo of 20), 40 → 20 (undo of 30): undoing 40
        // must name 30, whose data equals 10's, not 10 itself.
        assert_eq!(
            find_undo_serial(history(Some(30), &[]), Tid(40), None, None),
            Some((Some(Tid(40)), Some(Tid(30)), true))
        );
        // 10; 20; 30 points to 10: undoing 20 again resolves the chain to
        // 30 (undo-identical to 10).
        assert_eq!(
            find_undo_serial(history(Some(10), &[(30, Some(10))]), Tid(20), None, None),
            Some((Some(Tid(30)), Some(Tid(30)), false))
        );
    }

    #[test]
    fn the_snapshot_and_pending_stores_decide_what_is_current() {
        // 20 then 30; the client only sees up to 25.
        assert_eq!(
            find_undo_serial(
                history(Some(10), &[(30, None)]),
                Tid(20),
                Some(Tid(25)),
                None
            ),
            Some((Some(Tid(20)), Some(Tid(10)), true))
        );
        // The snapshot does not even include the undone transaction.
        assert_eq!(
            find_undo_serial(history(Some(10), &[]), Tid(20), Some(Tid(20)), None),
            Some((None, None, false))
        );
        // Our own pending store of the object is what is current.
        assert_eq!(
            find_undo_serial(history(Some(10), &[]), Tid(20), None, Some(Tid(99))),
            Some((Some(Tid(99)), Some(Tid(10)), false))
        );
    }
}
