"""Our nodes and NEO/py's in one cluster, each client on the other's
cluster, each admin tool on the other's admin node.

Data is compared through a digest of every transaction and revision
(`neo digest`, and the same computed through NEO/py's client): two
clients reading the same cluster, or a cluster before and after its
storages were replaced, must agree to the byte.
"""
import os
import subprocess
import time
import unittest

import transaction
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping
from ZODB.DB import DB

from cluster import NEO_BIN, Cluster, digest, neo_digest, require_neopy


def write_application_data(cluster):
    """A BTree of 2,000 keys and a few revisions of a document, through
    NEO/py's client."""
    db = DB(cluster.storage())
    tm = transaction.TransactionManager()
    root = db.open(tm).root()
    root['tree'] = tree = OOBTree()
    for i in range(2000):
        tree[i] = 'value %u' % i
        if i % 500 == 499:
            tm.commit()
    root['doc'] = doc = PersistentMapping()
    for i in range(5):
        doc['v'] = i
        tm.get().note('revision %u' % i)
        tm.commit()
    db.close()


def both_digests(cluster):
    storage = cluster.storage()
    try:
        theirs = digest(storage)
    finally:
        storage.close()
    return theirs, neo_digest(cluster)


@require_neopy
class MixedClusters(unittest.TestCase):

    def tearDown(self):
        transaction.manager.__init__()
        self.cluster.stop()

    def replace_storage(self, newcomer):
        """Writes data on the cluster's one storage, adds a storage of
        implementation `newcomer` that replicates every partition, kills
        the first one: every read then comes from the newcomer."""
        cluster = self.cluster
        cluster.start()
        write_application_data(cluster)
        before, ours = both_digests(cluster)
        self.assertEqual(before, ours)
        self.assertGreater(before[1], 2000 // 100)
        cluster.start_storage('newcomer', newcomer)
        cluster.wait(lambda: 'PENDING' in (
            cluster.ctl('print', 'node', 'storage') or ''),
            'the new storage PENDING')
        self.assertIsNotNone(cluster.ctl('add', 'all'))
        self.assertIsNotNone(cluster.ctl('tweak'))
        cluster.wait(lambda: cluster.cells().count('UP_TO_DATE') ==
                     2 * cluster.partitions, 'replicas UP_TO_DATE')
        cluster.kill('storage0')
        cluster.wait(lambda: cluster.ctl('print', 'cluster') == 'RUNNING\n',
                     'cluster RUNNING without the first storage')
        after, ours = both_digests(cluster)
        self.assertEqual(after, before)
        self.assertEqual(ours, before)
        self.assertNotIn('CORRUPTED', cluster.cells())

    def test_a_neopy_storage_replicates_from_ours(self):
        self.cluster = Cluster('mixed%u' % os.getpid(), master='rs',
                               storages=['rs'])
        self.replace_storage('py')

    def test_our_storage_replicates_from_neopy(self):
        self.cluster = Cluster('mixed%u' % os.getpid(), master='py',
                               storages=['py'])
        self.replace_storage('rs')

    def test_our_client_on_a_neopy_cluster(self):
        self.cluster = cluster = Cluster('client%u' % os.getpid(),
                                         master='py', storages=['py', 'py'])
        cluster.start()
        result = subprocess.run(
            [NEO_BIN, 'demo', '-c', cluster.name, '-m', cluster.master,
             '--transactions', '50'], capture_output=True, timeout=300)
        out = result.stdout.decode()
        self.assertEqual(result.returncode, 0, out + result.stderr.decode())
        self.assertIn('loaded all 500 objects back, identical', out)
        self.assertIn('conflicted', out)
        self.assertIn('the counter reads 11', out)
        write_application_data(cluster)
        theirs, ours = both_digests(cluster)
        self.assertEqual(theirs, ours)
        self.assertGreater(theirs[0], 50)

    def test_masters_of_both_take_over_from_each_other(self):
        for masters in (['rs', 'py'], ['py', 'rs']):
            self.cluster = cluster = Cluster(
                'masters%u' % os.getpid(), masters=masters,
                storages=['rs', 'py'])
            cluster.start()
            write_application_data(cluster)
            before, ours = both_digests(cluster)
            self.assertEqual(before, ours)
            old = cluster.primary()
            self.assertIsNotNone(old)
            cluster.kill(cluster.master_label(old))
            cluster.wait(lambda: cluster.primary() not in (None, old),
                         'the other master primary (%s)' % masters)
            after, ours = both_digests(cluster)
            self.assertEqual((after, ours), (before, before), masters)
            # It serves commits too.
            write_application_data(cluster)
            after, ours = both_digests(cluster)
            self.assertEqual(after, ours)
            self.assertGreater(after[0], before[0])
            cluster.stop()

    def test_each_admin_tool_against_the_other_admin(self):
        self.cluster = cluster = Cluster('admin%u' % os.getpid())
        cluster.start()
        write_application_data(cluster)
        for master in ('rs', 'py'):
            if master == 'py':
                cluster.stop()
                self.cluster = cluster = Cluster(
                    'admin%u' % os.getpid(), master='py', storages=['py', 'py'])
                cluster.start()
                write_application_data(cluster)
            for words in (['print', 'cluster'], ['print', 'node'],
                          ['print', 'node', 'storage'], ['print', 'pt'],
                          ['print', 'pt', '0', '2'], ['print', 'ids'],
                          ['print', 'primary'], ['print', 'summary'],
                          ['tweak', '-n'], ['add', 'all'], ['check']):
                for attempt in range(3):
                    ours = cluster.ctl(*words, impl='rs')
                    theirs = cluster.ctl(*words, impl='py')
                    if ours == theirs:
                        break
                    time.sleep(0.5)
                self.assertEqual(ours, theirs, (master, words))
                self.assertIsNotNone(ours, (master, words))


if __name__ == '__main__':
    unittest.main()
