#!/usr/bin/env python3
"""Generate partition table test cases by running NEO/py's master PartitionTable.

Usage:
    NEOPPOD_SRC=/path/to/neoppod python generate.py > cases.txt

NEO/py (GPL) is only imported from $NEOPPOD_SRC; none of its code is copied
here.  Each scenario below is written in the same line syntax as the output
(see cases.txt header); the interpreter runs every op against NEO/py and
prints the op followed by its "=>" result lines.

Ops and the NEO/py calls they map to (pt = neo.master.pt.PartitionTable):
  make <nid>...          pt.make(nodes); ptid becomes 1 (set inside tweak)
  add_nodes <nid>...     pt.addNodeList(nodes); no ptid change
  tweak [<nid>...]       pt.tweak(nodes)   (nodes = drop/ignore list)
  outdate [<nid>]        pt.outdate(node or None)
  updatable <nid> <offset>...   pt.updatable(nid, offsets); no ptid change
  set_up_to_date <nid> <offset> pt.setUpToDate(node, offset)
  drop_nodes <nid>...    pt.dropNodeList(nodes)
  set_replicas <n>       pt.setReplicas(n) + ptid += 1 (always, as
                         app.broadcastPartitionChanges((), n) does)
For tweak/outdate/set_up_to_date/drop_nodes the ptid is incremented iff the
returned change list is non-empty (app.broadcastPartitionChanges).  If the
call raises, no ptid change, and the table is printed as NEO/py left it.

Generator-only macro (expanded into primitive ops in the output):
  replicate_all          for every OUT_OF_DATE cell of a RUNNING node:
                         'updatable <nid> <its O offsets>' per node (like the
                         master on AskUnfinishedTransactions), then
                         'set_up_to_date <nid> <offset>' per cell, by offset
                         then nid (like NotifyReplicationDone).
"""

import logging as _std_logging
import os
import sys

src = os.environ.get('NEOPPOD_SRC')
if not src:
    sys.exit('NEOPPOD_SRC must point to a NEO/py source tree')
sys.dont_write_bytecode = True  # leave the NEO/py tree untouched
sys.path.insert(0, src)

from neo.lib import logging as neo_logging          # noqa: E402
from neo.lib.node import Node, NodeManager          # noqa: E402
from neo.lib.protocol import CellStates, NodeStates  # noqa: E402
from neo.master.pt import PartitionTable            # noqa: E402


# ---------------------------------------------------------------------------
# Capture NEO/py warnings (e.g. "Can't maximize resiliency") as comments.

class _Capture(_std_logging.Handler):
    def __init__(self):
        _std_logging.Handler.__init__(self, _std_logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

# NEOLogger forwards records to the root logger: replace its stderr handler.
_capture = _Capture()
_std_logging.getLogger().handlers[:] = [_capture]


# ---------------------------------------------------------------------------
# Scenarios.

def make_cases():
    cases = []
    for np, nr in ((1, 0), (5, 1), (12, 0), (12, 1), (12, 2), (10, 3)):
        for n in range(1, 6):
            nodes = ' '.join(str(i) for i in range(1, n + 1))
            cases.append(('make_np%d_nr%d_n%d' % (np, nr, n),
                'new %d %d\n' % (np, nr)
                + ''.join('node %d RUNNING\n' % i for i in range(1, n + 1))
                + 'make %s\n' % nodes))
    # make_np5_nr1_n4 is the example of test_16_make / cluster.md:
    # UU..|..UU|UU..|..UU|UU..
    return cases

NODES4 = """
node 1 RUNNING
node 2 RUNNING
node 3 RUNNING
node 4 RUNNING
"""

NODES3 = """
node 1 RUNNING
node 2 RUNNING
node 3 RUNNING
"""

SCENARIOS = make_cases() + [

('make_np100_nr1_n7', """
new 100 1
node 1 RUNNING
node 2 RUNNING
node 3 RUNNING
node 4 RUNNING
node 5 RUNNING
node 6 RUNNING
node 7 RUNNING
make 1 2 3 4 5 6 7
"""),

# nr+1 > number of nodes: every node gets every partition.
('make_more_replicas_than_nodes', """
new 4 3
node 1 RUNNING
node 2 RUNNING
make 1 2
tweak
"""),

# More nodes than cells: make() removes nodes without cells from the
# balancing set, so the following tweak does not use them.
('make_more_nodes_than_cells', """
new 2 0
""" + NODES4 + """
make 1 2 3 4
tweak
add_nodes 3 4
tweak
"""),

# make() asserts that all nodes are RUNNING.
('make_pending_node_error', """
new 4 0
node 1 RUNNING
node 2 PENDING
make 1 2
"""),

('tweak_idempotent', """
new 12 1
""" + NODES3 + """
make 1 2 3
tweak
tweak
"""),

# 3 nodes np 5 nr 1, then a 4th node is added: the result after replication
# differs from a fresh make with 4 nodes (tweak minimizes replication).
('add_4th_node_np5_nr1', """
new 5 1
""" + NODES3 + """
make 1 2 3
node 4 RUNNING
add_nodes 4
tweak
replicate_all
tweak
"""),

('add_node_then_replicate', """
new 12 1
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 PENDING
add_nodes 3
node 3 RUNNING
tweak
replicate_all
tweak
"""),

# Same, with nr 0: each moved partition becomes F (old) + O (new).
('add_node_nr0_then_replicate', """
new 6 0
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 RUNNING
add_nodes 3
tweak
replicate_all
"""),

# add_nodes with a node already in the table: nothing added.
('add_nodes_already_known', """
new 4 0
node 1 RUNNING
node 2 RUNNING
make 1 2
add_nodes 1 2
tweak
"""),

# tweak with node 3 in the drop (ignore) list: data is rebalanced on 1 and 2
# but node 3's cells are left untouched (drop code is disabled in NEO/py);
# after replication, drop_nodes removes node 3.
('tweak_exclude_then_drop', """
new 12 1
""" + NODES3 + """
make 1 2 3
tweak 3
replicate_all
tweak 3
drop_nodes 3
tweak
"""),

# Same as in test_17_tweak (np 7 nr 0).
('tweak_exclude_single_source', """
new 7 0
node 1 RUNNING
make 1
node 2 RUNNING
node 3 RUNNING
add_nodes 2 3
tweak 1
replicate_all
drop_nodes 1
"""),

# Ignoring every node in the balancing set.
('tweak_ignore_all_error', """
new 4 1
node 1 RUNNING
node 2 RUNNING
make 1 2
tweak 1 2
"""),

('node_down_outdate_nr1', """
new 6 1
""" + NODES3 + """
make 1 2 3
node 2 DOWN
outdate 2
node 2 RUNNING
replicate_all
"""),

# nr 0: the lost node keeps UP_TO_DATE cells it was the last to serve.
('node_down_outdate_nr0', """
new 6 0
""" + NODES3 + """
make 1 2 3
node 2 DOWN
outdate 2
outdate
"""),

# Two nodes down at once with nr 1: lost node argument only protects the
# rows where it is the last readable (non-running) cell.
('two_nodes_down_outdate_lost', """
new 8 1
""" + NODES4 + """
make 1 2 3 4
node 3 DOWN
outdate 3
node 4 DOWN
outdate 4
"""),

# Cluster restart (recovery): outdate() without lost node.
('outdate_after_recovery', """
new 12 1
""" + NODES4 + """
make 1 2 3 4
node 3 DOWN
outdate
node 4 DOWN
outdate
"""),

('outdate_after_recovery_partial', """
new 12 2
""" + NODES4 + """
make 1 2 3 4
node 2 DOWN
node 4 DOWN
outdate
"""),

# Feeding cells whose node goes down are discarded, not outdated.
('feeding_node_down', """
new 12 1
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 RUNNING
add_nodes 3
tweak
node 1 DOWN
outdate 1
"""),

# Row F F O O with nr 1: one setUpToDate drops both feeding cells.
('set_up_to_date_FFOO_nr1', """
new 2 1
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 RUNNING
node 4 RUNNING
add_nodes 3 4
tweak
updatable 3 1
updatable 4 1
set_up_to_date 3 1
set_up_to_date 4 1
tweak
"""),

# setUpToDate edge cases: not updatable yet (ignored), not assigned (raises),
# already up to date (ignored).
('set_up_to_date_edge_cases', """
new 4 0
node 1 RUNNING
node 2 RUNNING
make 1
add_nodes 2
tweak
set_up_to_date 2 1
set_up_to_date 2 0
set_up_to_date 1 0
updatable 2 1 3
set_up_to_date 2 1
set_up_to_date 2 1
set_up_to_date 2 3
"""),

# The updatable flag lives on the cell: it survives the node going down and
# coming back (outdate does not touch OUT_OF_DATE cells); it is reset only
# when a readable cell becomes non-readable (e.g. U -> O by outdate).
('updatable_survives_node_down', """
new 4 1
""" + NODES3 + """
make 1 2 3
node 4 RUNNING
add_nodes 4
tweak
updatable 4 0 1 2 3
node 4 DOWN
outdate 4
node 4 RUNNING
set_up_to_date 4 1
node 1 DOWN
outdate 1
node 1 RUNNING
set_up_to_date 1 1
updatable 1 1 3
set_up_to_date 1 1
set_up_to_date 1 3
replicate_all
"""),

('drop_nodes_refused_only_copy', """
new 4 0
node 1 RUNNING
node 2 RUNNING
make 1 2
drop_nodes 1
drop_nodes 1 2
"""),

# Only readable copy is FEEDING: the new node is dropped before replication,
# so the F cells become UP_TO_DATE again and O cells are discarded.
('drop_nodes_feeding_back_to_up_to_date', """
new 12 1
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 RUNNING
add_nodes 3
tweak
node 3 DOWN
drop_nodes 3
tweak
"""),

# Dropping a node whose cells are all OUT_OF_DATE while readable copies
# exist elsewhere.
('drop_nodes_outdated', """
new 6 1
""" + NODES3 + """
make 1 2 3
node 3 DOWN
outdate 3
drop_nodes 3
tweak
replicate_all
"""),

# Topology: 2 hosts with 2 nodes each: replicas on different hosts.
('topology_2hosts_nr1', """
new 8 1
node 1 RUNNING host1
node 2 RUNNING host1
node 3 RUNNING host2
node 4 RUNNING host2
make 1 2 3 4
tweak
"""),

# Same nodes without topology at make time, then topology is declared.
('topology_declared_after_make', """
new 8 1
""" + NODES4 + """
make 1 2 3 4
node 1 RUNNING host1
node 2 RUNNING host1
node 3 RUNNING host2
node 4 RUNNING host2
tweak
replicate_all
tweak
"""),

# 2 nodes on host1, 1 on host2, nr 1: topology cannot be respected
# (warning, topology ignored).
('topology_unbalanced_ignored', """
new 6 1
node 1 RUNNING host1
node 2 RUNNING host1
node 3 RUNNING host2
make 1 2 3
"""),

# Every node on the same host: trivially satisfied at depth 1, then depth
# exhausted: warning, topology ignored.
('topology_single_host', """
new 6 1
node 1 RUNNING host1
node 2 RUNNING host1
node 3 RUNNING host1
make 1 2 3
"""),

# Two levels (room, host), nr 2, 6 nodes (from test_19_topology).
('topology_rooms_hosts_nr2', """
new 14 2
node 1 RUNNING 0 0
node 2 RUNNING 0 1
node 3 RUNNING 0 2
node 4 RUNNING 1 0
node 5 RUNNING 1 1
node 6 RUNNING 1 2
make 1 2 3 4 5 6
"""),

# One node without devpath: min depth 0, topology ignored.
('topology_missing_devpath', """
new 8 1
node 1 RUNNING host1
node 2 RUNNING host1
node 3 RUNNING host2
node 4 RUNNING
make 1 2 3 4
"""),

# tweak and node states: PENDING node in the balancing set gets cells.
('tweak_pending_node_in_table', """
new 6 1
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 PENDING
add_nodes 3
tweak
"""),

# A DOWN node (with outdated cells) not listed: tweak keeps it as a member
# (no change); listed: its cells are re-created elsewhere.
('tweak_down_node', """
new 6 1
""" + NODES3 + """
make 1 2 3
node 3 DOWN
outdate 3
tweak
tweak 3
"""),

# A RUNNING node switched to PENDING keeps its cells; tweak ignores states.
('tweak_running_vs_pending', """
new 6 1
""" + NODES3 + """
make 1 2 3
node 3 PENDING
tweak
tweak 3
"""),

# tweak asserts that the result is operational: raises AssertionError after
# having modified the table when a partition has no readable running cell.
('tweak_not_operational_assert', """
new 6 0
""" + NODES3 + """
make 1 2 3
node 2 DOWN
outdate 2
tweak 2
"""),

('set_replicas_1_to_2', """
new 6 1
""" + NODES3 + """
make 1 2 3
set_replicas 2
tweak
replicate_all
tweak
"""),

('set_replicas_2_to_0', """
new 6 2
""" + NODES3 + """
make 1 2 3
set_replicas 0
tweak
tweak
"""),

('set_replicas_same_value', """
new 4 1
node 1 RUNNING
node 2 RUNNING
make 1 2
set_replicas 1
tweak
"""),

# A tweak leaving FEEDING cells: nr 2, adding nodes one by one.
('tweak_leaves_feeding', """
new 6 2
""" + NODES3 + """
make 1 2 3
node 4 RUNNING
node 5 RUNNING
add_nodes 4 5
tweak
tweak
replicate_all
tweak
"""),

# Several tweaks without replication in between (feeding cells pile up).
('tweak_twice_before_replication', """
new 12 1
node 1 RUNNING
node 2 RUNNING
make 1 2
node 3 RUNNING
add_nodes 3
tweak
node 4 RUNNING
add_nodes 4
tweak
replicate_all
"""),

# Removing a node from a 4-node cluster after rebalancing away from it.
('shrink_4_to_3', """
new 10 1
""" + NODES4 + """
make 1 2 3 4
tweak 4
replicate_all
drop_nodes 4
tweak
"""),

]


# ---------------------------------------------------------------------------
# Interpreter.

def fmt_changes(change_list):
    return ' '.join('%d:%d:%s' % (o, u, s) for o, u, s in change_list or ())


def fmt_rows(pt, sort=True):
    return '|'.join(
        ','.join('%d:%s' % (c.getUUID(), c.getState())
                 for c in (sorted(row, key=lambda c: c.getUUID())
                           if sort else row))
        for row in pt.partition_list)


def fmt_error(e):
    args = e.args
    if (len(args) == 1 and isinstance(args[0], list)
            and all(isinstance(x, tuple) and len(x) == 3 for x in args[0])):
        msg = 'changes so far: ' + (fmt_changes(args[0]) or '(none)')
    else:
        msg = ' '.join('node %d' % x.getUUID() if isinstance(x, Node)
                       else str(x) for x in args)
    return '%s%s' % (type(e).__name__, ': ' + msg if msg else '')


OPS = ('make', 'add_nodes', 'tweak', 'outdate', 'updatable',
       'set_up_to_date', 'drop_nodes', 'set_replicas')


class Runner(object):

    def __init__(self, out):
        self.out = out
        self.pt = None
        self.nm = None
        self.nodes = {}

    def emit(self, line):
        self.out.write(line + '\n')

    def node(self, nid, state, devpath):
        nid = int(nid)
        state = getattr(NodeStates, state)
        node = self.nodes.get(nid)
        if node is None:
            node = self.nm.createStorage(uuid=nid, state=state)
            self.nodes[nid] = node
        else:
            node.setState(state)
        if devpath:
            node.extra = {'devpath': tuple(devpath)}

    def get(self, nids):
        return [self.nodes[int(x)] for x in nids]

    def replicate_all(self):
        todo = []
        per_node = {}
        for offset, row in enumerate(self.pt.partition_list):
            for cell in sorted(row, key=lambda c: c.getUUID()):
                if cell.isOutOfDate() and cell.getNode().isRunning():
                    todo.append((cell.getUUID(), offset))
                    per_node.setdefault(cell.getUUID(), []).append(offset)
        for nid in sorted(per_node):
            self.op('updatable %d %s' % (
                nid, ' '.join(map(str, per_node[nid]))))
        for nid, offset in todo:
            self.op('set_up_to_date %d %d' % (nid, offset))

    def warnings(self):
        # tweak() logs "Can't maximize resiliency" whenever it ignores the
        # topology, which includes every tweak without devpaths when nr > 0:
        # only report it for scenarios that declare a topology.
        if any(n.extra.get('devpath') for n in self.nodes.values()):
            for msg in _capture.messages:
                if msg.startswith("Can't maximize resiliency"):
                    self.emit('# NEO/py warning: topology ignored'
                              " (Can't maximize resiliency)")

    def op(self, line):
        words = line.split()
        name, args = words[0], words[1:]
        if name == 'replicate_all':
            self.emit('# replicate_all')
            return self.replicate_all()
        if name not in OPS:
            raise ValueError('unknown op %r' % line)
        pt = self.pt
        self.emit(line)
        del _capture.messages[:]
        bump = False
        changes = []
        try:
            if name == 'make':
                pt.make(self.get(args))
            elif name == 'add_nodes':
                added = pt.addNodeList(self.get(args))
                self.emit('# added: %s' % ' '.join(
                    str(n.getUUID()) for n in added))
            elif name == 'tweak':
                changes = pt.tweak(self.get(args))
                bump = bool(changes)
            elif name == 'outdate':
                lost, = self.get(args) or [None]
                changes = pt.outdate(lost)
                bump = bool(changes)
            elif name == 'updatable':
                pt.updatable(int(args[0]), [int(x) for x in args[1:]])
            elif name == 'set_up_to_date':
                node, = self.get(args[:1])
                changes = pt.setUpToDate(node, int(args[1]))
                if changes is None:
                    self.emit('# setUpToDate returned None (ignored)')
                    changes = []
                bump = bool(changes)
            elif name == 'drop_nodes':
                changes = pt.dropNodeList(self.get(args))
                bump = bool(changes)
            elif name == 'set_replicas':
                pt.setReplicas(int(args[0]))
                bump = True
        except Exception as e:
            self.warnings()
            self.emit('=> error ' + fmt_error(e))
        else:
            self.warnings()
            if bump:
                pt.setNextID()
            self.emit('=> changes' + (' ' + fmt_changes(changes)
                                      if changes else ''))
        self.emit('=> ptid %s' % pt.getID())
        rows = fmt_rows(pt)
        raw = fmt_rows(pt, sort=False)
        if raw != rows:
            # NEO/py keeps cells of a row in insertion order; this order
            # determines the order of later change lists (outdate,
            # dropNodeList, setUpToDate, tweak discards).
            self.emit('# insertion order: ' + raw)
        self.emit('=> rows ' + rows)
        self.emit('=> operational ' + ('yes' if pt.operational() else 'no'))

    def run(self, name, text):
        self.emit('case ' + name)
        for line in text.strip().splitlines():
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            words = line.split()
            if words[0] == 'new':
                self.nm = NodeManager()
                self.nodes = {}
                self.pt = PartitionTable(int(words[1]), int(words[2]))
                self.emit(line)
            elif words[0] == 'node':
                self.node(words[1], words[2], words[3:])
                self.emit(line)
            else:
                self.op(line)
        self.emit('end')
        self.emit('')


HEADER = """\
# Partition table test cases generated by generate.py from NEO/py's
# neo.master.pt.PartitionTable (NEO/py source tree). Do not edit by hand.
#
# case <name> / new <np> <nr> / node <nid> <STATE> [devpath...] / <op> / end
# A node line without devpath components keeps the node's previous devpath.
# After each op: => changes|error, => ptid, => rows, => operational.
# Rows list cells "nid:STATE" sorted by nid; changes keep NEO/py's order.
# Ops without a cell change list (make, add_nodes, updatable, set_replicas)
# print an empty "=> changes". ptid is bumped like the master does:
# make -> 1; set_replicas -> +1 always; tweak/outdate/set_up_to_date/
# drop_nodes -> +1 iff the change list is non-empty; never on error.
# '# replicate_all' marks a generator macro expanded into the following
# updatable/set_up_to_date ops. '# insertion order:' (only when it differs
# from the sorted rows) shows NEO/py's internal cell order within rows.
"""


def main():
    names = [name for name, _ in SCENARIOS]
    assert len(names) == len(set(names)), 'duplicate scenario names'
    out = sys.stdout
    out.write(HEADER + '\n')
    runner = Runner(out)
    for name, text in SCENARIOS:
        runner.run(name, text)


if __name__ == '__main__':
    main()
