//! What the client requires of the answers and notifications it acts on.
//!
//! A packet of the right type may still lie: name another object than the
//! one asked, a revision outside the range asked, more records than asked,
//! a TID no transaction can have. Acting on it would hand wrong data to the
//! application, loop, or overflow (`tid + 1` at `u64::MAX`). Each check
//! returns the violation, naming the packet field; the caller treats it as
//! a protocol error of the peer (cluster.md 6: the connection goes, as on
//! a loss, and the client carries on with other replicas or reconnects).

// Numbers from peers are handled here: no indexing that can panic, no
// arithmetic that can overflow (CI denies both).
#![warn(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use neo_proto::{
    AnswerObject, AnswerObjectHistory, AnswerObjectUndoSerial, AnswerTIDsFrom, AskObject,
    AskObjectHistory, AskObjectUndoSerial, AskTIDsFrom, Packet, Partitions, Tid,
};

/// What is wrong with a packet, starting with the field (`Packet.field`).
pub(super) type Violation = String;

/// A TID a peer sends: above [`Tid::MAX`] no transaction has it (and
/// `tid + 1`, the end of a snapshot, would overflow).
pub(super) fn tid(field: &str, tid: Tid) -> Result<(), Violation> {
    if tid > Tid::MAX {
        return Err(format!("{field}: {tid} is past the last possible TID"));
    }
    Ok(())
}

fn tids<'a>(field: &str, tids: impl IntoIterator<Item = &'a Tid>) -> Result<(), Violation> {
    tids.into_iter().try_for_each(|&t| tid(field, t))
}

/// A TID that moves our snapshot (an invalidation, our own commit): past
/// the last one, since the master announces commits in TID order on the
/// connection.
pub(super) fn next_tid(field: &str, new: Tid, last: Option<Tid>) -> Result<(), Violation> {
    tid(field, new)?;
    match last {
        Some(last) if new <= last => Err(format!(
            "{field}: {new} is not after the last committed transaction {last}"
        )),
        _ => Ok(()),
    }
}

/// An answer of the primary master to `asked` (`last_tid`: our snapshot).
pub(super) fn master_answer(
    asked: &Packet,
    answer: &Packet,
    last_tid: Option<Tid>,
) -> Result<(), Violation> {
    match (asked, answer) {
        (Packet::AskNewOIDs(ask), Packet::AnswerNewOIDs(answer)) => {
            if answer.oids.len() > ask.count as usize {
                return Err(format!(
                    "AnswerNewOIDs.oids: {} oids, {} asked",
                    answer.oids.len(),
                    ask.count
                ));
            }
            Ok(())
        }
        (Packet::AskBeginTransaction(ask), Packet::AnswerBeginTransaction(answer)) => {
            tid("AnswerBeginTransaction.ttid", answer.ttid)?;
            match ask.tid {
                Some(asked) if asked != answer.ttid => Err(format!(
                    "AnswerBeginTransaction.ttid: {}, {asked} asked",
                    answer.ttid
                )),
                _ => Ok(()),
            }
        }
        (Packet::AskFinishTransaction(ask), Packet::AnswerTransactionFinished(answer)) => {
            if answer.ttid != ask.ttid {
                return Err(format!(
                    "AnswerTransactionFinished.ttid: {}, {} asked",
                    answer.ttid, ask.ttid
                ));
            }
            next_tid("AnswerTransactionFinished.tid", answer.tid, last_tid)
        }
        // Tid::MAX itself means "committed, ask the storages".
        (Packet::AskFinalTID(_), Packet::AnswerFinalTID(answer)) => {
            tids("AnswerFinalTID.tid", &answer.tid)
        }
        _ => Ok(()),
    }
}

/// A storage's answer to the read `asked`; `partitions`: the table's, if
/// we have one.
pub(super) fn read_answer(
    asked: &Packet,
    answer: &Packet,
    partitions: Option<Partitions>,
) -> Result<(), Violation> {
    match (asked, answer) {
        (Packet::AskObject(ask), Packet::AnswerObject(answer)) => object(ask, answer),
        (Packet::AskObjectHistory(ask), Packet::AnswerObjectHistory(answer)) => {
            history(ask, answer)
        }
        (Packet::AskTransactionInformation(ask), Packet::AnswerTransactionInformation(answer)) => {
            if answer.tid != ask.tid {
                return Err(format!(
                    "AnswerTransactionInformation.tid: {}, {} asked",
                    answer.tid, ask.tid
                ));
            }
            Ok(())
        }
        (Packet::AskTIDsFrom(ask), Packet::AnswerTIDsFrom(answer)) => {
            tids_from(ask, answer, partitions)
        }
        (Packet::AskObjectUndoSerial(ask), Packet::AnswerObjectUndoSerial(answer)) => {
            undo_serials(ask, answer)
        }
        (Packet::AskFinalTID(_), Packet::AnswerFinalTID(answer)) => match answer.tid {
            // The master's "ask the storages" is no storage's answer.
            Some(tid) if tid >= Tid::MAX => Err(format!(
                "AnswerFinalTID.tid: {tid} is past the last possible TID"
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The revision asked: at `at`, or the one current just before `before`.
fn object(ask: &AskObject, answer: &AnswerObject) -> Result<(), Violation> {
    if answer.oid != ask.oid {
        return Err(format!(
            "AnswerObject.oid: {}, {} asked",
            answer.oid, ask.oid
        ));
    }
    let serial = answer.serial;
    tid("AnswerObject.serial", serial)?;
    tids("AnswerObject.next_serial", &answer.next_serial)?;
    tids("AnswerObject.data_serial", &answer.data_serial)?;
    if let Some(at) = ask.at.filter(|at| *at != serial) {
        return Err(format!("AnswerObject.serial: {serial}, {at} asked"));
    }
    if let Some(before) = ask.before {
        if serial >= before {
            return Err(format!(
                "AnswerObject.serial: {serial} is not before {before}"
            ));
        }
        // Otherwise the next revision, not this one, was current then.
        if let Some(next) = answer.next_serial.filter(|next| *next < before) {
            return Err(format!(
                "AnswerObject.next_serial: {next} is before {before}"
            ));
        }
    }
    match answer.next_serial {
        Some(next) if next <= serial => Err(format!(
            "AnswerObject.next_serial: {next} is not after the serial {serial}"
        )),
        _ => Ok(()),
    }
}

/// At most the revisions asked, of the object asked, newest first.
fn history(ask: &AskObjectHistory, answer: &AnswerObjectHistory) -> Result<(), Violation> {
    if answer.oid != ask.oid {
        return Err(format!(
            "AnswerObjectHistory.oid: {}, {} asked",
            answer.oid, ask.oid
        ));
    }
    let asked = ask.last.saturating_sub(ask.first);
    if answer.history.len() as u64 > asked {
        return Err(format!(
            "AnswerObjectHistory.history: {} entries, {asked} asked",
            answer.history.len()
        ));
    }
    tids(
        "AnswerObjectHistory.history",
        answer.history.iter().map(|entry| &entry.serial),
    )?;
    if answer
        .history
        .windows(2)
        .any(|w| matches!(w, [a, b] if a.serial <= b.serial))
    {
        return Err("AnswerObjectHistory.history: serials not newest first".into());
    }
    Ok(())
}

/// At most the transactions asked, of the partition asked, within the
/// range asked, oldest first: so that the iterator's cursor advances.
fn tids_from(
    ask: &AskTIDsFrom,
    answer: &AnswerTIDsFrom,
    partitions: Option<Partitions>,
) -> Result<(), Violation> {
    if answer.tids.len() > ask.length as usize {
        return Err(format!(
            "AnswerTIDsFrom.tids: {} TIDs, {} asked",
            answer.tids.len(),
            ask.length
        ));
    }
    for &tid in &answer.tids {
        if tid < ask.min_tid || ask.max_tid < tid {
            return Err(format!(
                "AnswerTIDsFrom.tids: {tid} is out of the range asked [{}, {}]",
                ask.min_tid, ask.max_tid
            ));
        }
        if let Some(partition) = partitions
            .map(|p| p.of(tid.0))
            .filter(|p| *p != ask.partition)
        {
            return Err(format!(
                "AnswerTIDsFrom.tids: {tid} is in partition {partition}, {} asked",
                ask.partition
            ));
        }
    }
    if answer
        .tids
        .windows(2)
        .any(|w| matches!(w, [a, b] if a >= b))
    {
        return Err("AnswerTIDsFrom.tids: not in increasing order".into());
    }
    Ok(())
}

/// Only the objects asked (each one is then undone).
fn undo_serials(
    ask: &AskObjectUndoSerial,
    answer: &AnswerObjectUndoSerial,
) -> Result<(), Violation> {
    for (oid, serial) in &answer.result.0 {
        if !ask.oids.contains(oid) {
            return Err(format!(
                "AnswerObjectUndoSerial.result: {oid} was not asked"
            ));
        }
        tid("AnswerObjectUndoSerial.result", serial.current_serial)?;
        tids("AnswerObjectUndoSerial.result", &serial.undo_serial)?;
    }
    Ok(())
}

/// A storage's answer to a store, a readCurrent check or a relock.
pub(super) fn write_answer(answer: &Packet) -> Result<(), Violation> {
    match answer {
        Packet::AnswerStoreObject(answer) => tids("AnswerStoreObject.conflict", &answer.conflict),
        Packet::AnswerCheckCurrentSerial(answer) => {
            tids("AnswerCheckCurrentSerial.conflict", &answer.conflict)
        }
        Packet::AnswerRelockObject(answer) => match &answer.conflict {
            Some(conflict) => {
                tid("AnswerRelockObject.conflict", conflict.serial)?;
                tid("AnswerRelockObject.conflict", conflict.conflict_serial)
            }
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// A storage's answer to AskTIDs for `count` transactions (undoLog).
pub(super) fn tids_answer(answer: &Packet, count: u64) -> Result<(), Violation> {
    let Packet::AnswerTIDs(answer) = answer else {
        return Ok(());
    };
    if answer.tids.len() as u64 > count {
        return Err(format!(
            "AnswerTIDs.tids: {} TIDs, {count} asked",
            answer.tids.len()
        ));
    }
    tids("AnswerTIDs.tids", &answer.tids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neo_proto::{
        AnswerFinalTID, AnswerNewOIDs, AnswerStoreObject, AnswerTIDs, AnswerTransactionFinished,
        AskFinalTID, AskFinishTransaction, AskNewOIDs, Checksum, HistoryEntry, Map, Oid,
        UndoSerial,
    };

    fn object(serial: u64, next_serial: Option<u64>) -> Packet {
        AnswerObject {
            oid: Oid(1),
            serial: Tid(serial),
            next_serial: next_serial.map(Tid),
            compression: Some(0),
            checksum: Checksum::ZERO,
            data: Default::default(),
            data_serial: None,
        }
        .into()
    }

    fn ask_object(at: Option<u64>, before: Option<u64>) -> Packet {
        AskObject {
            oid: Oid(1),
            at: at.map(Tid),
            before: before.map(Tid),
        }
        .into()
    }

    fn violation(result: Result<(), Violation>) -> String {
        result.expect_err("a violation")
    }

    #[test]
    fn an_object_is_the_revision_asked() {
        let read = |ask, answer| read_answer(&ask, &answer, None);
        assert_eq!(read(ask_object(Some(5), None), object(5, Some(7))), Ok(()));
        assert_eq!(read(ask_object(None, Some(6)), object(5, Some(7))), Ok(()));
        assert_eq!(read(ask_object(None, Some(6)), object(5, Some(6))), Ok(()));
        assert_eq!(read(ask_object(None, Some(6)), object(5, None)), Ok(()));
        let mut other = object(5, None);
        if let Packet::AnswerObject(answer) = &mut other {
            answer.oid = Oid(2);
        }
        assert!(violation(read(ask_object(Some(5), None), other)).starts_with("AnswerObject.oid"));
        for (ask, answer, field) in [
            (
                ask_object(Some(5), None),
                object(4, None),
                "AnswerObject.serial",
            ),
            (
                ask_object(None, Some(6)),
                object(6, None),
                "AnswerObject.serial",
            ),
            (
                ask_object(None, Some(6)),
                object(5, Some(5)),
                "AnswerObject.next_serial",
            ),
            (
                ask_object(Some(5), None),
                object(5, Some(4)),
                "AnswerObject.next_serial",
            ),
            (
                ask_object(None, Some(9)),
                object(5, Some(7)),
                "AnswerObject.next_serial",
            ),
            (
                ask_object(None, None),
                object(u64::MAX, None),
                "AnswerObject.serial",
            ),
            (
                ask_object(None, None),
                object(5, Some(u64::MAX)),
                "AnswerObject.next_serial",
            ),
        ] {
            let found = violation(read(ask.clone(), answer.clone()));
            assert!(found.starts_with(field), "{ask} / {answer}: {found}");
        }
    }

    #[test]
    fn a_history_is_at_most_what_was_asked_newest_first() {
        let ask: Packet = AskObjectHistory {
            oid: Oid(1),
            first: 0,
            last: 2,
        }
        .into();
        let history = |oid, serials: &[u64]| -> Packet {
            AnswerObjectHistory {
                oid: Oid(oid),
                history: serials
                    .iter()
                    .map(|&s| HistoryEntry {
                        serial: Tid(s),
                        size: 1,
                    })
                    .collect(),
            }
            .into()
        };
        assert_eq!(read_answer(&ask, &history(1, &[7, 5]), None), Ok(()));
        for answer in [
            history(2, &[7]),
            history(1, &[9, 7, 5]),
            history(1, &[5, 7]),
            history(1, &[7, 7]),
            history(1, &[u64::MAX]),
        ] {
            let found = violation(read_answer(&ask, &answer, None));
            assert!(
                found.starts_with("AnswerObjectHistory."),
                "{answer}: {found}"
            );
        }
    }

    #[test]
    fn listed_transactions_are_in_the_range_and_partition_asked_in_order() {
        let partitions = Partitions::new(2);
        let ask: Packet = AskTIDsFrom {
            min_tid: Tid(10),
            max_tid: Tid(20),
            length: 3,
            partition: 0,
        }
        .into();
        let tids = |tids: &[u64]| -> Packet {
            AnswerTIDsFrom {
                tids: tids.iter().copied().map(Tid).collect(),
            }
            .into()
        };
        assert_eq!(read_answer(&ask, &tids(&[10, 14, 20]), partitions), Ok(()));
        assert_eq!(read_answer(&ask, &tids(&[]), partitions), Ok(()));
        for answer in [
            tids(&[8]),
            tids(&[22]),
            tids(&[u64::MAX - 1]),
            tids(&[11]),
            tids(&[14, 12]),
            tids(&[12, 12]),
            tids(&[10, 12, 14, 16]),
        ] {
            let found = violation(read_answer(&ask, &answer, partitions));
            assert!(
                found.starts_with("AnswerTIDsFrom.tids"),
                "{answer}: {found}"
            );
        }
        // Without a table, the partition cannot be told.
        assert_eq!(read_answer(&ask, &tids(&[11]), None), Ok(()));
    }

    #[test]
    fn undo_serials_are_of_the_objects_asked() {
        let ask: Packet = AskObjectUndoSerial {
            ttid: Tid(30),
            ltid: Tid(31),
            undone_tid: Tid(20),
            oids: vec![Oid(1)],
        }
        .into();
        let answer = |oid, current| -> Packet {
            AnswerObjectUndoSerial {
                result: Map(vec![(
                    Oid(oid),
                    UndoSerial {
                        current_serial: Tid(current),
                        undo_serial: Some(Tid(10)),
                        is_current: true,
                    },
                )]),
            }
            .into()
        };
        assert_eq!(read_answer(&ask, &answer(1, 20), None), Ok(()));
        let found = violation(read_answer(&ask, &answer(2, 20), None));
        assert!(
            found.starts_with("AnswerObjectUndoSerial.result"),
            "{found}"
        );
        let found = violation(read_answer(&ask, &answer(1, u64::MAX), None));
        assert!(
            found.starts_with("AnswerObjectUndoSerial.result"),
            "{found}"
        );
    }

    #[test]
    fn a_storage_final_tid_is_a_real_tid() {
        let ask: Packet = AskFinalTID { ttid: Tid(5) }.into();
        let answer = |tid: Option<Tid>| -> Packet { AnswerFinalTID { tid }.into() };
        assert_eq!(read_answer(&ask, &answer(None), None), Ok(()));
        assert_eq!(read_answer(&ask, &answer(Some(Tid(7))), None), Ok(()));
        assert!(read_answer(&ask, &answer(Some(Tid::MAX)), None).is_err());
        // From the master, Tid::MAX means "ask the storages".
        assert_eq!(master_answer(&ask, &answer(Some(Tid::MAX)), None), Ok(()));
        assert!(master_answer(&ask, &answer(Some(Tid(u64::MAX))), None).is_err());
    }

    #[test]
    fn master_answers_match_the_request_and_move_the_snapshot_forward() {
        let finish: Packet = AskFinishTransaction {
            ttid: Tid(5),
            oids: vec![],
            deleted: vec![],
            checked: vec![],
            pack: None,
        }
        .into();
        let finished = |ttid, tid| -> Packet {
            AnswerTransactionFinished {
                ttid: Tid(ttid),
                tid: Tid(tid),
            }
            .into()
        };
        assert_eq!(
            master_answer(&finish, &finished(5, 11), Some(Tid(10))),
            Ok(())
        );
        for (answer, last) in [
            (finished(6, 11), Some(Tid(10))),
            (finished(5, 10), Some(Tid(10))),
            (finished(5, u64::MAX), None),
        ] {
            let found = violation(master_answer(&finish, &answer, last));
            assert!(found.starts_with("AnswerTransactionFinished."), "{found}");
        }
        let ask: Packet = AskNewOIDs { count: 2 }.into();
        let oids = |n: u64| -> Packet {
            AnswerNewOIDs {
                oids: (0..n).map(Oid).collect(),
            }
            .into()
        };
        assert_eq!(master_answer(&ask, &oids(2), None), Ok(()));
        assert!(master_answer(&ask, &oids(3), None).is_err());
    }

    #[test]
    fn write_and_undo_log_answers_carry_real_tids_and_no_more_than_asked() {
        let store = |conflict| -> Packet { AnswerStoreObject { conflict }.into() };
        assert_eq!(write_answer(&store(Some(Tid::MAX))), Ok(()));
        assert!(write_answer(&store(Some(Tid(u64::MAX)))).is_err());
        let tids = |n: u64| -> Packet {
            AnswerTIDs {
                tids: (1..=n).map(Tid).collect(),
            }
            .into()
        };
        assert_eq!(tids_answer(&tids(3), 3), Ok(()));
        assert!(tids_answer(&tids(4), 3).is_err());
    }
}
