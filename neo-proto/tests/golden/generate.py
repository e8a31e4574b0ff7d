#!/usr/bin/env python3
"""Writes golden vectors: the exact bytes NEO/py's own encoder produces.

Usage: NEOPPOD_SRC=/path/to/neoppod python3 generate.py > vectors.txt
       NEOPPOD_SRC=/path/to/neoppod python3 generate.py registry > registry.txt

Needs a NEO/py source tree (see DEVELOPERS.md) and msgpack + six from PyPI;
it imports only NEO/py's protocol module and writes, for each vector, a
comment with the Python call and a line `name msg_id hex`. The Rust test
`golden.rs` builds the same packets with neo-proto and compares bytes both
ways; the values here and there must stay in step (same names).
"""

import hashlib
import os
import sys

sys.path.insert(0, os.environ["NEOPPOD_SRC"])
from neo.lib.protocol import (  # noqa: E402
    CellStates, ClusterStates, ErrorCodes, NodeStates, NodeTypes, Packets,
    INVALID_PARTITION, MAX_TID, ZERO_HASH, ZERO_OID, ZERO_TID)


def p64(n):
    return n.to_bytes(8, "big")


def sha1(data):
    return hashlib.sha1(data).digest()


T1 = p64(0x03F929F556666666)
T2 = p64(0x03F929F556666667)
T3 = p64(0x03F929F5AAAAAAAA)
O1, O2, O_BIG = p64(1), p64(2), p64(0x0123456789ABCDEF)
M1, C1, A1 = -0x0FFFFFFF, -0x1FFFFFFF, -0x2FFFFFFF
S1, S2, S300 = 1, 2, 300
ADDR = (b"127.0.0.1", 20001)
ADDR6 = (b"::1", 10000)
ADMIN_ADDR = (b"127.0.0.1", 9999)
TS, TS2 = 1718000000.25, 1718000000.5
HELLO = b"hello"
ZLIB_X100 = bytes.fromhex("789caba8a03d0000401b2ee1")  # zlib of b"x" * 100
MEDIUM = bytes(i % 256 for i in range(300))
LARGE = bytes(i % 251 for i in range(70000))
UP, OUT, FEED = CellStates.UP_TO_DATE, CellStates.OUT_OF_DATE, CellStates.FEEDING
ROWS = [[(S1, UP), (S2, OUT)], [(S1, FEED), (S2, UP)], [(S2, CellStates.CORRUPTED)]]

VECTORS = []


def vector(name, msg_id, packet, *args):
    VECTORS.append((name, msg_id, packet, args))


for code in ErrorCodes:
    vector("error_" + str(code).lower(), int(code), "Error", int(code), "")
vector("error_oid_does_not_exist_message", 7, "Error",
       int(ErrorCodes.OID_DOES_NOT_EXIST), "0000000000000001")
vector("request_identification_client", 0, "RequestIdentification",
       NodeTypes.CLIENT, None, None, "main", None, {})
vector("request_identification_client_read_only", 0, "RequestIdentification",
       NodeTypes.CLIENT, C1, None, "main", None, {"read_only": True})
vector("request_identification_storage", 0, "RequestIdentification",
       NodeTypes.STORAGE, S1, ADDR, "main", None,
       {"devpath": (b"dc1", b"rack2"), "new_nid": ()})
vector("request_identification_client_to_storage", 0, "RequestIdentification",
       NodeTypes.CLIENT, C1, None, "main", TS, {})
vector("request_identification_master_election", 0, "RequestIdentification",
       NodeTypes.MASTER, M1, ADDR6, "main", TS, {})
vector("request_identification_admin", 0, "RequestIdentification",
       NodeTypes.ADMIN, None, ADMIN_ADDR, "main", None, {"backup": ()})
vector("accept_identification_master", 0, "AcceptIdentification",
       NodeTypes.MASTER, M1, C1)
vector("accept_identification_storage_anonymous", 3, "AcceptIdentification",
       NodeTypes.STORAGE, None, None)
vector("ping", 5, "Ping")
vector("ping_msg_id_128", 128, "Ping")
vector("ping_msg_id_65536", 65536, "Ping")
vector("ping_msg_id_max", 0xFFFFFFFF, "Ping")
vector("pong", 5, "Pong")
vector("close_client", 9, "CloseClient")
vector("ask_primary", 0, "AskPrimary")
vector("answer_primary", 0, "AnswerPrimary", M1)
vector("not_primary_master", 0, "NotPrimaryMaster", 1, [ADDR, ADDR6])
vector("not_primary_master_unknown", 1, "NotPrimaryMaster", None, [])
vector("notify_node_information", 1, "NotifyNodeInformation",
       TS2, [(NodeTypes.STORAGE, ADDR, S1, NodeStates.RUNNING, TS)])
vector("notify_node_information_all_kinds", 2, "NotifyNodeInformation", TS2, [
    (NodeTypes.MASTER, ADDR6, M1, NodeStates.RUNNING, TS),
    (NodeTypes.STORAGE, None, S2, NodeStates.PENDING, None),
    (NodeTypes.CLIENT, None, C1, NodeStates.DOWN, TS),
    (NodeTypes.ADMIN, ADMIN_ADDR, A1, NodeStates.UNKNOWN, None),
])
vector("ask_recovery", 0, "AskRecovery")
vector("answer_recovery", 0, "AnswerRecovery", 3, T1, None)
vector("answer_recovery_empty", 0, "AnswerRecovery", None, None, None)
vector("ask_last_ids", 1, "AskLastIDs")
vector("answer_last_ids", 1, "AnswerLastIDs", T2, O_BIG, T1)
vector("answer_last_ids_empty", 1, "AnswerLastIDs", None, None, MAX_TID)
vector("ask_partition_table", 2, "AskPartitionTable")
vector("answer_partition_table", 2, "AnswerPartitionTable", 7, 1, ROWS)
vector("send_partition_table", 2, "SendPartitionTable",
       1, 0, [[(S1, UP)], [(S1, UP)]])
vector("send_partition_table_none", 2, "SendPartitionTable", None, 0, [])
vector("send_partition_table_40_rows", 3, "SendPartitionTable",
       12, 1, [[(S1 + i % 2, UP), (S1 + (i + 1) % 2, OUT)] for i in range(40)])
vector("notify_partition_changes", 3, "NotifyPartitionChanges", 8, 1, [
    (0, S1, CellStates.DISCARDED), (2, S300, OUT), (1, S2, FEED)])
vector("notify_partition_changes_replicas_only", 4, "NotifyPartitionChanges",
       9, 2, [])
vector("start_operation", 4, "StartOperation", False)
vector("start_operation_backup", 4, "StartOperation", True)
vector("stop_operation", 5, "StopOperation")
vector("ask_unfinished_transactions", 0, "AskUnfinishedTransactions",
       [0, 5, 1000])
vector("answer_unfinished_transactions", 0, "AnswerUnfinishedTransactions",
       T2, [T1, T3])
vector("ask_locked_transactions", 6, "AskLockedTransactions")
vector("answer_locked_transactions", 6, "AnswerLockedTransactions",
       {T1: T2, T3: None})
vector("answer_locked_transactions_20", 6, "AnswerLockedTransactions",
       {p64(0x03F929F500000000 + i): (p64(0x03F929F500000100 + i) if i % 3
                                      else None) for i in range(20)})
vector("ask_final_tid", 7, "AskFinalTID", T1)
vector("answer_final_tid", 7, "AnswerFinalTID", T2)
vector("answer_final_tid_none", 7, "AnswerFinalTID", None)
vector("validate_transaction", 8, "ValidateTransaction", T1, T2)
vector("ask_begin_transaction", 0, "AskBeginTransaction", None)
vector("ask_begin_transaction_tid", 0, "AskBeginTransaction", T2)
vector("answer_begin_transaction", 0, "AnswerBeginTransaction", T1)
vector("failed_vote", 3, "FailedVote", T1, [S1, S2])
vector("ask_finish_transaction", 4, "AskFinishTransaction",
       T1, [O1, O2], [3], [4, 5], None)
vector("ask_finish_transaction_pack", 4, "AskFinishTransaction",
       T1, [], [], [], (None, T1))
vector("ask_finish_transaction_partial_pack", 4, "AskFinishTransaction",
       T1, [], [], [], ([O1, O2], T1))
vector("answer_transaction_finished", 4, "AnswerTransactionFinished", T1, T2)
vector("ask_lock_information", 9, "AskLockInformation", T1, T2, True)
vector("answer_information_locked", 9, "AnswerInformationLocked", T1)
vector("invalidate_objects", 10, "InvalidateObjects", T2, [O1, O_BIG])
vector("invalidate_partitions", 10, "InvalidatePartitions", T2, [0, 7])
vector("notify_unlock_information", 11, "NotifyUnlockInformation", T1)
vector("ask_new_oids", 1, "AskNewOIDs", 100)
vector("answer_new_oids", 1, "AnswerNewOIDs", [p64(i) for i in range(1, 101)])
vector("notify_deadlock", 2, "NotifyDeadlock", T1, O1)
vector("ask_relock_object", 3, "AskRelockObject", T1, O1)
vector("answer_relock_object", 3, "AnswerRelockObject", None)
vector("answer_relock_object_conflict", 3, "AnswerRelockObject",
       (T1, T2, (0, sha1(HELLO), HELLO)))
vector("answer_relock_object_conflict_no_data", 3, "AnswerRelockObject",
       (T1, T2, None))
vector("ask_store_object", 9, "AskStoreObject",
       O1, ZERO_TID, 1, sha1(ZLIB_X100), ZLIB_X100, None, T1)
vector("ask_store_object_undo", 9, "AskStoreObject",
       O2, T1, 0, ZERO_HASH, b"", T2, T3)
vector("ask_store_object_medium", 10, "AskStoreObject",
       O_BIG, T1, 0, sha1(MEDIUM), MEDIUM, None, T3)
vector("ask_store_object_large", 11, "AskStoreObject",
       O_BIG, T2, 0, sha1(LARGE), LARGE, None, T3)
vector("answer_store_object", 9, "AnswerStoreObject", None)
vector("answer_store_object_lockless", 9, "AnswerStoreObject", ZERO_TID)
vector("answer_store_object_conflict", 9, "AnswerStoreObject", T2)
vector("abort_transaction", 12, "AbortTransaction", T1, [])
vector("abort_transaction_nids", 12, "AbortTransaction", T1, [S1, S2])
vector("ask_store_transaction", 13, "AskStoreTransaction",
       T1, b"user", b"desc", b"", [O1, O2], None)
vector("ask_store_transaction_pack", 13, "AskStoreTransaction",
       T1, b"", b"IStorage.pack", b"\x80\x03}q\x00.", [], (None, T1))
vector("answer_store_transaction", 13, "AnswerStoreTransaction")
vector("ask_vote_transaction", 14, "AskVoteTransaction", T1)
vector("answer_vote_transaction", 14, "AnswerVoteTransaction")
vector("ask_object", 7, "AskObject", O1, None, T2)
vector("ask_object_at", 7, "AskObject", O1, T1, None)
vector("answer_object", 7, "AnswerObject",
       O1, T1, None, 0, sha1(HELLO), HELLO, None)
vector("answer_object_no_data", 7, "AnswerObject",
       O1, T2, None, None, ZERO_HASH, b"", None)
vector("answer_object_undo", 7, "AnswerObject",
       O2, T2, T3, 1, sha1(ZLIB_X100), ZLIB_X100, T1)
vector("ask_tids", 15, "AskTIDs", 0, 20, INVALID_PARTITION)
vector("answer_tids", 15, "AnswerTIDs", [T2, T1])
vector("ask_transaction_information", 16, "AskTransactionInformation", T1)
vector("answer_transaction_information", 16, "AnswerTransactionInformation",
       T1, b"user", b"desc", b"\x80\x03}q\x00.", False, [O1, O2])
vector("ask_object_history", 17, "AskObjectHistory", O1, 0, 10)
vector("answer_object_history", 17, "AnswerObjectHistory",
       O1, [(T2, 5), (T1, 70000)])
vector("ask_partition_list", 0, "AskPartitionList", 0, 0, None)
vector("ask_partition_list_nid", 0, "AskPartitionList", 2, 5, S1)
vector("answer_partition_list", 0, "AnswerPartitionList", 7, 1, ROWS)
vector("ask_node_list", 1, "AskNodeList", None)
vector("ask_node_list_storage", 1, "AskNodeList", NodeTypes.STORAGE)
vector("answer_node_list", 1, "AnswerNodeList", [
    (NodeTypes.STORAGE, ADDR, S1, NodeStates.RUNNING, TS),
    (NodeTypes.STORAGE, (b"127.0.0.1", 20002), S2, NodeStates.DOWN, TS2)])
vector("set_node_state", 2, "SetNodeState", S1, NodeStates.DOWN)
vector("add_pending_nodes", 2, "AddPendingNodes", [S2])
vector("tweak_partition_table", 3, "TweakPartitionTable", True, [S1])
vector("answer_tweak_partition_table", 3, "AnswerTweakPartitionTable",
       True, ROWS)
vector("set_num_replicas", 4, "SetNumReplicas", 2)
vector("set_cluster_state", 5, "SetClusterState", ClusterStates.VERIFYING)
vector("repair", 6, "Repair", [S1, S2], False)
vector("notify_repair", 6, "NotifyRepair", True)
for state in ClusterStates:
    vector("notify_cluster_information_" + str(state).lower(), 7,
           "NotifyClusterInformation", state)
vector("ask_cluster_state", 8, "AskClusterState")
vector("answer_cluster_state", 8, "AnswerClusterState", ClusterStates.RUNNING)
vector("answer_cluster_state_none", 8, "AnswerClusterState", None)
vector("ask_object_undo_serial", 18, "AskObjectUndoSerial",
       T3, T2, T1, [O1, O2])
vector("answer_object_undo_serial", 18, "AnswerObjectUndoSerial",
       {O1: (T2, T1, True), O2: (T2, None, False)})
vector("ask_tids_from", 19, "AskTIDsFrom", T1, T3, 100, 3)
vector("answer_tids_from", 19, "AnswerTIDsFrom", [T1, T2])
vector("ask_oids_from", 20, "AskOIDsFrom", 3, 1000, ZERO_OID, T2)
vector("answer_oids_from", 20, "AnswerOIDsFrom", p64(103), [p64(3), O_BIG])
vector("answer_oids_from_done", 20, "AnswerOIDsFrom", None, [])
vector("wait_for_pack", 21, "WaitForPack", T1)
vector("waited_for_pack", 21, "WaitedForPack")
vector("ask_pack_orders", 22, "AskPackOrders", T1)
vector("answer_pack_orders", 22, "AnswerPackOrders", [
    (T1, True, False, None, ZERO_TID),
    (T2, None, True, [O1], T1),
    (T3, False, False, None, T2)])
vector("notify_pack_signed", 23, "NotifyPackSigned", [T1, T2], [T3])
vector("notify_pack_completed", 24, "NotifyPackCompleted", T2)
vector("check_replicas", 25, "CheckReplicas",
       {0: None, 3: S2}, ZERO_TID, None)
vector("check_replicas_range", 25, "CheckReplicas", {7: S1}, T1, T2)
vector("check_partition", 26, "CheckPartition", 3, ("", ADDR), ZERO_TID, T2)
vector("check_partition_upstream", 26, "CheckPartition",
       3, ("upstream", None), T1, T2)
vector("ask_check_tid_range", 27, "AskCheckTIDRange", 3, 40000, ZERO_TID, T2)
vector("answer_check_tid_range", 27, "AnswerCheckTIDRange", 2, sha1(b"1,2"), T2)
vector("ask_check_serial_range", 28, "AskCheckSerialRange",
       3, 40000, ZERO_TID, T2, ZERO_OID)
vector("answer_check_serial_range", 28, "AnswerCheckSerialRange",
       2, sha1(b"1,2"), T2, sha1(b"3,4"), O_BIG)
vector("notify_partition_corrupted", 29, "NotifyPartitionCorrupted", 3, [S1])
vector("notify_ready", 30, "NotifyReady")
vector("ask_last_transaction", 31, "AskLastTransaction")
vector("answer_last_transaction", 31, "AnswerLastTransaction", T2)
vector("ask_check_current_serial", 32, "AskCheckCurrentSerial", T2, O1, T1)
vector("answer_check_current_serial", 32, "AnswerCheckCurrentSerial", None)
vector("answer_check_current_serial_conflict", 32, "AnswerCheckCurrentSerial",
       T2)
vector("notify_transaction_finished", 33, "NotifyTransactionFinished", T1, T2)
vector("replicate", 34, "Replicate", T2, "", {0: ADDR, 1: None})
vector("replicate_upstream", 34, "Replicate", T2, "upstream", {5: ADDR6})
vector("notify_replication_done", 35, "NotifyReplicationDone", 5, T2)
vector("ask_fetch_transactions", 36, "AskFetchTransactions",
       5, 1000, ZERO_TID, T2, [T1], True)
vector("answer_fetch_transactions", 36, "AnswerFetchTransactions",
       T2, [], None)
vector("answer_fetch_transactions_done", 36, "AnswerFetchTransactions",
       None, [T3], T1)
vector("ask_fetch_objects", 37, "AskFetchObjects",
       5, 1000, ZERO_TID, T2, ZERO_OID, {T1: [O1, O2]})
vector("answer_fetch_objects", 37, "AnswerFetchObjects", T2, O2, {})
vector("answer_fetch_objects_done", 37, "AnswerFetchObjects",
       None, None, {T3: [O1]})
vector("add_transaction", 36, "AddTransaction",
       T2, b"user", b"desc", b"", False, T1, [O1], None)
vector("add_transaction_pack", 36, "AddTransaction",
       T2, b"", b"IStorage.pack", b"", True, T1, [], (None, False, None, T1))
vector("add_transaction_partial_pack", 36, "AddTransaction",
       T2, b"", b"", b"", False, T1, [], (True, True, [O1, O2], T1))
vector("add_object", 37, "AddObject", O1, T2, 0, sha1(HELLO), HELLO, None)
vector("add_object_deleted", 37, "AddObject",
       O1, T3, 0, ZERO_HASH, b"", None)
vector("add_object_undo", 37, "AddObject", O1, T3, 0, sha1(HELLO), HELLO, T2)
vector("truncate", 38, "Truncate", T1)
vector("flush_log", 39, "FlushLog")
vector("ask_monitor_information", 40, "AskMonitorInformation")
vector("answer_monitor_information", 40, "AnswerMonitorInformation",
       [None, "backup1"], ["backup2"], "summary text")
vector("notify_monitor_information", 2, "NotifyMonitorInformation", {
    "cluster_state": ClusterStates.RUNNING,
    "down": 0,
    "pt_summary": {UP: 2}})
vector("notify_monitor_information_values", 3, "NotifyMonitorInformation", {
    "cluster_state": None,
    "pt_summary": {OUT: 1, FEED: 2, CellStates.CORRUPTED: 3,
                   CellStates.DISCARDED: 4},
    "error": ErrorCodes.DENIED,
    "ints": [-1, -100, -1000, -100000, -10 ** 12, 2 ** 63, 255, 65535],
    "float": 0.5,
    "text": "a str",
    "flags": [True, False]})
vector("notify_upstream_admin", 41, "NotifyUpstreamAdmin", ADMIN_ADDR)


def registry():
    """Every packet type: code, name, and what answers it."""
    print("# NEO/py's packet registry: code name answer_code "
          "(- for notifications and answers).")
    types = sorted((cls._code, name, cls) for name, cls in
                   vars(type(Packets)).items() if isinstance(cls, type))
    for code, name, cls in types:
        answer = cls._answer
        print("0x%04x %s %s" % (code, name,
              "-" if answer is None or code & 0x8000 else "0x%04x" % answer._code))


def main():
    if sys.argv[1:] == ["registry"]:
        return registry()
    names = set()
    print("# Golden vectors: bytes written by NEO/py's encoder "
          "(neo.lib.protocol, protocol 5).")
    print("# Generated by generate.py; each vector: "
          "a comment with the call, then `name msg_id hex`.")
    for name, msg_id, packet_name, args in VECTORS:
        assert name not in names, name
        names.add(name)
        packet = getattr(Packets, packet_name)(*args)
        packet.setId(msg_id)
        call = "%s(%s)" % (packet_name, ", ".join(map(repr, args)))
        if len(call) > 300:
            call = call[:300] + "..."
        print("# " + call)
        print("%s %d %s" % (name, msg_id, packet.encode().hex()))


main()
