//! `tweak`: balancing partitions over the storage nodes, as NEO/py does.
//!
//! The ideal table deals `min(replicas + 1, nodes)` copies of each
//! partition round-robin over the nodes, giving one *shape* (set of
//! offsets) per node; consecutive partitions land on different nodes, which
//! spreads writes of consecutive new OIDs. What remains is choosing which
//! node gets which shape:
//!
//! 1. first an assignment where every node keeps all its current
//!    non-FEEDING cells (nothing moves; this makes `tweak` idempotent);
//! 2. otherwise a heuristic: nodes are handled by decreasing spread between
//!    the best and the worst shape for them (cells that would be dropped,
//!    readable ones first), each trying its cheapest shapes first.
//!
//! Both search with backtracking under the topology constraint: when nodes
//! give a topology path (data centre, rack, host...), copies of a
//! partition are spread as evenly as possible over the shallowest level
//! that allows it; an unsatisfiable topology is ignored.
//!
//! Cells of ignored nodes (`drop_list`, NEO/py's name) are neither used nor
//! removed: data leaves them only with `drop_nodes`.

use std::collections::BTreeMap;

use bytes::Bytes;
use neo_proto::{CellState, Nid, NodeState};

use super::{change, Cell, Changes, PartitionTable, PtError};

/// Shapes: sets of offsets, as sorted vectors.
type Shape = Vec<u32>;

/// Per-offset topology tree: how many copies each path prefix already has.
#[derive(Debug, Default, Clone)]
struct TopologyNode {
    count: u32,
    children: Vec<(Bytes, TopologyNode)>,
}

impl TopologyNode {
    fn child(&mut self, component: &Bytes) -> &mut TopologyNode {
        let index = match self.children.iter().position(|(c, _)| c == component) {
            Some(index) => index,
            None => {
                self.children
                    .push((component.clone(), TopologyNode::default()));
                self.children.len() - 1
            }
        };
        &mut self.children[index].1
    }
}

struct Topology {
    /// Per depth: (most copies a prefix may hold, how many prefixes may hold
    /// that most) — NEO/py's `devpath_max`.
    limits: Vec<(u32, u32)>,
    per_offset: Vec<TopologyNode>,
}

impl Topology {
    /// Whether `shape` fits for a node at `path`; applies it if so.
    fn try_add(&mut self, shape: &Shape, path: &[Bytes]) -> bool {
        for &offset in shape {
            let mut node = &mut self.per_offset[offset as usize];
            for (component, &(most, ties)) in path.iter().zip(&self.limits) {
                let count = node.child(component).count;
                let at_most = node
                    .children
                    .iter()
                    .filter(|(_, n)| n.count == most)
                    .count() as u32;
                if count == most || (count + 1 == most && ties == at_most) {
                    return false;
                }
                node = node.child(component);
            }
        }
        self.adjust(shape, path, true);
        true
    }

    fn adjust(&mut self, shape: &Shape, path: &[Bytes], add: bool) {
        for &offset in shape {
            let mut node = &mut self.per_offset[offset as usize];
            for component in path {
                node = node.child(component);
                if add {
                    node.count += 1;
                } else {
                    node.count -= 1;
                }
            }
        }
    }
}

/// For each node to place (in the order the strategy handles them): its
/// index in the sorted node list and its candidate shapes, best first.
type Plan = Vec<(usize, Vec<Shape>)>;

/// Most steps of the search for an assignment that honours the storages'
/// topology, before it is tried without the topology.
pub(super) const TWEAK_SEARCH_STEPS_MAX: u32 = 1_000_000;

impl PartitionTable {
    /// Rebalances the table over the balancing set minus `drop_list`; see
    /// the module documentation. Returns the change list (ptid not bumped).
    ///
    /// Like NEO/py, it ends by checking that the table is operational with
    /// the given node states and fails (with the table already changed)
    /// otherwise — callers only tweak an operational cluster.
    pub fn tweak(
        &mut self,
        drop_list: &[Nid],
        devpath_of: &dyn Fn(Nid) -> Vec<Bytes>,
        state_of: &dyn Fn(Nid) -> Option<NodeState>,
    ) -> Result<Changes, PtError> {
        let (nodes, mut cells) = self.balancing_cells(drop_list)?;
        let repeats = (self.num_replicas as usize + 1).min(nodes.len());
        let (solution, plan) =
            search_assignment(&nodes, &cells, self.rows.len(), repeats, devpath_of)?;
        let new_state = if self.ptid.is_none() {
            self.ptid = Some(neo_proto::Ptid(1));
            CellState::UpToDate
        } else {
            CellState::OutOfDate
        };
        let mut changes = Vec::new();
        let mut missing_copies = vec![repeats as i64; self.rows.len()];
        let mut discard: Vec<Vec<Nid>> = vec![Vec::new(); self.rows.len()];
        for (shape, &(i, _)) in solution.iter().zip(&plan) {
            let nid = nodes[i];
            let kept = std::mem::take(&mut cells[i]);
            let leftover = self.assign_shape(
                nid,
                shape,
                kept,
                new_state,
                &mut missing_copies,
                &mut changes,
            );
            for offset in leftover.into_keys() {
                discard[offset as usize].push(nid);
            }
        }
        for (offset, candidates) in discard.into_iter().enumerate() {
            self.discard_cells(offset, candidates, missing_copies[offset], &mut changes);
        }
        if !self.operational(state_of, &[]) {
            return Err(PtError::NotOperational {
                changes: changes.len(),
            });
        }
        Ok(changes)
    }

    /// The nodes to balance over (sorted by nid: the balancing set minus
    /// `drop_list`), with their current cells.
    #[allow(clippy::type_complexity)]
    fn balancing_cells(
        &self,
        drop_list: &[Nid],
    ) -> Result<(Vec<Nid>, Vec<BTreeMap<u32, CellState>>), PtError> {
        let nodes: Vec<Nid> = self
            .counts
            .keys()
            .copied()
            .filter(|nid| !drop_list.contains(nid))
            .collect();
        if nodes.is_empty() {
            return Err(PtError::NoNodeLeft);
        }
        let mut cells: Vec<BTreeMap<u32, CellState>> = vec![BTreeMap::new(); nodes.len()];
        for (offset, row) in self.rows.iter().enumerate() {
            for cell in row {
                if let Ok(i) = nodes.binary_search(&cell.nid) {
                    cells[i].insert(offset as u32, cell.state);
                }
            }
        }
        Ok((nodes, cells))
    }

    /// Gives `nid` the partitions of `shape`: a new cell in `new_state`
    /// where it had none, a FEEDING cell back to UP_TO_DATE; a readable
    /// cell counts as a copy. Returns the node's cells outside the shape.
    fn assign_shape(
        &mut self,
        nid: Nid,
        shape: &Shape,
        mut leftover: BTreeMap<u32, CellState>,
        new_state: CellState,
        missing_copies: &mut [i64],
        changes: &mut Changes,
    ) -> BTreeMap<u32, CellState> {
        for &offset in shape {
            match leftover.remove(&offset) {
                None => {
                    *self.counts.entry(nid).or_insert(0) += 1;
                    let row = &mut self.rows[offset as usize];
                    if row.is_empty() {
                        self.filled_rows += 1;
                    }
                    row.push(Cell::new(nid, new_state));
                    changes.push(change(offset as usize, nid, new_state));
                }
                Some(state) if state.is_readable() => {
                    if state == CellState::Feeding {
                        // NEO/py sets the state without recounting.
                        let cell = self.cell_mut(offset as usize, nid);
                        cell.set_state(CellState::UpToDate);
                        changes.push(change(offset as usize, nid, CellState::UpToDate));
                    }
                    missing_copies[offset as usize] -= 1;
                }
                Some(_) => {}
            }
        }
        leftover
    }

    /// Cells of row `offset` not in the new layout: kept as FEEDING while
    /// the row lacks readable copies (`missing`), removed otherwise.
    fn discard_cells(
        &mut self,
        offset: usize,
        candidates: Vec<Nid>,
        mut missing: i64,
        changes: &mut Changes,
    ) {
        for nid in candidates {
            let state = self.cell(offset as u32, nid).unwrap().state;
            let new = if missing > 0 && state.is_readable() {
                missing -= 1;
                if state == CellState::Feeding {
                    continue;
                }
                self.cell_mut(offset, nid).set_state(CellState::Feeding);
                CellState::Feeding
            } else {
                // NEO/py decrements whatever the cell's state.
                *self.counts.entry(nid).or_insert(0) -= 1;
                let row = &mut self.rows[offset];
                row.retain(|c| c.nid != nid);
                if row.is_empty() {
                    self.filled_rows -= 1;
                }
                CellState::Discarded
            };
            changes.push(change(offset, nid, new));
        }
    }

    fn cell_mut(&mut self, offset: usize, nid: Nid) -> &mut Cell {
        self.rows[offset]
            .iter_mut()
            .find(|c| c.nid == nid)
            .expect("cell exists")
    }
}

/// The shapes every node should end with and which node gets which
/// (`Plan` order), honouring the storages' topology if a search within
/// TWEAK_SEARCH_STEPS_MAX steps can, else ignoring it.
fn search_assignment(
    nodes: &[Nid],
    cells: &[BTreeMap<u32, CellState>],
    np: usize,
    repeats: usize,
    devpath_of: &dyn Fn(Nid) -> Vec<Bytes>,
) -> Result<(Vec<Shape>, Plan), PtError> {
    // The ideal shapes, dealt round-robin.
    let node_count = nodes.len();
    let mut dealt: Vec<Shape> = vec![Vec::new(); node_count];
    let mut k = 0;
    for offset in 0..np as u32 {
        for _ in 0..repeats {
            dealt[k % node_count].push(offset);
            k += 1;
        }
    }
    let mut available: BTreeMap<Shape, u32> = BTreeMap::new();
    for shape in dealt {
        *available.entry(shape).or_insert(0) += 1;
    }
    // Larger shapes first, then lexicographic (cosmetic, as NEO/py).
    let mut shapes: Vec<Shape> = available.keys().cloned().collect();
    shapes.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));

    let (limits, paths) = topology_limits(nodes, repeats, devpath_of);
    let topology = Topology {
        limits,
        per_offset: vec![TopologyNode::default(); np],
    };
    let plans: Vec<Plan> = [
        keep_everything_plan(cells, &shapes),
        cost_plan(cells, &shapes, np),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Storages choose their own topology paths: a search the paths make
    // too long gives up on them rather than hold the master (NEO/py
    // ignores a topology it cannot honour, too).
    let unconstrained = Topology {
        limits: Vec::new(),
        per_offset: vec![TopologyNode::default(); np],
    };
    let no_paths = vec![Vec::new(); node_count];
    let mut solution: Vec<Shape> = Vec::new();
    for (paths, mut topology) in [(&paths, topology), (&no_paths, unconstrained)] {
        let mut steps_left = TWEAK_SEARCH_STEPS_MAX;
        for plan in &plans {
            let found = search(
                plan,
                paths,
                &mut available,
                &mut topology,
                &mut solution,
                &mut steps_left,
            );
            if found {
                return Ok((solution, plan.clone()));
            }
        }
    }
    Err(PtError::NoAssignment)
}

/// Strategy 1: every node keeps all its non-FEEDING cells. `None` if some
/// node has no shape containing them.
fn keep_everything_plan(cells: &[BTreeMap<u32, CellState>], shapes: &[Shape]) -> Option<Plan> {
    let mut plan = Vec::new();
    for (i, node_cells) in cells.iter().enumerate() {
        let kept: Vec<u32> = node_cells
            .iter()
            .filter(|(_, state)| **state != CellState::Feeding)
            .map(|(offset, _)| *offset)
            .collect();
        let fitting: Vec<Shape> = shapes
            .iter()
            .filter(|shape| kept.iter().all(|o| shape.binary_search(o).is_ok()))
            .cloned()
            .collect();
        if fitting.is_empty() {
            return None;
        }
        plan.push((i, fitting));
    }
    Some(plan)
}

/// Strategy 2: for each node, shapes sorted by cost (readable cells it
/// would lose, then other cells), nodes with the widest cost spread first.
fn cost_plan(cells: &[BTreeMap<u32, CellState>], shapes: &[Shape], np: usize) -> Option<Plan> {
    let mut ranked = Vec::new();
    for (i, node_cells) in cells.iter().enumerate() {
        let mut costs: Vec<((u32, u32), usize)> = shapes
            .iter()
            .enumerate()
            .map(|(x, shape)| {
                let mut lost = (0u32, 0u32); // (readable, other)
                for (&offset, &state) in node_cells {
                    if (offset as usize) < np && shape.binary_search(&offset).is_err() {
                        if state.is_readable() {
                            lost.0 += 1;
                        } else {
                            lost.1 += 1;
                        }
                    }
                }
                (lost, x)
            })
            .collect();
        costs.sort();
        let min = costs[0].0;
        let max = costs[costs.len() - 1].0;
        let spread = (min.0 as i64 - max.0 as i64, min.1 as i64 - max.1 as i64);
        let ordered: Vec<Shape> = costs.iter().map(|(_, x)| shapes[*x].clone()).collect();
        ranked.push((spread, i, ordered));
    }
    ranked.sort_by_key(|(spread, i, _)| (*spread, *i));
    Some(
        ranked
            .into_iter()
            .map(|(_, i, shapes)| (i, shapes))
            .collect(),
    )
}

/// Depth-first search of an assignment of one available shape per node
/// (in plan order) that respects the topology; fills `solution`.
fn search(
    plan: &Plan,
    paths: &[Vec<Bytes>],
    available: &mut BTreeMap<Shape, u32>,
    topology: &mut Topology,
    solution: &mut Vec<Shape>,
    steps_left: &mut u32,
) -> bool {
    // next candidate index per level
    let mut cursor: Vec<usize> = vec![0];
    loop {
        if *steps_left == 0 {
            // Undo the partial assignment for the next attempt.
            while let Some(shape) = solution.pop() {
                let (node, _) = &plan[solution.len()];
                topology.adjust(&shape, &paths[*node], false);
                *available.get_mut(&shape).unwrap() += 1;
            }
            return false;
        }
        *steps_left -= 1;
        let level = solution.len();
        let (node, candidates) = &plan[level];
        let index = *cursor.last().unwrap();
        if index >= candidates.len() {
            // Exhausted this level: backtrack.
            cursor.pop();
            let Some(shape) = solution.pop() else {
                return false;
            };
            let (previous, _) = &plan[solution.len()];
            topology.adjust(&shape, &paths[*previous], false);
            *available.get_mut(&shape).unwrap() += 1;
            continue;
        }
        *cursor.last_mut().unwrap() += 1;
        let shape = &candidates[index];
        if available[shape] > 0 && topology.try_add(shape, &paths[*node]) {
            solution.push(shape.clone());
            if solution.len() == plan.len() {
                return true;
            }
            *available.get_mut(shape).unwrap() -= 1;
            cursor.push(0);
        }
    }
}

/// NEO/py's topology analysis: the path prefix depth at which copies can be
/// spread evenly, and the per-depth limits; `(limits, per-node paths)`,
/// with empty paths when the topology is ignored.
fn topology_limits(
    nodes: &[Nid],
    repeats: usize,
    devpath_of: &dyn Fn(Nid) -> Vec<Bytes>,
) -> (Vec<(u32, u32)>, Vec<Vec<Bytes>>) {
    let mut limits = Vec::new();
    let mut paths = vec![Vec::new(); nodes.len()];
    if repeats <= 1 {
        return (limits, paths);
    }
    let all: Vec<Vec<Bytes>> = nodes.iter().map(|&nid| devpath_of(nid)).collect();
    let max_depth = all.iter().map(Vec::len).min().unwrap_or(0);
    let node_count = nodes.len();
    let mut depth = 0;
    while depth < max_depth {
        depth += 1;
        let mut per_prefix: BTreeMap<&[Bytes], usize> = BTreeMap::new();
        for path in &all {
            *per_prefix.entry(&path[..depth]).or_insert(0) += 1;
        }
        let prefixes = per_prefix.len();
        let sizes: std::collections::BTreeSet<usize> = per_prefix.values().copied().collect();
        let largest = *sizes.iter().next_back().unwrap();
        if sizes.len() == 1 || largest * repeats <= node_count {
            let (quotient, remainder) = (repeats / prefixes, repeats % prefixes);
            limits.push(if remainder != 0 {
                (quotient as u32 + 1, remainder as u32)
            } else {
                (quotient as u32, prefixes as u32)
            });
            if prefixes < repeats {
                continue;
            }
            paths = all.iter().map(|p| p[..depth].to_vec()).collect();
            return (limits, paths);
        }
        break;
    }
    // NEO/py logs "Can't maximize resiliency" and ignores the topology.
    (limits, vec![Vec::new(); nodes.len()])
}
