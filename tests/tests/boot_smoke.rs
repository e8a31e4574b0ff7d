use std::time::Duration;

use neo_proto::{ClusterState, SetClusterState};
use neo_tests::sim::{NodeKind, Sim, SimConfig};

#[test]
fn boot_one_master_two_storages() {
    let mut sim = Sim::new(SimConfig::new(1));
    sim.add_masters(1);
    sim.add_storage();
    sim.add_storage();
    let admin = sim.add_admin();
    let ctl = sim.add_ctl();
    let start = sim.now + Duration::from_secs(2);
    sim.schedule_script(start, 0);
    let result = sim.run_until(
        sim.now + Duration::from_secs(10),
        |sim, _| {
            sim.ctl(
                ctl,
                admin,
                SetClusterState {
                    state: ClusterState::Verifying,
                }
                .into(),
            )
        },
        |_| Ok(()),
    );
    for line in &sim.logs {
        println!("{line}");
    }
    println!("answers: {:?}", sim.ctl_answers);
    result.unwrap();
    let master = sim.nodes[sim.node_ids(NodeKind::Master)[0].0]
        .as_master()
        .unwrap();
    assert_eq!(master.cluster_state(), Some(ClusterState::Running));
}
