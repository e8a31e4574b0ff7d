"""ZODB's own storage conformance suites, run through NEO/py's client
(`neo.client.Storage`) against a cluster of $NEO_INTEROP_IMPL ('rs': ours,
'py': NEO/py's) of 1 master, 2 storages (replicas 1) and an admin, a fresh
one for each test.

The suites are combined as NEO/py combines them for its own ZODB tests
(neo/tests/zodb), with the same three adjustments of the client: pack()
waits until the storages applied it, NEO's pack transactions are hidden
from the undo log, and pack() takes no `gc` argument (NEO never garbage
collects). The tests NEO/py expects to fail fail for the same reasons on
any NEO cluster: packing keeps an unreachable object's last revision and
the undo log's transaction metadata. MVCCTests is not in NEO/py's
selection; it is ours.
"""
import os
import unittest

import transaction
import ZODB.tests.util
from ZODB.DB import DB
from ZODB.tests import testZODB
from ZODB.tests.BasicStorage import BasicStorage
from ZODB.tests.ConflictResolution import (
    ConflictResolvingStorage, ConflictResolvingTransUndoStorage)
from ZODB.tests.HistoryStorage import HistoryStorage
from ZODB.tests.IteratorStorage import (
    ExtendedIteratorStorage, IteratorStorage)
from ZODB.tests.MTStorage import MTStorage
from ZODB.tests.PackableStorage import (
    PackableStorageWithOptionalGC, PackableUndoStorage)
from ZODB.tests.PersistentStorage import PersistentStorage
from ZODB.tests.ReadOnlyStorage import ReadOnlyStorage
from ZODB.tests.RevisionStorage import RevisionStorage
from ZODB.tests.StorageTestBase import StorageTestBase
from ZODB.tests.Synchronization import SynchronizedStorage
from ZODB.tests.TransactionalUndoStorage import TransactionalUndoStorage
from ZODB.tests.testMVCCMappingStorage import MVCCTests as ZODBMVCCTests

from cluster import Cluster, require_neopy

# Pack transactions carry this description (NEO/py's client sets it).
PACK_DESCRIPTION = b'IStorage.pack'


class OnNeoCluster(unittest.TestCase):
    """First base of every suite: a fresh cluster per test, and
    `self._storage` a NEO client of it."""

    def setUp(self):
        super().setUp()
        self.start_cluster()

    def start_cluster(self):
        self.cluster = Cluster('zodb%u' % os.getpid())
        self.cluster.start()
        self.opened = []
        self.open()

    def client(self, **kw):
        storage = self.cluster.storage(**kw)
        app = storage.app
        app.wait_for_pack = True
        undo_log = app.undoLog

        def undo_log_without_packs(*args, **kw):
            return [t for t in undo_log(*args, **kw)
                    if t['description'] != PACK_DESCRIPTION]
        app.undoLog = undo_log_without_packs
        pack = storage.pack

        def pack_ignoring_gc(t, referencesf=None, gc=None):
            return pack(t, referencesf)
        storage.pack = pack_ignoring_gc
        self.opened.append(storage)
        return storage

    def open(self, **kw):
        self._storage = self.client(**kw)

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for storage in self.opened:
                try:
                    storage.close()
                except Exception:
                    pass
            transaction.manager.__init__()
            self.cluster.stop()


@require_neopy
class BasicTests(OnNeoCluster, StorageTestBase, BasicStorage):
    # lastTransaction() may still return the previous TID while
    # tpc_finish runs, which ZODB allows since 5.6 (ZODB PR #316).
    test_tid_ordering_w_commit = unittest.skip('ZODB PR #316')(
        BasicStorage.test_tid_ordering_w_commit)


@require_neopy
class ConflictTests(OnNeoCluster, StorageTestBase, ConflictResolvingStorage):
    pass


@require_neopy
class HistoryTests(OnNeoCluster, StorageTestBase, HistoryStorage):
    pass


@require_neopy
class IteratorTests(OnNeoCluster, StorageTestBase, IteratorStorage,
                    ExtendedIteratorStorage):
    pass


@require_neopy
class MTTests(OnNeoCluster, StorageTestBase, MTStorage):
    pass


@require_neopy
class PackableTests(OnNeoCluster, StorageTestBase,
                    PackableStorageWithOptionalGC, PackableUndoStorage):
    # No garbage collection; pack keeps transaction metadata.
    testPackAllRevisions = unittest.expectedFailure(
        PackableStorageWithOptionalGC.testPackAllRevisions)
    testPackUndoLog = unittest.expectedFailure(
        PackableUndoStorage.testPackUndoLog)


@require_neopy
class PersistentTests(OnNeoCluster, StorageTestBase, PersistentStorage):
    pass


@require_neopy
class ReadOnlyTests(OnNeoCluster, StorageTestBase, ReadOnlyStorage):
    pass


@require_neopy
class RevisionTests(OnNeoCluster, StorageTestBase, RevisionStorage):
    pass


@require_neopy
class SynchronizationTests(OnNeoCluster, StorageTestBase,
                           SynchronizedStorage):
    pass


@require_neopy
class UndoTests(OnNeoCluster, StorageTestBase, TransactionalUndoStorage,
                ConflictResolvingTransUndoStorage):
    # Pack keeps the undone transactions' metadata.
    testTransactionalUndoAfterPack = unittest.expectedFailure(
        TransactionalUndoStorage.testTransactionalUndoAfterPack)


@require_neopy
class SerialOnlyUndoTests(UndoTests):
    """The same, with undo storing only the serial of the data to restore
    (AskStoreObject with data_serial and no data), the other way a NEO
    client may undo."""

    def client(self, **kw):
        storage = super().client(**kw)
        app = storage.app
        store = app._store

        def store_serial_only(txn_context, oid, serial, data,
                              data_serial=None):
            return store(txn_context, oid, serial,
                         None if data_serial else data, data_serial)
        app._store = store_serial_only
        return storage


@require_neopy
class ZODBTests(OnNeoCluster, testZODB.ZODBTests):

    def setUp(self):
        # testZODB.ZODBTests.setUp opens a FileStorage: not wanted.
        ZODB.tests.util.TestCase.setUp(self)
        self.start_cluster()

    def open(self, **kw):
        self._db = DB(self.client(**kw))


@require_neopy
class MVCCTests(OnNeoCluster, StorageTestBase, ZODBMVCCTests):
    pass


if __name__ == '__main__':
    unittest.main()
