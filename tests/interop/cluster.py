"""Clusters for the interoperability tests: masters, storages and an admin
of either implementation, on free loopback ports, in a fresh directory.

A node's implementation is 'rs' (our `neo` binary, $NEO_BIN) or 'py'
(NEO/py's scripts from the tree $NEOPPOD_SRC, SQLite storages), so that a
cluster can be all ours, all NEO/py's, or mixed. Every wait is bounded;
`stop()` kills every process and removes the directory.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

NEOPPOD_SRC = os.environ.get('NEOPPOD_SRC')
NEO_BIN = os.environ.get('NEO_BIN', 'neo')
# The implementation the ZODB and application tests run against.
IMPL = os.environ.get('NEO_INTEROP_IMPL', 'rs')
HOST = '127.0.0.1'
# Taken once: ZODB's test set-up points tempfile at a directory of its own,
# which it removes while our nodes may still write in it.
TEMP_ROOT = tempfile.gettempdir()

SKIP_REASON = (
    'set NEOPPOD_SRC to a NEO/py source tree to run the interoperability '
    'tests (tests/interop/run does it all: see DEVELOPERS.md)')


def require_neopy(test_class):
    """Skips a test class, saying how to enable it, without NEO/py."""
    if NEOPPOD_SRC and os.path.isfile(
            os.path.join(NEOPPOD_SRC, 'neo', 'client', 'Storage.py')):
        return test_class
    return unittest.skip(SKIP_REASON)(test_class)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Cluster(object):
    """`storages` lists the implementation of each storage node, `masters`
    (if given) of each master node, else there is one master of
    implementation `master`; the admin is of the first master's."""

    def __init__(self, name, master=IMPL, storages=(IMPL, IMPL),
                 partitions=3, replicas=1, masters=None):
        self.name = name
        self.master_impls = list(masters or [master])
        self.master_impl = self.master_impls[0]
        self.storage_impls = list(storages)
        self.partitions = partitions
        self.replicas = replicas
        self.dir = tempfile.mkdtemp(prefix='neo-interop-', dir=TEMP_ROOT)
        self.master_addresses = [
            '%s:%u' % (HOST, free_port()) for _ in self.master_impls]
        # The -m option of every node and client: all the masters.
        self.master = ' '.join(self.master_addresses)
        self.admin = '%s:%u' % (HOST, free_port())
        self.processes = {}

    # -------------------------------------------------------- processes

    def command(self, impl, program):
        if impl == 'py':
            return [sys.executable, os.path.join(NEOPPOD_SRC, 'neo' + program)]
        return [NEO_BIN, program]

    def env(self):
        env = dict(os.environ)
        if NEOPPOD_SRC:
            env['PYTHONPATH'] = NEOPPOD_SRC
        return env

    def spawn(self, label, impl, program, *args):
        """Starts a node; its output goes to <label>.out."""
        argv = self.command(impl, program) + [
            '-c', self.name, '-m', self.master] + list(args)
        with open(os.path.join(self.dir, label + '.out'), 'wb') as out:
            self.processes[label] = subprocess.Popen(
                argv, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

    def start_storage(self, label, impl):
        if impl == 'py':
            database = ['-a', 'SQLite', '-d',
                        os.path.join(self.dir, label + '.sqlite')]
        else:
            database = ['-d', os.path.join(self.dir, label)]
        self.spawn(label, impl, 'storage', '-b', HOST + ':0', *database)

    def kill(self, label):
        process = self.processes.pop(label)
        process.kill()
        process.wait()

    def start(self, timeout=60):
        """Starts every node and waits until the cluster is RUNNING."""
        for i, (impl, address) in enumerate(
                zip(self.master_impls, self.master_addresses)):
            self.spawn(self.master_label(i), impl, 'master', '-b', address,
                       '-p', str(self.partitions), '-r', str(self.replicas),
                       '-A', str(len(self.storage_impls)))
        for i, impl in enumerate(self.storage_impls):
            self.start_storage('storage%u' % i, impl)
        self.spawn('admin', self.master_impl, 'admin', '-b', self.admin)
        try:
            self.wait(lambda: self.ctl('print', 'cluster') == 'RUNNING\n',
                      'cluster RUNNING', timeout)
        except Exception:
            self.stop()
            raise

    def stop(self):
        for label in list(self.processes):
            self.kill(label)
        if not os.environ.get('NEO_INTEROP_KEEP'):
            shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        """The end of every node's output, for failure messages."""
        text = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith('.out'):
                with open(os.path.join(self.dir, name), errors='replace') as f:
                    lines = f.read().splitlines()[-15:]
                text.append('--- %s\n%s' % (name, '\n'.join(lines)))
        return '\n'.join(text)

    # ------------------------------------------------------------ admin

    def ctl(self, *words, impl='rs'):
        """Output of `neo ctl` (or NEO/py's neoctl for impl='py'), None if
        it failed. Ours is the default whatever the cluster: it prints what
        neoctl prints, and it takes `check :`, which neoctl fails on
        (it counts the partitions with the number of replicas)."""
        argv = self.command(impl, 'ctl') + ['-a', self.admin] + list(words)
        result = subprocess.run(argv, env=self.env(), capture_output=True,
                                timeout=30)
        if result.returncode:
            return None
        return result.stdout.decode()

    def wait(self, condition, what, timeout=60):
        deadline = time.time() + timeout
        while not condition():
            for label, process in self.processes.items():
                if process.poll() is not None:
                    raise AssertionError('%s exited (%s) waiting for %s\n%s' % (
                        label, process.returncode, what, self.logs()))
            if time.time() > deadline:
                raise AssertionError('no %s after %s s\n%s' % (
                    what, timeout, self.logs()))
            time.sleep(0.05)

    def master_label(self, index):
        return 'master' if index == 0 else 'master%u' % index

    def primary(self):
        """Index in `master_addresses` of the master the admin names
        primary, None if it names none."""
        nid = (self.ctl('print', 'primary') or '').strip()
        for line in (self.ctl('print', 'node', 'master') or '').splitlines():
            fields = [f.strip() for f in line.split('|')]
            if fields[0] == nid and fields[2] in self.master_addresses:
                return self.master_addresses.index(fields[2])
        return None

    def cells(self):
        """Every cell's state, from `print pt 0 N` (one row per line)."""
        out = self.ctl('print', 'pt', '0', str(self.partitions)) or ''
        return [cell.strip().split(' - ')[1]
                for row in out.splitlines()[1:]
                for cell in row.split('|')[1:] if cell.strip()]

    def wait_up_to_date(self, timeout=60):
        self.wait(lambda: set(self.cells()) == {'UP_TO_DATE'},
                  'partition table all UP_TO_DATE', timeout)

    # ----------------------------------------------------------- client

    def storage(self, **kw):
        """A NEO/py client storage (neo.client.Storage) of this cluster."""
        from neo.client.Storage import Storage
        return Storage(master_nodes=self.master, name=self.name, **kw)


def digest(storage):
    """`neo digest`'s lines and SHA-1, computed through NEO/py's client:
    (transactions, records, sha1)."""
    import hashlib

    def sha1(data):
        return hashlib.sha1(data).hexdigest()
    total = hashlib.sha1()
    transactions = records = 0
    for txn in storage.iterator():
        lines = ['T %s %s %s %s\n' % (
            txn.tid.hex(), sha1(txn.user), sha1(txn.description),
            sha1(txn.extension_bytes))]
        for record in sorted(txn, key=lambda r: r.oid):
            data = 'none' if record.data is None else sha1(record.data)
            lines.append('O %s %s\n' % (record.oid.hex(), data))
            records += 1
        total.update(''.join(lines).encode())
        transactions += 1
    return transactions, records, total.hexdigest()


def neo_digest(cluster):
    """`neo digest` of `cluster` through our client, in digest()'s form."""
    result = subprocess.run(
        [NEO_BIN, 'digest', '-c', cluster.name, '-m', cluster.master],
        capture_output=True, timeout=120)
    if result.returncode:
        raise AssertionError('neo digest failed: %s' % result.stderr.decode())
    # "N transactions, M object records, sha1 HEX"
    words = result.stdout.decode().split()
    return int(words[0]), int(words[2]), words[6]
