//! Simulation campaigns: a random cluster per seed, a random fault plan,
//! invariants checked at every step, then faults stop and the cluster must
//! serve again.
//!
//! Seeds come from the environment so that a failure replays exactly:
//! `NEO_SIM_SEED=<n>` runs one seed (with its logs printed), and
//! `NEO_SIM_SEEDS=<count>` overrides how many a campaign runs.

use std::collections::BTreeSet;
use std::time::Duration;

use neo_proto::{
    AddPendingNodes, ClusterState, Nid, NodeState, Packet, SetClusterState, SetNodeState,
    TweakPartitionTable,
};

use super::check::{invariants, partition_tables_agree, running_primary};
use super::workload::{Workload, WorkloadShape, WorkloadStats};
use super::{NodeId, NodeKind, Sim, SimConfig, Trigger};
use crate::sim::node::Machine;

/// A fault or operator action at a scheduled instant.
#[derive(Debug, Clone)]
pub enum Action {
    CrashRandom {
        kinds: Vec<NodeKind>,
    },
    RestartRandom,
    DropRandomConnection,
    PartitionRandom,
    Heal,
    Start,
    /// A storage hangs (connections open, nothing handled) until the
    /// faults stop.
    FreezeRandomStorage,
    /// A new storage process joins (PENDING until `add`).
    NewStorage,
    /// `neoctl add` of every PENDING storage.
    AddPending,
    /// `neoctl tweak`: balance the table over the running storages.
    Tweak,
    /// `neoctl tweak -d`: move a random storage's partitions away.
    TweakOutRandomStorage,
    /// `neoctl kill` of a random storage (refused if it holds a
    /// partition's last readable copy).
    KillRandomStorage,
    /// `neoctl drop` of a random DOWN storage (refused if that loses data).
    DropRandomDownStorage,
    /// A random machine's wall clock is set forward by an hour or back by
    /// ten minutes (an NTP step): nothing may notice but TIDs and
    /// timestamps, which must still increase.
    ClockJump,
}

/// Machines' wall clocks start this far apart at most (each its own
/// offset, drawn from the seed).
pub const CLOCK_SKEW_NS_MAX: i64 = 30_000_000_000;
const CLOCK_JUMP_FORWARD_NS: i64 = 3_600_000_000_000;
const CLOCK_JUMP_BACK_NS: i64 = -600_000_000_000;

/// The shape of a campaign's clusters and faults.
#[derive(Debug, Clone)]
pub struct Shape {
    pub masters: (usize, usize),
    pub storages: (usize, usize),
    pub max_replicas: u32,
    pub partitions: (u32, u32),
    pub clients: (usize, usize),
    /// Faults happen during this window (after the first start).
    pub fault_window: Duration,
    pub faults: (usize, usize),
    pub actions: Vec<Action>,
    /// Time allowed for the cluster to serve again after faults stop.
    pub recovery_deadline: Duration,
    /// Clients run transactions, checked at the end.
    pub workload: Option<WorkloadShape>,
    /// How soon masters ping a silent storage (default: the master's).
    pub storage_ping: Option<Duration>,
    /// The end also waits for replication to complete (every cell
    /// UP_TO_DATE), so that all replicas are compared.
    pub until_replicated: bool,
}

/// What a passing seed did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub steps: u64,
    pub faults: usize,
    pub virtual_time: Duration,
    pub workload: WorkloadStats,
    /// Transactions and reads the checker verified.
    pub checked: (usize, usize),
    pub cluster: ClusterStats,
}

/// What the cluster went through, counted from logs and operator answers
/// (to see that a campaign exercises what it means to).
#[derive(Debug, Clone, Default)]
pub struct ClusterStats {
    /// Cells that became UP_TO_DATE by replication.
    pub replicated_cells: u64,
    /// Storages the primary took down for not answering.
    pub hung_storages: u64,
    /// Operator requests that changed something, and those refused.
    pub operator_done: u64,
    pub operator_refused: u64,
}

impl ClusterStats {
    fn of(sim: &Sim) -> ClusterStats {
        let count = |needle: &str| sim.logs.iter().filter(|l| l.contains(needle)).count() as u64;
        let mut stats = ClusterStats {
            replicated_cells: count(" is up to date for partition "),
            hung_storages: count(" did not answer for "),
            ..ClusterStats::default()
        };
        for (_, answer) in &sim.ctl_answers {
            match answer {
                Packet::AnswerTweakPartitionTable(a) if a.changed => stats.operator_done += 1,
                Packet::Error(e) if e.code == neo_proto::ErrorCode::Ack => stats.operator_done += 1,
                Packet::Error(_) => stats.operator_refused += 1,
                _ => {}
            }
        }
        stats
    }
}

/// Runs one seed of a campaign.
pub fn run(seed: u64, shape: &Shape) -> Result<Outcome, Box<(String, Sim)>> {
    run_with(seed, shape, std::env::var("NEO_SIM_TRANSCRIPT").is_ok()).map(|(outcome, _)| outcome)
}

/// Runs one seed and returns its transcript and logs, whatever the outcome
/// (determinism checks).
pub fn run_traced(seed: u64, shape: &Shape) -> Vec<String> {
    let sim = match run_with(seed, shape, true) {
        Ok((_, sim)) => sim,
        Err(failure) => failure.1,
    };
    let mut lines = sim.transcript;
    lines.extend(sim.logs);
    lines
}

fn run_with(
    seed: u64,
    shape: &Shape,
    transcript: bool,
) -> Result<(Outcome, Sim), Box<(String, Sim)>> {
    let mut config = SimConfig::new(seed);
    config.transcript = transcript;
    let mut rng = neo_core::rng::Rng::new(seed.wrapping_mul(0x9e37_79b9) ^ 0x5eed);
    let pick = |rng: &mut neo_core::rng::Rng, (lo, hi): (usize, usize)| {
        lo + rng.below((hi - lo + 1) as u64) as usize
    };
    let masters = pick(&mut rng, shape.masters);
    let storages = pick(&mut rng, shape.storages);
    config.partitions =
        shape.partitions.0 + rng.below((shape.partitions.1 - shape.partitions.0 + 1) as u64) as u32;
    config.replicas = rng.below(shape.max_replicas.min(storages as u32 - 1) as u64 + 1) as u32;
    if let Some(ping) = shape.storage_ping {
        config.storage_ping = ping;
    }
    let use_autostart = rng.chance(1, 2);
    if use_autostart {
        config.autostart = Some(storages as u32);
    }
    let mut sim = Sim::new(config);
    sim.add_masters(masters);
    for _ in 0..storages {
        sim.add_storage();
    }
    let admin = sim.add_admin();
    for _ in 0..pick(&mut rng, shape.clients) {
        sim.add_client();
    }
    let ctl = sim.add_ctl();
    // Clocks of their own, from a generator of their own: the draws of
    // the cluster and of the faults stay what they were.
    let mut clocks = neo_core::rng::Rng::new(seed ^ 0xc10c_c10c);
    for node in &mut sim.nodes {
        let span = 2 * CLOCK_SKEW_NS_MAX as u64 + 1;
        node.wall_offset_ns = clocks.below(span) as i64 - CLOCK_SKEW_NS_MAX;
    }

    // The plan: an operator start, then faults, then a heal of everything.
    let mut plan: Vec<(Duration, Action)> = Vec::new();
    if !use_autostart {
        plan.push((Duration::from_millis(500 + rng.below(1500)), Action::Start));
    }
    let fault_count = pick(&mut rng, shape.faults);
    for _ in 0..fault_count {
        let at = Duration::from_millis(1000 + rng.below(shape.fault_window.as_millis() as u64));
        let action = shape.actions[rng.below(shape.actions.len() as u64) as usize].clone();
        plan.push((at, action));
    }
    let faults_end = Duration::from_millis(1000) + shape.fault_window;
    plan.sort_by_key(|(at, _)| *at);
    let start = sim.now;
    for (index, (at, _)) in plan.iter().enumerate() {
        sim.schedule_script(start + *at, index);
    }
    let heal_index = plan.len();
    let retry_start_index = heal_index + 1;
    sim.schedule_script(start + faults_end, heal_index);
    let deadline = start + faults_end + shape.recovery_deadline;

    let script = |sim: &mut Sim, index: usize| {
        if index == heal_index {
            heal_everything(sim);
            if sim.config.autostart.is_none() {
                sim.schedule_script(sim.now, retry_start_index);
            }
            return;
        }
        if index == retry_start_index {
            // The operator asks again until the cluster exists: the first
            // request may have met an admin without master. Like a real
            // operator, never to force the start of a cluster whose
            // storages hold data (that would make a new, empty database).
            if !serving(sim) && !any_storage_has_table(sim) {
                perform(sim, &Action::Start, ctl, admin);
                sim.schedule_script(sim.now + Duration::from_secs(2), retry_start_index);
            }
            return;
        }
        perform(sim, &plan[index].1, ctl, admin);
    };
    let mut workload = shape
        .workload
        .clone()
        .map(|w| Workload::new(&mut sim, w, seed));
    if let Some(workload) = &mut workload {
        // New transactions stop with the faults; those under way finish.
        workload.stop_at = start + faults_end;
    }
    let mut served = false;
    let result = loop {
        let Some(action) = sim.step(deadline) else {
            break Ok(());
        };
        match action {
            Some(Trigger::Script(index)) => script(&mut sim, index),
            Some(Trigger::Workload(token)) => {
                if let Some(workload) = &mut workload {
                    workload.on_timer(&mut sim, token);
                }
            }
            None => {}
        }
        match &mut workload {
            Some(workload) => workload.on_events(&mut sim),
            None => sim.client_events.clear(),
        }
        if let Err(error) = invariants(&sim) {
            break Err(error);
        }
        if sim.now >= start + faults_end {
            // Faults are over: like a supervisor, restart any process
            // that exits (e.g. a hung storage killed by the operator
            // finds out when it resumes).
            restart_dead(&mut sim);
        }
        let idle = workload.as_ref().is_none_or(|w| w.idle())
            && !sim
                .node_ids(NodeKind::Storage)
                .iter()
                .any(|&n| sim.nodes[n.0].as_storage().is_some_and(|s| s.is_packing()));
        let replicated = !shape.until_replicated || all_cells_up_to_date(&sim);
        if sim.now >= start + faults_end && idle && serving(&sim) && replicated {
            served = true;
            break Ok(());
        }
    };
    let mut outcome = Outcome {
        steps: sim.steps,
        faults: fault_count,
        virtual_time: sim.now.saturating_since(start),
        cluster: ClusterStats::of(&sim),
        ..Outcome::default()
    };
    if let (Ok(()), true, Some(workload)) = (&result, served, &workload) {
        outcome.workload = workload.stats.clone();
        outcome.workload.deadlocks = sim
            .logs
            .iter()
            .filter(|line| line.contains("deadlock avoidance triggered"))
            .count() as u64;
        match workload.check(&sim) {
            Ok(report) => outcome.checked = (report.transactions, report.reads),
            Err(error) => return Err(Box::new((error, sim))),
        }
    }
    match result {
        Err(error) => Err(Box::new((error, sim))),
        Ok(()) if !served => Err(Box::new((
            format!(
                "cluster not serving {:?} after faults stopped{}{}",
                shape.recovery_deadline,
                workload
                    .map(|w| format!(" (busy clients: {})", w.describe(&sim)))
                    .unwrap_or_default(),
                describe_table(&sim),
            ),
            sim,
        ))),
        Ok(()) if !hangs(shape) && outcome.cluster.hung_storages > 0 => Err(Box::new((
            format!(
                "{} storage(s) taken for dead though none hung (clock jumps must not do that)",
                outcome.cluster.hung_storages
            ),
            sim,
        ))),
        Ok(()) => Ok((outcome, sim)),
    }
}

/// Whether the shape makes storages hang (the only reason a master may
/// take a connected storage for dead).
fn hangs(shape: &Shape) -> bool {
    shape
        .actions
        .iter()
        .any(|a| matches!(a, Action::FreezeRandomStorage))
}

fn perform(sim: &mut Sim, action: &Action, ctl: NodeId, admin: NodeId) {
    match action {
        Action::Start => {
            sim.ctl(
                ctl,
                admin,
                SetClusterState {
                    state: ClusterState::Verifying,
                }
                .into(),
            );
        }
        Action::CrashRandom { kinds } => {
            let candidates: Vec<NodeId> = kinds
                .iter()
                .flat_map(|&k| sim.node_ids(k))
                .filter(|&n| sim.nodes[n.0].alive)
                .collect();
            if !candidates.is_empty() {
                let index = sim.rng.below(candidates.len() as u64) as usize;
                sim.crash(candidates[index]);
            }
        }
        Action::RestartRandom => {
            let dead: Vec<NodeId> = (0..sim.nodes.len())
                .map(NodeId)
                .filter(|&n| !sim.nodes[n.0].alive && sim.nodes[n.0].kind != NodeKind::Ctl)
                .collect();
            if !dead.is_empty() {
                let index = sim.rng.below(dead.len() as u64) as usize;
                sim.restart(dead[index]);
            }
        }
        Action::DropRandomConnection => {
            let links = sim.network.open_links();
            if !links.is_empty() {
                let index = sim.rng.below(links.len() as u64) as usize;
                sim.drop_connection(links[index]);
            }
        }
        Action::PartitionRandom => {
            let nodes: Vec<NodeId> = (0..sim.nodes.len())
                .map(NodeId)
                .filter(|&n| sim.nodes[n.0].kind != NodeKind::Ctl)
                .collect();
            let side: BTreeSet<NodeId> =
                nodes.into_iter().filter(|_| sim.rng.chance(1, 2)).collect();
            sim.partition(&side);
        }
        Action::Heal => sim.heal(),
        Action::ClockJump => {
            let alive: Vec<NodeId> = (0..sim.nodes.len())
                .map(NodeId)
                .filter(|&n| sim.nodes[n.0].alive && sim.nodes[n.0].kind != NodeKind::Ctl)
                .collect();
            if !alive.is_empty() {
                let node = alive[sim.rng.below(alive.len() as u64) as usize];
                let jump = if sim.rng.chance(1, 2) {
                    CLOCK_JUMP_FORWARD_NS
                } else {
                    CLOCK_JUMP_BACK_NS
                };
                sim.nodes[node.0].wall_offset_ns += jump;
                let line = format!("{} {} CLOCK JUMP {jump} ns", sim.now, sim.name(node));
                sim.logs.push(line);
            }
        }
        Action::FreezeRandomStorage => {
            let candidates: Vec<NodeId> = sim
                .node_ids(NodeKind::Storage)
                .into_iter()
                .filter(|&n| sim.nodes[n.0].alive && !sim.is_frozen(n))
                .collect();
            if !candidates.is_empty() {
                let index = sim.rng.below(candidates.len() as u64) as usize;
                sim.freeze(candidates[index]);
            }
        }
        Action::NewStorage => {
            sim.add_storage();
        }
        Action::AddPending => {
            let nids = storages_in_state(sim, NodeState::Pending);
            if !nids.is_empty() {
                sim.ctl(ctl, admin, AddPendingNodes { nids }.into());
            }
        }
        Action::Tweak => sim.ctl(
            ctl,
            admin,
            TweakPartitionTable {
                dry_run: false,
                drop_nids: vec![],
            }
            .into(),
        ),
        Action::TweakOutRandomStorage => {
            if let Some(nid) = random_of(sim, storages_in_state(sim, NodeState::Running)) {
                let request = TweakPartitionTable {
                    dry_run: false,
                    drop_nids: vec![nid],
                };
                sim.ctl(ctl, admin, request.into());
            }
        }
        Action::KillRandomStorage => {
            if let Some(nid) = random_of(sim, storages_in_state(sim, NodeState::Running)) {
                let request = SetNodeState {
                    nid,
                    state: NodeState::Down,
                };
                sim.ctl(ctl, admin, request.into());
            }
        }
        Action::DropRandomDownStorage => {
            if let Some(nid) = random_of(sim, storages_in_state(sim, NodeState::Down)) {
                let request = SetNodeState {
                    nid,
                    state: NodeState::Unknown,
                };
                sim.ctl(ctl, admin, request.into());
            }
        }
    }
}

/// Storages the running primary knows in `state` (none without one).
fn storages_in_state(sim: &Sim, state: NodeState) -> Vec<Nid> {
    let Some(primary) = running_primary(sim) else {
        return Vec::new();
    };
    let master = sim.nodes[primary.0].as_master().unwrap();
    master
        .nodes()
        .of_type(neo_proto::NodeType::Storage)
        .filter(|(_, e)| e.state == state)
        .filter_map(|(_, e)| e.nid())
        .collect()
}

fn random_of(sim: &mut Sim, nids: Vec<Nid>) -> Option<Nid> {
    if nids.is_empty() {
        return None;
    }
    Some(nids[sim.rng.below(nids.len() as u64) as usize])
}

/// The primary's table, one line per partition (failure reports).
fn describe_table(sim: &Sim) -> String {
    let Some(primary) = running_primary(sim) else {
        return String::new();
    };
    let master = sim.nodes[primary.0].as_master().unwrap();
    let state_of = |nid| master.nodes().state_of(nid);
    let lines = master.partition_table().format(&state_of);
    format!(
        "\npartition table:\n{}\npacking: {:?}, network busy: {}, tables agree: {:?}",
        lines.join("\n"),
        sim.node_ids(NodeKind::Storage)
            .into_iter()
            .filter_map(|n| sim.nodes[n.0]
                .as_storage()
                .filter(|s| s.is_packing())
                .map(|s| (n, s)))
            .map(|(n, s)| format!("{}: {}", sim.name(n), s.describe_packing()))
            .collect::<Vec<_>>(),
        sim.network_busy(),
        partition_tables_agree(sim)
    )
}

/// Replication is complete: every cell of the primary's table UP_TO_DATE.
pub fn all_cells_up_to_date(sim: &Sim) -> bool {
    let Some(primary) = running_primary(sim) else {
        return false;
    };
    let pt = sim.nodes[primary.0].as_master().unwrap().partition_table();
    (0..pt.num_partitions()).all(|p| {
        pt.row(p)
            .iter()
            .all(|c| c.state == neo_proto::CellState::UpToDate)
    })
}

/// Replication is complete and nothing is in flight.
pub fn replicated_and_quiet(sim: &Sim) -> bool {
    all_cells_up_to_date(sim) && !sim.network_busy()
}

/// Faults stop: the network heals and every dead node restarts.
fn heal_everything(sim: &mut Sim) {
    sim.heal();
    for node in 0..sim.nodes.len() {
        sim.thaw(NodeId(node));
    }
    restart_dead(sim);
}

fn restart_dead(sim: &mut Sim) {
    for node in 0..sim.nodes.len() {
        if !sim.nodes[node].alive && sim.nodes[node].kind != NodeKind::Ctl {
            sim.restart(NodeId(node));
        }
    }
}

fn any_storage_has_table(sim: &Sim) -> bool {
    use neo_core::storage::store::Store;
    sim.node_ids(NodeKind::Storage)
        .iter()
        .any(|&n| match &sim.nodes[n.0].machine {
            Machine::Storage(s) => s.store().partition_table().is_some(),
            _ => false,
        })
}

/// The cluster serves: one primary RUNNING, every storage of its table
/// operational and following it, tables agreeing.
pub fn serving(sim: &Sim) -> bool {
    let Some(primary) = running_primary(sim) else {
        return false;
    };
    // The cheap checks first: this runs after every step of a boot.
    if sim.network_busy() {
        return false;
    }
    let clients_ready = sim
        .node_ids(NodeKind::Client)
        .iter()
        .all(|&c| sim.nodes[c.0].as_client().is_some_and(|c| c.is_ready()));
    if !clients_ready {
        return false;
    }
    let master = sim.nodes[primary.0].as_master().unwrap();
    let in_table = master.partition_table().nodes(false);
    let followers = super::check::followers(sim);
    let following = followers.get(&primary).cloned().unwrap_or_default();
    for storage in sim.node_ids(NodeKind::Storage) {
        let Some(s) = sim.nodes[storage.0].as_storage() else {
            return false;
        };
        let Some(nid) = s.nid() else { continue };
        if in_table.contains(&nid) && !(s.is_operational() && following.contains(&storage)) {
            return false;
        }
    }
    partition_tables_agree(sim).is_ok()
}

/// Runs a campaign over the seeds the environment asks for (default
/// `default_count` from seed 0) and panics on the first failure with the
/// command that replays it and the failing run's logs.
pub fn run_campaign(
    name: &str,
    test_path: &str,
    default_count: u64,
    shape: &Shape,
) -> Vec<Outcome> {
    let seeds: Vec<u64> = match std::env::var("NEO_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("NEO_SIM_SEED is a number")],
        Err(_) => {
            let count = std::env::var("NEO_SIM_SEEDS")
                .ok()
                .map(|c| c.parse().expect("NEO_SIM_SEEDS is a number"))
                .unwrap_or(default_count);
            let first: u64 = std::env::var("NEO_SIM_FIRST_SEED")
                .ok()
                .map(|c| c.parse().expect("NEO_SIM_FIRST_SEED is a number"))
                .unwrap_or(0);
            (first..first + count).collect()
        }
    };
    let verbose = std::env::var("NEO_SIM_SEED").is_ok();
    let mut outcomes = Vec::new();
    for seed in seeds {
        match run(seed, shape) {
            Ok(outcome) => outcomes.push(outcome),
            Err(failure) => {
                let (error, sim) = *failure;
                let tail = if verbose {
                    0
                } else {
                    sim.logs.len().saturating_sub(80)
                };
                for line in &sim.logs[tail..] {
                    eprintln!("{line}");
                }
                for line in &sim.transcript {
                    eprintln!("{line}");
                }
                describe(&sim);
                panic!(
                    "{name}: seed {seed} failed: {error}\nreplay: NEO_SIM_SEED={seed} cargo test -p neo-tests --test {test_path} -- --nocapture"
                );
            }
        }
    }
    outcomes
}

/// Prints the final state of every node (for failure reports).
fn describe(sim: &Sim) {
    for node in &sim.nodes {
        let state = match &node.machine {
            Machine::Master(m) => format!(
                "primary={} state={:?} ptid={:?} storages={:?}",
                m.is_primary(),
                m.cluster_state(),
                m.partition_table().ptid(),
                m.running_storages()
            ),
            Machine::Storage(s) => format!(
                "nid={:?} primary={} operational={} ptid={:?}",
                s.nid(),
                s.has_primary(),
                s.is_operational(),
                s.partition_table().and_then(|p| p.ptid())
            ),
            Machine::Client(c) => format!(
                "ready={} last_tid={:?} {}",
                c.is_ready(),
                c.last_tid(),
                c.describe_operations()
            ),
            Machine::Admin(a) => format!(
                "connected={} state={:?}",
                a.is_connected(),
                a.cluster_state()
            ),
            Machine::Ctl(_) => String::new(),
        };
        eprintln!("{} alive={} {state}", node.name, node.alive);
    }
}
