"""neo-rs and NEO/py side by side, on this machine, with the same load.

For each implementation ('rs', and 'py' when $NEOPPOD_SRC is set), for
each of --runs runs: a fresh cluster of 1 master, 2 storages (replicas 1,
12 partitions) and an admin, then
- `neo bench --json` (our Rust client) with its workloads, and
- the same commit and cold-load pattern through NEO/py's Python client
  and ZODB (when NEO/py is available), what a ZODB application sees.
Prints, per figure, min/median/max over the runs for each cluster and the
ratio of the medians; --markdown prints the table BENCHMARKS.md records.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'interop'))
from cluster import NEO_BIN, NEOPPOD_SRC, Cluster  # noqa: E402

# (workload, field, label, higher is better)
FIGURES = [
    ('rtt', 'p50_us', 'loopback round trip p50 (µs)', False),
    ('commit', 'ops_per_s', 'commit, 1 client (tx/s)', True),
    ('commit', 'p50_us', 'commit p50 (µs)', False),
    ('cold', 'ops_per_s', 'cold load, 1 client (loads/s)', True),
    ('cold', 'p50_us', 'cold load p50 (µs)', False),
    ('hot', 'ops_per_s', 'hot load (loads/s)', True),
    ('clients-commit', 'ops_per_s', 'commit, N clients (tx/s)', True),
    ('clients-load', 'ops_per_s', 'cold load, N clients (loads/s)', True),
    ('conflicts', 'ops_per_s', 'conflict mix, N clients (tx/s)', True),
    ('zodb-commit', 'ops_per_s', 'ZODB commit via NEO/py client (tx/s)', True),
    ('zodb-load', 'ops_per_s', 'ZODB cold load via NEO/py client (loads/s)', True),
    ('memory', 'anon_kib', 'server anonymous memory, sum (KiB)', False),
]


def zodb_bench(cluster, transactions, objects):
    """Commits and cold loads through NEO/py's client and ZODB."""
    import transaction
    from persistent.mapping import PersistentMapping
    from ZODB.DB import DB
    db = DB(cluster.storage())
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    root = conn.root()
    oids = []
    started = time.perf_counter()
    for t in range(transactions):
        for k in range(objects):
            obj = PersistentMapping(value='x' * 100)
            root['o%u-%u' % (t, k)] = obj
            conn.add(obj)
            oids.append(obj._p_oid)
        tm.commit()
    commit_seconds = time.perf_counter() - started
    db.close()
    db = DB(cluster.storage())
    conn = db.open(transaction.TransactionManager())
    started = time.perf_counter()
    for oid in oids:
        conn.get(oid)._p_activate()
    load_seconds = time.perf_counter() - started
    db.close()
    return {
        'zodb-commit': {'ops_per_s': transactions / commit_seconds},
        'zodb-load': {'ops_per_s': len(oids) / load_seconds},
    }


def one_run(impl, args):
    cluster = Cluster('bench%u' % os.getpid(), master=impl,
                      storages=[impl, impl], partitions=12, replicas=1)
    cluster.start()
    try:
        command = [NEO_BIN, 'bench', '--json', '-c', cluster.name,
                   '-m', cluster.master, '-t', str(args.transactions),
                   '-k', str(args.objects), '-n', str(args.clients)]
        servers = [p.pid for label, p in cluster.processes.items()
                   if label.startswith(('master', 'storage'))]
        for pid in servers:
            command += ['--pid', str(pid)]
        result = subprocess.run(command, capture_output=True, timeout=1800)
        if result.returncode:
            raise SystemExit('neo bench failed on %s: %s' % (
                impl, result.stderr.decode()[-2000:]))
        report = json.loads(result.stdout)
        figures = {r['workload']: r for r in report['results']}
        figures['memory'] = {
            'anon_kib': sum(m['anon_kib'] for m in report['memory'])}
        if NEOPPOD_SRC:
            figures.update(zodb_bench(cluster, args.transactions, args.objects))
        return figures
    finally:
        cluster.stop()


def spread(values):
    if not values:
        return None
    return min(values), statistics.median(values), max(values)


def fmt(triple):
    if triple is None:
        return '—'
    return ' / '.join('%.1f' % v if v < 100 else '%.0f' % v for v in triple)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--transactions', type=int, default=200)
    parser.add_argument('--objects', type=int, default=10)
    parser.add_argument('--clients', type=int, default=8)
    parser.add_argument('--markdown', action='store_true')
    args = parser.parse_args()
    impls = ['rs'] + (['py'] if NEOPPOD_SRC else [])
    runs = {impl: [] for impl in impls}
    for run in range(args.runs):
        for impl in impls:
            print('run %u/%u on %s...' % (run + 1, args.runs, impl),
                  file=sys.stderr, flush=True)
            runs[impl].append(one_run(impl, args))
    rows = []
    for workload, field, label, higher in FIGURES:
        cells = {}
        for impl in impls:
            values = [r[workload][field] for r in runs[impl]
                      if workload in r and field in r[workload]]
            cells[impl] = spread(values)
        ratio = '—'
        if cells.get('rs') and cells.get('py'):
            ours, theirs = cells['rs'][1], cells['py'][1]
            if ours and theirs:
                ratio = '%.1f×' % (ours / theirs if higher else theirs / ours)
        rows.append((label, fmt(cells.get('rs')), fmt(cells.get('py')), ratio))
    if args.markdown:
        print('| figure | neo-rs (min / median / max) | NEO/py (min / median / max) | neo-rs advantage |')
        print('|---|---|---|---|')
        for row in rows:
            print('| %s | %s | %s | %s |' % row)
    else:
        width = max(len(r[0]) for r in rows)
        print('%-*s  %-28s  %-28s  %s' % (width, 'figure', 'neo-rs', 'NEO/py', 'advantage'))
        for row in rows:
            print('%-*s  %-28s  %-28s  %s' % ((width,) + row))
    print('\n%u runs; %u transactions × %u objects × 100 bytes; %u clients; '
          'raw JSON: %s' % (args.runs, args.transactions, args.objects,
                            args.clients, json.dumps(runs)), file=sys.stderr)


if __name__ == '__main__':
    main()
