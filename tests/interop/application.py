"""An application's workload through ZODB and NEO/py's client, against a
cluster of $NEO_INTEROP_IMPL ('rs': ours, 'py': NEO/py's): BTrees with
thousands of keys, conflict resolution, undo, history, iteration, pack,
and two clients seeing each other's commits.
"""
import os
import unittest

import transaction
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from ZODB.DB import DB
from ZODB.POSException import POSKeyError

from cluster import Cluster, require_neopy

KEYS = 5000


@require_neopy
class Application(unittest.TestCase):

    def setUp(self):
        self.cluster = Cluster('app%u' % os.getpid())
        self.cluster.start()
        self.dbs = []

    def tearDown(self):
        for db in self.dbs:
            db.close()
        transaction.manager.__init__()
        self.cluster.stop()

    def db(self):
        """A new client (its own NEO connection and cache)."""
        db = DB(self.cluster.storage())
        self.dbs.append(db)
        return db

    def test_btrees_with_thousands_of_keys_read_by_another_client(self):
        tm = transaction.TransactionManager()
        root = self.db().open(tm).root()
        root['tree'] = tree = OOBTree()
        for i in range(KEYS):
            tree['key%05d' % i] = i * i
            if i % 1000 == 999:
                tm.commit()
        tm.commit()
        other = transaction.TransactionManager()
        tree = self.db().open(other).root()['tree']
        self.assertEqual(len(tree), KEYS)
        self.assertEqual(list(tree.keys())[:3],
                         ['key00000', 'key00001', 'key00002'])
        self.assertEqual(sum(tree.values()),
                         sum(i * i for i in range(KEYS)))
        self.assertEqual(list(tree.keys(min='key04998')),
                         ['key04998', 'key04999'])

    def test_two_clients_see_each_others_commits(self):
        tm_a, tm_b = transaction.TransactionManager(), transaction.TransactionManager()
        root_a = self.db().open(tm_a).root()
        root_a['counter'] = PersistentMapping(value=0)
        tm_a.commit()
        root_b = self.db().open(tm_b).root()
        for i in range(1, 21):
            writer, reader = (root_a, root_b) if i % 2 else (root_b, root_a)
            writer_tm = tm_a if writer is root_a else tm_b
            reader_tm = tm_b if writer is root_a else tm_a
            writer['counter']['value'] = i
            writer['counter']._p_changed = True
            writer_tm.commit()
            # A new transaction of the reader applies the invalidation.
            reader_tm.begin()
            self.assertEqual(reader['counter']['value'], i)

    def test_conflicting_lengths_are_resolved(self):
        tm_a, tm_b = transaction.TransactionManager(), transaction.TransactionManager()
        root_a = self.db().open(tm_a).root()
        root_a['length'] = Length()
        tm_a.commit()
        root_b = self.db().open(tm_b).root()
        tm_b.begin()
        for _ in range(10):
            root_a['length'].change(1)
            root_b['length'].change(10)
            tm_a.commit()
            # Based on an older revision: BTrees.Length resolves it.
            tm_b.commit()
        tm_a.begin()
        self.assertEqual(root_a['length'](), 110)

    def test_undo_history_iteration_and_pack(self):
        db = self.db()
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        root = conn.root()
        root['doc'] = doc = PersistentMapping(text='v0')
        tm.get().note('create')
        tm.commit()
        for i in range(1, 6):
            doc['text'] = 'v%u' % i
            tm.get().note('edit %u' % i)
            tm.commit()
        # History: newest first, one entry per revision.
        history = db.history(doc._p_oid, size=10)
        self.assertEqual(len(history), 6)
        self.assertEqual(history[0]['description'], 'edit 5')
        # Undo the last edit.
        last = db.undoLog(0, 1)[0]
        self.assertEqual(last['description'], 'edit 5')
        db.undo(last['id'], tm.get())
        tm.commit()
        reader = transaction.TransactionManager()
        self.assertEqual(self.db().open(reader).root()['doc']['text'], 'v4')
        # Iteration: every transaction, in TID order, with its records.
        storage = db.storage
        txns = list(storage.iterator())
        tids = [t.tid for t in txns]
        self.assertEqual(tids, sorted(tids))
        self.assertEqual(len(txns), 8)  # root, create, 5 edits, undo
        self.assertIn(doc._p_oid, [r.oid for t in txns for r in t])
        # Pack: old revisions of the document go, the current one stays.
        old_serial = history[-1]['tid']
        storage.app.wait_for_pack = True
        db.pack()
        tm.begin()
        with self.assertRaises(POSKeyError):
            storage.loadSerial(doc._p_oid, old_serial)
        other = transaction.TransactionManager()
        self.assertEqual(self.db().open(other).root()['doc']['text'], 'v4')

    def test_zconfig_section_and_neo_uri_as_in_the_readme(self):
        # Zope's zope.conf wraps the same NEOStorage section in <zodb_db>.
        import ZODB.config
        from neo.client.zodburi import resolve_uri
        config = '''
            %%import neo.client
            <zodb>
              <NEOStorage>
                master_nodes %s
                name %s
              </NEOStorage>
            </zodb>
        ''' % (self.cluster.master, self.cluster.name)
        db = ZODB.config.databaseFromString(config)
        self.dbs.append(db)
        with db.transaction() as conn:
            conn.root()['greeting'] = 'hello'
        factory, _ = resolve_uri('neo://%s@%s' % (
            self.cluster.name, ','.join(self.cluster.master_addresses)))
        db = DB(factory())
        self.dbs.append(db)
        with db.transaction() as conn:
            self.assertEqual(conn.root()['greeting'], 'hello')


if __name__ == '__main__':
    unittest.main()
